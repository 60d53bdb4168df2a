/**
 * Sign-in end to end: Chromium, the dashboard, the local runtime and the real local OpenID
 * provider (authorization code + PKCE through its login page), for both demo users; then a token
 * lifetime of seconds, refreshed and carried to a renewed socket with no record lost or repeated.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import type { LocalRuntime } from '../../local/runtime';
import { launchChromium } from './helpers/browser';
import { logIn, startProviderProcess, type ProviderProcess } from './helpers/oidc';
import { deviceRecord } from '../support/records';
import { startRuntime } from './helpers/runtime';

jest.setTimeout(120_000);

let browser: Browser;

beforeAll(async () => {
  browser = await launchChromium();
});
afterAll(async () => {
  await browser?.close();
});

async function connected(page: Page): Promise<void> {
  await page.locator('[data-testid="connection-status"][data-status="connected"]').waitFor();
  await page.locator('[data-testid="subscription-item"][data-state="active"]').first().waitFor();
}

describe('signing in at the local provider', () => {
  let provider: ProviderProcess;
  let runtime: LocalRuntime;

  beforeAll(async () => {
    provider = await startProviderProcess();
    runtime = await startRuntime({ oidc: { issuer: provider.issuer, clientId: provider.clientId } });
  });
  afterAll(async () => {
    await runtime?.stop();
    await provider?.stop();
  });

  async function signedInPage(username: string): Promise<{ context: BrowserContext; page: Page }> {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(runtime.dashboardUrl);
    await logIn(page, provider.issuer, username, provider.password);
    await page.waitForURL(runtime.dashboardUrl);
    await connected(page);
    return { context, page };
  }

  test('the dashboard opens on the provider login page, and config.json holds no token', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(runtime.dashboardUrl);
    await page.waitForURL((url) => url.href.startsWith(provider.issuer));
    await expect(page.getByTestId('login-submit').isVisible()).resolves.toBe(true);
    const config = (await (await fetch(new URL('config.json', runtime.dashboardUrl))).json()) as Record<string, unknown>;
    expect(config).toEqual({ wsUrl: runtime.wsUrl, auth: { issuer: provider.issuer, clientId: provider.clientId, scopes: ['openid', 'profile'] } });
    await context.close();
  });

  test('a wrong password is refused on the login page', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(runtime.dashboardUrl);
    await logIn(page, provider.issuer, 'admin', 'not-the-password');
    await expect(page.getByTestId('login-error').textContent()).resolves.toBe('Wrong user or password.');
    expect(page.url().startsWith(provider.issuer)).toBe(true);
    await context.close();
  });

  test('admin signs in: the header names them with every site, data flows, and a reload stays signed in', async () => {
    const { context, page } = await signedInPage('admin');
    await expect(page.getByTestId('signed-in-user').textContent()).resolves.toBe('Administrator');
    await expect(page.getByTestId('signed-in-sites').textContent()).resolves.toBe('all sites');
    // No code, state or token is left in the address bar or history.
    expect(page.url()).toBe(runtime.dashboardUrl);
    await runtime.publish([{ topic: 'device-data', value: deviceRecord('pump-101', { metrics: { temperature: 70 } }) }]);
    await page.locator('[data-testid="device-row"][data-device-id="pump-101"]').waitFor();

    await page.reload();
    await connected(page);
    expect(page.url()).toBe(runtime.dashboardUrl);
    await expect(page.getByTestId('signed-in-user').textContent()).resolves.toBe('Administrator');
    await runtime.publish([{ topic: 'device-data', value: deviceRecord('pump-102', { metrics: { temperature: 71 } }) }]);
    await page.locator('[data-testid="device-row"][data-device-id="pump-102"]').waitFor();
    await context.close();
  });

  test('operator-a signs in: the header shows site plant-a, data flows, and sign-out leaves', async () => {
    const { context, page } = await signedInPage('operator-a');
    await expect(page.getByTestId('signed-in-user').textContent()).resolves.toBe('Operator A');
    await expect(page.getByTestId('signed-in-sites').textContent()).resolves.toBe('sites: plant-a');
    await runtime.publish([{ topic: 'device-data', value: deviceRecord('pump-201', { metrics: { temperature: 60 }, location: 'plant-a/line-2' }) }]);
    await page.locator('[data-testid="device-row"][data-device-id="pump-201"]').waitFor();
    await page.getByTestId('sign-out').click();
    await page.waitForURL((url) => url.href.startsWith(provider.issuer));
    expect(await page.evaluate(() => sessionStorage.getItem('iot-dashboard.session'))).toBeNull();
    await context.close();
  });
});

describe('a session the provider no longer knows', () => {
  let provider: ProviderProcess;
  let runtime: LocalRuntime;
  let keyDir: string;

  beforeAll(async () => {
    keyDir = await mkdtemp(join(tmpdir(), 'oidc-key-'));
    provider = await startProviderProcess(6, { keyFile: join(keyDir, 'key.json') });
    runtime = await startRuntime({ oidc: { issuer: provider.issuer, clientId: provider.clientId } });
  });
  afterAll(async () => {
    await runtime?.stop();
    await provider?.stop();
    await rm(keyDir, { recursive: true, force: true });
  });

  test('ends at the next refresh: the page disconnects, says so, and signs in again on request', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(runtime.dashboardUrl);
    await logIn(page, provider.issuer, 'admin', provider.password);
    await connected(page);

    // The provider restarts on the same address with the same key, and forgets every session and refresh token.
    const port = Number(new URL(provider.issuer).port);
    await provider.stop();
    provider = await startProviderProcess(6, { port, password: provider.password, keyFile: join(keyDir, 'key.json') });

    await page.getByTestId('auth-notice').waitFor({ timeout: 15_000 });
    await expect(page.getByTestId('auth-notice-text').textContent()).resolves.toMatch(/^Signed out: your sign-in has ended/);
    await expect(page.getByTestId('connection-status').getAttribute('data-status')).resolves.toBe('offline');
    await expect(page.getByTestId('signed-in-user').textContent()).resolves.toBe('');

    await page.getByTestId('sign-in-again').click();
    await logIn(page, provider.issuer, 'admin', provider.password);
    await page.waitForURL(runtime.dashboardUrl);
    await connected(page);
    await expect(page.getByTestId('signed-in-user').textContent()).resolves.toBe('Administrator');
    await context.close();
  });
});

describe('a token lifetime of seconds', () => {
  let provider: ProviderProcess;
  let runtime: LocalRuntime;

  beforeAll(async () => {
    provider = await startProviderProcess(6);
    runtime = await startRuntime({ oidc: { issuer: provider.issuer, clientId: provider.clientId } });
  });
  afterAll(async () => {
    await runtime?.stop();
    await provider?.stop();
  });

  test('the page refreshes its token, renews the socket with it, and loses or repeats no record', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(runtime.dashboardUrl);
    await logIn(page, provider.issuer, 'operator-a', provider.password);
    await connected(page);
    const tokenAt = () => page.evaluate(() => JSON.parse(sessionStorage.getItem('iot-dashboard.session') ?? '{}').idToken as string);
    const tokens = new Set([await tokenAt()]);
    const closedSockets = async () => Number(/websocket_connection_duration_seconds_count (\d+)/.exec(await runtime.metricsText())?.[1] ?? 0);
    const closedBefore = await closedSockets();

    // 20 s of readings, one every 250 ms, across three or more refreshes of a 6 s token.
    const sent = 80;
    for (let i = 0; i < sent; i++) {
      await runtime.publish([{ topic: 'device-data', value: deviceRecord('meter-001', { metrics: { sequence: i }, location: 'plant-a/line-9' }) }]);
      tokens.add(await tokenAt());
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    await page.waitForFunction((n) => Number(document.querySelector<HTMLElement>('[data-testid="record-rate"]')?.dataset.total) >= n, sent);
    // A moment for anything late (a duplicate) to arrive.
    await new Promise((resolve) => setTimeout(resolve, 1500));

    expect(tokens.size).toBeGreaterThanOrEqual(3);
    // Each refresh moved the connection to a new socket: the old ones were closed by the page.
    expect((await closedSockets()) - closedBefore).toBeGreaterThanOrEqual(2);
    await expect(page.getByTestId('record-rate').getAttribute('data-total')).resolves.toBe(String(sent));
    await expect(page.locator('[data-testid="metric-chart"][data-chart="sequence"]').getAttribute('data-points')).resolves.toBe(String(sent));
    await expect(page.getByTestId('connection-status').getAttribute('data-status')).resolves.toBe('connected');
    await expect(page.getByTestId('auth-notice').isHidden()).resolves.toBe(true);
    await context.close();
  });
});
