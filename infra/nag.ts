/**
 * cdk-nag (v3, AwsSolutions pack) acknowledgements, each with the reason it is acceptable here.
 * The stack applies them to its own constructs as its last step, so tests and `cdk synth` see
 * the same set. cdk-nag v3 matches a finding id exactly (`AwsSolutions-IAM5[Resource::...]`), so
 * findings that name resources are spelled out from the resources' logical ids.
 */
import { Stack, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';
import type { ServiceFunction } from './constructs/service-function';
import type { IotDashboardStack } from './stack';

function ack(scope: IConstruct | undefined, id: string, reason: string): void {
  if (scope) Validations.of(scope).acknowledge({ id, reason });
}

const NODE22 =
  'Node.js 22 is the runtime this project pins and tests (esbuild target node22, infra/lambda-bundling.ts); ' +
  'moving to a newer major is a deliberate change, not an automatic one. Lambda supports Node.js 22 until 2027.';

/** Adds every justified acknowledgement to the stack's constructs. */
export function applyNagSuppressions(stack: IotDashboardStack): void {
  const functions: ServiceFunction[] = [
    stack.realtime.authorizer,
    ...Object.values(stack.realtime.routeFunctions),
    stack.stream.handler,
    stack.ops.metricsFunction,
    stack.ops.healthFunction,
    ...(stack.replay ? [stack.replay.handler] : []),
  ];
  for (const f of functions) ack(f.function, 'AwsSolutions-L1', NODE22);

  // Secrets the stack generates when no existing ARN is given.
  for (const secret of [stack.jwtSecret, stack.metricsTokenSecret]) {
    if (secret instanceof secretsmanager.Secret) {
      ack(
        secret,
        'AwsSolutions-SMG4',
        'A generated signing key / bearer token: rotating it invalidates every issued token and Prometheus scrape config, ' +
          'so it is rotated by operators on their schedule (or pass an existing secret ARN with its own rotation).',
      );
    }
  }

  // WebSocket routes: API Gateway authorizes a WebSocket API on $connect only.
  for (const [routeKey, route] of Object.entries(routesOf(stack))) {
    if (routeKey !== '$connect') {
      ack(
        route,
        'AwsSolutions-APIG4',
        'API Gateway WebSocket APIs take an authorizer on $connect only; every later message of the connection was authorized there.',
      );
    }
  }
  ack(
    stack.ops.api.node.tryFindChild('GET--metrics'),
    'AwsSolutions-APIG4',
    'GET /metrics checks a bearer token from Secrets Manager in the Lambda itself, as Prometheus scrapers send it; ' +
      'an API Gateway authorizer would add a second Lambda per scrape for the same check.',
  );
  ack(
    stack.ops.api.node.tryFindChild('GET--health'),
    'AwsSolutions-APIG4',
    'GET /health is a liveness probe for load balancers and uptime checks; it returns only up/down per dependency.',
  );

  const logsRole = stack.realtime.node.tryFindChild('ApiGatewayLogsRole');
  ack(
    logsRole,
    'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]',
    'The AWS-documented policy for the account-level role through which API Gateway writes WebSocket access logs.',
  );

  // The stream Lambda.
  const streamRole = stack.stream.handler.role;
  if (stack.stream.source.kind === 'msk') {
    ack(
      streamRole,
      'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaMSKExecutionRole]',
    'Attached by ManagedKafkaEventSource itself: the MSK event source mapping manages ENIs in the cluster VPC and ' +
      'describes the cluster with the function role, and these actions do not support resource-level scoping.',
    );
  }
  const apiLogicalId = Stack.of(stack).getLogicalId(stack.realtime.api.node.defaultChild as iam.CfnRole);
  const { subscribe, ack: ackRoute } = stack.realtime.routeFunctions;
  for (const fn of [stack.stream.handler, stack.ops.healthFunction, subscribe!, ackRoute!]) {
    for (const method of ['POST', 'GET', 'DELETE']) {
      ack(
        fn.role,
        `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:execute-api:<AWS::Region>:<AWS::AccountId>:<${apiLogicalId}>/${stack.realtime.stage.stageName}/${method}/@connections/*]`,
        'Connection ids are created at runtime; the grant is limited to this API, this stage and this one Management API method.',
      );
    }
  }
  const alertsId = Stack.of(stack).getLogicalId(stack.tables.alerts.node.defaultChild as iam.CfnRole);
  for (const fn of [stack.stream.handler, subscribe!, ackRoute!]) {
    ack(
      fn.role,
      `AwsSolutions-IAM5[Resource::<${alertsId}.Arn>/index/*]`,
      "Added by the table's grant so its indexes can be queried: the alerts table has one, the sparse index of unresolved alerts.",
    );
  }
  if (stack.stream.source.kind === 'self-managed' && stack.stream.source.vpc) {
    ack(
      streamRole,
      'AwsSolutions-IAM5[Resource::*]',
    'Self-managed Kafka in a VPC: the event source mapping creates ENIs there, and the EC2 Describe*/NetworkInterface ' +
      'actions it needs do not support resource-level permissions.',
    );
  }
  // The replay reader.
  const replay = stack.replay?.handler;
  if (replay?.function.isBoundToVpc) {
    ack(
      replay.role,
      'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole]',
      'The AWS-documented policy for a Lambda function in a VPC (its ENIs in the brokers\' subnets); the EC2 network ' +
        'interface actions it holds do not support resource-level scoping for Lambda.',
    );
  }
  for (const group of stack.replay?.consumerGroupArns ?? []) {
    ack(
      replay!.role,
      `AwsSolutions-IAM5[Resource::${group}]`,
      'kafkajs cannot read partitions without joining a consumer group, so each reader container joins one of its own, ' +
        'named <client id>-<uuid> at runtime and never committed to; the grant is limited to groups with that prefix on this cluster.',
    );
  }
  if (stack.stream.failureQueue) {
    ack(stack.stream.failureQueue, 'AwsSolutions-SQS3', 'This queue is itself the dead-letter (on-failure) destination of the Kafka event source mapping.');
  }
  if (stack.stream.failureBucket) {
    const bucketId = Stack.of(stack).getLogicalId(stack.stream.failureBucket.node.defaultChild as iam.CfnRole);
    ack(
      stack.stream.failureBucket,
      'AwsSolutions-S1',
      'Holds only failure metadata the event source mapping writes; CloudTrail data events can audit it if required.',
    );
    ack(
      streamRole,
      `AwsSolutions-IAM5[Resource::<${bucketId}.Arn>/*]`,
      'The event source mapping writes one object per failed batch under keys it chooses, inside this one bucket.',
    );
  }

  // Sign-in (authMode cognito).
  const users = stack.identity?.userPool;
  ack(
    users,
    'AwsSolutions-COG2',
    'MFA is optional (TOTP) rather than required: operators at plant consoles may not carry a phone; ' +
      'enforce it in the pool when your policy requires it. Sign-up is closed: only administrators add users.',
  );
  ack(
    users,
    'AwsSolutions-COG8',
    'The Plus feature plan (threat protection) is billed per monthly active user; the pool has no self sign-up, ' +
      'strong passwords and optional MFA. Switch the feature plan on when your policy requires it.',
  );

  // The dashboard.
  const site = stack.site;
  ack(
    site.bucket,
    'AwsSolutions-S1',
    'Static dashboard files read only by CloudFront through origin access control; they hold no data and are redeployed on every deploy.',
  );
  ack(site.distribution, 'AwsSolutions-CFR1', 'Operators of the plants may sit in any country; the data behind the page requires a token.');
  ack(
    site.distribution,
    'AwsSolutions-CFR2',
    'The distribution serves static files only; live data flows over the token-authorized WebSocket API. ' +
      'A WAF web ACL costs at least $5/month plus per-rule fees; attach one if your policy requires it.',
  );
  ack(
    site.distribution,
    'AwsSolutions-CFR3',
    'Static files only, no user data; standard logging needs an ACL-enabled log bucket. Enable it when your audit rules require it.',
  );
  ack(
    site.distribution,
    'AwsSolutions-CFR4',
    'With the default *.cloudfront.net certificate CloudFront fixes the minimum protocol; TLSv1.2_2021 needs a custom domain and ACM certificate.',
  );

  // The BucketDeployment's CDK-managed singleton Lambda: its role and runtime are set by aws-cdk-lib.
  const deployer = Stack.of(stack).node.children.find((c) => c.node.id.startsWith('Custom::CDKBucketDeployment'));
  if (deployer) {
    acknowledgeAllFindings(
      deployer,
      /^AwsSolutions-(IAM4|IAM5|L1)/,
      'The CDK-managed BucketDeployment handler: aws-cdk-lib sets its runtime and grants it read on the asset bucket, ' +
        'write on the dashboard bucket and CloudFront invalidation; it runs only during deploys.',
    );
  }
}

/** The WebSocket routes by route key. */
function routesOf(stack: IotDashboardStack): Record<string, IConstruct> {
  const out: Record<string, IConstruct> = {};
  for (const child of stack.realtime.api.node.children) {
    const m = /^(.+)-Route$/.exec(child.node.id);
    if (m) out[m[1]!] = child;
  }
  return out;
}

/**
 * Acknowledges every finding matching `rule` under `scope` with one reason. Used only for a
 * construct aws-cdk-lib owns, whose findings name resources this app does not control.
 */
function acknowledgeAllFindings(scope: IConstruct, rule: RegExp, reason: string): void {
  const report = new AwsSolutionsChecks(undefined, {}).validateScope(scope);
  for (const violation of report.violations) {
    if (rule.test(violation.ruleName)) ack(scope, violation.ruleName, reason);
  }
}
