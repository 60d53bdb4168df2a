/**
 * The benchmark workload: devices, the subscription mix of the clients, the records produced, and
 * the bookkeeping that says exactly which records each client must receive. Deterministic for a
 * seed, so the fan-out and the naive baseline see the same workload.
 */
import { matchesFilter, normaliseFilter } from '../lambdas/core/filter';
import { TOPICS, type AlertLevel, type Filter, type NormalisedFilter, type StreamRecord } from '../lambdas/core/protocol';
import type { KafkaRecordInput } from '../local/msk-event';

import { mulberry32 as prng } from '../local/simulator';
// FNV-1a: clients and the harness sum it over cursors to detect duplicates.
import { fnv1a } from '../lambdas/core/hash';

export { fnv1a, prng };

export const DEVICE_TYPES = ['pump', 'compressor', 'motor', 'boiler', 'conveyor'] as const;

/** A bench device. */
export interface BenchDevice {
  deviceId: string;
  deviceType: string;
  location: string;
  partition: number;
}

/** `count` devices spread evenly over `locations` locations and the five device types. */
export function makeDevices(count: number, locations: number, prefix = 'dev'): BenchDevice[] {
  const perLocation = Math.ceil(count / locations);
  return Array.from({ length: count }, (_, i) => {
    const loc = Math.floor(i / perLocation);
    return {
      deviceId: `${prefix}-${String(i).padStart(4, '0')}`,
      deviceType: DEVICE_TYPES[i % DEVICE_TYPES.length],
      location: `plant-${String.fromCharCode(97 + Math.floor(loc / 5))}/line-${(loc % 5) + 1}`,
      partition: i % 3,
    };
  });
}

/** Shares of the subscription mix; the rest of the clients watch a few devices. */
export interface SubscriptionMix {
  /** Clients watching one location. Default 0.20. */
  location: number;
  /** Clients watching one device type. Default 0.05. */
  deviceType: number;
  /** Clients watching everything. Default 0.01. */
  everything: number;
  /** Clients that also hold a second subscription to every critical alert. Default 0.10. */
  criticalAlerts: number;
  /** Devices a "few devices" client watches: 1 to this many. Default 5. */
  maxDevices: number;
}

export const DEFAULT_MIX: SubscriptionMix = { location: 0.2, deviceType: 0.05, everything: 0.01, criticalAlerts: 0.1, maxDevices: 5 };

/** A client: the filters it subscribes with. */
export interface ClientSpec {
  index: number;
  kind: 'devices' | 'location' | 'deviceType' | 'everything';
  filters: Filter[];
}

/** The clients of a scenario, deterministic for `seed`. */
export function makeClients(count: number, devices: BenchDevice[], mix: SubscriptionMix = DEFAULT_MIX, seed = 7): ClientSpec[] {
  const random = prng(seed);
  const locations = [...new Set(devices.map((d) => d.location))];
  const types = [...new Set(devices.map((d) => d.deviceType))];
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)];
  return Array.from({ length: count }, (_, index) => {
    const r = random();
    let spec: ClientSpec;
    if (r < mix.everything) spec = { index, kind: 'everything', filters: [{}] };
    else if (r < mix.everything + mix.deviceType) spec = { index, kind: 'deviceType', filters: [{ deviceTypes: [pick(types)] }] };
    else if (r < mix.everything + mix.deviceType + mix.location) spec = { index, kind: 'location', filters: [{ locations: [pick(locations)] }] };
    else {
      const n = 1 + Math.floor(random() * mix.maxDevices);
      const ids = new Set<string>();
      while (ids.size < n) ids.add(pick(devices).deviceId);
      spec = { index, kind: 'devices', filters: [{ deviceIds: [...ids] }] };
    }
    if (random() < mix.criticalAlerts) spec.filters.push({ types: ['alert'], alertLevels: ['critical'] });
    return spec;
  });
}

/** Counts of the subscription kinds, for the report. */
export function mixSummary(clients: readonly ClientSpec[]): Record<string, number> {
  const out: Record<string, number> = { devices: 0, location: 0, deviceType: 0, everything: 0, criticalAlerts: 0 };
  for (const c of clients) {
    out[c.kind]++;
    if (c.filters.length > 1) out.criticalAlerts++;
  }
  return out;
}

/**
 * Produces records round-robin over the devices (each device at rate / devices a second), with an
 * alert now and then, numbering offsets per topic-partition itself so that it knows each record's
 * cursor; and keeps, per (device, record type, alert level), how many records it made and the sum
 * of their cursor hashes: that is all it takes to say what each client must receive.
 */
export class RecordSource {
  private next = 0;
  private readonly offsets = new Map<string, number>();
  private readonly random: () => number;
  /** Group key → [count, hash sum] of the records produced. */
  readonly groups = new Map<string, { count: number; hash: number; record: StreamRecord }>();
  produced = 0;

  constructor(
    readonly devices: BenchDevice[],
    private readonly alertShare = 0.005,
    seed = 11,
  ) {
    this.random = prng(seed);
  }

  /** `count` records, every one stamped with `timestamp` (epoch ms). */
  make(count: number, timestamp: number): KafkaRecordInput[] {
    const out: KafkaRecordInput[] = [];
    for (let n = 0; n < count; n++) {
      const device = this.devices[this.next];
      this.next = (this.next + 1) % this.devices.length;
      const isAlert = this.random() < this.alertShare;
      const topic = isAlert ? TOPICS.alerts : TOPICS.deviceData;
      const groupKey = `${topic}-${device.partition}`;
      const offset = this.offsets.get(groupKey) ?? 0;
      this.offsets.set(groupKey, offset + 1);
      const temperature = Math.round((60 + this.random() * 20) * 10) / 10;
      let value: Record<string, unknown>;
      let level: AlertLevel | '' = '';
      if (isAlert) {
        const r = this.random();
        level = r < 0.6 ? 'info' : r < 0.9 ? 'warning' : 'critical';
        value = {
          alertId: `a-${this.produced.toString(36)}`,
          deviceId: device.deviceId,
          deviceType: device.deviceType,
          location: device.location,
          level,
          message: `temperature above ${level === 'critical' ? 90 : 85}`,
          metric: 'temperature',
          value: temperature + 30,
          threshold: level === 'critical' ? 90 : 85,
          timestamp,
        };
      } else {
        value = {
          deviceId: device.deviceId,
          deviceType: device.deviceType,
          location: device.location,
          timestamp,
          status: 'online',
          metrics: { temperature, pressure: Math.round((3 + this.random()) * 100) / 100 },
        };
      }
      out.push({ topic, partition: device.partition, offset, key: device.deviceId, value, timestamp });
      this.account(`${device.deviceId}|${topic}|${level}`, `${topic}:${device.partition}:${offset}`, () =>
        isAlert
          ? { type: 'alert', data: value as never }
          : { type: 'device_data', data: value as never },
      );
      this.produced++;
    }
    return out;
  }

  private account(key: string, cursor: string, record: () => StreamRecord): void {
    let group = this.groups.get(key);
    if (!group) this.groups.set(key, (group = { count: 0, hash: 0, record: record() }));
    group.count++;
    group.hash = (group.hash + fnv1a(cursor)) >>> 0;
  }

  /** What a client with these filters must have received of everything produced so far. */
  expectedFor(filters: readonly NormalisedFilter[]): { count: number; hash: number } {
    let count = 0;
    let hash = 0;
    for (const group of this.groups.values()) {
      if (!filters.some((f) => matchesFilter(f, group.record))) continue;
      count += group.count;
      hash = (hash + group.hash) >>> 0;
    }
    return { count, hash };
  }
}

/** Normalises a client's filters once, for {@link RecordSource.expectedFor}. */
export function normalised(spec: ClientSpec): NormalisedFilter[] {
  return spec.filters.map((f) => normaliseFilter(f));
}
