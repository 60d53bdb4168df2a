/**
 * A local MSK event source: what Lambda's event source mapping does on AWS, against a real Kafka
 * broker, with kafkajs. This file is the wiring; the batching rules live in ./record-batcher.ts
 * and the retry rules in ./retry-policy.ts.
 *
 * - One consumer group reads `device-data` and `alerts`.
 * - Records are gathered into MSK-shaped events ({@link buildMskEvent}) with Lambda's batching
 *   semantics: an event is sent when it holds `batchSize` records, when it nears Lambda's 6 MB
 *   payload limit, or `batchWindowMs` after its first record arrived, whichever comes first.
 * - One invocation at a time, records in fetch order: the order within a partition is kept.
 * - Offsets are committed only after `invoke` resolved (at least once). A failed invocation is
 *   retried with exponential backoff and full jitter; after `maxRetries` retries its records go to the
 *   dead-letter topic, as Lambda's on-failure destination, and the bridge moves on.
 *
 * Fetching is decoupled from invoking: kafkajs's fetch position moves on as records are queued
 * here, but offsets are committed explicitly and only up to what was processed, so that a record
 * that was fetched but not processed when the bridge stops is read again by the next consumer.
 */
import type { MSKEvent } from 'aws-lambda';
import { Kafka, logLevel, type Admin, type Consumer, type EachBatchPayload, type IHeaders, type Message, type Producer } from 'kafkajs';
import { AppError, errorMessage } from '../lambdas/core/errors';
import { TOPICS } from '../lambdas/core/protocol';
import { buildMskEvent, type KafkaRecordInput } from './msk-event';
import { RecordBatcher } from './record-batcher';
import { withRetries } from './retry-policy';

/** Options of {@link startKafkaBridge}. */
export interface KafkaBridgeOptions {
  /** Bootstrap brokers, `host:port`. */
  brokers: string[];
  /** Consumer group. Default `iot-dashboard-stream`. */
  groupId?: string;
  /** Topics read. Default the product's topics, {@link TOPICS}. */
  topics?: string[];
  /** Most records in one event. Default 100, Lambda's default for MSK. */
  batchSize?: number;
  /** Milliseconds to wait for a full batch after its first record arrived. Default 500. */
  batchWindowMs?: number;
  /** Retries of a failed invocation before its records go to the dead-letter topic. Default 3. */
  maxRetries?: number;
  /** Upper bound of the first retry's backoff, in ms (full jitter); doubled each retry, capped at 10 s. Default 200. */
  retryBaseDelayMs?: number;
  /** Where records of a batch that kept failing go. Default `stream-dlq`. */
  deadLetterTopic?: string;
  /** A group with no committed offset starts at the earliest record instead of the latest. Default false. */
  fromBeginning?: boolean;
  /** Records queued here before fetching pauses (backpressure). Default 20 × batchSize. */
  maxBufferedRecords?: number;
  /** `eventSourceArn` of the events. Default a local MSK cluster ARN. */
  eventSourceArn?: string;
  /** Kafka client id. Default `iot-dashboard-bridge`. */
  clientId?: string;
  /** The stream handler. A rejection means the batch failed and is retried. */
  invoke: (event: MSKEvent) => Promise<unknown>;
  /** Log sink, one line per call. Default: nothing. */
  log?: (line: string) => void;
}

/** Counters of a running bridge. */
export interface KafkaBridgeStats {
  running: boolean;
  groupId: string;
  topics: string[];
  /** Invocations that succeeded. */
  batches: number;
  /** Records in invocations that succeeded. */
  records: number;
  /** Records the handler reported invalid (from its report's `invalid`), when it reports them. */
  invalid: number;
  /** Invocations that failed (each failed attempt counts). */
  failedInvocations: number;
  /** Records sent to the dead-letter topic. */
  deadLettered: number;
  /** Records fetched and waiting for an invocation. */
  buffered: number;
  /** Partitions currently assigned to this consumer. */
  assignedPartitions: number;
  /** Duration of the last successful invocation, ms. */
  lastInvokeMs?: number;
  /** The last invocation or commit error. */
  lastError?: string;
}

/** A running bridge. */
export interface KafkaBridge {
  /** Finishes the invocation in flight (and commits it if it succeeded), then leaves the group. */
  stop(): Promise<void>;
  /** Total consumer lag over the topics read: records not yet committed by this group. */
  lag(): Promise<number>;
  stats(): KafkaBridgeStats;
}

/** Thrown when the bridge cannot start, e.g. the broker is unreachable. */
export class KafkaBridgeError extends AppError {
  override name = 'KafkaBridgeError';
}

/** Lambda's invocation payload limit; an event is sent before its base64 records would pass it. */
const MAX_EVENT_BYTES = 6 * 1024 * 1024 - 64 * 1024;

interface QueuedRecord {
  input: KafkaRecordInput;
  topic: string;
  partition: number;
  offset: string;
  /** Approximate bytes this record adds to the event JSON. */
  bytes: number;
}

/** kafkajs allows several values per header name; the MSK event carries one per entry, so keep the first. */
function flattenHeaders(headers: IHeaders | undefined): Record<string, Buffer | string> {
  const out: Record<string, Buffer | string> = {};
  for (const [name, value] of Object.entries(headers ?? {})) {
    const first = Array.isArray(value) ? value[0] : value;
    if (first !== undefined) out[name] = first;
  }
  return out;
}

/** The records of a batch that kept failing, as dead-letter messages saying where each came from and why. */
function deadLetterMessages(batch: QueuedRecord[], why: { group: string; attempts: number; reason: string }): Message[] {
  return batch.map((record) => ({
    key: (record.input.key as Buffer | null | undefined) ?? null,
    value: record.input.value as Buffer | null,
    timestamp: String(record.input.timestamp ?? Date.now()),
    headers: {
      ...flattenHeaders(record.input.headers as IHeaders | undefined),
      'dlq.topic': record.topic,
      'dlq.partition': String(record.partition),
      'dlq.offset': record.offset,
      'dlq.group': why.group,
      'dlq.attempts': String(why.attempts),
      'dlq.error': why.reason,
    },
  }));
}

/** Per partition, the offset after the batch's last record: what a commit after it records. */
function offsetsAfter(batch: QueuedRecord[]): { topic: string; partition: number; offset: string }[] {
  const next = new Map<string, { topic: string; partition: number; offset: string }>();
  for (const record of batch) {
    next.set(`${record.topic}\u0000${record.partition}`, {
      topic: record.topic,
      partition: record.partition,
      offset: (BigInt(record.offset) + 1n).toString(),
    });
  }
  return [...next.values()];
}

/** Records of `topics` not yet committed by `groupId`; a partition with no commit starts at its end unless `fromBeginning`. */
async function consumerLag(admin: Admin, groupId: string, topics: string[], fromBeginning: boolean): Promise<number> {
  let total = 0;
  const committed = await admin.fetchOffsets({ groupId, topics });
  for (const { topic, partitions } of committed) {
    const ends = await admin.fetchTopicOffsets(topic);
    for (const end of ends) {
      const at = partitions.find((partition) => partition.partition === end.partition);
      const committedOffset = at ? Number(at.offset) : -1;
      const high = Number(end.high);
      const from = committedOffset >= 0 ? committedOffset : fromBeginning ? Number(end.low) : high;
      total += Math.max(0, high - from);
    }
  }
  return total;
}

/**
 * Follows the consumer's events: counts the partitions assigned on each join, records a crash,
 * and tells when the consumer is consuming (joined its group and fetched once). Registered before
 * connecting, so that no event is missed.
 */
function watchConsumer(
  consumer: Consumer,
  context: { groupId: string; topics: string[]; stats: KafkaBridgeStats; log: (line: string) => void },
): { consuming(timeoutMs: number): Promise<void> } {
  const { groupId, topics, stats, log } = context;
  let joined = false;
  let settle: { resolve(): void; reject(error: Error): void } | undefined;
  const ready = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));
  // A crash before anyone waits (connecting failed) must not surface as an unhandled rejection.
  ready.catch(() => undefined);
  const { GROUP_JOIN, FETCH, CRASH } = consumer.events;
  consumer.on(GROUP_JOIN, (event) => {
    joined = true;
    stats.assignedPartitions = Object.values(event.payload.memberAssignment).reduce((sum, partitions) => sum + partitions.length, 0);
    log(`kafka-bridge: joined group ${groupId} with ${stats.assignedPartitions} partitions of ${topics.join(', ')}`);
  });
  consumer.on(FETCH, () => {
    // The first fetch after joining has resolved the start offsets of new partitions.
    if (joined) settle?.resolve();
  });
  consumer.on(CRASH, (event) => {
    const { error, restart } = event.payload;
    stats.lastError = `consumer: ${errorMessage(error)}`;
    log(`kafka-bridge: consumer crashed (${restart ? 'restarting' : 'not restarting'}): ${errorMessage(error)}`);
    if (restart) return;
    stats.running = false;
    settle?.reject(new KafkaBridgeError(`Kafka consumer crashed: ${errorMessage(error)}`, { cause: error }));
  });
  return {
    async consuming(timeoutMs: number): Promise<void> {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new KafkaBridgeError(`consumer group ${groupId} did not join within ${timeoutMs / 1000}s`)), timeoutMs);
      });
      try {
        await Promise.race([ready, late]);
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

/**
 * Starts consuming and resolves once the consumer has joined its group and made its first fetch,
 * so that a record produced after this resolves is delivered even with `fromBeginning: false`.
 */
export async function startKafkaBridge(options: KafkaBridgeOptions): Promise<KafkaBridge> {
  const groupId = options.groupId ?? 'iot-dashboard-stream';
  const topics = options.topics ?? Object.values(TOPICS);
  const batchSize = options.batchSize ?? 100;
  const batchWindowMs = options.batchWindowMs ?? 500;
  const maxRetries = options.maxRetries ?? 3;
  const retryBaseDelayMs = options.retryBaseDelayMs ?? 200;
  const deadLetterTopic = options.deadLetterTopic ?? 'stream-dlq';
  const maxBuffered = options.maxBufferedRecords ?? batchSize * 20;
  const log = options.log ?? (() => undefined);
  const bootstrapServers = options.brokers.join(',');
  if (batchSize < 1 || !Number.isInteger(batchSize)) throw new KafkaBridgeError(`batchSize must be a positive integer, got ${batchSize}`);

  const kafka = new Kafka({
    clientId: options.clientId ?? 'iot-dashboard-bridge',
    brokers: options.brokers,
    logLevel: logLevel.NOTHING,
    connectionTimeout: 3000,
    retry: { retries: 3, initialRetryTime: 300 },
  });
  const consumer: Consumer = kafka.consumer({
    groupId,
    sessionTimeout: 30000,
    heartbeatInterval: 3000,
    // The broker answers a fetch as soon as any record is there; this only bounds an idle fetch,
    // and so how long stop() waits for one.
    maxWaitTimeInMs: 500,
    retry: { retries: 5, initialRetryTime: 300 },
  });
  const producer: Producer = kafka.producer({ allowAutoTopicCreation: true });
  const admin: Admin = kafka.admin();

  const stats: KafkaBridgeStats = {
    running: false,
    groupId,
    topics,
    batches: 0,
    records: 0,
    invalid: 0,
    failedInvocations: 0,
    deadLettered: 0,
    buffered: 0,
    assignedPartitions: 0,
  };

  const batcher = new RecordBatcher<QueuedRecord>({ batchSize, windowMs: batchWindowMs, maxBatchBytes: MAX_EVENT_BYTES, maxQueued: maxBuffered });
  /** Aborted by stop(): ends a retry backoff early. */
  const stopSignal = new AbortController();
  let stopping = false;

  const deadLetter = async (batch: QueuedRecord[], error: unknown, attempts: number): Promise<void> => {
    const reason = errorMessage(error).slice(0, 1000);
    await producer.send({ topic: deadLetterTopic, messages: deadLetterMessages(batch, { group: groupId, attempts, reason }) });
    stats.deadLettered += batch.length;
    log(`kafka-bridge: sent ${batch.length} records to ${deadLetterTopic} after ${attempts} failed invocations: ${reason}`);
  };

  /** Commits, per partition, the offset after the last record of the batch. */
  const commit = async (batch: QueuedRecord[]): Promise<void> => {
    try {
      await consumer.commitOffsets(offsetsAfter(batch));
    } catch (error) {
      // After a rebalance the commit of an old generation fails; the new owner of the partition
      // reads these records again (at least once), so this is logged, not fatal.
      stats.lastError = `commit: ${errorMessage(error)}`;
      log(`kafka-bridge: commit failed (records will be read again): ${errorMessage(error)}`);
    }
  };

  /**
   * Invokes the handler for one batch until it succeeds, the retries run out (dead letter), or the
   * bridge stops (nothing committed: the records are read again after a restart).
   */
  const processBatch = async (batch: QueuedRecord[]): Promise<void> => {
    const event = buildMskEvent(
      batch.map((record) => record.input),
      { bootstrapServers, ...(options.eventSourceArn ? { eventSourceArn: options.eventSourceArn } : {}) },
    );
    const first = batch[0]!;
    const outcome = await withRetries(
      async () => {
        const started = Date.now();
        const report = await options.invoke(event);
        stats.lastInvokeMs = Date.now() - started;
        return report;
      },
      {
        maxRetries,
        baseDelayMs: retryBaseDelayMs,
        signal: stopSignal.signal,
        onFailure: (error, attempt) => {
          stats.failedInvocations++;
          stats.lastError = `invoke: ${errorMessage(error)}`;
          log(
            `kafka-bridge: invocation ${attempt} of ${maxRetries + 1} failed for ${batch.length} records from ` +
              `${first.topic}:${first.partition}:${first.offset}: ${errorMessage(error)}`,
          );
        },
      },
    );
    if (outcome.ok) {
      stats.batches++;
      stats.records += batch.length;
      const invalid = (outcome.value as { invalid?: unknown } | undefined)?.invalid;
      if (typeof invalid === 'number') stats.invalid += invalid;
      await commit(batch);
      return;
    }
    // Stopped: nothing committed, so the records are read again after a restart.
    if (outcome.stopped) return;
    try {
      await deadLetter(batch, outcome.error, outcome.attempts);
      await commit(batch);
    } catch (dlqError) {
      // Not committed: the records are read again after a restart rather than lost.
      stats.lastError = `dead letter: ${errorMessage(dlqError)}`;
      log(`kafka-bridge: could not send to ${deadLetterTopic}: ${errorMessage(dlqError)}`);
    }
  };

  /** The single invoke loop: one batch at a time, in queue order, until the batcher closes. */
  const invokeLoop = async (): Promise<void> => {
    for (let batch = await batcher.nextBatch(); batch; batch = await batcher.nextBatch()) {
      stats.buffered = batcher.size;
      await processBatch(batch);
    }
  };

  const eachBatch = async ({ batch, isRunning, isStale, heartbeat }: EachBatchPayload): Promise<void> => {
    for (const message of batch.messages) {
      while (batcher.full && !stopping && isRunning() && !isStale()) {
        await batcher.waitForRoom(1000);
        await heartbeat();
      }
      if (stopping || !isRunning() || isStale()) return;
      const value = message.value ?? Buffer.alloc(0);
      const keyBytes = message.key?.length ?? 0;
      batcher.push({
        input: {
          topic: batch.topic,
          partition: batch.partition,
          offset: message.offset,
          timestamp: Number(message.timestamp),
          key: message.key ?? null,
          value,
          headers: flattenHeaders(message.headers),
        },
        topic: batch.topic,
        partition: batch.partition,
        offset: message.offset,
        bytes: Math.ceil(((value.length + keyBytes) * 4) / 3) + 200,
      });
    }
    stats.buffered = batcher.size;
  };

  const watch = watchConsumer(consumer, { groupId, topics, stats, log });

  try {
    await Promise.all([consumer.connect(), producer.connect(), admin.connect()]);
    for (const topic of topics) await consumer.subscribe({ topic, fromBeginning: options.fromBeginning ?? false });
  } catch (error) {
    await Promise.allSettled([consumer.disconnect(), producer.disconnect(), admin.disconnect()]);
    throw new KafkaBridgeError(
      `cannot reach Kafka at ${bootstrapServers}: ${errorMessage(error)}. ` +
        'Start a local broker with `npm run kafka:start`, or set KAFKA_BROKERS to a reachable one.',
      { cause: error },
    );
  }

  stats.running = true;
  const loopDone = invokeLoop().catch((error: unknown) => {
    stats.lastError = `invoke loop: ${errorMessage(error)}`;
    log(`kafka-bridge: invoke loop stopped: ${errorMessage(error)}`);
  });
  await consumer.run({ autoCommit: false, eachBatchAutoResolve: true, partitionsConsumedConcurrently: 1, eachBatch });

  try {
    await watch.consuming(30_000);
  } catch (error) {
    stopping = true;
    batcher.close();
    await Promise.allSettled([consumer.disconnect(), producer.disconnect(), admin.disconnect()]);
    throw error;
  }

  let stopped: Promise<void> | undefined;
  return {
    stop(): Promise<void> {
      stopped ??= (async () => {
        stopping = true;
        stats.running = false;
        // Queued records are dropped uncommitted; the invocation in flight finishes and commits first.
        batcher.close();
        stopSignal.abort();
        await loopDone;
        await consumer.disconnect();
        await Promise.allSettled([producer.disconnect(), admin.disconnect()]);
        stats.buffered = 0;
        log(`kafka-bridge: stopped (${stats.batches} batches, ${stats.records} records)`);
      })();
      return stopped;
    },
    lag(): Promise<number> {
      return consumerLag(admin, groupId, topics, options.fromBeginning ?? false);
    },
    stats(): KafkaBridgeStats {
      return { ...stats };
    },
  };
}
