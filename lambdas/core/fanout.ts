/**
 * Fan-out planning: which connections get which records, and the text frames each connection is
 * sent. Pure: no I/O.
 */
import { matchesFilter } from './filter';
import { LIMITS, utf8Length, type NormalisedFilter, type StreamRecord } from './protocol';

/** A subscription as the index returns it. */
export interface SubscriptionEntry {
  indexKey: string;
  connectionId: string;
  subscriptionId: string;
  filter: NormalisedFilter;
}

/**
 * Routes records to connections: for each record, the subscriptions stored under its index keys
 * are checked against the full filter, and each matching connection gets the record once, however
 * many of its subscriptions match. Records keep their batch order per connection.
 */
export function routeRecords(
  records: readonly StreamRecord[],
  keysOf: (record: StreamRecord) => readonly string[],
  index: ReadonlyMap<string, readonly SubscriptionEntry[]>,
): Map<string, StreamRecord[]> {
  const byConnection = new Map<string, StreamRecord[]>();
  const delivered = new Set<string>();
  for (const record of records) {
    delivered.clear();
    for (const key of keysOf(record)) {
      const entries = index.get(key);
      if (!entries) continue;
      for (const entry of entries) {
        if (delivered.has(entry.connectionId) || !matchesFilter(entry.filter, record)) continue;
        delivered.add(entry.connectionId);
        let list = byConnection.get(entry.connectionId);
        if (!list) byConnection.set(entry.connectionId, (list = []));
        list.push(record);
      }
    }
  }
  return byConnection;
}

const BATCH_OPEN = '{"type":"batch","messages":[';
const BATCH_CLOSE = ']}';

/**
 * Packs serialised frames for one connection into as few text messages as fit: one frame alone as
 * itself, several as `batch` frames each at most `maxBytes` (API Gateway's 32 KB frame size). A
 * single frame larger than `maxBytes` travels alone.
 */
export function packTexts(
  texts: readonly string[],
  maxBytes: number = LIMITS.maxFrameBytes,
  bytesOf: (text: string, index: number) => number = utf8Length,
): string[] {
  if (texts.length <= 1) return [...texts];
  const out: string[] = [];
  const overhead = BATCH_OPEN.length + BATCH_CLOSE.length;
  let parts: string[] = [];
  let size = overhead;
  const flush = () => {
    if (parts.length === 1) out.push(parts[0]);
    else if (parts.length > 1) out.push(BATCH_OPEN + parts.join(',') + BATCH_CLOSE);
    parts = [];
    size = overhead;
  };
  for (let i = 0; i < texts.length; i++) {
    const text = texts[i];
    const bytes = bytesOf(text, i);
    if (parts.length && size + 1 + bytes > maxBytes) flush();
    size += bytes + (parts.length ? 1 : 0);
    parts.push(text);
  }
  flush();
  return out;
}

/** Each record's `data` as JSON, kept while the record is: replays send one record to many clients. */
const dataJson = new WeakMap<StreamRecord, string>();

/**
 * The text of protocol.ts `recordFrame`: the same JSON, with the record's data serialised once however
 * many frames carry it.
 */
export function frameText(record: StreamRecord, now: number): string {
  let data = dataJson.get(record);
  if (data === undefined) dataJson.set(record, (data = JSON.stringify(record.data)));
  const cursor = record.cursor === undefined ? '' : `,"cursor":${JSON.stringify(record.cursor)}`;
  return `{"type":"${record.type}","data":${data},"timestamp":${JSON.stringify(now)}${cursor}}`;
}

/**
 * A builder of one connection's messages for a batch. It serialises and measures each record's
 * frame once, however many connections get the record, and packs a connection's messages only
 * when asked, so that a batch holds at most the messages being posted, not all of them.
 */
export function createMessageBuilder(
  now: number,
  maxBytes: number = LIMITS.maxFrameBytes,
): (records: readonly StreamRecord[]) => string[] {
  const serialised = new Map<StreamRecord, { text: string; bytes: number }>();
  return (records) => {
    const frames = records.map((record) => {
      let frame = serialised.get(record);
      if (frame === undefined) {
        const text = frameText(record, now);
        serialised.set(record, (frame = { text, bytes: utf8Length(text) }));
      }
      return frame;
    });
    return packTexts(
      frames.map((f) => f.text),
      maxBytes,
      (_text, i) => frames[i].bytes,
    );
  };
}

/** The messages to post to each connection for the routed records. */
export function buildMessages(
  routed: ReadonlyMap<string, readonly StreamRecord[]>,
  now: number,
  maxBytes: number = LIMITS.maxFrameBytes,
): Map<string, string[]> {
  const build = createMessageBuilder(now, maxBytes);
  return new Map([...routed].map(([connectionId, records]) => [connectionId, build(records)]));
}

const recordIds = new WeakMap<StreamRecord, number>();
let nextRecordId = 0;

/**
 * A key naming a list of records by identity: two lists of the same record objects in the same
 * order have the same key, so their messages are byte-identical and are built once.
 */
export function recordSetKey(records: readonly StreamRecord[]): string {
  let key = '';
  for (const record of records) {
    let id = recordIds.get(record);
    if (id === undefined) recordIds.set(record, (id = nextRecordId++));
    key += key ? ',' + id : String(id);
  }
  return key;
}

/** Connections that get the same records in a batch, and so the same messages. */
export interface Audience {
  records: readonly StreamRecord[];
  connectionIds: string[];
}

/** Groups connections by the records they get, in order of first appearance. */
export function groupByRecords(routed: ReadonlyMap<string, readonly StreamRecord[]>): Audience[] {
  const groups = new Map<string, Audience>();
  for (const [connectionId, records] of routed) {
    const key = recordSetKey(records);
    const group = groups.get(key);
    if (group) group.connectionIds.push(connectionId);
    else groups.set(key, { records, connectionIds: [connectionId] });
  }
  return [...groups.values()];
}
