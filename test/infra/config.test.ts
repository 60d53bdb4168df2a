import * as fs from 'node:fs';
import * as path from 'node:path';
import { ConfigError } from '../../lambdas/core/errors';
import { PLACEHOLDER_MSK_CLUSTER_ARN, readConfig } from '../../infra/config';
import { REPLAY_CONTEXT, REPO_ROOT, cdkJsonContext } from './stack-fixture';

const SECRET = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:kafka-AbCdEf';

describe('readConfig', () => {
  it('gives the same settings from cdk.json as from its own defaults, so the two cannot drift', () => {
    const fromCdkJson = readConfig(cdkJsonContext());
    const fromDefaults = readConfig({});
    expect(fromCdkJson).toEqual(fromDefaults);
    expect(fromDefaults.mskClusterArn).toBe(PLACEHOLDER_MSK_CLUSTER_ARN);
    expect(fromDefaults.kafkaTopics).toEqual(['device-data', 'alerts']);
    expect(fromDefaults.kafkaAuth).toBe('iam');
    expect(fromDefaults.authMode).toBe('cognito');
    expect(fromDefaults.sitesClaim).toBe('custom:sites');
    // No account-wide side effect and no concurrency reservation unless asked for.
    expect(fromDefaults.apiGatewayLogsRole).toBe(false);
    expect(fromDefaults.reservedConcurrency).toEqual({});
  });

  it('documents every context key cdk.json sets in docs/deploy.md', () => {
    const docs = fs.readFileSync(path.join(REPO_ROOT, 'docs', 'deploy.md'), 'utf8');
    const keys = Object.keys(cdkJsonContext()).filter((k) => !k.startsWith('@') && k !== 'cli-telemetry');
    expect(keys.filter((k) => !docs.includes(`\`${k}\``))).toEqual([]);
  });

  it('accepts `-c` strings for numbers, booleans and lists', () => {
    const c = readConfig({
      kafkaBatchSize: '500',
      kafkaTopics: 'a, b ,c',
      apiGatewayLogsRole: 'false',
      kafkaSource: 'self-managed',
      kafkaBootstrapServers: 'b1:9096,b2:9096',
      kafkaSecretArn: SECRET,
    });
    expect(c.kafkaBatchSize).toBe(500);
    expect(c.kafkaTopics).toEqual(['a', 'b', 'c']);
    expect(c.apiGatewayLogsRole).toBe(false);
    expect(c.kafkaBootstrapServers).toEqual(['b1:9096', 'b2:9096']);
    expect(c.kafkaAuth).toBe('sasl-scram-512');
  });

  it.each([
    [{ authMode: 'jwks' }, /jwtIssuer.*jwtAudience/],
    [{ authMode: 'jwks', jwtIssuer: 'https://login.example.com' }, /jwtAudience/],
    [{ authMode: 'jwks', jwtIssuer: 'http://insecure.example.com', jwtAudience: 'dashboard' }, /jwtIssuer.*https/],
    [{ authMode: 'jwks', jwtIssuer: 'https://i.example.com', jwtAudience: 'd', jwksUrl: 'http://insecure/jwks.json' }, /https/],
    [{ authMode: 'jwks', jwtIssuer: 'https://i.example.com', jwtAudience: 'd', oidcScopes: 'profile,email' }, /openid/],
    [{ cognitoDomainPrefix: 'my-amazon-login' }, /cognitoDomainPrefix/],
    [{ cognitoDomainPrefix: 'Upper' }, /cognitoDomainPrefix/],
    [{ authMode: 'rs256' }, /authMode/],
    [{ kafkaSource: 'self-managed', kafkaSecretArn: SECRET }, /kafkaBootstrapServers/],
    [{ kafkaSource: 'self-managed', kafkaBootstrapServers: 'b:9092', kafkaAuth: 'iam' }, /MSK only/],
    [{ kafkaSource: 'self-managed', kafkaBootstrapServers: 'b:9092', kafkaAuth: 'none' }, /VPC/],
    [{ kafkaSource: 'self-managed', kafkaBootstrapServers: 'b:9092' }, /kafkaSecretArn/],
    [{ kafkaAuth: 'basic', kafkaSecretArn: SECRET }, /MSK must be iam or sasl-scram-512/],
    [{ kafkaAuth: 'sasl-scram-512' }, /kafkaSecretArn/],
    [{ mskClusterArn: 'arn:aws:kafka:eu-west-1:123456789012:topic/x/y/z' }, /mskClusterArn/],
    [{ kafkaSecretArn: 'arn:aws:kms:eu-west-1:123456789012:key/k' }, /kafkaSecretArn/],
    [{ metricsTokenSecretArn: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:metrics' }, /complete secret ARN/],
    [{ kafkaBatchSize: 0 }, /kafkaBatchSize/],
    [{ kafkaBatchingWindowSeconds: 301 }, /kafkaBatchingWindowSeconds/],
    [{ kafkaStartingPosition: 'AT_TIMESTAMP' }, /kafkaStartingPosition/],
    [{ kafkaTopics: [] as string[] }, /kafkaTopics/],
    [{ stageName: 'bad stage' }, /stageName/],
    [{ apiGatewayLogsRole: 'yes' }, /apiGatewayLogsRole/],
    [{ reservedConcurrency: '{"stram": 5}' }, /"stram".*handlers are/],
    [{ reservedConcurrency: { stream: -1 } }, /reservedConcurrency.stream/],
    [{ reservedConcurrency: '{not json' }, /reservedConcurrency" must be a JSON object/],
    [{ tags: { Owner: 42 } }, /tags.Owner/],
    [{ streamIdleMinutes: -5 }, /streamIdleMinutes/],
    [{ healthThrottleRate: 0 }, /healthThrottleRate/],
    [{ kafkaReplay: 'on' }, /kafkaReplay" is on.*kafkaBootstrapServers.*get-bootstrap-brokers.*kafkaVpcId/],
    [{ kafkaReplay: 'yes' }, /kafkaReplay/],
    [{ ...REPLAY_CONTEXT, kafkaBootstrapServers: 'b-1.plant.kafka.eu-west-1.amazonaws.com:9092' }, /port 9098 or 9198.*BootstrapBrokerStringSaslIam/],
    [
      { ...REPLAY_CONTEXT, kafkaAuth: 'sasl-scram-512', kafkaSecretArn: SECRET, kafkaBootstrapServers: 'b-1:9098' },
      /port 9096 or 9196.*BootstrapBrokerStringSaslScram/,
    ],
    [{ ...REPLAY_CONTEXT, kafkaBootstrapServers: 'b-1.plant.kafka.eu-west-1.amazonaws.com' }, /host:port/],
    [{ ...REPLAY_CONTEXT, kafkaSecurityGroupId: 'sg-1' }, /kafkaSecurityGroupId.*sg-<8 or 17 hex digits>/],
    [{ ...REPLAY_CONTEXT, kafkaSubnetIds: 'subnet-0a1b2c3d,subnet-x' }, /kafkaSubnetIds.*"subnet-x"/],
    [{ kafkaSubnetIds: 'subnet-0a1b2c3d', kafkaSecurityGroupId: 'sg-0a1b2c3d' }, /need "kafkaVpcId"/],
  ])('rejects %j naming the key to fix', (context, message) => {
    expect(() => readConfig(context)).toThrow(ConfigError);
    expect(() => readConfig(context)).toThrow(message);
  });

  describe('the replay reader', () => {
    it('is left out of the defaults (MSK brokers are reachable only in the cluster VPC), saying what to set', () => {
      const c = readConfig({});
      expect(c.kafkaReplay).toBe('auto');
      expect(c.replayReader).toBeUndefined();
      expect(c.replayReaderMissing).toMatch(/kafkaBootstrapServers.*BootstrapBrokerStringSaslIam.*kafkaVpcId, kafkaSubnetIds and kafkaSecurityGroupId/);
    });

    it('reaches MSK through the given brokers and VPC', () => {
      const c = readConfig({ ...REPLAY_CONTEXT, kafkaReplay: 'on' });
      expect(c.replayReader).toEqual({
        bootstrapServers: REPLAY_CONTEXT.kafkaBootstrapServers.split(','),
        vpc: { vpcId: REPLAY_CONTEXT.kafkaVpcId, subnetIds: REPLAY_CONTEXT.kafkaSubnetIds.split(','), securityGroupId: REPLAY_CONTEXT.kafkaSecurityGroupId },
      });
      expect(c.replayReaderMissing).toBeUndefined();
    });

    it('reaches self-managed brokers where the event source mapping does, in a VPC or not', () => {
      const overInternet = readConfig({ kafkaSource: 'self-managed', kafkaBootstrapServers: 'kafka.example.com:9096', kafkaSecretArn: SECRET });
      expect(overInternet.replayReader).toEqual({ bootstrapServers: ['kafka.example.com:9096'], vpc: undefined });
    });

    it('is left out when off, whatever else is set', () => {
      const c = readConfig({ ...REPLAY_CONTEXT, kafkaReplay: 'off' });
      expect(c.replayReader).toBeUndefined();
      expect(c.replayReaderMissing).toBe('kafkaReplay is off');
    });
  });
});
