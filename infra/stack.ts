import { Annotations, CfnOutput, Duration, Lazy, Stack, Tags, Token, type StackProps } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import type { Construct } from 'constructs';
import { ConfigError } from '../lambdas/core/errors';
import { PLACEHOLDER_MSK_CLUSTER_ARN, type DeployConfig } from './config';
import { OperationalAlarms } from './constructs/alarms';
import { DashboardSite } from './constructs/dashboard-site';
import { DataTables } from './constructs/data-tables';
import { DashboardIdentity } from './constructs/identity';
import { OpsApi } from './constructs/ops-api';
import { RealtimeApi, type TokenVerification } from './constructs/realtime-api';
import { ReplayReader } from './constructs/replay-reader';
import type { FunctionDefaults } from './constructs/service-function';
import { StreamConsumer } from './constructs/stream-consumer';
import { applyNagSuppressions } from './nag';

/** Properties of {@link IotDashboardStack}. */
export interface IotDashboardStackProps extends StackProps {
  /** Every deployment setting, usually from `readConfig` (infra/config.ts). */
  readonly config: DeployConfig;
}

/**
 * The whole product in one stack: tables, the WebSocket API and its Lambdas, the Kafka consumer,
 * the metrics/health HTTP API, the dashboard on CloudFront and the alarms. It only wires the
 * constructs together; each concern lives in its construct.
 */
export class IotDashboardStack extends Stack {
  /** The DynamoDB tables. */
  public readonly tables: DataTables;
  /** The WebSocket API. */
  public readonly realtime: RealtimeApi;
  /** The Kafka consumer. */
  public readonly stream: StreamConsumer;
  /** The function the subscribe route reads a resume's missed records through, when the stack knows how to reach the brokers. */
  public readonly replay?: ReplayReader;
  /** GET /metrics and GET /health. */
  public readonly ops: OpsApi;
  /** The dashboard site. */
  public readonly site: DashboardSite;
  /** The alarms. */
  public readonly alarms: OperationalAlarms;
  /** The user pool and the dashboard's app client, when `authMode` is `cognito`. */
  public readonly identity?: DashboardIdentity;
  /** The HS256 secret of the authorizer, when `authMode` is `hs256`. */
  public readonly jwtSecret?: secretsmanager.ISecret;
  /** The bearer token secret of GET /metrics. */
  public readonly metricsTokenSecret: secretsmanager.ISecret;

  constructor(scope: Construct, id: string, props: IotDashboardStackProps) {
    super(scope, id, props);
    const config = props.config;
    const functionDefaults: FunctionDefaults = {
      serviceName: config.serviceName,
      metricsNamespace: config.metricsNamespace,
      logLevel: config.logLevel,
      logRetention: retentionDays(config.logRetentionDays),
      reservedConcurrency: config.reservedConcurrency,
    };
    // Cost allocation and ownership: every taggable resource of the stack carries these.
    Tags.of(this).add('Application', config.serviceName);
    Tags.of(this).add('Stack', this.stackName);
    for (const [key, value] of Object.entries(config.tags)) Tags.of(this).add(key, value);

    if (config.authMode === 'hs256') {
      this.jwtSecret = config.jwtSecretArn
        ? secretsmanager.Secret.fromSecretCompleteArn(this, 'JwtSecret', config.jwtSecretArn)
        : new secretsmanager.Secret(this, 'JwtSecret', {
            description: 'HS256 key the WebSocket authorizer verifies tokens with (the raw SecretString is the key)',
            generateSecretString: { passwordLength: 64, excludePunctuation: true },
          });
    }
    this.metricsTokenSecret = config.metricsTokenSecretArn
      ? secretsmanager.Secret.fromSecretCompleteArn(this, 'MetricsTokenSecret', config.metricsTokenSecretArn)
      : new secretsmanager.Secret(this, 'MetricsTokenSecret', {
          description: 'Bearer token GET /metrics requires (the raw SecretString is the token)',
          generateSecretString: { passwordLength: 48, excludePunctuation: true },
        });

    // Sign-in: the page's settings (config.json `auth`) and the authorizer's, from one source.
    let verification: TokenVerification;
    let signIn: { issuer: string; clientId: string; scopes: string[]; sitesClaim?: string } | undefined;
    const signInOrigins: string[] = [];
    const sitesClaim = config.sitesClaim === 'sites' ? undefined : config.sitesClaim;
    if (config.authMode === 'cognito') {
      // The app client's callback is the CloudFront URL, which exists only once the site does.
      this.identity = new DashboardIdentity(this, 'Identity', {
        dashboardUrl: Lazy.string({ produce: () => `${this.site.url}/` }),
        domainPrefix: config.cognitoDomainPrefix,
      });
      const { issuer, jwksUrl, client } = this.identity;
      verification = { mode: 'jwks', issuer, audience: client.userPoolClientId, jwksUrl, sitesClaim: config.sitesClaim };
      signIn = { issuer, clientId: client.userPoolClientId, scopes: DashboardIdentity.SCOPES, sitesClaim };
      // Discovery on cognito-idp, the token endpoint on the managed login domain.
      signInOrigins.push(`https://cognito-idp.${this.region}.${this.urlSuffix}`, this.identity.loginOrigin);
    } else if (config.authMode === 'jwks') {
      const issuer = config.jwtIssuer!;
      verification = { mode: 'jwks', issuer, audience: config.jwtAudience, jwksUrl: config.jwksUrl, sitesClaim: config.sitesClaim };
      signIn = { issuer, clientId: config.jwtAudience!, scopes: config.oidcScopes, sitesClaim };
      signInOrigins.push(new URL(issuer).origin);
    } else {
      verification = { mode: 'hs256', secret: this.jwtSecret, issuer: config.jwtIssuer, audience: config.jwtAudience, sitesClaim: config.sitesClaim };
    }

    this.tables = new DataTables(this, 'Tables');
    this.realtime = new RealtimeApi(this, 'Realtime', {
      tables: this.tables,
      functionDefaults,
      stageName: config.stageName,
      throttle: config.wsThrottle,
      createAccountLogsRole: config.apiGatewayLogsRole,
      auth: verification,
    });

    if (config.kafkaSource === 'msk') this.checkMskCluster(config.mskClusterArn);
    this.stream = new StreamConsumer(this, 'Stream', {
      tables: this.tables,
      realtimeApi: this.realtime,
      functionDefaults,
      source:
        config.kafkaSource === 'msk'
          ? { kind: 'msk', clusterArn: config.mskClusterArn }
          : { kind: 'self-managed', bootstrapServers: config.kafkaBootstrapServers, vpc: config.kafkaVpc },
      auth: config.kafkaAuth,
      secretArn: config.kafkaSecretArn,
      secretKmsKeyArn: config.kafkaSecretKmsKeyArn,
      topics: config.kafkaTopics,
      consumerGroupPrefix: config.kafkaConsumerGroupPrefix,
      batchSize: config.kafkaBatchSize,
      batchingWindow: Duration.seconds(config.kafkaBatchingWindowSeconds),
      startingPosition: config.kafkaStartingPosition,
      failureDestination: config.failureDestination,
      postConcurrency: config.postConcurrency,
      postQuota: config.postQuota,
      postQuotaShares: config.postQuotaShares,
    });

    if (config.replayReader) {
      this.replay = new ReplayReader(this, 'Replay', {
        functionDefaults,
        source: this.stream.source,
        bootstrapServers: config.replayReader.bootstrapServers,
        vpc: config.replayReader.vpc,
        auth: config.kafkaAuth,
        secretArn: config.kafkaSecretArn,
        secretKmsKeyArn: config.kafkaSecretKmsKeyArn,
        topics: config.kafkaTopics,
        clientId: `${config.kafkaConsumerGroupPrefix}-replay`,
      });
      this.replay.linkTo(this.realtime.routeFunctions.subscribe!);
    } else if (config.kafkaReplay === 'auto') {
      Annotations.of(this).addWarningV2(
        'iot-dashboard:no-replay-reader',
        `No replay reader: ${config.replayReaderMissing}. Until then a dashboard that reconnects gets the snapshot, not what it missed.`,
      );
    }

    this.ops = new OpsApi(this, 'Ops', {
      tables: this.tables,
      realtimeApi: this.realtime,
      metricsTokenSecret: this.metricsTokenSecret,
      functionDefaults,
      throttle: config.httpThrottle,
      healthThrottle: config.healthThrottle,
    });

    this.site = new DashboardSite(this, 'Dashboard', {
      assetPath: config.dashboardAssetPath,
      wsUrl: this.realtime.url,
      auth: signIn,
      connectOrigins: [
        `wss://${this.realtime.api.apiId}.execute-api.${this.region}.${this.urlSuffix}`,
        // After a failed handshake the page asks the same host over https whether it is up (refused vs network).
        `https://${this.realtime.api.apiId}.execute-api.${this.region}.${this.urlSuffix}`,
        this.ops.api.apiEndpoint,
        ...signInOrigins,
      ],
    });

    this.alarms = new OperationalAlarms(this, 'Alarms', {
      streamFunction: this.stream.handler.function,
      replayFunction: this.replay && { function: this.replay.handler.function, timeout: this.replay.timeout },
      authorizerFunction: this.realtime.authorizer.function,
      routeFunctions: [...Object.values(this.realtime.routeFunctions), this.ops.metricsFunction, this.ops.healthFunction].map(
        (f) => f.function,
      ),
      webSocketApi: { api: this.realtime.api, stageName: this.realtime.stage.stageName },
      httpApi: this.ops.api,
      failureQueue: this.stream.failureQueue,
      // Every table of the stack, including ones other constructs add to DataTables later.
      tables: this.tables.node.children.filter((c): c is dynamodb.TableV2 => c instanceof dynamodb.TableV2),
      metricsNamespace: config.metricsNamespace,
      serviceName: config.serviceName,
      offsetLagThreshold: config.offsetLagThreshold,
      staleConnectionsThreshold: config.staleConnectionsThreshold,
      streamIdleMinutes: config.streamIdleMinutes,
      okActions: config.alarmOkActions,
      email: config.alarmEmail,
    });

    new CfnOutput(this, 'WebSocketUrl', { value: this.realtime.url, description: 'wss URL of the WebSocket API stage' });
    new CfnOutput(this, 'DashboardUrl', { value: this.site.url, description: 'The dashboard on CloudFront' });
    new CfnOutput(this, 'MetricsUrl', { value: this.ops.metricsUrl, description: 'Prometheus metrics (bearer token)' });
    new CfnOutput(this, 'HealthUrl', { value: this.ops.healthUrl, description: 'Health of each dependency' });
    new CfnOutput(this, 'MetricsTokenSecretArn', {
      value: this.metricsTokenSecret.secretArn,
      description: 'Secret holding the /metrics bearer token',
    });
    if (this.identity) {
      new CfnOutput(this, 'UserPoolId', { value: this.identity.userPool.userPoolId, description: 'Cognito user pool of the operators (docs/deploy.md: add a user)' });
      new CfnOutput(this, 'SignInUrl', { value: this.identity.loginOrigin, description: 'Managed login domain of the dashboard' });
    }
    if (this.jwtSecret) {
      new CfnOutput(this, 'JwtSecretArn', { value: this.jwtSecret.secretArn, description: 'Secret holding the HS256 token key' });
    }
    new CfnOutput(this, 'FailedBatchesDestination', {
      value: this.stream.failureQueue?.queueUrl ?? `s3://${this.stream.failureBucket!.bucketName}`,
      description: 'Where the stream Lambda sends metadata of batches it could not process',
    });

    new CfnOutput(this, 'OperationsDashboard', {
      value: `https://console.aws.amazon.com/cloudwatch/home?region=${this.region}#dashboards:name=${this.alarms.dashboard.dashboardName}`,
      description: 'CloudWatch dashboard of the alarms and their metrics',
    });

    applyNagSuppressions(this);
  }

  /**
   * The placeholder cluster ARN of cdk.json lets an env-agnostic synth run with no account, and
   * only warns there. A synth for a concrete account is a deploy about to happen: with the
   * placeholder (or a cluster in another region) CloudFormation would create every other resource
   * and then fail at the event source mapping, so it fails now, saying what to pass.
   */
  private checkMskCluster(clusterArn: string): void {
    const concrete = !Token.isUnresolved(this.account) && !Token.isUnresolved(this.region);
    if (clusterArn === PLACEHOLDER_MSK_CLUSTER_ARN) {
      if (concrete) {
        throw new ConfigError(
          `mskClusterArn is still the placeholder from cdk.json, and this synth targets account ${this.account} in ` +
            `${this.region}: a deploy would fail at the Kafka event source mapping. Pass ` +
            `-c mskClusterArn=arn:aws:kafka:${this.region}:<account>:cluster/<name>/<uuid> ` +
            `(aws kafka list-clusters-v2 --region ${this.region} --query 'ClusterInfoList[].ClusterArn'), ` +
            'or -c kafkaSource=self-managed with kafkaBootstrapServers.',
        );
      }
      Annotations.of(this).addWarningV2(
        'iot-dashboard:placeholder-msk-cluster',
        'mskClusterArn is the placeholder from cdk.json: synth works, deploy will not. Pass -c mskClusterArn=<your cluster ARN>.',
      );
      return;
    }
    const clusterRegion = clusterArn.split(':')[3];
    if (concrete && clusterRegion !== this.region) {
      throw new ConfigError(
        `mskClusterArn names a cluster in ${clusterRegion}, but the stack deploys to ${this.region}; an MSK event ` +
          'source mapping reads a cluster in its own region. Deploy to the cluster\'s region (AWS_REGION) or pass its ARN there.',
      );
    }
  }
}

/** Maps a day count to the nearest CloudWatch Logs retention that is not shorter. */
export function retentionDays(days: number): logs.RetentionDays {
  const allowed = Object.values(logs.RetentionDays)
    .filter((v): v is number => typeof v === 'number' && v > 0)
    .sort((a, b) => a - b);
  const pick = allowed.find((v) => v >= days) ?? allowed[allowed.length - 1]!;
  return pick as logs.RetentionDays;
}
