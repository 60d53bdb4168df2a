/** The connections table over DynamoDB. */
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { DeleteCommand, GetCommand, PutCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { ConnectionItem, ConnectionStore, RateRule, SetSubscriptionResult } from '../core/ports';
import type { NormalisedFilter } from '../core/protocol';

/**
 * Keys of the stored `subscriptions` map are the ids behind this prefix: the SDK unmarshalls a map
 * into a plain object by assignment, where a bare `__proto__` key would become its prototype.
 */
const KEY_PREFIX = 's:';

/** Token bucket attributes of a connection item: the time each bucket is next full, epoch ms. */
const BUCKET_ATTRIBUTE: Record<RateRule['bucket'], string> = { messages: 'rateM', indexWrites: 'rateW' };

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

/** {@link ConnectionStore} over a DynamoDB table keyed by `connectionId`. */
export class DynamoConnectionStore implements ConnectionStore {
  calls = 0;
  /**
   * The latest bucket time seen per connection and bucket. A bucket's time only moves forward
   * while it is busy, so a request that this time already refuses is refused without a request:
   * a flood costs this instance about one write per refill, not one per message.
   */
  private readonly bucketTimes = new Map<string, number>();

  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  async put(item: ConnectionItem): Promise<void> {
    this.calls++;
    const subscriptions = Object.fromEntries([...item.subscriptions].map(([id, filter]) => [KEY_PREFIX + id, filter]));
    await this.doc.send(new PutCommand({ TableName: this.tableName, Item: { ...item, subscriptions } }));
  }

  async get(connectionId: string): Promise<ConnectionItem | undefined> {
    this.calls++;
    const out = await this.doc.send(
      new GetCommand({ TableName: this.tableName, Key: { connectionId }, ConsistentRead: true }),
    );
    return decode(out.Item as StoredConnection | undefined);
  }

  async setSubscription(connectionId: string, subscriptionId: string, filter: NormalisedFilter, max: number): Promise<SetSubscriptionResult> {
    this.calls++;
    try {
      const out = await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { connectionId },
          UpdateExpression: 'SET subscriptions.#id = :filter',
          // Replacing one of its own is always allowed; a new one only below the limit.
          ConditionExpression: 'attribute_exists(connectionId) AND (attribute_exists(subscriptions.#id) OR size(subscriptions) < :max)',
          ExpressionAttributeNames: { '#id': KEY_PREFIX + subscriptionId },
          ExpressionAttributeValues: { ':filter': filter, ':max': max },
          ReturnValues: 'UPDATED_OLD',
        }),
      );
      const previous = (out.Attributes?.subscriptions as Record<string, NormalisedFilter> | undefined)?.[KEY_PREFIX + subscriptionId];
      return previous ? { outcome: 'ok', previous } : { outcome: 'ok' };
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
      return (await this.exists(connectionId)) ? { outcome: 'full' } : { outcome: 'gone' };
    }
  }

  async removeSubscription(connectionId: string, subscriptionId: string): Promise<NormalisedFilter | undefined> {
    this.calls++;
    try {
      const out = await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { connectionId },
          UpdateExpression: 'REMOVE subscriptions.#id',
          ConditionExpression: 'attribute_exists(subscriptions.#id)',
          ExpressionAttributeNames: { '#id': KEY_PREFIX + subscriptionId },
          ReturnValues: 'UPDATED_OLD',
        }),
      );
      return (out.Attributes?.subscriptions as Record<string, NormalisedFilter> | undefined)?.[KEY_PREFIX + subscriptionId];
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) return undefined;
      throw error;
    }
  }

  /**
   * A GCRA token bucket in one attribute: a busy bucket moves forward by the cost while it stays
   * within the burst; an idle one (its time past) restarts from now. Each is one conditional
   * write, so concurrent messages of a connection cannot take more than the bucket holds.
   */
  async take(connectionId: string, rule: RateRule, now: number): Promise<'ok' | 'limited' | 'gone'> {
    const key = `${rule.bucket}\n${connectionId}`;
    const known = this.bucketTimes.get(key);
    if (known !== undefined && known - now > rule.burstMs - rule.costMs) return 'limited';
    const remember = (time: unknown) => {
      if (typeof time !== 'number') return;
      this.bucketTimes.delete(key);
      this.bucketTimes.set(key, time);
      if (this.bucketTimes.size > REMEMBERED_BUCKETS) this.bucketTimes.delete(this.bucketTimes.keys().next().value!);
    };
    const names = { '#b': BUCKET_ATTRIBUTE[rule.bucket] };
    const busy = () =>
      this.conditionalUpdate({
        TableName: this.tableName,
        Key: { connectionId },
        UpdateExpression: 'SET #b = #b + :cost',
        ConditionExpression: 'attribute_exists(connectionId) AND #b BETWEEN :now AND :latest',
        ExpressionAttributeNames: names,
        ExpressionAttributeValues: { ':cost': rule.costMs, ':now': now, ':latest': now + rule.burstMs - rule.costMs },
      });
    const idle = () =>
      rule.costMs <= rule.burstMs &&
      this.conditionalUpdate({
        TableName: this.tableName,
        Key: { connectionId },
        UpdateExpression: 'SET #b = :next',
        ConditionExpression: 'attribute_exists(connectionId) AND (attribute_not_exists(#b) OR #b < :now)',
        ExpressionAttributeNames: names,
        ExpressionAttributeValues: { ':next': now + rule.costMs, ':now': now },
      });
    // The second busy try covers a concurrent message that restarted an idle bucket meanwhile.
    const taken = (await busy()) || (await idle()) || (await busy());
    if (taken) {
      remember(taken.Attributes?.[names['#b']]);
      return 'ok';
    }
    this.calls++;
    const out = await this.doc.send(
      new GetCommand({
        TableName: this.tableName,
        Key: { connectionId },
        ProjectionExpression: 'connectionId, #b',
        ExpressionAttributeNames: names,
        ConsistentRead: true,
      }),
    );
    if (!out.Item) return 'gone';
    remember(out.Item[names['#b']]);
    return 'limited';
  }

  async delete(connectionId: string): Promise<ConnectionItem | undefined> {
    this.calls++;
    const out = await this.doc.send(
      new DeleteCommand({ TableName: this.tableName, Key: { connectionId }, ReturnValues: 'ALL_OLD' }),
    );
    return decode(out.Attributes as StoredConnection | undefined);
  }

  /** An update with `ReturnValues: UPDATED_NEW`: its output, or false when its condition failed. */
  private async conditionalUpdate(input: ConstructorParameters<typeof UpdateCommand>[0]) {
    this.calls++;
    try {
      return await this.doc.send(new UpdateCommand({ ...input, ReturnValues: 'UPDATED_NEW' }));
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) return false;
      throw error;
    }
  }

  private async exists(connectionId: string): Promise<boolean> {
    this.calls++;
    const out = await this.doc.send(
      new GetCommand({
        TableName: this.tableName,
        Key: { connectionId },
        ProjectionExpression: 'connectionId',
        ConsistentRead: true,
      }),
    );
    return out.Item !== undefined;
  }
}
