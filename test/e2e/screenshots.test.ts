/**
 * The dashboard fed by the runtime's device simulator, at phone, tablet and desktop widths:
 * simulated critical alerts reach the alert panel, the layout fits each width, and a full-page
 * screenshot is taken at each. `npm run screenshots` sets SCREENSHOTS_DIR=docs/screenshots to keep
 * them (the README shows them); `npm test` only checks them, so it leaves the work tree unchanged.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import type { LocalRuntime } from '../../local/runtime';
import { launchChromium } from './helpers/browser';
import { logIn, startProviderProcess, type ProviderProcess } from './helpers/oidc';
import { ROOT, startRuntime } from './helpers/runtime';

jest.setTimeout(90_000);

/** Where to write the screenshots, or nowhere. */
const SHOTS = process.env.SCREENSHOTS_DIR ? join(ROOT, process.env.SCREENSHOTS_DIR) : undefined;
const WIDTHS = [
  { name: 'phone', width: 375, height: 812 },
  { name: 'tablet', width: 768, height: 1024 },
  { name: 'desktop', width: 1440, height: 900 },
] as const;

let provider: ProviderProcess;
let runtime: LocalRuntime;
let browser: Browser;
let page: Page;

beforeAll(async () => {
  // Spikes are made frequent so that critical alerts come within seconds.
  // Signed in as the demo admin at the local provider, so the screenshots show the signed-in header.
  provider = await startProviderProcess();
  runtime = await startRuntime({
    simulator: { devices: 20, readingsPerSecond: 40, spikeProbability: 0.01, seed: 7 },
    statusIntervalMs: 1000,
    oidc: { issuer: provider.issuer, clientId: provider.clientId },
  });
  browser = await launchChromium();
  page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
  await page.goto(runtime.dashboardUrl);
  await logIn(page, provider.issuer, 'admin', provider.password);
  await page.waitForURL(runtime.dashboardUrl);
});

afterAll(async () => {
  await browser?.close();
  await runtime?.stop();
  await provider?.stop();
});

test('a critical alert from the simulator appears in the alert panel', async () => {
  await page.locator('[data-testid="connection-status"][data-status="connected"]').waitFor();
  const critical = page.locator('[data-testid="alert-item"][data-level="critical"]').first();
  await critical.waitFor({ timeout: 30_000 });
  await expect(critical.textContent()).resolves.toMatch(/above/);
  await page.getByTestId('critical-banner').waitFor();
});

test('the simulated fleet fills the charts, list and summaries', async () => {
  await page.waitForFunction(() => {
    const charts = document.querySelectorAll<HTMLElement>('[data-testid="metric-chart"]');
    return charts.length >= 6 && [...charts].every((chart) => Number(chart.dataset.points) >= 40);
  });
  await expect(page.getByTestId('device-row').count()).resolves.toBe(20);
  await expect(page.getByTestId('status-chart').getByTestId('chart-summary').textContent()).resolves.toBe('20 devices');
  await expect(page.getByTestId('aggregate-chart').getByTestId('chart-summary').textContent()).resolves.toMatch(/^mean temperature · 4 types$/);
});

test('shows the live connection count from system_status frames', async () => {
  await page.getByTestId('system-connections').filter({ hasText: /^1 connection$/ }).waitFor({ timeout: 5000 });
});

test.each(WIDTHS)('fits the $name width ($width px) and is screenshotted at it', async ({ width, height }) => {
  await page.setViewportSize({ width, height });
  // Let Chart.js observe the resize and redraw at the new size.
  await page.waitForFunction((w) => document.documentElement.clientWidth === w, width);
  await page.evaluate(() => new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve))));
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  expect(overflow).toBe(0);
  // Every card fits inside the viewport horizontally.
  const widest = await page.evaluate(() =>
    Math.max(...[...document.querySelectorAll('.card')].map((card) => card.getBoundingClientRect().right)),
  );
  expect(widest).toBeLessThanOrEqual(width);
  await expect(page.getByTestId('connection-status').isVisible()).resolves.toBe(true);
  await expect(page.getByTestId('alert-panel').isVisible()).resolves.toBe(true);
  await expect(page.getByTestId('signed-in-user').textContent()).resolves.toBe('Administrator');
  const png = await page.screenshot({ fullPage: true });
  // A PNG's IHDR chunk holds the image width at byte 16: the shot is of the page at this width.
  expect(png.subarray(1, 4).toString('latin1')).toBe('PNG');
  expect(png.readUInt32BE(16)).toBe(width);
  if (SHOTS) {
    await mkdir(SHOTS, { recursive: true });
    await writeFile(join(SHOTS, `dashboard-${width}.png`), png);
  }
});
