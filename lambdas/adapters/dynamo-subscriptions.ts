/**
 * The subscription index over DynamoDB, as bucket items read with BatchGetItem.
 *
 * Every index key (`d#pump-017`, `l#plant-a/line-2`, `*`, ...) owns one bucket item, or a few
 * shards of it for keys that many connections share, and each subscription stored under the key
 * is one attribute of its bucket: `c:<connectionId>#<subscriptionId>` holding the normalised filter
 * and its expiry. A batch's lookup is then one BatchGetItem per 100 buckets instead of one Query
 * per key: for a batch from 1,000 devices, 10 requests instead of 1,000. Cost still grows with the
 * distinct keys of a batch and the subscriptions stored under them, never with the connections.
 *
 * Capacity: an item holds 400 KB, about 1,500 subscriptions of typical size. Device keys have one
 * bucket (1,500 subscribers of one device); broad keys (location, type, level, kind, `*`) have
 * {@link BROAD_SHARDS} shards, spread by connection id; the status key has {@link STATUS_SHARDS}.
 */
import {
  BatchGetCommand,
  ScanCommand,
  UpdateCommand,
  type DynamoDBDocumentClient,
} from '@aws-sdk/lib-dynamodb';
import { backoffDelay } from '../core/backoff';
import { mapWithConcurrency, sleep } from '../core/concurrency';
import type { SubscriptionEntry } from '../core/fanout';
import { INDEX_PREFIX } from '../core/filter';
import { fnv1a } from '../core/hash';
import type { SubscriptionIndex } from '../core/ports';
import type { NormalisedFilter } from '../core/protocol';
import { STATUS_INDEX_KEY } from '../core/status';

/** Shards of a key many connections may share. */
export const BROAD_SHARDS = 16;
/** Shards of the `system_status` recipients key: every subscribed connection is under it. */
export const STATUS_SHARDS = 64;
/** BatchGetItem takes at most 100 keys. */
const BATCH_GET_MAX = 100;
/** Prefix of entry attributes, apart from the key attributes `pk` and `sk`. */
const ENTRY_PREFIX = 'c:';

interface StoredEntry {
  /** The normalised filter. */
  f: NormalisedFilter;
  /** Expiry, epoch seconds: past it the entry is ignored and removed. */
  x: number;
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
  /** Clock, epoch ms. */
  now?: () => number;
}

type Bucket = { pk: string; sk: string };

/** {@link SubscriptionIndex} over a DynamoDB table with keys `pk` (index key) and `sk` (shard). */
export class DynamoSubscriptionIndex implements SubscriptionIndex {
  calls = 0;
  private readonly concurrency: number;
  private readonly now: () => number;

  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly tableName: string,
    options: DynamoSubscriptionIndexOptions = {},
  ) {
    this.concurrency = options.concurrency ?? 8;
    this.now = options.now ?? Date.now;
  }

  async put(entries: readonly SubscriptionEntry[], expiresAt: number): Promise<void> {
    await this.update(entries, (entry) => ({ f: entry.filter, x: expiresAt }) satisfies StoredEntry);
  }

  async remove(entries: readonly Pick<SubscriptionEntry, 'indexKey' | 'connectionId' | 'subscriptionId'>[]): Promise<void> {
    await this.update(entries, undefined);
  }

  async lookup(keys: readonly string[]): Promise<Map<string, SubscriptionEntry[]>> {
    const buckets: Bucket[] = [];
    for (const pk of new Set(keys)) {
      for (let shard = 0; shard < shardsOf(pk); shard++) buckets.push({ pk, sk: String(shard) });
    }
    const chunks: Bucket[][] = [];
    for (let i = 0; i < buckets.length; i += BATCH_GET_MAX) chunks.push(buckets.slice(i, i + BATCH_GET_MAX));
    const nowSeconds = this.now() / 1000;
    const result = new Map<string, SubscriptionEntry[]>();
    const expired: Pick<SubscriptionEntry, 'indexKey' | 'connectionId' | 'subscriptionId'>[] = [];
    await mapWithConcurrency(chunks, this.concurrency, async (chunk) => {
      let pending: Record<string, unknown>[] = chunk;
      for (let attempt = 0; pending.length; attempt++) {
        if (attempt > 0) await sleep(backoffDelay(attempt, { baseMs: 50, capMs: 1000 }));
        if (attempt > 8) throw new Error(`BatchGetItem left ${pending.length} keys unprocessed after retries`);
        this.calls++;
        const out = await this.doc.send(new BatchGetCommand({ RequestItems: { [this.tableName]: { Keys: pending } } }));
        for (const item of out.Responses?.[this.tableName] ?? []) {
          const indexKey = item.pk as string;
          for (const [name, value] of Object.entries(item)) {
            const id = parseAttribute(name);
            if (!id) continue;
            const stored = value as StoredEntry;
            // An entry past its expiry belongs to a connection API Gateway has dropped.
            if (stored.x < nowSeconds) {
              expired.push({ indexKey, ...id });
              continue;
            }
            let list = result.get(indexKey);
            if (!list) result.set(indexKey, (list = []));
            list.push({ indexKey, ...id, filter: stored.f });
          }
        }
        pending = (out.UnprocessedKeys?.[this.tableName]?.Keys ?? []) as Record<string, unknown>[];
      }
    });
    if (expired.length) await this.remove(expired);
    return result;
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

  /** Sets (or, with no value, removes) entries, one UpdateItem per bucket touched. */
  private async update(
    entries: readonly Pick<SubscriptionEntry, 'indexKey' | 'connectionId' | 'subscriptionId'>[],
    valueOf: ((entry: SubscriptionEntry) => StoredEntry) | undefined,
  ): Promise<void> {
    const byBucket = new Map<string, { bucket: Bucket; entries: typeof entries[number][] }>();
    for (const entry of entries) {
      const bucket = { pk: entry.indexKey, sk: shardOf(entry.indexKey, entry.connectionId) };
      const id = `${bucket.pk}\n${bucket.sk}`;
      let group = byBucket.get(id);
      if (!group) byBucket.set(id, (group = { bucket, entries: [] }));
      group.entries.push(entry);
    }
    await mapWithConcurrency([...byBucket.values()], this.concurrency, async ({ bucket, entries: group }) => {
      const names: Record<string, string> = {};
      const values: Record<string, StoredEntry> = {};
      const parts: string[] = [];
      group.forEach((entry, i) => {
        names[`#e${i}`] = attributeOf(entry);
        if (valueOf) {
          values[`:e${i}`] = valueOf(entry as SubscriptionEntry);
          parts.push(`#e${i} = :e${i}`);
        } else {
          parts.push(`#e${i}`);
        }
      });
      this.calls++;
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: bucket,
          UpdateExpression: `${valueOf ? 'SET' : 'REMOVE'} ${parts.join(', ')}`,
          ExpressionAttributeNames: names,
          ...(valueOf ? { ExpressionAttributeValues: values } : {}),
        }),
      );
    });
  }
}
