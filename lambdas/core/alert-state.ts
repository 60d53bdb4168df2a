/**
 * Alert state on the server: every alert is `open` when its record arrives, `acknowledged` by the
 * `ack` action (who = the connection's token subject), `resolved` by a later alert whose
 * `resolves` names it or by expiry after the retention. Each change is pushed as an `alert_state`
 * frame to every connection whose subscriptions match the alert and whose sites include it.
 */
import { mapWithConcurrency } from './concurrency';
import { packTexts, routeRecords, type SubscriptionEntry } from './fanout';
import { indexKeysForRecord } from './filter';
import type { AlertStore, ConnectionStore, Log, Poster, StoredAlert, SubscriptionIndex } from './ports';
import {
  errorFrame,
  type AckFrame,
  type AckedFrame,
  type AlertRecord,
  type AlertStateFrame,
  type ErrorFrame,
  type StreamRecord,
} from './protocol';
import { mayRead } from './sites';

/** Defaults of the alert state settings. */
export const ALERT_STATE_DEFAULTS = {
  /** An alert not resolved after this long is resolved by expiry: 24 hours. */
  retentionMs: 24 * 60 * 60 * 1000,
  /** How often a stream container looks for expired alerts: 60 s. */
  expirySweepMs: 60 * 1000,
  /** Expired alerts resolved per sweep; the rest wait for the next sweep. */
  expiryBatch: 100,
} as const;

/** What alert state delivery needs. */
export interface AlertStateDeps {
  alerts: AlertStore;
  index: Pick<SubscriptionIndex, 'lookup'>;
  poster: Poster;
  /** Where a recipient's sites are read: delivery checks them before every `alert_state` frame. */
  connections: Pick<ConnectionStore, 'get'>;
  /** Retention in ms. Default {@link ALERT_STATE_DEFAULTS.retentionMs}. */
  retentionMs?: number;
  now?: () => number;
  log?: Log;
}

/** The `by` of an alert resolved because it outlived the retention. */
const EXPIRY = 'expiry';

/** The `alert_state` frame of a stored alert. */
function alertStateFrame(stored: StoredAlert, now: number): AlertStateFrame {
  const { alert, state } = stored;
  return {
    type: 'alert_state',
    data: { alertId: alert.alertId, deviceId: alert.deviceId, location: alert.location, level: alert.level, ...state },
    timestamp: now,
  };
}

/** DynamoDB TTL (epoch seconds) of an alert: resolved ones stay one more retention, for late acks. */
function alertExpiresAt(alert: AlertRecord, retentionMs: number): number {
  return Math.ceil((alert.timestamp + 2 * retentionMs) / 1000);
}

/** Posts in flight while an alert's state change goes to its audience: the route's share of sockets. */
const ALERT_STATE_POSTS_IN_FLIGHT = 64;

/**
 * Pushes `alert_state` frames for these changes to every connection whose subscriptions match the
 * alert and whose sites include its location. Resolves with the number of successful posts; a
 * gone connection is left to the stream fan-out, which removes it on its next record.
 */
async function broadcastAlertStates(deps: AlertStateDeps, changes: readonly StoredAlert[]): Promise<number> {
  if (!changes.length) return 0;
  const now = (deps.now ?? Date.now)();
  const records = changes.map((stored): StreamRecord => ({ type: 'alert', data: stored.alert }));
  const frames = new Map(records.map((record, i) => [record, JSON.stringify(alertStateFrame(changes[i], now))]));
  const keys = new Set(records.flatMap(indexKeysForRecord));
  const index = await deps.index.lookup([...keys]);
  const routed = routeRecords(records, indexKeysForRecord, index as ReadonlyMap<string, readonly SubscriptionEntry[]>);
  let posts = 0;
  // Routing already checked each entry's sites (narrowed to the connection's at subscribe), as
  // the fan-out of records does: no read of the connection per recipient.
  await mapWithConcurrency([...routed], ALERT_STATE_POSTS_IN_FLIGHT, async ([connectionId, matched]) => {
    const texts = matched.map((r) => frames.get(r)!);
    for (const text of packTexts(texts)) {
      const result = await deps.poster.post(connectionId, text);
      if (result.outcome === 'ok') posts++;
      else if (result.outcome === 'gone') return;
      else deps.log?.warn('alert_state not delivered', { connectionId, error: result.error });
    }
  });
  return posts;
}

/**
 * The `ack` action: acknowledges an open alert as the connection's subject and tells every
 * operator who can see it. Acknowledging an alert already acknowledged or resolved changes nothing
 * and still answers `acked`, so two operators pressing at once both get a clean answer.
 */
export async function acknowledgeAlert(
  deps: AlertStateDeps,
  connectionId: string,
  frame: AckFrame,
): Promise<AckedFrame | ErrorFrame> {
  const [connection, stored] = await Promise.all([deps.connections.get(connectionId), deps.alerts.get(frame.alertId)]);
  if (!connection) return errorFrame('forbidden', 'this connection is not registered; reconnect', frame.alertId);
  if (!stored) return errorFrame('bad_request', `no alert with id "${frame.alertId}"`, frame.alertId);
  if (!mayRead(connection.sites, stored.alert.location)) {
    return errorFrame('forbidden', 'this alert is outside the sites of your token', frame.alertId);
  }
  const changed = await deps.alerts.transition(frame.alertId, ['open'], {
    state: 'acknowledged',
    by: connection.sub,
    at: (deps.now ?? Date.now)(),
  });
  if (changed) await broadcastAlertStates(deps, [changed]);
  return { type: 'acked', alertId: frame.alertId };
}

/**
 * The alert lifecycle as the stream Lambda drives it, one batch at a time: new alerts are stored
 * as open before the batch is pushed (so an operator's `ack` always finds them), and resolutions
 * and expiries are applied and pushed after it (so an `alert_state` never overtakes its alert).
 */
export class AlertLifecycle {
  private lastSweep = -Infinity;
  private readonly retentionMs: number;

  constructor(
    private readonly deps: AlertStateDeps & { expirySweepMs?: number },
  ) {
    this.retentionMs = deps.retentionMs ?? ALERT_STATE_DEFAULTS.retentionMs;
  }

  /** Stores the batch's new alerts as open. Throws when they cannot be stored: the batch is retried. */
  async beforeFanout(records: readonly StreamRecord[]): Promise<AlertRecord[]> {
    const alerts = records.flatMap((r) => (r.type === 'alert' ? [r.data] : []));
    // A "back to normal" record is an event about another alert, not an alert to acknowledge.
    const opened = alerts.filter((alert) => alert.resolves === undefined);
    if (opened.length) await this.deps.alerts.open(opened, (alert) => alertExpiresAt(alert, this.retentionMs));
    return alerts.filter((alert) => alert.resolves !== undefined);
  }

  /** Resolves what the batch's records name, sweeps expired alerts when due, and pushes the changes. */
  async afterFanout(resolvers: readonly AlertRecord[]): Promise<StoredAlert[]> {
    const now = (this.deps.now ?? Date.now)();
    const changes: StoredAlert[] = [];
    for (const resolver of resolvers) {
      const changed = await this.deps.alerts.transition(resolver.resolves!, ['open', 'acknowledged'], {
        state: 'resolved',
        by: resolver.alertId,
        at: resolver.timestamp,
      });
      if (changed) changes.push(changed);
    }
    const sweepMs = this.deps.expirySweepMs ?? ALERT_STATE_DEFAULTS.expirySweepMs;
    if (now - this.lastSweep >= sweepMs) {
      this.lastSweep = now;
      const expired = await this.deps.alerts.unresolved({
        limit: ALERT_STATE_DEFAULTS.expiryBatch,
        before: now - this.retentionMs,
      });
      for (const stored of expired) {
        const changed = await this.deps.alerts.transition(stored.alert.alertId, ['open', 'acknowledged'], {
          state: 'resolved',
          by: EXPIRY,
          at: now,
        });
        if (changed) changes.push(changed);
      }
    }
    await broadcastAlertStates(this.deps, changes);
    return changes;
  }
}
