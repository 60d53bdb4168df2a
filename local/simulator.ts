/**
 * Simulated industrial devices: realistic series (a mean-reverting drift, noise, and rare spikes)
 * per metric, device statuses that follow the readings, and alerts when a reading crosses a
 * threshold. Deterministic for a given seed. Used by the embedded runtime (records straight into
 * the stream handler) and by the Kafka producer (`npm run simulate`).
 */
import type { AlertLevel, AlertRecord, DeviceRecord, DeviceStatus } from '../lambdas/core/protocol';

interface MetricModel {
  /** Normal operating value. */
  base: number;
  /** Standard deviation of the per-reading noise. */
  noise: number;
  /** Size of a spike, added to the value for a few readings. */
  spike: number;
  /** A reading above this raises a `warning` alert. */
  warning: number;
  /** A reading above this raises a `critical` alert. */
  critical: number;
  unit: string;
}

/** Metric models per device type. Thresholds are the alert rules the dashboard draws. */
export const DEVICE_MODELS: Record<string, Record<string, MetricModel>> = {
  pump: {
    temperature: { base: 65, noise: 0.6, spike: 32, warning: 85, critical: 90, unit: '°C' },
    pressure: { base: 3.1, noise: 0.05, spike: 2.5, warning: 5, critical: 5.5, unit: 'bar' },
  },
  compressor: {
    temperature: { base: 72, noise: 0.8, spike: 30, warning: 92, critical: 98, unit: '°C' },
    vibration: { base: 2.2, noise: 0.15, spike: 6, warning: 6, critical: 7.5, unit: 'mm/s' },
  },
  motor: {
    temperature: { base: 58, noise: 0.5, spike: 35, warning: 80, critical: 88, unit: '°C' },
    rpm: { base: 1480, noise: 6, spike: 300, warning: 1700, critical: 1760, unit: 'rpm' },
  },
  boiler: {
    temperature: { base: 140, noise: 1.2, spike: 40, warning: 170, critical: 178, unit: '°C' },
    pressure: { base: 9.5, noise: 0.1, spike: 4, warning: 12, critical: 13, unit: 'bar' },
  },
  conveyor: {
    speed: { base: 1.2, noise: 0.02, spike: 0.9, warning: 1.9, critical: 2.05, unit: 'm/s' },
    load: { base: 450, noise: 8, spike: 300, warning: 700, critical: 760, unit: 'kg' },
  },
};

/** Locations devices are spread across. */
export const LOCATIONS = ['plant-a/line-1', 'plant-a/line-2', 'plant-a/line-3', 'plant-b/line-1', 'plant-b/line-2'];

/** Options of {@link DeviceSimulator}. */
export interface SimulatorOptions {
  /** Number of devices. Default 50. */
  devices?: number;
  /** Seed of the random series. Default 42. */
  seed?: number;
  /** Chance per reading that a metric starts a spike. Default 0.003. */
  spikeProbability?: number;
  /** Chance per reading that an online device goes offline for a while. Default 0.0005. */
  offlineProbability?: number;
}

interface SimMetric {
  name: string;
  model: MetricModel;
  drift: number;
  spikeLeft: number;
  level: AlertLevel | 'normal';
  /** The alert of the current level, until a later record resolves it. */
  openAlertId?: string;
}

/** One simulated device. */
export interface SimDevice {
  deviceId: string;
  deviceType: string;
  location: string;
  metrics: SimMetric[];
  offlineLeft: number;
}

/** Small seeded PRNG (mulberry32): fast, and deterministic across runs. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Generates readings and the alerts they raise. */
export class DeviceSimulator {
  readonly devices: SimDevice[];
  private readonly random: () => number;
  private readonly spikeProbability: number;
  private readonly offlineProbability: number;
  private cursor = 0;
  private alertSeq = 0;

  constructor(options: SimulatorOptions = {}) {
    const count = options.devices ?? 50;
    this.random = mulberry32(options.seed ?? 42);
    this.spikeProbability = options.spikeProbability ?? 0.003;
    this.offlineProbability = options.offlineProbability ?? 0.0005;
    const types = Object.keys(DEVICE_MODELS);
    this.devices = Array.from({ length: count }, (_, i) => {
      const deviceType = types[i % types.length];
      return {
        deviceId: `${deviceType}-${String(i + 1).padStart(3, '0')}`,
        deviceType,
        location: LOCATIONS[Math.floor(i / types.length) % LOCATIONS.length],
        metrics: Object.entries(DEVICE_MODELS[deviceType]).map(([name, model]) => ({
          name,
          model,
          drift: 0,
          spikeLeft: 0,
          level: 'normal' as const,
        })),
        offlineLeft: 0,
      };
    });
  }

  private gaussian(): number {
    // Box-Muller; 1 - random() keeps log() away from 0.
    return Math.sqrt(-2 * Math.log(1 - this.random())) * Math.cos(2 * Math.PI * this.random());
  }

  /** The next `count` readings, round-robin across devices, and the alerts they raise. */
  next(count: number, now: number = Date.now()): { readings: DeviceRecord[]; alerts: AlertRecord[] } {
    const readings: DeviceRecord[] = [];
    const alerts: AlertRecord[] = [];
    for (let n = 0; n < count; n++) {
      const device = this.devices[this.cursor];
      this.cursor = (this.cursor + 1) % this.devices.length;
      readings.push(this.read(device, now, alerts));
    }
    return { readings, alerts };
  }

  /** A reading of one device now. */
  private read(device: SimDevice, now: number, alerts: AlertRecord[]): DeviceRecord {
    const base = { deviceId: device.deviceId, deviceType: device.deviceType, location: device.location, timestamp: now };
    if (device.offlineLeft > 0) {
      device.offlineLeft--;
      return { ...base, status: 'offline', metrics: {} };
    }
    if (this.random() < this.offlineProbability) device.offlineLeft = 20 + Math.floor(this.random() * 40);
    const metrics: Record<string, number> = {};
    let worst: DeviceStatus = 'online';
    for (const metric of device.metrics) {
      const { model } = metric;
      // Mean-reverting random walk, so series wander but stay plausible.
      metric.drift = metric.drift * 0.98 + this.gaussian() * model.noise * 0.5;
      if (metric.spikeLeft > 0) metric.spikeLeft--;
      else if (this.random() < this.spikeProbability) metric.spikeLeft = 3 + Math.floor(this.random() * 5);
      const spike = metric.spikeLeft > 0 ? model.spike * (0.85 + this.random() * 0.3) : 0;
      const value = Math.round((model.base + metric.drift + this.gaussian() * model.noise + spike) * 100) / 100;
      metrics[metric.name] = value;
      const level: AlertLevel | 'normal' =
        value > model.critical ? 'critical' : value > model.warning ? 'warning' : 'normal';
      if (level === 'critical') worst = 'error';
      else if (level === 'warning' && worst === 'online') worst = 'warning';
      if (level !== metric.level) {
        // The alert of the old level ends first ("back to normal", or below it on the way down or
        // up), so each metric has at most one open alert and the whole lifecycle can be watched.
        if (metric.openAlertId !== undefined) {
          alerts.push(this.resolution(device, metric, level, value, now, metric.openAlertId));
          metric.openAlertId = undefined;
        }
        if (level !== 'normal') {
          const alert = this.alert(device, metric, level, value, now);
          alerts.push(alert);
          metric.openAlertId = alert.alertId;
        }
        metric.level = level;
      }
    }
    return { ...base, status: worst, metrics };
  }

  private alert(device: SimDevice, metric: SimMetric, level: AlertLevel, value: number, now: number): AlertRecord {
    const { model } = metric;
    const threshold = level === 'critical' ? model.critical : model.warning;
    return {
      alertId: this.nextAlertId(now),
      deviceId: device.deviceId,
      deviceType: device.deviceType,
      location: device.location,
      level,
      message: `${metric.name} above ${threshold} ${model.unit}`,
      metric: metric.name,
      value,
      threshold,
      timestamp: now,
    };
  }

  /** The `info` record that ends the metric's open alert, as its level changes to `level`. */
  private resolution(
    device: SimDevice,
    metric: SimMetric,
    level: AlertLevel | 'normal',
    value: number,
    now: number,
    resolves: string,
  ): AlertRecord {
    const { model } = metric;
    const threshold = metric.level === 'critical' ? model.critical : model.warning;
    return {
      alertId: this.nextAlertId(now),
      deviceId: device.deviceId,
      deviceType: device.deviceType,
      location: device.location,
      level: 'info',
      message:
        level === 'normal'
          ? `${metric.name} back to normal (${value} ${model.unit})`
          : `${metric.name} no longer above ${threshold} ${model.unit} (now ${level})`,
      metric: metric.name,
      value,
      threshold,
      timestamp: now,
      resolves,
    };
  }

  private nextAlertId(now: number): string {
    this.alertSeq++;
    return `a-${now.toString(36)}-${this.alertSeq.toString(36)}`;
  }
}
