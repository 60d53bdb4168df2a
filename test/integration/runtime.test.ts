/**
 * The local runtime on real parts: real `ws` clients, the real handlers, the real AWS SDK against
 * dynalite and against the local Management API.
 */
import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import { createDocumentClient } from '../../lambdas/adapters/clients';
import { openConnection, handleClientMessage } from '../../lambdas/core/sessions';
import { LIMITS } from '../../lambdas/core/protocol';
import { LOCAL_AWS, LOCAL_TABLES } from '../../local/dynamo';
import type { LocalRuntime } from '../../local/runtime';
import { closeClients, startTestRuntime } from '../support/runtime';
import { alertRecord, deviceRecord } from '../support/records';
import { TestClient } from '../support/ws-test-client';
import { localSessionStores } from '../support/stores';

let runtime: LocalRuntime;
let doc: ReturnType<typeof createDocumentClient>;
const clients: TestClient[] = [];

async function connect(): Promise<TestClient> {
  const client = await TestClient.connect(runtime.clientUrl);
  clients.push(client);
  return client;
}

async function scan(table: string) {
  return (await doc.send(new ScanCommand({ TableName: table }))).Items ?? [];
}

/** The index keys holding at least one subscription entry, sorted. */
async function indexedKeys(): Promise<string[]> {
  const items = await scan(LOCAL_TABLES.subscriptions);
  return items.filter((item) => Object.keys(item).some((name) => name.startsWith('c:'))).map((item) => item.pk).sort();
}

beforeAll(async () => {
  runtime = await startTestRuntime({
    urlHost: '127.0.0.1',
    statusIntervalMs: 0,
  });
  doc = createDocumentClient({ endpoint: runtime.dynamoEndpoint, ...LOCAL_AWS });
});

afterEach(() => closeClients(runtime, clients));

afterAll(async () => {
  doc.destroy();
  await runtime.stop();
});

describe('connecting', () => {
  it('refuses a connection without a token, or with a bad one, with 403', async () => {
    await expect(TestClient.connect(runtime.wsUrl)).rejects.toMatchObject({ status: 403 });
    await expect(TestClient.connect(`${runtime.wsUrl}/?token=not.a.jwt`)).rejects.toMatchObject({ status: 403 });
  });

  it('registers a connection with its token\'s subject and sites, and removes it and its subscriptions on close', async () => {
    const client = await connect();
    await client.request({ action: 'subscribe', id: 's1', filter: { deviceIds: ['pump-001', 'pump-002'] } });
    const [item] = await scan(LOCAL_TABLES.connections);
    expect(item).toMatchObject({ sub: 'developer', sites: ['*'] });
    // Stored behind a prefix, so that an id such as `__proto__` survives the SDK's unmarshalling.
    expect(Object.keys(item.subscriptions)).toEqual(['s:s1']);
    expect(item.expiresAt).toBeGreaterThan(Date.now() / 1000 + 2 * 3600);
    expect(await indexedKeys()).toEqual(['d#pump-001', 'd#pump-002', 's#status']);
    await client.close();
    await runtime.gateway.settle();
    expect(await scan(LOCAL_TABLES.connections)).toEqual([]);
    expect(await indexedKeys()).toEqual([]);
  });
});

describe('subscriptions', () => {
  it('delivers exactly the records a filter matches', async () => {
    const client = await connect();
    const reply = await client.request({ action: 'subscribe', id: 'pumps', filter: { deviceTypes: ['pump'], alertLevels: ['critical'] } });
    expect(reply).toEqual({
      type: 'subscribed',
      id: 'pumps',
      filter: { types: ['alert', 'device_data'], deviceIds: [], deviceTypes: ['pump'], locations: [], alertLevels: ['critical'], sites: ['*'] },
    });
    const report = await runtime.publish([
      { topic: 'device-data', value: deviceRecord('pump-001') },
      { topic: 'device-data', value: deviceRecord('motor-001') },
      { topic: 'alerts', value: alertRecord('pump-001', { level: 'warning' }) },
      { topic: 'alerts', value: alertRecord('pump-002', { level: 'critical' }) },
      { topic: 'alerts', value: alertRecord('motor-001', { level: 'critical' }) },
    ]);
    expect(report).toMatchObject({ valid: 5, deliveries: 2, posts: 1 });
    await client.until(() => client.of('device_data').length + client.of('alert').length === 2);
    expect(client.of('device_data').map((f) => f.data.deviceId)).toEqual(['pump-001']);
    expect(client.of('alert').map((f) => [f.data.deviceId, f.data.level])).toEqual([['pump-002', 'critical']]);
    // Both came in one batch frame, each with its Kafka cursor.
    expect(client.messages.at(-1)).toMatch(/^\{"type":"batch"/);
    expect(client.of('alert')[0].cursor).toMatch(/^alerts:0:\d+$/);
  });

  it('delivers a record once to a connection even when several of its subscriptions match', async () => {
    const client = await connect();
    await client.request({ action: 'subscribe', id: 'a', filter: { deviceIds: ['pump-007'] } });
    await client.request({ action: 'subscribe', id: 'b', filter: { deviceTypes: ['pump'] } });
    await client.request({ action: 'subscribe', id: 'c', filter: {} });
    await runtime.publish([{ topic: 'device-data', value: deviceRecord('pump-007') }]);
    await client.until(() => client.of('device_data').length >= 1);
    await runtime.publish([{ topic: 'device-data', value: deviceRecord('pump-008') }]);
    await client.until(() => client.of('device_data').length >= 2);
    expect(client.of('device_data').map((f) => f.data.deviceId)).toEqual(['pump-007', 'pump-008']);
  });

  it('replaces the filter when subscribing again with the same id', async () => {
    const client = await connect();
    await client.request({ action: 'subscribe', id: 's', filter: { deviceIds: ['pump-001'] } });
    await client.request({ action: 'subscribe', id: 's', filter: { deviceIds: ['pump-002'] } });
    await runtime.publish([
      { topic: 'device-data', value: deviceRecord('pump-001') },
      { topic: 'device-data', value: deviceRecord('pump-002') },
    ]);
    await client.until(() => client.of('device_data').length >= 1);
    await runtime.gateway.settle();
    expect(client.of('device_data').map((f) => f.data.deviceId)).toEqual(['pump-002']);
    expect(await indexedKeys()).toEqual(['d#pump-002', 's#status']);
  });

  it('makes up an id when the client gives none', async () => {
    const client = await connect();
    const reply = await client.request({ action: 'subscribe' });
    expect(reply).toMatchObject({ type: 'subscribed', id: expect.stringMatching(/^s-/) });
  });

  it('stops delivering after unsubscribe, and says so for an unknown id', async () => {
    const client = await connect();
    await client.request({ action: 'subscribe', id: 's1', filter: {} });
    expect(await client.request({ action: 'unsubscribe', id: 's1' })).toEqual({ type: 'unsubscribed', id: 's1' });
    expect(await client.request({ action: 'unsubscribe', id: 's1' })).toMatchObject({ type: 'error', code: 'bad_request' });
    const report = await runtime.publish([{ topic: 'device-data', value: deviceRecord('pump-001') }]);
    expect(report.deliveries).toBe(0);
  });

  it('caps the subscriptions of one connection', async () => {
    const client = await connect();
    for (let i = 0; i < LIMITS.maxSubscriptionsPerConnection; i++) {
      await client.request({ action: 'subscribe', id: `s${i}`, filter: { deviceIds: [`d-${i}`] } });
    }
    expect(await client.request({ action: 'subscribe', id: 'one-more' })).toMatchObject({ type: 'error', code: 'too_large' });
    // Replacing an existing one is still allowed.
    expect(await client.request({ action: 'subscribe', id: 's0', filter: {} })).toMatchObject({ type: 'subscribed' });
  });

  it('answers ping with pong and the server time', async () => {
    const client = await connect();
    const before = Date.now();
    const pong = await client.request({ action: 'ping' });
    expect(pong.type).toBe('pong');
    expect((pong as { timestamp: number }).timestamp).toBeGreaterThanOrEqual(before);
  });
});

describe('bad input', () => {
  it('answers garbage with error frames, keeps the connection open and changes nothing', async () => {
    const client = await connect();
    await client.request({ action: 'subscribe', id: 'keep', filter: { deviceIds: ['pump-001'] } });
    expect(await client.request('not json at all')).toMatchObject({ type: 'error', code: 'bad_request' });
    expect(await client.request({ action: 'launch' })).toMatchObject({ type: 'error', code: 'unknown_action' });
    expect(await client.request({ action: 'subscribe', id: 'keep', filter: { deviceIds: 'pump-002' } })).toMatchObject({
      type: 'error',
      code: 'bad_request',
      id: 'keep',
    });
    expect(await client.request(JSON.stringify({ action: 'subscribe', filter: { deviceIds: ['x'.repeat(LIMITS.maxClientMessageBytes)] } }))).toMatchObject({
      type: 'error',
      code: 'too_large',
    });
    client.ws.send(Buffer.from([1, 2, 3]), { binary: true });
    await client.until(() => client.of('error').length === 5);
    expect(await client.request({ action: 'ping' })).toMatchObject({ type: 'pong' });
    expect(client.of('error').map((e) => e.code)).toEqual(['bad_request', 'unknown_action', 'bad_request', 'too_large', 'bad_request']);
    // The bad re-subscribe changed nothing: the old filter still delivers.
    await runtime.publish([{ topic: 'device-data', value: deviceRecord('pump-001') }]);
    await client.until(() => client.of('device_data').length === 1);
  });

  it('closes a connection that sends a message over 128 KB with 1009, as API Gateway does', async () => {
    const client = await connect();
    client.send('x'.repeat(LIMITS.maxMessageBytes + 1));
    expect(await client.closed).toBe(1009);
  });

  it('skips a malformed record without stopping its batch', async () => {
    const client = await connect();
    await client.request({ action: 'subscribe', filter: {} });
    const report = await runtime.publish([
      { topic: 'device-data', value: 'this is not json' },
      { topic: 'device-data', value: { deviceId: 'pump-001' } },
      { topic: 'device-data', value: deviceRecord('pump-003') },
    ]);
    expect(report).toMatchObject({ records: 3, invalid: 2, valid: 1, deliveries: 1 });
    await client.until(() => client.of('device_data').length === 1);
  });
});

describe('API Gateway behaviour', () => {
  it('removes a connection that vanished without $disconnect when a post finds it gone (410)', async () => {
    // A connection and subscription written through the real core, for a socket that no longer exists.
    const sessions = {
      ...localSessionStores(doc),
    };
    await openConnection(sessions, 'ghost-connection=', { sub: 'ghost', sites: ['*'], roles: [] });
    await handleClientMessage(sessions, 'ghost-connection=', JSON.stringify({ action: 'subscribe', filter: { deviceIds: ['pump-404'] } }));
    const first = await runtime.publish([{ topic: 'device-data', value: deviceRecord('pump-404') }]);
    expect(first).toMatchObject({ deliveries: 1, posts: 0, stale: 1 });
    expect(await scan(LOCAL_TABLES.connections)).toEqual([]);
    expect(await indexedKeys()).toEqual([]);
    const second = await runtime.publish([{ topic: 'device-data', value: deviceRecord('pump-404') }]);
    expect(second).toMatchObject({ deliveries: 0, attempts: 0 });
    expect(await runtime.metricsText()).toMatch(/^websocket_stale_connections_total [1-9]/m);
  });

  it('closes an idle connection after the idle timeout, and every connection at the connection limit', async () => {
    const short = await startTestRuntime({ auth: 'none', idleTimeoutMs: 300, maxConnectionMs: 1500 });
    try {
      const idle = await TestClient.connect(short.wsUrl);
      const busy = await TestClient.connect(short.wsUrl);
      const started = Date.now();
      const pinger = setInterval(() => busy.send({ action: 'ping' }), 100);
      expect(await idle.closed).toBe(1001);
      expect(Date.now() - started).toBeLessThan(1000);
      expect(await busy.closed).toBe(1001);
      clearInterval(pinger);
      expect(Date.now() - started).toBeGreaterThanOrEqual(1400);
    } finally {
      await short.stop();
    }
  });

  it('serves the Management API: GET a connection, DELETE closes it, unknown ids get 410 GoneException', async () => {
    const client = await connect();
    await client.request({ action: 'ping' });
    const [item] = await scan(LOCAL_TABLES.connections);
    const id = encodeURIComponent(item.connectionId);
    const info = await fetch(`${runtime.managementUrl}/@connections/${id}`);
    expect(info.status).toBe(200);
    expect(await info.json()).toMatchObject({ ConnectedAt: expect.any(String), Identity: { SourceIp: expect.any(String) } });
    const gone = await fetch(`${runtime.managementUrl}/@connections/nope`, { method: 'POST', body: '{}' });
    expect(gone.status).toBe(410);
    expect(gone.headers.get('x-amzn-errortype')).toBe('GoneException');
    expect((await fetch(`${runtime.managementUrl}/@connections/${id}`, { method: 'DELETE' })).status).toBe(204);
    expect(await client.closed).toBe(1000);
  });
});

describe('system status', () => {
  it('pushes system_status frames with live counts to subscribed connections only', async () => {
    const fast = await startTestRuntime({ auth: 'none', statusIntervalMs: 100 });
    try {
      const subscribed = await TestClient.connect(fast.wsUrl);
      const silent = await TestClient.connect(fast.wsUrl);
      await subscribed.request({ action: 'subscribe', filter: { deviceIds: ['none'] } });
      await subscribed.until(() => subscribed.of('system_status').length >= 2, 5000, 'two status frames');
      const [status] = subscribed.of('system_status').slice(-1);
      expect(status.data).toMatchObject({ connections: 2, messagesReceived: 1 });
      expect(silent.of('system_status')).toEqual([]);
      await Promise.all([subscribed.close(), silent.close()]);
    } finally {
      await fast.stop();
    }
  });
});

describe('dashboard server', () => {
  it('serves config.json with the socket URL and the development token', async () => {
    const config = await (await fetch(`${runtime.dashboardUrl}config.json`)).json();
    expect(config).toEqual({ wsUrl: runtime.wsUrl, token: runtime.token });
  });

  it('answers /health with the state of each dependency', async () => {
    const res = await fetch(`${runtime.dashboardUrl}health`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: 'ok', checks: { dynamodb: { ok: true }, managementApi: { ok: true } } });
  });

  it('refuses paths outside the dashboard directory', async () => {
    const res = await fetch(`${runtime.dashboardUrl}..%2F..%2Fpackage.json`);
    expect([403, 404]).toContain(res.status);
  });
});
