/**
 * Pacing of posts under API Gateway's account-wide quota: a token bucket for this invocation's
 * share of the quota, conflation of telemetry (latest reading per device and metric, newest
 * cursor), and a backlog of conflated telemetry for connections whose post had to wait. Alerts
 * are never conflated, deferred or dropped. Pure: the clock is injected, no I/O.
 */
import type { DeviceRecord, StreamRecord } from './protocol';

/** Share of the account quota left for inbound messages and other callers. */
const QUOTA_HEADROOM = 0.2;

/**
 * A token bucket of posts: `perSecond` tokens a second, holding at most one second's worth.
 * {@link take} may overdraw, so that alerts always go, and later batches then wait for the refill.
 */
export class PostBudget {
  private tokens: number;
  private last: number;

  constructor(
    readonly perSecond: number,
    private readonly now: () => number = Date.now,
  ) {
    this.tokens = perSecond;
    this.last = now();
  }

  /**
   * The budget of one stream invocation when `shares` invocations run at once against an account
   * quota of `quota` posts a second, of which {@link QUOTA_HEADROOM} is left for inbound traffic.
   */
  static share(quota: number, shares: number, now?: () => number): PostBudget {
    return new PostBudget(Math.max(1, Math.floor((quota * (1 - QUOTA_HEADROOM)) / Math.max(1, shares))), now);
  }

  /** Posts that may be made now without passing the rate. */
  available(): number {
    const now = this.now();
    this.tokens = Math.min(this.perSecond, this.tokens + ((now - this.last) * this.perSecond) / 1000);
    this.last = now;
    return Math.max(0, Math.floor(this.tokens));
  }

  /** Milliseconds until `posts` tokens are available. */
  msUntil(posts: number): number {
    this.available();
    return Math.max(0, Math.ceil(((Math.min(posts, this.perSecond) - this.tokens) * 1000) / this.perSecond));
  }

  /** Spends `posts` tokens; the balance may go below zero. */
  take(posts: number): void {
    this.available();
    this.tokens -= posts;
  }
}

/**
 * Conflates telemetry: for each device, one reading carrying the latest value of each metric, the
 * newest status, timestamp and cursor, placed where the device's newest reading was. Alerts pass
 * through untouched and in order. Returns the input itself when nothing was conflated.
 */
export function conflateTelemetry(records: readonly StreamRecord[]): readonly StreamRecord[] {
  const newest = new Map<string, number>();
  const count = new Map<string, number>();
  let telemetry = 0;
  for (let i = 0; i < records.length; i++) {
    const record = records[i];
    if (record.type !== 'device_data') continue;
    telemetry++;
    newest.set(record.data.deviceId, i);
    count.set(record.data.deviceId, (count.get(record.data.deviceId) ?? 0) + 1);
  }
  if (newest.size === telemetry) return records;
  const merged = new Map<string, DeviceRecord['metrics']>();
  const out: StreamRecord[] = [];
  for (let i = 0; i < records.length; i++) {
    const record = records[i];
    if (record.type !== 'device_data' || count.get(record.data.deviceId) === 1) {
      out.push(record);
      continue;
    }
    const metrics = { ...merged.get(record.data.deviceId), ...record.data.metrics };
    if (newest.get(record.data.deviceId) !== i) {
      merged.set(record.data.deviceId, metrics);
      continue;
    }
    out.push({ ...record, data: { ...record.data, metrics } });
  }
  return out;
}

/** What {@link Pacer.plan} decided for one batch. */
export interface PacingPlan {
  /** Records to post now, per connection: connections with alerts first. */
  send: Map<string, readonly StreamRecord[]>;
  /** Readings superseded by a newer one of the same device (not sent, and never will be). */
  conflated: number;
  /** Connections whose telemetry waits for a later batch. */
  deferred: number;
}

/**
 * Decides which connections are posted to in each batch so that the posts stay within the
 * budget. Telemetry that has to wait is kept, conflated, per connection (longest waiting served
 * first) and merged with the connection's next records. One pacer lives as long as its container.
 */
export class Pacer {
  private readonly backlog = new Map<string, readonly StreamRecord[]>();
  private readonly conflated = new Map<string, readonly StreamRecord[]>();

  constructor(readonly budget: PostBudget) {}

  /** Connections with telemetry waiting. */
  get waiting(): number {
    return this.backlog.size;
  }

  /**
   * The posts of one batch. `routed` holds each connection's records in stream order; the plan's
   * posts are charged to the budget (a post per connection: a batch frame holds many records).
   */
  plan(routed: ReadonlyMap<string, readonly StreamRecord[]>, keyOf: (records: readonly StreamRecord[]) => string): PacingPlan {
    const urgent = new Map<string, readonly StreamRecord[]>();
    // Telemetry that waited is conflated with what came since, so a client never gets a reading
    // older than one sent with it.
    const waited = new Set<string>();
    for (const [connectionId, records] of routed) {
      const earlier = this.backlog.get(connectionId);
      if (earlier) waited.add(connectionId);
      const all = earlier ? [...earlier, ...records] : records;
      if (records.some((record) => record.type === 'alert')) {
        this.backlog.delete(connectionId);
        urgent.set(connectionId, all);
      } else if (earlier) {
        this.backlog.set(connectionId, all);
      } else {
        this.backlog.set(connectionId, records);
      }
    }
    const allowed = Math.max(0, this.budget.available() - urgent.size);
    const squeeze = this.backlog.size + urgent.size > this.budget.available();
    let conflated = 0;
    // Byte-identical inputs conflate to one shared output, so messages stay shared too.
    this.conflated.clear();
    const conflate = (connectionId: string, records: readonly StreamRecord[]) => {
      if (!squeeze && !waited.has(connectionId)) return records;
      const key = keyOf(records);
      let out = this.conflated.get(key);
      if (!out) this.conflated.set(key, (out = conflateTelemetry(records)));
      conflated += records.length - out.length;
      return out;
    };
    const send = new Map<string, readonly StreamRecord[]>();
    for (const [connectionId, records] of urgent) send.set(connectionId, conflate(connectionId, records));
    let granted = 0;
    for (const [connectionId, records] of this.backlog) {
      if (granted >= allowed) {
        if (squeeze) this.backlog.set(connectionId, conflate(connectionId, records));
        continue;
      }
      granted++;
      send.set(connectionId, conflate(connectionId, records));
      this.backlog.delete(connectionId);
    }
    this.budget.take(send.size);
    return { send, conflated, deferred: this.backlog.size };
  }

  /** Forgets a connection found gone. */
  forget(connectionId: string): void {
    this.backlog.delete(connectionId);
  }
}
