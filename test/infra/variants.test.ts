import { Match } from 'aws-cdk-lib/assertions';
import { ENV } from '../../lambdas/config/env-names';
import { buildStack } from './stack-fixture';

const ACCOUNT = '123456789012';
const KAFKA_SECRET = `arn:aws:secretsmanager:eu-west-1:${ACCOUNT}:secret:AmazonMSK_iot-AbCdEf`;

function functionEnv(template: ReturnType<typeof buildStack>['template'], logicalIdPrefix: string): Record<string, unknown> {
  const [, fn] = Object.entries(template.findResources('AWS::Lambda::Function')).find(([id]) => id.startsWith(logicalIdPrefix))!;
  return fn.Properties.Environment.Variables;
}

describe('context variants', () => {
  it('jwks: the authorizer gets the JWKS URL, issuer and audience, and no secret is created', () => {
    const { template } = buildStack({
      authMode: 'jwks',
      jwksUrl: 'https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_abc/.well-known/jwks.json',
      jwtIssuer: 'https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_abc',
      jwtAudience: 'dashboard',
    });
    const env = functionEnv(template, 'RealtimeAuthorizerFunction');
    expect(env).toMatchObject({
      [ENV.authMode]: 'jwks',
      [ENV.jwksUrl]: 'https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_abc/.well-known/jwks.json',
      [ENV.jwtIssuer]: 'https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_abc',
      [ENV.jwtAudience]: 'dashboard',
    });
    expect(env[ENV.jwtSecretArn]).toBeUndefined();
    expect(Object.keys(template.findResources('AWS::SecretsManager::Secret'))).toEqual([expect.stringMatching(/^MetricsTokenSecret/)]);
  });

  it('MSK SASL/SCRAM: the mapping uses the secret and the Lambda may read and decrypt it', () => {
    const key = `arn:aws:kms:eu-west-1:${ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab`;
    const { template } = buildStack({ kafkaAuth: 'sasl-scram-512', kafkaSecretArn: KAFKA_SECRET, kafkaSecretKmsKeyArn: key });
    template.resourcePropertiesCountIs(
      'AWS::Lambda::EventSourceMapping',
      { SourceAccessConfigurations: [{ Type: 'SASL_SCRAM_512_AUTH', URI: KAFKA_SECRET }] },
      2,
    );
    const policies = JSON.stringify(template.findResources('AWS::IAM::Policy'));
    expect(policies).toContain(KAFKA_SECRET);
    expect(policies).toContain(key);
    expect(policies).not.toContain('kafka-cluster:ReadData');
  });

  it('self-managed in a VPC: bootstrap servers, subnets and security group, no auth, ENI permissions', () => {
    const { template } = buildStack({
      kafkaSource: 'self-managed',
      kafkaBootstrapServers: 'b1:9092,b2:9092',
      kafkaAuth: 'none',
      kafkaVpcId: 'vpc-0123456789abcdef0',
      kafkaSubnetIds: 'subnet-0123456789abcdef1,subnet-0123456789abcdef2',
      kafkaSecurityGroupId: 'sg-0123456789abcdef0',
      kafkaBatchSize: 500,
      kafkaBatchingWindowSeconds: 0,
      kafkaStartingPosition: 'TRIM_HORIZON',
    });
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      Topics: ['device-data'],
      SelfManagedEventSource: { Endpoints: { KafkaBootstrapServers: ['b1:9092', 'b2:9092'] } },
      SelfManagedKafkaEventSourceConfig: { ConsumerGroupId: 'iot-live-dashboard-device-data' },
      SourceAccessConfigurations: Match.arrayWith([
        { Type: 'VPC_SECURITY_GROUP', URI: 'sg-0123456789abcdef0' },
        { Type: 'VPC_SUBNET', URI: 'subnet-0123456789abcdef1' },
        { Type: 'VPC_SUBNET', URI: 'subnet-0123456789abcdef2' },
      ]),
      BatchSize: 500,
      StartingPosition: 'TRIM_HORIZON',
    });
    template.resourceCountIs('AWS::Lambda::EventSourceMapping', 2);
    const policies = JSON.stringify(template.findResources('AWS::IAM::Policy'));
    expect(policies).toContain('ec2:CreateNetworkInterface');
    expect(policies).not.toContain('kafka-cluster:');
    expect(JSON.stringify(template.findResources('AWS::IAM::Role'))).not.toContain('AWSLambdaMSKExecutionRole');
  });

  it('S3 failure destination: a private bucket, and the Lambda may only list it and put objects', () => {
    const { template } = buildStack({ failureDestination: 's3' });
    template.resourceCountIs('AWS::SQS::Queue', 0);
    const [bucketId] = Object.keys(template.findResources('AWS::S3::Bucket')).filter((id) => id.startsWith('StreamFailedBatches'));
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      DestinationConfig: { OnFailure: { Destination: { 'Fn::GetAtt': [bucketId, 'Arn'] } } },
    });
    const streamPolicy = Object.entries(template.findResources('AWS::IAM::Policy')).find(([id]) => id.startsWith('StreamRole'))![1];
    const s3Actions = (streamPolicy.Properties.PolicyDocument.Statement as Array<{ Action: string | string[] }>)
      .flatMap((s) => [s.Action].flat())
      .filter((a) => a.startsWith('s3:'))
      .sort();
    expect(s3Actions).toEqual(['s3:ListBucket', 's3:PutObject']);
  });

  it('topics, stage name and alarm email come from context', () => {
    const { template } = buildStack({ kafkaTopics: 'telemetry', stageName: 'prod', alarmEmail: 'ops@example.com' });
    template.resourceCountIs('AWS::Lambda::EventSourceMapping', 1);
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', { Topics: ['telemetry'] });
    template.hasResourceProperties('AWS::ApiGatewayV2::Stage', { StageName: 'prod' });
    template.hasResourceProperties('AWS::SNS::Subscription', { Protocol: 'email', Endpoint: 'ops@example.com' });
  });

  it('refuses to synth without a built dashboard, saying how to build it', () => {
    expect(() => buildStack({ dashboardAssetPath: '/nonexistent/dist' })).toThrow(/npm run build:frontend/);
  });
});
