/** Latency histograms and percentiles shared by the benchmark harness and its client workers. */

/** Latencies in whole milliseconds, one bin per ms up to a minute; longer ones share the last bin. */
export const HISTOGRAM_BINS = 60_001;

/** A latency histogram with an exact maximum. */
export class LatencyHistogram {
  readonly bins = new Uint32Array(HISTOGRAM_BINS);
  count = 0;
  max = 0;
  sum = 0;

  add(ms: number): void {
    const value = ms < 0 ? 0 : ms;
    this.bins[Math.min(HISTOGRAM_BINS - 1, Math.floor(value))]++;
    this.count++;
    this.sum += value;
    if (value > this.max) this.max = value;
  }

  /** Sparse form for IPC: [ms, count] pairs. */
  toSparse(): { pairs: [number, number][]; max: number; sum: number } {
    const pairs: [number, number][] = [];
    for (let i = 0; i < this.bins.length; i++) if (this.bins[i]) pairs.push([i, this.bins[i]]);
    return { pairs, max: this.max, sum: this.sum };
  }

  merge(sparse: { pairs: [number, number][]; max: number; sum: number }): void {
    for (const [ms, n] of sparse.pairs) {
      this.bins[ms] += n;
      this.count += n;
    }
    this.sum += sparse.sum;
    if (sparse.max > this.max) this.max = sparse.max;
  }

  /** The smallest latency (ms) at or below which `p` percent of the samples lie. */
  percentile(p: number): number {
    if (!this.count) return NaN;
    const rank = Math.max(1, Math.ceil((p / 100) * this.count));
    let seen = 0;
    for (let i = 0; i < this.bins.length; i++) {
      seen += this.bins[i];
      if (seen >= rank) return i;
    }
    return this.bins.length - 1;
  }

  summary(): { count: number; p50: number; p95: number; p99: number; max: number; mean: number } {
    return {
      count: this.count,
      p50: this.percentile(50),
      p95: this.percentile(95),
      p99: this.percentile(99),
      max: this.max,
      mean: this.count ? Math.round((this.sum / this.count) * 10) / 10 : NaN,
    };
  }
}

/** Rounds for reports. */
export function round(value: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
