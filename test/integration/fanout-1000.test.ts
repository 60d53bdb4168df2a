/**
 * 1,000 real WebSocket clients with mixed filters, a 10,000-record stream: each client receives
 * exactly the records its filters match, once each, and nothing else.
 */
import { matchesFilter, normaliseFilter } from '../../lambdas/core/filter';
import type { Filter, StreamRecord } from '../../lambdas/core/protocol';
import type { KafkaRecordInput } from '../../local/msk-event';
import type { LocalRuntime } from '../../local/runtime';
import { startTestRuntime } from '../support/runtime';
import { TestClient } from '../support/ws-test-client';

const CLIENTS = 1000;
const RECORDS = 10_000;
const DEVICES = 200;
const TYPES = ['pump', 'motor', 'boiler', 'compressor'];
const LOCATIONS = ['plant-a/line-1', 'plant-a/line-2', 'plant-b/line-1', 'plant-b/line-2'];
const LEVELS = ['info', 'warning', 'critical'] as const;

/** A small seeded generator, so a failure can be replayed. */
function rng(seed: number) {
  return () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
}

const device = (i: number) => ({
  deviceId: `${TYPES[i % TYPES.length]}-${String(i).padStart(3, '0')}`,
  deviceType: TYPES[i % TYPES.length],
  location: LOCATIONS[Math.floor(i / TYPES.length) % LOCATIONS.length],
});

function filterFor(n: number, random: () => number): Filter[] {
  const pick = <T>(values: readonly T[]) => values[Math.floor(random() * values.length)];
  const r = n % 20;
  if (r < 10) return [{ deviceIds: [device(Math.floor(random() * DEVICES)).deviceId, device(Math.floor(random() * DEVICES)).deviceId] }];
  if (r < 14) return [{ locations: [pick(LOCATIONS)], types: ['device_data'] }];
  if (r < 16) return [{ deviceTypes: [pick(TYPES)], locations: [pick(LOCATIONS)] }];
  if (r < 18) return [{ types: ['alert'], alertLevels: ['critical'] }, { deviceIds: [device(n % DEVICES).deviceId] }];
  if (r < 19) return [{ deviceTypes: [pick(TYPES)], alertLevels: ['warning', 'critical'] }];
  return [{}];
}

let runtime: LocalRuntime;
const clients: TestClient[] = [];
/** Every client opened, also those of a batch that failed, so that afterAll closes them and the runtime can stop. */
const opened: TestClient[] = [];

beforeAll(async () => {
  runtime = await startTestRuntime({ auth: 'none' });
});

afterAll(async () => {
  await Promise.all(opened.map((c) => c.close()));
  await runtime.stop();
});

it('delivers to 1,000 clients exactly the records their filters match', async () => {
  const phase = (name: string, since: number) => console.log(`${name}: ${Date.now() - since} ms`);
  let t = Date.now();
  const random = rng(7);
  const filters: Filter[][] = [];
  for (let n = 0; n < CLIENTS; n += 100) {
    const batch = await Promise.all(
      Array.from({ length: 100 }, async (_, i) => {
        const client = await TestClient.connect(runtime.wsUrl);
        opened.push(client);
        const mine = filterFor(n + i, random);
        for (const [s, filter] of mine.entries()) {
          const reply = await client.request({ action: 'subscribe', id: `s${s}`, filter });
          expect(reply.type).toBe('subscribed');
        }
        return { client, mine };
      }),
    );
    for (const { client, mine } of batch) {
      clients.push(client);
      filters.push(mine);
    }
  }

  phase('connect and subscribe 1,000 clients', t);
  t = Date.now();
  const records: StreamRecord[] = [];
  const inputs: KafkaRecordInput[] = [];
  for (let i = 0; i < RECORDS; i++) {
    const d = device(Math.floor(random() * DEVICES));
    const isAlert = i % 10 === 9;
    const value = isAlert
      ? { alertId: `a-${i}`, ...d, level: LEVELS[i % 3], message: 'over threshold', timestamp: Date.now() }
      : { ...d, timestamp: Date.now(), status: 'online', metrics: { temperature: i % 100 } };
    records.push(isAlert ? { type: 'alert', data: value as never } : { type: 'device_data', data: value as never });
    inputs.push({ topic: isAlert ? 'alerts' : 'device-data', partition: 0, offset: i, key: d.deviceId, value });
  }
  let deliveries = 0;
  // Batches of 2,500, as an event source mapping with a large batch size delivers them.
  for (let i = 0; i < RECORDS; i += 2500) {
    const report = await runtime.publish(inputs.slice(i, i + 2500));
    expect(report).toMatchObject({ invalid: 0, failed: 0, stale: 0 });
    deliveries += report.deliveries;
  }

  phase('publish 10,000 records', t);
  t = Date.now();
  const expected = filters.map((mine) => {
    const normalised = mine.map((f) => normaliseFilter(f));
    return records.flatMap((r, offset) => (normalised.some((f) => matchesFilter(f, r)) ? [offset] : []));
  });
  const total = expected.reduce((sum, e) => sum + e.length, 0);
  expect(deliveries).toBe(total);
  await Promise.all(
    clients.map((client, n) =>
      client.until(
        () => client.of('device_data').length + client.of('alert').length >= expected[n].length,
        30_000,
        `client ${n} to receive ${expected[n].length} records`,
      ),
    ),
  );
  phase('all received', t);
  await runtime.gateway.settle();
  for (const [n, client] of clients.entries()) {
    const cursors = client.frames
      .filter((f) => f.type === 'device_data' || f.type === 'alert')
      .map((f) => (f as { cursor: string }).cursor.split(':'));
    const offsets = cursors.map(([, , offset]) => Number(offset));
    // Exactly the matching records, each once...
    expect({ client: n, offsets: [...offsets].sort((a, b) => a - b) }).toEqual({ client: n, offsets: expected[n] });
    // ...in stream order within each topic partition (Kafka orders nothing across partitions).
    for (const topic of ['device-data', 'alerts']) {
      const inTopic = cursors.filter(([t]) => t === topic).map(([, , offset]) => Number(offset));
      expect(inTopic).toEqual([...inTopic].sort((a, b) => a - b));
    }
  }
  // Every kind of subscription got something, so the check above is not vacuous.
  expect(expected.filter((e) => e.length === 0).length).toBeLessThan(CLIENTS / 10);
}, 240_000);
