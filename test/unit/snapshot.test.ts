import { packSnapshot } from '../../lambdas/core/snapshot';
import { parseServerFrame, utf8Length, type SnapshotFrame } from '../../lambdas/core/protocol';

const reading = (i: number, pad = 0) =>
  JSON.stringify({
    type: 'device_data',
    data: { deviceId: `pump-${i}`, deviceType: 'pump', location: 'plant-a/l', timestamp: i, status: 'online', metrics: { t: i }, ...(pad ? { deviceType: 'p'.repeat(pad) } : {}) },
    timestamp: 1,
  });

describe('snapshot packing', () => {
  it('sends one final frame with no messages when nothing matches', () => {
    expect(packSnapshot('s1', [])).toEqual(['{"type":"snapshot","id":"s1","messages":[],"final":true}']);
  });

  it('keeps every frame under the limit, keeps order, and marks only the last final', () => {
    const texts = Array.from({ length: 500 }, (_, i) => reading(i));
    const packed = packSnapshot('s-é', texts, 4096);
    expect(packed.length).toBeGreaterThan(5);
    for (const text of packed) expect(utf8Length(text)).toBeLessThanOrEqual(4096);
    const frames = packed.map((text) => parseServerFrame(text) as SnapshotFrame);
    expect(frames.map((f) => f.final)).toEqual(frames.map((_, i) => i === frames.length - 1));
    expect(frames.every((f) => f.id === 's-é')).toBe(true);
    expect(frames.flatMap((f) => f.messages.map((m) => m.data.deviceId))).toEqual(texts.map((_, i) => `pump-${i}`));
  });

  it('sends a record larger than the limit alone rather than dropping it', () => {
    const packed = packSnapshot('s1', [reading(1), reading(2, 120), reading(3)], 300);
    expect(packed.map((text) => (parseServerFrame(text) as SnapshotFrame).messages.length)).toEqual([1, 1, 1]);
  });
});
