/**
 * The handlers fed events in the shapes AWS documents, over the real AWS SDK against dynalite and
 * a real HTTP Management API endpoint.
 */
import http from 'node:http';
import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import type { AddressInfo } from 'node:net';
import type { APIGatewayRequestAuthorizerEvent } from 'aws-lambda';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import { createDocumentClient } from '../../lambdas/adapters/clients';
import { DynamoMetricsStore } from '../../lambdas/adapters/dynamo-metrics';
import { DynamoSubscriptionIndex } from '../../lambdas/adapters/dynamo-subscriptions';
import { EmfMetricsSink } from '../../lambdas/adapters/emf-metrics';
import { createTokenVerifier, mintToken } from '../../lambdas/core/auth';
import { MetricsBatch, METRIC } from '../../lambdas/core/metrics';
import { createAuthorizerHandler, issuerKeys } from '../../lambdas/handlers/authorizer';
import { createConnectHandler, type ConnectDeps } from '../../lambdas/handlers/connect';
import { createDisconnectHandler } from '../../lambdas/handlers/disconnect';
import { createMessageHandler } from '../../lambdas/handlers/message';
import { noIndex } from '../../lambdas/handlers/defaults';
import { LOCAL_AWS, LOCAL_TABLES, createTables, startDynalite } from '../../local/dynamo';
import { connectEvent, disconnectEvent, messageEvent } from '../../local/apigw-events';
import connectFixture from '../fixtures/apigw/connect.json';
import { awsSource, SUBSCRIBE_BODY } from '../support/apigw';
import { localSessionStores } from '../support/stores';

const log = { debug() {}, info() {}, warn() {}, error() {} };

describe('route handlers on dynalite', () => {
  let dynamo: Awaited<ReturnType<typeof startDynalite>>;
  let doc: ReturnType<typeof createDocumentClient>;
  let deps: ConnectDeps;

  beforeAll(async () => {
    dynamo = await startDynalite();
    await createTables(dynamo.endpoint);
    doc = createDocumentClient({ endpoint: dynamo.endpoint, ...LOCAL_AWS });
    deps = {
      sessions: {
        ...localSessionStores(doc),
      },
      metrics: new DynamoMetricsStore(doc, LOCAL_TABLES.metrics),
      log,
    };
  });
  afterAll(async () => {
    doc.destroy();
    await new Promise((resolve) => dynamo.server.close(resolve));
  });

  /** Each test has a connection of its own, so any one of them passes alone or in any order. */
  const connectAndSubscribe = async (connectionId: string) => {
    const source = awsSource(connectionId);
    expect(await createConnectHandler(deps)(connectEvent(source))).toEqual({ statusCode: 200 });
    return { source, subscribed: await createMessageHandler(deps)(messageEvent(source, 'subscribe', SUBSCRIBE_BODY)) };
  };
  const entriesOf = async (connectionId: string, keys: string[]) =>
    [...(await deps.sessions.index.lookup(keys)).values()].flat().filter((entry) => entry.connectionId === connectionId);

  it('$connect stores the connection with the subject and sites from the authorizer context', async () => {
    expect(await createConnectHandler(deps)(connectEvent(awsSource('c-connect')))).toEqual({ statusCode: 200 });
    const item = await deps.sessions.connections.get('c-connect');
    expect(item).toMatchObject({ connectionId: 'c-connect', sub: 'operator-7', sites: ['plant-a'], subscriptions: new Map() });
  });

  it('subscribe answers with the normalised filter as the route response', async () => {
    const { subscribed: result } = await connectAndSubscribe('c-subscribe');
    expect(result.statusCode).toBe(200);
    expect(JSON.parse(result.body!)).toEqual({
      type: 'subscribed',
      id: 's1',
      filter: { types: ['alert', 'device_data'], deviceIds: [], deviceTypes: ['pump'], locations: ['plant-a/line-2'], alertLevels: ['critical'], sites: ['plant-a'] },
    });
    expect(await entriesOf('c-subscribe', ['l#plant-a/line-2'])).toHaveLength(1);
  });

  it('a base64-encoded body is decoded before parsing', async () => {
    const event = messageEvent(awsSource('c-base64'), 'ping', Buffer.from('{"action":"ping"}').toString('base64'), true);
    const result = await createMessageHandler(deps)(event);
    expect(JSON.parse(result.body!)).toMatchObject({ type: 'pong' });
  });

  it('ping and $default answer without index access, as their functions have none', async () => {
    const tableless = createMessageHandler({ ...deps, sessions: { connections: deps.sessions.connections, index: noIndex('$default') } });
    const source = awsSource('c-tableless');
    const ping = await tableless(messageEvent(source, 'ping', '{"action":"ping"}'));
    expect(JSON.parse(ping.body!)).toMatchObject({ type: 'pong' });
    const unknown = await tableless(messageEvent(source, '$default', '{"action":"publish"}'));
    expect(JSON.parse(unknown.body!)).toMatchObject({ type: 'error', code: 'unknown_action' });
    const garbage = await tableless(messageEvent(source, '$default', '<<<'));
    expect(JSON.parse(garbage.body!)).toMatchObject({ type: 'error', code: 'bad_request' });
  });

  it('$disconnect removes the connection and its index items', async () => {
    const { source } = await connectAndSubscribe('c-disconnect');
    expect(await entriesOf('c-disconnect', ['l#plant-a/line-2', 's#status'])).toHaveLength(2);
    const before = await (deps.metrics as DynamoMetricsStore).read();
    await createDisconnectHandler(deps)(disconnectEvent(source, 1001, 'Going away'));
    expect(await deps.sessions.connections.get('c-disconnect')).toBeUndefined();
    expect(await entriesOf('c-disconnect', ['l#plant-a/line-2', 's#status'])).toEqual([]);
    const after = await (deps.metrics as DynamoMetricsStore).read();
    expect((after.get(METRIC.connections) ?? 0) - (before.get(METRIC.connections) ?? 0)).toBe(-1);
    const durations = `${METRIC.connectionDuration}_count`;
    expect((after.get(durations) ?? 0) - (before.get(durations) ?? 0)).toBe(1);
  });
});

describe('subscription index buckets on dynalite', () => {
  let dynamo: Awaited<ReturnType<typeof startDynalite>>;
  let doc: ReturnType<typeof createDocumentClient>;
  let clock = Date.now();
  let index: DynamoSubscriptionIndex;
  const filter = { types: ['device_data' as const], deviceIds: [], deviceTypes: [], locations: [], alertLevels: [], sites: ['*'] };

  beforeAll(async () => {
    dynamo = await startDynalite();
    await createTables(dynamo.endpoint);
    doc = createDocumentClient({ endpoint: dynamo.endpoint, ...LOCAL_AWS });
    index = new DynamoSubscriptionIndex(doc, LOCAL_TABLES.subscriptions, { now: () => clock });
  });
  afterAll(async () => {
    doc.destroy();
    await new Promise((resolve) => dynamo.server.close(resolve));
  });

  it('looks 1,000 device keys up in 10 requests, however many connections are stored', async () => {
    const keys = Array.from({ length: 1000 }, (_, i) => `d#dev-${i}`);
    const expires = Math.ceil(clock / 1000) + 3600;
    await index.put(keys.slice(0, 300).map((indexKey, i) => ({ indexKey, connectionId: `c${i}`, subscriptionId: 's1', filter })), expires);
    let before = index.calls;
    const found = await index.lookup(keys);
    // The versions of 1,000 buckets, then the 300 that exist, whole (the first time only).
    expect(index.calls - before).toBe(10 + 3);
    expect([...found.values()].flat()).toHaveLength(300);
    // Ten times more connections under other keys: the same lookup costs the same.
    await index.put(Array.from({ length: 3000 }, (_, i) => ({ indexKey: `d#other-${i}`, connectionId: `o${i}`, subscriptionId: 's1', filter })), expires);
    before = index.calls;
    await index.lookup(keys);
    expect(index.calls - before).toBe(10);
  });

  it('spreads a broad key over shards and finds every entry', async () => {
    const expires = Math.ceil(clock / 1000) + 3600;
    const entries = Array.from({ length: 500 }, (_, i) => ({ indexKey: '*', connectionId: `wide-${i}`, subscriptionId: 'all', filter }));
    await index.put(entries, expires);
    const items = (await doc.send(new ScanCommand({ TableName: LOCAL_TABLES.subscriptions }))).Items!.filter((i) => i.pk === '*');
    expect(items.length).toBe(16);
    const found = (await index.lookup(['*'])).get('*')!;
    expect(found.map((e) => e.connectionId).sort()).toEqual(entries.map((e) => e.connectionId).sort());
    await index.remove(entries);
    expect((await index.lookup(['*'])).get('*')).toBeUndefined();
  });

  it('writes a burst of subscribes to one bucket in a few combined writes, and every entry lands', async () => {
    const expires = Math.ceil(clock / 1000) + 3600;
    const subscribers = Array.from({ length: 200 }, (_, i) => ({ indexKey: 'd#busy-pump', connectionId: `burst-${i}`, subscriptionId: 's1', filter }));
    const before = index.calls;
    // 200 subscribes of one device at once, as a plant's dashboards opening together.
    await Promise.all(subscribers.map((entry) => index.put([entry], expires)));
    const writes = index.calls - before;
    // One write goes at once; the rest wait for it and go together, at most 50 entries a write.
    expect(writes).toBe(1 + Math.ceil(199 / 50));
    const found = (await index.lookup(['d#busy-pump'])).get('d#busy-pump')!;
    expect(found.map((e) => e.connectionId).sort()).toEqual(subscribers.map((e) => e.connectionId).sort());
    await Promise.all(subscribers.map((entry) => index.remove([entry])));
    expect((await index.lookup(['d#busy-pump'])).get('d#busy-pump')).toBeUndefined();
  });

  it('applies concurrent writes of one entry in the order they were asked for', async () => {
    const expires = Math.ceil(clock / 1000) + 3600;
    const entry = { indexKey: 'l#plant-a/line-9', connectionId: 'flip', subscriptionId: 's1', filter };
    const other = { ...entry, connectionId: 'steady' };
    await index.put([other], expires);
    const found = async () => ((await index.lookup([entry.indexKey])).get(entry.indexKey) ?? []).map((e) => e.connectionId).sort();
    for (let round = 0; round < 5; round++) {
      // Subscribe then unsubscribe, asked at once: the entry ends removed, whichever answers first.
      await Promise.all([index.put([entry], expires), index.remove([entry]), index.put([other], expires)]);
      expect(await found()).toEqual(['steady']);
      // Unsubscribe then subscribe again: it ends present.
      await Promise.all([index.remove([entry]), index.put([entry], expires)]);
      expect(await found()).toEqual(['flip', 'steady']);
      await index.remove([entry]);
    }
    await index.remove([other]);
  });

  it('ignores and removes entries past their expiry, as TTL would', async () => {
    const expires = Math.ceil(clock / 1000) + 60;
    await index.put([{ indexKey: 'l#old', connectionId: 'gone', subscriptionId: 's', filter }], expires);
    expect((await index.lookup(['l#old'])).get('l#old')).toHaveLength(1);
    clock += 120_000;
    expect((await index.lookup(['l#old'])).get('l#old')).toBeUndefined();
    clock -= 120_000;
    // Removed, not just hidden: visible again with the clock back, it is not there.
    expect((await index.lookup(['l#old'])).get('l#old')).toBeUndefined();
  });
});

describe('authorizer', () => {
  const authorizerEvent = (token?: string): APIGatewayRequestAuthorizerEvent =>
    ({
      type: 'REQUEST',
      methodArn: 'arn:aws:execute-api:us-east-1:123456789012:abcdef1234/prod/$connect',
      headers: connectFixture.headers,
      queryStringParameters: token ? { token } : {},
      requestContext: connectFixture.requestContext,
    }) as unknown as APIGatewayRequestAuthorizerEvent;

  it('allows a valid HS256 token and passes its subject, sites and roles on; denies a bad or missing one', async () => {
    const secret = 'a-test-secret-of-some-length-0123456789';
    const handler = createAuthorizerHandler({ verifier: createTokenVerifier({ hs256: { secret } }), log });
    const token = await mintToken(secret, { sub: 'operator-7', sites: 'plant-a, plant-b', roles: ['operator'], tenant: 'plant-a' });
    const allowed = await handler(authorizerEvent(token));
    expect(allowed.policyDocument.Statement[0]).toMatchObject({ Effect: 'Allow', Resource: authorizerEvent().methodArn });
    // Only what the routes need travels: not every claim.
    expect(allowed.context).toEqual({ sub: 'operator-7', sites: 'plant-a,plant-b', roles: 'operator' });
    expect((await handler(authorizerEvent(await mintToken('another-secret-entirely-0123456789')))).policyDocument.Statement[0]).toMatchObject({ Effect: 'Deny' });
    expect((await handler(authorizerEvent())).policyDocument.Statement[0]).toMatchObject({ Effect: 'Deny' });
    expect((await handler(authorizerEvent(await mintToken(secret, { sub: 'x' }, '-1m')))).policyDocument.Statement[0]).toMatchObject({ Effect: 'Deny' });
  });

  it('verifies RS256 tokens against a JWKS URL, as with a Cognito user pool', async () => {
    const { publicKey, privateKey } = await generateKeyPair('RS256');
    const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
    const server = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys: [jwk] }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const jwksUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`;
      const handler = createAuthorizerHandler({
        verifier: createTokenVerifier({ oidc: { keys: issuerKeys('https://issuer.example', jwksUrl), issuer: 'https://issuer.example', clientId: 'dashboard' } }),
        log,
      });
      const sign = (iss: string) =>
        new SignJWT({ sub: 'user-1' }).setProtectedHeader({ alg: 'RS256', kid: 'k1' }).setIssuer(iss).setAudience('dashboard').setExpirationTime('5m').sign(privateKey);
      expect((await handler(authorizerEvent(await sign('https://issuer.example')))).policyDocument.Statement[0]).toMatchObject({ Effect: 'Allow' });
      expect((await handler(authorizerEvent(await sign('https://someone-else.example')))).policyDocument.Statement[0]).toMatchObject({ Effect: 'Deny' });
    } finally {
      server.close();
    }
  });
});

describe('EMF through Powertools Metrics', () => {
  it('publishes a batch as one EMF line with the service dimension only', async () => {
    const lines: string[] = [];
    const spy = jest.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      lines.push(String(chunk));
      return true;
    });
    const previous = process.env.POWERTOOLS_METRICS_DISABLED;
    process.env.POWERTOOLS_METRICS_DISABLED = 'false';
    try {
      const sink = new EmfMetricsSink(new Metrics({ namespace: 'IotDashboardTest', serviceName: 'iot-dashboard' }));
      await sink.flush(
        new MetricsBatch()
          .add(METRIC.streamRecords, 7, { topic: 'device-data', outcome: 'valid' })
          .add(METRIC.streamRecords, 3, { topic: 'alerts', outcome: 'valid' })
          .add(METRIC.streamRecords, 1, { topic: 'alerts', outcome: 'invalid' })
          .add(METRIC.staleConnections, 2)
          .observe(METRIC.pushLatency, 0.02),
      );
    } finally {
      spy.mockRestore();
      process.env.POWERTOOLS_METRICS_DISABLED = previous;
    }
    const emf = lines.map((l) => JSON.parse(l)).find((o) => o._aws);
    expect(emf._aws.CloudWatchMetrics[0].Namespace).toBe('IotDashboardTest');
    expect(emf._aws.CloudWatchMetrics[0].Dimensions).toEqual([['service']]);
    expect(emf).toMatchObject({
      service: 'iot-dashboard',
      stream_records_valid_total: 10,
      stream_records_invalid_total: 1,
      websocket_stale_connections_total: 2,
      websocket_push_latency_seconds_count: 1,
      websocket_push_latency_seconds_sum: 0.02,
    });
    expect(Object.keys(emf).some((k) => k.includes('bucket'))).toBe(false);
  });
});
