/**
 * The device simulator as a Kafka producer (`npm run simulate`), on the real broker: what it
 * produces is read back through the Kafka bridge, as the stream handler would see it.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import type { MSKEvent, MSKRecord } from 'aws-lambda';
import { alertRecordSchema, deviceRecordSchema, TOPICS } from '../../lambdas/core/protocol';
import { startKafkaBridge, type KafkaBridge } from '../../local/kafka-bridge';
import { startKafkaSimulator } from '../../local/simulate-kafka';
import { describeKafka, runId } from './kafka-support';

const ROOT = join(__dirname, '../..');

/** Runs `npm run simulate -- args` (tsx local/simulate-kafka.ts) and collects its output. */
function simulateCli(args: string[], timeoutMs = 30_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(join(ROOT, 'node_modules/.bin/tsx'), ['local/simulate-kafka.ts', ...args], { cwd: ROOT });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`simulate ${args.join(' ')} did not exit within ${timeoutMs} ms:\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const decode = (record: MSKRecord) => ({
  topic: record.topic,
  partition: record.partition,
  key: Buffer.from(record.key, 'base64').toString('utf8'),
  value: JSON.parse(Buffer.from(record.value, 'base64').toString('utf8')) as { deviceId: string },
});

describe('npm run simulate without a broker', () => {
  it('says the broker is unreachable and how to start one, and exits 1', async () => {
    const { code, stderr } = await simulateCli(['--brokers', '127.0.0.1:1', '--seconds', '1']);
    expect(code).toBe(1);
    expect(stderr).toContain('cannot reach Kafka at 127.0.0.1:1');
    expect(stderr).toContain('npm run kafka:start');
  });

  it('rejects a bad option with its usage', async () => {
    const { code, stderr } = await simulateCli(['--rate', 'fast']);
    expect(code).toBe(2);
    expect(stderr).toContain('--rate must be a positive number');
  });
});

describeKafka('the simulator as a Kafka producer', (brokers) => {
  const id = runId();
  let collector: KafkaBridge | undefined;
  afterEach(async () => {
    await collector?.stop();
    collector = undefined;
  });

  it('produces realistic readings and the alerts they raise, keyed by deviceId, at the asked rate', async () => {
    const events: MSKEvent[] = [];
    collector = await startKafkaBridge({
      brokers,
      groupId: `test-${id}-simulator`,
      batchWindowMs: 50,
      invoke: async (event) => {
        events.push(event);
      },
    });
    const simulator = await startKafkaSimulator({ brokers, devices: 50, rate: 1000 });
    const started = Date.now();
    while (simulator.sent() < 3000) {
      expect(Date.now() - started).toBeLessThan(20_000);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await simulator.stop();
    const elapsed = (Date.now() - started) / 1000;
    const sent = simulator.sent();
    const records = () => events.flatMap((event) => Object.values(event.records).flat());
    while (records().length < sent) {
      expect(Date.now() - started).toBeLessThan(30_000);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }

    const decoded = records().map(decode);
    const readings = decoded.filter((r) => r.topic === TOPICS.deviceData);
    const alerts = decoded.filter((r) => r.topic === TOPICS.alerts);
    // About 1,000 readings a second (alerts come on top).
    expect(readings.length / elapsed).toBeGreaterThan(700);
    expect(readings.length / elapsed).toBeLessThan(1300);
    expect(new Set(readings.map((r) => r.value.deviceId)).size).toBe(50);
    for (const r of readings) expect(deviceRecordSchema.safeParse(r.value).success).toBe(true);
    // Spikes cross thresholds: alerts are raised, and they are valid alert records.
    expect(alerts.length).toBeGreaterThan(0);
    for (const a of alerts) expect(alertRecordSchema.safeParse(a.value).success).toBe(true);
    // Keyed by deviceId, so each device's records stay on one partition, in order.
    const partitionsOf = new Map<string, Set<number>>();
    for (const r of decoded) {
      expect(r.key).toBe(r.value.deviceId);
      const key = `${r.topic}/${r.key}`;
      partitionsOf.set(key, (partitionsOf.get(key) ?? new Set()).add(r.partition));
    }
    for (const partitions of partitionsOf.values()) expect(partitions.size).toBe(1);
    expect(new Set(readings.map((r) => r.partition)).size).toBeGreaterThan(1);
  });

  it('runs from the command line for the given seconds and reports what it sent', async () => {
    const { code, stdout } = await simulateCli(['--brokers', brokers.join(','), '--devices', '5', '--rate', '200', '--seconds', '1']);
    expect(code).toBe(0);
    expect(stdout).toContain('simulator: 5 devices, 200 readings/s');
    const sent = Number(/stopped after [\d.]+ s, (\d+) records sent/.exec(stdout)?.[1]);
    expect(sent).toBeGreaterThanOrEqual(150);
  });
});
