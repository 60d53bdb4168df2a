import * as fs from 'node:fs';
import * as path from 'node:path';
import { App, Stack } from 'aws-cdk-lib';
import { Match } from 'aws-cdk-lib/assertions';
import { accountUniqueName } from '../../infra/names';
import { ENV } from '../../lambdas/config/env-names';
import { ConfigError } from '../../lambdas/core/errors';
import { PLACEHOLDER_MSK_CLUSTER_ARN } from '../../infra/config';
import { FUNCTIONS, REPLAY_CONTEXT, REPLAY_FUNCTION, REPO_ROOT, TEST_MSK_CLUSTER_ARN, buildStack } from './stack-fixture';

const { template } = buildStack();
const resources = template.toJSON().Resources as Record<string, { Type: string; Properties: any }>;

/** Logical id of the only resource of `type` whose logical id starts with `prefix`. */
function idOf(type: string, prefix: string): string {
  const ids = Object.keys(template.findResources(type)).filter((id) => id.startsWith(prefix));
  expect(ids).toHaveLength(1);
  return ids[0]!;
}
const fnId = (prefix: string) => idOf('AWS::Lambda::Function', prefix);
const roleOf = (functionId: string) => resources[functionId]!.Properties.Role['Fn::GetAtt'][0] as string;

/** Every statement of the inline policies attached to a role. */
function statementsOf(roleId: string): Array<{ Action: string | string[]; Resource: unknown; Effect: string }> {
  return Object.values(template.findResources('AWS::IAM::Policy'))
    .filter((p: any) => p.Properties.Roles.some((r: any) => r.Ref === roleId))
    .flatMap((p: any) => p.Properties.PolicyDocument.Statement);
}
const actionsOf = (roleId: string) => statementsOf(roleId).flatMap((s) => [s.Action].flat());


describe('WebSocket API', () => {
  it('selects routes by $request.body.action', () => {
    template.hasResourceProperties('AWS::ApiGatewayV2::Api', {
      ProtocolType: 'WEBSOCKET',
      RouteSelectionExpression: '$request.body.action',
    });
  });

  it.each([
    ['$connect', FUNCTIONS.connect, false],
    ['$disconnect', FUNCTIONS.disconnect, false],
    ['$default', FUNCTIONS.default, true],
    ['subscribe', FUNCTIONS.subscribe, true],
    ['unsubscribe', FUNCTIONS.unsubscribe, true],
    ['ping', FUNCTIONS.ping, true],
  ])('routes %s to its own Lambda (two-way: %s)', (routeKey, functionPrefix, twoWay) => {
    const [routeId, route] = Object.entries(template.findResources('AWS::ApiGatewayV2::Route', { Properties: { RouteKey: routeKey } }))[0]!;
    const integrationId = route.Properties.Target['Fn::Join'][1][1].Ref as string;
    const integration = resources[integrationId]!.Properties;
    expect(integration.IntegrationType).toBe('AWS_PROXY');
    expect(JSON.stringify(integration.IntegrationUri)).toContain(`"${fnId(functionPrefix)}"`);
    if (twoWay) {
      expect(route.Properties.RouteResponseSelectionExpression).toBe('$default');
      template.hasResourceProperties('AWS::ApiGatewayV2::RouteResponse', {
        RouteId: { Ref: routeId },
        RouteResponseKey: '$default',
      });
    } else {
      expect(route.Properties.RouteResponseSelectionExpression).toBeUndefined();
    }
  });

  it('authorizes $connect with a REQUEST Lambda authorizer on the token query parameter', () => {
    const authorizerId = idOf('AWS::ApiGatewayV2::Authorizer', 'RealtimeApiTokenAuthorizer');
    template.hasResourceProperties('AWS::ApiGatewayV2::Authorizer', {
      AuthorizerType: 'REQUEST',
      IdentitySource: ['route.request.querystring.token'],
    });
    expect(JSON.stringify(resources[authorizerId]!.Properties.AuthorizerUri)).toContain(fnId(FUNCTIONS.authorizer));
    template.hasResourceProperties('AWS::ApiGatewayV2::Route', {
      RouteKey: '$connect',
      AuthorizationType: 'CUSTOM',
      AuthorizerId: { Ref: authorizerId },
    });
  });

  it('deploys a throttled, access-logged stage named from context', () => {
    template.hasResourceProperties('AWS::ApiGatewayV2::Stage', {
      ApiId: { Ref: idOf('AWS::ApiGatewayV2::Api', 'RealtimeApi') },
      StageName: 'live',
      AutoDeploy: true,
      DefaultRouteSettings: { ThrottlingRateLimit: 500, ThrottlingBurstLimit: 1000 },
      AccessLogSettings: { DestinationArn: Match.anyValue(), Format: Match.stringLikeRegexp('connectionId') },
    });
  });

  it('leaves the account-wide API Gateway logging role alone unless asked', () => {
    template.resourceCountIs('AWS::ApiGateway::Account', 0);
    const withRole = buildStack({ apiGatewayLogsRole: true }).template;
    withRole.resourceCountIs('AWS::ApiGateway::Account', 1);
    withRole.hasResource('AWS::ApiGateway::Account', { DeletionPolicy: 'Retain' });
  });

  it('checks ID tokens of the stack\'s user pool for its dashboard client, and creates no HS256 secret', () => {
    const env = resources[fnId(FUNCTIONS.authorizer)]!.Properties.Environment.Variables;
    expect(env[ENV.authMode]).toBe('jwks');
    expect(env[ENV.jwtIssuer]).toEqual({ 'Fn::GetAtt': [idOf('AWS::Cognito::UserPool', 'IdentityUsers'), 'ProviderURL'] });
    expect(env[ENV.jwtAudience]).toEqual({ Ref: idOf('AWS::Cognito::UserPoolClient', 'IdentityUsersDashboard') });
    expect(env[ENV.sitesClaim]).toBe('custom:sites');
    expect(env[ENV.jwtSecretArn]).toBeUndefined();
    template.resourceCountIs('AWS::SecretsManager::Secret', 1);
  });
});

describe('Lambdas', () => {
  it.each(Object.entries(FUNCTIONS))('%s runs on Node.js 22, arm64, with Powertools settings', (_name, prefix) => {
    const props = resources[fnId(prefix)]!.Properties;
    expect(props.Runtime).toBe('nodejs22.x');
    expect(props.Architectures).toEqual(['arm64']);
    expect(props.Handler).toBe('index.handler');
    expect(props.Environment.Variables).toMatchObject({
      POWERTOOLS_SERVICE_NAME: 'iot-live-dashboard',
      POWERTOOLS_METRICS_NAMESPACE: 'IotLiveDashboard',
      LOG_LEVEL: 'INFO',
    });
    expect(props.LoggingConfig).toMatchObject({ LogFormat: 'JSON', ApplicationLogLevel: 'INFO' });
  });

  it('lets DEBUG lines through Lambda\'s own log filter when logLevel is DEBUG', () => {
    const t = buildStack({ logLevel: 'DEBUG' }).template;
    const fn = Object.entries(t.findResources('AWS::Lambda::Function')).find(([id]) => id.startsWith(FUNCTIONS.stream))![1] as any;
    expect(fn.Properties.Environment.Variables.LOG_LEVEL).toBe('DEBUG');
    expect(fn.Properties.LoggingConfig.ApplicationLogLevel).toBe('DEBUG');
  });

  const tableEnv = [ENV.connectionsTable, ENV.subscriptionsTable, ENV.metricsTable];
  it.each([
    [FUNCTIONS.connect, [ENV.connectionsTable, ENV.metricsTable]],
    [FUNCTIONS.disconnect, tableEnv],
    [FUNCTIONS.subscribe, [...tableEnv, ENV.alertsTable, ENV.latestTable, ENV.callbackUrl]],
    [FUNCTIONS.ack, [ENV.connectionsTable, ENV.subscriptionsTable, ENV.alertsTable, ENV.metricsTable, ENV.callbackUrl]],
    [FUNCTIONS.unsubscribe, tableEnv],
    // The connections table for the per-connection rate limit.
    [FUNCTIONS.ping, [ENV.connectionsTable, ENV.metricsTable]],
    [FUNCTIONS.default, [ENV.connectionsTable, ENV.metricsTable]],
    [FUNCTIONS.stream, [...tableEnv, ENV.alertsTable, ENV.latestTable, ENV.callbackUrl, ENV.postConcurrency, ENV.postQuota, ENV.postQuotaShares]],
    [FUNCTIONS.metrics, [ENV.metricsTable, ENV.metricsTokenSecretArn]],
    [FUNCTIONS.health, [ENV.connectionsTable, ENV.callbackUrl]],
    [FUNCTIONS.authorizer, [ENV.authMode, ENV.jwksUrl, ENV.jwtIssuer, ENV.jwtAudience, ENV.sitesClaim]],
  ])('%s gets exactly its environment variables', (prefix, expected) => {
    const vars = Object.keys(resources[fnId(prefix)]!.Properties.Environment.Variables).filter(
      (k) => !k.startsWith('POWERTOOLS_') && k !== 'LOG_LEVEL' && k !== 'NODE_OPTIONS',
    );
    expect(vars.sort()).toEqual([...expected].sort());
  });

  it('points the stream and health Lambdas at the stage callback URL', () => {
    for (const prefix of [FUNCTIONS.stream, FUNCTIONS.health]) {
      const url = JSON.stringify(resources[fnId(prefix)]!.Properties.Environment.Variables[ENV.callbackUrl]);
      expect(url).toContain('https://');
      expect(url).toContain('.execute-api.');
      expect(url).toContain(`{"Ref":"${idOf('AWS::ApiGatewayV2::Api', 'RealtimeApi')}"}`);
      expect(url).toMatch(/"\/live"\]\]\}$/);
    }
  });
});

describe('least privilege', () => {
  /** DynamoDB actions of a role, by table logical-id prefix. */
  function dynamoActions(roleId: string): Record<string, string[]> {
    const out: Record<string, string[]> = {};
    for (const s of statementsOf(roleId)) {
      const actions = [s.Action].flat().filter((a) => a.startsWith('dynamodb:'));
      if (!actions.length) continue;
      const text = JSON.stringify(s.Resource);
      for (const table of ['TablesConnections', 'TablesSubscriptions', 'TablesMetrics', 'TablesAlerts', 'TablesLatest'].filter((t) => text.includes(t))) {
        out[table] = [...new Set([...(out[table] ?? []), ...actions.map((a) => a.slice('dynamodb:'.length))])].sort();
      }
    }
    return out;
  }
  const messageRoute = {
    TablesConnections: ['GetItem', 'UpdateItem'],
    TablesSubscriptions: ['UpdateItem'],
    TablesMetrics: ['UpdateItem'],
  };

  it.each([
    [FUNCTIONS.connect, { TablesConnections: ['PutItem'], TablesMetrics: ['UpdateItem'] }],
    [FUNCTIONS.disconnect, { TablesConnections: ['DeleteItem'], TablesSubscriptions: ['UpdateItem'], TablesMetrics: ['UpdateItem'] }],
    [FUNCTIONS.subscribe, { ...messageRoute, TablesLatest: ['BatchGetItem', 'GetItem'], TablesAlerts: ['Query'] }],
    [FUNCTIONS.unsubscribe, messageRoute],
    // The rate limit: a conditional UpdateItem per message, a GetItem when it refuses.
    [FUNCTIONS.ping, { TablesConnections: ['GetItem', 'UpdateItem'], TablesMetrics: ['UpdateItem'] }],
    [
      FUNCTIONS.ack,
      { TablesConnections: ['GetItem', 'UpdateItem'], TablesSubscriptions: ['BatchGetItem'], TablesAlerts: ['GetItem', 'UpdateItem'], TablesMetrics: ['UpdateItem'] },
    ],
    [FUNCTIONS.default, { TablesConnections: ['GetItem', 'UpdateItem'], TablesMetrics: ['UpdateItem'] }],
    [
      FUNCTIONS.stream,
      {
        TablesConnections: ['DeleteItem', 'GetItem'],
        TablesSubscriptions: ['BatchGetItem', 'UpdateItem'],
        TablesMetrics: ['Query', 'UpdateItem'],
        TablesAlerts: ['PutItem', 'Query', 'UpdateItem'],
        TablesLatest: ['PutItem', 'UpdateItem'],
      },
    ],
    [FUNCTIONS.metrics, { TablesMetrics: ['Query'] }],
    [FUNCTIONS.health, { TablesConnections: ['GetItem'] }],
    [FUNCTIONS.authorizer, {}],
  ])('%s holds exactly the DynamoDB actions it calls, on the tables it uses', (prefix, expected) => {
    expect(dynamoActions(roleOf(fnId(prefix)))).toEqual(expected);
  });

  it('grants no function Scan, batch writes or table-wide reads', () => {
    for (const prefix of Object.values(FUNCTIONS)) {
      const actions = actionsOf(roleOf(fnId(prefix)));
      for (const banned of ['dynamodb:Scan', 'dynamodb:BatchWriteItem', 'dynamodb:GetRecords', 'dynamodb:DescribeTable']) {
        expect(actions).not.toContain(banned);
      }
    }
  });

  it('allows execute-api:ManageConnections only on this API stage, per method, for stream, subscribe, ack and health', () => {
    const apiId = idOf('AWS::ApiGatewayV2::Api', 'RealtimeApi');
    const managers: Record<string, string[]> = {};
    for (const [name, prefix] of Object.entries(FUNCTIONS)) {
      for (const s of statementsOf(roleOf(fnId(prefix)))) {
        if (![s.Action].flat().includes('execute-api:ManageConnections')) continue;
        for (const r of [s.Resource].flat()) {
          const parts = (r as any)['Fn::Join'][1] as unknown[];
          expect(parts).toContainEqual({ Ref: apiId });
          const tail = parts[parts.length - 1] as string;
          const m = /^\/live\/(POST|GET|DELETE)\/@connections\/\*$/.exec(tail);
          expect(m).not.toBeNull();
          (managers[name] ??= []).push(m![1]!);
          managers[name]!.sort();
        }
      }
    }
    expect(managers).toEqual({ stream: ['POST'], subscribe: ['POST'], ack: ['POST'], health: ['GET'] });
  });

  it('never grants an action wildcard or a bare "*" resource to an app Lambda', () => {
    for (const prefix of Object.values(FUNCTIONS)) {
      for (const s of statementsOf(roleOf(fnId(prefix)))) {
        for (const a of [s.Action].flat()) expect(a).not.toMatch(/\*$/);
        expect([s.Resource].flat()).not.toContain('*');
      }
    }
  });

  it('scopes MSK IAM access to the cluster, the two topics and this app\'s consumer groups', () => {
    const head = TEST_MSK_CLUSTER_ARN.slice(0, TEST_MSK_CLUSTER_ARN.indexOf(':cluster/'));
    const path = TEST_MSK_CLUSTER_ARN.slice(TEST_MSK_CLUSTER_ARN.indexOf(':cluster/') + 9);
    const statements = statementsOf(roleOf(fnId(FUNCTIONS.stream)));
    const resourcesFor = (action: string) =>
      statements
        .filter((s) => [s.Action].flat().includes(action))
        .flatMap((s) => [s.Resource].flat())
        .sort();
    expect(resourcesFor('kafka-cluster:Connect')).toEqual([TEST_MSK_CLUSTER_ARN]);
    expect(resourcesFor('kafka-cluster:ReadData')).toEqual([`${head}:topic/${path}/alerts`, `${head}:topic/${path}/device-data`]);
    expect(resourcesFor('kafka-cluster:AlterGroup')).toEqual([
      `${head}:group/${path}/iot-live-dashboard-alerts`,
      `${head}:group/${path}/iot-live-dashboard-device-data`,
    ]);
  });
});

describe('Kafka event source', () => {
  it.each(['device-data', 'alerts'])('maps topic %s from MSK with batching, starting position and on-failure queue', (topic) => {
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      FunctionName: { Ref: fnId(FUNCTIONS.stream) },
      EventSourceArn: TEST_MSK_CLUSTER_ARN,
      Topics: [topic],
      BatchSize: 100,
      MaximumBatchingWindowInSeconds: 1,
      StartingPosition: 'LATEST',
      AmazonManagedKafkaEventSourceConfig: { ConsumerGroupId: `iot-live-dashboard-${topic}` },
      DestinationConfig: { OnFailure: { Destination: { 'Fn::GetAtt': [idOf('AWS::SQS::Queue', 'StreamFailedBatches'), 'Arn'] } } },
    });
  });

  it('has exactly one mapping per topic, and the Lambda may send to the failure queue', () => {
    template.resourceCountIs('AWS::Lambda::EventSourceMapping', 2);
    expect(actionsOf(roleOf(fnId(FUNCTIONS.stream)))).toContain('sqs:SendMessage');
  });

  it('warns, and still synthesizes, when an env-agnostic synth keeps the placeholder cluster', () => {
    const { stack: agnostic } = buildStack({ mskClusterArn: PLACEHOLDER_MSK_CLUSTER_ARN }, 'agnostic');
    const warnings = agnostic.node.metadata.filter((m) => m.type === 'aws:cdk:warning').map((m) => String(m.data));
    expect(warnings.some((w) => w.includes('mskClusterArn is the placeholder'))).toBe(true);
  });

  it('refuses a synth for a concrete account with the placeholder cluster, saying what to pass', () => {
    expect(() => buildStack({ mskClusterArn: PLACEHOLDER_MSK_CLUSTER_ARN })).toThrow(ConfigError);
    expect(() => buildStack({ mskClusterArn: PLACEHOLDER_MSK_CLUSTER_ARN })).toThrow(
      /placeholder.*account 123456789012 in eu-west-1.*-c mskClusterArn=arn:aws:kafka:eu-west-1:<account>:cluster/,
    );
  });

  it('refuses a cluster in another region than the stack', () => {
    expect(() => buildStack({ mskClusterArn: TEST_MSK_CLUSTER_ARN.replace('eu-west-1', 'us-east-1') })).toThrow(
      /cluster in us-east-1, but the stack deploys to eu-west-1/,
    );
  });
});

describe('DynamoDB tables', () => {
  it.each([
    ['TablesConnections', [{ AttributeName: 'connectionId', KeyType: 'HASH' }], 'expiresAt'],
    // Entries expire one by one; a whole bucket by TTL once no live connection writes to it.
    ['TablesSubscriptions', [{ AttributeName: 'pk', KeyType: 'HASH' }, { AttributeName: 'sk', KeyType: 'RANGE' }], 'expiresAt'],
    ['TablesMetrics', [{ AttributeName: 'pk', KeyType: 'HASH' }, { AttributeName: 'sk', KeyType: 'RANGE' }], undefined],
  ])('%s: keys, on demand, PITR, TTL, no secondary indexes', (prefix, keySchema, ttl) => {
    const props = resources[idOf('AWS::DynamoDB::GlobalTable', prefix)]!.Properties;
    expect(props.KeySchema).toEqual(keySchema);
    expect(props.AttributeDefinitions).toEqual(keySchema.map((k) => ({ AttributeName: k.AttributeName, AttributeType: 'S' })));
    expect(props.BillingMode).toBe('PAY_PER_REQUEST');
    expect(props.Replicas[0].PointInTimeRecoverySpecification).toEqual({ PointInTimeRecoveryEnabled: true });
    expect(props.TimeToLiveSpecification).toEqual(ttl ? { AttributeName: ttl, Enabled: true } : undefined);
    expect(props.GlobalSecondaryIndexes).toBeUndefined();
    expect(props.LocalSecondaryIndexes).toBeUndefined();
  });
});

describe('HTTP API', () => {
  it.each([
    ['GET /metrics', FUNCTIONS.metrics],
    ['GET /health', FUNCTIONS.health],
  ])('routes %s to its Lambda', (routeKey, prefix) => {
    const route = Object.values(template.findResources('AWS::ApiGatewayV2::Route', { Properties: { RouteKey: routeKey } }))[0]!;
    const integration = resources[route.Properties.Target['Fn::Join'][1][1].Ref]!.Properties;
    expect(integration.IntegrationUri).toEqual({ 'Fn::GetAtt': [fnId(prefix), 'Arn'] });
  });

  it('has a throttled, access-logged $default stage, with a throttle of its own for /health', () => {
    template.hasResourceProperties('AWS::ApiGatewayV2::Stage', {
      ApiId: { Ref: idOf('AWS::ApiGatewayV2::Api', 'OpsApi') },
      StageName: '$default',
      DefaultRouteSettings: { ThrottlingRateLimit: 20, ThrottlingBurstLimit: 40 },
      RouteSettings: { 'GET /health': { ThrottlingRateLimit: 5, ThrottlingBurstLimit: 10 } },
      AccessLogSettings: Match.objectLike({ DestinationArn: Match.anyValue() }),
    });
    // The route must exist before the stage names it in RouteSettings.
    const healthRouteId = Object.keys(template.findResources('AWS::ApiGatewayV2::Route', { Properties: { RouteKey: 'GET /health' } }))[0]!;
    const stage = resources[idOf('AWS::ApiGatewayV2::Stage', 'OpsStage')] as unknown as { DependsOn?: string[] };
    expect(stage.DependsOn).toContain(healthRouteId);
  });

  it('takes the /health throttle from context', () => {
    buildStack({ healthThrottleRate: 2, healthThrottleBurst: 3 }).template.hasResourceProperties('AWS::ApiGatewayV2::Stage', {
      RouteSettings: { 'GET /health': { ThrottlingRateLimit: 2, ThrottlingBurstLimit: 3 } },
    });
  });
});

describe('dashboard hosting', () => {
  const bucketId = idOf('AWS::S3::Bucket', 'DashboardBucket');
  const distributionId = idOf('AWS::CloudFront::Distribution', 'DashboardDistribution');

  it('keeps the bucket private and encrypted', () => {
    template.hasResourceProperties('AWS::S3::Bucket', {
      PublicAccessBlockConfiguration: { BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true },
      BucketEncryption: { ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] },
    });
  });

  it('lets only this distribution read the bucket (OAC), and denies non-TLS access', () => {
    const policy = Object.values(template.findResources('AWS::S3::BucketPolicy')).find(
      (p: any) => p.Properties.Bucket.Ref === bucketId,
    )!.Properties.PolicyDocument.Statement as any[];
    const allow = policy.filter((s) => s.Effect === 'Allow' && s.Principal?.Service === 'cloudfront.amazonaws.com');
    expect(allow).toHaveLength(1);
    expect(allow[0].Action).toBe('s3:GetObject');
    expect(JSON.stringify(allow[0].Condition)).toContain(distributionId);
    expect(policy.some((s) => s.Effect === 'Deny' && s.Condition?.Bool?.['aws:SecureTransport'] === 'false')).toBe(true);
    expect(policy.filter((s) => s.Effect === 'Allow' && s.Principal === '*')).toEqual([]);
  });

  it('redirects HTTP to HTTPS and serves through origin access control with the security headers policy', () => {
    const config = resources[distributionId]!.Properties.DistributionConfig;
    expect(config.DefaultRootObject).toBe('index.html');
    expect(config.DefaultCacheBehavior.ViewerProtocolPolicy).toBe('redirect-to-https');
    expect(config.DefaultCacheBehavior.ResponseHeadersPolicyId).toEqual({ Ref: idOf('AWS::CloudFront::ResponseHeadersPolicy', 'DashboardSecurityHeaders') });
    expect(config.Origins).toHaveLength(1);
    expect(config.Origins[0].OriginAccessControlId).toEqual({ 'Fn::GetAtt': [idOf('AWS::CloudFront::OriginAccessControl', 'DashboardOriginAccessControl'), 'Id'] });
    expect(config.Origins[0].S3OriginConfig.OriginAccessIdentity).toBe('');
  });

  it('sends a CSP that allows scripts from itself and connections to the WebSocket API only', () => {
    const headers = resources[idOf('AWS::CloudFront::ResponseHeadersPolicy', 'DashboardSecurityHeaders')]!.Properties
      .ResponseHeadersPolicyConfig.SecurityHeadersConfig;
    const csp = JSON.stringify(headers.ContentSecurityPolicy.ContentSecurityPolicy);
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).toMatch(/connect-src 'self' wss:\/\//);
    expect(csp).toContain(idOf('AWS::ApiGatewayV2::Api', 'RealtimeApi'));
    expect(csp).not.toContain('unsafe-inline');
    expect(headers.StrictTransportSecurity.Override).toBe(true);
    expect(headers.FrameOptions.FrameOption).toBe('DENY');
  });

  it('deploys the page and a config.json holding the stage wss URL, then invalidates the cache', () => {
    const deployment = Object.values(template.findResources('Custom::CDKBucketDeployment'))[0]!.Properties;
    expect(deployment.SourceObjectKeys).toHaveLength(2);
    expect(deployment.DestinationBucketName).toEqual({ Ref: bucketId });
    expect(deployment.DistributionId).toEqual({ Ref: distributionId });
    // config.json's text is in the asset; its deploy-time values arrive as markers.
    const markers = JSON.stringify(deployment.SourceMarkers);
    expect(markers).toContain(`{"Ref":"${idOf('AWS::ApiGatewayV2::Api', 'RealtimeApi')}"}`);
    expect(markers).toContain('AWS::URLSuffix');
  });
});

describe('alarms', () => {
  const alarms = Object.entries(template.findResources('AWS::CloudWatch::Alarm')).map(([id, a]: [string, any]) => ({ id, ...a.Properties }));
  const topicId = idOf('AWS::SNS::Topic', 'AlarmsTopic');
  const alarm = (prefix: string) => {
    const found = alarms.filter((a) => a.id.startsWith(`Alarms${prefix}`));
    expect(found).toHaveLength(1);
    return found[0]!;
  };
  /** The metrics (name and the Ref of their first dimension) of a metric-math alarm. */
  const mathMetrics = (a: any) =>
    a.Metrics.filter((m: any) => m.MetricStat).map((m: any) => ({
      name: m.MetricStat.Metric.MetricName,
      ref: m.MetricStat.Metric.Dimensions[0].Value.Ref,
    }));

  it('notifies one topic on alarm, and not on OK unless asked', () => {
    expect(alarms.length).toBeGreaterThanOrEqual(11);
    for (const a of alarms) {
      expect(a.AlarmActions).toEqual([{ Ref: topicId }]);
      expect(a.OKActions).toBeUndefined();
    }
    const withOk = Object.values(buildStack({ alarmOkActions: true }).template.findResources('AWS::CloudWatch::Alarm'));
    for (const a of withOk) expect((a as any).Properties.OKActions).toEqual([{ Ref: topicId }]);
  });

  it('pages when the stream Lambda is not invoked for 15 minutes, treating no data as breaching', () => {
    expect(alarm('StreamIdle')).toMatchObject({
      Namespace: 'AWS/Lambda',
      MetricName: 'Invocations',
      Dimensions: [{ Name: 'FunctionName', Value: { Ref: fnId(FUNCTIONS.stream) } }],
      ComparisonOperator: 'LessThanThreshold',
      Threshold: 1,
      Period: 300,
      EvaluationPeriods: 3,
      TreatMissingData: 'breaching',
    });
    const ids = Object.keys(buildStack({ streamIdleMinutes: 0 }).template.findResources('AWS::CloudWatch::Alarm'));
    expect(ids.some((id) => id.startsWith('AlarmsStreamIdle'))).toBe(false);
  });

  it('alarms on stream errors and offset lag, missing data meaning nothing happened', () => {
    expect(alarm('StreamErrors')).toMatchObject({
      MetricName: 'Errors',
      Dimensions: [{ Name: 'FunctionName', Value: { Ref: fnId(FUNCTIONS.stream) } }],
      TreatMissingData: 'notBreaching',
    });
    expect(alarm('OffsetLag')).toMatchObject({ Namespace: 'AWS/Lambda', Statistic: 'Maximum', Threshold: 1000, TreatMissingData: 'notBreaching' });
  });

  it('alarms on authorizer errors, and on errors of every route, /metrics and /health function', () => {
    expect(alarm('AuthorizerErrors')).toMatchObject({
      MetricName: 'Errors',
      Dimensions: [{ Name: 'FunctionName', Value: { Ref: fnId(FUNCTIONS.authorizer) } }],
      Threshold: 1,
      TreatMissingData: 'notBreaching',
    });
    const routes = mathMetrics(alarm('RouteErrors'));
    expect(routes.every((m: any) => m.name === 'Errors')).toBe(true);
    const { authorizer: _a, stream: _s, ...others } = FUNCTIONS;
    expect(routes.map((m: any) => m.ref).sort()).toEqual(Object.values(others).map(fnId).sort());
  });

  it('alarms on WebSocket integration and execution errors and on HTTP API 5xx', () => {
    const apiId = idOf('AWS::ApiGatewayV2::Api', 'RealtimeApi');
    const ws = alarm('WebSocketErrors');
    expect(mathMetrics(ws).map((m: any) => m.name).sort()).toEqual(['ExecutionError', 'IntegrationError']);
    for (const m of ws.Metrics.filter((x: any) => x.MetricStat)) {
      expect(m.MetricStat.Metric.Namespace).toBe('AWS/ApiGateway');
      expect(m.MetricStat.Metric.Dimensions).toEqual([
        { Name: 'ApiId', Value: { Ref: apiId } },
        { Name: 'Stage', Value: 'live' },
      ]);
    }
    expect(alarm('HttpServerErrors')).toMatchObject({
      Namespace: 'AWS/ApiGateway',
      MetricName: '5xx',
      Dimensions: [{ Name: 'ApiId', Value: { Ref: idOf('AWS::ApiGatewayV2::Api', 'OpsApi') } }],
      Threshold: 1,
    });
  });

  it('alarms as soon as one batch waits in the failure queue', () => {
    expect(alarm('FailureQueueDepth')).toMatchObject({
      Namespace: 'AWS/SQS',
      MetricName: 'ApproximateNumberOfMessagesVisible',
      Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [idOf('AWS::SQS::Queue', 'StreamFailedBatches'), 'QueueName'] } }],
      ComparisonOperator: 'GreaterThanThreshold',
      Threshold: 0,
    });
  });

  it('alarms on read and write throttles of every table', () => {
    const metrics = alarm('TableThrottles').Metrics.filter((m: any) => m.MetricStat).map((m: any) => m.MetricStat.Metric);
    const seen = metrics.map((m: any) => `${m.MetricName} ${m.Dimensions[0].Value.Ref.replace(/[0-9A-F]{8}$/, '')}`).sort();
    const tables = Object.keys(template.findResources('AWS::DynamoDB::GlobalTable')).map((id) => id.replace(/[0-9A-F]{8}$/, ''));
    expect(tables.length).toBeGreaterThanOrEqual(3);
    expect(seen).toEqual(tables.flatMap((t) => [`ReadThrottleEvents ${t}`, `WriteThrottleEvents ${t}`]).sort());
  });

  it('alarms on throttles of every function and on stale connections', () => {
    // CloudWatch metric math takes ten metrics per alarm: one alarm per ten functions.
    const throttleAlarms = alarms.filter((a) => /^AlarmsThrottles\d*[0-9A-F]{8}$/.test(a.id));
    expect(throttleAlarms).toHaveLength(Math.ceil(Object.keys(FUNCTIONS).length / 10));
    const throttled = throttleAlarms.flatMap(mathMetrics);
    expect(throttled.every((m: any) => m.name === 'Throttles')).toBe(true);
    expect(throttled.map((m: any) => m.ref).sort()).toEqual(Object.values(FUNCTIONS).map(fnId).sort());
    expect(alarm('StaleConnections')).toMatchObject({
      MetricName: 'websocket_stale_connections_total',
      Namespace: 'IotLiveDashboard',
      Dimensions: [{ Name: 'service', Value: 'iot-live-dashboard' }],
      Threshold: 100,
    });
  });

  it('describes every alarm in docs/deploy.md', () => {
    const docs = fs.readFileSync(path.join(REPO_ROOT, 'docs', 'deploy.md'), 'utf8');
    const names = alarms.map((a) => a.id.replace(/^Alarms/, '').replace(/[0-9A-F]{8}$/, ''));
    expect(names.filter((n) => !docs.includes(`| \`${n}\` |`))).toEqual([]);
  });

  it('puts a CloudWatch dashboard beside the alarms, showing every one of them', () => {
    const [dashboard] = Object.values(template.findResources('AWS::CloudWatch::Dashboard')) as any[];
    const body = JSON.stringify(dashboard.Properties.DashboardBody);
    for (const a of alarms) expect(body).toContain(a.id);
    for (const metric of ['OffsetLag', 'ConnectCount', 'ConsumedWriteCapacityUnits', '5xx']) expect(body).toContain(metric);
    expect(JSON.stringify(template.findOutputs('OperationsDashboard'))).toContain('dashboards:name=');
  });
});

describe('replay reader (resume)', () => {
  const built = buildStack(REPLAY_CONTEXT);
  const t = built.template;
  const res = t.toJSON().Resources as Record<string, { Type: string; Properties: any }>;
  const idIn = (type: string, prefix: string) => {
    const ids = Object.keys(t.findResources(type)).filter((id) => id.startsWith(prefix));
    expect(ids).toHaveLength(1);
    return ids[0]!;
  };
  const replayId = idIn('AWS::Lambda::Function', REPLAY_FUNCTION);
  const subscribeId = idIn('AWS::Lambda::Function', FUNCTIONS.subscribe);
  const roleIdOf = (functionId: string) => res[functionId]!.Properties.Role['Fn::GetAtt'][0] as string;
  const statementsIn = (roleId: string): Array<{ Action: string | string[]; Resource: unknown; Condition?: unknown }> =>
    Object.values(t.findResources('AWS::IAM::Policy'))
      .filter((p: any) => p.Properties.Roles.some((r: any) => r.Ref === roleId))
      .flatMap((p: any) => p.Properties.PolicyDocument.Statement);
  const resourcesFor = (roleId: string, action: string) =>
    statementsIn(roleId)
      .filter((st) => [st.Action].flat().includes(action))
      .flatMap((st) => [st.Resource].flat());

  it('runs the replay handler in the cluster\'s client subnets with the brokers\' security group', () => {
    const props = res[replayId]!.Properties;
    expect(props).toMatchObject({ Runtime: 'nodejs22.x', Architectures: ['arm64'], MemorySize: 1024, Timeout: 15 });
    expect(props.VpcConfig).toEqual({
      SubnetIds: REPLAY_CONTEXT.kafkaSubnetIds.split(','),
      SecurityGroupIds: [REPLAY_CONTEXT.kafkaSecurityGroupId],
    });
    const managed = JSON.stringify(res[roleIdOf(replayId)]!.Properties.ManagedPolicyArns);
    expect(managed).toContain('service-role/AWSLambdaVPCAccessExecutionRole');
    // The stack changes nothing about the brokers' security group.
    t.resourceCountIs('AWS::EC2::SecurityGroup', 0);
    t.resourceCountIs('AWS::EC2::SecurityGroupIngress', 0);
  });

  it('tells it the brokers of the IAM listener, the auth and its client id, and nothing else', () => {
    const vars = res[replayId]!.Properties.Environment.Variables;
    const own = Object.fromEntries(Object.entries(vars).filter(([k]) => !k.startsWith('POWERTOOLS_') && k !== 'LOG_LEVEL' && k !== 'NODE_OPTIONS'));
    expect(own).toEqual({
      [ENV.kafkaBrokers]: REPLAY_CONTEXT.kafkaBootstrapServers,
      [ENV.kafkaAuth]: 'iam',
      [ENV.kafkaClientId]: 'iot-live-dashboard-replay',
    });
  });

  it('may connect to the cluster, describe and read the two topics, and use only its own consumer groups', () => {
    const head = TEST_MSK_CLUSTER_ARN.slice(0, TEST_MSK_CLUSTER_ARN.indexOf(':cluster/'));
    const clusterPath = TEST_MSK_CLUSTER_ARN.slice(TEST_MSK_CLUSTER_ARN.indexOf(':cluster/') + 9);
    const role = roleIdOf(replayId);
    expect(resourcesFor(role, 'kafka-cluster:Connect')).toEqual([TEST_MSK_CLUSTER_ARN]);
    const topics = [`${head}:topic/${clusterPath}/alerts`, `${head}:topic/${clusterPath}/device-data`];
    expect(resourcesFor(role, 'kafka-cluster:DescribeTopic').sort()).toEqual(topics);
    expect(resourcesFor(role, 'kafka-cluster:ReadData').sort()).toEqual(topics);
    for (const action of ['kafka-cluster:DescribeGroup', 'kafka-cluster:AlterGroup']) {
      expect(resourcesFor(role, action)).toEqual([`${head}:group/${clusterPath}/iot-live-dashboard-replay-*`]);
    }
    // Read only: no writes to Kafka, no tables, no Management API, no secrets.
    const actions = statementsIn(role).flatMap((st) => [st.Action].flat());
    expect(actions.filter((a) => !a.startsWith('logs:')).sort()).toEqual([
      'kafka-cluster:AlterGroup',
      'kafka-cluster:Connect',
      'kafka-cluster:DescribeGroup',
      'kafka-cluster:DescribeTopic',
      'kafka-cluster:ReadData',
    ]);
  });

  it('is named to the subscribe route, which alone may invoke it, the function itself and no version or alias', () => {
    expect(res[subscribeId]!.Properties.Environment.Variables[ENV.replayFunctionName]).toEqual({ Ref: replayId });
    expect(resourcesFor(roleIdOf(subscribeId), 'lambda:InvokeFunction')).toEqual([{ 'Fn::GetAtt': [replayId, 'Arn'] }]);
    const invokers = Object.keys(t.findResources('AWS::Lambda::Function')).filter((id) =>
      statementsIn(roleIdOf(id)).some((st) => [st.Action].flat().some((a) => a.startsWith('lambda:'))),
    );
    expect(invokers).toEqual([subscribeId]);
    // Long enough to wait for the reader's 15 s and then post what was missed.
    expect(res[subscribeId]!.Properties.Timeout).toBe(40);
  });

  it('alarms on its errors, throttles and duration', () => {
    const alarmsOf = Object.entries(t.findResources('AWS::CloudWatch::Alarm')).map(([id, a]: [string, any]) => ({ id, ...a.Properties }));
    const one = (prefix: string) => {
      const found = alarmsOf.filter((a) => a.id.startsWith(`Alarms${prefix}`));
      expect(found).toHaveLength(1);
      return found[0]!;
    };
    expect(one('ReplayErrors')).toMatchObject({
      MetricName: 'Errors',
      Dimensions: [{ Name: 'FunctionName', Value: { Ref: replayId } }],
      Threshold: 1,
      TreatMissingData: 'notBreaching',
    });
    expect(one('ReplayDuration')).toMatchObject({
      MetricName: 'Duration',
      ExtendedStatistic: 'p90',
      Dimensions: [{ Name: 'FunctionName', Value: { Ref: replayId } }],
      Threshold: 12_000,
      EvaluationPeriods: 2,
      ComparisonOperator: 'GreaterThanThreshold',
    });
    const throttled = alarmsOf
      .filter((a) => /^AlarmsThrottles\d*[0-9A-F]{8}$/.test(a.id))
      .flatMap((a) => a.Metrics.filter((m: any) => m.MetricStat).map((m: any) => m.MetricStat.Metric.Dimensions[0].Value.Ref));
    expect(throttled).toContain(replayId);
    const docs = fs.readFileSync(path.join(REPO_ROOT, 'docs', 'deploy.md'), 'utf8');
    for (const name of ['ReplayErrors', 'ReplayDuration']) expect(docs).toContain(`| \`${name}\` |`);
  });

  it('is left out when the brokers cannot be reached, with a synth warning saying what to set, and resumes get the snapshot', () => {
    expect(Object.keys(template.findResources('AWS::Lambda::Function')).filter((id) => id.startsWith(REPLAY_FUNCTION))).toEqual([]);
    expect(resources[fnId(FUNCTIONS.subscribe)]!.Properties.Environment.Variables[ENV.replayFunctionName]).toBeUndefined();
    const warningsOf = (stack: Stack) => stack.node.metadata.filter((m) => m.type === 'aws:cdk:warning').map((m) => String(m.data));
    const { stack } = buildStack();
    expect(warningsOf(stack).filter((w) => w.includes('No replay reader'))).toEqual([
      expect.stringMatching(/kafkaBootstrapServers.*kafkaVpcId, kafkaSubnetIds and kafkaSecurityGroupId.*snapshot/),
    ]);
    expect(warningsOf(buildStack({ kafkaReplay: 'off' }).stack).filter((w) => w.includes('No replay reader'))).toEqual([]);
    expect(warningsOf(built.stack).filter((w) => w.includes('No replay reader'))).toEqual([]);
  });

  it('with MSK SASL/SCRAM reads the secret (and its key) instead of holding kafka-cluster actions', () => {
    const secret = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:AmazonMSK_iot-AbCdEf';
    const key = 'arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab';
    const scram = buildStack({
      ...REPLAY_CONTEXT,
      kafkaBootstrapServers: 'b-1.plant.abc123.c2.kafka.eu-west-1.amazonaws.com:9096',
      kafkaAuth: 'sasl-scram-512',
      kafkaSecretArn: secret,
      kafkaSecretKmsKeyArn: key,
    }).template;
    const [id, fn] = Object.entries(scram.findResources('AWS::Lambda::Function')).find(([i]) => i.startsWith(REPLAY_FUNCTION))! as [string, any];
    expect(fn.Properties.Environment.Variables).toMatchObject({ [ENV.kafkaAuth]: 'sasl-scram-512', [ENV.kafkaSecretArn]: secret });
    const roleId = fn.Properties.Role['Fn::GetAtt'][0];
    const statements = Object.values(scram.findResources('AWS::IAM::Policy'))
      .filter((p: any) => p.Properties.Roles.some((r: any) => r.Ref === roleId))
      .flatMap((p: any) => p.Properties.PolicyDocument.Statement as Array<{ Action: string | string[]; Resource: unknown }>);
    const text = JSON.stringify(statements);
    expect(text).toContain('secretsmanager:GetSecretValue');
    expect(text).toContain(secret);
    expect(text).toContain(key);
    expect(text).not.toContain('kafka-cluster:');
    expect(id).toBeDefined();
  });

  it('with self-managed brokers reachable from the internet runs outside any VPC', () => {
    const open = buildStack({
      kafkaSource: 'self-managed',
      kafkaBootstrapServers: 'kafka.example.com:9096',
      kafkaAuth: 'sasl-scram-256',
      kafkaSecretArn: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:kafka-AbCdEf',
    }).template;
    const [, fn] = Object.entries(open.findResources('AWS::Lambda::Function')).find(([i]) => i.startsWith(REPLAY_FUNCTION))! as [string, any];
    expect(fn.Properties.VpcConfig).toBeUndefined();
    expect(fn.Properties.Environment.Variables).toMatchObject({ [ENV.kafkaBrokers]: 'kafka.example.com:9096', [ENV.kafkaAuth]: 'sasl-scram-256' });
    expect(JSON.stringify(open.findResources('AWS::IAM::Role'))).not.toContain('AWSLambdaVPCAccessExecutionRole');
  });
});

describe('account and region', () => {
  it('names the CloudFront policy and origin access control with the stack name and region', () => {
    const policy = resources[idOf('AWS::CloudFront::ResponseHeadersPolicy', 'DashboardSecurityHeaders')]!.Properties;
    expect(policy.ResponseHeadersPolicyConfig.Name).toBe('TestStack-eu-west-1-security-headers');
    const oac = resources[idOf('AWS::CloudFront::OriginAccessControl', 'DashboardOriginAccessControl')]!.Properties;
    expect(oac.OriginAccessControlConfig.Name).toBe('TestStack-eu-west-1-dashboard-oac');
  });

  it('gives two regions of one stack name different CloudFront names', () => {
    const names = ['eu-west-1', 'us-east-1'].map((region) => {
      const t = buildStack({ mskClusterArn: TEST_MSK_CLUSTER_ARN.replace('eu-west-1', region) }, { account: '123456789012', region }).template;
      return JSON.stringify(
        [t.findResources('AWS::CloudFront::ResponseHeadersPolicy'), t.findResources('AWS::CloudFront::OriginAccessControl')].map(
          (r) => Object.values(r).map((x: any) => x.Properties),
        ),
      );
    });
    expect(names[0]).toContain('eu-west-1');
    expect(names[1]).toContain('us-east-1');
    expect(names[0]).not.toEqual(names[1]);
  });

  it('keeps names within CloudFront\'s limit for long stack names, and apart when they share a prefix', () => {
    const app = new App();
    const prefix = 'Iot-Live-Dashboard-Production-Plant-Telemetry-Europe-Primary';
    const [a, b] = ['A', 'B'].map((tail) => accountUniqueName(new Stack(app, `${prefix}-${tail}`, { env: { region: 'ap-southeast-2' } }), 'dashboard-oac', 64));
    expect(a!.length).toBeLessThanOrEqual(64);
    expect(a).toMatch(/-ap-southeast-2-dashboard-oac$/);
    expect(a).not.toEqual(b);
  });

  it('synthesizes the self-managed Kafka in a VPC variant for a concrete account without looking anything up', () => {
    const { app } = buildStack({
      kafkaSource: 'self-managed',
      kafkaBootstrapServers: 'b1:9092',
      kafkaAuth: 'none',
      kafkaVpcId: 'vpc-0123456789abcdef0',
      kafkaSubnetIds: 'subnet-0123456789abcdef1,subnet-0123456789abcdef2',
      kafkaSecurityGroupId: 'sg-0123456789abcdef0',
    });
    // A context lookup (AZs of the account) would need credentials and fail offline.
    expect(app.synth().manifest.missing ?? []).toEqual([]);
  });
});

describe('operations', () => {
  it('reserves no concurrency by default, so a new account (quota 10) can deploy', () => {
    for (const prefix of Object.values(FUNCTIONS)) expect(resources[fnId(prefix)]!.Properties.ReservedConcurrentExecutions).toBeUndefined();
  });

  it('reserves concurrency per function from context', () => {
    const t = buildStack({ reservedConcurrency: '{"authorizer": 20, "stream": 10}' }).template.toJSON().Resources as Record<string, any>;
    const reserved = (prefix: string) =>
      Object.entries(t).find(([id, r]) => r.Type === 'AWS::Lambda::Function' && id.startsWith(prefix))![1].Properties.ReservedConcurrentExecutions;
    expect(reserved(FUNCTIONS.authorizer)).toBe(20);
    expect(reserved(FUNCTIONS.stream)).toBe(10);
    expect(reserved(FUNCTIONS.connect)).toBeUndefined();
  });

  it('tags every app function, table and queue with the application, the stack and context tags', () => {
    const t = buildStack({ tags: { CostCenter: 'plant-ops' } }).template;
    for (const type of ['AWS::Lambda::Function', 'AWS::DynamoDB::GlobalTable', 'AWS::SQS::Queue']) {
      const found = Object.entries(t.findResources(type)).filter(
        // aws-cdk-lib's own custom-resource providers are not the app's to tag.
        ([id]) => type !== 'AWS::Lambda::Function' || Object.values(FUNCTIONS).some((f) => id.startsWith(f)),
      );
      expect(found.length).toBeGreaterThan(0);
      for (const [, r] of found as [string, any][]) {
        const tags = r.Properties.Tags ?? r.Properties.Replicas?.[0]?.Tags;
        expect(tags).toEqual(
          expect.arrayContaining([
            { Key: 'Application', Value: 'iot-live-dashboard' },
            { Key: 'Stack', Value: 'TestStack' },
            { Key: 'CostCenter', Value: 'plant-ops' },
          ]),
        );
      }
    }
  });
});

describe('outputs', () => {
  it('exports the wss, dashboard and metrics URLs', () => {
    const outputs = template.findOutputs('*');
    expect(JSON.stringify(outputs.WebSocketUrl!.Value)).toContain('wss://');
    expect(JSON.stringify(outputs.DashboardUrl!.Value)).toContain(idOf('AWS::CloudFront::Distribution', 'DashboardDistribution'));
    expect(JSON.stringify(outputs.MetricsUrl!.Value)).toMatch(/\/metrics"/);
  });
});

describe('snapshot', () => {
  it('matches the recorded template (asset hashes masked)', () => {
    const text = JSON.stringify(template.toJSON(), null, 1).replace(/[0-9a-f]{64}/g, '<asset-hash>');
    expect(JSON.parse(text)).toMatchSnapshot();
  });
});

