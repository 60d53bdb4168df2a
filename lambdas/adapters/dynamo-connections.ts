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

/** A token-only change waiting to be combined with others of its connection. */
interface QueuedTake {
  now: number;
  resolve: (result: ChangeResult) => void;
  reject: (error: unknown) => void;
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
  /** Token-only changes waiting for their connection's write in flight (see `takeTogether`). */
  private readonly takeQueues = new Map<string, QueuedTake[]>();

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
    if (change.set || change.remove || !change.takes.length) return this.write(connectionId, change, now, guess);
    return this.takeTogether(connectionId, change.takes, now, guess);
  }

  /**
   * A change that only takes tokens (a ping, a refused or unknown message) is combined with the
   * others of its connection: while one such write is in flight, those that arrive wait and then go
   * in one write that takes all their tokens. A burst of 40 messages costs two or three writes, not
   * 40 concurrent writes of one item that the table serves one after the other and that may lose
   * their conditions to each other. The shared bucket stays the authority: when the combined take
   * does not fit (another instance took tokens meanwhile), each message is tried alone, in order.
   */
  private takeTogether(connectionId: string, takes: readonly RateRule[], now: number, guess: Record<string, unknown>): Promise<ChangeResult> {
    const key = `${connectionId}\n${takes.map((rule) => `${rule.bucket}:${rule.costMs}:${rule.burstMs}`).join(',')}`;
    const waiting = this.takeQueues.get(key);
    if (waiting) return new Promise((resolve, reject) => waiting.push({ now, resolve, reject }));
    const queue: QueuedTake[] = [];
    this.takeQueues.set(key, queue);
    const first = this.write(connectionId, { takes }, now, guess);
    const drain = async () => {
      // At most a burst's worth in one write: a take may not cost more than its bucket holds.
      const most = Math.max(1, Math.min(...takes.map((rule) => Math.floor(rule.burstMs / rule.costMs))));
      while (queue.length) {
        const batch = queue.splice(0, most);
        try {
          const at = Math.max(...batch.map((take) => take.now));
          const combined = takes.map((rule) => ({ ...rule, costMs: rule.costMs * batch.length }));
          const result = await this.write(connectionId, { takes: combined }, at, this.known(connectionId, takes));
          if (result.outcome !== 'limited' || batch.length === 1) {
            for (const take of batch) take.resolve(result);
            continue;
          }
          // Not all fit: each alone, in order, until one is refused (then so are the rest).
          let refused: ChangeResult | undefined;
          for (const take of batch) {
            if (!refused) {
              const one = await this.write(connectionId, { takes }, take.now, this.known(connectionId, takes));
              if (one.outcome === 'ok') {
                take.resolve(one);
                continue;
              }
              refused = one;
            }
            take.resolve(refused);
          }
        } catch (error) {
          for (const take of batch) take.reject(error);
        }
      }
      this.takeQueues.delete(key);
    };
    void first.then(drain, drain);
    return first;
  }

  /** The bucket times this instance knows, as the guess of a write's branches. */
  private known(connectionId: string, takes: readonly RateRule[]): Record<string, unknown> {
    return Object.fromEntries(takes.map((rule) => [BUCKET_ATTRIBUTE[rule.bucket], this.bucketTimes.get(`${rule.bucket}\n${connectionId}`)]));
  }

  /**
   * The write of {@link change}, tried up to three times: a failed condition reads the item, which
   * either says why the change is refused or gives the right branches for the next try.
   */
  private async write(connectionId: string, change: ConnectionChange, now: number, guess: Record<string, unknown>): Promise<ChangeResult> {
    let seen: Record<string, unknown> = guess;
    let read = false;
    for (let attempt = 0; attempt < 3; attempt++) {
      const tried = await this.tryChange(connectionId, change, now, seen, read);
      if (tried.outcome === 'ok') {
        const old = tried.old;
        for (const rule of change.takes) {
          const time = old[BUCKET_ATTRIBUTE[rule.bucket]];
          const after = typeof time === 'number' && time >= now ? time + rule.costMs : now + rule.costMs;
          // Writes of one connection answer in any order: a bucket's time only moves forward.
          this.remember(rule.bucket, connectionId, Math.max(after, this.bucketTimes.get(`${rule.bucket}\n${connectionId}`) ?? after));
        }
        const held = decode({ connectionId, ...old } as StoredConnection)!.subscriptions;
        const id = change.set?.subscriptionId ?? change.remove?.subscriptionId;
        const previous = id === undefined ? undefined : held.get(id);
        return { outcome: 'ok', hadSubscriptions: held.size > 0, ...(previous ? { previous } : {}) };
      }
      // The condition failed: read the item to say why, or to retry with the right branches.
      this.calls++;
      const out = await this.doc.send(new GetCommand({ TableName: this.tableName, Key: { connectionId }, ConsistentRead: true }));
      if (!out.Item) return { outcome: 'gone' };
      seen = out.Item;
      read = true;
      for (const rule of change.takes) {
        const time = seen[BUCKET_ATTRIBUTE[rule.bucket]];
        // Kept at least as far as this instance's own reservations of writes still in flight.
        const known = this.bucketTimes.get(`${rule.bucket}\n${connectionId}`);
        if (typeof time === 'number') this.remember(rule.bucket, connectionId, Math.max(time, known ?? time));
        if (typeof time === 'number' && time - now > rule.burstMs - rule.costMs) return { outcome: 'limited', bucket: rule.bucket };
      }
      const held = decode(seen as StoredConnection)!.subscriptions;
      if (change.remove && !held.has(change.remove.subscriptionId)) return { outcome: 'missing' };
      if (change.set && !held.has(change.set.subscriptionId) && held.size >= change.set.max) return { outcome: 'full' };
    }
    // Three tries lost to concurrent messages of the same connection: as busy as a limit.
    return { outcome: 'limited', bucket: change.takes[0]?.bucket ?? 'messages' };
  }

  /**
   * One try of {@link change}; `seen` is the item as last read (`read`), or on the first try the
   * bucket times this instance knew, which decides each bucket's branch.
   *
   * The condition is a plain AND of comparisons, with no parenthesised OR: a wrong guess costs a
   * read and another try, where an OR of every case made each call several times dearer to
   * evaluate locally (dynalite parses it anew each time: 633 conditional writes a second against
   * 1,704 for this form, measured side by side). A bucket never written is time 0 ({@link put});
   * an item from before that lacks it is seen on the read. A new subscription must find fewer
   * than `max`; replacing one of its own is always allowed, which the read tells when the cap
   * refused it.
   */
  private async tryChange(
    connectionId: string,
    change: ConnectionChange,
    now: number,
    seen: Record<string, unknown>,
    read: boolean,
  ): Promise<{ outcome: 'ok'; old: Record<string, unknown> } | { outcome: 'failed' }> {
    const names: Record<string, string> = {};
    const values: Record<string, unknown> = {};
    const sets: string[] = [];
    const conditions = ['attribute_exists(connectionId)'];
    change.takes.forEach((rule, i) => {
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
    if (change.set) {
      names['#id'] = KEY_PREFIX + change.set.subscriptionId;
      sets.push('subscriptions.#id = :filter');
      values[':filter'] = change.set.filter;
      // Replacing one of its own is always allowed; a new one only below the limit.
      const held = read ? decode({ connectionId, ...seen } as StoredConnection)!.subscriptions : undefined;
      if (held?.has(change.set.subscriptionId)) {
        conditions.push('attribute_exists(subscriptions.#id)');
      } else {
        values[':max'] = change.set.max;
        conditions.push('size(subscriptions) < :max');
      }
    }
    if (sets.length) expression = `SET ${sets.join(', ')}`;
    if (change.remove) {
      names['#id'] = KEY_PREFIX + change.remove.subscriptionId;
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
