import fc from 'fast-check';
import { parseJsonText } from '../../lambdas/core/json-text';
import { LIMITS, parseClientFrame, parseRecord, parseServerFrame } from '../../lambdas/core/protocol';

describe('client frames', () => {
  it('accepts a subscribe with a filter and an id', () => {
    const result = parseClientFrame(
      JSON.stringify({ action: 'subscribe', id: 's1', filter: { deviceTypes: ['pump'], alertLevels: ['critical'] } }),
    );
    expect(result).toEqual({
      ok: true,
      frame: { action: 'subscribe', id: 's1', filter: { deviceTypes: ['pump'], alertLevels: ['critical'] } },
    });
  });

  it.each([
    ['bad JSON', '{"action":', 'bad_request'],
    ['a JSON array', '[1,2]', 'bad_request'],
    ['no action', '{"id":"x"}', 'bad_request'],
    ['an unknown action', '{"action":"publish"}', 'unknown_action'],
    ['a filter with a misspelt field', '{"action":"subscribe","filter":{"deviceID":["x"]}}', 'bad_request'],
    ['an unknown alert level', '{"action":"subscribe","filter":{"alertLevels":["fatal"]}}', 'bad_request'],
    ['a filter value that is not a string', '{"action":"subscribe","filter":{"deviceIds":[1]}}', 'bad_request'],
    ['an id with spaces', '{"action":"subscribe","id":"my sub"}', 'bad_request'],
    ['unsubscribe without id', '{"action":"unsubscribe"}', 'bad_request'],
    ['an empty message', '', 'bad_request'],
  ])('rejects %s with %s', (_name, body, code) => {
    const result = parseClientFrame(body);
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.error.type).toBe('error');
      expect(result.error.code).toBe(code);
      expect(result.error.message.length).toBeGreaterThan(5);
    }
  });

  it('rejects a message over the product limit as too_large', () => {
    const big = JSON.stringify({ action: 'subscribe', filter: { deviceIds: ['x'.repeat(LIMITS.maxClientMessageBytes)] } });
    const result = parseClientFrame(big);
    expect(!result.ok && result.error.code).toBe('too_large');
  });

  it('names the field at fault', () => {
    const result = parseClientFrame('{"action":"subscribe","filter":{"locations":"plant-a"}}');
    expect(!result.ok && result.error.message).toMatch(/filter\.locations/);
  });

  it('limits the values of a filter field', () => {
    const ids = Array.from({ length: LIMITS.maxFilterValues + 1 }, (_, i) => `d${i}`);
    const result = parseClientFrame(JSON.stringify({ action: 'subscribe', filter: { deviceIds: ids } }));
    expect(!result.ok && result.error.code).toBe('bad_request');
  });
});

describe('Kafka records', () => {
  const reading = {
    deviceId: 'pump-017',
    deviceType: 'pump',
    location: 'plant-a/line-2',
    timestamp: 1764090000123,
    status: 'online',
    metrics: { temperature: 71.2, pressure: 3.1 },
  };

  it('accepts the design example of device-data', () => {
    const result = parseRecord('device-data', reading);
    expect(result).toEqual({ ok: true, record: { type: 'device_data', data: reading } });
  });

  it('normalises an ISO-8601 timestamp to epoch milliseconds', () => {
    const result = parseRecord('device-data', { ...reading, timestamp: '2025-11-25T17:00:00.123Z' });
    expect(result.ok && result.record.data.timestamp).toBe(Date.parse('2025-11-25T17:00:00.123Z'));
  });

  it('accepts the design example of an alert', () => {
    const alert = {
      alertId: 'a-8f3',
      deviceId: 'pump-017',
      deviceType: 'pump',
      location: 'plant-a/line-2',
      level: 'critical',
      message: 'temperature above 90',
      metric: 'temperature',
      value: 93.4,
      threshold: 90,
      timestamp: 1764090000456,
    };
    expect(parseRecord('alerts', alert)).toEqual({ ok: true, record: { type: 'alert', data: alert } });
  });

  it.each([
    ['a missing deviceId', { ...reading, deviceId: undefined }, /deviceId/],
    ['an unknown status', { ...reading, status: 'melting' }, /status/],
    ['a metric that is not a number', { ...reading, metrics: { temperature: 'hot' } }, /metrics/],
    ['a timestamp that is not a date', { ...reading, timestamp: 'yesterday' }, /timestamp/],
  ])('rejects %s, saying which field', (_name, value, field) => {
    const result = parseRecord('device-data', value);
    expect(result.ok).toBe(false);
    expect(!result.ok && result.reason).toMatch(field);
  });

  it('rejects a record of an unknown topic', () => {
    expect(parseRecord('other', reading)).toEqual({ ok: false, reason: 'unknown topic "other"' });
  });
});

describe('ack', () => {
  it('accepts an ack naming an alert', () => {
    expect(parseClientFrame('{"action":"ack","alertId":"a-8f3"}')).toEqual({ ok: true, frame: { action: 'ack', alertId: 'a-8f3' } });
  });

  it.each([
    ['no alert id', '{"action":"ack"}'],
    ['an empty alert id', '{"action":"ack","alertId":""}'],
    ['an alert id that is not a string', '{"action":"ack","alertId":{"$ne":null}}'],
    ['an overlong alert id', JSON.stringify({ action: 'ack', alertId: 'a'.repeat(LIMITS.maxNameLength + 1) })],
  ])('rejects %s with bad_request', (_name, body) => {
    const result = parseClientFrame(body);
    expect(!result.ok && result.error.code).toBe('bad_request');
  });
});

describe('server frames', () => {
  const alert = { alertId: 'a-1', deviceId: 'pump-1', deviceType: 'pump', location: 'plant-a/l', level: 'critical', message: 'hot', timestamp: 5 };

  it('reads alert_state, acked and snapshot frames, and alerts that resolve another', () => {
    const state = { type: 'alert_state', data: { alertId: 'a-1', deviceId: 'pump-1', location: 'plant-a/l', level: 'critical', state: 'acknowledged', by: 'alice', at: 9 }, timestamp: 10 };
    expect(parseServerFrame(JSON.stringify(state))).toEqual(state);
    expect(parseServerFrame('{"type":"acked","alertId":"a-1"}')).toEqual({ type: 'acked', alertId: 'a-1' });
    const snapshot = {
      type: 'snapshot',
      id: 's1',
      messages: [{ type: 'alert', data: alert, timestamp: 10, state: { state: 'open', at: 5 } }],
      final: true,
    };
    expect(parseServerFrame(JSON.stringify(snapshot))).toEqual(snapshot);
    const normal = { type: 'alert', data: { ...alert, alertId: 'a-2', level: 'info', resolves: 'a-1' }, timestamp: 11 };
    expect(parseServerFrame(JSON.stringify(normal))).toEqual(normal);
  });

  it.each([
    ['not JSON', '{"type":'],
    ['no type', '{"data":1}'],
    ['an unknown type', '{"type":"surprise"}'],
    ['an unknown alert state', JSON.stringify({ type: 'alert_state', data: { alertId: 'a', deviceId: 'd', location: 'l', level: 'info', state: 'closed', at: 1 }, timestamp: 1 })],
    ['a snapshot holding a status frame', JSON.stringify({ type: 'snapshot', id: 's', messages: [{ type: 'system_status', data: { connections: 1 }, timestamp: 1 }], final: true })],
    ['a record without its fields', '{"type":"device_data","data":{},"timestamp":1}'],
  ])('refuses %s', (_name, text) => {
    expect(() => parseServerFrame(text)).toThrow();
  });
});

describe('parsing a text a client sent', () => {
  const parsed = (text: string) => {
    try {
      return { value: JSON.parse(text) as unknown };
    } catch {
      return undefined;
    }
  };

  it('gives what JSON.parse gives, and undefined exactly where it throws', () => {
    const texts = fc.oneof(
      fc.string(),
      fc.json(),
      fc.jsonValue().map((value) => ` \n\t${JSON.stringify(value)}\r `),
      fc.tuple(fc.json(), fc.string({ maxLength: 3 })).map(([json, tail]) => json + tail),
      fc.tuple(fc.string({ maxLength: 3 }), fc.json()).map(([head, json]) => head + json),
    );
    fc.assert(
      fc.property(texts, (text) => {
        expect(parseJsonText(text)).toEqual(parsed(text));
      }),
      { numRuns: 2000 },
    );
  });

  it.each(['garbage 1 {', '{"action":', '', '   ', 'nul', '\u00a0{}', "{'a':1}", '--1', 'tru'])('refuses %j, and leaves stack traces as they were', (text) => {
    const limit = Error.stackTraceLimit;
    expect(parseJsonText(text)).toBeUndefined();
    expect(Error.stackTraceLimit).toBe(limit);
  });
});
