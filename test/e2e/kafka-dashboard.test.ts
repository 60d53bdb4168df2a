/**
 * The Kafka path through the dashboard: a reading produced to the real broker with kafkajs goes
 * through the runtime's own Kafka bridge (as `npm start` with KAFKA_BROKERS runs it) and the
 * stream handler to the page in headless Chromium, where it shows up on the chart.
 */
import { readFile } from 'node:fs/promises';
import type { Browser, Page } from 'playwright-core';
import type { LocalRuntime } from '../../local/runtime';
import { TOPICS } from '../../lambdas/core/protocol';
import { describeKafka, runId, TestProducer } from '../integration/kafka-support';
import { deviceRecord } from '../support/records';
import { launchChromium } from './helpers/browser';
import { startRuntime } from './helpers/runtime';

jest.setTimeout(90_000);

function chart(page: Page, metric: string) {
  return page.locator(`[data-testid="metric-chart"][data-chart="${metric}"]`);
}

describeKafka('dashboard fed from Kafka', (brokers) => {
  const id = runId();
  // The e2e device builders name the type after the id; a metric of its own keeps this chart ours.
  const metric = `flow_${id}`;
  const device = `pump-${id}`;
  let runtime: LocalRuntime;
  let browser: Browser;
  let producer: TestProducer;

  beforeAll(async () => {
    // The runtime's bridge resolves once its consumer group has joined and fetched, so a record
    // produced after this is delivered although the group starts at the latest offset.
    runtime = await startRuntime({ kafka: { brokers, groupId: `e2e-${id}` } });
    browser = await launchChromium();
    producer = await TestProducer.connect(brokers);
  });

  afterAll(async () => {
    await producer?.close();
    await browser?.close();
    await runtime?.stop();
  });

  test('a reading produced to Kafka shows up on the chart, and the next one extends its line', async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(String(error)));
    await page.goto(runtime.dashboardUrl);
    await page.locator('[data-testid="connection-status"][data-status="connected"]').waitFor();
    await page.locator('[data-testid="subscription-item"][data-state="active"]').first().waitFor();

    const first = deviceRecord(device, { location: `plant-${id}/line-1`, metrics: { [metric]: 41.25 } });
    await producer.send(TOPICS.deviceData, [first]);
    const summary = chart(page, metric).getByTestId('chart-summary');
    await summary.filter({ hasText: '1 points · 1 devices' }).waitFor({ timeout: 20_000 });
    await page.locator(`[data-testid="device-row"][data-device-id="${device}"]`).filter({ hasText: metric }).waitFor();

    const second = deviceRecord(device, { location: `plant-${id}/line-1`, timestamp: first.timestamp + 1000, metrics: { [metric]: 43.5 } });
    await producer.send(TOPICS.deviceData, [second]);
    await summary.filter({ hasText: '2 points · 1 devices' }).waitFor({ timeout: 20_000 });

    // The plotted data, as the user exports it, holds exactly the two readings from Kafka.
    const [download] = await Promise.all([page.waitForEvent('download'), chart(page, metric).getByTestId('export-csv').click()]);
    const csv = await readFile(await download.path(), 'utf8');
    const rows = csv.trim().split('\r\n').slice(1).map((row) => row.split(','));
    expect(rows.map(([, epoch, deviceId, value]) => [Number(epoch), deviceId, Number(value)])).toEqual([
      [first.timestamp, device, 41.25],
      [second.timestamp, device, 43.5],
    ]);
    expect(errors).toEqual([]);
    await context.close();
  });
});
