/**
 * Isolation and resilience on the local runtime, as an attacker would try them: sites from the
 * token, per-connection limits under concurrency, a device key many subscribe to, prototype-named
 * ids, dropped upgrades and abrupt closes, and the local-only checks of the gateway and dashboard.
 */
import net from 'node:net';
import { createDocumentClient } from '../../lambdas/adapters/clients';
import { DynamoSubscriptionIndex } from '../../lambdas/adapters/dynamo-subscriptions';
import { mintToken } from '../../lambdas/core/auth';
import { normaliseFilter } from '../../lambdas/core/filter';
import { LIMITS, type ServerFrame } from '../../lambdas/core/protocol';
import { closeConnection, handleClientMessage, openConnection } from '../../lambdas/core/sessions';
import { LOCAL_AWS, LOCAL_TABLES } from '../../local/dynamo';
import type { LocalRuntime } from '../../local/runtime';
import { closeClients, startTestRuntime } from '../support/runtime';
import { alertRecord, deviceRecord as reading } from '../support/records';
import { RuntimeState } from '../support/runtime-state';
import { TestClient } from '../support/ws-test-client';
import { localSessionStores } from '../support/stores';

const secret = 'isolation-test-secret-0123456789abcdef';
let runtime: LocalRuntime;
let doc: ReturnType<typeof createDocumentClient>;
let state: RuntimeState;
const clients: TestClient[] = [];

async function connectAs(sites: string[] | string | undefined, sub = 'tester'): Promise<TestClient> {
  const claims = sites === undefined ? { sub } : { sub, sites };
  const client = await TestClient.connect(runtime.wsUrl, await mintToken(secret, claims, '10m'));
  clients.push(client);
  return client;
}

const scan = (table: string) => state.scan(table);
const entriesByConnection = () => state.entriesByConnection();
const gauge = () => state.gauge();

beforeAll(async () => {
  runtime = await startTestRuntime({
    statusIntervalMs: 0,
    jwtSecret: secret,
  });
  doc = createDocumentClient({ endpoint: runtime.dynamoEndpoint, ...LOCAL_AWS });
  state = new RuntimeState(runtime);
});

afterEach(() => closeClients(runtime, clients));

afterAll(async () => {
  doc.destroy();
  state.destroy();
  await runtime.stop();
});

describe('sites', () => {
  it('a plant-a token gets no record of another site in 10,000, through a broad filter or a plant-b device id', async () => {
    const operator = await connectAs(['plant-a']);
    const everything = await operator.request({ action: 'subscribe', id: 'all', filter: {} });
    expect(everything).toMatchObject({ type: 'subscribed', filter: { sites: ['plant-a'] } });
    const device = await operator.request({ action: 'subscribe', id: 'b-pump', filter: { deviceIds: ['pump-b1'] } });
    expect(device).toMatchObject({ type: 'subscribed', filter: { deviceIds: ['pump-b1'], sites: ['plant-a'] } });
    const forbidden = await operator.request({ action: 'subscribe', id: 'b-line', filter: { locations: ['plant-b/line-1'] } });
    expect(forbidden).toMatchObject({ type: 'error', code: 'forbidden', id: 'b-line' });
    const mixed = await operator.request({ action: 'subscribe', id: 'mixed', filter: { locations: ['plant-a/line-1', 'plant-b/line-1'] } });
    expect(mixed).toMatchObject({ type: 'subscribed', filter: { locations: ['plant-a/line-1'], sites: ['plant-a'] } });
    const admin = await connectAs('*');
    await admin.subscribe('all', {});

    let sent = 0;
    let plantA = 0;
    for (let batch = 0; batch < 20; batch++) {
      const records = Array.from({ length: 500 }, (_, i) => {
        const n = batch * 500 + i;
        const site = n % 3 === 0 ? 'plant-a' : 'plant-b';
        if (site === 'plant-a') plantA++;
        const deviceId = site === 'plant-a' ? `pump-a${n % 7}` : `pump-b${n % 5}`;
        const location = `${site}/line-${n % 2}`;
        return n % 50 === 0
          ? { topic: 'alerts', value: alertRecord(deviceId, { level: 'critical', location }) }
          : { topic: 'device-data', value: reading(deviceId, { location }) };
      });
      sent += records.length;
      await runtime.publish(records);
    }
    await operator.barrier();
    await admin.barrier();
    expect(sent).toBe(10_000);
    const outside = operator.records.filter((frame) => !frame.data.location.startsWith('plant-a/'));
    expect(outside).toHaveLength(0);
    expect(operator.records).toHaveLength(plantA);
    expect(admin.records).toHaveLength(10_000);
  });

  it('a token without sites sees nothing; a comma-separated sites claim works', async () => {
    const nobody = await connectAs(undefined);
    expect(await nobody.request({ action: 'subscribe', id: 'x', filter: {} })).toMatchObject({ type: 'error', code: 'forbidden' });
    const two = await connectAs('plant-a, plant-c');
    expect(await two.request({ action: 'subscribe', id: 'y', filter: { sites: ['plant-c', 'plant-b'] } })).toMatchObject({
      type: 'subscribed',
      filter: { sites: ['plant-c'] },
    });
  });

  it('an index entry without sites (stale, or written by hand) delivers nothing', async () => {
    const client = await connectAs('*');
    await client.subscribe('s', { deviceIds: ['pump-stale'] });
    const index = new DynamoSubscriptionIndex(doc, LOCAL_TABLES.subscriptions);
    const [item] = (await scan(LOCAL_TABLES.connections)).filter((i) => i.sub === 'tester');
    // Overwrite the entry with a filter that names no sites.
    const { sites: _sites, ...noSites } = normaliseFilter({ deviceIds: ['pump-stale'] });
    await index.put([{ indexKey: 'd#pump-stale', connectionId: item.connectionId as string, subscriptionId: 's', filter: noSites as never }], 2e9);
    const report = await runtime.publish([{ topic: 'device-data', value: reading('pump-stale') }]);
    expect(report.deliveries).toBe(0);
  });
});

describe('limits', () => {
  it('answers a burst of 1,000 subscribes with rate_limited and keeps the connection working', async () => {
    const client = await connectAs('*');
    const started = Date.now();
    for (let i = 0; i < 1000; i++) client.send({ action: 'subscribe', id: `s${i % 10}`, filter: { deviceIds: [`pump-${i}`] } });
    // Each `subscribed` is followed by its snapshot, which is not a reply.
    const replies = () => client.frames.filter((frame) => frame.type !== 'snapshot');
    await client.until(() => replies().length >= 1000, 60_000, '1,000 replies');
    const codes = new Map<string, number>();
    for (const frame of replies()) {
      const key = frame.type === 'error' ? frame.code : frame.type;
      codes.set(key, (codes.get(key) ?? 0) + 1);
    }
    const seconds = (Date.now() - started) / 1000;
    // No more than the burst plus what the bucket refilled while the burst was being answered.
    expect(codes.get('subscribed')).toBeLessThanOrEqual(LIMITS.messageBurst + Math.ceil(seconds * LIMITS.messagesPerSecond));
    expect(codes.get('rate_limited')).toBe(1000 - codes.get('subscribed')!);
    // The bucket refills: after a pause the connection is served again.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(await client.request({ action: 'ping' })).toMatchObject({ type: 'pong' });
  }, 90_000);

  it('60 concurrent subscribes on one connection store at most the limit, as API Gateway runs them concurrently', async () => {
    const sessions = {
      ...localSessionStores(doc),
    };
    const id = 'concurrent-conn=';
    await openConnection(sessions, id, { sub: 'c', sites: ['*'], roles: [] });
    const outcomes = await Promise.all(
      Array.from({ length: 60 }, (_, i) =>
        handleClientMessage(sessions, id, JSON.stringify({ action: 'subscribe', id: `c${i}`, filter: { deviceIds: [`dev-${i}`] } })),
      ),
    );
    const stored = (await sessions.connections.get(id))!.subscriptions.size;
    expect(stored).toBeLessThanOrEqual(LIMITS.maxSubscriptionsPerConnection);
    const subscribed = outcomes.filter((o) => o.reply.type === 'subscribed').length;
    expect(subscribed).toBe(stored);
    expect(outcomes.every((o) => o.reply.type === 'subscribed' || (o.reply.type === 'error' && ['too_large', 'rate_limited'].includes(o.reply.code)))).toBe(true);
    // Exactly the stored subscriptions are in the index, and $disconnect leaves none.
    expect((await entriesByConnection()).get(id)).toBe(stored + 1);
    await closeConnection(sessions, id);
    expect((await entriesByConnection()).get(id)).toBeUndefined();
  });

  it('a device with 2,000 subscribers, some with maximal filters, still takes new ones', async () => {
    const index = new DynamoSubscriptionIndex(doc, LOCAL_TABLES.subscriptions);
    const padded = (n: number) => `${'x'.repeat(LIMITS.maxNameLength - 8)}${String(n).padStart(8, '0')}`;
    // Alerts only, so that the device's reading below is posted to the one real socket.
    const maximal = normaliseFilter({
      types: ['alert'],
      deviceIds: ['target-device'],
      locations: Array.from({ length: LIMITS.maxFilterValues }, (_, i) => `plant-a/${padded(i)}`.slice(0, LIMITS.maxNameLength)),
      deviceTypes: Array.from({ length: LIMITS.maxFilterValues }, (_, i) => padded(i)),
    });
    const plain = normaliseFilter({ types: ['alert'], deviceIds: ['target-device'] });
    const expires = Math.ceil(Date.now() / 1000) + 3600;
    for (let chunk = 0; chunk < 40; chunk++) {
      await index.put(
        Array.from({ length: 50 }, (_, i) => ({
          indexKey: 'd#target-device',
          connectionId: `sub-${chunk}-${i}`,
          subscriptionId: 's',
          filter: i % 5 === 0 ? maximal : plain,
        })),
        expires,
      );
    }
    const client = await connectAs('*');
    await client.subscribe('late', { deviceIds: ['target-device'] });
    const found = (await index.lookup(['d#target-device'])).get('d#target-device')!;
    expect(found).toHaveLength(2001);
    const report = await runtime.publish([{ topic: 'device-data', value: reading('target-device') }]);
    await client.barrier();
    expect(client.recordsOf('target-device')).toHaveLength(1);
    expect(report).toMatchObject({ deliveries: 1, stale: 0 });
  }, 120_000);
});

describe('prototype-named subscription ids', () => {
  it('subscribes, delivers to and unsubscribes constructor, __proto__ and toString like any id, and leaves nothing', async () => {
    const client = await connectAs('*');
    const ids = ['constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf'];
    for (const id of ids) {
      expect(await client.request({ action: 'subscribe', id, filter: { deviceIds: [`proto-${id}`] } })).toMatchObject({ type: 'subscribed', id });
    }
    await runtime.publish(ids.map((id) => ({ topic: 'device-data', value: reading(`proto-${id}`) })));
    await client.barrier();
    expect(client.records).toHaveLength(ids.length);
    for (const id of ids.slice(0, 3)) expect(await client.request({ action: 'unsubscribe', id })).toEqual({ type: 'unsubscribed', id });
    expect(await client.request({ action: 'unsubscribe', id: 'constructor' })).toMatchObject({ type: 'error', code: 'bad_request' });
    const [item] = (await scan(LOCAL_TABLES.connections)).filter((i) => i.sub === 'tester');
    const connectionId = item.connectionId as string;
    expect((await entriesByConnection()).get(connectionId)).toBe(3); // two left, and the status entry
    await client.close();
    await runtime.gateway.settle();
    expect((await entriesByConnection()).get(connectionId)).toBeUndefined();
    expect((await scan(LOCAL_TABLES.connections)).filter((i) => i.connectionId === connectionId)).toHaveLength(0);
  });

  it('routes actions named after Object.prototype keys to $default: unknown_action, one frame each', async () => {
    const client = await connectAs('*');
    const actions = ['constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf', '__defineGetter__'];
    for (const action of actions) {
      expect(await client.request({ action })).toMatchObject({ type: 'error', code: 'unknown_action' });
    }
    await client.barrier();
    expect(client.frames).toHaveLength(actions.length + 1);
  });
});

describe('connections counted right', () => {
  /** Sends an upgrade request and drops the socket before $connect can finish. */
  async function droppedUpgrade(token: string): Promise<void> {
    const socket = net.connect(runtime.gateway.port, '127.0.0.1');
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    socket.write(
      `GET /?token=${encodeURIComponent(token)} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
    );
    // Half-close, then reset: the two ways a client vanishes mid-upgrade.
    setImmediate(() => socket.end());
    setTimeout(() => socket.destroy(), 1);
  }

  it('after 100 dropped upgrades and 200 abrupt closes, the tables and the gauge show exactly the open sockets', async () => {
    const token = await mintToken(secret, { sub: 'churn', sites: ['*'] }, '10m');
    const keepers = await Promise.all(Array.from({ length: 5 }, () => connectAs('*', 'churn')));
    await Promise.all(keepers.map((k, i) => k.subscribe('k', { deviceIds: [`keeper-${i}`] })));
    const before = await gauge();
    const entriesBefore = new Set((await entriesByConnection()).keys());
    await Promise.all(Array.from({ length: 100 }, () => droppedUpgrade(token)));
    const dropped: TestClient[] = [];
    for (let i = 0; i < 200; i++) dropped.push(await TestClient.connect(runtime.wsUrl, token));
    for (const client of dropped.slice(0, 100)) await client.subscribe('d', { deviceIds: ['churned'] });
    for (const client of dropped) client.ws.terminate();
    await Promise.all(dropped.map((c) => c.closed));
    // Let every $connect and $disconnect under way finish.
    for (let i = 0; i < 20 && (runtime.gateway.connectionCount !== keepers.length || (await gauge()) !== before); i++) {
      await runtime.gateway.settle();
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    await runtime.gateway.settle();
    expect(runtime.gateway.connectionCount).toBe(keepers.length);
    const items = (await scan(LOCAL_TABLES.connections)).filter((i) => i.sub === 'churn');
    expect(items).toHaveLength(keepers.length);
    expect(await gauge()).toBe(before);
    const added = [...(await entriesByConnection()).keys()].filter((id) => !entriesBefore.has(id));
    expect(added).toEqual([]);
  }, 120_000);
});

describe('slow readers', () => {
  it('cuts off a client that stops reading once its buffer passes the bound, and keeps serving the others', async () => {
    const reader = await connectAs('*');
    const stalled = await connectAs('*');
    await reader.subscribe('all', { deviceIds: ['flood'] });
    await stalled.subscribe('all', { deviceIds: ['flood'] });
    (stalled.ws as unknown as { _socket: net.Socket })._socket.pause();
    const before = runtime.totals.stale;
    const padding = 'x'.repeat(900);
    for (let batch = 0; batch < 40 && runtime.totals.stale === before; batch++) {
      await runtime.publish(Array.from({ length: 200 }, () => ({ topic: 'alerts', value: alertRecord('flood', { level: 'info', message: padding }) })));
    }
    expect(runtime.totals.stale).toBe(before + 1);
    await reader.barrier();
    expect(reader.recordsOf('flood').length).toBeGreaterThan(0);
    expect(runtime.gateway.connectionCount).toBe(1);
  }, 120_000);
});

describe('local only', () => {
  it('refuses upgrades with a foreign Host or Origin, and config.json to a foreign Host', async () => {
    const token = runtime.token!;
    const foreignOrigin = new Promise<number>((resolve) => {
      const ws = new (require('ws') as typeof import('ws'))(`${runtime.wsUrl}/?token=${token}`, { origin: 'https://evil.example' });
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.on('open', () => resolve(101));
    });
    expect(await foreignOrigin).toBe(403);
    const local = await TestClient.connect(`${runtime.wsUrl}/?token=${token}`);
    clients.push(local);
    const dashboard = new URL(runtime.dashboardUrl);
    const rebound = await new Promise<number>((resolve) => {
      const socket = net.connect(Number(dashboard.port), '127.0.0.1', () =>
        socket.write(`GET /config.json HTTP/1.1\r\nHost: rebind.attacker.example:${dashboard.port}\r\nConnection: close\r\n\r\n`),
      );
      let text = '';
      socket.on('data', (chunk) => (text += chunk.toString()));
      socket.on('close', () => resolve(Number(text.split(' ')[1])));
    });
    expect(rebound).toBe(403);
    expect((await fetch(new URL('/config.json', runtime.dashboardUrl))).status).toBe(200);
  });

  it('answers the Management API only under its per-start path', async () => {
    const client = await connectAs('*');
    await client.barrier();
    const [item] = (await scan(LOCAL_TABLES.connections)).filter((i) => i.sub === 'tester');
    const id = encodeURIComponent(item.connectionId as string);
    const origin = new URL(runtime.managementUrl).origin;
    const forged = await fetch(`${origin}/local/@connections/${id}`, { method: 'POST', body: '{"type":"alert"}' });
    expect(forged.status).toBe(404);
    const bare = await fetch(`${origin}/@connections/${id}`, { method: 'DELETE' });
    expect(bare.status).toBe(404);
    expect((await fetch(`${runtime.managementUrl}/@connections/${id}`)).status).toBe(200);
    await client.barrier();
    expect(client.frames.every((f: ServerFrame) => f.type === 'pong')).toBe(true);
  });
});
