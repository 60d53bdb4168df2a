/**
 * The default dependencies of the handlers on AWS, built once per container on first use from
 * the environment. Tests and the local runtime build their own and call the handler factories.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { EmfMetricsSink, combineSinks } from '../adapters/emf-metrics';
import type { MetricsSink } from '../core/ports';
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
import { ENV } from '../config/env-names';
import { intEnv, requireEnv } from '../config/config';
import { ConfigError } from '../core/errors';
import type { AlertStateDeps } from '../core/alert-state';
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
