import type { AlertRecord } from '../../lambdas/core/protocol';
import { DeviceSimulator } from '../../local/simulator';

describe('simulated alert lifecycle', () => {
  it('ends every alert it raises with a later info record naming it, one open alert per metric at most', () => {
    const simulator = new DeviceSimulator({ devices: 20, spikeProbability: 0.05 });
    const open = new Map<string, AlertRecord>();
    const resolved = new Set<string>();
    let raised = 0;
    for (let tick = 0; tick < 400; tick++) {
      for (const alert of simulator.next(20, tick * 1000).alerts) {
        if (alert.resolves !== undefined) {
          expect(alert.level).toBe('info');
          const target = open.get(alert.resolves);
          expect(target).toMatchObject({ deviceId: alert.deviceId, metric: alert.metric });
          open.delete(alert.resolves);
          resolved.add(alert.resolves);
        } else {
          expect(alert.level).not.toBe('info');
          expect([...open.values()].some((a) => a.deviceId === alert.deviceId && a.metric === alert.metric)).toBe(false);
          open.set(alert.alertId, alert);
          raised++;
        }
      }
    }
    expect(raised).toBeGreaterThan(20);
    expect(resolved.size).toBeGreaterThan(raised / 2);
  });
});
