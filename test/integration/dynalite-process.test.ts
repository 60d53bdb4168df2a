/** dynalite in a child process: what the local runtime starts by default. */
import { ListTablesCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { LOCAL_AWS, LOCAL_TABLES, createTables } from '../../local/dynamo';
import { startLocalDynalite } from '../../local/dynalite-process';

it('serves the product tables from its own process, and stops', async () => {
  const dynamo = await startLocalDynalite('process');
  const client = new DynamoDBClient({ endpoint: dynamo.endpoint, ...LOCAL_AWS });
  try {
    await createTables(dynamo.endpoint);
    const out = await client.send(new ListTablesCommand({}));
    expect(out.TableNames).toEqual(expect.arrayContaining(Object.values(LOCAL_TABLES)));
  } finally {
    client.destroy();
    await dynamo.stop();
  }
  await expect(fetch(dynamo.endpoint)).rejects.toThrow();
});

it('reports a port in use with the code the runtime tells the user about', async () => {
  const first = await startLocalDynalite('process');
  try {
    const port = Number(new URL(first.endpoint).port);
    await expect(startLocalDynalite('process', port)).rejects.toMatchObject({ code: 'EADDRINUSE' });
  } finally {
    await first.stop();
  }
});
