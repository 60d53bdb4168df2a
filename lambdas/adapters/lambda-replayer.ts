/**
 * A {@link Replayer} that invokes the replay reader function (../handlers/replay.ts) synchronously:
 * the subscribe route runs outside the brokers' VPC, the reader inside it. This module owns the
 * wire format between the two, both ways.
 *
 * The reader's answer is the {@link ReplayResult} as JSON, gzip-compressed and base64-encoded: a
 * synchronous Lambda response holds at most 6 MB, and a full window (10,000 records a partition)
 * is about 230 bytes a record as JSON but about 20 once compressed, so six partitions' full windows
 * (60,000 records, 13.8 MB of JSON) answer in about 1.2 MB. A replay that would still pass the
 * limit is answered as too far behind (the snapshot follows), never as a failed invocation.
 */
import { gunzipSync, gzipSync } from 'node:zlib';
import { InvokeCommand, type LambdaClient } from '@aws-sdk/client-lambda';
import { AppError, errorMessage } from '../core/errors';
import type { NormalisedFilter } from '../core/protocol';
import type { ReplayRequest, ReplayResult, Replayer } from '../core/replay';

/** What the subscribe route sends the reader: the request, with the cursors as a plain object. */
export interface ReplayEvent {
  filter: NormalisedFilter;
  resume: Record<string, number>;
}

/** What the reader answers: the {@link ReplayResult}'s JSON, gzip-compressed, in base64. */
export interface ReplayResponse {
  encoding: 'gzip';
  body: string;
}

/** A synchronous Lambda response holds at most this many bytes (6 MB). */
export const MAX_RESPONSE_BYTES = 6 * 1024 * 1024;

/** Room kept under {@link MAX_RESPONSE_BYTES} for the response's JSON around the body. */
const ENVELOPE_BYTES = 1024;

/** The invocation failed, or its answer could not be read; `cause` is the SDK's error when there is one. */
export class ReplayInvokeError extends AppError {
  override name = 'ReplayInvokeError';
}

/** The event for a request: the cursors' `Map` as an object (the keys are checked `topic:partition` names). */
export function toReplayEvent(request: ReplayRequest): ReplayEvent {
  return { filter: request.filter, resume: Object.fromEntries(request.resume) };
}

/** The request an event carries; throws on an event that is not one (the reader is invoked by the stack only). */
export function fromReplayEvent(event: unknown): ReplayRequest {
  const { filter, resume } = (event ?? {}) as Partial<ReplayEvent>;
  if (!filter || typeof filter !== 'object' || !Array.isArray(filter.types)) {
    throw new ReplayInvokeError('the replay event has no normalised filter');
  }
  if (!resume || typeof resume !== 'object' || Array.isArray(resume)) throw new ReplayInvokeError('the replay event has no resume cursors');
  const cursors = new Map<string, number>();
  for (const [name, offset] of Object.entries(resume)) {
    if (!Number.isSafeInteger(offset) || offset < 0) throw new ReplayInvokeError(`the replay event's cursor ${name} is not an offset`);
    cursors.set(name, offset);
  }
  return { filter, resume: cursors };
}

/**
 * The response for a result, and the result it carries: a replay too large for a Lambda response
 * becomes too far behind, with a reason that says by how much.
 */
export function encodeReplayResponse(result: ReplayResult, maxBytes = MAX_RESPONSE_BYTES): { response: ReplayResponse; sent: ReplayResult } {
  const body = gzipSync(JSON.stringify(result)).toString('base64');
  if (body.length + ENVELOPE_BYTES <= maxBytes) return { response: { encoding: 'gzip', body }, sent: result };
  const records = result.tooFarBehind ? 0 : result.records.length;
  const reason =
    `the replay of ${records} records is ${(body.length / 1e6).toFixed(1)} MB compressed, ` +
    `over a Lambda response's ${(maxBytes / 1e6).toFixed(1)} MB`;
  return encodeReplayResponse({ tooFarBehind: true, reason }, maxBytes);
}

/** The result a response carries. */
export function decodeReplayResponse(response: unknown): ReplayResult {
  const { encoding, body } = (response ?? {}) as Partial<ReplayResponse>;
  if (encoding !== 'gzip' || typeof body !== 'string') {
    throw new ReplayInvokeError(`the replay reader answered something else than a replay: ${JSON.stringify(response)?.slice(0, 200)}`);
  }
  const result = JSON.parse(gunzipSync(Buffer.from(body, 'base64')).toString('utf8')) as ReplayResult;
  if (typeof result?.tooFarBehind !== 'boolean' || (!result.tooFarBehind && !Array.isArray(result.records))) {
    throw new ReplayInvokeError('the replay reader answered a result of another shape');
  }
  return result;
}

/** The error message in a failed invocation's payload (`{"errorType","errorMessage"}` as Lambda writes it). */
function functionErrorOf(functionError: string, payload: Uint8Array | undefined): string {
  const text = payload ? Buffer.from(payload).toString('utf8') : '';
  try {
    const parsed = JSON.parse(text) as { errorType?: string; errorMessage?: string };
    return `${parsed.errorType ?? functionError}: ${parsed.errorMessage ?? text}`;
  } catch {
    return `${functionError}: ${text.slice(0, 500)}`;
  }
}

/**
 * A {@link Replayer} over a synchronous Invoke of `functionName`. A function error (the reader
 * threw, timed out or ran out of memory) or an unreadable answer rejects with a
 * {@link ReplayInvokeError}; the core then answers the resume as too far behind, with the snapshot.
 */
export function createLambdaReplayer(client: LambdaClient, functionName: string): Replayer {
  return async (request) => {
    let out;
    try {
      out = await client.send(
        new InvokeCommand({ FunctionName: functionName, InvocationType: 'RequestResponse', Payload: JSON.stringify(toReplayEvent(request)) }),
      );
    } catch (error) {
      throw new ReplayInvokeError(`could not invoke the replay reader ${functionName}: ${errorMessage(error)}`, { cause: error });
    }
    if (out.FunctionError) {
      throw new ReplayInvokeError(`the replay reader ${functionName} failed: ${functionErrorOf(out.FunctionError, out.Payload)}`);
    }
    try {
      return decodeReplayResponse(JSON.parse(Buffer.from(out.Payload ?? []).toString('utf8')));
    } catch (error) {
      if (error instanceof ReplayInvokeError) throw error;
      throw new ReplayInvokeError(`could not read the replay reader's answer: ${errorMessage(error)}`, { cause: error });
    }
  };
}
