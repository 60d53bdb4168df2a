/**
 * The local event source's recovery window: the records it fed the stream handler, kept in memory
 * per partition as Kafka keeps them, for resumes (lambdas/core/replay.ts) when `npm start` runs
 * without a broker. It keeps each partition's last {@link LIMITS.resumeWindowRecords} records,
 * none older than the window's time and a margin, so a cursor just past the window is told apart
 * from one inside it.
 */
import type { MSKEvent } from 'aws-lambda';
import type { LoggedRecord, OffsetRange, PartitionBounds, RecordLog } from '../lambdas/core/ports';
import { LIMITS } from '../lambdas/core/protocol';

/** Kept beyond the window's time, ms. */
const AGE_MARGIN_MS = 30_000;

interface Partition {
  topic: string;
  partition: number;
  /** Records from `low`, in offset order; offsets are consecutive. */
  records: { offset: number; timestamp: number; value: string }[];
  /** Index of the first record still held (records before it are dropped in bulk). */
  first: number;
  /** The offset the next record gets. */
  high: number;
}

/** A {@link RecordLog} over the records appended to it. */
export class MemoryRecordLog implements RecordLog {
  private readonly partitionsByName = new Map<string, Partition>();

  constructor(
    private readonly keep: { records: number; ms: number } = { records: LIMITS.resumeWindowRecords, ms: LIMITS.resumeWindowMs + AGE_MARGIN_MS },
    private readonly now: () => number = Date.now,
  ) {}

  /** Declares a topic's partitions, so that they are known before their first record. */
  declare(topic: string, partitions: number): void {
    for (let partition = 0; partition < partitions; partition++) this.partitionOf(topic, partition);
  }

  /** Appends the records of an event the stream handler is about to be invoked with. */
  append(event: Pick<MSKEvent, 'records'>): void {
    for (const list of Object.values(event.records)) {
      for (const record of list) {
        const held = this.partitionOf(record.topic, record.partition);
        if (record.offset < held.high) continue;
        // Decoded once here, not on every read: many resumes read the same records.
        held.records.push({ offset: record.offset, timestamp: record.timestamp, value: Buffer.from(record.value, 'base64').toString('utf8') });
        held.high = record.offset + 1;
      }
    }
    for (const held of this.partitionsByName.values()) this.trim(held);
  }

  async partitions(topics: readonly string[]): Promise<PartitionBounds[]> {
    return this.held(topics).map((held) => ({ topic: held.topic, partition: held.partition, low: this.low(held), high: held.high }));
  }

  async offsetsAt(topics: readonly string[], time: number): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    for (const held of this.held(topics)) {
      // Timestamps within a partition are the order of appends: the first at or after `time`.
      let lo = held.first;
      let hi = held.records.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (held.records[mid].timestamp < time) lo = mid + 1;
        else hi = mid;
      }
      out.set(`${held.topic}:${held.partition}`, lo < held.records.length ? held.records[lo].offset : held.high);
    }
    return out;
  }

  async read(ranges: readonly OffsetRange[]): Promise<LoggedRecord[]> {
    const out: LoggedRecord[] = [];
    for (const range of ranges) {
      const held = this.partitionsByName.get(`${range.topic}:${range.partition}`);
      if (!held || held.records.length === held.first) continue;
      const base = held.records[held.first].offset;
      const from = Math.max(range.from, base);
      for (let offset = from; offset < Math.min(range.to, held.high); offset++) {
        const record = held.records[held.first + offset - base];
        out.push({
          topic: held.topic,
          partition: held.partition,
          offset,
          timestamp: record.timestamp,
          value: record.value,
        });
      }
    }
    return out;
  }

  private held(topics: readonly string[]): Partition[] {
    return [...this.partitionsByName.values()].filter((held) => topics.includes(held.topic));
  }

  private low(held: Partition): number {
    return held.first < held.records.length ? held.records[held.first].offset : held.high;
  }

  private partitionOf(topic: string, partition: number): Partition {
    const name = `${topic}:${partition}`;
    let held = this.partitionsByName.get(name);
    if (!held) this.partitionsByName.set(name, (held = { topic, partition, records: [], first: 0, high: 0 }));
    return held;
  }

  private trim(held: Partition): void {
    const oldest = this.now() - this.keep.ms;
    while (held.records.length - held.first > this.keep.records) held.first++;
    while (held.first < held.records.length && held.records[held.first].timestamp < oldest) held.first++;
    // Dropped records go in bulk, so that a trim stays cheap per append.
    if (held.first > 4096 && held.first * 2 > held.records.length) {
      held.records = held.records.slice(held.first);
      held.first = 0;
    }
  }
}
