/**
 * Issue 19's noisy neighbour: while 8 connections of one token flood at 1,000 messages a second
 * each (pings, subscribes, unknown actions, garbage) and the machine runs a CPU-heavy process,
 * another user's record-to-client latency, beside its quiet value in the same run (the busy
 * process runs through both phases); how soon each flooder gets its first `rate_limited`; the
 * flooders' pongs against their refusals; whether they kept their connections; and the table
 * writes the flood cost.
 *
 *   npx tsx bench/flood.ts [--seconds 10] [--connections 8] [--rate 1000] [--mix ping,subscribe,unknown,garbage]
 *     [--no-busy] [--rounds 1] [--json FILE]
 *
 * The runtime runs in this process. For CPU profiles of it, of the gateway's process and of
 * dynalite's, run it as `node --cpu-prof --cpu-prof-dir=DIR --import tsx bench/flood.ts`: both
 * children take the `--cpu-prof` flags of their parent.
 */
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { DynamoConnectionStore } from '../lambdas/adapters/dynamo-connections';
import { DynamoMetricsStore } from '../lambdas/adapters/dynamo-metrics';
import { mintToken } from '../lambdas/core/auth';
import { startLocalRuntime } from '../local/runtime';
import { FLOOD_KINDS, startFlooder, type FloodConnectionResult, type FloodKind } from '../test/support/flooder';
import type { WorkerCommand, WorkerReply } from './client-worker';
import { LatencyHistogram } from './stats';
import { startBusyLoop, startClientWorker, type Child } from './harness';

/** Options of {@link runFloodBench}. */
export interface FloodBenchOptions {
  /** Flooding connections. Default 8. */
  connections?: number;
  /** Messages a second per flooding connection. Default 1000. */
  perSecond?: number;
  /** Length of the quiet phase and of the flood, each, ms. Default 10000. */
  phaseMs?: number;
  /** Run a busy-looping process through both phases. Default true. */
  busyLoop?: boolean;
  /** Records a second to the watching user. Default 50. */
  recordsPerSecond?: number;
  /** What the flooders send, in turn. Default every kind (test/support/flooder.ts). */
  mix?: readonly FloodKind[];
  log?: (line: string) => void;
}

/** Latency figures of one phase, ms. */
export interface PhaseFigures {
  records: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
  /** CPU of the runtime's process over the phase, % of one core. */
  runtimeCpuPercent: number;
  /** Requests of the connections store and metric writes over the phase. */
  connectionCalls: number;
  metricWrites: number;
  /** CPU of the other processes over the phase (gateway, dynalite, flooder, busy loop), % of one core. */
  processCpuPercent: Record<string, number>;
  /** The slowest record produced in each second of the phase, ms: when in the phase the wait was. */
  perSecondMax: number[];
  /** p95 of the records produced after the phase's first second, ms: without a flood's onset. */
  p95AfterFirstSecond: number;
}

/** What one run measured. */
export interface FloodBenchReport {
  options: Required<Omit<FloodBenchOptions, 'log'>>;
  quiet: PhaseFigures;
  flood: PhaseFigures;
  /** flood p95 / quiet p95. */
  p95Ratio: number;
  /**
   * CPU each process spent per flood message beyond its quiet rate, µs: what the flood costs
   * (the runtime's process holds the handlers; the gateway's the sockets).
   */
  cpuPerFloodMessageUs: Record<string, number>;
  flooders: {
    sent: number;
    pongs: number;
    served: number;
    rateLimited: number;
    gatewayErrors: number;
    /** Slowest connection's time to its first `rate_limited`, ms (-1: one got none). */
    firstRefusalMaxMs: number;
    firstRefusalMs: number[];
    /** Per connection, the place in the order sent of its earliest subscribe refused (-1: none). */
    firstRefusedPlace: number[];
    /** Slowest connection's time from its last message to its last reply, ms. */
    drainMaxMs: number;
    replyP95MaxMs: number;
    unanswered: number;
    kept: number;
  };
}

const VICTIM_DEVICE = 'victim-pump';

/** CPU time (ms) of this process's children (the gateway, dynalite, ...) by a short name, from /proc. */
function childCpu(): Map<string, number> {
  const out = new Map<string, number>();
  let entries: string[] = [];
  try {
    entries = readdirSync('/proc').filter((name) => /^\d+$/.test(name));
  } catch {
    return out;
  }
  for (const pid of entries) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) !== process.pid) continue;
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
      const name = cmdline.includes('--gateway-child')
        ? 'gateway'
        : cmdline.includes('--dynalite-child')
          ? 'dynalite'
          : cmdline.includes('flooder')
            ? 'flooder'
            : cmdline.includes('client-worker')
              ? 'watcher'
            : cmdline.includes('process.ppid')
              ? 'busy'
              : `pid ${pid}`;
      // utime + stime, in clock ticks of 10 ms.
      out.set(name, (Number(fields[11]) + Number(fields[12])) * 10);
    } catch {
      // Gone meanwhile.
    }
  }
  return out;
}

/** Runs the quiet phase, then the flood, on one local runtime; see the module's comment. */
export async function runFloodBench(options: FloodBenchOptions = {}): Promise<FloodBenchReport> {
  const opts = {
    connections: options.connections ?? 8,
    perSecond: options.perSecond ?? 1000,
    phaseMs: options.phaseMs ?? 10_000,
    busyLoop: options.busyLoop ?? true,
    recordsPerSecond: options.recordsPerSecond ?? 50,
    mix: options.mix ?? FLOOD_KINDS,
  };
  const log = options.log ?? (() => {});
  const secret = 'flood-bench-secret-0123456789abcdef';
  // The stores the runtime builds, caught as they are made, for their request counts.
  const connectionStores: DynamoConnectionStore[] = [];
  const metricStores: DynamoMetricsStore[] = [];
  const runtime = await startLocalRuntime({
    dashboardPort: 0,
    wsPort: 0,
    simulator: false,
    frontendDir: __dirname,
    statusIntervalMs: 0,
    jwtSecret: secret,
  });
  const busy = opts.busyLoop ? startBusyLoop() : undefined;
  let flooder: Awaited<ReturnType<typeof startFlooder>> | undefined;
  let victim: Child<WorkerReply> | undefined;
  try {
    const victimToken = await mintToken(secret, { sub: 'victim', sites: ['plant-a'] }, '1h');
    // The watching user in a process of its own, as a browser would be: in this one, which runs
    // the runtime, each receipt would wait for the runtime's loop, a wait no user has.
    victim = startClientWorker('watcher');
    await victim.next('ready');
    let phase: LatencyHistogram | undefined;
    let phaseStart: number | undefined;
    // Each second's records of the phase, and those after its first second.
    let bySecond: LatencyHistogram[] = [];
    let afterFirstSecond = new LatencyHistogram();
    victim.process.on('message', (reply: WorkerReply) => {
      if (reply.type !== 'reading') return;
      const latency = reply.at - reply.timestamp;
      phase?.add(latency);
      if (phaseStart !== undefined) {
        const second = Math.max(0, Math.floor((reply.timestamp - phaseStart) / 1000));
        (bySecond[second] ??= new LatencyHistogram()).add(latency);
        if (second > 0) afterFirstSecond.add(latency);
      }
    });
    // A watcher that cannot connect or subscribe ends its process, which fails this wait.
    await victim.request(
      { cmd: 'watch', url: `${runtime.wsUrl}/?token=${encodeURIComponent(victimToken)}`, filter: { deviceIds: [VICTIM_DEVICE] } } satisfies WorkerCommand,
      'watching',
    );

    // One reading for the watcher every 1000/rate ms, stamped when produced, on a clock of its
    // own; a partition's poller sends what has arrived as soon as its previous batch is done. A
    // slow batch makes the next one wait and grow: the wait counts in each record's latency.
    const every = 1000 / opts.recordsPerSecond;
    let pending: { topic: string; key: string; value: unknown }[] = [];
    let publishing: Promise<unknown> | undefined;
    const poll = () => {
      if (publishing || !pending.length) return;
      const records = pending;
      pending = [];
      publishing = runtime
        .publish(records)
        .catch(() => {})
        .finally(() => {
          publishing = undefined;
          poll();
        });
    };
    const producer = setInterval(() => {
      const value = { deviceId: VICTIM_DEVICE, deviceType: 'pump', location: 'plant-a/line-1', timestamp: Date.now(), status: 'online', metrics: { temperature: 70 } };
      pending.push({ topic: 'device-data', key: VICTIM_DEVICE, value });
      poll();
    }, every);

    const floodToken = await mintToken(secret, { sub: 'flooder', sites: '*' }, '1h');
    flooder = await startFlooder({
      url: `${runtime.wsUrl}/?token=${encodeURIComponent(floodToken)}`,
      connections: opts.connections,
      perSecond: opts.perSecond,
      mix: opts.mix,
      durationMs: opts.phaseMs,
      drainTimeoutMs: 30_000,
    });
    // Catch the stores the runtime uses, from the calls it makes.
    const changeSpy = DynamoConnectionStore.prototype.change;
    const flushSpy = DynamoMetricsStore.prototype.flush;
    DynamoConnectionStore.prototype.change = function (this: DynamoConnectionStore, ...args) {
      if (!connectionStores.includes(this)) connectionStores.push(this);
      return changeSpy.apply(this, args);
    };
    DynamoMetricsStore.prototype.flush = function (this: DynamoMetricsStore, ...args) {
      if (!metricStores.includes(this)) metricStores.push(this);
      return flushSpy.apply(this, args);
    };
    victim.process.send({ cmd: 'watch-send', text: '{"action":"ping"}' } satisfies WorkerCommand);
    await new Promise((resolve) => setTimeout(resolve, 2000));
    DynamoConnectionStore.prototype.change = changeSpy;
    DynamoMetricsStore.prototype.flush = flushSpy;

    const counts = () => ({
      connectionCalls: connectionStores.reduce((n, s) => n + s.calls, 0),
      metricWrites: metricStores.reduce((n, s) => n + s.metricWrites, 0),
    });
    const measure = async (during: () => Promise<unknown>): Promise<PhaseFigures & { value: unknown }> => {
      const histogram = new LatencyHistogram();
      phase = histogram;
      phaseStart = Date.now();
      bySecond = [];
      afterFirstSecond = new LatencyHistogram();
      const before = counts();
      const cpu = process.cpuUsage();
      const children = childCpu();
      const started = performance.now();
      const value = await during();
      const used = process.cpuUsage(cpu);
      const wall = performance.now() - started;
      // Every reading the watcher got in the phase is reported before this answer.
      await victim!.request({ cmd: 'watch-sync' } satisfies WorkerCommand, 'watch-synced');
      const processCpuPercent: Record<string, number> = {};
      for (const [name, ms] of childCpu()) processCpuPercent[name] = Math.round(((ms - (children.get(name) ?? 0)) / wall) * 1000) / 10;
      phase = undefined;
      // A second with no record (the loop stalled) reads 0.
      const perSecondMax = Array.from(bySecond, (second) => second?.max ?? 0);
      const p95AfterFirstSecond = afterFirstSecond.count ? afterFirstSecond.percentile(95) : 0;
      const after = counts();
      return {
        value,
        records: histogram.count,
        p50: histogram.percentile(50),
        p95: histogram.percentile(95),
        p99: histogram.percentile(99),
        max: histogram.max,
        runtimeCpuPercent: Math.round(((used.user + used.system) / 1000 / wall) * 1000) / 10,
        connectionCalls: after.connectionCalls - before.connectionCalls,
        metricWrites: after.metricWrites - before.metricWrites,
        processCpuPercent,
        perSecondMax,
        p95AfterFirstSecond,
      };
    };
    log(`flood bench: quiet phase, ${opts.phaseMs} ms${opts.busyLoop ? ', beside a busy loop' : ''}`);
    const { value: _q, ...quiet } = await measure(() => new Promise((resolve) => setTimeout(resolve, opts.phaseMs)));
    log(`flood bench: quiet p95 ${quiet.p95} ms; flood of ${opts.connections} × ${opts.perSecond}/s`);
    const floodRun = flooder.flood();
    const { value: _f, ...flood } = await measure(() => new Promise((resolve) => setTimeout(resolve, opts.phaseMs)));
    const result = await floodRun;
    clearInterval(producer);
    await publishing;
    const all: FloodConnectionResult[] = result.connections;
    const sum = (pick: (c: FloodConnectionResult) => number) => all.reduce((n, c) => n + pick(c), 0);
    const firstRefusalMs = all.map((c) => c.firstRefusalMs);
    const report: FloodBenchReport = {
      options: opts,
      quiet,
      flood,
      p95Ratio: Math.round((flood.p95 / Math.max(1, quiet.p95)) * 100) / 100,
      cpuPerFloodMessageUs: Object.fromEntries(
        [['runtime', flood.runtimeCpuPercent - quiet.runtimeCpuPercent] as const, ...['gateway', 'dynalite', 'flooder'].map(
          (name) => [name, (flood.processCpuPercent[name] ?? 0) - (quiet.processCpuPercent[name] ?? 0)] as const,
        )].map(([name, percent]) => [name, Math.round(((percent / 100) * opts.phaseMs * 1000) / sum((c) => c.sent))]),
      ),
      flooders: {
        sent: sum((c) => c.sent),
        pongs: sum((c) => c.pongs),
        served: sum((c) => c.served),
        rateLimited: sum((c) => c.rateLimited),
        gatewayErrors: sum((c) => c.gatewayErrors),
        firstRefusalMaxMs: firstRefusalMs.includes(-1) ? -1 : Math.max(...firstRefusalMs),
        firstRefusalMs,
        firstRefusedPlace: all.map((c) => c.firstRefusedPlace),
        drainMaxMs: Math.max(...all.map((c) => c.drainMs)),
        replyP95MaxMs: Math.max(...all.map((c) => c.replyP95)),
        unanswered: sum((c) => c.sent - c.replies),
        kept: all.filter((c) => c.open).length,
      },
    };
    log(`flood bench: ${JSON.stringify(report)}`);
    return report;
  } finally {
    flooder?.kill();
    await victim?.stop({ cmd: 'close' } satisfies WorkerCommand);
    busy?.kill();
    await runtime.stop();
  }
}

if (require.main === module) {
  const args = process.argv.slice(2);
  const value = (name: string) => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const rounds = Number(value('rounds') ?? 1);
  (async () => {
    const reports: FloodBenchReport[] = [];
    for (let round = 0; round < rounds; round++) {
      reports.push(
        await runFloodBench({
          phaseMs: Number(value('seconds') ?? 10) * 1000,
          connections: Number(value('connections') ?? 8),
          perSecond: Number(value('rate') ?? 1000),
          busyLoop: !args.includes('--no-busy'),
          ...(value('mix') ? { mix: value('mix')!.split(',') as FloodKind[] } : {}),
          log: (line) => process.stdout.write(`${line}\n`),
        }),
      );
    }
    const file = value('json');
    if (file) writeFileSync(file, JSON.stringify(reports, null, 2));
  })().catch((error: unknown) => {
    process.stderr.write(`${String(error)}\n`);
    process.exitCode = 1;
  });
}
