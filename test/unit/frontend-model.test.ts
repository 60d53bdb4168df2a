import type { AlertRecord, DeviceRecord } from '../../lambdas/core/protocol';
import { deviceRecord } from '../support/records';
import { csvField, exportFileName, seriesToCsv, toCsv } from '../../frontend/src/csv';
import { DashboardModel, insertPoint, matchesSearch, type Point } from '../../frontend/src/model';
import { describeFilter, filterFromFields } from '../../frontend/src/panels';
import { resolveConfig } from '../../frontend/src/config';
import { socketUrl } from '../../frontend/src/ws-client';

const reading = (deviceId: string, timestamp: number, metrics: Record<string, number>, extra: Partial<DeviceRecord> = {}): DeviceRecord => ({
  deviceId,
  deviceType: deviceId.split('-')[0],
  location: 'plant-a/line-1',
  status: 'online',
  timestamp,
  metrics,
  ...extra,
});
const alertOf = (alertId: string, timestamp: number, extra: Partial<AlertRecord> = {}): AlertRecord => ({
  alertId,
  deviceId: 'pump-001',
  deviceType: 'pump',
  location: 'plant-a/line-1',
  level: 'critical',
  message: 'temperature above 90',
  metric: 'temperature',
  value: 93,
  threshold: 90,
  timestamp,
  ...extra,
});

describe('insertPoint (the window of the last N points)', () => {
  test('keeps x ascending and at most N points', () => {
    const points: Point[] = [];
    for (const x of [1, 2, 3, 5, 4, 6]) insertPoint(points, { x, y: x }, 4);
    expect(points.map((p) => p.x)).toEqual([3, 4, 5, 6]);
  });

  test('the same reading twice (live, then in a snapshot) is one point', () => {
    const points: Point[] = [];
    for (const x of [1, 3, 3, 2, 1, 3]) insertPoint(points, { x, y: x }, 10);
    expect(points.map((p) => p.x)).toEqual([1, 2, 3]);
  });

  test('a point older than a full window is dropped', () => {
    const points: Point[] = [{ x: 5, y: 0 }, { x: 6, y: 0 }];
    insertPoint(points, { x: 1, y: 0 }, 2);
    expect(points.map((p) => p.x)).toEqual([5, 6]);
  });
});

describe('DashboardModel', () => {
  test('a reading that comes again in a snapshot after a reconnect counts as one record', () => {
    const model = new DashboardModel();
    const first = deviceRecord('pump-001', { timestamp: 1000, metrics: { temperature: 70 } });
    const second = deviceRecord('pump-001', { timestamp: 2000, metrics: { temperature: 71 } });
    model.applyDeviceData(first);
    model.applyDeviceData(second);
    // The snapshot brings the latest reading already held, and a conflated older one.
    model.applyDeviceData({ ...second });
    model.applyDeviceData({ ...first });
    expect(model.recordsApplied).toBe(2);
    // Another device's reading at the same time is its own record.
    model.applyDeviceData(deviceRecord('pump-002', { timestamp: 2000, metrics: { temperature: 60 } }));
    expect(model.recordsApplied).toBe(3);
  });

  test('series per metric and device, latest state per device, changes reported once', () => {
    const model = new DashboardModel({ windowPoints: 3 });
    for (let t = 1; t <= 5; t++) model.applyDeviceData(reading('pump-001', t, { temperature: 60 + t, pressure: 3 }));
    model.applyDeviceData(reading('fan-001', 2, { speed: 1 }, { status: 'warning' }));
    expect(model.series.get('temperature')?.get('pump-001')?.map((p) => p.y)).toEqual([63, 64, 65]);
    expect(model.metricNames()).toEqual(['pressure', 'speed', 'temperature']);
    expect(model.statusCounts()).toEqual({ online: 1, warning: 1, error: 0, offline: 0 });
    const changes = model.takeChanges();
    expect([...changes.newMetrics].sort()).toEqual(['pressure', 'speed', 'temperature']);
    expect([...changes.devices].sort()).toEqual(['fan-001', 'pump-001']);
    expect(model.takeChanges().devices.size).toBe(0);
  });

  test('a late record goes into its series but does not roll the device back', () => {
    const model = new DashboardModel();
    model.applyDeviceData(reading('pump-001', 10, { temperature: 70 }, { status: 'error' }));
    model.applyDeviceData(reading('pump-001', 5, { temperature: 50 }));
    expect(model.devices.get('pump-001')).toMatchObject({ status: 'error', lastSeen: 10, metrics: { temperature: 70 } });
    expect(model.series.get('temperature')?.get('pump-001')?.map((p) => p.x)).toEqual([5, 10]);
  });

  test('mean of a metric per device type over each device’s latest reading', () => {
    const model = new DashboardModel();
    model.applyDeviceData(reading('pump-001', 1, { temperature: 60 }));
    model.applyDeviceData(reading('pump-002', 1, { temperature: 70 }));
    model.applyDeviceData(reading('pump-002', 2, { temperature: 80 }));
    model.applyDeviceData(reading('motor-001', 1, { temperature: 50 }));
    expect(model.meanByType('temperature')).toEqual([
      { deviceType: 'motor', mean: 50, devices: 1 },
      { deviceType: 'pump', mean: 70, devices: 2 },
    ]);
  });

  test('alerts newest first, deduplicated, bounded; thresholds learnt per device type', () => {
    const model = new DashboardModel({ maxAlerts: 3 });
    model.applyAlert(alertOf('a1', 10, { level: 'warning', threshold: 85 }));
    model.applyAlert(alertOf('a2', 30));
    model.applyAlert(alertOf('a3', 20, { deviceType: 'motor', threshold: 88 }));
    expect(model.applyAlert(alertOf('a2', 30))).toBe(false);
    expect(model.alerts.map((entry) => entry.key)).toEqual(['a2', 'a3', 'a1']);
    model.applyAlert(alertOf('a4', 40));
    expect(model.alerts.map((entry) => entry.key)).toEqual(['a4', 'a2', 'a3']);
    expect([...(model.thresholds.get('temperature')?.values() ?? [])]).toEqual([
      { deviceType: 'pump', value: 85, level: 'warning' },
      { deviceType: 'pump', value: 90, level: 'critical' },
      { deviceType: 'motor', value: 88, level: 'critical' },
    ]);
    expect(model.unacknowledgedCritical()).toBe(3);
    model.applyAlertState({ alertId: 'a4', state: 'acknowledged', by: 'alice', at: 50 });
    expect(model.unacknowledgedCritical()).toBe(2);
    expect(model.alerts[0].state).toEqual({ state: 'acknowledged', by: 'alice', at: 50 });
    expect(model.takeChanges().newCritical).toBe(3);
  });

  test('alert states only move forward, and a "back to normal" record resolves the alert it names', () => {
    const model = new DashboardModel();
    model.applyAlert(alertOf('a1', 10));
    model.applyAlert(alertOf('a2', 20), { state: 'acknowledged', by: 'bob', at: 25 });
    expect(model.openAlertIds()).toEqual(['a1']);
    model.applyAlertState({ alertId: 'a2', state: 'open', at: 30 });
    expect(model.alerts.find((e) => e.key === 'a2')?.state.state).toBe('acknowledged');
    model.applyAlert(alertOf('a3', 40, { level: 'info', resolves: 'a1' }));
    expect(model.alerts.map((e) => [e.key, e.state.state])).toEqual([
      ['a3', 'resolved'],
      ['a2', 'acknowledged'],
      ['a1', 'resolved'],
    ]);
    expect(model.unacknowledgedCritical()).toBe(0);
    // The same alert again (a snapshot after a reconnect) is not a second entry.
    expect(model.applyAlert(alertOf('a2', 20), { state: 'resolved', by: 'expiry', at: 60 })).toBe(false);
    expect(model.alerts).toHaveLength(3);
    expect(model.alerts.find((e) => e.key === 'a2')?.state).toEqual({ state: 'resolved', by: 'expiry', at: 60 });
  });

  test('an alert that opened and resolved while the page was away comes back resolved, whichever record comes first', () => {
    // In order, as a replay delivers one partition.
    const replayed = new DashboardModel();
    replayed.applyAlert(alertOf('gap-1', 100));
    replayed.applyAlert(alertOf('gap-2', 150, { level: 'info', message: 'back to normal', resolves: 'gap-1' }));
    expect(replayed.alerts.map((e) => [e.key, e.state.state])).toEqual([
      ['gap-2', 'resolved'],
      ['gap-1', 'resolved'],
    ]);
    expect(replayed.unacknowledgedCritical()).toBe(0);
    expect(replayed.takeChanges().newCritical).toBe(1);

    // The resolution first (a hold released early, or a state change racing its alert): the alert
    // still arrives resolved, and never sounds as open.
    const early = new DashboardModel();
    early.applyAlert(alertOf('gap-2', 150, { level: 'info', message: 'back to normal', resolves: 'gap-1' }));
    early.applyAlertState({ alertId: 'gap-3', state: 'acknowledged', by: 'bob', at: 160 });
    early.applyAlert(alertOf('gap-1', 100));
    early.applyAlert(alertOf('gap-3', 140));
    expect(early.alerts.map((e) => [e.key, e.state.state])).toEqual([
      ['gap-2', 'resolved'],
      ['gap-3', 'acknowledged'],
      ['gap-1', 'resolved'],
    ]);
    expect(early.alerts.find((e) => e.key === 'gap-1')?.state).toEqual({ state: 'resolved', by: 'gap-2', at: 150 });
    expect(early.takeChanges().newCritical).toBe(0);
  });

  test('states of alerts never seen are remembered within bounds', () => {
    const model = new DashboardModel({ maxAlerts: 2 });
    for (const alertId of ['x1', 'x2', 'x3']) model.applyAlertState({ alertId, state: 'resolved', at: 1 });
    model.applyAlert(alertOf('x1', 10));
    model.applyAlert(alertOf('x3', 30));
    // x1's early state was the oldest and was forgotten; x3's was kept.
    expect(model.alerts.map((e) => [e.key, e.state.state])).toEqual([
      ['x3', 'resolved'],
      ['x1', 'open'],
    ]);
  });

  test('readings replayed after live ones close the gap in their series', () => {
    const model = new DashboardModel();
    for (const at of [1000, 2000, 6000, 7000]) model.applyDeviceData(reading('pump-001', at, { temperature: at / 100 }));
    for (const at of [3000, 4000, 5000]) model.applyDeviceData(reading('pump-001', at, { temperature: at / 100 }));
    expect(model.series.get('temperature')?.get('pump-001')?.map((p) => p.x)).toEqual([1000, 2000, 3000, 4000, 5000, 6000, 7000]);
    expect(model.devices.get('pump-001')?.lastSeen).toBe(7000);
  });

  test('at most maxSeriesPerMetric devices are plotted per metric; all are listed', () => {
    const model = new DashboardModel({ maxSeriesPerMetric: 2 });
    for (const id of ['pump-001', 'pump-002', 'pump-003']) model.applyDeviceData(reading(id, 1, { temperature: 1 }));
    expect([...(model.series.get('temperature')?.keys() ?? [])]).toEqual(['pump-001', 'pump-002']);
    expect(model.devices.size).toBe(3);
    model.clearData();
    expect(model.series.size).toBe(0);
    expect(model.takeChanges().cleared).toBe(true);
  });

  test('search matches every word against id, type, location and status', () => {
    const device = { deviceId: 'pump-017', deviceType: 'pump', location: 'plant-a/line-2', status: 'warning' as const, lastSeen: 0, metrics: {} };
    expect(matchesSearch(device, '')).toBe(true);
    expect(matchesSearch(device, 'PUMP line-2')).toBe(true);
    expect(matchesSearch(device, 'warn')).toBe(true);
    expect(matchesSearch(device, 'pump line-3')).toBe(false);
  });
});

describe('CSV export', () => {
  test('quotes fields that need it and defuses spreadsheet formulas', () => {
    expect(csvField('a,b')).toBe('"a,b"');
    expect(csvField('say "hi"')).toBe('"say ""hi"""');
    expect(csvField('=HYPERLINK("x")')).toBe(`"'=HYPERLINK(""x"")"`);
    expect(csvField(-1.5)).toBe('-1.5');
    expect(toCsv(['a', 'b'], [[1, null]])).toBe('a,b\r\n1,\r\n');
  });

  test('one row per plotted point, ordered by time then device', () => {
    const csv = seriesToCsv(
      'temperature',
      new Map([
        ['pump-002', [{ x: Date.UTC(2025, 10, 25, 12, 0, 1), y: 70 }]],
        ['pump-001', [{ x: Date.UTC(2025, 10, 25, 12, 0, 0), y: 60.5 }, { x: Date.UTC(2025, 10, 25, 12, 0, 1), y: 61 }]],
      ]),
    );
    expect(csv.split('\r\n')).toEqual([
      'timestamp,epoch_ms,device_id,temperature',
      '2025-11-25T12:00:00.000Z,1764072000000,pump-001,60.5',
      '2025-11-25T12:00:01.000Z,1764072001000,pump-001,61',
      '2025-11-25T12:00:01.000Z,1764072001000,pump-002,70',
      '',
    ]);
  });

  test('file names are safe and stamped', () => {
    expect(exportFileName('mean by/type', 'csv', new Date(Date.UTC(2025, 10, 25, 8, 5, 9, 123)))).toBe('mean_by_type-2025-11-25T080509Z.csv');
  });
});

describe('subscription editor fields', () => {
  test('empty fields do not restrict; all boxes ticked means no restriction', () => {
    expect(filterFromFields({ types: ['device_data', 'alert'], deviceIds: ' ', deviceTypes: '', locations: '', alertLevels: [] })).toEqual({});
    expect(
      filterFromFields({ types: ['alert'], deviceIds: 'pump-001, pump-002;pump-001', deviceTypes: 'pump', locations: 'plant-a/line-2', alertLevels: ['critical'] }),
    ).toEqual({ types: ['alert'], deviceIds: ['pump-001', 'pump-002'], deviceTypes: ['pump'], locations: ['plant-a/line-2'], alertLevels: ['critical'] });
    expect(describeFilter({})).toBe('everything');
    expect(describeFilter({ deviceIds: ['a', 'b'], alertLevels: ['critical'] })).toBe('devices: a, b · alert levels: critical');
  });
});

describe('config.json', () => {
  test('the page URL’s ?token= wins over config.json’s token', () => {
    expect(resolveConfig({ wsUrl: 'ws://localhost:8081', token: 'from-config' }, 'http://localhost:8080/?token=from-url')).toEqual({
      wsUrl: 'ws://localhost:8081',
      token: 'from-url',
    });
    expect(resolveConfig({ wsUrl: 'wss://x.execute-api.eu-west-1.amazonaws.com/prod' }, 'https://d.cloudfront.net/')).toEqual({
      wsUrl: 'wss://x.execute-api.eu-west-1.amazonaws.com/prod',
    });
  });

  test('a config without a ws(s) URL fails with what to write', () => {
    expect(() => resolveConfig({ wsUrl: 'https://x' }, 'http://h/')).toThrow(/"wsUrl": "wss:\/\/..."/);
    expect(() => resolveConfig(null, 'http://h/')).toThrow(/JSON object/);
  });

  test('the token is appended to the socket URL, encoded', () => {
    expect(socketUrl('wss://x.example/prod', 'a b+c')).toBe('wss://x.example/prod?token=a+b%2Bc');
    expect(socketUrl('ws://localhost:8081', undefined)).toBe('ws://localhost:8081');
  });
});
