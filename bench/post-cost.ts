/**
 * The cost of the post path (issue 12), each figure against its baseline in the same run:
 * - CPU µs per post of this process: the lean signed poster, the AWS SDK poster, and an unsigned
 *   POST over the same kind of keep-alive agent (the floor any HTTP client pays);
 * - wall time of one 100-record batch through `processStreamEvent` to 1,000 and 10,000 connections
 *   that all want the same records, with every post answered after ~20 ms (jittered), lean vs SDK.
 * The Management API is a sink in its own process (so its CPU is not counted) that answers 200 to
 * any connection after the configured latency. The index is in memory: its DynamoDB cost is the
 * batch-cost bench's subject, not this one's.
 */
import { fork, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import type { MSKEvent } from 'aws-lambda';
import { createManagementClient } from '../lambdas/adapters/clients';
import { ManagementApiPoster } from '../lambdas/adapters/management-poster';
import { SignedPoster } from '../lambdas/adapters/signed-poster';
import { mapWithConcurrency } from '../lambdas/core/concurrency';
import type { SubscriptionEntry } from '../lambdas/core/fanout';
import { indexKeysForFilter, normaliseFilter } from '../lambdas/core/filter';
import type { Poster, SubscriptionIndex } from '../lambdas/core/ports';
import { TOPICS } from '../lambdas/core/protocol';
import { processStreamEvent } from '../lambdas/core/stream-processor';
import { LOCAL_AWS } from '../local/dynamo';
import { buildMskEvent } from '../local/msk-event';
import { round } from './stats';

/** Options of {@link runPostCostBench}. */
export interface PostCostOptions {
  /** Posts per path per round. Default 2,000. */
  posts?: number;
  /** Rounds, each path once per round in turn. Default 5. */
  rounds?: number;
  /** Connection counts of the batch bench. Default 1,000 and 10,000. */
  audiences?: number[];
  /** Latency of each post in the batch bench, ms. Default 20. */
  postLatencyMs?: number;
  log?: (line: string) => void;
}

/** CPU per post of one path: the range over rounds and the median. */
interface PathCost {
  minUs: number;
  medianUs: number;
  maxUs: number;
}

/** One batch to one audience. */
interface BatchWall {
  connections: number;
  poster: 'lean' | 'sdk';
  wallMs: number;
  cpuMs: number;
  posts: number;
  messages: number;
}

export interface PostCostReport {
  postsPerRound: number;
  rounds: number;
  lean: PathCost;
  sdk: PathCost;
  unsigned: PathCost;
  /** sdk median / lean median. */
  leanVsSdk: number;
  postLatencyMs: number;
  batches: BatchWall[];
  /**
   * One-minute load average at the start and end of the run. On a shared machine a batch's wall
   * time is its CPU divided by the share of a core it gets, so wall times only compare in one run.
   */
  loadAverage: [start: number, end: number];
}

/** Starts the sink process and resolves with its URL. */
function startSink(latencyMs: number): Promise<{ url: string; child: ChildProcess }> {
  return new Promise((resolve, reject) => {
    const child = fork(__filename, ['--sink', String(latencyMs)], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    child.once('message', (message: { port: number }) => resolve({ url: `http://127.0.0.1:${message.port}/bench`, child }));
    child.once('exit', (code) => reject(new Error(`post sink exited with ${code}`)));
  });
}

/** An unsigned POST over a keep-alive agent: the floor of the HTTP client itself. */
function unsignedPoster(url: string): Poster {
  const target = new URL(url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
  return {
    post: (connectionId, text) =>
      new Promise((resolve, reject) => {
        const body = Buffer.from(text);
        const req = http.request({
          agent,
          method: 'POST',
          hostname: target.hostname,
          port: target.port,
          path: `${target.pathname}/@connections/${encodeURIComponent(connectionId)}`,
          headers: { 'content-type': 'application/octet-stream', 'content-length': body.length },
        });
        req.on('error', reject);
        req.on('response', (res) => {
          res.resume();
          res.on('end', () => resolve({ outcome: 'ok', retries: 0 }));
        });
        req.end(body);
      }),
  };
}

async function cpuPerPost(poster: Poster, posts: number, text: string): Promise<number> {
  const ids = Array.from({ length: posts }, (_, i) => `conn${String(i).padStart(6, '0')}AA=`);
  const before = process.cpuUsage();
  await mapWithConcurrency(ids, 32, async (id) => {
    const result = await poster.post(id, text);
    if (result.outcome !== 'ok') throw new Error(`post failed: ${result.outcome} ${result.error ?? ''}`);
  });
  const used = process.cpuUsage(before);
  return (used.user + used.system) / posts;
}

const summarise = (values: number[]): PathCost => {
  const sorted = [...values].sort((a, b) => a - b);
  return { minUs: round(sorted[0], 1), medianUs: round(sorted[Math.floor(sorted.length / 2)], 1), maxUs: round(sorted[sorted.length - 1], 1) };
};

/** An index in memory holding `connections` subscriptions to everything. */
function everythingIndex(connections: number): SubscriptionIndex {
  const filter = normaliseFilter({});
  const [indexKey] = indexKeysForFilter(filter);
  const entries: SubscriptionEntry[] = Array.from({ length: connections }, (_, i) => ({
    indexKey,
    connectionId: `conn${String(i).padStart(6, '0')}AA=`,
    subscriptionId: 's1',
    filter,
  }));
  return {
    put: async () => {},
    remove: async () => {},
    lookup: async (keys) => new Map(keys.includes(indexKey) ? [[indexKey, entries]] : []),
  };
}

function batchEvent(records: number): MSKEvent {
  const now = Date.now();
  return buildMskEvent(
    Array.from({ length: records }, (_, i) => ({
      topic: TOPICS.deviceData,
      key: `pump-${i % 50}`,
      partition: 0,
      value: {
        deviceId: `pump-${i % 50}`,
        deviceType: 'pump',
        location: 'plant-a/line-1',
        timestamp: now,
        status: 'online',
        metrics: { temperature: 70 + (i % 7), pressure: 3 + (i % 3) / 10 },
      },
    })),
  );
}

/** Runs the post-cost bench. */
export async function runPostCostBench(options: PostCostOptions = {}): Promise<PostCostReport> {
  const log = options.log ?? (() => {});
  const posts = options.posts ?? 2000;
  const rounds = options.rounds ?? 5;
  const latency = options.postLatencyMs ?? 20;
  const text = JSON.stringify({ type: 'batch', messages: Array.from({ length: 10 }, (_, i) => ({ type: 'device_data', n: i, pad: 'x'.repeat(100) })) });

  const loadAtStart = round(os.loadavg()[0], 1);
  const fast = await startSink(0);
  const slow = await startSink(latency);
  try {
    const sdkClient = createManagementClient(fast.url, LOCAL_AWS, 256);
    const leanClient = createManagementClient(fast.url, LOCAL_AWS, 256);
    const paths: [keyof Pick<PostCostReport, 'lean' | 'sdk' | 'unsigned'>, Poster][] = [
      ['lean', new SignedPoster(leanClient)],
      ['sdk', new ManagementApiPoster(sdkClient)],
      ['unsigned', unsignedPoster(fast.url)],
    ];
    // Warm-up: JIT, sockets, signing key.
    for (const [, poster] of paths) await cpuPerPost(poster, 500, text);
    const samples = { lean: [] as number[], sdk: [] as number[], unsigned: [] as number[] };
    for (let round = 0; round < rounds; round++) {
      for (const [name, poster] of paths) samples[name].push(await cpuPerPost(poster, posts, text));
      log(`post-cost: round ${round + 1}: ${paths.map(([name]) => `${name} ${Math.round(samples[name][round])} µs`).join(', ')}`);
    }
    sdkClient.destroy();
    leanClient.destroy();

    const batches: BatchWall[] = [];
    for (const connections of options.audiences ?? [1000, 10_000]) {
      const index = everythingIndex(connections);
      for (const kind of ['lean', 'sdk'] as const) {
        const client = createManagementClient(slow.url, LOCAL_AWS, 512);
        const poster = kind === 'lean' ? new SignedPoster(client) : new ManagementApiPoster(client);
        // The first batch opens the sockets, as a cold container's would; the second is measured.
        let last: BatchWall | undefined;
        for (let i = 0; i < 2; i++) {
          const before = process.cpuUsage();
          const started = performance.now();
          const { report } = await processStreamEvent(batchEvent(100), { index, poster, removeConnection: async () => undefined });
          const used = process.cpuUsage(before);
          if (report.failed || report.stale) throw new Error(`batch to ${connections}: ${report.failed} failed, ${report.stale} stale`);
          last = {
            connections,
            poster: kind,
            wallMs: round(performance.now() - started, 1),
            cpuMs: round((used.user + used.system) / 1000, 1),
            posts: report.posts,
            messages: report.messages,
          };
        }
        batches.push(last!);
        log(`post-cost: one batch to ${connections} connections at ${latency} ms (${kind}): ${last!.wallMs} ms wall, ${last!.cpuMs} ms CPU`);
        if (poster instanceof SignedPoster) await poster.destroy();
        client.destroy();
      }
    }
    const report: PostCostReport = {
      postsPerRound: posts,
      rounds,
      lean: summarise(samples.lean),
      sdk: summarise(samples.sdk),
      unsigned: summarise(samples.unsigned),
      leanVsSdk: 0,
      postLatencyMs: latency,
      batches,
      loadAverage: [loadAtStart, round(os.loadavg()[0], 1)],
    };
    report.leanVsSdk = round(report.sdk.medianUs / report.lean.medianUs, 1);
    return report;
  } finally {
    fast.child.kill();
    slow.child.kill();
  }
}

if (process.argv[2] === '--sink') {
  // The sink: 200 to every post after about the given latency (±25 %), as API Gateway would.
  const latency = Number(process.argv[3]);
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const answer = () => res.writeHead(200, { 'content-type': 'application/json' }).end();
      if (latency > 0) setTimeout(answer, latency * (0.75 + Math.random() * 0.5));
      else answer();
    });
  });
  server.keepAliveTimeout = 60_000;
  server.listen(0, '127.0.0.1', () => process.send!({ port: (server.address() as AddressInfo).port }));
  process.on('disconnect', () => process.exit(0));
} else if (require.main === module) {
  runPostCostBench({ log: (line) => console.log(line), ...(process.argv.includes('--quick') ? { posts: 500, rounds: 3 } : {}) }).then(
    (report) => console.log(JSON.stringify(report, null, 2)),
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
}
