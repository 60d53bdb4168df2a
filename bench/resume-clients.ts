/**
 * The client side of the resume bench (bench/resume.ts), run in a process of its own (the bench
 * forks itself with `--clients-child`) so that client work is never counted as server work. It
 * holds real `ws` clients of two roles:
 * - `live`: subscribed for the whole run; the latency of every record they get (receipt − record
 *   `timestamp`) is kept with its receipt time, so that the bench can cut it into phases;
 * - `resumer`: subscribed, then cut (socket terminated) and, T seconds later, reconnected with the
 *   last offset it saw per `topic:partition` in each subscribe's `resume`, as a dashboard would.
 *
 * Every client keeps every cursor it got (per partition: offsets and their record timestamps), so
 * that duplicates are counted and a resumer's records can be compared with its never-cut twin's.
 * Frames are read with `JSON.parse` alone (no schema): the bench must not be slower than the server.
 */
import WebSocket from 'ws';
import type { Filter } from '../lambdas/core/protocol';
import { LatencyHistogram } from './stats';

/** A client to open. */
export interface ResumeClientSpec {
  index: number;
  role: 'live' | 'resumer';
  filters: Filter[];
}

/** Commands from the bench. */
export type ResumeWorkerCommand =
  | { cmd: 'open'; url: string; clients: ResumeClientSpec[]; perSecond: number; timeoutMs: number }
  /** Terminates every resumer's socket, keeping its cursors. */
  | { cmd: 'cut' }
  /** Reconnects every resumer at once, each subscribe carrying its cursors. */
  | { cmd: 'resume'; url: string }
  | { cmd: 'status' }
  | { cmd: 'report'; phases: Phase[]; bins: { from: number; to: number; stepMs: number }; compare: { from: number; to: number; indexes: number[] } }
  | { cmd: 'close' };

/** A stretch of receipt time (epoch ms) the live latency is summarised over. */
export interface Phase {
  name: string;
  from: number;
  to: number;
}

type Summary = ReturnType<LatencyHistogram['summary']>;

/** How one resumer's reconnect went. */
export interface ResumeOutcome {
  index: number;
  /** Reconnect start (new socket) to `open`, to the last `subscribed`, to the last `resumed`, to caught up; ms. */
  openMs?: number;
  subscribedMs?: number;
  resumedMs?: number;
  /** The first record stamped after the reconnect started, received at or after the last `resumed` (or `resumed` itself when one came before it). */
  caughtUpMs?: number;
  /** Sum of `replayed` over its subscriptions, and records received before the last `resumed`. */
  replayed: number;
  receivedBeforeResumed: number;
  /** Subscriptions answered `tooFarBehind`, snapshot frames received after the reconnect. */
  tooFarBehind: number;
  snapshots: number;
  /** Records received under a cursor it already had, over its whole life. */
  duplicates: number;
  /** Records received after the reconnect. */
  receivedAfterReconnect: number;
  errors: string[];
  /** Partitions named in the resume. */
  partitions: number;
  failure?: string;
}

/** Replies to the bench. */
export type ResumeWorkerReply =
  | { type: 'ready' }
  | { type: 'opened'; ok: number; failed: string[] }
  | { type: 'cut'; at: number; clients: number }
  | { type: 'resuming'; at: number }
  | { type: 'status'; resumers: number; resumed: number; caughtUp: number; failed: number; received: number; lastResumedAt: number }
  | {
      type: 'report';
      phases: Record<string, Summary>;
      /** The live clients' alerts, by the same phases. */
      alertPhases: Record<string, Summary>;
      /** p95 of the live clients per bin of receipt time: [bin start, count, p95]. */
      timeline: [number, number, number][];
      outcomes: ResumeOutcome[];
      /** Duplicates over the live clients' whole life. */
      liveDuplicates: number;
      /** Per client asked for: partition → [offset, record timestamp] pairs, flat, of the records stamped in the compare window. */
      offsets: Record<number, Record<string, number[]>>;
      unparsed: number;
      cpuMs: number;
      rss: number;
    }
  | { type: 'closed' };

/** A growable array of doubles. */
class Doubles {
  data = new Float64Array(1024);
  length = 0;
  push(value: number): void {
    if (this.length === this.data.length) {
      const grown = new Float64Array(this.data.length * 2);
      grown.set(this.data);
      this.data = grown;
    }
    this.data[this.length++] = value;
  }
}

/** What a client got of one partition: a bitmap of offsets (duplicates), and offsets with their stamps in arrival order. */
interface PartitionSeen {
  bits: Uint8Array;
  offsets: Doubles;
  stamps: Doubles;
  max: number;
}

interface Client {
  spec: ResumeClientSpec;
  socket?: WebSocket;
  seen: Map<string, PartitionSeen>;
  duplicates: number;
  // Resumer state.
  resume?: Record<string, number>;
  reconnectAt?: number;
  reconnectPerf?: number;
  pendingSubscribed?: Set<string>;
  pendingResumed?: Set<string>;
  outcome?: ResumeOutcome;
  liveBeforeResumed?: boolean;
}

const clients: Client[] = [];
const latencyAt = new Doubles();
const latencyMs = new Doubles();
/** The live clients' alerts alone: they travel on a lane of their own. */
const alertAt = new Doubles();
const alertMs = new Doubles();
let unparsed = 0;
let received = 0;
let lastResumedAt = 0;
const cpuStart = process.cpuUsage();

const send = (reply: ResumeWorkerReply) => process.send?.(reply);

function partitionOf(client: Client, name: string): PartitionSeen {
  let seen = client.seen.get(name);
  if (!seen) client.seen.set(name, (seen = { bits: new Uint8Array(1024), offsets: new Doubles(), stamps: new Doubles(), max: -1 }));
  return seen;
}

function onRecord(client: Client, cursor: string, stamp: number, now: number, perf: number, alert: boolean): void {
  const cut = cursor.lastIndexOf(':');
  const name = cursor.slice(0, cut);
  const offset = Number(cursor.slice(cut + 1));
  const seen = partitionOf(client, name);
  const byte = offset >> 3;
  if (byte >= seen.bits.length) {
    const grown = new Uint8Array(Math.max(byte + 1, seen.bits.length * 2));
    grown.set(seen.bits);
    seen.bits = grown;
  }
  const mask = 1 << (offset & 7);
  if (seen.bits[byte] & mask) {
    client.duplicates++;
    return;
  }
  seen.bits[byte] |= mask;
  seen.offsets.push(offset);
  seen.stamps.push(stamp);
  if (offset > seen.max) seen.max = offset;
  received++;
  if (client.spec.role === 'live') {
    latencyAt.push(now);
    latencyMs.push(now - stamp);
    if (alert) {
      alertAt.push(now);
      alertMs.push(now - stamp);
    }
    return;
  }
  const outcome = client.outcome;
  if (!outcome || client.reconnectAt === undefined) return;
  outcome.receivedAfterReconnect++;
  const live = stamp >= client.reconnectAt;
  if (client.pendingResumed!.size > 0) {
    outcome.receivedBeforeResumed++;
    if (live) client.liveBeforeResumed = true;
  } else if (live && outcome.caughtUpMs === undefined) outcome.caughtUpMs = perf - client.reconnectPerf!;
}

interface WireFrame {
  type: string;
  id?: string;
  cursor?: string;
  data?: { timestamp?: number };
  messages?: WireFrame[];
  replayed?: number;
  tooFarBehind?: boolean;
  code?: string;
  message?: string;
}

function onFrame(client: Client, text: string): void {
  const now = Date.now();
  const perf = performance.now();
  let frame: WireFrame;
  try {
    frame = JSON.parse(text) as WireFrame;
  } catch {
    unparsed++;
    return;
  }
  for (const inner of frame.type === 'batch' ? (frame.messages ?? []) : [frame]) {
    if ((inner.type === 'device_data' || inner.type === 'alert') && inner.cursor) onRecord(client, inner.cursor, inner.data?.timestamp ?? now, now, perf, inner.type === 'alert');
    else if (inner.type === 'error') client.outcome?.errors.push(`${inner.code}: ${inner.message}`.slice(0, 120));
    else if (!client.outcome || client.reconnectPerf === undefined) continue;
    else if (inner.type === 'snapshot') client.outcome.snapshots++;
    else if (inner.type === 'subscribed' && inner.id && client.pendingSubscribed!.delete(inner.id) && client.pendingSubscribed!.size === 0) {
      client.outcome.subscribedMs = perf - client.reconnectPerf;
    } else if (inner.type === 'resumed' && inner.id && client.pendingResumed!.delete(inner.id)) {
      client.outcome.replayed += inner.replayed ?? 0;
      if (inner.tooFarBehind) client.outcome.tooFarBehind++;
      if (client.pendingResumed!.size === 0) {
        client.outcome.resumedMs = perf - client.reconnectPerf;
        lastResumedAt = Math.max(lastResumedAt, now);
        if (client.liveBeforeResumed) client.outcome.caughtUpMs = client.outcome.resumedMs;
      }
    }
  }
}

/** Opens one client and subscribes each of its filters; resolves on the last `subscribed`. */
function openClient(url: string, client: Client, timeoutMs: number, resume?: Record<string, number>): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = new WebSocket(url, { perMessageDeflate: false });
    client.socket = socket;
    const pending = new Set(client.spec.filters.map((_, i) => `s${i}`));
    let done = false;
    const finish = (failure?: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(failure);
    };
    const timer = setTimeout(() => finish(`no subscribed reply in ${timeoutMs} ms`), timeoutMs);
    socket.on('unexpected-response', (_request, response) => {
      finish(`HTTP ${response.statusCode}`);
      response.resume();
    });
    socket.on('error', (error: Error & { code?: string }) => finish(`error ${error.code ?? error.message}`));
    socket.on('close', (code) => {
      finish(`close ${code}`);
      // A resumer's socket closed before every `resumed` (the gateway cuts a client that stops reading).
      if (client.outcome && client.socket === socket && client.outcome.resumedMs === undefined) client.outcome.failure ??= `close ${code} before resumed`;
    });
    socket.on('message', (data) => {
      const text = data.toString();
      onFrame(client, text);
      if (done) return;
      // Only the first open waits here for `subscribed`; a resume is followed through onFrame.
      const frame = JSON.parse(text) as WireFrame;
      if (frame.type === 'subscribed' && frame.id && pending.delete(frame.id) && pending.size === 0) finish();
      else if (frame.type === 'error') finish(`subscribe error ${frame.code}: ${frame.message}`);
    });
    socket.once('open', () => {
      if (client.outcome) client.outcome.openMs = performance.now() - client.reconnectPerf!;
      client.spec.filters.forEach((filter, i) => socket.send(JSON.stringify({ action: 'subscribe', id: `s${i}`, filter, ...(resume ? { resume } : {}) })));
      if (resume) finish();
    });
  });
}

async function open(command: Extract<ResumeWorkerCommand, { cmd: 'open' }>): Promise<void> {
  const failed: string[] = [];
  const start = Date.now();
  await Promise.all(
    command.clients.map(async (spec, i) => {
      const client: Client = { spec, seen: new Map(), duplicates: 0 };
      clients.push(client);
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, start + (i * 1000) / command.perSecond - Date.now())));
      const failure = await openClient(command.url, client, command.timeoutMs);
      if (failure) failed.push(`client ${spec.index}: ${failure}`);
    }),
  );
  send({ type: 'opened', ok: command.clients.length - failed.length, failed });
}

function cut(): void {
  const resumers = clients.filter((c) => c.spec.role === 'resumer');
  for (const client of resumers) {
    client.resume = Object.fromEntries([...client.seen].filter(([, seen]) => seen.max >= 0).map(([name, seen]) => [name, seen.max]));
    client.socket?.terminate();
  }
  send({ type: 'cut', at: Date.now(), clients: resumers.length });
}

function resume(url: string): void {
  const at = Date.now();
  for (const client of clients.filter((c) => c.spec.role === 'resumer')) {
    const ids = client.spec.filters.map((_, i) => `s${i}`);
    client.reconnectAt = Date.now();
    client.reconnectPerf = performance.now();
    client.pendingSubscribed = new Set(ids);
    client.pendingResumed = new Set(ids);
    client.liveBeforeResumed = false;
    client.outcome = {
      index: client.spec.index,
      replayed: 0,
      receivedBeforeResumed: 0,
      tooFarBehind: 0,
      snapshots: 0,
      duplicates: 0,
      receivedAfterReconnect: 0,
      errors: [],
      partitions: Object.keys(client.resume ?? {}).length,
    };
    const outcome = client.outcome;
    // A client that saw nothing before the cut has no cursor to send: it subscribes as new.
    void openClient(url, client, 120_000, Object.keys(client.resume ?? {}).length ? client.resume : undefined).then((failure) => {
      if (failure) outcome.failure = failure;
    });
  }
  send({ type: 'resuming', at });
}

function status(): Extract<ResumeWorkerReply, { type: 'status' }> {
  const resumers = clients.filter((c) => c.spec.role === 'resumer' && c.outcome);
  return {
    type: 'status',
    resumers: resumers.length,
    resumed: resumers.filter((c) => c.outcome!.resumedMs !== undefined).length,
    caughtUp: resumers.filter((c) => c.outcome!.caughtUpMs !== undefined).length,
    failed: resumers.filter((c) => c.outcome!.failure !== undefined).length,
    received,
    lastResumedAt,
  };
}

function report(command: Extract<ResumeWorkerCommand, { cmd: 'report' }>): Extract<ResumeWorkerReply, { type: 'report' }> {
  const summarise = (at: Doubles, ms: Doubles) => {
    const out: Record<string, Summary> = {};
    for (const phase of command.phases) {
      const histogram = new LatencyHistogram();
      for (let i = 0; i < at.length; i++) if (at.data[i] >= phase.from && at.data[i] < phase.to) histogram.add(ms.data[i]);
      out[phase.name] = histogram.summary();
    }
    return out;
  };
  const phases = summarise(latencyAt, latencyMs);
  const alertPhases = summarise(alertAt, alertMs);
  const { from, to, stepMs } = command.bins;
  const bins = Array.from({ length: Math.max(0, Math.ceil((to - from) / stepMs)) }, () => [] as number[]);
  for (let i = 0; i < latencyAt.length; i++) {
    const bin = Math.floor((latencyAt.data[i] - from) / stepMs);
    if (bin >= 0 && bin < bins.length) bins[bin].push(latencyMs.data[i]);
  }
  const timeline = bins.map((values, i): [number, number, number] => {
    values.sort((a, b) => a - b);
    return [from + i * stepMs, values.length, values.length ? Math.round(values[Math.ceil(values.length * 0.95) - 1]) : NaN];
  });
  const offsets: Record<number, Record<string, number[]>> = {};
  const wanted = new Set(command.compare.indexes);
  for (const client of clients) {
    if (!wanted.has(client.spec.index)) continue;
    const out: Record<string, number[]> = {};
    for (const [name, seen] of client.seen) {
      const list: number[] = [];
      for (let i = 0; i < seen.offsets.length; i++) {
        if (seen.stamps.data[i] >= command.compare.from && seen.stamps.data[i] < command.compare.to) list.push(seen.offsets.data[i], seen.stamps.data[i]);
      }
      out[name] = list;
    }
    offsets[client.spec.index] = out;
  }
  const cpu = process.cpuUsage(cpuStart);
  return {
    type: 'report',
    phases,
    alertPhases,
    timeline,
    outcomes: clients.filter((c) => c.outcome).map((c) => ({ ...c.outcome!, duplicates: c.duplicates })),
    liveDuplicates: clients.filter((c) => c.spec.role === 'live').reduce((sum, c) => sum + c.duplicates, 0),
    offsets,
    unparsed,
    cpuMs: (cpu.user + cpu.system) / 1000,
    rss: process.memoryUsage().rss,
  };
}

/** Runs the client process: answers the bench's commands over IPC. */
export function runResumeClients(): void {
  process.on('message', (command: ResumeWorkerCommand) => {
    switch (command.cmd) {
      case 'open':
        void open(command);
        break;
      case 'cut':
        cut();
        break;
      case 'resume':
        resume(command.url);
        break;
      case 'status':
        send(status());
        break;
      case 'report':
        send(report(command));
        break;
      case 'close':
        for (const client of clients) client.socket?.terminate();
        send({ type: 'closed' });
        setTimeout(() => process.exit(0), 50);
        break;
    }
  });
  process.on('disconnect', () => process.exit(0));
  send({ type: 'ready' });
}
