/**
 * The socket side of the local API Gateway: the `ws` server, upgrades, each connection's queue and
 * its idle and lifetime timers, and the `@connections` Management API over HTTP on the same port.
 * It builds the events API Gateway would send and hands each invocation to a {@link GatewayHost},
 * which runs the handler: in the same process, or, by default, in the parent of the child process
 * this runs in (./gateway-process.ts), so that handshakes, frames and posts are served on a loop
 * the handlers never hold up.
 *
 * API Gateway's limits are enforced: 128 KB messages (larger ones close the socket with 1009), the
 * 10-minute idle timeout and the 2-hour connection limit. Asked to, the Management API behaves as
 * over the network on AWS: each call answers after a round trip, and posts beyond the account
 * quota are refused with 429.
 *
 * Only this machine may use it: upgrades need a loopback `Host` and, when the browser sends one,
 * a loopback `Origin` (so that no web page, not even through DNS rebinding, reads the stream), and
 * the Management API answers loopback peers only, under a secret path segment (as a stage name
 * is), so that another local process cannot post to or close a connection.
 */
import { randomBytes } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { APIGatewayAuthorizerResult } from 'aws-lambda';
import { WebSocketServer, type WebSocket } from 'ws';
import type { WebSocketResult } from '../lambdas/handlers/types';
import { errorMessage } from '../lambdas/core/errors';
import { parseJsonText } from '../lambdas/core/json-text';
import { connectEvent, disconnectEvent, messageEvent, wsRequestContext, type WsEventSource } from './apigw-events';
import type { GatewaySettings, GatewayState, Invocation, InvocationResult, ManagementStats } from './gateway-ipc';

/** How often (ms) settling looks again at close handshakes that have not finished. */
export const SETTLE_POLL_MS = 5;

/** Where the socket side's invocations run, and where it reports what the facade mirrors. */
export interface GatewayHost {
  /** Runs a handler; rejects with the handler's error. */
  invoke(call: Invocation): Promise<InvocationResult>;
  /** The number of open sockets changed. */
  openChanged(count: number): void;
  /** A Management API call was counted (called on every one: coalesce if it costs). */
  statsChanged(stats: ManagementStats): void;
  log(line: string): void;
}

interface Connection {
  id: string;
  ws: WebSocket;
  connectedAt: number;
  lastActiveAt: number;
  sourceIp: string;
  userAgent: string;
  authorizer?: Record<string, unknown>;
  /** Its messages whose invocations have not ended yet. */
  unanswered: number;
  /** Its $disconnect, once the socket has closed, run when the last reply is in. */
  onAnswered?: () => void;
  /** Whether its socket is corked until the end of this turn of the loop ({@link GatewayServer.reply}). */
  corked: boolean;
  idleTimer?: NodeJS.Timeout;
  maxTimer?: NodeJS.Timeout;
}

/** The TCP socket under a `ws` connection (`ws` keeps it as `_socket`), if it still has one. */
function rawSocket(ws: WebSocket): Socket | undefined {
  return (ws as unknown as { _socket?: Socket })._socket;
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

function rejectUpgrade(socket: Duplex, status: number, message: string, extraHeaders = ''): void {
  const body = JSON.stringify({ message });
  socket.end(
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? 'Error'}\r\nContent-Type: application/json\r\n${extraHeaders}` +
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

/** The local WebSocket API and its Management API, handlers run by a {@link GatewayHost}. */
export class GatewayServer {
  private server?: http.Server;
  private wss?: WebSocketServer;
  private readonly connections = new Map<string, Connection>();
  private readonly pending = new Set<Promise<unknown>>();
  /** Message invocations under way, all connections (counted, not tracked: a flood has thousands). */
  private messagesInFlight = 0;
  private idleWaiters: (() => void)[] = [];
  /** Upgrades between their request and their `open` or refusal. */
  private handshakes = 0;
  private readonly routes: ReadonlySet<string>;
  private boundPort = 0;
  private readonly apiId = 'local';
  private quotaTokens: number;
  private quotaAt = 0;
  private readonly stats: ManagementStats = { posts: 0, throttled: 0 };

  constructor(
    private readonly settings: GatewaySettings,
    private readonly host: GatewayHost,
  ) {
    this.quotaTokens = settings.postQuota;
    // A Set, so that an action named `constructor` or `__proto__` finds no route but $default.
    this.routes = new Set(settings.routeKeys.filter((key) => key !== '$default'));
  }

  /** What the facade mirrors: unfinished work, open sockets, Management API counts. */
  get state(): GatewayState {
    return { pending: this.pending.size + this.messagesInFlight + this.closing(), open: this.connections.size, stats: { ...this.stats } };
  }

  /**
   * Sockets in their close handshake: each will end in a $disconnect. They count as work under
   * way, so that a client that saw its close completed can settle and find its $disconnect run (the
   * peer's `close` can come before this side's socket has closed).
   */
  private closing(): number {
    let closing = 0;
    for (const connection of this.connections.values()) if (connection.ws.readyState === connection.ws.CLOSING) closing++;
    return closing;
  }

  get running(): boolean {
    return this.server !== undefined;
  }

  /** Starts listening and resolves with the port; after {@link stop}, starts again on the same port. */
  async start(): Promise<number> {
    if (this.server) return this.boundPort;
    const server = http.createServer((req, res) => this.onHttp(req, res));
    const wss = new WebSocketServer({ noServer: true, maxPayload: this.settings.maxMessageBytes });
    server.on('upgrade', (req, socket, head) => void this.onUpgrade(wss, req, socket, head));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ port: this.boundPort || this.settings.port, host: this.settings.host, backlog: this.settings.listenBacklog }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.boundPort = (server.address() as AddressInfo).port;
    this.server = server;
    this.wss = wss;
    return this.boundPort;
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

  /** Resolves when every invocation, connection queue and close handshake under way has finished. */
  async settle(): Promise<void> {
    for (;;) {
      while (this.pending.size || this.messagesInFlight) {
        if (this.messagesInFlight) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
        await Promise.allSettled([...this.pending]);
      }
      if (!this.closing()) return;
      await new Promise((resolve) => setTimeout(resolve, SETTLE_POLL_MS));
    }
  }

  private track<T>(promise: Promise<T>): Promise<T> {
    this.pending.add(promise);
    void promise.finally(() => this.pending.delete(promise)).catch(() => {});
    return promise;
  }

  private countPost(throttled: boolean): void {
    if (throttled) this.stats.throttled++;
    else this.stats.posts++;
    this.host.statsChanged(this.stats);
  }

  /** True when a post fits the quota now (and takes its token). */
  private admitPost(): boolean {
    const quota = this.settings.postQuota;
    if (quota <= 0) return true;
    const now = performance.now();
    this.quotaTokens = Math.min(quota, this.quotaTokens + ((now - this.quotaAt) * quota) / 1000);
    this.quotaAt = now;
    if (this.quotaTokens < 1) return false;
    this.quotaTokens--;
    return true;
  }

  private source(connectionId: string, connectedAt: number, authorizer?: Record<string, unknown>): WsEventSource {
    return {
      apiId: this.apiId,
      stage: this.settings.stage,
      domainName: `${this.settings.urlHost}:${this.boundPort}`,
      connectionId,
      connectedAt,
      ...(authorizer ? { authorizer } : {}),
    };
  }

  private async onUpgrade(wss: WebSocketServer, req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on('error', () => {});
    if (!hostAllowed(req.headers.host, this.settings.allowedHosts) || !originAllowed(req.headers.origin, this.settings.allowedHosts)) {
      return rejectUpgrade(socket, 403, 'Forbidden');
    }
    if (this.handshakes >= this.settings.maxPendingHandshakes) {
      // Refused whole, with the answer API Gateway gives a connect over its rate, rather than left
      // to wait until the client gives up: a client can retry a 429.
      return rejectUpgrade(socket, 429, 'Too Many Requests', 'Retry-After: 1\r\nx-amzn-errortype: LimitExceededException\r\n');
    }
    this.handshakes++;
    try {
      await this.handshake(wss, req, socket, head);
    } finally {
      this.handshakes--;
    }
  }

  private async handshake(wss: WebSocketServer, req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
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
      if (this.settings.authorizer) {
        const result = (await this.track(
          this.host.invoke({
            kind: 'authorizer',
            event: {
              type: 'REQUEST',
              methodArn: `arn:aws:execute-api:local:000000000000:${this.apiId}/${this.settings.stage}/$connect`,
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
            },
          }),
        )) as APIGatewayAuthorizerResult;
        const allowed = result.policyDocument.Statement.some((s) => 'Effect' in s && s.Effect === 'Allow');
        if (!allowed) return rejectUpgrade(socket, 403, 'Forbidden');
        authorizer = { ...(result.context ?? {}), principalId: result.principalId };
      }
      const event = connectEvent(this.source(connectionId, connectedAt, authorizer), { headers, query });
      const result = (await this.track(this.host.invoke({ kind: 'connect', event }))) as WebSocketResult | undefined;
      const status = result?.statusCode ?? 200;
      if (status < 200 || status >= 300) return rejectUpgrade(socket, status, 'Connection refused');
    } catch (error) {
      this.host.log(`$connect failed: ${errorMessage(error)}`);
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
      unanswered: 0,
      corked: false,
    };
    this.connections.set(id, connection);
    this.host.openChanged(this.connections.size);
    this.resetIdle(connection);
    connection.maxTimer = setTimeout(() => ws.close(1001, 'Going away'), this.settings.maxConnectionMs);
    connection.maxTimer.unref();
    ws.on('message', (data, isBinary) => this.onMessage(connection, data as Buffer, isBinary));
    ws.on('pong', () => this.resetIdle(connection));
    ws.on('error', (error) => this.host.log(`connection ${id}: ${error.message}`));
    ws.on('close', (code, reason) => {
      clearTimeout(connection.idleTimer);
      clearTimeout(connection.maxTimer);
      this.forget(connection);
      // $disconnect runs after the messages already under way for this connection.
      const disconnect = () => void this.track(this.invokeDisconnect(id, connectedAt, authorizer, code, reason.toString()));
      if (connection.unanswered) connection.onAnswered = disconnect;
      else disconnect();
    });
  }

  private forget(connection: Connection): void {
    if (this.connections.delete(connection.id)) this.host.openChanged(this.connections.size);
  }

  private async invokeDisconnect(
    id: string,
    connectedAt: number,
    authorizer: Record<string, unknown> | undefined,
    code: number,
    reason: string,
  ): Promise<void> {
    try {
      await this.host.invoke({ kind: 'disconnect', event: disconnectEvent(this.source(id, connectedAt, authorizer), code, reason) });
    } catch (error) {
      this.host.log(`$disconnect failed for ${id}: ${errorMessage(error)}`);
    }
  }

  /**
   * Marks the connection active. Its idle timer is not moved on every message (a flood's
   * thousands a second each re-armed a timer): when it fires, it looks at the last activity and
   * waits again for the rest of the timeout if there was some.
   */
  private resetIdle(connection: Connection): void {
    connection.lastActiveAt = Date.now();
    if (!connection.idleTimer) this.armIdle(connection, this.settings.idleTimeoutMs);
  }

  private armIdle(connection: Connection, ms: number): void {
    connection.idleTimer = setTimeout(() => {
      const left = connection.lastActiveAt + this.settings.idleTimeoutMs - Date.now();
      if (left > 0) this.armIdle(connection, left);
      else connection.ws.close(1001, 'Going away');
    }, ms);
    connection.idleTimer.unref();
  }

  private onMessage(connection: Connection, data: Buffer, isBinary: boolean): void {
    this.resetIdle(connection);
    const body = isBinary ? data.toString('base64') : data.toString('utf8');
    let routeKey = '$default';
    if (!isBinary) {
      // Not JSON, or no route of that name: API Gateway's route selection falls back to $default.
      const action = (parseJsonText(body)?.value as { action?: unknown } | null | undefined)?.action;
      if (typeof action === 'string' && this.routes.has(action)) routeKey = action;
    }
    const event = messageEvent(this.source(connection.id, connection.connectedAt, connection.authorizer), routeKey, body, isBinary);
    // Invoked at once, as API Gateway invokes a connection's messages concurrently, and each reply
    // sent as its invocation ends, as API Gateway sends a route response: a reply held for the
    // slower messages before it reached a flooder seconds late, after its burst's table writes.
    connection.unanswered++;
    this.messagesInFlight++;
    this.host.invoke({ kind: 'route', routeKey, event }).then(
      (result) => this.answered(connection, (result as WebSocketResult | undefined)?.body),
      (error: unknown) => {
        this.host.log(`route ${routeKey} failed: ${errorMessage(error)}`);
        const requestId = event.requestContext.requestId;
        this.answered(connection, JSON.stringify({ message: 'Internal server error', connectionId: connection.id, requestId }));
      },
    );
  }

  /** A message's invocation ended: sends its reply, if any; the last one lets a waiting $disconnect go. */
  private answered(connection: Connection, text: string | undefined): void {
    if (text !== undefined && connection.ws.readyState === connection.ws.OPEN) this.reply(connection, text);
    if (--connection.unanswered === 0 && connection.onAnswered) {
      const disconnect = connection.onAnswered;
      connection.onAnswered = undefined;
      disconnect();
    }
    if (--this.messagesInFlight === 0) this.idleWaiters.splice(0).forEach((wake) => wake());
  }

  /**
   * Sends a route response. The replies sent in one turn of the loop (a batch of results) leave
   * in one write: the socket is corked until the turn ends, instead of a system call per frame.
   */
  private reply(connection: Connection, text: string): void {
    const socket = rawSocket(connection.ws);
    if (socket && !connection.corked) {
      connection.corked = true;
      socket.cork();
      setImmediate(() => {
        connection.corked = false;
        socket.uncork();
      });
    }
    connection.ws.send(text);
  }

  private onHttp(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const prefix = `/${this.settings.managementSecret}/@connections/`;
    const match =
      isLoopback(req.socket.remoteAddress) && url.pathname.startsWith(prefix)
        ? /^([^/]+)$/.exec(url.pathname.slice(prefix.length))
        : null;
    const latency = this.settings.postLatencyMs;
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
      const admitted = this.admitPost();
      this.countPost(!admitted);
      if (!admitted) {
        req.resume();
        return send(429, { message: 'Too Many Requests' }, 'LimitExceededException');
      }
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
      if (size > this.settings.maxMessageBytes) tooLarge = true;
      else chunks.push(chunk);
    });
    req.on('end', () => {
      if (!connection || connection.ws.readyState !== connection.ws.OPEN) {
        return send(410, { message: `Connection ${id} is gone` }, 'GoneException');
      }
      if (req.method === 'POST') {
        if (tooLarge) return send(413, { message: 'Message too long' }, 'PayloadTooLargeException');
        if (connection.ws.bufferedAmount > this.settings.maxBufferedBytes) {
          // A client that stopped reading: cut off, as API Gateway would, instead of buffering on.
          this.host.log(`connection ${id} cut off: ${connection.ws.bufferedAmount} bytes unread`);
          connection.ws.terminate();
          // Counted as gone now, before the 410 reaches the poster, so that whoever reads the
          // count after the post (the parent's mirror) sees the cut.
          this.forget(connection);
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
