/**
 * `npm run token` as a script author uses it: a real child process prints a token, and the
 * running local runtime (same secret) accepts it with the subject and sites asked for; bad
 * arguments are refused with the usage; the local secret is created once, private, and reused.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { decodeToken } from '../../lambdas/core/token-claims';
import { devSecret } from '../../local/dev-secret';
import type { LocalRuntime } from '../../local/runtime';
import { startTestRuntime } from '../support/runtime';
import { TestClient } from '../support/ws-test-client';

const ROOT = join(__dirname, '../..');
const SECRET = 'a-script-secret-of-enough-length-0123456789abcdef';

function token(args: string[], env: NodeJS.ProcessEnv = { JWT_SECRET: SECRET }): Promise<{ code: number; stdout: string; stderr: string }> {
  return promisify(execFile)(process.execPath, [join(ROOT, 'node_modules/tsx/dist/cli.mjs'), join(ROOT, 'local/token.ts'), ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
  }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (error: { code: number; stdout: string; stderr: string }) => ({ code: error.code, stdout: error.stdout, stderr: error.stderr }),
  );
}

describe('npm run token', () => {
  let runtime: LocalRuntime;
  beforeAll(async () => {
    runtime = await startTestRuntime({ statusIntervalMs: 0, jwtSecret: SECRET });
  });
  afterAll(() => runtime?.stop());

  it('prints a token the running runtime accepts, with the subject, sites and lifetime asked for', async () => {
    const result = await token(['--sub', 'line-robot', '--sites', 'plant-a,plant-b', '--ttl', '15m']);
    expect(result.code).toBe(0);
    const printed = result.stdout.trim();
    const claims = decodeToken(printed)!.claims;
    expect(claims).toMatchObject({ sub: 'line-robot', sites: ['plant-a', 'plant-b'] });
    expect((claims.exp as number) - (claims.iat as number)).toBe(900);
    const client = await TestClient.connect(runtime.wsUrl, printed);
    client.send({ action: 'ping' });
    await client.until(() => client.frames.some((frame) => frame.type === 'pong'));
    await client.close();
  });

  it('gives a token another secret signed no way in', async () => {
    const result = await token(['--sub', 'x', '--sites', '*'], { JWT_SECRET: 'some-other-secret-of-enough-length-0123456789' });
    await expect(TestClient.connect(runtime.wsUrl, result.stdout.trim())).rejects.toMatchObject({ status: 403 });
  });

  it.each([
    [['--sites', 'a'], /--sub and --sites are required/],
    [['--sub', 'x'], /--sub and --sites are required/],
    [['--sub', 'x', '--sites', 'a', '--ttl', 'forever'], /--ttl must be a duration/],
    [['--sub', 'x', '--sites', 'a', '--bogus'], /Unknown option/],
  ])('refuses %j with the usage', async (args, message) => {
    const result = await token(args);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(message);
  });
});

describe('the local secret', () => {
  it('is created once, readable by its owner only, and then reused', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'auth-secret-'));
    const saved = process.env.JWT_SECRET;
    delete process.env.JWT_SECRET;
    try {
      const file = join(dir, 'nested', 'jwt-secret');
      expect(await devSecret({ create: false, file })).toBeUndefined();
      const first = await devSecret({ create: true, file });
      expect(first).toMatch(/^[0-9a-f]{64}$/);
      expect((await stat(file)).mode & 0o777).toBe(0o600);
      expect(await devSecret({ create: true, file })).toBe(first);
      expect((await readFile(file, 'utf8')).trim()).toBe(first);
    } finally {
      if (saved !== undefined) process.env.JWT_SECRET = saved;
      await rm(dir, { recursive: true, force: true });
    }
  });
});
