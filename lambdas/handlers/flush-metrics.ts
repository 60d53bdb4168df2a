/** Flushing an invocation's metrics without letting a metrics outage fail the invocation. */
import type { MetricsBatch } from '../core/metrics';
import type { Log, MetricsSink } from '../core/ports';
import { errorMessage } from '../core/errors';

/** Flushes `batch`; a failure is logged, never thrown: metrics must not cost a delivery. */
export async function flushMetrics(sink: MetricsSink, batch: MetricsBatch, log: Log): Promise<void> {
  try {
    await sink.flush(batch);
  } catch (error) {
    log.warn('metrics not recorded', { error: errorMessage(error) });
  }
}
