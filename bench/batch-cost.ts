/**
 * The cost of one batch (issue 2): DynamoDB requests and posts of the stream handler per batch,
 * against batch size and connection count, with the connections that match the batch held the
 * same. The matching clients are real `ws` connections to the local gateway; the other
 * connections are registered through the real session core (openConnection and the subscribe
 * message) with ids no socket holds, subscribed to devices, locations and types that never appear
 * in a batch, so they never receive a post (which would be a 410) and cost exactly what they cost
 * a lookup: nothing, if the index works.
 */
import WebSocket from 'ws';
import { createDocumentClient } from '../lambdas/adapters/clients';
import { DynamoConnectionStore } from '../lambdas/adapters/dynamo-connections';
import { DynamoSubscriptionIndex } from '../lambdas/adapters/dynamo-subscriptions';
import { handleClientMessage, openConnection, type SessionDeps } from '../lambdas/core/sessions';
import { parseServerFrame, TOPICS, unpackFrame, type Filter } from '../lambdas/core/protocol';
import { LOCAL_AWS, LOCAL_TABLES } from '../local/dynamo';
import type { KafkaRecordInput } from '../local/msk-event';
import { startLocalRuntime } from '../local/runtime';
import { round, sleep } from './stats';
import { prng } from './workload';

/** Options of {@link runBatchCostBench}. */
export interface BatchCostOptions {
  /** Connection counts, ascending. Default 100, 1,000, 10,000. */
  connections?: number[];
  /** Records per batch. Default 10, 100, 1,000. */
  batchSizes?: number[];
  /** Connections that match the batches (real sockets). Default 50. */
  matching?: number;
  /** Measured batches per cell, after one warm-up batch. Default 5. */
  repeats?: number;
  log?: (line: string) => void;
}

/** One cell: a batch size at a connection count. Figures are means per batch. */
export interface BatchCostRow {
  connections: number;
  batchSize: number;
  /** Distinct index keys in the batch. */
  keys: number;
  dynamoCallsPerBatch: number;
  postsPerBatch: number;
  deliveriesPerBatch: number;
  matchedConnections: number;
  durationMs: number;
}

export interface BatchCostReport {
  matching: number;
  hotDevices: number;
  repeats: number;
  rows: BatchCostRow[];
  /** Per batch size: do DynamoDB calls and posts per batch stay the same at every connection count? */
  flat: { batchSize: number; dynamoCalls: number[]; posts: number[]; flat: boolean }[];
  /** Deliveries the stream handler reported and the real clients received (must be equal). */
  deliveriesReported: number;
  deliveriesReceived: number;
  staleOrFailed: number;
  registerSeconds: number[];
}

const HOT_DEVICES = 100;
const HOT_TYPES = ['pump', 'compressor'];
const HOT_LOCATIONS = ['plant-a/line-1', 'plant-a/line-2'];

function hotDevice(i: number) {
  return {
    deviceId: `hot-${String(i).padStart(3, '0')}`,
    deviceType: HOT_TYPES[i % HOT_TYPES.length],
    location: HOT_LOCATIONS[Math.floor(i / (HOT_DEVICES / HOT_LOCATIONS.length))],
  };
}

/** Filters of the matching clients: mostly a few hot devices, some a location or type, one everything. */
function matchingFilter(i: number, count: number, random: () => number): Filter {
  if (i === 0) return {};
  if (i <= Math.max(1, Math.round(count * 0.08))) return { deviceTypes: [HOT_TYPES[i % HOT_TYPES.length]] };
  if (i <= Math.max(2, Math.round(count * 0.18))) return { locations: [HOT_LOCATIONS[i % HOT_LOCATIONS.length]] };
  const ids = new Set<string>();
  const n = 1 + Math.floor(random() * 3);
  while (ids.size < n) ids.add(hotDevice(Math.floor(random() * HOT_DEVICES)).deviceId);
  return { deviceIds: [...ids] };
}

/** Filters of the other connections: devices, locations and types no batch carries. */
function coldFilter(random: () => number): Filter {
  const r = random();
  if (r < 0.05) return { deviceTypes: [`chiller-${Math.floor(random() * 5)}`] };
  if (r < 0.2) return { locations: [`plant-z/line-${Math.floor(random() * 50)}`] };
  const ids = new Set<string>();
  const n = 1 + Math.floor(random() * 3);
  while (ids.size < n) ids.add(`cold-${Math.floor(random() * 10_000)}`);
  return { deviceIds: [...ids] };
}

async function mapLimit<T>(items: readonly T[], limit: number, task: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await task(items[next++]);
    }),
  );
}

/** Runs the batch-cost benchmark on a fresh local runtime. */
export async function runBatchCostBench(options: BatchCostOptions = {}): Promise<BatchCostReport> {
  const counts = [...(options.connections ?? [100, 1000, 10_000])].sort((a, b) => a - b);
  const sizes = options.batchSizes ?? [10, 100, 1000];
  const matching = options.matching ?? 50;
  const repeats = options.repeats ?? 5;
  const log = options.log ?? (() => {});
  const random = prng(3);

  const runtime = await startLocalRuntime({ dashboardPort: 0, wsPort: 0, simulator: false, statusIntervalMs: 0 });
  const doc = createDocumentClient({ endpoint: runtime.dynamoEndpoint, ...LOCAL_AWS });
  const sessions: SessionDeps = {
    connections: new DynamoConnectionStore(doc, LOCAL_TABLES.connections),
    index: new DynamoSubscriptionIndex(doc, LOCAL_TABLES.subscriptions),
  };
  const sockets: WebSocket[] = [];
  let received = 0;
  try {
    for (let i = 0; i < matching; i++) {
      const socket = new WebSocket(runtime.clientUrl, { perMessageDeflate: false });
      await new Promise<void>((resolve, reject) => {
        socket.once('error', reject);
        socket.once('open', () => socket.send(JSON.stringify({ action: 'subscribe', id: 's1', filter: matchingFilter(i, matching, random) })));
        socket.on('message', (data) => {
          const frame = parseServerFrame(data.toString());
          if (frame.type === 'subscribed') resolve();
          else if (frame.type === 'error') reject(new Error(`${frame.code}: ${frame.message}`));
          for (const inner of unpackFrame(frame)) if ('cursor' in inner && inner.cursor) received++;
        });
      });
      sockets.push(socket);
    }

    let registered = matching;
    let nextHot = 0;
    let reported = 0;
    let staleOrFailed = 0;
    const rows: BatchCostRow[] = [];
    const registerSeconds: number[] = [];
    for (const total of counts) {
      const started = Date.now();
      const ids = Array.from({ length: Math.max(0, total - registered) }, (_, i) => `bench-cold-${registered + i}`);
      await mapLimit(ids, 32, async (connectionId) => {
        await openConnection(sessions, connectionId, { sub: 'bench', sites: ['*'], roles: [] });
        const body = JSON.stringify({ action: 'subscribe', id: 's1', filter: coldFilter(random) });
        const { reply } = await handleClientMessage(sessions, connectionId, body);
        if (reply.type !== 'subscribed') throw new Error(`subscribe failed for ${connectionId}: ${JSON.stringify(reply)}`);
      });
      registered = Math.max(registered, total);
      registerSeconds.push(round((Date.now() - started) / 1000, 1));
      log(`batch-cost: ${total} connections (${matching} matching) registered in ${registerSeconds.at(-1)} s`);

      for (const size of sizes) {
        // Every cell and every batch of it sends the same records, so only the connection count
        // differs between cells, and the warm-up batch has read the buckets the others look up
        // (a lookup reads a bucket whole only when its version changed since it last read it).
        const samples: BatchCostRow[] = [];
        for (let rep = 0; rep <= repeats; rep++) {
          nextHot = 0;
          const now = Date.now();
          const records: KafkaRecordInput[] = Array.from({ length: size }, () => {
            const device = hotDevice(nextHot++ % HOT_DEVICES);
            return {
              topic: TOPICS.deviceData,
              partition: 0,
              key: device.deviceId,
              value: { ...device, timestamp: now, status: 'online', metrics: { temperature: 70, pressure: 3 } },
            };
          });
          const calls0 = runtime.indexCalls();
          const posts0 = runtime.postCalls();
          const report = await runtime.publish(records);
          reported += report.deliveries;
          staleOrFailed += report.stale + report.failed;
          // The first batch of a cell warms the path up; it is delivered but not measured.
          if (rep === 0) continue;
          samples.push({
            connections: total,
            batchSize: size,
            keys: report.keys,
            dynamoCallsPerBatch: runtime.indexCalls() - calls0,
            postsPerBatch: runtime.postCalls() - posts0,
            deliveriesPerBatch: report.deliveries,
            matchedConnections: report.connections,
            durationMs: report.durationMs,
          });
        }
        const mean = (pick: (row: BatchCostRow) => number) => round(samples.reduce((sum, row) => sum + pick(row), 0) / samples.length, 1);
        rows.push({
          connections: total,
          batchSize: size,
          keys: mean((r) => r.keys),
          dynamoCallsPerBatch: mean((r) => r.dynamoCallsPerBatch),
          postsPerBatch: mean((r) => r.postsPerBatch),
          deliveriesPerBatch: mean((r) => r.deliveriesPerBatch),
          matchedConnections: mean((r) => r.matchedConnections),
          durationMs: mean((r) => r.durationMs),
        });
        const row = rows.at(-1)!;
        log(
          `batch-cost: N=${total} B=${size}: ${row.dynamoCallsPerBatch} DynamoDB calls, ${row.postsPerBatch} posts, ` +
            `${row.deliveriesPerBatch} deliveries, ${row.durationMs} ms`,
        );
      }
    }

    const deadline = Date.now() + 5000;
    while (received < reported && Date.now() < deadline) await sleep(50);
    const flat = sizes.map((batchSize) => {
      const cells = rows.filter((row) => row.batchSize === batchSize);
      const dynamoCalls = cells.map((row) => row.dynamoCallsPerBatch);
      const posts = cells.map((row) => row.postsPerBatch);
      const same = (values: number[]) => Math.max(...values) - Math.min(...values) <= 0.05 * Math.max(1, Math.min(...values));
      return { batchSize, dynamoCalls, posts, flat: same(dynamoCalls) && same(posts) };
    });
    return {
      matching,
      hotDevices: HOT_DEVICES,
      repeats,
      rows,
      flat,
      deliveriesReported: reported,
      deliveriesReceived: received,
      staleOrFailed,
      registerSeconds,
    };
  } finally {
    for (const socket of sockets) socket.terminate();
    doc.destroy();
    await runtime.stop();
  }
}
