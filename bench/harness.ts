/**
 * What the benchmarks that drive the local runtime from child processes share: a child answering
 * typed replies, the CPU and memory of a process tree, the machine's load, and a summary of samples.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import type { WorkerReply } from './client-worker';
import { round } from './stats';

/** Percentiles of a set of samples, ms. */
export type Summary = { count: number; p50: number; p95: number; p99: number; max: number; mean: number };

/** A child process answering typed replies in order. */
export class Child<Reply extends { type: string }> {
  private readonly waiting = new Map<string, { resolve: (reply: Reply) => void; reject: (error: Error) => void }[]>();

  constructor(
    readonly process: ChildProcess,
    readonly name: string,
  ) {
    process.on('message', (reply: Reply) => this.waiting.get(reply.type)?.shift()?.resolve(reply));
    process.on('exit', (code) => {
      for (const [type, list] of this.waiting) for (const waiter of list) waiter.reject(new Error(`${name} exited (${code}) while waiting for ${type}`));
      this.waiting.clear();
    });
  }

  next<T extends Reply['type']>(type: T): Promise<Extract<Reply, { type: T }>> {
    return new Promise((resolve, reject) => {
      const list = this.waiting.get(type) ?? [];
      list.push({ resolve: resolve as (reply: Reply) => void, reject });
      this.waiting.set(type, list);
    });
  }

  request<T extends Reply['type']>(command: object, type: T): Promise<Extract<Reply, { type: T }>> {
    const answer = this.next(type);
    this.process.send(command);
    return answer;
  }

  async stop(command?: object): Promise<void> {
    if (this.process.exitCode !== null || this.process.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => this.process.once('exit', () => resolve()));
    if (command) this.process.send(command);
    else this.process.disconnect();
    const timer = setTimeout(() => this.process.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
}

/** Starts a benchmark client process (bench/client-worker.ts); it answers `ready` once listening. */
export function startClientWorker(name: string): Child<WorkerReply> {
  return new Child<WorkerReply>(
    fork(path.join(__dirname, 'client-worker.ts'), [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }),
    name,
  );
}

const CLK_TCK = 100;

/** CPU µs and RSS bytes of every descendant of `pid`, from /proc (zeros where there is none). */
export function descendants(pid: number): { cpuUs: number; rss: number; pids: number[] } {
  const children = new Map<number, number[]>();
  let entries: string[] = [];
  try {
    entries = readdirSync('/proc').filter((e) => /^\d+$/.test(e));
  } catch {
    return { cpuUs: 0, rss: 0, pids: [] };
  }
  const stats = new Map<number, string[]>();
  for (const entry of entries) {
    try {
      const text = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // Fields after "(comm)", which may hold spaces: state is field 3.
      const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
      const ppid = Number(fields[1]);
      stats.set(Number(entry), fields);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    } catch {
      // Gone meanwhile.
    }
  }
  const found: number[] = [];
  const queue = [...(children.get(pid) ?? [])];
  while (queue.length) {
    const p = queue.shift()!;
    found.push(p);
    queue.push(...(children.get(p) ?? []));
  }
  let ticks = 0;
  let rssPages = 0;
  for (const p of found) {
    const fields = stats.get(p)!;
    // utime, stime are fields 14 and 15, rss field 24 (1-based, "state" = 3 = index 0 here).
    ticks += Number(fields[11]) + Number(fields[12]);
    rssPages += Number(fields[21]);
  }
  return { cpuUs: (ticks * 1e6) / CLK_TCK, rss: rssPages * 4096, pids: found };
}

/** Busy and total jiffies of the whole machine, from /proc/stat. */
export function machineTicks(): { busy: number; total: number } {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1, 9).map(Number);
  const total = fields.reduce((s, v) => s + v, 0);
  return { busy: total - fields[3] - fields[4], total };
}

/** Percentiles of samples, rounded to 0.1. */
export function percentiles(values: number[]): Summary {
  if (!values.length) return { count: 0, p50: NaN, p95: NaN, p99: NaN, max: NaN, mean: NaN };
  const sorted = [...values].sort((a, b) => a - b);
  const at = (p: number) => round(sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)], 1);
  return {
    count: sorted.length,
    p50: at(50),
    p95: at(95),
    p99: at(99),
    max: round(sorted[sorted.length - 1], 1),
    mean: round(sorted.reduce((s, v) => s + v, 0) / sorted.length, 1),
  };
}

/**
 * A second CPU-heavy process: a busy loop beside the runtime, as a noisy neighbour. It ends itself
 * once orphaned (the bench crashed or was killed): it checks its parent every ten million turns,
 * so it stays a pure CPU load.
 */
export function startBusyLoop(): ChildProcess {
  return spawn(process.execPath, ['-e', 'for (let i = 0; ; i++) if (i % 1e7 === 0 && process.ppid === 1) process.exit(0);'], { stdio: 'ignore' });
}
