/**
 * Resume: what a subscription would have received after the cursors a reconnecting client names,
 * read back from the Kafka log inside the recovery window (DESIGN.md "Resume"), with the
 * subscription's filter and sites applied, in order per partition.
 *
 * Where each partition's replay starts:
 * - a partition the client names starts after its cursor: every record after it, however late its
 *   partition was delivered compared with the others;
 * - a partition the client does not name (it never got a record of it, or none lately) starts when
 *   the client was last current: the newest record it names, less {@link DEFAULT_SKEW_MS} for
 *   partitions delivered at different paces. Before that the connection was receiving, so such a
 *   partition had nothing for it;
 * - a named partition whose cursor is older than the window, but whose records since the client
 *   was last current are inside it, was only quiet for this filter: it starts as an unnamed one.
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

/** One partition's decoded records from `base` on, with their log times. */
interface Lane {
  base: number;
  records: (StreamRecord | null)[];
  times: number[];
}

/**
 * Decoded records by partition, each a run of consecutive offsets, the oldest forgotten first. A
 * Kafka record never changes, so when many clients resume at once (a plant's Wi-Fi comes back) each
 * record is read, parsed and validated once: a resume reads from the log only the offsets no
 * earlier resume has, and fills run one at a time so that concurrent resumes wait for one read
 * instead of each making its own.
 */
export class DecodedRecords {
  private readonly lanes = new Map<string, Lane>();
  private filling: Promise<unknown> = Promise.resolve();

  /** `perPartition`: records kept per partition; default twice the window's. */
  constructor(private readonly perPartition = 2 * LIMITS.resumeWindowRecords) {}

  /**
   * Makes every offset of `ranges` held, reading what is not. A partition's run only grows, at
   * either end, so that a resume still reading its records never finds them gone.
   */
  fill(log: RecordLog, ranges: readonly OffsetRange[]): Promise<void> {
    const run = this.filling.then(async () => {
      const missing: OffsetRange[] = [];
      for (const range of ranges) {
        if (range.from >= range.to) continue;
        const name = `${range.topic}:${range.partition}`;
        let lane = this.lanes.get(name);
        // A run far behind the range is of no use to any resume in the window: start afresh.
        if (lane && range.from > lane.base + lane.records.length + this.perPartition) lane = undefined;
        if (!lane) {
          this.lanes.set(name, { base: range.from, records: [], times: [] });
          missing.push(range);
          continue;
        }
        const end = lane.base + lane.records.length;
        if (range.from < lane.base) missing.push({ ...range, to: lane.base });
        if (range.to > end) missing.push({ ...range, from: end });
      }
      if (!missing.length) return;
      const logged = await log.read(missing);
      const before = new Map<string, { records: (StreamRecord | null)[]; times: number[]; from: number }>();
      let decoded = 0;
      for (const entry of logged) {
        const name = `${entry.topic}:${entry.partition}`;
        const lane = this.lanes.get(name)!;
        const record = decode(entry) ?? null;
        if (++decoded % YIELD_EVERY === 0) await yieldToLoop();
        if (entry.offset < lane.base) {
          let head = before.get(name);
          if (!head) before.set(name, (head = { records: [], times: [], from: entry.offset }));
          while (head.from + head.records.length < entry.offset) head.records.push(null), head.times.push(entry.timestamp);
          if (head.from + head.records.length === entry.offset) head.records.push(record), head.times.push(entry.timestamp);
          continue;
        }
        // An offset the log skipped (a transaction marker, a compacted record) holds nothing.
        while (lane.base + lane.records.length < entry.offset) lane.records.push(null), lane.times.push(entry.timestamp);
        if (lane.base + lane.records.length === entry.offset) lane.records.push(record), lane.times.push(entry.timestamp);
      }
      for (const range of missing) {
        const name = `${range.topic}:${range.partition}`;
        const lane = this.lanes.get(name)!;
        const head = before.get(name);
        if (head && range.to === lane.base) {
          before.delete(name);
          // Offsets the log no longer holds between the two hold nothing.
          while (head.from + head.records.length < lane.base) head.records.push(null), head.times.push(lane.times[0] ?? 0);
          lane.records = head.records.concat(lane.records);
          lane.times = head.times.concat(lane.times);
          lane.base = head.from;
        }
        this.trim(lane);
      }
    });
    this.filling = run.catch(() => undefined);
    return run;
  }

  /** The held records of `range` that match `filter`, with their log times. */
  async matches(range: OffsetRange, filter: NormalisedFilter, out: Match[]): Promise<number> {
    const lane = this.lanes.get(`${range.topic}:${range.partition}`);
    if (!lane) return 0;
    const name = `${range.topic}:${range.partition}`;
    const from = Math.max(range.from, lane.base);
    const to = Math.min(range.to, lane.base + lane.records.length);
    for (let offset = from; offset < to; offset++) {
      const record = lane.records[offset - lane.base];
      if (record && matchesFilter(filter, record)) out.push({ record, timestamp: lane.times[offset - lane.base], lane: name });
      if ((offset - from + 1) % YIELD_EVERY === 0) await yieldToLoop();
    }
    return Math.max(0, to - from);
  }

  private trim(lane: Lane): void {
    const over = lane.records.length - this.perPartition;
    if (over <= 0) return;
    lane.records = lane.records.slice(over);
    lane.times = lane.times.slice(over);
    lane.base += over;
  }
}

/** Lets the event loop run: decoding a window is tens of milliseconds, and live frames may be waiting. */
function yieldToLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** How far apart in time two partitions may be delivered; see the module comment. */
const DEFAULT_SKEW_MS = 30_000;

/** Records decoded between two yields to the event loop, which may be carrying live traffic too. */
const YIELD_EVERY = 2000;

const TOPIC_OF_TYPE = { device_data: TOPICS.deviceData, alert: TOPICS.alerts } as const;

function tooFar(reason: string): ReplayResult {
  return { tooFarBehind: true, reason };
}

function splitName(name: string): { topic: string; partition: number } {
  const at = name.lastIndexOf(':');
  return { topic: name.slice(0, at), partition: Number(name.slice(at + 1)) };
}

/** A logged record as a pushed record, or undefined when its value is not a valid record. */
function decode(logged: LoggedRecord): StreamRecord | undefined {
  let value: unknown;
  try {
    value = JSON.parse(logged.value ?? '');
  } catch {
    return undefined;
  }
  const parsed = parseRecord(logged.topic, value);
  if (!parsed.ok) return undefined;
  parsed.record.cursor = cursorOf(logged.topic, logged.partition, logged.offset);
  return parsed.record;
}

/** A record to replay, with its log time and partition. */
interface Match {
  record: StreamRecord;
  timestamp: number;
  lane: string;
}

/**
 * Merges partitions by record time, each partition's records staying in offset order: a client
 * sees the replay roughly as it would have seen it live.
 */
function mergeByTime(matches: readonly Match[]): StreamRecord[] {
  const lanes = new Map<string, Match[]>();
  for (const match of matches) {
    let lane = lanes.get(match.lane);
    if (!lane) lanes.set(match.lane, (lane = []));
    lane.push(match);
  }
  const heads = [...lanes.values()].map((lane) => ({ lane, at: 0 }));
  const out: StreamRecord[] = [];
  while (out.length < matches.length) {
    let best: (typeof heads)[number] | undefined;
    for (const head of heads) {
      if (head.at < head.lane.length && (!best || head.lane[head.at].timestamp < best.lane[best.at].timestamp)) best = head;
    }
    out.push(best!.lane[best!.at++].record);
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
    const windowStart = Math.max(held.low, held.high - windowRecords, windowAt.get(name) ?? held.low);
    const cursor = resume.get(name);
    const fromSince = Math.max(held.low, sinceAt.get(name) ?? held.low);
    let start = cursor === undefined ? fromSince : cursor + 1;
    // A cursor past the window on a partition that has nothing since the client was last current
    // outside the window was only quiet for this filter.
    if (start < windowStart && cursor !== undefined && fromSince >= windowStart) start = fromSince;
    if (start >= held.high) continue;
    if (start < windowStart) {
      return tooFar(`${name} is ${held.high - start} records behind; the window holds ${held.high - windowStart}`);
    }
    ranges.push({ topic: held.topic, partition: held.partition, from: start, to: held.high });
  }
  const cache = options.cache ?? new DecodedRecords();
  await cache.fill(log, ranges);
  const matches: Match[] = [];
  let scanned = 0;
  for (const range of ranges) scanned += await cache.matches(range, filter, matches);
  return { tooFarBehind: false, records: mergeByTime(matches), scanned };
}
