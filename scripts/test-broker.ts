/**
 * A throwaway Kafka broker for one `npm test` run: local/kafka/kafka.sh on free ports with its
 * own state directory (sharing only the cached jars), stopped and removed afterwards. A broker a
 * developer started with `npm run kafka:start` is left alone.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PrerequisiteError } from './test-prerequisites';

const KAFKA_SH = join(__dirname, '..', 'local/kafka/kafka.sh');

/** A running test broker. */
export interface TestBroker {
  /** `host:port`, the value for `KAFKA_BROKERS`. */
  readonly brokers: string;
  /** Stops the broker and deletes its state; safe to call twice. */
  stop(): void;
}

/** A TCP port nothing listens on right now, chosen by the kernel. */
async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/** Starts a single-node KRaft broker and resolves once its topics exist. */
export async function startTestBroker(env: NodeJS.ProcessEnv, log: (line: string) => void): Promise<TestBroker> {
  const state = mkdtempSync(join(tmpdir(), 'iot-dashboard-test-kafka-'));
  const port = await freePort();
  const brokerEnv = {
    ...env,
    KAFKA_STATE_DIR: state,
    KAFKA_PORT: String(port),
    KAFKA_CONTROLLER_PORT: String(await freePort()),
  };
  let stopped = false;
  const stop = (): void => {
    if (stopped) return;
    stopped = true;
    spawnSync('bash', [KAFKA_SH, 'stop'], { env: brokerEnv, stdio: ['ignore', 'ignore', 'inherit'] });
    rmSync(state, { recursive: true, force: true });
  };
  log(`starting a Kafka broker for this run on 127.0.0.1:${port}`);
  const started = spawnSync('bash', [KAFKA_SH, 'start'], { env: brokerEnv, stdio: ['ignore', 'inherit', 'inherit'] });
  if (started.status !== 0) {
    stop();
    throw new PrerequisiteError(`the test Kafka broker did not start (local/kafka/kafka.sh exit ${started.status ?? started.signal})`);
  }
  return { brokers: `127.0.0.1:${port}`, stop };
}
