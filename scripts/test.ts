/**
 * `npm test`: the whole suite on a machine with only Node.js and npm. Finds or installs the tools
 * the browser and Kafka suites need (scripts/test-prerequisites.ts), builds the dashboard, starts
 * a Kafka broker of its own unless `KAFKA_BROKERS` names one, runs Jest serially with any extra
 * arguments, and stops the broker afterwards. Writes nothing inside the work tree that git tracks.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { errorMessage } from '../lambdas/core/errors';
import { startTestBroker, type TestBroker } from './test-broker';
import { ensurePrerequisites, needsOwnBroker } from './test-prerequisites';

const ROOT = join(__dirname, '..');
const log = (line: string): void => console.error(`npm test: ${line}`);

function run(command: string, args: string[], env: NodeJS.ProcessEnv): number {
  const result = spawnSync(command, args, { cwd: ROOT, env, stdio: 'inherit' });
  return result.status ?? 1;
}

async function main(): Promise<number> {
  const env = { ...process.env };
  ensurePrerequisites({ env, uid: process.getuid?.() ?? -1, log });
  const built = run(process.execPath, ['--import', 'tsx', 'frontend/build.ts'], env);
  if (built !== 0) return built;
  let broker: TestBroker | undefined;
  const stopBroker = (): void => broker?.stop();
  // Ctrl-C reaches Jest too (same process group); the broker runs in its own session, so stop it here.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      stopBroker();
      process.exit(130);
    });
  }
  try {
    if (needsOwnBroker(env)) {
      broker = await startTestBroker(env, log);
      env.KAFKA_BROKERS = broker.brokers;
    }
    return run(process.execPath, [join(ROOT, 'node_modules/jest/bin/jest.js'), '--runInBand', ...process.argv.slice(2)], env);
  } finally {
    stopBroker();
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    log(errorMessage(error));
    process.exit(1);
  },
);
