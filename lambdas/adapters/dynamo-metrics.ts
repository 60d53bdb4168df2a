/**
 * Metrics aggregated across every Lambda instance in DynamoDB: a container adds its batches up in
 * memory and writes the sum to one of a few shard items in one UpdateItem (ADD is atomic); a
 * scrape sums the shards.
 *
 * Why aggregate: a shard item holds every histogram bucket (2-3 KB), and an update is billed on
 * the larger of the old and new item, so each write costs 2-3 write units however small the
 * batch. Writing at most once per `flushIntervalMs` per container makes the write rate follow the
 * number of busy containers instead of the number of invocations (docs/deploy.md, "What it costs").
 */
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { QueryCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { DocumentSender } from './lean-dynamo';
import { METRIC, type MetricsBatch } from '../core/metrics';
import type { MetricsSink } from '../core/ports';

/** Partition of the metric items. */
const METRICS_PK = 'metrics';
/** Partition of the status broadcast gate, apart from the summed items. */
const STATUS_PK = 'status';

/** Transport errors raised before a request left this process. */
const NOT_SENT = new Set(['ECONNREFUSED', 'UND_ERR_CONNECT_TIMEOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);

/**
 * Whether a failed write certainly changed nothing: DynamoDB answered it with a 4xx (throttling,
 * validation), or it never reached DynamoDB. A timeout, a reset or a 5xx may follow a write that
 * was applied.
 */
function surelyNotApplied(error: unknown): boolean {
  const status = (error as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode;
  if (typeof status === 'number') return status >= 400 && status < 500;
  return NOT_SENT.has(String((error as NodeJS.ErrnoException | undefined)?.code ?? ''));
}

/** Options of {@link DynamoMetricsStore}. */
export interface DynamoMetricsStoreOptions {
  /** Shard items; more shards, less contention on hot writes. Default 8. */
  shards?: number;
  /**
   * Write at most once per this many ms: batches in between are added up in memory and written
   * with the next flush that finds the interval passed. A batch that moves a gauge
   * (`websocket_connections`) is written at once with everything pending, because a gauge kept as
   * a sum of +1/-1 would drift for good if a recycled container took its change with it; counters
   * lose at most one interval of one container. Default 0: every batch is written (local runtime).
   */
  flushIntervalMs?: number;
  /**
   * Counters are written at least this many ms after the previous write began: those that arrive
   * sooner (or while a write is under way) are written by a timer (so nothing waits for a later
   * flush), with everything else that arrives until then; counters of a store at rest are written
   * at once. Without it the local runtime (interval 0) wrote back to back under a flood of refused
   * messages, and a write per stream batch at 50 batches a second, each write the 2-3 KB shard
   * item: most of the table's work while other users' lookups queued behind them. A gauge's
   * change is never held. Default 100.
   */
  minWriteSpacingMs?: number;
  /** Clock, for tests. Default `Date.now`. */
  now?: () => number;
}

/** {@link MetricsSink} over a DynamoDB table with keys `pk` and `sk`. */
export class DynamoMetricsStore implements MetricsSink {
  calls = 0;
  /** Write capacity units the metric writes consumed, as DynamoDB reports them. */
  writeUnits = 0;
  /** UpdateItem calls that added metrics (the status gate not included). */
  metricWrites = 0;
  private readonly shards: number;
  private readonly flushIntervalMs: number;
  private readonly minWriteSpacingMs: number;
  private readonly now: () => number;
  /** The timer that writes counters held by the spacing. */
  private trailing?: NodeJS.Timeout;
  private pending = new Map<string, number>();
  private lastWriteAt = -Infinity;
  /** The write in flight, if any. */
  private writing?: Promise<void>;
  /** The write that takes what is pending once {@link writing} ends; flushes meanwhile await it. */
  private next?: Promise<void>;

  constructor(
    private readonly doc: DocumentSender,
    private readonly tableName: string,
    options: DynamoMetricsStoreOptions = {},
  ) {
    this.shards = options.shards ?? 8;
    this.flushIntervalMs = options.flushIntervalMs ?? 0;
    this.minWriteSpacingMs = options.minWriteSpacingMs ?? 100;
    this.now = options.now ?? Date.now;
  }

  async flush(batch: MetricsBatch): Promise<void> {
    let movesGauge = false;
    for (const [key, value] of batch.values) {
      this.pending.set(key, (this.pending.get(key) ?? 0) + value);
      if (key === METRIC.connections) movesGauge = true;
    }
    const now = this.now();
    if (this.pending.size === 0 || (!movesGauge && now - this.lastWriteAt < this.flushIntervalMs)) return;
    if (!movesGauge) {
      // A counter's change is not awaited once a write is under way or due soon: a message
      // refused under a flood must not wait for a write round trip, and a counter may lose at most
      // one write anyway. A read from this store writes it first ({@link read}).
      if (this.writing || this.next || this.trailing || now - this.lastWriteAt < this.minWriteSpacingMs) {
        return this.writeLater(Math.max(0, this.lastWriteAt + this.minWriteSpacingMs - now));
      }
      return this.writeNow();
    }
    if (!this.writing) return this.writeNow();
    return this.writeNext();
  }

  /**
   * The write that takes what is pending once the one in flight ends. Flushes that run
   * concurrently (the local runtime's handlers share one store) write one at a time: what arrives
   * while a write is in flight goes in the next one, so a burst of 500 connects is a few writes,
   * not 500 on the same few shard items.
   */
  private writeNext(): Promise<void> {
    this.next ??= (this.writing ?? Promise.resolve())
      .catch(() => {})
      .then(() => {
        this.next = undefined;
        return this.writeNow();
      });
    return this.next;
  }

  /** Writes what is pending after `delayMs`, behind any write under way; at most one timer waits. */
  private writeLater(delayMs: number): void {
    if (this.trailing) return;
    this.trailing = setTimeout(() => {
      this.trailing = undefined;
      if (this.pending.size) this.writeNext().catch(() => {});
    }, delayMs);
    // A process (or a Lambda container) is not kept alive for a counter.
    this.trailing.unref();
  }

  /** Writes everything pending. */
  private async writeNow(): Promise<void> {
    // Taken before the await: no addition is ever written twice.
    const sums = this.pending;
    this.pending = new Map();
    this.lastWriteAt = this.now();
    const run = this.write(sums).catch((error: unknown) => {
      // Kept for the next flush only when DynamoDB surely did not apply it (it answered with a
      // refusal, or the request never left). An ADD whose response was lost may have been
      // applied: adding it again is the retry the client itself refuses, and counted a
      // connection twice (the gauge read 31 with one socket open).
      if (surelyNotApplied(error)) {
        for (const [key, value] of sums) this.pending.set(key, (this.pending.get(key) ?? 0) + value);
      }
      throw error;
    });
    this.writing = run;
    try {
      await run;
    } finally {
      if (this.writing === run) this.writing = undefined;
    }
  }

  private async write(sums: ReadonlyMap<string, number>): Promise<void> {
    const names: Record<string, string> = {};
    const values: Record<string, number> = {};
    const adds: string[] = [];
    let i = 0;
    for (const [key, value] of sums) {
      if (value === 0) continue;
      names[`#m${i}`] = key;
      values[`:v${i}`] = value;
      adds.push(`#m${i} :v${i}`);
      i++;
    }
    if (!adds.length) return;
    this.calls++;
    this.metricWrites++;
    const out = await this.doc.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: { pk: METRICS_PK, sk: `shard-${Math.floor(Math.random() * this.shards)}` },
        UpdateExpression: `ADD ${adds.join(', ')}`,
        ExpressionAttributeNames: names,
        ExpressionAttributeValues: values,
        ReturnConsumedCapacity: 'TOTAL',
      }),
    );
    this.writeUnits += out.ConsumedCapacity?.CapacityUnits ?? 0;
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

  /** Sums every shard: series key to value, after this store's writes under way. */
  async read(): Promise<Map<string, number>> {
    await Promise.allSettled([this.writing, this.next]);
    if (this.pending.size) await this.writeNext().catch(() => {});
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
