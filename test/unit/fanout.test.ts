import fc from 'fast-check';
import { buildMessages, frameText, packTexts } from '../../lambdas/core/fanout';
import { LIMITS, parseServerFrame, recordFrame, unpackFrame, utf8Length, type StreamRecord } from '../../lambdas/core/protocol';
import { deviceRecord, streamRecord } from '../support/records';

const record = (i: number, extra = ''): StreamRecord =>
  streamRecord(
    deviceRecord(`pump-${i}${extra}`, { location: 'plant-a/line-2', timestamp: 1764090000000 + i, metrics: { temperature: 70 + i / 100 } }),
    `device-data:0:${i}`,
  );

describe('packing frames', () => {
  it('sends one record as a plain frame', () => {
    const messages = buildMessages(new Map([['c1', [record(1)]]]), 5);
    const [text] = messages.get('c1')!;
    expect(parseServerFrame(text)).toEqual({ type: 'device_data', data: record(1).data, timestamp: 5, cursor: 'device-data:0:1' });
  });

  it('packs many records for one connection into batch frames under 32 KB, keeping order', () => {
    const records = Array.from({ length: 1000 }, (_, i) => record(i));
    const texts = buildMessages(new Map([['c1', records]]), 5).get('c1')!;
    expect(texts.length).toBeGreaterThan(1);
    expect(texts.length).toBeLessThan(10);
    for (const text of texts) expect(utf8Length(text)).toBeLessThanOrEqual(LIMITS.maxFrameBytes);
    const frames = texts.flatMap((t) => unpackFrame(parseServerFrame(t)));
    expect(frames.map((f) => (f as { cursor: string }).cursor)).toEqual(records.map((r) => r.cursor));
  });

  it('counts multi-byte characters in the 32 KB limit', () => {
    const records = Array.from({ length: 300 }, (_, i) => record(i, '-温度計'.repeat(10)));
    const texts = buildMessages(new Map([['c1', records]]), 5).get('c1')!;
    for (const text of texts) expect(Buffer.byteLength(text)).toBeLessThanOrEqual(LIMITS.maxFrameBytes);
  });

  it('sends a frame larger than the limit alone rather than dropping it', () => {
    const big = 'x'.repeat(100);
    expect(packTexts(['{"a":1}', `{"b":"${big}"}`, '{"c":3}'], 50)).toEqual(['{"a":1}', `{"b":"${big}"}`, '{"c":3}']);
  });
});

describe('frameText', () => {
  const name = fc.string({ minLength: 1, maxLength: 20 });
  const device = fc.record({
    deviceId: name,
    deviceType: name,
    location: name,
    timestamp: fc.nat(),
    status: fc.constantFrom('online' as const, 'warning' as const, 'error' as const, 'offline' as const),
    metrics: fc.dictionary(name, fc.double({ noNaN: true, noDefaultInfinity: true })),
  });
  const alert = fc.record(
    {
      alertId: name,
      deviceId: name,
      deviceType: name,
      location: name,
      level: fc.constantFrom('info' as const, 'warning' as const, 'critical' as const),
      message: fc.string(),
      value: fc.double({ noNaN: true, noDefaultInfinity: true }),
      timestamp: fc.nat(),
      resolves: name,
    },
    { requiredKeys: ['alertId', 'deviceId', 'deviceType', 'location', 'level', 'message', 'timestamp'] },
  );
  const record: fc.Arbitrary<StreamRecord> = fc.oneof(
    fc.record({ type: fc.constant('device_data' as const), data: device, cursor: fc.option(fc.string(), { nil: undefined }) }),
    fc.record({ type: fc.constant('alert' as const), data: alert, cursor: fc.option(fc.string(), { nil: undefined }) }),
  );

  it('is the JSON of recordFrame, byte for byte, for any record and time', () => {
    fc.assert(
      fc.property(record, fc.nat(), (r, now) => {
        if (r.cursor === undefined) delete r.cursor;
        expect(frameText(r, now)).toBe(JSON.stringify(recordFrame(r, now)));
        // The cached data serves a second frame of another time.
        expect(frameText(r, now + 1)).toBe(JSON.stringify(recordFrame(r, now + 1)));
      }),
    );
  });
});
