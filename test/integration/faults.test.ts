/**
 * Faults all at once while records flow at about 1,000 a second (issue 19): 200 clients that
 * vanish without a close, 100 upgrades dropped mid-handshake and 50 clients that stop reading.
 * Afterwards the `websocket_connections` gauge, the connection items and the sockets the gateway
 * holds all agree with the clients really open, no index entry is left for a gone connection, and
 * the clients that stayed got every record for their devices exactly once.
 */
import net from 'node:net';
import { mintToken } from '../../lambdas/core/auth';
import { LOCAL_TABLES } from '../../local/dynamo';
import type { LocalRuntime } from '../../local/runtime';
import { startTestRuntime } from '../support/runtime';
import { deviceRecord } from '../support/records';
import { RuntimeState } from '../support/runtime-state';
import { TestClient } from '../support/ws-test-client';

const secret = 'faults-test-secret-0123456789abcdef';
const DEVICES = Array.from({ length: 10 }, (_, i) => `fault-${i}`);
let runtime: LocalRuntime;
let state: RuntimeState;

beforeAll(async () => {
  runtime = await startTestRuntime({ statusIntervalMs: 0, jwtSecret: secret });
  state = new RuntimeState(runtime);
});

afterAll(async () => {
  state.destroy();
  await runtime.stop();
});

/** Sends an upgrade request and drops the socket before the handshake can finish. */
async function droppedUpgrade(token: string, i: number): Promise<void> {
  const socket = net.connect(runtime.gateway.port, '127.0.0.1');
  socket.on('error', () => {});
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  socket.write(
    `GET /?token=${encodeURIComponent(token)} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
  );
  // Half of them half-close first, the others reset at once, at staggered moments.
  if (i % 2) socket.end();
  setTimeout(() => socket.destroy(), i % 7);
}

it('200 vanished clients, 100 dropped upgrades and 50 stalled readers under 1,000 records/s leave counts that agree and no duplicate', async () => {
  const token = await mintToken(secret, { sub: 'faults', sites: ['*'] }, '10m');
  const before = await state.gauge();
  const keepers = await Promise.all(Array.from({ length: 10 }, () => TestClient.connect(runtime.wsUrl, token)));
  await Promise.all(keepers.map((k, i) => k.subscribe('k', { deviceIds: [DEVICES[i], DEVICES[(i + 1) % DEVICES.length]] })));

  // Records at about 1,000 a second for 5 s, 50 every 50 ms, while the faults happen.
  const published = new Map<string, number>(DEVICES.map((d) => [d, 0]));
  let publishing = true;
  const feed = (async () => {
    for (let tick = 0; publishing && tick < 100; tick++) {
      const records = Array.from({ length: 50 }, (_, i) => deviceRecord(DEVICES[(tick * 50 + i) % DEVICES.length]));
      for (const r of records) published.set(r.deviceId, published.get(r.deviceId)! + 1);
      const started = Date.now();
      await runtime.publish(records.map((value) => ({ topic: 'device-data', key: value.deviceId, value })));
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, 50 - (Date.now() - started))));
    }
  })();

  const vanishing = (async () => {
    const opened = await Promise.all(Array.from({ length: 200 }, () => TestClient.connect(runtime.wsUrl, token)));
    await Promise.all(opened.slice(0, 100).map((c) => c.subscribe('v', { deviceIds: [DEVICES[0]] })));
    for (const client of opened) client.ws.terminate();
    await Promise.all(opened.map((c) => c.closed));
  })();
  const dropping = Promise.all(Array.from({ length: 100 }, (_, i) => droppedUpgrade(token, i)));
  const stalling = (async () => {
    const stalled = await Promise.all(Array.from({ length: 50 }, () => TestClient.connect(runtime.wsUrl, token)));
    await Promise.all(stalled.map((c) => c.subscribe('s', { deviceIds: DEVICES })));
    for (const client of stalled) (client.ws as unknown as { _socket: net.Socket })._socket.pause();
    return stalled;
  })();

  const [stalled] = await Promise.all([stalling, vanishing, dropping]);
  publishing = false;
  await feed;

  // A stalled reader is either still open (its backlog under the gateway's bound) or was cut off;
  // the server's view decides which, and every count must match it.
  for (let i = 0; i < 40; i++) {
    await runtime.gateway.settle();
    const items = (await state.scan(LOCAL_TABLES.connections)).filter((item) => item.sub === 'faults');
    if (items.length === runtime.gateway.connectionCount && (await state.gauge()) === before + items.length) break;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  const open = runtime.gateway.connectionCount;
  const items = (await state.scan(LOCAL_TABLES.connections)).filter((item) => item.sub === 'faults');
  expect(open).toBeGreaterThanOrEqual(keepers.length);
  expect(open).toBeLessThanOrEqual(keepers.length + stalled.length);
  expect(items).toHaveLength(open);
  expect(await state.gauge()).toBe(before + open);
  const live = new Set(items.map((item) => item.connectionId as string));
  expect([...(await state.entriesByConnection()).keys()].filter((id) => !live.has(id))).toEqual([]);

  // The keepers got each record of their devices exactly once.
  await Promise.all(keepers.map((k) => k.barrier()));
  keepers.forEach((keeper, i) => {
    const cursors = keeper.records.map((r) => r.cursor);
    expect(new Set(cursors).size).toBe(cursors.length);
    const wanted = [DEVICES[i], DEVICES[(i + 1) % DEVICES.length]];
    expect(keeper.records.length).toBe(wanted.reduce((sum, d) => sum + published.get(d)!, 0));
  });

  for (const client of stalled) (client.ws as unknown as { _socket: net.Socket })._socket.resume();
  await Promise.all([...keepers, ...stalled].map((c) => c.close()));
  await runtime.gateway.settle();
}, 120_000);
