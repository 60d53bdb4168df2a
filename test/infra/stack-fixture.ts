/**
 * Builds the stack for template tests: context from cdk.json (the defaults users get), the test
 * dashboard fixture instead of frontend/dist, and Lambda bundling skipped (bundle.test.ts covers
 * the bundles), so a synth takes about a second.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { readConfig } from '../../infra/config';
import { IotDashboardStack } from '../../infra/stack';

export const REPO_ROOT = path.resolve(__dirname, '..', '..');
export const DASHBOARD_FIXTURE = path.join(__dirname, 'fixtures', 'dashboard');

/** The context block of cdk.json. */
export function cdkJsonContext(): Record<string, unknown> {
  return JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'cdk.json'), 'utf8')).context;
}

/** The account and region the test stacks target, as `cdk deploy` with credentials would. */
const TEST_ENV = { account: '123456789012', region: 'eu-west-1' } as const;

/** A real-shaped MSK cluster in {@link TEST_ENV}: a concrete-account synth refuses the placeholder. */
export const TEST_MSK_CLUSTER_ARN = `arn:aws:kafka:${TEST_ENV.region}:${TEST_ENV.account}:cluster/plant-telemetry/0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0-3`;

/**
 * A synthesized stack and its template, with `overrides` applied over cdk.json's context and
 * {@link TEST_MSK_CLUSTER_ARN}. `env: 'agnostic'` synthesizes without account and region, as
 * `cdk synth` does on a machine with no credentials.
 */
export function buildStack(
  overrides: Record<string, unknown> = {},
  env: 'agnostic' | { account: string; region: string } = TEST_ENV,
): { app: App; stack: IotDashboardStack; template: Template } {
  const app = new App({
    context: {
      ...cdkJsonContext(),
      mskClusterArn: TEST_MSK_CLUSTER_ARN,
      dashboardAssetPath: DASHBOARD_FIXTURE,
      'aws:cdk:bundling-stacks': [],
      ...overrides,
    },
  });
  const stack = new IotDashboardStack(app, 'TestStack', {
    config: readConfig(app.node),
    env: env === 'agnostic' ? undefined : env,
  });
  return { app, stack, template: Template.fromStack(stack) };
}

/** Logical-id prefixes of the functions, by handler name. */
export const FUNCTIONS = {
  authorizer: 'RealtimeAuthorizerFunction',
  connect: 'RealtimeConnectFunction',
  disconnect: 'RealtimeDisconnectFunction',
  subscribe: 'RealtimeSubscribeFunction',
  unsubscribe: 'RealtimeUnsubscribeFunction',
  ping: 'RealtimePingFunction',
  ack: 'RealtimeAckFunction',
  default: 'RealtimeDefaultRouteFunction',
  stream: 'StreamFunction',
  metrics: 'OpsMetricsFunction',
  health: 'OpsHealthFunction',
} as const;

/**
 * Context that gives the MSK stack what its replay reader needs: the IAM listener's brokers and
 * the cluster's VPC, client subnets and a security group the brokers admit.
 */
export const REPLAY_CONTEXT = {
  kafkaBootstrapServers: 'b-1.plant.abc123.c2.kafka.eu-west-1.amazonaws.com:9098,b-2.plant.abc123.c2.kafka.eu-west-1.amazonaws.com:9098',
  kafkaVpcId: 'vpc-0a1b2c3d4e5f60718',
  kafkaSubnetIds: 'subnet-0a1b2c3d4e5f60001,subnet-0a1b2c3d4e5f60002,subnet-0a1b2c3d4e5f60003',
  kafkaSecurityGroupId: 'sg-0a1b2c3d4e5f60718',
} as const;

/** Logical-id prefix of the replay reader function, deployed only with {@link REPLAY_CONTEXT} (or self-managed Kafka). */
export const REPLAY_FUNCTION = 'ReplayReaderFunction';
