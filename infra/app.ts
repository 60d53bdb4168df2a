#!/usr/bin/env node
/**
 * The CDK app: `npx cdk synth` / `npx cdk deploy`. Settings come from context (cdk.json, `-c`);
 * see docs/deploy.md for every key. The account and region come from the CLI's credentials
 * (CDK_DEFAULT_ACCOUNT / CDK_DEFAULT_REGION); without them the stack synthesizes env-agnostic.
 */
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { ConfigError } from '../lambdas/core/errors';
import { readConfig } from './config';
import { IotDashboardStack } from './stack';

const app = new App();
const stackName = (app.node.tryGetContext('stackName') as string | undefined) || 'IotLiveDashboard';
try {
  new IotDashboardStack(app, stackName, {
    config: readConfig(app.node),
    description: 'Serverless real-time IoT dashboard: MSK to API Gateway WebSockets to a CloudFront dashboard',
    env:
      process.env.CDK_DEFAULT_ACCOUNT && process.env.CDK_DEFAULT_REGION
        ? { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION }
        : undefined,
  });
} catch (err) {
  if (err instanceof ConfigError) {
    console.error(`Configuration error: ${err.message}\nSee docs/deploy.md for every context value.`);
    process.exit(1);
  }
  throw err;
}
// cdk-nag's AwsSolutions rules run on every synth; a finding without a justified
// acknowledgement (infra/nag.ts) fails the synth. `-c nag=false` skips them.
if (app.node.tryGetContext('nag') !== false && app.node.tryGetContext('nag') !== 'false') {
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
}
app.synth();
