/**
 * dynalite in a child process of its own. In the runtime's process it took a fifth of the CPU
 * under a burst of connects (each connect and subscribe is several DynamoDB calls), on the same
 * event loop as the gateway, the SDK and the stream handler; in its own process it has the
 * machine's other core, as DynamoDB is another machine on AWS. The child runs the same
 * {@link startDynalite}, and it ends when its parent does (the IPC channel closes).
 */
import { fork, type ChildProcess } from 'node:child_process';
import type { Server } from 'node:http';
import { errorMessage } from '../lambdas/core/errors';
import { startDynalite } from './dynamo';

/** What the child reports once it listens, or why it could not. */
type ChildMessage = { endpoint: string } | { error: string; code?: string };

/** dynalite running in a child process. */
export interface DynaliteProcess {
  /** http://host:port */
  endpoint: string;
  /** Stops dynalite and waits for the child to exit. */
  stop(): Promise<void>;
}

/** An error of the child's listen, with its `code` (`EADDRINUSE`, ...) as the parent's would have. */
class DynaliteStartError extends Error {
  constructor(
    message: string,
    readonly code?: string,
  ) {
    super(message);
    this.name = 'DynaliteStartError';
  }
}

/** Starts dynalite in memory in a child process on `port` (0: a free port). */
async function startDynaliteProcess(port = 0, host = '127.0.0.1'): Promise<DynaliteProcess> {
  const child: ChildProcess = fork(__filename, ['--dynalite-child', String(port), host], {
    // The child runs this TypeScript file, as the parent does, through tsx; a parent run with
    // --cpu-prof has dynalite profiled too (NODE_OPTIONS may not carry it).
    execArgv: [...process.execArgv.filter((flag) => flag.startsWith('--cpu-prof')), '--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const message = await new Promise<ChildMessage>((resolve, reject) => {
    child.once('message', (m: ChildMessage) => resolve(m));
    child.once('error', reject);
    child.once('exit', (code, signal) => reject(new DynaliteStartError(`dynalite process exited (${signal ?? code}) before listening`)));
  });
  if ('error' in message) {
    child.disconnect();
    await exited;
    throw new DynaliteStartError(message.error, message.code);
  }
  return {
    endpoint: message.endpoint,
    stop: async () => {
      if (child.connected) child.disconnect();
      await exited;
    },
  };
}

/**
 * Where the local runtime runs dynalite: `process`, a child process ({@link startDynaliteProcess});
 * `inline`, the runtime's own process (the layout before, kept as a benchmark baseline).
 */
export type DynaliteMode = 'process' | 'inline';

/** Starts dynalite in the given {@link DynaliteMode}. */
export async function startLocalDynalite(mode: DynaliteMode, port = 0, host = '127.0.0.1'): Promise<DynaliteProcess> {
  if (mode === 'process') return startDynaliteProcess(port, host);
  const { endpoint, server } = await startDynalite(port, host);
  return { endpoint, stop: () => new Promise<void>((resolve) => (server as Server).close(() => resolve())) };
}

async function runChild(port: number, host: string): Promise<void> {
  try {
    const { endpoint } = await startDynalite(port, host);
    // dynalite holds its tables in memory: nothing to flush, so the child just ends.
    process.once('disconnect', () => process.exit(0));
    // Ctrl-C reaches the whole process group: the parent still needs dynalite while it stops
    // (each open connection's $disconnect), and ends it when done.
    process.on('SIGINT', () => {});
    process.send?.({ endpoint } satisfies ChildMessage);
  } catch (error) {
    process.send?.({ error: errorMessage(error), code: (error as NodeJS.ErrnoException).code } satisfies ChildMessage);
  }
}

if (require.main === module && process.argv[2] === '--dynalite-child') {
  void runChild(Number(process.argv[3]), process.argv[4] ?? '127.0.0.1');
}
