/**
 * /metrics after a real workload through the local runtime, parsed with a real Prometheus text
 * parser: the counts equal what was sent and received.
 */
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { createDocumentClient } from '../../lambdas/adapters/clients';
import { DynamoMetricsStore } from '../../lambdas/adapters/dynamo-metrics';
import { createConnectHandler } from '../../lambdas/handlers/connect';
import { createMessageHandler } from '../../lambdas/handlers/message';
import { connectEvent, messageEvent } from '../../local/apigw-events';
import { awsSource } from '../support/apigw';
import { METRIC } from '../../lambdas/core/metrics';
import { LOCAL_AWS, LOCAL_TABLES } from '../../local/dynamo';
import type { LocalRuntime } from '../../local/runtime';
import { startTestRuntime } from '../support/runtime';
import { alertRecord, deviceRecord } from '../support/records';
import { TestClient } from '../support/ws-test-client';
import { localSessionStores } from '../support/stores';

interface Family {
  name: string;
  type: string;
  metrics: { value?: string; labels?: Record<string, string>; buckets?: Record<string, string>; count?: string; sum?: string }[];
}

let runtime: LocalRuntime;

beforeAll(async () => {
  runtime = await startTestRuntime({ urlHost: '127.0.0.1', statusIntervalMs: 0 });
});
afterAll(() => runtime.stop());

async function scrape(): Promise<Map<string, Family>> {
  const res = await fetch(`${runtime.dashboardUrl}metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
  const families = parsePrometheusTextFormat(await res.text()) as Family[];
  return new Map(families.map((f) => [f.name, f]));
}

const value = (families: Map<string, Family>, name: string, labels: Record<string, string> = {}) => {
  const family = families.get(name);
  const sample = family?.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
  return Number(sample?.value ?? NaN);
};
const histogram = (families: Map<string, Family>, name: string) => {
  const [sample] = families.get(name)!.metrics;
  return { count: Number(sample.count), sum: Number(sample.sum), buckets: sample.buckets! };
};

it('counts what a real workload sent and received', async () => {
  const clients = await Promise.all(Array.from({ length: 5 }, () => TestClient.connect(runtime.clientUrl)));
  const active = clients.slice(0, 4);
  for (const [i, client] of active.entries()) {
    await client.request({ action: 'subscribe', id: 'all', filter: i % 2 ? { deviceTypes: ['pump'] } : {} });
    await client.request({ action: 'ping' });
    await client.request({ action: 'ping' });
    await client.request('{oops');
  }
  await clients[4].close();
  await runtime.gateway.settle();

  // A connection that went through the real $connect and subscribe handlers (AWS-shaped events),
  // then vanished without $disconnect: the stream handler finds it gone (410).
  const doc = createDocumentClient({ endpoint: runtime.dynamoEndpoint, ...LOCAL_AWS });
  const deps = {
    sessions: {
      ...localSessionStores(doc),
    },
    metrics: new DynamoMetricsStore(doc, LOCAL_TABLES.metrics),
    log: { debug() {}, info() {}, warn() {}, error() {} },
  };
  const vanished = awsSource('CJ8wVdZ4IAMCJ3w=');
  await createConnectHandler(deps)(connectEvent(vanished));
  await createMessageHandler(deps)(messageEvent(vanished, 'subscribe', '{"action":"subscribe","filter":{"deviceIds":["pump-001"]}}'));
  // The store holds a counter that comes within 100 ms of its previous write for a timer; a read
  // writes it first, as the container would on its next invocation, before its client goes.
  await deps.metrics.read();
  doc.destroy();

  const reports = [];
  reports.push(await runtime.publish(Array.from({ length: 30 }, (_, i) => ({ topic: 'device-data', value: deviceRecord(i % 2 ? 'pump-001' : 'motor-002') }))));
  reports.push(await runtime.publish(Array.from({ length: 5 }, () => ({ topic: 'alerts', value: alertRecord('pump-001', { level: 'critical' }) }))));
  reports.push(await runtime.publish([{ topic: 'device-data', value: 'garbage' }, { topic: 'device-data', value: { deviceId: 'x' } }]));
  const deliveries = reports.reduce((s, r) => s + r.deliveries, 0);
  const posts = reports.reduce((s, r) => s + r.posts, 0);
  await Promise.all(active.map((c) => c.until(() => c.of('device_data').length + c.of('alert').length > 0)));

  const families = await scrape();
  // Six connected (five clients and the ghost), one closed, the ghost found gone.
  expect(value(families, METRIC.connections)).toBe(4);
  expect(families.get(METRIC.connections)!.type).toBe('GAUGE');
  expect(value(families, METRIC.messagesReceived)).toBe(16 + 1);
  // Each of the 4 subscribes is followed by its snapshot: one (empty) frame, nothing published yet.
  expect(value(families, METRIC.messagesSent)).toBe(16 + 4 + 1 + posts);
  expect(value(families, METRIC.streamRecords, { topic: 'device-data', outcome: 'valid' })).toBe(30);
  expect(value(families, METRIC.streamRecords, { topic: 'device-data', outcome: 'invalid' })).toBe(2);
  expect(value(families, METRIC.streamRecords, { topic: 'alerts', outcome: 'valid' })).toBe(5);
  expect(value(families, METRIC.staleConnections)).toBe(1);

  const latency = histogram(families, METRIC.pushLatency);
  expect(latency.count).toBe(deliveries);
  expect(Number(latency.buckets['+Inf'])).toBe(deliveries);
  expect(latency.sum).toBeGreaterThanOrEqual(0);
  expect(latency.sum / latency.count).toBeLessThan(5);
  expect(histogram(families, METRIC.processingDuration).count).toBe(16 + 1 + 3);
  // Closed: the fifth client; the ghost left through the 410 path, which also records its lifetime.
  expect(histogram(families, METRIC.connectionDuration).count).toBe(2);
  // Buckets are cumulative.
  const bounds = Object.entries(latency.buckets)
    .sort(([a], [b]) => Number(a) - Number(b))
    .map(([, v]) => Number(v));
  expect(bounds).toEqual([...bounds].sort((a, b) => a - b));

  await Promise.all(active.map((c) => c.close()));
  await runtime.gateway.settle();
  expect(value(await scrape(), METRIC.connections)).toBe(0);
});
