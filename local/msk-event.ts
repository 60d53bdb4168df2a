/**
 * Builds Lambda MSK events: the JSON the stream Lambda receives from an MSK (or self-managed Kafka)
 * event source mapping. Used by the embedded simulator and by the Kafka bridge, so that the
 * handler sees on one machine exactly the shape it sees on AWS.
 */
import type { MSKEvent, MSKRecord, MSKRecordHeader } from 'aws-lambda';

/** One Kafka record as a producer or consumer sees it. */
export interface KafkaRecordInput {
  topic: string;
  partition?: number;
  offset?: number | string;
  /** Producer or broker timestamp, epoch ms. Default: now. */
  timestamp?: number;
  key?: string | Buffer | null;
  /** A JSON-serialisable object, or the raw bytes / text as produced. */
  value: unknown;
  headers?: Record<string, string | Buffer | undefined>;
}

/** Options of {@link buildMskEvent}. */
export interface MskEventOptions {
  /** Default `arn:aws:kafka:local:000000000000:cluster/local/local`. */
  eventSourceArn?: string;
  /** Default `localhost:9092`. */
  bootstrapServers?: string;
}

function toBase64(value: unknown): string {
  if (value === null || value === undefined) return '';
  if (Buffer.isBuffer(value)) return value.toString('base64');
  if (typeof value === 'string') return Buffer.from(value, 'utf8').toString('base64');
  return Buffer.from(JSON.stringify(value), 'utf8').toString('base64');
}

function toHeaders(headers: KafkaRecordInput['headers']): MSKRecordHeader[] {
  if (!headers) return [];
  return Object.entries(headers)
    .filter((entry): entry is [string, string | Buffer] => entry[1] !== undefined)
    .map(([name, value]) => ({ [name]: [...Buffer.from(value)] }));
}

/**
 * Groups records under `topic-partition` keys, as Lambda does, keeping their order. Offsets not
 * given are numbered per partition from `nextOffset` (a map the caller keeps across calls).
 */
export function buildMskEvent(
  records: KafkaRecordInput[],
  options: MskEventOptions = {},
  nextOffset: Map<string, number> = new Map(),
): MSKEvent {
  const grouped: Record<string, MSKRecord[]> = {};
  const now = Date.now();
  for (const record of records) {
    const partition = record.partition ?? 0;
    const groupKey = `${record.topic}-${partition}`;
    let offset: number;
    if (record.offset === undefined) {
      offset = nextOffset.get(groupKey) ?? 0;
      nextOffset.set(groupKey, offset + 1);
    } else {
      offset = Number(record.offset);
    }
    (grouped[groupKey] ??= []).push({
      topic: record.topic,
      partition,
      offset,
      timestamp: record.timestamp ?? now,
      timestampType: 'CREATE_TIME',
      key: toBase64(record.key),
      value: toBase64(record.value),
      headers: toHeaders(record.headers),
    });
  }
  return {
    eventSource: 'aws:kafka',
    eventSourceArn: options.eventSourceArn ?? 'arn:aws:kafka:local:000000000000:cluster/local/local',
    bootstrapServers: options.bootstrapServers ?? 'localhost:9092',
    records: grouped,
  };
}
