/**
 * The cost of resume (issue 20): the local runtime with simulated devices at a realistic rate in a
 * child process; N live clients measuring record-to-client latency throughout; and R resuming
 * clients, all subscribed, then cut (socket terminated) for T seconds, then reconnected at once,
 * each subscribe carrying the last offset it saw per `topic:partition` (DESIGN.md "Resume").
 *
 * Measured: reconnect to `resumed` and to caught up (the first live record after `resumed`, or
 * `resumed` itself when a live one came first), records replayed per client and in all, replayed
 * records a second over the burst, live clients' latency before the cut / while the resumers are
 * away / during the resume burst / after it (one run: the before phase is the baseline), wire
 * duplicates per resumer (a cursor twice), records missed (each resumer's records against a
 * never-cut live twin with the same filters, over the whole run), the runtime's CPU, event-loop
 * delay and RSS per phase. With `profileDir`, the runtime's CPU profile of the burst alone
 * (node:inspector, started at the reconnect and stopped at the last `resumed`).
 *
 *   npx tsx bench/resume.ts [--cut 10] [--live 200] [--resumers 100] [--rate 1000] [--devices 500]
 *                           [--kafka localhost:9092] [--neighbour] [--profile-dir DIR] [--quick]
 *
 * prints the report as JSON; `npm run bench -- --scenario resume` runs the cases of issue 20.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { loadavg } from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { errorMessage } from '../lambdas/core/errors';
import { startLocalRuntime, type LocalRuntime, type LocalRuntimeOptions, type StreamTotals } from '../local/runtime';
import { DeviceSimulator } from '../local/simulator';
import { runResumeClients, type ResumeOutcome, type ResumeWorkerCommand, type ResumeWorkerReply } from './resume-clients';
import { summariseProfile, type ProfileSummary } from './resume-profile';
import { runReplayCost, type ReplayCostReport } from './replay-cost';
import { round, sleep } from './stats';
import { Child, descendants, startBusyLoop, machineTicks, percentiles, type Summary } from './harness';
import { DEFAULT_MIX, makeClients, mixSummary, type BenchDevice } from './workload';

/** Options of {@link runResumeBench}. */
export interface ResumeBenchOptions {
  label?: string;
  /** Seconds the resumers are away. Default 10. */
  cutS?: number;
  /** Live clients (the first `resumers` of them are the resumers' twins). Default 200. */
  live?: number;
  /** Resuming clients. Default 100. */
  resumers?: number;
  /** Simulated readings a second. Default 1,000. */
  rate?: number;
  /** Simulated devices. Default 500 (2 readings a second each at the default rate). */
  devices?: number;
  /** Seconds of the before and after phases. Default 10. */
  phaseS?: number;
  /** Seconds waited after the after phase for records stamped before its end. Default 20. */
  graceS?: number;
  /** Brokers: the runtime reads Kafka (`--kafka`) instead of the embedded feed. Default none. */
  kafka?: string[];
  /** A busy-looping process beside the case. Default false. */
  neighbour?: boolean;
  /** Writes the runtime's CPU profile of the burst there and summarises it. Default none. */
  profileDir?: string;
  log?: (line: string) => void;
}


/** CPU (percent of one core) and event-loop delay of one phase. */
export interface PhaseLoad {
  seconds: number;
  runtimeCpuPercent: number;
  /** The gateway's process and dynalite (and the broker's JVM is not counted: it is not a descendant). */
  descendantsCpuPercent: number;
  loopDelayP99Ms: number;
  loopDelayMaxMs: number;
  streamRecords: number;
  conflated: number;
  posts: number;
  /** The whole machine's busy CPU, percent of all its cores (other engineers' work included). */
  machineBusyPercent: number;
}

/** What one case measured. */
export interface ResumeReport {
  label: string;
  feed: 'embedded' | 'kafka';
  neighbour: boolean;
  cutS: number;
  rate: number;
  devices: number;
  live: number;
  resumers: number;
  mix: Record<string, number>;
  startedAt: string;
  /** The machine's 1-minute load average at the start and at the end of the case. */
  loadAverage: [number, number];
  /** Resumers that reconnected and got every `resumed`; those that did not, with why. */
  resumed: number;
  failures: string[];
  tooFarBehind: number;
  /** Reconnect start (new socket) to open, to every `subscribed`, to every `resumed`, to caught up, ms. */
  openMs: Summary;
  subscribedMs: Summary;
  resumedMs: Summary;
  caughtUpMs: Summary;
  /** Resumers with no live record within the wait after `resumed` (quiet filters). */
  notCaughtUp: number;
  /** `replayed` summed per resumer, and over all of them. */
  replayedPerClient: Summary;
  replayedTotal: number;
  /** Records each resumer received between the reconnect and its last `resumed` (replay plus live interleaved). */
  receivedBeforeResumedTotal: number;
  /** Replayed records over the burst (first reconnect to the last `resumed`), a second. */
  replayedPerSecond: number;
  /** The burst: first reconnect to last `resumed`, s. */
  burstS: number;
  /** Records the runtime read from the log for the resumes (its `resume` log lines), and the resumes it answered. */
  scannedTotal: number;
  resumesAnswered: number;
  tooFarReasons: Record<string, number>;
  /** Records received twice under one cursor, per resumer (whole life), and their sum. */
  duplicatesPerResumer: Summary;
  duplicatesTotal: number;
  resumersWithDuplicates: number;
  liveDuplicates: number;
  /**
   * Against each resumer's never-cut twin over the records stamped from the before phase to the
   * end, for the resumers replayed to (a resumer told it was too far behind gets the snapshot, not
   * the gap: its records lacking are {@link missedPastWindow}, by contract).
   */
  missedTotal: number;
  missedPastWindow: number;
  resumersMissing: number;
  extraTotal: number;
  comparedRecords: number;
  missedExamples: string[];
  /** Missed and extra records by when they were stamped: before the cut, while away, after the reconnect; and by topic. */
  missedBy: Record<string, number>;
  extraBy: Record<string, number>;
  /** Live clients' latency (receipt − record timestamp) by receipt time. */
  latency: { before: Summary; away: Summary; burst: Summary; after: Summary };
  /** The same for the live clients' alerts alone (the alerts topic has a lane of its own). */
  alertLatency: { before: Summary; away: Summary; burst: Summary; after: Summary };
  /** Live p95 per second from the before phase to the end: [s from the cut, records, p95 ms]. */
  timeline: [number, number, number][];
  load: { before: PhaseLoad; away: PhaseLoad; burst: PhaseLoad; after: PhaseLoad };
  /** Runtime RSS: peak over the run, at the end of the before phase and at the end; descendants' at the end. MB. */
  rssPeakMB: number;
  rssBeforeMB: number;
  rssAfterMB: number;
  descendantsRssMB: number;
  clientCpuMs: number;
  runtimeWarnings: Record<string, number>;
  profile?: ProfileSummary;
}

// ---------------------------------------------------------------- the runtime child

type RuntimeCommand = { cmd: 'stats' } | { cmd: 'profile-start' } | { cmd: 'profile-stop'; file: string };

interface RuntimeStats {
  type: 'stats';
  at: number;
  cpuUs: number;
  rss: number;
  rssPeak: number;
  posts: number;
  totals: StreamTotals;
  /** Event-loop delay since the previous stats, ms. */
  loopP99Ms: number;
  loopMaxMs: number;
  resumes: { answered: number; replayed: number; scanned: number; tooFar: Record<string, number> };
  warnings: Record<string, number>;
}

type RuntimeReply = { type: 'ready'; url: string; pid: number } | RuntimeStats | { type: 'profiled'; file: string };

/** Runs in the child: the runtime, its resume log lines counted, its CPU profile on demand. */
function runtimeChild(options: Omit<LocalRuntimeOptions, 'log'>): void {
  const warnings: Record<string, number> = {};
  const resumes: RuntimeStats['resumes'] = { answered: 0, replayed: 0, scanned: 0, tooFar: {} };
  const log = (line: string) => {
    if (line.startsWith('info resume {')) {
      const note = JSON.parse(line.slice('info resume '.length)) as { replayed: number; scanned?: number; tooFarBehind?: string };
      resumes.answered++;
      resumes.replayed += note.replayed;
      resumes.scanned += note.scanned ?? 0;
      if (note.tooFarBehind) {
        // By reason without its numbers, so that one reason is one key.
        const reason = note.tooFarBehind.replace(/\d+/g, 'N').slice(0, 100);
        resumes.tooFar[reason] = (resumes.tooFar[reason] ?? 0) + 1;
      }
      return;
    }
    if (!/^(warn|error) /.test(line)) return;
    const key = line.replace(/ \{.*$/, '').slice(0, 100);
    warnings[key] = (warnings[key] ?? 0) + 1;
  };
  const loop = monitorEventLoopDelay({ resolution: 10 });
  loop.enable();
  let rssPeak = process.memoryUsage().rss;
  setInterval(() => (rssPeak = Math.max(rssPeak, process.memoryUsage().rss)), 200).unref();
  const session = new Session();
  session.connect();
  const post = (method: string, params?: object) =>
    new Promise<unknown>((resolve, reject) => session.post(method, params ?? {}, (error, result) => (error ? reject(error) : resolve(result))));
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
            totals: { ...runtime.totals },
            loopP99Ms: round(loop.percentile(99) / 1e6, 1),
            loopMaxMs: round(loop.max / 1e6, 1),
            resumes: { ...resumes, tooFar: { ...resumes.tooFar } },
            warnings,
          });
          loop.reset();
        } else if (command.cmd === 'profile-start') {
          void post('Profiler.enable').then(() => post('Profiler.start'));
        } else {
          void post('Profiler.stop').then((result) => {
            mkdirSync(path.dirname(command.file), { recursive: true });
            writeFileSync(command.file, JSON.stringify((result as { profile: object }).profile));
            send({ type: 'profiled', file: command.file });
          });
        }
      });
      process.on('disconnect', () => void runtime.stop().then(() => process.exit(0)));
    },
    (error: unknown) => {
      console.error(`resume runtime: ${errorMessage(error)}`);
      process.exit(1);
    },
  );
}

/** Runs one case; see the module comment. */
export async function runResumeBench(options: ResumeBenchOptions = {}): Promise<ResumeReport> {
  const cutS = options.cutS ?? 10;
  const liveCount = options.live ?? 200;
  const resumerCount = Math.min(options.resumers ?? 100, liveCount);
  const rate = options.rate ?? 1000;
  const deviceCount = options.devices ?? 500;
  const phaseS = options.phaseS ?? 10;
  const feed = options.kafka ? 'kafka' : 'embedded';
  const label = options.label ?? `${feed}, cut ${cutS} s${options.neighbour ? ', beside a busy loop' : ''}`;
  const log = options.log ?? (() => {});
  const runtimeOptions: Omit<LocalRuntimeOptions, 'log'> = {
    simulator: { devices: deviceCount, readingsPerSecond: rate },
    ...(options.kafka ? { kafka: { brokers: options.kafka, groupId: `resume-bench-${Date.now()}` } } : {}),
  };
  const devices: BenchDevice[] = new DeviceSimulator({ devices: deviceCount }).devices.map((d) => ({ ...d, partition: 0 }));
  const specs = makeClients(liveCount, devices, DEFAULT_MIX);
  const startedAt = new Date().toISOString();
  const loadAtStart = round(loadavg()[0], 2);

  const runtime = new Child<RuntimeReply>(
    fork(__filename, ['--runtime-child', JSON.stringify(runtimeOptions)], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }),
    'runtime',
  );
  const forkClients = (name: string) =>
    new Child<ResumeWorkerReply>(fork(__filename, ['--clients-child'], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }), name);
  const liveWorker = forkClients('live clients');
  const resumeWorker = forkClients('resuming clients');
  let neighbour: ChildProcess | undefined;
  try {
    if (options.neighbour) neighbour = startBusyLoop();
    const [ready] = await Promise.all([runtime.next('ready'), liveWorker.next('ready'), resumeWorker.next('ready')]);
    const sample = async () => {
      const s = await runtime.request({ cmd: 'stats' } satisfies RuntimeCommand, 'stats');
      return { s, d: descendants(ready.pid), m: machineTicks() };
    };
    // The feed warms up (and, on Kafka, the bridge joins its group) as a runtime up a while.
    await sleep(options.kafka ? 5000 : 2000);

    log(`resume ${label}: opening ${liveCount} live and ${resumerCount} resuming clients`);
    const [liveOpened, resumersOpened] = await Promise.all([
      liveWorker.request(
        { cmd: 'open', url: ready.url, perSecond: 200, timeoutMs: 60_000, clients: specs.map((s) => ({ index: s.index, role: 'live', filters: s.filters })) } satisfies ResumeWorkerCommand,
        'opened',
      ),
      resumeWorker.request(
        {
          cmd: 'open',
          url: ready.url,
          perSecond: 100,
          timeoutMs: 60_000,
          clients: specs.slice(0, resumerCount).map((s) => ({ index: 1000 + s.index, role: 'resumer', filters: s.filters })),
        } satisfies ResumeWorkerCommand,
        'opened',
      ),
    ]);
    const openFailures = [...liveOpened.failed, ...resumersOpened.failed];
    if (openFailures.length) log(`resume ${label}: ${openFailures.length} clients did not open: ${openFailures.slice(0, 3).join('; ')}`);
    // Snapshots and the connect burst drain before the baseline (slowly on a busy machine).
    await sleep(5000);

    const beforeFrom = Date.now();
    const s0 = await sample();
    await sleep(phaseS * 1000);
    const s1 = await sample();
    const cut = await resumeWorker.request({ cmd: 'cut' } satisfies ResumeWorkerCommand, 'cut');
    log(`resume ${label}: ${cut.clients} resumers cut for ${cutS} s`);
    await sleep(cutS * 1000);

    const s2 = await sample();
    if (options.profileDir) runtime.process.send({ cmd: 'profile-start' } satisfies RuntimeCommand);
    const { at: reconnectAt } = await resumeWorker.request({ cmd: 'resume', url: ready.url } satisfies ResumeWorkerCommand, 'resuming');
    let status = await resumeWorker.request({ cmd: 'status' } satisfies ResumeWorkerCommand, 'status');
    for (const capAt = Date.now() + 120_000; Date.now() < capAt && status.resumed + status.failed < status.resumers; await sleep(100)) {
      status = await resumeWorker.request({ cmd: 'status' } satisfies ResumeWorkerCommand, 'status');
    }
    const burstEnd = Math.max(status.lastResumedAt, reconnectAt + 1);
    const s3 = await sample();
    let profile: ProfileSummary | undefined;
    if (options.profileDir) {
      const file = path.join(options.profileDir, `resume-burst-${feed}-cut${cutS}${options.neighbour ? '-neighbour' : ''}-${Date.now()}.cpuprofile`);
      await runtime.request({ cmd: 'profile-stop', file } satisfies RuntimeCommand, 'profiled');
      profile = summariseProfile(file);
    }
    log(`resume ${label}: ${status.resumed} of ${status.resumers} resumed in ${burstEnd - reconnectAt} ms, ${status.failed} failed`);
    const afterEnd = burstEnd + phaseS * 1000;
    await sleep(Math.max(0, afterEnd - Date.now()));
    const s4 = await sample();
    // Records stamped before the end may still be on their way (a lagging lane): the comparison
    // with the twins waits for them. Records keep flowing, so there is no quiet moment to wait for.
    await sleep((options.graceS ?? 20) * 1000);

    const phases = [
      { name: 'before', from: beforeFrom, to: cut.at },
      { name: 'away', from: cut.at, to: reconnectAt },
      { name: 'burst', from: reconnectAt, to: burstEnd },
      { name: 'after', from: burstEnd, to: afterEnd },
    ];
    const bins = { from: cut.at - phaseS * 1000, to: afterEnd, stepMs: 1000 };
    const twins = specs.slice(0, resumerCount).map((s) => s.index);
    const compare = { from: beforeFrom, to: afterEnd };
    const [liveReport, resumeReport] = await Promise.all([
      liveWorker.request({ cmd: 'report', phases, bins, compare: { ...compare, indexes: twins } } satisfies ResumeWorkerCommand, 'report'),
      resumeWorker.request({ cmd: 'report', phases, bins, compare: { ...compare, indexes: twins.map((i) => 1000 + i) } } satisfies ResumeWorkerCommand, 'report'),
    ]);

    // Records missed: a twin's records the resumer never got; extra: the reverse.
    let missedTotal = 0;
    let extraTotal = 0;
    let comparedRecords = 0;
    let resumersMissing = 0;
    const missedExamples: string[] = [];
    const missedBy: Record<string, number> = {};
    const extraBy: Record<string, number> = {};
    const when = (stamp: number) => (stamp < cut.at ? 'before the cut' : stamp < reconnectAt ? 'away' : 'after the reconnect');
    const count = (into: Record<string, number>, name: string, stamp: number) => {
      for (const key of [when(stamp), name.slice(0, name.indexOf(':'))]) into[key] = (into[key] ?? 0) + 1;
    };
    const pairs = (flat: number[] = []) => {
      const out = new Map<number, number>();
      for (let i = 0; i < flat.length; i += 2) out.set(flat[i], flat[i + 1]);
      return out;
    };
    const pastWindow = new Set(resumeReport.outcomes.filter((o) => o.tooFarBehind > 0).map((o) => o.index - 1000));
    let missedPastWindow = 0;
    for (const index of twins) {
      const twin = liveReport.offsets[index] ?? {};
      const resumer = resumeReport.offsets[1000 + index] ?? {};
      let missed = 0;
      for (const name of new Set([...Object.keys(twin), ...Object.keys(resumer)])) {
        const had = pairs(resumer[name]);
        const should = pairs(twin[name]);
        comparedRecords += should.size;
        for (const [offset, stamp] of should) {
          if (had.has(offset)) continue;
          if (pastWindow.has(index)) {
            missedPastWindow++;
            continue;
          }
          missed++;
          count(missedBy, name, stamp);
          if (missedExamples.length < 5) missedExamples.push(`resumer ${index} lacks ${name}:${offset} stamped ${stamp - reconnectAt} ms from the reconnect`);
        }
        for (const [offset, stamp] of had) {
          if (should.has(offset)) continue;
          extraTotal++;
          count(extraBy, name, stamp);
        }
      }
      missedTotal += missed;
      if (missed) resumersMissing++;
    }

    // RESUME_DUMP=file keeps what the comparison saw, to look into a miss.
    if (process.env.RESUME_DUMP) {
      const dump = { cutAt: cut.at, reconnectAt, specs: specs.slice(0, resumerCount), twins: liveReport.offsets, resumers: resumeReport.offsets };
      writeFileSync(process.env.RESUME_DUMP, JSON.stringify(dump));
    }
    const outcomes: ResumeOutcome[] = resumeReport.outcomes;
    const values = (pick: (o: ResumeOutcome) => number | undefined) => outcomes.flatMap((o) => (pick(o) === undefined ? [] : [pick(o)!]));
    const load = (a: Awaited<ReturnType<typeof sample>>, b: Awaited<ReturnType<typeof sample>>): PhaseLoad => {
      const ms = Math.max(1, b.s.at - a.s.at);
      return {
        seconds: round(ms / 1000, 1),
        runtimeCpuPercent: round(((b.s.cpuUs - a.s.cpuUs) / 1000 / ms) * 100, 1),
        descendantsCpuPercent: round(((b.d.cpuUs - a.d.cpuUs) / 1000 / ms) * 100, 1),
        loopDelayP99Ms: b.s.loopP99Ms,
        loopDelayMaxMs: b.s.loopMaxMs,
        streamRecords: b.s.totals.records - a.s.totals.records,
        conflated: b.s.totals.conflated - a.s.totals.conflated,
        posts: b.s.posts - a.s.posts,
        machineBusyPercent: round(((b.m.busy - a.m.busy) / Math.max(1, b.m.total - a.m.total)) * 100, 1),
      };
    };
    const replayedTotal = outcomes.reduce((sum, o) => sum + o.replayed, 0);
    const burstS = (burstEnd - reconnectAt) / 1000;
    const duplicates = outcomes.map((o) => o.duplicates);
    const report: ResumeReport = {
      label,
      feed,
      neighbour: options.neighbour ?? false,
      cutS,
      rate,
      devices: deviceCount,
      live: liveCount,
      resumers: resumerCount,
      mix: mixSummary(specs.slice(0, resumerCount)),
      startedAt,
      loadAverage: [loadAtStart, round(loadavg()[0], 2)],
      resumed: status.resumed,
      failures: [...openFailures, ...outcomes.flatMap((o) => (o.failure ? [`resumer ${o.index - 1000}: ${o.failure}`] : []))],
      tooFarBehind: outcomes.filter((o) => o.tooFarBehind > 0).length,
      openMs: percentiles(values((o) => o.openMs)),
      subscribedMs: percentiles(values((o) => o.subscribedMs)),
      resumedMs: percentiles(values((o) => o.resumedMs)),
      caughtUpMs: percentiles(values((o) => o.caughtUpMs)),
      notCaughtUp: outcomes.filter((o) => o.caughtUpMs === undefined).length,
      replayedPerClient: percentiles(outcomes.map((o) => o.replayed)),
      replayedTotal,
      receivedBeforeResumedTotal: outcomes.reduce((sum, o) => sum + o.receivedBeforeResumed, 0),
      replayedPerSecond: Math.round(replayedTotal / burstS),
      burstS: round(burstS, 2),
      scannedTotal: s3.s.resumes.scanned - s2.s.resumes.scanned,
      resumesAnswered: s4.s.resumes.answered - s2.s.resumes.answered,
      tooFarReasons: s4.s.resumes.tooFar,
      duplicatesPerResumer: percentiles(duplicates),
      duplicatesTotal: duplicates.reduce((s, v) => s + v, 0),
      resumersWithDuplicates: duplicates.filter((d) => d > 0).length,
      liveDuplicates: liveReport.liveDuplicates,
      missedTotal,
      missedPastWindow,
      resumersMissing,
      extraTotal,
      comparedRecords,
      missedExamples,
      missedBy,
      extraBy,
      latency: {
        before: liveReport.phases.before,
        away: liveReport.phases.away,
        burst: liveReport.phases.burst,
        after: liveReport.phases.after,
      },
      alertLatency: {
        before: liveReport.alertPhases.before,
        away: liveReport.alertPhases.away,
        burst: liveReport.alertPhases.burst,
        after: liveReport.alertPhases.after,
      },
      timeline: liveReport.timeline.map(([at, n, p95]) => [Math.round((at - cut.at) / 1000), n, p95]),
      load: { before: load(s0, s1), away: load(s1, s2), burst: load(s2, s3), after: load(s3, s4) },
      rssPeakMB: Math.round(s4.s.rssPeak / 2 ** 20),
      rssBeforeMB: Math.round(s1.s.rss / 2 ** 20),
      rssAfterMB: Math.round(s4.s.rss / 2 ** 20),
      descendantsRssMB: Math.round(s4.d.rss / 2 ** 20),
      clientCpuMs: Math.round(liveReport.cpuMs + resumeReport.cpuMs),
      runtimeWarnings: s4.s.warnings,
      ...(profile ? { profile } : {}),
    };
    log(
      `resume ${label}: resumed p50/p95/max ${report.resumedMs.p50}/${report.resumedMs.p95}/${report.resumedMs.max} ms, caught up p95 ${report.caughtUpMs.p95} ms; ` +
        `${report.replayedTotal} replayed (${report.replayedPerSecond}/s over ${report.burstS} s, ${report.scannedTotal} scanned); ` +
        `live p95 before/away/burst/after ${report.latency.before.p95}/${report.latency.away.p95}/${report.latency.burst.p95}/${report.latency.after.p95} ms; ` +
        `duplicates ${report.duplicatesTotal}, missed ${report.missedTotal} of ${report.comparedRecords}, extra ${report.extraTotal}; ` +
        `runtime CPU burst ${report.load.burst.runtimeCpuPercent} %, loop max ${report.load.burst.loopDelayMaxMs} ms, RSS peak ${report.rssPeakMB} MB`,
    );
    return report;
  } finally {
    neighbour?.kill('SIGKILL');
    await Promise.all([liveWorker, resumeWorker].map((w) => w.stop({ cmd: 'close' } satisfies ResumeWorkerCommand)));
    await runtime.stop();
  }
}

/** Options of {@link runResumeCases}. */
export interface ResumeCasesOptions {
  quick?: boolean;
  /** Brokers: the cases run on Kafka too. */
  kafka?: string[];
  /** CPU profiles of the bursts (the cases without a busy loop). */
  profileDir?: string;
  log?: (line: string) => void;
}

/** The resume scenario's results: the cases, and the replay core's CPU, cold and warm (bench/replay-cost.ts). */
export interface ResumeResults {
  cases: ResumeReport[];
  replayCore: ReplayCostReport[];
}

/**
 * The cases of issue 20: cuts of 10 and 30 s on the embedded feed, each again beside a
 * busy-looping process, and the same on Kafka when brokers are given; then the replay core's CPU
 * alone for cuts of 10 and 20 s. A quick run: one small case.
 */
export async function runResumeCases(options: ResumeCasesOptions = {}): Promise<ResumeResults> {
  const feeds: (string[] | undefined)[] = [undefined, ...(options.kafka ? [options.kafka] : [])];
  const plan: ResumeBenchOptions[] = options.quick
    ? [{ live: 40, resumers: 20, rate: 200, devices: 100, cutS: 3, phaseS: 3, graceS: 5 }]
    : feeds.flatMap((kafka) =>
        [10, 30].flatMap((cutS) => [
          { cutS, kafka, profileDir: options.profileDir },
          { cutS, kafka, neighbour: true },
        ]),
      );
  const cases: ResumeReport[] = [];
  for (const c of plan) cases.push(await runResumeBench({ ...c, log: options.log }));
  const replayCore: ReplayCostReport[] = [];
  for (const cutS of options.quick ? [3] : [10, 20]) {
    replayCore.push(await runReplayCost(cutS, options.quick ? 20 : 100, options.quick ? 1 : 5));
    const r = replayCore[replayCore.length - 1];
    options.log?.(`resume: replay core, cut ${cutS} s: ${r.medianColdMs} ms CPU for ${r.resumes} resumes cold, ${r.medianWarmMs} ms warm, same records ${r.sameRecordsInOrder}`);
  }
  return { cases, replayCore };
}

const fmt = (n: number) => (Number.isFinite(n) ? n.toLocaleString('en-US') : '–');
const spread = (s: Summary) => `${fmt(s.p50)} / ${fmt(s.p95)} / ${fmt(s.max)}`;

/** The markdown section of the resume scenario. */
export function resumeMarkdown({ cases: reports, replayCore }: ResumeResults): string[] {
  if (!reports.length) return [];
  const r0 = reports[0];
  const lines = [
    '## Resume (issue 20, bench/resume.ts)',
    '',
    `The local runtime in its own process with ${fmt(r0.devices)} simulated devices at ${fmt(r0.rate)} readings/s; ${fmt(r0.live)} live clients ` +
      `(default subscription mix) and ${fmt(r0.resumers)} resuming clients, each with the filters of one live client (its twin), in two other processes. ` +
      'The resumers are subscribed, then cut (socket terminated) for the time shown, then reconnect at once, each subscribe carrying the last offset seen per ' +
      '`topic:partition`. Times from the reconnect (new socket): to every `resumed`, to caught up (the first record stamped after the reconnect received at or ' +
      'after `resumed`, or `resumed` when one came first). Replayed/s = all `replayed` over the burst (first reconnect to last `resumed`). Live latency = receipt − ' +
      'record timestamp on the live clients, by receipt time: before the cut (baseline), while the resumers are away, during the burst, and 10 s after it. ' +
      'Missed = records a resumer lacks that its never-cut twin got (stamped from the baseline to the end); duplicates = a cursor received twice. CPU: percent ' +
      'of one core; "others" = the gateway\'s process and dynalite.',
    '',
    '| Case | resumed | reconnect → resumed p50 / p95 / max ms | → caught up p50 / p95 / max ms | replayed per client p50 / p95 / max | replayed in all (scanned) | replayed/s | live p95 before / away / burst / after ms | burst ÷ before | duplicates (resumers with any) | missed / compared | runtime CPU % before / burst | others CPU % burst | loop delay max ms burst | RSS MB before / peak | machine busy % before / burst, load avg |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const r of reports) {
    const l = r.latency;
    lines.push(
      `| ${r.label} | ${fmt(r.resumed)} of ${fmt(r.resumers)}${r.tooFarBehind ? ` (${fmt(r.tooFarBehind)} too far behind)` : ''} | ${spread(r.resumedMs)} | ${spread(r.caughtUpMs)} | ` +
        `${spread(r.replayedPerClient)} | ${fmt(r.replayedTotal)} (${fmt(r.scannedTotal)}) | ${fmt(r.replayedPerSecond)} | ` +
        `${fmt(l.before.p95)} / ${fmt(l.away.p95)} / ${fmt(l.burst.p95)} / ${fmt(l.after.p95)} | ${fmt(round(l.burst.p95 / l.before.p95, 1))}× | ` +
        `${fmt(r.duplicatesTotal)} (${fmt(r.resumersWithDuplicates)}) | ${fmt(r.missedTotal)} / ${fmt(r.comparedRecords)}${r.missedPastWindow ? ` (+ ${fmt(r.missedPastWindow)} of clients too far behind, by contract)` : ''} | ${fmt(r.load.before.runtimeCpuPercent)} / ${fmt(r.load.burst.runtimeCpuPercent)} | ` +
        `${fmt(r.load.burst.descendantsCpuPercent)} | ${fmt(r.load.burst.loopDelayMaxMs)} | ${fmt(r.rssBeforeMB)} / ${fmt(r.rssPeakMB)} | ${fmt(r.load.before.machineBusyPercent)} / ${fmt(r.load.burst.machineBusyPercent)}, ${r.loadAverage.join(' → ')} |`,
    );
  }
  lines.push(
    '',
    '| Case | reconnect → open / → every `subscribed` p50 ms | records received before `resumed` | live alerts p95 before / away / burst / after ms | extra: records a resumer got that its twin had not (by when stamped) | stream records/s before / burst | runtime RSS MB after, others MB |',
    '| --- | --- | --- | --- | --- | --- | --- |',
  );
  for (const r of reports) {
    const a = r.alertLatency;
    const perS = (p: PhaseLoad) => fmt(Math.round(p.streamRecords / p.seconds));
    lines.push(
      `| ${r.label} | ${fmt(r.openMs.p50)} / ${fmt(r.subscribedMs.p50)} | ${fmt(r.receivedBeforeResumedTotal)} | ${fmt(a.before.p95)} / ${fmt(a.away.p95)} / ${fmt(a.burst.p95)} / ${fmt(a.after.p95)} | ` +
        `${fmt(r.extraTotal)}${r.extraTotal ? ` (${Object.entries(r.extraBy).map(([k, v]) => `${k} ${fmt(v)}`).join(', ')})` : ''} | ${perS(r.load.before)} / ${perS(r.load.burst)} | ${fmt(r.rssAfterMB)}, ${fmt(r.descendantsRssMB)} |`,
    );
  }
  const beside = reports.filter((r) => r.neighbour);
  for (const loaded of beside) {
    const quiet = reports.find((r) => !r.neighbour && r.feed === loaded.feed && r.cutS === loaded.cutS);
    if (!quiet) continue;
    lines.push(
      '',
      `Beside a busy loop, ${loaded.feed}, cut ${loaded.cutS} s: reconnect → resumed p95 ${fmt(round(loaded.resumedMs.p95 / quiet.resumedMs.p95, 2))}× the quiet case's, ` +
        `live p95 during the burst ${fmt(round(loaded.latency.burst.p95 / quiet.latency.burst.p95, 2))}×, before the cut ${fmt(round(loaded.latency.before.p95 / quiet.latency.before.p95, 2))}×.`,
    );
  }
  const odd = reports.filter((r) => r.failures.length || Object.keys(r.tooFarReasons).length || r.missedTotal);
  for (const r of odd) {
    lines.push(
      '',
      `${r.label}: ${r.failures.length ? `failures: ${r.failures.slice(0, 3).join('; ')}. ` : ''}${Object.keys(r.tooFarReasons).length ? `too far behind: ${Object.entries(r.tooFarReasons).map(([k, v]) => `${v} × ${k}`).join('; ')}. ` : ''}` +
        `${r.missedTotal ? `missed ${fmt(r.missedTotal)} (${Object.entries(r.missedBy).map(([k, v]) => `${k} ${fmt(v)}`).join(', ')}), e.g. ${r.missedExamples.join(', ')}. ` : ''}`,
    );
  }
  for (const r of reports.filter((x) => x.profile)) {
    const p = r.profile!;
    lines.push(
      '',
      `Where the runtime's time goes in the burst (${r.label}; CPU profile of the burst alone, ${fmt(p.busyMs)} ms busy of ${fmt(p.wallMs)} ms): ` +
        p.phases.slice(0, 8).map((row) => `${row.name} ${row.percent} %`).join(', ') + '.',
    );
  }
  if (replayCore.length) {
    lines.push(
      '',
      'The replay core alone (bench/replay-cost.ts): CPU of one process for the resumes of the default mix at once against the embedded window filled at ' +
        '1,000 readings/s, `replayAfter` with the decoded records the resumes share, cold, then again on the warm cache; median of the rounds.',
      '',
      '| Cut | resumes | records scanned / replayed (a round) | cold ms (per resume) | warm ms (per resume) | same records, same order |',
      '| --- | --- | --- | --- | --- | --- |',
      ...replayCore.map(
        (r) =>
          `| ${r.cutS} s | ${fmt(r.resumes)} | ${fmt(r.rounds[0].scanned)} / ${fmt(r.rounds[0].replayed)} | ${fmt(r.medianColdMs)} (${fmt(r.perResumeColdMs)}) | ` +
          `${fmt(r.medianWarmMs)} (${fmt(r.perResumeWarmMs)}) | ${r.sameRecordsInOrder ? 'yes' : '**no**'} |`,
      ),
    );
  }
  lines.push('');
  return lines;
}

function parseArgs(argv: string[]): ResumeBenchOptions {
  const options: ResumeBenchOptions = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) throw new Error(`${arg} needs a value`);
      return argv[++i];
    };
    if (arg === '--quick') Object.assign(options, { live: 40, resumers: 20, rate: 200, devices: 100, cutS: 3, phaseS: 3, graceS: 5 });
    else if (arg === '--cut') options.cutS = Number(value());
    else if (arg === '--live') options.live = Number(value());
    else if (arg === '--resumers') options.resumers = Number(value());
    else if (arg === '--rate') options.rate = Number(value());
    else if (arg === '--devices') options.devices = Number(value());
    else if (arg === '--phase') options.phaseS = Number(value());
    else if (arg === '--kafka') options.kafka = value().split(',');
    else if (arg === '--neighbour') options.neighbour = true;
    else if (arg === '--profile-dir') options.profileDir = path.resolve(value());
    else if (arg === '--label') options.label = value();
    else throw new Error(`unknown option ${arg}; options: --quick --cut S --live N --resumers N --rate R --devices N --phase S --kafka BROKERS --neighbour --profile-dir DIR --label NAME`);
  }
  return options;
}

const argAfter = (name: string, fallback: number) => {
  const at = process.argv.indexOf(name);
  return at > 0 ? Number(process.argv[at + 1]) : fallback;
};

if (process.argv[2] === '--runtime-child') {
  runtimeChild(JSON.parse(process.argv[3] ?? '{}') as Omit<LocalRuntimeOptions, 'log'>);
} else if (process.argv[2] === '--clients-child') {
  runResumeClients();
} else if (process.argv[2] === '--replay-cost' && require.main === module) {
  runReplayCost(argAfter('--cut', 10), argAfter('--clients', 100), argAfter('--rounds', 5)).then(
    (report) => console.log(JSON.stringify(report, null, 2)),
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
} else if (require.main === module) {
  let options: ResumeBenchOptions;
  try {
    options = parseArgs(process.argv.slice(2));
  } catch (error) {
    console.error(`resume: ${errorMessage(error)}`);
    process.exit(2);
  }
  runResumeBench({ ...options, log: (line) => console.error(line) }).then(
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
