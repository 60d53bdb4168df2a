/**
 * The handler of every message route (subscribe, unsubscribe, ping, $default): each route file
 * exports it. Routing happens in API Gateway on `$request.body.action`; the core checks the
 * message again, so a message that reached the wrong route still gets the right answer.
 */
import type { Poster } from '../core/ports';
import type { PostBudget } from '../core/pacing';
import { sleep } from '../core/concurrency';
import { principalFromContext } from '../core/auth';
import { connectionExpiry, handleClientMessage } from '../core/sessions';
import {
  defaultAlertState,
  defaultConnections,
  defaultIndex,
  defaultLogger,
  defaultMetricsSink,
  defaultPoster,
  defaultReplayer,
  defaultSnapshot,
  lazy,
  noIndex,
} from './defaults';
import type { ConnectDeps } from './connect';
import { flushMetrics } from './flush-metrics';
import type { WebSocketEvent, WebSocketResult } from './types';

/**
 * Builds the message handler. Its reply is the route response sent back to the client, except
 * when follow-ups (a snapshot) must come after it: a route response only leaves API Gateway once
 * the Lambda has returned, so then the reply and the follow-ups are all posted, in order, through
 * the Management API, and the route response is empty.
 */
export function createMessageHandler(
  deps: ConnectDeps & {
    poster?: Poster;
    /**
     * The posts budget that follow-ups (a snapshot, a resume's replay) draw from, one token a post,
     * waiting for the refill when it is spent: the account quota the stream paces under.
     */
    budget?: Pick<PostBudget, 'msUntil' | 'take'>;
    /** Waits for the budget. Default: a timer. */
    sleep?: (ms: number) => Promise<void>;
  },
) {
  const wait = deps.sleep ?? sleep;
  return async (event: WebSocketEvent): Promise<WebSocketResult> => {
    const body = event.isBase64Encoded && event.body ? Buffer.from(event.body, 'base64').toString('utf8') : event.body;
    const { connectionId, connectedAt, authorizer } = event.requestContext;
    const principal = principalFromContext(authorizer);
    const caller = principal && connectedAt ? { sites: principal.sites, expiresAt: connectionExpiry(connectedAt) } : undefined;
    const { reply, followUps, metrics, resumed } = await handleClientMessage(deps.sessions, connectionId, body, caller);
    if (resumed) deps.log.info('resume', { connectionId, ...resumed });
    // A refusal over the rate limit is not logged: a flood would make a log line a message.
    if (reply.type === 'error' && reply.code !== 'rate_limited') {
      deps.log.info('client message rejected', {
        connectionId: event.requestContext.connectionId,
        code: reply.code,
        reason: reply.message,
      });
    }
    const text = JSON.stringify(reply);
    if (followUps.length && deps.poster) {
      const first = await deps.poster.post(connectionId, text);
      if (first.outcome === 'ok') {
        for (const followUp of followUps) {
          if (deps.budget) {
            const ms = deps.budget.msUntil(1);
            if (ms > 0) await wait(ms);
            deps.budget.take(1);
          }
          const result = await deps.poster.post(connectionId, followUp);
          if (result.outcome !== 'ok') {
            deps.log.warn('snapshot not delivered', { connectionId, outcome: result.outcome, error: result.error });
            break;
          }
        }
        await flushMetrics(deps.metrics, metrics, deps.log);
        return { statusCode: 200 };
      }
      deps.log.warn('reply not posted; answering on the route', { connectionId, outcome: first.outcome, error: first.error });
    }
    await flushMetrics(deps.metrics, metrics, deps.log);
    return { statusCode: 200, body: text };
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

/** The default instance of the subscribe route: stores the subscription, then posts its snapshot. */
export function subscribeRouteHandler() {
  return lazy(() =>
    createMessageHandler({
      sessions: { connections: defaultConnections(), index: defaultIndex(), snapshot: defaultSnapshot(), replay: defaultReplayer() },
      poster: defaultPoster(),
      metrics: defaultMetricsSink(),
      log: defaultLogger(),
    }),
  );
}

/** The default instance of the ack route: changes an alert's state and tells every operator who sees it. */
export function ackRouteHandler() {
  return lazy(() => {
    const connections = defaultConnections();
    return createMessageHandler({
      sessions: { connections, index: noIndex('ack'), alertState: defaultAlertState() },
      metrics: defaultMetricsSink(),
      log: defaultLogger(),
    });
  });
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
