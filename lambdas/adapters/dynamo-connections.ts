/** The connections table over DynamoDB. */
import { randomUUID } from 'node:crypto';
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { DeleteCommand, GetCommand, PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { DocumentSender } from './lean-dynamo';
import type { ChangeResult, ConnectionChange, ConnectionItem, ConnectionStore, RateRule } from '../core/ports';
import type { NormalisedFilter } from '../core/protocol';

/**
 * Keys of the stored `subscriptions` map are the ids behind this prefix: the SDK unmarshalls a map
 * into a plain object by assignment, where a bare `__proto__` key would become its prototype.
 */
const KEY_PREFIX = 's:';

/** The attribute that names the call removing an item ({@link DynamoConnectionStore.delete}). */
const CLOSED_BY = 'closedBy';

/** Token bucket attributes of a connection item: the time each bucket is next full, epoch ms. */
const BUCKET_ATTRIBUTE: Record<RateRule['bucket'], string> = { messages: 'rateM', indexWrites: 'rateW' };

/**
 * A new connection's buckets: full (time 0), so that its first message's condition is a plain
 * comparison (see `tryChange`).
 */
const FULL_BUCKETS = Object.fromEntries(Object.values(BUCKET_ATTRIBUTE).map((attribute) => [attribute, 0]));

type StoredConnection = Omit<ConnectionItem, 'subscriptions'> & { subscriptions?: Record<string, NormalisedFilter> };

function decode(stored: StoredConnection | undefined): ConnectionItem | undefined {
  if (!stored) return undefined;
  const subscriptions = new Map<string, NormalisedFilter>();
  for (const [key, filter] of Object.entries(stored.subscriptions ?? {})) {
    if (key.startsWith(KEY_PREFIX)) subscriptions.set(key.slice(KEY_PREFIX.length), filter);
  }
  return {
    connectionId: stored.connectionId,
    connectedAt: stored.connectedAt,
    expiresAt: stored.expiresAt,
    sub: stored.sub,
    sites: stored.sites ?? [],
    subscriptions,
  };
}

/** Connections whose bucket times this instance remembers; the oldest are forgotten first. */
const REMEMBERED_BUCKETS = 10_000;

/** A change waiting to be combined with others of its connection (see `together`). */
interface QueuedChange {
  change: ConnectionChange;
  now: number;
  resolve: (result: ChangeResult) => void;
  reject: (error: unknown) => void;
}

/** What one write does: the changes of a batch, their costs summed per bucket. */
interface Plan {
  takes: RateRule[];
  sets: { subscriptionId: string; filter: NormalisedFilter }[];
  /** The subscription cap of the sets. */
  max: number;
  remove?: { subscriptionId: string };
}

/** The plan of `changes`, in order (a removal always comes alone: see `change`). */
function combine(changes: readonly ConnectionChange[]): Plan {
  const takes = new Map<RateRule['bucket'], RateRule>();
  for (const change of changes) {
    for (const rule of change.takes) {
      const sum = takes.get(rule.bucket);
      takes.set(rule.bucket, sum ? { ...sum, costMs: sum.costMs + rule.costMs } : rule);
    }
  }
  const sets = changes.flatMap((change) => (change.set ? [change.set] : []));
  const remove = changes.find((change) => change.remove)?.remove;
  return { takes: [...takes.values()], sets, max: sets[0]?.max ?? 0, ...(remove ? { remove } : {}) };
}

/**
 * How many of the queued changes, from the first, one write may carry: each bucket's summed cost
 * within its burst, each subscription id once, one cap. At least one.
 */
function combinable(queue: readonly QueuedChange[]): number {
  const costs = new Map<RateRule['bucket'], number>();
  const ids = new Set<string>();
  let max: number | undefined;
  for (let n = 0; n < queue.length; n++) {
    const { change } = queue[n];
    for (const rule of change.takes) {
      const cost = (costs.get(rule.bucket) ?? 0) + rule.costMs;
      if (n > 0 && cost > rule.burstMs) return n;
      costs.set(rule.bucket, cost);
    }
    if (change.set) {
      if (n > 0 && (ids.has(change.set.subscriptionId) || (max !== undefined && max !== change.set.max))) return n;
      ids.add(change.set.subscriptionId);
      max = change.set.max;
    }
  }
  return queue.length;
}

/**
 * Whether `change`, coming after those already counted in `times` (bucket attributes) and `held`
 * (subscription ids), is refused, and why, as the single write's condition would refuse it. A
 * change that is not refused is counted in both.
 */
function refusalOf(change: ConnectionChange, times: Record<string, unknown>, held: Set<string>, now: number): ChangeResult | undefined {
  const after: [string, number][] = [];
  for (const rule of change.takes) {
    const attribute = BUCKET_ATTRIBUTE[rule.bucket];
    const time = times[attribute];
    const start = typeof time === 'number' && time >= now ? time : now;
    if (start + rule.costMs - now > rule.burstMs) return { outcome: 'limited', bucket: rule.bucket };
    after.push([attribute, start + rule.costMs]);
  }
  if (change.remove && !held.has(change.remove.subscriptionId)) return { outcome: 'missing' };
  if (change.set && !held.has(change.set.subscriptionId) && held.size >= change.set.max) return { outcome: 'full' };
  for (const [attribute, time] of after) times[attribute] = time;
  if (change.set) held.add(change.set.subscriptionId);
  if (change.remove) held.delete(change.remove.subscriptionId);
  return undefined;
}

/** {@link ConnectionStore} over a DynamoDB table keyed by `connectionId`. */
export class DynamoConnectionStore implements ConnectionStore {
  calls = 0;
  /**
   * The latest bucket time seen per connection and bucket. A bucket's time only moves forward
   * while it is busy, so a request that this time already refuses is refused without a request:
   * a flood costs this instance about one write per refill, not one per message.
   */
  private readonly bucketTimes = new Map<string, number>();
  /** Each connection's changes waiting for its write in flight (see `together`). */
  private readonly queues = new Map<string, QueuedChange[]>();

  constructor(
    private readonly doc: DocumentSender,
    private readonly tableName: string,
  ) {}

  async put(item: ConnectionItem): Promise<void> {
    this.calls++;
    const subscriptions = Object.fromEntries([...item.subscriptions].map(([id, filter]) => [KEY_PREFIX + id, filter]));
    await this.doc.send(new PutCommand({ TableName: this.tableName, Item: { ...FULL_BUCKETS, ...item, subscriptions } }));
  }

  async get(connectionId: string): Promise<ConnectionItem | undefined> {
    this.calls++;
    const out = await this.doc.send(
      new GetCommand({ TableName: this.tableName, Key: { connectionId }, ConsistentRead: true }),
    );
    return decode(out.Item as StoredConnection | undefined);
  }

  /**
   * One UpdateItem: each bucket is a GCRA token bucket in one attribute (the time it is next
   * full); a busy bucket moves forward by the cost while it stays within the burst, an idle one
   * (its time past) restarts from now. Which of the two a bucket is, is guessed from the last time
   * this instance saw; a wrong guess fails the condition, and the item read that explains the
   * failure gives the right branches for the next try.
   *
   * A request that the remembered time already refuses is refused without any request: a flood
   * costs this instance about one write per refill, not one per message.
   */
  async change(connectionId: string, change: ConnectionChange, now: number): Promise<ChangeResult> {
    const guess: Record<string, unknown> = {};
    for (const rule of change.takes) {
      if (rule.costMs > rule.burstMs) return { outcome: 'limited', bucket: rule.bucket };
      const known = this.bucketTimes.get(`${rule.bucket}\n${connectionId}`);
      if (known !== undefined && known - now > rule.burstMs - rule.costMs) return { outcome: 'limited', bucket: rule.bucket };
      guess[BUCKET_ATTRIBUTE[rule.bucket]] = known;
    }
    // The tokens are reserved here before the write leaves: the messages of this connection that
    // arrive during its round trip (a flood has dozens in flight) see them taken and are refused
    // without a request, instead of each writing, losing the condition and reading the item.
    for (const rule of change.takes) {
      const known = guess[BUCKET_ATTRIBUTE[rule.bucket]];
      this.remember(rule.bucket, connectionId, (typeof known === 'number' && known >= now ? known : now) + rule.costMs);
    }
    // A removal, or a change that takes nothing (an undo), goes alone.
    if (change.remove || !change.takes.length) return this.write(connectionId, [change], now, guess).then(([result]) => result);
    return this.together(connectionId, change, now, guess);
  }

  /**
   * A connection's changes that take tokens and set at most a subscription (every message but an
   * unsubscribe) are combined: while one of its writes is in flight, those that arrive wait and
   * then go in one write that takes all their tokens and sets all their subscriptions. A burst
   * of 40 messages costs two or three writes, not 40 concurrent writes of one item that the table
   * serves one after another and that lose their conditions to each other. The shared item stays
   * the authority: when the combined write does not hold, the item read says which of the changes
   * fit, in order, and only those are written.
   */
  private together(connectionId: string, change: ConnectionChange, now: number, guess: Record<string, unknown>): Promise<ChangeResult> {
    const waiting = this.queues.get(connectionId);
    if (waiting) return new Promise((resolve, reject) => waiting.push({ change, now, resolve, reject }));
    const queue: QueuedChange[] = [];
    this.queues.set(connectionId, queue);
    const first = this.write(connectionId, [change], now, guess).then(([result]) => result);
    const drain = async () => {
      while (queue.length) {
        const batch = queue.splice(0, combinable(queue));
        try {
          const at = Math.max(...batch.map((queued) => queued.now));
          const guessed: Record<string, unknown> = {};
          for (const { change: each } of batch) {
            for (const rule of each.takes) guessed[BUCKET_ATTRIBUTE[rule.bucket]] = this.bucketTimes.get(`${rule.bucket}\n${connectionId}`);
          }
          const results = await this.write(connectionId, batch.map((queued) => queued.change), at, guessed);
          batch.forEach((queued, i) => queued.resolve(results[i]));
        } catch (error) {
          for (const queued of batch) queued.reject(error);
        }
      }
      this.queues.delete(connectionId);
    };
    void first.then(drain, drain);
    return first;
  }

  /**
   * The write of `changes` (one, or a batch from {@link together}), tried up to three times: a
   * failed condition reads the item, which says which changes are refused and why (taken in
   * order, as if each came alone), and gives the right branches for the next try of the rest.
   */
  private async write(connectionId: string, changes: readonly ConnectionChange[], now: number, guess: Record<string, unknown>): Promise<ChangeResult[]> {
    const results: ChangeResult[] = new Array(changes.length);
    let pending = changes.map((change, i) => ({ change, i }));
    let seen: Record<string, unknown> = guess;
    let read = false;
    for (let attempt = 0; attempt < 3; attempt++) {
      const plan = combine(pending.map(({ change }) => change));
      const tried = await this.tryChange(connectionId, plan, now, seen, read);
      if (tried.outcome === 'ok') {
        const old = tried.old;
        for (const rule of plan.takes) {
          const time = old[BUCKET_ATTRIBUTE[rule.bucket]];
          const after = typeof time === 'number' && time >= now ? time + rule.costMs : now + rule.costMs;
          // Writes of one connection answer in any order: a bucket's time only moves forward.
          this.remember(rule.bucket, connectionId, Math.max(after, this.bucketTimes.get(`${rule.bucket}\n${connectionId}`) ?? after));
        }
        const held = decode({ connectionId, ...old } as StoredConnection)!.subscriptions;
        // The changes before it in the batch count as held: a later one did not come first.
        let hadSubscriptions = held.size > 0;
        for (const { change, i } of pending) {
          const id = change.set?.subscriptionId ?? change.remove?.subscriptionId;
          const previous = id === undefined ? undefined : held.get(id);
          results[i] = { outcome: 'ok', hadSubscriptions, ...(previous ? { previous } : {}) };
          if (change.set) hadSubscriptions = true;
        }
        return results;
      }
      // The condition failed: read the item to say why, or to retry with the right branches.
      this.calls++;
      const out = await this.doc.send(new GetCommand({ TableName: this.tableName, Key: { connectionId }, ConsistentRead: true }));
      if (!out.Item) {
        for (const { i } of pending) results[i] = { outcome: 'gone' };
        return results;
      }
      seen = out.Item;
      read = true;
      for (const rule of plan.takes) {
        const time = seen[BUCKET_ATTRIBUTE[rule.bucket]];
        // Kept at least as far as this instance's own reservations of writes still in flight.
        const known = this.bucketTimes.get(`${rule.bucket}\n${connectionId}`);
        if (typeof time === 'number') this.remember(rule.bucket, connectionId, Math.max(time, known ?? time));
      }
      // Each change in turn against the item as read: refused as it would be alone, or kept.
      const times: Record<string, unknown> = { ...seen };
      const held = new Set(decode(seen as StoredConnection)!.subscriptions.keys());
      pending = pending.filter(({ change, i }) => {
        const refused = refusalOf(change, times, held, now);
        if (refused) results[i] = refused;
        // Refused by the cap or a missing id, its tokens were not taken: this instance's
        // reservation of them is returned (the caller may take the message's token on its own).
        if (refused && refused.outcome !== 'limited' && refused.outcome !== 'gone') this.release(connectionId, change.takes, seen);
        return !refused;
      });
      if (!pending.length) return results;
    }
    // Three tries lost to concurrent messages of the same connection: as busy as a limit.
    for (const { change, i } of pending) results[i] = { outcome: 'limited', bucket: change.takes[0]?.bucket ?? 'messages' };
    return results;
  }

  /**
   * One try of {@link write}; `seen` is the item as last read (`read`), or on the first try the
   * bucket times this instance knew, which decides each bucket's branch.
   *
   * The condition is a plain AND of comparisons, with no parenthesised OR: a wrong guess costs a
   * read and another try, where an OR of every case made each call several times dearer to
   * evaluate locally (dynalite parses it anew each time: 633 conditional writes a second against
   * 1,704 for this form, measured side by side). A bucket never written is time 0 ({@link put});
   * an item from before that lacks it is seen on the read. New subscriptions must leave the
   * connection at most `max`; replacing one of its own is always allowed, which the read tells
   * when the cap refused it.
   */
  private async tryChange(
    connectionId: string,
    plan: Plan,
    now: number,
    seen: Record<string, unknown>,
    read: boolean,
  ): Promise<{ outcome: 'ok'; old: Record<string, unknown> } | { outcome: 'failed' }> {
    const names: Record<string, string> = {};
    const values: Record<string, unknown> = {};
    const sets: string[] = [];
    const conditions = ['attribute_exists(connectionId)'];
    plan.takes.forEach((rule, i) => {
      const attribute = BUCKET_ATTRIBUTE[rule.bucket];
      const time = seen?.[attribute];
      names[`#b${i}`] = attribute;
      if (typeof time === 'number' && time >= now) {
        sets.push(`#b${i} = #b${i} + :c${i}`);
        conditions.push(`#b${i} BETWEEN :now AND :l${i}`);
        values[':now'] = now;
        values[`:c${i}`] = rule.costMs;
        values[`:l${i}`] = now + rule.burstMs - rule.costMs;
      } else {
        sets.push(`#b${i} = :n${i}`);
        if (read && time === undefined) {
          conditions.push(`attribute_not_exists(#b${i})`);
        } else {
          conditions.push(`#b${i} < :now`);
          values[':now'] = now;
        }
        values[`:n${i}`] = now + rule.costMs;
      }
    });
    let expression = '';
    if (plan.sets.length) {
      // Replacing one of its own is always allowed; new ones only up to the limit.
      const held = read ? decode({ connectionId, ...seen } as StoredConnection)!.subscriptions : undefined;
      let added = 0;
      plan.sets.forEach((set, i) => {
        names[`#s${i}`] = KEY_PREFIX + set.subscriptionId;
        values[`:f${i}`] = set.filter;
        sets.push(`subscriptions.#s${i} = :f${i}`);
        if (held?.has(set.subscriptionId)) conditions.push(`attribute_exists(subscriptions.#s${i})`);
        else added++;
      });
      if (added) {
        values[':max'] = plan.max - added + 1;
        conditions.push('size(subscriptions) < :max');
      }
    }
    if (sets.length) expression = `SET ${sets.join(', ')}`;
    if (plan.remove) {
      names['#id'] = KEY_PREFIX + plan.remove.subscriptionId;
      expression += ' REMOVE subscriptions.#id';
      conditions.push('attribute_exists(subscriptions.#id)');
    }
    const update = await this.conditionalUpdate({
      TableName: this.tableName,
      Key: { connectionId },
      UpdateExpression: expression.trim(),
      ConditionExpression: conditions.join(' AND '),
      ...(Object.keys(names).length ? { ExpressionAttributeNames: names } : {}),
      ...(Object.keys(values).length ? { ExpressionAttributeValues: values } : {}),
      ReturnValues: 'ALL_OLD',
    });
    return update ? { outcome: 'ok', old: update.Attributes ?? {} } : { outcome: 'failed' };
  }

  /** Returns the reservation of `takes`, no further back than the bucket times `seen` in the item. */
  private release(connectionId: string, takes: readonly RateRule[], seen: Record<string, unknown>): void {
    for (const rule of takes) {
      const known = this.bucketTimes.get(`${rule.bucket}\n${connectionId}`);
      const stored = seen[BUCKET_ATTRIBUTE[rule.bucket]];
      if (known !== undefined) this.remember(rule.bucket, connectionId, Math.max(known - rule.costMs, typeof stored === 'number' ? stored : -Infinity));
    }
  }

  private remember(bucket: RateRule['bucket'], connectionId: string, time: number): void {
    const key = `${bucket}\n${connectionId}`;
    this.bucketTimes.delete(key);
    this.bucketTimes.set(key, time);
    if (this.bucketTimes.size > REMEMBERED_BUCKETS) this.bucketTimes.delete(this.bucketTimes.keys().next().value!);
  }

  /**
   * Removes the item; returns it only to the one call that removed it, whatever retries happened
   * on the way, so that each connection's end is counted once.
   *
   * A DeleteItem returning ALL_OLD cannot say that: when its response is lost after it applied,
   * the client's retry finds nothing and answers as if another path (a 410 seen by the stream) had
   * removed the item first, and the gauge kept the connection for good. So the removal is claimed
   * first by a write that a retry of its own can recognise (`closedBy` set to a token of this
   * call, on condition that it is unset or already this token), then the item is deleted on
   * condition that it is still this call's. Both may be retried freely. A removal interrupted
   * between the two, or a delete that fails, leaves a claimed item, which no other removal claims
   * again and the TTL ends.
   */
  async delete(connectionId: string): Promise<ConnectionItem | undefined> {
    const token = randomUUID();
    const claimed = await this.conditionalUpdate({
      TableName: this.tableName,
      Key: { connectionId },
      UpdateExpression: 'SET #closedBy = :token',
      ConditionExpression: 'attribute_exists(connectionId) AND (attribute_not_exists(#closedBy) OR #closedBy = :token)',
      ExpressionAttributeNames: { '#closedBy': CLOSED_BY },
      ExpressionAttributeValues: { ':token': token },
      ReturnValues: 'ALL_NEW',
    });
    if (!claimed) return undefined;
    this.calls++;
    this.bucketTimes.delete(`messages\n${connectionId}`);
    this.bucketTimes.delete(`indexWrites\n${connectionId}`);
    try {
      await this.doc.send(
        new DeleteCommand({
          TableName: this.tableName,
          Key: { connectionId },
          ConditionExpression: '#closedBy = :token',
          ExpressionAttributeNames: { '#closedBy': CLOSED_BY },
          ExpressionAttributeValues: { ':token': token },
        }),
      );
    } catch {
      // A retry of a delete that applied finds the item gone (the condition fails): it is this
      // call's removal all the same. A delete that failed leaves the item claimed, which no other
      // removal counts again and its TTL ends: the connection ended here either way.
    }
    const { [CLOSED_BY]: _claim, ...item } = claimed.Attributes ?? {};
    return decode(item as StoredConnection);
  }

  /** A conditional update: its output, or false when its condition failed. */
  private async conditionalUpdate(input: ConstructorParameters<typeof UpdateCommand>[0]) {
    this.calls++;
    try {
      return await this.doc.send(new UpdateCommand(input));
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) return false;
      throw error;
    }
  }
}
