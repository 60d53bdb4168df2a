/** The connections table over DynamoDB. */
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { DeleteCommand, GetCommand, PutCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { CallCounter, ConnectionItem, ConnectionStore, RateRule, SetSubscriptionResult } from '../core/ports';
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

/** {@link ConnectionStore} over a DynamoDB table keyed by `connectionId`. */
export class DynamoConnectionStore implements ConnectionStore, CallCounter {
  calls = 0;

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
    if ((await busy()) || (await idle()) || (await busy())) return 'ok';
    return (await this.exists(connectionId)) ? 'limited' : 'gone';
  }

  async delete(connectionId: string): Promise<ConnectionItem | undefined> {
    this.calls++;
    const out = await this.doc.send(
      new DeleteCommand({ TableName: this.tableName, Key: { connectionId }, ReturnValues: 'ALL_OLD' }),
    );
    return decode(out.Attributes as StoredConnection | undefined);
  }

  private async conditionalUpdate(input: ConstructorParameters<typeof UpdateCommand>[0]): Promise<boolean> {
    this.calls++;
    try {
      await this.doc.send(new UpdateCommand(input));
      return true;
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
