/** `$disconnect`: removes the connection and its subscriptions. */
import { METRIC, MetricsBatch } from '../core/metrics';
import { closeConnection } from '../core/sessions';
import { defaultConnections, defaultIndex, defaultLogger, defaultMetricsSink, lazy } from './defaults';
import type { ConnectDeps } from './connect';
import { flushMetrics } from './flush-metrics';
import type { WebSocketEvent, WebSocketResult } from './types';

/** Builds the $disconnect handler. */
export function createDisconnectHandler(deps: ConnectDeps) {
  return async (event: WebSocketEvent): Promise<WebSocketResult> => {
    const removed = await closeConnection(deps.sessions, event.requestContext.connectionId);
    if (removed) {
      // Counted only when this call removed the item: a 410 seen by the stream handler may have
      // removed it first, and a connection ends once.
      const now = (deps.sessions.now ?? Date.now)();
      const batch = new MetricsBatch()
        .add(METRIC.connections, -1)
        .observe(METRIC.connectionDuration, Math.max(0, now - removed.connectedAt) / 1000);
      await flushMetrics(deps.metrics, batch, deps.log);
    }
    return { statusCode: 200 };
  };
}

export const handler = lazy(() =>
  createDisconnectHandler({
    sessions: { connections: defaultConnections(), index: defaultIndex() },
    metrics: defaultMetricsSink(),
    log: defaultLogger(),
  }),
);
