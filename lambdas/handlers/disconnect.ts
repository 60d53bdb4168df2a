/** `$disconnect`: removes the connection and its subscriptions. */
import { METRIC, MetricsBatch } from '../core/metrics';
import type { ConnectionItem, ConnectionStore } from '../core/ports';
import { closeConnection } from '../core/sessions';
import { defaultConnections, defaultIndex, defaultLogger, defaultMetricsSink, lazy } from './defaults';
import type { ConnectDeps } from './connect';
import { flushMetrics } from './flush-metrics';
import type { WebSocketEvent, WebSocketResult } from './types';

/** Builds the $disconnect handler. */
export function createDisconnectHandler(deps: ConnectDeps) {
  return async (event: WebSocketEvent): Promise<WebSocketResult> => {
    const store = deps.sessions.connections;
    let ended: Promise<void> | undefined;
    // The end is counted as soon as this call has removed the item, before the index entries are
    // removed: when their removal failed, the handler threw after the item was gone and the gauge
    // kept the connection for good (no retry can remove the item again). Counted only when this
    // call removed the item: a 410 seen by the stream handler may have removed it first, and a
    // connection ends once.
    const connections: ConnectionStore = {
      put: (item) => store.put(item),
      get: (connectionId) => store.get(connectionId),
      change: (connectionId, change, now) => store.change(connectionId, change, now),
      delete: async (connectionId) => {
        const removed = await store.delete(connectionId);
        if (removed) ended = countEnd(deps, removed);
        return removed;
      },
    };
    try {
      await closeConnection({ ...deps.sessions, connections }, event.requestContext.connectionId);
    } finally {
      await ended;
    }
    return { statusCode: 200 };
  };
}

/** The gauge's -1 and the connection's duration. */
function countEnd(deps: ConnectDeps, removed: ConnectionItem): Promise<void> {
  const now = (deps.sessions.now ?? Date.now)();
  const batch = new MetricsBatch()
    .add(METRIC.connections, -1)
    .observe(METRIC.connectionDuration, Math.max(0, now - removed.connectedAt) / 1000);
  return flushMetrics(deps.metrics, batch, deps.log);
}

export const handler = lazy(() =>
  createDisconnectHandler({
    sessions: { connections: defaultConnections(), index: defaultIndex() },
    metrics: defaultMetricsSink(),
    log: defaultLogger(),
  }),
);
