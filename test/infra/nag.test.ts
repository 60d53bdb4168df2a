import * as iam from 'aws-cdk-lib/aws-iam';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';
import { REPLAY_CONTEXT, buildStack } from './stack-fixture';

const ACCOUNT = '123456789012';

function findings(stack: IConstruct): string[] {
  const report = new AwsSolutionsChecks(undefined, {}).validateScope(stack);
  return report.violations.flatMap((v) =>
    v.violatingResources.map((r) => `${v.ruleName} at ${(r as { constructPath?: string }).constructPath ?? '?'}`),
  );
}

describe('cdk-nag AwsSolutions', () => {
  it.each([
    ['defaults (Cognito sign-in, MSK IAM, SQS)', {}],
    ['HS256 tokens, no sign-in', { authMode: 'hs256' }],
    [
      'JWKS auth, MSK SASL/SCRAM with a CMK-encrypted secret, S3 failure destination, existing metrics secret, API Gateway account role',
      {
        apiGatewayLogsRole: true,
        authMode: 'jwks',
        jwksUrl: 'https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_abc/.well-known/jwks.json',
        jwtIssuer: 'https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_abc',
        jwtAudience: 'dashboard',
        kafkaAuth: 'sasl-scram-512',
        kafkaSecretArn: `arn:aws:secretsmanager:eu-west-1:${ACCOUNT}:secret:AmazonMSK_iot-AbCdEf`,
        kafkaSecretKmsKeyArn: `arn:aws:kms:eu-west-1:${ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab`,
        failureDestination: 's3',
        metricsTokenSecretArn: `arn:aws:secretsmanager:eu-west-1:${ACCOUNT}:secret:metrics-AbCdEf`,
      },
    ],
    ['MSK IAM with the replay reader in the cluster VPC', REPLAY_CONTEXT],
    [
      'MSK SASL/SCRAM with the replay reader in the cluster VPC',
      {
        ...REPLAY_CONTEXT,
        kafkaBootstrapServers: 'b-1.plant.abc123.c2.kafka.eu-west-1.amazonaws.com:9096',
        kafkaAuth: 'sasl-scram-512',
        kafkaSecretArn: `arn:aws:secretsmanager:eu-west-1:${ACCOUNT}:secret:AmazonMSK_iot-AbCdEf`,
        kafkaSecretKmsKeyArn: `arn:aws:kms:eu-west-1:${ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab`,
      },
    ],
    [
      'self-managed Kafka in a VPC without auth',
      {
        kafkaSource: 'self-managed',
        kafkaBootstrapServers: 'b1:9092,b2:9092',
        kafkaAuth: 'none',
        kafkaVpcId: 'vpc-0123456789abcdef0',
        kafkaSubnetIds: 'subnet-0123456789abcdef1,subnet-0123456789abcdef2',
        kafkaSecurityGroupId: 'sg-0123456789abcdef0',
      },
    ],
    [
      'self-managed Kafka over the internet with SASL/SCRAM-256',
      {
        kafkaSource: 'self-managed',
        kafkaBootstrapServers: 'kafka.example.com:9096',
        kafkaAuth: 'sasl-scram-256',
        kafkaSecretArn: `arn:aws:secretsmanager:eu-west-1:${ACCOUNT}:secret:kafka-AbCdEf`,
      },
    ],
  ])('has no unacknowledged finding: %s', (_name, context) => {
    const { stack } = buildStack(context);
    expect(findings(stack)).toEqual([]);
  });

  it('still reports a finding nobody justified (the acknowledgements are not blanket)', () => {
    const { stack } = buildStack();
    stack.stream.handler.function.addToRolePolicy(
      new iam.PolicyStatement({ actions: ['dynamodb:Scan'], resources: ['*'] }),
    );
    stack.ops.metricsFunction.function.addToRolePolicy(
      new iam.PolicyStatement({ actions: ['s3:*'], resources: ['arn:aws:s3:::some-bucket'] }),
    );
    expect(findings(stack).sort()).toEqual([
      'AwsSolutions-IAM5[Action::s3:*] at TestStack/Ops/Metrics/Role/DefaultPolicy/Resource',
      'AwsSolutions-IAM5[Resource::*] at TestStack/Stream/Stream/Role/DefaultPolicy/Resource',
    ]);
  });
});
