/**
 * Key schemas of the DynamoDB tables, shared by the CDK app (which creates them on AWS) and the
 * local runtime (which creates them in dynalite). Constants only: no runtime code.
 */
export const CONNECTIONS_TABLE = {
  partitionKey: 'connectionId',
  /** Epoch seconds; API Gateway drops a connection after 2 hours, so items outlive it briefly. */
  ttlAttribute: 'expiresAt',
} as const;

/**
 * Bucket items of the subscription index: one per index key and shard (and overflow item), each
 * subscription an attribute `c:<connectionId>#<subscriptionId>` with its filter and expiry. Entries
 * expire one by one; a whole bucket expires by TTL once no live connection has written to it
 * (see lambdas/adapters/dynamo-subscriptions.ts).
 */
export const SUBSCRIPTIONS_TABLE = {
  /** Index key: `d#<deviceId>`, `l#<location>`, `t#<deviceType>`, `a#<alertLevel>`, `k#<recordType>`, `*` or `s#status`. */
  partitionKey: 'pk',
  /** Shard of the key's bucket, `0` to `n-1`; overflow items `<shard>.<k>`. */
  sortKey: 'sk',
  /** Epoch seconds: no entry of the bucket outlives it. */
  ttlAttribute: 'expiresAt',
} as const;

/** Summed metrics and the status broadcast gate (see lambdas/adapters/dynamo-metrics.ts). */
export const METRICS_TABLE = {
  /** `metrics` for the summed counters, `status` for the broadcast gate. */
  partitionKey: 'pk',
  /** `shard-<n>` under `metrics`, so concurrent invocations do not contend on one item; `gate` under `status`. */
  sortKey: 'sk',
} as const;

/** API Gateway closes a WebSocket connection after this long. */
export const MAX_CONNECTION_SECONDS = 2 * 60 * 60;
/** Idle timeout of an API Gateway WebSocket connection. */
export const IDLE_TIMEOUT_SECONDS = 10 * 60;

/**
 * Alerts with their state, one item per alert (alerts are low volume). Unresolved alerts also
 * carry the attributes of the sparse index {@link ALERTS_TABLE.unresolvedIndex}, removed when they
 * are resolved, so a snapshot reads only what still matters, newest first.
 */
export const ALERTS_TABLE = {
  partitionKey: 'alertId',
  /** Epoch seconds: the alert's time plus twice the retention. */
  ttlAttribute: 'expiresAt',
  unresolvedIndex: {
    name: 'unresolved',
    /** The constant `u` while the alert is not resolved; absent after. */
    partitionKey: 'unresolved',
    /** The alert's timestamp (epoch ms, a number). */
    sortKey: 'openedAt',
  },
} as const;

/** Latest readings, conflated: one item per location, its devices' newest readings in a map. */
export const LATEST_TABLE = {
  partitionKey: 'location',
  /** The item listing every location (a string set `locations`); no location may be named so. */
  directoryKey: '#locations',
} as const;
