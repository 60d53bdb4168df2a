/**
 * Resume: what a subscription would have received after the cursors a reconnecting client names,
 * read back from the Kafka log inside the recovery window (DESIGN.md "Resume"), with the
 * subscription's filter and sites applied, in order per partition.
 *
 * Where each partition's replay starts:
 * - a partition the client names starts after its cursor;
 * - every partition, named or not, starts no earlier than when the client was last current: the
 *   newest record it names, less {@link DEFAULT_SKEW_MS} for partitions read at different paces.
 *   Before that the connection was receiving, so a partition the client does not name (it never
 *   got a record of it) had nothing for it, and a named one that was quiet for this filter is not
 *   read back from its old cursor.
 *
 * A replay ends at each partition's high watermark read after the subscription's index entries
 * were written: every later record is found by the stream's index lookup, so nothing falls in
 * between. Records the stream was already carrying may come both ways; clients drop duplicates by
 * cursor.
 */
import { matchesFilter } from './filter';
import { cursorOf } from './msk';
import type { LoggedRecord, OffsetRange, RecordLog } from './ports';
import { LIMITS, TOPICS, parseRecord, type NormalisedFilter, type ResumeCursors, type StreamRecord } from './protocol';

/** What to replay: a subscription's filter (already narrowed to the connection's sites) and the client's cursors. */
export interface ReplayRequest {
  filter: NormalisedFilter;
  resume: ResumeCursors;
}

/** The records to replay, or why the cursors are too far behind (the snapshot is sent instead). */
export type ReplayResult =
  | { tooFarBehind: false; records: StreamRecord[]; scanned: number }
  | { tooFarBehind: true; reason: string };

/** Reads a replay: see {@link replayAfter}. On AWS, a function that can reach the brokers. */
export type Replayer = (request: ReplayRequest) => Promise<ReplayResult>;

/** Options of {@link replayAfter}; the defaults are the contract's window. */
export interface ReplayOptions {
  now?: number;
  /** Default {@link LIMITS.resumeWindowMs}. */
  windowMs?: number;
  /** Default {@link LIMITS.resumeWindowRecords}. */
  windowRecords?: number;
  /** Default {@link DEFAULT_SKEW_MS}. */
  skewMs?: number;
  /** Records decoded by earlier replays, shared by the replays of one process. */
  cache?: DecodedRecords;
}

/**
 * Decoded records by cursor, the oldest forgotten first. A Kafka record never changes, so when many
 * clients resume at once (a plant's Wi-Fi comes back) each record is parsed and validated once.
 */
export class DecodedRecords {
  private readonly byCursor = new Map<string, StreamRecord | null>();

  constructor(private readonly capacity = 50_000) {}

  get size(): number {
    return this.byCursor.size;
  }

  /** The record at this cursor, decoding it on first use; undefined for a value that is not a valid record. */
  of(logged: LoggedRecord): StreamRecord | undefined {
    const cursor = cursorOf(logged.topic, logged.partition, logged.offset);
    let record = this.byCursor.get(cursor);
    if (record === undefined) {
      record = decode(logged, cursor) ?? null;
      this.byCursor.set(cursor, record);
      if (this.byCursor.size > this.capacity) this.byCursor.delete(this.byCursor.keys().next().value!);
    }
    return record ?? undefined;
  }
}

/** How far apart in time two partitions may be delivered; see the module comment. */
export const DEFAULT_SKEW_MS = 5000;

const TOPIC_OF_TYPE = { device_data: TOPICS.deviceData, alert: TOPICS.alerts } as const;

function tooFar(reason: string): ReplayResult {
  return { tooFarBehind: true, reason };
}

function splitName(name: string): { topic: string; partition: number } {
  const at = name.lastIndexOf(':');
  return { topic: name.slice(0, at), partition: Number(name.slice(at + 1)) };
}

/** A logged record as a pushed record, or undefined when its value is not a valid record. */
function decode(logged: LoggedRecord, cursor: string): StreamRecord | undefined {
  let value: unknown;
  try {
    value = JSON.parse(logged.value ?? '');
  } catch {
    return undefined;
  }
  const parsed = parseRecord(logged.topic, value);
  if (!parsed.ok) return undefined;
  parsed.record.cursor = cursor;
  return parsed.record;
}

/**
 * Merges partitions by record time, each partition's records staying in offset order: a client
 * sees the replay roughly as it would have seen it live.
 */
function mergeByTime(records: readonly LoggedRecord[]): LoggedRecord[] {
  const lanes = new Map<string, LoggedRecord[]>();
  for (const record of records) {
    const name = `${record.topic}:${record.partition}`;
    let lane = lanes.get(name);
    if (!lane) lanes.set(name, (lane = []));
    lane.push(record);
  }
  const heads = [...lanes.values()].map((lane) => ({ lane, at: 0 }));
  const out: LoggedRecord[] = [];
  while (out.length < records.length) {
    let best: (typeof heads)[number] | undefined;
    for (const head of heads) {
      if (head.at < head.lane.length && (!best || head.lane[head.at].timestamp < best.lane[best.at].timestamp)) best = head;
    }
    out.push(best!.lane[best!.at++]);
  }
  return out;
}

/** Reads what the request's subscription missed; see the module comment. */
export async function replayAfter(log: RecordLog, request: ReplayRequest, options: ReplayOptions = {}): Promise<ReplayResult> {
  const now = options.now ?? Date.now();
  const windowMs = options.windowMs ?? LIMITS.resumeWindowMs;
  const windowRecords = options.windowRecords ?? LIMITS.resumeWindowRecords;
  const skewMs = options.skewMs ?? DEFAULT_SKEW_MS;
  const { filter, resume } = request;
  const wanted: string[] = [...new Set(filter.types.map((type) => TOPIC_OF_TYPE[type]))];
  const named = [...resume].map(([name, offset]) => ({ name, offset, ...splitName(name) }));
  if (named.length === 0) return tooFar('the resume names no partition');
  const topics = [...new Set([...wanted, ...named.map((cursor) => cursor.topic)])];

  const [bounds, windowAt] = await Promise.all([log.partitions(topics), log.offsetsAt(wanted, now - windowMs)]);
  const byName = new Map(bounds.map((b) => [`${b.topic}:${b.partition}`, b]));
  for (const cursor of named) {
    const held = byName.get(cursor.name);
    if (!held) return tooFar(`the log has no partition ${cursor.name}`);
    if (cursor.offset >= held.high) return tooFar(`${cursor.name} has no offset ${cursor.offset} yet (next is ${held.high})`);
  }

  // When the client was last current: the newest record it names that the log still holds (an
  // older one, of a partition quiet for this filter, may be gone without the client missing any).
  const held = named.filter((cursor) => cursor.offset >= byName.get(cursor.name)!.low);
  const last = await log.read(held.map(({ topic, partition, offset }) => ({ topic, partition, from: offset, to: offset + 1 })));
  if (last.length === 0) return tooFar('the log no longer holds the records the resume names');
  const since = Math.max(...last.map((record) => record.timestamp)) - skewMs;
  const sinceAt = await log.offsetsAt(wanted, since);

  const ranges: OffsetRange[] = [];
  for (const held of bounds) {
    if (!wanted.includes(held.topic)) continue;
    const name = `${held.topic}:${held.partition}`;
    const cursor = resume.get(name);
    const start = Math.max(cursor === undefined ? held.low : cursor + 1, sinceAt.get(name) ?? held.low);
    if (start >= held.high) continue;
    const windowStart = Math.max(held.low, held.high - windowRecords, windowAt.get(name) ?? held.low);
    if (start < windowStart) {
      return tooFar(`${name} is ${held.high - start} records behind; the window holds ${held.high - windowStart}`);
    }
    ranges.push({ topic: held.topic, partition: held.partition, from: start, to: held.high });
  }
  const logged = ranges.length ? await log.read(ranges) : [];
  const records: StreamRecord[] = [];
  const cache = options.cache ?? new DecodedRecords(logged.length);
  for (const entry of mergeByTime(logged)) {
    const record = cache.of(entry);
    if (record && matchesFilter(filter, record)) records.push(record);
  }
  return { tooFarBehind: false, records, scanned: logged.length };
}
