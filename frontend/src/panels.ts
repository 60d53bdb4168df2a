/** The dashboard's DOM panels: device list, alert panel, subscription editor, connection indicator. */
import { LIMITS, type AlertLevel, type AlertStateName, type Filter, type RecordType, type ResumedFrame } from '../../lambdas/core/protocol';
import { clock, el, splitList } from './dom';
import { ALERT_LEVELS, matchesSearch, type AlertEntry, type DashboardModel, type DeviceState } from './model';
import type { SubscriptionEntry } from './subscription-book';
import type { ConnectionState } from './ws-client';

/** Device table with search; rows are keyed by device id and updated in place. */
export class DeviceList {
  readonly root: HTMLElement;
  private readonly body: HTMLTableSectionElement;
  private readonly search: HTMLInputElement;
  private readonly count: HTMLElement;
  private readonly rows = new Map<string, HTMLTableRowElement>();

  constructor(private readonly model: DashboardModel) {
    this.search = el('input', {
      type: 'search',
      placeholder: 'Search id, type, location, status',
      'data-testid': 'device-search',
      'aria-label': 'Search devices',
    });
    this.search.addEventListener('input', () => this.applySearch());
    this.count = el('span', { class: 'chart-summary', 'data-testid': 'device-count' });
    this.body = el('tbody');
    this.root = el(
      'section',
      { class: 'card device-list', 'data-testid': 'device-list' },
      el('header', { class: 'card-header' }, el('h2', {}, 'Devices'), this.count, el('div', { class: 'card-tools' }, this.search)),
      el(
        'div',
        { class: 'table-scroll' },
        el(
          'table',
          {},
          el(
            'thead',
            {},
            el('tr', {}, ...['Device', 'Type', 'Location', 'Status', 'Last reading', 'Seen'].map((name) => el('th', { scope: 'col' }, name))),
          ),
          this.body,
        ),
      ),
    );
  }

  /** Updates the rows of the devices that changed (`*` means all). */
  refresh(changed: Set<string>): void {
    if (changed.has('*')) {
      for (const [deviceId, row] of this.rows) {
        if (!this.model.devices.has(deviceId)) {
          row.remove();
          this.rows.delete(deviceId);
        }
      }
    }
    const ids = changed.has('*') ? this.model.devices.keys() : changed.values();
    for (const deviceId of ids) {
      const device = this.model.devices.get(deviceId);
      if (device) this.renderRow(device);
    }
    this.updateCount();
  }

  private renderRow(device: DeviceState): void {
    let row = this.rows.get(device.deviceId);
    if (!row) {
      row = el('tr', { 'data-testid': 'device-row', 'data-device-id': device.deviceId });
      for (let i = 0; i < 6; i++) row.append(el('td'));
      row.cells[0].textContent = device.deviceId;
      this.rows.set(device.deviceId, row);
      // Keep rows sorted by id: find the first row whose id sorts after this one.
      const after = [...this.rows.keys()].filter((id) => id > device.deviceId).sort()[0];
      this.body.insertBefore(row, after ? (this.rows.get(after) ?? null) : null);
      row.hidden = !matchesSearch(device, this.search.value);
    }
    const cells = row.cells;
    setText(cells[1], device.deviceType);
    setText(cells[2], device.location);
    if (row.dataset.status !== device.status) {
      row.dataset.status = device.status;
      cells[3].replaceChildren(el('span', { class: `status-pill status-${device.status}` }, device.status));
    }
    setText(
      cells[4],
      Object.entries(device.metrics)
        .map(([metric, value]) => `${metric} ${formatNumber(value)}`)
        .join(' · '),
    );
    setText(cells[5], clock(device.lastSeen));
    if (this.search.value) row.hidden = !matchesSearch(device, this.search.value);
  }

  private applySearch(): void {
    for (const [deviceId, row] of this.rows) {
      const device = this.model.devices.get(deviceId);
      row.hidden = !device || !matchesSearch(device, this.search.value);
    }
    this.updateCount();
  }

  private updateCount(): void {
    let shown = 0;
    for (const row of this.rows.values()) if (!row.hidden) shown++;
    const text = shown === this.rows.size ? `${this.rows.size} devices` : `${shown} of ${this.rows.size} devices`;
    setText(this.count, text);
  }
}

/** Which alerts the panel lists. */
type AlertStateFilter = 'all' | AlertStateName;
const ALERT_STATE_FILTERS: readonly AlertStateFilter[] = ['all', 'open', 'acknowledged', 'resolved'];

/** Interval of the alarm tone while a critical alert is open and sound is on. */
const ALARM_INTERVAL_MS = 2000;

/**
 * Alerts newest first, coloured by level, with their shared state (open, acknowledged by whom and
 * when, resolved), a filter by state, acknowledge buttons that act for every operator, and an
 * alarm that sounds (when enabled) only while a critical alert is still open.
 */
export class AlertPanel {
  readonly root: HTMLElement;
  private readonly list: HTMLOListElement;
  private readonly banner: HTMLElement;
  private readonly sound: HTMLInputElement;
  private readonly items = new Map<string, HTMLLIElement>();
  private audio: AudioContext | undefined;
  private readonly maxShown = 100;
  private readonly empty = el('li', { class: 'empty' }, 'No alerts');
  private stateFilter: AlertStateFilter = 'all';

  /** `ack` sends the acknowledgement to the server; the state comes back as an `alert_state` frame. */
  constructor(
    private readonly model: DashboardModel,
    private readonly ack: (alertIds: string[]) => void,
  ) {
    this.list = el('ol', { class: 'alert-list', 'data-testid': 'alert-list', 'aria-live': 'polite' });
    this.banner = el('div', { class: 'critical-banner', 'data-testid': 'critical-banner', role: 'alert', hidden: '' });
    this.sound = el('input', { type: 'checkbox', 'data-testid': 'sound-toggle' });
    this.sound.addEventListener('change', () => {
      // Browsers only let audio start from a user gesture: create the context now, while we have one.
      if (this.sound.checked) this.audio ??= new AudioContext();
      this.updateAlarm();
    });
    const ackAll = el('button', { type: 'button', class: 'small', 'data-testid': 'alert-ack-all' }, 'Acknowledge all');
    ackAll.addEventListener('click', () => this.ack(this.model.openAlertIds()));
    const filter = el(
      'select',
      { 'data-testid': 'alert-state-filter', 'aria-label': 'Show alerts' },
      ...ALERT_STATE_FILTERS.map((value) => el('option', { value }, value === 'all' ? 'All alerts' : value[0].toUpperCase() + value.slice(1))),
    );
    filter.addEventListener('change', () => {
      this.stateFilter = filter.value as AlertStateFilter;
      this.refresh(0);
    });
    this.list.addEventListener('click', (event) => {
      const button = (event.target as HTMLElement).closest<HTMLButtonElement>('button[data-key]');
      if (!button?.dataset.key) return;
      button.disabled = true;
      this.ack([button.dataset.key]);
    });
    this.root = el(
      'section',
      { class: 'card alert-panel', 'data-testid': 'alert-panel', 'data-alarm': 'off' },
      el(
        'header',
        { class: 'card-header' },
        el('h2', {}, 'Alerts'),
        el('div', { class: 'card-tools' }, filter, el('label', { class: 'toggle' }, this.sound, 'Sound'), ackAll),
      ),
      this.banner,
      this.list,
    );
    setInterval(() => {
      if (this.root.dataset.alarm === 'on') this.beep();
    }, ALARM_INTERVAL_MS);
  }

  /** Re-renders the list; `newCritical` open critical alerts arrived since the last call. */
  refresh(newCritical: number): void {
    const shown = this.model.alerts
      .filter((entry) => this.stateFilter === 'all' || entry.state.state === this.stateFilter)
      .slice(0, this.maxShown);
    const keep = new Set(shown.map((entry) => entry.key));
    for (const [key, item] of this.items) {
      if (!keep.has(key)) {
        item.remove();
        this.items.delete(key);
      }
    }
    const nodes = shown.map((entry) => {
      let item = this.items.get(entry.key);
      if (!item) {
        const { alert } = entry;
        const detail = alert.metric !== undefined ? `${alert.metric} ${alert.value ?? ''}${alert.threshold !== undefined ? ` (threshold ${alert.threshold})` : ''}` : '';
        item = el(
          'li',
          { class: `alert level-${alert.level}`, 'data-testid': 'alert-item', 'data-level': alert.level, 'data-device-id': alert.deviceId, 'data-alert-id': alert.alertId },
          el('span', { class: 'alert-level' }, alert.level),
          el(
            'div',
            { class: 'alert-body' },
            el('strong', {}, alert.message),
            el('small', {}, `${alert.deviceId} · ${alert.location} · ${clock(alert.timestamp)}${detail ? ` · ${detail}` : ''}`),
            el('small', { class: 'alert-state', 'data-testid': 'alert-state' }),
          ),
          el('button', { type: 'button', class: 'small', 'data-testid': 'alert-ack', 'data-key': entry.key }, 'Ack'),
        );
        this.items.set(entry.key, item);
      }
      this.renderState(item, entry);
      return item;
    });
    // Move only what is out of place (usually just the new alerts at the top): re-inserting the
    // whole list on every alert costs a full layout of it, many times a second on a busy floor.
    this.empty.remove();
    let cursor = this.list.firstChild;
    for (const node of nodes) {
      if (node === cursor) cursor = cursor.nextSibling;
      else this.list.insertBefore(node, cursor);
    }
    if (nodes.length === 0) this.list.append(this.empty);

    const critical = this.model.unacknowledgedCritical();
    this.banner.hidden = critical === 0;
    setText(this.banner, `${critical} unacknowledged critical alert${critical === 1 ? '' : 's'}`);
    const title = critical ? `(${critical}) IoT live dashboard` : 'IoT live dashboard';
    if (document.title !== title) document.title = title;
    if (newCritical > 0 && critical > 0) {
      this.banner.classList.remove('flash');
      // Restart the flash animation: reading offsetWidth forces a style flush between the class changes.
      void this.banner.offsetWidth;
      this.banner.classList.add('flash');
      this.beep();
    }
    this.updateAlarm();
  }

  /** Shows an alert's state: who acknowledged it and when, or when it was resolved. */
  private renderState(item: HTMLLIElement, entry: AlertEntry): void {
    const { state } = entry;
    const text =
      state.state === 'open'
        ? 'open'
        : state.state === 'acknowledged'
          ? `acknowledged by ${state.by ?? 'someone'} at ${clock(state.at)}`
          : `resolved at ${clock(state.at)}${state.by === 'expiry' ? ' (expired)' : ''}`;
    if (item.dataset.state === state.state && item.querySelector('.alert-state')?.textContent === text) return;
    item.dataset.state = state.state;
    item.classList.toggle('acknowledged', state.state !== 'open');
    setText(item.querySelector<HTMLElement>('.alert-state')!, text);
    const button = item.querySelector('button');
    if (state.state !== 'open') button?.replaceWith(el('span', { class: 'acked' }, state.state === 'resolved' ? '✓ resolved' : '✓ ack'));
  }

  /** The alarm sounds only while sound is on and a critical alert is still open. */
  private updateAlarm(): void {
    const on = this.sound.checked && this.model.unacknowledgedCritical() > 0;
    this.root.dataset.alarm = on ? 'on' : 'off';
  }

  private beep(): void {
    if (!this.sound.checked || !this.audio) return;
    const ctx = this.audio;
    const oscillator = ctx.createOscillator();
    const gain = ctx.createGain();
    oscillator.type = 'square';
    oscillator.frequency.value = 880;
    gain.gain.setValueAtTime(0.15, ctx.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.001, ctx.currentTime + 0.35);
    oscillator.connect(gain).connect(ctx.destination);
    oscillator.start();
    oscillator.stop(ctx.currentTime + 0.35);
  }
}

/** What the subscription editor asks of the socket. */
export interface SubscriptionActions {
  subscribe(filter: Filter): void;
  unsubscribe(id: string): void;
  /** Removes every subscription and subscribes to `filter` alone. */
  replaceAll(filter: Filter): void;
}

/** Builds a filter from the editor's fields; empty fields do not restrict. */
export function filterFromFields(fields: {
  types: RecordType[];
  deviceIds: string;
  deviceTypes: string;
  locations: string;
  alertLevels: AlertLevel[];
}): Filter {
  const filter: Filter = {};
  if (fields.types.length > 0 && fields.types.length < 2) filter.types = fields.types;
  const deviceIds = splitList(fields.deviceIds);
  const deviceTypes = splitList(fields.deviceTypes);
  const locations = splitList(fields.locations);
  if (deviceIds.length) filter.deviceIds = deviceIds;
  if (deviceTypes.length) filter.deviceTypes = deviceTypes;
  if (locations.length) filter.locations = locations;
  if (fields.alertLevels.length && fields.alertLevels.length < ALERT_LEVELS.length) filter.alertLevels = fields.alertLevels;
  return filter;
}

/** One line describing a filter, for the subscription list. */
export function describeFilter(filter: Filter): string {
  const parts: string[] = [];
  if (filter.types?.length) parts.push(`types: ${filter.types.join(', ')}`);
  if (filter.deviceIds?.length) parts.push(`devices: ${filter.deviceIds.join(', ')}`);
  if (filter.deviceTypes?.length) parts.push(`device types: ${filter.deviceTypes.join(', ')}`);
  if (filter.locations?.length) parts.push(`locations: ${filter.locations.join(', ')}`);
  if (filter.alertLevels?.length) parts.push(`alert levels: ${filter.alertLevels.join(', ')}`);
  return parts.length ? parts.join(' · ') : 'everything';
}

/** Form to add subscriptions, and the list of current ones with their server state. */
export class SubscriptionEditor {
  readonly root: HTMLElement;
  private readonly list: HTMLUListElement;
  private readonly form: HTMLFormElement;

  constructor(private readonly actions: SubscriptionActions) {
    const field = (label: string, testId: string, placeholder: string) =>
      el('label', { class: 'field' }, label, el('input', { type: 'text', name: testId, 'data-testid': testId, placeholder, autocomplete: 'off' }));
    const check = (name: string, value: string, checked: boolean) => {
      const input = el('input', { type: 'checkbox', name, value, 'data-testid': `${name}-${value}` });
      input.checked = checked;
      return el('label', { class: 'check' }, input, value);
    };
    this.form = el(
      'form',
      { class: 'sub-form', 'data-testid': 'subscription-form' },
      el('fieldset', {}, el('legend', {}, 'Records'), check('sub-type', 'device_data', true), check('sub-type', 'alert', true)),
      field('Device ids', 'sub-device-ids', 'pump-001, fan-002'),
      field('Device types', 'sub-device-types', 'pump, compressor'),
      field('Locations', 'sub-locations', 'plant-a/line-2'),
      el('fieldset', {}, el('legend', {}, 'Alert levels'), ...ALERT_LEVELS.map((level) => check('sub-level', level, false))),
      el(
        'div',
        { class: 'form-actions' },
        el('button', { type: 'submit', value: 'add', 'data-testid': 'sub-add' }, 'Add subscription'),
        el('button', { type: 'submit', value: 'replace', class: 'secondary', 'data-testid': 'sub-replace', title: 'Remove every subscription and subscribe to this filter only' }, 'Replace all'),
      ),
    );
    this.form.addEventListener('submit', (event) => {
      event.preventDefault();
      const submitter = (event as SubmitEvent).submitter as HTMLButtonElement | null;
      const filter = this.readForm();
      if (submitter?.value === 'replace') this.actions.replaceAll(filter);
      else this.actions.subscribe(filter);
    });
    this.list = el('ul', { class: 'sub-list', 'data-testid': 'subscription-list' });
    this.list.addEventListener('click', (event) => {
      const button = (event.target as HTMLElement).closest<HTMLButtonElement>('button[data-id]');
      if (button?.dataset.id) this.actions.unsubscribe(button.dataset.id);
    });
    const details = el('details', { class: 'sub-editor', open: '' }, el('summary', {}, 'Edit subscriptions'), this.form);
    this.root = el(
      'section',
      { class: 'card subscriptions', 'data-testid': 'subscription-editor' },
      el('header', { class: 'card-header' }, el('h2', {}, 'Subscriptions')),
      this.list,
      details,
    );
  }

  private readForm(): Filter {
    const data = new FormData(this.form);
    return filterFromFields({
      types: data.getAll('sub-type') as RecordType[],
      deviceIds: String(data.get('sub-device-ids') ?? ''),
      deviceTypes: String(data.get('sub-device-types') ?? ''),
      locations: String(data.get('sub-locations') ?? ''),
      alertLevels: data.getAll('sub-level') as AlertLevel[],
    });
  }

  render(entries: readonly SubscriptionEntry[]): void {
    this.list.replaceChildren(
      ...entries.map((entry) =>
        el(
          'li',
          { 'data-testid': 'subscription-item', 'data-id': entry.id, 'data-state': entry.state },
          el('span', { class: `sub-state sub-${entry.state}`, title: entry.error ?? entry.state }, entry.state),
          el('span', { class: 'sub-desc' }, `${entry.id}: ${describeFilter(entry.filter)}${entry.error ? ` (${entry.error})` : ''}`),
          el('button', { type: 'button', class: 'small', 'data-id': entry.id, 'data-testid': 'sub-remove', 'aria-label': `Remove ${entry.id}` }, 'Remove'),
        ),
      ),
    );
    if (entries.length === 0) this.list.append(el('li', { class: 'empty' }, 'No subscriptions: nothing will arrive'));
  }
}

/** What the notice says when a reconnect came too late for the missed records to be replayed. */
const TOO_FAR_BEHIND = `Missed more than ${LIMITS.resumeWindowMs / 60_000} minutes while disconnected; showing current state`;

/**
 * Connected / connecting / reconnecting (retry n) / offline, plus the server's connection count,
 * and a notice when a reconnect could not bring back what was missed.
 */
export class ConnectionIndicator {
  readonly root: HTMLElement;
  private readonly label: HTMLElement;
  private readonly connections: HTMLElement;
  private readonly rate: HTMLElement;
  private readonly notice: HTMLElement;

  constructor() {
    this.label = el('span', { class: 'conn-label', 'data-testid': 'connection-status', 'data-status': 'idle' }, 'Starting…');
    this.connections = el('span', { class: 'meta', 'data-testid': 'system-connections', title: 'Open dashboard connections (system_status)' }, '');
    this.rate = el('span', { class: 'meta', 'data-testid': 'record-rate' }, '');
    const dismiss = el('button', { type: 'button', class: 'small', 'data-testid': 'resume-notice-dismiss', 'aria-label': 'Dismiss' }, '×');
    this.notice = el('span', { class: 'conn-notice', 'data-testid': 'resume-notice', hidden: '' }, el('span', {}, TOO_FAR_BEHIND), dismiss);
    dismiss.addEventListener('click', () => (this.notice.hidden = true));
    this.root = el('div', { class: 'conn', role: 'status' }, el('span', { class: 'conn-dot' }), this.label, this.connections, this.rate, this.notice);
  }

  /**
   * After a reconnect's replay. Too far behind, the charts have a gap the user should know of: the
   * notice stays until dismissed, as the gap does.
   */
  showResumed(frame: ResumedFrame): void {
    if (frame.tooFarBehind) this.notice.hidden = false;
  }

  show(state: ConnectionState, browserOnline = true): void {
    const status = state.status === 'reconnecting' && !browserOnline ? 'offline' : state.status;
    this.root.dataset.status = status;
    this.label.dataset.status = status;
    const labels: Record<ConnectionState['status'], string> = {
      idle: 'Starting…',
      connecting: 'Connecting…',
      connected: 'Connected',
      reconnecting: `Reconnecting (retry ${state.retry})`,
      offline: state.retry > 0 ? `Offline (retry ${state.retry})` : 'Offline',
      refused: 'Refused',
    };
    this.label.textContent = labels[status];
  }

  showFailure(message: string): void {
    this.root.dataset.status = 'offline';
    this.label.dataset.status = 'offline';
    this.label.textContent = `Offline: ${message}`;
  }

  showConnections(count: number): void {
    this.connections.textContent = `${count} connection${count === 1 ? '' : 's'}`;
  }

  /** Shows the record rate; `total` (records applied so far) is kept as `data-total` for tools. */
  showRate(recordsPerSecond: number, total: number): void {
    setText(this.rate, `${Math.round(recordsPerSecond)} rec/s`);
    this.rate.dataset.total = String(total);
  }
}

function setText(node: Element, text: string): void {
  if (node.textContent !== text) node.textContent = text;
}

function formatNumber(value: number): string {
  return Number.isInteger(value) ? String(value) : value.toFixed(Math.abs(value) < 10 ? 2 : 1);
}
