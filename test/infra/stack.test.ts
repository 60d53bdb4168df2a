import { Match } from 'aws-cdk-lib/assertions';
import { ENV } from '../../lambdas/config/env-names';
import { PLACEHOLDER_MSK_CLUSTER_ARN } from '../../infra/config';
import { FUNCTIONS, buildStack } from './stack-fixture';

const { stack, template } = buildStack();
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
/** Tables (by logical id prefix) a role's statements name. */
function tablesTouched(roleId: string): string[] {
  const text = JSON.stringify(statementsOf(roleId));
  return ['TablesConnections', 'TablesSubscriptions', 'TablesMetrics'].filter((t) => text.includes(t));
}


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
    template.resourceCountIs('AWS::ApiGateway::Account', 1);
  });

  it('hands the HS256 secret to the authorizer only', () => {
    const env = resources[fnId(FUNCTIONS.authorizer)]!.Properties.Environment.Variables;
    expect(env[ENV.authMode]).toBe('hs256');
    expect(env[ENV.jwtSecretArn]).toEqual({ Ref: idOf('AWS::SecretsManager::Secret', 'JwtSecret') });
    const readers = Object.values(FUNCTIONS).filter((f) =>
      actionsOf(roleOf(fnId(f))).includes('secretsmanager:GetSecretValue') &&
      JSON.stringify(statementsOf(roleOf(fnId(f)))).includes('JwtSecret'),
    );
    expect(readers).toEqual([FUNCTIONS.authorizer]);
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
  });

  const tableEnv = [ENV.connectionsTable, ENV.subscriptionsTable, ENV.metricsTable];
  it.each([
    [FUNCTIONS.connect, [ENV.connectionsTable, ENV.metricsTable]],
    [FUNCTIONS.disconnect, tableEnv],
    [FUNCTIONS.subscribe, [...tableEnv, ENV.alertsTable, ENV.latestTable, ENV.callbackUrl]],
    [FUNCTIONS.ack, [ENV.connectionsTable, ENV.subscriptionsTable, ENV.alertsTable, ENV.metricsTable, ENV.callbackUrl]],
    [FUNCTIONS.unsubscribe, tableEnv],
    [FUNCTIONS.ping, [ENV.metricsTable]],
    [FUNCTIONS.default, [ENV.metricsTable]],
    [FUNCTIONS.stream, [...tableEnv, ENV.alertsTable, ENV.latestTable, ENV.callbackUrl, ENV.postConcurrency]],
    [FUNCTIONS.metrics, [ENV.connectionsTable, ENV.metricsTable, ENV.metricsTokenSecretArn]],
    [FUNCTIONS.health, [...tableEnv, ENV.callbackUrl]],
    [FUNCTIONS.authorizer, [ENV.authMode, ENV.jwtSecretArn]],
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
  it.each([
    [FUNCTIONS.connect, ['TablesConnections', 'TablesMetrics']],
    [FUNCTIONS.disconnect, ['TablesConnections', 'TablesSubscriptions', 'TablesMetrics']],
    [FUNCTIONS.ping, ['TablesMetrics']],
    [FUNCTIONS.default, ['TablesMetrics']],
    [FUNCTIONS.authorizer, []],
    [FUNCTIONS.metrics, ['TablesConnections', 'TablesMetrics']],
  ])('%s touches only its tables', (prefix, tables) => {
    expect(tablesTouched(roleOf(fnId(prefix)))).toEqual(tables);
  });

  it('gives /metrics and /health read-only table access', () => {
    for (const prefix of [FUNCTIONS.metrics, FUNCTIONS.health]) {
      const actions = actionsOf(roleOf(fnId(prefix))).filter((a) => a.startsWith('dynamodb:'));
      expect(actions.length).toBeGreaterThan(0);
      expect(actions.filter((a) => /Put|Update|Delete|Write/.test(a))).toEqual([]);
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
    expect(managers).toEqual({ stream: ['DELETE', 'POST'], subscribe: ['POST'], ack: ['POST'], health: ['GET'] });
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
    const head = PLACEHOLDER_MSK_CLUSTER_ARN.slice(0, PLACEHOLDER_MSK_CLUSTER_ARN.indexOf(':cluster/'));
    const path = PLACEHOLDER_MSK_CLUSTER_ARN.slice(PLACEHOLDER_MSK_CLUSTER_ARN.indexOf(':cluster/') + 9);
    const statements = statementsOf(roleOf(fnId(FUNCTIONS.stream)));
    const resourcesFor = (action: string) =>
      statements
        .filter((s) => [s.Action].flat().includes(action))
        .flatMap((s) => [s.Resource].flat())
        .sort();
    expect(resourcesFor('kafka-cluster:Connect')).toEqual([PLACEHOLDER_MSK_CLUSTER_ARN]);
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
      EventSourceArn: PLACEHOLDER_MSK_CLUSTER_ARN,
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

  it('warns at synth when the MSK cluster is still the placeholder', () => {
    const warnings = stack.node.metadata.filter((m) => m.type === 'aws:cdk:warning').map((m) => String(m.data));
    expect(warnings.some((w) => w.includes('mskClusterArn is the placeholder'))).toBe(true);
  });
});

describe('DynamoDB tables', () => {
  it.each([
    ['TablesConnections', [{ AttributeName: 'connectionId', KeyType: 'HASH' }], 'expiresAt'],
    // Subscription buckets are shared by many connections: entries expire one by one, not by TTL.
    ['TablesSubscriptions', [{ AttributeName: 'pk', KeyType: 'HASH' }, { AttributeName: 'sk', KeyType: 'RANGE' }], undefined],
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

  it('has a throttled, access-logged $default stage', () => {
    template.hasResourceProperties('AWS::ApiGatewayV2::Stage', {
      ApiId: { Ref: idOf('AWS::ApiGatewayV2::Api', 'OpsApi') },
      StageName: '$default',
      DefaultRouteSettings: { ThrottlingRateLimit: 20, ThrottlingBurstLimit: 40 },
      AccessLogSettings: Match.objectLike({ DestinationArn: Match.anyValue() }),
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

  it('serves HTTPS only through origin access control with the security headers policy', () => {
    const config = resources[distributionId]!.Properties.DistributionConfig;
    expect(config.DefaultRootObject).toBe('index.html');
    expect(config.DefaultCacheBehavior.ViewerProtocolPolicy).toBe('https-only');
    expect(config.DefaultCacheBehavior.ResponseHeadersPolicyId).toEqual({ Ref: idOf('AWS::CloudFront::ResponseHeadersPolicy', 'DashboardSecurityHeaders') });
    expect(config.Origins).toHaveLength(1);
    expect(config.Origins[0].OriginAccessControlId).toEqual({ 'Fn::GetAtt': [idOf('AWS::CloudFront::OriginAccessControl', 'DashboardDistribution'), 'Id'] });
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
  const alarms = Object.values(template.findResources('AWS::CloudWatch::Alarm')).map((a: any) => a.Properties);
  const topicId = idOf('AWS::SNS::Topic', 'AlarmsTopic');

  it('alarms on stream errors, offset lag, throttles and stale connections, all notifying one topic', () => {
    // Throttles: one alarm per ten functions (CloudWatch's metric math limit), here two.
    expect(alarms).toHaveLength(5);
    for (const a of alarms) expect(a.AlarmActions).toEqual([{ Ref: topicId }]);
    const byMetric = (name: string) => alarms.find((a) => a.MetricName === name);
    expect(byMetric('Errors')).toMatchObject({ Namespace: 'AWS/Lambda', Dimensions: [{ Name: 'FunctionName', Value: { Ref: fnId(FUNCTIONS.stream) } }] });
    expect(byMetric('OffsetLag')).toMatchObject({ Namespace: 'AWS/Lambda', Statistic: 'Maximum', Threshold: 1000 });
    expect(byMetric('websocket_stale_connections_total')).toMatchObject({
      Namespace: 'IotLiveDashboard',
      Dimensions: [{ Name: 'service', Value: 'iot-live-dashboard' }],
      Threshold: 100,
    });
    const throttled = alarms
      .filter((a) => a.Metrics)
      .flatMap((a) => a.Metrics.filter((m: any) => m.MetricStat).map((m: any) => m.MetricStat.Metric));
    expect(throttled.every((m: any) => m.MetricName === 'Throttles')).toBe(true);
    expect(throttled.map((m: any) => m.Dimensions[0].Value.Ref).sort()).toEqual(Object.values(FUNCTIONS).map(fnId).sort());
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

