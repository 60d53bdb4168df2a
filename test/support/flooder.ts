/**
 * Flooding clients in a process of their own, as another user's script on another machine would
 * be: the process that runs the local runtime neither sends their messages nor reads their
 * replies. Started by {@link startFlooder}; run as
 * `node --import tsx test/support/flooder.ts '<FloodPlan JSON>'` it connects, prints `ready`,
 * floods when a line arrives on stdin, and prints one {@link FloodResult} line.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import readline from 'node:readline';
import WebSocket from 'ws';

/** What to send. */
export interface FloodPlan {
  /** WebSocket URL, its token included. */
  url: string;
  connections: number;
  /** Messages a second on each connection. */
  perSecond: number;
  durationMs: number;
  /**
   * The mix, in turn: `ping`, `subscribe` (its id carries its place), `unknown` (an action with no
   * route), `garbage` (not JSON). Default all four.
   */
  mix?: readonly FloodKind[];
  /** How long to wait for the last replies after the last message, ms. Default 20000. */
  drainTimeoutMs?: number;
}

/** A kind of flood message. */
export type FloodKind = 'ping' | 'subscribe' | 'unknown' | 'garbage';

/** What one flooding connection saw. */
export interface FloodConnectionResult {
  sent: number;
  /** Replies: every frame but snapshots and `system_status`. */
  replies: number;
  pongs: number;
  /** Replies other than `rate_limited` (pongs, `subscribed`, errors of bad messages). */
  served: number;
  rateLimited: number;
  /** Frames that are API Gateway's own error (`{"message":...}` without a `type`). */
  gatewayErrors: number;
  /** From the first message sent to the first `rate_limited`, ms; -1 when none came. */
  firstRefusalMs: number;
  /**
   * Where in the order sent the refusals began: the place of the earliest subscribe (its id
   * carries it) answered `rate_limited`; -1 when none was. Replies come as each message's
   * invocation ends, as on AWS, so the arrival order does not tell it.
   */
  firstRefusedPlace: number;
  /** Whether the connection was still open after the drain. */
  open: boolean;
  /** From the last message sent to the last reply, ms. */
  drainMs: number;
  /** Reply latency (the n-th reply against the n-th message sent), ms. */
  replyP50: number;
  replyP95: number;
}

/** What the flooders saw, one entry per connection. */
export interface FloodResult {
  connections: FloodConnectionResult[];
}

/** Every kind of flood message, the default mix. */
export const FLOOD_KINDS: readonly FloodKind[] = ['ping', 'subscribe', 'unknown', 'garbage'];

/** The `n`-th message of the flood. */
export function floodMessage(n: number, mix: readonly FloodKind[] = FLOOD_KINDS): string {
  switch (mix[n % mix.length]) {
    case 'ping':
      return '{"action":"ping"}';
    case 'subscribe':
      return JSON.stringify({ action: 'subscribe', id: `q${n}`, filter: { deviceIds: [`flood-${n % 50}`] } });
    case 'unknown':
      return `{"action":"nope","n":${n}}`;
    case 'garbage':
      return `garbage ${n} {`;
  }
}

function percentile(values: readonly number[], p: number): number {
  if (!values.length) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

interface Reply {
  at: number;
  type?: string;
  code?: string;
  id?: string;
}

async function run(plan: FloodPlan): Promise<FloodResult> {
  const sockets = await Promise.all(
    Array.from(
      { length: plan.connections },
      () =>
        new Promise<WebSocket>((resolve, reject) => {
          const ws = new WebSocket(plan.url);
          ws.once('open', () => resolve(ws));
          ws.once('error', reject);
        }),
    ),
  );
  const mix = plan.mix ?? FLOOD_KINDS;
  const sentAt: number[] = [];
  const replies = sockets.map(() => [] as Reply[]);
  sockets.forEach((ws, c) =>
    ws.on('message', (data) => {
      const frame = JSON.parse(data.toString()) as { type?: string; code?: string; id?: string };
      if (frame.type !== 'snapshot' && frame.type !== 'system_status') replies[c].push({ at: Date.now(), type: frame.type, code: frame.code, id: frame.id });
    }),
  );
  process.stdout.write('ready\n');
  await new Promise<void>((resolve) => readline.createInterface({ input: process.stdin }).once('line', () => resolve()));
  const total = Math.round((plan.perSecond * plan.durationMs) / 1000);
  const started = Date.now();
  await new Promise<void>((resolve) => {
    // In slices of 10 ms, catching up when the timer fires late.
    const timer = setInterval(() => {
      const due = Math.min(total, Math.floor(((Date.now() - started) * plan.perSecond) / 1000) + 1);
      // A slice's frames leave in one write per socket, as a client on another machine sends
      // them cheaply: this process shares the machine with the one it floods.
      const raw = sockets.map((ws) => (ws as unknown as { _socket?: Socket })._socket);
      raw.forEach((socket) => socket?.cork());
      while (sentAt.length < due) {
        const text = floodMessage(sentAt.length, mix);
        for (const ws of sockets) if (ws.readyState === WebSocket.OPEN) ws.send(text);
        sentAt.push(Date.now());
      }
      raw.forEach((socket) => socket?.uncork());
      if (sentAt.length >= total) {
        clearInterval(timer);
        resolve();
      }
    }, 10);
  });
  const ended = Date.now();
  const deadline = ended + (plan.drainTimeoutMs ?? 20_000);
  while (replies.some((r, c) => r.length < total && sockets[c].readyState === WebSocket.OPEN) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const limited = (r: Reply) => r.type === 'error' && r.code === 'rate_limited';
  const result: FloodResult = {
    connections: replies.map((r, c) => {
      const first = r.findIndex(limited);
      const refusedPlaces = r.flatMap((x) => (limited(x) && x.id?.startsWith('q') ? [Number(x.id.slice(1))] : []));
      const latencies = r.map((x, i) => x.at - sentAt[Math.min(i, sentAt.length - 1)]);
      return {
        sent: total,
        replies: r.length,
        pongs: r.filter((x) => x.type === 'pong').length,
        served: r.filter((x) => x.type !== undefined && !limited(x)).length,
        rateLimited: r.filter(limited).length,
        gatewayErrors: r.filter((x) => x.type === undefined).length,
        firstRefusalMs: first < 0 ? -1 : r[first].at - started,
        firstRefusedPlace: refusedPlaces.length ? Math.min(...refusedPlaces) : -1,
        open: sockets[c].readyState === WebSocket.OPEN,
        drainMs: r.length ? r[r.length - 1].at - ended : -1,
        replyP50: percentile(latencies, 50),
        replyP95: percentile(latencies, 95),
      };
    }),
  };
  await Promise.all(
    sockets.map(
      (ws) =>
        new Promise((resolve) => {
          if (ws.readyState === WebSocket.CLOSED) return resolve(undefined);
          ws.once('close', resolve);
          ws.close();
        }),
    ),
  );
  return result;
}

/** A flooder process, connected and waiting for {@link Flooder.flood}. */
export interface Flooder {
  /** Floods as planned; resolves with what the flooders saw. */
  flood(): Promise<FloodResult>;
  /** Ends the process. */
  kill(): void;
}

/** Starts a flooder process and resolves once its connections are open. */
export async function startFlooder(plan: FloodPlan): Promise<Flooder> {
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', __filename, JSON.stringify(plan)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines = readline.createInterface({ input: child.stdout! });
  const exited = new Promise<never>((_resolve, reject) =>
    child.once('exit', (code) => reject(new Error(`flooder exited with ${code} before it reported`))),
  );
  exited.catch(() => {});
  const nextLine = () => Promise.race([new Promise<string>((resolve) => lines.once('line', resolve)), exited]);
  const ready = await nextLine();
  if (ready !== 'ready') throw new Error(`flooder said ${ready}`);
  return {
    async flood() {
      const result = nextLine();
      child.stdin!.write('go\n');
      return JSON.parse(await result) as FloodResult;
    },
    kill: () => child.kill(),
  };
}

if (require.main === module) {
  // The process that started this one is gone (its end of stdin closed): so is the flood.
  process.stdin.once('end', () => process.exit(0));
  run(JSON.parse(process.argv[2]) as FloodPlan).then(
    (result) => process.stdout.write(`${JSON.stringify(result)}\n`),
    (error: unknown) => {
      process.stderr.write(`${String(error)}\n`);
      process.exitCode = 1;
    },
  );
}
