/**
 * The whole product on one machine: dynalite with the product's tables, the local API Gateway
 * (WebSocket API and Management API), the dashboard with /config.json, /metrics and /health, and
 * simulated devices feeding the stream handler (directly, or through Kafka). It composes the same
 * handlers and adapters the Lambdas use on AWS for the WebSocket routes and the stream. Its
 * dashboard server answers /metrics and /health itself, from the same core functions, without the
 * bearer check of the metrics Lambda.
 */
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import type { MSKEvent } from 'aws-lambda';
import { createDocumentClient, createLeanDocumentClient, createManagementClient } from '../lambdas/adapters/clients';
import { DynamoAlertStore } from '../lambdas/adapters/dynamo-alerts';
import { DynamoConnectionStore } from '../lambdas/adapters/dynamo-connections';
import { DynamoLatestReadings } from '../lambdas/adapters/dynamo-latest';
import { DynamoMetricsStore } from '../lambdas/adapters/dynamo-metrics';
import { DynamoSubscriptionIndex } from '../lambdas/adapters/dynamo-subscriptions';
import { dynamoCheck, managementApiCheck } from '../lambdas/adapters/health-checks';
import { ManagementApiPoster } from '../lambdas/adapters/management-poster';
import { SignedPoster } from '../lambdas/adapters/signed-poster';
import { Pacer, PostBudget } from '../lambdas/core/pacing';
import { createTokenVerifier, mintToken, type TokenVerifierOptions } from '../lambdas/core/auth';
import type { HealthCheck } from '../lambdas/core/health';
import { ALERT_STATE_DEFAULTS, AlertLifecycle, type AlertStateDeps } from '../lambdas/core/alert-state';
import type { Log, Poster } from '../lambdas/core/ports';
import { LATEST_INTERVAL_MS, LatestReadingsConflator, createStreamStateStep } from '../lambdas/core/stream-state';
import { LIMITS, TOPICS } from '../lambdas/core/protocol';
import { intEnv } from '../lambdas/config/config';
import { ENV } from '../lambdas/config/env-names';
import { DEFAULT_MAX_CONCURRENCY, type StreamReport } from '../lambdas/core/stream-processor';
import { broadcastStatus } from '../lambdas/core/status';
import { createAuthorizerHandler, issuerKeys } from '../lambdas/handlers/authorizer';
import { createConnectHandler } from '../lambdas/handlers/connect';
import { createDisconnectHandler } from '../lambdas/handlers/disconnect';
import { createMessageHandler } from '../lambdas/handlers/message';
import { createStreamHandler } from '../lambdas/handlers/stream';
import { createDashboardServer } from './dashboard-server';
import { LOCAL_SCOPES, startOidcProvider } from './oidc-provider';
import { AlertsFirst } from './alerts-first';
import { LOCAL_AWS, LOCAL_TABLES, createTables, sweepExpired } from './dynamo';
import { startLocalDynalite, type DynaliteMode } from './dynalite-process';
import { LocalGateway } from './gateway';
import { startKafkaBridge } from './kafka-bridge';
import { startKafkaSimulator } from './simulate-kafka';
import { buildMskEvent, type KafkaRecordInput } from './msk-event';
import { DeviceSimulator, type SimulatorOptions } from './simulator';
import { errorMessage } from '../lambdas/core/errors';
import { fnv1a } from '../lambdas/core/hash';
import { DecodedRecords, replayAfter, type Replayer } from '../lambdas/core/replay';
import type { RecordLog } from '../lambdas/core/ports';
import { MemoryRecordLog } from './memory-log';
import { KafkaRecordLog } from '../lambdas/adapters/kafka-log';

/** How often the simulated devices read, ms: the embedded feed's batches are no further apart. */
const EMBEDDED_TICK_MS = 20;
/** Replays read at once in this process; the others wait their turn. */
const MAX_CONCURRENT_REPLAYS = 4;

/** Runs at most `limit` tasks at once, the others in the order they came. */
class Semaphore {
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly limit: number) {}

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.running >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.running++;
    try {
      return await task();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    }
  }
}

/** Partitions of each topic of the embedded feed. */
const EMBEDDED_PARTITIONS = 3;


/** Options of {@link startLocalRuntime}. Every port may be 0 for a free one. */
export interface LocalRuntimeOptions {
  /** Dashboard, /metrics and /health. Default 8080. */
  dashboardPort?: number;
  /** WebSocket API and Management API. Default 8081. */
  wsPort?: number;
  /** dynalite. Default 0 (a free port). */
  dynamoPort?: number;
  /** Interface to bind. Default 127.0.0.1. */
  host?: string;
  /**
   * Where dynalite runs: `process`, a child process on the other core, as DynamoDB is another
   * machine on AWS; `inline`, this process (a benchmark baseline). Default `process`.
   */
  dynalite?: DynaliteMode;
  /** Host name in the URLs handed out. Default localhost. */
  urlHost?: string;
  /**
   * Host names the dashboard server and the WebSocket upgrade accept in `Host` and `Origin`.
   * Default the loopback names (see ./gateway.ts `LOOPBACK_HOSTS`).
   */
  allowedHosts?: readonly string[];
  /**
   * `dev`: connections need a token, HS256 with {@link jwtSecret} (`npm run token`; one is minted
   * at start, {@link LocalRuntime.token}) or, with {@link oidc}, an ID token of that issuer.
   * `none`: every connection is accepted, with every site. Default dev.
   */
  auth?: 'dev' | 'none';
  /** The HS256 secret. Default: 32 random bytes for this run. */
  jwtSecret?: string;
  /**
   * Sign-in for the dashboard (auth `dev` only): `embedded` starts the local OpenID provider
   * (local/oidc-provider.ts; under tsx only, not inside jest), or name an issuer already running.
   * config.json then tells the page where to sign in, and carries no token. Without it, config.json
   * hands the page the minted token (tests and benchmarks).
   */
  oidc?:
    | { embedded: true; port?: number; password: string; idTokenTtlSeconds?: number; keyFile?: string }
    | { issuer: string; clientId: string; scopes?: string[] };
  /**
   * Simulated devices; false for none. Default 50 devices, 2 readings a second each, read every
   * `tickMs` (default 20 ms).
   */
  simulator?: false | (SimulatorOptions & { readingsPerSecond?: number; tickMs?: number });
  /** Read records from Kafka through the local MSK event source instead of feeding them directly. */
  kafka?: { brokers: string[]; groupId?: string; batchSize?: number; batchWindowMs?: number };
  /** Directory of the built dashboard. Default frontend/dist. */
  frontendDir?: string;
  /** API Gateway's idle timeout. Default 10 minutes. */
  idleTimeoutMs?: number;
  /** API Gateway's connection limit. Default 2 hours. */
  maxConnectionMs?: number;
  /**
   * Post through the AWS SDK poster, 32 in flight and no pacing, as before the lean path: a
   * baseline for benchmarks. Default false.
   */
  sdkBaseline?: boolean;
  /** Every store on the AWS SDK's document client instead of the lean one: a baseline for benchmarks. Default false. */
  sdkDynamo?: boolean;
  /** `false`: telemetry keeps posting while an alert batch runs (a baseline for benchmarks). Default: it waits. */
  alertsFirst?: boolean;
  /**
   * Buckets the stream handler's subscription index keeps in memory between lookups; 0 reads
   * every bucket whole on every lookup (a baseline for benchmarks). Default as on AWS.
   */
  cachedBuckets?: number;
  /** Most posts in flight per stream invocation. Default as on AWS ({@link DEFAULT_MAX_CONCURRENCY}). */
  postConcurrency?: number;
  /** Each Management API call answers after about this many ms (jittered). Default 0. */
  postLatencyMs?: number;
  /**
   * The Management API refuses posts beyond this many a second with 429, as API Gateway's account
   * quota. The stream handler paces itself under it (under 10,000 when not given). Default: no quota.
   */
  postQuota?: number;
  /** Interval of the TTL sweep. Default 60 s. */
  sweepIntervalMs?: number;
  /** Interval of `system_status` frames. Default 5 s; 0 turns them off. */
  statusIntervalMs?: number;
  /** An alert nobody resolved is resolved by expiry after this long. Default ALERT_RETENTION_SECONDS or 24 hours. */
  alertRetentionMs?: number;
  /** How often the stream step looks for expired alerts. Default 60 s. */
  alertExpirySweepMs?: number;
  /** Least time between two writes of one location's latest readings. Default LATEST_INTERVAL_MS or 5 s. */
  latestIntervalMs?: number;
  /**
   * A snapshot reuses a read of the latest readings made this many ms before (see
   * lambdas/core/snapshot.ts `latestMaxAgeMs`). Default {@link latestIntervalMs}; 0 reads every time.
   */
  latestReuseMs?: number;
  /**
   * The recovery window of resumes (DESIGN.md "Resume"). Default the contract's: 2 minutes or
   * 10,000 records a partition, whichever is less.
   */
  resumeWindow?: { ms: number; records: number };
  /** Where log lines go. Default: nowhere. */
  log?: (line: string) => void;
}

/** Running totals of the stream handler. */
export interface StreamTotals {
  batches: number;
  records: number;
  invalid: number;
  deliveries: number;
  posts: number;
  stale: number;
  failed: number;
  /** Readings superseded under pacing, never sent. */
  conflated: number;
}

/** A running local runtime. */
export interface LocalRuntime {
  /** http://localhost:8080/ */
  dashboardUrl: string;
  /** ws://localhost:8081 */
  wsUrl: string;
  /** The Management API endpoint. */
  managementUrl: string;
  /** dynalite's endpoint. */
  dynamoEndpoint: string;
  /** A token minted at start for scripts and tests (auth `dev`, sites `*`), else undefined. */
  token?: string;
  /** Where the dashboard signs in, when {@link LocalRuntimeOptions.oidc} is set. */
  oidc?: { issuer: string; clientId: string; scopes: string[] };
  /** The WebSocket URL with the token, ready for a client. */
  clientUrl: string;
  gateway: LocalGateway;
  /** Feeds records through the stream handler as one MSK batch. */
  publish(records: KafkaRecordInput[]): Promise<StreamReport>;
  /** Invokes the stream handler with an MSK event, one invocation at a time, as one partition's poller does. */
  invokeStream(event: MSKEvent): Promise<StreamReport>;
  /** Totals of every stream batch so far. */
  totals: StreamTotals;
  /** DynamoDB requests made so far by the stream handler's index lookups. */
  indexCalls(): number;
  /** Management API requests made so far by the stream handler. */
  postCalls(): number;
  /** The /metrics text. */
  metricsText(): Promise<string>;
  stop(): Promise<void>;
}

function quietLog(log?: (line: string) => void): Log {
  const write = (level: string) => (message: string, ...extra: Record<string, unknown>[]) =>
    log?.(`${level} ${message}${extra.length ? ' ' + JSON.stringify(Object.assign({}, ...extra)) : ''}`);
  return { debug: () => {}, info: write('info'), warn: write('warn'), error: write('error') };
}

/** Starts the local runtime. */
export async function startLocalRuntime(options: LocalRuntimeOptions = {}): Promise<LocalRuntime> {
  const host = options.host ?? '127.0.0.1';
  const urlHost = options.urlHost ?? 'localhost';
  const log = quietLog(options.log);
  const stops: (() => Promise<unknown> | unknown)[] = [];
  const stopAll = async () => {
    for (const stop of stops.reverse()) {
      try {
        await stop();
      } catch (error) {
        options.log?.(`stop: ${errorMessage(error)}`);
      }
    }
  };

  try {
    const dynamo = await startLocalDynalite(options.dynalite ?? 'process', options.dynamoPort ?? 0, host);
    stops.push(() => dynamo.stop());
    await createTables(dynamo.endpoint);
    const doc = createDocumentClient({ endpoint: dynamo.endpoint, ...LOCAL_AWS });
    stops.push(() => doc.destroy());

    // The stores take the lean client, as on AWS (lambdas/handlers/defaults.ts); the SDK's stays
    // for the sweep and the health check, and for every store in the `sdkDynamo` baseline.
    const leanDoc = options.sdkDynamo ? undefined : createLeanDocumentClient({ endpoint: dynamo.endpoint, ...LOCAL_AWS });
    if (leanDoc) stops.push(() => leanDoc.destroy());
    const stores = leanDoc ?? doc;
    const connections = new DynamoConnectionStore(stores, LOCAL_TABLES.connections);
    const index = new DynamoSubscriptionIndex(stores, LOCAL_TABLES.subscriptions);
    const streamIndex = new DynamoSubscriptionIndex(stores, LOCAL_TABLES.subscriptions, { cachedBuckets: options.cachedBuckets });
    const metricsStore = new DynamoMetricsStore(stores, LOCAL_TABLES.metrics);
    const alerts = new DynamoAlertStore(stores, LOCAL_TABLES.alerts);
    const latest = new DynamoLatestReadings(stores, LOCAL_TABLES.latest);
    // Locally as on AWS, the environment may set both (ALERT_RETENTION_SECONDS, LATEST_INTERVAL_MS).
    const retentionMs = options.alertRetentionMs ?? intEnv(ENV.alertRetentionSeconds, ALERT_STATE_DEFAULTS.retentionMs / 1000) * 1000;
    // The Management API listens once the gateway has started; the route handlers are built before.
    let routePoster: Poster | undefined;
    const lazyPoster: Poster = { post: (connectionId, text) => routePoster!.post(connectionId, text) };
    const alertState: AlertStateDeps = { alerts, index, connections, poster: lazyPoster, retentionMs, log };
    const latestIntervalMs = options.latestIntervalMs ?? intEnv(ENV.latestIntervalMs, LATEST_INTERVAL_MS);
    // Resumes read the log: Kafka itself with a broker, else the embedded feed's window in memory.
    const window = options.resumeWindow ?? { ms: LIMITS.resumeWindowMs, records: LIMITS.resumeWindowRecords };
    const memoryLog = options.kafka ? undefined : new MemoryRecordLog({ records: window.records, ms: window.ms + 30_000 });
    for (const topic of Object.values(TOPICS)) memoryLog?.declare(topic, EMBEDDED_PARTITIONS);
    let recordLog: RecordLog | undefined = memoryLog;
    // Records decoded once for every client that resumes over them.
    const cache = new DecodedRecords();
    // A few replays at a time: the stream handler shares this process, and a burst of resumes
    // (a plant's Wi-Fi coming back) must not hold its batches back.
    const replaying = new Semaphore(MAX_CONCURRENT_REPLAYS);
    const replay: Replayer = async (request) => {
      if (!recordLog) return { tooFarBehind: true, reason: 'the log is not ready' };
      const log = recordLog;
      return replaying.run(() => replayAfter(log, request, { windowMs: window.ms, windowRecords: window.records, cache }));
    };
    const sessions = {
      connections,
      index,
      alertState,
      snapshot: { latest, alerts, retentionMs, latestMaxAgeMs: options.latestReuseMs ?? latestIntervalMs },
      replay,
    };

    const secret = options.jwtSecret ?? randomBytes(32).toString('hex');
    const auth = options.auth ?? 'dev';
    const token = auth === 'dev' ? await mintToken(secret, { sub: 'developer', name: 'Local developer', sites: ['*'] }) : undefined;
    let oidc: LocalRuntime['oidc'];
    if (auth === 'dev' && options.oidc && 'embedded' in options.oidc) {
      const provider = await startOidcProvider({
        port: options.oidc.port ?? 8082,
        host,
        urlHost,
        password: options.oidc.password,
        idTokenTtlSeconds: options.oidc.idTokenTtlSeconds,
        keyFile: options.oidc.keyFile,
      });
      stops.push(() => provider.close());
      oidc = { issuer: provider.issuer, clientId: provider.clientId, scopes: [...LOCAL_SCOPES] };
    } else if (auth === 'dev' && options.oidc && 'issuer' in options.oidc) {
      oidc = { issuer: options.oidc.issuer, clientId: options.oidc.clientId, scopes: options.oidc.scopes ?? ['openid', 'profile'] };
    }
    const verifierOptions: TokenVerifierOptions =
      auth === 'none'
        ? { none: true }
        : {
            hs256: { secret },
            ...(oidc ? { oidc: { issuer: oidc.issuer, clientId: oidc.clientId, keys: issuerKeys(oidc.issuer, undefined) } } : {}),
          };
    const verifier = createTokenVerifier(verifierOptions);

    const baseline = options.sdkBaseline === true;
    // One stream invocation at a time here, so it has the whole quota (less the inbound headroom).
    const pacer = new Pacer(PostBudget.share(options.postQuota || 10_000, 1));
    // Replies' follow-ups (snapshots, a resume's replay) draw from the budget the stream paces
    // under, so that a burst of resumes stays under the quota.
    const messageHandler = createMessageHandler({ sessions, poster: lazyPoster, metrics: metricsStore, log, budget: baseline ? undefined : pacer.budget });
    const gateway = new LocalGateway(
      {
        authorizer: createAuthorizerHandler({ verifier, log }),
        connect: createConnectHandler({ sessions, metrics: metricsStore, log }),
        disconnect: createDisconnectHandler({ sessions, metrics: metricsStore, log }),
        routes: {
          subscribe: messageHandler,
          unsubscribe: messageHandler,
          ping: messageHandler,
          ack: messageHandler,
          $default: messageHandler,
        },
      },
      {
        port: options.wsPort ?? 8081,
        host,
        urlHost,
        idleTimeoutMs: options.idleTimeoutMs,
        maxConnectionMs: options.maxConnectionMs,
        allowedHosts: options.allowedHosts,
        postLatencyMs: options.postLatencyMs,
        postQuota: options.postQuota,
        log: options.log,
      },
    );
    await gateway.start();
    stops.push(() => gateway.stop());

    const concurrency = options.postConcurrency ?? (baseline ? 32 : DEFAULT_MAX_CONCURRENCY);
    const management = createManagementClient(gateway.managementUrl, LOCAL_AWS, baseline ? concurrency * 2 : 8);
    stops.push(() => management.destroy());
    // The gateway answers posts from a process of its own, so a long batch here cannot hold an
    // answer back: posts time out after 5 s, as on AWS.
    const lean = baseline ? undefined : new SignedPoster(management, { maxSockets: concurrency });
    if (lean) stops.push(() => lean.destroy());
    const poster = lean ?? new ManagementApiPoster(management);
    // Replies and snapshots take the lean path too: under a burst of subscribes they are most of the posts.
    const routeLean = new SignedPoster(management, { maxSockets: 64 });
    stops.push(() => routeLean.destroy());
    routePoster = routeLean;

    const totals: StreamTotals = { batches: 0, records: 0, invalid: 0, deliveries: 0, posts: 0, stale: 0, failed: 0, conflated: 0 };
    const batchStep = createStreamStateStep({
      latest: new LatestReadingsConflator(latest, latestIntervalMs),
      lifecycle: new AlertLifecycle({ ...alertState, expirySweepMs: options.alertExpirySweepMs }),
      log,
    });
    const lane = (lanePoster: Poster, lanePacer: Pacer | undefined) =>
      createStreamHandler({
        sessions: { connections, index: streamIndex },
        poster: lanePoster,
        metrics: metricsStore,
        log,
        concurrency,
        pacer: lanePacer,
        batchStep,
        onReport: (report) => {
          totals.batches++;
          totals.records += report.records;
          totals.invalid += report.invalid;
          totals.deliveries += report.deliveries;
          totals.posts += report.posts;
          totals.stale += report.stale;
          totals.failed += report.failed;
          totals.conflated += report.conflated;
        },
      });
    // Alerts first on this machine's shared cores: while an alert batch is under way, telemetry
    // starts no new post (those in flight finish). On AWS the two lanes are separate containers.
    const alertsFirst = baseline || options.alertsFirst === false ? undefined : new AlertsFirst();
    const streamHandler = lane(alertsFirst ? alertsFirst.behind(poster) : poster, baseline ? undefined : pacer);
    // The alerts topic's partitions are polled apart from device-data's, as on AWS, where each
    // partition has an invocation of its own: an alert never waits for a long telemetry batch.
    // Its posts have their own sockets (another container, on AWS) and take from the same quota,
    // which they may overdraw: alerts always go, telemetry waits for the refill.
    const alertLean = baseline ? undefined : new SignedPoster(management, { maxSockets: 64 });
    if (alertLean) stops.push(() => alertLean.destroy());
    const alertHandler = lane(alertLean ?? poster, alertLean ? new Pacer(pacer.budget) : undefined);
    // One invocation at a time per lane, as Lambda polls one partition: batches keep their order.
    const queues = { telemetry: Promise.resolve() as Promise<unknown>, alerts: Promise.resolve() as Promise<unknown> };
    const invokeStream = (event: MSKEvent): Promise<StreamReport> => {
      const topics = Object.values(event.records).flatMap((records) => records.map((record) => record.topic));
      const alertsOnly = topics.length > 0 && topics.every((topic) => topic === TOPICS.alerts);
      const name = alertsOnly ? 'alerts' : 'telemetry';
      const run = queues[name].then(() => (alertsOnly ? (alertsFirst ? alertsFirst.run(() => alertHandler(event)) : alertHandler(event)) : streamHandler(event)));
      queues[name] = run.catch(() => {});
      return run;
    };
    const offsets = new Map<string, number>();
    const publish = (records: KafkaRecordInput[]) => {
      const event = buildMskEvent(records, {}, offsets);
      // In the log before the stream sees it, as a record is in Kafka before it is consumed.
      memoryLog?.append(event);
      return invokeStream(event);
    };

    const sweepTimer = setInterval(() => {
      const tables = [
        { name: LOCAL_TABLES.connections, keys: ['connectionId'] },
        { name: LOCAL_TABLES.subscriptions, keys: ['pk', 'sk'] },
        { name: LOCAL_TABLES.alerts, keys: ['alertId'] },
      ];
      Promise.all([sweepExpired(doc, tables), index.sweepExpired()]).catch((error) => log.warn('TTL sweep failed', { error: errorMessage(error) }));
    }, options.sweepIntervalMs ?? 60_000);
    sweepTimer.unref();
    stops.push(() => clearInterval(sweepTimer));

    const statusIntervalMs = options.statusIntervalMs ?? 5000;
    if (statusIntervalMs > 0) {
      // Its own poster, so that the stream handler's post count stays the stream's alone.
      const statusPoster = new SignedPoster(management, { maxSockets: 32 });
      stops.push(() => statusPoster.destroy());
      let sending = false;
      const statusTimer = setInterval(() => {
        if (sending) return;
        sending = true;
        broadcastStatus({ index, poster: statusPoster, readMetrics: () => metricsStore.read() })
          // Status posts count against the quota the stream paces itself under.
          .then((sent) => pacer.budget.take(sent.recipients))
          .catch((error) => log.warn('system_status not sent', { error: errorMessage(error) }))
          .finally(() => (sending = false));
      }, statusIntervalMs);
      statusTimer.unref();
      stops.push(() => clearInterval(statusTimer));
    }

    const healthChecks: Record<string, HealthCheck> = {
      dynamodb: dynamoCheck(doc, LOCAL_TABLES.connections, { connectionId: 'health-check' }),
      managementApi: managementApiCheck(management),
    };

    if (options.kafka) {
      const bridge = await startKafkaBridge({
        brokers: options.kafka.brokers,
        groupId: options.kafka.groupId,
        batchSize: options.kafka.batchSize,
        batchWindowMs: options.kafka.batchWindowMs,
        invoke: invokeStream,
        log: options.log,
      });
      stops.push(() => bridge.stop());
      healthChecks.kafka = async () => ({ lag: await bridge.lag() });
      const kafkaLog = new KafkaRecordLog({ brokers: options.kafka.brokers, clientId: 'iot-dashboard-local-replay' });
      stops.push(() => kafkaLog.close());
      recordLog = kafkaLog;
    }

    if (options.simulator !== false) {
      const sim = options.simulator ?? {};
      const simulator = new DeviceSimulator(sim);
      const rate = sim.readingsPerSecond ?? simulator.devices.length * 2;
      if (options.kafka) {
        const producer = await startKafkaSimulator({
          brokers: options.kafka.brokers,
          devices: simulator.devices.length,
          rate,
          log: options.log,
        });
        stops.push(() => producer.stop());
      } else {
        stops.push(startEmbeddedFeed(simulator, rate, sim.tickMs ?? EMBEDDED_TICK_MS, publish, log));
      }
    }

    const dashboard = await createDashboardServer({
      port: options.dashboardPort ?? 8080,
      host,
      urlHost,
      frontendDir: options.frontendDir ?? path.resolve(__dirname, '../frontend/dist'),
      config: () =>
        oidc
          ? { wsUrl: gateway.url, auth: { issuer: oidc.issuer, clientId: oidc.clientId, scopes: oidc.scopes } }
          : { wsUrl: gateway.url, ...(token ? { token } : {}) },
      metrics: async () => metricsStore.read(),
      health: healthChecks,
      allowedHosts: options.allowedHosts,
    });
    stops.push(() => dashboard.close());

    const clientUrl = token ? `${gateway.url}/?token=${encodeURIComponent(token)}` : gateway.url;
    return {
      dashboardUrl: dashboard.url,
      wsUrl: gateway.url,
      clientUrl,
      managementUrl: gateway.managementUrl,
      dynamoEndpoint: dynamo.endpoint,
      token,
      oidc,
      gateway,
      publish,
      invokeStream,
      totals,
      indexCalls: () => streamIndex.calls,
      postCalls: () => poster.calls,
      metricsText: () => dashboard.metricsText(),
      stop: stopAll,
    };
  } catch (error) {
    await stopAll();
    throw error;
  }
}

/**
 * Simulated devices read every `tickMs`, and their records go to the stream handler as an event
 * source mapping with no batching window does: a batch as soon as the previous one is done, with
 * every record that arrived meanwhile, so batches stay small while the fan-out keeps up and grow
 * when it does not. Alerts go at once, on the alerts topic's own partition poller. Returns its
 * stop function.
 */
function startEmbeddedFeed(
  simulator: DeviceSimulator,
  readingsPerSecond: number,
  tickMs: number,
  publish: (records: KafkaRecordInput[]) => Promise<StreamReport>,
  log: Log,
): () => Promise<void> {
  let carry = 0;
  const failed = (error: unknown) => log.warn('simulated batch failed', { error: errorMessage(error) });
  // Telemetry and alerts each on a lane of their own, as the topics' partition pollers are.
  const readings = coalescingLane(publish, failed);
  const alertLane = coalescingLane(publish, failed);
  const partitions = EMBEDDED_PARTITIONS;
  const partitionOf = (deviceId: string) => fnv1a(deviceId) % partitions;
  const timer = setInterval(() => {
    carry += (readingsPerSecond * tickMs) / 1000;
    const count = Math.floor(carry);
    if (count === 0) return;
    carry -= count;
    const next = simulator.next(count);
    for (const r of next.readings) readings.push({ topic: TOPICS.deviceData, key: r.deviceId, value: r, partition: partitionOf(r.deviceId) });
    for (const a of next.alerts) alertLane.push({ topic: TOPICS.alerts, key: a.deviceId, value: a, partition: partitionOf(a.deviceId) });
    alertLane.flush();
    readings.flush();
  }, tickMs);
  timer.unref();
  return async () => {
    clearInterval(timer);
    await Promise.all([readings.stop(), alertLane.stop()]);
  };
}

/**
 * One lane of the embedded feed: one invocation at a time, with every record that came meanwhile,
 * so that a slow lane grows its batches instead of a queue of invocations.
 */
function coalescingLane(publish: (records: KafkaRecordInput[]) => Promise<StreamReport>, failed: (error: unknown) => void) {
  let pending: KafkaRecordInput[] = [];
  let busy = false;
  let running: Promise<unknown> = Promise.resolve();
  const flush = (): void => {
    if (busy || pending.length === 0) return;
    const records = pending;
    pending = [];
    busy = true;
    running = publish(records)
      .catch(failed)
      .finally(() => {
        busy = false;
        flush();
      });
  };
  return {
    push: (record: KafkaRecordInput) => void pending.push(record),
    flush,
    /** Drops what is queued and waits for the invocation under way. */
    stop: async () => {
      pending = [];
      await running;
    },
  };
}
