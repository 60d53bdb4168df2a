/**
 * The default dependencies of the handlers on AWS, built once per container on first use from
 * the environment. Tests and the local runtime build their own and call the handler factories.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { LambdaClient } from '@aws-sdk/client-lambda';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { EmfMetricsSink, combineSinks } from '../adapters/emf-metrics';
import type { MetricsSink, RecordLog } from '../core/ports';
import { DynamoAlertStore } from '../adapters/dynamo-alerts';
import { DynamoConnectionStore } from '../adapters/dynamo-connections';
import { DynamoLatestReadings } from '../adapters/dynamo-latest';
import { DynamoMetricsStore } from '../adapters/dynamo-metrics';
import { DynamoSubscriptionIndex } from '../adapters/dynamo-subscriptions';
import { SignedPoster } from '../adapters/signed-poster';
import { DEFAULT_MAX_CONCURRENCY } from '../core/stream-processor';
import { LATEST_INTERVAL_MS } from '../core/stream-state';
import { createLeanDocumentClient, createManagementClient } from '../adapters/clients';
import type { LeanDocumentClient } from '../adapters/lean-dynamo';
import { SecretStore } from '../adapters/secrets';
import { KafkaRecordLog } from '../adapters/kafka-log';
import { kafkaSecurity, mskIamToken, needsSecret, parseKafkaAuth, parseSaslSecret, type KafkaAuthMode } from '../adapters/kafka-auth';
import { createLambdaReplayer } from '../adapters/lambda-replayer';
import { ENV } from '../config/env-names';
import { intEnv, optionalEnv, requireEnv } from '../config/config';
import { ConfigError } from '../core/errors';
import type { AlertStateDeps } from '../core/alert-state';
import type { Replayer } from '../core/replay';
import type { SessionDeps as SessionDepsLike } from '../core/sessions';
import type { SnapshotDeps } from '../core/snapshot';

let logger: Logger | undefined;
/** The shared Powertools logger (service name from POWERTOOLS_SERVICE_NAME). */
export function defaultLogger(): Logger {
  return (logger ??= new Logger({ serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? 'iot-dashboard' }));
}

let doc: LeanDocumentClient | undefined;
/**
 * The stores' client: every store call is on a hot path (a message, a subscribe, a batch), so all
 * go the lean way; the SDK's document client stays for the rare calls (health checks).
 */
function documentClient() {
  return (doc ??= createLeanDocumentClient());
}

/** Connections store on the table named by CONNECTIONS_TABLE. */
export function defaultConnections(): DynamoConnectionStore {
  return new DynamoConnectionStore(documentClient(), requireEnv(ENV.connectionsTable));
}

/** Subscription index on the table named by SUBSCRIPTIONS_TABLE. */
export function defaultIndex(): DynamoSubscriptionIndex {
  return new DynamoSubscriptionIndex(documentClient(), requireEnv(ENV.subscriptionsTable));
}

/**
 * How often a container writes its added-up metrics on AWS: each write costs 2-3 write units
 * whatever it holds, so writes follow busy containers, not invocations (docs/deploy.md).
 */
const METRICS_FLUSH_INTERVAL_MS = 5000;

/** Metrics store on the table named by METRICS_TABLE, writing at most every five seconds. */
export function defaultMetricsStore(): DynamoMetricsStore {
  return new DynamoMetricsStore(documentClient(), requireEnv(ENV.metricsTable), { flushIntervalMs: METRICS_FLUSH_INTERVAL_MS });
}

/** Alert store on the table named by ALERTS_TABLE. */
export function defaultAlerts(): DynamoAlertStore {
  return new DynamoAlertStore(documentClient(), requireEnv(ENV.alertsTable));
}

/** Latest readings on the table named by LATEST_TABLE. */
export function defaultLatest(): DynamoLatestReadings {
  return new DynamoLatestReadings(documentClient(), requireEnv(ENV.latestTable));
}

/** Alert retention from ALERT_RETENTION_SECONDS, in ms. Default 24 hours. */
export function alertRetentionMs(): number {
  return intEnv(ENV.alertRetentionSeconds, 24 * 60 * 60) * 1000;
}

/** Alert state delivery: the alerts, the index and connections (for recipients), the poster. */
export function defaultAlertState(): AlertStateDeps {
  return {
    alerts: defaultAlerts(),
    index: defaultIndex(),
    connections: defaultConnections(),
    poster: defaultPoster(),
    retentionMs: alertRetentionMs(),
    log: defaultLogger(),
  };
}

/** What a subscription's snapshot reads. */
export function defaultSnapshot(): SnapshotDeps {
  return {
    latest: defaultLatest(),
    alerts: defaultAlerts(),
    retentionMs: alertRetentionMs(),
    latestMaxAgeMs: intEnv(ENV.latestIntervalMs, LATEST_INTERVAL_MS),
  };
}

let emf: Metrics | undefined;
/** Powertools Metrics (namespace from POWERTOOLS_METRICS_NAMESPACE). */
export function defaultEmf(): Metrics {
  return (emf ??= new Metrics({
    namespace: process.env.POWERTOOLS_METRICS_NAMESPACE ?? 'IotDashboard',
    serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? 'iot-dashboard',
  }));
}

/** Metrics to DynamoDB (for /metrics) and to CloudWatch (EMF). */
export function defaultMetricsSink(): MetricsSink {
  return combineSinks(defaultMetricsStore(), new EmfMetricsSink(defaultEmf()));
}

let secrets: SecretStore | undefined;
/** Secrets Manager values, cached for five minutes after a successful fetch (one store per container). */
export function defaultSecrets(): SecretStore {
  return (secrets ??= new SecretStore(new SecretsManagerClient({})));
}

/**
 * The lean poster on the stage named by WS_CALLBACK_URL: signed HTTP over pooled sockets, one per
 * post in flight. The SDK client it takes lends it endpoint, region and credentials.
 */
export function defaultPoster(): SignedPoster {
  const concurrency = intEnv(ENV.postConcurrency, DEFAULT_MAX_CONCURRENCY);
  return new SignedPoster(createManagementClient(requireEnv(ENV.callbackUrl)), { maxSockets: concurrency });
}

let lambda: LambdaClient | undefined;
/**
 * The Lambda client: the subscribe route invokes the replay reader with it. A reply may take the
 * reader's whole timeout (15 s), so requests wait up to 20 s; one retry (throttling, a reset).
 */
function lambdaClient(): LambdaClient {
  return (lambda ??= new LambdaClient({ maxAttempts: 2, requestHandler: new NodeHttpHandler({ connectionTimeout: 3000, requestTimeout: 20_000 }) }));
}

/**
 * The replay reader named by REPLAY_FUNCTION_NAME, invoked synchronously; undefined when it is not
 * set (the stack deploys no reader when nothing tells it how to reach the brokers), so that every
 * resume is answered as too far behind, with the snapshot.
 */
export function defaultReplayer(): Replayer | undefined {
  const functionName = optionalEnv(ENV.replayFunctionName);
  return functionName ? createLambdaReplayer(lambdaClient(), functionName) : undefined;
}

/** How the replay reader reaches Kafka, from KAFKA_BROKERS, KAFKA_AUTH, KAFKA_SECRET_ARN and KAFKA_CLIENT_ID. */
interface KafkaSettings {
  brokers: string[];
  auth: KafkaAuthMode;
  secretArn?: string;
  clientId: string;
}

function kafkaSettings(): KafkaSettings {
  const brokers = requireEnv(ENV.kafkaBrokers).split(',').map((b) => b.trim()).filter(Boolean);
  const auth = parseKafkaAuth(requireEnv(ENV.kafkaAuth), `Environment variable ${ENV.kafkaAuth}`);
  return {
    brokers,
    auth,
    secretArn: needsSecret(auth) ? requireEnv(ENV.kafkaSecretArn) : undefined,
    clientId: optionalEnv(ENV.kafkaClientId) ?? 'iot-live-dashboard-replay',
  };
}

/**
 * The replay reader's Kafka log: one {@link KafkaRecordLog} (its connections and consumer group)
 * for the container's life, built on the first read and again only when the SASL secret's value
 * changes (rotation), the old one closed.
 */
class KafkaLogSource {
  private current?: { key: string; log: KafkaRecordLog };

  constructor(
    private readonly settings: KafkaSettings,
    private readonly secrets: () => SecretStore,
    private readonly iamToken: () => Promise<string>,
  ) {}

  async get(): Promise<RecordLog> {
    const { auth, secretArn, brokers, clientId } = this.settings;
    const credentials = secretArn ? parseSaslSecret(await this.secrets().getString(secretArn), secretArn) : undefined;
    const key = credentials ? `${credentials.username}\n${credentials.password}` : '';
    if (this.current?.key === key) return this.current.log;
    const previous = this.current?.log;
    const log = new KafkaRecordLog({ brokers, clientId, ...kafkaSecurity(auth, { credentials, iamToken: this.iamToken }) });
    this.current = { key, log };
    if (previous) void previous.close().catch(() => undefined);
    return log;
  }
}

/**
 * The replay reader's log, from the environment (see {@link kafkaSettings}). With `iam`, each new
 * connection signs an MSK IAM token with the function role's credentials and region, as the SDK
 * resolves them (the Lambda client's configuration lends them; nothing is invoked).
 */
export function defaultRecordLog(): () => Promise<RecordLog> {
  const source = new KafkaLogSource(kafkaSettings(), defaultSecrets, async () => {
    const { config } = lambdaClient();
    const [credentials, region] = await Promise.all([config.credentials(), config.region()]);
    return mskIamToken({ region, credentials });
  });
  return () => source.get();
}

/** Memoises a handler built on first call, so configuration is read once per container. */
export function lazy<E, R, C = unknown>(build: () => (event: E, context?: C) => Promise<R>): LazyHandler<E, R, C> {
  let built: ((event: E, context?: C) => Promise<R>) | undefined;
  // The context is passed on: the stream handler reads the invocation's remaining time from it.
  const handler = ((event: E, context?: C) => (built ??= build())(event, context)) as LazyHandler<E, R, C>;
  handler.warm = () => {
    built ??= build();
  };
  return handler;
}

/** A handler built on first use; `warm()` builds it now, failing as a cold start would. */
export type LazyHandler<E, R, C = unknown> = ((event: E, context?: C) => Promise<R>) & { warm(): void };

/**
 * The index for routes that never touch it (ping, $default): API Gateway routes subscribe and
 * unsubscribe elsewhere, so these Lambdas get no index access (only the connections table, for
 * the per-connection rate limit), and a call here is a wiring error worth a clear message.
 */
export function noIndex(route: string): SessionDepsLike['index'] {
  const fail = () => {
    throw new ConfigError(`the ${route} route has no index access; subscribe and unsubscribe have routes of their own`);
  };
  return { put: fail, remove: fail, lookup: fail };
}
