/**
 * The life of a connection: connect, client messages (subscribe, unsubscribe, ping), disconnect.
 * Every route handler is a thin wrapper over these functions.
 */
import { randomBytes } from 'node:crypto';
import { acknowledgeAlert, type AlertStateDeps } from './alert-state';
import type { Principal } from './auth';
import type { SubscriptionEntry } from './fanout';
import { indexKeysForFilter, normaliseFilter } from './filter';
import { MAX_CONNECTION_SECONDS } from '../config/tables';
import { METRIC, MetricsBatch } from './metrics';
import { statusEntry } from './status';
import type { ConnectionItem, ConnectionStore, SubscriptionIndex } from './ports';
import { snapshotTexts, type SnapshotDeps } from './snapshot';
import {
  LIMITS,
  errorFrame,
  type AckedFrame,
  parseClientFrame,
  type ErrorFrame,
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
    subscriptions: {},
  };
  await deps.connections.put(item);
  return item;
}

function entriesOf(connectionId: string, subscriptionId: string, filter: ConnectionItem['subscriptions'][string]) {
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
  for (const [subscriptionId, filter] of Object.entries(removed?.subscriptions ?? {})) {
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

async function subscribe(
  deps: SessionDeps,
  connectionId: string,
  frame: SubscribeFrame,
): Promise<SubscribedFrame | ErrorFrame> {
  const id = frame.id ?? newSubscriptionId();
  const filter = normaliseFilter(frame.filter);
  const connection = await deps.connections.get(connectionId);
  if (!connection) return errorFrame('forbidden', 'this connection is not registered; reconnect', id);
  const previous = connection.subscriptions[id];
  if (!previous && Object.keys(connection.subscriptions).length >= LIMITS.maxSubscriptionsPerConnection) {
    return errorFrame(
      'too_large',
      `a connection may hold at most ${LIMITS.maxSubscriptionsPerConnection} subscriptions; unsubscribe one first`,
      id,
    );
  }
  const next = entriesOf(connectionId, id, filter);
  // The first subscription also makes the connection a recipient of system_status frames.
  if (Object.keys(connection.subscriptions).length === 0) next.push(statusEntry(connectionId));
  // Write the index before the connection item: a crash between the two leaves index items that
  // the stream handler removes on its first 410, never a subscription that silently gets nothing.
  await deps.index.put(next, connection.expiresAt);
  if (previous) {
    const kept = new Set(next.map((entry) => entry.indexKey));
    const stale = entriesOf(connectionId, id, previous).filter((entry) => !kept.has(entry.indexKey));
    if (stale.length) await deps.index.remove(stale);
  }
  if (!(await deps.connections.setSubscription(connectionId, id, filter))) {
    await deps.index.remove(next);
    return errorFrame('forbidden', 'this connection is not registered; reconnect', id);
  }
  return { type: 'subscribed', id, filter };
}

async function unsubscribe(
  deps: SessionDeps,
  connectionId: string,
  frame: UnsubscribeFrame,
): Promise<UnsubscribedFrame | ErrorFrame> {
  const connection = await deps.connections.get(connectionId);
  if (!connection) return errorFrame('forbidden', 'this connection is not registered; reconnect', frame.id);
  const filter = connection.subscriptions[frame.id];
  if (!filter) return errorFrame('bad_request', `no subscription with id "${frame.id}"`, frame.id);
  await deps.connections.removeSubscription(connectionId, frame.id);
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
  let reply: MessageOutcome['reply'];
  let followUps: string[] = [];
  if (!parsed.ok) reply = parsed.error;
  else if (parsed.frame.action === 'ping') reply = { type: 'pong', timestamp: (deps.now ?? Date.now)() };
  else if (parsed.frame.action === 'subscribe') reply = await subscribe(deps, connectionId, parsed.frame);
  else if (parsed.frame.action === 'ack') {
    reply = deps.alertState
      ? await acknowledgeAlert(deps.alertState, connectionId, parsed.frame)
      : errorFrame('unknown_action', 'ack is not served on this route', parsed.frame.alertId);
  } else reply = await unsubscribe(deps, connectionId, parsed.frame);
  if (reply.type === 'subscribed' && deps.snapshot) followUps = await subscriptionSnapshot(deps, connectionId, reply);
  // The reply goes back as the route response (or a post before the follow-ups): one message sent each.
  metrics.add(METRIC.messagesSent, 1 + followUps.length).observe(METRIC.processingDuration, (performance.now() - started) / 1000);
  return { reply, followUps, metrics };
}

/** The snapshot of a subscription just made, for the connection's sites (read again, beside the snapshot's reads). */
function subscriptionSnapshot(deps: SessionDeps, connectionId: string, reply: SubscribedFrame): Promise<string[]> {
  return deps.snapshot ? snapshotTexts(deps.snapshot, deps.connections.get(connectionId), reply) : Promise.resolve([]);
}
