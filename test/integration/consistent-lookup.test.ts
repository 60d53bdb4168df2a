/**
 * The stream's index lookup reads strongly consistent (a resume's replay relies on every record
 * produced after its index entries were written finding them, lambdas/core/replay.ts): the
 * subscription index asks for it on every BatchGetItem, the lean client sends it on, and DynamoDB
 * (dynalite, which bills as DynamoDB does) charges a consistent read: 1 read unit per 4 KB instead of 0.5.
 */
import type { Server } from 'node:http';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { BatchGetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { DynamoSubscriptionIndex } from '../../lambdas/adapters/dynamo-subscriptions';
import { LeanDocumentClient, type DocumentSender } from '../../lambdas/adapters/lean-dynamo';
import { indexKeysForFilter, normaliseFilter } from '../../lambdas/core/filter';
import { LOCAL_AWS, LOCAL_TABLES, createTables, startDynalite } from '../../local/dynamo';

let server: Server;
let base: DynamoDBClient;
let lean: LeanDocumentClient;

beforeAll(async () => {
  const started = await startDynalite();
  server = started.server;
  await createTables(started.endpoint);
  base = new DynamoDBClient({ endpoint: started.endpoint, ...LOCAL_AWS });
  lean = new LeanDocumentClient(base);
});

afterAll(async () => {
  await lean.destroy();
  base.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

it('the lean client sends ConsistentRead on, and it is billed as a consistent read', async () => {
  const table = LOCAL_TABLES.subscriptions;
  const keys = [0, 1, 2, 3].map((i) => ({ pk: `probe-${i}`, sk: '0' }));
  for (const key of keys) await lean.send(new PutCommand({ TableName: table, Item: { ...key, x: 'small' } }));
  const units = async (consistent: boolean) => {
    const out = await lean.send(
      new BatchGetCommand({ RequestItems: { [table]: { Keys: keys, ConsistentRead: consistent } }, ReturnConsumedCapacity: 'TOTAL' }),
    );
    expect(out.Responses?.[table]).toHaveLength(4);
    return out.ConsumedCapacity?.[0]?.CapacityUnits;
  };
  expect(await units(false)).toBe(2);
  expect(await units(true)).toBe(4);
});

it('the subscription index looks up with ConsistentRead on every BatchGetItem of a lookup, the versions first', async () => {
  const sent: BatchGetCommand[] = [];
  const recording: DocumentSender = {
    send: ((command: Parameters<DocumentSender['send']>[0]) => {
      if (command instanceof BatchGetCommand) sent.push(command);
      return lean.send(command as never);
    }) as DocumentSender['send'],
  };
  const index = new DynamoSubscriptionIndex(recording, LOCAL_TABLES.subscriptions);
  // Eight location keys of 16 shards each: 128 buckets, two BatchGetItem calls.
  const locations = Array.from({ length: 8 }, (_, i) => `plant-a/line-${i}`);
  const entries = locations.flatMap((location, i) => {
    const filter = normaliseFilter({ locations: [location], types: ['device_data'] })!;
    return indexKeysForFilter(filter).map((indexKey) => ({ indexKey, connectionId: `conn-${i}=`, subscriptionId: 's1', filter }));
  });
  await index.put(entries, Math.floor(Date.now() / 1000) + 3600);
  const keys = entries.map((entry) => entry.indexKey);
  const found = await index.lookup(keys);
  expect([...found.values()].flat()).toHaveLength(entries.length);
  // The 128 buckets' versions in two calls, then the 8 that exist, whole, in one.
  expect(sent).toHaveLength(3);
  expect(sent.map((command) => command.input.RequestItems![LOCAL_TABLES.subscriptions]!.ProjectionExpression)).toEqual([
    'pk, sk, #v, #o',
    'pk, sk, #v, #o',
    undefined,
  ]);
  for (const command of sent) {
    for (const request of Object.values(command.input.RequestItems ?? {})) expect(request.ConsistentRead).toBe(true);
  }
});

describe('a lookup keeps the buckets it read, and reads again those another instance wrote since', () => {
  const filter = normaliseFilter({ locations: ['plant-b/hall'], types: ['device_data'] })!;
  const [indexKey] = indexKeysForFilter(filter);
  const expires = () => Math.floor(Date.now() / 1000) + 3600;
  let sent: BatchGetCommand[];
  let reader: DynamoSubscriptionIndex;
  let writer: DynamoSubscriptionIndex;

  beforeAll(() => {
    sent = [];
    const recording: DocumentSender = {
      send: ((command: Parameters<DocumentSender['send']>[0]) => {
        if (command instanceof BatchGetCommand) sent.push(command);
        return lean.send(command as never);
      }) as DocumentSender['send'],
    };
    // The stream function's instance reads; a subscribe function's instance writes.
    reader = new DynamoSubscriptionIndex(recording, LOCAL_TABLES.subscriptions);
    writer = new DynamoSubscriptionIndex(lean, LOCAL_TABLES.subscriptions);
  });
  const ids = async () => ((await reader.lookup([indexKey])).get(indexKey) ?? []).map((entry) => entry.connectionId).sort();
  const wholeReads = () => sent.filter((command) => !command.input.RequestItems![LOCAL_TABLES.subscriptions]!.ProjectionExpression).length;

  it('unchanged buckets are not read whole again', async () => {
    await writer.put([{ indexKey, connectionId: 'first=', subscriptionId: 's1', filter }], expires());
    expect(await ids()).toEqual(['first=']);
    const whole = wholeReads();
    expect(await ids()).toEqual(['first=']);
    expect(await ids()).toEqual(['first=']);
    expect(wholeReads()).toBe(whole);
  });

  it('an entry another instance added or removed is seen by the next lookup', async () => {
    // Most likely in another shard of the key than `first=`; both cases are covered below.
    for (const connectionId of ['second=', 'third=', 'fourth=']) {
      await writer.put([{ indexKey, connectionId, subscriptionId: 's1', filter }], expires());
      expect(await ids()).toContain(connectionId);
    }
    await writer.remove([{ indexKey, connectionId: 'first=', subscriptionId: 's1' }]);
    expect(await ids()).toEqual(['fourth=', 'second=', 'third=']);
    await writer.put([{ indexKey, connectionId: 'first=', subscriptionId: 's2', filter }], expires());
    expect((await reader.lookup([indexKey])).get(indexKey)!.filter((entry) => entry.connectionId === 'first=').map((entry) => entry.subscriptionId)).toEqual(['s2']);
  });

  it('an item without a version (written before versions, or by hand) is read whole every time', async () => {
    const key = 'd#hand-written';
    await lean.send(new PutCommand({ TableName: LOCAL_TABLES.subscriptions, Item: { pk: key, sk: '0', o: '00', 'c:hand=#s1': { f: { sites: ['*'] }, x: expires() } } }));
    const before = wholeReads();
    expect((await reader.lookup([key])).get(key)!.map((entry) => entry.connectionId)).toEqual(['hand=']);
    await lean.send(new PutCommand({ TableName: LOCAL_TABLES.subscriptions, Item: { pk: key, sk: '0', o: '00', 'c:other=#s1': { f: { sites: ['*'] }, x: expires() } } }));
    expect((await reader.lookup([key])).get(key)!.map((entry) => entry.connectionId)).toEqual(['other=']);
    expect(wholeReads()).toBe(before + 2);
  });
});
