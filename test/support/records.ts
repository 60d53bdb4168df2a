/**
 * The one set of Kafka record builders for the tests (DESIGN.md "Kafka records"): a valid reading
 * or alert for a device, with any field overridden, a new object on every call.
 */
import { randomUUID } from 'node:crypto';
import type { AlertRecord, DeviceRecord, StreamRecord } from '../../lambdas/core/protocol';

let clock = Date.now();
/** Strictly increasing timestamps, so every reading is a new point on a chart's time axis. */
function nextTimestamp(): number {
  clock = Math.max(clock + 1, Date.now());
  return clock;
}

/** The device type a test device id names: `pump` for `pump-001`. */
function typeOf(deviceId: string): string {
  return deviceId.split('-')[0]!;
}

/** A valid `device-data` record: online on plant-a/line-1, 70 degrees, now. */
export function deviceRecord(deviceId: string, overrides: Partial<DeviceRecord> = {}): DeviceRecord {
  return {
    deviceId,
    deviceType: typeOf(deviceId),
    location: 'plant-a/line-1',
    timestamp: nextTimestamp(),
    status: 'online',
    metrics: { temperature: 70 },
    ...overrides,
  };
}

/** A valid `alerts` record: critical, temperature above 90, with an id unique to the run. */
export function alertRecord(deviceId: string, overrides: Partial<AlertRecord> = {}): AlertRecord {
  return {
    alertId: `a-${randomUUID().slice(0, 8)}`,
    deviceId,
    deviceType: typeOf(deviceId),
    location: 'plant-a/line-1',
    level: 'critical',
    message: 'temperature above 90',
    metric: 'temperature',
    value: 93.4,
    threshold: 90,
    timestamp: nextTimestamp(),
    ...overrides,
  };
}

/** A record as the stream processor hands it to the fan-out. */
export function streamRecord(record: DeviceRecord | AlertRecord, cursor?: string): StreamRecord {
  const at = cursor === undefined ? {} : { cursor };
  return 'alertId' in record ? { type: 'alert', ...at, data: record } : { type: 'device_data', ...at, data: record };
}
