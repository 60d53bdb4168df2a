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

it('the subscription index looks up with ConsistentRead on every BatchGetItem of a lookup', async () => {
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
  expect(sent).toHaveLength(2);
  for (const command of sent) {
    for (const request of Object.values(command.input.RequestItems ?? {})) expect(request.ConsistentRead).toBe(true);
  }
});
