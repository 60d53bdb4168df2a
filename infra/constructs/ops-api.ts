import { RemovalPolicy } from 'aws-cdk-lib';
import * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import * as logs from 'aws-cdk-lib/aws-logs';
import type { ISecret } from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { ENV } from '../../lambdas/config/env-names';
import type { DataTables } from './data-tables';
import type { RealtimeApi } from './realtime-api';
import { ServiceFunction, type FunctionDefaults } from './service-function';

/** Properties of {@link OpsApi}. */
export interface OpsApiProps {
  /** The tables /metrics and /health read. */
  readonly tables: DataTables;
  /** The WebSocket API /health reports on. */
  readonly realtimeApi: RealtimeApi;
  /** The secret holding the bearer token GET /metrics requires. */
  readonly metricsTokenSecret: ISecret;
  /** Shared function settings. */
  readonly functionDefaults: FunctionDefaults;
  /** Throttling of GET /metrics (the stage default). @default 20 requests/s, burst 40 */
  readonly throttle?: apigwv2.ThrottleSettings;
  /**
   * Throttling of GET /health, a route of its own: uptime checks polling the public /health
   * must not use up the budget a Prometheus scrape of /metrics needs. @default 5 requests/s, burst 10
   */
  readonly healthThrottle?: apigwv2.ThrottleSettings;
}

/**
 * A small HTTP API: GET /metrics (Prometheus text, bearer token checked by the Lambda) and
 * GET /health (JSON state of each dependency), with access logs and throttling.
 */
export class OpsApi extends Construct {
  /** The HTTP API. */
  public readonly api: apigwv2.HttpApi;
  /** Its `$default` stage. */
  public readonly stage: apigwv2.HttpStage;
  /** GET /metrics. */
  public readonly metricsFunction: ServiceFunction;
  /** GET /health. */
  public readonly healthFunction: ServiceFunction;
  /** The stage's access log group. */
  public readonly accessLogs: logs.LogGroup;

  constructor(scope: Construct, id: string, props: OpsApiProps) {
    super(scope, id);
    const { tables } = props;
    this.metricsFunction = new ServiceFunction(this, 'Metrics', {
      handler: 'metrics',
      description: 'GET /metrics: Prometheus text exposition of the aggregated metrics',
      defaults: props.functionDefaults,
    })
      .linkTable(ENV.metricsTable, tables.metrics, ['Query'])
      .linkSecret(ENV.metricsTokenSecretArn, props.metricsTokenSecret);

    this.healthFunction = new ServiceFunction(this, 'Health', {
      handler: 'health',
      description: 'GET /health: state of each dependency',
      defaults: props.functionDefaults,
    })
      // One GetItem of a key that does not exist proves the table answers and the role may read it.
      .linkTable(ENV.connectionsTable, tables.connections, ['GetItem'])
      .setEnv(ENV.callbackUrl, props.realtimeApi.callbackUrl);
    // The health check asks the Management API about a connection id that does not exist.
    props.realtimeApi.grantManageConnections(this.healthFunction, ['GET']);

    this.api = new apigwv2.HttpApi(this, 'Api', {
      description: 'Real-time IoT dashboard: metrics and health',
      createDefaultStage: false,
    });
    this.api.addRoutes({
      path: '/metrics',
      methods: [apigwv2.HttpMethod.GET],
      integration: new HttpLambdaIntegration('MetricsIntegration', this.metricsFunction.function),
    });
    const [healthRoute] = this.api.addRoutes({
      path: '/health',
      methods: [apigwv2.HttpMethod.GET],
      integration: new HttpLambdaIntegration('HealthIntegration', this.healthFunction.function),
    });

    this.accessLogs = new logs.LogGroup(this, 'AccessLogs', {
      retention: props.functionDefaults.logRetention,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.stage = new apigwv2.HttpStage(this, 'Stage', {
      httpApi: this.api,
      stageName: '$default',
      autoDeploy: true,
      throttle: props.throttle ?? { rateLimit: 20, burstLimit: 40 },
      accessLogSettings: {
        destination: new apigwv2.LogGroupLogDestination(this.accessLogs),
      },
    });
    // HttpStage has no per-route settings; the CloudFormation stage does (RouteSettings by route key).
    const health = props.healthThrottle ?? { rateLimit: 5, burstLimit: 10 };
    (this.stage.node.defaultChild as apigwv2.CfnStage).addPropertyOverride('RouteSettings', {
      'GET /health': { ThrottlingRateLimit: health.rateLimit, ThrottlingBurstLimit: health.burstLimit },
    });
    // API Gateway rejects settings for a route key that does not exist yet.
    this.stage.node.addDependency(healthRoute!);
  }

  /** `https://{api}.execute-api.{region}.amazonaws.com/metrics`. */
  public get metricsUrl(): string {
    return `${this.api.apiEndpoint}/metrics`;
  }

  /** `https://{api}.execute-api.{region}.amazonaws.com/health`. */
  public get healthUrl(): string {
    return `${this.api.apiEndpoint}/health`;
  }
}
