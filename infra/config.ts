/**
 * The deployment settings of the stack, read once from CDK context (`cdk.json` or `-c key=value`)
 * and validated before any construct is built, so a bad value fails synth with a message that says
 * what to set. Constructs receive these typed values; none of them reads context itself.
 */
import type { Node } from 'constructs';
import { ConfigError } from '../lambdas/core/errors';
import { HANDLER_NAMES, type HandlerName } from './lambda-bundling';

/** Where the stream Lambda reads Kafka from. */
export type KafkaSource = 'msk' | 'self-managed';

/**
 * How the event source mapping authenticates to Kafka. `iam` is MSK only; `sasl-scram-512` works
 * for both; `sasl-scram-256` and `basic` (SASL/PLAIN) are self-managed only; `none` is
 * self-managed only and needs a VPC (brokers reachable without credentials).
 */
export type KafkaAuth = 'iam' | 'sasl-scram-512' | 'sasl-scram-256' | 'basic' | 'none';

/**
 * How operators sign in and how the $connect authorizer checks their tokens:
 * - `cognito`: the stack creates a Cognito user pool with managed login and the dashboard's app
 *   client; the authorizer accepts that pool's ID tokens for that client;
 * - `jwks`: an existing OpenID Connect issuer (Entra ID, Okta, Keycloak, another pool), named by
 *   `jwtIssuer` and `jwtAudience` (the dashboard's client id there);
 * - `hs256`: no sign-in; tokens signed with a shared secret (`npm run token`, scripts).
 */
export type AuthMode = 'cognito' | 'jwks' | 'hs256';

/** A VPC through which Kafka brokers are reachable: its id, subnets, and a security group the brokers admit. */
export interface KafkaVpc {
  readonly vpcId: string;
  readonly subnetIds: string[];
  readonly securityGroupId: string;
}

/**
 * Whether to deploy the replay reader (the function that reads a resume's missed records from
 * Kafka, docs/deploy.md "Resume"): `auto` when the stack knows how to reach the brokers, with a
 * synth warning otherwise; `on` fails synth when it cannot; `off` never (resumes then get the
 * snapshot, as too far behind).
 */
export type KafkaReplay = 'auto' | 'on' | 'off';

/** Where the stream Lambda's event source mapping sends records it could not process. */
export type FailureDestination = 'sqs' | 's3';

/** Kafka position a new consumer group starts from. */
export type StartingPosition = 'LATEST' | 'TRIM_HORIZON';

/** Log level of the Lambdas (Powertools Logger `LOG_LEVEL`). */
export type LogLevel = 'DEBUG' | 'INFO' | 'WARN' | 'ERROR';

/**
 * The placeholder MSK cluster ARN `cdk.json` ships with, so that `cdk synth` works on a machine
 * with no AWS account. Deploying with it fails at the event source mapping; synth warns.
 */
export const PLACEHOLDER_MSK_CLUSTER_ARN =
  'arn:aws:kafka:us-east-1:111111111111:cluster/iot-placeholder/00000000-0000-0000-0000-000000000000-1';

/** Every deployment setting, with the context key it comes from and its default. */
export interface DeployConfig {
  /** Context `serviceName`: Powertools service name, also the `service` dimension of custom metrics. Default `iot-live-dashboard`. */
  readonly serviceName: string;
  /** Context `metricsNamespace`: CloudWatch namespace of the EMF metrics. Default `IotLiveDashboard`. */
  readonly metricsNamespace: string;
  /** Context `stageName`: WebSocket API stage name, the last path segment of the wss URL. Default `live`. */
  readonly stageName: string;
  /** Context `logLevel`. Default `INFO`. */
  readonly logLevel: LogLevel;
  /** Context `logRetentionDays`: retention of every log group the stack creates. Default 30. */
  readonly logRetentionDays: number;

  /** Context `authMode`. Default `cognito`. */
  readonly authMode: AuthMode;
  /** Context `jwtSecretArn`: existing Secrets Manager secret holding the HS256 key. Default: the stack creates one. */
  readonly jwtSecretArn?: string;
  /** Context `jwksUrl`, `jwks` mode: the issuer's key set. Default: the `jwks_uri` of the issuer's discovery document. */
  readonly jwksUrl?: string;
  /** Context `jwtIssuer`: the issuer URL, required for `jwks`; for `hs256` the expected `iss`, default not checked. */
  readonly jwtIssuer?: string;
  /** Context `jwtAudience`: the dashboard's client id at the issuer, required for `jwks`; for `hs256` the expected `aud`, default not checked. */
  readonly jwtAudience?: string;
  /** Context `oidcScopes`, `jwks` mode: scopes the dashboard asks for. Default `openid,profile,email`. */
  readonly oidcScopes: string[];
  /** Context `sitesClaim`, `jwks` and `hs256` modes: the ID token claim listing a user's sites. Default `sites` (`custom:sites` for `cognito`). */
  readonly sitesClaim: string;
  /** Context `cognitoDomainPrefix`, `cognito` mode: the managed login domain `{prefix}.auth.{region}.amazoncognito.com`. Default `{stack name}-{account}`, lower case. */
  readonly cognitoDomainPrefix?: string;
  /** Context `metricsTokenSecretArn`: existing secret holding the GET /metrics bearer token. Default: the stack creates one. */
  readonly metricsTokenSecretArn?: string;

  /** Context `kafkaSource`. Default `msk`. */
  readonly kafkaSource: KafkaSource;
  /** Context `mskClusterArn`: required for `msk`. Default {@link PLACEHOLDER_MSK_CLUSTER_ARN} (synth only). */
  readonly mskClusterArn: string;
  /**
   * Context `kafkaBootstrapServers`: `host:port` list (array or comma-separated), required for
   * `self-managed`; for `msk`, the cluster's brokers on the listener of `kafkaAuth` (ports 9098 for
   * IAM, 9096 for SCRAM), which only the replay reader uses.
   */
  readonly kafkaBootstrapServers: string[];
  /** Context `kafkaAuth`. Default `iam` for MSK, `sasl-scram-512` for self-managed. */
  readonly kafkaAuth: KafkaAuth;
  /** Context `kafkaSecretArn`: SASL credentials secret, required for every auth but `iam` and `none`. */
  readonly kafkaSecretArn?: string;
  /** Context `kafkaSecretKmsKeyArn`: the customer managed key encrypting that secret (MSK SCRAM secrets need one). */
  readonly kafkaSecretKmsKeyArn?: string;
  /**
   * Context `kafkaVpcId`, `kafkaSubnetIds`, `kafkaSecurityGroupId`: the VPC the brokers are reachable
   * in. Self-managed: the event source mapping and the replay reader connect through it (default over
   * the internet). MSK: the cluster's VPC, client subnets and a security group its brokers admit,
   * for the replay reader only (the mapping finds the cluster's network itself).
   */
  readonly kafkaVpc?: KafkaVpc;
  /** Context `kafkaTopics`: topics to consume (array or comma-separated). Default `device-data,alerts`. */
  readonly kafkaTopics: string[];
  /** Context `kafkaConsumerGroupPrefix`: consumer group id is `<prefix>-<topic>`. Default `iot-live-dashboard`. */
  readonly kafkaConsumerGroupPrefix: string;
  /** Context `kafkaReplay`. Default `auto`. */
  readonly kafkaReplay: KafkaReplay;
  /** Where the replay reader reaches the brokers; undefined when none is deployed ({@link replayReaderMissing} says why). */
  readonly replayReader?: { readonly bootstrapServers: string[]; readonly vpc?: KafkaVpc };
  /** Why no replay reader is deployed, when none is. */
  readonly replayReaderMissing?: string;
  /** Context `kafkaBatchSize`: records per invocation, 1..10000. Default 100. */
  readonly kafkaBatchSize: number;
  /** Context `kafkaBatchingWindowSeconds`: wait for a fuller batch, 0..300 s. Default 1. */
  readonly kafkaBatchingWindowSeconds: number;
  /** Context `kafkaStartingPosition`. Default `LATEST` (a live dashboard does not replay history). */
  readonly kafkaStartingPosition: StartingPosition;
  /** Context `failureDestination`. Default `sqs`. */
  readonly failureDestination: FailureDestination;
  /** Context `postConcurrency`: most PostToConnection calls in flight per stream invocation. Default 512. */
  readonly postConcurrency: number;
  /** Context `postQuota`: the account's API Gateway request quota (posts/s) the stream paces under. Default 10000. */
  readonly postQuota: number;
  /** Context `postQuotaShares`: stream invocations that run at once (the topics' partitions), sharing `postQuota`. Default 2. */
  readonly postQuotaShares: number;

  /** Context `wsThrottleRate` / `wsThrottleBurst`: stage-wide request rate (per s) and burst. Default 500 / 1000. */
  readonly wsThrottle: { readonly rateLimit: number; readonly burstLimit: number };
  /** Context `httpThrottleRate` / `httpThrottleBurst` for GET /metrics. Default 20 / 40. */
  readonly httpThrottle: { readonly rateLimit: number; readonly burstLimit: number };
  /** Context `healthThrottleRate` / `healthThrottleBurst` for GET /health, a limit of its own. Default 5 / 10. */
  readonly healthThrottle: { readonly rateLimit: number; readonly burstLimit: number };
  /**
   * Context `apiGatewayLogsRole`: create the account-level role that lets API Gateway write
   * WebSocket access logs and set it on the account (account and region wide: it replaces a role
   * set by anyone else, and is retained on delete). Default false: the account needs one already,
   * see docs/deploy.md "Before the first deploy".
   */
  readonly apiGatewayLogsRole: boolean;
  /**
   * Context `reservedConcurrency`: reserved concurrency by handler name, e.g.
   * `{"authorizer": 20, "stream": 10}` (JSON on the command line). Default none: a new account's
   * concurrency quota (10) leaves no room for any reservation.
   */
  readonly reservedConcurrency: Partial<Record<HandlerName, number>>;
  /** Context `tags`: tags added to every resource besides `Application` and `Stack`, e.g. `{"CostCenter": "ops"}`. Default none. */
  readonly tags: Readonly<Record<string, string>>;

  /** Context `dashboardAssetPath`: the built dashboard (`npm run build:frontend`). Default `frontend/dist`. */
  readonly dashboardAssetPath: string;

  /** Context `alarmEmail`: subscribe this address to the alarm topic. Default: no subscription. */
  readonly alarmEmail?: string;
  /** Context `offsetLagThreshold`: alarm when the consumer lags by more records than this. Default 1000. */
  readonly offsetLagThreshold: number;
  /** Context `staleConnectionsThreshold`: alarm when more stale connections than this are found in 5 minutes. Default 100. */
  readonly staleConnectionsThreshold: number;
  /** Context `streamIdleMinutes`: alarm when the stream Lambda was not invoked for this long; 0 turns it off. Default 15. */
  readonly streamIdleMinutes: number;
  /** Context `alarmOkActions`: also notify when an alarm returns to OK. Default false. */
  readonly alarmOkActions: boolean;
}

/** A source of context values: a construct node, or a plain record in tests. */
export type ContextSource = Pick<Node, 'tryGetContext'> | Record<string, unknown>;

function getter(source: ContextSource): (key: string) => unknown {
  if (typeof (source as Node).tryGetContext === 'function') {
    return (key) => (source as Node).tryGetContext(key);
  }
  return (key) => (source as Record<string, unknown>)[key];
}

/**
 * Reads and validates every deployment setting from context.
 * @throws ConfigError naming the key to fix.
 */
export function readConfig(source: ContextSource): DeployConfig {
  const get = getter(source);

  const str = (key: string, fallback: string): string => optStr(key) ?? fallback;
  const optStr = (key: string): string | undefined => {
    const v = get(key);
    if (v === undefined || v === null || v === '') return undefined;
    if (typeof v !== 'string') throw new ConfigError(`context "${key}" must be a string, got ${JSON.stringify(v)}`);
    return v.trim();
  };
  const oneOf = <T extends string>(key: string, allowed: readonly T[], fallback: T): T => {
    const v = str(key, fallback);
    if (!(allowed as readonly string[]).includes(v)) {
      throw new ConfigError(`context "${key}" must be one of ${allowed.join(', ')}; got "${v}"`);
    }
    return v as T;
  };
  const int = (key: string, fallback: number, min: number, max: number): number => {
    const raw = get(key);
    // `-c key=5` arrives as the string "5"; cdk.json gives a number.
    const v = raw === undefined || raw === null || raw === '' ? fallback : Number(raw);
    if (!Number.isInteger(v) || v < min || v > max) {
      throw new ConfigError(`context "${key}" must be an integer in ${min}..${max}; got ${JSON.stringify(raw)}`);
    }
    return v;
  };
  const bool = (key: string, fallback: boolean): boolean => {
    const v = get(key);
    if (v === undefined || v === null || v === '') return fallback;
    if (v === true || v === 'true') return true;
    if (v === false || v === 'false') return false;
    throw new ConfigError(`context "${key}" must be true or false; got ${JSON.stringify(v)}`);
  };
  const list = (key: string, fallback: string[]): string[] => {
    const v = get(key);
    if (v === undefined || v === null || v === '') return fallback;
    const items = Array.isArray(v) ? v.map(String) : typeof v === 'string' ? v.split(',') : undefined;
    if (!items) throw new ConfigError(`context "${key}" must be a list or a comma-separated string`);
    return items.map((s) => s.trim()).filter((s) => s.length > 0);
  };
  const object = (key: string): Record<string, unknown> => {
    const raw = get(key);
    if (raw === undefined || raw === null || raw === '') return {};
    let v = raw;
    if (typeof raw === 'string') {
      try {
        v = JSON.parse(raw);
      } catch (error) {
        throw new ConfigError(`context "${key}" must be a JSON object; got ${raw}`, { cause: error });
      }
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ConfigError(`context "${key}" must be a JSON object`);
    return v as Record<string, unknown>;
  };
  const arn = (key: string, service: string): string | undefined => {
    const v = optStr(key);
    if (v !== undefined && !new RegExp(`^arn:aws[a-z-]*:${service}:`).test(v)) {
      throw new ConfigError(`context "${key}" must be an ARN of service ${service}; got "${v}"`);
    }
    // A partial secret ARN (no "-" and 6 random characters) makes the IAM grant name a resource
    // that does not exist: the deploy works and every GetSecretValue is denied.
    if (v !== undefined && service === 'secretsmanager' && !/:secret:.+-[A-Za-z0-9]{6}$/.test(v)) {
      throw new ConfigError(
        `context "${key}" must be the complete secret ARN, ending in -<6 characters> (aws secretsmanager describe-secret --secret-id <name> --query ARN); got "${v}"`,
      );
    }
    return v;
  };

  const authMode = oneOf<AuthMode>('authMode', ['cognito', 'jwks', 'hs256'], 'cognito');
  const jwksUrl = optStr('jwksUrl');
  const jwtIssuer = optStr('jwtIssuer');
  const jwtAudience = optStr('jwtAudience');
  if (authMode === 'jwks' && (!jwtIssuer || !jwtAudience)) {
    throw new ConfigError(
      'context "jwtIssuer" (the issuer URL) and "jwtAudience" (the dashboard\'s client id there) are required when authMode is jwks: ' +
        'without them any token of any client of the issuer would be accepted',
    );
  }
  for (const [key, value] of [['jwksUrl', jwksUrl], ['jwtIssuer', authMode === 'jwks' ? jwtIssuer : undefined]] as const) {
    if (value !== undefined && !/^https:\/\//.test(value)) throw new ConfigError(`context "${key}" must be an https URL; got "${value}"`);
  }
  const oidcScopes = list('oidcScopes', ['openid', 'profile', 'email']);
  if (!oidcScopes.includes('openid')) throw new ConfigError('context "oidcScopes" must include openid');
  const cognitoDomainPrefix = optStr('cognitoDomainPrefix');
  if (cognitoDomainPrefix !== undefined && (!/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/.test(cognitoDomainPrefix) || /aws|amazon|cognito/.test(cognitoDomainPrefix))) {
    throw new ConfigError(`context "cognitoDomainPrefix" must be lower-case letters, digits and hyphens without aws, amazon or cognito; got "${cognitoDomainPrefix}"`);
  }

  const kafkaSource = oneOf<KafkaSource>('kafkaSource', ['msk', 'self-managed'], 'msk');
  const kafkaAuth = oneOf<KafkaAuth>(
    'kafkaAuth',
    ['iam', 'sasl-scram-512', 'sasl-scram-256', 'basic', 'none'],
    kafkaSource === 'msk' ? 'iam' : 'sasl-scram-512',
  );
  const mskClusterArn = arn('mskClusterArn', 'kafka') ?? PLACEHOLDER_MSK_CLUSTER_ARN;
  const kafkaBootstrapServers = list('kafkaBootstrapServers', []);
  const kafkaSecretArn = arn('kafkaSecretArn', 'secretsmanager');
  const vpcId = optStr('kafkaVpcId');
  const subnetIds = list('kafkaSubnetIds', []);
  const securityGroupId = optStr('kafkaSecurityGroupId');
  const kafkaVpc = vpcId ? { vpcId, subnetIds, securityGroupId: securityGroupId ?? '' } : undefined;

  if (kafkaVpc && (kafkaVpc.subnetIds.length === 0 || !kafkaVpc.securityGroupId)) {
    throw new ConfigError('context "kafkaVpcId" needs "kafkaSubnetIds" and "kafkaSecurityGroupId" as well');
  }
  // CloudFormation takes these ids only in AWS's own form (8 or 17 hex digits); a typo would pass
  // synth and fail the deploy at the Lambda's VPC configuration.
  for (const [key, prefix, ids] of [
    ['kafkaVpcId', 'vpc', vpcId ? [vpcId] : []],
    ['kafkaSubnetIds', 'subnet', subnetIds],
    ['kafkaSecurityGroupId', 'sg', securityGroupId ? [securityGroupId] : []],
  ] as const) {
    const bad = ids.find((id) => !new RegExp(`^${prefix}-([0-9a-f]{8}|[0-9a-f]{17})$`).test(id));
    if (bad !== undefined) throw new ConfigError(`context "${key}" must hold ${prefix}-<8 or 17 hex digits> ids; got "${bad}"`);
  }
  if (!kafkaVpc && (subnetIds.length > 0 || securityGroupId)) {
    throw new ConfigError('context "kafkaSubnetIds" and "kafkaSecurityGroupId" need "kafkaVpcId" (the VPC they belong to) as well');
  }
  const kafkaReplay = oneOf<KafkaReplay>('kafkaReplay', ['auto', 'on', 'off'], 'auto');
  let replayReader: DeployConfig['replayReader'];
  let replayReaderMissing: string | undefined;
  if (kafkaSource === 'msk') {
    if (!['iam', 'sasl-scram-512'].includes(kafkaAuth)) {
      throw new ConfigError(`context "kafkaAuth" for MSK must be iam or sasl-scram-512; got "${kafkaAuth}"`);
    }
    if (!/^arn:aws[a-z-]*:kafka:[a-z0-9-]+:\d{12}:cluster\/[^/]+\/[^/]+$/.test(mskClusterArn)) {
      throw new ConfigError(`context "mskClusterArn" must be arn:aws:kafka:<region>:<account>:cluster/<name>/<uuid>; got "${mskClusterArn}"`);
    }
    // MSK listens for each auth on ports of its own (private, public); a string of another
    // listener would connect and then fail every SASL handshake.
    const ports = kafkaAuth === 'iam' ? ['9098', '9198'] : ['9096', '9196'];
    const listener = kafkaAuth === 'iam' ? 'BootstrapBrokerStringSaslIam' : 'BootstrapBrokerStringSaslScram';
    const wrong = kafkaBootstrapServers.find((server) => !ports.includes(/^[^\s:]+:(\d+)$/.exec(server)?.[1] ?? ''));
    if (wrong !== undefined) {
      throw new ConfigError(
        `context "kafkaBootstrapServers" for MSK with kafkaAuth ${kafkaAuth} must be host:port on port ${ports.join(' or ')}, ` +
          `the ${listener} of aws kafka get-bootstrap-brokers --cluster-arn <arn>; got "${wrong}"`,
      );
    }
    if (kafkaBootstrapServers.length > 0 && kafkaVpc) {
      replayReader = { bootstrapServers: kafkaBootstrapServers, vpc: kafkaVpc };
    } else {
      replayReaderMissing =
        'MSK brokers are reachable only inside the cluster\'s VPC: set kafkaBootstrapServers (the ' +
        `${listener} of aws kafka get-bootstrap-brokers --cluster-arn <arn>), and kafkaVpcId, kafkaSubnetIds and ` +
        "kafkaSecurityGroupId (the cluster's VPC, its client subnets and a security group the brokers admit: " +
        'aws kafka describe-cluster-v2 --cluster-arn <arn>)';
    }
  } else {
    if (kafkaAuth === 'iam') throw new ConfigError('context "kafkaAuth" iam is for MSK only; use sasl-scram-512, sasl-scram-256, basic or none');
    if (kafkaBootstrapServers.length === 0) {
      throw new ConfigError('context "kafkaBootstrapServers" (host:port,...) is required when kafkaSource is self-managed');
    }
    replayReader = { bootstrapServers: kafkaBootstrapServers, vpc: kafkaVpc };
    if (kafkaAuth === 'none' && !kafkaVpc) {
      throw new ConfigError('context "kafkaAuth" none needs brokers in a VPC: set kafkaVpcId, kafkaSubnetIds, kafkaSecurityGroupId');
    }
  }
  if (!['iam', 'none'].includes(kafkaAuth) && !kafkaSecretArn) {
    throw new ConfigError(`context "kafkaSecretArn" is required when kafkaAuth is ${kafkaAuth}`);
  }
  if (kafkaReplay === 'off') {
    replayReader = undefined;
    replayReaderMissing = 'kafkaReplay is off';
  } else if (kafkaReplay === 'on' && !replayReader) {
    throw new ConfigError(`context "kafkaReplay" is on, but the replay reader cannot reach the brokers: ${replayReaderMissing}`);
  }

  const kafkaTopics = list('kafkaTopics', ['device-data', 'alerts']);
  if (kafkaTopics.length === 0) throw new ConfigError('context "kafkaTopics" must name at least one topic');

  const stageName = str('stageName', 'live');
  if (!/^[A-Za-z0-9_-]{1,128}$/.test(stageName) || stageName === '$default') {
    throw new ConfigError(`context "stageName" must be letters, digits, - or _; got "${stageName}"`);
  }

  const reservedConcurrency: Partial<Record<HandlerName, number>> = {};
  for (const [name, value] of Object.entries(object('reservedConcurrency'))) {
    if (!(HANDLER_NAMES as readonly string[]).includes(name)) {
      throw new ConfigError(`context "reservedConcurrency" names "${name}"; handlers are ${HANDLER_NAMES.join(', ')}`);
    }
    if (!Number.isInteger(value) || (value as number) < 0 || (value as number) > 10000) {
      throw new ConfigError(`context "reservedConcurrency.${name}" must be an integer in 0..10000; got ${JSON.stringify(value)}`);
    }
    reservedConcurrency[name as HandlerName] = value as number;
  }
  const tags: Record<string, string> = {};
  for (const [name, value] of Object.entries(object('tags'))) {
    if (typeof value !== 'string' || !/^[\p{L}\p{N}\s_.:/=+@-]{1,128}$/u.test(name) || value.length > 256) {
      throw new ConfigError(`context "tags.${name}" must be a string of at most 256 characters under a valid tag key`);
    }
    tags[name] = value;
  }

  const retention = int('logRetentionDays', 30, 1, 3653);
  return {
    serviceName: str('serviceName', 'iot-live-dashboard'),
    metricsNamespace: str('metricsNamespace', 'IotLiveDashboard'),
    stageName,
    logLevel: oneOf<LogLevel>('logLevel', ['DEBUG', 'INFO', 'WARN', 'ERROR'], 'INFO'),
    logRetentionDays: retention,
    authMode,
    jwtSecretArn: arn('jwtSecretArn', 'secretsmanager'),
    jwksUrl,
    jwtIssuer,
    jwtAudience,
    oidcScopes,
    sitesClaim: str('sitesClaim', authMode === 'cognito' ? 'custom:sites' : 'sites'),
    cognitoDomainPrefix,
    metricsTokenSecretArn: arn('metricsTokenSecretArn', 'secretsmanager'),
    kafkaSource,
    mskClusterArn,
    kafkaBootstrapServers,
    kafkaAuth,
    kafkaSecretArn,
    kafkaSecretKmsKeyArn: arn('kafkaSecretKmsKeyArn', 'kms'),
    kafkaVpc,
    kafkaReplay,
    replayReader,
    replayReaderMissing,
    kafkaTopics,
    kafkaConsumerGroupPrefix: str('kafkaConsumerGroupPrefix', 'iot-live-dashboard'),
    kafkaBatchSize: int('kafkaBatchSize', 100, 1, 10000),
    kafkaBatchingWindowSeconds: int('kafkaBatchingWindowSeconds', 1, 0, 300),
    kafkaStartingPosition: oneOf<StartingPosition>('kafkaStartingPosition', ['LATEST', 'TRIM_HORIZON'], 'LATEST'),
    failureDestination: oneOf<FailureDestination>('failureDestination', ['sqs', 's3'], 'sqs'),
    postConcurrency: int('postConcurrency', 512, 1, 1000),
    postQuota: int('postQuota', 10_000, 1, 1_000_000),
    postQuotaShares: int('postQuotaShares', 2, 1, 1000),
    wsThrottle: { rateLimit: int('wsThrottleRate', 500, 1, 10000), burstLimit: int('wsThrottleBurst', 1000, 1, 5000) },
    httpThrottle: { rateLimit: int('httpThrottleRate', 20, 1, 10000), burstLimit: int('httpThrottleBurst', 40, 1, 5000) },
    healthThrottle: { rateLimit: int('healthThrottleRate', 5, 1, 10000), burstLimit: int('healthThrottleBurst', 10, 1, 5000) },
    apiGatewayLogsRole: bool('apiGatewayLogsRole', false),
    reservedConcurrency,
    tags,
    dashboardAssetPath: str('dashboardAssetPath', 'frontend/dist'),
    alarmEmail: optStr('alarmEmail'),
    offsetLagThreshold: int('offsetLagThreshold', 1000, 1, 1_000_000_000),
    staleConnectionsThreshold: int('staleConnectionsThreshold', 100, 1, 1_000_000_000),
    streamIdleMinutes: int('streamIdleMinutes', 15, 0, 1440),
    alarmOkActions: bool('alarmOkActions', false),
  };
}
