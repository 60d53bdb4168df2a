/**
 * Resume through Kafka (issue 20) on the real broker: the local runtime with `kafka` (the Kafka
 * bridge as the MSK event source, resumes read by KafkaRecordLog), the Kafka simulator producing
 * 1,000 readings a second, real `ws` clients with a token of one site.
 *
 * Three clients are cut off at once, for 10 s, 60 s and 3 minutes, each beside a client that stays
 * connected with the same filter and token: what the stayer got after the cutter's cursors is what
 * the resumed client must get. The window is 2 minutes or 10,000 records a partition, whichever is
 * less: at 1,000 records a second, 60 s is inside it only with more than 6 partitions, so
 * `device-data` is raised to 12 partitions first (other suites on this broker do not depend on the
 * count: they key records by device and use groups of their own).
 *
 * The replayed frames are told from live ones by their `timestamp`: a replay's frames all carry the
 * time of the subscribe that read them (lambdas/core/fanout.ts createMessageBuilder), and their
 * number must equal `resumed.replayed`.
 */
import { Kafka, logLevel } from 'kafkajs';
import { mintToken } from '../../lambdas/core/auth';
import { TOPICS, type Filter, type ResumedFrame, type ServerFrame } from '../../lambdas/core/protocol';
import type { LocalRuntime } from '../../local/runtime';
import { startTestRuntime } from '../support/runtime';
import { describeKafka, runId, TestClient, type RecordFrame } from './kafka-support';

const secret = 'resume-kafka-test-secret-of-32-bytes-or-more';
/** Partitions `device-data` needs so that 60 s at 1,000 records/s stays under 10,000 a partition. */
const DEVICE_DATA_PARTITIONS = 12;
const SITE = 'plant-a';
const TYPES = ['pump', 'motor'];
const filter: Filter = { types: ['device_data', 'alert'], deviceTypes: TYPES };
/** How long each client is connected before it is cut off, ms. */
const CONNECTED_MS = 12_000;
/**
 * Bound of the waits for live frames after `resumed`, ms. On a loaded machine the stream can lag
 * the log by many seconds; the waits end as soon as what they wait for is there.
 */
const LIVE_WAIT_MS = 120_000;

const partitionOf = (cursor: string): string => cursor.slice(0, cursor.lastIndexOf(':'));
const offsetOf = (cursor: string): number => Number(cursor.slice(cursor.lastIndexOf(':') + 1));
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The newest offset per partition among these records. */
function newest(records: readonly RecordFrame[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const { cursor } of records) out.set(partitionOf(cursor!), Math.max(out.get(partitionOf(cursor!)) ?? -1, offsetOf(cursor!)));
  return out;
}

/** Frames strictly after the first frame of `type`, up to (not including) the first of `until`. */
function between(frames: readonly ServerFrame[], type: ServerFrame['type'], until: ServerFrame['type']): ServerFrame[] {
  const from = frames.findIndex((frame) => frame.type === type);
  const to = frames.findIndex((frame, i) => i > from && frame.type === until);
  return frames.slice(from + 1, to);
}

/** Offsets out of order per partition (each one not above the one before it in its partition). */
function outOfOrder(records: readonly RecordFrame[]): string[] {
  const last = new Map<string, number>();
  const bad: string[] = [];
  for (const { cursor } of records) {
    const name = partitionOf(cursor!);
    if (offsetOf(cursor!) <= (last.get(name) ?? -1)) bad.push(cursor!);
    last.set(name, offsetOf(cursor!));
  }
  return bad;
}

/** Records outside the filter or the site. */
function outside(records: readonly RecordFrame[]): RecordFrame[] {
  return records.filter((record) => !record.data.location.startsWith(`${SITE}/`) || !TYPES.includes(record.data.deviceType));
}

interface WithinOutcome {
  kind: 'within';
  cutMs: number;
  resumed: ResumedFrame;
  /** What the stayer got after the cutter's cursors, up to the horizon. */
  expected: string[];
  /** The resumed client's records up to the horizon, each once. */
  got: Set<string>;
  replayed: RecordFrame[];
  /** Records received more than once on the wire, and the copies too many. */
  wireDuplicates: { cursors: number; copies: number; withinReplay: number };
  outside: RecordFrame[];
  liveAfter: RecordFrame[];
  replayEnd: Map<string, number>;
  snapshots: number;
  resumeMs: number;
  liveBeforeReply: number;
}

interface PastOutcome {
  kind: 'past';
  cutMs: number;
  frames: ServerFrame[];
  liveAfter: RecordFrame[];
}

describeKafka('resume through Kafka on the real broker, records flowing at 1,000/s', (brokers) => {
  const id = runId();
  let runtime: LocalRuntime;
  let token: string;
  const clients: TestClient[] = [];
  const scenarios = new Map<number, Promise<WithinOutcome | PastOutcome>>();

  const connect = async (): Promise<TestClient> => {
    const client = await TestClient.connect(runtime.wsUrl, token);
    clients.push(client);
    return client;
  };

  /** A stayer and a cutter side by side; the cutter cut off for `cutMs` and back with its cursors. */
  const scenario = async (cutMs: number, how: 'close' | 'drop'): Promise<WithinOutcome | PastOutcome> => {
    const stayer = await connect();
    await stayer.subscribe('s1', filter);
    const cutter = await connect();
    await cutter.subscribe('s1', filter);
    await sleep(CONNECTED_MS);
    if (how === 'drop') cutter.ws.terminate();
    else cutter.ws.close();
    await cutter.closed;
    const seen = cutter.records;
    const resume = newest(seen);
    // A partition the cutter never got a record of: the stayer's newest at the cut is the line.
    const atCut = newest(stayer.records);
    const base = (name: string) => resume.get(name) ?? atCut.get(name) ?? -1;
    await sleep(cutMs);

    const back = await connect();
    const started = performance.now();
    const reply = await back.request({ action: 'subscribe', id: 's1', filter, resume: Object.fromEntries(resume) }, ['subscribed', 'error']);
    if (reply.type !== 'subscribed') throw new Error(`resume refused: ${JSON.stringify(reply)}`);
    await back.until(() => back.of('resumed').length > 0, 60_000, 'resumed');
    const resumeMs = performance.now() - started;
    const resumed = back.of('resumed')[0];
    const resumedAt = back.frames.findIndex((f) => f.type === 'resumed');
    const recordsAfterResumed = () => back.frames.slice(resumedAt + 1).filter((f): f is RecordFrame => f.type === 'device_data' || f.type === 'alert');
    if (resumed.tooFarBehind) {
      await back.until(() => back.of('snapshot').some((s) => s.final), 30_000, 'the final snapshot');
      await back.until(() => recordsAfterResumed().length > 0, LIVE_WAIT_MS, 'live records after the snapshot').catch(() => undefined);
      await back.barrier();
      const at = resumedAt;
      return { kind: 'past', cutMs, frames: [...back.frames], liveAfter: back.frames.slice(at + 1).filter((f): f is RecordFrame => f.type === 'device_data' || f.type === 'alert') };
    }

    const section = between(back.frames, 'subscribed', 'resumed').filter((f): f is RecordFrame => f.type === 'device_data' || f.type === 'alert');
    const counts = new Map<number, number>();
    for (const frame of section) counts.set(frame.timestamp, (counts.get(frame.timestamp) ?? 0) + 1);
    const replayAt = [...counts].sort((a, b) => b[1] - a[1])[0]?.[0];
    const replayed = section.filter((frame) => frame.timestamp === replayAt);
    const replayEnd = newest(replayed);
    const beyondReplay = (records: readonly RecordFrame[]) =>
      records.filter((r) => offsetOf(r.cursor!) > (replayEnd.get(partitionOf(r.cursor!)) ?? -1));
    // Live frames past the replay's end, and the stayer past it too, before the horizon is taken.
    await back.until(() => beyondReplay(recordsAfterResumed()).length > 0, LIVE_WAIT_MS, 'live records past the replay').catch(() => undefined);
    const caughtUp = () => {
      const stayerAt = newest(stayer.records);
      return [...replayEnd].every(([name, offset]) => (stayerAt.get(name) ?? -1) >= offset);
    };
    await stayer.until(caughtUp, LIVE_WAIT_MS, 'the stayer past the replay').catch(() => undefined);
    await stayer.barrier();
    const horizon = newest(stayer.records);
    const upTo = (cursor: string) => offsetOf(cursor) <= (horizon.get(partitionOf(cursor)) ?? -1);
    const expected = stayer.records.map((r) => r.cursor!).filter((c) => offsetOf(c) > base(partitionOf(c)) && upTo(c));
    const have = () => new Set(back.records.map((r) => r.cursor!));
    // What the stayer has up to the horizon was posted to both; bounded wait for the slower one.
    await back
      .until(() => {
        const got = have();
        return expected.every((c) => got.has(c));
      }, LIVE_WAIT_MS, 'the records the stayer got')
      .catch(() => undefined);
    await back.barrier();

    const copies = new Map<string, number>();
    for (const { cursor } of back.records) copies.set(cursor!, (copies.get(cursor!) ?? 0) + 1);
    const duplicated = [...copies.values()].filter((n) => n > 1);
    const subscribedAt = back.frames.findIndex((f) => f.type === 'subscribed');
    return {
      kind: 'within',
      cutMs,
      resumed,
      expected,
      got: new Set(back.records.map((r) => r.cursor!).filter(upTo)),
      replayed,
      wireDuplicates: {
        cursors: duplicated.length,
        copies: duplicated.reduce((sum, n) => sum + n - 1, 0),
        withinReplay: replayed.length - new Set(replayed.map((r) => r.cursor)).size,
      },
      outside: outside(back.records),
      liveAfter: recordsAfterResumed(),
      replayEnd,
      snapshots: back.of('snapshot').length,
      resumeMs,
      liveBeforeReply: back.frames.slice(0, subscribedAt).filter((f) => f.type === 'device_data' || f.type === 'alert').length,
    };
  };

  beforeAll(async () => {
    const kafka = new Kafka({ clientId: `resume-kafka-test-${id}`, brokers, logLevel: logLevel.NOTHING });
    const admin = kafka.admin();
    await admin.connect();
    try {
      const [metadata] = (await admin.fetchTopicMetadata({ topics: [TOPICS.deviceData] })).topics;
      if (metadata.partitions.length < DEVICE_DATA_PARTITIONS) {
        await admin.createPartitions({ topicPartitions: [{ topic: TOPICS.deviceData, count: DEVICE_DATA_PARTITIONS }] });
      }
    } finally {
      await admin.disconnect();
    }
    runtime = await startTestRuntime({
      urlHost: '127.0.0.1',
      statusIntervalMs: 0,
      jwtSecret: secret,
      kafka: { brokers, groupId: `test-${id}-resume` },
      simulator: { devices: 200, readingsPerSecond: 1000 },
    });
    token = await mintToken(secret, { sub: 'operator-a', sites: [SITE] });
    // Records flow before anyone is cut off.
    const probe = await connect();
    await probe.subscribe('probe', { types: ['device_data'] });
    await probe.until(() => probe.records.length > 100, 30_000, 'records from the simulator');
    await probe.close();
    // The three at once, so the suite takes about 3.5 minutes rather than 4.5.
    for (const [cutMs, how] of [
      [10_000, 'drop'],
      [60_000, 'close'],
      [180_000, 'drop'],
    ] as const) {
      const running = scenario(cutMs, how);
      running.catch(() => undefined);
      scenarios.set(cutMs, running);
    }
  }, 120_000);

  afterAll(async () => {
    await Promise.allSettled(scenarios.values());
    await Promise.all(clients.splice(0).map((client) => client.close()));
    await runtime?.stop();
  }, 60_000);

  const expectWithin = (outcome: WithinOutcome) => {
    const { resumed, expected, got, replayed } = outcome;
    console.log(
      `resume after ${outcome.cutMs / 1000} s: replayed ${resumed.replayed} records in ${outcome.resumeMs.toFixed(0)} ms from subscribe to resumed ` +
        `(${Math.round(resumed.replayed / (outcome.resumeMs / 1000))} records/s); expected ${expected.length}; wire duplicates ` +
        `${outcome.wireDuplicates.copies} (${outcome.wireDuplicates.cursors} cursors, ${outcome.wireDuplicates.withinReplay} within the replay); ` +
        `${outcome.liveBeforeReply} live records before the subscribed reply; ${outcome.liveAfter.length} live records after resumed`,
    );
    expect(resumed).toEqual({ type: 'resumed', id: 's1', replayed: replayed.length });
    expect(expected.length).toBeGreaterThan(outcome.cutMs / 1000 * 50);
    // Every record it would have had, once cursors dedupe, and nothing else.
    expect(expected.filter((cursor) => !got.has(cursor))).toEqual([]);
    const wanted = new Set(expected);
    expect([...got].filter((cursor) => !wanted.has(cursor))).toEqual([]);
    // The replay itself: no record twice, in offset order per partition, within filter and site.
    expect(outcome.wireDuplicates.withinReplay).toBe(0);
    expect(outOfOrder(replayed)).toEqual([]);
    expect(outcome.outside).toEqual([]);
    // No snapshot inside the window.
    expect(outcome.snapshots).toBe(0);
    // Live frames continue past the replay's end.
    const beyond = outcome.liveAfter.filter((r) => offsetOf(r.cursor!) > (outcome.replayEnd.get(partitionOf(r.cursor!)) ?? -1));
    expect(beyond.length).toBeGreaterThan(0);
  };

  it('a client cut off (dropped without a close) for 10 s gets every record it missed, once, in order, within its filter and site, then live frames', async () => {
    const outcome = await scenarios.get(10_000)!;
    expect(outcome.kind).toBe('within');
    expectWithin(outcome as WithinOutcome);
  }, 420_000);

  it('a client cut off (closed) for 60 s gets every record it missed, once, in order, within its filter and site, then live frames', async () => {
    const outcome = await scenarios.get(60_000)!;
    expect(outcome.kind).toBe('within');
    expectWithin(outcome as WithinOutcome);
  }, 420_000);

  it('a client cut off for 3 minutes, past the 2-minute window, is told it is too far behind and gets the snapshot', async () => {
    const outcome = (await scenarios.get(180_000)!) as PastOutcome;
    expect(outcome.kind).toBe('past');
    const { frames } = outcome;
    const resumedAt = frames.findIndex((f) => f.type === 'resumed');
    expect(frames[resumedAt]).toEqual({ type: 'resumed', id: 's1', replayed: 0, tooFarBehind: true });
    const snapshots = frames.filter((f) => f.type === 'snapshot');
    expect(snapshots.length).toBeGreaterThan(0);
    expect(snapshots.at(-1)!.final).toBe(true);
    expect(frames.findIndex((f) => f.type === 'snapshot')).toBeGreaterThan(resumedAt);
    const entries = snapshots.flatMap((s) => s.messages);
    expect(entries.length).toBeGreaterThan(0);
    expect(outside(entries)).toEqual([]);
    expect(outside(outcome.liveAfter)).toEqual([]);
    expect(outcome.liveAfter.length).toBeGreaterThan(0);
  }, 420_000);
});
