/** Builders of Kafka record values (DESIGN.md "Kafka records") for the browser tests. */
import type { AlertRecord, DeviceRecord } from '../../../lambdas/core/protocol';

let clock = Date.now();
/** Strictly increasing timestamps, so every point is a new one on the time axis. */
export function nextTimestamp(): number {
  clock = Math.max(clock + 1, Date.now());
  return clock;
}

export function reading(deviceId: string, metrics: Record<string, number>, extra: Partial<DeviceRecord> = {}): DeviceRecord {
  return {
    deviceId,
    deviceType: deviceId.replace(/-\d+$/, ''),
    location: 'plant-a/line-1',
    status: 'online',
    timestamp: nextTimestamp(),
    metrics,
    ...extra,
  };
}

let alertSeq = 0;
export function alert(deviceId: string, extra: Partial<AlertRecord> = {}): AlertRecord {
  return {
    alertId: `e2e-${++alertSeq}`,
    deviceId,
    deviceType: deviceId.replace(/-\d+$/, ''),
    location: 'plant-a/line-1',
    level: 'critical',
    message: 'temperature above 90',
    metric: 'temperature',
    value: 93.4,
    threshold: 90,
    timestamp: nextTimestamp(),
    ...extra,
  };
}
