/**
 * The local OpenID provider tried as an attacker would, over plain HTTP (the browser tests go
 * through it as a user): no PKCE, a foreign redirect, wrong and marked-up credentials, an oversized
 * form, a replayed login; and a correct login ends in a code for the loopback redirect.
 */
import { createHash, randomBytes } from 'node:crypto';
import { startProviderProcess, type ProviderProcess } from '../e2e/helpers/oidc';

let provider: ProviderProcess;
beforeAll(async () => {
  provider = await startProviderProcess();
});
afterAll(() => provider?.stop());

const verifier = randomBytes(32).toString('base64url');
const challenge = createHash('sha256').update(verifier).digest('base64url');

function authorizeUrl(overrides: Record<string, string | undefined> = {}): string {
  const params: Record<string, string | undefined> = {
    client_id: provider.clientId,
    redirect_uri: 'http://127.0.0.1:5999/',
    response_type: 'code',
    scope: 'openid profile',
    state: 'st',
    nonce: 'no',
    code_challenge: challenge,
    code_challenge_method: 'S256',
    ...overrides,
  };
  const url = new URL('/auth', provider.issuer);
  for (const [name, value] of Object.entries(params)) if (value !== undefined) url.searchParams.set(name, value);
  return url.href;
}

/** Starts a sign-in; returns the login page's path and the cookies that go with it. */
async function startLogin(): Promise<{ path: string; cookies: string }> {
  const response = await fetch(authorizeUrl(), { redirect: 'manual' });
  expect(response.status).toBe(303);
  const cookies = response.headers.getSetCookie().map((cookie) => cookie.split(';')[0]).join('; ');
  return { path: response.headers.get('location')!, cookies };
}

function submit(path: string, cookies: string, body: string) {
  return fetch(new URL(`${path}/login`, provider.issuer), {
    method: 'POST',
    redirect: 'manual',
    headers: { cookie: cookies, 'content-type': 'application/x-www-form-urlencoded' },
    body,
  });
}

it('refuses an authorization request without PKCE, and never redirects to a foreign site', async () => {
  const noPkce = await fetch(authorizeUrl({ code_challenge: undefined, code_challenge_method: undefined }), { redirect: 'manual' });
  expect(noPkce.headers.get('location')).toMatch(/^http:\/\/127\.0\.0\.1:5999\/\?error=invalid_request/);
  const foreign = await fetch(authorizeUrl({ redirect_uri: 'https://evil.example/' }), { redirect: 'manual' });
  expect(foreign.status).toBe(400);
  expect(foreign.headers.get('location')).toBeNull();
});

it('refuses a wrong password, an unknown user, and echoes markup only escaped', async () => {
  const { path, cookies } = await startLogin();
  const page = await fetch(new URL(path, provider.issuer), { headers: { cookie: cookies } });
  expect(page.status).toBe(200);
  expect(await page.text()).toContain('name="password"');
  const wrong = await submit(path, cookies, `username=admin&password=${encodeURIComponent(provider.password + 'x')}`);
  expect(wrong.status).toBe(401);
  const unknown = await submit(path, cookies, `username=${encodeURIComponent('<script>alert(1)</script>')}&password=${encodeURIComponent(provider.password)}`);
  expect(unknown.status).toBe(401);
  const html = await unknown.text();
  expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
  expect(html).not.toContain('<script>alert');
});

it('refuses an oversized form and a login without the interaction cookie', async () => {
  const { path, cookies } = await startLogin();
  const big = await submit(path, cookies, `username=admin&password=${'x'.repeat(10_000)}`);
  expect(big.status).toBe(400);
  const noCookie = await submit(path, '', `username=admin&password=${encodeURIComponent(provider.password)}`);
  expect(noCookie.status).toBe(400);
});

it('logs a demo user in once: the code goes to the loopback redirect, and the login cannot be replayed', async () => {
  const { path, cookies } = await startLogin();
  const ok = await submit(path, cookies, `username=operator-a&password=${encodeURIComponent(provider.password)}`);
  expect(ok.status).toBe(303);
  const resume = await fetch(new URL(ok.headers.get('location')!, provider.issuer), {
    redirect: 'manual',
    headers: { cookie: [cookies, ...ok.headers.getSetCookie().map((c) => c.split(';')[0])].join('; ') },
  });
  expect(resume.headers.get('location')).toMatch(/^http:\/\/127\.0\.0\.1:5999\/\?code=[\w-]+&state=st&iss=/);
  const replay = await submit(path, cookies, `username=admin&password=${encodeURIComponent(provider.password)}`);
  expect(replay.status).toBe(400);
});
