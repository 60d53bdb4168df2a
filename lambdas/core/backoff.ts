/**
 * The one retry delay of the project: exponential backoff with full jitter (AWS Architecture
 * Blog, "Exponential Backoff And Jitter"), so that many callers retrying after one failure (a
 * fleet of dashboards after a gateway restart, posts throttled by the Management API, unprocessed
 * BatchGetItem keys, a failed stream invocation) do not retry in lockstep. Pure: the dashboard,
 * the adapters and the local runtime share it.
 */

/** Backoff settings. Units are milliseconds. */
export interface BackoffOptions {
  /** Upper bound of the first retry's delay. Default 1000 ms: the first retry comes within a second. */
  readonly baseMs?: number;
  /** Upper bound of any delay. Default 30000 ms. */
  readonly capMs?: number;
}

/** The defaults, chosen for the dashboard's reconnects. */
export const DEFAULT_BACKOFF = { baseMs: 1000, capMs: 30_000 } as const;

/**
 * Delay before retry number `attempt` (1 for the first retry): uniform in
 * `[0, min(cap, base * 2^(attempt-1)))`.
 *
 * @param random a source of numbers in [0, 1); injectable so tests are deterministic.
 */
export function backoffDelay(attempt: number, options: BackoffOptions = {}, random: () => number = Math.random): number {
  const base = options.baseMs ?? DEFAULT_BACKOFF.baseMs;
  const cap = options.capMs ?? DEFAULT_BACKOFF.capMs;
  // Clamp the exponent so 2 ** n never overflows to Infinity after days of retrying.
  const exponent = Math.min(Math.max(attempt - 1, 0), 30);
  const ceiling = Math.min(cap, base * 2 ** exponent);
  return Math.floor(random() * ceiling);
}
