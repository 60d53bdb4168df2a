/**
 * LiveSocket's connection life cycle, driven through a scripted socket and fake timers, so that
 * hours (heartbeats, the 2 hour renewal) pass in milliseconds. The browser tests cover the same
 * client against the real local runtime.
 */
import { subscribeFrameSchema, type ClientFrame, type NormalisedFilter, type ResumedFrame, type ServerFrame } from '../../lambdas/core/protocol';
import { LiveSocket, type ConnectionState } from '../../frontend/src/ws-client';
import { ScriptedSocket } from '../support/scripted-socket';

const normalised: NormalisedFilter = { types: ['alert', 'device_data'], deviceIds: ['pump-001'], deviceTypes: [], locations: [], alertLevels: [], sites: ['*'] };
const reading = (cursor: string): ServerFrame => ({
  type: 'device_data',
  cursor,
  timestamp: 1,
  data: { deviceId: 'pump-001', deviceType: 'pump', location: 'l', status: 'online', timestamp: 1, metrics: { t: 1 } },
});

/** A reading of pump-001 at `timestamp`, with a cursor of the product's topics. */
const at = (cursor: string, timestamp: number): ServerFrame => ({
  type: 'device_data',
  cursor,
  timestamp,
  data: { deviceId: 'pump-001', deviceType: 'pump', location: 'l', status: 'online', timestamp, metrics: { t: timestamp } },
});

/**
 * The `resume` of a sent subscribe, read with the server's own schema (so it is one the server
 * takes); undefined when the frame has none.
 */
function resumeOf(frame: ClientFrame | undefined): Record<string, number> | undefined {
  const parsed = subscribeFrameSchema.parse(frame);
  return parsed.resume ? Object.fromEntries(parsed.resume) : undefined;
}

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

describe('resume after a reconnect (DESIGN.md "Resume")', () => {
  /** A client with subscriptions a and b live on a first socket that received `records`, then lost it and reopened. */
  function reconnected(records: ServerFrame[], options: Partial<ConstructorParameters<typeof LiveSocket>[0]> = {}) {
    const harness = setup(options);
    const { client, last } = harness;
    const resumed: ResumedFrame[] = [];
    const order: string[] = [];
    client.on('resumed', (frame) => {
      resumed.push(frame);
      order.push(`resumed ${frame.id}`);
    });
    client.on('device_data', (frame) => order.push(frame.cursor ?? ''));
    client.subscribe({ deviceIds: ['pump-001'] }, 'a');
    client.subscribe({ alertLevels: ['critical'] }, 'b');
    client.connect();
    last().open();
    last().confirmAll();
    for (const record of records) last().receive(record);
    last().drop();
    jest.advanceTimersByTime(1000);
    last().open();
    return { ...harness, resumed, order };
  }

  test('the re-subscribe of each live subscription carries the last offset received per partition', () => {
    const { last } = reconnected([
      at('device-data:0:5', 1),
      { type: 'batch', messages: [at('device-data:0:7', 2), at('device-data:1:3', 3)] as never },
      // Late within its partition: the newest offset stays.
      at('device-data:0:6', 4),
      { type: 'alert', cursor: 'alerts:2:9', timestamp: 5, data: { alertId: 'a-1', deviceId: 'pump-001', deviceType: 'pump', location: 'l', level: 'critical', message: 'hot', timestamp: 5 } },
      // Not a product topic: the server would refuse the whole subscribe for it, so it is never named.
      at('d:0:1', 6),
    ]);
    const sent = last().sent;
    expect(sent.map((frame) => frame.action === 'subscribe' && frame.id)).toEqual(['a', 'b']);
    for (const frame of sent) expect(resumeOf(frame)).toEqual({ 'device-data:0': 7, 'device-data:1': 3, 'alerts:2': 9 });
  });

  test('no resume on a first subscribe, for a subscription made since the loss, or for one made while connected', () => {
    const { client, last } = setup();
    client.subscribe({}, 'a');
    client.connect();
    last().open();
    expect(resumeOf(last().sent[0])).toBeUndefined();
    last().confirmAll();
    last().receive(at('device-data:0:1', 1));
    client.subscribe({ deviceIds: ['x'] }, 'live');
    expect(resumeOf(last().sent[1])).toBeUndefined();
    last().confirmAll();
    last().drop();
    client.subscribe({ deviceIds: ['y'] }, 'new');
    // A filter changed while away starts from its snapshot too.
    client.subscribe({ deviceIds: ['z'] }, 'live');
    jest.advanceTimersByTime(1000);
    last().open();
    expect(Object.fromEntries(last().sent.map((frame) => [frame.action === 'subscribe' && frame.id, resumeOf(frame)]))).toEqual({
      a: { 'device-data:0': 1 },
      live: undefined,
      new: undefined,
    });
  });

  test('a socket that fails before its subscriptions are confirmed resumes them on the next one', () => {
    const { last } = reconnected([at('device-data:0:4', 1)]);
    last().drop();
    jest.advanceTimersByTime(2000);
    last().open();
    expect(last().sent.map(resumeOf)).toEqual([{ 'device-data:0': 4 }, { 'device-data:0': 4 }]);
  });

  test('a renewal sends no resume: the old socket still delivers until the new one is subscribed', () => {
    const { client, sockets } = setup();
    client.subscribe({}, 'a');
    client.connect();
    sockets[0].open();
    sockets[0].confirmAll();
    sockets[0].receive(at('device-data:0:1', 1));
    client.renew();
    sockets[1].open();
    expect(sockets[1].sent).toEqual([{ action: 'subscribe', id: 'a', filter: {} }]);
  });

  test('records are held until every replay ends, then reach the app once each, in offset order per partition', () => {
    const { client, last, records, resumed, order } = reconnected([at('device-data:0:9', 9)]);
    const before = records.length;
    last().confirmAll();
    // Live records of both partitions arrive ahead of the replay that precedes them.
    last().receive({ type: 'batch', messages: [at('device-data:0:12', 12), at('device-data:1:4', 12)] as never });
    last().receive({ type: 'batch', messages: [at('device-data:0:10', 10), at('device-data:1:3', 10.5), at('device-data:0:11', 11), at('device-data:0:12', 12)] as never });
    last().receive({ type: 'resumed', id: 'a', replayed: 4 });
    expect(records).toHaveLength(before);
    // b's replay had nothing for it.
    last().receive({ type: 'resumed', id: 'b', replayed: 0 });
    expect(order.slice(-7)).toEqual(['resumed a', 'device-data:0:10', 'device-data:1:3', 'device-data:0:11', 'device-data:0:12', 'device-data:1:4', 'resumed b']);
    expect(resumed).toEqual([
      { type: 'resumed', id: 'a', replayed: 4 },
      { type: 'resumed', id: 'b', replayed: 0 },
    ]);
    expect(client.stats.duplicatesDropped).toBe(1);
    // Live again: records pass at once.
    last().receive(at('device-data:0:13', 13));
    expect(records[records.length - 1]).toBe('device-data:0:13');
    expect(client.stats).toMatchObject({ resumes: 2, tooFarBehind: 0 });
  });

  test('too far behind: the app is told, and the snapshot that follows is delivered as for a first subscribe', () => {
    const { client, last, records, resumed } = reconnected([at('device-data:0:9', 9)]);
    last().confirmAll();
    last().receive({ type: 'resumed', id: 'a', replayed: 0, tooFarBehind: true });
    last().receive({ type: 'snapshot', id: 'a', messages: [at('device-data:2:1', 30)] as never, final: true });
    last().receive({ type: 'resumed', id: 'b', replayed: 0, tooFarBehind: true });
    last().receive({ type: 'snapshot', id: 'b', messages: [], final: true });
    expect(resumed.map((frame) => frame.tooFarBehind)).toEqual([true, true]);
    expect(records.slice(-2)).toEqual(['device-data:0:9', 'device-data:2:1']);
    last().receive(at('device-data:0:40', 40));
    expect(records[records.length - 1]).toBe('device-data:0:40');
    expect(client.stats.tooFarBehind).toBe(2);
    // A snapshot's cursor (possibly hours old) is never named in a later resume.
    last().drop();
    jest.advanceTimersByTime(1000);
    last().open();
    expect(resumeOf(last().sent[0])).toEqual({ 'device-data:0': 40 });
  });

  test('a refused resume comes back as a plain subscribe: the subscription is not lost', () => {
    const { client, last, records } = reconnected([at('device-data:0:9', 9)]);
    const errors: string[] = [];
    client.on('error', (error) => errors.push(error.message));
    last().receive({ type: 'error', code: 'rate_limited', message: 'too many index writes', id: 'b' });
    const retried = last().sent.slice(2);
    expect(retried).toEqual([{ action: 'subscribe', id: 'b', filter: { alertLevels: ['critical'] } }]);
    expect(client.subscriptions.find((entry) => entry.id === 'b')?.state).toBe('pending');
    expect(errors).toEqual(['rate_limited: too many index writes (resume dropped)']);
    // a still replays; b no longer holds the records back.
    last().receive({ type: 'subscribed', id: 'a', filter: normalised });
    last().receive(at('device-data:0:10', 10));
    last().receive({ type: 'resumed', id: 'a', replayed: 1 });
    expect(records[records.length - 1]).toBe('device-data:0:10');
    last().receive({ type: 'subscribed', id: 'b', filter: normalised });
    expect(client.subscriptions.map((entry) => entry.state)).toEqual(['active', 'active']);
    // A second refusal is the subscription's own: it is marked rejected as before.
    last().drop();
    jest.advanceTimersByTime(1000);
    last().open();
    last().receive({ type: 'error', code: 'bad_request', message: 'no', id: 'b' });
    last().receive({ type: 'error', code: 'bad_request', message: 'still no', id: 'b' });
    expect(client.subscriptions.find((entry) => entry.id === 'b')).toMatchObject({ state: 'rejected', error: 'still no' });
  });

  test('holding is bounded in time and in records', () => {
    const timed = reconnected([at('device-data:0:1', 1)], { resumeHoldMs: 5000 });
    timed.last().confirmAll();
    timed.last().receive(at('device-data:0:3', 3));
    timed.last().receive(at('device-data:0:2', 2));
    jest.advanceTimersByTime(4999);
    expect(timed.records).toEqual(['device-data:0:1']);
    jest.advanceTimersByTime(1);
    expect(timed.records).toEqual(['device-data:0:1', 'device-data:0:2', 'device-data:0:3']);

    const counted = reconnected([at('device-data:0:1', 1)], { resumeHoldRecords: 2 });
    counted.last().confirmAll();
    for (const offset of [4, 3, 2]) counted.last().receive(at(`device-data:0:${offset}`, offset));
    // The hold was full at the third: the two held go first, in order, then the third as it came.
    expect(counted.records).toEqual(['device-data:0:1', 'device-data:0:3', 'device-data:0:4', 'device-data:0:2']);
  });

  test('a server that answers a resume with a snapshot, without `resumed`, releases the hold at once', () => {
    const { last, records } = reconnected([at('device-data:0:1', 1)]);
    last().confirmAll();
    last().receive({ type: 'snapshot', id: 'a', messages: [at('device-data:0:5', 5)] as never, final: true });
    last().receive({ type: 'snapshot', id: 'b', messages: [], final: true });
    last().receive(at('device-data:0:6', 6));
    expect(records).toEqual(['device-data:0:1', 'device-data:0:5', 'device-data:0:6']);
  });

  test('a socket lost during the replay delivers what it held', () => {
    const { last, records } = reconnected([at('device-data:0:1', 1)]);
    last().confirmAll();
    last().receive(at('device-data:0:3', 3));
    last().receive(at('device-data:0:2', 2));
    last().drop();
    expect(records).toEqual(['device-data:0:1', 'device-data:0:2', 'device-data:0:3']);
    jest.advanceTimersByTime(1000);
    last().open();
    expect(resumeOf(last().sent[0])).toEqual({ 'device-data:0': 3 });
  });
});
