/**
 * Conflated latest readings on dynalite with the real AWS SDK: what the stream step writes, how
 * often, and that containers writing one location at once never lose each other's devices.
 */
import type { Server } from 'node:http';
import { createDocumentClient } from '../../lambdas/adapters/clients';
import { DynamoLatestReadings } from '../../lambdas/adapters/dynamo-latest';
import type { DeviceRecord, StreamRecord } from '../../lambdas/core/protocol';
import { LatestReadingsConflator } from '../../lambdas/core/stream-state';
import { LOCAL_AWS, LOCAL_TABLES, createTables, startDynalite } from '../../local/dynamo';

let server: Server;
let doc: ReturnType<typeof createDocumentClient>;

beforeAll(async () => {
  const dynamo = await startDynalite();
  server = dynamo.server;
  await createTables(dynamo.endpoint);
  doc = createDocumentClient({ endpoint: dynamo.endpoint, ...LOCAL_AWS });
});

afterAll(async () => {
  doc.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

function reading(deviceId: string, location: string, timestamp: number, value = timestamp): StreamRecord {
  const data: DeviceRecord = { deviceId, deviceType: 'pump', location, timestamp, status: 'online', metrics: { temperature: value } };
  return { type: 'device_data', data };
}

const byId = (records: DeviceRecord[]) => Object.fromEntries(records.map((r) => [r.deviceId, r.metrics.temperature]));

describe('latest readings', () => {
  it('writes a location at most once per interval, newest reading of each device, new devices at once', async () => {
    const store = new DynamoLatestReadings(doc, LOCAL_TABLES.latest);
    const reader = new DynamoLatestReadings(doc, LOCAL_TABLES.latest);
    const conflator = new LatestReadingsConflator(store, 5000);
    conflator.add([reading('p-1', 'plant-a/one', 1), reading('p-1', 'plant-a/one', 3), reading('p-1', 'plant-a/one', 2)]);
    await conflator.flush(0);
    expect(byId(await reader.read(['plant-a/one']))).toEqual({ 'p-1': 3 });
    const afterFirst = store.calls;

    // Known device, inside the interval: held back, then written once with its newest reading.
    for (let t = 1; t <= 40; t++) {
      conflator.add([reading('p-1', 'plant-a/one', 100 + t)]);
      await conflator.flush(t * 100);
    }
    expect(byId(await reader.read(['plant-a/one']))).toEqual({ 'p-1': 3 });
    conflator.add([reading('p-2', 'plant-a/one', 200)]);
    await conflator.flush(4100);
    // A new device makes its location due at once, and carries the held readings with it.
    expect(byId(await reader.read(['plant-a/one']))).toEqual({ 'p-1': 140, 'p-2': 200 });
    conflator.add([reading('p-1', 'plant-a/one', 300)]);
    await conflator.flush(9000);
    expect(byId(await reader.read(['plant-a/one']))).toEqual({ 'p-1': 140, 'p-2': 200 });
    await conflator.flush(9100);
    expect(byId(await reader.read(['plant-a/one']))).toEqual({ 'p-1': 300, 'p-2': 200 });
    // 41 batches after the first write, 2 writes: one for the new device, one when the interval passed.
    expect(store.calls - afterFirst).toBe(2);
  });

  it('keeps every device when two containers create and update one location at the same moment', async () => {
    const stores = [new DynamoLatestReadings(doc, LOCAL_TABLES.latest), new DynamoLatestReadings(doc, LOCAL_TABLES.latest)];
    const devices = Array.from({ length: 250 }, (_, i) => `m-${i}`);
    await Promise.all(
      stores.map((store, s) =>
        store.write(
          'plant-b/race',
          devices.filter((_, i) => i % 2 === s).map((id) => reading(id, 'plant-b/race', 1).data as DeviceRecord),
        ),
      ),
    );
    const read = await stores[0].read(['plant-b/race', 'plant-b/race', 'plant-x/none']);
    expect(read.map((r) => r.deviceId).sort()).toEqual([...devices].sort());
    expect((await stores[0].read()).length).toBeGreaterThanOrEqual(250);
  });
});
