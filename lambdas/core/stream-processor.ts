/**
 * The fan-out of one MSK batch: decode and validate records, look each distinct index key up
 * once, route records to connections, pack each connection's records into as few frames as fit,
 * post with bounded concurrency, and remove connections that are gone.
 */
import type { MSKEvent } from 'aws-lambda';
import { mapWithConcurrency } from './concurrency';
import { createMessageBuilder, routeRecords, type SubscriptionEntry } from './fanout';
import { indexKeysForRecord } from './filter';
import { METRIC, MetricsBatch } from './metrics';
import { decodeMskEvent } from './msk';
import type { Log, Poster, SubscriptionIndex } from './ports';
import type { StreamRecord } from './protocol';
import type { BatchStep } from './stream-state';

/** What the stream processor needs. */
export interface StreamDeps {
  index: SubscriptionIndex;
  poster: Poster;
  /**
   * Removes a connection found gone, with the index items the lookup returned for it; resolves
   * with the removed connection, or undefined when another path removed it first.
   */
  removeConnection: (connectionId: string, entries: readonly SubscriptionEntry[]) => Promise<{ connectedAt: number } | undefined>;
  /** Concurrent posts. Default 32. */
  concurrency?: number;
  /** Alert state and latest readings: runs before the fan-out, and its returned step after it. */
  batchStep?: BatchStep;
  now?: () => number;
  log?: Log;
}

/** What one batch did. */
export interface StreamReport {
  /** Records in the event. */
  records: number;
  valid: number;
  invalid: number;
  /** Distinct index keys looked up. */
  keys: number;
  /** Connections that matched at least one record. */
  connections: number;
  /** Record deliveries (one record to one connection). */
  deliveries: number;
  /** Messages posted successfully (a batch frame counts once). */
  posts: number;
  /** Posts attempted, including failures. */
  attempts: number;
  /** Connections found gone (410) and removed. */
  stale: number;
  /** Posts that failed for another reason after retries. */
  failed: number;
  /** Throttling retries made. */
  retries: number;
  durationMs: number;
}

/** Result of {@link processStreamEvent}: the report and the metrics to flush. */
export interface StreamOutcome {
  report: StreamReport;
  metrics: MetricsBatch;
}

/** Fans one MSK event out. Throws only when the whole batch must be retried (index unreachable). */
export async function processStreamEvent(event: Pick<MSKEvent, 'records'>, deps: StreamDeps): Promise<StreamOutcome> {
  const started = performance.now();
  const now = deps.now ?? Date.now;
  const metrics = new MetricsBatch();
  const decoded = decodeMskEvent(event);
  for (const bad of decoded.invalid) {
    deps.log?.warn('skipped invalid record', { ...bad });
  }
  for (const [topic, counts] of decoded.perTopic) {
    metrics.add(METRIC.streamRecords, counts.valid, { topic, outcome: 'valid' });
    metrics.add(METRIC.streamRecords, counts.invalid, { topic, outcome: 'invalid' });
  }

  const afterFanout = await deps.batchStep?.(decoded.records);

  const keysByRecord = new Map<StreamRecord, string[]>();
  const keys = new Set<string>();
  for (const record of decoded.records) {
    const recordKeys = indexKeysForRecord(record);
    keysByRecord.set(record, recordKeys);
    for (const key of recordKeys) keys.add(key);
  }
  const index = keys.size ? await deps.index.lookup([...keys]) : new Map<string, SubscriptionEntry[]>();
  const routed = routeRecords(decoded.records, (record) => keysByRecord.get(record) ?? [], index);
  const postTime = now();
  const build = createMessageBuilder(postTime);

  let deliveries = 0;
  for (const [, records] of routed) {
    deliveries += records.length;
    for (const record of records) {
      metrics.observe(METRIC.pushLatency, Math.max(0, postTime - record.data.timestamp) / 1000);
    }
  }

  let attempts = 0;
  const gone = new Set<string>();
  let posts = 0;
  let failed = 0;
  let retries = 0;
  // Concurrent across connections, in order within one: a client sees records in stream order.
  await mapWithConcurrency([...routed], deps.concurrency ?? 32, async ([connectionId, records]) => {
    // Packed just before posting: memory stays at the posts under way, not the whole batch.
    for (const text of build(records)) {
      attempts++;
      const result = await deps.poster.post(connectionId, text);
      retries += result.retries;
      if (result.outcome === 'ok') posts++;
      else if (result.outcome === 'gone') {
        // Its remaining messages are not worth a request.
        gone.add(connectionId);
        return;
      } else {
        failed++;
        deps.log?.warn('post failed', { connectionId, error: result.error });
      }
    }
  });

  let stale = 0;
  if (gone.size) {
    const entriesOf = new Map<string, SubscriptionEntry[]>();
    for (const entries of index.values()) {
      for (const entry of entries) {
        if (!gone.has(entry.connectionId)) continue;
        let list = entriesOf.get(entry.connectionId);
        if (!list) entriesOf.set(entry.connectionId, (list = []));
        list.push(entry);
      }
    }
    const removed = await mapWithConcurrency([...gone], 8, (id) => deps.removeConnection(id, entriesOf.get(id) ?? []));
    stale = gone.size;
    const ended = removed.filter((item): item is { connectedAt: number } => item !== undefined);
    // Only the path that actually deleted the item moves the gauge, so it is counted once.
    metrics.add(METRIC.connections, -ended.length);
    for (const item of ended) metrics.observe(METRIC.connectionDuration, Math.max(0, postTime - item.connectedAt) / 1000);
    metrics.add(METRIC.staleConnections, stale);
  }
  await afterFanout?.();
  metrics.add(METRIC.messagesSent, posts);
  const durationMs = performance.now() - started;
  metrics.observe(METRIC.processingDuration, durationMs / 1000);

  const report: StreamReport = {
    records: decoded.records.length + decoded.invalid.length,
    valid: decoded.records.length,
    invalid: decoded.invalid.length,
    keys: keys.size,
    connections: routed.size,
    deliveries,
    posts,
    attempts,
    stale,
    failed,
    retries,
    durationMs: Math.round(durationMs * 100) / 100,
  };
  return { report, metrics };
}
