/**
 * The same figures as /metrics, for CloudWatch: each invocation's batch published as one EMF
 * line through Powertools Metrics. Dimensions stay at Powertools' default (`service`), so
 * cardinality never grows with devices, connections or topics; the few labelled series become
 * metric names of their own (`stream_records_invalid_total`).
 */
import { MetricUnit, type Metrics } from '@aws-lambda-powertools/metrics';

type Unit = (typeof MetricUnit)[keyof typeof MetricUnit];
import type { MetricsBatch } from '../core/metrics';
import type { MetricsSink } from '../core/ports';

/** The EMF metric name and unit for a series key, or undefined for series EMF does not carry. */
export function emfNameOf(key: string): { name: string; unit: Unit } | undefined {
  const brace = key.indexOf('{');
  const base = brace === -1 ? key : key.slice(0, brace);
  // Histogram buckets stay in /metrics; CloudWatch gets count and sum, and computes its own percentiles
  // from the per-request metrics in the logs when needed.
  if (base.endsWith('_bucket')) return undefined;
  if (base.endsWith('_seconds_sum')) return { name: base, unit: MetricUnit.Seconds };
  if (base.endsWith('_count')) return { name: base, unit: MetricUnit.Count };
  if (base === 'stream_records_total') {
    const outcome = /outcome="([a-z]+)"/.exec(key)?.[1] ?? 'all';
    return { name: `stream_records_${outcome}_total`, unit: MetricUnit.Count };
  }
  // A gauge arrives as its change: name it so, so that nobody graphs it as a level.
  if (base === 'websocket_connections') return { name: 'websocket_connections_change', unit: MetricUnit.Count };
  return { name: base, unit: MetricUnit.Count };
}

/** {@link MetricsSink} that publishes a batch as EMF. */
export class EmfMetricsSink implements MetricsSink {
  constructor(private readonly metrics: Metrics) {}

  async flush(batch: MetricsBatch): Promise<void> {
    const totals = new Map<string, { unit: Unit; value: number }>();
    for (const [key, value] of batch.values) {
      const target = emfNameOf(key);
      if (!target) continue;
      const entry = totals.get(target.name) ?? { unit: target.unit, value: 0 };
      entry.value += value;
      totals.set(target.name, entry);
    }
    if (!totals.size) return;
    for (const [name, { unit, value }] of totals) this.metrics.addMetric(name, unit, value);
    this.metrics.publishStoredMetrics();
  }
}

/** A sink that flushes to every sink; fails after all were tried if any failed. */
export function combineSinks(...sinks: MetricsSink[]): MetricsSink {
  return {
    async flush(batch) {
      const results = await Promise.allSettled(sinks.map((sink) => sink.flush(batch)));
      const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failure) throw failure.reason;
    },
  };
}
