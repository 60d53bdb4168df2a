/**
 * What a connect and a subscribe cost in DynamoDB, counted at the SDK as the handlers run on
 * dynalite: calls by operation, and round trips (the times the handler went from no call in
 * flight to one). Under a burst of connects these calls are the cost, so the counts may not creep
 * back up: before issue 18 a connect and its first subscribe took about ten calls, in sequence.
 */
import { GetCommand, PutCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { createDocumentClient } from '../../lambdas/adapters/clients';
import { DynamoAlertStore } from '../../lambdas/adapters/dynamo-alerts';
import { DynamoLatestReadings } from '../../lambdas/adapters/dynamo-latest';
import { DynamoMetricsStore } from '../../lambdas/adapters/dynamo-metrics';
import { createConnectHandler, type ConnectDeps } from '../../lambdas/handlers/connect';
import { createMessageHandler } from '../../lambdas/handlers/message';
import { LOCAL_AWS, LOCAL_TABLES, createTables, startDynalite } from '../../local/dynamo';
import { connectEvent, messageEvent } from '../../local/apigw-events';
import { awsSource } from '../support/apigw';
import { localSessionStores } from '../support/stores';

const log = { debug() {}, info() {}, warn() {}, error() {} };

/** Counts the document client's calls by operation, and the round trips among them. */
class CallCounter {
  calls: string[] = [];
  /** The table of each call, in the order of {@link calls}. */
  tables: string[] = [];
  roundTrips = 0;
  private inFlight = 0;

  constructor(doc: DynamoDBDocumentClient) {
    doc.middlewareStack.add(
      (next, context) => async (args) => {
        this.calls.push(String(context.commandName).replace(/Command$/, ''));
        this.tables.push(String((args.input as { TableName?: string }).TableName ?? ''));
        if (this.inFlight++ === 0) this.roundTrips++;
        try {
          return await next(args);
        } finally {
          this.inFlight--;
        }
      },
      { step: 'initialize', name: 'callCounter' },
    );
  }

  /** Counts what `run` costs. */
  async measure<T>(run: () => Promise<T>): Promise<{ result: T; calls: string[]; roundTrips: number }> {
    this.calls = [];
    this.tables = [];
    this.roundTrips = 0;
    const result = await run();
    return { result, calls: [...this.calls].sort(), roundTrips: this.roundTrips };
  }
}

describe('DynamoDB calls per connect and per subscribe', () => {
  let dynamo: Awaited<ReturnType<typeof startDynalite>>;
  let doc: ReturnType<typeof createDocumentClient>;
  let counter: CallCounter;
  let deps: ConnectDeps;

  beforeAll(async () => {
    dynamo = await startDynalite();
    await createTables(dynamo.endpoint);
    doc = createDocumentClient({ endpoint: dynamo.endpoint, ...LOCAL_AWS });
    counter = new CallCounter(doc);
    deps = {
      sessions: {
        ...localSessionStores(doc),
        snapshot: {
          latest: new DynamoLatestReadings(doc, LOCAL_TABLES.latest),
          alerts: new DynamoAlertStore(doc, LOCAL_TABLES.alerts),
          latestMaxAgeMs: 5000,
        },
      },
      // As on AWS: counters wait for the interval, the connections gauge is written at once.
      metrics: new DynamoMetricsStore(doc, LOCAL_TABLES.metrics, { flushIntervalMs: 60_000 }),
      log,
    };
  });
  afterAll(async () => {
    doc.destroy();
    await new Promise((resolve) => dynamo.server.close(resolve));
  });

  const connect = (id: string) => counter.measure(() => createConnectHandler(deps)(connectEvent(awsSource(id))));
  const send = (id: string, body: object) =>
    counter.measure(async () => JSON.parse((await createMessageHandler(deps)(messageEvent(awsSource(id), 'x', JSON.stringify(body)))).body!));

  it('a connect is one write of the connection and the gauge, in one round trip', async () => {
    const { result, calls, roundTrips } = await connect('cc-connect');
    expect(result).toEqual({ statusCode: 200 });
    expect(calls).toEqual(['PutItem', 'UpdateItem']);
    expect(roundTrips).toBe(1);
  });

  it('a first subscribe: one write of the connection, then the index and the snapshot together', async () => {
    await connect('cc-first');
    const { result, calls, roundTrips } = await send('cc-first', { action: 'subscribe', id: 'a', filter: { deviceIds: ['pump-017'] } });
    expect(result).toMatchObject({ type: 'subscribed', id: 'a' });
    // Connection item; the device key's bucket and the status recipients' bucket; the unresolved
    // alerts; the latest readings' directory (empty here, so no read of the readings follows).
    expect(calls).toEqual(['GetItem', 'Query', 'UpdateItem', 'UpdateItem', 'UpdateItem']);
    expect(roundTrips).toBeLessThanOrEqual(3);
  });

  it('a subscribe of a burst reuses the latest readings just read, and a large one takes no more round trips', async () => {
    await connect('cc-burst');
    const ids = Array.from({ length: 100 }, (_, i) => `dev-${i}`);
    const { result, calls, roundTrips } = await send('cc-burst', { action: 'subscribe', id: 'big', filter: { deviceIds: ids } });
    expect(result).toMatchObject({ type: 'subscribed', id: 'big' });
    // 100 device buckets and the status bucket, the connection item, the alerts: no latest read.
    expect(calls.filter((c) => c === 'UpdateItem')).toHaveLength(1 + 100 + 1);
    expect(calls.filter((c) => c !== 'UpdateItem')).toEqual(['Query']);
    expect(roundTrips).toBeLessThanOrEqual(2);
  });

  it('replacing a subscription removes its stale keys in the same round trip as the new ones', async () => {
    await connect('cc-replace');
    await send('cc-replace', { action: 'subscribe', id: 'r', filter: { deviceIds: ['pump-001'] } });
    const { result, calls, roundTrips } = await send('cc-replace', { action: 'subscribe', id: 'r', filter: { deviceIds: ['pump-002'] } });
    expect(result).toMatchObject({ type: 'subscribed', id: 'r', filter: { deviceIds: ['pump-002'] } });
    // The connection item, the new key's bucket, the old key's bucket, the alerts.
    expect(calls).toEqual(['Query', 'UpdateItem', 'UpdateItem', 'UpdateItem']);
    expect(roundTrips).toBeLessThanOrEqual(2);
  });

  it('a ping and an unsubscribe are one conditional write each, plus the index for the unsubscribe', async () => {
    await connect('cc-ping');
    await send('cc-ping', { action: 'subscribe', id: 'p', filter: { deviceIds: ['pump-003'] } });
    const ping = await send('cc-ping', { action: 'ping' });
    expect(ping.result).toMatchObject({ type: 'pong' });
    expect(ping.calls).toEqual(['UpdateItem']);
    const unsubscribe = await send('cc-ping', { action: 'unsubscribe', id: 'p' });
    expect(unsubscribe.result).toEqual({ type: 'unsubscribed', id: 'p' });
    expect(unsubscribe.calls).toEqual(['UpdateItem', 'UpdateItem']);
    expect(unsubscribe.roundTrips).toBe(2);
  });

  it('a connection stored before its rate buckets were (an older deploy) subscribes after one read more', async () => {
    // As $connect stored it before the buckets started at 0: no rateM, no rateW.
    await doc.send(
      new PutCommand({
        TableName: LOCAL_TABLES.connections,
        Item: { connectionId: 'cc-older', connectedAt: Date.now(), expiresAt: Math.ceil(Date.now() / 1000) + 3600, sub: 'operator', sites: ['*'], subscriptions: {} },
      }),
    );
    const first = await send('cc-older', { action: 'subscribe', id: 'o', filter: { deviceIds: ['pump-004'] } });
    expect(first.result).toMatchObject({ type: 'subscribed', id: 'o' });
    // The guess (buckets at 0) fails, the read shows them missing, the second try holds.
    expect(first.calls.filter((c) => c === 'GetItem')).toHaveLength(1);
    const ping = await send('cc-older', { action: 'ping' });
    expect(ping.result).toMatchObject({ type: 'pong' });
    expect(ping.calls).toEqual(['UpdateItem']);
  });

  it('at the 20-subscription cap a subscription can be replaced but not added', async () => {
    await connect('cc-cap');
    for (let i = 0; i < 20; i++) {
      const { result } = await send('cc-cap', { action: 'subscribe', id: `s${i}`, filter: { deviceIds: [`pump-${i}`] } });
      expect(result).toMatchObject({ type: 'subscribed', id: `s${i}` });
    }
    const added = await send('cc-cap', { action: 'subscribe', id: 's20', filter: { deviceIds: ['pump-20'] } });
    expect(added.result).toMatchObject({ type: 'error', code: 'too_large', id: 's20' });
    const replaced = await send('cc-cap', { action: 'subscribe', id: 's7', filter: { deviceIds: ['pump-77'] } });
    expect(replaced.result).toMatchObject({ type: 'subscribed', id: 's7', filter: { deviceIds: ['pump-77'] } });
    const held = (await doc.send(new GetCommand({ TableName: LOCAL_TABLES.connections, Key: { connectionId: 'cc-cap' } }))).Item!;
    expect(Object.keys(held.subscriptions as object)).toHaveLength(20);
    expect((held.subscriptions as Record<string, { deviceIds: string[] }>)['s:s7']!.deviceIds).toEqual(['pump-77']);
  });

  it('a subscribe refused by the cap takes its token from the shared bucket, whichever instance serves it', async () => {
    await connect('cc-cap-rate');
    const at = Date.now();
    const container = () => createMessageHandler({ ...deps, sessions: { ...deps.sessions, ...localSessionStores(doc), now: () => at } });
    const subscribe = (handler: ReturnType<typeof container>, n: number) =>
      handler(messageEvent(awsSource('cc-cap-rate'), 'subscribe', JSON.stringify({ action: 'subscribe', id: `r${n}`, filter: { deviceIds: [`pump-${n}`] } }))).then(
        (reply) => JSON.parse(reply.body!) as { type: string; code?: string },
      );
    const first = container();
    for (let n = 0; n < 20; n++) expect(await subscribe(first, n)).toMatchObject({ type: 'subscribed' });
    // A container that has not seen this connection: only the shared bucket knows the 20 taken.
    const other = container();
    const refused: (string | undefined)[] = [];
    for (let n = 20; n < 50; n++) refused.push((await subscribe(other, n)).code);
    // 40 messages in the burst: 20 more are answered too_large, then the limit.
    expect(refused).toEqual([...Array<string>(20).fill('too_large'), ...Array<string>(10).fill('rate_limited')]);
  });

  it('a flood of concurrent messages costs a write per round trip, not one per message, and serves exactly the burst', async () => {
    await connect('cc-flood');
    const { result, calls } = await counter.measure(() =>
      Promise.all(Array.from({ length: 200 }, () => createMessageHandler(deps)(messageEvent(awsSource('cc-flood'), 'ping', '{"action":"ping"}')))),
    );
    const replies = result.map((reply) => JSON.parse(reply.body!) as { type: string; code?: string });
    // The burst is 40, and every one of them is served: the messages that came during the first
    // write go together in the next, so none loses its condition to another.
    expect(replies.filter((reply) => reply.type === 'pong')).toHaveLength(40);
    expect(replies.filter((reply) => reply.code === 'rate_limited')).toHaveLength(160);
    // The first message's write, then one for the 39 that came during it; refusing costs nothing.
    expect(calls).toEqual(['UpdateItem', 'UpdateItem']);
  });

  it('a burst of subscribes of one connection is a few writes of its item, and the cap holds exactly', async () => {
    await connect('cc-subs');
    const subscribe = (n: number) =>
      createMessageHandler(deps)(messageEvent(awsSource('cc-subs'), 'subscribe', JSON.stringify({ action: 'subscribe', id: `b${n}`, filter: { deviceIds: [`pump-${n}`] } })));
    const { result } = await counter.measure(() => Promise.all(Array.from({ length: 30 }, (_, n) => subscribe(n))));
    const connectionWrites = counter.calls.filter((call, i) => call === 'UpdateItem' && counter.tables[i] === LOCAL_TABLES.connections);
    const replies = result.map((reply) => JSON.parse(reply.body!) as { type: string; id: string; code?: string });
    // The first 20 in the order they came, then the cap; each answered as if it came alone.
    expect(replies.filter((reply) => reply.type === 'subscribed').map((reply) => reply.id)).toEqual(Array.from({ length: 20 }, (_, n) => `b${n}`));
    expect(replies.filter((reply) => reply.code === 'too_large')).toHaveLength(10);
    // The first subscribe's write; the rest together, refused in part by the cap, so again for
    // those that fit; then the tokens of the refused ones, together too. Was 30 writes.
    expect(connectionWrites.length).toBeLessThanOrEqual(5);
    const held = (await doc.send(new GetCommand({ TableName: LOCAL_TABLES.connections, Key: { connectionId: 'cc-subs' } }))).Item!;
    expect(Object.keys(held.subscriptions as object).sort()).toEqual(Array.from({ length: 20 }, (_, n) => `s:b${n}`).sort());
  });

  it('two subscribes of one id at once: the later filter is kept and told what it replaced', async () => {
    await connect('cc-same');
    const subscribe = (device: string) =>
      createMessageHandler(deps)(messageEvent(awsSource('cc-same'), 'subscribe', JSON.stringify({ action: 'subscribe', id: 'same', filter: { deviceIds: [device] } })));
    const replies = await Promise.all([subscribe('pump-a'), subscribe('pump-b'), subscribe('pump-c')]);
    expect(replies.map((reply) => (JSON.parse(reply.body!) as { type: string }).type)).toEqual(['subscribed', 'subscribed', 'subscribed']);
    const held = (await doc.send(new GetCommand({ TableName: LOCAL_TABLES.connections, Key: { connectionId: 'cc-same' } }))).Item!;
    expect(held.subscriptions).toEqual({ 's:same': expect.objectContaining({ deviceIds: ['pump-c'] }) });
    // The index holds the kept filter's key only: each replaced one's entries were removed.
    const index = await deps.sessions.index.lookup(['d#pump-a', 'd#pump-b', 'd#pump-c']);
    expect([...index.entries()].filter(([, entries]) => entries.some((entry) => entry.connectionId === 'cc-same')).map(([key]) => key)).toEqual(['d#pump-c']);
  });

  it('two instances share one bucket: what one took, the combined write of the other finds taken', async () => {
    await connect('cc-shared');
    const at = Date.now();
    // Two containers of the same route, each with its own store and what it remembers.
    const container = () => createMessageHandler({ ...deps, sessions: { ...deps.sessions, ...localSessionStores(doc), now: () => at } });
    const ping = (handler: ReturnType<typeof container>) =>
      handler(messageEvent(awsSource('cc-shared'), 'ping', '{"action":"ping"}')).then((reply) => JSON.parse(reply.body!) as { type: string });
    const first = container();
    for (let i = 0; i < 30; i++) expect(await ping(first)).toMatchObject({ type: 'pong' });
    const second = container();
    const { result, calls } = await counter.measure(() => Promise.all(Array.from({ length: 40 }, () => ping(second))));
    // The other container knew nothing of the 30: its combined take did not fit, so it took one
    // at a time until the bucket refused. 40 in all, whichever container served them.
    expect(result.filter((reply) => reply.type === 'pong')).toHaveLength(10);
    expect(calls.filter((call) => call === 'UpdateItem').length).toBeLessThanOrEqual(14);
  });
});
