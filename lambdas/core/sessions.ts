/**
 * The life of a connection: connect, client messages (subscribe, unsubscribe, ping), disconnect.
 * Every route handler is a thin wrapper over these functions.
 */
import { randomBytes } from 'node:crypto';
import { acknowledgeAlert, type AlertStateDeps } from './alert-state';
import type { Principal } from './auth';
import type { SubscriptionEntry } from './fanout';
import { indexKeysForFilter, narrowToSites, normaliseFilter } from './filter';
import { MAX_CONNECTION_SECONDS } from '../config/tables';
import { METRIC, MetricsBatch } from './metrics';
import { statusEntry } from './status';
import type { ConnectionItem, ConnectionStore, RateRule, SubscriptionIndex } from './ports';
import { snapshotTexts, type SnapshotDeps } from './snapshot';
import {
  LIMITS,
  errorFrame,
  type AckedFrame,
  parseClientFrame,
  type ErrorFrame,
  type NormalisedFilter,
  type PongFrame,
  type SubscribeFrame,
  type SubscribedFrame,
  type UnsubscribeFrame,
  type UnsubscribedFrame,
} from './protocol';

/** What the session functions need. */
export interface SessionDeps {
  connections: ConnectionStore;
  index: SubscriptionIndex;
  now?: () => number;
  /** Alert state, for the `ack` action; without it `ack` is refused on this route. */
  alertState?: AlertStateDeps;
  /** What a new subscription's snapshot reads; without it no snapshot follows `subscribed`. */
  snapshot?: SnapshotDeps;
}

/** Items outlive API Gateway's 2-hour limit by this much, so a live connection never expires. */
const TTL_MARGIN_SECONDS = 15 * 60;

/** Registers a new connection. */
export async function openConnection(
  deps: Pick<SessionDeps, 'connections' | 'now'>,
  connectionId: string,
  principal?: Principal,
): Promise<ConnectionItem> {
  const now = (deps.now ?? Date.now)();
  const item: ConnectionItem = {
    connectionId,
    connectedAt: now,
    expiresAt: Math.ceil(now / 1000) + MAX_CONNECTION_SECONDS + TTL_MARGIN_SECONDS,
    // Without a principal (no authorizer) a connection sees no site.
    sub: principal?.sub ?? 'anonymous',
    sites: principal?.sites ?? [],
    subscriptions: new Map(),
  };
  await deps.connections.put(item);
  return item;
}

function entriesOf(connectionId: string, subscriptionId: string, filter: NormalisedFilter) {
  return indexKeysForFilter(filter).map(
    (indexKey): SubscriptionEntry => ({ indexKey, connectionId, subscriptionId, filter }),
  );
}

/**
 * Removes a connection and every index item of its subscriptions. Returns the removed item, or
 * undefined when another path (a $disconnect, a 410 on post) removed it first, so that callers
 * count each connection's end once.
 */
export async function closeConnection(
  deps: SessionDeps,
  connectionId: string,
  knownEntries: readonly Pick<SubscriptionEntry, 'indexKey' | 'connectionId' | 'subscriptionId'>[] = [],
): Promise<ConnectionItem | undefined> {
  const removed = await deps.connections.delete(connectionId);
  const entries = new Map<string, Pick<SubscriptionEntry, 'indexKey' | 'connectionId' | 'subscriptionId'>>();
  // A connection that ever subscribed has a status entry, even after unsubscribing everything.
  if (removed) {
    const status = statusEntry(connectionId);
    entries.set(`${status.indexKey}\n${status.subscriptionId}`, status);
  }
  for (const entry of knownEntries) entries.set(`${entry.indexKey}\n${entry.subscriptionId}`, entry);
  for (const [subscriptionId, filter] of removed?.subscriptions ?? []) {
    for (const entry of entriesOf(connectionId, subscriptionId, filter)) {
      entries.set(`${entry.indexKey}\n${subscriptionId}`, entry);
    }
  }
  if (entries.size) await deps.index.remove([...entries.values()]);
  return removed;
}

let idCounter = 0;
function newSubscriptionId(): string {
  idCounter = (idCounter + 1) % 0x10000;
  return `s-${randomBytes(4).toString('hex')}${idCounter.toString(16)}`;
}

/** The token buckets of {@link LIMITS}, as rules for {@link ConnectionStore.take}. */
const RATE_RULES = {
  messages: {
    bucket: 'messages',
    costMs: 1000 / LIMITS.messagesPerSecond,
    burstMs: (1000 / LIMITS.messagesPerSecond) * LIMITS.messageBurst,
  },
  indexWrites: { bucket: 'indexWrites', costMs: 60_000 / LIMITS.indexWritesPerMinute, burstMs: 60_000 },
} as const satisfies Record<string, RateRule>;

const NOT_REGISTERED = 'this connection is not registered; reconnect';

async function subscribe(
  deps: SessionDeps,
  connection: ConnectionItem,
  frame: SubscribeFrame,
): Promise<SubscribedFrame | ErrorFrame> {
  const { connectionId } = connection;
  const id = frame.id ?? newSubscriptionId();
  const filter = narrowToSites(normaliseFilter(frame.filter), connection.sites);
  if (!filter) {
    return errorFrame(
      'forbidden',
      connection.sites.length
        ? `the filter names only sites outside this connection's: ${connection.sites.join(', ')}`
        : "this connection's token grants no sites",
      id,
    );
  }
  const next = entriesOf(connectionId, id, filter);
  // The first subscription also makes the connection a recipient of system_status frames.
  if (connection.subscriptions.size === 0) next.push(statusEntry(connectionId));
  const known = connection.subscriptions.get(id);
  const cost = next.length + (known ? indexKeysForFilter(known).length : 0);
  const rule = { ...RATE_RULES.indexWrites, costMs: RATE_RULES.indexWrites.costMs * cost };
  const taken = await deps.connections.take(connectionId, rule, (deps.now ?? Date.now)());
  if (taken === 'gone') return errorFrame('forbidden', NOT_REGISTERED, id);
  if (taken === 'limited') {
    return errorFrame('rate_limited', `at most ${LIMITS.indexWritesPerMinute} subscription keys a minute; retry later`, id);
  }
  // The connection item first: its conditional write is what holds the subscription limit when
  // API Gateway runs one connection's subscribes concurrently.
  const set = await deps.connections.setSubscription(connectionId, id, filter, LIMITS.maxSubscriptionsPerConnection);
  if (set.outcome === 'gone') return errorFrame('forbidden', NOT_REGISTERED, id);
  if (set.outcome === 'full') {
    return errorFrame(
      'too_large',
      `a connection may hold at most ${LIMITS.maxSubscriptionsPerConnection} subscriptions; unsubscribe one first`,
      id,
    );
  }
  try {
    await deps.index.put(next, connection.expiresAt);
  } catch (error) {
    // Undo, so that the connection item never names a subscription the index does not hold.
    if (set.previous) await deps.connections.setSubscription(connectionId, id, set.previous, Number.MAX_SAFE_INTEGER);
    else await deps.connections.removeSubscription(connectionId, id);
    throw error;
  }
  if (set.previous) {
    const kept = new Set(next.map((entry) => entry.indexKey));
    const stale = entriesOf(connectionId, id, set.previous).filter((entry) => !kept.has(entry.indexKey));
    if (stale.length) await deps.index.remove(stale);
  }
  return { type: 'subscribed', id, filter };
}

async function unsubscribe(
  deps: SessionDeps,
  connectionId: string,
  frame: UnsubscribeFrame,
): Promise<UnsubscribedFrame | ErrorFrame> {
  const filter = await deps.connections.removeSubscription(connectionId, frame.id);
  if (!filter) return errorFrame('bad_request', `no subscription with id "${frame.id}"`, frame.id);
  await deps.index.remove(entriesOf(connectionId, frame.id, filter));
  return { type: 'unsubscribed', id: frame.id };
}

/** The reply to one client message, and the metrics it produced. */
export interface MessageOutcome {
  reply: SubscribedFrame | UnsubscribedFrame | PongFrame | AckedFrame | ErrorFrame;
  /** Messages that must reach the client after the reply (a subscription's snapshot). */
  followUps: string[];
  metrics: MetricsBatch;
}

/**
 * Handles one client message on any route. Bad input gets an error frame and changes nothing;
 * the connection stays open.
 */
export async function handleClientMessage(
  deps: SessionDeps,
  connectionId: string,
  body: string | null | undefined,
): Promise<MessageOutcome> {
  const started = performance.now();
  const metrics = new MetricsBatch().add(METRIC.messagesReceived);
  const parsed = parseClientFrame(body);
  const now = (deps.now ?? Date.now)();
  // Every message takes from the bucket, bad ones too: each costs an invocation.
  const taken = await deps.connections.take(connectionId, RATE_RULES.messages, now);
  let reply: MessageOutcome['reply'];
  let followUps: string[] = [];
  if (taken === 'limited') {
    const id = parsed.ok ? ('id' in parsed.frame ? parsed.frame.id : undefined) : parsed.error.id;
    reply = errorFrame('rate_limited', `at most ${LIMITS.messagesPerSecond} messages a second (bursts of ${LIMITS.messageBurst}); slow down`, id);
  } else if (!parsed.ok) reply = parsed.error;
  else if (parsed.frame.action === 'ping') reply = { type: 'pong', timestamp: now };
  else if (parsed.frame.action === 'unsubscribe') reply = await unsubscribe(deps, connectionId, parsed.frame);
  else if (parsed.frame.action === 'ack') {
    reply = deps.alertState
      ? await acknowledgeAlert(deps.alertState, connectionId, parsed.frame)
      : errorFrame('unknown_action', 'ack is not served on this route', parsed.frame.alertId);
  } else {
    const connection = taken === 'gone' ? undefined : await deps.connections.get(connectionId);
    reply = connection
      ? await subscribe(deps, connection, parsed.frame)
      : errorFrame('forbidden', NOT_REGISTERED, parsed.frame.id);
    // The snapshot is read for the sites of the connection just read.
    if (connection && reply.type === 'subscribed' && deps.snapshot) {
      followUps = await snapshotTexts(deps.snapshot, connection, reply);
    }
  }
  // The reply goes back as the route response (or a post before the follow-ups): one message sent each.
  metrics.add(METRIC.messagesSent, 1 + followUps.length).observe(METRIC.processingDuration, (performance.now() - started) / 1000);
  return { reply, followUps, metrics };
}
