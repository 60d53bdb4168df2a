/**
 * The fan-out of one MSK batch: decode and validate records, look each distinct index key up
 * once, route records to connections, pace the posts under the quota when asked, build the
 * messages once per distinct record set (connections that get the same records get the same
 * bytes), post with concurrency sized to the audience, and remove connections that are gone.
 */
import type { MSKEvent } from 'aws-lambda';
import { mapWithConcurrency, sleep } from './concurrency';
import { errorMessage } from './errors';
import { createMessageBuilder, groupByRecords, recordSetKey, routeRecords, type SubscriptionEntry } from './fanout';
import { indexKeysForRecord } from './filter';
import { METRIC, MetricsBatch } from './metrics';
import { decodeMskEvent } from './msk';
import type { Pacer } from './pacing';
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
  /**
   * Most posts in flight. A batch runs one post per connection at once up to this cap, so that
   * its wall time stays near one round trip as its audience grows. Default {@link DEFAULT_MAX_CONCURRENCY}.
   */
  concurrency?: number;
  /** Alert state and latest readings: runs before the fan-out, and its returned step after it. */
  batchStep?: BatchStep;
  /** Paces posts under the account quota, conflating telemetry when a batch would pass it. */
  pacer?: Pacer;
  /**
   * Milliseconds left before the invocation times out (Lambda's `getRemainingTimeInMillis`). No
   * post starts once fewer than {@link DEADLINE_RESERVE_MS} remain, so the batch returns in time.
   */
  remainingMs?: () => number;
  /** Waits for the post budget to refill. Default: a timer. */
  sleep?: (ms: number) => Promise<void>;
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
  /** Readings superseded by a newer one of the same device under pacing, never sent. */
  conflated: number;
  /** Connections whose telemetry still waits when the invocation returns (its deadline came). */
  deferred: number;
  /** Connections not posted to because the invocation's deadline came near. */
  unsent: number;
  /** Distinct messages built (each posted to every connection that gets the same records). */
  messages: number;
  durationMs: number;
}

/**
 * Default cap of posts in flight per invocation: 1,000 connections in two round trips, with room
 * left under Lambda's 1,024 file descriptors for the DynamoDB client's sockets.
 */
export const DEFAULT_MAX_CONCURRENCY = 512;

/** Time kept back from the deadline for posts in flight, removals and the metrics flush. */
const DEADLINE_RESERVE_MS = 3000;

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

  const keysByRecord = new Map<StreamRecord, string[]>();
  const keys = new Set<string>();
  for (const record of decoded.records) {
    const recordKeys = indexKeysForRecord(record);
    keysByRecord.set(record, recordKeys);
    for (const key of recordKeys) keys.add(key);
  }
  // The step's writes (new alerts stored as open) and the index lookup go in one round trip: both
  // are done before the first post, which is all the step needs.
  const [afterFanout, index] = await Promise.all([
    deps.batchStep?.(decoded.records),
    keys.size ? deps.index.lookup([...keys]) : new Map<string, SubscriptionEntry[]>(),
  ]);
  // Sites are checked here too: an entry matches only records of the sites it names (filter.ts
  // matchesFilter), so a stale entry, or one without sites, delivers nothing of another site.
  const routed = routeRecords(decoded.records, (record) => keysByRecord.get(record) ?? [], index);
  const postTime = now();
  let deliveries = 0;
  let attempts = 0;
  const gone = new Set<string>();
  let posts = 0;
  let failed = 0;
  let retries = 0;
  let unsent = 0;
  let built = 0;
  const cap = deps.concurrency ?? DEFAULT_MAX_CONCURRENCY;
  const nearDeadline = () => deps.remainingMs !== undefined && deps.remainingMs() < DEADLINE_RESERVE_MS;

  /** Posts each connection its records; `sending` lists connections in the order to serve them. */
  const postRound = async (sending: ReadonlyMap<string, readonly StreamRecord[]>, at: number) => {
    const build = createMessageBuilder(at);
    for (const [, records] of sending) {
      deliveries += records.length;
      for (const record of records) metrics.observe(METRIC.pushLatency, Math.max(0, at - record.data.timestamp) / 1000);
    }
    // Built once per distinct record set, just before its first post: memory stays at the
    // messages under way, and 1,000 connections that get the same records cost one build.
    const audiences = groupByRecords(sending);
    const texts = new Array<string[] | undefined>(audiences.length);
    const pending = audiences.map((audience) => audience.connectionIds.length);
    const work: [connectionId: string, audience: number][] = [];
    audiences.forEach((audience, i) => audience.connectionIds.forEach((id) => work.push([id, i])));
    // Grouping must not push the pacer's first (connections with alerts) behind telemetry.
    const order = new Map([...sending.keys()].map((id, i) => [id, i]));
    work.sort((x, y) => order.get(x[0])! - order.get(y[0])!);

    // Concurrent across connections, in order within one: a client sees records in stream order.
    await mapWithConcurrency(work, Math.min(cap, work.length), async ([connectionId, audience]) => {
      if (nearDeadline()) {
        unsent++;
        if (--pending[audience] === 0) texts[audience] = undefined;
        return;
      }
      let messages = texts[audience];
      if (!messages) {
        texts[audience] = messages = build(audiences[audience].records);
        built++;
      }
      // The last connection of an audience lets its messages go.
      if (--pending[audience] === 0) texts[audience] = undefined;
      for (const text of messages) {
        attempts++;
        const result = await deps.poster.post(connectionId, text);
        retries += result.retries;
        if (result.outcome === 'ok') posts++;
        else if (result.outcome === 'gone') {
          // Its remaining messages are not worth a request.
          gone.add(connectionId);
          deps.pacer?.forget(connectionId);
          return;
        } else {
          failed++;
          deps.log?.warn('post failed', { connectionId, error: result.error });
        }
      }
    });
  };

  const pacer = deps.pacer;
  let conflated = 0;
  if (!pacer) await postRound(routed, postTime);
  else {
    const plan = pacer.plan(routed, recordSetKey);
    conflated += plan.conflated;
    await postRound(plan.send, postTime);
    // Telemetry that had to wait goes out as the budget refills, before the invocation returns:
    // meanwhile the next batch grows, and conflation keeps what it brings to one reading per
    // device. Nothing is left behind for a stream that then goes quiet.
    const wait = deps.sleep ?? sleep;
    while (pacer.waiting && !nearDeadline()) {
      await wait(pacer.budget.msUntil(Math.min(pacer.waiting, Math.ceil(pacer.budget.perSecond / 10))));
      // Planned posts leave the backlog: none is planned that the deadline would then drop.
      if (nearDeadline()) break;
      const next = pacer.plan(new Map(), recordSetKey);
      conflated += next.conflated;
      await postRound(next.send, now());
    }
  }
  if (unsent) deps.log?.warn('deadline near: connections left without their records', { unsent });

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
    // Each removal on its own: one that fails (its item stays until TTL or the next 410) must not
    // lose the gauge's -1 of the others.
    const removed = await mapWithConcurrency([...gone], 8, (id) =>
      deps.removeConnection(id, entriesOf.get(id) ?? []).catch((error: unknown) => {
        deps.log?.warn('gone connection not removed', { connectionId: id, error: errorMessage(error) });
        return undefined;
      }),
    );
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
    conflated,
    deferred: pacer?.waiting ?? 0,
    unsent,
    messages: built,
    durationMs: Math.round(durationMs * 100) / 100,
  };
  return { report, metrics };
}
