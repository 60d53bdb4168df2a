/**
 * Alerts and their state over DynamoDB: one item per alert keyed by `alertId`, state changes as
 * conditional updates (so two operators acknowledging at once make one change), and a sparse
 * index of the unresolved ones, newest first. See {@link ALERTS_TABLE}.
 */
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { GetCommand, PutCommand, QueryCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { DocumentSender } from './lean-dynamo';
import { ALERTS_TABLE } from '../config/tables';
import { mapWithConcurrency } from '../core/concurrency';
import type { AlertStore, StoredAlert } from '../core/ports';
import type { AlertRecord, AlertStateInfo, AlertStateName } from '../core/protocol';

const UNRESOLVED = 'u';
const { unresolvedIndex: INDEX } = ALERTS_TABLE;

interface AlertItem {
  alertId: string;
  alert: AlertRecord;
  state: AlertStateName;
  by?: string;
  at: number;
  expiresAt: number;
}

function storedOf(item: AlertItem): StoredAlert {
  const state: AlertStateInfo = { state: item.state, at: item.at };
  if (item.by !== undefined) state.by = item.by;
  return { alert: item.alert, state };
}

/** {@link AlertStore} over the alerts table. */
export class DynamoAlertStore implements AlertStore {
  calls = 0;

  constructor(
    private readonly doc: DocumentSender,
    private readonly tableName: string,
  ) {}

  async open(alerts: readonly AlertRecord[], expiresAt: (alert: AlertRecord) => number): Promise<void> {
    await mapWithConcurrency(alerts, 8, async (alert) => {
      this.calls++;
      try {
        await this.doc.send(
          new PutCommand({
            TableName: this.tableName,
            Item: {
              alertId: alert.alertId,
              alert,
              state: 'open',
              at: alert.timestamp,
              expiresAt: expiresAt(alert),
              [INDEX.partitionKey]: UNRESOLVED,
              [INDEX.sortKey]: alert.timestamp,
            },
            ConditionExpression: 'attribute_not_exists(alertId)',
          }),
        );
      } catch (error) {
        // Already stored: a redelivered record must not reopen an acknowledged alert.
        if (!(error instanceof ConditionalCheckFailedException)) throw error;
      }
    });
  }

  async get(alertId: string): Promise<StoredAlert | undefined> {
    this.calls++;
    const out = await this.doc.send(new GetCommand({ TableName: this.tableName, Key: { alertId }, ConsistentRead: true }));
    return out.Item ? storedOf(out.Item as AlertItem) : undefined;
  }

  async transition(alertId: string, from: readonly AlertStateName[], next: AlertStateInfo): Promise<StoredAlert | undefined> {
    this.calls++;
    const values: Record<string, unknown> = { ':state': next.state, ':at': next.at };
    from.forEach((state, i) => (values[`:from${i}`] = state));
    const sets = ['#state = :state', '#at = :at'];
    if (next.by !== undefined) {
      sets.push('#by = :by');
      values[':by'] = next.by;
    }
    try {
      const out = await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { alertId },
          UpdateExpression: `SET ${sets.join(', ')}${next.state === 'resolved' ? ' REMOVE #unresolved, #openedAt' : ''}`,
          ConditionExpression: `#state IN (${from.map((_, i) => `:from${i}`).join(', ')})`,
          ExpressionAttributeNames: {
            '#state': 'state',
            '#at': 'at',
            ...(next.by !== undefined ? { '#by': 'by' } : {}),
            ...(next.state === 'resolved' ? { '#unresolved': INDEX.partitionKey, '#openedAt': INDEX.sortKey } : {}),
          },
          ExpressionAttributeValues: values,
          ReturnValues: 'ALL_NEW',
        }),
      );
      return storedOf(out.Attributes as AlertItem);
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) return undefined;
      throw error;
    }
  }

  async unresolved(options: { limit: number; before?: number }): Promise<StoredAlert[]> {
    const found: StoredAlert[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      this.calls++;
      const out = await this.doc.send(
        new QueryCommand({
          TableName: this.tableName,
          IndexName: INDEX.name,
          KeyConditionExpression: options.before === undefined ? '#u = :u' : '#u = :u AND #t < :before',
          ExpressionAttributeNames: { '#u': INDEX.partitionKey, ...(options.before === undefined ? {} : { '#t': INDEX.sortKey }) },
          ExpressionAttributeValues: { ':u': UNRESOLVED, ...(options.before === undefined ? {} : { ':before': options.before }) },
          ScanIndexForward: false,
          Limit: options.limit - found.length,
          ExclusiveStartKey: start,
        }),
      );
      for (const item of (out.Items ?? []) as AlertItem[]) found.push(storedOf(item));
      start = out.LastEvaluatedKey;
    } while (start && found.length < options.limit);
    return found;
  }
}
