/**
 * CPU of the replay core alone (issue 20): 100 resumes at once against the embedded feed's window
 * (local/memory-log.ts) filled with the simulator's records at 1,000 readings/s, each resume with
 * the filters and cursors a client of the default mix would send after a cut of T seconds. Each
 * round runs them with a cache of decoded records they share (lambdas/core/replay.ts
 * `DecodedRecords`), cold, then once more on the warm cache, as later resumes of a burst find it.
 *
 * Run by the `resume` scenario (bench/resume.ts `runResumeCases`); alone:
 *
 *   npx tsx bench/resume.ts --replay-cost [--cut 10] [--clients 100] [--rounds 5]
 */
import { fnv1a } from '../lambdas/core/hash';
import { matchesFilter, normaliseFilter } from '../lambdas/core/filter';
import { TOPICS, parseRecord, type NormalisedFilter } from '../lambdas/core/protocol';
import { DecodedRecords, replayAfter, type ReplayRequest, type ReplayResult } from '../lambdas/core/replay';
import { MemoryRecordLog } from '../local/memory-log';
import { buildMskEvent, type KafkaRecordInput } from '../local/msk-event';
import { DeviceSimulator } from '../local/simulator';
import { round } from './stats';
import { DEFAULT_MIX, makeClients } from './workload';

const WINDOW_RECORDS = 10_000;
const WINDOW_MS = 120_000;

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

/** What was measured; CPU ms of this process for all the resumes of a round. */
export interface ReplayCostReport {
  cutS: number;
  clients: number;
  /** Subscribes with `resume` (a client with two filters sends two). */
  resumes: number;
  rounds: Round[];
  medianColdMs: number;
  medianWarmMs: number;
  perResumeColdMs: number;
  perResumeWarmMs: number;
  /** The warm pass gave every resume the same records in the same order as the cold one. */
  sameRecordsInOrder: boolean;
}

/** What one round measured. */
interface Round {
  coldMs: number;
  warmMs: number;
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

/** Runs the rounds; see the module comment. */
export async function runReplayCost(cutS: number, clients = 100, rounds = 5): Promise<ReplayCostReport> {
  const end = Date.now();
  const devices = 500;
  const log = filledLog(Math.max(40, cutS + 20), 1000, devices, end);
  const cutAt = end - cutS * 1000;
  const simDevices = new DeviceSimulator({ devices }).devices.map((d) => ({ ...d, partition: fnv1a(d.deviceId) % 3 }));
  const all = await log.read((await log.partitions(Object.values(TOPICS))).map((b) => ({ topic: b.topic, partition: b.partition, from: b.low, to: b.high })));
  const decoded = all.map((logged) => {
    const parsed = parseRecord(logged.topic, JSON.parse(logged.value ?? 'null'));
    return { logged, record: parsed.ok ? parsed.record : undefined };
  });
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
  const run = async (cache: DecodedRecords) => {
    let results: ReplayResult[] = [];
    const ms = await cpuMs(async () => {
      results = await Promise.all(requests.map((request) => replayAfter(log, request, { now: end, windowMs: WINDOW_MS, windowRecords: WINDOW_RECORDS, cache })));
    });
    return { ms, results };
  };
  const cursors = (result: ReplayResult) => (result.tooFarBehind ? 'too far' : result.records.map((record) => record.cursor).join());
  for (let i = 0; i < rounds; i++) {
    const cache = new DecodedRecords();
    const cold = await run(cache);
    const warm = await run(cache);
    results.push({
      coldMs: round(cold.ms, 0),
      warmMs: round(warm.ms, 0),
      replayed: cold.results.reduce((sum, r) => sum + (r.tooFarBehind ? 0 : r.records.length), 0),
      scanned: cold.results.reduce((sum, r) => sum + (r.tooFarBehind ? 0 : r.scanned), 0),
      same: cold.results.every((result, j) => cursors(result) === cursors(warm.results[j])),
    });
  }
  const median = (pick: (r: Round) => number) => [...results].map(pick).sort((a, b) => a - b)[Math.floor(results.length / 2)];
  return {
    cutS,
    clients,
    resumes: requests.length,
    rounds: results,
    medianColdMs: median((r) => r.coldMs),
    medianWarmMs: median((r) => r.warmMs),
    perResumeColdMs: round(median((r) => r.coldMs) / requests.length, 2),
    perResumeWarmMs: round(median((r) => r.warmMs) / requests.length, 2),
    sameRecordsInOrder: results.every((r) => r.same),
  };
}
