import type { MSKEvent } from 'aws-lambda';
import event from '../fixtures/msk/batch-with-poison.json';
import { normaliseFilter, indexKeysForFilter } from '../../lambdas/core/filter';
import type { SubscriptionEntry } from '../../lambdas/core/fanout';
import type { Poster, SubscriptionIndex } from '../../lambdas/core/ports';
import { parseServerFrame, unpackFrame, type Filter } from '../../lambdas/core/protocol';
import { processStreamEvent } from '../../lambdas/core/stream-processor';

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
