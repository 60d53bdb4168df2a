/** `$connect`: registers the connection with the principal its authorizer passed on. */
import { principalFromContext } from '../core/auth';
import { errorMessage } from '../core/errors';
import { METRIC, MetricsBatch } from '../core/metrics';
import type { Log, MetricsSink } from '../core/ports';
import { openConnection, type SessionDeps } from '../core/sessions';
import { defaultConnections, defaultLogger, defaultMetricsSink, lazy } from './defaults';
import { flushMetrics } from './flush-metrics';
import type { WebSocketEvent, WebSocketResult } from './types';

/** Dependencies of the route handlers. */
export interface ConnectDeps {
  sessions: SessionDeps;
  metrics: MetricsSink;
  log: Log;
}

/** Builds the $connect handler. */
export function createConnectHandler(deps: Omit<ConnectDeps, 'sessions'> & { sessions: Pick<SessionDeps, 'connections' | 'now'> }) {
  return async (event: WebSocketEvent): Promise<WebSocketResult> => {
    const { connectionId } = event.requestContext;
    // One round trip: the connection item and the gauge's +1 are written together. A failed
    // write of the item takes the +1 back, so the gauge never counts a connection that was refused.
    const opened = openConnection(deps.sessions, connectionId, principalFromContext(event.requestContext.authorizer));
    const counted = flushMetrics(deps.metrics, new MetricsBatch().add(METRIC.connections, 1), deps.log);
    try {
      await opened;
    } catch (error) {
      // A put whose answer was lost may have been written all the same: API Gateway refuses the
      // connection, no $disconnect will come, and the item would stay, a connection the tables
      // hold and no socket has, until its TTL. It is removed here (a delete of nothing is no harm).
      await deps.sessions.connections.delete(connectionId).catch((cleanup: unknown) =>
        deps.log.warn('refused connection not removed', { connectionId, error: errorMessage(cleanup) }),
      );
      await counted;
      await flushMetrics(deps.metrics, new MetricsBatch().add(METRIC.connections, -1), deps.log);
      throw error;
    }
    await counted;
    return { statusCode: 200 };
  };
}

export const handler = lazy(() =>
  createConnectHandler({
    // $connect only registers the connection: no access to the subscription index.
    sessions: { connections: defaultConnections() },
    metrics: defaultMetricsSink(),
    log: defaultLogger(),
  }),
);
