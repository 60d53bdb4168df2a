/**
 * Creates the local broker's topics when missing; run by kafka.sh once the port is open. Exits
 * non-zero when the broker does not answer yet, so that kafka.sh keeps polling until its timeout.
 */
import { Kafka, logLevel } from 'kafkajs';
import { errorMessage } from '../../lambdas/core/errors';

async function main(): Promise<void> {
  const brokers = (process.env.KAFKA_ENSURE_BROKERS ?? 'localhost:9092').split(',');
  const topics = (process.env.KAFKA_ENSURE_TOPICS ?? 'device-data,alerts,stream-dlq').split(',').filter(Boolean);
  const partitions = Number(process.env.KAFKA_ENSURE_PARTITIONS ?? '3');
  const kafka = new Kafka({
    clientId: 'iot-dashboard-kafka-sh',
    brokers,
    logLevel: logLevel.NOTHING,
    connectionTimeout: 3000,
    requestTimeout: 10000,
    retry: { retries: 2, initialRetryTime: 200 },
  });
  const admin = kafka.admin();
  await admin.connect();
  try {
    const existing = new Set(await admin.listTopics());
    const missing = topics.filter((topic) => !existing.has(topic));
    if (missing.length > 0) {
      await admin.createTopics({
        waitForLeaders: true,
        topics: missing.map((topic) => ({ topic, numPartitions: partitions, replicationFactor: 1 })),
      });
    }
    // Every partition must have a leader before producers and the bridge are told to go.
    const metadata = await admin.fetchTopicMetadata({ topics });
    for (const topic of metadata.topics) {
      const leaderless = topic.partitions.filter((partition) => partition.leader < 0);
      if (leaderless.length > 0) throw new Error(`topic ${topic.name} has partitions without a leader`);
    }
    console.error(`kafka: topics ready: ${topics.join(', ')}${missing.length ? ` (created ${missing.join(', ')})` : ''}`);
  } finally {
    await admin.disconnect();
  }
}

main().catch((error: unknown) => {
  console.error(`kafka: broker not ready: ${errorMessage(error)}`);
  process.exit(1);
});
