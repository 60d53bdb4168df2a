/**
 * The lean DynamoDB client against the SDK's document client, on dynalite: every call runs
 * through both, each on a dynalite of its own holding the same tables and keys, and their outputs
 * (without `$metadata`, which holds request ids) and errors must be the same. Then the real
 * adapters on the lean client, and the retry rules against a scripted stand-in for DynamoDB (no
 * real part throttles or drops a socket on cue).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { ConditionalCheckFailedException, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  BatchGetCommand,
  BatchWriteCommand,
  DeleteCommand,
  GetCommand,
  PutCommand,
  QueryCommand,
  ScanCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import fc from 'fast-check';
import { createDocumentClient } from '../../lambdas/adapters/clients';
import { DynamoConnectionStore } from '../../lambdas/adapters/dynamo-connections';
import { DynamoSubscriptionIndex } from '../../lambdas/adapters/dynamo-subscriptions';
import { LeanDocumentClient, type DocumentSender } from '../../lambdas/adapters/lean-dynamo';
import { indexKeysForFilter, normaliseFilter } from '../../lambdas/core/filter';
import { LOCAL_AWS, LOCAL_TABLES, createTables, startDynalite } from '../../local/dynamo';

const TABLE = LOCAL_TABLES.metrics; // keys pk, sk
const servers: Server[] = [];
let sdkDoc: ReturnType<typeof createDocumentClient>;
let leanBase: DynamoDBClient;
let lean: LeanDocumentClient;
let leanEndpoint: string;
// The SDK client typed as the narrow interface: this line is the proof that adapters taking a
// DocumentSender accept it.
let sdk: DocumentSender;

beforeAll(async () => {
  const [forSdk, forLean] = await Promise.all([startDynalite(), startDynalite()]);
  servers.push(forSdk.server, forLean.server);
  await Promise.all([createTables(forSdk.endpoint), createTables(forLean.endpoint)]);
  sdkDoc = createDocumentClient({ endpoint: forSdk.endpoint, ...LOCAL_AWS });
  sdk = sdkDoc;
  leanEndpoint = forLean.endpoint;
  leanBase = new DynamoDBClient({ endpoint: leanEndpoint, ...LOCAL_AWS });
  lean = new LeanDocumentClient(leanBase);
});

afterAll(async () => {
  sdkDoc.destroy();
  await lean.destroy();
  leanBase.destroy();
  await Promise.all(servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
});

function withoutMetadata<T extends { $metadata: unknown }>({ $metadata, ...rest }: T): Omit<T, '$metadata'> {
  expect($metadata).toEqual(expect.objectContaining({ httpStatusCode: 200, attempts: 1 }));
  return rest;
}

/**
 * A value as a tree of tagged arrays: what it holds and of which kind, with each object's
 * prototype. Jest's strict equality takes an object's `constructor` property for its type, so
 * two equal items with an attribute named `constructor` would compare unequal as themselves.
 */
function canonical(value: unknown): unknown {
  if (value instanceof Set) return ['set', [...value].map(canonical)];
  if (value instanceof Uint8Array) return ['binary', value.constructor.name, Buffer.from(value).toString('base64')];
  if (Array.isArray(value)) return ['list', value.map(canonical)];
  if (value !== null && typeof value === 'object') {
    const prototype = Object.getPrototypeOf(value);
    // By name: Jest's sandbox has an Object of its own beside the one of Node's realm.
    const kind = prototype === null ? 'null-prototype' : String(prototype.constructor?.name);
    return ['map', kind, Object.keys(value).sort().map((key) => [key, canonical((value as Record<string, unknown>)[key])])];
  }
  return value;
}

/** Runs a call through both clients and expects the same output; returns it. */
async function same(call: (doc: DocumentSender) => Promise<{ $metadata: unknown }>): Promise<Record<string, unknown>> {
  const expected = withoutMetadata(await call(sdk));
  const actual = withoutMetadata(await call(lean));
  expect(canonical(actual)).toStrictEqual(canonical(expected));
  return expected;
}

/** Runs a failing call through both clients and expects the same error; returns the SDK's. */
async function sameError(call: (doc: DocumentSender) => Promise<unknown>, sameMessage = true): Promise<Error> {
  const failure = async (doc: DocumentSender) => {
    try {
      await call(doc);
    } catch (error) {
      return error as Error & { Item?: unknown };
    }
    throw new Error('the call succeeded');
  };
  const expected = await failure(sdk);
  const actual = await failure(lean);
  expect(actual).toBeInstanceOf(Error);
  expect(actual.name).toBe(expected.name);
  if (sameMessage) expect(actual.message).toBe(expected.message);
  expect(actual instanceof ConditionalCheckFailedException).toBe(expected instanceof ConditionalCheckFailedException);
  expect(actual.Item).toStrictEqual(expected.Item);
  return expected;
}

/** A document with every kind of value the document client maps. */
const richItem = () => ({
  pk: 'doc',
  sk: 'rich',
  text: 'héllo wörld ✓ 日本語 😀',
  empty: '',
  int: 42,
  negative: -17,
  float: 3.141592653589793,
  big: 2 ** 52,
  yes: true,
  no: false,
  nothing: null,
  skipped: undefined,
  list: [1, 'two', { three: [3] }, [], null],
  emptyList: [],
  emptyMap: {},
  nested: { a: { b: { c: ['deep', { d: 1 }] } }, 'key with spaces': 1, 'ключ': 'значение' },
  strings: new Set(['a', 'b', 'ü']),
  numbers: new Set([1, 2.5, -3]),
  bytes: new Uint8Array([0, 1, 2, 250, 255]),
  byteSet: new Set([new Uint8Array([1]), new Uint8Array([2, 3])]),
});

describe('LeanDocumentClient matches the SDK document client', () => {
  it('puts and gets items with every kind of value, projections, consumed capacity and missing keys', async () => {
    await same((doc) => doc.send(new PutCommand({ TableName: TABLE, Item: richItem() })));
    const got = await same((doc) => doc.send(new GetCommand({ TableName: TABLE, Key: { pk: 'doc', sk: 'rich' }, ConsistentRead: true })));
    expect(got.Item).toEqual({ ...richItem(), skipped: undefined, bytes: expect.any(Uint8Array), byteSet: expect.any(Set) });
    const overwritten = await same((doc) =>
      doc.send(new PutCommand({ TableName: TABLE, Item: { ...richItem(), int: 43 }, ReturnValues: 'ALL_OLD', ReturnConsumedCapacity: 'TOTAL' })),
    );
    expect(overwritten.Attributes).toMatchObject({ int: 42 });
    expect(overwritten.ConsumedCapacity).toMatchObject({ TableName: TABLE });
    await same((doc) =>
      doc.send(
        new GetCommand({
          TableName: TABLE,
          Key: { pk: 'doc', sk: 'rich' },
          ProjectionExpression: '#n.a, #l[2], #i',
          ExpressionAttributeNames: { '#n': 'nested', '#l': 'list', '#i': 'int' },
          ReturnConsumedCapacity: 'INDEXES',
        }),
      ),
    );
    const missing = await same((doc) => doc.send(new GetCommand({ TableName: TABLE, Key: { pk: 'doc', sk: 'nowhere' } })));
    expect(missing).toStrictEqual({});
  });

  it('handles __proto__ map keys as the SDK does', async () => {
    // A nested __proto__ key: the SDK sends a malformed map and DynamoDB refuses it; the lean
    // client refuses it before sending (same error name, its own message).
    const nested = JSON.parse('{"pk":"doc","sk":"proto","m":{"__proto__":{"x":1},"ok":"a"}}') as Record<string, unknown>;
    await sameError((doc) => doc.send(new PutCommand({ TableName: TABLE, Item: nested })), false);
    // A top-level one is dropped by both.
    const top = JSON.parse('{"pk":"doc","sk":"proto","__proto__":{"x":1},"m":{"ok":"a"}}') as Record<string, unknown>;
    await same((doc) => doc.send(new PutCommand({ TableName: TABLE, Item: top })));
    // Stored ones (written through an attribute name) read back alike: nested as the map's prototype.
    await same((doc) =>
      doc.send(
        new UpdateCommand({
          TableName: TABLE,
          Key: { pk: 'doc', sk: 'proto' },
          UpdateExpression: 'SET m.#p = :v, #p = :v',
          ExpressionAttributeNames: { '#p': '__proto__' },
          ExpressionAttributeValues: { ':v': { x: 1 } },
        }),
      ),
    );
    const read = async (doc: DocumentSender) => (await doc.send(new GetCommand({ TableName: TABLE, Key: { pk: 'doc', sk: 'proto' } }))).Item!;
    const [fromSdk, fromLean] = [await read(sdk), await read(lean)];
    expect(fromLean).toStrictEqual(fromSdk);
    expect(Object.getPrototypeOf(fromLean)).toBe(Object.getPrototypeOf(fromSdk));
    expect(Object.getPrototypeOf(fromLean.m)).toStrictEqual(Object.getPrototypeOf(fromSdk.m));
  });

  it('updates with every ReturnValues, ADD, list_append and REMOVE', async () => {
    const key = { pk: 'doc', sk: 'counter' };
    await same((doc) => doc.send(new PutCommand({ TableName: TABLE, Item: { ...key, n: 1, tags: ['a'], m: { x: 1, y: 'y' } } })));
    for (const ReturnValues of ['NONE', 'UPDATED_OLD', 'UPDATED_NEW', 'ALL_NEW', 'ALL_OLD'] as const) {
      const out = await same((doc) =>
        doc.send(
          new UpdateCommand({
            TableName: TABLE,
            Key: key,
            UpdateExpression: 'ADD n :one, seen :set SET tags = list_append(tags, :more), m.x = m.x + :one REMOVE m.y',
            ExpressionAttributeValues: { ':one': 1, ':set': new Set([ReturnValues]), ':more': [ReturnValues] },
            ReturnValues,
            ReturnConsumedCapacity: 'TOTAL',
          }),
        ),
      );
      if (ReturnValues !== 'NONE') expect(out.Attributes).toBeDefined();
    }
    const after = await same((doc) => doc.send(new GetCommand({ TableName: TABLE, Key: key, ConsistentRead: true })));
    expect(after.Item).toMatchObject({ n: 6, m: { x: 6 } });
  });

  it('throws ConditionalCheckFailedException as the SDK does, with the old item when asked', async () => {
    const key = { pk: 'doc', sk: 'cond' };
    await same((doc) => doc.send(new PutCommand({ TableName: TABLE, Item: { ...key, v: 1, m: { a: [1] } } })));
    const plain = await sameError((doc) => doc.send(new PutCommand({ TableName: TABLE, Item: key, ConditionExpression: 'attribute_not_exists(pk)' })));
    expect(plain).toBeInstanceOf(ConditionalCheckFailedException);
    expect(plain.name).toBe('ConditionalCheckFailedException');
    const withItem = await sameError((doc) =>
      doc.send(
        new UpdateCommand({
          TableName: TABLE,
          Key: key,
          UpdateExpression: 'SET v = :v',
          ConditionExpression: 'v = :other',
          ExpressionAttributeValues: { ':v': 2, ':other': 5 },
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
        }),
      ),
    );
    // dynalite returns no item here (DynamoDB does): the retries suite checks the lean client keeps one.
    expect(withItem).toBeInstanceOf(ConditionalCheckFailedException);
    await sameError((doc) => doc.send(new DeleteCommand({ TableName: TABLE, Key: key, ConditionExpression: 'v = :two', ExpressionAttributeValues: { ':two': 2 } })));
  });

  it('passes validation and missing-table errors through by name and message', async () => {
    const validation = await sameError((doc) => doc.send(new UpdateCommand({ TableName: TABLE, Key: { pk: 'doc', sk: 'x' }, UpdateExpression: 'SET x = ' })));
    expect(validation.name).toBe('ValidationException');
    await sameError((doc) => doc.send(new GetCommand({ TableName: TABLE, Key: { pk: 'doc' } })));
    await sameError((doc) => doc.send(new PutCommand({ TableName: TABLE, Item: { pk: 'doc', sk: 'x', s: new Set() } })), false);
    const missing = await sameError((doc) => doc.send(new GetCommand({ TableName: 'no-such-table', Key: { pk: 'doc', sk: 'x' } })));
    expect(missing.name).toBe('ResourceNotFoundException');
  });

  it('deletes with ALL_OLD and without a match', async () => {
    await same((doc) => doc.send(new PutCommand({ TableName: TABLE, Item: { pk: 'doc', sk: 'gone', list: [{ a: 1 }] } })));
    const deleted = await same((doc) => doc.send(new DeleteCommand({ TableName: TABLE, Key: { pk: 'doc', sk: 'gone' }, ReturnValues: 'ALL_OLD' })));
    expect(deleted.Attributes).toEqual({ pk: 'doc', sk: 'gone', list: [{ a: 1 }] });
    expect(await same((doc) => doc.send(new DeleteCommand({ TableName: TABLE, Key: { pk: 'doc', sk: 'gone' }, ReturnValues: 'ALL_OLD' })))).toStrictEqual({});
  });

  it('batch-gets several keys, some missing, over two tables', async () => {
    for (let i = 0; i < 5; i++) {
      await same((doc) => doc.send(new PutCommand({ TableName: TABLE, Item: { pk: 'batch', sk: String(i), v: i, m: { i } } })));
    }
    await same((doc) => doc.send(new PutCommand({ TableName: LOCAL_TABLES.latest, Item: { location: 'plant-a/one', devices: { p1: 1 } } })));
    const keys = [0, 2, 4, 7, 9].map((i) => ({ pk: 'batch', sk: String(i) }));
    const send = (doc: DocumentSender) =>
      doc.send(
        new BatchGetCommand({
          RequestItems: {
            [TABLE]: { Keys: keys, ConsistentRead: true },
            [LOCAL_TABLES.latest]: { Keys: [{ location: 'plant-a/one' }, { location: 'nowhere' }] },
          },
          ReturnConsumedCapacity: 'TOTAL',
        }),
      );
    const sortBySk = (items: Record<string, unknown>[] = []) => [...items].sort((a, b) => String(a.sk).localeCompare(String(b.sk)));
    const [expected, actual] = [withoutMetadata(await send(sdk)), withoutMetadata(await send(lean))];
    expect(sortBySk(actual.Responses?.[TABLE])).toStrictEqual(sortBySk(expected.Responses?.[TABLE]));
    expect(actual.Responses?.[LOCAL_TABLES.latest]).toStrictEqual(expected.Responses?.[LOCAL_TABLES.latest]);
    expect(actual.UnprocessedKeys).toStrictEqual(expected.UnprocessedKeys);
    expect(actual.ConsumedCapacity).toStrictEqual(expected.ConsumedCapacity);
    expect(Object.keys(actual).sort()).toEqual(Object.keys(expected).sort());
    expect(sortBySk(actual.Responses?.[TABLE]).map((item) => item.v)).toEqual([0, 2, 4]);
  });

  it('queries and scans page by page with LastEvaluatedKey', async () => {
    for (let i = 0; i < 23; i++) {
      await same((doc) => doc.send(new PutCommand({ TableName: TABLE, Item: { pk: 'page', sk: `s${String(i).padStart(2, '0')}`, v: i, odd: i % 2 === 1 } })));
    }
    let start: Record<string, unknown> | undefined;
    const seen: unknown[] = [];
    let pages = 0;
    do {
      const page = await same((doc) =>
        doc.send(
          new QueryCommand({
            TableName: TABLE,
            KeyConditionExpression: 'pk = :pk AND begins_with(sk, :s)',
            FilterExpression: 'odd = :no',
            ExpressionAttributeValues: { ':pk': 'page', ':s': 's', ':no': false },
            ScanIndexForward: false,
            Limit: 5,
            ExclusiveStartKey: start,
            ReturnConsumedCapacity: 'TOTAL',
          }),
        ),
      );
      seen.push(...(page.Items as { v: number }[]).map((item) => item.v));
      start = page.LastEvaluatedKey as Record<string, unknown> | undefined;
      pages++;
    } while (start);
    expect(pages).toBe(5);
    expect(seen).toEqual([22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0]);
    let scanStart: Record<string, unknown> | undefined;
    do {
      const page = await same((doc) => doc.send(new ScanCommand({ TableName: LOCAL_TABLES.metrics, Limit: 10, ExclusiveStartKey: scanStart })));
      scanStart = page.LastEvaluatedKey as Record<string, unknown> | undefined;
    } while (scanStart);
  });

  it('Put then Get returns any document unchanged, alike through both (property)', async () => {
    const attributeName = fc.string({ minLength: 1, maxLength: 12 }).filter((name) => name !== '__proto__' && name !== 'pk' && name !== 'sk');
    const number = fc.oneof(fc.integer(), fc.double({ min: -1e15, max: 1e15, noNaN: true }).filter((n) => n === 0 ? !Object.is(n, -0) : Math.abs(n) > 1e-100));
    const { value } = fc.letrec<{ value: unknown }>((tie) => ({
      value: fc.oneof(
        { depthSize: 'small', withCrossShrink: true },
        fc.string({ unit: 'grapheme', maxLength: 20 }),
        number,
        fc.boolean(),
        fc.constant(null),
        fc.array(tie('value'), { maxLength: 4 }),
        fc.dictionary(attributeName, tie('value'), { maxKeys: 4 }),
        fc.uniqueArray(fc.string({ minLength: 1, maxLength: 8 }), { minLength: 1, maxLength: 4 }).map((items) => new Set(items)),
      ),
    }));
    let n = 0;
    await fc.assert(
      fc.asyncProperty(fc.dictionary(attributeName, value, { maxKeys: 6 }), async (document) => {
        const item = { ...document, pk: 'prop', sk: String(n++) };
        const back = await same(async (doc) => {
          await doc.send(new PutCommand({ TableName: TABLE, Item: item }));
          return doc.send(new GetCommand({ TableName: TABLE, Key: { pk: item.pk, sk: item.sk }, ConsistentRead: true }));
        });
        expect(back.Item).toEqual(item);
      }),
      // An attribute named like an Object.prototype key once passed for a difference (see canonical).
      { numRuns: 60, examples: [[{ constructor: new Set([' ']) }], [{ toString: { valueOf: 1 } }]] },
    );
  });

  it('names a command it does not take', async () => {
    await expect(lean.send(new BatchWriteCommand({ RequestItems: {} }) as never)).rejects.toThrow(/does not take BatchWriteCommand/);
  });

  it('counts requests and reads the endpoint from AWS_ENDPOINT_URL_DYNAMODB', async () => {
    const before = lean.calls;
    await lean.send(new GetCommand({ TableName: TABLE, Key: { pk: 'doc', sk: 'rich' } }));
    expect(lean.calls).toBe(before + 1);
    const previous = process.env.AWS_ENDPOINT_URL_DYNAMODB;
    process.env.AWS_ENDPOINT_URL_DYNAMODB = leanEndpoint;
    try {
      const base = new DynamoDBClient({ ...LOCAL_AWS });
      const fromEnv = new LeanDocumentClient(base);
      const out = await fromEnv.send(new GetCommand({ TableName: TABLE, Key: { pk: 'doc', sk: 'rich' } }));
      expect(out.Item?.text).toBe(richItem().text);
      await fromEnv.destroy();
      base.destroy();
    } finally {
      if (previous === undefined) delete process.env.AWS_ENDPOINT_URL_DYNAMODB;
      else process.env.AWS_ENDPOINT_URL_DYNAMODB = previous;
    }
  });
});

describe('the adapters on the lean client', () => {
  it('DynamoConnectionStore: put, get, subscription changes with rate buckets and limits, delete', async () => {
    const run = async (doc: DocumentSender) => {
      // The adapters still type their client as DynamoDBDocumentClient, hence the cast.
      const store = new DynamoConnectionStore(doc as never, LOCAL_TABLES.connections);
      const filter = normaliseFilter({ deviceIds: ['pump-1'] });
      const other = normaliseFilter({ types: ['alert'] });
      const messages = { bucket: 'messages', costMs: 1000, burstMs: 2000 } as const;
      const writes = { bucket: 'indexWrites', costMs: 1, burstMs: 1_000_000 } as const;
      await store.put({ connectionId: 'c1=', connectedAt: 1, expiresAt: 2, sub: 'user', sites: ['plant-a'], subscriptions: new Map([['s0', filter]]) });
      const now = 10_000;
      const results = [
        await store.change('c1=', { takes: [messages, writes], set: { subscriptionId: 's1', filter, max: 2 } }, now),
        await store.change('c1=', { takes: [writes], set: { subscriptionId: 's2', filter, max: 2 } }, now),
        await store.change('c1=', { takes: [messages, writes], set: { subscriptionId: 's1', filter: other, max: 2 } }, now),
        await store.change('c1=', { takes: [messages] }, now),
        await store.change('nobody', { takes: [writes], set: { subscriptionId: 's1', filter, max: 2 } }, now),
        await store.change('c1=', { takes: [writes], remove: { subscriptionId: 's0' } }, now),
        await store.change('c1=', { takes: [writes], remove: { subscriptionId: 's0' } }, now),
      ];
      const got = await store.get('c1=');
      const deleted = await store.delete('c1=');
      return { results, got, deleted, after: await store.get('c1='), calls: store.calls };
    };
    const expected = await run(sdk);
    const actual = await run(lean);
    expect(actual).toStrictEqual(expected);
    expect(actual.results.map((result) => result.outcome)).toEqual(['ok', 'full', 'ok', 'limited', 'gone', 'ok', 'missing']);
    expect(actual.results[2]).toMatchObject({ previous: normaliseFilter({ deviceIds: ['pump-1'] }) });
    expect([...actual.got!.subscriptions.keys()].sort()).toEqual(['s1']);
    expect(actual.deleted?.connectionId).toBe('c1=');
    expect(actual.after).toBeUndefined();
  });

  it('DynamoSubscriptionIndex: put, lookup, remove, sweep', async () => {
    const run = async (doc: DocumentSender) => {
      const index = new DynamoSubscriptionIndex(doc as never, LOCAL_TABLES.subscriptions, { now: () => 1_000_000 });
      const filter = normaliseFilter({ deviceIds: ['pump-1', 'pump-2'], types: ['device_data'] });
      const keys = indexKeysForFilter(filter);
      const entries = keys.flatMap((indexKey) => ['a=', 'b=', '__proto__'].map((connectionId) => ({ indexKey, connectionId, subscriptionId: 's1', filter })));
      await index.put(entries, 2000);
      const found = await index.lookup(keys);
      await index.remove(entries.filter((entry) => entry.connectionId === 'a='));
      const afterRemove = await index.lookup(keys);
      const swept = await index.sweepExpired(3000);
      const sort = (map: Map<string, { connectionId: string }[]>) =>
        [...map].map(([key, list]) => [key, list.map((entry) => entry.connectionId).sort()]).sort();
      return { found: sort(found), afterRemove: sort(afterRemove), swept, afterSweep: sort(await index.lookup(keys)) };
    };
    const expected = await run(sdk);
    const actual = await run(lean);
    expect(actual).toStrictEqual(expected);
    expect(actual.found.every(([, ids]) => (ids as string[]).join() === ['__proto__', 'a=', 'b='].join())).toBe(true);
    expect(actual.afterRemove.every(([, ids]) => (ids as string[]).join() === ['__proto__', 'b='].join())).toBe(true);
    expect(actual.afterSweep).toEqual([]);
  });
});

/** A stand-in for DynamoDB that answers each request with the next scripted reply. */
async function scriptedDynamo(replies: ('throttle' | 'server-error' | 'drop' | 'ok' | 'condition')[]) {
  const seen: string[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      seen.push(`${String(req.headers['x-amz-target'])} ${String(req.headers['content-type'])} ${req.headers.authorization ? 'signed' : 'unsigned'}`);
      const reply = replies.shift() ?? 'ok';
      if (reply === 'drop') return req.socket.destroy();
      if (reply === 'ok') return res.writeHead(200, { 'content-type': 'application/x-amz-json-1.0' }).end(JSON.stringify({ Attributes: { n: { N: '1' } } }));
      if (reply === 'condition') {
        const failed = { __type: 'com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException', message: 'The conditional request failed', Item: { v: { N: '1' }, m: { M: { a: { S: 'b' } } } } };
        return res.writeHead(400, { 'content-type': 'application/x-amz-json-1.0' }).end(JSON.stringify(failed));
      }
      const [status, type] = reply === 'throttle' ? [400, 'ProvisionedThroughputExceededException'] : [500, 'InternalServerError'];
      res.writeHead(status, { 'content-type': 'application/x-amz-json-1.0' }).end(JSON.stringify({ __type: `com.amazonaws.dynamodb.v20120810#${type}`, message: `scripted ${type}` }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = new DynamoDBClient({ endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, ...LOCAL_AWS });
  const client = new LeanDocumentClient(base, { baseDelayMs: 5, throttledBaseDelayMs: 5 });
  return {
    client,
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    close: async () => {
      await client.destroy();
      base.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const update = (expression: string) =>
  new UpdateCommand({ TableName: TABLE, Key: { pk: 'x', sk: 'y' }, UpdateExpression: expression, ExpressionAttributeValues: { ':add': 1 }, ReturnValues: 'UPDATED_NEW' });

describe('retries', () => {
  it('retries throttling and 5xx up to 3 attempts, signed, with the JSON protocol headers', async () => {
    const dynamo = await scriptedDynamo(['throttle', 'server-error', 'ok']);
    try {
      const out = await dynamo.client.send(update('ADD n :add'));
      expect(out.Attributes).toEqual({ n: 1 });
      expect(out.$metadata.attempts).toBe(3);
      expect(dynamo.client.calls).toBe(3);
      expect(dynamo.seen).toEqual(Array(3).fill('DynamoDB_20120810.UpdateItem application/x-amz-json-1.0 signed'));
    } finally {
      await dynamo.close();
    }
    const exhausted = await scriptedDynamo(['throttle', 'throttle', 'throttle', 'ok']);
    try {
      await expect(exhausted.client.send(update('SET n = :add'))).rejects.toMatchObject({ name: 'ProvisionedThroughputExceededException', message: 'scripted ProvisionedThroughputExceededException' });
      expect(exhausted.client.calls).toBe(3);
    } finally {
      await exhausted.close();
    }
  });

  it('retries a dropped socket, except for an UpdateItem with ADD', async () => {
    const dynamo = await scriptedDynamo(['drop', 'ok', 'drop', 'ok']);
    try {
      await expect(dynamo.client.send(update('SET n = :add'))).resolves.toMatchObject({ Attributes: { n: 1 } });
      expect(dynamo.client.calls).toBe(2);
      // `:add` is a placeholder, not the clause: still retried.
      const set = await dynamo.client.send(update('SET n = :add'));
      expect(set.Attributes).toEqual({ n: 1 });
      const adds = await scriptedDynamo(['drop', 'ok']);
      try {
        await expect(adds.client.send(update('SET m = :add ADD n :add'))).rejects.toThrow();
        expect(adds.client.calls).toBe(1);
      } finally {
        await adds.close();
      }
    } finally {
      await dynamo.close();
    }
  });

  it("sends a subscription index write again when its answer was lost: the bucket's version is set, not added to", async () => {
    const dynamo = await scriptedDynamo(['drop', 'ok', 'drop', 'ok']);
    try {
      const index = new DynamoSubscriptionIndex(dynamo.client, TABLE);
      const filter = normaliseFilter({ deviceIds: ['pump-1'] });
      const entry = { indexKey: indexKeysForFilter(filter)[0]!, connectionId: 'c1=', subscriptionId: 's1', filter: { ...filter, sites: ['*'] } };
      await index.put([entry], 2_000_000_000);
      expect(dynamo.client.calls).toBe(2);
      await index.remove([entry]);
      expect(dynamo.client.calls).toBe(4);
    } finally {
      await dynamo.close();
    }
  });

  it('keeps the old item on a ConditionalCheckFailedException as the SDK does, in wire form, without retrying', async () => {
    const dynamo = await scriptedDynamo(['condition', 'condition']);
    const sdkOnScript = createDocumentClient({ endpoint: dynamo.endpoint, ...LOCAL_AWS });
    try {
      const failure = (doc: DocumentSender) => doc.send(update('SET n = :add')).then(() => undefined, (error: unknown) => error as ConditionalCheckFailedException);
      const [expected, actual] = [await failure(sdkOnScript), await failure(dynamo.client)];
      expect(actual).toBeInstanceOf(ConditionalCheckFailedException);
      expect(expected).toBeInstanceOf(ConditionalCheckFailedException);
      expect(actual!.Item).toStrictEqual(expected!.Item);
      expect(actual!.Item).toEqual({ v: { N: '1' }, m: { M: { a: { S: 'b' } } } });
      expect(actual!.message).toBe(expected!.message);
      expect(dynamo.client.calls).toBe(1);
    } finally {
      sdkOnScript.destroy();
      await dynamo.close();
    }
  });
});
