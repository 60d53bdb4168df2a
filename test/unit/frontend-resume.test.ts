/**
 * The dashboard's side of resume (DESIGN.md "Resume"): the offsets it names and the order it
 * delivers held records in. LiveSocket's use of both is in frontend-ws-client.test.ts.
 */
import { LIMITS, subscribeFrameSchema } from '../../lambdas/core/protocol';
import { deliveryOrder, type RecordFrame } from '../../frontend/src/replay-hold';
import { PartitionOffsets } from '../../frontend/src/resume-offsets';

const reading = (cursor: string | undefined, timestamp: number): RecordFrame => ({
  type: 'device_data',
  ...(cursor === undefined ? {} : { cursor }),
  timestamp,
  data: { deviceId: 'pump-001', deviceType: 'pump', location: 'l', status: 'online', timestamp, metrics: {} },
});

describe('PartitionOffsets', () => {
  test('names the newest offset of each partition heard from within the window', () => {
    const offsets = new PartitionOffsets();
    expect(offsets.resumeAt(0)).toBeUndefined();
    offsets.note('alerts:0:77', 1_000);
    offsets.note('device-data:3:1042', 200_000);
    offsets.note('device-data:3:1041', 200_001);
    offsets.note('device-data:1:5', 150_000);
    // alerts:0 was last heard 199 s before: past the 2-minute window, so left out.
    expect(offsets.resumeAt(200_000)).toEqual({ 'device-data:3': 1042, 'device-data:1': 5 });
    expect(offsets.resumeAt(150_000 + LIMITS.resumeWindowMs + 1)).toEqual({ 'device-data:3': 1042 });
    // Every partition quiet for longer: the freshest is named, for the server to say "too far behind".
    expect(offsets.resumeAt(10_000_000)).toEqual({ 'device-data:3': 1042 });
  });

  test('only cursors the server takes in a resume are noted', () => {
    const offsets = new PartitionOffsets();
    for (const cursor of ['constructor:0:1', 'device-data:01:1', 'device-data:0:-1', 'device-data:0:1e3', 'alerts:1234567:1', 'alerts:0', 'alerts:0:99999999999999999']) {
      offsets.note(cursor, 1);
    }
    expect(offsets.size).toBe(0);
    offsets.note('alerts:123456:9007199254740991', 1);
    const resume = offsets.resumeAt(1);
    expect(resume).toEqual({ 'alerts:123456': Number.MAX_SAFE_INTEGER });
    expect(subscribeFrameSchema.safeParse({ action: 'subscribe', resume }).success).toBe(true);
  });

  test('memory is bounded: the partition heard from least recently is forgotten first', () => {
    const offsets = new PartitionOffsets(2);
    offsets.note('device-data:0:1', 1);
    offsets.note('device-data:1:1', 2);
    offsets.note('device-data:0:2', 3);
    offsets.note('device-data:2:1', 4);
    expect(offsets.size).toBe(2);
    expect(offsets.resumeAt(4)).toEqual({ 'device-data:0': 2, 'device-data:2': 1 });
  });

  test('a full resume is one the server takes', () => {
    const offsets = new PartitionOffsets();
    for (let partition = 0; partition < LIMITS.maxResumePartitions + 10; partition++) offsets.note(`device-data:${partition}:${partition}`, partition);
    const resume = offsets.resumeAt(LIMITS.maxResumePartitions);
    expect(Object.keys(resume ?? {})).toHaveLength(LIMITS.maxResumePartitions);
    expect(subscribeFrameSchema.safeParse({ action: 'subscribe', resume }).success).toBe(true);
  });
});

describe('deliveryOrder', () => {
  test('offset order within each partition, partitions merged by record time', () => {
    const held = [
      reading('device-data:0:12', 12),
      reading('alerts:0:3', 1),
      reading('device-data:0:10', 10),
      reading('device-data:1:7', 11),
      // A record whose time runs backwards within its partition still comes after the one before it.
      reading('device-data:0:11', 9),
    ];
    expect(deliveryOrder(held).map((frame) => frame.cursor)).toEqual(['alerts:0:3', 'device-data:0:10', 'device-data:0:11', 'device-data:1:7', 'device-data:0:12']);
  });

  test('records without a cursor keep their arrival order', () => {
    const held = [reading(undefined, 5), reading('device-data:0:1', 3), reading(undefined, 1)];
    expect(deliveryOrder(held).map((frame) => `${frame.cursor}@${frame.data.timestamp}`)).toEqual(['device-data:0:1@3', 'undefined@5', 'undefined@1']);
  });
});
