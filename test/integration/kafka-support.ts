/**
 * Shared parts of the tests that run against a real Kafka broker (kafka-*.test.ts): the
 * KAFKA_BROKERS guard, a kafkajs producer, and a real `ws` client that collects pushed records.
 */
import { randomUUID } from 'node:crypto';
import { Kafka, logLevel, type Message, type Producer } from 'kafkajs';
import WebSocket from 'ws';
import {
  parseServerFrame,
  unpackFrame,
  type AlertFrame,
  type AlertRecord,
  type DeviceDataFrame,
  type DeviceRecord,
  type Filter,
  type ServerFrame,
} from '../../lambdas/core/protocol';

/** The brokers of the real Kafka the tests use, from KAFKA_BROKERS. */
export function kafkaBrokers(): string[] | undefined {
  const value = process.env.KAFKA_BROKERS?.trim();
  return value ? value.split(',').map((broker) => broker.trim()).filter(Boolean) : undefined;
}

/** True on a CI runner (CI set to anything but empty, `false` or `0`). */
function inCi(): boolean {
  const ci = (process.env.CI ?? '').trim().toLowerCase();
  return ci !== '' && ci !== 'false' && ci !== '0';
}

/**
 * `describe` for tests that need the real broker. Without KAFKA_BROKERS they are skipped on a
 * developer's machine, and fail in CI, where being skipped would hide that they never ran.
 */
export function describeKafka(name: string, body: (brokers: string[]) => void): void {
  const brokers = kafkaBrokers();
  if (brokers) {
    describe(name, () => body(brokers));
  } else if (inCi()) {
    describe(name, () => {
      it('runs against a real Kafka broker', () => {
        throw new Error(
          'KAFKA_BROKERS is not set, so the Kafka tests cannot run, and CI must not skip them. ' +
            'Start the broker with `npm run kafka:start` and run the tests with KAFKA_BROKERS=localhost:9092.',
        );
      });
    });
  } else {
    describe.skip(`${name} (set KAFKA_BROKERS, e.g. after npm run kafka:start)`, () => body([]));
  }
}

/** A short id unique to this test run, for consumer groups and device ids. */
export function runId(): string {
  return randomUUID().slice(0, 8);
}

/** A valid `device-data` record. */
export function reading(deviceId: string, overrides: Partial<DeviceRecord> = {}): DeviceRecord {
  return {
    deviceId,
    deviceType: 'pump',
    location: 'plant-a/line-2',
    timestamp: Date.now(),
    status: 'online',
    metrics: { temperature: 70, pressure: 3.1 },
    ...overrides,
  };
}

/** A valid `alerts` record. */
export function alert(deviceId: string, overrides: Partial<AlertRecord> = {}): AlertRecord {
  return {
    alertId: `a-${randomUUID().slice(0, 8)}`,
    deviceId,
    deviceType: 'pump',
    location: 'plant-a/line-2',
    level: 'critical',
    message: 'temperature above 90',
    metric: 'temperature',
    value: 93.4,
    threshold: 90,
    timestamp: Date.now(),
    ...overrides,
  };
}

/** A kafkajs producer on the test broker. */
export class TestProducer {
  private constructor(private readonly producer: Producer) {}

  static async connect(brokers: string[]): Promise<TestProducer> {
    const kafka = new Kafka({ clientId: 'iot-dashboard-test', brokers, logLevel: logLevel.NOTHING });
    const producer = kafka.producer({ allowAutoTopicCreation: true });
    await producer.connect();
    return new TestProducer(producer);
  }

  /** Sends records keyed by deviceId (raw strings are sent as they are, key `poison`). */
  async send(topic: string, records: Array<DeviceRecord | AlertRecord | string>): Promise<void> {
    const messages: Message[] = records.map((record) =>
      typeof record === 'string'
        ? { key: 'poison', value: record }
        : { key: record.deviceId, value: JSON.stringify(record), headers: { 'content-type': 'application/json' } },
    );
    await this.producer.send({ topic, messages });
  }

  /** Sends raw messages as given. */
  async sendRaw(topic: string, messages: Message[]): Promise<void> {
    await this.producer.send({ topic, messages });
  }

  async close(): Promise<void> {
    await this.producer.disconnect();
  }
}

/** A record frame as a client received it. */
export type RecordFrame = DeviceDataFrame | AlertFrame;

/** A real WebSocket client of the local runtime that collects the records pushed to it. */
export class TestClient {
  /** Every record frame received, unpacked from `batch` frames, in arrival order. */
  readonly records: RecordFrame[] = [];
  /** Every frame received, as sent. */
  readonly frames: ServerFrame[] = [];
  private waiters: Array<() => void> = [];

  private constructor(private readonly socket: WebSocket) {
    socket.on('message', (data) => {
      const frame = parseServerFrame(data.toString());
      this.frames.push(frame);
      for (const inner of unpackFrame(frame)) {
        if (inner.type === 'device_data' || inner.type === 'alert') this.records.push(inner);
      }
      const waiters = this.waiters;
      this.waiters = [];
      for (const wake of waiters) wake();
    });
  }

  /** Connects to `wsUrl` (with `?token=` when a token is given). */
  static async connect(wsUrl: string, token?: string): Promise<TestClient> {
    const url = token ? `${wsUrl}${wsUrl.includes('?') ? '&' : '?'}token=${encodeURIComponent(token)}` : wsUrl;
    const socket = new WebSocket(url);
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
      socket.once('unexpected-response', (_request, response) =>
        reject(new Error(`WebSocket upgrade refused: HTTP ${response.statusCode}`)),
      );
    });
    return new TestClient(socket);
  }

  /** Waits until `predicate` holds over what was received, or fails after `timeoutMs`. */
  async waitFor(predicate: (client: TestClient) => boolean, description: string, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate(this)) {
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(`timed out after ${timeoutMs} ms waiting for ${description}; got ${this.records.length} records`);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Subscribes and waits for the `subscribed` reply. */
  async subscribe(id: string, filter: Filter): Promise<void> {
    const seen = this.frames.length;
    this.socket.send(JSON.stringify({ action: 'subscribe', id, filter }));
    await this.waitFor(
      (client) => client.frames.slice(seen).some((frame) => (frame.type === 'subscribed' && frame.id === id) || frame.type === 'error'),
      `the reply to subscribe ${id}`,
      10_000,
    );
    const error = this.frames.slice(seen).find((frame) => frame.type === 'error');
    if (error) throw new Error(`subscribe ${id} refused: ${JSON.stringify(error)}`);
  }

  /**
   * Sends a ping and waits for its pong. The server writes to a socket in order, so every record
   * posted to this client before the ping has arrived once this resolves.
   */
  async barrier(): Promise<void> {
    const seen = this.frames.length;
    this.socket.send(JSON.stringify({ action: 'ping' }));
    await this.waitFor((client) => client.frames.slice(seen).some((frame) => frame.type === 'pong'), 'a pong', 10_000);
  }

  /** Records received for one device. */
  recordsOf(deviceId: string): RecordFrame[] {
    return this.records.filter((frame) => frame.data.deviceId === deviceId);
  }

  async close(): Promise<void> {
    if (this.socket.readyState === WebSocket.CLOSED) return;
    await new Promise<void>((resolve) => {
      this.socket.once('close', () => resolve());
      this.socket.close();
    });
  }
}
