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

/** A synthesized stack and its template, with `overrides` applied over cdk.json's context. */
export function buildStack(overrides: Record<string, unknown> = {}): { app: App; stack: IotDashboardStack; template: Template } {
  const app = new App({
    context: {
      ...cdkJsonContext(),
      dashboardAssetPath: DASHBOARD_FIXTURE,
      'aws:cdk:bundling-stacks': [],
      ...overrides,
    },
  });
  const stack = new IotDashboardStack(app, 'TestStack', {
    config: readConfig(app.node),
    env: { account: '123456789012', region: 'eu-west-1' },
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
