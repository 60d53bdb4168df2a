/**
 * The replay core (lambdas/core/replay.ts) over the embedded feed's log in memory
 * (local/memory-log.ts): where each partition's replay starts, the recovery window, the filter
 * and sites, and the order.
 */
import { DecodedRecords, replayAfter, type ReplayResult } from '../../lambdas/core/replay';
import type { OffsetRange, RecordLog } from '../../lambdas/core/ports';
import { normaliseFilter, narrowToSites } from '../../lambdas/core/filter';
import type { Filter, StreamRecord } from '../../lambdas/core/protocol';
import { MemoryRecordLog } from '../../local/memory-log';
import { buildMskEvent, type KafkaRecordInput } from '../../local/msk-event';
import { alertRecord, deviceRecord } from '../support/records';

const T0 = 1_800_000_000_000;

/** A log whose clock the test moves, with both topics at three partitions. */
function setUp() {
  const clock = { now: T0 };
  const log = new MemoryRecordLog({ records: 10_000, ms: 150_000 }, () => clock.now);
  log.declare('device-data', 3);
  log.declare('alerts', 3);
  const offsets = new Map<string, number>();
  /** Appends records at the clock's time, then moves it on by `stepMs` each. */
  const produce = (records: KafkaRecordInput[], stepMs = 10) => {
    for (const record of records) {
      log.append(buildMskEvent([{ ...record, timestamp: clock.now }], {}, offsets));
      clock.now += stepMs;
    }
  };
  const reading = (partition: number, deviceId = 'pump-1', location = 'plant-a/line-1'): KafkaRecordInput => ({
    topic: 'device-data',
    partition,
    value: deviceRecord(deviceId, { location }),
  });
  const replay = (filter: Filter, resume: Record<string, number>, sites = ['*'], options = {}) =>
    replayAfter(log, { filter: narrowToSites(normaliseFilter(filter), sites)!, resume: new Map(Object.entries(resume)) }, { now: clock.now, ...options });
  return { clock, log, produce, reading, replay };
}

function cursors(result: ReplayResult): string[] {
  if (result.tooFarBehind) throw new Error(`too far behind: ${result.reason}`);
  return result.records.map((record: StreamRecord) => record.cursor!);
}

describe('replayAfter', () => {
  it('replays every partition after its cursor, in offset order per partition and in time order across them', async () => {
    const { produce, reading, replay } = setUp();
    produce([reading(0), reading(1), reading(2)]);
    produce([reading(1), reading(0), reading(2), reading(0), reading(1)]);
    const result = await replay({ types: ['device_data'] }, { 'device-data:0': 0, 'device-data:1': 0, 'device-data:2': 0 });
    expect(cursors(result)).toEqual(['device-data:1:1', 'device-data:0:1', 'device-data:2:1', 'device-data:0:2', 'device-data:1:2']);
  });

  it('applies the filter and the sites', async () => {
    const { produce, reading, replay } = setUp();
    produce([reading(0)]);
    produce([reading(0, 'pump-1'), reading(0, 'fan-1'), reading(0, 'pump-2', 'plant-b/line-1'), { topic: 'alerts', partition: 0, value: alertRecord('pump-1') }]);
    const result = await replay({ deviceTypes: ['pump'] }, { 'device-data:0': 0 }, ['plant-a']);
    expect(cursors(result)).toEqual(['device-data:0:1', 'alerts:0:0']);
  });

  it('starts a partition the client never named when the client was last current, not at its beginning', async () => {
    const { clock, produce, reading, replay } = setUp();
    produce([reading(2)]);
    clock.now += 60_000;
    produce([reading(0)]);
    // The client last saw device-data:0:0; partition 2's old record came before that.
    produce([reading(2), reading(1)]);
    expect(cursors(await replay({ types: ['device_data'] }, { 'device-data:0': 0 }))).toEqual(['device-data:2:1', 'device-data:1:0']);
  });

  it('does not read a named partition back from a cursor that is old only because its filter matched nothing there', async () => {
    const { clock, produce, reading, replay } = setUp();
    produce([reading(1, 'fan-9')]); // the client's last record on partition 1, long ago
    for (let i = 0; i < 20; i++) produce([reading(1, 'pump-9')], 10_000); // 200 s of records it does not want
    produce([reading(0, 'fan-1')]); // the client is current here
    clock.now += 1000;
    produce([reading(1, 'fan-9')]);
    const result = await replay({ deviceTypes: ['fan'] }, { 'device-data:1': 0, 'device-data:0': 0 });
    expect(cursors(result)).toEqual(['device-data:1:21']);
  });

  it('is too far behind past the window, by records or by time', async () => {
    const { clock, produce, reading, replay } = setUp();
    produce([reading(0)]);
    produce(Array.from({ length: 100 }, () => reading(0)));
    expect(await replay({}, { 'device-data:0': 0 }, ['*'], { windowRecords: 100 })).toMatchObject({ tooFarBehind: false });
    expect(await replay({}, { 'device-data:0': 0 }, ['*'], { windowRecords: 99 })).toMatchObject({ tooFarBehind: true });
    clock.now += 120_000;
    expect(await replay({}, { 'device-data:0': 0 }, ['*'])).toMatchObject({ tooFarBehind: true });
  });

  it('is too far behind for a cursor the log does not hold', async () => {
    const { produce, reading, replay } = setUp();
    produce([reading(0), reading(0)]);
    expect(await replay({}, { 'device-data:0': 2 })).toMatchObject({ tooFarBehind: true, reason: expect.stringContaining('no offset 2') });
    expect(await replay({}, { 'device-data:7': 0 })).toMatchObject({ tooFarBehind: true, reason: expect.stringContaining('no partition') });
    expect(await replay({}, {})).toMatchObject({ tooFarBehind: true });
  });

  it('replays nothing for a client that is caught up, and reads only the topics its types need', async () => {
    const { produce, reading, replay } = setUp();
    produce([reading(0), { topic: 'alerts', partition: 1, value: alertRecord('pump-1') }]);
    expect(cursors(await replay({}, { 'device-data:0': 0, 'alerts:1': 0 }))).toEqual([]);
    produce([{ topic: 'alerts', partition: 1, value: alertRecord('pump-1') }, reading(0)]);
    expect(cursors(await replay({ types: ['device_data'] }, { 'device-data:0': 0, 'alerts:1': 0 }))).toEqual(['device-data:0:1']);
  });

  it('skips a record whose value is not a valid record', async () => {
    const { produce, reading, replay } = setUp();
    produce([reading(0), { topic: 'device-data', partition: 0, value: '{"deviceId":' }, { topic: 'device-data', partition: 0, value: { deviceId: 'x' } }, reading(0)]);
    const result = await replay({}, { 'device-data:0': 0 });
    expect(cursors(result)).toEqual(['device-data:0:3']);
    expect(result).toMatchObject({ scanned: 3 });
  });

  it('replays every record after a named cursor, even of a partition delivered far behind the others', async () => {
    const { clock, produce, reading, replay } = setUp();
    produce([{ topic: 'alerts', partition: 0, value: alertRecord('pump-1') }]);
    // Alerts logged long before the newest reading the client got, delivered late by their lane.
    produce([{ topic: 'alerts', partition: 0, value: alertRecord('pump-1') }, { topic: 'alerts', partition: 0, value: alertRecord('pump-1') }]);
    clock.now += 90_000;
    produce([reading(0)]);
    expect(cursors(await replay({}, { 'alerts:0': 0, 'device-data:0': 0 }))).toEqual(['alerts:0:1', 'alerts:0:2']);
  });

  it('reads each record from the log once for resumes that share their decoded records', async () => {
    const { clock, log, produce, reading, replay } = setUp();
    produce([reading(0), reading(1)]);
    produce(Array.from({ length: 300 }, (_, i) => reading(i % 3)));
    const reads: OffsetRange[][] = [];
    const counting: RecordLog = { ...log, partitions: (t) => log.partitions(t), offsetsAt: (t, at) => log.offsetsAt(t, at), read: (r) => (reads.push([...r]), log.read(r)) };
    const cache = new DecodedRecords();
    const filter = narrowToSites(normaliseFilter({ types: ['device_data'] }), ['*'])!;
    const once = (resume: Record<string, number>) => replayAfter(counting, { filter, resume: new Map(Object.entries(resume)) }, { cache, now: clock.now });
    const results = await Promise.all(Array.from({ length: 20 }, () => once({ 'device-data:0': 0, 'device-data:1': 0 })));
    for (const result of results) expect(cursors(result)).toEqual(cursors(await replay({ types: ['device_data'] }, { 'device-data:0': 0, 'device-data:1': 0 })));
    // Each resume reads its cursor records; the window's records were read once for all twenty.
    const bulk = reads.filter((ranges) => ranges.some((range) => range.to - range.from > 1));
    expect(bulk).toHaveLength(1);
    produce([reading(2)]);
    await once({ 'device-data:0': 0, 'device-data:1': 0 });
    // A later resume reads only what was logged since.
    expect(reads.at(-1)).toEqual([{ topic: 'device-data', partition: 2, from: 100, to: 101 }]);
  });

  it('keeps what a resume is reading when another fills a later or an earlier range', async () => {
    const { log, produce, reading } = setUp();
    produce(Array.from({ length: 300 }, () => reading(0)));
    const cache = new DecodedRecords();
    const filter = narrowToSites(normaliseFilter({}), ['*'])!;
    const held = async (from: number, to: number) => {
      const out: Parameters<DecodedRecords['matches']>[2] = [];
      await cache.matches({ topic: 'device-data', partition: 0, from, to }, filter, out);
      return out.map((match) => match.record.cursor);
    };
    await cache.fill(log, [{ topic: 'device-data', partition: 0, from: 100, to: 150 }]);
    await cache.fill(log, [{ topic: 'device-data', partition: 0, from: 200, to: 250 }]);
    await cache.fill(log, [{ topic: 'device-data', partition: 0, from: 50, to: 60 }]);
    expect(await held(0, 300)).toEqual(Array.from({ length: 200 }, (_, i) => `device-data:0:${50 + i}`));
  });
});
