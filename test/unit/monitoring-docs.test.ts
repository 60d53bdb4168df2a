import { readFileSync } from 'node:fs';
import path from 'node:path';
import { BUCKETS, METRIC, METRIC_INFO, MetricsBatch, renderPrometheus } from '../../lambdas/core/metrics';

const docs = path.resolve(__dirname, '../../docs');

/** Every series name /metrics exports, histograms with their _bucket, _sum and _count. */
const exported = new Set(
  Object.values(METRIC).flatMap((name) =>
    METRIC_INFO[name].kind === 'histogram' ? [`${name}_bucket`, `${name}_sum`, `${name}_count`] : [name],
  ),
);

function exprsOf(node: unknown): string[] {
  if (Array.isArray(node)) return node.flatMap(exprsOf);
  if (node && typeof node === 'object') {
    return Object.entries(node).flatMap(([key, value]) => (key === 'expr' && typeof value === 'string' ? [value] : exprsOf(value)));
  }
  return [];
}

describe('Grafana dashboard', () => {
  const dashboard = JSON.parse(readFileSync(path.join(docs, 'grafana/iot-dashboard.json'), 'utf8'));
  const exprs = exprsOf(dashboard.panels);
  const metricNames = (expr: string) =>
    (expr.match(/\b(websocket|stream)_[a-z_]+\b/g) ?? []);

  it('has the panels operators need', () => {
    const titles = dashboard.panels.map((p: { title: string }) => p.title.toLowerCase()).join(' | ');
    for (const word of ['connections', 'message rates', 'latency', 'stream errors', 'stale']) expect(titles).toContain(word);
    expect(dashboard.panels.some((p: { type: string }) => p.type === 'heatmap')).toBe(true);
  });

  it('every query names a metric the product exports, and only such metrics', () => {
    expect(exprs.length).toBeGreaterThan(10);
    for (const expr of exprs) {
      const names = metricNames(expr);
      expect({ expr, names: names.length > 0 }).toEqual({ expr, names: true });
      for (const name of names) expect({ expr, name, exported: exported.has(name) }).toEqual({ expr, name, exported: true });
    }
  });

  it('queries histogram quantiles on bucket series with le', () => {
    const quantiles = exprs.filter((e) => e.includes('histogram_quantile'));
    // Not vacuous: the dashboard's latency panels are quantile queries.
    expect(quantiles.length).toBeGreaterThan(0);
    for (const expr of quantiles) {
      expect(expr).toMatch(/_bucket\[/);
      expect(expr).toMatch(/by \(le\)/);
    }
  });
});

describe('Prometheus scrape config', () => {
  const config = readFileSync(path.join(docs, 'prometheus/scrape-config.yml'), 'utf8');
  it('scrapes /metrics, with a bearer token on AWS', () => {
    expect(config).toMatch(/metrics_path: \/metrics/);
    expect(config).toMatch(/type: Bearer/);
    expect(config).toMatch(/localhost:8080/);
  });
});

describe('exposition', () => {
  it('renders every contract metric with HELP and TYPE, histograms with cumulative buckets', () => {
    const text = renderPrometheus(new MetricsBatch().observe(METRIC.pushLatency, 0.003).observe(METRIC.pushLatency, 20).values);
    for (const name of Object.values(METRIC)) {
      expect(text).toContain(`# TYPE ${name} ${METRIC_INFO[name].kind}`);
    }
    expect(text).toContain('websocket_push_latency_seconds_bucket{le="0.005"} 1');
    expect(text).toContain(`websocket_push_latency_seconds_bucket{le="${BUCKETS.default.at(-1)}"} 1`);
    expect(text).toContain('websocket_push_latency_seconds_bucket{le="+Inf"} 2');
    expect(text).toContain('websocket_push_latency_seconds_count 2');
  });
});
