/**
 * The subscribe route's replayer and the replay reader function, end to end over the Lambda Invoke
 * API: the real `@aws-sdk/client-lambda` (lambdas/adapters/lambda-replayer.ts) calls a local
 * endpoint that speaks Invoke (test/support/lambda-invoke-server.ts, with Lambda's 6 MB response
 * limit), which runs the real replay handler (lambdas/handlers/replay.ts) over the local runtime's
 * in-memory log (local/memory-log.ts). A full recovery window with a broad filter fits the limit;
 * failures reach the caller as errors.
 */
import { gzipSync } from 'node:zlib';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import type { MSKEvent } from 'aws-lambda';
import {
  MAX_RESPONSE_BYTES,
  ReplayInvokeError,
  createLambdaReplayer,
  decodeReplayResponse,
  encodeReplayResponse,
  toReplayEvent,
} from '../../lambdas/adapters/lambda-replayer';
import { KafkaRecordLogError } from '../../lambdas/adapters/kafka-log';
import { normaliseFilter } from '../../lambdas/core/filter';
import type { Log, RecordLog } from '../../lambdas/core/ports';
import { TOPICS, type ResumeCursors } from '../../lambdas/core/protocol';
import { replayAfter, type ReplayRequest, type ReplayResult } from '../../lambdas/core/replay';
import { createReplayHandler } from '../../lambdas/handlers/replay';
import { LOCAL_AWS } from '../../local/dynamo';
import { MemoryRecordLog } from '../../local/memory-log';
import { DeviceSimulator } from '../../local/simulator';
import { LAMBDA_PAYLOAD_LIMIT, startLambdaInvokeServer, type LambdaInvokeServer } from '../support/lambda-invoke-server';
import { alertRecord } from '../support/records';

const NOW = Date.now();
const PARTITIONS = 3;
const quiet: Log = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

type Appended = MSKEvent['records'][string][number];

/**
 * A log holding, in each of the 3 partitions of both topics, `perPartition` records spread evenly
 * over the last `spanMs` (simulated readings of 200 devices; alerts of them): the local runtime's
 * window, filled as the stream handler would be fed.
 */
function filledLog(perPartition: number, spanMs: number): MemoryRecordLog {
  const log = new MemoryRecordLog(undefined, () => NOW);
  const simulator = new DeviceSimulator({ devices: 200, seed: 7 });
  const records: Record<string, Appended[]> = {};
  for (const topic of [TOPICS.deviceData, TOPICS.alerts]) {
    for (let partition = 0; partition < PARTITIONS; partition++) {
      const list: Appended[] = (records[`${topic}-${partition}`] = []);
      for (let offset = 0; offset < perPartition; offset++) {
        const timestamp = NOW - spanMs + Math.floor((offset * spanMs) / perPartition);
        const value =
          topic === TOPICS.deviceData
            ? { ...simulator.next(1, timestamp).readings[0]!, timestamp }
            : alertRecord(`pump-${String(offset % 200).padStart(3, '0')}`, { timestamp, value: 90 + (offset % 97) / 10 });
        list.push({
          topic,
          partition,
          offset,
          timestamp,
          timestampType: 'CREATE_TIME',
          key: '',
          value: Buffer.from(JSON.stringify(value)).toString('base64'),
          headers: [],
        });
      }
    }
  }
  log.append({ records });
  return log;
}

/** Cursors naming offset `at` of every partition of both topics. */
function cursorsAt(at: number): ResumeCursors {
  const cursors: ResumeCursors = new Map();
  for (const topic of [TOPICS.deviceData, TOPICS.alerts]) for (let p = 0; p < PARTITIONS; p++) cursors.set(`${topic}:${p}`, at);
  return cursors;
}

let server: LambdaInvokeServer;
let client: LambdaClient;
let recordLog: RecordLog;
const full = filledLog(10_000, 100_000);

beforeAll(async () => {
  server = await startLambdaInvokeServer({
    replay: createReplayHandler({ recordLog: async () => recordLog, log: quiet, now: () => NOW }),
    // A reader that did not compress: what the 6 MB limit does to a full window without it.
    uncompressed: async (event) => replayAfter(full, { ...(event as { filter: never }), resume: cursorsAt(0) }, { now: NOW }),
  });
  client = new LambdaClient({ endpoint: server.endpoint, ...LOCAL_AWS, maxAttempts: 1 });
});

afterAll(async () => {
  client.destroy();
  await server.close();
});

describe('replay over Lambda Invoke', () => {
  it('answers what replayAfter reads for the request\'s filter, records after the cursors only', async () => {
    recordLog = filledLog(300, 60_000);
    const request: ReplayRequest = {
      filter: normaliseFilter({ types: ['device_data', 'alert'], locations: ['plant-a/line-2'], alertLevels: ['critical'] })!,
      resume: cursorsAt(100),
    };
    const got = await createLambdaReplayer(client, 'replay')(request);
    const direct = await replayAfter(recordLog, request, { now: NOW });
    expect(got.tooFarBehind).toBe(false);
    expect(got).toEqual(direct);
    const records = (got as Extract<ReplayResult, { tooFarBehind: false }>).records;
    expect(records.length).toBeGreaterThan(20);
    for (const record of records) {
      expect(record.data.location).toBe('plant-a/line-2');
      const [, , offset] = record.cursor!.split(':');
      expect(Number(offset)).toBeGreaterThan(100);
    }
  });

  it('answers too far behind as the reader found it', async () => {
    recordLog = filledLog(300, 60_000);
    const filter = normaliseFilter({})!;
    // Offset 400 is not in the log yet.
    const got = await createLambdaReplayer(client, 'replay')({ filter, resume: new Map([[`${TOPICS.deviceData}:0`, 400]]) });
    expect(got).toEqual({ tooFarBehind: true, reason: expect.stringContaining('has no offset 400 yet') });
  });

  it('fits a full window (10,000 records in each of 6 partitions) with a broad filter under the 6 MB limit', async () => {
    recordLog = full;
    const request: ReplayRequest = { filter: normaliseFilter({})!, resume: cursorsAt(0) };
    const before = server.responseBytes.length;
    const got = await createLambdaReplayer(client, 'replay')(request);
    expect(got.tooFarBehind).toBe(false);
    const records = (got as Extract<ReplayResult, { tooFarBehind: false }>).records;
    expect(records).toHaveLength(6 * 9_999);
    const sent = server.responseBytes[before]!;
    expect(sent).toBeLessThan(LAMBDA_PAYLOAD_LIMIT / 2);
    // The same result as JSON would not have fitted: the compression is what carries it.
    expect(Buffer.byteLength(JSON.stringify(got))).toBeGreaterThan(2 * LAMBDA_PAYLOAD_LIMIT);
    await expect(
      client.send(new InvokeCommand({ FunctionName: 'uncompressed', Payload: JSON.stringify(toReplayEvent(request)) })),
    ).resolves.toMatchObject({ FunctionError: 'Unhandled' });
  });

  it('turns a replay too large even compressed into too far behind, saying why, rather than a failed invocation', () => {
    const result = decodeReplayResponse(encodeReplayResponse({ tooFarBehind: false, records: [], scanned: 0 }).response);
    expect(result).toEqual({ tooFarBehind: false, records: [], scanned: 0 });
    const big: ReplayResult = {
      tooFarBehind: false,
      records: Array.from({ length: 2000 }, (_, i) => ({ type: 'alert' as const, data: alertRecord(`pump-${i}`), cursor: `alerts:0:${i}` })),
      scanned: 2000,
    };
    const { response, sent } = encodeReplayResponse(big, 20_000);
    expect(sent).toEqual({ tooFarBehind: true, reason: expect.stringMatching(/replay of 2000 records is 0\.\d MB compressed, over a Lambda response's 0\.0 MB/) });
    expect(decodeReplayResponse(response)).toEqual(sent);
    expect(MAX_RESPONSE_BYTES).toBeLessThanOrEqual(LAMBDA_PAYLOAD_LIMIT);
  });
});

describe('failures reach the subscribe route as errors (it then sends the snapshot)', () => {
  const request = (): ReplayRequest => ({ filter: normaliseFilter({})!, resume: cursorsAt(1) });

  it('a reader that cannot read the log: a function error with the reader\'s message', async () => {
    recordLog = {
      partitions: async () => {
        throw new KafkaRecordLogError('reading from Kafka failed: Connection timeout');
      },
      offsetsAt: async () => new Map(),
      read: async () => [],
    };
    const replay = createLambdaReplayer(client, 'replay');
    await expect(replay(request())).rejects.toThrow(ReplayInvokeError);
    await expect(replay(request())).rejects.toThrow(/the replay reader replay failed: KafkaRecordLogError: reading from Kafka failed: Connection timeout/);
  });

  it('a reader whose answer passes 6 MB: Lambda\'s own error', async () => {
    await expect(createLambdaReplayer(client, 'uncompressed')(request())).rejects.toThrow(/Function\.ResponseSizeTooLarge: Response payload size exceeded/);
  });

  it('a function that does not exist, or cannot be reached: the SDK\'s error, as the cause', async () => {
    const missing = createLambdaReplayer(client, 'no-such-function')(request());
    await expect(missing).rejects.toThrow(/could not invoke the replay reader no-such-function: .*Function not found/);
    await expect(missing).rejects.toMatchObject({ cause: expect.objectContaining({ name: 'ResourceNotFoundException' }) });
    const closed = new LambdaClient({ endpoint: 'http://127.0.0.1:9', ...LOCAL_AWS, maxAttempts: 1 });
    try {
      await expect(createLambdaReplayer(closed, 'replay')(request())).rejects.toThrow(/could not invoke the replay reader replay: .*ECONNREFUSED/);
    } finally {
      closed.destroy();
    }
  });

  it('an event that is not a replay request: refused by the reader', async () => {
    const out = await client.send(new InvokeCommand({ FunctionName: 'replay', Payload: JSON.stringify({ filter: {}, resume: {} }) }));
    expect(out.FunctionError).toBe('Unhandled');
    expect(Buffer.from(out.Payload!).toString()).toContain('the replay event has no normalised filter');
  });

  it('an answer that is not a replay: refused by the replayer', async () => {
    const other = await startLambdaInvokeServer({
      replay: async () => ({ encoding: 'gzip', body: gzipSync('{"records":[]}').toString('base64') }),
      plain: async () => ({ tooFarBehind: false, records: [] }),
    });
    const otherClient = new LambdaClient({ endpoint: other.endpoint, ...LOCAL_AWS, maxAttempts: 1 });
    try {
      await expect(createLambdaReplayer(otherClient, 'replay')(request())).rejects.toThrow(/a result of another shape/);
      await expect(createLambdaReplayer(otherClient, 'plain')(request())).rejects.toThrow(/answered something else than a replay/);
    } finally {
      otherClient.destroy();
      await other.close();
    }
  });
});
