import { RemovalPolicy } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import { Construct } from 'constructs';
import { ALERTS_TABLE, CONNECTIONS_TABLE, LATEST_TABLE, METRICS_TABLE, SUBSCRIPTIONS_TABLE } from '../../lambdas/config/tables';

/** Properties of {@link DataTables}. */
export interface DataTablesProps {
  /**
   * What happens to the tables when the stack is deleted. They hold only state that expires
   * (connections, subscriptions) or is rebuilt (metric counters).
   * @default RemovalPolicy.DESTROY
   */
  readonly removalPolicy?: RemovalPolicy;
}

/**
 * The DynamoDB tables, on demand, with point-in-time recovery and server-side encryption.
 * Key schemas and TTL attributes come from lambdas/config/tables.ts, which the Lambdas and the
 * local runtime use as well.
 */
export class DataTables extends Construct {
  /** Connections: keys and TTL in {@link CONNECTIONS_TABLE}. */
  public readonly connections: dynamodb.TableV2;
  /** Subscription index buckets: keys and TTL (of a whole bucket) in {@link SUBSCRIPTIONS_TABLE}. */
  public readonly subscriptions: dynamodb.TableV2;
  /** Aggregated metrics and the status gate: keys in {@link METRICS_TABLE}. */
  public readonly metrics: dynamodb.TableV2;
  /** Alerts and their state: see {@link ALERTS_TABLE}. */
  public readonly alerts: dynamodb.TableV2;
  /** Latest reading of each device, one item per location: see {@link LATEST_TABLE}. */
  public readonly latest: dynamodb.TableV2;

  constructor(scope: Construct, id: string, props: DataTablesProps = {}) {
    super(scope, id);
    const common = {
      billing: dynamodb.Billing.onDemand(),
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      removalPolicy: props.removalPolicy ?? RemovalPolicy.DESTROY,
    } as const;
    const str = (name: string): dynamodb.Attribute => ({ name, type: dynamodb.AttributeType.STRING });

    this.connections = new dynamodb.TableV2(this, 'Connections', {
      ...common,
      partitionKey: str(CONNECTIONS_TABLE.partitionKey),
      timeToLiveAttribute: CONNECTIONS_TABLE.ttlAttribute,
    });
    this.subscriptions = new dynamodb.TableV2(this, 'Subscriptions', {
      ...common,
      partitionKey: str(SUBSCRIPTIONS_TABLE.partitionKey),
      sortKey: str(SUBSCRIPTIONS_TABLE.sortKey),
      timeToLiveAttribute: SUBSCRIPTIONS_TABLE.ttlAttribute,
    });
    this.metrics = new dynamodb.TableV2(this, 'Metrics', {
      ...common,
      partitionKey: str(METRICS_TABLE.partitionKey),
      sortKey: str(METRICS_TABLE.sortKey),
    });
    this.alerts = new dynamodb.TableV2(this, 'Alerts', {
      ...common,
      partitionKey: str(ALERTS_TABLE.partitionKey),
      timeToLiveAttribute: ALERTS_TABLE.ttlAttribute,
      globalSecondaryIndexes: [
        {
          indexName: ALERTS_TABLE.unresolvedIndex.name,
          partitionKey: str(ALERTS_TABLE.unresolvedIndex.partitionKey),
          sortKey: { name: ALERTS_TABLE.unresolvedIndex.sortKey, type: dynamodb.AttributeType.NUMBER },
        },
      ],
    });
    this.latest = new dynamodb.TableV2(this, 'Latest', {
      ...common,
      partitionKey: str(LATEST_TABLE.partitionKey),
    });
  }
}
