/**
 * What makes a token unfit for `$connect`, readable without its key: the authorizer adds these
 * rules to the signature check, and the dashboard applies them to its own token to tell the
 * operator why a handshake was refused (a browser never sees the 401/403 itself). Pure: no
 * crypto, no I/O, so the page bundles it as it is.
 */

/** Why a token is refused. A stable code, for logs, tests and the page's message. */
export type TokenProblem =
  | 'no_token'
  | 'malformed'
  | 'unsigned'
  | 'bad_signature'
  | 'no_expiry'
  | 'expired'
  | 'not_yet_valid'
  | 'wrong_issuer'
  | 'wrong_audience'
  | 'wrong_token_use'
  | 'oversized';

/** What the operator is told for each {@link TokenProblem}. */
export const TOKEN_PROBLEM_TEXT: Record<TokenProblem, string> = {
  no_token: 'no token: sign in, or connect with ?token=',
  malformed: 'the token is not a JWT with a subject (sub)',
  unsigned: 'the token is not signed (alg "none")',
  bad_signature: 'the token is signed with a key this server does not trust',
  no_expiry: 'the token has no expiry (exp)',
  expired: 'the token has expired',
  not_yet_valid: 'the token is not valid yet (nbf)',
  wrong_issuer: 'the token comes from another issuer',
  wrong_audience: 'the token is for another client (aud)',
  wrong_token_use: 'the token is an access token; the dashboard connects with its ID token',
  oversized: 'the token names too many sites or roles',
};

/** The decoded parts of a JWT, unverified. */
export interface DecodedToken {
  readonly header: Record<string, unknown>;
  readonly claims: Record<string, unknown>;
}

function decodePart(part: string): Record<string, unknown> | undefined {
  try {
    const base64 = part.replace(/-/g, '+').replace(/_/g, '/');
    const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
    const value: unknown = JSON.parse(new TextDecoder().decode(bytes));
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** Header and claims of a compact JWT, without checking its signature; undefined when it is not one. */
export function decodeToken(token: string): DecodedToken | undefined {
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  const header = decodePart(parts[0]);
  const claims = decodePart(parts[1]);
  return header && claims ? { header, claims } : undefined;
}

/**
 * The token-use rule: the dashboard connects with an OpenID Connect ID token, so an access token
 * of the same issuer and client is refused. Issuers mark token use differently: Cognito with
 * claim `token_use` (`id` | `access`), Keycloak with claim `typ` (`ID` | `Bearer`), RFC 9068
 * access tokens with header `typ: at+jwt`. A mark that is absent does not count against a token.
 */
export function tokenUseProblem(header: Record<string, unknown>, claims: Record<string, unknown>): TokenProblem | undefined {
  if (claims.token_use !== undefined && claims.token_use !== 'id') return 'wrong_token_use';
  if (claims.typ !== undefined && claims.typ !== 'ID') return 'wrong_token_use';
  const typ = typeof header.typ === 'string' ? header.typ.toLowerCase() : '';
  if (typ === 'at+jwt' || typ === 'application/at+jwt') return 'wrong_token_use';
  return undefined;
}

/** What {@link claimsProblem} expects of a token. */
export interface TokenExpectations {
  /** Expected `iss`, when checked. */
  readonly issuer?: string;
  /** A value `aud` must hold (the client id), when checked. */
  readonly audience?: string;
  /** Now, in epoch seconds. */
  readonly nowSeconds: number;
  /** Clock skew allowed on `exp` and `nbf`, in seconds. */
  readonly clockToleranceSeconds: number;
}

/**
 * The first rule an unverified token breaks, in the order an operator would fix them; undefined
 * when only the signature is left to check. The dashboard uses it to explain a refusal; the
 * authorizer checks the same rules through jose, after the signature.
 */
export function claimsProblem(token: string | undefined, expect: TokenExpectations): TokenProblem | undefined {
  if (!token) return 'no_token';
  const decoded = decodeToken(token);
  if (!decoded) return 'malformed';
  const { header, claims } = decoded;
  if (typeof header.alg !== 'string' || header.alg.toLowerCase() === 'none') return 'unsigned';
  if (typeof claims.exp !== 'number') return 'no_expiry';
  if (claims.exp + expect.clockToleranceSeconds <= expect.nowSeconds) return 'expired';
  if (typeof claims.nbf === 'number' && claims.nbf - expect.clockToleranceSeconds > expect.nowSeconds) return 'not_yet_valid';
  if (expect.issuer !== undefined && claims.iss !== expect.issuer) return 'wrong_issuer';
  if (expect.audience !== undefined) {
    const audiences = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
    if (!audiences.includes(expect.audience)) return 'wrong_audience';
  }
  return tokenUseProblem(header, claims);
}
