/**
 * Connects at API Gateway's default rate (issue 12): clients opened at 500 a second against the
 * local runtime as `npm start` runs it (50 simulated devices, 100 readings a second flowing), each
 * subscribing as the dashboard does. PROF_DIR=dir writes the runtime's CPU profile there. Connect latency = upgrade request to `open`; subscribe
 * latency = subscribe sent to `subscribed`. Clients run in this process; the runtime in a child.
 */
import { fork } from 'node:child_process';
import WebSocket from 'ws';
import { startLocalRuntime } from '../local/runtime';
import { LatencyHistogram } from './stats';

/** Options of {@link runConnectRateBench}. */
export interface ConnectRateOptions {
  /** Clients to open. Default 1,000. */
  clients?: number;
  /** Connects a second. Default 500. */
  perSecond?: number;
  log?: (line: string) => void;
}

export interface ConnectRateReport {
  clients: number;
  perSecond: number;
  opened: number;
  failed: number;
  connectMs: ReturnType<LatencyHistogram['summary']>;
  subscribeMs: ReturnType<LatencyHistogram['summary']>;
}

function openOne(url: string, connect: LatencyHistogram, subscribe: LatencyHistogram): Promise<WebSocket | undefined> {
  return new Promise((resolve) => {
    const started = performance.now();
    const ws = new WebSocket(url, { perMessageDeflate: false });
    ws.once('error', () => resolve(undefined));
    ws.once('open', () => {
      connect.add(performance.now() - started);
      const sent = performance.now();
      ws.on('message', (data) => {
        if (String(data).includes('"subscribed"')) {
          subscribe.add(performance.now() - sent);
          resolve(ws);
        }
      });
      ws.send(JSON.stringify({ action: 'subscribe', id: 's1', filter: { types: ['device_data', 'alert'] } }));
    });
  });
}

/** Opens clients at the rate against a runtime started in a child process. */
export async function runConnectRateBench(options: ConnectRateOptions = {}): Promise<ConnectRateReport> {
  const clients = options.clients ?? 1000;
  const perSecond = options.perSecond ?? 500;
  const profile = process.env.PROF_DIR ? ['--cpu-prof', `--cpu-prof-dir=${process.env.PROF_DIR}`] : [];
  const child = fork(__filename, ['--runtime'], { execArgv: ['--import', 'tsx', ...profile], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const url = await new Promise<string>((resolve, reject) => {
    child.once('message', (message: { url: string }) => resolve(message.url));
    child.once('exit', (code) => reject(new Error(`runtime exited with ${code}`)));
  });
  const connect = new LatencyHistogram();
  const subscribe = new LatencyHistogram();
  const sockets: Promise<WebSocket | undefined>[] = [];
  const started = performance.now();
  for (let i = 0; i < clients; i++) {
    const due = started + (i * 1000) / perSecond;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
    sockets.push(openOne(url, connect, subscribe));
  }
  const open = await Promise.all(sockets);
  options.log?.(`connect-rate: ${clients} clients at ${perSecond}/s: connect p95 ${connect.percentile(95)} ms, subscribe p95 ${subscribe.percentile(95)} ms`);
  for (const ws of open) ws?.terminate();
  // Disconnecting lets the runtime stop cleanly (and write its CPU profile when PROF_DIR asks for one).
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.disconnect();
  await exited;
  const opened = open.filter(Boolean).length;
  return { clients, perSecond, opened, failed: clients - opened, connectMs: connect.summary(), subscribeMs: subscribe.summary() };
}

if (process.argv[2] === '--runtime') {
  // As `npm start` runs it, with the default simulator feeding records while clients connect.
  startLocalRuntime({ dashboardPort: 0, wsPort: 0, auth: 'none', statusIntervalMs: 0 }).then((runtime) => {
    process.send!({ url: runtime.wsUrl });
    process.on('disconnect', () => void runtime.stop().then(() => process.exit(0)));
  });
} else if (require.main === module) {
  runConnectRateBench({ log: (line) => console.log(line) }).then(
    (report) => console.log(JSON.stringify(report, null, 2)),
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
}
