/**
 * The life of a connection: connect, client messages (subscribe, unsubscribe, ping), disconnect.
 * Every route handler is a thin wrapper over these functions.
 */
import { randomBytes } from 'node:crypto';
import { acknowledgeAlert, type AlertStateDeps } from './alert-state';
import type { Principal } from './auth';
import { createMessageBuilder, type SubscriptionEntry } from './fanout';
import { indexKeysForFilter, narrowToSites, normaliseFilter } from './filter';
import { MAX_CONNECTION_SECONDS } from '../config/tables';
import { METRIC, MetricsBatch } from './metrics';
import { statusEntry } from './status';
import type { ChangeResult, ConnectionItem, ConnectionStore, RateRule, SubscriptionIndex } from './ports';
import { snapshotTexts, type SnapshotDeps } from './snapshot';
import type { ReplayResult, Replayer } from './replay';
import { errorMessage } from './errors';
import {
  LIMITS,
  errorFrame,
  type AckedFrame,
  parseClientFrame,
  type ErrorFrame,
  type NormalisedFilter,
  type PongFrame,
  type ResumedFrame,
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
  /**
   * Reads what a resuming subscription missed from the log (./replay.ts); without it a `resume`
   * is answered as too far behind, with the snapshot.
   */
  replay?: Replayer;
}

/** Items outlive API Gateway's 2-hour limit by this much, so a live connection never expires. */
const TTL_MARGIN_SECONDS = 15 * 60;

/** When a connection opened at `connectedAt` (epoch ms) expires, epoch seconds: its items' TTL. */
export function connectionExpiry(connectedAt: number): number {
  return Math.ceil(connectedAt / 1000) + MAX_CONNECTION_SECONDS + TTL_MARGIN_SECONDS;
}

/**
 * What API Gateway tells every route about the connection a message came on: the sites its
 * authorizer granted and when it connected. With it a message needs no read of the connection
 * item, which holds the same sites, written from the same authorizer context at `$connect`.
 */
export type Caller = Pick<ConnectionItem, 'sites' | 'expiresAt'>;

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
    expiresAt: connectionExpiry(now),
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
  try {
    if (entries.size) await deps.index.remove([...entries.values()]);
  } catch (error) {
    // The connection is gone and counted by the caller; entries left are ignored by delivery
    // once their connection answers 410, and end by TTL.
    if (!removed) throw error;
  }
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

/**
 * What a `resume` costs in index-write tokens: it reads up to the whole recovery window, so a
 * connection may resume at most {@link LIMITS.indexWritesPerMinute} / this many times a minute.
 */
const RESUME_COST = 60;

const NOT_REGISTERED = 'this connection is not registered; reconnect';

const MESSAGES_LIMITED = `at most ${LIMITS.messagesPerSecond} messages a second (bursts of ${LIMITS.messageBurst}); slow down`;

/** The error a refused {@link ConnectionStore.change} answers with. */
function refusal(result: Exclude<ChangeResult, { outcome: 'ok' }>, id: string | undefined): ErrorFrame {
  switch (result.outcome) {
    case 'gone':
      return errorFrame('forbidden', NOT_REGISTERED, id);
    case 'limited':
      return result.bucket === 'messages'
        ? errorFrame('rate_limited', MESSAGES_LIMITED, id)
        : errorFrame('rate_limited', `at most ${LIMITS.indexWritesPerMinute} subscription keys a minute; retry later`, id);
    case 'full':
      return errorFrame(
        'too_large',
        `a connection may hold at most ${LIMITS.maxSubscriptionsPerConnection} subscriptions; unsubscribe one first`,
        id,
      );
    case 'missing':
      return errorFrame('bad_request', `no subscription with id "${id}"`, id);
  }
}

/**
 * Subscribes in at most three round trips: one conditional write of the connection item (both
 * token buckets, the subscription and its limit), then the index entries and the snapshot's reads
 * together, then the stale entries of a replaced filter, if any.
 */
async function subscribe(
  deps: SessionDeps,
  caller: Caller,
  connectionId: string,
  frame: SubscribeFrame,
  now: number,
): Promise<{ reply: SubscribedFrame | ErrorFrame; followUps: string[]; resumed?: ResumeNote }> {
  const id = frame.id ?? newSubscriptionId();
  const filter = narrowToSites(normaliseFilter(frame.filter), caller.sites);
  if (!filter) {
    // Refused, but the message still costs its token, as every message does.
    const taken = await deps.connections.change(connectionId, { takes: [RATE_RULES.messages] }, now);
    if (taken.outcome !== 'ok') return { reply: refusal(taken, id), followUps: [] };
    const message = caller.sites.length
      ? `the filter names only sites outside this connection's: ${caller.sites.join(', ')}`
      : "this connection's token grants no sites";
    return { reply: errorFrame('forbidden', message, id), followUps: [] };
  }
  const next = entriesOf(connectionId, id, filter);
  const resume = frame.resume?.size ? frame.resume : undefined;
  // Each index key written costs a token, and a resume's read as many; removals were paid for
  // when their entries were written.
  const writes = { ...RATE_RULES.indexWrites, costMs: RATE_RULES.indexWrites.costMs * (next.length + (resume ? RESUME_COST : 0)) };
  const max = LIMITS.maxSubscriptionsPerConnection;
  const set = await deps.connections.change(connectionId, { takes: [RATE_RULES.messages, writes], set: { subscriptionId: id, filter, max } }, now);
  if (set.outcome !== 'ok') {
    // A subscribe refused for its keys or by the cap is still a message: it takes its token, from
    // the connection's shared bucket (else a client at the cap could send refused subscribes
    // through every instance unlimited), and over the limit it is answered as such.
    if ((set.outcome === 'limited' && set.bucket === 'indexWrites') || set.outcome === 'full') {
      const taken = await deps.connections.change(connectionId, { takes: [RATE_RULES.messages] }, now);
      if (taken.outcome === 'limited') return { reply: refusal(taken, id), followUps: [] };
    }
    return { reply: refusal(set, id), followUps: [] };
  }
  // The first subscription also makes the connection a recipient of system_status frames.
  if (!set.hadSubscriptions) next.push(statusEntry(connectionId));
  const reply: SubscribedFrame = { type: 'subscribed', id, filter };
  // A replaced filter's entries under keys the new one does not use go in the same round trip:
  // they are other items than the ones written.
  const kept = new Set(next.map((entry) => entry.indexKey));
  const stale = set.previous ? entriesOf(connectionId, id, set.previous).filter((entry) => !kept.has(entry.indexKey)) : [];
  // A resume sends the snapshot only when it is too far behind, so it is not read beforehand.
  const [stored, followUps, cleared] = await Promise.allSettled([
    deps.index.put(next, caller.expiresAt),
    deps.snapshot && !resume ? snapshotTexts(deps.snapshot, caller, reply) : Promise.resolve([]),
    stale.length ? deps.index.remove(stale) : Promise.resolve(),
  ]);
  if (stored.status === 'rejected') {
    // Undo, so that the connection item never names a subscription the index does not hold.
    const undo = set.previous
      ? { takes: [], set: { subscriptionId: id, filter: set.previous, max: Number.MAX_SAFE_INTEGER } }
      : { takes: [], remove: { subscriptionId: id } };
    await deps.connections.change(connectionId, undo, now);
    // The previous filter's entries removed meanwhile are written back.
    if (stale.length && cleared.status === 'fulfilled') await deps.index.put(stale, caller.expiresAt);
    throw stored.reason;
  }
  if (cleared.status === 'rejected') throw cleared.reason;
  if (followUps.status === 'rejected') throw followUps.reason;
  if (!resume) return { reply, followUps: followUps.value };
  // Read only now that the index holds the subscription: every record after the log's end as read
  // here reaches it live (./replay.ts).
  return { reply, ...(await resumeFollowUps(deps, caller, reply, resume, now)) };
}

/**
 * The follow-ups of a resume: the missed records packed as live `batch` frames, then `resumed`; or,
 * too far behind (or the log unreadable), `resumed` with `tooFarBehind` and the snapshot.
 */
async function resumeFollowUps(
  deps: SessionDeps,
  caller: Caller,
  reply: SubscribedFrame,
  resume: NonNullable<SubscribeFrame['resume']>,
  now: number,
): Promise<{ followUps: string[]; resumed: ResumeNote }> {
  let result: ReplayResult;
  try {
    result = deps.replay ? await deps.replay({ filter: reply.filter, resume }) : { tooFarBehind: true, reason: 'the log cannot be read here' };
  } catch (error) {
    result = { tooFarBehind: true, reason: `the log could not be read: ${errorMessage(error)}` };
  }
  if (result.tooFarBehind) {
    const resumed: ResumedFrame = { type: 'resumed', id: reply.id, replayed: 0, tooFarBehind: true };
    const snapshot = deps.snapshot ? await snapshotTexts(deps.snapshot, caller, reply) : [];
    return { followUps: [JSON.stringify(resumed), ...snapshot], resumed: { replayed: 0, tooFarBehind: result.reason } };
  }
  const resumed: ResumedFrame = { type: 'resumed', id: reply.id, replayed: result.records.length };
  const frames = result.records.length ? createMessageBuilder(now)(result.records) : [];
  return { followUps: [...frames, JSON.stringify(resumed)], resumed: { replayed: result.records.length, scanned: result.scanned } };
}

/** What a resume did, for the handler's log. */
export interface ResumeNote {
  replayed: number;
  /** Records read from the log to find them. */
  scanned?: number;
  /** Why it was too far behind. */
  tooFarBehind?: string;
}

/** Unsubscribes in two round trips: the connection item (its token and the subscription), then the index. */
async function unsubscribe(
  deps: SessionDeps,
  connectionId: string,
  frame: UnsubscribeFrame,
  now: number,
): Promise<UnsubscribedFrame | ErrorFrame> {
  const removed = await deps.connections.change(connectionId, { takes: [RATE_RULES.messages], remove: { subscriptionId: frame.id } }, now);
  if (removed.outcome !== 'ok') {
    // An unknown id is still a message: it takes its token.
    if (removed.outcome === 'missing') await deps.connections.change(connectionId, { takes: [RATE_RULES.messages] }, now);
    return refusal(removed, frame.id);
  }
  if (removed.previous) await deps.index.remove(entriesOf(connectionId, frame.id, removed.previous));
  return { type: 'unsubscribed', id: frame.id };
}

/** The reply to one client message, and the metrics it produced. */
export interface MessageOutcome {
  reply: SubscribedFrame | UnsubscribedFrame | PongFrame | AckedFrame | ErrorFrame;
  /** Messages that must reach the client after the reply (a subscription's snapshot or replay). */
  followUps: string[];
  metrics: MetricsBatch;
  /** What a subscribe with `resume` replayed. */
  resumed?: ResumeNote;
}

/**
 * Handles one client message on any route. Bad input gets an error frame and changes nothing;
 * the connection stays open.
 */
export async function handleClientMessage(
  deps: SessionDeps,
  connectionId: string,
  body: string | null | undefined,
  caller?: Caller,
): Promise<MessageOutcome> {
  const started = performance.now();
  const metrics = new MetricsBatch().add(METRIC.messagesReceived);
  const parsed = parseClientFrame(body);
  const now = (deps.now ?? Date.now)();
  let reply: MessageOutcome['reply'];
  let followUps: string[] = [];
  let resumed: ResumeNote | undefined;
  const frame = parsed.ok ? parsed.frame : undefined;
  if (frame?.action === 'subscribe') {
    // Without what API Gateway passes on (a direct call), the connection item says the same.
    const known = caller ?? (await deps.connections.get(connectionId));
    if (known) ({ reply, followUps, resumed } = await subscribe(deps, known, connectionId, frame, now));
    else reply = errorFrame('forbidden', NOT_REGISTERED, frame.id);
  } else if (frame?.action === 'unsubscribe') {
    reply = await unsubscribe(deps, connectionId, frame, now);
  } else {
    // Every message takes from the bucket, bad ones too: each costs an invocation.
    const taken = await deps.connections.change(connectionId, { takes: [RATE_RULES.messages] }, now);
    if (!frame) {
      const error = parsed.ok ? undefined : parsed.error;
      reply = taken.outcome === 'limited' ? errorFrame('rate_limited', MESSAGES_LIMITED, error?.id) : error!;
    } else if (taken.outcome === 'limited') reply = errorFrame('rate_limited', MESSAGES_LIMITED);
    else if (frame.action === 'ping') reply = { type: 'pong', timestamp: now };
    else if (!deps.alertState) reply = errorFrame('unknown_action', 'ack is not served on this route', frame.alertId);
    else if (taken.outcome === 'gone') reply = errorFrame('forbidden', NOT_REGISTERED, frame.alertId);
    else reply = await acknowledgeAlert(deps.alertState, connectionId, frame);
  }
  // The reply goes back as the route response (or a post before the follow-ups): one message sent each.
  metrics.add(METRIC.messagesSent, 1 + followUps.length).observe(METRIC.processingDuration, (performance.now() - started) / 1000);
  return { reply, followUps, metrics, ...(resumed ? { resumed } : {}) };
}
