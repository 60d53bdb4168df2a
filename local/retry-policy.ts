/**
 * How an event source mapping retries a failed invocation, on its own: up to `maxRetries` retries
 * after the first attempt, each after the shared exponential backoff with full jitter, and an end
 * to waiting as soon as the caller aborts (the bridge is stopping).
 */
import { setTimeout as delay } from 'node:timers/promises';
import { backoffDelay } from '../lambdas/core/backoff';

/** Options of {@link withRetries}. */
export interface RetryOptions {
  /** Retries after the first attempt. */
  readonly maxRetries: number;
  /** Upper bound of the first retry's delay, ms; doubles per retry. */
  readonly baseDelayMs: number;
  /** Upper bound of any delay, ms. Default 10000. */
  readonly capDelayMs?: number;
  /** Aborting ends the backoff in progress and stops retrying. */
  readonly signal?: AbortSignal;
  /** Told of each failed attempt (1 for the first), before any backoff. */
  readonly onFailure?: (error: unknown, attempt: number) => void;
  /** Source of numbers in [0, 1) for the jitter. Default Math.random. */
  readonly random?: () => number;
  /** Waits `ms`, or less when `signal` aborts; injectable so tests can see the delays. */
  readonly sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

/** What became of a task: its value, or its last error and whether the caller stopped it. */
export type RetryOutcome<T> =
  | { readonly ok: true; readonly value: T; readonly attempts: number }
  | { readonly ok: false; readonly error: unknown; readonly attempts: number; readonly stopped: boolean };

async function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  await delay(ms, undefined, signal ? { signal } : {}).catch(() => undefined);
}

/**
 * Runs `task` until it resolves, the retries run out (`stopped: false`: the caller gives up on
 * the work, e.g. dead-letters it) or `signal` aborts (`stopped: true`: the work is left for later).
 */
export async function withRetries<T>(task: (attempt: number) => Promise<T>, options: RetryOptions): Promise<RetryOutcome<T>> {
  const sleep = options.sleep ?? abortableSleep;
  for (let attempt = 1; ; attempt++) {
    try {
      return { ok: true, value: await task(attempt), attempts: attempt };
    } catch (error) {
      options.onFailure?.(error, attempt);
      if (options.signal?.aborted) return { ok: false, error, attempts: attempt, stopped: true };
      if (attempt > options.maxRetries) return { ok: false, error, attempts: attempt, stopped: false };
      const wait = backoffDelay(attempt, { baseMs: options.baseDelayMs, capMs: options.capDelayMs ?? 10_000 }, options.random);
      await sleep(wait, options.signal);
      if (options.signal?.aborted) return { ok: false, error, attempts: attempt, stopped: true };
    }
  }
}
