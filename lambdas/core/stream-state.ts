/**
 * What the stream Lambda keeps besides pushing: the latest reading of each device, conflated per
 * location, and the alert lifecycle ({@link AlertLifecycle}). One step the stream processor calls
 * once per batch, so that DynamoDB writes per second follow the number of locations and the
 * interval, not the record rate.
 */
import type { AlertLifecycle } from './alert-state';
import { mapWithConcurrency } from './concurrency';
import type { LatestReadingsStore, Log } from './ports';
import type { DeviceRecord, StreamRecord } from './protocol';

/** Default interval between two writes of one location's latest readings by one container: 5 s. */
export const LATEST_INTERVAL_MS = 5000;

/**
 * Holds the newest reading of each device until its location is due, then writes the location's
 * changed devices in one request. A location holding a device this container has not written yet
 * is due at once, so a new device appears in snapshots without waiting for the interval.
 */
export class LatestReadingsConflator {
  /** location -> deviceId -> newest reading not yet written. */
  private readonly pending = new Map<string, Map<string, DeviceRecord>>();
  /** location -> when this container last wrote it (epoch ms). */
  private readonly lastWrite = new Map<string, number>();
  /** Locations holding a device never written by this container. */
  private readonly fresh = new Set<string>();
  private readonly written = new Set<string>();

  constructor(
    private readonly store: LatestReadingsStore,
    private readonly intervalMs: number = LATEST_INTERVAL_MS,
  ) {}

  /** Takes a batch's readings. */
  add(records: readonly StreamRecord[]): void {
    for (const record of records) {
      if (record.type !== 'device_data') continue;
      const { data } = record;
      let devices = this.pending.get(data.location);
      if (!devices) this.pending.set(data.location, (devices = new Map()));
      const held = devices.get(data.deviceId);
      if (!held || held.timestamp <= data.timestamp) devices.set(data.deviceId, data);
      if (!this.written.has(data.deviceId)) this.fresh.add(data.location);
    }
  }

  /** Writes every location that is due at `now`. A failed write keeps its readings for the next try. */
  async flush(now: number, log?: Log): Promise<void> {
    const due = [...this.pending].filter(
      ([location]) => this.fresh.has(location) || now - (this.lastWrite.get(location) ?? -Infinity) >= this.intervalMs,
    );
    await mapWithConcurrency(due, 8, async ([location, devices]) => {
      this.pending.delete(location);
      this.fresh.delete(location);
      this.lastWrite.set(location, now);
      try {
        await this.store.write(location, [...devices.values()]);
        for (const deviceId of devices.keys()) this.written.add(deviceId);
      } catch (error) {
        log?.warn('latest readings not stored', { location, error: (error as Error).message });
        // Newer readings that arrived meanwhile win over the ones put back.
        const current = this.pending.get(location) ?? new Map<string, DeviceRecord>();
        for (const [id, reading] of devices) if (!current.has(id)) current.set(id, reading);
        this.pending.set(location, current);
      }
    });
  }
}

/** A per-batch step of the stream processor: runs before the fan-out and returns the step after it. */
export type BatchStep = (records: readonly StreamRecord[]) => Promise<() => Promise<void>>;

/**
 * The stream step for alert state and latest readings. Alerts are stored before the fan-out; a
 * failure there throws (the batch is retried, clients drop the duplicates by cursor), since an
 * alert that cannot be acknowledged is worse than a repeat. Everything after the fan-out only logs
 * its failures: the records are already delivered.
 */
export function createStreamStateStep(deps: {
  latest?: LatestReadingsConflator;
  lifecycle?: AlertLifecycle;
  now?: () => number;
  log?: Log;
}): BatchStep {
  return async (records) => {
    const resolvers = (await deps.lifecycle?.beforeFanout(records)) ?? [];
    deps.latest?.add(records);
    return async () => {
      const now = (deps.now ?? Date.now)();
      try {
        await deps.lifecycle?.afterFanout(resolvers);
      } catch (error) {
        deps.log?.warn('alert states not updated', { error: (error as Error).message });
      }
      await deps.latest?.flush(now, deps.log);
    };
  };
}
