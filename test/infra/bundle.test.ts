/**
 * Bundles every Lambda entry with the project's esbuild and the settings NodejsFunction uses
 * (infra/lambda-bundling.ts), then loads each bundle in a plain Node process, outside the repo
 * and without node_modules, as the Lambda runtime would: it must load and export `handler`.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { build } from 'esbuild';
import { ENV } from '../../lambdas/config/env-names';
import { ESBUILD_SETTINGS, HANDLER_NAMES, handlerEntry } from '../../infra/lambda-bundling';

const outDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lambda-bundles-'));
afterAll(() => fs.rmSync(outDir, { recursive: true, force: true }));

/** Environment a deployed function would have; values are placeholders, nothing is called. */
const lambdaEnv: NodeJS.ProcessEnv = {
  PATH: process.env.PATH,
  AWS_REGION: 'eu-west-1',
  AWS_ACCESS_KEY_ID: 'test',
  AWS_SECRET_ACCESS_KEY: 'test',
  POWERTOOLS_SERVICE_NAME: 'iot-live-dashboard',
  POWERTOOLS_METRICS_NAMESPACE: 'IotLiveDashboard',
  LOG_LEVEL: 'INFO',
  [ENV.connectionsTable]: 'connections',
  [ENV.subscriptionsTable]: 'subscriptions',
  [ENV.metricsTable]: 'metrics',
  [ENV.callbackUrl]: 'https://abc123.execute-api.eu-west-1.amazonaws.com/live',
  [ENV.authMode]: 'hs256',
  [ENV.jwtSecretArn]: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:jwt-AbCdEf',
  [ENV.metricsTokenSecretArn]: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:metrics-AbCdEf',
};

describe('Lambda bundles', () => {
  it('covers every handler entry the stack deploys', () => {
    for (const name of HANDLER_NAMES) expect(fs.existsSync(handlerEntry(name))).toBe(true);
  });

  it.each([...HANDLER_NAMES])('%s bundles with esbuild and loads in plain Node exporting handler()', async (name) => {
    const outfile = path.join(outDir, name, 'index.js');
    const result = await build({
      entryPoints: [handlerEntry(name)],
      outfile,
      bundle: true,
      platform: 'node',
      format: 'cjs',
      target: ESBUILD_SETTINGS.target,
      minify: ESBUILD_SETTINGS.minify,
      sourcemap: ESBUILD_SETTINGS.sourceMap,
      sourcesContent: ESBUILD_SETTINGS.sourcesContent,
      external: [...ESBUILD_SETTINGS.externalModules],
      logLevel: 'silent',
    });
    expect(result.errors).toEqual([]);

    const probe =
      'const m = require(process.argv[1]);' +
      'process.stdout.write(JSON.stringify({ handler: typeof m.handler, exports: Object.keys(m) }));';
    const out = execFileSync(process.execPath, ['--enable-source-maps', '-e', probe, outfile], {
      cwd: outDir, // no node_modules above the bundle: everything it needs must be inside it
      env: lambdaEnv,
      encoding: 'utf8',
      timeout: 20_000,
    });
    const loaded = JSON.parse(out.trim().split('\n').pop()!) as { handler: string; exports: string[] };
    expect(loaded.handler).toBe('function');
  });
});
