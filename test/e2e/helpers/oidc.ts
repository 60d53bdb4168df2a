/**
 * The local OpenID provider (local/oidc-provider.ts) for the browser tests. oidc-provider is
 * ESM-only and cannot load inside jest, so it runs as a real child process under tsx; the runtime
 * under test trusts it as an external issuer, as a deployment trusts Cognito.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { ROOT } from './runtime';

export interface ProviderProcess {
  readonly issuer: string;
  readonly clientId: string;
  /** Every demo user's password. */
  readonly password: string;
  stop(): Promise<void>;
}

/**
 * Starts the provider, on a free port unless `port` is given; ID tokens live `idTokenTtlSeconds`.
 * A restart on the same port with the same password is a provider that forgot every session.
 */
export async function startProviderProcess(
  idTokenTtlSeconds = 3600,
  { port = 0, password = randomBytes(9).toString('base64url'), keyFile }: { port?: number; password?: string; keyFile?: string } = {},
): Promise<ProviderProcess> {
  const child: ChildProcess = spawn(
    process.execPath,
    [join(ROOT, 'node_modules/tsx/dist/cli.mjs'), join(ROOT, 'local/oidc-provider.ts'), '--port', String(port), '--id-token-ttl', String(idTokenTtlSeconds), ...(keyFile ? ['--key-file', keyFile] : [])],
    { cwd: ROOT, env: { ...process.env, DEMO_PASSWORD: password }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const started = await new Promise<{ issuer: string; clientId: string }>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const line = out.split('\n').find((candidate) => candidate.startsWith('{'));
      if (line) resolve(JSON.parse(line) as { issuer: string; clientId: string });
    });
    child.once('exit', (code) => reject(new Error(`oidc-provider exited with ${code}: ${stderr}`)));
  });
  return {
    ...started,
    password,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

/** Goes through the provider's real login page, as a user would. */
export async function logIn(page: Page, issuer: string, username: string, password: string): Promise<void> {
  await page.waitForURL((url) => url.href.startsWith(issuer));
  await page.getByTestId('login-username').fill(username);
  await page.getByTestId('login-password').fill(password);
  await page.getByTestId('login-submit').click();
}
