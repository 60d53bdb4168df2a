/**
 * The dashboard's state, without any DOM or Chart.js: what each device last reported, a bounded
 * window of points per (metric, device) series, the thresholds alerts have named, and the alert
 * list. Frames are applied as they arrive; views read it once per animation frame and ask what
 * changed since they last looked.
 */
import type {
  AlertLevel,
  AlertRecord,
  AlertStateData,
  AlertStateInfo,
  AlertStateName,
  DeviceRecord,
  DeviceStatus,
} from '../../lambdas/core/protocol';

/** One plotted point: epoch ms and value, Chart.js's internal format, so no parsing is needed. */
export interface Point {
  x: number;
  y: number;
}

export interface DeviceState {
  readonly deviceId: string;
  deviceType: string;
  location: string;
  status: DeviceStatus;
  /** Timestamp of the last record. */
  lastSeen: number;
  metrics: Record<string, number>;
}

/** A threshold of an alert rule, learnt from the alerts that name it. */
export interface Threshold {
  readonly deviceType: string;
  readonly value: number;
  readonly level: AlertLevel;
}

export interface AlertEntry {
  readonly alert: AlertRecord;
  /** Unique key: the alert id (the same alert arrives live and in snapshots). */
  readonly key: string;
  readonly receivedAt: number;
  /** The state the server keeps for every operator: open, acknowledged (by whom, when), resolved. */
  state: AlertStateInfo;
}

/** States only move forward: a late or repeated frame never reopens an alert. */
const STATE_RANK: Record<AlertStateName, number> = { open: 0, acknowledged: 1, resolved: 2 };

/** Colour per status; also the exhaustive list of statuses, checked by the compiler. */
export const STATUS_COLOURS: Record<DeviceStatus, string> = {
  online: '#2e9d5b',
  warning: '#e0a800',
  error: '#d64545',
  offline: '#8a94a6',
};
export const STATUSES = Object.keys(STATUS_COLOURS) as DeviceStatus[];

export const ALERT_LEVEL_RANK: Record<AlertLevel, number> = { info: 0, warning: 1, critical: 2 };
export const ALERT_LEVELS = Object.keys(ALERT_LEVEL_RANK) as AlertLevel[];

export interface ModelOptions {
  /** Points kept per (metric, device) series. Default 120. */
  readonly windowPoints?: number;
  /** Alerts kept in the panel. Default 200. */
  readonly maxAlerts?: number;
  /** Devices plotted per metric chart; later devices still appear in the list and aggregates. Default 12. */
  readonly maxSeriesPerMetric?: number;
}

export class DashboardModel {
  readonly windowPoints: number;
  readonly maxAlerts: number;
  readonly maxSeriesPerMetric: number;
  readonly devices = new Map<string, DeviceState>();
  /** metric -> deviceId -> points, oldest first. */
  readonly series = new Map<string, Map<string, Point[]>>();
  /** metric -> `deviceType|value` -> the threshold an alert rule named, at the highest level seen. */
  readonly thresholds = new Map<string, Map<string, Threshold>>();
  /** Newest first. */
  readonly alerts: AlertEntry[] = [];
  private readonly alertKeys = new Set<string>();
  /**
   * States that arrived before their alert (a resolution replayed or delivered ahead of the alert
   * it ends), applied when the alert comes; at most {@link maxAlerts}, the oldest forgotten first.
   */
  private readonly earlyStates = new Map<string, AlertStateInfo>();

  /** What changed since {@link takeChanges}. */
  private changedMetrics = new Set<string>();
  private changedDevices = new Set<string>();
  private newMetrics = new Set<string>();
  private alertsChanged = false;
  private newCritical = 0;
  private cleared = false;
  /** Records applied since the model was made, for the rate shown in the header. */
  recordsApplied = 0;
  /** Timestamps of each device's recent readings: the same reading twice (live, then in a snapshot) is one record. */
  private readonly recentReadings = new Map<string, number[]>();

  constructor(options: ModelOptions = {}) {
    this.windowPoints = options.windowPoints ?? 120;
    this.maxAlerts = options.maxAlerts ?? 200;
    this.maxSeriesPerMetric = options.maxSeriesPerMetric ?? 12;
  }

  /** Applies one device-data record. */
  applyDeviceData(record: DeviceRecord): void {
    if (this.isRepeat(record)) return;
    this.recordsApplied++;
    let device = this.devices.get(record.deviceId);
    if (!device) {
      device = {
        deviceId: record.deviceId,
        deviceType: record.deviceType,
        location: record.location,
        status: record.status,
        lastSeen: record.timestamp,
        metrics: {},
      };
      this.devices.set(record.deviceId, device);
    }
    // A late record (older than what we have) still goes into its series but does not roll back the list.
    if (record.timestamp >= device.lastSeen) {
      device.deviceType = record.deviceType;
      device.location = record.location;
      device.status = record.status;
      device.lastSeen = record.timestamp;
      Object.assign(device.metrics, record.metrics);
    }
    this.changedDevices.add(record.deviceId);
    for (const [metric, value] of Object.entries(record.metrics)) {
      let byDevice = this.series.get(metric);
      if (!byDevice) {
        byDevice = new Map();
        this.series.set(metric, byDevice);
        this.newMetrics.add(metric);
      }
      let points = byDevice.get(record.deviceId);
      if (!points) {
        if (byDevice.size >= this.maxSeriesPerMetric) continue;
        points = [];
        byDevice.set(record.deviceId, points);
      }
      insertPoint(points, { x: record.timestamp, y: value }, this.windowPoints);
      this.changedMetrics.add(metric);
    }
  }

  private isRepeat(record: DeviceRecord): boolean {
    let recent = this.recentReadings.get(record.deviceId);
    if (!recent) this.recentReadings.set(record.deviceId, (recent = []));
    if (recent.includes(record.timestamp)) return true;
    recent.push(record.timestamp);
    if (recent.length > this.windowPoints) recent.shift();
    return false;
  }

  /**
   * Applies one alert record, with the state a snapshot gives it (else `open`). A "back to normal"
   * record (`resolves`) is shown resolved, and resolves the alert it names. Returns false for an
   * alert already held (its state is still brought forward).
   */
  applyAlert(alert: AlertRecord, state?: AlertStateInfo, receivedAt = Date.now()): boolean {
    this.recordsApplied++;
    const key = alert.alertId;
    if (alert.resolves !== undefined) {
      state ??= { state: 'resolved', by: alert.alertId, at: alert.timestamp };
      this.applyAlertState({ alertId: alert.resolves, state: 'resolved', by: alert.alertId, at: alert.timestamp });
    }
    if (this.alertKeys.has(key)) {
      if (state) this.applyAlertState({ alertId: key, ...state });
      return false;
    }
    this.alertKeys.add(key);
    const entry: AlertEntry = { alert, key, receivedAt, state: state ?? { state: 'open', at: alert.timestamp } };
    const early = this.earlyStates.get(key);
    if (early) {
      this.earlyStates.delete(key);
      if (STATE_RANK[early.state] > STATE_RANK[entry.state.state]) entry.state = early;
    }
    // Newest first by the alert's own timestamp; arrivals are nearly in order, so scan from the front.
    let index = 0;
    while (index < this.alerts.length && this.alerts[index].alert.timestamp > alert.timestamp) index++;
    this.alerts.splice(index, 0, entry);
    while (this.alerts.length > this.maxAlerts) {
      const dropped = this.alerts.pop();
      if (dropped) this.alertKeys.delete(dropped.key);
    }
    if (alert.metric !== undefined && alert.threshold !== undefined) {
      let levels = this.thresholds.get(alert.metric);
      if (!levels) this.thresholds.set(alert.metric, (levels = new Map()));
      const key = `${alert.deviceType}|${alert.threshold}`;
      const known = levels.get(key);
      if (known === undefined || ALERT_LEVEL_RANK[alert.level] > ALERT_LEVEL_RANK[known.level]) {
        levels.set(key, { deviceType: alert.deviceType, value: alert.threshold, level: alert.level });
        this.changedMetrics.add(alert.metric);
      }
    }
    if (alert.level === 'critical' && entry.state.state === 'open') this.newCritical++;
    this.alertsChanged = true;
    return true;
  }

  /** Applies an alert's state change, from another operator or the server; older states are ignored. */
  applyAlertState(change: Pick<AlertStateData, 'alertId'> & AlertStateInfo): void {
    const entry = this.alerts.find((candidate) => candidate.key === change.alertId);
    const state: AlertStateInfo = { state: change.state, at: change.at, ...(change.by !== undefined ? { by: change.by } : {}) };
    if (!entry) {
      this.rememberEarly(change.alertId, state);
      return;
    }
    if (STATE_RANK[change.state] <= STATE_RANK[entry.state.state]) return;
    entry.state = state;
    this.alertsChanged = true;
  }

  private rememberEarly(alertId: string, state: AlertStateInfo): void {
    const known = this.earlyStates.get(alertId);
    if (known && STATE_RANK[known.state] >= STATE_RANK[state.state]) return;
    this.earlyStates.delete(alertId);
    this.earlyStates.set(alertId, state);
    if (this.earlyStates.size > this.maxAlerts) this.earlyStates.delete(this.earlyStates.keys().next().value!);
  }

  /** Ids of the alerts still open, e.g. for "acknowledge all". */
  openAlertIds(): string[] {
    return this.alerts.filter((entry) => entry.state.state === 'open').map((entry) => entry.key);
  }

  /** Critical alerts still open: what the banner counts and the alarm sounds for. */
  unacknowledgedCritical(): number {
    let count = 0;
    for (const entry of this.alerts) if (entry.alert.level === 'critical' && entry.state.state === 'open') count++;
    return count;
  }

  /** Devices per status. */
  statusCounts(): Record<DeviceStatus, number> {
    const counts: Record<DeviceStatus, number> = { online: 0, warning: 0, error: 0, offline: 0 };
    for (const device of this.devices.values()) counts[device.status]++;
    return counts;
  }

  /** Mean of each device type's latest `metric` values, types sorted by name. */
  meanByType(metric: string): { deviceType: string; mean: number; devices: number }[] {
    const sums = new Map<string, { sum: number; n: number }>();
    for (const device of this.devices.values()) {
      const value = device.metrics[metric];
      if (value === undefined) continue;
      const acc = sums.get(device.deviceType) ?? { sum: 0, n: 0 };
      acc.sum += value;
      acc.n++;
      sums.set(device.deviceType, acc);
    }
    return [...sums.entries()]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([deviceType, { sum, n }]) => ({ deviceType, mean: sum / n, devices: n }));
  }

  /** Metric names seen so far, sorted. */
  metricNames(): string[] {
    return [...this.series.keys()].sort();
  }

  /** Points currently held for a metric, all series. */
  pointCount(metric: string): number {
    let total = 0;
    for (const points of this.series.get(metric)?.values() ?? []) total += points.length;
    return total;
  }

  /** Forgets every device and series (thresholds and alerts stay), for a fresh view after a subscription change. */
  clearData(): void {
    this.devices.clear();
    this.series.clear();
    this.cleared = true;
    this.changedDevices.add('*');
  }

  /** Returns and resets what changed since the last call. */
  takeChanges(): {
    metrics: Set<string>;
    newMetrics: Set<string>;
    devices: Set<string>;
    alerts: boolean;
    newCritical: number;
    cleared: boolean;
  } {
    const changes = {
      metrics: this.changedMetrics,
      newMetrics: this.newMetrics,
      devices: this.changedDevices,
      alerts: this.alertsChanged,
      newCritical: this.newCritical,
      cleared: this.cleared,
    };
    this.cleared = false;
    this.changedMetrics = new Set();
    this.newMetrics = new Set();
    this.changedDevices = new Set();
    this.alertsChanged = false;
    this.newCritical = 0;
    return changes;
  }
}

/**
 * Inserts a point keeping x ascending (Chart.js is told the data is sorted) and the window at
 * most `limit` long. A point at an x already held is the same reading again (a snapshot after a
 * reconnect repeats the latest one) and is skipped. Mutates in place: Chart.js holds these very
 * arrays as its datasets.
 */
export function insertPoint(points: Point[], point: Point, limit: number): void {
  const last = points[points.length - 1];
  if (last && point.x === last.x) return;
  if (!last || point.x > last.x) {
    points.push(point);
  } else {
    let index = points.length - 1;
    while (index > 0 && points[index - 1].x > point.x) index--;
    if (index > 0 && points[index - 1].x === point.x) return;
    // Older than the whole full window: it would be evicted at once.
    if (index === 0 && points.length >= limit) return;
    points.splice(index, 0, point);
  }
  if (points.length > limit) points.splice(0, points.length - limit);
}

/** Does a device match the list's search box? Case-insensitive substring over id, type, location, status. */
export function matchesSearch(device: DeviceState, query: string): boolean {
  const needle = query.trim().toLowerCase();
  if (!needle) return true;
  return needle
    .split(/\s+/)
    .every((word) =>
      [device.deviceId, device.deviceType, device.location, device.status].some((field) =>
        field.toLowerCase().includes(word),
      ),
    );
}
