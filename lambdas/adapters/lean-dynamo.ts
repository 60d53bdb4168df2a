/**
 * The lean DynamoDB path: the document client's hot calls as SigV4-signed JSON requests over
 * undici's pool of keep-alive connections, without the SDK's middleware stack, which under a
 * burst of connects took about 40 % of the local runtime's CPU (0.3-0.7 ms per call). It is
 * `SignedPoster`'s approach applied to DynamoDB: the same signer (sigv4.ts), credentials resolved
 * once and refreshed before they expire, and endpoint, region and credentials all taken from a
 * `DynamoDBClient`, so `AWS_ENDPOINT_URL_DYNAMODB`, `AWS_ENDPOINT_URL` and the Lambda role behave
 * as they do for the SDK.
 *
 * Inputs and outputs are those of `@aws-sdk/lib-dynamodb`'s commands, marshalled as that library
 * does (each top-level attribute on its own, with `@aws-sdk/util-dynamodb`), so an adapter gets
 * the same objects either way; test/integration/lean-dynamo.test.ts holds the two side by side.
 */
import { createHash } from 'node:crypto';
import { ConditionalCheckFailedException, type AttributeValue, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  BatchGetCommand,
  DeleteCommand,
  GetCommand,
  PutCommand,
  QueryCommand,
  ScanCommand,
  UpdateCommand,
  type BatchGetCommandOutput,
  type DeleteCommandOutput,
  type GetCommandOutput,
  type PutCommandOutput,
  type QueryCommandOutput,
  type ScanCommandOutput,
  type UpdateCommandOutput,
} from '@aws-sdk/lib-dynamodb';
import { marshall, unmarshall, type marshallOptions } from '@aws-sdk/util-dynamodb';
import { Pool } from 'undici';
import { backoffDelay } from '../core/backoff';
import { sleep } from '../core/concurrency';
import { AppError } from '../core/errors';
import { SignedEndpoint } from './signed-http';

/** The document-client commands {@link LeanDocumentClient} sends. */
type LeanCommand = GetCommand | PutCommand | UpdateCommand | DeleteCommand | BatchGetCommand | QueryCommand | ScanCommand;

/**
 * What an adapter needs of a document client: `send` for the commands the lean client takes.
 * Both `DynamoDBDocumentClient` and {@link LeanDocumentClient} are one, so an adapter whose
 * constructor takes a `DocumentSender` runs on either.
 */
export interface DocumentSender {
  send(command: GetCommand): Promise<GetCommandOutput>;
  send(command: PutCommand): Promise<PutCommandOutput>;
  send(command: UpdateCommand): Promise<UpdateCommandOutput>;
  send(command: DeleteCommand): Promise<DeleteCommandOutput>;
  send(command: BatchGetCommand): Promise<BatchGetCommandOutput>;
  send(command: QueryCommand): Promise<QueryCommandOutput>;
  send(command: ScanCommand): Promise<ScanCommandOutput>;
}

/** Options of {@link LeanDocumentClient}. */
export interface LeanDocumentClientOptions {
  /** Connections to DynamoDB; at least the calls in flight. Default 64, as `createDocumentClient`'s agent. */
  maxSockets?: number;
  /** Time a request may wait for its response or body, ms. Default 10000, as `createDocumentClient`'s `requestTimeout`. */
  timeoutMs?: number;
  /** Attempts per call, the first included. Default 3, as the SDK's standard retry strategy. */
  maxAttempts?: number;
  /** Backoff base of a retry after a 5xx or a socket error, ms. Default 100, as the SDK's. */
  baseDelayMs?: number;
  /** Backoff base of a retry after throttling, ms. Default 500, as the SDK's. */
  throttledBaseDelayMs?: number;
  /** Backoff cap, ms. Default 20000, as the SDK's. */
  maxDelayMs?: number;
  /** The signing clock. Default `Date.now`. */
  now?: () => number;
}

/** The document client's marshalling, as `createDocumentClient` configures it. */
const MARSHALL_OPTIONS: marshallOptions = {
  removeUndefinedValues: true,
  convertEmptyValues: false,
  // lib-dynamodb sets this for every value it marshalls: a map or list stays wrapped in M or L.
  convertTopLevelContainer: true,
};
/** lib-dynamodb unmarshalls each attribute value on its own, without a map around it. */
const UNMARSHALL_OPTIONS = { convertWithoutMapWrapper: true } as const;
const TARGET_PREFIX = 'DynamoDB_20120810.';
/** The SDK's throttling error codes that DynamoDB returns (`@smithy/core` retry). */
const THROTTLING = new Set(['ProvisionedThroughputExceededException', 'ThrottlingException', 'RequestLimitExceeded', 'TooManyRequestsException']);
const TRANSIENT_STATUS = new Set([500, 502, 503, 504]);
/** Transport errors raised before the request left this process: retrying them never repeats a write. */
const NOT_SENT = new Set(['ECONNREFUSED', 'UND_ERR_CONNECT_TIMEOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);
/** Transport errors of a pool this client closed: final, not transient. */
const CLOSED = new Set(['UND_ERR_DESTROYED', 'UND_ERR_CLOSED']);

type Credentials = Awaited<ReturnType<DynamoDBClient['config']['credentials']>>;
type Item = Record<string, unknown>;
type Marshalled = Record<string, AttributeValue>;
type Output = Record<string, unknown> & { $metadata: Record<string, unknown> };

/** One call as sent on the wire: the operation, its JSON input, and how its output is read. */
interface WireCall {
  operation: string;
  input: Record<string, unknown>;
  read: (raw: Record<string, unknown>, binary: boolean) => Record<string, unknown>;
  /** An UpdateItem that adds to a number or set: applying it twice is not the same as once. */
  notIdempotent: boolean;
}


/**
 * An error DynamoDB returned other than ConditionalCheckFailedException: `name` is the code after
 * the `#` of its `__type` (`ValidationException`, `ResourceNotFoundException`, ...), as the SDK's
 * exceptions have, and the message is the server's.
 */
class DynamoDBServiceError extends AppError {
  readonly $fault: 'client' | 'server';

  constructor(
    code: string,
    message: string,
    readonly $metadata: Record<string, unknown>,
  ) {
    super(message);
    this.name = code;
    this.$fault = Number($metadata.httpStatusCode) >= 500 ? 'server' : 'client';
  }
}

/**
 * Each top-level attribute marshalled on its own and assigned, as lib-dynamodb does. There an
 * attribute named `__proto__` becomes the record's prototype, which is never sent: it is skipped
 * here, both ways, so it goes missing as it does through the SDK.
 */
function marshallRecord(record: Item | undefined): Marshalled | undefined {
  if (record === undefined) return undefined;
  const out: Marshalled = {};
  for (const [name, value] of Object.entries(record)) {
    if (value === undefined || typeof value === 'function' || name === '__proto__') continue;
    out[name] = marshall(value, MARSHALL_OPTIONS) as AttributeValue;
  }
  return out;
}

function unmarshallRecord(record: unknown, binary: boolean): Item | undefined {
  if (record === undefined || record === null) return undefined;
  const out: Item = {};
  for (const [name, value] of Object.entries(record as Marshalled)) {
    if (name === '__proto__') continue;
    out[name] = unmarshall(binary ? decodeBinary(value) : value, UNMARSHALL_OPTIONS);
  }
  return out;
}

const unmarshallItems = (items: unknown, binary: boolean) => (items as unknown[] | undefined)?.map((item) => unmarshallRecord(item, binary)!);

/** The legacy `Expected`, `KeyConditions`, `QueryFilter` and `ScanFilter` conditions, marshalled as lib-dynamodb does. */
function marshallConditions(conditions: unknown): unknown {
  if (conditions === undefined) return undefined;
  return Object.fromEntries(
    Object.entries(conditions as Record<string, { Value?: unknown; AttributeValueList?: unknown[] }>).map(([name, condition]) => [
      name,
      {
        ...condition,
        Value: condition.Value === undefined ? undefined : marshall(condition.Value, MARSHALL_OPTIONS),
        AttributeValueList: condition.AttributeValueList?.map((value) => marshall(value, MARSHALL_OPTIONS)),
      },
    ]),
  );
}

/** The wire carries binary as base64; the SDK hands it back as a Uint8Array. */
function decodeBinary(value: AttributeValue): AttributeValue {
  if (value.B !== undefined) return { B: fromBase64(value.B as unknown as string) };
  if (value.BS !== undefined) return { BS: (value.BS as unknown as string[]).map(fromBase64) };
  if (value.L !== undefined) return { L: value.L.map(decodeBinary) };
  if (value.M !== undefined) {
    const map: Marshalled = {};
    for (const [name, member] of Object.entries(value.M)) map[name] = decodeBinary(member);
    return { M: map };
  }
  return value;
}

function fromBase64(text: string): Uint8Array {
  const buffer = Buffer.from(text, 'base64');
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
}

/**
 * JSON for the wire: binary values become base64, as the SDK's serializer writes them. A nested
 * map key `__proto__` is refused: marshalling assigns keys, so it became the map's prototype
 * instead of a member, and the SDK sends that map malformed, which DynamoDB rejects with a
 * ValidationException; refusing it here gives the same error instead of silently dropping the key.
 * (Reading one back needs nothing: unmarshalling turns it into a prototype for both clients.)
 */
function toWireJson(input: Record<string, unknown>): string {
  return JSON.stringify(input, function (this: Record<string, unknown>, key, value: unknown) {
    // Read from the holder: a Buffer's toJSON has already replaced `value` by then.
    const raw = this[key];
    if (typeof raw !== 'object' || raw === null) return value;
    if (ArrayBuffer.isView(raw)) return Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('base64');
    if (raw instanceof ArrayBuffer) return Buffer.from(raw).toString('base64');
    const prototype = Object.getPrototypeOf(raw) as unknown;
    if (prototype !== Object.prototype && prototype !== Array.prototype && prototype !== null) {
      throw new DynamoDBServiceError('ValidationException', `a map key named __proto__ cannot be sent (under "${key}"): the SDK sends it malformed`, {});
    }
    return value;
  });
}

/** Whether an UpdateItem adds to an attribute: an `ADD` clause, or the legacy `Action: ADD`. */
function addsTo(input: UpdateCommand['input']): boolean {
  // Not after `:` or `#`, which make `:add` and `#add` placeholders rather than the clause.
  if (input.UpdateExpression && /(?:^|[^\w:#])ADD\s/i.test(input.UpdateExpression)) return true;
  return Object.values(input.AttributeUpdates ?? {}).some((update) => update?.Action === 'ADD');
}

/** The wire form of a document-client command, or an error naming a command it does not take. */
function toWire(command: LeanCommand): WireCall {
  if (command instanceof GetCommand) {
    const { input } = command;
    return {
      operation: 'GetItem',
      input: { ...input, Key: marshallRecord(input.Key) },
      read: (raw, binary) => ({ ...raw, Item: unmarshallRecord(raw.Item, binary) }),
      notIdempotent: false,
    };
  }
  if (command instanceof PutCommand) {
    const { input } = command;
    return {
      operation: 'PutItem',
      input: {
        ...input,
        Item: marshallRecord(input.Item),
        Expected: marshallConditions(input.Expected),
        ExpressionAttributeValues: marshallRecord(input.ExpressionAttributeValues),
      },
      read: readWriteOutput,
      notIdempotent: false,
    };
  }
  if (command instanceof UpdateCommand) {
    const { input } = command;
    return {
      operation: 'UpdateItem',
      input: {
        ...input,
        Key: marshallRecord(input.Key),
        AttributeUpdates: marshallConditions(input.AttributeUpdates),
        Expected: marshallConditions(input.Expected),
        ExpressionAttributeValues: marshallRecord(input.ExpressionAttributeValues),
      },
      read: readWriteOutput,
      notIdempotent: addsTo(input),
    };
  }
  if (command instanceof DeleteCommand) {
    const { input } = command;
    return {
      operation: 'DeleteItem',
      input: {
        ...input,
        Key: marshallRecord(input.Key),
        Expected: marshallConditions(input.Expected),
        ExpressionAttributeValues: marshallRecord(input.ExpressionAttributeValues),
      },
      read: readWriteOutput,
      notIdempotent: false,
    };
  }
  if (command instanceof BatchGetCommand) {
    const { input } = command;
    const requestItems: Record<string, unknown> = {};
    for (const [table, request] of Object.entries(input.RequestItems ?? {})) {
      requestItems[table] = { ...request, Keys: request.Keys?.map((key) => marshallRecord(key)) };
    }
    return {
      operation: 'BatchGetItem',
      input: { ...input, RequestItems: input.RequestItems && requestItems },
      read: readBatchGetOutput,
      notIdempotent: false,
    };
  }
  if (command instanceof QueryCommand || command instanceof ScanCommand) {
    const input: QueryCommand['input'] & ScanCommand['input'] = command.input;
    return {
      operation: command instanceof QueryCommand ? 'Query' : 'Scan',
      input: {
        ...input,
        KeyConditions: marshallConditions(input.KeyConditions),
        QueryFilter: marshallConditions(input.QueryFilter),
        ScanFilter: marshallConditions(input.ScanFilter),
        ExclusiveStartKey: marshallRecord(input.ExclusiveStartKey),
        ExpressionAttributeValues: marshallRecord(input.ExpressionAttributeValues),
      },
      read: (raw, binary) => ({
        ...raw,
        Items: unmarshallItems(raw.Items, binary),
        LastEvaluatedKey: unmarshallRecord(raw.LastEvaluatedKey, binary),
      }),
      notIdempotent: false,
    };
  }
  const name = (command as object | undefined)?.constructor?.name ?? typeof command;
  throw new TypeError(
    `LeanDocumentClient does not take ${name}: it sends GetCommand, PutCommand, UpdateCommand, DeleteCommand, ` +
      'BatchGetCommand, QueryCommand and ScanCommand; send others through the SDK document client',
  );
}

function readWriteOutput(raw: Record<string, unknown>, binary: boolean): Record<string, unknown> {
  const metrics = raw.ItemCollectionMetrics as { ItemCollectionKey?: unknown } | undefined;
  return {
    ...raw,
    Attributes: unmarshallRecord(raw.Attributes, binary),
    ItemCollectionMetrics: metrics && { ...metrics, ItemCollectionKey: unmarshallRecord(metrics.ItemCollectionKey, binary) },
  };
}

function readBatchGetOutput(raw: Record<string, unknown>, binary: boolean): Record<string, unknown> {
  const responses = raw.Responses as Record<string, unknown[]> | undefined;
  const unprocessed = raw.UnprocessedKeys as Record<string, { Keys?: unknown[] }> | undefined;
  return {
    ...raw,
    Responses: responses && Object.fromEntries(Object.entries(responses).map(([table, items]) => [table, unmarshallItems(items, binary)])),
    UnprocessedKeys:
      unprocessed &&
      Object.fromEntries(Object.entries(unprocessed).map(([table, keys]) => [table, { ...keys, Keys: unmarshallItems(keys.Keys, binary) }])),
  };
}

/** Drops the keys the marshalling left undefined, so an output has the keys the SDK's has. */
function compact<T extends Record<string, unknown>>(object: T): T {
  for (const key of Object.keys(object)) if (object[key] === undefined) delete object[key];
  return object;
}

/** The error code of a DynamoDB error response: the header's, else the body's `__type`, after its `#`. */
function errorCode(header: unknown, body: Record<string, unknown>): string {
  const raw = String(header ?? '') || String(body.__type ?? body.code ?? '');
  const code = raw.split(':')[0];
  return code.slice(code.indexOf('#') + 1);
}

/** A failure of the request itself (socket, timeout), with whether it may have reached DynamoDB. */
class TransportError extends AppError {
  override name = 'TransportError';

  constructor(
    cause: unknown,
    readonly sent: boolean,
    readonly final: boolean,
  ) {
    super(cause instanceof Error ? cause.message : String(cause), { cause });
  }
}

/**
 * A drop-in for the part of `DynamoDBDocumentClient` the adapters use ({@link DocumentSender}):
 * GetItem, PutItem, UpdateItem, DeleteItem, BatchGetItem, Query and Scan over signed HTTP
 * requests. Outputs and errors are the document client's: unmarshalled items,
 * `ConditionalCheckFailedException` from `@aws-sdk/client-dynamodb`, other errors named by their
 * code. Retries are the SDK standard strategy's (throttling, 5xx and socket errors, full jitter,
 * 3 attempts), except for an UpdateItem with ADD once it may have reached DynamoDB.
 */
export class LeanDocumentClient implements DocumentSender {
  /** Requests sent, retries included. */
  calls = 0;
  private readonly maxSockets: number;
  private readonly timeoutMs: number;
  private readonly maxAttempts: number;
  private readonly baseDelayMs: number;
  private readonly throttledBaseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly now: () => number;
  private readonly endpoint: SignedEndpoint;

  /**
   * @param client a DynamoDB client, read for its endpoint, region and credentials only; the
   *   calls this client does not take stay on it (or on a document client over it).
   */
  constructor(
    private readonly client: DynamoDBClient,
    options: LeanDocumentClientOptions = {},
  ) {
    this.maxSockets = options.maxSockets ?? 64;
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.maxAttempts = options.maxAttempts ?? 3;
    this.baseDelayMs = options.baseDelayMs ?? 100;
    this.throttledBaseDelayMs = options.throttledBaseDelayMs ?? 500;
    this.maxDelayMs = options.maxDelayMs ?? 20_000;
    this.now = options.now ?? Date.now;
    this.endpoint = new SignedEndpoint({
      service: 'dynamodb',
      maxSockets: this.maxSockets,
      timeoutMs: this.timeoutMs,
      now: this.now,
      credentials: () => client.config.credentials(),
      region: () => client.config.region(),
      endpoint: (region, credentials) => this.resolveEndpoint(region, credentials),
    });
  }

  send(command: GetCommand): Promise<GetCommandOutput>;
  send(command: PutCommand): Promise<PutCommandOutput>;
  send(command: UpdateCommand): Promise<UpdateCommandOutput>;
  send(command: DeleteCommand): Promise<DeleteCommandOutput>;
  send(command: BatchGetCommand): Promise<BatchGetCommandOutput>;
  send(command: QueryCommand): Promise<QueryCommandOutput>;
  send(command: ScanCommand): Promise<ScanCommandOutput>;
  async send(command: LeanCommand): Promise<Output> {
    const call = toWire(command);
    const tables = call.input.TableName ?? Object.keys((call.input.RequestItems as object | undefined) ?? {}).join(',');
    if (String(tables).includes('arn:')) {
      // The SDK picks the endpoint of a table ARN's account per call; this client has one endpoint.
      throw new TypeError(`LeanDocumentClient takes table names, not ARNs (${String(tables)}): use the SDK document client`);
    }
    const body = Buffer.from(toWireJson(call.input), 'utf8');
    const hash = createHash('sha256').update(body).digest('hex');
    let totalRetryDelay = 0;
    for (let attempt = 1; ; attempt++) {
      let delayBase: number;
      try {
        this.calls++;
        const { status, requestId, errorType, text } = await this.request(call.operation, body, hash);
        const $metadata = { httpStatusCode: status, requestId, attempts: attempt, totalRetryDelay };
        const parsed = text ? (JSON.parse(text) as Record<string, unknown>) : {};
        if (status < 300) {
          // Binary values are rare: only a body that may hold one is walked to decode them.
          return { $metadata, ...compact(call.read(parsed, text.includes('"B'))) };
        }
        const error = this.errorOf(status, errorType, parsed, $metadata);
        if (attempt >= this.maxAttempts) throw error;
        if (THROTTLING.has(error.name) || status === 429) delayBase = this.throttledBaseDelayMs;
        else if (TRANSIENT_STATUS.has(status)) delayBase = this.baseDelayMs;
        else throw error;
      } catch (error) {
        if (!(error instanceof TransportError)) throw error;
        const cause = error.cause;
        if (error.final || attempt >= this.maxAttempts) throw cause;
        // An ADD that reached DynamoDB and then lost its response may have been applied: a
        // retry would add twice. Only a request that never left (connection refused, connect
        // timeout) is retried; the caller sees the error and decides, as with any lost write.
        if (call.notIdempotent && error.sent) throw cause;
        delayBase = this.baseDelayMs;
      }
      const delay = backoffDelay(attempt, { baseMs: delayBase, capMs: this.maxDelayMs });
      totalRetryDelay += delay;
      await sleep(delay);
    }
  }

  /** Closes the pooled sockets. */
  async destroy(): Promise<void> {
    await this.endpoint.destroy();
  }

  private errorOf(status: number, errorType: unknown, body: Record<string, unknown>, $metadata: Record<string, unknown>): Error {
    const code = errorCode(errorType, body) || `HTTP ${status}`;
    const message = String(body.message ?? body.Message ?? '') || code;
    if (code === 'ConditionalCheckFailedException') {
      // As the SDK's: `Item` (with ReturnValuesOnConditionCheckFailure) stays in its wire form,
      // since lib-dynamodb unmarshalls outputs, not errors.
      const item = body.Item as Marshalled | undefined;
      return new ConditionalCheckFailedException({ message, $metadata, ...(item ? { Item: item } : {}) });
    }
    return new DynamoDBServiceError(code, message, $metadata);
  }

  private async request(
    operation: string,
    body: Buffer,
    hash: string,
  ): Promise<{ status: number; requestId: string | undefined; errorType: unknown; text: string }> {
    const { target, signer } = await this.endpoint.get();
    const headers = await this.endpoint.signPost(target, signer, target.path, {
      'content-type': 'application/x-amz-json-1.0',
      'content-length': String(body.length),
      'x-amz-target': TARGET_PREFIX + operation,
      // Hashed here, once per call; the signer takes a hash it is given instead of hashing again.
      'x-amz-content-sha256': hash,
    });
    let res: Awaited<ReturnType<Pool['request']>>;
    try {
      res = await target.pool.request({ method: 'POST', path: target.path, headers, body });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? '';
      throw new TransportError(error, !NOT_SENT.has(code), CLOSED.has(code));
    }
    try {
      const text = await res.body.text();
      const requestId = res.headers['x-amzn-requestid'];
      return {
        status: res.statusCode,
        requestId: typeof requestId === 'string' ? requestId : undefined,
        errorType: res.headers['x-amzn-errortype'],
        text,
      };
    } catch (error) {
      // The response had begun: the request certainly arrived.
      throw new TransportError(error, true, false);
    }
  }

  /**
   * The endpoint the SDK would use: the client's `endpoint`, else `AWS_ENDPOINT_URL_DYNAMODB` /
   * `AWS_ENDPOINT_URL` (or the shared config file's), else the client's endpoint rules for the
   * region, which on AWS give the account's endpoint when the credentials name the account.
   */
  private async resolveEndpoint(region: string, credentialsNow: () => Promise<Credentials>): Promise<URL> {
    const config = this.client.config;
    const custom = await config.endpoint?.();
    if (custom) {
      const port = custom.port ? `:${custom.port}` : '';
      return new URL(`${custom.protocol}//${custom.hostname}${port}${custom.path ?? '/'}`);
    }
    // Resolved by the SDK's endpoint middleware per call, so not on the config's typed surface.
    const configured = await (config as unknown as { serviceConfiguredEndpoint?: () => Promise<string | undefined> }).serviceConfiguredEndpoint?.();
    if (configured) return new URL(configured);
    const credentials = await credentialsNow();
    const { url } = config.endpointProvider({
      Region: region,
      UseFIPS: await config.useFipsEndpoint(),
      UseDualStack: await config.useDualstackEndpoint(),
      AccountId: credentials.accountId,
      AccountIdEndpointMode: await config.accountIdEndpointMode?.(),
    });
    return url;
  }
}
