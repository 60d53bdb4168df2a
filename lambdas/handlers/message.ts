/**
 * The handler of every message route (subscribe, unsubscribe, ping, $default): each route file
 * exports it. Routing happens in API Gateway on `$request.body.action`; the core checks the
 * message again, so a message that reached the wrong route still gets the right answer.
 */
import { handleClientMessage } from '../core/sessions';
import { defaultConnections, defaultIndex, defaultLogger, defaultMetricsSink, lazy, noIndex } from './defaults';
import type { ConnectDeps } from './connect';
import { flushMetrics } from './flush-metrics';
import type { WebSocketEvent, WebSocketResult } from './types';

/** Builds the message handler; its reply is the route response sent back to the client. */
export function createMessageHandler(deps: ConnectDeps) {
  return async (event: WebSocketEvent): Promise<WebSocketResult> => {
    const body = event.isBase64Encoded && event.body ? Buffer.from(event.body, 'base64').toString('utf8') : event.body;
    const { reply, metrics } = await handleClientMessage(deps.sessions, event.requestContext.connectionId, body);
    if (reply.type === 'error') {
      deps.log.info('client message rejected', {
        connectionId: event.requestContext.connectionId,
        code: reply.code,
        reason: reply.message,
      });
    }
    await flushMetrics(deps.metrics, metrics, deps.log);
    return { statusCode: 200, body: JSON.stringify(reply) };
  };
}

/** The default instance of a route that changes subscriptions (subscribe, unsubscribe). */
export function subscriptionRouteHandler() {
  return lazy(() =>
    createMessageHandler({
      sessions: { connections: defaultConnections(), index: defaultIndex() },
      metrics: defaultMetricsSink(),
      log: defaultLogger(),
    }),
  );
}

/**
 * The default instance of a route that needs no index (ping, $default): only the connections
 * table, whose token bucket limits every message of a connection.
 */
export function tablelessRouteHandler(route: string) {
  return lazy(() =>
    createMessageHandler({
      sessions: { connections: defaultConnections(), index: noIndex(route) },
      metrics: defaultMetricsSink(),
      log: defaultLogger(),
    }),
  );
}
