/**
 * Metrics aggregated across every Lambda instance in DynamoDB: each invocation adds its batch to
 * one of a few shard items in one UpdateItem (ADD is atomic), and a scrape sums the shards.
 */
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { QueryCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { MetricsBatch } from '../core/metrics';
import type { MetricsSink } from '../core/ports';

/** Partition of the metric items. */
const METRICS_PK = 'metrics';
/** Partition of the status broadcast gate, apart from the summed items. */
const STATUS_PK = 'status';

/** Options of {@link DynamoMetricsStore}. */
export interface DynamoMetricsStoreOptions {
  /** Shard items; more shards, less contention on hot writes. Default 8. */
  shards?: number;
}

/** {@link MetricsSink} over a DynamoDB table with keys `pk` and `sk`. */
export class DynamoMetricsStore implements MetricsSink {
  calls = 0;
  private readonly shards: number;

  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly tableName: string,
    options: DynamoMetricsStoreOptions = {},
  ) {
    this.shards = options.shards ?? 8;
  }

  async flush(batch: MetricsBatch): Promise<void> {
    if (batch.isEmpty) return;
    const names: Record<string, string> = {};
    const values: Record<string, number> = {};
    const adds: string[] = [];
    let i = 0;
    for (const [key, value] of batch.values) {
      names[`#m${i}`] = key;
      values[`:v${i}`] = value;
      adds.push(`#m${i} :v${i}`);
      i++;
    }
    this.calls++;
    await this.doc.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: { pk: METRICS_PK, sk: `shard-${Math.floor(Math.random() * this.shards)}` },
        UpdateExpression: `ADD ${adds.join(', ')}`,
        ExpressionAttributeNames: names,
        ExpressionAttributeValues: values,
      }),
    );
  }

  /**
   * Claims the next `system_status` broadcast: true for exactly one caller per interval, across
   * every Lambda instance (a conditional write decides).
   */
  async claimStatusSlot(now: number, intervalMs: number): Promise<boolean> {
    this.calls++;
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: STATUS_PK, sk: 'gate' },
          UpdateExpression: 'SET lastAt = :now',
          ConditionExpression: 'attribute_not_exists(lastAt) OR lastAt <= :cutoff',
          ExpressionAttributeValues: { ':now': now, ':cutoff': now - intervalMs },
        }),
      );
      return true;
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) return false;
      throw error;
    }
  }

  /** Sums every shard: series key to value. */
  async read(): Promise<Map<string, number>> {
    const totals = new Map<string, number>();
    let start: Record<string, unknown> | undefined;
    do {
      this.calls++;
      const out = await this.doc.send(
        new QueryCommand({
          TableName: this.tableName,
          KeyConditionExpression: 'pk = :pk',
          ExpressionAttributeValues: { ':pk': METRICS_PK },
          ConsistentRead: true,
          ExclusiveStartKey: start,
        }),
      );
      for (const item of out.Items ?? []) {
        for (const [key, value] of Object.entries(item)) {
          if (key === 'pk' || key === 'sk' || typeof value !== 'number') continue;
          totals.set(key, (totals.get(key) ?? 0) + value);
        }
      }
      start = out.LastEvaluatedKey;
    } while (start);
    return totals;
  }
}
