/** The connections table over DynamoDB. */
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { DeleteCommand, GetCommand, PutCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { ConnectionItem, ConnectionStore } from '../core/ports';
import type { NormalisedFilter } from '../core/protocol';

/** {@link ConnectionStore} over a DynamoDB table keyed by `connectionId`. */
export class DynamoConnectionStore implements ConnectionStore {
  calls = 0;

  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  async put(item: ConnectionItem): Promise<void> {
    this.calls++;
    await this.doc.send(new PutCommand({ TableName: this.tableName, Item: item }));
  }

  async get(connectionId: string): Promise<ConnectionItem | undefined> {
    this.calls++;
    const out = await this.doc.send(
      new GetCommand({ TableName: this.tableName, Key: { connectionId }, ConsistentRead: true }),
    );
    return out.Item as ConnectionItem | undefined;
  }

  async setSubscription(connectionId: string, subscriptionId: string, filter: NormalisedFilter): Promise<boolean> {
    return this.updateIfConnected(connectionId, 'SET subscriptions.#id = :filter', subscriptionId, { ':filter': filter });
  }

  async removeSubscription(connectionId: string, subscriptionId: string): Promise<void> {
    await this.updateIfConnected(connectionId, 'REMOVE subscriptions.#id', subscriptionId);
  }

  /** Applies an update to one subscription of a connection that exists; false when it does not. */
  private async updateIfConnected(
    connectionId: string,
    expression: string,
    subscriptionId: string,
    values?: Record<string, unknown>,
  ): Promise<boolean> {
    this.calls++;
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { connectionId },
          UpdateExpression: expression,
          ConditionExpression: 'attribute_exists(connectionId)',
          ExpressionAttributeNames: { '#id': subscriptionId },
          ...(values ? { ExpressionAttributeValues: values } : {}),
        }),
      );
      return true;
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) return false;
      throw error;
    }
  }

  async delete(connectionId: string): Promise<ConnectionItem | undefined> {
    this.calls++;
    const out = await this.doc.send(
      new DeleteCommand({ TableName: this.tableName, Key: { connectionId }, ReturnValues: 'ALL_OLD' }),
    );
    return out.Attributes as ConnectionItem | undefined;
  }
}
