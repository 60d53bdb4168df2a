/**
 * The dashboard page: loads config.json, opens the live socket and wires frames into the model
 * and the model into the views. Frames update the model at once; views are redrawn at most once
 * per animation frame, from what changed.
 */
import './app.css';
import type { Filter } from '../../lambdas/core/protocol';
import { AggregateChart, MetricChart, StatusChart } from './charts';
import { ConfigError } from '../../lambdas/core/errors';
import { loadConfig } from './config';
import { el } from './dom';
import { DashboardModel } from './model';
import { AlertPanel, ConnectionIndicator, DeviceList, SubscriptionEditor } from './panels';
import { SessionPanel, startSession } from './session-panel';
import { LiveSocket } from './ws-client';

const STORAGE_KEY = 'iot-dashboard.subscriptions';
/** The aggregate and status charts summarise all devices; redrawing them 4 times a second is plenty. */
const SUMMARY_INTERVAL_MS = 250;
/** A metric chart is redrawn at most this often (10 Hz): smoother than the eye follows a busy line chart. */
const CHART_INTERVAL_MS = 100;
/**
 * Chart drawing per animation frame stops once this much time has gone; the charts left over are
 * drawn on the next frames, round-robin, so no frame becomes a long task however many charts change.
 */
const FRAME_BUDGET_MS = 8;
/** The alert panel is redrawn at most this often. */
const ALERT_INTERVAL_MS = 250;

function byId<T extends HTMLElement>(id: string): T {
  const node = document.getElementById(id);
  if (!node) throw new Error(`index.html lacks #${id}`);
  return node as T;
}

function savedFilters(): Filter[] {
  try {
    const parsed = JSON.parse(localStorage.getItem(STORAGE_KEY) ?? 'null') as unknown;
    if (Array.isArray(parsed) && parsed.length > 0) return parsed as Filter[];
  } catch {
    // Unreadable storage: fall back to the default subscription.
  }
  return [{}];
}

async function main(): Promise<void> {
  const model = new DashboardModel();
  const indicator = new ConnectionIndicator();
  const metricGrid = byId('metric-charts');
  const waiting = el('p', { class: 'waiting', 'data-testid': 'waiting' }, 'Waiting for data…');
  metricGrid.append(waiting);
  const aggregate = new AggregateChart(model);
  const status = new StatusChart(model);
  const devices = new DeviceList(model);
  // The socket exists once config.json is read; an ack before that has nobody to go to.
  let ackTo: ((alertId: string) => void) | undefined;
  const alerts = new AlertPanel(model, (alertIds) => alertIds.forEach((alertId) => ackTo?.(alertId)));
  const charts = new Map<string, MetricChart>();

  byId('connection').append(indicator.root);
  byId('summary-charts').append(status.root, aggregate.root);
  byId('devices').append(devices.root);
  byId('alerts').append(alerts.root);
  alerts.refresh(0);
  aggregate.refresh();
  status.refresh();

  let config;
  try {
    config = await loadConfig();
  } catch (error) {
    indicator.showFailure(error instanceof ConfigError ? error.message : String(error));
    return;
  }
  const sessionPanel = new SessionPanel();
  byId('session').append(sessionPanel.root);
  const session = await startSession(config, sessionPanel);
  if (!session) return;
  const socket = new LiveSocket({ url: session.url, probe: session.probe });
  session.attach(socket);
  ackTo = (alertId) => socket.ack(alertId);

  const editor = new SubscriptionEditor({
    subscribe: (filter) => socket.subscribe(filter),
    unsubscribe: (id) => socket.unsubscribe(id),
    replaceAll: (filter) => {
      for (const entry of socket.subscriptions) socket.unsubscribe(entry.id);
      // A new view: what the old subscriptions brought in would only mislead.
      model.clearData();
      socket.subscribe(filter);
      schedule();
    },
  });
  byId('subscriptions').append(editor.root);

  let frameRequested = false;
  let lastSummary = 0;
  let summaryPending = false;
  let alertsPending = false;
  let lastAlerts = -Infinity;
  let newCritical = 0;
  const dirtyCharts = new Set<string>();
  const lastDrawn = new Map<string, number>();
  const schedule = (): void => {
    if (frameRequested) return;
    frameRequested = true;
    requestAnimationFrame(frame);
  };
  const frame = (now: number): void => {
    frameRequested = false;
    const changes = model.takeChanges();
    if (changes.cleared) {
      for (const chart of charts.values()) chart.destroy();
      charts.clear();
      dirtyCharts.clear();
      lastDrawn.clear();
    }
    for (const metric of model.metricNames()) {
      if (charts.has(metric)) continue;
      const chart = new MetricChart(model, metric);
      charts.set(metric, chart);
      changes.metrics.add(metric);
      const next = [...charts.keys()].sort().find((name) => name > metric);
      metricGrid.insertBefore(chart.root, next ? charts.get(next)!.root : null);
    }
    waiting.hidden = charts.size > 0;
    for (const metric of changes.metrics) dirtyCharts.add(metric);
    const deadline = performance.now() + FRAME_BUDGET_MS;
    for (const metric of dirtyCharts) {
      if (performance.now() >= deadline) break;
      if (now - (lastDrawn.get(metric) ?? -Infinity) < CHART_INTERVAL_MS) continue;
      // Deleting then re-adding on the next change moves a drawn chart to the back of the queue.
      dirtyCharts.delete(metric);
      lastDrawn.set(metric, now);
      charts.get(metric)?.refresh();
    }
    if (dirtyCharts.size) schedule();
    if (changes.devices.size) devices.refresh(changes.devices);
    if (changes.alerts || alertsPending) {
      // Alerts are drawn at most 4 times a second; the critical cue is therefore at most 250 ms late.
      if (now - lastAlerts >= ALERT_INTERVAL_MS) {
        lastAlerts = now;
        alertsPending = false;
        alerts.refresh(newCritical + changes.newCritical);
        newCritical = 0;
      } else {
        alertsPending = true;
        newCritical += changes.newCritical;
        schedule();
      }
    }
    if (changes.devices.size || changes.cleared) summaryPending = true;
    if (summaryPending) {
      if (now - lastSummary >= SUMMARY_INTERVAL_MS || changes.cleared) {
        lastSummary = now;
        summaryPending = false;
        status.refresh();
        aggregate.refresh();
      } else {
        // Not yet: come back on a later frame so the last change gets drawn.
        schedule();
      }
    }
  };

  socket.on('device_data', (frame) => {
    model.applyDeviceData(frame.data);
    schedule();
  });
  socket.on('alert', (frame) => {
    model.applyAlert(frame.data, frame.state);
    schedule();
  });
  socket.on('alert_state', (frame) => {
    model.applyAlertState(frame.data);
    schedule();
  });
  // Replayed records come as ordinary `device_data` and `alert` events, before this one.
  socket.on('resumed', (frame) => indicator.showResumed(frame));
  socket.on('system_status', (frame) => indicator.showConnections(frame.data.connections));
  socket.on('state', (state) => indicator.show(state, navigator.onLine));
  socket.on('error', (error) => console.warn('dashboard socket:', error.message));
  socket.on('subscriptions', (entries) => {
    editor.render(entries);
    localStorage.setItem(STORAGE_KEY, JSON.stringify(entries.filter((entry) => entry.state !== 'rejected').map((entry) => entry.filter)));
  });
  window.addEventListener('online', () => {
    indicator.show(socket.state, true);
    socket.retryNow();
  });
  window.addEventListener('offline', () => indicator.show(socket.state, false));

  let lastCount = 0;
  let lastTime = performance.now();
  setInterval(() => {
    const now = performance.now();
    indicator.showRate(((model.recordsApplied - lastCount) * 1000) / (now - lastTime), model.recordsApplied);
    lastCount = model.recordsApplied;
    lastTime = now;
  }, 1000);

  for (const filter of savedFilters()) socket.subscribe(filter);
  socket.connect();
}

void main();
