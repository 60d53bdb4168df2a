/**
 * The local DynamoDB: dynalite (a DynamoDB-compatible server) in this process, the product's
 * tables created in it, and a sweeper for expired items, since dynalite implements no TTL.
 */
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { CreateTableCommand, DynamoDBClient, ResourceInUseException } from '@aws-sdk/client-dynamodb';
import { BatchWriteCommand, ScanCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import dynalite from 'dynalite';
import { ALERTS_TABLE, CONNECTIONS_TABLE, LATEST_TABLE, METRICS_TABLE, SUBSCRIPTIONS_TABLE } from '../lambdas/config/tables';

/** Table names the local runtime uses. */
export const LOCAL_TABLES = {
  connections: 'iot-connections',
  subscriptions: 'iot-subscriptions',
  metrics: 'iot-metrics',
  alerts: 'iot-alerts',
  latest: 'iot-latest',
} as const;

/** Credentials and region for local endpoints (no account needed; any value works). */
export const LOCAL_AWS = {
  region: 'us-east-1',
  credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
} as const;

interface ClosableIterator {
  close(): Promise<void>;
  return?: () => Promise<void>;
}

/**
 * dynalite ends the iterators behind its Scan and Query streams with `iterator.return()`, which
 * abstract-level 3 iterators do not have (they need `close()`). Each unclosed iterator keeps the
 * in-memory store as it was when it opened, so every overwrite after it stays in memory: about
 * 20 MB an hour with one dashboard open. Giving the iterators the `return` dynalite calls closes
 * them. The classes come from the copy of abstract-level dynalite's memory-level loads.
 */
function closeDynaliteIterators(): void {
  const fromMemoryLevel = createRequire(createRequire(require.resolve('dynalite')).resolve('memory-level'));
  const level = fromMemoryLevel('abstract-level') as Record<string, { prototype: ClosableIterator }>;
  for (const name of ['AbstractIterator', 'AbstractKeyIterator', 'AbstractValueIterator']) {
    const prototype = level[name]?.prototype;
    if (prototype && !Object.hasOwn(prototype, 'return')) {
      prototype.return = function (this: ClosableIterator) {
        return this.close();
      };
    }
  }
}

/** Starts dynalite in memory on `port` (0: a free port) and returns its endpoint. */
export async function startDynalite(port = 0, host = '127.0.0.1'): Promise<{ endpoint: string; server: Server }> {
  closeDynaliteIterators();
  const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  return { endpoint: `http://${host}:${address.port}`, server };
}

/** Creates the product's tables (idempotent), with the key schemas the CDK stack uses. */
export async function createTables(endpoint: string, names = LOCAL_TABLES): Promise<void> {
  const client = new DynamoDBClient({ endpoint, ...LOCAL_AWS });
  const definitions = [
    { name: names.connections, keys: [CONNECTIONS_TABLE.partitionKey] },
    { name: names.subscriptions, keys: [SUBSCRIPTIONS_TABLE.partitionKey, SUBSCRIPTIONS_TABLE.sortKey] },
    { name: names.metrics, keys: [METRICS_TABLE.partitionKey, METRICS_TABLE.sortKey] },
    { name: names.alerts, keys: [ALERTS_TABLE.partitionKey] },
    { name: names.latest, keys: [LATEST_TABLE.partitionKey] },
  ];
  const { unresolvedIndex } = ALERTS_TABLE;
  try {
    for (const { name, keys } of definitions) {
      try {
        const isAlerts = name === names.alerts;
        await client.send(
          new CreateTableCommand({
            TableName: name,
            BillingMode: 'PAY_PER_REQUEST',
            AttributeDefinitions: [
              ...keys.map((key) => ({ AttributeName: key, AttributeType: 'S' as const })),
              ...(isAlerts
                ? [
                    { AttributeName: unresolvedIndex.partitionKey, AttributeType: 'S' as const },
                    { AttributeName: unresolvedIndex.sortKey, AttributeType: 'N' as const },
                  ]
                : []),
            ],
            KeySchema: keys.map((key, i) => ({ AttributeName: key, KeyType: i === 0 ? 'HASH' : 'RANGE' })),
            ...(isAlerts
              ? {
                  GlobalSecondaryIndexes: [
                    {
                      IndexName: unresolvedIndex.name,
                      KeySchema: [
                        { AttributeName: unresolvedIndex.partitionKey, KeyType: 'HASH' as const },
                        { AttributeName: unresolvedIndex.sortKey, KeyType: 'RANGE' as const },
                      ],
                      Projection: { ProjectionType: 'ALL' as const },
                    },
                  ],
                }
              : {}),
          }),
        );
      } catch (error) {
        if (!(error instanceof ResourceInUseException)) throw error;
      }
    }
  } finally {
    client.destroy();
  }
}

/**
 * Deletes items whose `expiresAt` (epoch seconds) has passed, as DynamoDB's TTL does on AWS.
 * Returns how many were deleted.
 */
export async function sweepExpired(
  doc: DynamoDBDocumentClient,
  tables: { name: string; keys: string[] }[],
  nowSeconds = Date.now() / 1000,
): Promise<number> {
  let deleted = 0;
  for (const { name, keys } of tables) {
    let start: Record<string, unknown> | undefined;
    do {
      const out = await doc.send(
        new ScanCommand({
          TableName: name,
          FilterExpression: 'expiresAt < :now',
          ExpressionAttributeValues: { ':now': nowSeconds },
          ProjectionExpression: keys.join(', '),
          ExclusiveStartKey: start,
        }),
      );
      const items = out.Items ?? [];
      for (let i = 0; i < items.length; i += 25) {
        await doc.send(
          new BatchWriteCommand({
            RequestItems: { [name]: items.slice(i, i + 25).map((Key) => ({ DeleteRequest: { Key } })) },
          }),
        );
      }
      deleted += items.length;
      start = out.LastEvaluatedKey;
    } while (start);
  }
  return deleted;
}
