/**
 * The Kafka path end to end on a real broker: records produced with kafkajs go through the
 * broker, the Kafka bridge (the local MSK event source) and the stream handler of the local
 * runtime to real WebSocket clients.
 *
 * Each test uses its own consumer group (fromBeginning false, records produced after the group
 * joined) and device ids unique to this run, so reruns and other traffic on the topics do not
 * interfere.
 */
import type { MSKEvent } from 'aws-lambda';
import { startKafkaBridge, type KafkaBridge, type KafkaBridgeOptions } from '../../local/kafka-bridge';
import { startTestRuntime } from '../support/runtime';
import { TOPICS } from '../../lambdas/core/protocol';
import { alertRecord, deviceRecord } from '../support/records';
import {
  describeKafka,
  runId,
  TestClient,
  TestProducer,
  type RecordFrame,
} from './kafka-support';

type Runtime = Awaited<ReturnType<typeof startTestRuntime>>;
type StreamReport = Awaited<ReturnType<Runtime['invokeStream']>>;

/** Polls `condition` every 100 ms until it holds, or fails after `timeoutMs`. */
async function waitUntil(condition: () => boolean | Promise<boolean>, description: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${description}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** The value of `stream_records_total{outcome="invalid",topic="device-data"}` on /metrics. */
async function invalidRecordsMetric(runtime: Runtime): Promise<number> {
  const line = (await runtime.metricsText())
    .split('\n')
    .find((l) => l.startsWith('stream_records_total{') && l.includes('outcome="invalid"') && l.includes('topic="device-data"'));
  return line ? Number(line.split(' ').pop()) : 0;
}

/** Keys (deviceIds) of the records of an MSK event. */
function eventKeys(event: MSKEvent): string[] {
  return Object.values(event.records).flatMap((records) =>
    records.map((record) => Buffer.from(record.key ?? '', 'base64').toString('utf8')),
  );
}

function seqs(frames: RecordFrame[]): number[] {
  return frames.map((frame) => (frame.type === 'device_data' ? frame.data.metrics.seq : NaN));
}

/** Drops frames whose cursor was seen before, as a client does. */
function dedupe(frames: RecordFrame[]): RecordFrame[] {
  const seen = new Set<string>();
  return frames.filter((frame) => {
    if (frame.cursor === undefined) throw new Error(`a pushed record has no cursor: ${JSON.stringify(frame)}`);
    if (seen.has(frame.cursor)) return false;
    seen.add(frame.cursor);
    return true;
  });
}

describeKafka('Kafka path on a real broker: kafkajs -> bridge -> stream handler -> WebSocket clients', (brokers) => {
  const id = runId();
  let runtime: Runtime;
  let producer: TestProducer;
  const bridges: KafkaBridge[] = [];
  const clients: TestClient[] = [];

  const startBridge = async (name: string, options: Partial<KafkaBridgeOptions> = {}): Promise<KafkaBridge> => {
    const bridge = await startKafkaBridge({
      brokers,
      groupId: `test-${id}-${name}`,
      invoke: runtime.invokeStream,
      ...options,
    });
    bridges.push(bridge);
    return bridge;
  };
  const connect = async (): Promise<TestClient> => {
    const client = await TestClient.connect(runtime.wsUrl, runtime.token);
    clients.push(client);
    return client;
  };
  /** Waits until the bridge has committed everything produced so far, then until each client's socket caught up. */
  const settle = async (bridge: KafkaBridge, ...waiting: TestClient[]): Promise<void> => {
    await waitUntil(async () => (await bridge.lag()) === 0, 'the bridge to commit every record');
    for (const client of waiting) await client.barrier();
  };

  beforeAll(async () => {
    runtime = await startTestRuntime();
    producer = await TestProducer.connect(brokers);
  });

  afterEach(async () => {
    await Promise.all(bridges.splice(0).map((bridge) => bridge.stop()));
    await Promise.all(clients.splice(0).map((client) => client.close()));
  });

  afterAll(async () => {
    await producer?.close();
    await runtime?.stop();
  });

  it('delivers records produced to Kafka to the clients whose filters match them, and only those', async () => {
    const pumps = `pump-${id}`;
    const fans = `fan-${id}`;
    const line1 = `plant-${id}/line-1`;
    const line2 = `plant-${id}/line-2`;
    const pump1 = `${pumps}-1`;
    const pump2 = `${pumps}-2`;
    const fan1 = `${fans}-1`;
    const byDevice = await connect();
    await byDevice.subscribe('one-device', { deviceIds: [pump1] });
    const criticalPumps = await connect();
    await criticalPumps.subscribe('critical', { types: ['alert'], deviceTypes: [pumps], alertLevels: ['critical'] });
    const lineOneReadings = await connect();
    await lineOneReadings.subscribe('line-1', { types: ['device_data'], locations: [line1] });
    const bridge = await startBridge('filters');

    await producer.send(TOPICS.deviceData, [
      ...[0, 1, 2].map((seq) => deviceRecord(pump1, { deviceType: pumps, location: line1, metrics: { seq } })),
      ...[0, 1, 2].map((seq) => deviceRecord(pump2, { deviceType: pumps, location: line2, metrics: { seq } })),
      ...[0, 1, 2].map((seq) => deviceRecord(fan1, { deviceType: fans, location: line1, metrics: { seq } })),
    ]);
    await producer.send(TOPICS.alerts, [
      alertRecord(pump1, { deviceType: pumps, location: line1, level: 'critical', alertId: `${id}-a1` }),
      alertRecord(pump2, { deviceType: pumps, location: line2, level: 'warning', alertId: `${id}-a2` }),
      alertRecord(pump2, { deviceType: pumps, location: line2, level: 'critical', alertId: `${id}-a3` }),
      alertRecord(fan1, { deviceType: fans, location: line1, level: 'critical', alertId: `${id}-a4` }),
    ]);

    await byDevice.until(() => byDevice.records.length >= 4, 20_000, 'pump 1 readings and alert');
    await criticalPumps.until(() => criticalPumps.records.length >= 2, 20_000, 'the critical pump alerts');
    await lineOneReadings.until(() => lineOneReadings.records.length >= 6, 20_000, 'line 1 readings');
    await settle(bridge, byDevice, criticalPumps, lineOneReadings);

    // deviceIds: every record of that device, readings and alerts, in order, nothing else.
    expect(byDevice.records.map((f) => f.data.deviceId)).toEqual(Array(4).fill(pump1));
    expect(seqs(byDevice.records.filter((f) => f.type === 'device_data'))).toEqual([0, 1, 2]);
    expect(byDevice.records.filter((f) => f.type === 'alert').map((f) => f.type === 'alert' && f.data.alertId)).toEqual([`${id}-a1`]);
    // types + deviceTypes + alertLevels (AND across fields): critical alerts of pumps only.
    expect(criticalPumps.records.map((f) => f.type === 'alert' && f.data.alertId).sort()).toEqual([`${id}-a1`, `${id}-a3`]);
    // types + locations: readings on line 1 only, no alerts.
    expect(lineOneReadings.records.every((f) => f.type === 'device_data' && f.data.location === line1)).toBe(true);
    expect(lineOneReadings.records.map((f) => f.data.deviceId).sort()).toEqual([...Array(3).fill(fan1), ...Array(3).fill(pump1)]);
    // Each pushed record carries its Kafka cursor.
    for (const frame of [...byDevice.records, ...criticalPumps.records, ...lineOneReadings.records]) {
      expect(frame.cursor).toMatch(frame.type === 'alert' ? /^alerts:\d+:\d+$/ : /^device-data:\d+:\d+$/);
    }
  });

  it('skips and counts a poison record without holding up the records around it', async () => {
    const device = `pump-${id}-poison`;
    const client = await connect();
    await client.subscribe('poison', { deviceIds: [device] });
    const reports: StreamReport[] = [];
    const invalidBefore = await invalidRecordsMetric(runtime);
    const bridge = await startBridge('poison', {
      invoke: async (event) => {
        const report = await runtime.invokeStream(event);
        if (eventKeys(event).includes(device)) reports.push(report);
        return report;
      },
    });

    // One key, so one partition: the poison records sit between the good ones.
    await producer.sendRaw(TOPICS.deviceData, [
      { key: device, value: JSON.stringify(deviceRecord(device, { metrics: { seq: 0 } })) },
      { key: device, value: '{"deviceId": "not json' },
      { key: device, value: JSON.stringify({ deviceId: device, status: 'exploded' }) },
      { key: device, value: JSON.stringify(deviceRecord(device, { metrics: { seq: 1 } })) },
    ]);

    await client.until(() => client.records.length >= 2, 20_000, 'the two good records');
    await settle(bridge, client);
    expect(seqs(client.records)).toEqual([0, 1]);
    const totals = reports.reduce((sum, r) => ({ invalid: sum.invalid + r.invalid, valid: sum.valid + r.valid }), { invalid: 0, valid: 0 });
    expect(totals.invalid).toBeGreaterThanOrEqual(2);
    expect(totals.valid).toBeGreaterThanOrEqual(2);
    expect(bridge.stats().invalid).toBeGreaterThanOrEqual(2);
    expect(bridge.stats().deadLettered).toBe(0);
    // Operators see them on /metrics.
    expect((await invalidRecordsMetric(runtime)) - invalidBefore).toBeGreaterThanOrEqual(2);
  });

  it('retries a failed invocation without losing records; duplicates carry cursors a client drops', async () => {
    const device = `pump-${id}-retry`;
    const client = await connect();
    await client.subscribe('retry', { deviceIds: [device] });
    // First attempt: the handler fails before posting anything (as when DynamoDB is unreachable).
    // Second: it fails after posting (as a Lambda that timed out late). Third: it succeeds.
    const failures = ['before the fan-out', 'after the fan-out'];
    const bridge = await startBridge('retry', {
      retryBaseDelayMs: 50,
      invoke: async (event) => {
        const failure = eventKeys(event).includes(device) ? failures.shift() : undefined;
        if (failure === 'before the fan-out') throw new Error(`simulated failure ${failure}`);
        const report = await runtime.invokeStream(event);
        if (failure) throw new Error(`simulated failure ${failure}`);
        return report;
      },
    });

    await producer.send(TOPICS.deviceData, Array.from({ length: 20 }, (_, seq) => deviceRecord(device, { metrics: { seq } })));

    await client.until(() => dedupe(client.records).length >= 20, 20_000, 'all 20 records');
    await settle(bridge, client);
    const unique = dedupe(client.records);
    expect(seqs(unique)).toEqual(Array.from({ length: 20 }, (_, seq) => seq));
    // The attempt that failed after posting had delivered records: the client saw them again, same cursors.
    expect(failures).toEqual([]);
    expect(client.records.length).toBeGreaterThan(20);
    expect(new Set(client.records.map((f) => f.cursor)).size).toBe(20);
    expect(bridge.stats().failedInvocations).toBeGreaterThanOrEqual(2);
    expect(bridge.stats().deadLettered).toBe(0);
  });

  it('sends a batch that keeps failing to the dead-letter topic and moves on', async () => {
    const device = `pump-${id}-dlq`;
    const deadLetterTopic = 'stream-dlq';
    const dlqEvents: MSKEvent[] = [];
    const dlqReader = await startBridge('dlq-reader', {
      topics: [deadLetterTopic],
      batchWindowMs: 50,
      invoke: async (event) => {
        dlqEvents.push(event);
      },
    });
    const client = await connect();
    await client.subscribe('dlq', { deviceIds: [device] });
    const bridge = await startBridge('dlq', {
      maxRetries: 2,
      retryBaseDelayMs: 50,
      deadLetterTopic,
      invoke: async (event) => {
        const poisoned = Object.values(event.records)
          .flat()
          .some((record) => Buffer.from(record.value, 'base64').toString('utf8').includes('"toxic"'));
        if (poisoned) throw new Error('handler crashed on a toxic batch');
        return runtime.invokeStream(event);
      },
    });

    await producer.send(TOPICS.deviceData, [deviceRecord(device, { status: 'online', location: 'toxic', metrics: { seq: 0 } })]);
    const deadLettered = () =>
      dlqEvents.flatMap((event) => Object.values(event.records).flat()).filter((r) => Buffer.from(r.key, 'base64').toString() === device);
    await waitUntil(() => deadLettered().length === 1, 'the toxic record on the dead-letter topic');
    // The partition moves on: the next record of the same device (same partition) is delivered.
    await producer.send(TOPICS.deviceData, [deviceRecord(device, { metrics: { seq: 1 } })]);
    await client.until(() => client.records.length >= 1, 20_000, 'the record after the toxic one');
    await settle(bridge, client);

    expect(seqs(client.records)).toEqual([1]);
    const [record] = deadLettered();
    expect(JSON.parse(Buffer.from(record.value, 'base64').toString('utf8'))).toMatchObject({ deviceId: device, location: 'toxic' });
    const headers = Object.assign({}, ...record.headers) as Record<string, number[]>;
    const header = (name: string) => Buffer.from(headers[name]).toString('utf8');
    expect(header('dlq.topic')).toBe(TOPICS.deviceData);
    expect(header('dlq.offset')).toMatch(/^\d+$/);
    expect(header('dlq.attempts')).toBe('3');
    expect(header('dlq.error')).toContain('handler crashed on a toxic batch');
    expect(bridge.stats()).toMatchObject({ deadLettered: 1, failedInvocations: 3 });
    expect(dlqReader.stats().records).toBeGreaterThanOrEqual(1);
  });

  it('loses nothing when the bridge stops and restarts: it resumes from the committed offsets', async () => {
    const device = `pump-${id}-restart`;
    const client = await connect();
    await client.subscribe('restart', { deviceIds: [device] });
    const batch = (from: number) => Array.from({ length: 10 }, (_, n) => deviceRecord(device, { metrics: { seq: from + n } }));

    const first = await startBridge('restart');
    await producer.send(TOPICS.deviceData, batch(0));
    await client.until(() => dedupe(client.records).length >= 10, 20_000, 'the first 10 records');
    await first.stop();

    // Produced while no bridge runs: nothing can deliver them yet.
    await producer.send(TOPICS.deviceData, batch(10));
    await client.barrier();
    expect(dedupe(client.records)).toHaveLength(10);

    const second = await startBridge('restart');
    await client.until(() => dedupe(client.records).length >= 20, 20_000, 'the 10 records produced while stopped');
    await settle(second, client);
    const unique = dedupe(client.records);
    expect(seqs(unique)).toEqual(Array.from({ length: 20 }, (_, seq) => seq));
    expect(second.stats().records).toBeGreaterThanOrEqual(10);
  });

  it('loses nothing fetched but not yet handled when it stops: only handled records are committed', async () => {
    const device = `pump-${id}-inflight`;
    const client = await connect();
    await client.subscribe('inflight', { deviceIds: [device] });
    let openGate: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (openGate = resolve));
    let invoked = 0;
    const first = await startBridge('inflight', {
      batchSize: 5,
      invoke: async (event) => {
        if (eventKeys(event).includes(device)) {
          invoked++;
          await gate;
        }
        return runtime.invokeStream(event);
      },
    });
    await producer.send(TOPICS.deviceData, Array.from({ length: 10 }, (_, seq) => deviceRecord(device, { metrics: { seq } })));
    // The first 5 are being handled, the other 5 were fetched and wait in the bridge.
    await waitUntil(() => invoked === 1 && first.stats().buffered === 5, 'one batch in flight and one waiting');
    const stopping = first.stop();
    openGate();
    await stopping;
    await client.barrier();
    expect(seqs(dedupe(client.records))).toEqual([0, 1, 2, 3, 4]);

    const second = await startBridge('inflight');
    await client.until(() => dedupe(client.records).length >= 10, 20_000, 'the 5 records that were waiting');
    await settle(second, client);
    expect(seqs(dedupe(client.records))).toEqual(Array.from({ length: 10 }, (_, seq) => seq));
  });
});
