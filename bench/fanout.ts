/**
 * The fan-out benchmark (issue 7): the local runtime (no simulator) in this process, real `ws`
 * clients in child processes (bench/client-worker.ts), records produced at a target rate and fed
 * to the stream handler in batches as an MSK event source mapping would, and then the same
 * workload through the naive baseline (bench/naive.ts) on the same runtime and the same clients.
 *
 * Latency of a record = the time a client receives it − its `timestamp`, which is the time its
 * batch was due to be handed to the stream handler (all on this machine's clock). A batch handed
 * over late because the process was busy keeps its due time, so that delay is counted.
 */
import os from 'node:os';
import { createDocumentClient, createManagementClient } from '../lambdas/adapters/clients';
import { ManagementApiPoster } from '../lambdas/adapters/management-poster';
import { LOCAL_AWS, LOCAL_TABLES } from '../local/dynamo';
import { buildMskEvent, type KafkaRecordInput } from '../local/msk-event';
import type { DynaliteMode } from '../local/dynalite-process';
import { startLocalRuntime, type LocalRuntime } from '../local/runtime';
import type { ClientTally, WorkerCommand, WorkerReply } from './client-worker';
import { startClientWorker, type Child } from './harness';
import { createNaiveStreamHandler } from './naive';
import { LatencyHistogram, round, sleep } from './stats';
import {
  DEFAULT_MIX,
  RecordSource,
  makeClients,
  makeDevices,
  mixSummary,
  normalised,
  type ClientSpec,
  type SubscriptionMix,
} from './workload';

/** Options of one scenario. */
export interface FanoutScenarioOptions {
  /** Connections held open for the whole scenario. */
  connections: number;
  /** Records per second produced. */
  rate: number;
  /** Distinct devices. Default 1,000. */
  devices?: number;
  /** Distinct locations the devices are spread over. Default 20 (50 devices each). */
  locations?: number;
  /** Seconds of production per design. Default 10. */
  durationS?: number;
  /** The event source mapping's batching window: a batch is handed over every this many ms. Default 100. */
  windowMs?: number;
  /** Largest batch one invocation takes (MSK's BatchSize, max 10,000). Default 10,000. */
  maxBatch?: number;
  mix?: SubscriptionMix;
  /** Client processes. Default: 1 below 1,000 connections, else one per 5,000 (at least 2). */
  clientProcesses?: number;
  /** Each Management API call answers after about this many ms (the runtime's --post-latency). Default 0. */
  postLatencyMs?: number;
  /** Posts a second before 429 (the runtime's --post-quota). Default: none. */
  postQuota?: number;
  /** The SDK poster, 32 in flight, no pacing: the post path before issue 12, as a baseline. */
  sdkBaseline?: boolean;
  /**
   * Where the runtime runs dynalite. Default `process` (its own process, whose CPU and memory the
   * server figures then leave out); `inline` is the layout before, as a baseline.
   */
  dynalite?: DynaliteMode;
  /** A name for the scenario instead of `cN-rR`. */
  label?: string;
  /** Run the naive baseline after the fan-out. Default true. */
  naive?: boolean;
  /** Seconds the naive baseline may run past the end of production before it is stopped. Default 5. */
  naiveGraceS?: number;
  log?: (line: string) => void;
}

/** Figures of one design on one scenario. */
export interface DesignResult {
  design: 'fanout' | 'naive';
  recordsProduced: number;
  /** Records whose batch the handler finished. */
  recordsProcessed: number;
  /** Records produced but never handed to the handler before the run was stopped (naive only). */
  recordsUnprocessed: number;
  /** Records processed per second of the run (production start to last batch done). */
  recordsPerSecond: number;
  batches: number;
  meanBatchSize: number;
  latencyMs: { count: number; p50: number; p95: number; p99: number; max: number; mean: number };
  /** Alerts alone. */
  alertLatencyMs: { count: number; p50: number; p95: number; p99: number; max: number; mean: number };
  /** PostToConnection calls made. */
  posts: number;
  /** Records received by clients. */
  delivered: number;
  /** Deliveries the filters call for, over every record produced. */
  expectedDeliveries: number;
  postsPerDelivery: number;
  /** DynamoDB requests of the stream handler per batch (index BatchGetItems for the fan-out, Scan pages for the naive). */
  dynamoCallsPerBatch: number;
  framesPerClient: number;
  bytesPerClient: number;
  maxFramesPerClient: number;
  /** Deliveries missing at clients (records produced and processed but not received). */
  lost: number;
  /** Deliveries the filters call for that never arrived, lost or never attempted (a run stopped behind). */
  undelivered: number;
  duplicates: number;
  failedPosts: number;
  /** Posts the Management API refused with 429 (the runtime's quota). */
  throttled: number;
  /** Posts answered a second, over the run. */
  postsPerSecond: number;
  /** Share of telemetry deliveries conflated away under pacing. */
  conflatedShare: number;
  serverRssMaxMB: number;
  /** Server process CPU, percent of one core, over the run. */
  serverCpuPercent: number;
  serverCpuMsPer1kDeliveries: number;
  clientCpuPercent: number;
  wallSeconds: number;
}

/** One scenario's figures for both designs. */
export interface FanoutScenarioResult {
  name: string;
  connections: number;
  connected: number;
  connectFailed: number;
  connectSeconds: number;
  rssAfterConnectMB: number;
  rate: number;
  devices: number;
  locations: number;
  durationS: number;
  windowMs: number;
  clientProcesses: number;
  mix: Record<string, number>;
  fanout: DesignResult;
  naive?: DesignResult;
  /** naive ÷ fan-out: how many times better the fan-out is (higher is better). */
  ratios?: { postsPerDelivery: number; p95Latency: number; cpuPerDelivery: number };
}

interface DriveOutcome {
  produced: number;
  processed: number;
  unprocessed: number;
  batches: number;
  startedAt: number;
  lastBatchAt: number;
}

/**
 * Produces `rate` records a second for `durationMs`, one batch per window stamped with the window's
 * due time, and hands batches to `invoke` one invocation at a time, taking everything pending (up
 * to `maxBatch`), as the event source mapping's poller does for a partition.
 */
async function drive(
  source: RecordSource,
  options: { rate: number; durationMs: number; windowMs: number; maxBatch: number; stopAt?: number },
  invoke: (records: KafkaRecordInput[]) => Promise<boolean>,
): Promise<DriveOutcome> {
  const pending: KafkaRecordInput[] = [];
  const startedAt = Date.now() + 20;
  const ticks = Math.max(1, Math.round(options.durationMs / options.windowMs));
  let wake: (() => void) | undefined;
  let producing = true;
  let produced = 0;

  const producer = (async () => {
    let carry = 0;
    for (let i = 0; i < ticks; i++) {
      const due = startedAt + i * options.windowMs;
      const wait = due - Date.now();
      if (wait > 0) await sleep(wait);
      carry += (options.rate * options.windowMs) / 1000;
      const count = Math.floor(carry);
      carry -= count;
      const records = source.make(count, due);
      produced += records.length;
      for (const record of records) pending.push(record);
      wake?.();
    }
    producing = false;
    wake?.();
  })();

  let processed = 0;
  let batches = 0;
  let lastBatchAt = startedAt;
  while (producing || pending.length) {
    if (!pending.length) {
      await new Promise<void>((resolve) => (wake = resolve));
      wake = undefined;
      continue;
    }
    if (options.stopAt && Date.now() > options.stopAt) break;
    const batch = pending.splice(0, options.maxBatch);
    // A batch the handler could not finish (the naive one, stopped at its deadline) is not processed.
    if (await invoke(batch)) processed += batch.length;
    batches++;
    lastBatchAt = Date.now();
  }
  await producer;
  return { produced, processed, unprocessed: produced - processed, batches, startedAt, lastBatchAt };
}

/** Peak RSS of this process, sampled every 200 ms while running. */
function rssSampler(): { stop: () => number } {
  let peak = process.memoryUsage().rss;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 200);
  return {
    stop: () => {
      clearInterval(timer);
      return Math.max(peak, process.memoryUsage().rss);
    },
  };
}

/** Waits until clients have received `target` records, or nothing has arrived for `idleMs`. */
async function waitForClients(processes: Child<WorkerReply>[], target: number, idleMs = 5000, capMs = 60_000): Promise<void> {
  const started = Date.now();
  let last = -1;
  let lastChange = Date.now();
  while (Date.now() - started < capMs) {
    const counts = await Promise.all(processes.map((p) => p.request({ cmd: 'counts' }, 'counts')));
    const received = counts.reduce((sum, c) => sum + c.received, 0);
    if (received >= target) return;
    if (received !== last) {
      last = received;
      lastChange = Date.now();
    } else if (Date.now() - lastChange > idleMs) return;
    await sleep(100);
  }
}

interface PhaseContext {
  runtime: LocalRuntime;
  processes: Child<WorkerReply>[];
  specs: Map<number, ClientSpec>;
}

async function runPhase(
  design: 'fanout' | 'naive',
  ctx: PhaseContext,
  options: Required<Pick<FanoutScenarioOptions, 'rate' | 'durationS' | 'windowMs' | 'maxBatch' | 'naiveGraceS'>> & { devices: ReturnType<typeof makeDevices> },
): Promise<DesignResult> {
  const { runtime, processes } = ctx;
  await Promise.all(processes.map((p) => p.request({ cmd: 'reset' }, 'reset')));
  const source = new RecordSource(options.devices);
  const durationMs = options.durationS * 1000;

  let invoke: (records: KafkaRecordInput[]) => Promise<boolean>;
  let counters: () => { dynamo: number; posts: number; failed: number; conflated: number };
  let stopAt: number | undefined;
  let cleanup = async () => {};
  if (design === 'fanout') {
    const base = { dynamo: runtime.indexCalls(), posts: runtime.postCalls(), failed: runtime.totals.failed, conflated: runtime.totals.conflated };
    invoke = async (records) => {
      await runtime.publish(records);
      return true;
    };
    counters = () => ({
      dynamo: runtime.indexCalls() - base.dynamo,
      posts: runtime.postCalls() - base.posts,
      failed: runtime.totals.failed - base.failed,
      conflated: runtime.totals.conflated - base.conflated,
    });
  } else {
    const doc = createDocumentClient({ endpoint: runtime.dynamoEndpoint, ...LOCAL_AWS });
    const management = createManagementClient(runtime.managementUrl, LOCAL_AWS, 64);
    const poster = new ManagementApiPoster(management);
    stopAt = Date.now() + durationMs + options.naiveGraceS * 1000;
    const deadline = stopAt;
    const naive = createNaiveStreamHandler({
      doc,
      connectionsTable: LOCAL_TABLES.connections,
      poster,
      concurrency: 32,
      deadline: () => deadline,
    });
    let failed = 0;
    const offsets = new Map<string, number>();
    invoke = async (records) => {
      const report = await naive(buildMskEvent(records, {}, offsets));
      failed += report.failed;
      return report.skipped === 0;
    };
    counters = () => ({ dynamo: naive.totals.scanCalls, posts: poster.calls, failed, conflated: 0 });
    cleanup = async () => {
      doc.destroy();
      management.destroy();
    };
  }

  const throttled0 = runtime.gateway.managementStats.throttled;
  const answered0 = runtime.gateway.managementStats.posts;
  const rss = rssSampler();
  const cpu0 = process.cpuUsage();
  const wall0 = performance.now();
  const outcome = await drive(source, { ...options, durationMs, stopAt }, invoke);
  const runSeconds = Math.max(options.durationS, (outcome.lastBatchAt - outcome.startedAt) / 1000);

  // What each connected client must receive, from the filters and every record produced.
  const expected = new Map<number, { count: number; hash: number }>();
  let expectedTotal = 0;
  for (const [index, spec] of ctx.specs) {
    const e = source.expectedFor(normalised(spec));
    expected.set(index, e);
    expectedTotal += e.count;
  }
  const c = counters();
  await waitForClients(processes, design === 'fanout' ? expectedTotal : Math.min(expectedTotal, c.posts));
  const cpu = process.cpuUsage(cpu0);
  const wallMs = performance.now() - wall0;
  const rssMax = rss.stop();
  const reports = await Promise.all(processes.map((p) => p.request({ cmd: 'report' }, 'report')));
  await cleanup();

  const histogram = new LatencyHistogram();
  const alertHistogram = new LatencyHistogram();
  const tallies: ClientTally[] = [];
  let clientCpuMs = 0;
  for (const report of reports) {
    histogram.merge(report.histogram);
    alertHistogram.merge(report.alertHistogram);
    tallies.push(...report.clients);
    clientCpuMs += report.cpuMs;
  }
  let delivered = 0;
  let lost = 0;
  let duplicates = 0;
  let frames = 0;
  let bytes = 0;
  let maxFrames = 0;
  for (const tally of tallies) {
    const e = expected.get(tally.index) ?? { count: 0, hash: 0 };
    delivered += tally.received;
    frames += tally.frames;
    bytes += tally.bytes;
    maxFrames = Math.max(maxFrames, tally.frames);
    if (tally.received < e.count) lost += e.count - tally.received;
    else if (tally.received > e.count) duplicates += tally.received - e.count;
    // Same count, other records: as many duplicates as missing ones (at least one of each).
    else if (tally.hash !== e.hash) duplicates++;
  }
  const final = counters();
  const serverCpuMs = (cpu.user + cpu.system) / 1000;
  const clients = Math.max(1, tallies.length);
  return {
    design,
    recordsProduced: outcome.produced,
    recordsProcessed: outcome.processed,
    recordsUnprocessed: outcome.unprocessed,
    recordsPerSecond: round(outcome.processed / runSeconds, 1),
    batches: outcome.batches,
    meanBatchSize: round(outcome.processed / Math.max(1, outcome.batches), 1),
    latencyMs: histogram.summary(),
    alertLatencyMs: alertHistogram.summary(),
    posts: final.posts,
    delivered,
    expectedDeliveries: expectedTotal,
    postsPerDelivery: round(final.posts / Math.max(1, delivered), 4),
    dynamoCallsPerBatch: round(final.dynamo / Math.max(1, outcome.batches), 2),
    framesPerClient: round(frames / clients, 1),
    bytesPerClient: Math.round(bytes / clients),
    maxFramesPerClient: maxFrames,
    // A naive run stopped before it processed everything has not lost records, it fell behind:
    // what it lost is what it posted successfully and no client received.
    // Readings pacing conflated away were superseded on purpose, not lost.
    lost: design === 'fanout' ? Math.max(0, lost - final.conflated) : Math.max(0, final.posts - final.failed - delivered),
    undelivered: Math.max(0, expectedTotal - delivered),
    duplicates,
    failedPosts: final.failed,
    throttled: runtime.gateway.managementStats.throttled - throttled0,
    postsPerSecond: round((runtime.gateway.managementStats.posts - answered0) / runSeconds, 1),
    // Of the telemetry deliveries the filters call for, the share pacing folded into newer readings.
    conflatedShare: round(final.conflated / Math.max(1, final.conflated + delivered), 4),
    serverRssMaxMB: Math.round(rssMax / 2 ** 20),
    serverCpuPercent: round((serverCpuMs / wallMs) * 100, 1),
    serverCpuMsPer1kDeliveries: round((serverCpuMs / Math.max(1, delivered)) * 1000, 2),
    clientCpuPercent: round((clientCpuMs / wallMs) * 100, 1),
    wallSeconds: round(wallMs / 1000, 1),
  };
}

/** Runs one scenario: the fan-out, then the naive baseline on the same clients and workload. */
export async function runFanoutScenario(options: FanoutScenarioOptions): Promise<FanoutScenarioResult> {
  const log = options.log ?? (() => {});
  const deviceCount = options.devices ?? 1000;
  const locations = options.locations ?? 20;
  const durationS = options.durationS ?? 10;
  const windowMs = options.windowMs ?? 100;
  const maxBatch = options.maxBatch ?? 10_000;
  const name = options.label ?? `c${options.connections}-r${options.rate}`;
  const processCount =
    options.clientProcesses ?? (options.connections < 1000 ? 1 : Math.max(2, Math.ceil(options.connections / 5000)));
  const devices = makeDevices(deviceCount, locations);
  const clients = makeClients(options.connections, devices, options.mix ?? DEFAULT_MIX);

  const runtime = await startLocalRuntime({
    dashboardPort: 0,
    wsPort: 0,
    simulator: false,
    statusIntervalMs: 0,
    postLatencyMs: options.postLatencyMs,
    postQuota: options.postQuota,
    sdkBaseline: options.sdkBaseline,
    dynalite: options.dynalite,
  });
  const processes = Array.from({ length: processCount }, (_, i) => startClientWorker(`client process ${i}`));
  const ready = processes.map((p) => p.next('ready'));
  try {
    await Promise.all(ready);
    log(`${name}: connecting ${options.connections} clients from ${processCount} process(es)`);
    const connectStarted = Date.now();
    const shares = processes.map((_, i) => clients.filter((c) => c.index % processCount === i));
    const connected = await Promise.all(
      processes.map((p, i) =>
        p.request(
          { cmd: 'connect', url: runtime.clientUrl, clients: shares[i].map((c) => ({ index: c.index, filters: c.filters })), concurrency: 32 },
          'connected',
        ),
      ),
    );
    const ok = connected.reduce((sum, c) => sum + c.ok, 0);
    const failed = connected.reduce((sum, c) => sum + c.failed, 0);
    const connectSeconds = round((Date.now() - connectStarted) / 1000, 1);
    if (failed) log(`${name}: ${failed} clients failed to connect: ${connected.find((c) => c.error)?.error}`);
    log(`${name}: ${ok} connected in ${connectSeconds} s`);

    // Which clients really connected: only their deliveries are expected.
    const reports = await Promise.all(processes.map((p) => p.request({ cmd: 'report' }, 'report')));
    const specs = new Map<number, ClientSpec>();
    for (const report of reports) for (const tally of report.clients) specs.set(tally.index, clients[tally.index]);
    const rssAfterConnectMB = Math.round(process.memoryUsage().rss / 2 ** 20);

    const ctx: PhaseContext = { runtime, processes, specs };
    const phaseOptions = { rate: options.rate, durationS, windowMs, maxBatch, naiveGraceS: options.naiveGraceS ?? 5, devices };
    log(`${name}: fan-out, ${options.rate} records/s for ${durationS} s`);
    const fanout = await runPhase('fanout', ctx, phaseOptions);
    log(
      `${name}: fan-out p95 ${fanout.latencyMs.p95} ms, ${fanout.recordsPerSecond} rec/s, ` +
        `${fanout.postsPerDelivery} posts/delivery, lost ${fanout.lost}, RSS ${fanout.serverRssMaxMB} MB`,
    );
    let naive: DesignResult | undefined;
    if (options.naive !== false) {
      log(`${name}: naive baseline, same workload`);
      naive = await runPhase('naive', ctx, phaseOptions);
      log(
        `${name}: naive p95 ${naive.latencyMs.p95} ms, ${naive.recordsPerSecond} rec/s, ` +
          `${naive.postsPerDelivery} posts/delivery, ${naive.recordsUnprocessed} records left unprocessed`,
      );
    }
    const ratio = (a: number, b: number) => (b > 0 && Number.isFinite(a) && Number.isFinite(b) ? round(a / b, 1) : NaN);
    return {
      name,
      connections: options.connections,
      connected: ok,
      connectFailed: failed,
      connectSeconds,
      rssAfterConnectMB,
      rate: options.rate,
      devices: deviceCount,
      locations,
      durationS,
      windowMs,
      clientProcesses: processCount,
      mix: mixSummary(clients),
      fanout,
      naive,
      ratios: naive
        ? {
            postsPerDelivery: ratio(naive.postsPerDelivery, fanout.postsPerDelivery),
            p95Latency: ratio(naive.latencyMs.p95, fanout.latencyMs.p95),
            cpuPerDelivery: ratio(naive.serverCpuMsPer1kDeliveries, fanout.serverCpuMsPer1kDeliveries),
          }
        : undefined,
    };
  } finally {
    await Promise.all(processes.map((p) => p.stop({ cmd: 'close' } satisfies WorkerCommand)));
    await runtime.stop();
  }
}

/** Cores, memory and Node version of this machine, for the report. */
export function machine(): { cores: number; cpuModel: string; memoryGB: number; node: string; platform: string } {
  return {
    cores: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memoryGB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
  };
}
