import { backoffDelay, DEFAULT_BACKOFF } from '../../lambdas/core/backoff';

describe('backoffDelay (exponential, full jitter)', () => {
  test('the first retry comes within a second', () => {
    expect(backoffDelay(1, {}, () => 0.999999)).toBeLessThan(1000);
    expect(backoffDelay(1, {}, () => 0)).toBe(0);
  });

  test('the ceiling doubles per attempt and stops at the cap', () => {
    const ceilings = [1, 2, 3, 4, 5, 6, 7, 50, 10_000].map((attempt) => backoffDelay(attempt, {}, () => 0.9999999) + 1);
    expect(ceilings).toEqual([1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000]);
    expect(DEFAULT_BACKOFF.capMs).toBe(30_000);
  });

  test('delays are spread over the whole window (jitter), not bunched at the top', () => {
    const delays = Array.from({ length: 2000 }, () => backoffDelay(4));
    expect(Math.min(...delays)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...delays)).toBeLessThan(8000);
    const mean = delays.reduce((sum, delay) => sum + delay, 0) / delays.length;
    expect(mean).toBeGreaterThan(3000);
    expect(mean).toBeLessThan(5000);
  });

  test('custom base and cap', () => {
    expect(backoffDelay(3, { baseMs: 100, capMs: 250 }, () => 0.9999999)).toBe(249);
  });
});
