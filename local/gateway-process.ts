/**
 * The local gateway's socket side ({@link GatewayServer}) in a child process of its own. In the
 * runtime's process it shared one event loop with the handlers, the SDK and the stream handler:
 * under a burst of connects while records fanned out, handshakes waited 13-24 s, clients were
 * reset before their upgrade was read, and posts waited behind long batches. Here it has the
 * machine's other core, as API Gateway is another machine on AWS; it asks the parent over IPC to
 * run each handler and gets the result back. The child ends when its parent does (the IPC channel
 * closes), as dynalite's does.
 *
 * Invocations cross in batches: the events (about 1 KB of JSON each, the message body included)
 * that one turn of the child's loop produced go in one IPC message, and the results that one turn of
 * the parent's loop finished come back in one. A flood of 8,000 messages a second is then about a
 * hundred crossings a second each way instead of 16,000: each crossing costs a system call and a
 * wake-up of the other process, which on a loaded machine (a busy process on the other core) came
 * to tens of microseconds each and put every message of a connection behind a round trip. Beside
 * them: one message per socket opened or closed, and the Management API counts at most every
 * {@link STATS_FLUSH_MS} ms. Posts and frames never cross.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { errorMessage } from '../lambdas/core/errors';
import type {
  ChildMessage,
  GatewaySettings,
  GatewayState,
  InvocationOutcome,
  InvocationRequest,
  Invocation,
  InvocationResult,
  ManagementStats,
  ParentMessage,
} from './gateway-ipc';
import type { WebSocketEvent } from '../lambdas/handlers/types';
import { GatewayServer, type GatewayHost } from './gateway-server';

/**
 * The child sends its Management API counts at most this often (ms): one message per post would
 * cost the parent, whose loop this process exists to spare, more than the counts are worth.
 */
const STATS_FLUSH_MS = 50;

/** Invocations the parent starts in one turn of its loop at most; the rest wait for the next turn. */
const INVOCATIONS_PER_TURN = 256;

/**
 * Items sent in batches: {@link add} queues one, and everything queued in one turn of the event
 * loop leaves together, in the order added, at that turn's end (`setImmediate` runs after the
 * turn's reads). {@link flush} sends what is queued at once, for a message that must come after it.
 */
class Outbox<T> {
  private items: T[] = [];
  private scheduled = false;

  constructor(private readonly sendBatch: (items: T[]) => void) {}

  add(item: T): void {
    this.items.push(item);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  flush(): void {
    this.scheduled = false;
    if (!this.items.length) return;
    const items = this.items;
    this.items = [];
    this.sendBatch(items);
  }
}

/**
 * The two ends of the compact form of message invocations ({@link InvocationRequest}): each
 * remembers, per connection, the `requestContext` of the last message sent whole, and forgets it
 * with the connection's $disconnect, which comes after its last message on both ends.
 */
class MessageContexts {
  private readonly known = new Map<string, Record<string, unknown>>();

  /** The child's end: `call` as it crosses. */
  encode(id: number, call: Invocation): InvocationRequest {
    if (call.kind === 'disconnect') this.known.delete(call.event.requestContext.connectionId);
    if (call.kind !== 'route') return { id, call };
    const { requestContext, body, isBase64Encoded } = call.event;
    const context = requestContext as unknown as Record<string, unknown>;
    const connectionId = requestContext.connectionId;
    const known = this.known.get(connectionId);
    const changed: Record<string, unknown> = {};
    let keys = 0;
    if (known) {
      for (const key in context) {
        keys++;
        // The authorizer's context is the connection's, the same on every message.
        if (key !== 'authorizer' && context[key] !== known[key]) changed[key] = context[key];
      }
    }
    if (!known || keys !== Object.keys(known).length) {
      this.known.set(connectionId, context);
      return { id, call };
    }
    return { id, message: { routeKey: call.routeKey, connectionId, changed, body: body ?? undefined, isBase64Encoded: isBase64Encoded ?? false } };
  }

  /** The parent's end: the call as the child built it. */
  decode(request: InvocationRequest): Invocation {
    if ('call' in request) {
      const call = request.call;
      if (call.kind === 'disconnect') this.known.delete(call.event.requestContext.connectionId);
      if (call.kind === 'route') this.known.set(call.event.requestContext.connectionId, { ...call.event.requestContext });
      return call;
    }
    const { routeKey, connectionId, changed, body, isBase64Encoded } = request.message;
    const known = this.known.get(connectionId)!;
    const requestContext = { ...known, ...changed } as unknown as WebSocketEvent['requestContext'];
    // Each event has its own authorizer object, as each event API Gateway sends does.
    if (known.authorizer) requestContext.authorizer = { ...(known.authorizer as Record<string, unknown>) };
    return { kind: 'route', routeKey, event: { requestContext, ...(body === undefined ? {} : { body }), isBase64Encoded } };
  }
}

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
      // The child runs this TypeScript file, as the parent does, through tsx (under Jest too); a
      // parent run with --cpu-prof has its gateway profiled too (NODE_OPTIONS may not carry it).
      execArgv: [...process.execArgv.filter((flag) => flag.startsWith('--cpu-prof')), '--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    let handle: GatewayProcess | undefined;
    const send = (message: ParentMessage) => {
      if (child.connected) child.send(message);
    };
    const results = new Outbox<InvocationOutcome>((batch) => send({ t: 'results', results: batch }));
    const contexts = new MessageContexts();
    // Invocations start at most INVOCATIONS_PER_TURN per turn of this loop, so that a batch of
    // thousands (a flood read while this loop was busy) does not hold it for seconds: the other
    // work here (the stream handler, the table's answers) runs between the slices.
    const incoming: InvocationRequest[] = [];
    let next = 0;
    let draining = false;
    const drain = () => {
      const end = Math.min(incoming.length, next + INVOCATIONS_PER_TURN);
      for (; next < end; next++) {
        const request = incoming[next];
        const id = request.id;
        host.invoke(contexts.decode(request)).then(
          (value) => results.add({ id, value }),
          (error: unknown) => results.add({ id, error: errorMessage(error) }),
        );
      }
      if (next < incoming.length) return void setImmediate(drain);
      incoming.length = 0;
      next = 0;
      draining = false;
    };
    child.on('message', (message: ChildMessage) => {
      switch (message.t) {
        case 'invoke':
          for (const request of message.calls) incoming.push(request);
          if (!draining) {
            draining = true;
            drain();
          }
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
  const sendNow = (message: ChildMessage) => {
    if (process.connected) process.send?.(message);
  };
  const invocations = new Outbox<InvocationRequest>((batch) => sendNow({ t: 'invoke', calls: batch }));
  // Every other message leaves after the invocations asked for before it, as they were sent
  // one by one before batching: the parent sees a socket's close after its last message.
  const send = (message: ChildMessage) => {
    invocations.flush();
    sendNow(message);
  };
  let nextId = 0;
  const contexts = new MessageContexts();
  const calls = new Map<number, { resolve: (value: InvocationResult) => void; reject: (error: Error) => void }>();
  let settings: GatewaySettings | undefined;
  let statsTimer: NodeJS.Timeout | undefined;
  let latestStats: ManagementStats | undefined;
  const host: GatewayHost = {
    invoke: (call) =>
      new Promise((resolve, reject) => {
        const id = nextId++;
        calls.set(id, { resolve, reject });
        invocations.add(contexts.encode(id, call));
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
      case 'results':
        for (const result of message.results) {
          const call = calls.get(result.id);
          calls.delete(result.id);
          if (result.error !== undefined) call?.reject(new Error(result.error));
          else call?.resolve(result.value);
        }
        break;
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
