import { Pacer, PostBudget, conflateTelemetry } from '../../lambdas/core/pacing';
import { recordSetKey } from '../../lambdas/core/fanout';
import type { StreamRecord } from '../../lambdas/core/protocol';

let offset = 0;
const reading = (deviceId: string, metrics: Record<string, number>, timestamp = 1000 + offset): StreamRecord => ({
  type: 'device_data',
  cursor: `device-data:0:${offset++}`,
  data: { deviceId, deviceType: 'pump', location: 'plant-a/line-1', timestamp, status: 'online', metrics },
});
const alert = (alertId: string): StreamRecord => ({
  type: 'alert',
  cursor: `alerts:0:${offset++}`,
  data: { alertId, deviceId: 'pump-1', deviceType: 'pump', location: 'plant-a/line-1', level: 'critical', message: 'hot', timestamp: 2000 },
});

describe('conflating telemetry', () => {
  it('keeps the latest value of each metric per device, with the newest reading’s cursor and time', () => {
    const a1 = reading('pump-1', { temperature: 70, pressure: 3 }, 1000);
    const b1 = reading('pump-2', { temperature: 50 }, 1001);
    const a2 = reading('pump-1', { temperature: 71 }, 1002);
    const out = conflateTelemetry([a1, b1, a2]);
    expect(out).toHaveLength(2);
    expect(out[0]).toBe(b1);
    expect(out[1]).toMatchObject({ cursor: a2.cursor, data: { timestamp: 1002, metrics: { temperature: 71, pressure: 3 } } });
  });

  it('never touches alerts, and returns the input itself when nothing repeats', () => {
    const records = [reading('pump-1', { t: 1 }), alert('a-1'), reading('pump-2', { t: 2 }), alert('a-2')];
    expect(conflateTelemetry(records)).toBe(records);
    const repeated = [reading('pump-1', { t: 1 }), alert('a-1'), reading('pump-1', { t: 2 }), alert('a-1b')];
    expect(conflateTelemetry(repeated).filter((r) => r.type === 'alert')).toEqual([repeated[1], repeated[3]]);
  });
});

describe('the post budget', () => {
  it('refills at its rate up to one second’s worth, and may be overdrawn', () => {
    let now = 0;
    const budget = new PostBudget(100, () => now);
    expect(budget.available()).toBe(100);
    budget.take(150);
    expect(budget.available()).toBe(0);
    now += 1000;
    expect(budget.available()).toBe(50);
    now += 10_000;
    expect(budget.available()).toBe(100);
  });

  it('an invocation’s share leaves headroom for inbound traffic and splits the rest', () => {
    expect(PostBudget.share(10_000, 1).perSecond).toBe(8000);
    expect(PostBudget.share(10_000, 4).perSecond).toBe(2000);
  });
});

describe('pacing a batch', () => {
  const connections = (n: number, records: readonly StreamRecord[]) =>
    new Map<string, readonly StreamRecord[]>(Array.from({ length: n }, (_, i) => [`c${i}`, records]));

  it('sends everything untouched while the budget holds', () => {
    const pacer = new Pacer(new PostBudget(100, () => 0));
    const records = [reading('pump-1', { t: 1 }), reading('pump-1', { t: 2 })];
    const plan = pacer.plan(connections(10, records), recordSetKey);
    expect(plan.send.size).toBe(10);
    expect(plan.send.get('c0')).toBe(records);
    expect(plan).toMatchObject({ conflated: 0, deferred: 0 });
  });

  it('beyond the budget: alerts go first and whole, telemetry is conflated and waits, the longest waiting first', () => {
    let now = 0;
    const pacer = new Pacer(new PostBudget(4, () => now));
    const telemetry = [reading('pump-1', { t: 1 }), reading('pump-1', { t: 2 })];
    const routed = connections(6, telemetry);
    const withAlert = [reading('pump-1', { t: 3 }), alert('a-1'), reading('pump-1', { t: 4 })];
    routed.set('alerted', withAlert);
    const first = pacer.plan(routed, recordSetKey);
    expect([...first.send.keys()]).toEqual(['alerted', 'c0', 'c1', 'c2']);
    expect(first.send.get('alerted')!.filter((r) => r.type === 'alert')).toHaveLength(1);
    expect(first.send.get('c0')).toHaveLength(1);
    expect(first.send.get('c0')![0]).toMatchObject({ cursor: telemetry[1].cursor });
    expect(first.deferred).toBe(3);
    expect(pacer.waiting).toBe(3);

    // A second later c3..c5 are served before the new batch's fresh connections, with their newest reading.
    now += 1000;
    const newer = [reading('pump-1', { t: 9 })];
    const second = pacer.plan(new Map([['c3', newer], ['fresh', newer]]), recordSetKey);
    expect([...second.send.keys()]).toEqual(['c3', 'c4', 'c5', 'fresh']);
    expect(second.send.get('c3')).toEqual([expect.objectContaining({ cursor: newer[0].cursor })]);
    expect(second.send.get('c4')).toEqual([expect.objectContaining({ cursor: telemetry[1].cursor })]);
    expect(second.deferred).toBe(0);
  });

  it('alerts go even when the budget is spent', () => {
    const pacer = new Pacer(new PostBudget(1, () => 0));
    const routed = new Map([
      ['a', [alert('a-1')]],
      ['b', [alert('a-2')]],
      ['c', [reading('pump-1', { t: 1 })]],
    ]);
    const plan = pacer.plan(routed, recordSetKey);
    expect([...plan.send.keys()]).toEqual(['a', 'b']);
    expect(plan.deferred).toBe(1);
  });

  it('connections that get the same records share one conflated list, so their message is built once', () => {
    let now = 0;
    const pacer = new Pacer(new PostBudget(1, () => now));
    const telemetry = [reading('pump-1', { t: 1 }), reading('pump-1', { t: 2 })];
    const first = pacer.plan(new Map([['x', telemetry], ['y', telemetry]]), recordSetKey);
    expect([...first.send.keys()]).toEqual(['x']);
    now += 1000;
    const second = pacer.plan(new Map(), recordSetKey);
    expect(second.send.get('y')).toBe(first.send.get('x'));
  });

  it('forgets a connection found gone', () => {
    const pacer = new Pacer(new PostBudget(0.5, () => 0));
    pacer.plan(connections(2, [reading('pump-1', { t: 1 })]), recordSetKey);
    const waiting = pacer.waiting;
    pacer.forget('c1');
    expect(pacer.waiting).toBe(waiting - 1);
  });
});
