/**
 * The dashboard's charts: one live line chart per metric (a series per device, threshold lines),
 * the mean of a metric per device type, and the device-status distribution. Each chart sits in a
 * card with CSV and PNG export. Charts are redrawn only from the animation-frame loop, with
 * `update('none')` (no animation), so a busy stream costs one draw per frame at most.
 */
import { Chart, type ChartDataset, type Plugin } from './chart-vendor';
import type { AlertLevel, DeviceStatus } from '../../lambdas/core/protocol';
import { exportFileName, seriesToCsv, toCsv } from './csv';
import { STATUS_COLOURS, STATUSES, type DashboardModel, type Point } from './model';
import { el } from './dom';

const PALETTE = [
  '#1f77b4', '#ff7f0e', '#2ca02c', '#9467bd', '#8c564b', '#e377c2',
  '#17becf', '#bcbd22', '#7f7f7f', '#d62728', '#393b79', '#637939',
];
const LEVEL_COLOURS: Record<AlertLevel, string> = { info: '#3b82f6', warning: '#e0a800', critical: '#d64545' };

/** Horizontal threshold lines, drawn over the data. Options: `plugins.thresholds.lines`. */
interface ThresholdLine {
  value: number;
  level: AlertLevel;
  label: string;
}
const thresholdPlugin: Plugin = {
  id: 'thresholds',
  afterDatasetsDraw(chart, _args, options: { lines?: ThresholdLine[] }) {
    const scale = chart.scales.y;
    if (!scale || !options.lines?.length) return;
    const { ctx, chartArea } = chart;
    ctx.save();
    ctx.lineWidth = 1.5;
    ctx.setLineDash([6, 4]);
    ctx.font = '11px system-ui, sans-serif';
    ctx.textAlign = 'right';
    ctx.textBaseline = 'bottom';
    const labelled: number[] = [];
    for (const line of [...options.lines].sort((a, b) => b.value - a.value)) {
      const y = scale.getPixelForValue(line.value);
      if (y < chartArea.top || y > chartArea.bottom) continue;
      ctx.strokeStyle = LEVEL_COLOURS[line.level];
      ctx.fillStyle = LEVEL_COLOURS[line.level];
      ctx.beginPath();
      ctx.moveTo(chartArea.left, y);
      ctx.lineTo(chartArea.right, y);
      ctx.stroke();
      // Several device types may have rules close together: label only lines with room for text.
      if (labelled.every((other) => Math.abs(other - y) >= 12)) {
        ctx.fillText(line.label, chartArea.right - 4, y - 2);
        labelled.push(y);
      }
    }
    ctx.restore();
  },
};

/** Paints the canvas white first, so an exported PNG is not transparent. */
const backgroundPlugin: Plugin = {
  id: 'background',
  beforeDraw(chart) {
    const { ctx, width, height } = chart;
    ctx.save();
    ctx.globalCompositeOperation = 'destination-over';
    ctx.fillStyle = '#ffffff';
    ctx.fillRect(0, 0, width, height);
    ctx.restore();
  },
};
Chart.register(thresholdPlugin, backgroundPlugin);

/** Saves text or a data URL as a file through a temporary link. */
export function download(fileName: string, content: Blob | string): void {
  const href = typeof content === 'string' ? content : URL.createObjectURL(content);
  const link = el('a', { href, download: fileName, hidden: '' });
  document.body.append(link);
  link.click();
  link.remove();
  if (typeof content !== 'string') setTimeout(() => URL.revokeObjectURL(href), 10_000);
}

/** A card with a title, a figure line, export buttons and a chart. */
abstract class ChartCard {
  readonly root: HTMLElement;
  protected readonly canvas: HTMLCanvasElement;
  protected readonly summary: HTMLElement;
  protected readonly tools: HTMLElement;
  protected abstract readonly chart: Chart;

  constructor(
    readonly name: string,
    title: string,
    testId: string,
  ) {
    this.canvas = el('canvas', { role: 'img', 'aria-label': title });
    this.summary = el('span', { class: 'chart-summary', 'data-testid': 'chart-summary' });
    const csv = el('button', { type: 'button', class: 'small', 'data-testid': 'export-csv', title: 'Download the plotted data as CSV' }, 'CSV');
    const png = el('button', { type: 'button', class: 'small', 'data-testid': 'export-png', title: 'Download the chart as PNG' }, 'PNG');
    csv.addEventListener('click', () => download(exportFileName(this.name, 'csv'), new Blob([this.csv()], { type: 'text/csv' })));
    png.addEventListener('click', () => download(exportFileName(this.name, 'png'), this.chart.toBase64Image('image/png', 1)));
    this.tools = el('div', { class: 'card-tools' }, csv, png);
    this.root = el(
      'section',
      { class: 'card chart-card', 'data-testid': testId, 'data-chart': name },
      el('header', { class: 'card-header' }, el('h2', {}, title), this.summary, this.tools),
      el('div', { class: 'chart-box' }, this.canvas),
    );
  }

  /** The chart's data as CSV. */
  abstract csv(): string;

  destroy(): void {
    this.chart.destroy();
    this.root.remove();
  }
}

/** Live line chart of one metric, a series per device, with threshold lines. */
export class MetricChart extends ChartCard {
  protected readonly chart: Chart<'line', Point[]>;
  private readonly plotted = new Set<string>();

  constructor(
    private readonly model: DashboardModel,
    readonly metric: string,
  ) {
    super(metric, metric, 'metric-chart');
    this.chart = new Chart(this.canvas, {
      type: 'line',
      data: { datasets: [] },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        parsing: false,
        normalized: true,
        spanGaps: true,
        interaction: { mode: 'nearest', intersect: false },
        elements: { point: { radius: 0, hitRadius: 6 }, line: { borderWidth: 1.5, tension: 0 } },
        scales: {
          x: {
            type: 'time',
            ticks: { maxRotation: 0, autoSkipPadding: 16 },
            // 24-hour clock everywhere: plant floors run round the clock and logs use it.
            time: { tooltipFormat: 'HH:mm:ss.SSS', displayFormats: { millisecond: 'HH:mm:ss.SSS', second: 'HH:mm:ss', minute: 'HH:mm', hour: 'HH:mm' } },
          },
          y: { type: 'linear', title: { display: false, text: metric } },
        },
        plugins: {
          legend: { position: 'bottom', labels: { boxWidth: 10, boxHeight: 10 } },
          tooltip: { enabled: true },
        },
      },
    });
  }

  /** Brings the chart in line with the model; call from the animation frame only. */
  refresh(): void {
    const byDevice = this.model.series.get(this.metric);
    if (!byDevice) return;
    for (const [deviceId, points] of byDevice) {
      if (this.plotted.has(deviceId)) continue;
      this.plotted.add(deviceId);
      const colour = PALETTE[(this.plotted.size - 1) % PALETTE.length];
      // The dataset holds the model's own array: no copy per frame.
      const dataset: ChartDataset<'line', Point[]> = {
        label: deviceId,
        data: points,
        borderColor: colour,
        backgroundColor: colour,
      };
      this.chart.data.datasets.push(dataset);
    }
    // Threshold lines of the device types plotted here only: other types' rules would mislead.
    const plottedTypes = new Set([...byDevice.keys()].map((deviceId) => this.model.devices.get(deviceId)?.deviceType));
    const lines: ThresholdLine[] = [...(this.model.thresholds.get(this.metric)?.values() ?? [])]
      .filter((threshold) => plottedTypes.has(threshold.deviceType))
      .map(({ deviceType, value, level }) => ({ value, level, label: `${deviceType} ${level} > ${value}` }));
    const options = this.chart.options;
    // Options of this module's own plugin, which Chart.js's option types do not know.
    (options.plugins as { thresholds?: { lines: ThresholdLine[] } }).thresholds = { lines };
    // Keep thresholds in view even while every reading is far below them.
    const y = options.scales?.y as { suggestedMax?: number; suggestedMin?: number } | undefined;
    if (y && lines.length) {
      y.suggestedMax = Math.max(...lines.map((line) => line.value));
      y.suggestedMin = Math.min(...lines.map((line) => line.value));
    }
    this.chart.update('none');
    const points = this.model.pointCount(this.metric);
    this.summary.textContent = `${points} points · ${byDevice.size} devices`;
    this.root.dataset.points = String(points);
  }

  csv(): string {
    return seriesToCsv(this.metric, this.model.series.get(this.metric) ?? new Map());
  }
}

/** Mean of a chosen metric per device type, over each device's latest reading. */
export class AggregateChart extends ChartCard {
  protected readonly chart: Chart<'bar', number[], string>;
  readonly select: HTMLSelectElement;
  private rows: { deviceType: string; mean: number; devices: number }[] = [];
  private userChose = false;

  constructor(private readonly model: DashboardModel) {
    super('mean-by-type', 'Mean per device type', 'aggregate-chart');
    this.select = el('select', { 'data-testid': 'aggregate-metric', 'aria-label': 'Metric to average' });
    this.select.addEventListener('change', () => {
      this.userChose = true;
      this.refresh();
    });
    this.tools.prepend(this.select);
    this.chart = new Chart(this.canvas, {
      type: 'bar',
      data: { labels: [], datasets: [{ label: 'mean', data: [], backgroundColor: '#1f77b4' }] },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        plugins: { legend: { display: false } },
        scales: { y: { beginAtZero: true } },
      },
    });
  }

  refresh(): void {
    const metrics = this.model.metricNames();
    if (metrics.length !== this.select.options.length) {
      const chosen = this.select.value;
      this.select.replaceChildren(...metrics.map((metric) => el('option', { value: metric }, metric)));
      this.select.value = this.userChose && metrics.includes(chosen) ? chosen : this.mostShared(metrics);
    }
    const metric = this.select.value;
    this.rows = metric ? this.model.meanByType(metric) : [];
    this.chart.data.labels = this.rows.map((row) => row.deviceType);
    this.chart.data.datasets[0].data = this.rows.map((row) => round(row.mean));
    this.chart.data.datasets[0].label = `mean ${metric}`;
    this.chart.update('none');
    this.summary.textContent = metric ? `mean ${metric} · ${this.rows.length} types` : 'waiting for data';
  }

  /** The metric reported by the most device types: the most telling comparison to start with. */
  private mostShared(metrics: string[]): string {
    let best = metrics[0] ?? '';
    let bestTypes = -1;
    for (const metric of metrics) {
      const types = this.model.meanByType(metric).length;
      if (types > bestTypes) [best, bestTypes] = [metric, types];
    }
    return best;
  }

  csv(): string {
    const metric = this.select.value;
    return toCsv(['device_type', `mean_${metric}`, 'devices'], this.rows.map((row) => [row.deviceType, row.mean, row.devices]));
  }
}

/** Devices per status (online / warning / error / offline). */
export class StatusChart extends ChartCard {
  protected readonly chart: Chart<'doughnut', number[], string>;
  private counts: Record<DeviceStatus, number> = { online: 0, warning: 0, error: 0, offline: 0 };

  constructor(private readonly model: DashboardModel) {
    super('device-status', 'Device status', 'status-chart');
    this.chart = new Chart(this.canvas, {
      type: 'doughnut',
      data: {
        labels: [...STATUSES],
        datasets: [{ data: STATUSES.map(() => 0), backgroundColor: STATUSES.map((status) => STATUS_COLOURS[status]) }],
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        cutout: '55%',
        plugins: { legend: { position: 'right', labels: { boxWidth: 10, boxHeight: 10 } } },
      },
    });
  }

  refresh(): void {
    this.counts = this.model.statusCounts();
    this.chart.data.datasets[0].data = STATUSES.map((status) => this.counts[status]);
    this.chart.data.labels = STATUSES.map((status) => `${status} (${this.counts[status]})`);
    this.chart.update('none');
    this.summary.textContent = `${this.model.devices.size} devices`;
    for (const status of STATUSES) this.root.dataset[status] = String(this.counts[status]);
  }

  csv(): string {
    return toCsv(['status', 'devices'], STATUSES.map((status) => [status, this.counts[status]]));
  }
}

function round(value: number): number {
  return Math.round(value * 1000) / 1000;
}
