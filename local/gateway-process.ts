/**
 * The local gateway's socket side ({@link GatewayServer}) in a child process of its own. In the
 * runtime's process it shared one event loop with the handlers, the SDK and the stream handler:
 * under a burst of connects while records fanned out, handshakes waited 13-24 s, clients were
 * reset before their upgrade was read, and posts waited behind long batches. Here it has the
 * machine's other core, as API Gateway is another machine on AWS; it asks the parent over IPC to
 * run each handler and gets the result back. The child ends when its parent does (the IPC channel
 * closes), as dynalite's does.
 *
 * Per invocation, two IPC messages cross: the event (about 1 KB of JSON, the message body
 * included) and the handler's result. Beside them: one message per socket opened or closed, and the
 * Management API counts at most every {@link STATS_FLUSH_MS} ms. Posts and frames never cross.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { errorMessage } from '../lambdas/core/errors';
import type { ChildMessage, GatewaySettings, GatewayState, InvocationResult, ManagementStats, ParentMessage } from './gateway-ipc';
import { GatewayServer, type GatewayHost } from './gateway-server';

/**
 * The child sends its Management API counts at most this often (ms): one message per post would
 * cost the parent, whose loop this process exists to spare, more than the counts are worth.
 */
const STATS_FLUSH_MS = 50;

/** An error of the child's start, with its `code` (`EADDRINUSE`, ...) as the parent's listen would have. */
class GatewayStartError extends Error {
  constructor(
    message: string,
    readonly code?: string,
  ) {
    super(message);
    this.name = 'GatewayStartError';
  }
}

/** The parent's handle on the child: its port, a query of its state, and its stop. */
export class GatewayProcess {
  private nextQuery = 0;
  private readonly queries = new Map<number, { resolve: (state: GatewayState) => void; reject: (error: Error) => void }>();
  private stopped?: () => void;

  private constructor(
    private readonly child: ChildProcess,
    private readonly exited: Promise<void>,
    /** The port the child listens on. */
    readonly port: number,
  ) {}

  /**
   * Forks the child, has it listen with `settings`, and serves its invocations with `host`
   * (which also receives its open-socket count, its Management API counts and its log lines).
   */
  static async start(settings: GatewaySettings, host: GatewayHost): Promise<GatewayProcess> {
    const child = fork(__filename, ['--gateway-child'], {
      // The child runs this TypeScript file, as the parent does, through tsx (under Jest too).
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    let handle: GatewayProcess | undefined;
    const send = (message: ParentMessage) => {
      if (child.connected) child.send(message);
    };
    child.on('message', (message: ChildMessage) => {
      switch (message.t) {
        case 'invoke':
          host.invoke(message.call).then(
            (value) => send({ t: 'result', id: message.id, value }),
            (error: unknown) => send({ t: 'result', id: message.id, error: errorMessage(error) }),
          );
          break;
        case 'open':
          host.openChanged(message.count);
          break;
        case 'stats':
          host.statsChanged(message.stats);
          break;
        case 'log':
          host.log(message.line);
          break;
        case 'state':
          host.openChanged(message.state.open);
          host.statsChanged(message.state.stats);
          handle?.queries.get(message.id)?.resolve(message.state);
          handle?.queries.delete(message.id);
          break;
        case 'stopped':
          handle?.stopped?.();
          break;
      }
    });
    const port = await new Promise<number>((resolve, reject) => {
      const onMessage = (message: ChildMessage) => {
        if (message.t === 'listening') resolve(message.port);
        else if (message.t === 'failed') reject(new GatewayStartError(message.error, message.code));
        else return;
        child.off('message', onMessage);
      };
      child.on('message', onMessage);
      child.once('error', reject);
      child.once('exit', (code, signal) => reject(new GatewayStartError(`gateway process exited (${signal ?? code}) before listening`)));
      send({ t: 'start', settings });
    }).catch(async (error: unknown) => {
      if (child.connected) child.disconnect();
      await exited;
      throw error;
    });
    handle = new GatewayProcess(child, exited, port);
    const gone = handle;
    void exited.then(() => {
      for (const query of gone.queries.values()) query.reject(new Error('gateway process has exited'));
      gone.queries.clear();
    });
    return handle;
  }

  /** The child's state, after every message it sent before it (invocations included) has arrived. */
  query(): Promise<GatewayState> {
    const id = this.nextQuery++;
    return new Promise((resolve, reject) => {
      if (!this.child.connected) return reject(new Error('gateway process has exited'));
      this.queries.set(id, { resolve, reject });
      this.child.send({ t: 'query', id } satisfies ParentMessage);
    });
  }

  /** Closes every connection (their $disconnect invocations still arrive), stops listening, and ends the child. */
  async stop(): Promise<void> {
    if (this.child.connected) {
      const stopped = new Promise<void>((resolve) => (this.stopped = resolve));
      this.child.send({ t: 'stop' } satisfies ParentMessage);
      await Promise.race([stopped, this.exited]);
      if (this.child.connected) this.child.disconnect();
    }
    await this.exited;
  }
}

/** The child's end: a {@link GatewayServer} whose handlers run in the parent. */
function runChild(): void {
  const send = (message: ChildMessage) => {
    if (process.connected) process.send?.(message);
  };
  let nextId = 0;
  const calls = new Map<number, { resolve: (value: InvocationResult) => void; reject: (error: Error) => void }>();
  let settings: GatewaySettings | undefined;
  let statsTimer: NodeJS.Timeout | undefined;
  let latestStats: ManagementStats | undefined;
  const host: GatewayHost = {
    invoke: (call) =>
      new Promise((resolve, reject) => {
        const id = nextId++;
        calls.set(id, { resolve, reject });
        send({ t: 'invoke', id, call });
      }),
    openChanged: (count) => send({ t: 'open', count }),
    statsChanged: (stats) => {
      latestStats = stats;
      statsTimer ??= setTimeout(() => {
        statsTimer = undefined;
        send({ t: 'stats', stats: { ...latestStats! } });
      }, STATS_FLUSH_MS);
    },
    log: (line) => {
      if (settings?.log) send({ t: 'log', line });
    },
  };
  let server: GatewayServer | undefined;
  process.on('message', (message: ParentMessage) => {
    switch (message.t) {
      case 'start':
        settings = message.settings;
        server = new GatewayServer(settings, host);
        server.start().then(
          (port) => send({ t: 'listening', port }),
          (error: unknown) => send({ t: 'failed', error: errorMessage(error), code: (error as NodeJS.ErrnoException).code }),
        );
        break;
      case 'result': {
        const call = calls.get(message.id);
        calls.delete(message.id);
        if (message.error !== undefined) call?.reject(new Error(message.error));
        else call?.resolve(message.value);
        break;
      }
      case 'query':
        if (server) send({ t: 'state', id: message.id, state: server.state });
        break;
      case 'stop':
        void server?.stop().then(() => send({ t: 'stopped' }));
        break;
    }
  });
  // The parent is gone: nobody can run a handler or read a socket's count any more.
  process.once('disconnect', () => process.exit(0));
  // Ctrl-C reaches the whole process group: the parent still needs this process while it stops
  // (each open connection's close and $disconnect), and ends it when done.
  process.on('SIGINT', () => {});
}

if (require.main === module && process.argv[2] === '--gateway-child') runChild();
