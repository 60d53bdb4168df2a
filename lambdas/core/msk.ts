/**
 * Decoding of Lambda MSK / self-managed Kafka events into validated records. A record that fails
 * decoding or validation is reported with its topic, partition and offset, and skipped.
 */
import type { MSKEvent } from 'aws-lambda';
import { parseRecord, type StreamRecord } from './protocol';

/** A record that was skipped, and why. */
export interface InvalidRecord {
  topic: string;
  partition: number;
  offset: number;
  reason: string;
}

/** The records of one event, in order per partition, valid and invalid apart. */
export interface DecodedBatch {
  records: StreamRecord[];
  invalid: InvalidRecord[];
  /** Record count per topic, valid or not. */
  perTopic: Map<string, { valid: number; invalid: number }>;
}

/** The cursor of a Kafka record: `topic:partition:offset`, unique per record in a cluster. */
export function cursorOf(topic: string, partition: number, offset: number | string): string {
  return `${topic}:${partition}:${offset}`;
}

/** Decodes every record of an MSK event. Never throws for a bad record. */
export function decodeMskEvent(event: Pick<MSKEvent, 'records'>): DecodedBatch {
  const records: StreamRecord[] = [];
  const invalid: InvalidRecord[] = [];
  const perTopic = new Map<string, { valid: number; invalid: number }>();
  for (const list of Object.values(event.records ?? {})) {
    for (const raw of list ?? []) {
      const topic = String(raw.topic);
      let counts = perTopic.get(topic);
      if (!counts) perTopic.set(topic, (counts = { valid: 0, invalid: 0 }));
      const reject = (reason: string) => {
        counts!.invalid++;
        invalid.push({ topic, partition: raw.partition, offset: raw.offset, reason });
      };
      let value: unknown;
      try {
        value = JSON.parse(Buffer.from(raw.value ?? '', 'base64').toString('utf8'));
      } catch {
        reject('value is not JSON');
        continue;
      }
      const parsed = parseRecord(topic, value);
      if (!parsed.ok) {
        reject(parsed.reason);
        continue;
      }
      counts.valid++;
      parsed.record.cursor = cursorOf(topic, raw.partition, raw.offset);
      records.push(parsed.record);
    }
  }
  return { records, invalid, perTopic };
}
