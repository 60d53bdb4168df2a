/**
 * Product metrics as plain data: each invocation adds to a {@link MetricsBatch}, an adapter adds
 * the batch to a shared store in one write, and {@link renderPrometheus} turns the summed store
 * back into Prometheus text exposition format 0.0.4. Pure: no I/O.
 */

/** Metric names of the design contract. */
export const METRIC = {
  connections: 'websocket_connections',
  messagesSent: 'websocket_messages_sent_total',
  messagesReceived: 'websocket_messages_received_total',
  connectionDuration: 'websocket_connection_duration_seconds',
  processingDuration: 'websocket_message_processing_duration_seconds',
  pushLatency: 'websocket_push_latency_seconds',
  streamRecords: 'stream_records_total',
  staleConnections: 'websocket_stale_connections_total',
} as const;
export type MetricName = (typeof METRIC)[keyof typeof METRIC];

type Kind = 'gauge' | 'counter' | 'histogram';

/** Type and help text of each metric. */
export const METRIC_INFO: Record<MetricName, { kind: Kind; help: string }> = {
  websocket_connections: { kind: 'gauge', help: 'Open WebSocket connections.' },
  websocket_messages_sent_total: { kind: 'counter', help: 'Messages posted to clients (a batch frame counts once).' },
  websocket_messages_received_total: { kind: 'counter', help: 'Messages received from clients.' },
  websocket_connection_duration_seconds: { kind: 'histogram', help: 'Lifetime of closed connections.' },
  websocket_message_processing_duration_seconds: {
    kind: 'histogram',
    help: 'Time to handle one client message or one stream batch.',
  },
  websocket_push_latency_seconds: { kind: 'histogram', help: 'Record timestamp to post, per delivered record.' },
  stream_records_total: { kind: 'counter', help: 'Kafka records seen by the stream handler, by topic and outcome.' },
  websocket_stale_connections_total: {
    kind: 'counter',
    help: 'Connections found gone (410) when posting, and removed.',
  },
};

/** Histogram bucket upper bounds (seconds), from sub-millisecond work to multi-second stalls. */
export const BUCKETS: Record<string, readonly number[]> = {
  default: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  websocket_connection_duration_seconds: [1, 10, 60, 300, 900, 1800, 3600, 5400, 7200, 7500],
};

function bucketsOf(name: string): readonly number[] {
  return BUCKETS[name] ?? BUCKETS.default;
}

/** Labels of a series; values are escaped when rendered. */
export type Labels = Record<string, string>;

function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

/** The key of one series: `name` or `name{a="x",b="y"}`, labels sorted. Also its exposition text. */
export function seriesKey(name: string, labels?: Labels): string {
  if (!labels) return name;
  const entries = Object.entries(labels).sort(([a], [b]) => a.localeCompare(b));
  if (!entries.length) return name;
  return `${name}{${entries.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',')}}`;
}

/** A histogram's series keys, made once a name: every message's batch flattens one. */
const HISTOGRAM_KEYS = new Map<string, { buckets: string[]; sum: string; count: string }>();

function histogramKeys(name: string): { buckets: string[]; sum: string; count: string } {
  let keys = HISTOGRAM_KEYS.get(name);
  if (!keys) {
    const buckets = [...bucketsOf(name).map(String), '+Inf'].map((le) => `${name}_bucket{le="${le}"}`);
    HISTOGRAM_KEYS.set(name, (keys = { buckets, sum: `${name}_sum`, count: `${name}_count` }));
  }
  return keys;
}

interface HistogramData {
  bounds: readonly number[];
  /** Non-cumulative counts per bound, then one for +Inf. */
  counts: number[];
  sum: number;
  count: number;
}

/**
 * Additions to metrics made by one invocation. Histograms are kept as non-cumulative bucket
 * counts (`name_bucket{le="..."}` keys in {@link values}) so that batches from many invocations
 * simply add up.
 */
export class MetricsBatch {
  private readonly counters = new Map<string, number>();
  // Observed once per delivered record: kept as arrays, turned into keys only when read.
  private readonly histograms = new Map<string, HistogramData>();

  /** Adds to a counter or gauge (negative for a gauge going down). */
  add(name: MetricName, value = 1, labels?: Labels): this {
    if (value === 0) return this;
    const key = seriesKey(name, labels);
    this.counters.set(key, (this.counters.get(key) ?? 0) + value);
    return this;
  }

  /** Records one observation (seconds) in a histogram. */
  observe(name: MetricName, seconds: number): this {
    let data = this.histograms.get(name);
    if (!data) {
      const bounds = bucketsOf(name);
      this.histograms.set(name, (data = { bounds, counts: new Array<number>(bounds.length + 1).fill(0), sum: 0, count: 0 }));
    }
    const { bounds } = data;
    let index = 0;
    while (index < bounds.length && seconds > bounds[index]) index++;
    data.counts[index]++;
    data.sum += seconds;
    data.count++;
    return this;
  }

  /** Series key to amount added, histograms flattened to bucket, sum and count series. */
  get values(): Map<string, number> {
    const values = new Map(this.counters);
    const bump = (key: string, value: number) => {
      if (value !== 0) values.set(key, (values.get(key) ?? 0) + value);
    };
    for (const [name, data] of this.histograms) {
      const keys = histogramKeys(name);
      // Only buckets that were observed: the message handler flushes one observation a message.
      for (let i = 0; i < data.counts.length; i++) bump(keys.buckets[i], data.counts[i]);
      bump(keys.sum, data.sum);
      bump(keys.count, data.count);
    }
    return values;
  }

  get isEmpty(): boolean {
    return this.counters.size === 0 && this.histograms.size === 0;
  }
}

function formatNumber(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  // Sums of floats drift (0.1 + 0.2); 12 significant digits is plenty for a scrape.
  return Number.isInteger(value) ? String(value) : String(Number(value.toPrecision(12)));
}

function baseName(key: string): string {
  const brace = key.indexOf('{');
  return brace === -1 ? key : key.slice(0, brace);
}

/**
 * Renders summed series (as stored: counters, gauges, non-cumulative histogram buckets) in the
 * Prometheus text format 0.0.4. Every metric of the contract appears, at zero when nothing was
 * recorded, so that dashboards and alerts see a series from the first scrape.
 */
export function renderPrometheus(values: ReadonlyMap<string, number>): string {
  const lines: string[] = [];
  for (const name of Object.values(METRIC)) {
    const { kind, help } = METRIC_INFO[name];
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${kind}`);
    if (kind === 'histogram') {
      let cumulative = 0;
      for (const bound of bucketsOf(name)) {
        cumulative += values.get(`${name}_bucket{le="${bound}"}`) ?? 0;
        lines.push(`${name}_bucket{le="${bound}"} ${formatNumber(cumulative)}`);
      }
      cumulative += values.get(`${name}_bucket{le="+Inf"}`) ?? 0;
      lines.push(`${name}_bucket{le="+Inf"} ${formatNumber(cumulative)}`);
      lines.push(`${name}_sum ${formatNumber(values.get(`${name}_sum`) ?? 0)}`);
      lines.push(`${name}_count ${formatNumber(values.get(`${name}_count`) ?? 0)}`);
      continue;
    }
    const series = [...values.entries()].filter(([key]) => baseName(key) === name).sort(([a], [b]) => a.localeCompare(b));
    if (!series.length) {
      if (name !== METRIC.streamRecords) lines.push(`${name} 0`);
      continue;
    }
    for (const [key, value] of series) {
      // A gauge kept as a sum of +1/-1 can dip below zero when a disconnect is counted before its
      // connect reaches the store; it is never really negative.
      lines.push(`${key} ${formatNumber(kind === 'gauge' ? Math.max(0, value) : value)}`);
    }
  }
  return lines.join('\n') + '\n';
}
