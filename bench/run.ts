/**
 * `npm run bench`: the batch-cost bench (issue 2), the fan-out scenarios against the naive
 * baseline (issue 7), and, where their parts exist here, the browser bench and the Kafka latency
 * bench. Writes bench/results/<time>.json, latest.json and latest.md (latest-quick.* for --quick).
 *
 *   npm run bench                        full run (about 15 minutes on 2 cores)
 *   npm run bench -- --quick             under two minutes: small scenarios, short runs
 *   npm run bench -- --scenario c1000-r10000 --duration 20
 *   npm run bench -- --connections 100,1000,10000 --rate 1000,10000 --devices 1000
 *
 *   npm run bench -- --scenario post-cost,issue12   the issue 12 figures alone
 *   npm run bench -- --scenario operators --operators-baseline '{"postConcurrency":32}'
 *                                        issue 18's 1,000 operators, with a baseline runtime beside the defaults
 *
 *   npm run bench -- --scenario flood       issue 19's flood: a watcher's p95 quiet and beside 8 flooders and a busy loop
 *   npm run bench -- --scenario resume      issue 20's resume burst (on Kafka too when KAFKA_BROKERS is set; PROF_DIR: burst profiles)
 *
 * Options: --quick, --scenario NAME[,NAME] (batch-cost, post-cost, dynamo-cost, issue12, operators, resume, flood, fanout, browser, kafka, or cN-rR),
 * --connections LIST, --rate LIST, --devices N, --locations N, --duration S, --window MS,
 * --mix location=0.2,deviceType=0.05,everything=0.01,criticalAlerts=0.1,maxDevices=5,
 * --skip-naive, --skip-browser, --skip-kafka, --results-dir DIR, --operators-baseline JSON (runtime options of a
 * baseline case run beside the operators defaults).
 */
import { execSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { BatchCostReport } from './batch-cost';
import { runBrowserBench, type BrowserBenchResult } from './browser-bench';
import { machine, type DesignResult, type FanoutScenarioResult } from './fanout';
import { runIsolated } from './isolated';
import { runKafkaLatencyBench, type KafkaLatencyReport } from './kafka-latency';
import { runConnectRateBench, type ConnectRateReport } from './connect-rate';
import { runOperatorsBench, type OperatorsReport, type OperatorsRuntimeOptions } from './operators';
import { resumeMarkdown, runResumeCases, type ResumeResults } from './resume';
import { runFloodBench, type FloodBenchReport } from './flood';
import type { PostCostReport } from './post-cost';
import type { DynamoCostReport } from './dynamo-cost';
import { DEFAULT_MIX, type SubscriptionMix } from './workload';
import { errorMessage } from '../lambdas/core/errors';

/** Parsed command line. */
export interface BenchOptions {
  quick: boolean;
  scenarios?: string[];
  connections?: number[];
  rates?: number[];
  devices: number;
  locations: number;
  durationS?: number;
  windowMs: number;
  /** Subscription mix; default {@link DEFAULT_MIX}. */
  mix: SubscriptionMix;
  naive: boolean;
  skipBrowser: boolean;
  skipKafka: boolean;
  resultsDir: string;
  /** Runtime options of an operators case run beside the defaults (`--operators-baseline '<json>'`). */
  operatorsBaseline?: OperatorsRuntimeOptions;
}

/** A target of issue 7 and what was measured against it. */
export interface TargetCheck {
  target: string;
  measured: string;
  /** null when the run did not include the scenario. */
  holds: boolean | null;
}

/** Everything one run measured. */
export interface BenchResults {
  startedAt: string;
  command: string;
  machine: ReturnType<typeof machine> & { openFileLimit: string };
  options: BenchOptions;
  batchCost?: BatchCostReport;
  postCost?: PostCostReport;
  /** Issue 18: CPU per DynamoDB call, the SDK's document client against the lean one. */
  dynamoCost?: DynamoCostReport;
  scenarios: FanoutScenarioResult[];
  /** Issue 12: `npm start` defaults, 1,000 clients at 1,000 and 10,000 records/s, 10,000 under the quota. */
  network: FanoutScenarioResult[];
  /** Issue 12: clients opened at 500/s while records flow. */
  connectRate?: ConnectRateReport;
  /** The same connects with dynalite in the runtime's process (the layout before), in the same run. */
  connectRateBaseline?: ConnectRateReport;
  /** Issue 18: 1,000 operators opened at 500/s, each with its own subscriptions, then the steady state. */
  operators?: { cases: OperatorsCase[]; targets: TargetCheck[] };
  /** Issue 20: 100 clients resuming at once beside live ones, after cuts of 10 and 30 s. */
  resume?: ResumeResults;
  /** Issue 19: 8 connections flooding beside a watcher and a busy loop, in rounds. */
  flood?: FloodBenchReport[];
  browser?: BrowserBenchResult;
  kafka?: KafkaLatencyReport;
  skipped: string[];
  targets: TargetCheck[];
  durationSeconds: number;
}

/** One case of the operators scenario. */
interface OperatorsCase {
  role: 'defaults' | 'baseline' | 'neighbour' | 'post latency' | 'quota';
  report: OperatorsReport;
}

const list = (value: string | undefined) => value?.split(',').map((v) => Number(v.trim())).filter((v) => v > 0);

/** Parses the command line. */
export function parseOptions(argv: string[]): BenchOptions {
  const flags = new Set<string>();
  const values = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith('--')) throw new Error(`unexpected argument "${arg}"; options start with --`);
    const [name, inline] = arg.slice(2).split('=', 2);
    if (['quick', 'skip-browser', 'skip-kafka', 'skip-naive'].includes(name)) flags.add(name);
    else if (inline !== undefined) values.set(name, inline);
    else if (i + 1 < argv.length) values.set(name, argv[++i]);
    else throw new Error(`--${name} needs a value`);
  }
  const known = ['scenario', 'connections', 'rate', 'devices', 'locations', 'duration', 'window', 'mix', 'results-dir', 'operators-baseline'];
  const mix: SubscriptionMix = { ...DEFAULT_MIX };
  for (const part of values.get('mix')?.split(',') ?? []) {
    const [key, value] = part.split('=');
    if (!(key in mix) || !(Number(value) >= 0)) throw new Error(`--mix takes ${Object.keys(mix).map((k) => `${k}=N`).join(',')}`);
    mix[key as keyof SubscriptionMix] = Number(value);
  }
  for (const name of values.keys()) if (!known.includes(name)) throw new Error(`unknown option --${name}`);
  let operatorsBaseline: OperatorsRuntimeOptions | undefined;
  if (values.has('operators-baseline')) {
    try {
      operatorsBaseline = JSON.parse(values.get('operators-baseline')!) as OperatorsRuntimeOptions;
    } catch {
      throw new Error(`--operators-baseline takes runtime options as JSON, e.g. '{"postConcurrency":32}'`);
    }
    if (typeof operatorsBaseline !== 'object' || operatorsBaseline === null || Array.isArray(operatorsBaseline)) {
      throw new Error('--operators-baseline takes a JSON object of runtime options');
    }
  }
  return {
    quick: flags.has('quick'),
    scenarios: values.get('scenario')?.split(',').map((s) => s.trim()),
    connections: list(values.get('connections')),
    rates: list(values.get('rate')),
    devices: Number(values.get('devices') ?? 1000),
    locations: Number(values.get('locations') ?? 20),
    durationS: values.has('duration') ? Number(values.get('duration')) : undefined,
    windowMs: Number(values.get('window') ?? 100),
    mix,
    naive: !flags.has('skip-naive'),
    skipBrowser: flags.has('skip-browser'),
    skipKafka: flags.has('skip-kafka'),
    resultsDir: path.resolve(values.get('results-dir') ?? path.join(__dirname, 'results')),
    operatorsBaseline,
  };
}

/** The fan-out scenarios a run covers, as [connections, rate] pairs. */
function fanoutPlan(options: BenchOptions): [number, number][] {
  const named = (options.scenarios ?? [])
    .map((s) => /^c(\d+)-r(\d+)$/.exec(s))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m): [number, number] => [Number(m[1]), Number(m[2])]);
  if (named.length) return named;
  if (options.connections || options.rates) {
    const conns = options.connections ?? (options.quick ? [100, 1000] : [100, 1000, 10_000]);
    const rates = options.rates ?? [1000, 10_000];
    return conns.flatMap((c) => rates.map((r): [number, number] => [c, r]));
  }
  if (options.quick) return [[100, 1000], [1000, 1000]];
  // 10,000 connections at 100 records/s as well: it separates the cost of holding connections
  // from the cost of the deliveries that 1,000 records/s asks of 10,000 subscribers.
  return [[100, 1000], [1000, 1000], [1000, 10_000], [10_000, 1000], [10_000, 100]];
}

/** The scenarios of issue 12: the runtime as `npm start` runs it, then at the network's cost. */
function networkPlan(options: BenchOptions) {
  const durationS = options.durationS ?? (options.quick ? 3 : 10);
  const scale = (n: number) => (options.quick ? Math.max(100, n / 10) : n);
  const plan = [
    { label: 'npm start defaults', connections: scale(1000), rate: 100, devices: 50, windowMs: 250, durationS },
    { label: '1,000 rec/s', connections: scale(1000), rate: 1000, devices: options.devices, windowMs: options.windowMs, durationS },
    {
      label: '1,000 rec/s, SDK baseline',
      connections: scale(1000),
      rate: 1000,
      devices: options.devices,
      windowMs: options.windowMs,
      durationS,
      sdkBaseline: true,
    },
    {
      label: '1,000 rec/s, dynalite inline (baseline)',
      connections: scale(1000),
      rate: 1000,
      devices: options.devices,
      windowMs: options.windowMs,
      durationS,
      dynalite: 'inline' as const,
    },
    { label: '10,000 rec/s', connections: scale(1000), rate: 10_000, devices: options.devices, windowMs: options.windowMs, durationS },
    {
      label: 'quota 10,000/s, 20 ms',
      connections: scale(10_000),
      rate: 1000,
      devices: options.devices,
      windowMs: options.windowMs,
      durationS,
      postQuota: 10_000,
      postLatencyMs: 20,
    },
  ];
  // A quick run checks that each kind of scenario works: the defaults, and pacing under the quota.
  return options.quick ? [plan[0], plan[5]] : plan;
}

/** The operators cases (issue 18): the defaults, a baseline beside them when asked, 20 ms posts, 10,000 under the quota. */
function operatorsPlan(
  options: BenchOptions,
): { role: OperatorsCase['role']; label: string; clients: number; runtime: OperatorsRuntimeOptions; neighbour?: boolean }[] {
  const n = options.quick ? 100 : 1000;
  const plan: ReturnType<typeof operatorsPlan> = [{ role: 'defaults', label: `${fmt(n)} operators, npm start defaults`, clients: n, runtime: {} }];
  if (options.operatorsBaseline) {
    plan.push({ role: 'baseline', label: `${fmt(n)} operators, baseline ${JSON.stringify(options.operatorsBaseline)}`, clients: n, runtime: options.operatorsBaseline });
  }
  // A target that holds only on a quiet machine is not met: the defaults again beside a busy loop.
  if (!options.quick) plan.push({ role: 'neighbour', label: `${fmt(n)} operators, npm start defaults, beside a CPU-heavy process`, clients: n, runtime: {}, neighbour: true });
  // A quick run checks that each kind of case works: the defaults, and pacing under the quota.
  if (!options.quick) plan.push({ role: 'post latency', label: `${fmt(n)} operators, --post-latency 20`, clients: n, runtime: { postLatencyMs: 20 } });
  plan.push(
    {
      role: 'quota',
      label: `${fmt(options.quick ? 200 : 10_000)} operators, --post-quota 10000 --post-latency 20`,
      clients: options.quick ? 200 : 10_000,
      runtime: { postQuota: 10_000, postLatencyMs: 20 },
    },
  );
  return plan;
}

function operatorsTargets(cases: OperatorsCase[]): TargetCheck[] {
  const checks: TargetCheck[] = [];
  const defaults = cases.find((c) => c.role === 'defaults')?.report;
  if (defaults) {
    const d = defaults;
    const who = `${fmt(d.clients)} operators at ${fmt(d.perSecond)}/s, npm start defaults`;
    checks.push(
      {
        target: `${who}: all open and subscribed`,
        measured: `${fmt(d.opened)} of ${fmt(d.clients)}${d.failed ? ` (${Object.entries(d.failures).map(([k, v]) => `${v} × ${k}`).join(', ')})` : ''}`,
        holds: d.failed === 0,
      },
      { target: `${who}: connect p95 < 100 ms`, measured: `p50 ${fmt(d.connectMs.p50)} ms, p95 ${fmt(d.connectMs.p95)} ms; subscribe p95 ${fmt(d.subscribeMs.p95)} ms`, holds: d.connectMs.p95 < 100 },
      { target: `${who}: steady p95 < 50 ms`, measured: `p50/p95/p99 ${fmt(d.steadyMs.p50)}/${fmt(d.steadyMs.p95)}/${fmt(d.steadyMs.p99)} ms`, holds: d.steadyMs.p95 < 50 },
      { target: `${who}: 0 records outside a filter`, measured: `${fmt(d.outsideFilter)} outside, ${fmt(d.duplicates)} duplicates`, holds: d.outsideFilter === 0 && d.duplicates === 0 },
    );
  }
  const loaded = cases.find((c) => c.role === 'neighbour')?.report;
  if (loaded) {
    checks.push({
      target: `${fmt(loaded.clients)} operators beside a CPU-heavy process: steady p95 < 50 ms`,
      measured: `p50/p95/p99 ${fmt(loaded.steadyMs.p50)}/${fmt(loaded.steadyMs.p95)}/${fmt(loaded.steadyMs.p99)} ms; connect p95 ${fmt(loaded.connectMs.p95)} ms (${fmt(loaded.opened)} open)`,
      holds: loaded.steadyMs.p95 < 50 && loaded.failed === 0,
    });
  }
  const latency = cases.find((c) => c.role === 'post latency')?.report;
  if (latency) {
    checks.push({
      target: `${fmt(latency.clients)} operators, --post-latency 20: steady p95 < 150 ms`,
      measured: `p50/p95/p99 ${fmt(latency.steadyMs.p50)}/${fmt(latency.steadyMs.p95)}/${fmt(latency.steadyMs.p99)} ms (${fmt(latency.opened)} open)`,
      holds: latency.steadyMs.p95 < 150 && latency.failed === 0,
    });
  }
  const quota = cases.find((c) => c.role === 'quota')?.report;
  if (quota) {
    const who = `${fmt(quota.clients)} operators, --post-quota 10000 --post-latency 20`;
    checks.push(
      { target: `${who}: alerts p95 < 250 ms`, measured: `alerts p95 ${fmt(quota.alertMs.p95)} ms (${fmt(quota.alertMs.count)} deliveries); ${fmt(quota.opened)} open`, holds: quota.alertMs.p95 < 250 },
      { target: `${who}: 0 × 429`, measured: `${fmt(quota.throttled)} in the window, ${fmt(quota.throttledTotal)} over the case`, holds: quota.throttledTotal === 0 },
      {
        target: `${who}: 0 alerts lost`,
        measured: `${fmt(quota.alertsLost)} lost of ${fmt(quota.alertsExpected)} deliveries the filters call for (${fmt(quota.alertsPublished)} alerts published)`,
        holds: quota.alertsLost === 0 && quota.alertsExpected > 0,
      },
    );
  }
  return checks;
}

function wants(options: BenchOptions, part: 'batch-cost' | 'post-cost' | 'dynamo-cost' | 'issue12' | 'operators' | 'resume' | 'flood' | 'fanout' | 'browser' | 'kafka'): boolean {
  if (!options.scenarios) return true;
  if (options.scenarios.includes(part)) return true;
  return part === 'fanout' && options.scenarios.some((s) => /^c\d+-r\d+$/.test(s));
}

function checkTargets(results: BenchResults): TargetCheck[] {
  const checks: TargetCheck[] = [];
  const c1k = results.scenarios.find((s) => s.connections === 1000 && s.rate === 10_000);
  if (c1k) {
    const f = c1k.fanout;
    checks.push(
      { target: '1,000 connections at 10,000 records/s: p95 < 50 ms', measured: `p95 ${f.latencyMs.p95} ms`, holds: f.latencyMs.p95 < 50 },
      { target: '1,000 connections at 10,000 records/s: nothing lost', measured: `${f.lost} lost`, holds: f.lost === 0 },
      {
        target: '1,000 connections at 10,000 records/s: ≥ 10× fewer posts than naive',
        measured: c1k.ratios ? `${c1k.ratios.postsPerDelivery}× fewer posts per delivered record` : 'naive not run',
        holds: c1k.ratios ? c1k.ratios.postsPerDelivery >= 10 : null,
      },
      { target: '1,000 connections at 10,000 records/s: server RSS < 512 MB', measured: `${f.serverRssMaxMB} MB`, holds: f.serverRssMaxMB < 512 },
      {
        target: '1,000 connections at 10,000 records/s: sustained',
        measured: `${f.recordsPerSecond} records/s`,
        holds: f.recordsPerSecond >= 0.95 * 10_000,
      },
    );
  } else checks.push({ target: '1,000 connections at 10,000 records/s', measured: 'not run', holds: null });
  const c10k = results.scenarios.filter((s) => s.connections >= 10_000);
  if (c10k.length) {
    for (const s of c10k) {
      const f = s.fanout;
      const tag = `10,000 connections held, stream at ${s.rate.toLocaleString('en-US')} records/s`;
      checks.push(
        { target: `${tag}: all connected`, measured: `${s.connected} connected, ${s.connectFailed} failed`, holds: s.connectFailed === 0 },
        { target: `${tag}: nothing lost`, measured: `${f.lost} lost`, holds: f.lost === 0 },
        { target: `${tag}: p95 < 250 ms`, measured: `p95 ${f.latencyMs.p95} ms`, holds: f.latencyMs.p95 < 250 },
        { target: `${tag}: server RSS < 1 GB`, measured: `${f.serverRssMaxMB} MB`, holds: f.serverRssMaxMB < 1024 },
      );
    }
  } else checks.push({ target: '10,000 connections with the stream running', measured: 'not run', holds: null });
  const pc = results.postCost;
  if (pc) {
    checks.push({
      target: 'Lean post path ≤ 100 µs CPU per post and ≥ 5× below the SDK',
      measured: `lean ${pc.lean.medianUs} µs, SDK ${pc.sdk.medianUs} µs (${pc.leanVsSdk}×), unsigned floor ${pc.unsigned.medianUs} µs`,
      holds: pc.lean.medianUs <= 100 && pc.leanVsSdk >= 5,
    });
    for (const [connections, limit] of [[1000, 100], [10_000, 1000]]) {
      const b = pc.batches.find((x) => x.connections === connections && x.poster === 'lean');
      if (b) checks.push({ target: `One batch to ${fmt(connections)} connections at ${pc.postLatencyMs} ms per post ≤ ${fmt(limit)} ms`, measured: `${b.wallMs} ms`, holds: b.wallMs <= limit });
    }
  } else checks.push({ target: 'Lean post path cost', measured: 'not run', holds: null });
  for (const s of results.network) {
    const f = s.fanout;
    const limit = s.name.startsWith('npm start') ? 50 : s.name.startsWith('1,000') ? 100 : 250;
    if (s.name.includes('baseline')) continue;
    if (s.name.startsWith('quota')) {
      checks.push(
        { target: `${fmt(s.connections)} connections, ${s.name}: no 429s once paced`, measured: `${f.throttled} refused, ${f.postsPerSecond} posts/s`, holds: f.throttled === 0 },
        { target: `${fmt(s.connections)} connections, ${s.name}: alerts p95 < 250 ms`, measured: `alerts p95 ${f.alertLatencyMs.p95} ms (${f.alertLatencyMs.count} alerts); all p95 ${f.latencyMs.p95} ms`, holds: f.alertLatencyMs.p95 < 250 },
      );
    } else {
      checks.push({ target: `${fmt(s.connections)} clients, ${s.name}: p95 < ${limit} ms`, measured: `p95 ${f.latencyMs.p95} ms, ${f.recordsPerSecond} rec/s, RSS ${f.serverRssMaxMB} MB`, holds: f.latencyMs.p95 < limit && f.serverRssMaxMB < 512 });
    }
  }
  const cr = results.connectRate;
  if (cr) {
    checks.push({
      target: `Connects opened at ${cr.perSecond}/s while records flow: p95 < 100 ms`,
      measured:
        `connect p95 ${cr.connectMs.p95} ms, subscribe p95 ${cr.subscribeMs.p95} ms, ${cr.failed} failed of ${fmt(cr.clients)}` +
        (results.connectRateBaseline
          ? ` (dynalite in the runtime's process, same run: connect p95 ${results.connectRateBaseline.connectMs.p95} ms, subscribe p95 ${results.connectRateBaseline.subscribeMs.p95} ms)`
          : ''),
      holds: cr.connectMs.p95 < 100 && cr.failed === 0,
    });
  }
  const bc = results.batchCost;
  if (bc) {
    const counts = [...new Set(bc.rows.map((r) => r.connections))];
    checks.push({
      target: `DynamoDB requests per batch flat in connection count (${counts.join(' → ')})`,
      measured: bc.flat.map((f) => `B=${f.batchSize}: ${f.dynamoCalls.join(' / ')} calls, ${f.posts.join(' / ')} posts`).join('; '),
      holds: bc.flat.every((f) => f.flat),
    });
  } else checks.push({ target: 'DynamoDB requests per batch flat in connection count', measured: 'not run', holds: null });
  return checks;
}

const fmt = (value: number | undefined | null) =>
  value === undefined || value === null || Number.isNaN(value) ? '–' : value.toLocaleString('en-US', { maximumFractionDigits: 4 });

function designColumns(d: DesignResult | undefined): string[] {
  if (!d) return Array(15).fill('–');
  return [
    fmt(d.recordsPerSecond),
    fmt(d.meanBatchSize),
    fmt(d.latencyMs.p50),
    fmt(d.latencyMs.p95),
    fmt(d.latencyMs.p99),
    fmt(d.latencyMs.max),
    fmt(d.postsPerDelivery),
    fmt(d.dynamoCallsPerBatch),
    fmt(d.framesPerClient),
    fmt(Math.round(d.bytesPerClient / 1024)),
    fmt(d.lost),
    fmt(d.undelivered),
    fmt(d.serverRssMaxMB),
    fmt(d.serverCpuPercent),
    fmt(d.serverCpuMsPer1kDeliveries),
  ];
}

/** The markdown summary the README shows. */
export function toMarkdown(results: BenchResults): string {
  const m = results.machine;
  const lines: string[] = [];
  lines.push(`# Benchmark results`, '');
  lines.push(
    `Run ${results.startedAt} with \`${results.command}\` on ${m.cores} cores (${m.cpuModel}), ${m.memoryGB} GB memory, ` +
      `Node ${m.node}, ${m.platform}; open-file limit ${m.openFileLimit}. Took ${results.durationSeconds} s.`,
    '',
  );
  lines.push(`## Targets (issue 7)`, '', '| Target | Measured | Holds |', '| --- | --- | --- |');
  for (const t of results.targets) lines.push(`| ${t.target} | ${t.measured} | ${t.holds === null ? 'not run' : t.holds ? 'yes' : '**no**'} |`);
  lines.push('');

  if (results.scenarios.length) {
    lines.push(`## Fan-out vs naive baseline`, '');
    lines.push(
      'Same runtime, same clients, same records. Latency = client receipt − record timestamp (ms). ' +
        'Posts/delivery = PostToConnection calls per record received. DDB/batch = DynamoDB requests of the stream handler per batch. ' +
        'Frames and KB are per client over the run. Lost = deliveries the filters call for that never arrived; ' +
        'undelivered also counts records the naive run never got to before it was stopped. CPU % is of one core. ' +
        "The naive run's latency covers only the records it delivered before it was stopped (a few seconds after production ended), " +
        'so where it fell far behind its percentiles understate how late it was.',
      '',
    );
    lines.push(
      '| Scenario | Design | rec/s | records/batch | p50 | p95 | p99 | max | posts/delivery | DDB/batch | frames/client | KB/client | lost | undelivered | RSS MB | server CPU % | CPU ms/1k deliveries |',
      '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    );
    for (const s of results.scenarios) {
      const label = `${fmt(s.connections)} conn, ${fmt(s.rate)} rec/s, ${s.durationS} s`;
      lines.push(`| ${label} | fan-out | ${designColumns(s.fanout).join(' | ')} |`);
      if (s.naive) lines.push(`| ${label} | naive | ${designColumns(s.naive).join(' | ')} |`);
    }
    lines.push(
      '',
      '| Scenario | fewer posts per delivery | lower p95 | less CPU per delivery | deliveries (fan-out) | connect s | RSS MB after connect | client CPU % (fan-out) |',
      '| --- | --- | --- | --- | --- | --- | --- | --- |',
    );
    for (const s of results.scenarios) {
      const r = s.ratios;
      lines.push(
        `| ${s.name} | ${r ? fmt(r.postsPerDelivery) + '×' : '–'} | ${r ? fmt(r.p95Latency) + '×' : '–'} | ${r ? fmt(r.cpuPerDelivery) + '×' : '–'} | ` +
          `${fmt(s.fanout.delivered)} | ${fmt(s.connectSeconds)} | ${fmt(s.rssAfterConnectMB)} | ${fmt(s.fanout.clientCpuPercent)} |`,
      );
    }
    const s0 = results.scenarios[0];
    lines.push(
      '',
      `Workload: ${fmt(s0.devices)} devices over ${s0.locations} locations and 5 device types, one batch every ${s0.windowMs} ms; ` +
        `mix per scenario (devices / location / device type / everything / +critical alerts): ` +
        results.scenarios.map((s) => `${s.name} ${s.mix.devices}/${s.mix.location}/${s.mix.deviceType}/${s.mix.everything}/${s.mix.criticalAlerts}`).join(', ') +
        '.',
      '',
    );
  }

  const dc = results.dynamoCost;
  if (dc) {
    lines.push(`## DynamoDB calls (issue 18, bench/dynamo-cost.ts)`, '');
    lines.push(
      `CPU of this process per call, median of ${dc.rounds} interleaved rounds of ${fmt(dc.callsPerRound)} calls per client, ${dc.concurrency} in flight, dynalite in another process.`,
      '',
      '| Call | AWS SDK µs | lean µs | SDK / lean |',
      '| --- | --- | --- | --- |',
      ...Object.entries(dc.operations).map(([name, cost]) => `| ${name} | ${cost.sdkUs} | ${cost.leanUs} | ${cost.ratio}× |`),
      '',
      `dynalite's side, same rounds: a subscribe's conditional write of the connection item, ${fmt(dc.conditionForms.orPerSecond)}/s in the form before (parenthesised ORs) against ${fmt(dc.conditionForms.andPerSecond)}/s in today's plain AND (${dc.conditionForms.ratio}×).`,
      '',
    );
    if (dc.lookups.length) {
      lines.push(
        "The stream's index lookup for a batch of 6 readings, every bucket read whole against versions read first and unchanged buckets kept in memory (issue 18, fourth pass); CPU of this process and wall time a lookup, medians over the same rounds:",
        '',
        '| Operators | index entries | keys / buckets a lookup | whole: CPU µs / wall ms | kept: CPU µs / wall ms |',
        '| --- | --- | --- | --- | --- |',
        ...dc.lookups.map((l) => `| ${fmt(l.operators)} | ${fmt(l.entries)} | ${l.keys} / ${l.buckets} | ${fmt(l.wholeUs)} / ${l.wholeMs} | ${fmt(l.keptUs)} / ${l.keptMs} |`),
        '',
      );
    }
  }

  const pc = results.postCost;
  if (pc) {
    lines.push(`## The post path (issue 12, bench/post-cost.ts)`, '');
    lines.push(
      `CPU of this process per PostToConnection, ${pc.rounds} rounds of ${fmt(pc.postsPerRound)} posts per path, 32 in flight, to a sink in another process; min / median / max over rounds.`,
      '',
      '| Path | min µs | median µs | max µs |',
      '| --- | --- | --- | --- |',
      `| lean (signed, pooled) | ${pc.lean.minUs} | ${pc.lean.medianUs} | ${pc.lean.maxUs} |`,
      `| AWS SDK | ${pc.sdk.minUs} | ${pc.sdk.medianUs} | ${pc.sdk.maxUs} |`,
      `| unsigned HTTP (floor) | ${pc.unsigned.minUs} | ${pc.unsigned.medianUs} | ${pc.unsigned.maxUs} |`,
      '',
      `One 100-record batch through processStreamEvent to connections that all want it, each post answered after ~${pc.postLatencyMs} ms ` +
        `(load average ${pc.loadAverage.join(' → ')} on ${results.machine.cores} cores: wall time is CPU time over the share of a core the process gets):`,
      '',
      '| Connections | Poster | wall ms | CPU ms | event loop busy | sink CPU ms | posts | messages built |',
      '| --- | --- | --- | --- | --- | --- | --- | --- |',
      ...pc.batches.map(
        (b) =>
          `| ${fmt(b.connections)} | ${b.poster} | ${fmt(b.wallMs)} | ${fmt(b.cpuMs)} | ${fmt(b.eventLoopBusy)} | ${fmt(b.sinkCpuMs)} | ${fmt(b.posts)} | ${fmt(b.messages)} |`,
      ),
      '',
    );
  }
  if (results.network.length) {
    lines.push(`## Fan-out at the network's cost (issue 12)`, '');
    lines.push(
      '| Scenario | clients | rec/s asked | rec/s | p50 | p95 | p99 | alerts p95 | posts/s | 429s | conflated | lost | RSS MB | CPU % |',
      '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    );
    for (const s of results.network) {
      const f = s.fanout;
      lines.push(
        `| ${s.name} | ${fmt(s.connected)} | ${fmt(s.rate)} | ${fmt(f.recordsPerSecond)} | ${fmt(f.latencyMs.p50)} | ${fmt(f.latencyMs.p95)} | ${fmt(f.latencyMs.p99)} | ` +
          `${fmt(f.alertLatencyMs.p95)} | ${fmt(f.postsPerSecond)} | ${fmt(f.throttled)} | ${fmt(Math.round(f.conflatedShare * 1000) / 10)} % | ${fmt(f.lost)} | ${fmt(f.serverRssMaxMB)} | ${fmt(f.serverCpuPercent)} |`,
      );
    }
    lines.push('');
  }
  if (results.resume) lines.push(...resumeMarkdown(results.resume));
  if (results.flood?.length) {
    lines.push(
      '## Flood (issue 19, bench/flood.ts)',
      '',
      "8 connections of one token send 1,000 messages a second each (pings, subscribes, garbage) beside a busy-looping process, while another user watches records; each round measures the watcher's p95 quiet, then flooded, in the same run.",
      '',
      '| round | watcher p95 quiet / flood ms | ratio | flood p95 after its 1st second ms | slowest record, 1st second / after ms | slowest first `rate_limited` ms | pongs / `rate_limited` of sent | kept | CPU µs a flood message by process |',
      '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    );
    results.flood.forEach((r, i) => {
      const cpu = Object.entries(r.cpuPerFloodMessageUs).map(([name, us]) => `${name} ${fmt(us)}`).join(', ');
      lines.push(
        `| ${i + 1} | ${fmt(r.quiet.p95)} / ${fmt(r.flood.p95)} | ${fmt(r.p95Ratio)}× | ${fmt(r.flood.p95AfterFirstSecond)} | ` +
          `${fmt(r.flood.perSecondMax[0] ?? 0)} / ${fmt(Math.max(0, ...r.flood.perSecondMax.slice(1)))} | ${fmt(r.flooders.firstRefusalMaxMs)} | ${fmt(r.flooders.pongs)} / ${fmt(r.flooders.rateLimited)} of ${fmt(r.flooders.sent)} | ${r.flooders.kept} of 8 | ${cpu} |`,
      );
    });
    lines.push('');
  }
  if (results.operators) {
    const { cases, targets } = results.operators;
    lines.push(`## 1,000 operators (issue 18, bench/operators.ts)`, '');
    lines.push(
      'The runtime as `npm start` runs it (50 simulated devices, 100 readings/s, embedded feed) in its own process; real clients opened at the rate shown ' +
        'from separate processes, each with its own subscriptions over the simulator\'s devices; connect = upgrade to `open`, subscribe = sent to `subscribed`; ' +
        'steady = client receipt − record timestamp over the records stamped in the window. CPU is percent of one core, runtime process plus its ' +
        'descendants (dynalite); µs/record is that CPU per record delivered.',
      '',
      '| Target | Measured | Holds |',
      '| --- | --- | --- |',
      ...targets.map((t) => `| ${t.target} | ${t.measured} | ${t.holds === null ? 'not run' : t.holds ? 'yes' : '**no**'} |`),
      '',
      '| Case | open / failed | connect p50 / p95 / p99 | subscribe p95 | steady p50 / p95 / p99 | alerts p95 | records/s | frames/s | outside filter | dups | alerts lost / expected | 429s | CPU % | µs/record | RSS MB (runtime + dynalite) |',
      '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    );
    for (const { report: r } of cases) {
      lines.push(
        `| ${r.label} (${r.durationS} s) | ${fmt(r.opened)} / ${fmt(r.failed)} | ${fmt(r.connectMs.p50)} / ${fmt(r.connectMs.p95)} / ${fmt(r.connectMs.p99)} | ${fmt(r.subscribeMs.p95)} | ` +
          `${fmt(r.steadyMs.p50)} / ${fmt(r.steadyMs.p95)} / ${fmt(r.steadyMs.p99)} | ${fmt(r.alertMs.p95)} | ${fmt(r.recordsPerSecond)} | ${fmt(r.framesPerSecond)} | ` +
          `${fmt(r.outsideFilter)} | ${fmt(r.duplicates)} | ${fmt(r.alertsLost)} / ${fmt(r.alertsExpected)} | ${fmt(r.throttledTotal)} | ${fmt(r.serverCpuPercent)} | ${fmt(r.cpuUsPerRecord)} | ${fmt(r.rssMB)} + ${fmt(r.descendantsRssMB)} |`,
      );
    }
    const failures = cases.filter((c) => c.report.failed);
    if (failures.length) {
      lines.push('', 'Handshake failures: ' + failures.map((c) => `${c.report.label}: ${Object.entries(c.report.failures).map(([k, v]) => `${v} × ${k}`).join(', ')}`).join('; ') + '.');
    }
    lines.push('');
  }
  const bc = results.batchCost;
  if (bc) {
    lines.push(`## Cost of a batch (issue 2)`, '');
    lines.push(
      `${bc.matching} connections match the batches (real sockets); the others hold subscriptions to devices, locations and types the batches never carry. ` +
        `Means of ${bc.repeats} batches per cell. Deliveries reported ${fmt(bc.deliveriesReported)}, received ${fmt(bc.deliveriesReceived)}; stale or failed posts ${bc.staleOrFailed}.`,
      '',
    );
    lines.push('| Connections | Batch size | Index keys | DynamoDB calls/batch | Posts/batch | Deliveries/batch | Matched connections | ms/batch |', '| --- | --- | --- | --- | --- | --- | --- | --- |');
    for (const r of bc.rows) {
      lines.push(
        `| ${fmt(r.connections)} | ${fmt(r.batchSize)} | ${fmt(r.keys)} | ${fmt(r.dynamoCallsPerBatch)} | ${fmt(r.postsPerBatch)} | ${fmt(r.deliveriesPerBatch)} | ${fmt(r.matchedConnections)} | ${fmt(r.durationMs)} |`,
      );
    }
    lines.push('');
  }
  if (results.browser) {
    const b = results.browser;
    lines.push(`## Dashboard in Chromium (bench/browser-bench.ts)`, '');
    lines.push('| records/s | s | published | delivered | shown | long tasks | max long task ms | heap growth % | frames/s | pass |', '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
    lines.push(
      `| ${fmt(b.recordsPerSecond)} | ${fmt(b.durationSeconds)} | ${fmt(b.published)} | ${fmt(b.delivered)} | ${fmt(b.shownByPage)} | ${fmt(b.longTasks.count)} | ` +
        `${fmt(b.longTasks.maxMs)} | ${fmt(b.heap.growthPercent)} | ${fmt(b.framesPerSecond)} | ${b.pass ? 'yes' : '**no**'} |`,
      '',
    );
  }
  if (results.kafka) {
    const k = results.kafka;
    lines.push(`## Through a real Kafka broker (bench/kafka-latency.ts)`, '');
    lines.push(`${k.clients} clients, batch size ${k.batchSize}, batching window ${k.batchWindowMs} ms.`, '');
    lines.push('| rate/s | achieved/s | p50 | p95 | p99 | max | received/expected |', '| --- | --- | --- | --- | --- | --- | --- |');
    for (const r of k.results) {
      lines.push(`| ${fmt(r.rate)} | ${fmt(r.achievedRate)} | ${fmt(r.p50)} | ${fmt(r.p95)} | ${fmt(r.p99)} | ${fmt(r.max)} | ${fmt(r.received)}/${fmt(r.expected)} |`);
    }
    lines.push('');
  }
  if (results.skipped.length) lines.push(`Skipped: ${results.skipped.join('; ')}.`, '');
  return lines.join('\n');
}

/** Runs the benchmarks the options ask for and writes the results. */
export async function runBench(options: BenchOptions, log: (line: string) => void = (line) => console.log(line)): Promise<BenchResults> {
  const started = Date.now();
  let openFileLimit = 'unknown';
  try {
    openFileLimit = execSync('ulimit -n', { shell: '/bin/sh' }).toString().trim();
  } catch {
    // Not a POSIX shell: the limit is simply not reported.
  }
  const results: BenchResults = {
    startedAt: new Date(started).toISOString(),
    command: `npm run bench${process.argv.length > 2 ? ' -- ' + process.argv.slice(2).join(' ') : ''}`,
    machine: { ...machine(), openFileLimit },
    options,
    scenarios: [],
    network: [],
    skipped: [],
    targets: [],
    durationSeconds: 0,
  };
  log(`bench: ${results.machine.cores} cores, ${results.machine.memoryGB} GB, Node ${results.machine.node}, open files ${openFileLimit}`);
  const plan = fanoutPlan(options);
  const maxConnections = Math.max(0, ...plan.map(([c]) => c), wants(options, 'operators') ? (options.quick ? 200 : 10_000) : 0);
  // Each connection takes a descriptor in the server process (clients are in their own processes).
  if (Number(openFileLimit) > 0 && Number(openFileLimit) < maxConnections + 1000) {
    log(`bench: warning: open-file limit ${openFileLimit} is below ${maxConnections + 1000}; raise it with \`ulimit -n 65536\` first`);
  }

  if (wants(options, 'batch-cost')) {
    const connections = options.quick ? [100, 1000] : (options.connections ?? [100, 1000, 10_000]);
    results.batchCost = await runIsolated({ kind: 'batch-cost', options: { connections, repeats: options.quick ? 3 : 5 } }, log);
  }

  if (wants(options, 'dynamo-cost')) {
    results.dynamoCost = await runIsolated({ kind: 'dynamo-cost', options: options.quick ? { calls: 50, rounds: 3 } : {} }, log);
  }
  if (wants(options, 'post-cost')) {
    results.postCost = await runIsolated({ kind: 'post-cost', options: options.quick ? { posts: 500, rounds: 3, audiences: [1000] } : {} }, log);
  }

  if (wants(options, 'issue12')) {
    log('bench: issue 12, connects at 500/s while records flow');
    const connectClients = options.quick ? 200 : 1000;
    results.connectRateBaseline = await runConnectRateBench({ clients: connectClients, perSecond: 500, dynalite: 'inline', log });
    results.connectRate = await runConnectRateBench({ clients: connectClients, perSecond: 500, log });
    for (const scenario of networkPlan(options)) {
      log(`bench: issue 12, ${scenario.label}`);
      results.network.push(
        await runIsolated({ kind: 'fanout', options: { ...scenario, locations: options.locations, mix: options.mix, naive: false } }, log),
      );
    }
  }

  if (wants(options, 'operators')) {
    const cases: OperatorsCase[] = [];
    for (const c of operatorsPlan(options)) {
      log(`bench: issue 18, ${c.label}`);
      const report = await runOperatorsBench({
        label: c.label,
        clients: c.clients,
        perSecond: options.quick ? 100 : 500,
        durationS: options.durationS ?? (options.quick ? 5 : 20),
        runtime: c.runtime,
        neighbour: c.neighbour,
        log,
      });
      cases.push({ role: c.role, report });
    }
    results.operators = { cases, targets: operatorsTargets(cases) };
  }

  if (wants(options, 'flood')) {
    results.flood = [];
    for (let round = 0; round < (options.quick ? 1 : 3); round++) results.flood.push(await runFloodBench({ phaseMs: options.quick ? 3000 : 10_000, log }));
  }
  if (wants(options, 'resume')) {
    const kafka = process.env.KAFKA_BROKERS?.split(',');
    results.resume = await runResumeCases({ quick: options.quick, kafka, profileDir: process.env.PROF_DIR, log });
  }

  if (wants(options, 'fanout')) {
    for (const [connections, rate] of plan) {
      // Each scenario's server runs in a fresh process: its RSS is its own, not an earlier scenario's heap.
      const scenario = {
        connections,
        rate,
        devices: options.devices,
        locations: options.locations,
        durationS: options.durationS ?? (options.quick ? 3 : 10),
        windowMs: options.windowMs,
        mix: options.mix,
        naive: options.naive,
        naiveGraceS: options.quick ? 1 : 5,
      };
      results.scenarios.push(await runIsolated({ kind: 'fanout', options: scenario }, log));
    }
  }

  if (wants(options, 'browser')) {
    if (options.skipBrowser) results.skipped.push('browser bench (--skip-browser)');
    else if (!existsSync('/usr/bin/chromium')) results.skipped.push('browser bench (no /usr/bin/chromium)');
    else {
      log('bench: browser bench');
      try {
        results.browser = await runBrowserBench({
          durationSeconds: options.quick ? 5 : 30,
          warmupSeconds: options.quick ? 3 : 15,
          log,
        });
      } catch (error) {
        // A part that fails is reported with the others' figures, and the run exits non-zero.
        results.skipped.push(`browser bench FAILED: ${errorMessage(error).split('\n')[0]}`);
        process.exitCode = 1;
      }
    }
  }

  if (wants(options, 'kafka')) {
    const brokers = process.env.KAFKA_BROKERS;
    if (options.skipKafka) results.skipped.push('Kafka latency bench (--skip-kafka)');
    else if (!brokers) results.skipped.push('Kafka latency bench (KAFKA_BROKERS is not set)');
    else {
      log(`bench: Kafka latency bench against ${brokers}`);
      try {
        results.kafka = await runKafkaLatencyBench({ brokers: brokers.split(','), seconds: options.quick ? 3 : 10, log });
      } catch (error) {
        results.skipped.push(`Kafka latency bench FAILED against ${brokers}: ${errorMessage(error).split('\n')[0]}`);
        process.exitCode = 1;
      }
    }
  }
  for (const skipped of results.skipped) log(`bench: skipped ${skipped}`);

  results.targets = checkTargets(results);
  results.durationSeconds = Math.round((Date.now() - started) / 1000);
  mkdirSync(options.resultsDir, { recursive: true });
  const json = JSON.stringify(results, null, 2) + '\n';
  const stamp = results.startedAt.replace(/[:.]/g, '-');
  writeFileSync(path.join(options.resultsDir, `${stamp}${options.quick ? '-quick' : ''}.json`), json);
  // A quick run never replaces the committed figures of the last full run.
  const latest = options.quick ? 'latest-quick' : 'latest';
  writeFileSync(path.join(options.resultsDir, `${latest}.json`), json);
  const markdown = toMarkdown(results);
  writeFileSync(path.join(options.resultsDir, `${latest}.md`), markdown);
  log('');
  log(markdown);
  return results;
}

if (require.main === module) {
  let options: BenchOptions;
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (error) {
    console.error(`bench: ${errorMessage(error)}`);
    process.exit(2);
  }
  runBench(options).then(
    () => process.exit(0),
    (error: unknown) => {
      console.error(`bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
      process.exit(1);
    },
  );
}
