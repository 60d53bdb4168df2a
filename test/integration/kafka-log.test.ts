/**
 * KafkaRecordLog (lambdas/adapters/kafka-log.ts) on the real broker: bounds, offsets by time, reads
 * of offset ranges across partitions, null values, ranges past either end, concurrent reads served
 * by one consumer, a rebalance in the middle of reads, and the consumer closed when idle. Each test
 * reads a topic of its own, so the product's topics and other suites are untouched.
 */
import { Kafka, logLevel, type Admin, type Message } from 'kafkajs';
import { KafkaRecordLog, KafkaRecordLogError } from '../../lambdas/adapters/kafka-log';
import { narrowToSites, normaliseFilter } from '../../lambdas/core/filter';
import type { LoggedRecord, OffsetRange, RecordLog } from '../../lambdas/core/ports';
import { TOPICS, type AlertRecord, type DeviceRecord, type Filter } from '../../lambdas/core/protocol';
import { replayAfter } from '../../lambdas/core/replay';
import { alertRecord, deviceRecord } from '../support/records';
import { describeKafka, runId } from './kafka-support';

/**
 * The log under the product's topic names, read from topics of the test's own: replayAfter asks for
 * `device-data` and `alerts`, and the product's topics on the shared broker stay untouched.
 */
function renamedLog(log: RecordLog, names: Record<string, string>): RecordLog {
  const back = new Map(Object.entries(names).map(([product, own]) => [own, product]));
  const own = (topic: string) => names[topic] ?? topic;
  const product = (topic: string) => back.get(topic) ?? topic;
  return {
    partitions: async (topics) => (await log.partitions(topics.map(own))).map((bounds) => ({ ...bounds, topic: product(bounds.topic) })),
    offsetsAt: async (topics, time) => {
      const found = await log.offsetsAt(topics.map(own), time);
      return new Map([...found].map(([name, offset]) => [`${product(name.slice(0, name.lastIndexOf(':')))}${name.slice(name.lastIndexOf(':'))}`, offset]));
    },
    read: async (ranges) => (await log.read(ranges.map((range) => ({ ...range, topic: own(range.topic) })))).map((record) => ({ ...record, topic: product(record.topic) })),
  };
}

describeKafka('KafkaRecordLog on a real broker', (brokers) => {
  const id = runId();
  let admin: Admin;
  let kafka: Kafka;
  const logs: KafkaRecordLog[] = [];
  let topicCount = 0;

  beforeAll(async () => {
    kafka = new Kafka({ clientId: 'kafka-log-test', brokers, logLevel: logLevel.NOTHING });
    admin = kafka.admin();
    await admin.connect();
  });

  afterEach(async () => {
    await Promise.all(logs.splice(0).map((log) => log.close()));
  });

  afterAll(async () => {
    await admin?.disconnect();
  });

  const open = (options: Partial<ConstructorParameters<typeof KafkaRecordLog>[0]> = {}): KafkaRecordLog => {
    const log = new KafkaRecordLog({ brokers, clientId: `kafka-log-test-${id}`, ...options });
    logs.push(log);
    return log;
  };

  /** A fresh topic of `partitions` partitions. */
  const newTopic = async (partitions: number): Promise<string> => {
    const topic = `replay-log-${id}-${++topicCount}`;
    await admin.createTopics({ topics: [{ topic, numPartitions: partitions }], waitForLeaders: true });
    return topic;
  };

  /**
   * Idempotent: a send retried under load (a partition just added, a busy broker) must not write
   * its records twice, or the offsets the tests expect shift (CI once read 70 records of 60).
   */
  const newProducer = () => kafka.producer({ idempotent: true, maxInFlightRequests: 1 });

  /** Produces `count` records to each partition: value `p<partition>-<i>`, timestamp base + i seconds. */
  const fill = async (topic: string, partitions: number, count: number, base: number, extra: (partition: number, i: number) => Partial<Message> = () => ({})) => {
    const producer = newProducer();
    await producer.connect();
    const messages: Message[] = [];
    for (let partition = 0; partition < partitions; partition++) {
      for (let i = 0; i < count; i++) {
        messages.push({ partition, key: `k${partition}`, value: `p${partition}-${i}`, timestamp: String(base + i * 1000), ...extra(partition, i) });
      }
    }
    for (let i = 0; i < messages.length; i += 5000) await producer.send({ topic, messages: messages.slice(i, i + 5000) });
    await producer.disconnect();
  };

  /** Deletes a partition's records before `offset` (kafkajs needs the topic's metadata loaded first). */
  const deleteBefore = async (topic: string, partition: number, offset: number) => {
    await admin.fetchTopicMetadata({ topics: [topic] });
    await admin.deleteTopicRecords({ topic, partitions: [{ partition, offset: String(offset) }] });
  };

  const values = (records: readonly LoggedRecord[]) => records.map((record) => `${record.partition}:${record.offset}:${record.value}`);

  it('gives each partition its bounds, and the first offset at or after a time (the end when none)', async () => {
    const topic = await newTopic(3);
    const base = Date.now() - 100_000;
    await fill(topic, 3, 10, base);
    const log = open();
    expect(await log.partitions([topic])).toEqual(
      expect.arrayContaining([0, 1, 2].map((partition) => ({ topic, partition, low: 0, high: 10 }))),
    );
    expect(await log.partitions([topic])).toHaveLength(3);

    const at = await log.offsetsAt([topic], base + 2500);
    expect(Object.fromEntries(at)).toEqual({ [`${topic}:0`]: 3, [`${topic}:1`]: 3, [`${topic}:2`]: 3 });
    expect(Object.fromEntries(await log.offsetsAt([topic], base))).toEqual({ [`${topic}:0`]: 0, [`${topic}:1`]: 0, [`${topic}:2`]: 0 });
    // No record that late: the high watermark.
    expect(Object.fromEntries(await log.offsetsAt([topic], base + 60_000))).toEqual({ [`${topic}:0`]: 10, [`${topic}:1`]: 10, [`${topic}:2`]: 10 });

    // Records deleted from the start move `low`.
    await deleteBefore(topic, 1, 4);
    const bounds = await log.partitions([topic]);
    expect(bounds.find((b) => b.partition === 1)).toEqual({ topic, partition: 1, low: 4, high: 10 });
  });

  it('reads ranges across partitions in offset order, with timestamps, null values as undefined, and ranges past either end clipped', async () => {
    const topic = await newTopic(3);
    const base = Date.now() - 100_000;
    await fill(topic, 3, 20, base, (partition, i) => (partition === 2 && i % 5 === 0 ? { value: null } : {}));
    await deleteBefore(topic, 0, 5);
    const log = open();

    const records = await log.read([
      { topic, partition: 1, from: 3, to: 6 },
      { topic, partition: 2, from: 8, to: 12 },
      // Past the end: what there is.
      { topic, partition: 1, from: 18, to: 40 },
      // Before the start (deleted): from the first offset held.
      { topic, partition: 0, from: 2, to: 7 },
      // Entirely past the end, and a partition the topic does not have.
      { topic, partition: 0, from: 25, to: 30 },
      { topic, partition: 9, from: 0, to: 3 },
    ]);
    expect(values(records)).toEqual([
      '1:3:p1-3',
      '1:4:p1-4',
      '1:5:p1-5',
      '2:8:p2-8',
      '2:9:p2-9',
      '2:10:undefined',
      '2:11:p2-11',
      '1:18:p1-18',
      '1:19:p1-19',
      '0:5:p0-5',
      '0:6:p0-6',
    ]);
    const nullRecord = records.find((record) => record.partition === 2 && record.offset === 10)!;
    expect(nullRecord.value).toBeUndefined();
    expect(records.find((record) => record.partition === 1 && record.offset === 4)).toEqual({ topic, partition: 1, offset: 4, timestamp: base + 4000, value: 'p1-4' });

    // Single records, as the replay reads the record each cursor names.
    expect(values(await log.read([{ topic, partition: 0, from: 19, to: 20 }, { topic, partition: 2, from: 0, to: 1 }]))).toEqual(['0:19:p0-19', '2:0:undefined']);
    expect(await log.read([])).toEqual([]);
    expect(await log.read([{ topic, partition: 1, from: 5, to: 5 }])).toEqual([]);
  });

  it('serves 100 concurrent reads with one consumer and one group join, each getting exactly its ranges', async () => {
    const partitions = 4;
    const perPartition = 5000;
    const topic = await newTopic(partitions);
    await fill(topic, partitions, perPartition, Date.now() - perPartition * 1000);
    const log = open();

    const firstStarted = performance.now();
    const first = await log.read([{ topic, partition: 0, from: 100, to: 101 }]);
    const firstReadMs = performance.now() - firstStarted;
    expect(values(first)).toEqual(['0:100:p0-100']);

    // 100 clients resuming: each reads its cursor record, then a range to the end, at once.
    const wants = Array.from({ length: 100 }, (_, i): OffsetRange[] => {
      const from = perPartition - 200 - ((i * 37) % 2000);
      return [
        { topic, partition: i % partitions, from, to: from + 1 },
        ...Array.from({ length: partitions }, (_, partition) => ({ topic, partition, from: from + 1, to: perPartition })),
      ];
    });
    const started = performance.now();
    const results = await Promise.all(wants.map((ranges) => log.read(ranges)));
    const concurrentMs = performance.now() - started;
    results.forEach((records, i) => {
      const expected = wants[i].flatMap((range) =>
        Array.from({ length: range.to - range.from }, (_, k) => `${range.partition}:${range.from + k}:p${range.partition}-${range.from + k}`),
      );
      expect(values(records)).toEqual(expected);
    });

    // One whole partition set, for a rate.
    const whole = Array.from({ length: partitions }, (_, partition) => ({ topic, partition, from: 0, to: perPartition }));
    const readStarted = performance.now();
    expect(await log.read(whole)).toHaveLength(partitions * perPartition);
    const wholeMs = performance.now() - readStarted;

    expect(log.stats.consumers).toBe(1);
    expect(log.stats.joins).toBe(1);
    // The 100 reads went in a few passes, not one each.
    expect(log.stats.passes).toBeLessThan(10);
    console.log(
      `KafkaRecordLog: first read (connect + group join + fetch) ${firstReadMs.toFixed(0)} ms; ` +
        `100 concurrent reads (${results.reduce((n, r) => n + r.length, 0)} records in all) in ${concurrentMs.toFixed(0)} ms over ` +
        `${log.stats.passes - 1} passes and ${log.stats.joins} join; ${partitions * perPartition} records read in ${wholeMs.toFixed(0)} ms ` +
        `(${Math.round((partitions * perPartition) / (wholeMs / 1000))} records/s)`,
    );
  });

  it('serves 100 concurrent replays (bounds, offsets by time, cursor records, ranges) on two topics, one just given more partitions, each with exactly its records', async () => {
    const devicePartitions = 4;
    const alertPartitions = 2;
    const perDevicePartition = 300;
    const perAlertPartition = 100;
    const [deviceTopic, alertTopic] = [await newTopic(devicePartitions), await newTopic(alertPartitions)];
    // Every record 2 ms after the one before, all within 5 s (the replay's skew): each partition's
    // replay then starts right after its cursor, or at the start for a partition the client does not name.
    const base = Date.now() - 20_000;
    let seq = 0;
    const logged: { topic: string; partition: number; offset: number; timestamp: number; record: DeviceRecord | AlertRecord }[] = [];
    const messages = new Map<string, Message[]>([[deviceTopic, []], [alertTopic, []]]);
    const put = (topic: string, partition: number, offset: number, record: DeviceRecord | AlertRecord) => {
      logged.push({ topic: topic === deviceTopic ? TOPICS.deviceData : TOPICS.alerts, partition, offset, timestamp: record.timestamp, record });
      messages.get(topic)!.push({ partition, key: record.deviceId, value: JSON.stringify(record), timestamp: String(record.timestamp) });
    };
    for (let i = 0; i < perDevicePartition; i++) {
      for (let partition = 0; partition < devicePartitions; partition++) {
        const deviceId = `pump-${(i + partition) % 6}`;
        put(deviceTopic, partition, i, deviceRecord(deviceId, { timestamp: base + 2 * seq++, location: `plant-${i % 2 ? 'a' : 'b'}/line-1` }));
      }
      if (i % 3 === 0) {
        const offset = i / 3;
        for (let partition = 0; partition < alertPartitions && offset < perAlertPartition; partition++) {
          put(alertTopic, partition, offset, alertRecord(`pump-${offset % 6}`, { timestamp: base + 2 * seq++, level: offset % 2 ? 'warning' : 'critical' }));
        }
      }
    }
    const producer = newProducer();
    await producer.connect();
    for (const [topic, batch] of messages) await producer.send({ topic, messages: batch.splice(0) });
    const log = open();
    const product = renamedLog(log, { [TOPICS.deviceData]: deviceTopic, [TOPICS.alerts]: alertTopic });
    // A log in use for a while (its admin client has loaded the topics) when partitions are added,
    // as when device-data is raised for more throughput: the burst finds them first.
    const warmup = await replayAfter(product, { filter: normaliseFilter({}), resume: new Map([[`${TOPICS.deviceData}:0`, 10]]) }, { now: base + 30_000 });
    expect(warmup.tooFarBehind).toBe(false);
    const added = 2;
    await admin.createPartitions({ topicPartitions: [{ topic: deviceTopic, count: devicePartitions + added }] });
    for (let i = 0; i < 50; i++) {
      for (let partition = devicePartitions; partition < devicePartitions + added; partition++) {
        put(deviceTopic, partition, i, deviceRecord(`pump-${i % 6}`, { timestamp: base + 2 * seq++, location: 'plant-a/line-2' }));
      }
    }
    await producer.disconnect();
    // A new producer: one that loaded the topic before knows no partition added since.
    const again = newProducer();
    await again.connect();
    await again.send({ topic: deviceTopic, messages: messages.get(deviceTopic)! });
    await again.disconnect();

    const filters: Filter[] = [{}, { types: ['device_data'] }, { types: ['alert'], alertLevels: ['critical'] }, { deviceIds: ['pump-2', 'pump-5'] }, { sites: ['plant-a'] }];
    const clients = Array.from({ length: 100 }, (_, i) => {
      const filter = narrowToSites(normaliseFilter(filters[i % filters.length]), i % 7 === 0 ? ['plant-a'] : ['*'])!;
      const resume = new Map<string, number>();
      for (let partition = 0; partition < devicePartitions; partition++) resume.set(`${TOPICS.deviceData}:${partition}`, 20 + ((i * 37 + partition * 11) % 250));
      // Some name no alert partition: those are replayed from their start.
      if (i % 4 !== 0) for (let partition = 0; partition < alertPartitions; partition++) resume.set(`${TOPICS.alerts}:${partition}`, (i * 13 + partition) % 90);
      const expected = logged
        .filter(({ topic, partition, offset, record }) => {
          const type = topic === TOPICS.alerts ? 'alert' : 'device_data';
          if (!filter.types.includes(type)) return false;
          if (!filter.sites.includes('*') && !filter.sites.includes(record.location.split('/')[0])) return false;
          if (filter.deviceIds.length && !filter.deviceIds.includes(record.deviceId)) return false;
          if (type === 'alert' && filter.alertLevels.length && !filter.alertLevels.includes((record as AlertRecord).level)) return false;
          return offset > (resume.get(`${topic}:${partition}`) ?? -1);
        })
        .sort((a, b) => a.timestamp - b.timestamp)
        .map(({ topic, partition, offset }) => `${topic}:${partition}:${offset}`);
      return { filter, resume, expected };
    });

    const outcomes = await Promise.allSettled(clients.map(({ filter, resume }) => replayAfter(product, { filter, resume }, { now: base + 30_000 })));
    const failures = outcomes.flatMap((outcome) =>
      outcome.status === 'rejected' ? [String(outcome.reason)] : outcome.value.tooFarBehind ? [`too far behind: ${outcome.value.reason}`] : [],
    );
    expect({ failed: failures.length, first: failures.slice(0, 3) }).toEqual({ failed: 0, first: [] });
    outcomes.forEach((outcome, i) => {
      const result = (outcome as PromiseFulfilledResult<Awaited<ReturnType<typeof replayAfter>>>).value;
      if (result.tooFarBehind) throw new Error('unreachable');
      expect(clients[i].expected.length).toBeGreaterThan(0);
      expect(result.records.map((record) => record.cursor)).toEqual(clients[i].expected);
    });
  });

  it('reads partitions added after the consumer joined (a new consumer joins for them)', async () => {
    const topic = await newTopic(2);
    await fill(topic, 2, 50, Date.now() - 60_000);
    const log = open();
    expect(await log.read([{ topic, partition: 0, from: 0, to: 50 }])).toHaveLength(50);

    await admin.createPartitions({ topicPartitions: [{ topic, count: 4 }] });
    await fill(topic, 4, 10, Date.now() - 10_000);
    const bounds = await log.partitions([topic]);
    expect(bounds.map((b) => [b.partition, b.high]).sort()).toEqual([
      [0, 60],
      [1, 60],
      [2, 10],
      [3, 10],
    ]);
    const ranges = bounds.map((b) => ({ topic, partition: b.partition, from: 0, to: b.high }));
    const records = await log.read(ranges);
    expect(records).toHaveLength(140);
    for (const { partition, high } of bounds) {
      expect(records.filter((r) => r.partition === partition).map((r) => r.offset)).toEqual(Array.from({ length: high }, (_, i) => i));
    }
  });

  it('closes the consumer when idle and joins again for the next read', async () => {
    const topic = await newTopic(1);
    await fill(topic, 1, 5, Date.now() - 10_000);
    const log = open({ idleCloseMs: 300 });
    expect(values(await log.read([{ topic, partition: 0, from: 0, to: 2 }]))).toEqual(['0:0:p0-0', '0:1:p0-1']);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(values(await log.read([{ topic, partition: 0, from: 3, to: 5 }]))).toEqual(['0:3:p0-3', '0:4:p0-4']);
    expect(log.stats.consumers).toBe(2);
  });

  it('replaces a consumer frozen past its session timeout (a Lambda container between invocations) and reads on', async () => {
    const topic = await newTopic(2);
    await fill(topic, 2, 5, Date.now() - 10_000);
    const log = open({ sessionTimeoutMs: 6000 });
    expect(values(await log.read([{ topic, partition: 1, from: 0, to: 2 }]))).toEqual(['1:0:p1-0', '1:1:p1-1']);
    // The whole process stops, timers and heartbeats with it, as a frozen container does.
    const frozenUntil = Date.now() + 7000;
    while (Date.now() < frozenUntil);
    const after = await log.read([
      { topic, partition: 0, from: 3, to: 5 },
      { topic, partition: 1, from: 4, to: 5 },
    ]);
    expect(values(after)).toEqual(['0:3:p0-3', '0:4:p0-4', '1:4:p1-4']);
    expect(log.stats.consumers).toBe(2);
  });

  it('keeps a consumer frozen for less than its session timeout: the next read needs no new join', async () => {
    const topic = await newTopic(1);
    await fill(topic, 1, 4, Date.now() - 10_000);
    const log = open({ sessionTimeoutMs: 30_000 });
    expect(values(await log.read([{ topic, partition: 0, from: 0, to: 1 }]))).toEqual(['0:0:p0-0']);
    const frozenUntil = Date.now() + 7000;
    while (Date.now() < frozenUntil);
    expect(values(await log.read([{ topic, partition: 0, from: 2, to: 4 }]))).toEqual(['0:2:p0-2', '0:3:p0-3']);
    expect(log.stats.consumers).toBe(1);
    expect(log.stats.joins).toBe(1);
  });

  it('adds a topic a read names to the consumer', async () => {
    const [one, two] = [await newTopic(1), await newTopic(1)];
    await fill(one, 1, 3, Date.now() - 10_000);
    await fill(two, 1, 3, Date.now() - 10_000);
    const log = open();
    expect(values(await log.read([{ topic: one, partition: 0, from: 0, to: 3 }]))).toEqual(['0:0:p0-0', '0:1:p0-1', '0:2:p0-2']);
    const both = await log.read([
      { topic: two, partition: 0, from: 1, to: 3 },
      { topic: one, partition: 0, from: 2, to: 3 },
    ]);
    expect(both.map((r) => `${r.topic === two ? 'two' : 'one'}:${r.offset}`)).toEqual(['two:1', 'two:2', 'one:2']);
  });

  it('leaves no member in its group and no connection open when closed while connecting or joining', async () => {
    const topic = await newTopic(2);
    await fill(topic, 2, 3, Date.now() - 10_000);
    const clientId = `kafka-log-test-${id}-closing`;
    const sockets = () => process.getActiveResourcesInfo().filter((resource) => resource === 'TCPSocketWrap').length;
    const socketsBefore = sockets();
    // Closed at moments from before the consumer connects to after its read: one of them lands in
    // the join, where a disconnect used to leave kafkajs's fetch loop running.
    await Promise.all(
      [0, 5, 10, 20, 35, 50, 75, 100, 150, 250].map(async (delay) => {
        const log = open({ clientId });
        const reading = log.read([{ topic, partition: 0, from: 0, to: 3 }]).catch((error: unknown) => error);
        await new Promise((resolve) => setTimeout(resolve, delay));
        await log.close();
        const outcome = await reading;
        // The read either finished before close() or failed clearly because of it.
        if (outcome instanceof Error) expect(outcome).toBeInstanceOf(KafkaRecordLogError);
        else expect(values(outcome as LoggedRecord[])).toEqual(['0:0:p0-0', '0:1:p0-1', '0:2:p0-2']);
      }),
    );
    // A consumer that went on to join would be a member, fetching, of a group of this client id.
    await new Promise((resolve) => setTimeout(resolve, 4000));
    // Nor is a connection left open (an admin client disconnected under a call in flight reconnected).
    expect(sockets()).toBe(socketsBefore);
    const groupIds = (await admin.listGroups()).groups.map((group) => group.groupId).filter((groupId) => groupId.startsWith(clientId));
    const { groups } = await admin.describeGroups(groupIds);
    expect(groups.flatMap((group) => group.members.map((member) => `${group.groupId}: ${member.memberId}`))).toEqual([]);
  });

  it('fails a read it cannot finish with a clear error, and fails after close', async () => {
    const unreachable = open({ brokers: ['127.0.0.1:1'], readTimeoutMs: 1500, connectionTimeoutMs: 300 });
    const failure = await unreachable.read([{ topic: 'device-data', partition: 0, from: 0, to: 1 }]).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(KafkaRecordLogError);
    expect((failure as Error).message).toMatch(/did not finish within 1500 ms|reading from Kafka failed/);

    const topic = await newTopic(1);
    await fill(topic, 1, 2, Date.now());
    const log = open();
    expect(await log.read([{ topic, partition: 0, from: 0, to: 2 }])).toHaveLength(2);
    await log.close();
    await expect(log.read([{ topic, partition: 0, from: 0, to: 2 }])).rejects.toThrow('closed');
  });
});
