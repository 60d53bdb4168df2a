/**
 * `npm run soak`: the local runtime as `npm start` runs it (simulated devices, one dashboard-like
 * client subscribed to everything), measured for what one user can do to the others:
 *
 * 1. Burst: one client sends 1,000 subscribes at once. The dashboard's p95 record latency during
 *    the burst is compared with its p95 over the same time just before (target: within 2×), and
 *    the burst's answers are counted (they must include `rate_limited`; the client stays usable).
 * 2. Soak: connect / subscribe / disconnect cycles at a fixed rate (default 1,000 a minute) for a
 *    number of minutes (default 10). The live heap after a full GC is sampled each minute, with
 *    the gateway process's RSS; the target is the last sample within 10% of minute 5's and a slope
 *    under 0.05 MB a minute over the last 10 minutes.
 *
 * Flags: --minutes N (default 10), --cycles-per-minute N (default 1000). Needs `--expose-gc`
 * (the npm script passes it). Prints one JSON report.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import WebSocket from 'ws';
import { createDocumentClient } from '../lambdas/adapters/clients';
import { mintToken } from '../lambdas/core/auth';
import { parseServerFrame, unpackFrame } from '../lambdas/core/protocol';
import { LOCAL_AWS, LOCAL_TABLES } from '../local/dynamo';
import { startLocalRuntime } from '../local/runtime';
import { LatencyHistogram } from './stats';

const gc = (globalThis as { gc?: () => void }).gc;

function liveHeapMb(): number {
  gc?.();
  gc?.();
  return Math.round((process.memoryUsage().heapUsed / 1e6) * 10) / 10;
}

/** RSS of the gateway's child process (local/gateway-process.ts), whose heap is not this one's. */
function gatewayRssMb(): number | undefined {
  for (const pid of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    try {
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      if (!new RegExp(`^PPid:\\s+${process.pid}$`, 'm').test(status)) continue;
      if (!readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('--gateway-child')) continue;
      const kb = Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1]);
      return Math.round(kb / 102.4) / 10;
    } catch {
      // A process that ended while it was read.
    }
  }
  return undefined;
}

/** Least-squares slope of the live heap over the last `minutes` samples, MB a minute. */
function slopeMbPerMinute(samples: readonly { minute: number; liveHeapMb: number }[]): number {
  const n = samples.length;
  if (n < 2) return 0;
  const mx = samples.reduce((sum, s) => sum + s.minute, 0) / n;
  const my = samples.reduce((sum, s) => sum + s.liveHeapMb, 0) / n;
  const sxy = samples.reduce((sum, s) => sum + (s.minute - mx) * (s.liveHeapMb - my), 0);
  const sxx = samples.reduce((sum, s) => sum + (s.minute - mx) ** 2, 0);
  return Math.round((sxy / sxx) * 1000) / 1000;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function open(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

function reply(ws: WebSocket, frame: unknown): Promise<{ type: string; code?: string }> {
  return new Promise((resolve) => {
    ws.once('message', (data) => resolve(JSON.parse(data.toString())));
    ws.send(JSON.stringify(frame));
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { minutes: { type: 'string' }, 'cycles-per-minute': { type: 'string' } } });
  const minutes = Number(values.minutes ?? 10);
  const cyclesPerMinute = Number(values['cycles-per-minute'] ?? 1000);
  if (!gc) throw new Error('run with node --expose-gc (npm run soak does)');
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

  const secret = 'soak-benchmark-secret-0123456789abcdef';
  const runtime = await startLocalRuntime({ dashboardPort: 0, wsPort: 0, jwtSecret: secret, frontendDir: __dirname });
  const token = await mintToken(secret, { sub: 'soak', sites: ['*'] }, '2h');
  const url = `${runtime.wsUrl}/?token=${encodeURIComponent(token)}`;
  const doc = createDocumentClient({ endpoint: runtime.dynamoEndpoint, ...LOCAL_AWS });
  /** Connection items: with the gauge and the open sockets, tells a lost $disconnect from a miscount. */
  const connectionItems = async () => {
    let count = 0;
    let start: Record<string, unknown> | undefined;
    do {
      const out = await doc.send(new ScanCommand({ TableName: LOCAL_TABLES.connections, Select: 'COUNT', ExclusiveStartKey: start }));
      count += out.Count ?? 0;
      start = out.LastEvaluatedKey;
    } while (start);
    return count;
  };
  try {
    // The dashboard: everything, as the page subscribes on open.
    const dashboard = await open(url);
    let window = new LatencyHistogram();
    dashboard.on('message', (data) => {
      const now = Date.now();
      for (const frame of unpackFrame(parseServerFrame(data.toString()))) {
        if (frame.type === 'device_data' || frame.type === 'alert') window.add(now - frame.data.timestamp);
      }
    });
    await reply(dashboard, { action: 'subscribe', id: 'all', filter: {} });
    await sleep(5000);

    // 1. Burst.
    window = new LatencyHistogram();
    await sleep(10_000);
    const baseline = window;
    window = new LatencyHistogram();
    const burster = await open(url);
    const answers = new Map<string, number>();
    let answered = 0;
    burster.on('message', (data) => {
      const frame = JSON.parse(data.toString()) as { type: string; code?: string };
      if (frame.type === 'subscribed' || frame.type === 'error') {
        const key = frame.code ?? frame.type;
        answers.set(key, (answers.get(key) ?? 0) + 1);
        answered++;
      }
    });
    const burstStarted = Date.now();
    for (let i = 0; i < 1000; i++) burster.send(JSON.stringify({ action: 'subscribe', id: `b${i % 20}`, filter: { deviceIds: [`dev-${i}`] } }));
    while (answered < 1000) await sleep(100);
    const burstMs = Date.now() - burstStarted;
    if (burstMs < 10_000) await sleep(10_000 - burstMs);
    const during = window;
    await sleep(1000);
    const stillServed = (await reply(burster, { action: 'ping' })).type === 'pong';
    await new Promise((resolve) => {
      burster.once('close', resolve);
      burster.close();
    });
    await runtime.gateway.settle();

    // 2. Soak.
    const heap: { minute: number; liveHeapMb: number; gauge: number; connectionItems: number; openSockets: number }[] = [];
    const gauge = async () => Number(/^websocket_connections (\d+)/m.exec(await runtime.metricsText())?.[1] ?? NaN);
    const sample = async (minute: number) => ({
      minute,
      liveHeapMb: liveHeapMb(),
      gauge: await gauge(),
      connectionItems: await connectionItems(),
      openSockets: runtime.gateway.connectionCount,
      gatewayRssMb: gatewayRssMb(),
    });
    heap.push(await sample(0));
    const intervalMs = 60_000 / cyclesPerMinute;
    let cycles = 0;
    let failures = 0;
    const started = Date.now();
    const inFlight = new Set<Promise<void>>();
    for (let minute = 1; minute <= minutes; minute++) {
      while (Date.now() - started < minute * 60_000) {
        const cycle = (async () => {
          try {
            const ws = await open(url);
            await reply(ws, { action: 'subscribe', id: 's', filter: { deviceIds: [`sensor-${cycles % 50}`] } });
            await new Promise<void>((resolve) => {
              ws.once('close', () => resolve());
              ws.close();
            });
          } catch {
            failures++;
          }
        })();
        inFlight.add(cycle);
        void cycle.finally(() => inFlight.delete(cycle));
        cycles++;
        // Paced by the clock, not by the sleeps, so that timer drift does not lower the rate.
        await sleep(Math.max(0, started + cycles * intervalMs - Date.now()));
      }
      await Promise.all(inFlight);
      await runtime.gateway.settle();
      heap.push(await sample(minute));
      console.error(`minute ${minute}: ${JSON.stringify(heap[heap.length - 1])}`);
    }
    dashboard.close();

    // Warm-up is over by minute 5 (issue 19): growth is measured from there.
    const first = heap[Math.min(5, heap.length - 1)].liveHeapMb;
    const last = heap[heap.length - 1].liveHeapMb;
    const slope = slopeMbPerMinute(heap.slice(-11));
    const report = {
      burst: {
        answers: Object.fromEntries(answers),
        durationMs: burstMs,
        connectionStillServed: stillServed,
        dashboardP95BaselineMs: baseline.percentile(95),
        dashboardP95DuringBurstMs: during.percentile(95),
        ratio: Math.round((during.percentile(95) / baseline.percentile(95)) * 100) / 100,
        withinTarget: during.percentile(95) <= 2 * baseline.percentile(95),
      },
      soak: {
        minutes,
        cycles,
        failures,
        heap,
        growthPercentFromMinute5: Math.round(((last - first) / first) * 1000) / 10,
        slopeLast10MinutesMbPerMinute: slope,
        withinTarget: last <= first * 1.1 && slope < 0.05,
        countsRight: heap.every((h) => h.gauge === h.openSockets && h.connectionItems === h.openSockets),
      },
    };
    console.log(JSON.stringify(report, null, 2));
  } finally {
    doc.destroy();
    await runtime.stop();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
