/**
 * Browser benchmark: records flow at a fixed rate through the real local runtime (stream handler,
 * subscription index, Management API, gateway) into the dashboard in headless Chromium, and the
 * page is watched for long tasks (PerformanceObserver `longtask`, i.e. tasks over 50 ms) and for
 * JS heap growth (after a forced GC, at the start and the end of the measured period).
 *
 * `tsx bench/browser-bench.ts [--rate 500] [--seconds 30] [--devices 50]`; `npm run bench` calls
 * {@link runBrowserBench}. Needs frontend/dist (`npm run build:frontend`).
 */
import { join } from 'node:path';
import { startLocalRuntime } from '../local/runtime';
import { DeviceSimulator } from '../local/simulator';
import { TOPICS } from '../lambdas/core/protocol';
import { launchChromium } from '../test/e2e/helpers/browser';

/** Options of {@link runBrowserBench}. */
export interface BrowserBenchOptions {
  /** Records per second into the page. Default 500. */
  readonly recordsPerSecond?: number;
  /** Length of the measured period, seconds. Default 30. */
  readonly durationSeconds?: number;
  /**
   * Warm-up before measuring, seconds: long enough to fill every chart window (120 points per
   * series at 10 readings a second per device) and the alert list, so the heap is at its plateau. Default 15.
   */
  readonly warmupSeconds?: number;
  /** Simulated devices. Default 50. */
  readonly devices?: number;
  /** Stream batches per second (an MSK batching window of 1000 / this ms). Default 10. */
  readonly batchesPerSecond?: number;
  /** Viewport of the page. Default 1440 x 900. */
  readonly viewport?: { width: number; height: number };
  /** Built dashboard. Default frontend/dist. */
  readonly frontendDir?: string;
  /** Progress lines. Default: none. */
  readonly log?: (line: string) => void;
}

/** Figures of one run. */
export interface BrowserBenchResult {
  recordsPerSecond: number;
  durationSeconds: number;
  /** Records published during the measured period. */
  published: number;
  /** Records the runtime delivered to the page during the measured period. */
  delivered: number;
  /** Records the page applied during the measured period, by its own count. */
  shownByPage: number;
  longTasks: { count: number; maxMs: number; totalMs: number };
  heap: { startBytes: number; endBytes: number; growthBytes: number; growthPercent: number };
  /** Animation frames per second the page achieved while busy. */
  framesPerSecond: number;
  /** No long task and heap growth under 10 %. */
  pass: boolean;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Runs the benchmark and returns its figures. */
export async function runBrowserBench(options: BrowserBenchOptions = {}): Promise<BrowserBenchResult> {
  const rate = options.recordsPerSecond ?? 500;
  const duration = options.durationSeconds ?? 30;
  const warmup = options.warmupSeconds ?? 15;
  const batchesPerSecond = options.batchesPerSecond ?? 10;
  const log = options.log ?? (() => undefined);
  const runtime = await startLocalRuntime({
    dashboardPort: 0,
    wsPort: 0,
    // The browser resolves nothing but 127.0.0.1 (see CHROMIUM_ARGS).
    urlHost: '127.0.0.1',
    simulator: false,
    frontendDir: options.frontendDir ?? join(__dirname, '../frontend/dist'),
  });
  const browser = await launchChromium();
  try {
    const page = await browser.newPage({ viewport: options.viewport ?? { width: 1440, height: 900 } });
    // Installed before the page's own scripts, so no task escapes the observer.
    await page.addInitScript(() => {
      const w = window as unknown as { __bench: { longTasks: number[]; frames: number } };
      w.__bench = { longTasks: [], frames: 0 };
      new PerformanceObserver((list) => {
        for (const entry of list.getEntries()) w.__bench.longTasks.push(entry.duration);
      }).observe({ type: 'longtask', buffered: true });
    });
    await page.goto(runtime.dashboardUrl);
    await page.locator('[data-testid="subscription-item"][data-state="active"]').waitFor();
    const cdp = await page.context().newCDPSession(page);
    const heapAfterGc = async (): Promise<number> => {
      await cdp.send('HeapProfiler.collectGarbage');
      return ((await cdp.send('Runtime.getHeapUsage')) as { usedSize: number }).usedSize;
    };
    const simulator = new DeviceSimulator({ devices: options.devices ?? 50 });
    let published = 0;
    let running = true;
    const started = Date.now();
    // Publishes what is due at `rate` since the start, one stream batch per tick, never two at once.
    const feeder = (async () => {
      while (running) {
        const due = Math.floor(((Date.now() - started) * rate) / 1000) - published;
        if (due > 0) {
          const { readings, alerts } = simulator.next(due);
          published += due;
          await runtime.publish([
            ...readings.map((value) => ({ topic: TOPICS.deviceData, key: value.deviceId, value })),
            ...alerts.map((value) => ({ topic: TOPICS.alerts, key: value.deviceId, value })),
          ]);
        }
        await sleep(1000 / batchesPerSecond);
      }
    })();

    log(`warming up for ${warmup} s at ${rate} records/s`);
    await sleep(warmup * 1000);
    const heapStart = await heapAfterGc();
    // A string, not a function: tsx's name-keeping helper (`__name`) does not exist in the page.
    await page.evaluate(`(() => {
      const bench = window.__bench;
      bench.longTasks.length = 0;
      bench.frames = 0;
      const tick = () => { bench.frames++; requestAnimationFrame(tick); };
      requestAnimationFrame(tick);
    })()`);
    const publishedStart = published;
    const deliveredStart = runtime.totals.deliveries;
    const appliedStart = await applied(page);
    const measureStart = Date.now();
    log(`measuring for ${duration} s`);
    await sleep(duration * 1000);
    const seconds = (Date.now() - measureStart) / 1000;
    const bench = await page.evaluate(() => (window as unknown as { __bench: { longTasks: number[]; frames: number } }).__bench);
    const appliedEnd = await applied(page);
    const publishedEnd = published;
    const deliveredEnd = runtime.totals.deliveries;
    running = false;
    await feeder;
    const heapEnd = await heapAfterGc();
    const growth = heapEnd - heapStart;
    const result: BrowserBenchResult = {
      recordsPerSecond: rate,
      durationSeconds: Math.round(seconds * 10) / 10,
      published: publishedEnd - publishedStart,
      delivered: deliveredEnd - deliveredStart,
      shownByPage: appliedEnd - appliedStart,
      longTasks: {
        count: bench.longTasks.length,
        maxMs: Math.round(Math.max(0, ...bench.longTasks)),
        totalMs: Math.round(bench.longTasks.reduce((sum, ms) => sum + ms, 0)),
      },
      heap: {
        startBytes: heapStart,
        endBytes: heapEnd,
        growthBytes: growth,
        growthPercent: Math.round((growth / heapStart) * 1000) / 10,
      },
      framesPerSecond: Math.round((bench.frames / seconds) * 10) / 10,
      pass: false,
    };
    result.pass = result.longTasks.count === 0 && result.heap.growthPercent < 10;
    return result;
  } finally {
    await browser.close();
    await runtime.stop();
  }
}

/** Records the page has applied, read from the page's own footer counter. */
async function applied(page: import('playwright-core').Page): Promise<number> {
  return Number(await page.getByTestId('record-rate').getAttribute('data-total'));
}

function argument(name: string, fallback: number): number {
  const index = process.argv.indexOf(`--${name}`);
  return index >= 0 ? Number(process.argv[index + 1]) : fallback;
}

async function main(): Promise<void> {
  const result = await runBrowserBench({
    recordsPerSecond: argument('rate', 500),
    durationSeconds: argument('seconds', 30),
    devices: argument('devices', 50),
    log: (line) => console.error(line),
  });
  const mib = (bytes: number) => (bytes / 1024 / 1024).toFixed(1);
  console.error(
    `browser: ${result.recordsPerSecond} records/s for ${result.durationSeconds} s: ` +
      `${result.delivered} delivered, ${result.shownByPage} applied by the page, ` +
      `${result.longTasks.count} long tasks (max ${result.longTasks.maxMs} ms), ` +
      `heap ${mib(result.heap.startBytes)} -> ${mib(result.heap.endBytes)} MiB (${result.heap.growthPercent} %), ` +
      `${result.framesPerSecond} frames/s: ${result.pass ? 'PASS' : 'FAIL'}`,
  );
  console.log(JSON.stringify(result, null, 2));
  if (!result.pass) process.exitCode = 1;
}

if (require.main === module) {
  main().catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
}
