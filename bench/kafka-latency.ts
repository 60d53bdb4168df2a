/**
 * Produce-to-client latency through the real Kafka path: a kafkajs producer, the broker, the
 * Kafka bridge (local MSK event source), the stream handler of the local runtime, and real `ws`
 * clients. Latency of a record = the time a client received it − the time it was produced (its
 * `timestamp`, set just before the send). Everything runs on this machine, so one clock.
 *
 *   tsx bench/kafka-latency.ts --brokers localhost:9092 --rates 1000,10000 --seconds 10
 */
import { randomUUID } from 'node:crypto';
import { Kafka, logLevel, type Message } from 'kafkajs';
import WebSocket from 'ws';
import { parseServerFrame, TOPICS, unpackFrame, type DeviceRecord } from '../lambdas/core/protocol';
import { startKafkaBridge } from '../local/kafka-bridge';
import { startLocalRuntime } from '../local/runtime';
import { errorMessage } from '../lambdas/core/errors';

/** Options of {@link runKafkaLatencyBench}. */
export interface KafkaLatencyBenchOptions {
  brokers: string[];
  /** Records per second to produce, one run per rate. Default [1000, 10000]. */
  rates?: number[];
  /** Measured seconds per rate, after a 2 s warm-up. Default 10. */
  seconds?: number;
  /** WebSocket clients, each subscribed to every bench device by device type. Default 4. */
  clients?: number;
  /** Distinct devices. Default 200. */
  devices?: number;
  /**
   * Records per event, the event source mapping's BatchSize. Default 10000 (Kafka's maximum): at
   * Lambda's default of 100, 10,000 records a second would need 100 invocations a second from one
   * poller, and part of a batch's cost is per distinct index key, not per record.
   */
  batchSize?: number;
  /** The bridge's batching window, ms. Default 50: a live dashboard wants a short one. */
  batchWindowMs?: number;
  log?: (line: string) => void;
}

/** Latency of one rate. Times in ms. */
export interface KafkaLatencyResult {
  rate: number;
  seconds: number;
  /** Records produced in the measured period. */
  produced: number;
  /** Deliveries expected in the measured period (produced × clients) and received. */
  expected: number;
  received: number;
  /** Records per second the producer achieved. */
  achievedRate: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
  mean: number;
  /** Stream handler invocations during the run, and their mean size in records. */
  invocations: number;
  recordsPerInvocation: number;
}

export interface KafkaLatencyReport {
  brokers: string[];
  clients: number;
  batchSize: number;
  batchWindowMs: number;
  results: KafkaLatencyResult[];
}

const WARM_UP_MS = 2000;
const TICK_MS = 20;
const DRAIN_TIMEOUT_MS = 30_000;

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

interface BenchClient {
  socket: WebSocket;
  latencies: number[];
  received: number;
}

async function connectClient(url: string, deviceType: string, measureFrom: { at: number; until: number }): Promise<BenchClient> {
  const socket = new WebSocket(url);
  const client: BenchClient = { socket, latencies: [], received: 0 };
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('error', reject);
  });
  const subscribed = new Promise<void>((resolve, reject) => {
    socket.on('message', (data) => {
      const now = Date.now();
      const frame = parseServerFrame(data.toString());
      if (frame.type === 'subscribed') resolve();
      if (frame.type === 'error') reject(new Error(`subscribe refused: ${frame.message}`));
      for (const inner of unpackFrame(frame)) {
        if (inner.type !== 'device_data') continue;
        const produced = inner.data.timestamp;
        if (produced >= measureFrom.at && produced < measureFrom.until) {
          client.received++;
          client.latencies.push(now - produced);
        }
      }
    });
  });
  socket.send(JSON.stringify({ action: 'subscribe', id: 'bench', filter: { types: ['device_data'], deviceTypes: [deviceType] } }));
  await subscribed;
  return client;
}

/**
 * Runs the produce-to-client latency benchmark at each rate against a real broker and returns
 * the percentiles. Starts its own local runtime (no simulator) and bridge (a fresh consumer group).
 */
export async function runKafkaLatencyBench(options: KafkaLatencyBenchOptions): Promise<KafkaLatencyReport> {
  const rates = options.rates ?? [1000, 10000];
  const seconds = options.seconds ?? 10;
  const clientCount = options.clients ?? 4;
  const deviceCount = options.devices ?? 200;
  const batchSize = options.batchSize ?? 10_000;
  const batchWindowMs = options.batchWindowMs ?? 50;
  const log = options.log ?? (() => undefined);
  const id = randomUUID().slice(0, 8);

  const runtime = await startLocalRuntime({ dashboardPort: 0, wsPort: 0, simulator: false });
  const kafka = new Kafka({ clientId: 'iot-dashboard-bench', brokers: options.brokers, logLevel: logLevel.NOTHING });
  const producer = kafka.producer({ allowAutoTopicCreation: true });
  await producer.connect();
  const bridge = await startKafkaBridge({
    brokers: options.brokers,
    groupId: `bench-${id}`,
    batchSize,
    batchWindowMs,
    invoke: runtime.invokeStream,
    log,
  });
  const results: KafkaLatencyResult[] = [];
  try {
    for (const rate of rates) {
      const deviceType = `bench-${id}-${rate}`;
      const window = { at: Number.POSITIVE_INFINITY, until: Number.POSITIVE_INFINITY };
      const url = runtime.token ? `${runtime.wsUrl}?token=${encodeURIComponent(runtime.token)}` : runtime.wsUrl;
      const clients = await Promise.all(Array.from({ length: clientCount }, () => connectClient(url, deviceType, window)));

      const before = bridge.stats();
      log(`kafka-latency: ${rate} records/s for ${seconds} s (+${WARM_UP_MS / 1000} s warm-up), ${clientCount} clients`);
      const started = Date.now();
      window.at = started + WARM_UP_MS;
      window.until = window.at + seconds * 1000;
      let produced = 0;
      let due = 0;
      let device = 0;
      let last = started;
      const sends: Promise<unknown>[] = [];
      while (Date.now() < window.until) {
        const now = Date.now();
        due += ((now - last) / 1000) * rate;
        last = now;
        const count = Math.floor(due);
        due -= count;
        if (count > 0) {
          const messages: Message[] = [];
          for (let n = 0; n < count; n++) {
            device = (device + 1) % deviceCount;
            const record: DeviceRecord = {
              deviceId: `${deviceType}-${device}`,
              deviceType,
              location: 'bench/line-1',
              timestamp: Date.now(),
              status: 'online',
              metrics: { temperature: 60 + (n % 10), pressure: 3 },
            };
            messages.push({ key: record.deviceId, value: JSON.stringify(record) });
            if (record.timestamp >= window.at && record.timestamp < window.until) produced++;
          }
          sends.push(producer.send({ topic: TOPICS.deviceData, messages, acks: 1 }));
        }
        await sleep(TICK_MS);
      }
      await Promise.all(sends);
      const expected = produced * clientCount;
      const drainDeadline = Date.now() + DRAIN_TIMEOUT_MS;
      while (clients.reduce((sum, c) => sum + c.received, 0) < expected && Date.now() < drainDeadline) await sleep(100);

      const after = bridge.stats();
      const invocations = after.batches - before.batches;
      const latencies = clients.flatMap((c) => c.latencies).sort((a, b) => a - b);
      const received = clients.reduce((sum, c) => sum + c.received, 0);
      const result: KafkaLatencyResult = {
        rate,
        seconds,
        produced,
        expected,
        received,
        achievedRate: Math.round(produced / seconds),
        p50: percentile(latencies, 50),
        p95: percentile(latencies, 95),
        p99: percentile(latencies, 99),
        max: latencies.length ? latencies[latencies.length - 1] : NaN,
        mean: latencies.length ? Math.round(latencies.reduce((a, b) => a + b, 0) / latencies.length) : NaN,
        invocations,
        recordsPerInvocation: invocations ? Math.round((after.records - before.records) / invocations) : 0,
      };
      results.push(result);
      log(
        `kafka-latency: ${rate}/s: p50 ${result.p50} ms, p95 ${result.p95} ms, p99 ${result.p99} ms, ` +
          `max ${result.max} ms; ${received}/${expected} deliveries`,
      );
      for (const c of clients) c.socket.close();
      // A backlog left by a rate the path could not keep up with would delay the next rate's records.
      const lagDeadline = Date.now() + DRAIN_TIMEOUT_MS;
      while ((await bridge.lag()) > 0 && Date.now() < lagDeadline) await sleep(200);
    }
  } finally {
    await bridge.stop();
    await producer.disconnect();
    await runtime.stop();
  }
  return { brokers: options.brokers, clients: clientCount, batchSize, batchWindowMs, results };
}

async function main(): Promise<void> {
  const args = new Map<string, string>();
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) args.set(argv[i].replace(/^--/, ''), argv[i + 1]);
  const brokers = (args.get('brokers') ?? process.env.KAFKA_BROKERS ?? 'localhost:9092').split(',');
  const rates = (args.get('rates') ?? '1000,10000').split(',').map(Number);
  const seconds = Number(args.get('seconds') ?? 10);
  const batchSize = args.has('batch-size') ? Number(args.get('batch-size')) : undefined;
  const batchWindowMs = args.has('batch-window-ms') ? Number(args.get('batch-window-ms')) : undefined;
  const report = await runKafkaLatencyBench({ brokers, rates, seconds, batchSize, batchWindowMs, log: (line) => console.error(line) });
  console.log(`batch size ${report.batchSize}, window ${report.batchWindowMs} ms, ${report.clients} clients`);
  console.log('rate/s  achieved/s  p50 ms  p95 ms  p99 ms  max ms       delivered  invocations  records/inv');
  for (const r of report.results) {
    console.log(
      [r.rate, r.achievedRate, r.p50, r.p95, r.p99, r.max, `${r.received}/${r.expected}`, r.invocations, r.recordsPerInvocation]
        .map((v, i) => String(v).padStart([6, 10, 6, 6, 6, 6, 15, 11, 11][i]))
        .join('  '),
    );
  }
  console.log(JSON.stringify(report));
}

if (require.main === module) {
  main().catch((error: unknown) => {
    console.error(`kafka-latency: ${errorMessage(error)}`);
    process.exit(1);
  });
}
