/**
 * Resume on the embedded event source (no broker): a client that reconnects with its cursors gets
 * what it missed from the window kept in memory, exactly once, in order per partition, nothing
 * outside its filter or sites; past the window it is told so and gets the snapshot. The same
 * replay core reads Kafka itself with `--kafka` (test/integration/resume-kafka.test.ts).
 */
import { mintToken } from '../../lambdas/core/auth';
import { LIMITS, type ResumedFrame } from '../../lambdas/core/protocol';
import type { LocalRuntime } from '../../local/runtime';
import { startTestRuntime } from '../support/runtime';
import type { KafkaRecordInput } from '../../local/msk-event';
import { alertRecord, deviceRecord } from '../support/records';
import { TestClient, type RecordFrame } from '../support/ws-test-client';

const secret = 'resume-test-secret-of-at-least-32-bytes!';
let runtime: LocalRuntime;
let plantA: string;
const clients: TestClient[] = [];
const WINDOW_RECORDS = 300;

beforeAll(async () => {
  runtime = await startTestRuntime({
    urlHost: '127.0.0.1',
    statusIntervalMs: 0,
    jwtSecret: secret,
    resumeWindow: { ms: LIMITS.resumeWindowMs, records: WINDOW_RECORDS },
  });
  plantA = await mintToken(secret, { sub: 'operator-a', sites: ['plant-a'] });
}, 60_000);

afterEach(async () => {
  await Promise.all(clients.splice(0).map((client) => client.close()));
});

afterAll(async () => {
  await runtime?.stop();
});

async function connect(token = plantA): Promise<TestClient> {
  const client = await TestClient.connect(runtime.wsUrl, token);
  clients.push(client);
  return client;
}

/** The last offset seen per `topic:partition`, as a dashboard keeps them. */
function cursorsOf(records: readonly RecordFrame[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const { cursor } of records) {
    const at = cursor!.lastIndexOf(':');
    const name = cursor!.slice(0, at);
    out[name] = Math.max(out[name] ?? -1, Number(cursor!.slice(at + 1)));
  }
  return out;
}

/** Records of plant-a and plant-b pumps and fans over three partitions, with alerts among them. */
function traffic(count: number, tag: string): KafkaRecordInput[] {
  return Array.from({ length: count }, (_, i) => {
    const plant = i % 5 === 0 ? 'plant-b' : 'plant-a';
    const device = `${i % 3 === 0 ? 'fan' : 'pump'}-${tag}${i % 7}`;
    const partition = i % 3;
    if (i % 10 === 9) return { topic: 'alerts', partition: i % 2, value: alertRecord(device, { location: `${plant}/line-1` }) };
    return { topic: 'device-data', partition, value: deviceRecord(device, { location: `${plant}/line-2` }) };
  });
}

function offsetOf(cursor: string): number {
  return Number(cursor.slice(cursor.lastIndexOf(':') + 1));
}

/** Fails unless each partition's records arrive in offset order. */
function expectInOrderPerPartition(records: readonly RecordFrame[]): void {
  const last = new Map<string, number>();
  for (const { cursor } of records) {
    const name = cursor!.slice(0, cursor!.lastIndexOf(':'));
    expect(offsetOf(cursor!)).toBeGreaterThan(last.get(name) ?? -1);
    last.set(name, offsetOf(cursor!));
  }
}

const pumps = { types: ['device_data', 'alert'] as const, deviceTypes: ['pump'] };

describe('resume on the embedded event source', () => {
  it('replays what the subscription missed, once, in order, within its filter and sites, then continues live', async () => {
    // The watcher stays connected: what it gets is what the resuming client would have had.
    const watcher = await connect();
    await watcher.subscribe('w', { ...pumps, types: [...pumps.types] });
    const client = await connect();
    await client.subscribe('s1', { ...pumps, types: [...pumps.types] });
    await runtime.publish(traffic(60, 'x'));
    await client.barrier();
    const before = client.records.filter((r) => r.cursor);
    expect(before.length).toBeGreaterThan(0);
    const resume = cursorsOf(before);
    await client.close();

    const missedFrom = watcher.records.length;
    await runtime.publish(traffic(90, 'y'));
    await runtime.publish(traffic(30, 'z'));
    await watcher.barrier();
    const missed = watcher.records.slice(missedFrom);
    expect(missed.length).toBeGreaterThan(50);

    const back = await connect();
    const reply = await back.request({ action: 'subscribe', id: 's1', filter: pumps, resume }, ['subscribed', 'error']);
    expect(reply.type).toBe('subscribed');
    await back.until(() => back.of('resumed').length > 0, 10_000, 'resumed');
    const resumed = back.of('resumed')[0] as ResumedFrame;
    const replayed = back.records;
    expect(resumed).toEqual({ type: 'resumed', id: 's1', replayed: missed.length });
    expect(replayed.map((r) => r.cursor)).toEqual(expect.arrayContaining(missed.map((r) => r.cursor)));
    expect(replayed.map((r) => r.cursor).sort()).toEqual(missed.map((r) => r.cursor).sort());
    expect(new Set(replayed.map((r) => r.cursor)).size).toBe(replayed.length);
    expectInOrderPerPartition(replayed);
    for (const record of replayed) {
      expect(record.data.location.startsWith('plant-a/')).toBe(true);
      expect(record.data.deviceType).toBe('pump');
    }
    // No snapshot within the window: the client already holds the state the replay completes.
    expect(back.of('snapshot')).toHaveLength(0);

    // Live frames follow, without a duplicate.
    const liveFrom = back.records.length;
    await runtime.publish(traffic(30, 'w'));
    await back.barrier();
    const live = back.records.slice(liveFrom);
    expect(live.length).toBeGreaterThan(0);
    expect(new Set(back.records.map((r) => r.cursor)).size).toBe(back.records.length);
  });

  it('misses nothing when records keep flowing while it resumes', async () => {
    const watcher = await connect();
    await watcher.subscribe('w', { types: ['device_data'] });
    const client = await connect();
    await client.subscribe('all', { types: ['device_data'] });
    await runtime.publish(traffic(30, 'a'));
    await client.barrier();
    const resume = cursorsOf(client.records);
    const seen = new Set(client.records.map((r) => r.cursor));
    await client.close();
    await runtime.publish(traffic(60, 'b'));

    // Batches go on while the resume is handled.
    let flowing = true;
    const flow = (async () => {
      while (flowing) await runtime.publish(traffic(12, 'c'));
    })();
    const back = await connect();
    await back.request({ action: 'subscribe', id: 'all', filter: { types: ['device_data'] }, resume }, ['subscribed']);
    await back.until(() => back.of('resumed').length > 0, 10_000, 'resumed');
    await new Promise((resolve) => setTimeout(resolve, 200));
    flowing = false;
    await flow;
    await Promise.all([watcher.barrier(), back.barrier()]);

    // Every record the watcher got after the cursors reached the resumed client, none twice once
    // duplicates are dropped by cursor, as the protocol has clients do.
    const expected = watcher.records.map((r) => r.cursor!).filter((c) => !seen.has(c) && offsetOf(c) > resume[c.slice(0, c.lastIndexOf(':'))]!);
    const got = new Set(back.records.map((r) => r.cursor!));
    expect(expected.filter((c) => !got.has(c))).toEqual([]);
    expect([...got].filter((c) => !expected.includes(c))).toEqual([]);
  });

  it('past the window says so and sends the snapshot', async () => {
    const client = await connect();
    await client.subscribe('s', { types: ['device_data'] });
    await runtime.publish(traffic(12, 'p'));
    await client.barrier();
    const resume = cursorsOf(client.records);
    await client.close();
    await runtime.publish(traffic(WINDOW_RECORDS * 4, 'q'));

    const back = await connect();
    await back.request({ action: 'subscribe', id: 's', filter: { types: ['device_data'] }, resume }, ['subscribed']);
    await back.until(() => back.of('snapshot').some((s) => s.final), 10_000, 'the snapshot');
    expect(back.of('resumed')).toEqual([{ type: 'resumed', id: 's', replayed: 0, tooFarBehind: true }]);
    expect(back.frames.findIndex((f) => f.type === 'resumed')).toBeLessThan(back.frames.findIndex((f) => f.type === 'snapshot'));
    expect(back.records.filter((r) => r.cursor)).toHaveLength(0);
  });

  it('answers a cursor the log never held as too far behind, and a malformed resume as bad_request', async () => {
    const client = await connect();
    const future = await client.request({ action: 'subscribe', id: 'f', filter: { types: ['alert'] }, resume: { 'alerts:0': 1e12 } }, ['subscribed', 'error']);
    expect(future.type).toBe('subscribed');
    await client.until(() => client.of('resumed').length > 0, 10_000, 'resumed');
    expect(client.of('resumed')[0]).toMatchObject({ tooFarBehind: true });

    for (const resume of [{ 'orders:0': 1 }, { constructor: 1 }, { 'alerts:0': -1 }, { 'alerts:0': 'x' }, [1, 2], { 'alerts:00': 1 }]) {
      const reply = await client.request({ action: 'subscribe', id: 'bad', filter: { types: ['alert'] }, resume }, ['subscribed', 'error']);
      expect(reply).toMatchObject({ type: 'error', code: 'bad_request', id: 'bad' });
    }
    const many = Object.fromEntries(Array.from({ length: LIMITS.maxResumePartitions + 1 }, (_, i) => [`alerts:${i}`, 1]));
    expect(await client.request({ action: 'subscribe', id: 'bad', resume: many }, ['subscribed', 'error'])).toMatchObject({ code: 'bad_request' });
    // The refused subscribes changed nothing: the connection holds only "f".
    expect((await client.request({ action: 'unsubscribe', id: 'bad' }, ['unsubscribed', 'error'])).type).toBe('error');
    expect((await client.request({ action: 'unsubscribe', id: 'f' }, ['unsubscribed', 'error'])).type).toBe('unsubscribed');
  });
});
