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
 * Options: --quick, --scenario NAME[,NAME] (batch-cost, fanout, browser, kafka, or cN-rR),
 * --connections LIST, --rate LIST, --devices N, --locations N, --duration S, --window MS,
 * --mix location=0.2,deviceType=0.05,everything=0.01,criticalAlerts=0.1,maxDevices=5,
 * --skip-naive, --skip-browser, --skip-kafka, --results-dir DIR.
 */
import { execSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { BatchCostReport } from './batch-cost';
import { runBrowserBench, type BrowserBenchResult } from './browser-bench';
import { machine, type DesignResult, type FanoutScenarioResult } from './fanout';
import { runIsolated } from './isolated';
import { runKafkaLatencyBench, type KafkaLatencyReport } from './kafka-latency';
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
  scenarios: FanoutScenarioResult[];
  browser?: BrowserBenchResult;
  kafka?: KafkaLatencyReport;
  skipped: string[];
  targets: TargetCheck[];
  durationSeconds: number;
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
  const known = ['scenario', 'connections', 'rate', 'devices', 'locations', 'duration', 'window', 'mix', 'results-dir'];
  const mix: SubscriptionMix = { ...DEFAULT_MIX };
  for (const part of values.get('mix')?.split(',') ?? []) {
    const [key, value] = part.split('=');
    if (!(key in mix) || !(Number(value) >= 0)) throw new Error(`--mix takes ${Object.keys(mix).map((k) => `${k}=N`).join(',')}`);
    mix[key as keyof SubscriptionMix] = Number(value);
  }
  for (const name of values.keys()) if (!known.includes(name)) throw new Error(`unknown option --${name}`);
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

function wants(options: BenchOptions, part: 'batch-cost' | 'fanout' | 'browser' | 'kafka'): boolean {
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
    skipped: [],
    targets: [],
    durationSeconds: 0,
  };
  log(`bench: ${results.machine.cores} cores, ${results.machine.memoryGB} GB, Node ${results.machine.node}, open files ${openFileLimit}`);
  const plan = fanoutPlan(options);
  const maxConnections = Math.max(0, ...plan.map(([c]) => c));
  // Each connection takes a descriptor in the server process (clients are in their own processes).
  if (Number(openFileLimit) > 0 && Number(openFileLimit) < maxConnections + 1000) {
    log(`bench: warning: open-file limit ${openFileLimit} is below ${maxConnections + 1000}; raise it with \`ulimit -n 65536\` first`);
  }

  if (wants(options, 'batch-cost')) {
    const connections = options.quick ? [100, 1000] : (options.connections ?? [100, 1000, 10_000]);
    results.batchCost = await runIsolated({ kind: 'batch-cost', options: { connections, repeats: options.quick ? 3 : 5 } }, log);
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
