/**
 * Resume in Chromium (issue 20, DESIGN.md "Resume"): the dashboard on the local runtime with
 * simulated devices loses its network for 20 s (a TCP proxy between the page and the WebSocket
 * port resets the open connection and every reconnect), then comes back. The charts must hold
 * every reading published during the cut, and an alert that opened and resolved during the cut
 * must be in the alert panel, resolved.
 */
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page, WebSocket } from 'playwright-core';
import { subscribeFrameSchema, type DeviceRecord } from '../../lambdas/core/protocol';
import type { LocalRuntime, LocalRuntimeOptions } from '../../local/runtime';
import { alertRecord, deviceRecord } from '../support/records';
import { launchChromium } from './helpers/browser';
import { startRuntime } from './helpers/runtime';
import { startTcpProxy, type TcpProxy } from './helpers/tcp-proxy';

jest.setTimeout(180_000);

const CUT_MS = 20_000;
/** The probe device whose readings the test publishes itself, so it knows each one. */
const PROBE = 'pump-900';
/** Simulated devices and their readings a second in all: each device reads once a second. */
const DEVICES = 6;

/** The runtime, the proxy in front of its WebSocket port, and the dashboard open through it. */
interface Harness {
  runtime: LocalRuntime;
  proxy: TcpProxy;
  context: BrowserContext;
  page: Page;
  /** Errors in the page, with when they came. */
  errors: { at: number; text: string }[];
  /** Every WebSocket the page opened, with the frames it sent and received. */
  sockets: { socket: WebSocket; sent: string[]; received: string[] }[];
}

let browser: Browser;
const harnesses: Harness[] = [];
/** Stops the probe's publisher, also when a test fails half-way. */
let stopProbe: (() => Promise<void>) | undefined;

beforeAll(async () => {
  browser = await launchChromium();
});

afterAll(async () => {
  await stopProbe?.();
  for (const { context, proxy, runtime } of harnesses) {
    await context.close();
    await proxy.stop();
    await runtime.stop();
  }
  await browser?.close();
});

/** Starts a runtime with simulated devices and opens the dashboard, its WebSocket through a proxy. */
async function openBehindProxy(options: Partial<LocalRuntimeOptions> = {}): Promise<Harness> {
  const runtime = await startRuntime({ simulator: { devices: DEVICES, readingsPerSecond: DEVICES, offlineProbability: 0 }, ...options });
  const ws = new URL(runtime.wsUrl);
  const proxy = await startTcpProxy({ host: ws.hostname, port: Number(ws.port) });
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 }, acceptDownloads: true });
  const page = await context.newPage();
  const harness: Harness = { runtime, proxy, context, page, errors: [], sockets: [] };
  harnesses.push(harness);
  // The page connects to what config.json names: the proxy, in front of the runtime's WebSocket port.
  await page.route('**/config.json', async (route) => {
    const response = await route.fetch();
    const config = (await response.json()) as { wsUrl: string };
    await route.fulfill({ response, json: { ...config, wsUrl: proxy.through(config.wsUrl) } });
  });
  page.on('pageerror', (error) => harness.errors.push({ at: Date.now(), text: String(error) }));
  page.on('console', (message) => {
    if (message.type() === 'error') harness.errors.push({ at: Date.now(), text: message.text() });
  });
  page.on('websocket', (socket) => {
    const entry = { socket, sent: [] as string[], received: [] as string[] };
    harness.sockets.push(entry);
    socket.on('framesent', (frame) => entry.sent.push(String(frame.payload)));
    socket.on('framereceived', (frame) => entry.received.push(String(frame.payload)));
  });
  await page.goto(runtime.dashboardUrl);
  await status(page, 'connected').waitFor();
  await page.locator('[data-testid="subscription-item"][data-state="active"]').waitFor();
  return harness;
}

/** The frames of the socket open last, once it has received a `resumed`. */
async function resumedFrame(harness: Harness): Promise<{ replayed: number; tooFarBehind?: true }> {
  const socket = harness.sockets[harness.sockets.length - 1]!;
  const resumed = () => socket.received.find((text) => text.includes('"resumed"'));
  await waitUntil('a resumed frame on the new socket', () => resumed() !== undefined, 15_000);
  return JSON.parse(resumed()!) as { replayed: number; tooFarBehind?: true };
}

/** Errors other than the browser's own report of each reconnect the cut made fail. */
function unexpectedErrors(harness: Harness, from: number, to: number): string[] {
  const ofTheCut = (error: { at: number; text: string }) => error.at >= from && error.at <= to && /net::ERR_(CONNECTION_RESET|SOCKET_NOT_CONNECTED)/.test(error.text);
  expect(harness.errors.filter(ofTheCut).length).toBeGreaterThan(0);
  return harness.errors.filter((error) => !ofTheCut(error)).map((error) => error.text);
}

const status = (page: Page, value: string) => page.locator(`[data-testid="connection-status"][data-status="${value}"]`);

/** Publishes a reading of the probe device every 200 ms until stopped; returns what it published. */
function publishProbe(runtime: LocalRuntime): { published: DeviceRecord[]; stop: () => Promise<void> } {
  const published: DeviceRecord[] = [];
  let running = true;
  const loop = (async () => {
    for (let n = 0; running; n++) {
      const record = deviceRecord(PROBE, { location: 'plant-a/line-1', metrics: { temperature: 60 + (n % 50) / 2 } });
      await runtime.publish([{ topic: 'device-data', key: PROBE, value: record }]);
      published.push(record);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  })();
  return {
    published,
    stop: async () => {
      running = false;
      await loop;
    },
  };
}

/** Resolves once `done()` holds, checking every 50 ms; fails after `timeoutMs`. */
async function waitUntil(what: string, done: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The temperature chart's plotted points, read from its CSV export: per device, [epoch ms, value]. */
async function plotted(page: Page): Promise<Map<string, [number, number][]>> {
  const chart = page.locator('[data-testid="metric-chart"][data-chart="temperature"]');
  const [download] = await Promise.all([page.waitForEvent('download'), chart.getByTestId('export-csv').click()]);
  const [, ...rows] = (await readFile(await download.path(), 'utf8')).trim().split('\r\n');
  const byDevice = new Map<string, [number, number][]>();
  for (const row of rows) {
    const [, epoch, device, value] = row.split(',');
    let points = byDevice.get(device!);
    if (!points) byDevice.set(device!, (points = []));
    points.push([Number(epoch), Number(value)]);
  }
  return byDevice;
}

test('after a 20 s cut the chart has no gap and an alert that opened and resolved meanwhile is in the panel, resolved', async () => {
  const harness = await openBehindProxy();
  const { runtime, proxy, page, sockets } = harness;
  const probe = publishProbe(runtime);
  stopProbe = probe.stop;
  // Live for a few seconds: the page has heard from every partition the feed writes to.
  await page.locator('[data-testid="device-row"]').nth(DEVICES).waitFor();
  await page.locator(`[data-testid="device-row"][data-device-id="${PROBE}"]`).waitFor();
  await page.waitForTimeout(3000);
  expect(sockets).toHaveLength(1);

  const cutAt = Date.now();
  proxy.cut();
  await status(page, 'reconnecting').waitFor();
  const alert = alertRecord(PROBE, { level: 'critical', message: 'temperature above 90 (during the cut)' });
  await page.waitForTimeout(CUT_MS / 4);
  await runtime.publish([{ topic: 'alerts', key: PROBE, value: alert }]);
  await page.waitForTimeout(CUT_MS / 4);
  const resolution = alertRecord(PROBE, { level: 'info', message: 'temperature back to normal (during the cut)', resolves: alert.alertId, value: 70 });
  await runtime.publish([{ topic: 'alerts', key: PROBE, value: resolution }]);
  await page.waitForTimeout(cutAt + CUT_MS - Date.now());
  // The page tried to reconnect and every try failed: the cut was real.
  expect(proxy.refused).toBeGreaterThan(0);
  await expect(page.getByTestId('connection-status').getAttribute('data-status')).resolves.toBe('reconnecting');
  expect(sockets[0]!.socket.isClosed()).toBe(true);
  // The probe's readings end with the cut, so its series stays inside the chart's window of points.
  await probe.stop();
  const restoredAt = Date.now();
  proxy.restore();

  // Backoff may have the next try up to 30 s away (full jitter, capped).
  await status(page, 'connected').waitFor({ timeout: 45_000 });
  const reconnectedAt = Date.now();
  const reconnected = sockets[sockets.length - 1]!;
  const resumed = await resumedFrame(harness);
  // A last reading with a value of its own: once the page shows it, everything before it is in.
  const last = deviceRecord(PROBE, { metrics: { temperature: 77.7 } });
  await runtime.publish([{ topic: 'device-data', key: PROBE, value: last }]);
  probe.published.push(last);
  const duringCut = probe.published.filter((record) => record.timestamp >= cutAt && record.timestamp < restoredAt);
  expect(duringCut.length).toBeGreaterThan(CUT_MS / 250);

  // What went over the wire: the re-subscribe named offsets, and the server replayed from them.
  const subscribe = subscribeFrameSchema.parse(JSON.parse(reconnected.sent.find((text) => text.includes('"subscribe"'))!));
  expect(subscribe.resume?.size).toBeGreaterThan(0);
  expect(resumed.tooFarBehind).toBeUndefined();
  expect(resumed.replayed).toBeGreaterThan(duringCut.length);

  // Every reading of the probe, before and during the cut, is on the chart.
  await page.locator(`[data-testid="device-row"][data-device-id="${PROBE}"]`).filter({ hasText: 'temperature 77.7' }).waitFor();
  // A reconnect can come within a second of the restore, before a simulated device reads again:
  // live readings for a few seconds more, so every device has points after the cut ended.
  await page.waitForTimeout(Math.max(0, reconnectedAt + 3000 - Date.now()));
  const plottedAt = Date.now();
  const points = await plotted(page);
  const probePoints = new Map(points.get(PROBE)!.map(([x, y]) => [x, y]));
  const missing = probe.published.filter((record) => probePoints.get(record.timestamp) !== record.metrics.temperature);
  expect(missing.map((record) => new Date(record.timestamp).toISOString())).toEqual([]);

  // The simulated devices read once a second each: from before the cut, through the replay, to the
  // live readings after the reconnect, no two points of one are far apart.
  const simulated = [...points.keys()].filter((device) => device !== PROBE);
  expect(simulated.length).toBeGreaterThanOrEqual(2);
  const widestGaps = simulated.map((device) => {
    const xs = points.get(device)!.map(([x]) => x).filter((x) => x >= cutAt - 3000 && x <= plottedAt);
    expect(xs[0]).toBeLessThan(cutAt);
    expect(xs[xs.length - 1]).toBeGreaterThan(restoredAt);
    return { device, widestMs: Math.max(...xs.slice(1).map((x, i) => x - xs[i]!)) };
  });
  expect(widestGaps.filter((gap) => gap.widestMs >= 2500)).toEqual([]);

  // The alert that opened and resolved during the cut is in the panel, resolved, with its resolution.
  const item = page.locator(`[data-testid="alert-item"][data-alert-id="${alert.alertId}"]`);
  await item.waitFor();
  await expect(item.getAttribute('data-state')).resolves.toBe('resolved');
  await expect(item.getByTestId('alert-state').textContent()).resolves.toMatch(/^resolved at /);
  await expect(page.locator(`[data-testid="alert-item"][data-alert-id="${resolution.alertId}"]`).getAttribute('data-state')).resolves.toBe('resolved');
  await expect(page.getByTestId('critical-banner').isHidden()).resolves.toBe(true);
  await expect(page.getByTestId('resume-notice').isHidden()).resolves.toBe(true);

  const shot = join(tmpdir(), `resume-${process.pid}.png`);
  await page.screenshot({ path: shot, fullPage: true });
  console.log(`resume: screenshot ${shot}; ${duringCut.length} probe readings during the cut, ${resumed.replayed} records replayed, ${proxy.refused} reconnects refused`);
  expect(unexpectedErrors(harness, cutAt, reconnectedAt)).toEqual([]);
});

test('past the recovery window the page says it missed what was published and shows the current state', async () => {
  // A window of 3 s stands for the contract's 2 minutes, so that a 6 s cut is past it.
  const harness = await openBehindProxy({ resumeWindow: { ms: 3000, records: 10_000 } });
  const { proxy, page } = harness;
  await page.locator('[data-testid="device-row"]').nth(DEVICES - 1).waitFor();
  const cutAt = Date.now();
  proxy.cut();
  await status(page, 'reconnecting').waitFor();
  await page.waitForTimeout(6000);
  proxy.restore();
  await status(page, 'connected').waitFor({ timeout: 45_000 });
  const reconnectedAt = Date.now();
  await expect(resumedFrame(harness)).resolves.toEqual({ type: 'resumed', id: 's1', replayed: 0, tooFarBehind: true });
  const notice = page.getByTestId('resume-notice');
  await notice.waitFor();
  await expect(notice.textContent()).resolves.toContain('Missed more than 2 minutes while disconnected; showing current state');
  // The snapshot that follows fills the page as for a first subscribe, and live records flow again.
  const before = Number(await page.getByTestId('record-rate').getAttribute('data-total'));
  await page.locator(`[data-testid="record-rate"]:not([data-total="${before}"])`).waitFor();
  await page.screenshot({ path: join(tmpdir(), `resume-too-far-${process.pid}.png`) });
  await notice.getByTestId('resume-notice-dismiss').click();
  await notice.waitFor({ state: 'hidden' });
  expect(unexpectedErrors(harness, cutAt, reconnectedAt)).toEqual([]);
});
