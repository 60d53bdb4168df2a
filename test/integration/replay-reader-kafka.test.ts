/**
 * The replay reader as deployed, on the real broker: its log built from the environment the stack
 * sets (KAFKA_BROKERS, KAFKA_AUTH=none, KAFKA_CLIENT_ID; lambdas/handlers/defaults.ts), invoked by
 * the subscribe route's replayer through the Lambda Invoke API (test/support/lambda-invoke-server.ts),
 * reading what a subscription missed from the product's `device-data` topic.
 */
import { LambdaClient } from '@aws-sdk/client-lambda';
import { Kafka, logLevel, type Admin } from 'kafkajs';
import { createLambdaReplayer } from '../../lambdas/adapters/lambda-replayer';
import { KafkaRecordLog } from '../../lambdas/adapters/kafka-log';
import { ENV } from '../../lambdas/config/env-names';
import { normaliseFilter } from '../../lambdas/core/filter';
import type { Log, RecordLog } from '../../lambdas/core/ports';
import { TOPICS, type ResumeCursors } from '../../lambdas/core/protocol';
import type { ReplayResult } from '../../lambdas/core/replay';
import { defaultRecordLog } from '../../lambdas/handlers/defaults';
import { createReplayHandler } from '../../lambdas/handlers/replay';
import { LOCAL_AWS } from '../../local/dynamo';
import { startLambdaInvokeServer, type LambdaInvokeServer } from '../support/lambda-invoke-server';
import { deviceRecord } from '../support/records';
import { TestProducer, describeKafka, runId } from './kafka-support';

const quiet: Log = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

describeKafka('replay reader on a real broker', (brokers) => {
  const id = runId();
  const devices = Array.from({ length: 6 }, (_, i) => `valve-${id}${i}`);
  let admin: Admin;
  let producer: TestProducer;
  let server: LambdaInvokeServer;
  let client: LambdaClient;
  let recordLog: () => Promise<RecordLog>;
  const saved = { ...process.env };

  beforeAll(async () => {
    const kafka = new Kafka({ clientId: 'replay-reader-test', brokers, logLevel: logLevel.NOTHING });
    admin = kafka.admin();
    await admin.connect();
    producer = await TestProducer.connect(brokers);
    // What the stack sets on the function (infra/constructs/replay-reader.ts).
    process.env[ENV.kafkaBrokers] = brokers.join(',');
    process.env[ENV.kafkaAuth] = 'none';
    process.env[ENV.kafkaClientId] = `replay-reader-test-${id}`;
    recordLog = defaultRecordLog();
    server = await startLambdaInvokeServer({ replay: createReplayHandler({ recordLog, log: quiet }) });
    client = new LambdaClient({ endpoint: server.endpoint, ...LOCAL_AWS, maxAttempts: 1 });
  });

  afterAll(async () => {
    process.env = saved;
    client?.destroy();
    await server?.close();
    // The container's log: its consumer left and its connections closed, as when Lambda recycles it.
    if (recordLog) await ((await recordLog()) as KafkaRecordLog).close();
    await producer?.close();
    await admin?.disconnect();
  });

  const highs = async () =>
    new Map((await admin.fetchTopicOffsets(TOPICS.deviceData)).map((p) => [`${TOPICS.deviceData}:${p.partition}`, Number(p.high)] as const));

  it('replays, through Invoke, every reading of the filter produced after the cursors, once, in offset order per partition', async () => {
    const before = await highs();
    // What the dashboard saw last: one reading of each device, its cursor the partition's last offset.
    await producer.send(TOPICS.deviceData, devices.map((deviceId) => deviceRecord(deviceId)));
    const seen = await highs();
    const resume: ResumeCursors = new Map();
    for (const [name, high] of seen) if (high > (before.get(name) ?? 0)) resume.set(name, high - 1);
    expect(resume.size).toBeGreaterThan(0);

    // Missed while away: 60 readings of these devices, and readings of devices outside the filter.
    const missed = Array.from({ length: 60 }, (_, i) => deviceRecord(devices[i % devices.length]!, { metrics: { temperature: 60 + i } }));
    await producer.send(TOPICS.deviceData, [...missed, ...Array.from({ length: 20 }, (_, i) => deviceRecord(`pump-${id}${i}`))]);

    const replay = createLambdaReplayer(client, 'replay');
    const filter = normaliseFilter({ types: ['device_data'], deviceIds: devices })!;
    const got = (await replay({ filter, resume })) as Extract<ReplayResult, { tooFarBehind: false }>;
    expect(got.tooFarBehind).toBe(false);
    const temperatures = got.records.map((record) => (record.type === 'device_data' ? record.data.metrics.temperature : NaN));
    expect(temperatures.sort((a, b) => a - b)).toEqual(missed.map((record) => record.metrics.temperature!));
    const offsets = new Map<string, number>();
    for (const record of got.records) {
      const [topic, partition, offset] = record.cursor!.split(':');
      const name = `${topic}:${partition}`;
      expect(Number(offset)).toBeGreaterThan(offsets.get(name) ?? resume.get(name) ?? -1);
      offsets.set(name, Number(offset));
    }

    // A second resume in the same container reuses its log (and its consumer group).
    const log = await recordLog();
    const again = await replay({ filter, resume });
    expect(again).toEqual(got);
    expect(await recordLog()).toBe(log);
    expect((log as KafkaRecordLog).stats.consumers).toBe(1);
  });
});
