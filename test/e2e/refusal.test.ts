/**
 * A refused connection, as the operator sees it: for each fault of a token the server refuses the
 * handshake (the real local gateway and authorizer), and the page stops retrying and says why.
 * A network failure is not taken for a refusal. The issuer here is a key set the test holds, so
 * that tokens fail for exactly one reason each; the token arrives as a script's `?token=`.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT, exportJWK, generateKeyPair, type JWTPayload, type KeyLike } from 'jose';
import type { Browser, Page } from 'playwright-core';
import type { LocalRuntime } from '../../local/runtime';
import { launchChromium } from './helpers/browser';
import { startRuntime } from './helpers/runtime';

jest.setTimeout(90_000);

const CLIENT_ID = 'dashboard';
let issuer: string;
let issuerServer: http.Server;
let key: KeyLike;
let otherKey: KeyLike;
let runtime: LocalRuntime;
let browser: Browser;

beforeAll(async () => {
  const pair = await generateKeyPair('RS256');
  key = pair.privateKey;
  otherKey = (await generateKeyPair('RS256')).privateKey;
  const jwk = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
  issuerServer = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(req.url === '/jwks' ? { keys: [jwk] } : { issuer, jwks_uri: `${issuer}/jwks` }));
  });
  await new Promise<void>((resolve) => issuerServer.listen(0, '127.0.0.1', resolve));
  issuer = `http://127.0.0.1:${(issuerServer.address() as AddressInfo).port}`;
  runtime = await startRuntime({ oidc: { issuer, clientId: CLIENT_ID } });
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await runtime?.stop();
  await new Promise((resolve) => issuerServer?.close(resolve));
});

function idToken(overrides: JWTPayload = {}, signWith: KeyLike = key): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ sub: 'operator-7', name: 'Operator Seven', sites: ['plant-a'], iss: issuer, aud: CLIENT_ID, iat: now, exp: now + 600, ...overrides })
    .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
    .sign(signWith);
}

const b64 = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');

async function openWithToken(token: string): Promise<Page> {
  const page = await browser.newPage();
  await page.goto(`${runtime.dashboardUrl}?token=${encodeURIComponent(token)}`);
  return page;
}

async function refusal(page: Page): Promise<string> {
  await page.locator('[data-testid="connection-status"][data-status="refused"]').waitFor();
  return (await page.getByTestId('auth-notice-text').textContent()) ?? '';
}

test('a good token connects, names its user, and leaves the address bar at once', async () => {
  const page = await openWithToken(await idToken());
  await page.locator('[data-testid="connection-status"][data-status="connected"]').waitFor();
  expect(page.url()).toBe(runtime.dashboardUrl);
  await expect(page.getByTestId('signed-in-user').textContent()).resolves.toBe('Operator Seven');
  await page.close();
});

const cases: [string, () => Promise<string>, RegExp][] = [
  ['that has expired', () => idToken({ iat: Math.floor(Date.now() / 1000) - 7200, exp: Math.floor(Date.now() / 1000) - 3600 }), /has expired/],
  ['signed with another key', () => idToken({}, otherKey), /signed with a key this server does not trust/],
  ['with alg none', async () => `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: 'admin', sites: ['*'], iss: issuer, aud: CLIENT_ID, exp: Math.floor(Date.now() / 1000) + 600 })}.`, /not signed/],
  ['of another issuer', () => idToken({ iss: 'https://someone-else.example' }), /another issuer/],
  ['for another client', () => idToken({ aud: 'another-client' }), /another client/],
  ['of the wrong use (access)', () => idToken({ token_use: 'access' }), /access token/],
];

test.each(cases)('a token %s is refused, and the page says so instead of retrying', async (_name, token, reason) => {
  const page = await openWithToken(await token());
  await expect(refusal(page)).resolves.toMatch(reason);
  expect(page.url()).toBe(runtime.dashboardUrl);
  // No retry follows a refusal: the state stays, and no further probe of the host is made.
  const requests = await page.evaluate(() => performance.getEntriesByType('resource').length);
  await page.waitForTimeout(1500);
  await expect(page.getByTestId('connection-status').getAttribute('data-status')).resolves.toBe('refused');
  expect(await page.evaluate(() => performance.getEntriesByType('resource').length)).toBe(requests);
  await page.close();
});

test('no token at all (a deployment whose config.json names no issuer) is refused with that reason', async () => {
  const page = await browser.newPage();
  await page.route('**/config.json', (route) => route.fulfill({ json: { wsUrl: runtime.wsUrl } }));
  await page.goto(runtime.dashboardUrl);
  await expect(refusal(page)).resolves.toMatch(/no token/);
  await page.close();
});

test('a network failure is retried, not taken for a refusal', async () => {
  const page = await openWithToken(await idToken());
  await page.locator('[data-testid="connection-status"][data-status="connected"]').waitFor();
  await runtime.gateway.stop();
  try {
    await page.locator('[data-testid="connection-status"][data-status="reconnecting"]').waitFor();
    await page.waitForTimeout(3000);
    await expect(page.getByTestId('connection-status').getAttribute('data-status')).resolves.toBe('reconnecting');
    await expect(page.getByTestId('auth-notice').isHidden()).resolves.toBe(true);
  } finally {
    await runtime.gateway.start();
  }
  await page.locator('[data-testid="connection-status"][data-status="connected"]').waitFor({ timeout: 40_000 });
  await page.close();
});
