/**
 * The snapshot a subscription gets right after `subscribed`: the latest reading of each matching
 * device, then the matching alerts that are not resolved, newest first, packed into `snapshot`
 * frames under API Gateway's frame size, the last one marked `final`.
 */
import { ALERT_STATE_DEFAULTS } from './alert-state';
import { matchesFilter } from './filter';
import type { AlertStore, ConnectionItem, LatestReadingsStore } from './ports';
import { LIMITS, utf8Length, type AlertFrame, type DeviceDataFrame, type SubscribedFrame } from './protocol';
import { mayRead } from './sites';

/** What a snapshot reads. */
export interface SnapshotDeps {
  latest: LatestReadingsStore;
  alerts: AlertStore;
  /** Alerts older than this are treated as expired even before the sweep resolves them. */
  retentionMs?: number;
  /**
   * A read of the latest readings is reused by the snapshots that start within this many ms of
   * it. The stream writes a location's latest readings at most every 5 s (LATEST_INTERVAL_MS),
   * so reusing a read for as long adds at most that much age, and a burst of subscribes costs one
   * read instead of one each. Alerts are always read afresh (only reads under way are shared): an
   * alert opened a moment before a subscribe must be in its snapshot. Default 0: no reuse.
   */
  latestMaxAgeMs?: number;
  /** Unresolved alerts read per snapshot, newest first. Default 500. */
  maxAlerts?: number;
  now?: () => number;
}

/**
 * Builds the `snapshot` texts for one subscription of a connection: only what its filter matches
 * and its sites include (none when the connection is gone). The connection may still be being
 * read: the snapshot's own reads run meanwhile. Always at least one frame, so a client knows the
 * snapshot is complete.
 */
export async function snapshotTexts(
  deps: SnapshotDeps,
  connection: Pick<ConnectionItem, 'sites'> | undefined | Promise<Pick<ConnectionItem, 'sites'> | undefined>,
  subscribed: SubscribedFrame,
  maxBytes: number = LIMITS.maxFrameBytes,
): Promise<string[]> {
  const now = (deps.now ?? Date.now)();
  const { filter } = subscribed;
  const wantsReadings = filter.types.includes('device_data');
  const wantsAlerts = filter.types.includes('alert');
  const locations = filter.locations.length ? filter.locations : undefined;
  const limit = deps.maxAlerts ?? 500;
  const [readings, alerts, reader] = await Promise.all([
    wantsReadings ? shared(deps, `latest:${locations?.join('\n') ?? '*'}`, () => deps.latest.read(locations), deps.latestMaxAgeMs ?? 0) : [],
    wantsAlerts ? shared(deps, `alerts:${limit}`, () => deps.alerts.unresolved({ limit }), 0) : [],
    connection,
  ]);
  const sites = reader?.sites ?? [];
  const oldest = now - (deps.retentionMs ?? ALERT_STATE_DEFAULTS.retentionMs);
  const frames: (DeviceDataFrame | AlertFrame)[] = [
    ...readings
      .filter((data) => mayRead(sites, data.location) && matchesFilter(filter, { type: 'device_data', data }))
      .sort((a, b) => a.deviceId.localeCompare(b.deviceId))
      .map((data): DeviceDataFrame => ({ type: 'device_data', data, timestamp: now })),
    ...alerts
      .filter(
        ({ alert }) =>
          alert.timestamp >= oldest &&
          mayRead(sites, alert.location) &&
          matchesFilter(filter, { type: 'alert', data: alert }),
      )
      .map(({ alert, state }): AlertFrame => ({ type: 'alert', data: alert, timestamp: now, state })),
  ];
  return packSnapshot(subscribed.id, frames.map((frame) => JSON.stringify(frame)), maxBytes);
}

const reads = new WeakMap<SnapshotDeps, Map<string, { at: number; value: Promise<unknown> }>>();
/** Reads kept per deps at most: distinct location lists of a burst, oldest dropped first. */
const MAX_KEPT_READS = 256;

/**
 * One read for snapshots that need the same thing: concurrent ones (a burst of subscribes, as when
 * a gateway restart reconnects every dashboard at once) share the read under way, and those that
 * start within `maxAgeMs` of a successful read reuse it. A failed read is never reused.
 */
function shared<T>(deps: SnapshotDeps, key: string, read: () => Promise<T>, maxAgeMs: number): Promise<T> {
  let kept = reads.get(deps);
  if (!kept) reads.set(deps, (kept = new Map()));
  const now = performance.now();
  const hit = kept.get(key);
  // A read under way is shared whatever its age; a finished one only while it is young enough.
  if (hit && (hit.at < 0 || now - hit.at <= maxAgeMs)) return hit.value as Promise<T>;
  const map = kept;
  const entry = { at: -1, value: Promise.resolve() as Promise<unknown> };
  const value = read().then(
    (result) => {
      if (maxAgeMs > 0 && map.get(key) === entry) entry.at = performance.now();
      else if (map.get(key) === entry) map.delete(key);
      return result;
    },
    (error: unknown) => {
      if (map.get(key) === entry) map.delete(key);
      throw error;
    },
  );
  entry.value = value;
  map.delete(key);
  map.set(key, entry);
  if (map.size > MAX_KEPT_READS) map.delete(map.keys().next().value!);
  return value;
}

/** Packs serialised frames into `snapshot` frames of at most `maxBytes`; one frame larger than that travels alone. */
export function packSnapshot(id: string, texts: readonly string[], maxBytes: number = LIMITS.maxFrameBytes): string[] {
  const open = `{"type":"snapshot","id":${JSON.stringify(id)},"messages":[`;
  const close = (final: boolean) => `],"final":${final}}`;
  const overhead = utf8Length(open) + close(false).length;
  const groups: string[][] = [[]];
  let size = overhead;
  for (const text of texts) {
    const bytes = utf8Length(text);
    const group = groups[groups.length - 1];
    if (group.length && size + 1 + bytes > maxBytes) {
      groups.push([text]);
      size = overhead + bytes;
    } else {
      size += bytes + (group.length ? 1 : 0);
      group.push(text);
    }
  }
  return groups.map((group, i) => open + group.join(',') + close(i === groups.length - 1));
}
