/**
 * A local API Gateway WebSocket API: a `ws` server that invokes the same handlers API Gateway
 * invokes, with events of the same shape, routed on `$request.body.action`, and the `@connections`
 * Management API (POST, GET, DELETE) over HTTP on the same port, so the Lambdas' real SDK client
 * posts to it. API Gateway's limits are enforced: 128 KB messages (larger ones close the socket
 * with 1009), the 10-minute idle timeout and the 2-hour connection limit. Asked to, the Management
 * API behaves as over the network on AWS: each call answers after a round trip, and posts beyond
 * the account quota are refused with 429.
 *
 * Only this machine may use it: upgrades need a loopback `Host` and, when the browser sends one,
 * a loopback `Origin` (so that no web page, not even through DNS rebinding, reads the stream), and
 * the Management API answers loopback peers only, under a random path segment made at each start
 * (as a stage name is), so that another local process cannot post to or close a connection.
 */
import { randomBytes } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { APIGatewayAuthorizerResult, APIGatewayRequestAuthorizerEvent } from 'aws-lambda';
import { WebSocketServer, type WebSocket } from 'ws';
import { IDLE_TIMEOUT_SECONDS, MAX_CONNECTION_SECONDS } from '../lambdas/config/tables';
import { LIMITS } from '../lambdas/core/protocol';
import type { WebSocketEvent, WebSocketResult } from '../lambdas/handlers/types';
import { errorMessage } from '../lambdas/core/errors';
import { connectEvent, disconnectEvent, messageEvent, wsRequestContext, type WsEventSource } from './apigw-events';

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

/** Options of {@link LocalGateway}. */
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
  log?: (line: string) => void;
}

/** Management API calls refused and made, for benchmarks and tests. */
export interface ManagementStats {
  posts: number;
  throttled: number;
}

interface Connection {
  id: string;
  ws: WebSocket;
  connectedAt: number;
  lastActiveAt: number;
  sourceIp: string;
  userAgent: string;
  authorizer?: Record<string, unknown>;
  queue: Promise<void>;
  idleTimer?: NodeJS.Timeout;
  maxTimer?: NodeJS.Timeout;
}


/** Loopback host names, as `URL.hostname` spells them. */
export const LOOPBACK_HOSTS: readonly string[] = ['localhost', '127.0.0.1', '[::1]'];

/** Whether a `Host` header (`name[:port]`) names one of `allowed`. */
export function hostAllowed(host: string | undefined, allowed: readonly string[]): boolean {
  if (!host) return false;
  try {
    return allowed.includes(new URL(`http://${host}`).hostname);
  } catch {
    return false;
  }
}

/** Whether an `Origin` header is absent (not a browser) or names one of `allowed`. */
function originAllowed(origin: string | undefined, allowed: readonly string[]): boolean {
  if (origin === undefined) return true;
  try {
    return allowed.includes(new URL(origin).hostname);
  } catch {
    return false;
  }
}

function isLoopback(address: string | undefined): boolean {
  return address === '::1' || address?.startsWith('127.') === true || address?.startsWith('::ffff:127.') === true;
}

/** A connection id like API Gateway's: 16 characters of base64, ending in `=`. */
function newConnectionId(): string {
  return randomBytes(11).toString('base64').replace(/\+/g, 'A').replace(/\//g, 'B');
}

function rejectUpgrade(socket: Duplex, status: number, message: string): void {
  const body = JSON.stringify({ message });
  socket.end(
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? 'Error'}\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

function flatHeaders(req: IncomingMessage): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(',') : value;
  }
  return headers;
}

/** The local WebSocket API and its Management API. */
export class LocalGateway {
  private server?: http.Server;
  private wss?: WebSocketServer;
  private readonly connections = new Map<string, Connection>();
  private readonly pending = new Set<Promise<unknown>>();
  private readonly opts: Required<Omit<GatewayOptions, 'log'>> & { log: (line: string) => void };
  private readonly routes: ReadonlyMap<string, RouteHandler>;
  private boundPort = 0;
  private readonly apiId = 'local';
  /** The Management API's path segment, new at each start: only the runtime that made it knows it. */
  private readonly managementSecret = randomBytes(18).toString('base64url');
  private quotaTokens = 0;
  private quotaAt = 0;
  /** Management API posts answered, and refused with 429. */
  readonly managementStats: ManagementStats = { posts: 0, throttled: 0 };

  constructor(
    private readonly handlers: GatewayHandlers,
    options: GatewayOptions = {},
  ) {
    this.opts = {
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
      log: options.log ?? (() => {}),
    };
    this.quotaTokens = this.opts.postQuota;
    // A Map, so that an action named `constructor` or `__proto__` finds no route but $default.
    this.routes = new Map(Object.entries(handlers.routes));
  }

  /** True when a post fits the quota now (and takes its token). */
  private admitPost(): boolean {
    const quota = this.opts.postQuota;
    if (quota <= 0) return true;
    const now = performance.now();
    this.quotaTokens = Math.min(quota, this.quotaTokens + ((now - this.quotaAt) * quota) / 1000);
    this.quotaAt = now;
    if (this.quotaTokens < 1) return false;
    this.quotaTokens--;
    return true;
  }

  /** ws://host:port */
  get url(): string {
    return `ws://${this.opts.urlHost}:${this.boundPort}`;
  }

  /** The Management API endpoint (the stage's callback URL): http://host:port/<per-start secret> */
  get managementUrl(): string {
    return `http://${this.opts.urlHost}:${this.boundPort}/${this.managementSecret}`;
  }

  get port(): number {
    return this.boundPort;
  }

  /** Open connections. */
  get connectionCount(): number {
    return this.connections.size;
  }

  get running(): boolean {
    return this.server !== undefined;
  }

  /** Starts listening; after {@link stop}, starts again on the same port. */
  async start(): Promise<void> {
    if (this.server) return;
    const server = http.createServer((req, res) => this.onHttp(req, res));
    const wss = new WebSocketServer({ noServer: true, maxPayload: this.opts.maxMessageBytes });
    server.on('upgrade', (req, socket, head) => this.onUpgrade(wss, req, socket, head));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.boundPort || this.opts.port, this.opts.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.boundPort = (server.address() as AddressInfo).port;
    this.server = server;
    this.wss = wss;
  }

  /**
   * Stops listening and closes every connection with 1001 (going away), as API Gateway does on a
   * deployment; $disconnect runs for each.
   */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    const open = [...this.connections.values()];
    const closed = open.map(
      (connection) =>
        new Promise<void>((resolve) => {
          if (connection.ws.readyState === connection.ws.CLOSED) resolve();
          else connection.ws.once('close', () => resolve());
        }),
    );
    for (const connection of open) connection.ws.close(1001, 'Going away');
    // Peers that do not finish the close handshake within a second are cut.
    const cut = setTimeout(() => open.forEach((connection) => connection.ws.terminate()), 1000);
    await Promise.all(closed);
    clearTimeout(cut);
    await this.settle();
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
    this.wss?.close();
    this.wss = undefined;
  }

  /** Resolves when every handler invocation under way has finished. */
  async settle(): Promise<void> {
    while (this.pending.size) await Promise.allSettled([...this.pending]);
  }

  private track<T>(promise: Promise<T>): Promise<T> {
    this.pending.add(promise);
    void promise.finally(() => this.pending.delete(promise)).catch(() => {});
    return promise;
  }

  private source(connectionId: string, connectedAt: number, authorizer?: Record<string, unknown>): WsEventSource {
    return {
      apiId: this.apiId,
      stage: this.opts.stage,
      domainName: `${this.opts.urlHost}:${this.boundPort}`,
      connectionId,
      connectedAt,
      ...(authorizer ? { authorizer } : {}),
    };
  }

  private async onUpgrade(wss: WebSocketServer, req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on('error', () => {});
    if (!hostAllowed(req.headers.host, this.opts.allowedHosts) || !originAllowed(req.headers.origin, this.opts.allowedHosts)) {
      return rejectUpgrade(socket, 403, 'Forbidden');
    }
    // A client that leaves while the authorizer or $connect runs must still get its $disconnect:
    // `ws` destroys a half-closed socket without calling back, so the close is watched here.
    let opened = false;
    let left = false;
    socket.once('close', () => (left = true));
    const url = new URL(req.url ?? '/', 'http://localhost');
    const query = Object.fromEntries(url.searchParams.entries());
    const headers = flatHeaders(req);
    const connectionId = newConnectionId();
    const connectedAt = Date.now();
    let authorizer: Record<string, unknown> | undefined;
    try {
      if (this.handlers.authorizer) {
        const result = await this.track(
          this.handlers.authorizer({
            type: 'REQUEST',
            methodArn: `arn:aws:execute-api:local:000000000000:${this.apiId}/${this.opts.stage}/$connect`,
            resource: '$connect',
            path: url.pathname,
            httpMethod: 'GET',
            headers,
            multiValueHeaders: {},
            queryStringParameters: query,
            multiValueQueryStringParameters: {},
            pathParameters: {},
            stageVariables: {},
            requestContext: wsRequestContext(this.source(connectionId, connectedAt), '$connect', 'CONNECT') as never,
          }),
        );
        const allowed = result.policyDocument.Statement.some((s) => 'Effect' in s && s.Effect === 'Allow');
        if (!allowed) return rejectUpgrade(socket, 403, 'Forbidden');
        authorizer = { ...(result.context ?? {}), principalId: result.principalId };
      }
      const event = connectEvent(this.source(connectionId, connectedAt, authorizer), { headers, query });
      const result = await this.track(this.handlers.connect(event));
      const status = result?.statusCode ?? 200;
      if (status < 200 || status >= 300) return rejectUpgrade(socket, status, 'Connection refused');
    } catch (error) {
      this.opts.log(`$connect failed: ${errorMessage(error)}`);
      // An authorizer or $connect that throws: API Gateway answers 500 to the upgrade for both.
      return rejectUpgrade(socket, 500, 'Internal server error');
    }
    const undo = () => void this.track(this.invokeDisconnect(connectionId, connectedAt, authorizer, 1006, 'Client left during $connect'));
    if (!this.server || left || socket.destroyed || !socket.readable || !socket.writable) {
      // The gateway stopped, or the client left, while $connect ran: undo it.
      socket.destroy();
      return undo();
    }
    socket.once('close', () => {
      if (!opened) undo();
    });
    wss.handleUpgrade(req, socket, head, (ws) => {
      opened = true;
      this.onOpen(ws, connectionId, connectedAt, req, authorizer);
    });
  }

  private onOpen(ws: WebSocket, id: string, connectedAt: number, req: IncomingMessage, authorizer?: Record<string, unknown>): void {
    const connection: Connection = {
      id,
      ws,
      connectedAt,
      lastActiveAt: Date.now(),
      sourceIp: req.socket.remoteAddress ?? '127.0.0.1',
      userAgent: String(req.headers['user-agent'] ?? ''),
      authorizer,
      queue: Promise.resolve(),
    };
    this.connections.set(id, connection);
    this.resetIdle(connection);
    connection.maxTimer = setTimeout(() => ws.close(1001, 'Going away'), this.opts.maxConnectionMs);
    connection.maxTimer.unref();
    ws.on('message', (data, isBinary) => this.onMessage(connection, data as Buffer, isBinary));
    ws.on('pong', () => this.resetIdle(connection));
    ws.on('error', (error) => this.opts.log(`connection ${id}: ${error.message}`));
    ws.on('close', (code, reason) => {
      clearTimeout(connection.idleTimer);
      clearTimeout(connection.maxTimer);
      this.connections.delete(id);
      // $disconnect runs after the messages already queued for this connection.
      connection.queue = connection.queue.then(() =>
        this.invokeDisconnect(id, connectedAt, authorizer, code, reason.toString()),
      );
      void this.track(connection.queue);
    });
  }

  private async invokeDisconnect(
    id: string,
    connectedAt: number,
    authorizer: Record<string, unknown> | undefined,
    code: number,
    reason: string,
  ): Promise<void> {
    try {
      await this.handlers.disconnect(disconnectEvent(this.source(id, connectedAt, authorizer), code, reason));
    } catch (error) {
      this.opts.log(`$disconnect failed for ${id}: ${errorMessage(error)}`);
    }
  }

  private resetIdle(connection: Connection): void {
    connection.lastActiveAt = Date.now();
    clearTimeout(connection.idleTimer);
    connection.idleTimer = setTimeout(() => connection.ws.close(1001, 'Going away'), this.opts.idleTimeoutMs);
    connection.idleTimer.unref();
  }

  private onMessage(connection: Connection, data: Buffer, isBinary: boolean): void {
    this.resetIdle(connection);
    const body = isBinary ? data.toString('base64') : data.toString('utf8');
    let routeKey = '$default';
    if (!isBinary) {
      try {
        const action = (JSON.parse(body) as { action?: unknown })?.action;
        if (typeof action === 'string' && action !== '$default' && this.routes.has(action)) routeKey = action;
      } catch {
        // Not JSON: API Gateway's route selection falls back to $default.
      }
    }
    const handler = this.routes.get(routeKey) ?? this.handlers.routes.$default;
    const event = messageEvent(this.source(connection.id, connection.connectedAt, connection.authorizer), routeKey, body, isBinary);
    // API Gateway runs messages concurrently; one at a time per connection keeps replies in the
    // order the client sent its messages, which is what clients assume.
    connection.queue = connection.queue.then(async () => {
      let reply: string | undefined;
      try {
        const result = await handler(event);
        reply = result?.body;
      } catch (error) {
        this.opts.log(`route ${routeKey} failed: ${errorMessage(error)}`);
        reply = JSON.stringify({
          message: 'Internal server error',
          connectionId: connection.id,
          requestId: event.requestContext.requestId,
        });
      }
      if (reply !== undefined && connection.ws.readyState === connection.ws.OPEN) connection.ws.send(reply);
    });
    void this.track(connection.queue);
  }

  private onHttp(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const prefix = `/${this.managementSecret}/@connections/`;
    const match =
      isLoopback(req.socket.remoteAddress) && url.pathname.startsWith(prefix)
        ? /^([^/]+)$/.exec(url.pathname.slice(prefix.length))
        : null;
    const latency = this.opts.postLatencyMs;
    // `effect` happens when the call is answered: with latency, a post reaches its client then.
    const send = (status: number, body?: unknown, errorType?: string, effect?: () => void) => {
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (errorType) headers['x-amzn-errortype'] = errorType;
      const answer = () => {
        effect?.();
        res.writeHead(status, headers);
        res.end(body === undefined ? undefined : JSON.stringify(body));
      };
      if (latency > 0) setTimeout(answer, latency * (0.5 + Math.random()));
      else answer();
    };
    if (!match) return send(404, { message: 'Not Found' });
    if (req.method === 'POST') {
      if (!this.admitPost()) {
        this.managementStats.throttled++;
        req.resume();
        return send(429, { message: 'Too Many Requests' }, 'LimitExceededException');
      }
      this.managementStats.posts++;
    }
    let id: string;
    try {
      id = decodeURIComponent(match[1]);
    } catch {
      return send(400, { message: 'Invalid connection id' }, 'BadRequestException');
    }
    const connection = this.connections.get(id);
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > this.opts.maxMessageBytes) tooLarge = true;
      else chunks.push(chunk);
    });
    req.on('end', () => {
      if (!connection || connection.ws.readyState !== connection.ws.OPEN) {
        return send(410, { message: `Connection ${id} is gone` }, 'GoneException');
      }
      if (req.method === 'POST') {
        if (tooLarge) return send(413, { message: 'Message too long' }, 'PayloadTooLargeException');
        if (connection.ws.bufferedAmount > this.opts.maxBufferedBytes) {
          // A client that stopped reading: cut off, as API Gateway would, instead of buffering on.
          this.opts.log(`connection ${id} cut off: ${connection.ws.bufferedAmount} bytes unread`);
          connection.ws.terminate();
          return send(410, { message: `Connection ${id} is gone` }, 'GoneException');
        }
        const data = Buffer.concat(chunks);
        return send(200, undefined, undefined, () => {
          if (connection.ws.readyState === connection.ws.OPEN) connection.ws.send(data, { binary: false });
        });
      }
      if (req.method === 'GET') {
        return send(200, {
          ConnectedAt: new Date(connection.connectedAt).toISOString(),
          Identity: { SourceIp: connection.sourceIp, UserAgent: connection.userAgent },
          LastActiveAt: new Date(connection.lastActiveAt).toISOString(),
        });
      }
      if (req.method === 'DELETE') {
        return send(204, undefined, undefined, () => connection.ws.close(1000, 'Closed by server'));
      }
      return send(405, { message: 'Method Not Allowed' });
    });
  }
}
