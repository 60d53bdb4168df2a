import type { MSKEvent } from 'aws-lambda';
import event from '../fixtures/msk/batch-with-poison.json';
import { normaliseFilter, indexKeysForFilter } from '../../lambdas/core/filter';
import type { SubscriptionEntry } from '../../lambdas/core/fanout';
import type { Poster, SubscriptionIndex } from '../../lambdas/core/ports';
import { parseServerFrame, unpackFrame, type Filter } from '../../lambdas/core/protocol';
import { Pacer, PostBudget } from '../../lambdas/core/pacing';
import { processStreamEvent } from '../../lambdas/core/stream-processor';
import { createStreamHandler } from '../../lambdas/handlers/stream';

/** An in-memory index: the core's port, not the thing under test here (dynalite covers the adapter). */
class MemoryIndex implements SubscriptionIndex {
  lookups: string[][] = [];
  entries: SubscriptionEntry[] = [];
  add(connectionId: string, filter: Filter, subscriptionId = 's1') {
    const normalised = normaliseFilter(filter);
    for (const indexKey of indexKeysForFilter(normalised)) {
      this.entries.push({ indexKey, connectionId, subscriptionId, filter: normalised });
    }
  }
  async put(entries: readonly SubscriptionEntry[]) {
    this.entries.push(...entries);
  }
  async remove(entries: readonly Pick<SubscriptionEntry, 'indexKey' | 'connectionId' | 'subscriptionId'>[]) {
    this.entries = this.entries.filter(
      (e) => !entries.some((r) => r.indexKey === e.indexKey && r.connectionId === e.connectionId && r.subscriptionId === e.subscriptionId),
    );
  }
  async lookup(keys: readonly string[]) {
    this.lookups.push([...keys]);
    const map = new Map<string, SubscriptionEntry[]>();
    for (const key of keys) {
      const list = this.entries.filter((e) => e.indexKey === key);
      if (list.length) map.set(key, list);
    }
    return map;
  }
}

class RecordingPoster implements Poster {
  sent = new Map<string, string[]>();
  constructor(private readonly gone = new Set<string>()) {}
  async post(connectionId: string, text: string) {
    if (this.gone.has(connectionId)) return { outcome: 'gone' as const, retries: 0 };
    this.sent.set(connectionId, [...(this.sent.get(connectionId) ?? []), text]);
    return { outcome: 'ok' as const, retries: 0 };
  }
  frames(connectionId: string) {
    return (this.sent.get(connectionId) ?? []).flatMap((t) => unpackFrame(parseServerFrame(t)));
  }
}

describe('stream processor on an MSK event with poison records', () => {
  it('skips and reports bad records and delivers the rest', async () => {
    const index = new MemoryIndex();
    index.add('everything', {});
    index.add('pumps', { deviceTypes: ['pump'] });
    index.add('critical', { types: ['alert'], alertLevels: ['critical'] });
    index.add('nobody', { deviceIds: ['boiler-999'] });
    const poster = new RecordingPoster();
    const warnings: Record<string, unknown>[] = [];
    const log = { debug() {}, info() {}, error() {}, warn: (_m: string, ...extra: Record<string, unknown>[]) => warnings.push(...extra) };
    const { report, metrics } = await processStreamEvent(event as MSKEvent, {
      index,
      poster,
      log,
      removeConnection: async () => ({ connectedAt: 0 }),
      now: () => 1764090001000,
    });
    expect(report).toMatchObject({ records: 5, valid: 3, invalid: 2, connections: 3, deliveries: 3 + 2 + 1, stale: 0, failed: 0 });
    // One lookup for the whole batch, each distinct key once.
    expect(index.lookups).toHaveLength(1);
    expect(new Set(index.lookups[0]).size).toBe(index.lookups[0].length);
    // Several records for one connection travel in one batch frame.
    expect(poster.sent.get('everything')).toHaveLength(1);
    expect(poster.frames('everything').map((f) => f.type)).toEqual(['device_data', 'device_data', 'alert']);
    expect(poster.frames('pumps').map((f) => (f as { cursor: string }).cursor)).toEqual(['device-data:0:15', 'alerts:0:3']);
    expect(poster.frames('critical').map((f) => f.type)).toEqual(['alert']);
    expect(poster.sent.has('nobody')).toBe(false);
    // The ISO timestamp of the motor reading arrives as epoch ms.
    const motor = poster.frames('everything')[1] as { data: { timestamp: number } };
    expect(motor.data.timestamp).toBe(Date.parse('2025-11-25T17:00:00.500Z'));
    // Bad records are logged with topic, partition and offset, and counted per topic.
    expect(warnings).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ topic: 'device-data', partition: 0, offset: 16, reason: 'value is not JSON' }),
        expect.objectContaining({ topic: 'device-data', partition: 0, offset: 17 }),
      ]),
    );
    expect(metrics.values.get('stream_records_total{outcome="invalid",topic="device-data"}')).toBe(2);
    expect(metrics.values.get('stream_records_total{outcome="valid",topic="alerts"}')).toBe(1);
  });

  it('removes a connection that is gone, with the index items the lookup found, and counts it', async () => {
    const index = new MemoryIndex();
    index.add('alive', {});
    index.add('dead', { deviceIds: ['pump-017'] });
    const removed: [string, number][] = [];
    const poster = new RecordingPoster(new Set(['dead']));
    const { report, metrics } = await processStreamEvent(event as MSKEvent, {
      index,
      poster,
      removeConnection: async (id, entries) => {
        removed.push([id, entries.length]);
        return { connectedAt: Date.now() - 5000 };
      },
    });
    expect(report.stale).toBe(1);
    expect(removed).toEqual([['dead', 1]]);
    expect(poster.frames('alive')).toHaveLength(3);
    expect(metrics.values.get('websocket_stale_connections_total')).toBe(1);
    expect(metrics.values.get('websocket_connections')).toBe(-1);
    expect(metrics.values.get('websocket_connection_duration_seconds_bucket{le="10"}')).toBe(1);
  });

  it('rejects the batch when the index cannot be read, so that it is retried', async () => {
    const index = new MemoryIndex();
    index.lookup = async () => {
      throw new Error('ECONNREFUSED');
    };
    await expect(
      processStreamEvent(event as MSKEvent, { index, poster: new RecordingPoster(), removeConnection: async () => ({ connectedAt: 0 }) }),
    ).rejects.toThrow('ECONNREFUSED');
  });
});

/** A poster whose posts each take a turn of the event loop, and that records how many overlap. */
class CountingPoster extends RecordingPoster {
  inFlight = 0;
  maxInFlight = 0;
  order: string[] = [];
  constructor(private readonly onPost?: () => void) {
    super();
  }
  override async post(connectionId: string, text: string) {
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    this.order.push(connectionId);
    this.onPost?.();
    await new Promise((resolve) => setImmediate(resolve));
    this.inFlight--;
    return super.post(connectionId, text);
  }
}

const quiet = { debug() {}, info() {}, warn() {}, error() {} };
const noRemoval = async () => undefined;

describe('shared work and sized concurrency', () => {
  it('connections that get the same records get byte-identical messages, built once', async () => {
    const index = new MemoryIndex();
    for (let i = 0; i < 300; i++) index.add(`all-${i}`, {});
    index.add('pumps', { deviceTypes: ['pump'] });
    const poster = new RecordingPoster();
    const { report } = await processStreamEvent(event as MSKEvent, { index, poster, removeConnection: noRemoval, now: () => 1764090001000 });
    expect(report.connections).toBe(301);
    expect(report.posts).toBe(301);
    expect(report.messages).toBe(2);
    const texts = new Set([...poster.sent].filter(([id]) => id.startsWith('all-')).map(([, [text]]) => text));
    expect(texts.size).toBe(1);
    expect(poster.frames('all-7').map((f) => f.type)).toEqual(['device_data', 'device_data', 'alert']);
    expect(poster.frames('pumps')).toHaveLength(2);
  });

  it('posts in flight grow with the audience, up to the cap', async () => {
    const index = new MemoryIndex();
    for (let i = 0; i < 100; i++) index.add(`c${i}`, {});
    const wide = new CountingPoster();
    await processStreamEvent(event as MSKEvent, { index, poster: wide, removeConnection: noRemoval });
    expect(wide.maxInFlight).toBe(100);
    const capped = new CountingPoster();
    await processStreamEvent(event as MSKEvent, { index, poster: capped, removeConnection: noRemoval, concurrency: 10 });
    expect(capped.maxInFlight).toBe(10);
    expect(capped.sent.size).toBe(100);
  });
});

describe('pacing in the stream processor', () => {
  it('posts alerts first, and serves the telemetry beyond the budget as it refills, before returning', async () => {
    const index = new MemoryIndex();
    for (let i = 0; i < 5; i++) index.add(`motors-${i}`, { deviceTypes: ['motor'] });
    index.add('critical', { types: ['alert'], alertLevels: ['critical'] });
    let now = 1764090001000;
    const pacer = new Pacer(new PostBudget(3, () => now));
    const poster = new CountingPoster();
    const waits: number[] = [];
    const sleep = async (ms: number) => {
      waits.push(ms);
      now += ms;
    };
    const { report } = await processStreamEvent(event as MSKEvent, { index, poster, removeConnection: noRemoval, pacer, sleep, concurrency: 1, now: () => now });
    expect(poster.order[0]).toBe('critical');
    expect(report).toMatchObject({ posts: 6, deferred: 0, connections: 6 });
    // Three posts at once (the budget), then the other three as the budget refilled: 1 s at 3 a second.
    expect(waits.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(1000);
    for (let i = 0; i < 5; i++) expect(poster.frames(`motors-${i}`).map((f) => f.type)).toEqual(['device_data']);
  });

  it('leaves what still waits at the deadline to the next invocation', async () => {
    const index = new MemoryIndex();
    for (let i = 0; i < 5; i++) index.add(`motors-${i}`, { deviceTypes: ['motor'] });
    let now = 0;
    const pacer = new Pacer(new PostBudget(2, () => now));
    const poster = new RecordingPoster();
    const sleep = async (ms: number) => {
      now += ms;
    };
    const first = await processStreamEvent(event as MSKEvent, {
      index,
      poster,
      removeConnection: noRemoval,
      pacer,
      sleep,
      remainingMs: () => 3500 - now,
    });
    expect(first.report).toMatchObject({ posts: 3, deferred: 2, unsent: 0 });
    const second = await processStreamEvent({ records: {} }, { index, poster, removeConnection: noRemoval, pacer, sleep });
    expect(second.report).toMatchObject({ posts: 2, deferred: 0 });
    expect(poster.sent.size).toBe(5);
  });
});

describe('the deadline of the invocation', () => {
  it('starts no post once the time left is within the reserve, and returns', async () => {
    const index = new MemoryIndex();
    for (let i = 0; i < 20; i++) index.add(`c${i}`, {});
    let elapsed = 0;
    // Each post takes a second of the invocation's 10.
    const poster = new CountingPoster(() => (elapsed += 1000));
    const warnings: Record<string, unknown>[] = [];
    const log = { ...quiet, warn: (_m: string, ...extra: Record<string, unknown>[]) => warnings.push(...extra) };
    const { report } = await processStreamEvent(event as MSKEvent, {
      index,
      poster,
      log,
      removeConnection: noRemoval,
      concurrency: 1,
      remainingMs: () => 10_000 - elapsed,
    });
    expect(report.posts).toBe(8);
    expect(report.unsent).toBe(12);
    expect(warnings).toContainEqual({ unsent: 12 });
  });

  it('the stream handler takes it from the Lambda context', async () => {
    const index = new MemoryIndex();
    index.add('c1', {});
    const poster = new RecordingPoster();
    const connections = { put: async () => {}, get: async () => undefined, change: async () => ({ outcome: 'gone' as const }), delete: async () => undefined };
    const handler = createStreamHandler({ sessions: { connections, index }, poster, metrics: { flush: async () => {} }, log: quiet });
    const report = await handler(event as MSKEvent, { getRemainingTimeInMillis: () => 500 });
    expect(report).toMatchObject({ connections: 1, posts: 0, unsent: 1 });
    expect(poster.sent.size).toBe(0);
  });
});
