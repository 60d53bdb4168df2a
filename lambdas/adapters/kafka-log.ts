/**
 * The Kafka log read by offset, for resumes (lambdas/core/replay.ts), with kafkajs.
 *
 * - Bounds and offsets by time come from the admin client (ListOffsets). Concurrent callers share
 *   reads: a topic's bounds (or its offsets at a time) are read once at a time, and every caller
 *   that asks while a read runs shares the next one, which starts after it asked (a replay needs a
 *   high watermark read after its own start).
 * - kafkajs's admin client keeps one metadata for every topic it was asked about, and
 *   `fetchTopicMetadata` for some topics replaces it with theirs alone: a concurrent call about
 *   another topic then finds no partitions (`Cannot destructure property 'partitions' of
 *   'high.pop(...)'`). So an admin client serves a fixed set of topics, loaded one after the
 *   other before any other call, and metadata is only ever asked for that whole set. A client that
 *   must be replaced (a new topic, partitions added) is swapped for a new one at once, but
 *   disconnected only when the last call using it is done.
 * - Reads go through one consumer, reused: kafkajs has no manual partition assignment, so the
 *   consumer joins a group of its own (one per instance, never committed to), subscribes to the
 *   topics read, keeps every partition paused, and for a read seeks each partition it needs to the
 *   range's start, resumes it, collects records up to the range's end and pauses it again.
 * - Concurrent reads are served in passes: every read that arrives while a pass runs joins the
 *   next one, whose ranges are merged per partition, so 100 clients resuming at once cost one group
 *   join and a few passes, not 100 consumers.
 * - After a rebalance (a rejoin after a heartbeat failed, a crash and restart, partitions added)
 *   kafkajs forgets positions and pauses: both are set again on every join. A consumer whose
 *   heartbeats stopped for longer than the session timeout (a Lambda container frozen between
 *   invocations) was evicted from its group; it is replaced before the next read rather than left
 *   to find out. One idle for {@link KafkaRecordLogOptions.idleCloseMs} is closed.
 * - kafkajs never restarts a consumer here: its restart is a timer that outlives `disconnect()`
 *   when the two cross, and starts a consumer nobody holds (CI saw one run after its test file had
 *   ended). A consumer that crashes is dead: the reads of its pass fail (a resume then gets the
 *   snapshot), and the next read starts a new one.
 * - A read that does not finish within {@link KafkaRecordLogOptions.readTimeoutMs} is rejected with
 *   a {@link KafkaRecordLogError} (the replay then answers too far behind, with the snapshot).
 *
 * Limitation: the end of a range is found from the records read (and the batch's last offset). A
 * range that ends in transaction markers only (a transactional producer) is not seen to end and
 * fails at the deadline; the product's producers are not transactional.
 */
import { randomUUID } from 'node:crypto';
import { Kafka, logLevel, type Admin, type Consumer, type EachBatchPayload, type SASLOptions } from 'kafkajs';
import { AppError, errorMessage } from '../core/errors';
import type { LoggedRecord, OffsetRange, PartitionBounds, RecordLog } from '../core/ports';

/** Options of {@link KafkaRecordLog}. */
export interface KafkaRecordLogOptions {
  /** Bootstrap brokers, `host:port`. */
  brokers: string[];
  /** Kafka client id; also the prefix of the consumer group. Default `iot-dashboard-replay`. */
  clientId?: string;
  /** TLS to the brokers (MSK's TLS and IAM listeners). Default false. */
  ssl?: boolean;
  /** SASL (MSK IAM or SCRAM). Default none. */
  sasl?: SASLOptions;
  /** Time to open a connection to a broker, ms. Default 3,000. */
  connectionTimeoutMs?: number;
  /** A read fails after this many ms, the group join included. Default 10,000. */
  readTimeoutMs?: number;
  /** The consumer is closed after this many ms without a read; the next read joins again. Default 5 minutes. */
  idleCloseMs?: number;
  /**
   * The consumer's session timeout, ms: heartbeats missing for longer mean it was evicted. Long by
   * default, because the group is this instance's alone: a long session delays no one, and a
   * container frozen for less keeps its member and reads without a new join (on MSK a new group's
   * first join waits `group.initial.rebalance.delay.ms`, 3 s by default). At most the brokers'
   * `group.max.session.timeout.ms`. Default 120,000.
   */
  sessionTimeoutMs?: number;
  /** Ranges of one partition less than this many offsets apart are read as one. Default 2,000. */
  mergeGap?: number;
}

/** A read failed: the log could not be reached, or the read passed its deadline. */
export class KafkaRecordLogError extends AppError {
  override name = 'KafkaRecordLogError';
}


const DEFAULTS = {
  clientId: 'iot-dashboard-replay',
  connectionTimeoutMs: 3000,
  readTimeoutMs: 10_000,
  idleCloseMs: 5 * 60_000,
  sessionTimeoutMs: 120_000,
  mergeGap: 2000,
} as const;

/** One read() call waiting for its records. */
interface ReadRequest {
  ranges: OffsetRange[];
  resolve(records: LoggedRecord[]): void;
  reject(error: Error): void;
  settled: boolean;
  timer: NodeJS.Timeout;
}

/** Offsets [from, to) of one partition read in one go, for the ranges merged into it. */
interface Segment {
  from: number;
  to: number;
  /** Records read, in offset order. */
  records: LoggedRecord[];
}

/** A partition in the pass under way: its segments, read one after the other. */
interface Lane {
  topic: string;
  partition: number;
  segments: Segment[];
  /** Index of the segment being read; `segments.length` when done. */
  at: number;
  /** The next offset expected. */
  position: number;
}

/** The consumer and its state; replaced as a whole when it dies or goes stale. */
interface Reader {
  consumer: Consumer;
  topics: Set<string>;
  /** Resolves on the first group join; rejects if the consumer crashes before. */
  joined: Promise<void>;
  /** Settles when `connect`, `subscribe` and `run` (its first join included) are over, or stopped early. */
  started: Promise<void>;
  /** Set when the consumer crashed or was closed. */
  dead: boolean;
  lastHeartbeat: number;
  /** The partitions of the last join, `topic:partition`. */
  assigned: Set<string>;
}

/** An admin client, the topics it serves and the calls using it; see the module comment. */
interface AdminHandle {
  client: Admin;
  /** Connected, with every topic of `topics` loaded. */
  ready: Promise<Admin>;
  topics: ReadonlySet<string>;
  /** Calls using it now. */
  users: number;
  /** Replaced: new calls use another; this one is disconnected when `users` drops to 0. */
  retired: boolean;
  /** Resolves once the client is disconnected. */
  gone: Promise<void>;
  disconnected(): void;
}

const ignore = (): void => undefined;

/**
 * Reads shared by concurrent callers, one at a time per key: a caller gets a read that starts no
 * earlier than its call, the one under way only if it had not started yet, so every caller that
 * asks while a read runs shares the next one.
 */
class SharedReads<V> {
  private readonly slots = new Map<string, { running: Promise<V>; next?: Promise<V> }>();

  get(key: string, read: () => Promise<V>): Promise<V> {
    const slot = this.slots.get(key);
    if (!slot) return this.start(key, read);
    slot.next ??= slot.running.then(ignore, ignore).then(() => this.start(key, read));
    return slot.next;
  }

  private start(key: string, read: () => Promise<V>): Promise<V> {
    const running = read();
    const slot = { running };
    this.slots.set(key, slot);
    void running.then(ignore, ignore).then(() => {
      if (this.slots.get(key) === slot) this.slots.delete(key);
    });
    return running;
  }
}

const partitionKey = (topic: string, partition: number): string => `${topic}:${partition}`;

/**
 * How long bounds read by {@link KafkaRecordLog.partitions} serve a read whose ranges lie within
 * them, ms: a replay reads right after asking for them, and a high watermark only grows.
 */
const BOUNDS_REUSE_MS = 10_000;

/** A topic's partitions and their bounds, as last read. */
interface TopicBounds {
  at: number;
  partitions: Map<number, { low: number; high: number }>;
}

/** A {@link RecordLog} over a Kafka cluster; see the module comment. */
export class KafkaRecordLog implements RecordLog {
  private readonly kafka: Kafka;
  private readonly settings: Required<Omit<KafkaRecordLogOptions, 'brokers' | 'ssl' | 'sasl'>>;
  /** The admin client new calls use. */
  private admin?: AdminHandle;
  /** Every admin client not yet disconnected, the current one and retired ones still in use. */
  private readonly admins = new Set<AdminHandle>();
  private readonly boundsReads = new SharedReads<TopicBounds>();
  private readonly offsetReads = new SharedReads<Array<{ partition: number; offset: string }>>();
  private reader?: Reader;
  private readonly queue: ReadRequest[] = [];
  private passing = false;
  private closed = false;
  /** Partitions of the pass under way, by `topic:partition`. */
  private lanes = new Map<string, Lane>();
  private passDone?: () => void;
  /** The reads of the pass under way, and how to abandon it once all of them have given up. */
  private current?: { requests: ReadRequest[]; abandon(): void };
  private passError?: Error;
  /** Serialises replacing the consumer. */
  private readerLock: Promise<unknown> = Promise.resolve();
  private idleTimer?: NodeJS.Timeout;
  private lastUsed = Date.now();
  private readonly boundsByTopic = new Map<string, TopicBounds>();
  /** Figures for tests and benchmarks. */
  readonly stats = { joins: 0, passes: 0, reads: 0, consumers: 0, recordsRead: 0 };

  constructor(options: KafkaRecordLogOptions) {
    this.settings = {
      clientId: options.clientId ?? DEFAULTS.clientId,
      connectionTimeoutMs: options.connectionTimeoutMs ?? DEFAULTS.connectionTimeoutMs,
      readTimeoutMs: options.readTimeoutMs ?? DEFAULTS.readTimeoutMs,
      idleCloseMs: options.idleCloseMs ?? DEFAULTS.idleCloseMs,
      sessionTimeoutMs: options.sessionTimeoutMs ?? DEFAULTS.sessionTimeoutMs,
      mergeGap: options.mergeGap ?? DEFAULTS.mergeGap,
    };
    this.kafka = new Kafka({
      clientId: this.settings.clientId,
      brokers: options.brokers,
      ssl: options.ssl ?? false,
      ...(options.sasl ? { sasl: options.sasl } : {}),
      connectionTimeout: this.settings.connectionTimeoutMs,
      logLevel: logLevel.NOTHING,
      retry: { retries: 3, initialRetryTime: 200 },
    });
  }

  async partitions(topics: readonly string[]): Promise<PartitionBounds[]> {
    // The replay reads right after these bounds: the consumer's group join overlaps this call.
    this.warm(topics);
    const all = await Promise.all(topics.map((topic) => this.readBounds(topic)));
    return all.flatMap((bounds, i) => [...bounds.partitions].map(([partition, { low, high }]) => ({ topic: topics[i], partition, low, high })));
  }

  /** A topic's bounds, read after this call; shared with the callers asking meanwhile. */
  private readBounds(topic: string): Promise<TopicBounds> {
    return this.boundsReads.get(topic, () => this.fetchBounds(topic));
  }

  private fetchBounds(topic: string): Promise<TopicBounds> {
    const at = Date.now();
    return this.withAdmin([topic], async (admin, handle) => {
      // kafkajs's admin keeps a topic's partitions for 5 minutes; the metadata asked for here is
      // fresh. It names every topic of this client: see the module comment.
      const [fresh, cached] = await Promise.all([admin.fetchTopicMetadata({ topics: [...handle.topics] }), admin.fetchTopicOffsets(topic)]);
      let offsets = cached;
      if ((fresh.topics.find((each) => each.name === topic)?.partitions.length ?? 0) > offsets.length) {
        // Partitions were added: a new admin client reads them; this one serves its calls under way.
        offsets = await this.withAdmin([topic], (next) => next.fetchTopicOffsets(topic), handle);
      }
      const bounds = { at, partitions: new Map(offsets.map((held) => [held.partition, { low: Number(held.low), high: Number(held.high) }])) };
      this.boundsByTopic.set(topic, bounds);
      return bounds;
    });
  }

  /** The bounds of a read's topics: read again unless recent ones hold every range. */
  private async boundsFor(topics: Set<string>, ranges: readonly OffsetRange[]): Promise<Map<string, TopicBounds>> {
    const now = Date.now();
    const out = new Map<string, TopicBounds>();
    const stale: string[] = [];
    for (const topic of topics) {
      const known = this.boundsByTopic.get(topic);
      const holds = (range: OffsetRange) => {
        const held = known!.partitions.get(range.partition);
        return held !== undefined && range.from >= held.low && range.to <= held.high;
      };
      if (known && now - known.at < BOUNDS_REUSE_MS && ranges.every((range) => range.topic !== topic || holds(range))) out.set(topic, known);
      else stale.push(topic);
    }
    await Promise.all(stale.map(async (topic) => out.set(topic, await this.readBounds(topic))));
    return out;
  }

  async offsetsAt(topics: readonly string[], time: number): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    await Promise.all(
      topics.map(async (topic) => {
        // kafkajs answers the high watermark for a partition with no record at or after `time`.
        const found = await this.offsetReads.get(`${time}@${topic}`, () => this.withAdmin([topic], (admin) => admin.fetchTopicOffsetsByTimestamp(topic, time)));
        for (const { partition, offset } of found) out.set(partitionKey(topic, partition), Number(offset));
      }),
    );
    return out;
  }

  read(ranges: readonly OffsetRange[]): Promise<LoggedRecord[]> {
    if (this.closed) return Promise.reject(new KafkaRecordLogError('the Kafka record log is closed'));
    const wanted = ranges.filter((range) => range.to > range.from);
    if (wanted.length === 0) return Promise.resolve([]);
    this.stats.reads++;
    return new Promise<LoggedRecord[]>((resolve, reject) => {
      const request: ReadRequest = {
        ranges: wanted.map((range) => ({ ...range })),
        resolve,
        reject,
        settled: false,
        timer: setTimeout(() => {
          const pending = [...this.lanes.values()].filter((lane) => lane.at < lane.segments.length).map((lane) => partitionKey(lane.topic, lane.partition));
          this.settle(
            request,
            new KafkaRecordLogError(
              `reading ${wanted.length} offset ranges from Kafka did not finish within ${this.settings.readTimeoutMs} ms` +
                (this.reader ? (pending.length ? ` (still reading ${pending.slice(0, 5).join(', ')})` : ' (waiting for the consumer group)') : ''),
            ),
          );
        }, this.settings.readTimeoutMs),
      };
      this.queue.push(request);
      this.kick();
    });
  }

  /** Leaves the group and disconnects; reads after this fail. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.idleTimer);
    const closing = new KafkaRecordLogError('the Kafka record log was closed');
    for (const request of [...this.queue.splice(0), ...(this.current?.requests ?? [])]) this.settle(request, closing);
    // Every admin client is disconnected once the calls using it are over: one disconnected under a
    // call in flight has that call open a new connection, which stays.
    const admins = [...this.admins];
    for (const handle of admins) this.retireAdmin(handle);
    await Promise.allSettled([this.dropReader(), ...admins.map((handle) => handle.gone)]);
    // A consumer whose start was under way (a warm-up, a replacement) is dropped once it is made.
    await this.readerLock;
    await this.dropReader();
  }

  /**
   * Runs `use` with an admin client serving these topics, and keeps that client connected until it
   * is done. The current client serves unless it lacks a topic or is `stale` (then a new one
   * replaces it for the calls that follow).
   */
  private async withAdmin<T>(topics: readonly string[], use: (admin: Admin, handle: AdminHandle) => Promise<T>, stale?: AdminHandle): Promise<T> {
    if (this.closed) throw new KafkaRecordLogError('the Kafka record log is closed');
    let handle = this.admin;
    if (!handle || handle === stale || topics.some((topic) => !handle!.topics.has(topic))) handle = this.newAdmin(topics);
    handle.users++;
    try {
      return await use(await handle.ready, handle);
    } finally {
      handle.users--;
      if (handle.retired && handle.users === 0) this.disconnectAdmin(handle);
    }
  }

  /** A new current admin client for these topics and the current one's; the current one is retired. */
  private newAdmin(topics: readonly string[]): AdminHandle {
    const previous = this.admin;
    const all = new Set([...(previous?.topics ?? []), ...topics]);
    if (previous) this.retireAdmin(previous);
    const client = this.kafka.admin();
    let disconnected = ignore;
    const handle: AdminHandle = {
      client,
      topics: all,
      users: 0,
      retired: false,
      gone: new Promise<void>((resolve) => (disconnected = resolve)),
      disconnected: () => disconnected(),
      ready: (async () => {
        await client.connect();
        // One topic after the other, before any other call: each joins what kafkajs's metadata holds.
        for (const topic of all) await client.fetchTopicOffsets(topic);
        return client;
      })(),
    };
    // A client that fails to start is not kept: the next call starts another.
    handle.ready.catch(() => this.retireAdmin(handle));
    this.admin = handle;
    this.admins.add(handle);
    return handle;
  }

  private retireAdmin(handle: AdminHandle): void {
    if (this.admin === handle) this.admin = undefined;
    if (handle.retired) return;
    handle.retired = true;
    if (handle.users === 0) this.disconnectAdmin(handle);
  }

  private disconnectAdmin(handle: AdminHandle): void {
    if (!this.admins.delete(handle)) return;
    // Disconnected while it still connects, a kafkajs client connects afterwards and stays open.
    void handle.ready
      .then(ignore, ignore)
      .then(() => handle.client.disconnect())
      .catch(ignore)
      .finally(() => handle.disconnected());
  }

  private settle(request: ReadRequest, outcome: LoggedRecord[] | Error): void {
    if (request.settled) return;
    request.settled = true;
    clearTimeout(request.timer);
    if (outcome instanceof Error) request.reject(outcome);
    else request.resolve(outcome);
    // A pass all of whose reads have given up stops.
    if (this.current?.requests.every((each) => each.settled)) this.current.abandon();
  }

  /** Starts a pass unless one runs; the queued reads go in the next one. */
  private kick(): void {
    if (this.passing || this.closed) return;
    const requests = this.queue.splice(0).filter((request) => !request.settled);
    if (requests.length === 0) return;
    this.passing = true;
    this.lastUsed = Date.now();
    this.pass(requests)
      .catch((error: unknown) => {
        const failure = new KafkaRecordLogError(`reading from Kafka failed: ${errorMessage(error)}`, { cause: error });
        for (const request of requests) this.settle(request, failure);
      })
      .finally(() => {
        this.passing = false;
        this.lastUsed = Date.now();
        this.scheduleIdleClose();
        this.kick();
      });
  }

  /** Starts the consumer (and its group join) in the background, for a read that will follow. */
  private warm(topics: readonly string[]): void {
    // A pass under way holds the consumer it reads with.
    if (this.closed || this.passing) return;
    this.readerFor(topics).catch(() => undefined);
  }

  /** A consumer subscribed to at least these topics, joined or joining: the one there is, or a new one. */
  private readerFor(topics: Iterable<string>, replace?: Reader): Promise<Reader> {
    const needed = [...topics];
    const next = this.readerLock.then(async () => {
      let reader = this.reader;
      if (reader && reader === replace) reader.dead = true;
      // Heartbeats stopped for longer than the session timeout (the process was frozen): the group
      // has evicted this member, and finding out through a failed heartbeat costs more than a new one.
      const stale = reader && Date.now() - reader.lastHeartbeat > this.settings.sessionTimeoutMs;
      if (reader && (reader.dead || stale || needed.some((topic) => !reader!.topics.has(topic)))) {
        // kafkajs cannot add a topic to a running consumer: a new one subscribes to all of them.
        for (const topic of reader.topics) needed.push(topic);
        await this.dropReader();
        reader = undefined;
      }
      if (reader) return reader;
      if (this.closed) throw new KafkaRecordLogError('the Kafka record log is closed');
      return this.startReader([...new Set(needed)]);
    });
    this.readerLock = next.catch(() => undefined);
    return next.then(async (reader) => {
      await reader.joined;
      return reader;
    });
  }

  private startReader(topics: string[]): Reader {
    clearTimeout(this.idleTimer);
    this.stats.consumers++;
    const consumer = this.kafka.consumer({
      // A group of its own: this instance gets every partition, and nothing is ever committed.
      groupId: `${this.settings.clientId}-${randomUUID()}`,
      sessionTimeout: this.settings.sessionTimeoutMs,
      heartbeatInterval: 3000,
      allowAutoTopicCreation: false,
      // With every partition paused kafkajs sleeps this long between polls: a read that starts
      // then waits at most this. Reads never fetch past the high watermark, so no fetch waits it.
      maxWaitTimeInMs: 20,
      maxBytesPerPartition: 4 * 1024 * 1024,
      maxBytes: 32 * 1024 * 1024,
      // A crash ends this consumer; the next read starts another (see the module comment).
      retry: { retries: 5, initialRetryTime: 200, restartOnFailure: async () => false },
    });
    let joinedOnce: { resolve(): void; reject(error: Error): void } | undefined;
    const reader: Reader = {
      consumer,
      topics: new Set(topics),
      joined: new Promise<void>((resolve, reject) => (joinedOnce = { resolve, reject })),
      started: Promise.resolve(),
      dead: false,
      lastHeartbeat: Date.now(),
      assigned: new Set(),
    };
    reader.joined.catch(() => undefined);
    const { GROUP_JOIN, HEARTBEAT, CRASH } = consumer.events;
    consumer.on(GROUP_JOIN, (event) => {
      this.stats.joins++;
      reader.assigned = new Set(
        Object.entries(event.payload.memberAssignment).flatMap(([topic, partitions]) => partitions.map((partition) => partitionKey(topic, partition))),
      );
      reader.lastHeartbeat = Date.now();
      // Every join starts from a fresh assignment: positions and pauses are set again.
      if (this.reader === reader) this.applyLanes(reader);
      joinedOnce?.resolve();
    });
    consumer.on(HEARTBEAT, () => (reader.lastHeartbeat = Date.now()));
    consumer.on(CRASH, (event) => {
      reader.dead = true;
      const failure = new KafkaRecordLogError(`the Kafka consumer stopped: ${errorMessage(event.payload.error)}`, { cause: event.payload.error });
      joinedOnce?.reject(failure);
      if (this.reader === reader) this.failPass(failure);
    });
    const started = (async () => {
      await consumer.connect();
      for (const topic of topics) {
        if (reader.dead) return;
        await consumer.subscribe({ topic, fromBeginning: false });
      }
      if (reader.dead) return;
      await consumer.run({
        autoCommit: false,
        // Resolving moves kafkajs's fetch position on; with autoCommit off nothing is committed.
        eachBatchAutoResolve: true,
        partitionsConsumedConcurrently: 4,
        eachBatch: async (payload) => this.onBatch(reader, payload),
      });
    })();
    reader.started = started.catch(ignore);
    started.catch((error: unknown) => {
      reader.dead = true;
      joinedOnce?.reject(new KafkaRecordLogError(`cannot start a Kafka consumer: ${errorMessage(error)}`, { cause: error }));
    });
    this.reader = reader;
    return reader;
  }

  private async dropReader(): Promise<void> {
    const reader = this.reader;
    this.reader = undefined;
    if (!reader) return;
    reader.dead = true;
    // A consumer disconnected while its run() is still joining goes on to fetch for ever (kafkajs's
    // runner only stops once running, and starts running when the join ends): disconnect after.
    await reader.started;
    await reader.consumer.disconnect().catch(ignore);
  }

  /**
   * Closes the consumer once no pass has used it for `idleCloseMs`. A timer can fire a few ms
   * before `Date.now()` says the time is up (it counts from the loop's cached clock), so one that
   * finds the consumer not idle long enough waits out the rest instead of leaving it open for good;
   * a pass under way schedules again when it ends.
   */
  private scheduleIdleClose(delayMs = this.settings.idleCloseMs): void {
    clearTimeout(this.idleTimer);
    if (!this.reader || this.closed) return;
    this.idleTimer = setTimeout(() => {
      if (this.passing) return;
      const left = this.lastUsed + this.settings.idleCloseMs - Date.now();
      if (this.queue.length) this.scheduleIdleClose();
      else if (left > 0) this.scheduleIdleClose(left);
      else void this.dropReader();
    }, delayMs);
    this.idleTimer.unref();
  }

  /** Pauses every partition but the lanes still reading, and sets each lane's position. */
  private applyLanes(reader: Reader): void {
    const { consumer } = reader;
    consumer.pause([...reader.topics].map((topic) => ({ topic })));
    for (const lane of this.lanes.values()) {
      if (lane.at >= lane.segments.length) continue;
      consumer.seek({ topic: lane.topic, partition: lane.partition, offset: String(lane.position) });
      consumer.resume([{ topic: lane.topic, partitions: [lane.partition] }]);
    }
  }

  private failPass(error: Error): void {
    this.passError = error;
    this.passDone?.();
  }

  /** One pass: the ranges of these reads, merged per partition, read through the consumer. */
  private async pass(requests: ReadRequest[]): Promise<void> {
    this.stats.passes++;
    let abandon!: () => void;
    const abandoned = new Promise<'abandoned'>((resolve) => (abandon = () => resolve('abandoned')));
    this.current = { requests, abandon };
    try {
      await this.passOver(requests, abandoned);
    } finally {
      this.current = undefined;
    }
  }

  private async passOver(requests: ReadRequest[], abandoned: Promise<'abandoned'>): Promise<void> {
    const topics = new Set(requests.flatMap((request) => request.ranges.map((range) => range.topic)));
    const started = Promise.all([
      this.readerFor(topics),
      this.boundsFor(
        topics,
        requests.flatMap((request) => request.ranges),
      ),
    ]);
    started.catch(() => undefined);
    // A join that never completes (no broker) must not hold later reads once these gave up.
    const ready = await Promise.race([started, abandoned]);
    if (ready === 'abandoned') return;
    let [reader] = ready;
    const [, bounds] = ready;
    const held = new Map<string, { low: number; high: number }>();
    for (const [topic, { partitions }] of bounds) {
      for (const [partition, limits] of partitions) held.set(partitionKey(topic, partition), limits);
    }
    if ([...held.keys()].some((key) => !reader.assigned.has(key))) {
      // Partitions were added since the consumer joined: kafkajs would see them only at its next
      // metadata refresh (5 minutes), so a new consumer is joined now.
      const fresh = await Promise.race([this.readerFor(topics, reader), abandoned]);
      if (fresh === 'abandoned') return;
      reader = fresh;
    }

    // Each range within what the partition holds now; ranges of a partition merged when close.
    const byPartition = new Map<string, { topic: string; partition: number; spans: { from: number; to: number }[] }>();
    for (const request of requests) {
      for (const range of request.ranges) {
        const key = partitionKey(range.topic, range.partition);
        const limits = held.get(key);
        if (!limits) continue;
        const from = Math.max(range.from, limits.low);
        const to = Math.min(range.to, limits.high);
        if (from >= to) continue;
        let entry = byPartition.get(key);
        if (!entry) byPartition.set(key, (entry = { topic: range.topic, partition: range.partition, spans: [] }));
        entry.spans.push({ from, to });
      }
    }
    const lanes = new Map<string, Lane>();
    for (const [key, { topic, partition, spans }] of byPartition) {
      spans.sort((a, b) => a.from - b.from);
      const segments: Segment[] = [];
      for (const span of spans) {
        const last = segments[segments.length - 1];
        if (last && span.from <= last.to + this.settings.mergeGap) last.to = Math.max(last.to, span.to);
        else segments.push({ from: span.from, to: span.to, records: [] });
      }
      lanes.set(key, { topic, partition, segments, at: 0, position: segments[0].from });
    }

    if (lanes.size > 0) {
      this.passError = undefined;
      const done = new Promise<void>((resolve) => (this.passDone = resolve));
      this.lanes = lanes;
      if (this.reader === reader) this.applyLanes(reader);
      await Promise.race([done, abandoned]);
      this.passDone = undefined;
      this.lanes = new Map();
      if (!reader.dead) {
        const paused = [...lanes.values()].map((lane) => ({ topic: lane.topic, partitions: [lane.partition] }));
        reader.consumer.pause(paused);
      }
      if (this.passError) throw this.passError;
    }

    for (const request of requests) {
      if (request.settled) continue;
      const out: LoggedRecord[] = [];
      for (const range of request.ranges) {
        const lane = lanes.get(partitionKey(range.topic, range.partition));
        const segment = lane?.segments.find((candidate) => candidate.from < range.to && range.from < candidate.to);
        if (!segment) continue;
        for (let i = lowerBound(segment.records, range.from); i < segment.records.length && segment.records[i].offset < range.to; i++) {
          out.push(segment.records[i]);
        }
      }
      this.settle(request, out);
    }
  }

  private onBatch(reader: Reader, { batch, isStale, isRunning }: EachBatchPayload): void {
    reader.lastHeartbeat = Date.now();
    const lane = this.lanes.get(partitionKey(batch.topic, batch.partition));
    if (!lane || lane.at >= lane.segments.length || this.reader !== reader) return;
    const segment = lane.segments[lane.at];
    for (const message of batch.messages) {
      // A seek made after this batch was fetched makes the rest of it stale.
      if (isStale() || !isRunning()) return;
      const offset = Number(message.offset);
      if (offset < lane.position) continue;
      if (offset >= segment.to) break;
      segment.records.push({
        topic: batch.topic,
        partition: batch.partition,
        offset,
        timestamp: Number(message.timestamp),
        value: message.value === null ? undefined : message.value.toString('utf8'),
      });
      this.stats.recordsRead++;
      lane.position = offset + 1;
    }
    if (isStale()) return;
    // Offsets the batch held but did not deliver (control records) count as read too.
    lane.position = Math.max(lane.position, Math.min(Number(batch.lastOffset()) + 1, segment.to));
    if (lane.position < segment.to) return;
    lane.at++;
    if (lane.at < lane.segments.length) {
      lane.position = lane.segments[lane.at].from;
      reader.consumer.seek({ topic: lane.topic, partition: lane.partition, offset: String(lane.position) });
      return;
    }
    reader.consumer.pause([{ topic: lane.topic, partitions: [lane.partition] }]);
    if ([...this.lanes.values()].every((each) => each.at >= each.segments.length)) this.passDone?.();
  }
}

/** The index of the first record at or after `offset`. */
function lowerBound(records: readonly LoggedRecord[], offset: number): number {
  let lo = 0;
  let hi = records.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (records[mid].offset < offset) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
