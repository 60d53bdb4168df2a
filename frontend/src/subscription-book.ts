import type { Filter, NormalisedFilter } from '../../lambdas/core/protocol';

/** Where one subscription stands with the server. */
export type SubscriptionState = 'pending' | 'active' | 'rejected';

/** A `subscribe` that re-creates a subscription, as the socket sends it (it may add `resume`). */
export interface RestoreFrame {
  readonly action: 'subscribe';
  readonly id: string;
  readonly filter: Filter;
}

/** One subscription the user wants, as the book holds it. */
export interface SubscriptionEntry {
  readonly id: string;
  /** The filter as the user asked for it; this is what is re-sent after a reconnect. */
  readonly filter: Filter;
  /** The filter as the server normalised it, once confirmed. */
  readonly normalised?: NormalisedFilter;
  readonly state: SubscriptionState;
  /** The server's message when it refused the filter. */
  readonly error?: string;
}

/**
 * The subscriptions a client wants, independent of any socket. A new connection starts with no
 * subscriptions on the server, so after every (re)connect the client sends {@link restoreFrames}
 * and each entry goes back to `pending` until its `subscribed` reply arrives.
 */
export class SubscriptionBook {
  private readonly entries = new Map<string, SubscriptionEntry>();
  private counter = 0;

  /** A fresh id (`s1`, `s2`, ...) not used by any entry. */
  nextId(): string {
    let id: string;
    do id = `s${++this.counter}`;
    while (this.entries.has(id));
    return id;
  }

  /** Adds or replaces (same id) a subscription; it is pending until confirmed. */
  set(id: string, filter: Filter): SubscriptionEntry {
    const entry: SubscriptionEntry = { id, filter, state: 'pending' };
    this.entries.set(id, entry);
    return entry;
  }

  /** Records the server's `subscribed` reply. Returns false for an id the book no longer holds. */
  confirm(id: string, normalised: NormalisedFilter): boolean {
    const entry = this.entries.get(id);
    if (!entry) return false;
    this.entries.set(id, { ...entry, normalised, state: 'active', error: undefined });
    return true;
  }

  /**
   * Records a refusal (an `error` frame naming the id). A refused filter is kept, marked
   * `rejected`, so the user sees why, but it is never re-sent on reconnect.
   */
  reject(id: string, message: string): boolean {
    const entry = this.entries.get(id);
    if (!entry || entry.state !== 'pending') return false;
    this.entries.set(id, { ...entry, state: 'rejected', error: message });
    return true;
  }

  /** Forgets a subscription. Returns whether it was held. */
  remove(id: string): boolean {
    return this.entries.delete(id);
  }

  get(id: string): SubscriptionEntry | undefined {
    return this.entries.get(id);
  }

  has(id: string): boolean {
    return this.entries.has(id);
  }

  list(): SubscriptionEntry[] {
    return [...this.entries.values()];
  }

  /** Marks every wanted subscription pending again: the connection that held them is gone. */
  markAllPending(): void {
    for (const [id, entry] of this.entries) {
      if (entry.state === 'active') this.entries.set(id, { ...entry, state: 'pending', normalised: undefined });
    }
  }

  /** The frames that re-create every wanted (not rejected) subscription on a new connection. */
  restoreFrames(): RestoreFrame[] {
    return this.list()
      .filter((entry) => entry.state !== 'rejected')
      .map((entry): RestoreFrame => ({ action: 'subscribe', id: entry.id, filter: entry.filter }));
  }

  /** Ids still waiting for their `subscribed` reply. */
  pendingIds(): string[] {
    return this.list()
      .filter((entry) => entry.state === 'pending')
      .map((entry) => entry.id);
  }
}
