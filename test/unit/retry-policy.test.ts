/** The retry rules of the local event source (local/retry-policy.ts) without Kafka. */
import { withRetries, type RetryOptions } from '../../local/retry-policy';
import { errorMessage } from '../../lambdas/core/errors';

/** Fails the first `failures` attempts. */
function flaky(failures: number) {
  let calls = 0;
  return async (attempt: number) => {
    calls++;
    if (calls <= failures) throw new Error(`failure ${attempt}`);
    return `ok on ${attempt}`;
  };
}

describe('withRetries', () => {
  const sleeps: number[] = [];
  const options = (over: Partial<RetryOptions> = {}): RetryOptions => ({
    maxRetries: 3,
    baseDelayMs: 200,
    random: () => 0.5,
    sleep: async (ms) => void sleeps.push(ms),
    ...over,
  });
  beforeEach(() => (sleeps.length = 0));

  it('returns the first success without waiting', async () => {
    await expect(withRetries(flaky(0), options())).resolves.toEqual({ ok: true, value: 'ok on 1', attempts: 1 });
    expect(sleeps).toEqual([]);
  });

  it('retries after the shared backoff (full jitter, doubling) and reports each failure', async () => {
    const failures: string[] = [];
    const outcome = await withRetries(flaky(2), options({ onFailure: (error, attempt) => failures.push(`${attempt}: ${errorMessage(error)}`) }));
    expect(outcome).toEqual({ ok: true, value: 'ok on 3', attempts: 3 });
    expect(failures).toEqual(['1: failure 1', '2: failure 2']);
    // random 0.5 of ceilings 200 and 400.
    expect(sleeps).toEqual([100, 200]);
  });

  it('gives up after maxRetries retries with the last error, not stopped', async () => {
    const outcome = await withRetries(flaky(99), options({ maxRetries: 2 }));
    expect(outcome).toMatchObject({ ok: false, attempts: 3, stopped: false });
    expect(outcome.ok || errorMessage(outcome.error)).toBe('failure 3');
    expect(sleeps).toHaveLength(2);
  });

  it('caps the delay', async () => {
    await withRetries(flaky(99), options({ maxRetries: 8, capDelayMs: 1000, random: () => 0.999 }));
    expect(Math.max(...sleeps)).toBe(999);
  });

  it('stops at once when aborted during a backoff, with the real timer', async () => {
    const controller = new AbortController();
    const outcome = withRetries(flaky(99), {
      maxRetries: 5,
      baseDelayMs: 10 * 60_000,
      random: () => 0.999,
      signal: controller.signal,
      onFailure: () => setImmediate(() => controller.abort()),
    });
    // Without the abort this would wait ten minutes and the test would time out.
    await expect(outcome).resolves.toMatchObject({ ok: false, attempts: 1, stopped: true });
  });

  it('does not retry once aborted', async () => {
    const controller = new AbortController();
    controller.abort();
    await expect(withRetries(flaky(99), options({ signal: controller.signal }))).resolves.toMatchObject({ attempts: 1, stopped: true });
    expect(sleeps).toEqual([]);
  });
});
