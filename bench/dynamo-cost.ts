/**
 * The cost of a DynamoDB call in this process: CPU µs per call of the SDK's document client
 * against {@link LeanDocumentClient}, for the calls a connect burst makes (a conditional
 * UpdateItem, GetItem, PutItem) and a stream batch's BatchGetItem of 10 keys. dynalite runs in a
 * child process, so its CPU is not counted, as DynamoDB's is not on AWS. Each round runs every
 * operation through both clients in turn; the report holds the medians over rounds, same run.
 *
 * Then a stream batch's index lookup (6 readings of the simulator's 50 devices) over the
 * subscriptions of 1,000 and 10,000 operators (bench/workload.ts's mix): read whole on every
 * lookup, and read from the buckets kept in memory after a read of their versions, alternated in
 * the same rounds; CPU of this process and wall time per lookup, medians over rounds.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { BatchGetCommand, GetCommand, PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { createDocumentClient } from '../lambdas/adapters/clients';
import { LeanDocumentClient, type DocumentSender } from '../lambdas/adapters/lean-dynamo';
import { DynamoSubscriptionIndex, shardsOf } from '../lambdas/adapters/dynamo-subscriptions';
import { mapWithConcurrency } from '../lambdas/core/concurrency';
import { indexKeysForFilter, indexKeysForRecord, normaliseFilter } from '../lambdas/core/filter';
import type { SubscriptionEntry } from '../lambdas/core/fanout';
import { DeviceSimulator } from '../local/simulator';
import { makeClients } from './workload';
import { LOCAL_AWS, LOCAL_TABLES, createTables } from '../local/dynamo';
import { startLocalDynalite } from '../local/dynalite-process';
import { round } from './stats';

/** Options of {@link runDynamoCostBench}. */
export interface DynamoCostOptions {
  /** Calls per operation, client and round. Default 150: dynalite answers a few hundred a second. */
  calls?: number;
  /** Rounds. Default 5. */
  rounds?: number;
  /** Calls in flight, as a burst of connects has. Default 16. */
  concurrency?: number;
  /** Operators whose subscriptions the lookup case stores. Default 1,000 and 10,000. */
  lookupOperators?: number[];
  log?: (line: string) => void;
}

/** A stream batch's index lookup at one subscription count, medians over the rounds. */
interface LookupCost {
  operators: number;
  entries: number;
  /** Distinct index keys and bucket items a lookup asks for, mean. */
  keys: number;
  buckets: number;
  /** Every bucket read whole on every lookup. */
  wholeUs: number;
  wholeMs: number;
  /** Versions read first, unchanged buckets from memory. */
  keptUs: number;
  keptMs: number;
}

const OPERATIONS = ['updateConditional', 'get', 'put', 'batchGet10'] as const;
type Operation = (typeof OPERATIONS)[number];

/** CPU per call of one operation, medians over the rounds. */
interface OperationCost {
  sdkUs: number;
  leanUs: number;
  /** sdkUs / leanUs. */
  ratio: number;
}

/** The report of {@link runDynamoCostBench}. */
export interface DynamoCostReport {
  callsPerRound: number;
  rounds: number;
  concurrency: number;
  operations: Record<Operation, OperationCost>;
  /**
   * dynalite's side: the message's conditional write of the connection item a second, in the form
   * used before issue 18's second pass (every case in parenthesised ORs) and in today's plain AND,
   * medians over the same interleaved rounds, lean client, {@link SERVER_IN_FLIGHT} in flight.
   */
  conditionForms: { orPerSecond: number; andPerSecond: number; ratio: number };
  lookups: LookupCost[];
}

/** Calls in flight when dynalite's throughput is measured: enough to keep it busy. */
const SERVER_IN_FLIGHT = 32;

/**
 * A subscribe's conditional write of the connection item: both rate buckets taken and the
 * subscription set under the cap. `or` is the form before (a bucket missing or idle, a
 * subscription replaced or under the cap, each an OR in parentheses); `and` is today's
 * (lambdas/adapters/dynamo-connections.ts): buckets start at 0, the cap is one comparison.
 */
function subscribeWrite(form: 'or' | 'and', i: number): UpdateCommand {
  const or = (a: string, b: string) => (form === 'or' ? `(${a} OR ${b})` : b);
  return new UpdateCommand({
    TableName: LOCAL_TABLES.connections,
    Key: { connectionId: connectionItem(i % ITEMS).connectionId },
    UpdateExpression: 'SET #b0 = :n0, #b1 = :n1, subscriptions.#id = :filter',
    ConditionExpression: [
      'attribute_exists(connectionId)',
      or('attribute_not_exists(#b0)', '#b0 < :now'),
      or('attribute_not_exists(#b1)', '#b1 < :now'),
      or('attribute_exists(subscriptions.#id)', 'size(subscriptions) < :max'),
    ].join(' AND '),
    ExpressionAttributeNames: { '#b0': 'rateM', '#b1': 'rateW', '#id': 's:sub1' },
    // Always true, as for idle buckets, yet evaluated on every call.
    ExpressionAttributeValues: { ':n0': i, ':n1': i, ':now': 2 ** 50, ':max': 20, ':filter': connectionItem(i).subscriptions['s:sub1'] },
    ReturnValues: 'ALL_OLD',
  });
}

async function perSecond(doc: DocumentSender, form: 'or' | 'and', calls: number): Promise<number> {
  const started = performance.now();
  await mapWithConcurrency(Array.from({ length: calls }, (_, i) => i), SERVER_IN_FLIGHT, (i) => doc.send(subscribeWrite(form, i)));
  return calls / ((performance.now() - started) / 1000);
}

/** Items the bench reads and writes: as large as a connection item with a few subscriptions. */
const ITEMS = 100;
const connectionItem = (i: number) => ({
  connectionId: `conn${String(i).padStart(6, '0')}AA=`,
  connectedAt: 1_700_000_000_000 + i,
  expiresAt: 1_700_007_200 + i,
  sub: `user-${i % 17}`,
  sites: ['plant-a', 'plant-b'],
  subscriptions: Object.fromEntries(
    Array.from({ length: 3 }, (_, s) => [`s:sub${s}`, { types: ['device_data'], deviceIds: [`pump-${(i + s) % 50}`], locations: [], deviceTypes: [], alertLevels: [], sites: ['plant-a'] }]),
  ),
  rateM: 0,
  rateW: 0,
});

/** One call of each operation; `i` picks the item. */
function call(doc: DocumentSender, operation: Operation, i: number): Promise<unknown> {
  const table = LOCAL_TABLES.connections;
  const connectionId = connectionItem(i % ITEMS).connectionId;
  switch (operation) {
    case 'updateConditional':
      // The rate bucket write of every message: one conditional SET with values and names.
      return doc.send(
        new UpdateCommand({
          TableName: table,
          Key: { connectionId },
          UpdateExpression: 'SET #b = :next',
          ConditionExpression: 'attribute_exists(connectionId) AND (attribute_not_exists(#b) OR #b < :now)',
          ExpressionAttributeNames: { '#b': 'rateM' },
          // Always true, as for an idle bucket, yet evaluated on every call.
          ExpressionAttributeValues: { ':next': i + 1, ':now': 2 ** 50 },
          ReturnValues: 'UPDATED_NEW',
        }),
      );
    case 'get':
      return doc.send(new GetCommand({ TableName: table, Key: { connectionId }, ConsistentRead: true }));
    case 'put':
      return doc.send(new PutCommand({ TableName: table, Item: connectionItem(i % ITEMS) }));
    case 'batchGet10':
      return doc.send(
        new BatchGetCommand({
          RequestItems: { [table]: { Keys: Array.from({ length: 10 }, (_, k) => ({ connectionId: connectionItem((i + k * 7) % ITEMS).connectionId })) } },
        }),
      );
  }
}

async function cpuPerCall(doc: DocumentSender, operation: Operation, calls: number, concurrency: number): Promise<number> {
  const indices = Array.from({ length: calls }, (_, i) => i);
  const before = process.cpuUsage();
  await mapWithConcurrency(indices, concurrency, (i) => call(doc, operation, i));
  const used = process.cpuUsage(before);
  return (used.user + used.system) / calls;
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

/** Lookups a round makes per reader. */
const LOOKUPS_PER_ROUND = 40;

/** Stores the subscriptions of `operators` clients of the operators bench, and measures a batch's lookup both ways. */
async function lookupCost(doc: DocumentSender, operators: number, rounds: number, log: (line: string) => void): Promise<LookupCost> {
  const sim = new DeviceSimulator({});
  const devices = sim.devices.map((d) => ({ deviceId: d.deviceId, deviceType: d.deviceType, location: d.location, partition: 0 }));
  const entries: SubscriptionEntry[] = [];
  for (const client of makeClients(operators, devices)) {
    client.filters.forEach((asked, j) => {
      const filter = { ...normaliseFilter(asked), sites: ['*'] };
      for (const indexKey of indexKeysForFilter(filter)) entries.push({ indexKey, connectionId: `op${operators}-${client.index}=`, subscriptionId: `s${j}`, filter });
    });
  }
  const writer = new DynamoSubscriptionIndex(doc, LOCAL_TABLES.subscriptions);
  const expires = Math.ceil(Date.now() / 1000) + 3600;
  for (let i = 0; i < entries.length; i += 1000) await writer.put(entries.slice(i, i + 1000), expires);
  // The keys of the batches a lane would see: 6 readings in device order, as the feed sends them.
  const batches = Array.from({ length: LOOKUPS_PER_ROUND }, () => {
    const keys = new Set<string>();
    for (const data of sim.next(6).readings) for (const key of indexKeysForRecord({ type: 'device_data', data })) keys.add(key);
    return [...keys];
  });
  const readers = { whole: new DynamoSubscriptionIndex(doc, LOCAL_TABLES.subscriptions, { cachedBuckets: 0 }), kept: new DynamoSubscriptionIndex(doc, LOCAL_TABLES.subscriptions) };
  const measure = async (reader: DynamoSubscriptionIndex) => {
    const cpu = process.cpuUsage();
    const start = performance.now();
    for (const keys of batches) await reader.lookup(keys);
    const used = process.cpuUsage(cpu);
    return { us: (used.user + used.system) / batches.length, ms: (performance.now() - start) / batches.length };
  };
  // Warm-up: JIT, sockets, and the kept reader's buckets.
  await measure(readers.whole);
  await measure(readers.kept);
  const samples = { wholeUs: [] as number[], wholeMs: [] as number[], keptUs: [] as number[], keptMs: [] as number[] };
  for (let r = 0; r < rounds; r++) {
    const whole = await measure(readers.whole);
    const kept = await measure(readers.kept);
    samples.wholeUs.push(whole.us);
    samples.wholeMs.push(whole.ms);
    samples.keptUs.push(kept.us);
    samples.keptMs.push(kept.ms);
    log(`dynamo-cost: lookup at ${operators} operators, round ${r + 1}: whole ${Math.round(whole.us)} µs ${whole.ms.toFixed(1)} ms, kept ${Math.round(kept.us)} µs ${kept.ms.toFixed(1)} ms`);
  }
  const keys = batches.reduce((sum, batch) => sum + batch.length, 0) / batches.length;
  const buckets = batches.reduce((sum, batch) => sum + batch.reduce((n, key) => n + shardsOf(key), 0), 0) / batches.length;
  await writer.remove(entries);
  return {
    operators,
    entries: entries.length,
    keys: round(keys, 1),
    buckets: round(buckets, 1),
    wholeUs: Math.round(median(samples.wholeUs)),
    wholeMs: round(median(samples.wholeMs), 1),
    keptUs: Math.round(median(samples.keptUs)),
    keptMs: round(median(samples.keptMs), 1),
  };
}

/** Runs the bench: dynalite in a child process, both clients over the same tables. */
export async function runDynamoCostBench(options: DynamoCostOptions = {}): Promise<DynamoCostReport> {
  const log = options.log ?? (() => {});
  const calls = options.calls ?? 150;
  const rounds = options.rounds ?? 5;
  const concurrency = options.concurrency ?? 16;
  const dynalite = await startLocalDynalite('process', 0);
  // Both clients as the Lambdas build them: the SDK's keep-alive handler and marshalling options.
  const sdk = createDocumentClient({ endpoint: dynalite.endpoint, ...LOCAL_AWS });
  const base = new DynamoDBClient({ endpoint: dynalite.endpoint, ...LOCAL_AWS });
  const lean = new LeanDocumentClient(base);
  try {
    await createTables(dynalite.endpoint);
    for (let i = 0; i < ITEMS; i++) await sdk.send(new PutCommand({ TableName: LOCAL_TABLES.connections, Item: connectionItem(i) }));
    const clients: [keyof Pick<OperationCost, 'sdkUs' | 'leanUs'>, DocumentSender][] = [
      ['sdkUs', sdk],
      ['leanUs', lean],
    ];
    // Warm-up: JIT, sockets, signing key, credentials.
    for (const operation of OPERATIONS) for (const [, doc] of clients) await cpuPerCall(doc, operation, 100, concurrency);
    const samples = Object.fromEntries(OPERATIONS.map((operation) => [operation, { sdkUs: [] as number[], leanUs: [] as number[] }])) as Record<
      Operation,
      Record<'sdkUs' | 'leanUs', number[]>
    >;
    const forms = { or: [] as number[], and: [] as number[] };
    for (let r = 0; r < rounds; r++) {
      for (const operation of OPERATIONS) {
        for (const [name, doc] of clients) samples[operation][name].push(await cpuPerCall(doc, operation, calls, concurrency));
      }
      log(`dynamo-cost: round ${r + 1}: ${OPERATIONS.map((op) => `${op} sdk ${Math.round(samples[op].sdkUs[r])} µs, lean ${Math.round(samples[op].leanUs[r])} µs`).join('; ')}`);
      forms.or.push(await perSecond(lean, 'or', calls * 2));
      forms.and.push(await perSecond(lean, 'and', calls * 2));
      log(`dynamo-cost: round ${r + 1}: dynalite ${Math.round(forms.or[r]!)} conditional writes/s in the OR form, ${Math.round(forms.and[r]!)} in the AND form`);
    }
    const lookups: LookupCost[] = [];
    for (const operators of options.lookupOperators ?? [1000, 10_000]) lookups.push(await lookupCost(lean, operators, rounds, log));
    const orPerSecond = Math.round(median(forms.or));
    const andPerSecond = Math.round(median(forms.and));
    const operations = Object.fromEntries(
      OPERATIONS.map((operation) => {
        const sdkUs = round(median(samples[operation].sdkUs), 1);
        const leanUs = round(median(samples[operation].leanUs), 1);
        return [operation, { sdkUs, leanUs, ratio: round(sdkUs / leanUs, 2) }];
      }),
    ) as Record<Operation, OperationCost>;
    return { callsPerRound: calls, rounds, concurrency, operations, conditionForms: { orPerSecond, andPerSecond, ratio: round(andPerSecond / orPerSecond, 2) }, lookups };
  } finally {
    sdk.destroy();
    await lean.destroy();
    base.destroy();
    await dynalite.stop();
  }
}

if (require.main === module) {
  runDynamoCostBench({ log: (line) => console.log(line), ...(process.argv.includes('--quick') ? { calls: 100, rounds: 3 } : {}) }).then(
    (report) => {
      console.log(`\nCPU per call in this process (median of ${report.rounds} rounds of ${report.callsPerRound}, ${report.concurrency} in flight):`);
      console.table(Object.fromEntries(Object.entries(report.operations).map(([operation, cost]) => [operation, { 'SDK µs': cost.sdkUs, 'lean µs': cost.leanUs, 'SDK / lean': cost.ratio }])));
      const forms = report.conditionForms;
      console.log(`dynalite, a subscribe's conditional write: ${forms.orPerSecond}/s in the OR form, ${forms.andPerSecond}/s in the AND form (${forms.ratio}×)`);
      console.log(`\nA stream batch's index lookup (median of ${report.rounds} rounds):`);
      console.table(report.lookups);
    },
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
}
