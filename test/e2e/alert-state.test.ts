/**
 * Alert state shared by operators, and the latest values on subscribe, in two real browsers
 * signed in as different users (HS256 tokens minted for each, handed to the page as its
 * config.json would) against the local runtime.
 */
import type { Browser, Page } from 'playwright-core';
import { mintToken } from '../../lambdas/core/auth';
import type { LocalRuntime } from '../../local/runtime';
import { launchChromium } from './helpers/browser';
import { alertRecord as alert } from '../support/records';
import { startRuntime } from './helpers/runtime';

jest.setTimeout(90_000);

const SECRET = 'e2e-alert-state-secret-0123456789abcdef';
let browser: Browser;

beforeAll(async () => {
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
});

/** Opens the dashboard as `sub`, with its subscription to everything confirmed. */
async function openAs(runtime: LocalRuntime, sub: string, sites: string[]): Promise<{ page: Page; errors: string[] }> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const token = await mintToken(SECRET, { sub, sites });
  await context.route('**/config.json', (route) => route.fulfill({ json: { wsUrl: runtime.wsUrl, token } }));
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(String(error)));
  await page.goto(runtime.dashboardUrl);
  await page.locator('[data-testid="subscription-item"][data-state="active"]').first().waitFor();
  return { page, errors };
}

const alertItem = (page: Page, alertId: string) => page.locator(`[data-testid="alert-item"][data-alert-id="${alertId}"]`);

describe('two operators', () => {
  let runtime: LocalRuntime;
  beforeAll(async () => {
    runtime = await startRuntime({ jwtSecret: SECRET, statusIntervalMs: 0 });
  });
  afterAll(() => runtime?.stop());

  test('one acknowledges a critical alert; the other sees who took it within a second, and its alarm stops', async () => {
    const alice = await openAs(runtime, 'alice', ['*']);
    const bob = await openAs(runtime, 'bob', ['plant-a']);
    await bob.page.getByTestId('sound-toggle').check();
    const critical = alert('pump-001', { level: 'critical' });
    await runtime.publish([{ topic: 'alerts', value: critical }]);
    for (const { page } of [alice, bob]) await alertItem(page, critical.alertId).and(page.locator('[data-state="open"]')).waitFor();
    await bob.page.locator('[data-testid="alert-panel"][data-alarm="on"]').waitFor();

    const clicked = Date.now();
    await alertItem(alice.page, critical.alertId).getByTestId('alert-ack').click();
    const seen = alertItem(bob.page, critical.alertId).and(bob.page.locator('[data-state="acknowledged"]'));
    await seen.waitFor();
    const elapsed = Date.now() - clicked;
    expect(elapsed).toBeLessThan(1000);
    await expect(seen.getByTestId('alert-state').textContent()).resolves.toMatch(/^acknowledged by alice at \d\d:\d\d:\d\d$/);
    await bob.page.locator('[data-testid="alert-panel"][data-alarm="off"]').waitFor();
    await bob.page.getByTestId('critical-banner').waitFor({ state: 'hidden' });

    // "Back to normal" resolves it in both pages, and the state filter sorts it out.
    await runtime.publish([{ topic: 'alerts', value: alert('pump-001', { level: 'info', message: 'back to normal', resolves: critical.alertId }) }]);
    await alertItem(alice.page, critical.alertId).and(alice.page.locator('[data-state="resolved"]')).waitFor();
    await alice.page.getByTestId('alert-state-filter').selectOption('open');
    await alertItem(alice.page, critical.alertId).waitFor({ state: 'detached' });
    await alice.page.getByTestId('alert-state-filter').selectOption('resolved');
    await alertItem(alice.page, critical.alertId).waitFor();
    expect([...alice.errors, ...bob.errors]).toEqual([]);
  });
});

describe('a new dashboard', () => {
  let runtime: LocalRuntime;
  beforeAll(async () => {
    runtime = await startRuntime({ jwtSecret: SECRET, statusIntervalMs: 0, simulator: { devices: 50, readingsPerSecond: 10 } });
    // Every simulated device has reported once; live, the next reading of each is 5 s away.
    while (runtime.totals.records < 50) await new Promise((resolve) => setTimeout(resolve, 100));
  });
  afterAll(() => runtime?.stop());

  test('opens filled: every simulated device listed within a second of subscribed', async () => {
    const { page, errors } = await openAs(runtime, 'carol', ['*']);
    const subscribed = Date.now();
    await page.getByTestId('device-count').filter({ hasText: /^50 devices$/ }).waitFor();
    expect(Date.now() - subscribed).toBeLessThan(1000);
    await page.getByTestId('waiting').waitFor({ state: 'hidden' });
    expect(errors).toEqual([]);
  });
});
