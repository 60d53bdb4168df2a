/**
 * The subscription index over DynamoDB, as bucket items read with BatchGetItem.
 *
 * Every index key (`d#pump-017`, `l#plant-a/line-2`, `*`, ...) owns one bucket item, or a few
 * shards of it for keys that many connections share, and each subscription stored under the key
 * is one attribute of its bucket: `c:<connectionId>#<subscriptionId>` holding the filter in the
 * bounded form of {@link compactFilter} (at most about 2 KB plus the connection's sites, however
 * large the filter) and its expiry. A batch's lookup is then one BatchGetItem per 100 buckets instead of one Query
 * per key: for a batch from 1,000 devices, 10 requests instead of 1,000. Cost still grows with the
 * distinct keys of a batch and the subscriptions stored under them, never with the connections.
 *
 * Capacity: an item holds 400 KB, about 2,000 subscriptions of typical size. Device keys have one
 * bucket; broad keys (location, type, level, kind, `*`) have {@link BROAD_SHARDS} shards, spread by
 * connection id; the status key has {@link STATUS_SHARDS}. A full bucket spills into overflow items
 * (`<shard>.1`, `<shard>.2`, ...) whose count the bucket keeps in `o`, so that no subscriber can
 * fill a key for the others; lookups read overflow items only for buckets that have them.
 *
 * Every write sets the bucket's `expiresAt` (the table's TTL attribute) to the latest expiry any
 * entry written now can have, so a bucket whose connections are all gone is deleted by TTL.
 *
 * Every write of a bucket's entries also sets a new version `v` (a random number: a SET, so that a
 * write whose answer was lost can be sent again, which an ADD could not). An instance keeps the buckets
 * it has read, parsed, with their version, and a lookup first reads only the key attributes, `v`
 * and `o` of each bucket (a projection): the buckets whose version it holds are taken from memory,
 * and only the others are read whole, in a second request. Between subscription changes a
 * stream batch then moves a few bytes a bucket instead of every entry under its keys (about 3 MB at
 * 10,000 broad subscriptions) and parses nothing. Both reads are strongly consistent, so a lookup
 * that starts after a write has returned sees it. A projection costs DynamoDB's read units all
 * the same; what it saves is transfer and the function's CPU. Overflow items are read whole each
 * time.
 */
import {
  BatchGetCommand,
  ScanCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import type { DocumentSender } from './lean-dynamo';
import { backoffDelay } from '../core/backoff';
import { mapWithConcurrency, sleep } from '../core/concurrency';
import type { SubscriptionEntry } from '../core/fanout';
import { INDEX_PREFIX, compactFilter, type IndexedFilter } from '../core/filter';
import { fnv1a } from '../core/hash';
import type { SubscriptionIndex } from '../core/ports';
import { STATUS_INDEX_KEY } from '../core/status';
import { MAX_CONNECTION_SECONDS } from '../config/tables';

/** Shards of a key many connections may share. */
export const BROAD_SHARDS = 16;
/** Shards of the `system_status` recipients key: every subscribed connection is under it. */
export const STATUS_SHARDS = 64;
/** BatchGetItem takes at most 100 keys. */
const BATCH_GET_MAX = 100;
/** Prefix of entry attributes, apart from the key attributes `pk` and `sk`. */
const ENTRY_PREFIX = 'c:';

/** Overflow items one bucket may spill into (`o` is two digits, so its size never changes). */
const MAX_OVERFLOW = 99;
/** A bucket written now outlives every entry written now: API Gateway's limit plus a margin. */
const BUCKET_TTL_SECONDS = MAX_CONNECTION_SECONDS + 30 * 60;

interface StoredEntry {
  /** The filter's non-empty fields, as {@link compactFilter} bounds it. */
  f: Partial<IndexedFilter>;
  /** Expiry, epoch seconds: past it the entry is ignored and removed. */
  x: number;
}

function storedFilter(filter: IndexedFilter): Partial<IndexedFilter> {
  return Object.fromEntries(Object.entries(filter).filter(([, value]) => !Array.isArray(value) || value.length > 0));
}

function filterOf(stored: Partial<IndexedFilter>): IndexedFilter {
  const filter: IndexedFilter = {
    types: stored.types ?? [],
    deviceIds: stored.deviceIds ?? [],
    deviceTypes: stored.deviceTypes ?? [],
    locations: stored.locations ?? [],
    alertLevels: stored.alertLevels ?? [],
    // An entry without sites (written before sites existed) matches nothing.
    sites: stored.sites ?? [],
  };
  if (stored.hashed) filter.hashed = true;
  return filter;
}

/** Whether DynamoDB refused an update because the item would pass 400 KB. */
function isItemTooLarge(error: unknown): boolean {
  return error instanceof Error && /item size/i.test(error.message);
}

function overflowDigits(k: number): string {
  return String(k).padStart(2, '0');
}

/** Number of shards of an index key. */
export function shardsOf(indexKey: string): number {
  if (indexKey.startsWith(INDEX_PREFIX.device)) return 1;
  if (indexKey === STATUS_INDEX_KEY) return STATUS_SHARDS;
  return BROAD_SHARDS;
}

/** The shard (sort key) an entry of a connection goes to. */
export function shardOf(indexKey: string, connectionId: string): string {
  const shards = shardsOf(indexKey);
  if (shards === 1) return '0';
  return String(fnv1a(connectionId) % shards);
}

function attributeOf(entry: Pick<SubscriptionEntry, 'connectionId' | 'subscriptionId'>): string {
  return `${ENTRY_PREFIX}${entry.connectionId}#${entry.subscriptionId}`;
}

function parseAttribute(name: string): { connectionId: string; subscriptionId: string } | undefined {
  if (!name.startsWith(ENTRY_PREFIX)) return undefined;
  // The subscription id has no '#' (see the protocol); the connection id may, in theory.
  const hash = name.lastIndexOf('#');
  return { connectionId: name.slice(ENTRY_PREFIX.length, hash), subscriptionId: name.slice(hash + 1) };
}

/** Options of {@link DynamoSubscriptionIndex}. */
export interface DynamoSubscriptionIndexOptions {
  /** Concurrent requests in one lookup or write. Default 8. */
  concurrency?: number;
  /**
   * Buckets kept parsed in memory with their version, the least recently used dropped first.
   * 0 reads every bucket whole on every lookup. Default {@link DEFAULT_CACHED_BUCKETS}.
   */
  cachedBuckets?: number;
  /** Clock, epoch ms. */
  now?: () => number;
}

type Bucket = { pk: string; sk: string };

/** Buckets an instance keeps parsed by default: every key of a busy plant, a few MB at most. */
const DEFAULT_CACHED_BUCKETS = 4096;

/** What a lookup reads of a bucket first: enough to tell whether the copy in memory is current. */
const HEAD_PROJECTION = { ProjectionExpression: 'pk, sk, #v, #o', ExpressionAttributeNames: { '#v': 'v', '#o': 'o' } };

/** An entry as a lookup returns it, and its expiry (epoch seconds). */
type ReadEntry = { entry: SubscriptionEntry; x: number };

/** A bucket item parsed: its version (undefined for an item no versioned write has touched), its overflow count and its entries. */
interface ParsedBucket {
  v?: number;
  o: number;
  entries: ReadEntry[];
}

/** A bucket version: random, so that two writes' versions differ (lookups compare them for equality only). */
function newVersion(): number {
  return Math.floor(Math.random() * 2 ** 52);
}

function bucketId(bucket: Bucket): string {
  return `${bucket.pk}\n${bucket.sk}`;
}

function parseBucket(item: Record<string, unknown>): ParsedBucket {
  const indexKey = item.pk as string;
  const entries: ReadEntry[] = [];
  for (const [name, value] of Object.entries(item)) {
    const id = parseAttribute(name);
    if (!id) continue;
    const stored = value as StoredEntry;
    entries.push({ entry: { indexKey, ...id, filter: filterOf(stored.f) }, x: stored.x });
  }
  return { v: item.v === undefined ? undefined : Number(item.v), o: Number(item.o ?? 0), entries };
}

/** Writes asked of one bucket that wait for its write in flight. */
interface QueuedWrite {
  /** Sets (else removals). */
  setting: boolean;
  /** Entry attribute to its value (undefined for a removal). */
  writes: Map<string, StoredEntry | undefined>;
  resolve: () => void;
  reject: (error: unknown) => void;
}

/**
 * Most entries one combined write carries: each is at most about 4 KB (a bounded filter and the
 * connection's sites), so a combined write fits an empty overflow item, and its expression stays
 * well under DynamoDB's 4 KB expression limit.
 */
const MAX_COMBINED = 50;

/** {@link SubscriptionIndex} over a DynamoDB table with keys `pk` (index key) and `sk` (shard). */
export class DynamoSubscriptionIndex implements SubscriptionIndex {
  calls = 0;
  private readonly concurrency: number;
  private readonly now: () => number;
  private readonly cachedBuckets: number;
  /** Buckets as last read whole, by {@link bucketId}, least recently used first. */
  private readonly cache = new Map<string, ParsedBucket & { v: number }>();
  /** Per bucket with a write in flight: the writes waiting for it, oldest first (in the map until the bucket is idle). */
  private readonly queues = new Map<string, QueuedWrite[]>();

  constructor(
    private readonly doc: DocumentSender,
    private readonly tableName: string,
    options: DynamoSubscriptionIndexOptions = {},
  ) {
    this.concurrency = options.concurrency ?? 8;
    this.now = options.now ?? Date.now;
    this.cachedBuckets = options.cachedBuckets ?? DEFAULT_CACHED_BUCKETS;
  }

  async put(entries: readonly SubscriptionEntry[], expiresAt: number): Promise<void> {
    await this.update(entries, (entry) => ({ f: storedFilter(compactFilter(entry.filter, entry.indexKey)), x: expiresAt }));
  }

  async remove(entries: readonly Pick<SubscriptionEntry, 'indexKey' | 'connectionId' | 'subscriptionId'>[]): Promise<void> {
    await this.update(entries, undefined);
  }

  async lookup(keys: readonly string[]): Promise<Map<string, SubscriptionEntry[]>> {
    const buckets: Bucket[] = [];
    for (const pk of new Set(keys)) {
      for (let shard = 0; shard < shardsOf(pk); shard++) buckets.push({ pk, sk: String(shard) });
    }
    const nowSeconds = this.now() / 1000;
    const result = new Map<string, SubscriptionEntry[]>();
    const expired: Pick<SubscriptionEntry, 'indexKey' | 'connectionId' | 'subscriptionId'>[] = [];
    const overflow: Bucket[] = [];
    const read = (parsed: ParsedBucket) => {
      for (const { entry, x } of parsed.entries) {
        // An entry past its expiry belongs to a connection API Gateway has dropped.
        if (x < nowSeconds) {
          expired.push({ indexKey: entry.indexKey, connectionId: entry.connectionId, subscriptionId: entry.subscriptionId });
          continue;
        }
        let list = result.get(entry.indexKey);
        if (!list) result.set(entry.indexKey, (list = []));
        list.push(entry);
      }
    };
    for (const [bucket, parsed] of await this.readBuckets(buckets)) {
      read(parsed);
      for (let k = 1; k <= parsed.o; k++) overflow.push({ pk: bucket.pk, sk: `${bucket.sk}.${k}` });
    }
    if (overflow.length) for (const item of await this.getItems(overflow)) read(parseBucket(item));
    if (expired.length) await this.remove(expired);
    return result;
  }

  /**
   * The buckets that exist among `buckets`, parsed: those whose version matches the copy in memory
   * from it, the others read whole (all of them whole when nothing is kept).
   */
  private async readBuckets(buckets: readonly Bucket[]): Promise<[Bucket, ParsedBucket][]> {
    const parsed: [Bucket, ParsedBucket][] = [];
    if (this.cachedBuckets <= 0) {
      for (const item of await this.getItems(buckets)) parsed.push([item as Bucket, parseBucket(item)]);
      return parsed;
    }
    const stale: Bucket[] = [];
    const present = new Set<string>();
    for (const head of await this.getItems(buckets, HEAD_PROJECTION)) {
      const bucket = { pk: head.pk as string, sk: head.sk as string };
      const id = bucketId(bucket);
      present.add(id);
      const cached = this.cache.get(id);
      if (cached && head.v !== undefined && cached.v === Number(head.v)) {
        // Most recently used last; the overflow count is the one just read.
        this.cache.delete(id);
        this.cache.set(id, cached);
        parsed.push([bucket, { ...cached, o: Number(head.o ?? 0) }]);
      } else {
        stale.push(bucket);
      }
    }
    // A bucket gone from the table (its TTL) is gone from memory too.
    for (const bucket of buckets) if (!present.has(bucketId(bucket))) this.cache.delete(bucketId(bucket));
    if (!stale.length) return parsed;
    for (const item of await this.getItems(stale)) {
      const bucket = { pk: item.pk as string, sk: item.sk as string };
      const whole = parseBucket(item);
      parsed.push([bucket, whole]);
      const id = bucketId(bucket);
      this.cache.delete(id);
      if (whole.v === undefined) continue;
      this.cache.set(id, { ...whole, v: whole.v });
      if (this.cache.size > this.cachedBuckets) this.cache.delete(this.cache.keys().next().value!);
    }
    return parsed;
  }

  /** Reads items (or the attributes `projection` names) with BatchGetItem, 100 keys a request, retrying unprocessed keys. */
  private async getItems(buckets: readonly Bucket[], projection?: typeof HEAD_PROJECTION): Promise<Record<string, unknown>[]> {
    const chunks: Bucket[][] = [];
    for (let i = 0; i < buckets.length; i += BATCH_GET_MAX) chunks.push(buckets.slice(i, i + BATCH_GET_MAX));
    const items: Record<string, unknown>[] = [];
    await mapWithConcurrency(chunks, this.concurrency, async (chunk) => {
      let pending: Record<string, unknown>[] = chunk;
      for (let attempt = 0; pending.length; attempt++) {
        if (attempt > 0) await sleep(backoffDelay(attempt, { baseMs: 50, capMs: 1000 }));
        if (attempt > 8) throw new Error(`BatchGetItem left ${pending.length} keys unprocessed after retries`);
        this.calls++;
        // Strongly consistent: a resume's replay ends where the log stood once its index entries
        // were written, so every later record must find them here (core/replay.ts). It costs
        // 1 read unit per 4 KB of a bucket instead of 0.5 (docs/deploy.md "What it costs").
        const out = await this.doc.send(new BatchGetCommand({ RequestItems: { [this.tableName]: { Keys: pending, ConsistentRead: true, ...projection } } }));
        items.push(...(out.Responses?.[this.tableName] ?? []));
        pending = (out.UnprocessedKeys?.[this.tableName]?.Keys ?? []) as Record<string, unknown>[];
      }
    });
    return items;
  }

  /**
   * Removes every expired entry from every bucket: what DynamoDB's TTL would do if entries were
   * items. The local runtime runs it periodically; on AWS lookups remove the expired entries they
   * meet. Returns how many were removed.
   */
  async sweepExpired(nowSeconds = this.now() / 1000): Promise<number> {
    const expired: Pick<SubscriptionEntry, 'indexKey' | 'connectionId' | 'subscriptionId'>[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      this.calls++;
      const out = await this.doc.send(new ScanCommand({ TableName: this.tableName, ExclusiveStartKey: start }));
      for (const item of out.Items ?? []) {
        for (const [name, value] of Object.entries(item)) {
          const id = parseAttribute(name);
          if (id && (value as StoredEntry).x < nowSeconds) expired.push({ indexKey: item.pk as string, ...id });
        }
      }
      start = out.LastEvaluatedKey;
    } while (start);
    if (expired.length) await this.remove(expired);
    return expired.length;
  }

  /**
   * Sets (or, with no value, removes) entries, one UpdateItem per bucket touched. Writes to one
   * bucket go one at a time, in call order: what is asked of a bucket while its write is in
   * flight waits and goes in the next write, with everything else asked of it meanwhile (a group
   * commit). An idle bucket is written at once; under a burst of subscribes that share buckets
   * (the status recipients, a location, a busy device), each bucket costs one write per round
   * trip instead of one per subscribe.
   */
  private async update(
    entries: readonly Pick<SubscriptionEntry, 'indexKey' | 'connectionId' | 'subscriptionId'>[],
    valueOf: ((entry: SubscriptionEntry) => StoredEntry) | undefined,
  ): Promise<void> {
    const byBucket = new Map<string, { bucket: Bucket; writes: Map<string, StoredEntry | undefined> }>();
    for (const entry of entries) {
      const bucket = { pk: entry.indexKey, sk: shardOf(entry.indexKey, entry.connectionId) };
      const id = `${bucket.pk}\n${bucket.sk}`;
      let group = byBucket.get(id);
      if (!group) byBucket.set(id, (group = { bucket, writes: new Map() }));
      group.writes.set(attributeOf(entry), valueOf?.(entry as SubscriptionEntry));
    }
    await mapWithConcurrency([...byBucket], this.concurrency, ([id, { bucket, writes }]) => this.enqueue(id, bucket, writes, valueOf !== undefined));
  }

  /** Queues writes of one bucket behind its write in flight; resolves once they are written. */
  private enqueue(id: string, bucket: Bucket, writes: Map<string, StoredEntry | undefined>, setting: boolean): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const queue = this.queues.get(id);
      if (queue) return void queue.push({ setting, writes, resolve, reject });
      // No write in flight: this one goes at once, and what comes meanwhile queues behind it.
      const fresh: QueuedWrite[] = [{ setting, writes, resolve, reject }];
      this.queues.set(id, fresh);
      void this.drain(id, bucket, fresh);
    });
  }

  /**
   * Writes a bucket's queue until it is empty: each write takes the oldest waiting requests of the
   * same kind (sets, or removals), at most {@link MAX_COMBINED} entries, so that a removal never
   * overtakes a set of the same entry asked for before it.
   */
  private async drain(id: string, bucket: Bucket, queue: QueuedWrite[]): Promise<void> {
    while (queue.length) {
      const setting = queue[0]!.setting;
      const combined = new Map<string, StoredEntry | undefined>();
      let count = 0;
      for (const next of queue) {
        if (next.setting !== setting || (count > 0 && combined.size + next.writes.size > MAX_COMBINED)) break;
        for (const [name, value] of next.writes) combined.set(name, value);
        count++;
      }
      const taken = queue.splice(0, count);
      try {
        await this.writeBucket(bucket, combined, setting);
        for (const request of taken) request.resolve();
      } catch (error) {
        for (const request of taken) request.reject(error);
      }
    }
    this.queues.delete(id);
  }

  /**
   * Sets (or removes) the named entries of one bucket in one UpdateItem; a bucket that is full
   * spills into its overflow items, and a removal also clears the overflow items the bucket has.
   */
  private async writeBucket(bucket: Bucket, writes: Map<string, StoredEntry | undefined>, setting: boolean): Promise<void> {
    const names: Record<string, string> = {};
    const values: Record<string, unknown> = {};
    const parts: string[] = [];
    let i = 0;
    for (const [name, value] of writes) {
      names[`#e${i}`] = name;
      if (setting) {
        values[`:e${i}`] = value;
        parts.push(`#e${i} = :e${i}`);
      } else {
        parts.push(`#e${i}`);
      }
      i++;
    }
    const bucketExpiry = Math.ceil(this.now() / 1000) + BUCKET_TTL_SECONDS;
    const entriesExpression = `${setting ? 'SET' : 'REMOVE'} ${parts.join(', ')}`;
    const send = (key: Bucket, expression: string, extra: Record<string, unknown> = {}, returnOverflow = false, withEntries = true) => {
      this.calls++;
      const allValues = { ...(withEntries ? values : {}), ...extra };
      return this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: key,
          UpdateExpression: expression,
          ExpressionAttributeNames: {
            ...(withEntries ? names : {}),
            ...(returnOverflow ? { '#o': 'o' } : {}),
            ...(allValues[':v'] !== undefined ? { '#v': 'v' } : {}),
          },
          ...(Object.keys(allValues).length ? { ExpressionAttributeValues: allValues } : {}),
          ...(returnOverflow ? { ReturnValues: 'UPDATED_NEW' as const } : {}),
        }),
      );
    };
    // Every write to a bucket keeps `o` present at a fixed size and pushes its TTL out; one that
    // changes its entries gives it a new version, so that lookups read it whole again.
    const base = 'expiresAt = :bx, #o = if_not_exists(#o, :none)';
    const baseValues = { ':bx': bucketExpiry, ':none': overflowDigits(0) };
    const versioned = { ...baseValues, ':v': newVersion() };
    const overflowOf = (out: { Attributes?: Record<string, unknown> }) => Number(out.Attributes?.o ?? 0);
    if (!setting) {
      const out = await send(bucket, `${entriesExpression} SET ${base}, #v = :v`, versioned, true);
      for (let k = 1; k <= overflowOf(out); k++) await send({ pk: bucket.pk, sk: `${bucket.sk}.${k}` }, entriesExpression);
      return;
    }
    try {
      await send(bucket, `${entriesExpression}, ${base}, #v = :v`, versioned, true);
      return;
    } catch (error) {
      if (!isItemTooLarge(error)) throw error;
    }
    const touched = await send(bucket, `SET ${base}`, baseValues, true, false);
    const spilled = overflowOf(touched);
    for (let k = Math.max(1, spilled); k <= MAX_OVERFLOW; k++) {
      if (k > spilled) {
        // Announced before it is written, so a lookup never misses an entry in it.
        this.calls++;
        await this.doc
          .send(
            new UpdateCommand({
              TableName: this.tableName,
              Key: bucket,
              UpdateExpression: 'SET #o = :k',
              ConditionExpression: '#o < :k',
              ExpressionAttributeNames: { '#o': 'o' },
              ExpressionAttributeValues: { ':k': overflowDigits(k) },
            }),
          )
          .catch((error: unknown) => {
            if ((error as Error).name !== 'ConditionalCheckFailedException') throw error;
          });
      }
      try {
        await send({ pk: bucket.pk, sk: `${bucket.sk}.${k}` }, `${entriesExpression}, expiresAt = :bx`, { ':bx': bucketExpiry });
        return;
      } catch (error) {
        if (!isItemTooLarge(error)) throw error;
      }
    }
    throw new Error(`index key ${bucket.pk} is full: ${MAX_OVERFLOW} overflow items`);
  }
}
