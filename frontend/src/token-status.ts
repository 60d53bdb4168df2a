/**
 * What the page knows about its token without the server: when to refresh it, and, when the
 * server refused a handshake, why (the browser sees neither the 401/403 nor its body).
 */
import { TOKEN_PROBLEM_TEXT, claimsProblem, decodeToken, type TokenProblem } from '../../lambdas/core/token-claims';

/** The longest a token is refreshed ahead of its expiry: 5 minutes, wider than a background tab's timer throttling. */
const MAX_REFRESH_MARGIN_MS = 5 * 60_000;

/**
 * Milliseconds from `nowMs` until the token should be refreshed: a third of its lifetime before
 * `exp`, at most 5 minutes before; 0 when that moment has passed or the token has no `exp`.
 */
export function refreshDelayMs(token: string, nowMs: number): number {
  const claims = decodeToken(token)?.claims;
  if (typeof claims?.exp !== 'number') return 0;
  const expMs = claims.exp * 1000;
  const lifetimeMs = typeof claims.iat === 'number' ? expMs - claims.iat * 1000 : MAX_REFRESH_MARGIN_MS * 3;
  const margin = Math.min(MAX_REFRESH_MARGIN_MS, Math.max(lifetimeMs / 3, 0));
  return Math.max(0, expMs - margin - nowMs);
}

/** The rule of {@link claimsProblem} `token` breaks, as far as the page can see; undefined when none. */
export function tokenProblem(token: string | undefined, expect: { issuer?: string; clientId?: string }, nowMs: number): TokenProblem | undefined {
  return claimsProblem(token, {
    issuer: expect.issuer,
    audience: expect.clientId,
    nowSeconds: Math.floor(nowMs / 1000),
    // No skew here: a token about to expire is better called expired (the page refreshes it).
    clockToleranceSeconds: 0,
  });
}

/**
 * Why the server refused `token`, as far as the page can tell: the rule it breaks, or, when it
 * breaks none, the cause the page cannot see.
 */
export function refusalReason(token: string | undefined, expect: { issuer?: string; clientId?: string }, nowMs: number): string {
  const problem = tokenProblem(token, expect, nowMs);
  return problem ? TOKEN_PROBLEM_TEXT[problem] : `${TOKEN_PROBLEM_TEXT.bad_signature}, or your access was withdrawn`;
}

/**
 * After a handshake failed: `refused` when the WebSocket host answers plain HTTP (so it was up and
 * said no), `network` when it cannot be reached.
 */
export async function probeHandshake(wsUrl: string): Promise<'refused' | 'network'> {
  if (typeof navigator !== 'undefined' && !navigator.onLine) return 'network';
  try {
    // An opaque answer is enough: reaching the host is what is asked.
    await fetch(wsUrl.replace(/^ws/, 'http'), { mode: 'no-cors', cache: 'no-store', credentials: 'omit' });
    return 'refused';
  } catch {
    return 'network';
  }
}
