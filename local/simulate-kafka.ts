/**
 * The device simulator as a Kafka producer: readings to `device-data`, the alerts they raise to
 * `alerts`, keyed by deviceId (so that each device's records stay in order on one partition).
 *
 *   npm run simulate -- --brokers localhost:9092 --devices 200 --rate 1000
 *
 * Options: --brokers (default $KAFKA_BROKERS or localhost:9092), --devices (default 200),
 * --rate readings per second (default 1000), --seconds to run (default: until Ctrl-C),
 * --seed (default 42).
 */
import { Kafka, logLevel, type Message, type Producer, type TopicMessages } from 'kafkajs';
import { AppError, errorMessage } from '../lambdas/core/errors';
import { TOPICS, type AlertRecord, type DeviceRecord } from '../lambdas/core/protocol';
import { DeviceSimulator } from './simulator';

/** Options of {@link startKafkaSimulator}. */
export interface KafkaSimulatorOptions {
  /** Bootstrap brokers, `host:port`. */
  brokers: string[];
  /** Number of simulated devices. Default 200. */
  devices?: number;
  /** Readings per second, across all devices. Default 1000. */
  rate?: number;
  /** Seed of the simulated series. Default 42. */
  seed?: number;
  /** Log sink, one line per call. Default: nothing. */
  log?: (line: string) => void;
}

/** A running simulator. */
export interface KafkaSimulator {
  /** Stops producing, flushes what is in flight and disconnects. */
  stop(): Promise<void>;
  /** Records (readings and alerts) the broker acknowledged so far. */
  sent(): number;
}

/** Thrown when the simulator cannot start, e.g. the broker is unreachable. */
export class KafkaSimulatorError extends AppError {
  override name = 'KafkaSimulatorError';
}

/** How often readings are produced; each tick sends what the rate asks for since the last one. */
const TICK_MS = 50;
/** A tick never sends more than this many seconds' worth, so that a stall does not cause a burst. */
const MAX_CATCH_UP_SECONDS = 1;

function toMessage(record: DeviceRecord | AlertRecord): Message {
  return { key: record.deviceId, value: JSON.stringify(record), timestamp: String(record.timestamp) };
}

/** Connects a producer and starts sending simulated readings at `rate` per second. */
export async function startKafkaSimulator(options: KafkaSimulatorOptions): Promise<KafkaSimulator> {
  const rate = options.rate ?? 1000;
  const devices = options.devices ?? 200;
  const log = options.log ?? (() => undefined);
  if (!(rate > 0)) throw new KafkaSimulatorError(`rate must be a positive number of readings per second, got ${rate}`);
  if (!(devices >= 1)) throw new KafkaSimulatorError(`devices must be at least 1, got ${devices}`);
  const simulator = new DeviceSimulator({ devices, seed: options.seed ?? 42 });
  const kafka = new Kafka({
    clientId: 'iot-dashboard-simulator',
    brokers: options.brokers,
    logLevel: logLevel.NOTHING,
    connectionTimeout: 3000,
    retry: { retries: 3, initialRetryTime: 300 },
  });
  const producer: Producer = kafka.producer({ allowAutoTopicCreation: true });
  try {
    await producer.connect();
  } catch (error) {
    await producer.disconnect().catch(() => undefined);
    throw new KafkaSimulatorError(
      `cannot reach Kafka at ${options.brokers.join(',')}: ${errorMessage(error)}. ` +
        'Start a local broker with `npm run kafka:start`, or pass --brokers host:port.',
      { cause: error },
    );
  }

  let sent = 0;
  let due = 0;
  let last = Date.now();
  let stopping = false;
  let inFlight: Promise<void> = Promise.resolve();
  let failing = false;

  const tick = (): void => {
    const now = Date.now();
    due = Math.min(due + ((now - last) / 1000) * rate, rate * MAX_CATCH_UP_SECONDS);
    last = now;
    const count = Math.floor(due);
    if (count === 0) return;
    due -= count;
    const { readings, alerts } = simulator.next(count, now);
    const topicMessages: TopicMessages[] = [{ topic: TOPICS.deviceData, messages: readings.map(toMessage) }];
    if (alerts.length > 0) topicMessages.push({ topic: TOPICS.alerts, messages: alerts.map(toMessage) });
    // Sends may overlap when the broker is slow; kafkajs keeps each partition's order per connection.
    inFlight = Promise.all([
      inFlight,
      producer.sendBatch({ topicMessages }).then(
        () => {
          sent += readings.length + alerts.length;
          if (failing) log('simulator: sending again');
          failing = false;
        },
        (error: unknown) => {
          if (!failing) log(`simulator: send failed (readings are dropped until the broker answers): ${errorMessage(error)}`);
          failing = true;
        },
      ),
    ]).then(() => undefined);
  };
  const timer = setInterval(() => {
    if (!stopping) tick();
  }, TICK_MS);
  log(`simulator: ${devices} devices, ${rate} readings/s to ${TOPICS.deviceData} and ${TOPICS.alerts} on ${options.brokers.join(',')}`);

  let stopped: Promise<void> | undefined;
  return {
    stop(): Promise<void> {
      stopped ??= (async () => {
        stopping = true;
        clearInterval(timer);
        await inFlight;
        await producer.disconnect();
      })();
      return stopped;
    },
    sent: () => sent,
  };
}

function parseArgs(argv: string[]): Record<string, string> {
  const args: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith('--')) throw new Error(`unexpected argument "${arg}"`);
    const [name, inline] = arg.slice(2).split('=', 2);
    const value = inline ?? argv[++i];
    if (value === undefined) throw new Error(`--${name} needs a value`);
    args[name] = value;
  }
  return args;
}

async function main(): Promise<void> {
  const known = ['brokers', 'devices', 'rate', 'seconds', 'seed'];
  let args: Record<string, string>;
  try {
    args = parseArgs(process.argv.slice(2));
    const unknown = Object.keys(args).filter((name) => !known.includes(name));
    if (unknown.length) throw new Error(`unknown option --${unknown[0]}`);
  } catch (error) {
    console.error(`simulate: ${errorMessage(error)}\nusage: npm run simulate -- --brokers localhost:9092 --devices 200 --rate 1000 [--seconds N] [--seed N]`);
    process.exit(2);
  }
  const number = (name: string, fallback: number): number => {
    const value = args[name] === undefined ? fallback : Number(args[name]);
    if (!Number.isFinite(value) || value <= 0) {
      console.error(`simulate: --${name} must be a positive number, got "${args[name]}"`);
      process.exit(2);
    }
    return value;
  };
  const brokers = (args.brokers ?? process.env.KAFKA_BROKERS ?? 'localhost:9092').split(',').map((b) => b.trim()).filter(Boolean);
  const devices = number('devices', 200);
  const rate = number('rate', 1000);
  const seconds = args.seconds === undefined ? undefined : number('seconds', 1);
  const seed = number('seed', 42);

  let simulator: KafkaSimulator;
  try {
    simulator = await startKafkaSimulator({ brokers, devices, rate, seed, log: (line) => console.log(line) });
  } catch (error) {
    console.error(`simulate: ${errorMessage(error)}`);
    process.exit(1);
  }
  const started = Date.now();
  let lastSent = 0;
  const report = setInterval(() => {
    const sent = simulator.sent();
    console.log(`simulator: ${sent} records sent (${Math.round((sent - lastSent) / 5)}/s)`);
    lastSent = sent;
  }, 5000);
  const finish = async (): Promise<void> => {
    clearInterval(report);
    await simulator.stop();
    console.log(`simulator: stopped after ${((Date.now() - started) / 1000).toFixed(1)} s, ${simulator.sent()} records sent`);
    process.exit(0);
  };
  process.once('SIGINT', () => void finish());
  process.once('SIGTERM', () => void finish());
  if (seconds !== undefined) setTimeout(() => void finish(), seconds * 1000);
}

if (require.main === module) {
  void main();
}
