/** The MSK-triggered fan-out: see ../core/stream-processor.ts. */
import type { MSKEvent } from 'aws-lambda';
import type { SubscriptionEntry } from '../core/fanout';
import type { Log, MetricsSink, Poster, SubscriptionIndex } from '../core/ports';
import { closeConnection, type SessionDeps } from '../core/sessions';
import { processStreamEvent, type StreamReport } from '../core/stream-processor';
import { ENV } from '../config/env-names';
import { intEnv } from '../config/config';
import {
  defaultConnections,
  defaultIndex,
  defaultLogger,
  defaultMetricsStore,
  defaultPoster,
  lazy,
} from './defaults';

/** Dependencies of the stream handler. */
export interface StreamHandlerDeps {
  sessions: SessionDeps & { index: SubscriptionIndex };
  poster: Poster;
  metrics: MetricsSink;
  log: Log;
  /** Concurrent posts. Default POST_CONCURRENCY or 32. */
  concurrency?: number;
  /** Called with each batch's report, e.g. for EMF or the local runtime's counters. */
  onReport?: (report: StreamReport) => void;
}

/**
 * Builds the stream handler. It resolves with the batch's report; it rejects only when the batch
 * must be retried (the index could not be read), so a bad record never stops a batch.
 */
export function createStreamHandler(deps: StreamHandlerDeps) {
  return async (event: MSKEvent): Promise<StreamReport> => {
    const { report, metrics } = await processStreamEvent(event, {
      index: deps.sessions.index,
      poster: deps.poster,
      concurrency: deps.concurrency,
      now: deps.sessions.now,
      log: deps.log,
      removeConnection: (connectionId: string, entries: readonly SubscriptionEntry[]) =>
        closeConnection(deps.sessions, connectionId, entries),
    });
    try {
      await deps.metrics.flush(metrics);
    } catch (error) {
      deps.log.warn('metrics not recorded', { error: (error as Error).message });
    }
    deps.onReport?.(report);
    if (report.invalid || report.stale || report.failed) deps.log.info('stream batch', { ...report });
    return report;
  };
}

export const handler = lazy(() =>
  createStreamHandler({
    sessions: { connections: defaultConnections(), index: defaultIndex() },
    poster: defaultPoster(),
    metrics: defaultMetricsStore(),
    log: defaultLogger(),
    concurrency: intEnv(ENV.postConcurrency, 32),
  }),
);
