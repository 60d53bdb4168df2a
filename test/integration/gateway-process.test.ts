/**
 * The local gateway with its socket side in a child process: real `ws` clients, the Management API
 * over HTTP, handlers run in this process at the child's request. The last tests show why it is a
 * process: while a handler holds this process's event loop, the gateway still answers.
 */
import { spawn } from 'node:child_process';
import net from 'node:net';
import { Worker } from 'node:worker_threads';
import type { APIGatewayAuthorizerResult, APIGatewayRequestAuthorizerEvent } from 'aws-lambda';
import WebSocket from 'ws';
import { LocalGateway, type GatewayHandlers, type GatewayOptions } from '../../local/gateway';
import type { WebSocketEvent } from '../../lambdas/handlers/types';

/** A raw client: every text frame received, and the close code. */
interface Client {
  ws: WebSocket;
  messages: string[];
  closed: Promise<number>;
  /** Resolves once `count` messages have arrived. */
  received(count: number): Promise<string[]>;
}

function open(url: string): Promise<Client> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    const messages: string[] = [];
    const waiters: (() => void)[] = [];
    ws.on('message', (data) => {
      messages.push(data.toString());
      waiters.splice(0).forEach((wake) => wake());
    });
    const closed = new Promise<number>((done) => ws.once('close', (code) => done(code)));
    const received = async (count: number) => {
      while (messages.length < count) await new Promise<void>((wake) => waiters.push(wake));
      return messages;
    };
    ws.once('open', () => resolve({ ws, messages, closed, received }));
    ws.once('unexpected-response', (_req, res) =>
      reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode, headers: res.headers })),
    );
    ws.once('error', reject);
  });
}

function policy(effect: 'Allow' | 'Deny', context: Record<string, string> = {}): APIGatewayAuthorizerResult {
  return {
    principalId: 'tester',
    policyDocument: { Version: '2012-10-17', Statement: [{ Effect: effect, Action: 'execute-api:Invoke', Resource: '*' }] },
    context,
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Holds this thread's event loop, as a long synchronous batch does. */
function spin(ms: number): void {
  const end = Date.now() + ms;
  while (Date.now() < end);
}

/** Handlers that record what they were invoked with; `echo` replies with the body it got. */
function recordingHandlers(extra: Partial<GatewayHandlers> = {}) {
  const connects: WebSocketEvent[] = [];
  const disconnects: WebSocketEvent[] = [];
  const handlers: GatewayHandlers = {
    authorizer: async (event: APIGatewayRequestAuthorizerEvent) =>
      event.queryStringParameters?.token === 'good' ? policy('Allow', { sub: 'operator-7' }) : policy('Deny'),
    connect: async (event) => {
      connects.push(event);
      return { statusCode: 200 };
    },
    disconnect: async (event) => {
      disconnects.push(event);
      return { statusCode: 200 };
    },
    routes: {
      echo: async (event) => {
        // A message may take longer than those sent after it.
        const { delay = 0 } = JSON.parse(event.body ?? '{}') as { delay?: number };
        await sleep(delay);
        return { statusCode: 200, body: `${event.requestContext.routeKey}:${event.body}:${event.requestContext.authorizer?.sub}` };
      },
      $default: async (event) => ({ statusCode: 200, body: `default:${event.body}` }),
    },
    ...extra,
  };
  return { handlers, connects, disconnects };
}

const gateways: LocalGateway[] = [];

async function startGateway(handlers: GatewayHandlers, options: GatewayOptions = {}): Promise<LocalGateway> {
  const gateway = new LocalGateway(handlers, { port: 0, ...options });
  gateways.push(gateway);
  await gateway.start();
  return gateway;
}

afterEach(async () => {
  await Promise.all(gateways.splice(0).map((gateway) => gateway.stop()));
});

describe('the gateway process', () => {
  it('accepts an authorized connect, refuses a denied one with 403, and runs $connect with the authorizer context', async () => {
    const { handlers, connects } = recordingHandlers();
    const gateway = await startGateway(handlers);
    await expect(open(`${gateway.url}/?token=bad`)).rejects.toMatchObject({ status: 403 });
    const client = await open(`${gateway.url}/?token=good`);
    expect(connects).toHaveLength(1);
    expect(connects[0].requestContext).toMatchObject({ eventType: 'CONNECT', routeKey: '$connect', authorizer: { sub: 'operator-7', principalId: 'tester' } });
    expect(connects[0].queryStringParameters).toEqual({ token: 'good' });
    client.ws.close();
    await client.closed;
  });

  it('routes on the action and replies as each handler finishes, as API Gateway does: a slow message holds back none sent after it', async () => {
    const { handlers } = recordingHandlers();
    const gateway = await startGateway(handlers);
    const client = await open(`${gateway.url}/?token=good`);
    const frames = [
      { action: 'echo', n: 1, delay: 150 },
      { action: 'echo', n: 2, delay: 0 },
      { action: 'constructor', n: 3 },
      { action: 'echo', n: 4, delay: 50 },
    ].map((frame) => JSON.stringify(frame));
    frames.forEach((frame) => client.ws.send(frame));
    const replies = await client.received(4);
    expect([...replies].sort()).toEqual([`default:${frames[2]}`, ...[0, 1, 3].map((n) => `echo:${frames[n]}:operator-7`)].sort());
    // The 150 ms message last, after the 50 ms one; the two that take no time first.
    expect(replies.slice(2)).toEqual([`echo:${frames[3]}:operator-7`, `echo:${frames[0]}:operator-7`]);
    client.ws.close();
    await client.closed;
  });

  it("invokes a connection's messages at once, as API Gateway does, each replied to when it ends; $disconnect waits for them", async () => {
    const started: number[] = [];
    const held: (() => void)[] = [];
    const { handlers, disconnects } = recordingHandlers({
      routes: {
        $default: async (event) => {
          const { n } = JSON.parse(event.body!) as { n: number };
          started.push(n);
          // The first message is held until every other one has started: one at a time, it never would.
          if (n === 0) await new Promise<void>((release) => held.push(release));
          if (started.length === 50) held.forEach((release) => release());
          return { statusCode: 200, body: String(n) };
        },
      },
    });
    const gateway = await startGateway(handlers);
    const client = await open(`${gateway.url}/?token=good`);
    for (let n = 0; n < 50; n++) client.ws.send(JSON.stringify({ n }));
    const replies = await client.received(50);
    expect([...replies].sort((a, b) => Number(a) - Number(b))).toEqual(Array.from({ length: 50 }, (_, n) => String(n)));
    // The held first message is answered after the ones it was holding: none waited for it.
    expect(replies.indexOf('0')).toBeGreaterThan(replies.indexOf('49'));
    expect(started.slice(0, 2)).toEqual([0, 1]);
    // A close while messages are under way: its $disconnect comes after their replies.
    for (let n = 0; n < 3; n++) client.ws.send(JSON.stringify({ n: 100 + n }));
    client.ws.close();
    await client.closed;
    await gateway.settle();
    expect(started).toHaveLength(53);
    expect(disconnects).toHaveLength(1);
  });

  it('hands every message route the event API Gateway would send, the hundredth as the first', async () => {
    const events: WebSocketEvent[] = [];
    const { handlers } = recordingHandlers({
      routes: {
        $default: async (event) => {
          events.push(event);
          return { statusCode: 200, body: 'ok' };
        },
      },
    });
    const gateway = await startGateway(handlers);
    const client = await open(`${gateway.url}/?token=good`);
    for (let n = 0; n < 100; n++) client.ws.send(n % 2 ? `{"n":${n}}` : Buffer.from([n]));
    await client.received(100);
    const ids = new Set(events.map((event) => event.requestContext.requestId));
    expect(ids.size).toBe(100);
    for (const [n, event] of events.entries()) {
      expect(Object.keys(event.requestContext).sort()).toEqual(Object.keys(events[0].requestContext).sort());
      expect(event.requestContext).toMatchObject({
        eventType: 'MESSAGE',
        routeKey: '$default',
        connectionId: events[0].requestContext.connectionId,
        connectedAt: events[0].requestContext.connectedAt,
        authorizer: { sub: 'operator-7', principalId: 'tester' },
      });
      expect(event.requestContext.messageId).not.toBe(n ? events[0].requestContext.messageId : undefined);
      expect(event.body).toBe(n % 2 ? `{"n":${n}}` : Buffer.from([n]).toString('base64'));
      expect(event.isBase64Encoded).toBe(n % 2 === 0);
    }
    // Each event's authorizer context is its own object, as each event from AWS is.
    expect(events[1].requestContext.authorizer).not.toBe(events[2].requestContext.authorizer);
    client.ws.close();
    await client.closed;
  });

  it('runs $disconnect with the close code when a client leaves, and mirrors the open count', async () => {
    const { handlers, connects, disconnects } = recordingHandlers();
    const gateway = await startGateway(handlers);
    // One after the other, so that the i-th $connect is the i-th client's.
    const clients: Client[] = [];
    for (let i = 0; i < 3; i++) clients.push(await open(`${gateway.url}/?token=good`));
    await gateway.settle();
    expect(gateway.connectionCount).toBe(3);
    clients[0].ws.close(4000, 'bye');
    await clients[0].closed;
    await gateway.settle();
    expect(gateway.connectionCount).toBe(2);
    expect(disconnects).toHaveLength(1);
    expect(disconnects[0].requestContext).toMatchObject({
      eventType: 'DISCONNECT',
      connectionId: connects[0].requestContext.connectionId,
      disconnectStatusCode: 4000,
      disconnectReason: 'bye',
    });
    clients.slice(1).forEach((client) => client.ws.terminate());
    await Promise.all(clients.map((client) => client.closed));
    // A terminated client's side closes at once; the gateway learns it when it reads the reset,
    // which on a loaded machine can come after a settle that finds nothing under way yet.
    await gateway.settle();
    for (let tries = 0; tries < 100 && gateway.connectionCount > 0; tries++) {
      await sleep(20);
      await gateway.settle();
    }
    expect(gateway.connectionCount).toBe(0);
    expect(disconnects).toHaveLength(3);
  });

  it('settle() waits for messages still queued in the child behind a running handler', async () => {
    const started: number[] = [];
    const finished: number[] = [];
    const { handlers } = recordingHandlers({
      routes: {
        $default: async (event) => {
          const { n } = JSON.parse(event.body!) as { n: number };
          started.push(n);
          await sleep(100);
          finished.push(n);
          return { statusCode: 200 };
        },
      },
    });
    const gateway = await startGateway(handlers);
    const client = await open(`${gateway.url}/?token=good`);
    [1, 2, 3].forEach((n) => client.ws.send(JSON.stringify({ n })));
    // Once the first runs, the other two wait in the child, where this process cannot see them.
    while (!started.length) await sleep(5);
    await gateway.settle();
    expect(finished).toEqual([1, 2, 3]);
    client.ws.close();
    await client.closed;
  });

  it('serves the Management API: POST delivers, GET describes, DELETE closes; 410 for unknown ids, 404 without the secret', async () => {
    const { handlers, connects } = recordingHandlers();
    const gateway = await startGateway(handlers);
    const client = await open(`${gateway.url}/?token=good`);
    const id = connects[0].requestContext.connectionId;
    const at = (connectionId: string) => `${gateway.managementUrl}/@connections/${encodeURIComponent(connectionId)}`;

    const posted = await fetch(at(id), { method: 'POST', body: '{"type":"pong","timestamp":1}' });
    expect(posted.status).toBe(200);
    expect(await client.received(1)).toEqual(['{"type":"pong","timestamp":1}']);

    const described = await fetch(at(id));
    expect(described.status).toBe(200);
    expect(await described.json()).toMatchObject({ ConnectedAt: expect.any(String), Identity: { SourceIp: expect.stringContaining('127.0.0.1') } });

    const unknown = await fetch(at('nobody-here='), { method: 'POST', body: 'x' });
    expect(unknown.status).toBe(410);
    expect(unknown.headers.get('x-amzn-errortype')).toBe('GoneException');

    const wrongSecret = await fetch(`http://localhost:${gateway.port}/not-the-secret/@connections/${id}`, { method: 'POST', body: 'x' });
    expect(wrongSecret.status).toBe(404);

    expect((await fetch(at(id), { method: 'DELETE' })).status).toBe(204);
    expect(await client.closed).toBe(1000);
    expect((await fetch(at(id), { method: 'POST', body: 'x' })).status).toBe(410);
    await gateway.settle();
    expect(gateway.managementStats).toEqual({ posts: 3, throttled: 0 });
    expect(gateway.connectionCount).toBe(0);
  });

  it('stop() closes every client with 1001 after their $disconnect, and start() listens again on the same port and endpoint', async () => {
    const { handlers, disconnects } = recordingHandlers();
    const gateway = await startGateway(handlers);
    const [port, managementUrl] = [gateway.port, gateway.managementUrl];
    const clients = await Promise.all([1, 2].map(() => open(`${gateway.url}/?token=good`)));
    await gateway.stop();
    expect(gateway.running).toBe(false);
    expect(await Promise.all(clients.map((client) => client.closed))).toEqual([1001, 1001]);
    expect(disconnects).toHaveLength(2);
    expect(gateway.connectionCount).toBe(0);
    await expect(open(`${gateway.url}/?token=good`)).rejects.toMatchObject({ code: 'ECONNREFUSED' });

    await gateway.start();
    expect([gateway.port, gateway.managementUrl]).toEqual([port, managementUrl]);
    const again = await open(`${gateway.url}/?token=good`);
    await gateway.settle();
    expect(gateway.connectionCount).toBe(1);
    again.ws.close();
    await again.closed;
  });

  it('refuses upgrades beyond the pending-handshake bound with a retryable 429, and lets the waiting ones through', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const { handlers } = recordingHandlers({
      connect: async () => {
        await gate;
        return { statusCode: 200 };
      },
    });
    const gateway = await startGateway(handlers, { maxPendingHandshakes: 2 });
    const waiting = [open(`${gateway.url}/?token=good`), open(`${gateway.url}/?token=good`)];
    // The two are past the authorizer, waiting on $connect.
    await sleep(200);
    await expect(open(`${gateway.url}/?token=good`)).rejects.toMatchObject({
      status: 429,
      headers: expect.objectContaining({ 'retry-after': '1', 'x-amzn-errortype': 'LimitExceededException' }),
    });
    release();
    const clients = await Promise.all(waiting);
    clients.forEach((client) => client.ws.close());
    await Promise.all(clients.map((client) => client.closed));
  });

  it('ends when the process that started it dies', async () => {
    const script = `const { LocalGateway } = require(${JSON.stringify(require.resolve('../../local/gateway'))});
      const noop = async () => ({ statusCode: 200 });
      const gateway = new LocalGateway({ connect: noop, disconnect: noop, routes: { $default: noop } }, { port: 0 });
      gateway.start().then(() => console.log(gateway.port));`;
    const parent = spawn(process.execPath, ['--import', 'tsx', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const port = await new Promise<number>((resolve) => parent.stdout.once('data', (data: Buffer) => resolve(Number(String(data).trim()))));
    const listening = () =>
      new Promise<boolean>((resolve) => {
        const socket = net.connect(port, '127.0.0.1');
        socket.once('connect', () => resolve(!!socket.destroy()));
        socket.once('error', () => resolve(false));
      });
    expect(await listening()).toBe(true);
    parent.kill('SIGKILL');
    let stillListening = true;
    for (let i = 0; i < 50 && stillListening; i++) {
      await sleep(100);
      stillListening = await listening();
    }
    expect(stillListening).toBe(false);
  });
});

/**
 * A client on a thread of its own (this thread's loop is the one the handler holds): it opens two
 * connections, sends `block` on one, and while that handler holds this thread pings on the other
 * every 100 ms and asks the Management API about an unknown id after 500 ms, noting when each was
 * sent and answered.
 */
const PROBE = `
const { parentPort, workerData } = require('node:worker_threads');
const WebSocket = require(workerData.ws);
const open = () => new Promise((resolve, reject) => {
  const ws = new WebSocket(workerData.url);
  ws.once('open', () => resolve(ws));
  ws.once('error', reject);
});
(async () => {
  const [blocker, pinger] = await Promise.all([open(), open()]);
  const pings = [];
  const sent = [];
  pinger.on('pong', () => pings.push({ sent: sent.shift(), answered: Date.now() }));
  blocker.send(JSON.stringify({ action: 'block' }));
  const timer = setInterval(() => { sent.push(Date.now()); pinger.ping(); }, 100);
  const management = new Promise((resolve) => setTimeout(async () => {
    const at = Date.now();
    const res = await fetch(workerData.managementUrl + '/@connections/nobody-here%3D', { method: 'POST', body: 'x' });
    resolve({ sent: at, answered: Date.now(), status: res.status });
  }, 500));
  const reply = await new Promise((resolve) => blocker.once('message', () => resolve(Date.now())));
  await new Promise((resolve) => setTimeout(resolve, 300));
  clearInterval(timer);
  parentPort.postMessage({ pings, management: await management, reply });
  blocker.terminate();
  pinger.terminate();
})();
`;

interface Probe {
  pings: { sent: number; answered: number }[];
  management: { sent: number; answered: number; status: number };
  reply: number;
}

async function probeWhileBlocked(inProcess: boolean) {
  const window = { start: 0, end: 0 };
  const { handlers } = recordingHandlers({
    authorizer: undefined,
    routes: {
      block: async () => {
        window.start = Date.now();
        spin(2000);
        window.end = Date.now();
        return { statusCode: 200, body: 'unblocked' };
      },
      $default: async () => ({ statusCode: 200 }),
    },
  });
  const gateway = await startGateway(handlers, { inProcess });
  const worker = new Worker(PROBE, { eval: true, workerData: { ws: require.resolve('ws'), url: gateway.url, managementUrl: gateway.managementUrl } });
  const probe = await new Promise<Probe>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  await worker.terminate();
  // Pings sent well inside the block, so that none of them raced its start or its end.
  const during = probe.pings.filter((ping) => ping.sent > window.start + 100 && ping.sent < window.end - 300);
  return { window, probe, during };
}

describe('while a handler holds the handlers\' event loop for 2 s', () => {
  it('the gateway process still answers pings and the Management API at once', async () => {
    const { window, probe, during } = await probeWhileBlocked(false);
    expect(window.end - window.start).toBeGreaterThanOrEqual(2000);
    expect(during.length).toBeGreaterThanOrEqual(10);
    for (const ping of during) {
      expect(ping.answered - ping.sent).toBeLessThan(250);
      expect(ping.answered).toBeLessThan(window.end);
    }
    expect(probe.management.status).toBe(410);
    expect(probe.management.answered).toBeLessThan(window.end);
    expect(probe.reply).toBeGreaterThanOrEqual(window.end);
  });

  it('in-process, as before, nothing is answered until the handler lets go', async () => {
    const { window, probe, during } = await probeWhileBlocked(true);
    expect(during.length).toBeGreaterThanOrEqual(10);
    for (const ping of during) expect(ping.answered).toBeGreaterThanOrEqual(window.end);
    expect(probe.management.answered).toBeGreaterThanOrEqual(window.end);
  });
});
