/**
 * A local API Gateway WebSocket API: a `ws` server that invokes the same handlers API Gateway
 * invokes, with events of the same shape, routed on `$request.body.action`, and the `@connections`
 * Management API (POST, GET, DELETE) over HTTP on the same port, so the Lambdas' real SDK client
 * posts to it. The socket work ({@link GatewayServer}: limits, timers, loopback-only access, the
 * Management API's latency and quota) runs in a child process by default ({@link GatewayProcess}),
 * and the handlers run here: the child asks for each invocation over IPC. So a long stream batch
 * or a burst of $connect handlers here does not hold up handshakes, frames or posts there.
 */
import { randomBytes } from 'node:crypto';
import type { APIGatewayAuthorizerResult, APIGatewayRequestAuthorizerEvent } from 'aws-lambda';
import { IDLE_TIMEOUT_SECONDS, MAX_CONNECTION_SECONDS } from '../lambdas/config/tables';
import { LIMITS } from '../lambdas/core/protocol';
import type { WebSocketEvent, WebSocketResult } from '../lambdas/handlers/types';
import type { GatewaySettings, Invocation, InvocationResult, ManagementStats } from './gateway-ipc';
import { GatewayProcess } from './gateway-process';
import { GatewayServer, LOOPBACK_HOSTS, SETTLE_POLL_MS, type GatewayHost } from './gateway-server';

export { LOOPBACK_HOSTS, hostAllowed } from './gateway-server';
export type { ManagementStats } from './gateway-ipc';

type RouteHandler = (event: WebSocketEvent) => Promise<WebSocketResult | void>;

/** The Lambdas behind the routes. */
export interface GatewayHandlers {
  /** REQUEST authorizer of $connect; absent means every connection is accepted. */
  authorizer?: (event: APIGatewayRequestAuthorizerEvent) => Promise<APIGatewayAuthorizerResult>;
  connect: RouteHandler;
  disconnect: RouteHandler;
  /** Message routes by route key; `$default` takes everything else. */
  routes: Record<string, RouteHandler> & { $default: RouteHandler };
}

/** Options of {@link LocalGateway}; each default is the one given here. */
export interface GatewayOptions {
  /** Port; 0 picks a free one. Default 8081. */
  port?: number;
  /** Interface to bind. Default 127.0.0.1. */
  host?: string;
  /** Host name used in URLs. Default localhost. */
  urlHost?: string;
  /** Stage name in events. Default `local`. */
  stage?: string;
  /** Close a connection that has received nothing for this long. Default 10 minutes. */
  idleTimeoutMs?: number;
  /** Close every connection after this long. Default 2 hours. */
  maxConnectionMs?: number;
  /** Largest message in either direction. Default 128 KB. */
  maxMessageBytes?: number;
  /**
   * A client that stops reading is cut off (its posts answered 410) once this many bytes wait to
   * be sent to it. Default 2 MB.
   */
  maxBufferedBytes?: number;
  /**
   * Host names accepted in the `Host` and `Origin` headers of an upgrade. Default the loopback
   * names: `localhost`, `127.0.0.1`, `[::1]`.
   */
  allowedHosts?: readonly string[];
  /** Each Management API call answers after about this many ms (±50 %, uniform). Default 0. */
  postLatencyMs?: number;
  /**
   * Posts a second across all connections before 429 (`LimitExceededException`), as API
   * Gateway's account quota: a token bucket holding one second's worth. Default 0: no quota.
   */
  postQuota?: number;
  /**
   * Connections the kernel holds for the gateway before it accepts them (the `listen` backlog).
   * Default 4096, which Linux caps at `net.core.somaxconn` (4096 since Linux 5.4). Node's own
   * default, 511, is one second of API Gateway's 500 connects a second: when the queue is full
   * Linux drops the client's final handshake ACK, and a client that already sent its upgrade is
   * reset (`ECONNRESET`) seconds later instead of waiting. The gateway's loop accepts at once when
   * it runs in its own process; the backlog covers its short pauses (a GC, a burst of posts).
   */
  listenBacklog?: number;
  /**
   * Upgrades that may wait at once for the authorizer and $connect; more are refused with 429 and
   * `Retry-After: 1`, as API Gateway refuses connects beyond its rate, rather than left waiting
   * until the client gives up. Default 2048, about four seconds of API Gateway's default 500
   * connects a second.
   */
  maxPendingHandshakes?: number;
  /**
   * Run the socket side in this process, on the handlers' event loop (the layout before, kept
   * as a baseline and for tests that compare). Default false: a child process.
   */
  inProcess?: boolean;
  log?: (line: string) => void;
}

/** The local WebSocket API and its Management API. */
export class LocalGateway {
  private readonly settings: GatewaySettings;
  private readonly inProcess: boolean;
  private readonly log: (line: string) => void;
  private readonly routes: ReadonlyMap<string, RouteHandler>;
  /** The socket side when it runs in this process. */
  private server?: GatewayServer;
  /** The socket side when it runs in a child, while it runs. */
  private child?: GatewayProcess;
  private live = false;
  private boundPort = 0;
  private openCount = 0;
  /** Handler invocations under way here (counted, not tracked one by one: a flood has thousands). */
  private invoking = 0;
  private idleWaiters: (() => void)[] = [];
  /**
   * Management API posts answered, and refused with 429: the child's counts, mirrored at most
   * 50 ms late, and exactly after {@link settle}.
   */
  readonly managementStats: ManagementStats = { posts: 0, throttled: 0 };

  constructor(
    private readonly handlers: GatewayHandlers,
    options: GatewayOptions = {},
  ) {
    this.inProcess = options.inProcess ?? false;
    this.log = options.log ?? (() => {});
    this.settings = {
      port: options.port ?? 8081,
      host: options.host ?? '127.0.0.1',
      urlHost: options.urlHost ?? 'localhost',
      stage: options.stage ?? 'local',
      idleTimeoutMs: options.idleTimeoutMs ?? IDLE_TIMEOUT_SECONDS * 1000,
      maxConnectionMs: options.maxConnectionMs ?? MAX_CONNECTION_SECONDS * 1000,
      maxMessageBytes: options.maxMessageBytes ?? LIMITS.maxMessageBytes,
      maxBufferedBytes: options.maxBufferedBytes ?? 2 * 1024 * 1024,
      allowedHosts: options.allowedHosts ?? LOOPBACK_HOSTS,
      postLatencyMs: options.postLatencyMs ?? 0,
      postQuota: options.postQuota ?? 0,
      listenBacklog: options.listenBacklog ?? 4096,
      maxPendingHandshakes: options.maxPendingHandshakes ?? 2048,
      // The Management API's path segment: only the runtime that made it knows it. It holds
      // across a stop and start, as the posters keep the endpoint they were built with.
      managementSecret: randomBytes(18).toString('base64url'),
      routeKeys: Object.keys(handlers.routes),
      authorizer: handlers.authorizer !== undefined,
      log: options.log !== undefined,
    };
    // A Map, so that an action named `constructor` or `__proto__` finds no route but $default.
    this.routes = new Map(Object.entries(handlers.routes));
  }

  /** ws://host:port */
  get url(): string {
    return `ws://${this.settings.urlHost}:${this.boundPort}`;
  }

  /** The Management API endpoint (the stage's callback URL): http://host:port/<secret> */
  get managementUrl(): string {
    return `http://${this.settings.urlHost}:${this.boundPort}/${this.settings.managementSecret}`;
  }

  get port(): number {
    return this.boundPort;
  }

  /** Open connections: the child's count, mirrored as it changes, and exactly after {@link settle}. */
  get connectionCount(): number {
    return this.openCount;
  }

  get running(): boolean {
    return this.live;
  }

  /** Starts listening; after {@link stop}, starts again on the same port. */
  async start(): Promise<void> {
    if (this.live) return;
    const settings = { ...this.settings, port: this.boundPort || this.settings.port };
    if (this.inProcess) {
      this.server ??= new GatewayServer(settings, this.host((call) => this.run(call)));
      this.boundPort = await this.server.start();
    } else {
      this.child = await GatewayProcess.start(settings, this.host((call) => this.track(this.run(call))));
      this.boundPort = this.child.port;
    }
    this.live = true;
  }

  /**
   * Stops listening and closes every connection with 1001 (going away), as API Gateway does on a
   * deployment; $disconnect runs for each.
   */
  async stop(): Promise<void> {
    if (!this.live) return;
    this.live = false;
    if (this.server) await this.server.stop();
    const child = this.child;
    if (child) {
      await child.stop();
      this.child = undefined;
    }
    await this.settle();
    this.openCount = 0;
  }

  /**
   * Resolves when every handler invocation under way has finished, here and in the child: each
   * round asks the child for its pending work (its answer follows every invocation it asked for
   * before), until neither side has any.
   */
  async settle(): Promise<void> {
    for (;;) {
      while (this.invoking) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
      if (this.server) return this.server.settle();
      if (!this.child) return;
      let childPending: number;
      try {
        childPending = (await this.child.query()).pending;
      } catch {
        return;
      }
      if (childPending === 0 && this.invoking === 0) return;
      // Work there that is not an invocation here (a close handshake finishing): look again soon.
      if (this.invoking === 0) await new Promise((resolve) => setTimeout(resolve, SETTLE_POLL_MS));
    }
  }

  private track<T>(promise: Promise<T>): Promise<T> {
    this.invoking++;
    const done = () => {
      if (--this.invoking === 0) this.idleWaiters.splice(0).forEach((wake) => wake());
    };
    promise.then(done, done);
    return promise;
  }

  private host(invoke: GatewayHost['invoke']): GatewayHost {
    return {
      invoke,
      openChanged: (count) => (this.openCount = count),
      statsChanged: (stats) => Object.assign(this.managementStats, stats),
      log: (line) => this.log(line),
    };
  }

  private async run(call: Invocation): Promise<InvocationResult> {
    switch (call.kind) {
      case 'authorizer':
        if (!this.handlers.authorizer) throw new Error('no authorizer');
        return this.handlers.authorizer(call.event);
      case 'connect':
        return (await this.handlers.connect(call.event)) ?? undefined;
      case 'disconnect':
        return (await this.handlers.disconnect(call.event)) ?? undefined;
      case 'route':
        return (await (this.routes.get(call.routeKey) ?? this.handlers.routes.$default)(call.event)) ?? undefined;
    }
  }
}
