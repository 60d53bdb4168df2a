/**
 * A benchmark client process: holds thousands of real `ws` connections to the local gateway,
 * subscribes each with its filters through the real protocol, and counts what arrives (records,
 * cursor hashes, frames, bytes, end-to-end latency). It runs as a child process of the harness so
 * that client work is never counted as server work. Driven over IPC by bench/fanout.ts (`connect`,
 * `reset`, `counts`, `report`, `close`), bench/operators.ts (`open`, `measure`,
 * `operators-report`, `counts`, `close`) and bench/flood.ts (`watch`, `watch-send`, `watch-sync`,
 * `close`): its one watching user, whose every reading is reported as it arrives.
 */
import WebSocket from 'ws';
import { matchesFilter, normaliseFilter } from '../lambdas/core/filter';
import {
  parseServerFrame,
  unpackFrame,
  type AlertLevel,
  type Filter,
  type NormalisedFilter,
  type ServerFrame,
  type StreamRecord,
} from '../lambdas/core/protocol';
import { LatencyHistogram } from './stats';
import { fnv1a } from './workload';
import { errorMessage } from '../lambdas/core/errors';

/** Commands from the harness. */
export type WorkerCommand =
  | { cmd: 'connect'; url: string; clients: { index: number; filters: Filter[] }[]; concurrency: number }
  | { cmd: 'reset' }
  | { cmd: 'counts' }
  | { cmd: 'report' }
  | { cmd: 'close' }
  /** Opens operator clients, each at its due time (ms after `startAt`, epoch ms), and subscribes each. */
  | { cmd: 'open'; url: string; startAt: number; clients: OperatorSpec[]; timeoutMs: number }
  /** Starts the steady-state window: records stamped in [from, to) are measured. */
  | { cmd: 'measure'; from: number; to: number }
  /** What the operator clients saw, checked against what the runtime published in the window. */
  | { cmd: 'operators-report'; published: PublishedRecords }
  /** Opens one client and subscribes it to `filter`; each reading it then gets is reported (`reading`). */
  | { cmd: 'watch'; url: string; filter: Filter }
  /** Sends `text` on the watching client. */
  | { cmd: 'watch-send'; text: string }
  /** Answered once every reading received before it has been reported (IPC keeps the order). */
  | { cmd: 'watch-sync' };

/** An operator client to open. */
export interface OperatorSpec {
  index: number;
  filters: Filter[];
  /** When to start its upgrade, ms after the command's `startAt`. */
  dueMs: number;
}

/** The records the runtime published with timestamps in the measured window. */
export interface PublishedRecords {
  /** Readings per device, with the device's type and location. */
  readings: { deviceId: string; deviceType: string; location: string; count: number }[];
  alerts: { alertId: string; deviceId: string; deviceType: string; location: string; level: AlertLevel; timestamp: number }[];
}

/** How opening one operator client went. */
export interface OpenOutcome {
  index: number;
  /** Upgrade request to `open`, ms; undefined when it never opened. */
  connectMs?: number;
  /** Each subscribe sent to its `subscribed` reply, ms. */
  subscribeMs: number[];
  /** Why it did not end open and subscribed: `HTTP 429`, `error ECONNRESET`, `close 1006 before open`, ... */
  failure?: string;
  /** When its first upgrade started, epoch ms. */
  startedAt: number;
  /** Upgrades answered 429 (the gateway's connect queue full) and tried again, as the dashboard does. */
  retries: number;
}

/** What the operator clients saw in the window, in sum. */
export interface OperatorsTally {
  clients: number;
  /** Records and frames received while the window was open (by receipt time). */
  recordsInWindow: number;
  framesInWindow: number;
  bytesInWindow: number;
  /** Latency (receipt − record timestamp) of the records stamped in the window, and of the alerts alone. */
  histogram: ReturnType<LatencyHistogram['toSparse']>;
  alertHistogram: ReturnType<LatencyHistogram['toSparse']>;
  /** Records (live or snapshot) that match none of the receiving client's filters, since it opened. */
  outsideFilter: number;
  /** A few of them, for the report. */
  outsideExamples: string[];
  /** Records received again under a cursor the client already had, since it opened. */
  duplicates: number;
  /** Readings stamped in the window received, and the number the filters call for. */
  readingsReceived: number;
  readingsExpected: number;
  /** Alerts stamped in the window received, the number the filters call for, and those that never came. */
  alertsReceived: number;
  alertsExpected: number;
  alertsLost: number;
  /** Operator clients closed after they were open and subscribed. */
  closedAfterOpen: number;
  /** `error` frames received after subscribing, by code. */
  errorFrames: Record<string, number>;
  /** Frames that did not parse. */
  unparsed: number;
  cpuMs: number;
  rss: number;
}

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
  | { type: 'closed' }
  | { type: 'opened'; outcomes: OpenOutcome[] }
  | { type: 'measuring' }
  | { type: 'operators-report'; tally: OperatorsTally }
  | { type: 'watching' }
  /** A reading the watching client got: its record's timestamp and when it arrived, epoch ms. */
  | { type: 'reading'; timestamp: number; at: number }
  | { type: 'watch-synced' };

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

/** Which offsets of each `topic:partition` a client has had: a bitmap per partition. */
class CursorSet {
  private readonly parts = new Map<string, Uint8Array>();

  /** Adds the cursor; false when it was there already. */
  add(cursor: string): boolean {
    const cut = cursor.lastIndexOf(':');
    const offset = Number(cursor.slice(cut + 1));
    if (!(cut > 0 && Number.isInteger(offset) && offset >= 0)) return true;
    const key = cursor.slice(0, cut);
    let bits = this.parts.get(key);
    const byte = offset >> 3;
    if (!bits || byte >= bits.length) {
      const grown = new Uint8Array(Math.max(64, (byte + 1) * 2));
      if (bits) grown.set(bits);
      this.parts.set(key, (bits = grown));
    }
    const mask = 1 << (offset & 7);
    if (bits[byte] & mask) return false;
    bits[byte] |= mask;
    return true;
  }
}

interface Operator {
  index: number;
  socket: WebSocket;
  filters: NormalisedFilter[];
  cursors: CursorSet;
  readings: number;
  alertIds: Set<string>;
  subscribed: boolean;
}

const operators: Operator[] = [];
let measureWindow = { from: 0, to: 0 };
let op = freshOperatorCounters();

function freshOperatorCounters() {
  return {
    recordsInWindow: 0,
    framesInWindow: 0,
    bytesInWindow: 0,
    histogram: new LatencyHistogram(),
    alertHistogram: new LatencyHistogram(),
    outsideFilter: 0,
    outsideExamples: [] as string[],
    duplicates: 0,
    closedAfterOpen: 0,
    errorFrames: {} as Record<string, number>,
    unparsed: 0,
  };
}

function onOperatorRecord(client: Operator, record: StreamRecord & { cursor?: string }, now: number, live: boolean): void {
  if (!client.filters.some((filter) => matchesFilter(filter, record))) {
    op.outsideFilter++;
    if (op.outsideExamples.length < 5) {
      const d = record.data;
      op.outsideExamples.push(`client ${client.index} got ${record.type} ${d.deviceId} ${d.deviceType} ${d.location}${record.type === 'alert' ? ' ' + record.data.level : ''}${live ? '' : ' (snapshot)'}`);
    }
  }
  if (!live || !record.cursor) return;
  if (!client.cursors.add(record.cursor)) {
    op.duplicates++;
    return;
  }
  if (!measureWindow.to) return;
  if (now >= measureWindow.from && now < measureWindow.to) op.recordsInWindow++;
  const stamped = record.data.timestamp;
  if (stamped < measureWindow.from || stamped >= measureWindow.to) return;
  // `counts` tells the harness when the records stamped in the window have stopped arriving.
  received++;
  op.histogram.add(now - stamped);
  if (record.type === 'alert') {
    op.alertHistogram.add(now - stamped);
    client.alertIds.add(record.data.alertId);
  } else client.readings++;
}

function onOperatorFrame(client: Operator, frame: ServerFrame, now: number): void {
  for (const inner of unpackFrame(frame)) {
    if (inner.type === 'device_data' || inner.type === 'alert') onOperatorRecord(client, inner, now, true);
    else if (inner.type === 'snapshot') {
      for (const entry of inner.messages) onOperatorRecord(client, { ...entry, cursor: undefined } as StreamRecord, now, false);
    } else if (inner.type === 'error' && client.subscribed) op.errorFrames[inner.code] = (op.errorFrames[inner.code] ?? 0) + 1;
  }
}

function openOperator(url: string, spec: OperatorSpec, timeoutMs: number, limitS = Math.round(timeoutMs / 1000)): Promise<OpenOutcome> {
  return new Promise((resolve) => {
    const startedAt = Date.now();
    const started = performance.now();
    const outcome: OpenOutcome = { index: spec.index, subscribeMs: [], startedAt, retries: 0 };
    const socket = new WebSocket(url, { perMessageDeflate: false });
    const client: Operator = {
      index: spec.index,
      socket,
      filters: spec.filters.map((f) => normaliseFilter(f)),
      cursors: new CursorSet(),
      readings: 0,
      alertIds: new Set(),
      subscribed: false,
    };
    let settled = false;
    let opened = false;
    const finish = (failure?: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (failure) {
        outcome.failure = failure;
        socket.terminate();
      } else {
        client.subscribed = true;
        operators.push(client);
      }
      resolve(outcome);
    };
    // Named by the handshake limit as a whole, not this try's share of it: one failure, one name.
    const timer = setTimeout(() => finish(opened ? `no subscribed reply in ${limitS} s` : `not open in ${limitS} s`), timeoutMs);
    socket.on('unexpected-response', (_request, response) => {
      finish(`HTTP ${response.statusCode}`);
      response.resume();
    });
    socket.on('error', (error: Error & { code?: string }) => {
      if (!settled) finish(`error ${error.code ?? error.message}`);
      else errors++;
    });
    socket.on('close', (code) => {
      if (!settled) finish(`close ${code} ${opened ? 'before subscribed' : 'before open'}`);
      else if (client.subscribed) op.closedAfterOpen++;
    });
    const sent = new Map<string, number>();
    socket.on('message', (data) => {
      const now = Date.now();
      const text = data.toString();
      if (measureWindow.to && now >= measureWindow.from && now < measureWindow.to) {
        op.framesInWindow++;
        op.bytesInWindow += Buffer.byteLength(text);
      }
      let frame: ServerFrame;
      try {
        frame = parseServerFrame(text);
      } catch {
        op.unparsed++;
        return;
      }
      if (!settled && frame.type === 'subscribed' && sent.has(frame.id)) {
        outcome.subscribeMs.push(performance.now() - sent.get(frame.id)!);
        sent.delete(frame.id);
        if (sent.size === 0) finish();
      } else if (!settled && frame.type === 'error') finish(`subscribe error ${frame.code}: ${frame.message}`);
      onOperatorFrame(client, frame, now);
    });
    socket.once('open', () => {
      opened = true;
      outcome.connectMs = performance.now() - started;
      spec.filters.forEach((filter, i) => {
        sent.set(`s${i}`, performance.now());
        socket.send(JSON.stringify({ action: 'subscribe', id: `s${i}`, filter }));
      });
    });
  });
}

/**
 * Opens one operator, trying again after a 429 as the dashboard does (after `Retry-After`, 1 s,
 * with jitter) until its time is up. Connect latency counts from the first try.
 */
async function openWithRetries(url: string, spec: OperatorSpec, timeoutMs: number): Promise<OpenOutcome> {
  const first = performance.now();
  const firstAt = Date.now();
  for (let retries = 0; ; retries++) {
    const left = timeoutMs - (performance.now() - first);
    const outcome = await openOperator(url, spec, Math.max(1, left), Math.round(timeoutMs / 1000));
    if (outcome.failure !== 'HTTP 429' || performance.now() - first + 1000 >= timeoutMs) {
      const waited = outcome.startedAt - firstAt;
      return { ...outcome, retries, startedAt: firstAt, ...(outcome.connectMs === undefined ? {} : { connectMs: outcome.connectMs + waited }) };
    }
    await new Promise((resolve) => setTimeout(resolve, 1000 + Math.random() * 500));
  }
}

async function openOperators(command: Extract<WorkerCommand, { cmd: 'open' }>): Promise<void> {
  const outcomes = await Promise.all(
    command.clients.map(
      (spec) =>
        new Promise<OpenOutcome>((resolve) => {
          setTimeout(() => resolve(openWithRetries(command.url, spec, command.timeoutMs)), Math.max(0, command.startAt + spec.dueMs - Date.now()));
        }),
    ),
  );
  send({ type: 'opened', outcomes });
}

function operatorsReport(published: PublishedRecords): OperatorsTally {
  let readingsReceived = 0;
  let readingsExpected = 0;
  let alertsReceived = 0;
  let alertsExpected = 0;
  let alertsLost = 0;
  const readings = published.readings.map((r) => ({
    count: r.count,
    record: { type: 'device_data', data: { deviceId: r.deviceId, deviceType: r.deviceType, location: r.location } } as StreamRecord,
  }));
  const alerts = published.alerts.map((a) => ({ alertId: a.alertId, record: { type: 'alert', data: a } as unknown as StreamRecord }));
  for (const client of operators) {
    const matches = (record: StreamRecord) => client.filters.some((filter) => matchesFilter(filter, record));
    readingsReceived += client.readings;
    alertsReceived += client.alertIds.size;
    for (const r of readings) if (matches(r.record)) readingsExpected += r.count;
    for (const a of alerts) {
      if (!matches(a.record)) continue;
      alertsExpected++;
      if (!client.alertIds.has(a.alertId)) alertsLost++;
    }
  }
  const cpu = process.cpuUsage(cpuStart);
  return {
    clients: operators.length,
    recordsInWindow: op.recordsInWindow,
    framesInWindow: op.framesInWindow,
    bytesInWindow: op.bytesInWindow,
    histogram: op.histogram.toSparse(),
    alertHistogram: op.alertHistogram.toSparse(),
    outsideFilter: op.outsideFilter,
    outsideExamples: op.outsideExamples,
    duplicates: op.duplicates,
    readingsReceived,
    readingsExpected,
    alertsReceived,
    alertsExpected,
    alertsLost,
    closedAfterOpen: op.closedAfterOpen,
    errorFrames: op.errorFrames,
    unparsed: op.unparsed,
    cpuMs: (cpu.user + cpu.system) / 1000,
    rss: process.memoryUsage().rss,
  };
}

let watcher: WebSocket | undefined;

/**
 * The watching client of {@link WorkerCommand} `watch`: one user, its readings reported as they
 * come. One that fails before it is subscribed (refused, closed, answered with an error) ends
 * this process, so that the bench waiting for `watching` fails at once instead of waiting on.
 */
function watch(command: Extract<WorkerCommand, { cmd: 'watch' }>): void {
  const socket = new WebSocket(command.url);
  watcher = socket;
  let subscribed = false;
  const failed = (why: string) => {
    process.stderr.write(`watcher: ${why}\n`);
    if (!subscribed) process.exit(1);
  };
  socket.on('open', () => socket.send(JSON.stringify({ action: 'subscribe', id: 'watch', filter: command.filter })));
  socket.on('message', (data) => {
    const at = Date.now();
    for (const frame of unpackFrame(parseServerFrame(data.toString()))) {
      if (frame.type === 'subscribed') {
        subscribed = true;
        send({ type: 'watching' });
      }
      if (frame.type === 'error' && !subscribed) failed(`subscribe refused: ${frame.code} ${frame.message}`);
      if (frame.type === 'device_data') send({ type: 'reading', timestamp: frame.data.timestamp, at });
    }
  });
  socket.on('error', (error) => failed(errorMessage(error)));
  socket.on('close', (code) => failed(`closed (${code})`));
}

process.on('message', (command: WorkerCommand) => {
  switch (command.cmd) {
    case 'watch':
      watch(command);
      break;
    case 'watch-send':
      watcher?.send(command.text);
      break;
    case 'watch-sync':
      send({ type: 'watch-synced' });
      break;
    case 'open':
      void openOperators(command);
      break;
    case 'measure': {
      // Counts of the connect phase (outside-filter records, duplicates, closes) are kept.
      const kept = { outsideFilter: op.outsideFilter, outsideExamples: op.outsideExamples, duplicates: op.duplicates, closedAfterOpen: op.closedAfterOpen };
      op = { ...freshOperatorCounters(), ...kept };
      for (const client of operators) {
        client.readings = 0;
        client.alertIds.clear();
      }
      measureWindow = { from: command.from, to: command.to };
      cpuStart = process.cpuUsage();
      send({ type: 'measuring' });
      break;
    }
    case 'operators-report':
      send({ type: 'operators-report', tally: operatorsReport(command.published) });
      break;
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
      for (const client of operators) client.socket.terminate();
      watcher?.terminate();
      send({ type: 'closed' });
      setTimeout(() => process.exit(0), 50);
      break;
    }
  }
});

process.on('disconnect', () => process.exit(0));
send({ type: 'ready' });
