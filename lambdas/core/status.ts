/**
 * `system_status` frames: live counts pushed every few seconds to every connection that has
 * subscribed. Recipients are found under one index key (`s#status`), written at a connection's
 * first subscribe and spread over that key's shard buckets, so a broadcast costs one BatchGetItem
 * per 100 buckets and one post per recipient, every few seconds, independent of the record rate.
 */
import { mapWithConcurrency } from './concurrency';
import type { SubscriptionEntry } from './fanout';
import { METRIC } from './metrics';
import type { Poster, SubscriptionIndex } from './ports';
import type { NormalisedFilter, SystemStatusFrame } from './protocol';

/** The index key of status recipients. */
export const STATUS_INDEX_KEY = 's#status';
/** The subscription id of the status entry (not a valid client id, so it never collides). */
export const STATUS_SUBSCRIPTION_ID = '~status';

// Matches no record: the status key is never looked up for records, and no site is named.
const NO_FILTER: NormalisedFilter = { types: [], deviceIds: [], deviceTypes: [], locations: [], alertLevels: [], sites: [] };

/** The index entry that makes a connection a status recipient. */
export function statusEntry(connectionId: string): SubscriptionEntry {
  return { indexKey: STATUS_INDEX_KEY, connectionId, subscriptionId: STATUS_SUBSCRIPTION_ID, filter: NO_FILTER };
}

function sum(values: ReadonlyMap<string, number>, name: string): number {
  let total = 0;
  for (const [key, value] of values) if (key === name || key.startsWith(`${name}{`)) total += value;
  return total;
}

/** A status frame from summed metric series. */
export function buildStatusFrame(values: ReadonlyMap<string, number>, now: number): SystemStatusFrame {
  const latencyCount = values.get(`${METRIC.pushLatency}_count`) ?? 0;
  const latencySum = values.get(`${METRIC.pushLatency}_sum`) ?? 0;
  return {
    type: 'system_status',
    timestamp: now,
    data: {
      connections: Math.max(0, sum(values, METRIC.connections)),
      messagesSent: sum(values, METRIC.messagesSent),
      messagesReceived: sum(values, METRIC.messagesReceived),
      recordsProcessed: sum(values, METRIC.streamRecords),
      recordsRejected: [...values].filter(([k]) => k.startsWith(METRIC.streamRecords) && k.includes('outcome="invalid"')).reduce((a, [, v]) => a + v, 0),
      staleConnections: sum(values, METRIC.staleConnections),
      meanPushLatencyMs: latencyCount ? Math.round((latencySum / latencyCount) * 10000) / 10 : null,
    },
  };
}

/** Posts a status frame to every recipient; returns how many posts succeeded. */
export async function broadcastStatus(deps: {
  index: SubscriptionIndex;
  poster: Poster;
  readMetrics: () => Promise<ReadonlyMap<string, number>>;
  now?: () => number;
  concurrency?: number;
}): Promise<{ recipients: number; posts: number }> {
  const recipients = (await deps.index.lookup([STATUS_INDEX_KEY])).get(STATUS_INDEX_KEY) ?? [];
  if (!recipients.length) return { recipients: 0, posts: 0 };
  const text = JSON.stringify(buildStatusFrame(await deps.readMetrics(), (deps.now ?? Date.now)()));
  let posts = 0;
  await mapWithConcurrency(recipients, deps.concurrency ?? 32, async (entry) => {
    // A gone recipient is cleaned up by the stream handler's next 410 or by $disconnect.
    if ((await deps.poster.post(entry.connectionId, text)).outcome === 'ok') posts++;
  });
  return { recipients: recipients.length, posts };
}
