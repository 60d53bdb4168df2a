/**
 * Alert state and snapshots on the local runtime: real `ws` clients with tokens of different
 * users and sites, the real handlers, the real AWS SDK against dynalite.
 */
import { mintToken } from '../../lambdas/core/auth';
import { TOPICS, type AlertFrame, type Filter, type SnapshotFrame } from '../../lambdas/core/protocol';
import type { LocalRuntime } from '../../local/runtime';
import { closeClients, startTestRuntime } from '../support/runtime';
import { alertRecord, deviceRecord as reading } from '../support/records';
import { TestClient } from '../support/ws-test-client';

const SECRET = 'alert-state-test-secret-0123456789abcdef';
let runtime: LocalRuntime;
const clients: TestClient[] = [];

async function connectAs(sub: string, sites: string[]): Promise<TestClient> {
  const client = await TestClient.connect(runtime.wsUrl, await mintToken(SECRET, { sub, sites }));
  clients.push(client);
  return client;
}

function publishAlerts(...alerts: ReturnType<typeof alertRecord>[]) {
  return runtime.publish(alerts.map((value) => ({ topic: TOPICS.alerts, key: value.deviceId, value })));
}

function publishReadings(...readings: ReturnType<typeof reading>[]) {
  return runtime.publish(readings.map((value) => ({ topic: TOPICS.deviceData, key: value.deviceId, value })));
}

/** Subscribes and resolves with the snapshot frames up to the final one. */
async function subscribeWithSnapshot(client: TestClient, id: string, filter: object): Promise<SnapshotFrame[]> {
  const from = client.frames.length;
  const reply = await client.request({ action: 'subscribe', id, filter });
  expect(reply.type).toBe('subscribed');
  await client.until(() => client.frames.slice(from).some((f) => f.type === 'snapshot' && f.id === id && f.final), 5000, 'final snapshot');
  const after = client.frames.slice(from);
  // The snapshot follows `subscribed`, never precedes it.
  expect(after.findIndex((f) => f.type === 'subscribed')).toBeLessThan(after.findIndex((f) => f.type === 'snapshot'));
  return after.filter((f): f is SnapshotFrame => f.type === 'snapshot' && f.id === id);
}

const snapshotAlerts = (frames: SnapshotFrame[]) =>
  frames.flatMap((f) => f.messages).filter((m): m is AlertFrame => m.type === 'alert');

beforeAll(async () => {
  runtime = await startTestRuntime({
    urlHost: '127.0.0.1',
    statusIntervalMs: 0,
    jwtSecret: SECRET,
    latestIntervalMs: 60_000,
    // Each test publishes readings and expects them in its next snapshot at once.
    latestReuseMs: 0,
  });
});

afterEach(() => closeClients(runtime, clients));

afterAll(async () => {
  await runtime.stop();
});

describe('ack', () => {
  it('acknowledges as the token subject and tells every other operator who sees the alert', async () => {
    const alice = await connectAs('alice', ['plant-a']);
    const bob = await connectAs('bob', ['*']);
    const carol = await connectAs('carol', ['plant-b']);
    for (const client of [alice, bob, carol]) await client.subscribe('all', {});
    const critical = alertRecord('pump-1', { level: 'critical' });
    await publishAlerts(critical);
    await bob.until(() => bob.records.some((r) => r.data.deviceId === 'pump-1'), 5000, 'the alert');

    const reply = await alice.request({ action: 'ack', alertId: critical.alertId }, ['acked', 'error']);
    expect(reply).toEqual({ type: 'acked', alertId: critical.alertId });
    await bob.until(() => bob.of('alert_state').length > 0, 5000, 'alert_state');
    expect(bob.of('alert_state')[0].data).toMatchObject({
      alertId: critical.alertId,
      state: 'acknowledged',
      by: 'alice',
      location: 'plant-a/line-1',
      level: 'critical',
    });
    await carol.barrier();
    expect(carol.of('alert_state')).toHaveLength(0);

    // A second ack changes nothing: alice stays the one who took it, and no new frame goes out.
    expect(await bob.request({ action: 'ack', alertId: critical.alertId }, ['acked', 'error'])).toEqual({ type: 'acked', alertId: critical.alertId });
    await alice.barrier();
    expect(alice.of('alert_state').filter((f) => f.data.alertId === critical.alertId)).toHaveLength(1);
  });

  it('answers bad_request for an unknown alert and forbidden for one outside the sites, changing nothing', async () => {
    const alice = await connectAs('alice', ['plant-a']);
    const mallory = await connectAs('mallory', ['plant-b']);
    await alice.subscribe('all', {});
    const critical = alertRecord('pump-2', { level: 'critical' });
    await publishAlerts(critical);

    expect(await mallory.request({ action: 'ack', alertId: 'no-such-alert' }, ['acked', 'error'])).toMatchObject({ type: 'error', code: 'bad_request' });
    expect(await mallory.request({ action: 'ack', alertId: critical.alertId }, ['acked', 'error'])).toMatchObject({
      type: 'error',
      code: 'forbidden',
      id: critical.alertId,
    });
    for (const bad of [{ action: 'ack' }, { action: 'ack', alertId: '' }, { action: 'ack', alertId: 'x'.repeat(500) }, { action: 'ack', alertId: { $ne: 1 } }, { action: 'ack', alertId: '__proto__' }]) {
      expect(await mallory.request(bad, ['acked', 'error'])).toMatchObject({ type: 'error', code: 'bad_request' });
    }
    await alice.barrier();
    expect(alice.of('alert_state')).toHaveLength(0);
    const snapshot = snapshotAlerts(await subscribeWithSnapshot(alice, 'again', {}));
    expect(snapshot.find((a) => a.data.alertId === critical.alertId)?.state).toMatchObject({ state: 'open' });
  });

  it('makes one change when many operators acknowledge at once', async () => {
    const watcher = await connectAs('watcher', ['*']);
    await watcher.subscribe('all', {});
    const critical = alertRecord('pump-3', { level: 'critical' });
    await publishAlerts(critical);
    const operators = await Promise.all(['o1', 'o2', 'o3', 'o4', 'o5'].map((sub) => connectAs(sub, ['plant-a'])));
    const replies = await Promise.all(operators.map((o) => o.request({ action: 'ack', alertId: critical.alertId }, ['acked', 'error'])));
    expect(replies.every((r) => r.type === 'acked')).toBe(true);
    await watcher.until(() => watcher.of('alert_state').length > 0);
    await new Promise((resolve) => setTimeout(resolve, 200));
    await watcher.barrier();
    const states = watcher.of('alert_state').filter((f) => f.data.alertId === critical.alertId);
    expect(states).toHaveLength(1);
    expect(['o1', 'o2', 'o3', 'o4', 'o5']).toContain(states[0].data.by);
  });
});

describe('resolution', () => {
  it('resolves an alert when a later alert names it, after that alert, and keeps it out of snapshots', async () => {
    const operator = await connectAs('operator', ['plant-a']);
    await operator.subscribe('crit', { types: ['alert'] });
    const critical = alertRecord('pump-4', { level: 'critical' });
    const normal = alertRecord('pump-4', { level: 'info', message: 'back to normal', resolves: critical.alertId });
    await publishAlerts(critical, normal);
    await operator.until(() => operator.of('alert_state').some((f) => f.data.alertId === critical.alertId), 5000, 'resolved');
    const order = operator.frames.filter((f) => (f.type === 'alert' && f.data.alertId === critical.alertId) || f.type === 'alert_state');
    expect(order.map((f) => f.type)).toEqual(['alert', 'alert_state']);
    expect(operator.of('alert_state')[0].data).toMatchObject({ state: 'resolved', by: normal.alertId });

    const later = await connectAs('later', ['plant-a']);
    const ids = snapshotAlerts(await subscribeWithSnapshot(later, 's', {})).map((a) => a.data.alertId);
    expect(ids).not.toContain(critical.alertId);
    expect(ids).not.toContain(normal.alertId);
  });
});

describe('snapshot', () => {
  it('gives a reconnecting client the critical alert it missed, with its state, newest first', async () => {
    const filter: Filter = { types: ['alert'], alertLevels: ['critical'] };
    const before = await connectAs('tablet', ['plant-a']);
    await before.subscribe('floor', filter);
    await before.close();
    const older = alertRecord('boiler-1', { level: 'critical', timestamp: Date.now() - 1000 });
    const missed = alertRecord('boiler-1', { level: 'critical' });
    await publishAlerts(older, missed);
    expect(before.records).toHaveLength(0);
    const tablet = await connectAs('tablet', ['plant-a']);
    const alerts = snapshotAlerts(await subscribeWithSnapshot(tablet, 'floor', filter));
    const ids = alerts.map((a) => a.data.alertId);
    expect(ids).toContain(missed.alertId);
    expect(ids.indexOf(missed.alertId)).toBeLessThan(ids.indexOf(older.alertId));
    expect(alerts.find((a) => a.data.alertId === missed.alertId)?.state).toMatchObject({ state: 'open' });
  });

  it('holds the latest reading of each matching device, only from the sites of the token', async () => {
    await publishReadings(
      reading('fan-1', { location: 'plant-a/line-9', metrics: { rpm: 1 } }),
      reading('fan-1', { location: 'plant-a/line-9', metrics: { rpm: 2 } }),
      reading('fan-2', { location: 'plant-b/line-9', metrics: { rpm: 3 } }),
    );
    const client = await connectAs('viewer', ['plant-a']);
    const frames = await subscribeWithSnapshot(client, 'fans', { deviceTypes: ['fan'] });
    const readings = frames.flatMap((f) => f.messages).filter((m) => m.type === 'device_data');
    expect(readings.map((m) => [m.data.deviceId, m.type === 'device_data' && m.data.metrics.rpm])).toEqual([['fan-1', 2]]);

    const outside = await connectAs('outsider', ['plant-c']);
    const none = await subscribeWithSnapshot(outside, 'all', {});
    expect(none).toEqual([{ type: 'snapshot', id: 'all', messages: [], final: true }]);
  });

  it('splits a large snapshot into frames under 32 KB, the last one final', async () => {
    const many = Array.from({ length: 400 }, (_, i) => reading(`meter-${i}`, { location: 'plant-a/big', metrics: { a: i, b: i, c: i } }));
    await publishReadings(...many);
    const client = await connectAs('viewer', ['*']);
    const frames = await subscribeWithSnapshot(client, 'big', { locations: ['plant-a/big'] });
    expect(frames.length).toBeGreaterThan(1);
    expect(frames.map((f) => f.final)).toEqual([...frames.slice(1).map(() => false), true]);
    const sizes = client.messages.filter((m) => m.startsWith('{"type":"snapshot"')).map((m) => Buffer.byteLength(m));
    expect(Math.max(...sizes)).toBeLessThanOrEqual(32 * 1024);
    expect(new Set(frames.flatMap((f) => f.messages.map((m) => m.data.deviceId))).size).toBe(400);
  });
});

describe('expiry', () => {
  let short: LocalRuntime;
  beforeAll(async () => {
    short = await startTestRuntime({
      urlHost: '127.0.0.1',
      statusIntervalMs: 0,
      jwtSecret: SECRET,
      alertRetentionMs: 60_000,
      alertExpirySweepMs: 0,
    });
  });
  afterAll(() => short.stop());

  it('resolves an alert nobody resolved once it outlives the retention, and tells its watchers', async () => {
    const client = await TestClient.connect(short.wsUrl, await mintToken(SECRET, { sub: 'night-shift', sites: ['plant-a'] }));
    clients.push(client);
    await client.subscribe('all', { types: ['alert'] });
    const stale = alertRecord('valve-1', { level: 'critical', timestamp: Date.now() - 120_000 });
    const fresh = alertRecord('valve-2', { level: 'critical' });
    await short.publish([stale, fresh].map((value) => ({ topic: TOPICS.alerts, key: value.deviceId, value })));
    await client.until(() => client.of('alert_state').length > 0, 5000, 'expiry');
    expect(client.of('alert_state').map((f) => [f.data.alertId, f.data.state, f.data.by])).toEqual([[stale.alertId, 'resolved', 'expiry']]);
    const ids = snapshotAlerts(await subscribeWithSnapshot(client, 'again', {})).map((a) => a.data.alertId);
    expect(ids).toEqual([fresh.alertId]);
  });
});
