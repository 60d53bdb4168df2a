/**
 * `npm run bench -- --quick` works: it finishes, writes a results JSON with every figure present
 * and numeric, loses nothing, and runs the naive baseline beside the fan-out. Its speed is not
 * checked here (the machine running the tests is not the benchmark machine).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { BenchResults } from '../../bench/run';

const root = path.resolve(__dirname, '../..');

function runQuickBench(resultsDir: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', 'bench/run.ts', '--quick', '--skip-browser', '--skip-kafka', '--results-dir', resultsDir],
      { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('close', (code) => resolve({ code, output }));
  });
}

function expectNumber(value: unknown, what: string): void {
  if (typeof value !== 'number' || !Number.isFinite(value)) throw new Error(`${what} is ${JSON.stringify(value)}, not a number`);
}

describe('npm run bench -- --quick', () => {
  const resultsDir = mkdtempSync(path.join(os.tmpdir(), 'bench-quick-'));
  let results: BenchResults;
  let output = '';

  beforeAll(async () => {
    const run = await runQuickBench(resultsDir);
    output = run.output;
    if (run.code !== 0) throw new Error(`bench exited with ${run.code}:\n${output.slice(-4000)}`);
    results = JSON.parse(readFileSync(path.join(resultsDir, 'latest-quick.json'), 'utf8')) as BenchResults;
  }, 420_000); // the operators cases (issue 18) take about 80 s of it

  afterAll(() => rmSync(resultsDir, { recursive: true, force: true }));

  it('writes a timestamped JSON, latest-quick.json and latest-quick.md naming the machine', () => {
    const files = readdirSync(resultsDir);
    expect(files).toEqual(expect.arrayContaining(['latest-quick.json', 'latest-quick.md']));
    expect(files.some((f) => /^\d{4}-.*-quick\.json$/.test(f))).toBe(true);
    const markdown = readFileSync(path.join(resultsDir, 'latest-quick.md'), 'utf8');
    expect(markdown).toContain(`${results.machine.cores} cores`);
    expect(markdown).toContain(results.machine.node);
    expectNumber(results.machine.memoryGB, 'machine.memoryGB');
  });

  it('measures the cost of a batch at each connection count and batch size', () => {
    const bc = results.batchCost!;
    expect(bc).toBeDefined();
    expect(new Set(bc.rows.map((r) => r.connections))).toEqual(new Set([100, 1000]));
    expect(new Set(bc.rows.map((r) => r.batchSize))).toEqual(new Set([10, 100, 1000]));
    for (const row of bc.rows) {
      for (const [name, value] of Object.entries(row)) expectNumber(value, `batchCost ${row.connections}/${row.batchSize} ${name}`);
      expect(row.dynamoCallsPerBatch).toBeGreaterThan(0);
      expect(row.deliveriesPerBatch).toBeGreaterThan(0);
    }
    expect(bc.deliveriesReceived).toBe(bc.deliveriesReported);
    expect(bc.staleOrFailed).toBe(0);
    expect(bc.flat.every((f) => f.dynamoCalls.length === 2)).toBe(true);
  });

  it('measures the post path against the SDK and the unsigned floor, and a batch at 20 ms per post', () => {
    const pc = results.postCost!;
    expect(pc).toBeDefined();
    for (const path of [pc.lean, pc.sdk, pc.unsigned]) for (const [name, value] of Object.entries(path)) expectNumber(value, `postCost ${name}`);
    expect(pc.batches.map((b) => b.poster).sort()).toEqual(['lean', 'sdk']);
    // Every connection wants the same records: one message serves them all.
    for (const batch of pc.batches) expect(batch).toMatchObject({ posts: batch.connections, messages: 1 });
    for (const batch of pc.batches) for (const name of ['eventLoopBusy', 'sinkCpuMs'] as const) expectNumber(batch[name], `postCost batch ${name}`);
  });

  it('opens clients at 500/s with dynalite in its own process and, as the baseline, in the runtime', () => {
    expect(results.connectRate).toMatchObject({ dynalite: 'process', failed: 0 });
    expect(results.connectRateBaseline).toMatchObject({ dynalite: 'inline', failed: 0 });
  });

  it('opens operators at 100/s with their own subscriptions and measures the steady state, nothing outside a filter', () => {
    const operators = results.operators!;
    expect(operators).toBeDefined();
    expect(operators.cases.map((c) => c.role)).toEqual(['defaults', 'quota']);
    for (const { report } of operators.cases) {
      expect(report).toMatchObject({ failed: 0, outsideFilter: 0, duplicates: 0, alertsLost: 0 });
      expectNumber(report.throttledTotal, `${report.label} 429s`);
      expect(report.opened).toBe(report.clients);
      const figures = {
        connectP95: report.connectMs.p95,
        subscribeP95: report.subscribeMs.p95,
        steadyP95: report.steadyMs.p95,
        recordsPerSecond: report.recordsPerSecond,
        framesPerSecond: report.framesPerSecond,
        serverCpuPercent: report.serverCpuPercent,
        cpuUsPerRecord: report.cpuUsPerRecord,
        rssMB: report.rssMB,
      };
      for (const [name, value] of Object.entries(figures)) expectNumber(value, `${report.label} ${name}`);
      expect(report.readingsReceived).toBeGreaterThan(0);
    }
    expect(operators.targets.some((t) => /0 records outside a filter/.test(t.target) && t.holds === true)).toBe(true);
  });

  it('runs the issue 12 scenarios, with pacing under the quota reporting its figures', () => {
    expect(results.network.map((s) => s.name)).toEqual(['npm start defaults', 'quota 10,000/s, 20 ms']);
    for (const scenario of results.network) {
      expect(scenario.connected).toBe(scenario.connections);
      expect(scenario.fanout.lost).toBe(0);
      for (const name of ['postsPerSecond', 'throttled', 'conflatedShare'] as const) expectNumber(scenario.fanout[name], `${scenario.name} ${name}`);
    }
  });

  it('runs each fan-out scenario and the naive baseline with every figure, losing nothing', () => {
    expect(results.scenarios.length).toBeGreaterThanOrEqual(2);
    for (const scenario of results.scenarios) {
      expect(scenario.connected).toBe(scenario.connections);
      expect(scenario.naive).toBeDefined();
      for (const design of [scenario.fanout, scenario.naive!]) {
        const figures = {
          recordsPerSecond: design.recordsPerSecond,
          p50: design.latencyMs.p50,
          p95: design.latencyMs.p95,
          p99: design.latencyMs.p99,
          max: design.latencyMs.max,
          postsPerDelivery: design.postsPerDelivery,
          dynamoCallsPerBatch: design.dynamoCallsPerBatch,
          framesPerClient: design.framesPerClient,
          bytesPerClient: design.bytesPerClient,
          lost: design.lost,
          serverRssMaxMB: design.serverRssMaxMB,
          serverCpuPercent: design.serverCpuPercent,
        };
        for (const [name, value] of Object.entries(figures)) expectNumber(value, `${scenario.name} ${design.design} ${name}`);
        expect(design.recordsProduced).toBeGreaterThan(0);
        expect(design.delivered).toBeGreaterThan(0);
      }
      expect(scenario.fanout.lost).toBe(0);
      expect(scenario.fanout.duplicates).toBe(0);
      expect(scenario.fanout.delivered).toBe(scenario.fanout.expectedDeliveries);
      expect(scenario.naive!.postsPerDelivery).toBeCloseTo(1, 1);
      expectNumber(scenario.ratios?.postsPerDelivery, `${scenario.name} ratio of posts per delivery`);
      expectNumber(scenario.ratios?.cpuPerDelivery, `${scenario.name} ratio of CPU per delivery`);
    }
  });

  it('says why the browser and Kafka parts were skipped, and checks the targets', () => {
    expect(results.skipped.join(' ')).toMatch(/browser bench \(--skip-browser\)/);
    expect(results.skipped.join(' ')).toMatch(/Kafka latency bench \(--skip-kafka\)/);
    expect(results.targets.some((t) => /flat in connection count/.test(t.target) && t.holds === true)).toBe(true);
  });
});
