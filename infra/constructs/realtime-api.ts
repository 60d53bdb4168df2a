import { Aws, Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as apigw from 'aws-cdk-lib/aws-apigateway';
import * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import { WebSocketLambdaAuthorizer } from 'aws-cdk-lib/aws-apigatewayv2-authorizers';
import { WebSocketLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import type { ISecret } from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { ENV } from '../../lambdas/config/env-names';
import type { HandlerName } from '../lambda-bundling';
import type { DataTables } from './data-tables';
import { ServiceFunction, type FunctionDefaults } from './service-function';

/** How the $connect authorizer verifies the `token` query parameter. */
export interface TokenVerification {
  /** `hs256` (shared secret in Secrets Manager) or `jwks` (ID tokens of an OpenID Connect issuer). */
  readonly mode: 'hs256' | 'jwks';
  /** The HS256 secret; required for `hs256`. */
  readonly secret?: ISecret;
  /** The issuer's JWKS URL. @default the `jwks_uri` of the issuer's discovery document */
  readonly jwksUrl?: string;
  /** Expected `iss` claim; required for `jwks`. @default not checked (hs256) */
  readonly issuer?: string;
  /** The client id `aud` must hold; required for `jwks`. @default not checked (hs256) */
  readonly audience?: string;
  /** The token claim listing a user's sites. @default `sites` */
  readonly sitesClaim?: string;
}

/** Properties of {@link RealtimeApi}. */
export interface RealtimeApiProps {
  /** The tables the route Lambdas use. */
  readonly tables: DataTables;
  /** Shared function settings. */
  readonly functionDefaults: FunctionDefaults;
  /** Token verification of the $connect authorizer. */
  readonly auth: TokenVerification;
  /** Stage name, the last path segment of the wss URL. @default 'live' */
  readonly stageName?: string;
  /** Stage-wide throttling. @default 500 requests/s, burst 1000 */
  readonly throttle?: apigwv2.ThrottleSettings;
  /**
   * Create the account-level role API Gateway needs to write WebSocket access logs and set it on
   * the account. It is one setting per account and region: this overwrites a role another stack
   * set, and is retained when the stack is deleted. Leave it off when the account has a role
   * (docs/deploy.md, "Before the first deploy").
   * @default false
   */
  readonly createAccountLogsRole?: boolean;
}

/**
 * The API Gateway WebSocket API: routes chosen by `$request.body.action`, a Lambda REQUEST
 * authorizer on $connect reading the `token` query parameter, one Lambda per route, and a stage
 * with access logs and throttling. Client routes answer through the route response.
 */
export class RealtimeApi extends Construct {
  /** The WebSocket API. */
  public readonly api: apigwv2.WebSocketApi;
  /** Its stage; `stage.url` is the wss URL, `stage.callbackUrl` the Management API endpoint. */
  public readonly stage: apigwv2.WebSocketStage;
  /** The $connect authorizer function. */
  public readonly authorizer: ServiceFunction;
  /** One function per route key (`$connect`, `$disconnect`, `$default`, `subscribe`, ...). */
  public readonly routeFunctions: Readonly<Record<string, ServiceFunction>>;
  /** The stage's access log group. */
  public readonly accessLogs: logs.LogGroup;

  constructor(scope: Construct, id: string, props: RealtimeApiProps) {
    super(scope, id);
    const { tables, functionDefaults: defaults } = props;
    const fn = (name: HandlerName, description: string, timeout?: Duration) =>
      // 'Default' is a reserved construct id (it vanishes from paths and logical ids).
      new ServiceFunction(this, name === 'default' ? 'DefaultRoute' : `${name[0]!.toUpperCase()}${name.slice(1)}`, {
        handler: name,
        description,
        defaults,
        timeout,
      });

    this.authorizer = fn('authorizer', 'WebSocket $connect authorizer: verifies the token query parameter');
    this.authorizer.setEnv(ENV.authMode, props.auth.mode);
    if (props.auth.mode === 'hs256') {
      if (!props.auth.secret) throw new Error('RealtimeApi: auth.secret is required for hs256');
      this.authorizer.linkSecret(ENV.jwtSecretArn, props.auth.secret);
    } else {
      if (!props.auth.issuer || !props.auth.audience) throw new Error('RealtimeApi: auth.issuer and auth.audience are required for jwks');
      if (props.auth.jwksUrl) this.authorizer.setEnv(ENV.jwksUrl, props.auth.jwksUrl);
    }
    if (props.auth.issuer) this.authorizer.setEnv(ENV.jwtIssuer, props.auth.issuer);
    if (props.auth.audience) this.authorizer.setEnv(ENV.jwtAudience, props.auth.audience);
    if (props.auth.sitesClaim) this.authorizer.setEnv(ENV.sitesClaim, props.auth.sitesClaim);

    // Each route gets the DynamoDB calls its adapters make, nothing more: connections are put by
    // $connect, read and updated by the message routes, deleted by $disconnect; subscription
    // index items and metric shards are only ever updated (ADD/REMOVE/SET) by these routes.
    const connect = fn('connect', 'WebSocket $connect: records the connection')
      .linkTable(ENV.connectionsTable, tables.connections, ['PutItem'])
      .linkTable(ENV.metricsTable, tables.metrics, ['UpdateItem']);
    const disconnect = fn('disconnect', 'WebSocket $disconnect: removes the connection and its subscriptions')
      .linkTable(ENV.connectionsTable, tables.connections, ['DeleteItem'])
      .linkTable(ENV.subscriptionsTable, tables.subscriptions, ['UpdateItem'])
      .linkTable(ENV.metricsTable, tables.metrics, ['UpdateItem']);
    // A resume waits for the replay reader (up to its 15 s timeout), then posts what it missed:
    // API Gateway stops waiting for the route at 29 s, the posts go on until the function's end.
    const subscribe = fn('subscribe', 'WebSocket subscribe route: stores a subscription filter', Duration.seconds(40));
    const unsubscribe = fn('unsubscribe', 'WebSocket unsubscribe route: removes a subscription');
    // Both run the one message handler, which answers whichever action arrives.
    for (const f of [subscribe, unsubscribe]) {
      f.linkTable(ENV.connectionsTable, tables.connections, ['GetItem', 'UpdateItem'])
        .linkTable(ENV.subscriptionsTable, tables.subscriptions, ['UpdateItem'])
        .linkTable(ENV.metricsTable, tables.metrics, ['UpdateItem']);
    }
    // The snapshot after `subscribed` reads the latest readings (the directory of locations, then
    // BatchGetItem) and queries the index of unresolved alerts.
    subscribe
      .linkTable(ENV.latestTable, tables.latest, ['GetItem', 'BatchGetItem'])
      .linkTable(ENV.alertsTable, tables.alerts, ['Query']);
    // ack reads the connection and the alert, updates the alert's state, and looks up who to tell;
    // like every route it takes from the connection's rate-limit bucket (a conditional UpdateItem).
    const ack = fn('ack', 'WebSocket ack route: acknowledges an alert and tells every operator who sees it')
      .linkTable(ENV.connectionsTable, tables.connections, ['GetItem', 'UpdateItem'])
      .linkTable(ENV.subscriptionsTable, tables.subscriptions, ['BatchGetItem'])
      .linkTable(ENV.alertsTable, tables.alerts, ['GetItem', 'UpdateItem'])
      .linkTable(ENV.metricsTable, tables.metrics, ['UpdateItem']);
    // ping and $default use the connections table only for the per-connection rate limit: a
    // conditional UpdateItem per message, and a GetItem when it refuses.
    const ping = fn('ping', 'WebSocket ping route: answers pong')
      .linkTable(ENV.connectionsTable, tables.connections, ['GetItem', 'UpdateItem'])
      .linkTable(ENV.metricsTable, tables.metrics, ['UpdateItem']);
    const fallback = fn('default', 'WebSocket $default route: answers unknown actions with an error frame')
      .linkTable(ENV.connectionsTable, tables.connections, ['GetItem', 'UpdateItem'])
      .linkTable(ENV.metricsTable, tables.metrics, ['UpdateItem']);
    this.routeFunctions = {
      $connect: connect,
      $disconnect: disconnect,
      $default: fallback,
      subscribe,
      unsubscribe,
      ping,
      ack,
    };

    const integration = (name: string, f: ServiceFunction) => new WebSocketLambdaIntegration(`${name}Integration`, f.function);
    this.api = new apigwv2.WebSocketApi(this, 'Api', {
      description: 'Real-time IoT dashboard: subscriptions and live pushes',
      routeSelectionExpression: '$request.body.action',
      connectRouteOptions: {
        integration: integration('Connect', connect),
        authorizer: new WebSocketLambdaAuthorizer('TokenAuthorizer', this.authorizer.function, {
          // Without a token API Gateway rejects the handshake with 401 before any Lambda runs.
          identitySource: ['route.request.querystring.token'],
        }),
      },
      disconnectRouteOptions: { integration: integration('Disconnect', disconnect) },
      defaultRouteOptions: { integration: integration('Default', fallback), returnResponse: true },
    });
    this.api.addRoute('subscribe', { integration: integration('Subscribe', subscribe), returnResponse: true });
    this.api.addRoute('unsubscribe', { integration: integration('Unsubscribe', unsubscribe), returnResponse: true });
    this.api.addRoute('ping', { integration: integration('Ping', ping), returnResponse: true });
    this.api.addRoute('ack', { integration: integration('Ack', ack), returnResponse: true });

    this.accessLogs = new logs.LogGroup(this, 'AccessLogs', {
      retention: defaults.logRetention,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.stage = new apigwv2.WebSocketStage(this, 'Stage', {
      webSocketApi: this.api,
      stageName: props.stageName ?? 'live',
      autoDeploy: true,
      throttle: props.throttle ?? { rateLimit: 500, burstLimit: 1000 },
      accessLogSettings: {
        destination: new apigwv2.LogGroupLogDestination(this.accessLogs),
        format: apigw.AccessLogFormat.custom(
          JSON.stringify({
            requestId: '$context.requestId',
            time: '$context.requestTimeEpoch',
            routeKey: '$context.routeKey',
            eventType: '$context.eventType',
            connectionId: '$context.connectionId',
            status: '$context.status',
            error: '$context.error.message',
            authorizerError: '$context.authorizer.error',
            integrationError: '$context.integration.error',
            latency: '$context.integrationLatency',
            ip: '$context.identity.sourceIp',
          }),
        ),
      },
    });

    // subscribe posts `subscribed` and the snapshot after it; ack posts `alert_state` frames.
    for (const f of [subscribe, ack]) {
      f.setEnv(ENV.callbackUrl, this.stage.callbackUrl);
      this.grantManageConnections(f, ['POST']);
    }

    if (props.createAccountLogsRole ?? false) {
      // WebSocket (unlike HTTP) APIs write access logs through this account-wide role.
      const role = new iam.Role(this, 'ApiGatewayLogsRole', {
        assumedBy: new iam.ServicePrincipal('apigateway.amazonaws.com'),
        managedPolicies: [iam.ManagedPolicy.fromAwsManagedPolicyName('service-role/AmazonAPIGatewayPushToCloudWatchLogs')],
      });
      role.applyRemovalPolicy(RemovalPolicy.RETAIN);
      const account = new apigw.CfnAccount(this, 'ApiGatewayAccount', { cloudWatchRoleArn: role.roleArn });
      account.applyRemovalPolicy(RemovalPolicy.RETAIN);
      this.stage.node.addDependency(account);
    }
  }

  /** The wss URL clients connect to: `wss://{api}.execute-api.{region}.amazonaws.com/{stage}`. */
  public get url(): string {
    return this.stage.url;
  }

  /** The Management API endpoint of the stage, for WS_CALLBACK_URL. */
  public get callbackUrl(): string {
    return this.stage.callbackUrl;
  }

  /**
   * Allows `fn` to call the Management API on this stage only, for the given HTTP methods
   * (POST to push, GET to read a connection, DELETE to close one).
   */
  public grantManageConnections(fn: ServiceFunction, methods: ReadonlyArray<'POST' | 'GET' | 'DELETE'>): void {
    fn.function.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['execute-api:ManageConnections'],
        // Pseudo parameters rather than the stack's literal region/account keep this ARN (and the
        // cdk-nag finding naming it, see infra/nag.ts) the same in every environment.
        resources: methods.map((m) => this.connectionsArn(m)),
      }),
    );
  }

  /** `arn:{partition}:execute-api:{region}:{account}:{apiId}/{stage}/{method}/@connections/*`. */
  public connectionsArn(method: 'POST' | 'GET' | 'DELETE'): string {
    return `arn:${Aws.PARTITION}:execute-api:${Aws.REGION}:${Aws.ACCOUNT_ID}:${this.api.apiId}/${this.stage.stageName}/${method}/@connections/*`;
  }
}
