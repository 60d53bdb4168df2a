/**
 * API Gateway WebSocket events as AWS sends them to the route Lambdas ($connect, a message route,
 * $disconnect), built fresh on every call. The local gateway invokes the handlers with these, and
 * the tests use the same builders, so a test event and a local one cannot drift apart; the shapes
 * are checked against AWS's documented examples in test/fixtures/apigw/.
 */
import { randomBytes, randomUUID } from 'node:crypto';

/** Random bytes drawn 4 KB at a time: a message id each, without a system call a message. */
let idPool = Buffer.alloc(0);
let idAt = 0;
function nextMessageId(): string {
  if (idAt + 8 > idPool.length) {
    idPool = randomBytes(4096);
    idAt = 0;
  }
  idAt += 8;
  return idPool.toString('base64', idAt - 8, idAt);
}
import type { WebSocketEvent, WebSocketRequestContext } from '../lambdas/handlers/types';

/** Which API, stage and connection an event belongs to. */
export interface WsEventSource {
  readonly apiId: string;
  readonly stage: string;
  /** `{apiId}.execute-api.{region}.amazonaws.com`, or `host:port` locally. */
  readonly domainName: string;
  readonly connectionId: string;
  /** Epoch milliseconds of the `$connect`. */
  readonly connectedAt: number;
  /** The authorizer's context, as the routes after `$connect` receive it. */
  readonly authorizer?: Record<string, unknown>;
  /** Epoch milliseconds of this request. Default: now. */
  readonly now?: number;
}

let timeAt = -1;
let timeText = '';
/** The `requestTime` of `now`, made once per millisecond: a flood's messages share most of them. */
function requestTime(now: number): string {
  if (now !== timeAt) {
    timeAt = now;
    timeText = new Date(now).toUTCString();
  }
  return timeText;
}

/** The `requestContext` every WebSocket event carries; `messageId` only on MESSAGE, as on AWS. */
export function wsRequestContext(
  source: WsEventSource,
  routeKey: string,
  eventType: WebSocketRequestContext['eventType'],
): WebSocketRequestContext {
  const now = source.now ?? Date.now();
  return {
    routeKey,
    eventType,
    ...(eventType === 'MESSAGE' ? { messageId: nextMessageId() } : {}),
    extendedRequestId: randomUUID(),
    requestTime: requestTime(now),
    messageDirection: 'IN',
    stage: source.stage,
    connectedAt: source.connectedAt,
    requestTimeEpoch: now,
    requestId: randomUUID(),
    domainName: source.domainName,
    connectionId: source.connectionId,
    apiId: source.apiId,
    ...(source.authorizer ? { authorizer: { ...source.authorizer } } : {}),
  };
}

/** A `$connect` event: the upgrade request's headers and query string. */
export function connectEvent(
  source: WsEventSource,
  request: { headers?: Record<string, string>; query?: Record<string, string> } = {},
): WebSocketEvent {
  const query = request.query && Object.keys(request.query).length ? { ...request.query } : undefined;
  return {
    requestContext: wsRequestContext(source, '$connect', 'CONNECT'),
    headers: { ...request.headers },
    ...(query ? { queryStringParameters: query } : {}),
    isBase64Encoded: false,
  };
}

/** A message event for `routeKey`; a binary frame's body arrives base64-encoded. */
export function messageEvent(source: WsEventSource, routeKey: string, body: string, isBase64Encoded = false): WebSocketEvent {
  return { requestContext: wsRequestContext(source, routeKey, 'MESSAGE'), body, isBase64Encoded };
}

/** A `$disconnect` event with the close code and reason. */
export function disconnectEvent(source: WsEventSource, code: number, reason: string): WebSocketEvent {
  return {
    requestContext: { ...wsRequestContext(source, '$disconnect', 'DISCONNECT'), disconnectStatusCode: code, disconnectReason: reason },
    isBase64Encoded: false,
  };
}
