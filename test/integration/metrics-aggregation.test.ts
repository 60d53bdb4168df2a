/**
 * The metrics store as deployed (a five-second flush interval) against dynalite, which bills an
 * update as DynamoDB does (the larger of the old and new item, 1 KB per write unit): writes follow
 * the interval, not the invocations, nothing is lost or counted twice, and the write units per
 * write are the figures docs/deploy.md computes its cost from.
 */
import { createDocumentClient } from '../../lambdas/adapters/clients';
import { DynamoMetricsStore } from '../../lambdas/adapters/dynamo-metrics';
import { BUCKETS, METRIC, MetricsBatch } from '../../lambdas/core/metrics';
import { CreateTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { METRICS_TABLE } from '../../lambdas/config/tables';
import { LOCAL_AWS, startDynalite } from '../../local/dynamo';

let dynamo: Awaited<ReturnType<typeof startDynalite>>;
let doc: ReturnType<typeof createDocumentClient>;
let table = 0;

beforeAll(async () => {
  dynamo = await startDynalite();
  doc = createDocumentClient({ endpoint: dynamo.endpoint, ...LOCAL_AWS });
});
afterAll(async () => {
  doc.destroy();
  await new Promise<void>((resolve) => dynamo.server.close(() => resolve()));
});

/** Creates a metrics table with the key schema the stack gives it. */
async function createMetricsTable(name: string): Promise<void> {
  const client = new DynamoDBClient({ endpoint: dynamo.endpoint, ...LOCAL_AWS });
  const keys = [METRICS_TABLE.partitionKey, METRICS_TABLE.sortKey];
  await client.send(
    new CreateTableCommand({
      TableName: name,
      BillingMode: 'PAY_PER_REQUEST',
      AttributeDefinitions: keys.map((key) => ({ AttributeName: key, AttributeType: 'S' })),
      KeySchema: keys.map((key, i) => ({ AttributeName: key, KeyType: i === 0 ? 'HASH' : 'RANGE' })),
    }),
  );
  client.destroy();
}

/** A fresh metrics table per test, so shard items start empty. */
async function freshStore(options: ConstructorParameters<typeof DynamoMetricsStore>[2]) {
  const name = `metrics-${table++}`;
  await createMetricsTable(name);
  return new DynamoMetricsStore(doc, name, options);
}

/** What one stream invocation of 100 records adds (as the stream processor records it). */
function streamBatch(i: number): MetricsBatch {
  const batch = new MetricsBatch()
    .add(METRIC.streamRecords, 98, { topic: 'device-data', outcome: 'valid' })
    .add(METRIC.streamRecords, 2, { topic: 'device-data', outcome: 'invalid' })
    .add(METRIC.messagesSent, 40)
    .observe(METRIC.processingDuration, 0.03);
  for (let r = 0; r < 40; r++) batch.observe(METRIC.pushLatency, 0.05 + ((i + r) % 7) * 0.1);
  return batch;
}

it('writes once per interval per container however many invocations, and loses nothing', async () => {
  let now = 0;
  const store = await freshStore({ flushIntervalMs: 5000, now: () => now });
  // One busy container: an invocation every 100 ms for a minute.
  for (let i = 0; i < 600; i++) {
    await store.flush(streamBatch(i));
    now += 100;
  }
  // The first invocation writes at once, then one write per five seconds.
  expect(store.metricWrites).toBe(12);
  await store.flush(new MetricsBatch()); // the next invocation after the interval writes the rest
  const totals = await store.read();
  expect(totals.get('stream_records_total{outcome="valid",topic="device-data"}')).toBe(600 * 98);
  expect(totals.get(`${METRIC.pushLatency}_count`)).toBe(600 * 40);
  expect(totals.get(METRIC.messagesSent)).toBe(600 * 40);
});

it('writes a change of the connections gauge at once, with whatever is pending', async () => {
  let now = 0;
  const store = await freshStore({ flushIntervalMs: 5000, now: () => now });
  await store.flush(new MetricsBatch().add(METRIC.messagesReceived, 1));
  now += 1000;
  await store.flush(new MetricsBatch().add(METRIC.messagesReceived, 1));
  expect(store.metricWrites).toBe(1);
  await store.flush(new MetricsBatch().add(METRIC.connections, 1));
  expect(store.metricWrites).toBe(2);
  const totals = await store.read();
  expect(totals.get(METRIC.connections)).toBe(1);
  expect(totals.get(METRIC.messagesReceived)).toBe(2);
});

it('adds up flushes made while a write is in flight into one next write, and loses none', async () => {
  const store = await freshStore({ flushIntervalMs: 0 });
  // 200 connects at once on one store, as the local runtime's $connect handlers run.
  await Promise.all(Array.from({ length: 200 }, () => store.flush(new MetricsBatch().add(METRIC.connections, 1))));
  expect(store.metricWrites).toBe(2);
  expect((await store.read()).get(METRIC.connections)).toBe(200);
});

it('writes at most every 100 ms when batches come one at a time, as a stream batch each 20 ms does, and loses none', async () => {
  const store = await freshStore({ flushIntervalMs: 0 });
  const started = Date.now();
  for (let i = 0; i < 25; i++) {
    await store.flush(new MetricsBatch().add(METRIC.messagesSent, 1));
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const elapsed = Date.now() - started;
  // One write a batch before; now the first at once, then one per 100 ms at most.
  expect(store.metricWrites).toBeLessThanOrEqual(Math.ceil(elapsed / 100) + 1);
  expect(store.metricWrites).toBeGreaterThan(1);
  expect((await store.read()).get(METRIC.messagesSent)).toBe(25);
});

it('keeps a failed write for the next flush instead of dropping it', async () => {
  const name = `metrics-${table++}`;
  const store = new DynamoMetricsStore(doc, name, { flushIntervalMs: 0 });
  // The table does not exist yet: the write fails, as a throttled one would.
  await expect(store.flush(new MetricsBatch().add(METRIC.messagesSent, 5))).rejects.toThrow();
  await createMetricsTable(name);
  await store.flush(new MetricsBatch().add(METRIC.messagesSent, 1));
  expect((await store.read()).get(METRIC.messagesSent)).toBe(6);
});

it('costs 1 write unit per write on a fresh shard and 3 once a shard holds every series (docs/deploy.md)', async () => {
  // Every flush written at once: this counts the units of each write.
  const store = await freshStore({ flushIntervalMs: 0, minWriteSpacingMs: 0, shards: 1 });
  await store.flush(streamBatch(0));
  const first = store.writeUnits;
  // Steady state: every bucket of every histogram and every labelled series has been seen.
  const everything = new MetricsBatch().add(METRIC.connections, 1).add(METRIC.messagesReceived, 1).add(METRIC.staleConnections, 1);
  for (const topic of ['device-data', 'alerts']) {
    for (const outcome of ['valid', 'invalid']) everything.add(METRIC.streamRecords, 1, { topic, outcome });
  }
  for (const name of [METRIC.pushLatency, METRIC.processingDuration, METRIC.connectionDuration]) {
    for (const bound of BUCKETS[name] ?? BUCKETS.default!) everything.observe(name, bound);
    everything.observe(name, 1e6);
  }
  await store.flush(everything);
  const before = store.writeUnits;
  await store.flush(streamBatch(1));
  const steady = store.writeUnits - before;
  expect(first).toBe(1);
  expect(steady).toBe(3);
});
