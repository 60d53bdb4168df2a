/**
 * LiveSocket's connection life cycle, driven through a scripted socket and fake timers, so that
 * hours (heartbeats, the 2 hour renewal) pass in milliseconds. The browser tests cover the same
 * client against the real local runtime.
 */
import type { NormalisedFilter, ServerFrame } from '../../lambdas/core/protocol';
import { LiveSocket, type ConnectionState } from '../../frontend/src/ws-client';
import { ScriptedSocket } from '../support/scripted-socket';

const normalised: NormalisedFilter = { types: ['alert', 'device_data'], deviceIds: ['pump-001'], deviceTypes: [], locations: [], alertLevels: [], sites: ['*'] };
const reading = (cursor: string): ServerFrame => ({
  type: 'device_data',
  cursor,
  timestamp: 1,
  data: { deviceId: 'pump-001', deviceType: 'pump', location: 'l', status: 'online', timestamp: 1, metrics: { t: 1 } },
});

function setup(options: Partial<ConstructorParameters<typeof LiveSocket>[0]> = {}) {
  const sockets: ScriptedSocket[] = [];
  const client = new LiveSocket({
    url: 'ws://gw/?token=t',
    createSocket: (url) => {
      const socket = new ScriptedSocket(url, normalised);
      sockets.push(socket);
      return socket;
    },
    random: () => 0.5,
    ...options,
  });
  const states: ConnectionState[] = [];
  const records: string[] = [];
  client.on('state', (state) => states.push(state));
  client.on('device_data', (frame) => records.push(frame.cursor ?? ''));
  return { client, sockets, states, records, last: () => sockets[sockets.length - 1] };
}

beforeEach(() => jest.useFakeTimers());
afterEach(() => jest.useRealTimers());

test('subscriptions made before the socket opens are sent when it opens; batches are unpacked and duplicates dropped', () => {
  const { client, last, records } = setup();
  const id = client.subscribe({ deviceIds: ['pump-001'] });
  client.connect();
  expect(client.state.status).toBe('connecting');
  last().open();
  expect(last().sent).toEqual([{ action: 'subscribe', id, filter: { deviceIds: ['pump-001'] } }]);
  last().confirmAll();
  expect(client.subscriptions[0]).toMatchObject({ id, state: 'active', normalised });
  last().receive({ type: 'batch', messages: [reading('d:0:1'), reading('d:0:2')] as never });
  last().receive(reading('d:0:2'));
  expect(records).toEqual(['d:0:1', 'd:0:2']);
  expect(client.stats.duplicatesDropped).toBe(1);
});

test('a lost socket is retried with backoff and every subscription is restored', () => {
  const { client, sockets, last, states } = setup();
  client.subscribe({ deviceIds: ['pump-001'] }, 'a');
  client.subscribe({ alertLevels: ['critical'] }, 'b');
  client.connect();
  last().open();
  last().confirmAll();
  last().drop();
  expect(client.state).toMatchObject({ status: 'reconnecting', retry: 1 });
  expect(client.subscriptions.map((entry) => entry.state)).toEqual(['pending', 'pending']);
  // random() = 0.5: the first retry waits half of 1 s.
  jest.advanceTimersByTime(499);
  expect(sockets).toHaveLength(1);
  jest.advanceTimersByTime(1);
  expect(sockets).toHaveLength(2);
  last().drop();
  expect(client.state).toMatchObject({ status: 'reconnecting', retry: 2 });
  jest.advanceTimersByTime(1000);
  expect(sockets).toHaveLength(3);
  last().open();
  expect(last().sent.map((frame) => frame.action === 'subscribe' && frame.id)).toEqual(['a', 'b']);
  last().confirmAll();
  expect(client.state).toMatchObject({ status: 'connected', retry: 0 });
  expect(states.map((state) => `${state.status}${state.retry || ''}`)).toEqual([
    'connecting',
    'connected',
    'reconnecting1',
    'reconnecting2',
    'connected',
  ]);
  expect(client.stats.reconnects).toBe(1);
});

test('unsubscribe while disconnected is not re-sent on reconnect', () => {
  const { client, last } = setup();
  client.subscribe({}, 'a');
  client.subscribe({}, 'b');
  client.connect();
  last().open();
  last().drop();
  client.unsubscribe('a');
  jest.advanceTimersByTime(1000);
  last().open();
  expect(last().sent).toEqual([{ action: 'subscribe', id: 'b', filter: {} }]);
});

test('heartbeat: a ping every 5 minutes; no answer within 20 s counts as a lost socket', () => {
  const { client, last, sockets } = setup();
  client.connect();
  last().open();
  jest.advanceTimersByTime(5 * 60_000);
  expect(last().sent).toEqual([{ action: 'ping' }]);
  last().receive({ type: 'pong', timestamp: 1 });
  jest.advanceTimersByTime(5 * 60_000);
  expect(last().sent).toHaveLength(2);
  jest.advanceTimersByTime(20_000);
  expect(sockets[0].closed?.code).toBe(4000);
  expect(client.state).toMatchObject({ status: 'reconnecting', retry: 1 });
});

test('before the 2 hour limit a fresh socket is opened and subscribed before the old one is closed, unseen by the user', () => {
  const { client, sockets, states, records } = setup();
  client.subscribe({ deviceIds: ['pump-001'] }, 'a');
  client.connect();
  sockets[0].open();
  sockets[0].confirmAll();
  const statesBefore = states.length;
  for (let minute = 0; minute < 109; minute++) {
    jest.advanceTimersByTime(60_000);
    sockets[0].receive({ type: 'pong', timestamp: 1 });
  }
  expect(sockets).toHaveLength(1);
  jest.advanceTimersByTime(60_000);
  expect(sockets).toHaveLength(2);
  sockets[1].open();
  expect(sockets[1].sent).toEqual([{ action: 'subscribe', id: 'a', filter: { deviceIds: ['pump-001'] } }]);
  // Both sockets carry the same records during the overlap: each is shown once.
  sockets[0].receive(reading('d:0:10'));
  sockets[1].receive(reading('d:0:10'));
  expect(sockets[0].closed).toBeUndefined();
  sockets[1].confirmAll();
  expect(sockets[0].closed).toEqual({ code: 1000, reason: 'renewed' });
  sockets[1].receive(reading('d:0:11'));
  expect(records).toEqual(['d:0:10', 'd:0:11']);
  expect(client.stats.renewals).toBe(1);
  expect(states.slice(statesBefore).every((state) => state.status === 'connected')).toBe(true);
  // The old socket's late close event changes nothing.
  sockets[0].drop(1000);
  expect(client.state.status).toBe('connected');
});

test('a subscription refused by the server is marked rejected with its reason', () => {
  const { client, last } = setup();
  const errors: string[] = [];
  client.on('error', (error) => errors.push(error.message));
  client.subscribe({ deviceIds: ['x'] }, 'bad');
  client.connect();
  last().open();
  last().receive({ type: 'error', code: 'bad_request', message: 'filter: nope', id: 'bad' });
  expect(client.subscriptions[0]).toMatchObject({ state: 'rejected', error: 'filter: nope' });
  expect(errors).toEqual(['bad_request: filter: nope']);
});

test('disconnect() stops for good: offline, no retry', () => {
  const { client, sockets, last } = setup();
  client.connect();
  last().open();
  client.disconnect();
  expect(client.state.status).toBe('offline');
  expect(sockets[0].closed?.code).toBe(1000);
  jest.advanceTimersByTime(60 * 60_000);
  expect(sockets).toHaveLength(1);
});
