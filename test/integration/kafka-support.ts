/**
 * Shared parts of the tests that run against a real Kafka broker (kafka-*.test.ts): the
 * KAFKA_BROKERS guard, a kafkajs producer, and the shared real `ws` client (records come from
 * test/support/records.ts).
 */
import { randomUUID } from 'node:crypto';
import { Kafka, logLevel, type Message, type Producer } from 'kafkajs';
import type { AlertRecord, DeviceRecord } from '../../lambdas/core/protocol';

/** The brokers of the real Kafka the tests use, from KAFKA_BROKERS. */
export function kafkaBrokers(): string[] | undefined {
  const value = process.env.KAFKA_BROKERS?.trim();
  return value ? value.split(',').map((broker) => broker.trim()).filter(Boolean) : undefined;
}

/**
 * `describe` for tests that need the real broker. `npm test` starts one and sets KAFKA_BROKERS;
 * run alone without it, the suite fails saying so rather than skipping, so a green run always
 * includes them.
 */
export function describeKafka(name: string, body: (brokers: string[]) => void): void {
  const brokers = kafkaBrokers();
  describe(name, () => {
    if (brokers) {
      body(brokers);
    } else {
      it('runs against a real Kafka broker', () => {
        throw new Error(
          'KAFKA_BROKERS is not set: run these tests through `npm test -- <path>` (it starts a broker), ' +
            'or start one with `npm run kafka:start` and set KAFKA_BROKERS=localhost:9092.',
        );
      });
    }
  });
}

/** A short id unique to this test run, for consumer groups and device ids. */
export function runId(): string {
  return randomUUID().slice(0, 8);
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

/** The shared real WebSocket test client. */
export { TestClient, type RecordFrame } from '../support/ws-test-client';
