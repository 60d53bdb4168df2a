/**
 * CPU of the replay core alone (issue 20): 100 resumes at once against the embedded feed's window
 * (local/memory-log.ts) filled with the simulator's records at 1,000 readings/s, each resume with
 * the filters and cursors a client of the default mix would send after a cut of T seconds. It runs
 * `replayAfter` as it is (the decoded records shared by the resumes, as the local runtime does),
 * and beside it a prototype of the change the resume bench points at (`replayScanFree` below):
 * decoded records kept by partition and offset, so that a resume whose ranges are held reads nothing
 * from the log and builds no cursor string a record; the filter applied to each partition before the
 * partitions are merged by time, so that only the matches are merged. Both must give the same
 * records in the same order; the bench checks it.
 *
 * Run by the `resume` scenario (bench/resume.ts `runResumeCases`); alone:
 *
 *   npx tsx bench/resume.ts --replay-cost [--cut 10] [--clients 100] [--rounds 5]
 */
import { fnv1a } from '../lambdas/core/hash';
import { matchesFilter, normaliseFilter } from '../lambdas/core/filter';
import { cursorOf } from '../lambdas/core/msk';
import type { LoggedRecord, OffsetRange, RecordLog } from '../lambdas/core/ports';
import { TOPICS, parseRecord, type NormalisedFilter, type StreamRecord } from '../lambdas/core/protocol';
import { DEFAULT_SKEW_MS, DecodedRecords, replayAfter, type ReplayRequest, type ReplayResult } from '../lambdas/core/replay';
import { MemoryRecordLog } from '../local/memory-log';
import { buildMskEvent, type KafkaRecordInput } from '../local/msk-event';
import { DeviceSimulator } from '../local/simulator';
import { round } from './stats';
import { DEFAULT_MIX, makeClients } from './workload';

const WINDOW_RECORDS = 10_000;
const WINDOW_MS = 120_000;
const TOPIC_OF_TYPE = { device_data: TOPICS.deviceData, alert: TOPICS.alerts } as const;

/** Decoded records of one partition from `base` on, with the log's timestamps. */
interface Lane {
  base: number;
  records: (StreamRecord | null)[];
  times: number[];
}

/** The prototype's cache: by partition, then offset. */
class DecodedByOffset {
  readonly lanes = new Map<string, Lane>();
  private filling: Promise<void> = Promise.resolve();

  /**
   * Decodes what the ranges hold that is not held yet. One fill at a time: concurrent resumes
   * wait for the read under way and then find their ranges held, instead of each reading them.
   */
  fill(log: RecordLog, ranges: readonly OffsetRange[]): Promise<void> {
    const run = this.filling.then(() => this.fillNow(log, ranges));
    this.filling = run.catch(() => {});
    return run;
  }

  /** Only the tail is read when a lane is held: replays read up to the high watermark. */
  private async fillNow(log: RecordLog, ranges: readonly OffsetRange[]): Promise<void> {
    const missing: OffsetRange[] = [];
    for (const range of ranges) {
      const lane = this.lanes.get(`${range.topic}:${range.partition}`);
      if (!lane || range.from < lane.base) {
        this.lanes.delete(`${range.topic}:${range.partition}`);
        missing.push(range);
      } else if (lane.base + lane.records.length < range.to) missing.push({ ...range, from: lane.base + lane.records.length });
    }
    if (!missing.length) return;
    for (const logged of await log.read(missing)) {
      const name = `${logged.topic}:${logged.partition}`;
      let lane = this.lanes.get(name);
      if (!lane) this.lanes.set(name, (lane = { base: logged.offset, records: [], times: [] }));
      lane.records.push(decode(logged));
      lane.times.push(logged.timestamp);
    }
  }
}

function decode(logged: LoggedRecord): StreamRecord | null {
  let value: unknown;
  try {
    value = JSON.parse(logged.value ?? '');
  } catch {
    return null;
  }
  const parsed = parseRecord(logged.topic, value);
  if (!parsed.ok) return null;
  parsed.record.cursor = cursorOf(logged.topic, logged.partition, logged.offset);
  return parsed.record;
}

/**
 * Where each partition starts and ends: as lambdas/core/replay.ts `replayAfter` decides it (the
 * same reads of bounds, offsets by time and the named records), copied so that the prototype
 * differs only in what it does with the ranges.
 */
async function rangesOf(log: RecordLog, request: ReplayRequest, now: number): Promise<OffsetRange[] | undefined> {
  const { filter, resume } = request;
  const wanted: string[] = [...new Set(filter.types.map((type) => TOPIC_OF_TYPE[type]))];
  const named = [...resume].map(([name, offset]) => ({ name, offset, topic: name.slice(0, name.lastIndexOf(':')), partition: Number(name.slice(name.lastIndexOf(':') + 1)) }));
  const topics = [...new Set([...wanted, ...named.map((cursor) => cursor.topic)])];
  const [bounds, windowAt] = await Promise.all([log.partitions(topics), log.offsetsAt(wanted, now - WINDOW_MS)]);
  const byName = new Map(bounds.map((b) => [`${b.topic}:${b.partition}`, b]));
  const held = named.filter((cursor) => cursor.offset >= byName.get(cursor.name)!.low);
  const last = await log.read(held.map(({ topic, partition, offset }) => ({ topic, partition, from: offset, to: offset + 1 })));
  if (last.length === 0) return undefined;
  const since = Math.max(...last.map((record) => record.timestamp)) - DEFAULT_SKEW_MS;
  const sinceAt = await log.offsetsAt(wanted, since);
  const ranges: OffsetRange[] = [];
  for (const b of bounds) {
    if (!wanted.includes(b.topic)) continue;
    const name = `${b.topic}:${b.partition}`;
    const cursor = resume.get(name);
    const start = Math.max(cursor === undefined ? b.low : cursor + 1, sinceAt.get(name) ?? b.low);
    if (start >= b.high) continue;
    if (start < Math.max(b.low, b.high - WINDOW_RECORDS, windowAt.get(name) ?? b.low)) return undefined;
    ranges.push({ topic: b.topic, partition: b.partition, from: start, to: b.high });
  }
  return ranges;
}

/** The prototype: filter each partition's held records, then merge only the matches by time. */
async function replayScanFree(log: RecordLog, request: ReplayRequest, cache: DecodedByOffset, now: number): Promise<StreamRecord[] | undefined> {
  const ranges = await rangesOf(log, request, now);
  if (!ranges) return undefined;
  await cache.fill(log, ranges);
  const lanes: { records: StreamRecord[]; times: number[]; at: number }[] = [];
  for (const range of ranges) {
    const lane = cache.lanes.get(`${range.topic}:${range.partition}`)!;
    const matched = { records: [] as StreamRecord[], times: [] as number[], at: 0 };
    for (let offset = range.from; offset < range.to; offset++) {
      const record = lane.records[offset - lane.base];
      if (record && matchesFilter(request.filter, record)) {
        matched.records.push(record);
        matched.times.push(lane.times[offset - lane.base]);
      }
    }
    lanes.push(matched);
  }
  const out: StreamRecord[] = [];
  const total = lanes.reduce((sum, lane) => sum + lane.records.length, 0);
  while (out.length < total) {
    let best: (typeof lanes)[number] | undefined;
    for (const lane of lanes) if (lane.at < lane.records.length && (!best || lane.times[lane.at] < best.times[best.at])) best = lane;
    out.push(best!.records[best!.at++]);
  }
  return out;
}

/** The embedded feed's window after `seconds` of the simulator at `rate` readings a second, ending at `end`. */
function filledLog(seconds: number, rate: number, devices: number, end: number): MemoryRecordLog {
  const log = new MemoryRecordLog({ records: WINDOW_RECORDS, ms: WINDOW_MS + 30_000 }, () => end);
  for (const topic of Object.values(TOPICS)) log.declare(topic, 3);
  const simulator = new DeviceSimulator({ devices });
  const offsets = new Map<string, number>();
  const tickMs = 20;
  for (let at = end - seconds * 1000; at < end; at += tickMs) {
    const { readings, alerts } = simulator.next((rate * tickMs) / 1000, at);
    const records: KafkaRecordInput[] = [
      ...readings.map((r) => ({ topic: TOPICS.deviceData, key: r.deviceId, value: r, partition: fnv1a(r.deviceId) % 3, timestamp: at })),
      ...alerts.map((a) => ({ topic: TOPICS.alerts, key: a.deviceId, value: a, partition: fnv1a(a.deviceId) % 3, timestamp: at })),
    ];
    log.append(buildMskEvent(records, {}, offsets));
  }
  return log;
}

/** What the comparison measured; CPU ms of this process for all the resumes of a round. */
export interface ReplayCostReport {
  cutS: number;
  clients: number;
  /** Subscribes with `resume` (a client with two filters sends two). */
  resumes: number;
  rounds: Round[];
  medianCurrentMs: number;
  medianPrototypeMs: number;
  perResumeCurrentMs: number;
  perResumePrototypeMs: number;
  /** The prototype gave every resume the same records in the same order. */
  sameRecordsInOrder: boolean;
}

/** What one round measured. */
interface Round {
  currentMs: number;
  prototypeMs: number;
  replayed: number;
  scanned: number;
  same: boolean;
}

async function cpuMs(run: () => Promise<void>): Promise<number> {
  const start = process.cpuUsage();
  await run();
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1000;
}

/** Runs the comparison; see the module comment. */
export async function runReplayCost(cutS: number, clients = 100, rounds = 5): Promise<ReplayCostReport> {
  const end = Date.now();
  const devices = 500;
  const log = filledLog(Math.max(40, cutS + 20), 1000, devices, end);
  const cutAt = end - cutS * 1000;
  const simDevices = new DeviceSimulator({ devices }).devices.map((d) => ({ ...d, partition: fnv1a(d.deviceId) % 3 }));
  const all = await log.read((await log.partitions(Object.values(TOPICS))).map((b) => ({ topic: b.topic, partition: b.partition, from: b.low, to: b.high })));
  const decoded = all.map((logged) => ({ logged, record: decode(logged) }));
  // Each client names, per partition, the newest record of its filters stamped before the cut.
  const requests: ReplayRequest[] = makeClients(clients, simDevices, DEFAULT_MIX).flatMap((spec) => {
    const filters: NormalisedFilter[] = spec.filters.map((f) => normaliseFilter(f));
    const resume = new Map<string, number>();
    for (const { logged, record } of decoded) {
      if (logged.timestamp >= cutAt || !record || !filters.some((f) => matchesFilter(f, record))) continue;
      const name = `${logged.topic}:${logged.partition}`;
      resume.set(name, Math.max(resume.get(name) ?? -1, logged.offset));
    }
    return resume.size ? filters.map((filter) => ({ filter, resume })) : [];
  });
  const results: Round[] = [];
  for (let i = 0; i < rounds; i++) {
    const cache = new DecodedRecords();
    let current: ReplayResult[] = [];
    const currentMs = await cpuMs(async () => {
      current = await Promise.all(requests.map((request) => replayAfter(log, request, { now: end, windowMs: WINDOW_MS, windowRecords: WINDOW_RECORDS, cache })));
    });
    const byOffset = new DecodedByOffset();
    let prototype: (StreamRecord[] | undefined)[] = [];
    const prototypeMs = await cpuMs(async () => {
      prototype = await Promise.all(requests.map((request) => replayScanFree(log, request, byOffset, end)));
    });
    const same = current.every((result, i) => {
      const other = prototype[i];
      if (result.tooFarBehind) return other === undefined;
      return other !== undefined && other.length === result.records.length && other.every((record, j) => record.cursor === result.records[j].cursor);
    });
    results.push({
      currentMs: round(currentMs, 0),
      prototypeMs: round(prototypeMs, 0),
      replayed: current.reduce((sum, r) => sum + (r.tooFarBehind ? 0 : r.records.length), 0),
      scanned: current.reduce((sum, r) => sum + (r.tooFarBehind ? 0 : r.scanned), 0),
      same,
    });
  }
  const median = (pick: (r: Round) => number) => [...results].map(pick).sort((a, b) => a - b)[Math.floor(results.length / 2)];
  return {
    cutS,
    clients,
    resumes: requests.length,
    rounds: results,
    medianCurrentMs: median((r) => r.currentMs),
    medianPrototypeMs: median((r) => r.prototypeMs),
    perResumeCurrentMs: round(median((r) => r.currentMs) / requests.length, 2),
    perResumePrototypeMs: round(median((r) => r.prototypeMs) / requests.length, 2),
    sameRecordsInOrder: results.every((r) => r.same),
  };
}
