/** Event and result shapes of API Gateway WebSocket routes, as AWS documents them. */
import type { APIGatewayProxyWebsocketEventV2 } from 'aws-lambda';

/**
 * A WebSocket route event. `$connect` also carries the query string, headers and the
 * authorizer's context, which the aws-lambda typings leave out; `messageId` comes with MESSAGE
 * events only, although those typings require it on all.
 */
export type WebSocketEvent = Omit<APIGatewayProxyWebsocketEventV2, 'requestContext'> & {
  queryStringParameters?: Record<string, string | undefined> | null;
  headers?: Record<string, string | undefined> | null;
  requestContext: WebSocketRequestContext;
};

/** The `requestContext` of a {@link WebSocketEvent}. */
export type WebSocketRequestContext = Omit<APIGatewayProxyWebsocketEventV2['requestContext'], 'messageId'> & {
  messageId?: string;
  authorizer?: Record<string, unknown> | null;
  disconnectStatusCode?: number;
  disconnectReason?: string;
};

/** What a route returns; with a route response configured, `body` is sent to the client. */
export interface WebSocketResult {
  statusCode: number;
  body?: string;
}
