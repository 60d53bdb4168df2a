/**
 * A benchmark client process: holds thousands of real `ws` connections to the local gateway,
 * subscribes each with its filters through the real protocol, and counts what arrives (records,
 * cursor hashes, frames, bytes, end-to-end latency). It runs as a child process of the harness so
 * that client work is never counted as server work. Driven over IPC by bench/fanout.ts.
 */
import WebSocket from 'ws';
import { parseServerFrame, unpackFrame, type Filter } from '../lambdas/core/protocol';
import { LatencyHistogram } from './stats';
import { fnv1a } from './workload';
import { errorMessage } from '../lambdas/core/errors';

/** Commands from the harness. */
export type WorkerCommand =
  | { cmd: 'connect'; url: string; clients: { index: number; filters: Filter[] }[]; concurrency: number }
  | { cmd: 'reset' }
  | { cmd: 'counts' }
  | { cmd: 'report' }
  | { cmd: 'close' };

/** What one client saw in a phase. */
export interface ClientTally {
  index: number;
  received: number;
  hash: number;
  frames: number;
  bytes: number;
}

/** Replies to the harness. */
export type WorkerReply =
  | { type: 'ready' }
  | { type: 'connected'; ok: number; failed: number; error?: string; ms: number }
  | { type: 'reset' }
  | { type: 'counts'; received: number; closed: number }
  | {
      type: 'report';
      clients: ClientTally[];
      histogram: ReturnType<LatencyHistogram['toSparse']>;
      /** Alerts alone: under pacing they must not wait behind telemetry. */
      alertHistogram: ReturnType<LatencyHistogram['toSparse']>;
      cpuMs: number;
      rss: number;
      closed: number;
      errors: number;
    }
  | { type: 'closed' };

interface Client extends ClientTally {
  socket: WebSocket;
}

const clients: Client[] = [];
let histogram = new LatencyHistogram();
let alertHistogram = new LatencyHistogram();
let received = 0;
let closed = 0;
let errors = 0;
let cpuStart = process.cpuUsage();

function send(reply: WorkerReply): void {
  process.send?.(reply);
}

function onData(client: Client, data: WebSocket.RawData): void {
  const text = data.toString();
  client.frames++;
  client.bytes += Buffer.byteLength(text);
  const now = Date.now();
  let frame;
  try {
    frame = parseServerFrame(text);
  } catch {
    errors++;
    return;
  }
  for (const inner of unpackFrame(frame)) {
    if ((inner.type === 'device_data' || inner.type === 'alert') && inner.cursor) {
      client.received++;
      received++;
      client.hash = (client.hash + fnv1a(inner.cursor)) >>> 0;
      histogram.add(now - inner.data.timestamp);
      if (inner.type === 'alert') alertHistogram.add(now - inner.data.timestamp);
    }
  }
}

function openClient(url: string, index: number, filters: Filter[]): Promise<Client> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, { perMessageDeflate: false });
    const client: Client = { index, socket, received: 0, hash: 0, frames: 0, bytes: 0 };
    let pending = filters.length;
    const timer = setTimeout(() => reject(new Error(`client ${index}: no subscribed reply in 60 s`)), 60_000);
    socket.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.on('close', () => closed++);
    socket.once('open', () => {
      const onReply = (data: WebSocket.RawData) => {
        const frame = parseServerFrame(data.toString());
        if (frame.type === 'error') {
          clearTimeout(timer);
          reject(new Error(`client ${index}: ${frame.code} ${frame.message}`));
        } else if (frame.type === 'subscribed' && --pending === 0) {
          clearTimeout(timer);
          socket.off('message', onReply);
          socket.on('message', (d) => onData(client, d));
          socket.on('error', () => errors++);
          resolve(client);
        }
      };
      socket.on('message', onReply);
      filters.forEach((filter, i) => socket.send(JSON.stringify({ action: 'subscribe', id: `s${i}`, filter })));
    });
  });
}

async function connectAll(command: Extract<WorkerCommand, { cmd: 'connect' }>): Promise<void> {
  const started = Date.now();
  let next = 0;
  let ok = 0;
  let failed = 0;
  let firstError: string | undefined;
  const worker = async () => {
    while (next < command.clients.length) {
      const spec = command.clients[next++];
      try {
        clients.push(await openClient(command.url, spec.index, spec.filters));
        ok++;
      } catch (error) {
        failed++;
        firstError ??= errorMessage(error);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, command.concurrency) }, worker));
  send({ type: 'connected', ok, failed, error: firstError, ms: Date.now() - started });
}

process.on('message', (command: WorkerCommand) => {
  switch (command.cmd) {
    case 'connect':
      void connectAll(command);
      break;
    case 'reset':
      for (const client of clients) {
        client.received = client.hash = client.frames = client.bytes = 0;
      }
      histogram = new LatencyHistogram();
      alertHistogram = new LatencyHistogram();
      received = 0;
      errors = 0;
      cpuStart = process.cpuUsage();
      send({ type: 'reset' });
      break;
    case 'counts':
      send({ type: 'counts', received, closed });
      break;
    case 'report': {
      const cpu = process.cpuUsage(cpuStart);
      send({
        type: 'report',
        clients: clients.map(({ index, received: r, hash, frames, bytes }) => ({ index, received: r, hash, frames, bytes })),
        histogram: histogram.toSparse(),
        alertHistogram: alertHistogram.toSparse(),
        cpuMs: (cpu.user + cpu.system) / 1000,
        rss: process.memoryUsage().rss,
        closed,
        errors,
      });
      break;
    }
    case 'close': {
      for (const client of clients) client.socket.terminate();
      send({ type: 'closed' });
      setTimeout(() => process.exit(0), 50);
      break;
    }
  }
});

process.on('disconnect', () => process.exit(0));
send({ type: 'ready' });
