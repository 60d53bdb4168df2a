/**
 * The replay reader: the one function in the brokers' VPC. The subscribe route invokes it for a
 * `subscribe` with `resume` (../adapters/lambda-replayer.ts); it reads what the subscription
 * missed from Kafka (../core/replay.ts) and answers the result compressed, under a Lambda
 * response's 6 MB. A failure (brokers unreachable, a read past its deadline) is a function error,
 * which the subscribe route answers as too far behind, with the snapshot.
 */
import { DecodedRecords, replayAfter } from '../core/replay';
import type { Log, RecordLog } from '../core/ports';
import { encodeReplayResponse, fromReplayEvent, type ReplayResponse } from '../adapters/lambda-replayer';
import { defaultLogger, defaultRecordLog, lazy } from './defaults';

/** Dependencies of the replay reader. */
export interface ReplayHandlerDeps {
  /** The log to read, kept across invocations of a container (resolved per invocation: a rotated secret may replace it). */
  recordLog: () => Promise<RecordLog>;
  log: Log;
  /** Records decoded by earlier invocations of the container. Default: a new cache. */
  cache?: DecodedRecords;
  /** Clock, epoch ms. Default `Date.now`. */
  now?: () => number;
}

/** Builds the replay reader's handler. */
export function createReplayHandler(deps: ReplayHandlerDeps) {
  const cache = deps.cache ?? new DecodedRecords();
  return async (event: unknown): Promise<ReplayResponse> => {
    const request = fromReplayEvent(event);
    const started = performance.now();
    const result = await replayAfter(await deps.recordLog(), request, { now: (deps.now ?? Date.now)(), cache });
    const { response, sent } = encodeReplayResponse(result);
    deps.log.info('replay', {
      partitions: request.resume.size,
      ...(sent.tooFarBehind ? { tooFarBehind: sent.reason } : { replayed: sent.records.length, scanned: sent.scanned }),
      bytes: response.body.length,
      ms: Math.round(performance.now() - started),
    });
    return response;
  };
}

export const handler = lazy(() => createReplayHandler({ recordLog: defaultRecordLog(), log: defaultLogger() }));
