/**
 * "1,000 operators" (issue 18): the local runtime as `npm start` runs it (50 simulated devices,
 * 100 readings a second through the embedded feed) in a child process, and N real WebSocket
 * clients opened at R a second (API Gateway's default connect rate: 500/s) from 1-2 client
 * processes (bench/client-worker.ts), each with its own subscription mix over the simulator's
 * devices (bench/workload.ts). Measured per client: connect latency (upgrade start to `open`),
 * subscribe latency (sent to `subscribed`), and why a handshake failed; then, for D seconds, the
 * latency of every record (client receipt − record `timestamp`; alerts alone as well), records
 * outside the client's filters, duplicates by cursor, and alerts the filters call for that never
 * came (the runtime child reports what its simulator published). Server CPU is the runtime
 * process's plus its descendants' (dynalite runs in a grandchild).
 *
 *   npx tsx bench/operators.ts [--clients 1000 --rate 500 --duration 20 --runtime '{"postLatencyMs":20}'
 *                               --processes N --quick]
 *
 * prints the report as JSON. `--runtime` takes any LocalRuntimeOptions keys (JSON), passed to
 * `startLocalRuntime` over `{dashboardPort: 0, wsPort: 0, auth: 'none'}`.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fnv1a } from '../lambdas/core/hash';
import { errorMessage } from '../lambdas/core/errors';
import type { AlertRecord } from '../lambdas/core/protocol';
import { startLocalRuntime, type LocalRuntime, type LocalRuntimeOptions, type StreamTotals } from '../local/runtime';
import { DeviceSimulator } from '../local/simulator';
import type { OpenOutcome, OperatorsTally, PublishedRecords, WorkerCommand } from './client-worker';
import { LatencyHistogram, round, sleep } from './stats';
import { Child, descendants, startBusyLoop, startClientWorker, percentiles, type Summary } from './harness';
import { DEFAULT_MIX, makeClients, mixSummary, type BenchDevice, type SubscriptionMix } from './workload';

/** PROF_DIR=dir writes the runtime process's CPU profile there (the gateway and dynalite run apart). */
function profileArgs(): string[] {
  return process.env.PROF_DIR ? ['--cpu-prof', `--cpu-prof-dir=${process.env.PROF_DIR}`] : [];
}

/** Runtime options that travel as JSON to the runtime child. */
export type OperatorsRuntimeOptions = Omit<LocalRuntimeOptions, 'log'>;

/** Options of {@link runOperatorsBench}. */
export interface OperatorsOptions {
  /** A name for the case in reports. */
  label?: string;
  /** Clients to open. Default 1,000. */
  clients?: number;
  /** Connects a second. Default 500. */
  perSecond?: number;
  /** Seconds of steady state measured. Default 20. */
  durationS?: number;
  /** Passed to startLocalRuntime in the child, e.g. `{postLatencyMs: 20}`. Default none (`npm start` defaults). */
  runtime?: OperatorsRuntimeOptions;
  /** Client processes. Default 1 below 1,000 clients, else 2. */
  clientProcesses?: number;
  mix?: SubscriptionMix;
  /** Runs a busy-looping process beside the case (a noisy neighbour on the 2 cores). Default false. */
  neighbour?: boolean;
  /** Seconds a client may take to open and subscribe before it counts as failed. Default 60. */
  handshakeTimeoutS?: number;
  log?: (line: string) => void;
}


/** What one case measured. */
export interface OperatorsReport {
  label: string;
  clients: number;
  perSecond: number;
  durationS: number;
  runtime: OperatorsRuntimeOptions;
  clientProcesses: number;
  mix: Record<string, number>;
  /** Clients open and subscribed, and those that were not, by cause. */
  opened: number;
  failed: number;
  failures: Record<string, number>;
  /** Upgrades refused with 429 and tried again (the dashboard retries them after a second). */
  retried429: number;
  /** Seconds from the first upgrade to the last, and the connect rate achieved. */
  connectSpanS: number;
  connectRateAchieved: number;
  /** Upgrade start to `open`, ms (to 0.1 ms), over the clients that opened. */
  connectMs: Summary;
  /** Subscribe sent to `subscribed`, ms, over every subscribe answered. */
  subscribeMs: Summary;
  /** Records stamped in the window: receipt − timestamp, ms. */
  steadyMs: Summary;
  alertMs: Summary;
  /** Seconds waited after the window for records stamped in it. */
  graceS: number;
  /** Records and frames received a second while the window was open. */
  recordsPerSecond: number;
  framesPerSecond: number;
  /** Records (live or snapshot) outside the receiving client's filters; must be 0. */
  outsideFilter: number;
  outsideExamples: string[];
  duplicates: number;
  /** Readings stamped in the window: received, and what the filters call for (pacing may conflate some). */
  readingsReceived: number;
  readingsExpected: number;
  /** Batches the simulator handed the stream in the window (0: the stream was stuck on an earlier one). */
  feedBatches: number;
  /** Alerts stamped in the window the simulator published, deliveries the filters call for, received, lost. */
  alertsPublished: number;
  alertsExpected: number;
  alertsReceived: number;
  alertsLost: number;
  /** Management API posts refused with 429: in the window, and over the whole case (connect burst included). */
  throttled: number;
  throttledTotal: number;
  postsPerSecond: number;
  /** Readings the stream folded into newer ones under pacing, in the window. */
  conflated: number;
  /** Clients closed after they were open and subscribed; error frames they got. */
  closedAfterOpen: number;
  errorFrames: Record<string, number>;
  /** Percent of one core over the window: runtime process, its descendants (dynalite), both. */
  serverCpuPercent: number;
  runtimeCpuPercent: number;
  descendantsCpuPercent: number;
  /** Server CPU (runtime + descendants) per record delivered in the window, µs (NaN when none was). */
  cpuUsPerRecord: number;
  /** The connect phase: server CPU percent of one core. */
  connectCpuPercent: number;
  /** Peak RSS of the runtime process, its descendants' RSS at the end, MB. */
  rssMB: number;
  descendantsRssMB: number;
  clientCpuPercent: number;
  /** Warnings and errors the runtime logged, by message (first 100 characters). */
  runtimeWarnings: Record<string, number>;
}

// ---------------------------------------------------------------- the runtime child

type RuntimeCommand = { cmd: 'stats' } | { cmd: 'published'; from: number; to: number };

interface RuntimeStats {
  type: 'stats';
  at: number;
  cpuUs: number;
  rss: number;
  rssPeak: number;
  posts: number;
  throttled: number;
  connections: number;
  totals: StreamTotals;
  warnings: Record<string, number>;
}

type RuntimeReply = { type: 'ready'; url: string; pid: number } | RuntimeStats | { type: 'published'; published: PublishedRecords & { batches: number } };

/** Runs in the child: the runtime, and what its simulator hands the stream (seen by wrapping DeviceSimulator.next). */
function runtimeChild(options: OperatorsRuntimeOptions): void {
  const batches: { at: number; readings: Map<string, number>; alerts: AlertRecord[] }[] = [];
  const devices = new Map<string, { deviceType: string; location: string }>();
  const next = DeviceSimulator.prototype.next;
  DeviceSimulator.prototype.next = function (this: DeviceSimulator, count: number, now?: number) {
    const out = next.call(this, count, now);
    const readings = new Map<string, number>();
    for (const r of out.readings) {
      readings.set(r.deviceId, (readings.get(r.deviceId) ?? 0) + 1);
      if (!devices.has(r.deviceId)) devices.set(r.deviceId, { deviceType: r.deviceType, location: r.location });
    }
    batches.push({ at: out.readings[0]?.timestamp ?? now ?? Date.now(), readings, alerts: out.alerts });
    return out;
  };
  const warnings: Record<string, number> = {};
  const log = (line: string) => {
    if (!/^(warn|error) /.test(line)) return;
    // By message: the JSON details (connection ids) would make every line its own key.
    const key = line.replace(/ \{.*$/, '').slice(0, 100);
    warnings[key] = (warnings[key] ?? 0) + 1;
  };
  let rssPeak = process.memoryUsage().rss;
  const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, process.memoryUsage().rss)), 200);
  sampler.unref();
  const send = (reply: RuntimeReply) => process.send!(reply);
  startLocalRuntime({ dashboardPort: 0, wsPort: 0, auth: 'none', ...options, log }).then(
    (runtime: LocalRuntime) => {
      send({ type: 'ready', url: runtime.wsUrl, pid: process.pid });
      process.on('message', (command: RuntimeCommand) => {
        if (command.cmd === 'stats') {
          const cpu = process.cpuUsage();
          const rss = process.memoryUsage().rss;
          rssPeak = Math.max(rssPeak, rss);
          send({
            type: 'stats',
            at: Date.now(),
            cpuUs: cpu.user + cpu.system,
            rss,
            rssPeak,
            posts: runtime.gateway.managementStats.posts,
            throttled: runtime.gateway.managementStats.throttled,
            connections: runtime.gateway.connectionCount,
            totals: { ...runtime.totals },
            warnings,
          });
        } else {
          const readings = new Map<string, number>();
          const alerts: PublishedRecords['alerts'] = [];
          let count = 0;
          for (const batch of batches) {
            if (batch.at < command.from || batch.at >= command.to) continue;
            count++;
            for (const [id, n] of batch.readings) readings.set(id, (readings.get(id) ?? 0) + n);
            for (const a of batch.alerts) {
              if (a.timestamp < command.from || a.timestamp >= command.to) continue;
              alerts.push({ alertId: a.alertId, deviceId: a.deviceId, deviceType: a.deviceType, location: a.location, level: a.level, timestamp: a.timestamp });
            }
          }
          send({
            type: 'published',
            published: {
              batches: count,
              readings: [...readings].map(([deviceId, n]) => ({ deviceId, ...devices.get(deviceId)!, count: n })),
              alerts,
            },
          });
        }
      });
      process.on('disconnect', () => void runtime.stop().then(() => process.exit(0)));
    },
    (error: unknown) => {
      console.error(`operators runtime: ${errorMessage(error)}`);
      process.exit(1);
    },
  );
}

/** The simulator's devices, as the runtime will make them. */
function simulatorDevices(runtime: OperatorsRuntimeOptions): BenchDevice[] {
  const sim = runtime.simulator === false ? undefined : runtime.simulator;
  return new DeviceSimulator(sim ?? {}).devices.map((d) => ({
    deviceId: d.deviceId,
    deviceType: d.deviceType,
    location: d.location,
    partition: fnv1a(d.deviceId) % 3,
  }));
}

/** Opens the clients against a runtime in a child process, then measures the steady state. */
export async function runOperatorsBench(options: OperatorsOptions = {}): Promise<OperatorsReport> {
  const clients = options.clients ?? 1000;
  const perSecond = options.perSecond ?? 500;
  const durationS = options.durationS ?? 20;
  const runtimeOptions = options.runtime ?? {};
  const label = options.label ?? `${clients} clients at ${perSecond}/s ${JSON.stringify(runtimeOptions)}`;
  const processCount = options.clientProcesses ?? (clients < 1000 ? 1 : 2);
  const log = options.log ?? (() => {});
  const timeoutMs = (options.handshakeTimeoutS ?? 60) * 1000;
  if (runtimeOptions.simulator === false) throw new Error('the operators bench needs the simulator');

  const specs = makeClients(clients, simulatorDevices(runtimeOptions), options.mix ?? DEFAULT_MIX);
  const runtime = new Child<RuntimeReply>(
    fork(__filename, ['--runtime-child', JSON.stringify(runtimeOptions)], { execArgv: ['--import', 'tsx', ...profileArgs()], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }),
    'runtime',
  );
  const workers = Array.from({ length: processCount }, (_, i) => startClientWorker(`client process ${i}`));
  let neighbour: ChildProcess | undefined;
  try {
    if (options.neighbour) neighbour = startBusyLoop();
    const [ready] = await Promise.all([runtime.next('ready'), ...workers.map((w) => w.next('ready'))]);
    const stats = () => runtime.request({ cmd: 'stats' } satisfies RuntimeCommand, 'stats');
    const serverCpu = async () => {
      const s = await stats();
      const d = descendants(ready.pid);
      return { s, d, at: Date.now() };
    };
    // Let the feed and dynalite warm up, as a runtime that has been up a while.
    await sleep(2000);

    log(`operators ${label}: opening ${clients} clients at ${perSecond}/s from ${processCount} process(es)`);
    const before = await serverCpu();
    const startAt = Date.now() + 200;
    const opened = await Promise.all(
      workers.map((w, i) =>
        w.request(
          {
            cmd: 'open',
            url: ready.url,
            startAt,
            timeoutMs,
            clients: specs.filter((c) => c.index % processCount === i).map((c) => ({ index: c.index, filters: c.filters, dueMs: (c.index * 1000) / perSecond })),
          } satisfies WorkerCommand,
          'opened',
        ),
      ),
    );
    const connected = await serverCpu();
    const outcomes: OpenOutcome[] = opened.flatMap((o) => o.outcomes);
    const failures: Record<string, number> = {};
    for (const o of outcomes) if (o.failure) failures[o.failure] = (failures[o.failure] ?? 0) + 1;
    const failed = outcomes.filter((o) => o.failure).length;
    const retried429 = outcomes.reduce((sum, o) => sum + o.retries, 0);
    const starts = outcomes.map((o) => o.startedAt);
    const connectSpanS = (Math.max(...starts) - Math.min(...starts)) / 1000;
    const connectMs = percentiles(outcomes.flatMap((o) => (o.connectMs === undefined ? [] : [o.connectMs])));
    const subscribeMs = percentiles(outcomes.flatMap((o) => o.subscribeMs));
    log(
      `operators ${label}: ${clients - failed} open and subscribed, ${failed} failed${failed ? ' ' + JSON.stringify(failures) : ''}, ${retried429} upgrades retried after 429; ` +
        `connect p50/p95 ${connectMs.p50}/${connectMs.p95} ms, subscribe p95 ${subscribeMs.p95} ms`,
    );

    // Snapshots and the connect burst's backlog drain before the window opens.
    await sleep(3000);
    const from = Date.now() + 100;
    const to = from + durationS * 1000;
    await Promise.all(workers.map((w) => w.request({ cmd: 'measure', from, to } satisfies WorkerCommand, 'measuring')));
    await sleep(Math.max(0, from - Date.now()));
    const start = await serverCpu();
    await sleep(Math.max(0, to - Date.now()));
    const end = await serverCpu();
    // Records stamped in the window may still be on their way: wait until none has arrived for
    // 3 s (a runtime far behind may deliver nothing for a while: then up to 30 s).
    let last = -1;
    let quietSince = Date.now();
    for (const capAt = Date.now() + 30_000; Date.now() < capAt; await sleep(500)) {
      const counts = await Promise.all(workers.map((w) => w.request({ cmd: 'counts' } satisfies WorkerCommand, 'counts')));
      const received = counts.reduce((s, c) => s + c.received, 0);
      if (received !== last) {
        last = received;
        quietSince = Date.now();
      } else if (received > 0 && Date.now() - quietSince >= 3000) break;
    }
    const graceS = round((Date.now() - to) / 1000, 1);
    const { published } = await runtime.request({ cmd: 'published', from, to } satisfies RuntimeCommand, 'published');
    const tallies: OperatorsTally[] = (
      await Promise.all(workers.map((w) => w.request({ cmd: 'operators-report', published } satisfies WorkerCommand, 'operators-report')))
    ).map((r) => r.tally);

    const steady = new LatencyHistogram();
    const alerts = new LatencyHistogram();
    for (const t of tallies) {
      steady.merge(t.histogram);
      alerts.merge(t.alertHistogram);
    }
    const sum = (pick: (t: OperatorsTally) => number) => tallies.reduce((s, t) => s + pick(t), 0);
    const wallMs = end.s.at - start.s.at;
    const runtimeCpuUs = end.s.cpuUs - start.s.cpuUs;
    const descendantsCpuUs = end.d.cpuUs - start.d.cpuUs;
    const recordsInWindow = sum((t) => t.recordsInWindow);
    const errorFrames: Record<string, number> = {};
    for (const t of tallies) for (const [code, n] of Object.entries(t.errorFrames)) errorFrames[code] = (errorFrames[code] ?? 0) + n;
    const connectWallMs = connected.at - before.at;
    const connectCpuUs = connected.s.cpuUs - before.s.cpuUs + (connected.d.cpuUs - before.d.cpuUs);
    const finalStats = await stats();
    const report: OperatorsReport = {
      label,
      clients,
      perSecond,
      durationS,
      runtime: runtimeOptions,
      clientProcesses: processCount,
      mix: mixSummary(specs),
      opened: clients - failed,
      failed,
      failures,
      retried429,
      connectSpanS: round(connectSpanS, 2),
      connectRateAchieved: connectSpanS > 0 ? round((clients - 1) / connectSpanS, 0) : NaN,
      connectMs,
      subscribeMs,
      steadyMs: steady.summary(),
      alertMs: alerts.summary(),
      graceS,
      recordsPerSecond: round(recordsInWindow / durationS, 0),
      framesPerSecond: round(sum((t) => t.framesInWindow) / durationS, 0),
      outsideFilter: sum((t) => t.outsideFilter),
      outsideExamples: tallies.flatMap((t) => t.outsideExamples).slice(0, 5),
      duplicates: sum((t) => t.duplicates),
      readingsReceived: sum((t) => t.readingsReceived),
      readingsExpected: sum((t) => t.readingsExpected),
      feedBatches: published.batches,
      alertsPublished: published.alerts.length,
      alertsExpected: sum((t) => t.alertsExpected),
      alertsReceived: sum((t) => t.alertsReceived),
      alertsLost: sum((t) => t.alertsLost),
      throttled: end.s.throttled - start.s.throttled,
      throttledTotal: finalStats.throttled,
      postsPerSecond: round(((end.s.posts - start.s.posts) * 1000) / wallMs, 0),
      conflated: end.s.totals.conflated - start.s.totals.conflated,
      closedAfterOpen: sum((t) => t.closedAfterOpen),
      errorFrames,
      serverCpuPercent: round(((runtimeCpuUs + descendantsCpuUs) / 1000 / wallMs) * 100, 1),
      runtimeCpuPercent: round((runtimeCpuUs / 1000 / wallMs) * 100, 1),
      descendantsCpuPercent: round((descendantsCpuUs / 1000 / wallMs) * 100, 1),
      cpuUsPerRecord: recordsInWindow ? round((runtimeCpuUs + descendantsCpuUs) / recordsInWindow, 1) : NaN,
      connectCpuPercent: round((connectCpuUs / 1000 / Math.max(1, connectWallMs)) * 100, 1),
      rssMB: Math.round(finalStats.rssPeak / 2 ** 20),
      descendantsRssMB: Math.round(descendants(ready.pid).rss / 2 ** 20),
      clientCpuPercent: round((sum((t) => t.cpuMs) / Math.max(1, Date.now() - from)) * 100, 1),
      runtimeWarnings: finalStats.warnings,
    };
    if (published.batches === 0) log(`operators ${label}: the runtime reported no simulator batches in the window: expected counts are not known`);
    log(
      `operators ${label}: steady p50/p95/p99 ${report.steadyMs.p50}/${report.steadyMs.p95}/${report.steadyMs.p99} ms, alerts p95 ${report.alertMs.p95} ms ` +
        `(${report.alertsReceived}/${report.alertsExpected} alerts, ${report.alertsLost} lost), ${report.recordsPerSecond} records/s in ${report.framesPerSecond} frames/s, ` +
        `outside filter ${report.outsideFilter}, duplicates ${report.duplicates}, 429s ${report.throttled}, server CPU ${report.serverCpuPercent} %, RSS ${report.rssMB} MB`,
    );
    return report;
  } finally {
    neighbour?.kill('SIGKILL');
    await Promise.all(workers.map((w) => w.stop({ cmd: 'close' } satisfies WorkerCommand)));
    await runtime.stop();
  }
}

function parseArgs(argv: string[]): OperatorsOptions {
  const options: OperatorsOptions = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) throw new Error(`${arg} needs a value`);
      return argv[++i];
    };
    if (arg === '--quick') Object.assign(options, { clients: 100, perSecond: 100, durationS: 5 });
    else if (arg === '--clients') options.clients = Number(value());
    else if (arg === '--rate') options.perSecond = Number(value());
    else if (arg === '--duration') options.durationS = Number(value());
    else if (arg === '--processes') options.clientProcesses = Number(value());
    else if (arg === '--runtime') options.runtime = JSON.parse(value()) as OperatorsRuntimeOptions;
    else if (arg === '--label') options.label = value();
    else throw new Error(`unknown option ${arg}; options: --quick --clients N --rate R --duration S --processes P --runtime '<json>' --label NAME`);
  }
  return options;
}

if (process.argv[2] === '--runtime-child') {
  runtimeChild(JSON.parse(process.argv[3] ?? '{}') as OperatorsRuntimeOptions);
} else if (require.main === module) {
  let options: OperatorsOptions;
  try {
    options = parseArgs(process.argv.slice(2));
  } catch (error) {
    console.error(`operators: ${errorMessage(error)}`);
    process.exit(2);
  }
  runOperatorsBench({ ...options, log: (line) => console.error(line) }).then(
    (report) => {
      console.log(JSON.stringify(report, null, 2));
      process.exit(0);
    },
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
}
