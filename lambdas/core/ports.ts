/**
 * The ports the core needs from the outside world. Adapters in ../adapters implement them over
 * DynamoDB and the API Gateway Management API; tests may implement them in memory.
 */
import type { Principal } from './auth';
import type { SubscriptionEntry } from './fanout';
import type { MetricsBatch } from './metrics';
import type { AlertRecord, AlertStateInfo, AlertStateName, DeviceRecord, NormalisedFilter } from './protocol';

/** A connection as stored. */
export interface ConnectionItem {
  connectionId: string;
  /** Epoch ms. */
  connectedAt: number;
  /** Epoch seconds, DynamoDB TTL. */
  expiresAt: number;
  /** Subject of the token the connection presented (`anonymous` without one). */
  sub: string;
  /** Sites the connection may see, from its token; `['*']` = every site. See {@link Principal}. */
  sites: string[];
  /**
   * Subscriptions by id. A `Map`, because ids are client input: `__proto__` or `constructor` must
   * be an id like any other, not a property of every object.
   */
  subscriptions: ReadonlyMap<string, NormalisedFilter>;
}

/**
 * What one {@link ConnectionStore.change} does to a connection item, all or nothing: takes from
 * each token bucket, and sets or removes one subscription.
 */
export interface ConnectionChange {
  /** Buckets to take from, each rule with the cost of this request. */
  takes: readonly RateRule[];
  /** Sets this subscription; a new id only while the connection holds fewer than `max`. */
  set?: { subscriptionId: string; filter: NormalisedFilter; max: number };
  /** Removes this subscription, which must be held. */
  remove?: { subscriptionId: string };
}

/** Result of {@link ConnectionStore.change}; nothing changed unless `ok`. */
export type ChangeResult =
  | {
      outcome: 'ok';
      /** The filter the set or removed subscription had before. */
      previous?: NormalisedFilter;
      /** Whether the connection held any subscription before. */
      hadSubscriptions: boolean;
    }
  | { outcome: 'gone' }
  | { outcome: 'limited'; bucket: RateRule['bucket'] }
  /** `set` of a new id with `max` already held. */
  | { outcome: 'full' }
  /** `remove` of an id not held. */
  | { outcome: 'missing' };

/**
 * A token bucket kept as the time it is next full (GCRA): a request of `costMs` is allowed when
 * `max(tat, now) + costMs - now <= burstMs`, and moves `tat` there. Rates are per connection.
 */
export interface RateRule {
  /** Name of the bucket, one per kind of cost. */
  bucket: 'messages' | 'indexWrites';
  /** Milliseconds of refill one request uses. */
  costMs: number;
  /** Milliseconds of refill the bucket holds: the burst. */
  burstMs: number;
}

/** Storage of connections and the subscriptions they hold. */
export interface ConnectionStore {
  put(item: ConnectionItem): Promise<void>;
  get(connectionId: string): Promise<ConnectionItem | undefined>;
  /**
   * One conditional write: every take and the subscription change happen together or not at all,
   * so concurrent messages of a connection can neither pass a bucket nor the subscription limit.
   */
  change(connectionId: string, change: ConnectionChange, now: number): Promise<ChangeResult>;
  /** Deletes the connection and returns what was stored, or undefined when it was already gone. */
  delete(connectionId: string): Promise<ConnectionItem | undefined>;
}

/** The subscription index the stream handler looks records up in. */
export interface SubscriptionIndex {
  /** Stores a subscription under the given index keys. */
  put(entries: readonly SubscriptionEntry[], expiresAt: number): Promise<void>;
  /** Removes index items. */
  remove(entries: readonly Pick<SubscriptionEntry, 'indexKey' | 'connectionId' | 'subscriptionId'>[]): Promise<void>;
  /** Every live subscription stored under each key. */
  lookup(keys: readonly string[]): Promise<Map<string, SubscriptionEntry[]>>;
}

/** Result of posting one message to one connection. */
export type PostOutcome = 'ok' | 'gone' | 'failed';

/** The API Gateway Management API, as far as the core needs it. */
export interface Poster {
  /** Posts one text message; retries throttling itself and reports how many retries it made. */
  post(connectionId: string, text: string): Promise<{ outcome: PostOutcome; retries: number; error?: string }>;
}

/** Where invocations add their metrics. */
export interface MetricsSink {
  flush(batch: MetricsBatch): Promise<void>;
}

/** A minimal structured logger (Powertools Logger fits). */
export interface Log {
  debug(message: string, ...extra: Record<string, unknown>[]): void;
  info(message: string, ...extra: Record<string, unknown>[]): void;
  warn(message: string, ...extra: Record<string, unknown>[]): void;
  error(message: string, ...extra: Record<string, unknown>[]): void;
}

/** An alert as stored, with its current state. */
export interface StoredAlert {
  alert: AlertRecord;
  state: AlertStateInfo;
}

/** Alert state storage: one item per alert, low volume. */
export interface AlertStore {
  /**
   * Stores each alert as `open` unless it is already stored, so a record delivered twice never
   * reopens an alert an operator acknowledged. `expiresAt` (epoch seconds) is when it may vanish.
   */
  open(alerts: readonly AlertRecord[], expiresAt: (alert: AlertRecord) => number): Promise<void>;
  get(alertId: string): Promise<StoredAlert | undefined>;
  /**
   * Moves an alert to `next` if its state is one of `from`; resolves with the stored alert after
   * the change, or undefined when the alert is missing or in another state (nothing changed).
   */
  transition(alertId: string, from: readonly AlertStateName[], next: AlertStateInfo): Promise<StoredAlert | undefined>;
  /** Alerts not resolved, newest first, at most `limit`; `before` (epoch ms) keeps only older ones. */
  unresolved(options: { limit: number; before?: number }): Promise<StoredAlert[]>;
}

/** A record as the Kafka log holds it. */
export interface LoggedRecord {
  topic: string;
  partition: number;
  offset: number;
  /** The record's Kafka timestamp, epoch ms. */
  timestamp: number;
  /** The value's text (JSON, as produced); undefined for a record without a value. */
  value: string | undefined;
}

/** A partition and the offsets it holds: from `low` up to, not including, `high`. */
export interface PartitionBounds {
  topic: string;
  partition: number;
  /** The first offset still held. */
  low: number;
  /** The offset the next record will get (the high watermark). */
  high: number;
}

/** Offsets `from` up to, not including, `to` of one partition. */
export interface OffsetRange {
  topic: string;
  partition: number;
  from: number;
  to: number;
}

/**
 * The Kafka log, read by offset: what a resume replays from (Kafka itself through kafkajs, or the
 * local event source's window kept in memory).
 */
export interface RecordLog {
  /** Every partition of these topics, with the offsets each holds. */
  partitions(topics: readonly string[]): Promise<PartitionBounds[]>;
  /**
   * For every partition of these topics, keyed `topic:partition`: the first offset whose timestamp
   * is at or after `time` (epoch ms), or the high watermark when there is none.
   */
  offsetsAt(topics: readonly string[], time: number): Promise<Map<string, number>>;
  /** The records of each range, in offset order within a partition. */
  read(ranges: readonly OffsetRange[]): Promise<LoggedRecord[]>;
}

/** The latest reading of each device, conflated per location. */
export interface LatestReadingsStore {
  /** Stores these readings (at most one per device) as the latest of their location. */
  write(location: string, readings: readonly DeviceRecord[]): Promise<void>;
  /** The latest reading of every device at these locations, or at every location when omitted. */
  read(locations?: readonly string[]): Promise<DeviceRecord[]>;
}
