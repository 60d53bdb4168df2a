/** Health of the product's dependencies, as GET /health reports it. */
import { errorMessage } from './errors';

/** One dependency's state. */
export interface CheckResult {
  ok: boolean;
  latencyMs: number;
  error?: string;
  detail?: Record<string, unknown>;
}

/** The body of GET /health. */
export interface HealthReport {
  status: 'ok' | 'unavailable';
  checks: Record<string, CheckResult>;
  timestamp: number;
}

/** A check resolves (optionally with details) when its dependency works and throws when not. */
export type HealthCheck = () => Promise<Record<string, unknown> | void>;

/**
 * Runs every check at once, each bounded by `timeoutMs`. The status is `ok` only when all pass;
 * the HTTP status to answer is {@link healthStatusCode}.
 */
export async function checkHealth(checks: Record<string, HealthCheck>, timeoutMs = 2000): Promise<HealthReport> {
  const entries = await Promise.all(
    Object.entries(checks).map(async ([name, check]): Promise<[string, CheckResult]> => {
      const started = performance.now();
      let timer: NodeJS.Timeout | undefined;
      try {
        const detail = await Promise.race([
          check(),
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
          }),
        ]);
        const result: CheckResult = { ok: true, latencyMs: Math.round(performance.now() - started) };
        if (detail) result.detail = detail;
        return [name, result];
      } catch (error) {
        return [name, { ok: false, latencyMs: Math.round(performance.now() - started), error: errorMessage(error) }];
      } finally {
        clearTimeout(timer);
      }
    }),
  );
  const results = Object.fromEntries(entries);
  return { status: entries.every(([, r]) => r.ok) ? 'ok' : 'unavailable', checks: results, timestamp: Date.now() };
}

/** 200 when healthy, 503 otherwise: what load balancers and uptime checks understand. */
export function healthStatusCode(report: HealthReport): number {
  return report.status === 'ok' ? 200 : 503;
}
