import { Duration, Fn, RemovalPolicy } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sources from 'aws-cdk-lib/aws-lambda-event-sources';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { ENV } from '../../lambdas/config/env-names';
import type { FailureDestination, KafkaAuth, KafkaVpc, StartingPosition } from '../config';
import type { DataTables } from './data-tables';
import type { RealtimeApi } from './realtime-api';
import { ServiceFunction, type FunctionDefaults } from './service-function';

/** An Amazon MSK cluster to consume from. */
export interface MskSource {
  readonly kind: 'msk';
  /** `arn:aws:kafka:<region>:<account>:cluster/<name>/<uuid>`. */
  readonly clusterArn: string;
}

/** A self-managed Kafka cluster to consume from. */
export interface SelfManagedSource {
  readonly kind: 'self-managed';
  /** `host:port` of the bootstrap brokers. */
  readonly bootstrapServers: string[];
  /** The VPC, subnets and security group through which the brokers are reachable. @default over the internet */
  readonly vpc?: KafkaVpc;
}

/** Properties of {@link StreamConsumer}. */
export interface StreamConsumerProps {
  /** The tables the stream Lambda reads subscriptions from and prunes gone connections in. */
  readonly tables: DataTables;
  /** The WebSocket API whose connections it posts to. */
  readonly realtimeApi: RealtimeApi;
  /** Shared function settings. */
  readonly functionDefaults: FunctionDefaults;
  /** The Kafka cluster. */
  readonly source: MskSource | SelfManagedSource;
  /** Authentication to Kafka. `iam` (MSK only) needs no secret; all but `none` need `secretArn`. */
  readonly auth: KafkaAuth;
  /** Secrets Manager ARN of the SASL credentials. @default none */
  readonly secretArn?: string;
  /** KMS key encrypting that secret (MSK SCRAM secrets must use a customer managed key). @default none */
  readonly secretKmsKeyArn?: string;
  /** Topics, one event source mapping each. @default ['device-data', 'alerts'] */
  readonly topics?: string[];
  /** Consumer group id prefix; each mapping uses `<prefix>-<topic>`. @default 'iot-live-dashboard' */
  readonly consumerGroupPrefix?: string;
  /** Records per invocation. @default 100 */
  readonly batchSize?: number;
  /** How long Lambda waits to fill a batch. @default 1 second */
  readonly batchingWindow?: Duration;
  /** Where a new consumer group starts. @default 'LATEST' */
  readonly startingPosition?: StartingPosition;
  /** Where records of batches that keep failing go. @default 'sqs' */
  readonly failureDestination?: FailureDestination;
  /** Most PostToConnection calls in flight per invocation (POST_CONCURRENCY). @default 512 */
  readonly postConcurrency?: number;
  /** The account's API Gateway request quota, posts/s, that invocations pace under (POST_QUOTA). @default 10000 */
  readonly postQuota?: number;
  /** Invocations that may run at once and share {@link postQuota} (POST_QUOTA_SHARES). @default 2 */
  readonly postQuotaShares?: number;
}

/**
 * The stream Lambda and its Kafka event source mappings (one per topic, on MSK or a self-managed
 * cluster), with an on-failure destination for batches that keep failing, least-privilege access
 * to the tables and to the Management API of this API's stage.
 */
export class StreamConsumer extends Construct {
  /** The stream function. */
  public readonly handler: ServiceFunction;
  /** The event source mappings, one per topic, keyed by topic. */
  public readonly mappings: Readonly<Record<string, lambda.IEventSourceMapping>>;
  /** The Kafka cluster it consumes. */
  public readonly source: MskSource | SelfManagedSource;
  /** The on-failure queue, when the destination is SQS. */
  public readonly failureQueue?: sqs.Queue;
  /** The on-failure bucket, when the destination is S3. */
  public readonly failureBucket?: s3.Bucket;

  constructor(scope: Construct, id: string, props: StreamConsumerProps) {
    super(scope, id);
    const { tables } = props;
    this.source = props.source;
    this.handler = new ServiceFunction(this, 'Stream', {
      handler: 'stream',
      description: 'Kafka (MSK) consumer: fans records out to matching WebSocket connections',
      defaults: props.functionDefaults,
      memorySize: 1024,
      // A batch of 100 records fans out to many connections; API Gateway posts take ~10-50 ms.
      timeout: Duration.seconds(60),
      environment: {
        [ENV.callbackUrl]: props.realtimeApi.callbackUrl,
        [ENV.postConcurrency]: String(props.postConcurrency ?? 512),
        [ENV.postQuota]: String(props.postQuota ?? 10_000),
        // One invocation per topic partition can run at once; together they stay under the quota.
        [ENV.postQuotaShares]: String(props.postQuotaShares ?? 2),
      },
    })
      // Deletes a connection found gone; reads index buckets and removes entries from them; adds
      // its metrics, claims the status slot (conditional update) and reads the totals for it.
      // Alert state: reads a recipient connection's sites, stores alerts (conditional put),
      // changes their state and queries the unresolved ones for expiry; latest readings are
      // created once per location, then updated.
      .linkTable(ENV.connectionsTable, tables.connections, ['DeleteItem', 'GetItem'])
      .linkTable(ENV.subscriptionsTable, tables.subscriptions, ['BatchGetItem', 'UpdateItem'])
      .linkTable(ENV.metricsTable, tables.metrics, ['UpdateItem', 'Query'])
      .linkTable(ENV.alertsTable, tables.alerts, ['PutItem', 'UpdateItem', 'Query'])
      .linkTable(ENV.latestTable, tables.latest, ['PutItem', 'UpdateItem']);
    // POST pushes frames; nothing here closes connections.
    props.realtimeApi.grantManageConnections(this.handler, ['POST']);

    let onFailure: lambda.IEventSourceDlq;
    if ((props.failureDestination ?? 'sqs') === 's3') {
      this.failureBucket = new s3.Bucket(this, 'FailedBatches', {
        blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
        encryption: s3.BucketEncryption.S3_MANAGED,
        enforceSSL: true,
        lifecycleRules: [{ expiration: Duration.days(30) }],
        removalPolicy: RemovalPolicy.RETAIN,
      });
      onFailure = new S3FailureDestination(this.failureBucket);
    } else {
      this.failureQueue = new sqs.Queue(this, 'FailedBatches', {
        encryption: sqs.QueueEncryption.SQS_MANAGED,
        enforceSSL: true,
        retentionPeriod: Duration.days(14),
      });
      onFailure = new sources.SqsDlq(this.failureQueue);
    }

    const secret = props.secretArn
      ? secretsmanager.Secret.fromSecretCompleteArn(this, 'KafkaSecret', props.secretArn)
      : undefined;
    if (props.secretKmsKeyArn) {
      // The event source mapping reads the secret with the function's role.
      this.handler.allowSecretKey(props.secretKmsKeyArn);
    }

    const topics = props.topics ?? ['device-data', 'alerts'];
    const groupPrefix = props.consumerGroupPrefix ?? 'iot-live-dashboard';
    const common = {
      batchSize: props.batchSize ?? 100,
      maxBatchingWindow: props.batchingWindow ?? Duration.seconds(1),
      startingPosition: lambda.StartingPosition[props.startingPosition ?? 'LATEST'],
      onFailure,
    };

    const mappings: Record<string, lambda.IEventSourceMapping> = {};
    const source = props.source;
    let vpcSettings: Pick<sources.SelfManagedKafkaEventSourceProps, 'vpc' | 'vpcSubnets' | 'securityGroup'> = {};
    if (source.kind === 'self-managed' && source.vpc) {
      const v = source.vpc;
      vpcSettings = {
        // The subnets are imported by id, so the AZs are never read: Fn.getAzs() keeps synth from
        // looking them up in the account (which needs credentials, and fails offline).
        vpc: ec2.Vpc.fromVpcAttributes(this, 'KafkaVpc', { vpcId: v.vpcId, availabilityZones: Fn.getAzs() }),
        vpcSubnets: { subnets: v.subnetIds.map((s, i) => ec2.Subnet.fromSubnetId(this, `KafkaSubnet${i}`, s)) },
        securityGroup: ec2.SecurityGroup.fromSecurityGroupId(this, 'KafkaSecurityGroup', v.securityGroupId),
      };
    }
    for (const topic of topics) {
      const consumerGroupId = `${groupPrefix}-${topic}`;
      const eventSource =
        source.kind === 'msk'
          ? new sources.ManagedKafkaEventSource({ ...common, clusterArn: source.clusterArn, topic, consumerGroupId, secret })
          : new sources.SelfManagedKafkaEventSource({
              ...common,
              ...vpcSettings,
              bootstrapServers: source.bootstrapServers,
              topic,
              consumerGroupId,
              secret,
              authenticationMethod: selfManagedAuth(props.auth),
            });
      const before = new Set(this.handler.function.node.children);
      this.handler.function.addEventSource(eventSource);
      mappings[topic] = newMapping(this.handler.function, before);
    }
    this.mappings = mappings;

    if (source.kind === 'msk' && props.auth === 'iam') this.grantMskIam(source.clusterArn, topics, groupPrefix);
    if (source.kind === 'self-managed' && source.vpc) this.grantVpcNetworking();
  }

  /**
   * MSK IAM access control: connect to the cluster, read the topics, and manage only this app's
   * consumer groups. The resource ARNs follow MSK's cluster/topic/group ARN scheme.
   */
  private grantMskIam(clusterArn: string, topics: string[], groupPrefix: string): void {
    const arns = mskResourceArns(clusterArn);
    this.handler.function.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['kafka-cluster:Connect', 'kafka-cluster:DescribeClusterDynamicConfiguration'],
        resources: [clusterArn],
      }),
    );
    this.handler.function.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['kafka-cluster:DescribeTopic', 'kafka-cluster:ReadData'],
        resources: topics.map(arns.topic),
      }),
    );
    this.handler.function.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['kafka-cluster:DescribeGroup', 'kafka-cluster:AlterGroup'],
        resources: topics.map((t) => arns.group(`${groupPrefix}-${t}`)),
      }),
    );
  }

  /** The event source mapping creates ENIs in the brokers' VPC with the function's role. */
  private grantVpcNetworking(): void {
    this.handler.function.addToRolePolicy(
      new iam.PolicyStatement({
        actions: [
          'ec2:CreateNetworkInterface',
          'ec2:DescribeNetworkInterfaces',
          'ec2:DeleteNetworkInterface',
          'ec2:DescribeVpcs',
          'ec2:DescribeSubnets',
          'ec2:DescribeSecurityGroups',
        ],
        resources: ['*'],
      }),
    );
  }
}

/**
 * An S3 on-failure destination granting only what Lambda documents for it (s3:PutObject and
 * s3:ListBucket); aws-cdk-lib's S3OnFailureDestination grants full read/write.
 */
class S3FailureDestination implements lambda.IEventSourceDlq {
  constructor(private readonly bucket: s3.IBucket) {}

  bind(_target: lambda.IEventSourceMapping, targetHandler: lambda.IFunction): lambda.DlqDestinationConfig {
    targetHandler.addToRolePolicy(new iam.PolicyStatement({ actions: ['s3:ListBucket'], resources: [this.bucket.bucketArn] }));
    targetHandler.addToRolePolicy(
      new iam.PolicyStatement({ actions: ['s3:PutObject'], resources: [this.bucket.arnForObjects('*')] }),
    );
    return { destination: this.bucket.bucketArn };
  }
}

/** The event source mapping `addEventSource` just created (event sources do not return it). */
function newMapping(fn: lambda.IFunction, before: Set<unknown>): lambda.IEventSourceMapping {
  const found = fn.node.children.find((c): c is lambda.EventSourceMapping => c instanceof lambda.EventSourceMapping && !before.has(c));
  if (!found) throw new Error('StreamConsumer: the event source added no mapping');
  return found;
}

/**
 * The ARNs MSK IAM access control names a cluster's topics and consumer groups by: for
 * `arn:aws:kafka:r:a:cluster/name/uuid`, `arn:aws:kafka:r:a:topic/name/uuid/<topic>` and
 * `arn:aws:kafka:r:a:group/name/uuid/<group>` (a trailing `*` matches a prefix).
 */
export function mskResourceArns(clusterArn: string): { topic: (name: string) => string; group: (name: string) => string } {
  const i = clusterArn.indexOf(':cluster/');
  if (i < 0) throw new Error(`not an MSK cluster ARN: ${clusterArn}`);
  const head = clusterArn.slice(0, i);
  const clusterPath = clusterArn.slice(i + ':cluster/'.length);
  return { topic: (name) => `${head}:topic/${clusterPath}/${name}`, group: (name) => `${head}:group/${clusterPath}/${name}` };
}

function selfManagedAuth(auth: KafkaAuth): sources.AuthenticationMethod | undefined {
  switch (auth) {
    case 'sasl-scram-512':
      return sources.AuthenticationMethod.SASL_SCRAM_512_AUTH;
    case 'sasl-scram-256':
      return sources.AuthenticationMethod.SASL_SCRAM_256_AUTH;
    case 'basic':
      return sources.AuthenticationMethod.BASIC_AUTH;
    default:
      return undefined;
  }
}
