/**
 * The `websocket_connections` gauge stays exact when DynamoDB misbehaves under $connect and
 * $disconnect (issue 19): a write that applied but whose answer was lost (the lean client then
 * retries it), and a table that answers 500 to the index removal. The handlers and stores are the
 * product's, over the lean client and real dynalite; between them stands a small HTTP relay that
 * forwards each request to dynalite and then, as the rule of the test says, drops the answer
 * (the write applied, the client sees its socket close) or answers 500 itself.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import { createLeanDocumentClient } from '../../lambdas/adapters/clients';
import { DynamoConnectionStore } from '../../lambdas/adapters/dynamo-connections';
import { DynamoMetricsStore } from '../../lambdas/adapters/dynamo-metrics';
import { DynamoSubscriptionIndex } from '../../lambdas/adapters/dynamo-subscriptions';
import { METRIC } from '../../lambdas/core/metrics';
import { createConnectHandler } from '../../lambdas/handlers/connect';
import { createDisconnectHandler } from '../../lambdas/handlers/disconnect';
import { createMessageHandler } from '../../lambdas/handlers/message';
import { connectEvent, disconnectEvent, messageEvent } from '../../local/apigw-events';
import { startLocalDynalite, type DynaliteProcess } from '../../local/dynalite-process';
import { LOCAL_AWS, LOCAL_TABLES, createTables } from '../../local/dynamo';
import { awsSource } from '../support/apigw';

/** What the relay does with one request: its DynamoDB operation, table and body. */
type Rule = (request: { operation: string; table: string; body: string }) => 'pass' | 'drop-answer' | 'fail-500';

/** An HTTP relay in front of dynalite that applies {@link Rule} to each request. */
class FaultyRelay {
  rule: Rule = () => 'pass';
  /** Requests whose answer was dropped, and those answered 500, by operation. */
  readonly dropped: string[] = [];
  readonly failed: string[] = [];
  private readonly server: http.Server;

  constructor(private readonly target: URL) {
    this.server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        const operation = String(req.headers['x-amz-target'] ?? '').split('.').pop() ?? '';
        const table = String((JSON.parse(body.toString() || '{}') as { TableName?: string }).TableName ?? '');
        const action = this.rule({ operation, table, body: body.toString() });
        if (action === 'fail-500') {
          this.failed.push(operation);
          res.writeHead(500, { 'content-type': 'application/x-amz-json-1.0', 'x-amzn-errortype': 'InternalServerError' });
          return res.end(JSON.stringify({ __type: 'com.amazonaws.dynamodb.v20120810#InternalServerError', message: 'injected' }));
        }
        const forward = http.request(
          { host: this.target.hostname, port: this.target.port, method: req.method, path: req.url, headers: req.headers },
          (answer) => {
            const parts: Buffer[] = [];
            answer.on('data', (chunk: Buffer) => parts.push(chunk));
            answer.on('end', () => {
              if (action === 'drop-answer') {
                // Applied by dynalite; the client sees its connection close before any answer.
                this.dropped.push(operation);
                return req.socket.destroy();
              }
              res.writeHead(answer.statusCode ?? 500, answer.headers);
              res.end(Buffer.concat(parts));
            });
          },
        );
        forward.on('error', () => req.socket.destroy());
        forward.end(body);
      });
    });
  }

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

/** Drops the answer of the first try of each distinct request that `matches`; retries pass. */
function dropFirstAnswers(matches: (request: { operation: string; table: string }) => boolean): Rule {
  const seen = new Set<string>();
  return (request) => {
    if (!matches(request) || seen.has(request.body)) return 'pass';
    seen.add(request.body);
    return 'drop-answer';
  };
}

const quiet = { debug() {}, info() {}, warn() {}, error() {} };
let dynalite: DynaliteProcess;
let relay: FaultyRelay;
let viaRelay: ReturnType<typeof createLeanDocumentClient>;
let direct: ReturnType<typeof createLeanDocumentClient>;
let metrics: DynamoMetricsStore;
let connections: DynamoConnectionStore;
let deps: Parameters<typeof createDisconnectHandler>[0];

beforeAll(async () => {
  dynalite = await startLocalDynalite('process');
  await createTables(dynalite.endpoint);
  relay = new FaultyRelay(new URL(dynalite.endpoint));
  viaRelay = createLeanDocumentClient({ endpoint: await relay.start(), ...LOCAL_AWS });
  direct = createLeanDocumentClient({ endpoint: dynalite.endpoint, ...LOCAL_AWS });
  // The metric writes go straight to dynalite: an ADD whose answer is lost is never retried, by
  // design, so the faults here are on the connection and index writes only.
  metrics = new DynamoMetricsStore(direct, LOCAL_TABLES.metrics);
  connections = new DynamoConnectionStore(viaRelay, LOCAL_TABLES.connections);
  deps = {
    sessions: { connections, index: new DynamoSubscriptionIndex(viaRelay, LOCAL_TABLES.subscriptions) },
    metrics,
    log: quiet,
  };
});

afterEach(() => {
  relay.rule = () => 'pass';
});

afterAll(async () => {
  await Promise.all([viaRelay.destroy(), direct.destroy()]);
  await relay.stop();
  await dynalite.stop();
});

const gauge = async () => (await metrics.read()).get(METRIC.connections) ?? 0;
const item = async (connectionId: string) =>
  (await direct.send(new GetCommand({ TableName: LOCAL_TABLES.connections, Key: { connectionId }, ConsistentRead: true }))).Item;

it('a $disconnect whose writes each lose their first answer (applied, then retried) counts the end once', async () => {
  const before = await gauge();
  const source = awsSource('GaugeDropA01Q=');
  await createConnectHandler(deps)(connectEvent(source));
  expect(await gauge()).toBe(before + 1);

  relay.rule = dropFirstAnswers(({ table, operation }) => table === LOCAL_TABLES.connections && operation !== 'GetItem');
  await createDisconnectHandler(deps)(disconnectEvent(source, 1001, 'Going away'));
  expect(relay.dropped.length).toBeGreaterThan(0);
  expect(await item(source.connectionId)).toBeUndefined();
  expect(await gauge()).toBe(before);
  // A second $disconnect (or the stream's 410 removal) finds it ended and counts nothing.
  relay.rule = () => 'pass';
  await createDisconnectHandler(deps)(disconnectEvent(source, 1001, 'Going away'));
  expect(await gauge()).toBe(before);
});

it('a $disconnect whose index removal fails (500 on every try) still counts the end', async () => {
  const before = await gauge();
  const source = awsSource('GaugeIndexB2Q=');
  await createConnectHandler(deps)(connectEvent(source));
  const reply = await createMessageHandler(deps)(messageEvent(source, 'subscribe', '{"action":"subscribe","id":"s","filter":{"deviceIds":["pump-9"]}}'));
  expect(reply.body).toContain('"subscribed"');
  expect(await gauge()).toBe(before + 1);

  relay.rule = ({ table }) => (table === LOCAL_TABLES.subscriptions ? 'fail-500' : 'pass');
  // The connection is gone and counted; its index entries are left to the first 410 and TTL.
  expect(await createDisconnectHandler(deps)(disconnectEvent(source, 1006, ''))).toEqual({ statusCode: 200 });
  expect(relay.failed.length).toBeGreaterThan(0);
  expect(await item(source.connectionId)).toBeUndefined();
  expect(await gauge()).toBe(before);
});

it('a $connect whose put applied but never answered leaves neither an item nor a count', async () => {
  const before = await gauge();
  const source = awsSource('GaugePutC03Q=');
  relay.rule = ({ table, operation }) => (table === LOCAL_TABLES.connections && operation === 'PutItem' ? 'drop-answer' : 'pass');
  await expect(createConnectHandler(deps)(connectEvent(source))).rejects.toThrow();
  expect(relay.dropped.filter((operation) => operation === 'PutItem').length).toBeGreaterThan(0);
  expect(await item(source.connectionId)).toBeUndefined();
  expect(await gauge()).toBe(before);
});
