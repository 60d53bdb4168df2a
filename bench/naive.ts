/**
 * The naive baseline: the usual API Gateway WebSocket design, as in the common AWS sample
 * (simple-websockets-chat-app's sendmessage). On every batch it Scans the whole connections table,
 * checks every record against every connection's subscriptions, and posts each record to each
 * matching connection with its own PostToConnection call. A connection found gone (410) is
 * deleted, as the sample does.
 *
 * It is built from the same adapters as the product (the DynamoDB document client, the
 * ManagementApiPoster over the real SDK Management API client) and the same protocol and filter
 * semantics, so that it delivers the same records; it deliberately does not use the fan-out core's
 * index, routing or frame packing, since those are what is being compared.
 */
import type { MSKEvent } from 'aws-lambda';
import { DeleteCommand, ScanCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { ManagementApiPoster } from '../lambdas/adapters/management-poster';
import { matchesFilter } from '../lambdas/core/filter';
import { decodeMskEvent } from '../lambdas/core/msk';
import type { ConnectionItem } from '../lambdas/core/ports';
import { recordFrame } from '../lambdas/core/protocol';

/** What one naive batch did. */
export interface NaiveReport {
  records: number;
  /** Connections scanned. */
  connections: number;
  /** Record deliveries attempted (one record to one connection). */
  deliveries: number;
  /** PostToConnection calls that succeeded. */
  posts: number;
  /** Scan pages read. */
  scanCalls: number;
  stale: number;
  failed: number;
  /** Deliveries not attempted because the run's deadline had passed. */
  skipped: number;
  durationMs: number;
}

/** Dependencies of {@link createNaiveStreamHandler}. */
export interface NaiveDeps {
  doc: DynamoDBDocumentClient;
  connectionsTable: string;
  poster: Pick<ManagementApiPoster, 'post'>;
  /** Concurrent posts; the same bound the fan-out uses. Default 32. */
  concurrency?: number;
  /** Epoch ms after which no further post is attempted (the harness stops a run that fell behind). */
  deadline?: () => number;
}

/** Counters over every batch the handler ran. */
export interface NaiveTotals {
  batches: number;
  scanCalls: number;
  posts: number;
  deliveries: number;
  skipped: number;
}

/** A naive stream handler: `(event: MSKEvent) => Promise<NaiveReport>`, plus its totals. */
export function createNaiveStreamHandler(deps: NaiveDeps): ((event: MSKEvent) => Promise<NaiveReport>) & { totals: NaiveTotals } {
  const totals: NaiveTotals = { batches: 0, scanCalls: 0, posts: 0, deliveries: 0, skipped: 0 };
  const limit = deps.concurrency ?? 32;

  const handler = async (event: MSKEvent): Promise<NaiveReport> => {
    const started = performance.now();
    const { records } = decodeMskEvent(event);

    const connections: ConnectionItem[] = [];
    let scanCalls = 0;
    let start: Record<string, unknown> | undefined;
    do {
      scanCalls++;
      const out = await deps.doc.send(new ScanCommand({ TableName: deps.connectionsTable, ExclusiveStartKey: start }));
      connections.push(...((out.Items ?? []) as ConnectionItem[]));
      start = out.LastEvaluatedKey;
    } while (start);

    const jobs: { connectionId: string; text: string }[] = [];
    const now = Date.now();
    for (const record of records) {
      const text = JSON.stringify(recordFrame(record, now));
      for (const connection of connections) {
        const filters = Object.values(connection.subscriptions ?? {});
        if (filters.some((filter) => matchesFilter(filter, record))) jobs.push({ connectionId: connection.connectionId, text });
      }
    }

    let posts = 0;
    let failed = 0;
    let skipped = 0;
    const gone = new Set<string>();
    let next = 0;
    const worker = async () => {
      while (next < jobs.length) {
        const job = jobs[next++];
        if (deps.deadline && Date.now() > deps.deadline()) {
          skipped++;
          continue;
        }
        if (gone.has(job.connectionId)) continue;
        const result = await deps.poster.post(job.connectionId, job.text);
        if (result.outcome === 'ok') posts++;
        else if (result.outcome === 'gone') gone.add(job.connectionId);
        else failed++;
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, jobs.length)) }, worker));
    for (const connectionId of gone) {
      await deps.doc.send(new DeleteCommand({ TableName: deps.connectionsTable, Key: { connectionId } }));
    }

    totals.batches++;
    totals.scanCalls += scanCalls;
    totals.posts += posts;
    totals.deliveries += jobs.length - skipped;
    totals.skipped += skipped;
    return {
      records: records.length,
      connections: connections.length,
      deliveries: jobs.length - skipped,
      posts,
      scanCalls,
      stale: gone.size,
      failed,
      skipped,
      durationMs: Math.round((performance.now() - started) * 100) / 100,
    };
  };
  return Object.assign(handler, { totals });
}
