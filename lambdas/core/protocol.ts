/**
 * The one protocol module: Kafka record formats, client frames and server frames, as zod schemas
 * and the TypeScript types inferred from them. The Lambdas, the local runtime, the benchmarks and
 * the dashboard all import this file; nothing else defines a frame.
 *
 * See ../../../shared/DESIGN.md ("Kafka records", "Wire protocol").
 */
import * as z from 'zod';
import { parseJsonText } from './json-text';

/** Kafka topics the product reads. */
export const TOPICS = { deviceData: 'device-data', alerts: 'alerts' } as const;

/** Kinds of pushed records; also the values of a filter's `types`. */
export const RECORD_TYPES = ['device_data', 'alert'] as const;
export type RecordType = (typeof RECORD_TYPES)[number];

export const DEVICE_STATUSES = ['online', 'warning', 'error', 'offline'] as const;
export type DeviceStatus = (typeof DEVICE_STATUSES)[number];

export const ALERT_LEVELS = ['info', 'warning', 'critical'] as const;
export type AlertLevel = (typeof ALERT_LEVELS)[number];

/** An alert's life on the server: `open`, then `acknowledged` (the `ack` action), then `resolved`. */
export const ALERT_STATES = ['open', 'acknowledged', 'resolved'] as const;
export type AlertStateName = (typeof ALERT_STATES)[number];

/** Stable error codes of the `error` frame. */
export const ERROR_CODES = ['bad_request', 'unknown_action', 'forbidden', 'too_large', 'rate_limited'] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

/** Limits. Sizes are bytes of UTF-8 JSON. */
export const LIMITS = {
  /** API Gateway's WebSocket frame size: packed `batch` frames stay under it. */
  maxFrameBytes: 32 * 1024,
  /** API Gateway's WebSocket message size: larger client messages close the socket with 1009. */
  maxMessageBytes: 128 * 1024,
  /** The product's own limit for one client message; larger ones get `too_large`. */
  maxClientMessageBytes: 16 * 1024,
  /** Subscriptions one connection may hold at once. */
  maxSubscriptionsPerConnection: 20,
  /** Values in one filter field. */
  maxFilterValues: 100,
  /** Length of a subscription id. */
  maxSubscriptionIdLength: 64,
  /** Length of an id, type or location string in a filter or record. */
  maxNameLength: 128,
  /**
   * Messages a connection may send: a token bucket refilled at this rate per second, holding
   * {@link LIMITS.messageBurst}. A message over it gets `rate_limited`; the connection stays open.
   */
  messagesPerSecond: 10,
  /** Messages a connection may send at once before {@link LIMITS.messagesPerSecond} applies. */
  messageBurst: 40,
  /**
   * Subscription index writes a connection may cause per minute (one per index key of each
   * subscribe; a subscribe with 100 device ids costs 101), a token bucket holding one minute's worth.
   * A subscribe over it gets `rate_limited`.
   */
  indexWritesPerMinute: 600,
  /**
   * The recovery window of a `subscribe` with `resume`: records of the last this-many ms of a
   * partition, and of its last {@link LIMITS.resumeWindowRecords}, whichever is less.
   */
  resumeWindowMs: 2 * 60 * 1000,
  /** Records a partition keeps in the recovery window. */
  resumeWindowRecords: 10_000,
  /** Partitions one `resume` may name. */
  maxResumePartitions: 256,
} as const;

/** Epoch milliseconds, or an ISO-8601 string with an offset, normalised to epoch milliseconds. */
const timestampSchema = z
  .union([z.number().finite().nonnegative(), z.iso.datetime({ offset: true })])
  .transform((value) => (typeof value === 'number' ? Math.trunc(value) : Date.parse(value)));

const nameSchema = z.string().min(1).max(LIMITS.maxNameLength);

/** A `device-data` record, as devices publish it. */
export const deviceRecordSchema = z.object({
  deviceId: nameSchema,
  deviceType: nameSchema,
  location: nameSchema,
  timestamp: timestampSchema,
  status: z.enum(DEVICE_STATUSES),
  metrics: z.record(z.string().min(1).max(64), z.number().finite()),
});
export type DeviceRecord = z.output<typeof deviceRecordSchema>;

/** An `alerts` record. */
export const alertRecordSchema = z.object({
  alertId: nameSchema,
  deviceId: nameSchema,
  deviceType: nameSchema,
  location: nameSchema,
  level: z.enum(ALERT_LEVELS),
  message: z.string().max(1024),
  metric: z.string().min(1).max(64).optional(),
  value: z.number().finite().optional(),
  threshold: z.number().finite().optional(),
  timestamp: timestampSchema,
  /** The id of an earlier alert this one ends ("back to normal"). */
  resolves: nameSchema.optional(),
});
export type AlertRecord = z.output<typeof alertRecordSchema>;

/** A validated record with its kind, as the fan-out core sees it. */
export type StreamRecord =
  | { type: 'device_data'; data: DeviceRecord; cursor?: string }
  | { type: 'alert'; data: AlertRecord; cursor?: string };

/**
 * A subscription filter as a client sends it. Unknown fields are rejected, so that a typo such
 * as `deviceID` is reported instead of silently widening the subscription to everything.
 */
export const filterSchema = z
  .object({
    types: z.array(z.enum(RECORD_TYPES)).max(RECORD_TYPES.length * 2).optional(),
    deviceIds: z.array(nameSchema).max(LIMITS.maxFilterValues).optional(),
    deviceTypes: z.array(nameSchema).max(LIMITS.maxFilterValues).optional(),
    locations: z.array(nameSchema).max(LIMITS.maxFilterValues).optional(),
    alertLevels: z.array(z.enum(ALERT_LEVELS)).max(ALERT_LEVELS.length * 2).optional(),
    /** Sites to keep (`*`: all the connection may see); narrowed to the connection's own. */
    sites: z.array(nameSchema).max(LIMITS.maxFilterValues).optional(),
  })
  .strict();
export type Filter = z.input<typeof filterSchema>;

/** A filter with every field present, values sorted and unique, `types` defaulted to all. */
export interface NormalisedFilter {
  types: RecordType[];
  deviceIds: string[];
  deviceTypes: string[];
  locations: string[];
  alertLevels: AlertLevel[];
  /**
   * Sites the subscription sees: what it asked for, narrowed to the connection's sites (see
   * ./sites.ts); `['*']` only for a connection that may see every site.
   */
  sites: string[];
}

const subscriptionIdSchema = z
  .string()
  .min(1)
  .max(LIMITS.maxSubscriptionIdLength)
  .regex(/^[A-Za-z0-9_.:-]+$/, 'use letters, digits and _ . : - only');

/** The topics a cursor may name. */
const TOPIC_NAMES: readonly string[] = Object.values(TOPICS);

/** `topic:partition` of a product topic: the pattern keeps names such as `constructor` out. */
const PARTITION_NAME = /^([a-z][a-z0-9-]*):(0|[1-9][0-9]{0,5})$/;

/**
 * The last offset a client saw per `topic:partition` (see DESIGN.md "Resume"). A `Map`, because
 * the keys are client input.
 */
const resumeSchema = z
  .record(z.string(), z.number().int().min(0).max(Number.MAX_SAFE_INTEGER))
  .superRefine((cursors, ctx) => {
    const names = Object.keys(cursors);
    if (names.length > LIMITS.maxResumePartitions) {
      ctx.addIssue({ code: 'custom', message: `at most ${LIMITS.maxResumePartitions} partitions` });
      return;
    }
    const bad = names.find((name) => !TOPIC_NAMES.includes(PARTITION_NAME.exec(name)?.[1] ?? ''));
    if (bad !== undefined) {
      ctx.addIssue({ code: 'custom', message: `"${bad.slice(0, 64)}" is not "topic:partition" of ${TOPIC_NAMES.join(' or ')}` });
    }
  })
  .transform((cursors) => new Map(Object.entries(cursors)));
export type ResumeCursors = z.output<typeof resumeSchema>;

export const subscribeFrameSchema = z.object({
  action: z.literal('subscribe'),
  id: subscriptionIdSchema.optional(),
  filter: filterSchema.optional(),
  /** Replay what was published after these offsets, inside the recovery window. */
  resume: resumeSchema.optional(),
});
export const unsubscribeFrameSchema = z.object({
  action: z.literal('unsubscribe'),
  id: subscriptionIdSchema,
});
export const pingFrameSchema = z.object({ action: z.literal('ping') });
/** Acknowledges an alert for every operator who can see it; who = the connection's token subject. */
const ackFrameSchema = z.object({ action: z.literal('ack'), alertId: nameSchema });

/** Every frame a client may send, discriminated by `action`. */
export const clientFrameSchema = z.discriminatedUnion('action', [
  subscribeFrameSchema,
  unsubscribeFrameSchema,
  pingFrameSchema,
  ackFrameSchema,
]);
export type ClientFrame = z.output<typeof clientFrameSchema>;
/** A client frame as sent on the wire, before parsing (`resume` an object, not a `Map`). */
export type ClientFrameInput = z.input<typeof clientFrameSchema>;
export type SubscribeFrame = z.output<typeof subscribeFrameSchema>;
export type UnsubscribeFrame = z.output<typeof unsubscribeFrameSchema>;
export type AckFrame = z.output<typeof ackFrameSchema>;
export type ClientAction = ClientFrame['action'];
export const CLIENT_ACTIONS: readonly ClientAction[] = ['subscribe', 'unsubscribe', 'ping', 'ack'];

/**
 * An alert's state as the server keeps it: `by` is the acknowledging token subject, the resolving
 * alert's id, or `expiry`; `at` is when the state was entered (epoch ms).
 */
const alertStateInfoSchema = z.object({
  state: z.enum(ALERT_STATES),
  by: z.string().max(256).optional(),
  at: z.number(),
});
export type AlertStateInfo = z.output<typeof alertStateInfoSchema>;

/** Pushed record frames. `cursor` is `topic:partition:offset`, unique per Kafka record. */
const deviceDataFrameSchema = z.object({
  type: z.literal('device_data'),
  data: deviceRecordSchema,
  timestamp: z.number(),
  cursor: z.string().optional(),
});
export type DeviceDataFrame = z.output<typeof deviceDataFrameSchema>;
/** An alert record; inside a `snapshot` it carries the alert's current `state`. */
const alertFrameSchema = z.object({
  type: z.literal('alert'),
  data: alertRecordSchema,
  timestamp: z.number(),
  cursor: z.string().optional(),
  state: alertStateInfoSchema.optional(),
});
export type AlertFrame = z.output<typeof alertFrameSchema>;
const systemStatusFrameSchema = z.object({
  type: z.literal('system_status'),
  data: z.looseObject({ connections: z.number() }),
  timestamp: z.number(),
});
export type SystemStatusFrame = z.output<typeof systemStatusFrameSchema>;
/** A change of an alert's state, pushed to every connection whose subscriptions match the alert. */
const alertStateFrameSchema = z.object({
  type: z.literal('alert_state'),
  data: z.object({
    alertId: nameSchema,
    deviceId: nameSchema,
    location: nameSchema,
    level: z.enum(ALERT_LEVELS),
    ...alertStateInfoSchema.shape,
  }),
  timestamp: z.number(),
});
export type AlertStateFrame = z.output<typeof alertStateFrameSchema>;
export type AlertStateData = AlertStateFrame['data'];
const pushFrameSchema = z.discriminatedUnion('type', [
  deviceDataFrameSchema,
  alertFrameSchema,
  systemStatusFrameSchema,
  alertStateFrameSchema,
]);
/** A `batch` carries the frames of {@link pushFrameSchema}: records, status and alert states. */
const batchFrameSchema = z.object({ type: z.literal('batch'), messages: z.array(pushFrameSchema) });
/**
 * What a subscription matched when it was made: the latest reading of each matching device, then
 * the matching alerts that are not resolved, newest first. Several frames when one would pass
 * {@link LIMITS.maxFrameBytes}; the last has `final: true`.
 */
const snapshotFrameSchema = z.object({
  type: z.literal('snapshot'),
  id: z.string(),
  messages: z.array(z.discriminatedUnion('type', [deviceDataFrameSchema, alertFrameSchema])),
  final: z.boolean(),
});
export type SnapshotFrame = z.output<typeof snapshotFrameSchema>;
const normalisedFilterSchema = z.object({
  types: z.array(z.enum(RECORD_TYPES)),
  deviceIds: z.array(z.string()),
  deviceTypes: z.array(z.string()),
  locations: z.array(z.string()),
  alertLevels: z.array(z.enum(ALERT_LEVELS)),
  sites: z.array(z.string()),
}) satisfies z.ZodType<NormalisedFilter>;
const subscribedFrameSchema = z.object({ type: z.literal('subscribed'), id: z.string(), filter: normalisedFilterSchema });
export type SubscribedFrame = z.output<typeof subscribedFrameSchema>;
const unsubscribedFrameSchema = z.object({ type: z.literal('unsubscribed'), id: z.string() });
export type UnsubscribedFrame = z.output<typeof unsubscribedFrameSchema>;
/**
 * The end of a resume's replay: `replayed` records came before it. `tooFarBehind`: the cursors
 * were outside the recovery window, nothing was replayed and the snapshot follows.
 */
const resumedFrameSchema = z.object({
  type: z.literal('resumed'),
  id: z.string(),
  replayed: z.number().int().nonnegative(),
  tooFarBehind: z.literal(true).optional(),
});
export type ResumedFrame = z.output<typeof resumedFrameSchema>;
const ackedFrameSchema = z.object({ type: z.literal('acked'), alertId: z.string() });
export type AckedFrame = z.output<typeof ackedFrameSchema>;
const pongFrameSchema = z.object({ type: z.literal('pong'), timestamp: z.number() });
export type PongFrame = z.output<typeof pongFrameSchema>;
const errorFrameSchema = z.object({
  type: z.literal('error'),
  code: z.enum(ERROR_CODES),
  message: z.string(),
  /** The subscription id or action the error is about, when the request named one. */
  id: z.string().optional(),
});
export type ErrorFrame = z.output<typeof errorFrameSchema>;
/** Every frame the server sends, discriminated by `type`. */
const serverFrameSchema = z.discriminatedUnion('type', [
  ...pushFrameSchema.options,
  batchFrameSchema,
  snapshotFrameSchema,
  subscribedFrameSchema,
  unsubscribedFrameSchema,
  resumedFrameSchema,
  ackedFrameSchema,
  pongFrameSchema,
  errorFrameSchema,
]);
export type ServerFrame = z.output<typeof serverFrameSchema>;

/** Builds an error frame. */
export function errorFrame(code: ErrorCode, message: string, id?: string): ErrorFrame {
  return id === undefined ? { type: 'error', code, message } : { type: 'error', code, message, id };
}

/** Byte length of a string as UTF-8, without allocating (works in browsers and Node). */
export function utf8Length(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x80) bytes += 1;
    else if (code < 0x800) bytes += 2;
    else if (code >= 0xd800 && code <= 0xdbff && i + 1 < text.length) {
      bytes += 4;
      i++;
    } else bytes += 3;
  }
  return bytes;
}

function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 3)
    .map((issue) => `${issue.path.length ? issue.path.join('.') : 'frame'}: ${issue.message}`)
    .join('; ');
}

/** Result of parsing one client message. */
export type ParseResult = { ok: true; frame: ClientFrame } | { ok: false; error: ErrorFrame };

/**
 * Parses one client text message: size, JSON, action and shape, in that order, so that each
 * failure gets the error code the design names for it.
 */
export function parseClientFrame(body: string | null | undefined): ParseResult {
  const text = body ?? '';
  if (utf8Length(text) > LIMITS.maxClientMessageBytes) {
    return {
      ok: false,
      error: errorFrame('too_large', `message is larger than ${LIMITS.maxClientMessageBytes} bytes`),
    };
  }
  const parsedJson = parseJsonText(text);
  if (!parsedJson) return { ok: false, error: errorFrame('bad_request', 'message is not valid JSON') };
  const json = parsedJson.value;
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    return { ok: false, error: errorFrame('bad_request', 'message must be a JSON object with an "action"') };
  }
  const action = (json as { action?: unknown }).action;
  if (typeof action !== 'string') {
    return { ok: false, error: errorFrame('bad_request', 'message has no string "action"') };
  }
  if (!(CLIENT_ACTIONS as readonly string[]).includes(action)) {
    return {
      ok: false,
      error: errorFrame('unknown_action', `unknown action "${action.slice(0, 64)}"; use ${CLIENT_ACTIONS.join(', ')}`),
    };
  }
  const parsed = clientFrameSchema.safeParse(json);
  if (!parsed.success) {
    const id = (json as { id?: unknown }).id;
    return {
      ok: false,
      error: errorFrame('bad_request', describeIssues(parsed.error), typeof id === 'string' ? id.slice(0, 64) : undefined),
    };
  }
  return { ok: true, frame: parsed.data };
}

/** Validates a raw Kafka record value for its topic. */
export function parseRecord(
  topic: string,
  value: unknown,
): { ok: true; record: StreamRecord } | { ok: false; reason: string } {
  if (topic === TOPICS.deviceData) {
    const parsed = deviceRecordSchema.safeParse(value);
    return parsed.success
      ? { ok: true, record: { type: 'device_data', data: parsed.data } }
      : { ok: false, reason: describeIssues(parsed.error) };
  }
  if (topic === TOPICS.alerts) {
    const parsed = alertRecordSchema.safeParse(value);
    return parsed.success
      ? { ok: true, record: { type: 'alert', data: parsed.data } }
      : { ok: false, reason: describeIssues(parsed.error) };
  }
  return { ok: false, reason: `unknown topic "${topic}"` };
}

/** Builds the pushed frame for a record. */
export function recordFrame(record: StreamRecord, now: number): DeviceDataFrame | AlertFrame {
  const frame =
    record.type === 'device_data'
      ? ({ type: 'device_data', data: record.data, timestamp: now } as DeviceDataFrame)
      : ({ type: 'alert', data: record.data, timestamp: now } as AlertFrame);
  if (record.cursor !== undefined) frame.cursor = record.cursor;
  return frame;
}

/** Splits a frame that may be a `batch` into the frames it carries. */
export function unpackFrame(frame: ServerFrame): ServerFrame[] {
  return frame.type === 'batch' ? frame.messages : [frame];
}

/**
 * Parses and validates a server text frame against {@link serverFrameSchema}. Throws on text that
 * is not JSON or not a frame of this protocol, naming what is wrong.
 */
export function parseServerFrame(text: string): ServerFrame {
  const parsed = serverFrameSchema.safeParse(JSON.parse(text));
  if (!parsed.success) throw new Error(`not a server frame: ${describeIssues(parsed.error)}`);
  return parsed.data;
}
