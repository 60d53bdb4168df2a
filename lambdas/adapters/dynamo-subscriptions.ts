/** The subscription index over DynamoDB: one item per (index key, connection, subscription). */
import { BatchWriteCommand, QueryCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { backoffDelay, mapWithConcurrency, sleep } from '../core/concurrency';
import type { SubscriptionEntry } from '../core/fanout';
import type { CallCounter, SubscriptionIndex } from '../core/ports';
import type { NormalisedFilter } from '../core/protocol';

interface IndexItem {
  pk: string;
  sk: string;
  connectionId: string;
  subscriptionId: string;
  filter: NormalisedFilter;
  expiresAt: number;
}

/** Options of {@link DynamoSubscriptionIndex}. */
export interface DynamoSubscriptionIndexOptions {
  /** Concurrent Query calls in one lookup. Default 16. */
  queryConcurrency?: number;
  /** Clock, epoch ms. */
  now?: () => number;
}

/** BatchWriteItem takes at most 25 requests. */
const BATCH_WRITE_MAX = 25;

/** {@link SubscriptionIndex} over a DynamoDB table with keys `pk` (index key) and `sk`. */
export class DynamoSubscriptionIndex implements SubscriptionIndex, CallCounter {
  calls = 0;
  private readonly queryConcurrency: number;
  private readonly now: () => number;

  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly tableName: string,
    options: DynamoSubscriptionIndexOptions = {},
  ) {
    this.queryConcurrency = options.queryConcurrency ?? 16;
    this.now = options.now ?? Date.now;
  }

  async put(entries: readonly SubscriptionEntry[], expiresAt: number): Promise<void> {
    await this.write(
      entries.map((entry) => ({
        PutRequest: {
          Item: {
            pk: entry.indexKey,
            sk: `${entry.connectionId}#${entry.subscriptionId}`,
            connectionId: entry.connectionId,
            subscriptionId: entry.subscriptionId,
            filter: entry.filter,
            expiresAt,
          } satisfies IndexItem,
        },
      })),
    );
  }

  async remove(entries: readonly Pick<SubscriptionEntry, 'indexKey' | 'connectionId' | 'subscriptionId'>[]): Promise<void> {
    await this.write(
      entries.map((entry) => ({
        DeleteRequest: { Key: { pk: entry.indexKey, sk: `${entry.connectionId}#${entry.subscriptionId}` } },
      })),
    );
  }

  async lookup(keys: readonly string[]): Promise<Map<string, SubscriptionEntry[]>> {
    const nowSeconds = this.now() / 1000;
    const result = new Map<string, SubscriptionEntry[]>();
    await mapWithConcurrency(keys, this.queryConcurrency, async (key) => {
      const entries: SubscriptionEntry[] = [];
      let start: Record<string, unknown> | undefined;
      do {
        this.calls++;
        const out = await this.doc.send(
          new QueryCommand({
            TableName: this.tableName,
            KeyConditionExpression: 'pk = :pk',
            ExpressionAttributeValues: { ':pk': key },
            ExclusiveStartKey: start,
          }),
        );
        for (const item of (out.Items ?? []) as IndexItem[]) {
          // TTL deletion is lazy (it can lag by days): an expired item is treated as gone.
          if (item.expiresAt < nowSeconds) continue;
          entries.push({
            indexKey: key,
            connectionId: item.connectionId,
            subscriptionId: item.subscriptionId,
            filter: item.filter,
          });
        }
        start = out.LastEvaluatedKey;
      } while (start);
      if (entries.length) result.set(key, entries);
    });
    return result;
  }

  private async write(requests: Record<string, unknown>[]): Promise<void> {
    const chunks: Record<string, unknown>[][] = [];
    for (let i = 0; i < requests.length; i += BATCH_WRITE_MAX) chunks.push(requests.slice(i, i + BATCH_WRITE_MAX));
    await mapWithConcurrency(chunks, 4, async (chunk) => {
      let pending = chunk;
      for (let attempt = 0; pending.length; attempt++) {
        if (attempt > 0) await sleep(backoffDelay(attempt, 50, 2000));
        if (attempt > 8) throw new Error(`BatchWriteItem left ${pending.length} items unprocessed after retries`);
        this.calls++;
        const out = await this.doc.send(
          new BatchWriteCommand({ RequestItems: { [this.tableName]: pending as never } }),
        );
        pending = (out.UnprocessedItems?.[this.tableName] ?? []) as Record<string, unknown>[];
      }
    });
  }
}
