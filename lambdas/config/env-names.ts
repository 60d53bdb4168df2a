/**
 * Names of the environment variables the Lambdas read. The CDK app imports this module to set
 * them, so a name is spelled in one place only.
 */
export const ENV = {
  /** DynamoDB table of connections (partition key `connectionId`). */
  connectionsTable: 'CONNECTIONS_TABLE',
  /** DynamoDB table of subscription index buckets (keys in lambdas/config/tables.ts `SUBSCRIPTIONS_TABLE`). */
  subscriptionsTable: 'SUBSCRIPTIONS_TABLE',
  /** DynamoDB table of aggregated metrics. */
  metricsTable: 'METRICS_TABLE',
  /** DynamoDB table of alerts and their state. */
  alertsTable: 'ALERTS_TABLE',
  /** DynamoDB table of the latest reading of each device, one item per location. */
  latestTable: 'LATEST_TABLE',
  /** Seconds after which an alert nobody resolved is resolved by expiry. Default 86400 (24 h). */
  alertRetentionSeconds: 'ALERT_RETENTION_SECONDS',
  /** Milliseconds between two writes of one location's latest readings by one stream container. Default 5000. */
  latestIntervalMs: 'LATEST_INTERVAL_MS',
  /** The Management API endpoint: the stage's callback URL, `https://{api}.execute-api.{region}.amazonaws.com/{stage}`. */
  callbackUrl: 'WS_CALLBACK_URL',
  /** How $connect tokens are checked: `hs256` (shared secret), `jwks` (ID tokens of an OpenID Connect issuer) or `none`. */
  authMode: 'AUTH_MODE',
  /** Secrets Manager ARN holding the HS256 secret (AWS). */
  jwtSecretArn: 'JWT_SECRET_ARN',
  /** The HS256 secret itself (local runtime and tests only). */
  jwtSecret: 'JWT_SECRET',
  /** The issuer's JWKS URL (`jwks` mode). Default: the `jwks_uri` of the issuer's discovery document. */
  jwksUrl: 'JWKS_URL',
  /** Expected `iss` claim: the OpenID Connect issuer, required in `jwks` mode; optional for `hs256`. */
  jwtIssuer: 'JWT_ISSUER',
  /** A value the `aud` claim must hold: the dashboard's client id, required in `jwks` mode; optional for `hs256`. */
  jwtAudience: 'JWT_AUDIENCE',
  /** Token claim that lists a user's sites (a list or a comma-separated string). Default `sites`. */
  sitesClaim: 'SITES_CLAIM',
  /** Most PostToConnection calls in flight per stream invocation (fewer for a small audience). Default 512. */
  postConcurrency: 'POST_CONCURRENCY',
  /** The account's API Gateway request quota, posts a second, that stream invocations pace themselves under. Default 10000. */
  postQuota: 'POST_QUOTA',
  /** Stream invocations that may run at once (the topics' partitions), sharing {@link ENV.postQuota}. Default 1. */
  postQuotaShares: 'POST_QUOTA_SHARES',
  /** Bearer token that GET /metrics requires, when set. */
  metricsToken: 'METRICS_TOKEN',
  /** Secrets Manager ARN holding the /metrics bearer token (AWS). */
  metricsTokenSecretArn: 'METRICS_TOKEN_SECRET_ARN',
  /**
   * Name of the replay reader function the subscribe route invokes for a `resume` (AWS). Unset: no
   * function can reach the brokers, and every resume is answered as too far behind, with the snapshot.
   */
  replayFunctionName: 'REPLAY_FUNCTION_NAME',
  /** The replay reader's bootstrap brokers, `host:port,...` (for MSK, the string of its auth's listener). */
  kafkaBrokers: 'KAFKA_BROKERS',
  /** How the replay reader authenticates to Kafka: `iam`, `sasl-scram-512`, `sasl-scram-256`, `basic` or `none` (lambdas/adapters/kafka-auth.ts). */
  kafkaAuth: 'KAFKA_AUTH',
  /** Secrets Manager ARN of the Kafka SASL credentials, `{"username","password"}`; for every auth but `iam` and `none`. */
  kafkaSecretArn: 'KAFKA_SECRET_ARN',
  /** The replay reader's Kafka client id; its IAM grants name consumer groups that start with it. Default `iot-live-dashboard-replay`. */
  kafkaClientId: 'KAFKA_CLIENT_ID',
} as const;
export type EnvName = (typeof ENV)[keyof typeof ENV];
