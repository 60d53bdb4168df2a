/**
 * Cost of alert state and snapshots (issue 14), `npm run bench:snapshot`:
 *
 * 1. DynamoDB writes per second for the latest readings at 100, 1,000 and 10,000 records/s, with
 *    the stream step's conflation (LatestReadingsConflator over the real DynamoDB adapter on
 *    dynalite, on a simulated clock) beside one write per record (the design without conflation),
 *    in the same run. Write units are estimated from the stored item sizes (1 WCU per KB).
 * 2. Snapshot size and time for 1,000 devices: a real `ws` client subscribes to everything on
 *    the local runtime and waits for the final `snapshot` frame; read requests and read units of
 *    one snapshot are counted on the adapters.
 *
 * Options: `--devices N` (1000), `--locations N` (20), `--seconds N` simulated (60),
 * `--interval MS` (5000), `--alerts N` unresolved alerts in the snapshot (50), `--runs N` (5).
 */
import { parseArgs } from 'node:util';
import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import { createDocumentClient } from '../lambdas/adapters/clients';
import { DynamoAlertStore } from '../lambdas/adapters/dynamo-alerts';
import { DynamoLatestReadings } from '../lambdas/adapters/dynamo-latest';
import { mintToken } from '../lambdas/core/auth';
import { snapshotTexts } from '../lambdas/core/snapshot';
import { LatestReadingsConflator } from '../lambdas/core/stream-state';
import { TOPICS, parseServerFrame, utf8Length, type DeviceRecord, type StreamRecord } from '../lambdas/core/protocol';
import { LOCAL_AWS, LOCAL_TABLES, createTables, startDynalite } from '../local/dynamo';
import { startLocalRuntime } from '../local/runtime';
import WebSocket from 'ws';
import { round } from './stats';

const { values: args } = parseArgs({
  options: {
    devices: { type: 'string', default: '1000' },
    locations: { type: 'string', default: '20' },
    seconds: { type: 'string', default: '60' },
    interval: { type: 'string', default: '5000' },
    alerts: { type: 'string', default: '50' },
    runs: { type: 'string', default: '5' },
  },
});
const DEVICES = Number(args.devices);
const LOCATIONS = Number(args.locations);
const SECONDS = Number(args.seconds);
const INTERVAL_MS = Number(args.interval);
const ALERTS = Number(args.alerts);
const RUNS = Number(args.runs);
const RATES = [100, 1000, 10_000];
/** Records per stream batch, as the event source mapping's default batch size. */
const BATCH = 100;

function reading(i: number, t: number): DeviceRecord {
  return {
    deviceId: `dev-${String(i).padStart(5, '0')}`,
    deviceType: ['pump', 'motor', 'boiler', 'fan'][i % 4],
    location: `plant-${String.fromCharCode(97 + (i % 4))}/line-${i % LOCATIONS}`,
    timestamp: t,
    status: 'online',
    metrics: { temperature: 60 + (i % 30) + Math.random(), pressure: 3 + Math.random(), vibration: Math.random() },
  };
}

/** Write units of the latest-readings table as it stands: each write costs its item's size in KB. */
async function itemKilobytes(doc: ReturnType<typeof createDocumentClient>, table: string): Promise<number[]> {
  const items = (await doc.send(new ScanCommand({ TableName: table }))).Items ?? [];
  return items.map((item) => Math.ceil(utf8Length(JSON.stringify(item)) / 1024));
}

async function writeCosts(): Promise<void> {
  console.log(`\nLatest readings: ${DEVICES} devices in ${LOCATIONS} locations, ${SECONDS} s simulated, interval ${INTERVAL_MS} ms`);
  console.log('records/s | conflated writes/s | est. WCU/s | one write per record: writes/s | WCU/s');
  for (const rate of RATES) {
    const dynamo = await startDynalite();
    try {
      await createTables(dynamo.endpoint);
      const doc = createDocumentClient({ endpoint: dynamo.endpoint, ...LOCAL_AWS });
      const store = new DynamoLatestReadings(doc, LOCAL_TABLES.latest);
      const conflator = new LatestReadingsConflator(store, INTERVAL_MS);
      let sent = 0;
      const batches = (rate * SECONDS) / BATCH;
      for (let b = 0; b < batches; b++) {
        const now = Math.round((b * BATCH * 1000) / rate);
        const records: StreamRecord[] = [];
        for (let k = 0; k < BATCH; k++) records.push({ type: 'device_data', data: reading(sent++ % DEVICES, now) });
        conflator.add(records);
        await conflator.flush(now);
      }
      const sizes = await itemKilobytes(doc, LOCAL_TABLES.latest);
      const meanKb = sizes.reduce((a, b) => a + b, 0) / sizes.length;
      // Without conflation each record is its own write of a ~0.3 KB item: 1 WCU each.
      const perRecordKb = Math.ceil(utf8Length(JSON.stringify(reading(1, 0))) / 1024);
      const writesPerSecond = store.calls / SECONDS;
      console.log(
        `${String(rate).padStart(9)} | ${String(round(writesPerSecond, 1)).padStart(18)} | ${String(round(writesPerSecond * meanKb, 1)).padStart(10)} | ` +
          `${String(rate).padStart(30)} | ${rate * perRecordKb}`,
      );
      doc.destroy();
    } finally {
      await new Promise<void>((resolve) => dynamo.server.close(() => resolve()));
    }
  }
}

async function snapshotCost(): Promise<void> {
  const secret = 'bench-snapshot-secret-0123456789abcdef';
  const runtime = await startLocalRuntime({ dashboardPort: 0, wsPort: 0, urlHost: '127.0.0.1', simulator: false, frontendDir: __dirname, statusIntervalMs: 0, jwtSecret: secret });
  try {
    const now = Date.now();
    for (let i = 0; i < DEVICES; i += BATCH) {
      const records = Array.from({ length: Math.min(BATCH, DEVICES - i) }, (_, k) => reading(i + k, now));
      await runtime.publish(records.map((value) => ({ topic: TOPICS.deviceData, key: value.deviceId, value })));
    }
    const alerts = Array.from({ length: ALERTS }, (_, i) => {
      const device = reading(i, now - i * 1000);
      return {
        alertId: `bench-${i}`,
        deviceId: device.deviceId,
        deviceType: device.deviceType,
        location: device.location,
        level: 'critical' as const,
        message: 'temperature above 90',
        metric: 'temperature',
        value: 93,
        threshold: 90,
        timestamp: device.timestamp,
      };
    });
    await runtime.publish(alerts.map((value) => ({ topic: TOPICS.alerts, key: value.deviceId, value })));

    const token = await mintToken(secret, { sub: 'bench', sites: ['*'] });
    const times: number[] = [];
    let frames = 0;
    let bytes = 0;
    let messages = 0;
    for (let run = 0; run < RUNS; run++) {
      const ws = new WebSocket(`${runtime.wsUrl}/?token=${token}`);
      await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
      const texts: string[] = [];
      const started = performance.now();
      await new Promise<void>((resolve) => {
        ws.on('message', (data) => {
          const text = data.toString();
          const frame = parseServerFrame(text);
          if (frame.type !== 'snapshot') return;
          texts.push(text);
          messages += frame.messages.length;
          if (frame.final) resolve();
        });
        ws.send(JSON.stringify({ action: 'subscribe', id: 'all', filter: {} }));
      });
      times.push(performance.now() - started);
      frames = texts.length;
      bytes = texts.reduce((sum, text) => sum + utf8Length(text), 0);
      ws.close();
    }
    messages /= RUNS;
    times.sort((a, b) => a - b);

    // Read requests and read units of one snapshot, counted on fresh adapters over the same tables.
    const doc = createDocumentClient({ endpoint: runtime.dynamoEndpoint, ...LOCAL_AWS });
    const latest = new DynamoLatestReadings(doc, LOCAL_TABLES.latest);
    const alertStore = new DynamoAlertStore(doc, LOCAL_TABLES.alerts);
    await snapshotTexts({ latest, alerts: alertStore }, { sites: ['*'] }, { type: 'subscribed', id: 'all', filter: { types: ['alert', 'device_data'], deviceIds: [], deviceTypes: [], locations: [], alertLevels: [], sites: ['*'] } });
    const latestKb = (await itemKilobytes(doc, LOCAL_TABLES.latest)).reduce((a, b) => a + b, 0);
    const alertKb = ALERTS * 0.5;
    // Eventually consistent reads: 0.5 RCU per 4 KB read (Scan and Query count the bytes read).
    const rcu = Math.ceil(latestKb / 4) / 2 + Math.ceil(alertKb / 4) / 2;
    doc.destroy();

    console.log(`\nSnapshot of ${DEVICES} devices and ${ALERTS} unresolved alerts, subscribe to everything, ${RUNS} runs`);
    console.log(`frames ${frames}, ${round(bytes / 1024, 1)} KB, ${messages} entries`);
    console.log(`time from subscribe to final snapshot frame: median ${round(times[Math.floor(times.length / 2)], 1)} ms, max ${round(times[times.length - 1], 1)} ms`);
    console.log(`reads per snapshot: ${latest.calls + alertStore.calls} requests (${latest.calls} latest, ${alertStore.calls} alerts), about ${rcu} RCU`);
  } finally {
    await runtime.stop();
  }
}

async function main(): Promise<void> {
  await writeCosts();
  await snapshotCost();
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
