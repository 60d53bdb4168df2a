/** The MSK-triggered fan-out: see ../core/stream-processor.ts. */
import type { Context, MSKEvent } from 'aws-lambda';
import type { SubscriptionEntry } from '../core/fanout';
import type { Log, MetricsSink, Poster, SubscriptionIndex } from '../core/ports';
import { Pacer, PostBudget } from '../core/pacing';
import { closeConnection, type SessionDeps } from '../core/sessions';
import { DEFAULT_MAX_CONCURRENCY, processStreamEvent, type StreamReport } from '../core/stream-processor';
import { broadcastStatus } from '../core/status';
import { AlertLifecycle } from '../core/alert-state';
import { LATEST_INTERVAL_MS, LatestReadingsConflator, createStreamStateStep, type BatchStep } from '../core/stream-state';
import { EmfMetricsSink, combineSinks } from '../adapters/emf-metrics';
import { ENV } from '../config/env-names';
import { intEnv } from '../config/config';
import { flushMetrics } from './flush-metrics';
import {
  alertRetentionMs,
  defaultAlerts,
  defaultConnections,
  defaultLatest,
  defaultEmf,
  defaultIndex,
  defaultLogger,
  defaultMetricsStore,
  defaultPoster,
  lazy,
} from './defaults';
import { errorMessage } from '../core/errors';

/** Dependencies of the stream handler. */
export interface StreamHandlerDeps {
  sessions: SessionDeps & { index: SubscriptionIndex };
  poster: Poster;
  metrics: MetricsSink;
  log: Log;
  /** Most posts in flight. Default {@link DEFAULT_MAX_CONCURRENCY} (the core's). */
  concurrency?: number;
  /** Paces posts under the account quota; lives as long as the container. Default: no pacing. */
  pacer?: Pacer;
  /**
   * After each batch: pushes a `system_status` frame when this invocation wins the interval's
   * slot. Status frames ride on stream invocations, so none are sent while no records flow.
   */
  status?: { claim: (now: number) => Promise<boolean>; broadcast: () => Promise<unknown> };
  /** Alert state and latest readings, once per batch (see ../core/stream-state.ts). */
  batchStep?: BatchStep;
  /** Called with each batch's report, e.g. for EMF or the local runtime's counters. */
  onReport?: (report: StreamReport) => void;
}

/**
 * Builds the stream handler. It resolves with the batch's report; it rejects only when the batch
 * must be retried (the index could not be read), so a bad record never stops a batch.
 */
export function createStreamHandler(deps: StreamHandlerDeps) {
  return async (event: MSKEvent, context?: Pick<Context, 'getRemainingTimeInMillis'>): Promise<StreamReport> => {
    const { report, metrics } = await processStreamEvent(event, {
      index: deps.sessions.index,
      poster: deps.poster,
      concurrency: deps.concurrency,
      batchStep: deps.batchStep,
      pacer: deps.pacer,
      remainingMs: context ? () => context.getRemainingTimeInMillis() : undefined,
      now: deps.sessions.now,
      log: deps.log,
      removeConnection: (connectionId: string, entries: readonly SubscriptionEntry[]) =>
        closeConnection(deps.sessions, connectionId, entries),
    });
    await flushMetrics(deps.metrics, metrics, deps.log);
    deps.onReport?.(report);
    if (deps.status) {
      try {
        if (await deps.status.claim((deps.sessions.now ?? Date.now)())) await deps.status.broadcast();
      } catch (error) {
        deps.log.warn('system_status not sent', { error: errorMessage(error) });
      }
    }
    if (report.invalid || report.stale || report.failed || report.unsent || report.deferred) deps.log.info('stream batch', { ...report });
    return report;
  };
}

/** Interval of `system_status` frames on AWS. */
const STATUS_INTERVAL_MS = 5000;

export const handler = lazy(() => {
  const index = defaultIndex();
  const poster = defaultPoster();
  const store = defaultMetricsStore();
  const connections = defaultConnections();
  const log = defaultLogger();
  const concurrency = intEnv(ENV.postConcurrency, DEFAULT_MAX_CONCURRENCY);
  const pacer = new Pacer(PostBudget.share(intEnv(ENV.postQuota, 10_000), intEnv(ENV.postQuotaShares, 1)));
  const batchStep = createStreamStateStep({
    latest: new LatestReadingsConflator(defaultLatest(), intEnv(ENV.latestIntervalMs, LATEST_INTERVAL_MS)),
    lifecycle: new AlertLifecycle({ alerts: defaultAlerts(), index, poster, connections, retentionMs: alertRetentionMs(), log }),
    log,
  });
  // A container tries for the slot at most once per interval: the conditional write costs a
  // write unit even when it loses, and a busy stream invokes many times a second.
  let lastTry = 0;
  return createStreamHandler({
    sessions: { connections, index },
    poster,
    metrics: combineSinks(store, new EmfMetricsSink(defaultEmf())),
    log,
    concurrency,
    batchStep,
    pacer,
    status: {
      claim: async (now) => {
        if (now - lastTry < STATUS_INTERVAL_MS) return false;
        lastTry = now;
        return store.claimStatusSlot(now, STATUS_INTERVAL_MS);
      },
      broadcast: async () => {
        const sent = await broadcastStatus({ index, poster, readMetrics: () => store.read(), concurrency });
        // Status posts count against the same quota as the stream's.
        pacer.budget.take(sent.recipients);
        return sent;
      },
    },
  });
});
