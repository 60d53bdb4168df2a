/**
 * A resume's replay is posted under the account's post quota: the subscribe route's follow-ups
 * draw from the same budget the stream paces under (lambdas/handlers/message.ts `budget`), one
 * token a post, waiting for the refill. The stores are real (dynalite); the clock and the
 * Management API are the test's, since what is under test is when each post is allowed to go.
 */
import { createDocumentClient } from '../../lambdas/adapters/clients';
import { DynamoAlertStore } from '../../lambdas/adapters/dynamo-alerts';
import { DynamoLatestReadings } from '../../lambdas/adapters/dynamo-latest';
import { DynamoMetricsStore } from '../../lambdas/adapters/dynamo-metrics';
import { PostBudget } from '../../lambdas/core/pacing';
import type { Poster } from '../../lambdas/core/ports';
import { parseServerFrame } from '../../lambdas/core/protocol';
import { replayAfter } from '../../lambdas/core/replay';
import { createConnectHandler, type ConnectDeps } from '../../lambdas/handlers/connect';
import { createMessageHandler } from '../../lambdas/handlers/message';
import { LOCAL_AWS, LOCAL_TABLES, createTables, startDynalite } from '../../local/dynamo';
import { connectEvent, messageEvent } from '../../local/apigw-events';
import { MemoryRecordLog } from '../../local/memory-log';
import { buildMskEvent } from '../../local/msk-event';
import { awsSource } from '../support/apigw';
import { deviceRecord } from '../support/records';
import { localSessionStores } from '../support/stores';

const log = { debug() {}, info() {}, warn() {}, error() {} };
let dynamo: Awaited<ReturnType<typeof startDynalite>>;
let doc: ReturnType<typeof createDocumentClient>;
let deps: ConnectDeps;
const recordLog = new MemoryRecordLog();

beforeAll(async () => {
  dynamo = await startDynalite();
  await createTables(dynamo.endpoint);
  doc = createDocumentClient({ endpoint: dynamo.endpoint, ...LOCAL_AWS });
  deps = {
    sessions: {
      ...localSessionStores(doc),
      snapshot: { latest: new DynamoLatestReadings(doc, LOCAL_TABLES.latest), alerts: new DynamoAlertStore(doc, LOCAL_TABLES.alerts) },
      replay: (request) => replayAfter(recordLog, request),
    },
    metrics: new DynamoMetricsStore(doc, LOCAL_TABLES.metrics, { flushIntervalMs: 60_000 }),
    log,
  };
  // Enough readings for about 40 frames of 32 KB after the cursor.
  const offsets = new Map<string, number>();
  for (let i = 0; i < 5000; i += 500) {
    recordLog.append(buildMskEvent(Array.from({ length: 500 }, (_, j) => ({ topic: 'device-data', partition: 0, value: deviceRecord(`pump-${(i + j) % 50}`) })), {}, offsets));
  }
});

afterAll(async () => {
  doc.destroy();
  await new Promise((resolve) => dynamo.server.close(resolve));
});

/** Subscribes with a resume from offset 0 and returns the follow-ups' post times on the test's clock. */
async function resume(id: string, budget?: PostBudget, clock = { now: 0 }) {
  const posts: { at: number; type: string }[] = [];
  const poster: Poster = {
    post: async (_connectionId, text) => {
      posts.push({ at: clock.now, type: parseServerFrame(text).type });
      return { outcome: 'ok', retries: 0 };
    },
  };
  const source = awsSource(id);
  await createConnectHandler(deps)(connectEvent(source));
  const handler = createMessageHandler({ ...deps, poster, budget, sleep: async (ms) => void (clock.now += ms) });
  const body = JSON.stringify({ action: 'subscribe', id: 'r', filter: { types: ['device_data'] }, resume: { 'device-data:0': 0 } });
  await handler(messageEvent(source, 'subscribe', body));
  return posts;
}

it('posts a replay no faster than the budget refills, in order, ending with resumed', async () => {
  const clock = { now: 0 };
  const posts = await resume('PaceA0Q=', new PostBudget(10, () => clock.now), clock);
  const followUps = posts.slice(1);
  expect(posts[0].type).toBe('subscribed');
  expect(followUps.length).toBeGreaterThan(30);
  expect(followUps.at(-1)!.type).toBe('resumed');
  // The reply goes at once; the follow-ups take the bucket's 10, then 10 a second.
  for (let i = 0; i < followUps.length; i++) expect(followUps[i].at).toBeGreaterThanOrEqual(Math.max(0, (i - 10) * 100) - 1);
  expect(clock.now).toBeGreaterThanOrEqual((followUps.length - 10) * 100 - 1);
});

it('without a budget posts them back to back', async () => {
  const posts = await resume('PaceB0Q=');
  expect(posts.length).toBeGreaterThan(30);
  expect(posts.every((post) => post.at === 0)).toBe(true);
});
