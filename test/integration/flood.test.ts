/**
 * A flood from one user (issue 19): 8 connections of one token send 1,000 messages a second each
 * (pings, subscribes, unknown actions, garbage) from a process of their own, while another user
 * watches records. What must hold whatever the machine's load (the speed figures are in
 * bench/flood.ts): every message gets one reply, the refusals start right after the burst
 * allowance instead of after a queue has drained, no connection is closed, a refused message costs
 * no table request, and the watcher gets each record once.
 */
import { runFloodBench } from '../../bench/flood';
import { DynamoConnectionStore } from '../../lambdas/adapters/dynamo-connections';
import { mintToken } from '../../lambdas/core/auth';
import { LIMITS } from '../../lambdas/core/protocol';
import type { LocalRuntime } from '../../local/runtime';
import { startTestRuntime } from '../support/runtime';
import { startFlooder, type Flooder } from '../support/flooder';
import { deviceRecord } from '../support/records';
import { TestClient } from '../support/ws-test-client';

const secret = 'flood-test-secret-0123456789abcdef';
let runtime: LocalRuntime;

beforeAll(async () => {
  runtime = await startTestRuntime({ statusIntervalMs: 0, jwtSecret: secret });
});

afterAll(async () => {
  await runtime.stop();
});

it('8 connections at 1,000 messages/s: refused right after their burst, each message answered once, none cut off, no table request per refusal', async () => {
  const watcher = await TestClient.connect(runtime.wsUrl, await mintToken(secret, { sub: 'watcher', sites: ['plant-a'] }, '10m'));
  await watcher.subscribe('w', { deviceIds: ['watched-pump'] });
  const plan = { connections: 8, perSecond: 1000, durationMs: 2000, drainTimeoutMs: 90_000 };
  let flooder: Flooder | undefined;
  try {
    const token = await mintToken(secret, { sub: 'flooder', sites: '*' }, '10m');
    flooder = await startFlooder({ ...plan, url: `${runtime.wsUrl}/?token=${encodeURIComponent(token)}` });
    // The runtime's connection store, caught from the first call it makes, for its request count.
    const spy = jest.spyOn(DynamoConnectionStore.prototype, 'change');
    await watcher.barrier();
    const store = spy.mock.contexts[0] as DynamoConnectionStore;
    spy.mockRestore();
    const callsBefore = store.calls;

    const flood = flooder.flood();
    let published = 0;
    let flooding = true;
    void flood.finally(() => (flooding = false));
    while (flooding) {
      published++;
      await runtime.publish([{ topic: 'device-data', value: deviceRecord('watched-pump') }]);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const result = await flood;
    await runtime.gateway.settle();
    const calls = store.calls - callsBefore;
    const figures = result.connections.map((c) => [c.firstRefusedPlace, c.firstRefusalMs, c.drainMs, c.served, c.rateLimited]);
    process.stdout.write(`flood: table calls ${calls}; per connection [place of 1st refused subscribe, ms to 1st refusal, drain ms, served, refused] ${JSON.stringify(figures)}\n`);

    const sent = (plan.perSecond * plan.durationMs) / 1000;
    for (const connection of result.connections) {
      expect(connection.open).toBe(true);
      expect(connection.replies).toBe(sent);
      expect(connection.gatewayErrors).toBe(0);
      // The burst allowance, the tokens refilled while it was served, and no queue before the
      // refusals: every fourth message is a subscribe, whose refusal names its place.
      expect(connection.rateLimited).toBeGreaterThan(0);
      expect(connection.firstRefusedPlace).toBeGreaterThanOrEqual(LIMITS.messageBurst - 1);
      expect(connection.firstRefusedPlace).toBeLessThan(200);
    }
    const served = result.connections.reduce((n, c) => n + c.served, 0);
    const refused = result.connections.reduce((n, c) => n + c.rateLimited, 0);
    expect(refused).toBeGreaterThan(0.8 * sent * plan.connections);
    // A served message costs a conditional write (a subscribe's may need a read and a second
    // try); a refused one costs nothing (refusals outnumber the served messages many times).
    expect(calls).toBeLessThanOrEqual(3 * served);
    expect(refused).toBeGreaterThan(5 * served);

    await watcher.barrier();
    const cursors = watcher.recordsOf('watched-pump').map((frame) => frame.cursor);
    expect(cursors).toHaveLength(published);
    expect(new Set(cursors).size).toBe(published);
  } finally {
    flooder?.kill();
    await watcher.close();
    await runtime.gateway.settle();
  }
}, 180_000);

it('the flood bench (bench/flood.ts) runs both phases and reports every figure; its speed is not checked here', async () => {
  const report = await runFloodBench({ connections: 2, perSecond: 200, phaseMs: 1500, busyLoop: false, recordsPerSecond: 20 });
  for (const phase of [report.quiet, report.flood]) {
    expect(phase.records).toBeGreaterThan(0);
    for (const value of [phase.p50, phase.p95, phase.p99, phase.max, phase.runtimeCpuPercent]) expect(Number.isFinite(value)).toBe(true);
    expect(phase.processCpuPercent).toHaveProperty('gateway');
    expect(phase.processCpuPercent).toHaveProperty('dynalite');
    // The watching user runs in a process of its own, as a browser would.
    expect(phase.processCpuPercent).toHaveProperty('watcher');
  }
  expect(report.flooders.sent).toBe(600);
  expect(report.flooders.unanswered).toBe(0);
  expect(report.flooders.kept).toBe(2);
  expect(report.flooders.rateLimited).toBeGreaterThan(0);
  expect(report.flooders.firstRefusalMs.every((ms) => ms >= 0)).toBe(true);
  expect(Number.isFinite(report.p95Ratio)).toBe(true);
}, 120_000);
