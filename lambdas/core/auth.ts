/**
 * Token checks for $connect: a JWT in the `token` query parameter, signed either with a shared
 * HS256 secret (tokens for scripts, `npm run token`) or by an OpenID Connect issuer whose keys are
 * published as a JWKS (a Cognito user pool, Entra ID, Okta, Keycloak, the local provider). Every
 * token must carry `exp` and `sub`; issuer tokens must also name the issuer and the dashboard's
 * client, and be ID tokens (see {@link tokenUseProblem}).
 */
import { SignJWT, errors, jwtVerify, type JWTPayload, type JWTVerifyGetKey, type JWTVerifyOptions } from 'jose';
import { errorMessage } from './errors';
import { decodeToken, tokenUseProblem, type TokenProblem } from './token-claims';

/** How tokens are checked: `hs256` (shared secret), `jwks` (an OpenID Connect issuer) or `none` (every connection). */
export type AuthMode = 'hs256' | 'jwks' | 'none';

/** Clock skew allowed on `exp` and `nbf`, in seconds. */
const CLOCK_TOLERANCE_SECONDS = 30;

/** Asymmetric algorithms accepted from an issuer; HS256 is only ever checked against the shared secret. */
const ISSUER_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];

/** Options of {@link createTokenVerifier}. At least one of `hs256` and `oidc` unless `none`. */
export interface TokenVerifierOptions {
  /** Accept every connection, as `anonymous` with every site (local experiments and benchmarks only). */
  none?: boolean;
  /** Tokens signed with a shared secret (alg HS256). */
  hs256?: {
    /** The secret, or a function that fetches it (from Secrets Manager); fetched once, a failure is not cached. */
    secret: string | (() => Promise<string>);
    /** Expected `iss`, when set. */
    issuer?: string;
    /** A value `aud` must hold, when set. */
    audience?: string;
  };
  /** ID tokens of an OpenID Connect issuer. */
  oidc?: {
    /** The issuer's key set: `createRemoteJWKSet(jwks_uri)`, or any key lookup. */
    keys: JWTVerifyGetKey;
    /** Expected `iss`: required, or any issuer trusted by the key set would do. */
    issuer: string;
    /** The dashboard's client id, which `aud` must hold (and `azp` be, when present). */
    clientId: string;
  };
}

/** Result of a token check: the claims, or the rule the token broke (and the library's words for it). */
export type VerifyResult = { ok: true; claims: JWTPayload } | { ok: false; problem: TokenProblem; detail: string };

/** Checks tokens. */
export interface TokenVerifier {
  /**
   * Checks a token. Resolves with the refusal for any fault of the token; rejects only when the
   * check itself cannot run (the key set or the secret cannot be fetched).
   */
  verify(token: string | undefined): Promise<VerifyResult>;
}

function refusal(problem: TokenProblem, detail: string = problem): VerifyResult {
  return { ok: false, problem, detail };
}

/** Maps jose's errors to the problem they mean; undefined for errors that are not the token's fault. */
function problemOf(error: unknown): TokenProblem | undefined {
  if (error instanceof errors.JWTExpired) return 'expired';
  if (error instanceof errors.JWTClaimValidationFailed) {
    if (error.claim === 'iss') return 'wrong_issuer';
    if (error.claim === 'aud') return 'wrong_audience';
    if (error.claim === 'exp') return 'no_expiry';
    if (error.claim === 'nbf') return 'not_yet_valid';
    return 'malformed';
  }
  if (
    error instanceof errors.JWSSignatureVerificationFailed ||
    error instanceof errors.JWKSNoMatchingKey ||
    error instanceof errors.JWKSMultipleMatchingKeys ||
    error instanceof errors.JOSEAlgNotAllowed
  ) {
    return 'bad_signature';
  }
  if (error instanceof errors.JWSInvalid || error instanceof errors.JWTInvalid || error instanceof errors.JOSENotSupported) return 'malformed';
  return undefined;
}

/** A verifier over the given secret and issuer; the secret is fetched once and cached after success. */
export function createTokenVerifier(options: TokenVerifierOptions): TokenVerifier {
  if (!options.none && !options.hs256 && !options.oidc) throw new Error('a token verifier needs an HS256 secret or an OpenID Connect issuer');
  if (options.oidc && (!options.oidc.issuer || !options.oidc.clientId)) throw new Error('an OpenID Connect issuer needs its issuer URL and client id');
  let key: Promise<Uint8Array> | undefined;
  const secretKey = (secret: string | (() => Promise<string>)) => {
    key ??= (typeof secret === 'string' ? Promise.resolve(secret) : secret()).then((s) => new TextEncoder().encode(s));
    // A failed fetch must not be cached for the life of the container.
    key.catch(() => (key = undefined));
    return key;
  };
  const common: JWTVerifyOptions = { requiredClaims: ['exp', 'sub'], clockTolerance: CLOCK_TOLERANCE_SECONDS };
  return {
    async verify(token) {
      if (options.none) return { ok: true, claims: { sub: 'anonymous', sites: ['*'] } };
      if (!token) return refusal('no_token');
      const decoded = decodeToken(token);
      if (!decoded) return refusal('malformed');
      const alg = decoded.header.alg;
      if (typeof alg !== 'string' || alg.toLowerCase() === 'none') return refusal('unsigned');
      try {
        let payload: JWTPayload;
        if (alg === 'HS256') {
          if (!options.hs256) return refusal('bad_signature', 'HS256 tokens are not accepted here');
          const { issuer, audience } = options.hs256;
          ({ payload } = await jwtVerify(token, await secretKey(options.hs256.secret), { ...common, algorithms: ['HS256'], issuer, audience }));
        } else {
          if (!options.oidc) return refusal('bad_signature', `${alg} tokens are not accepted here`);
          const { keys, issuer, clientId } = options.oidc;
          ({ payload } = await jwtVerify(token, keys, { ...common, algorithms: ISSUER_ALGORITHMS, issuer, audience: clientId }));
          // OpenID Connect Core 3.1.3.7: when present, azp is the client the ID token was issued to.
          if (payload.azp !== undefined && payload.azp !== clientId) return refusal('wrong_audience', 'azp is another client');
        }
        if (typeof payload.sub !== 'string' || payload.sub === '') return refusal('malformed', 'sub is not a string');
        const useProblem = tokenUseProblem(decoded.header, payload);
        return useProblem ? refusal(useProblem) : { ok: true, claims: payload };
      } catch (error) {
        const problem = problemOf(error);
        if (!problem) throw error;
        return refusal(problem, errorMessage(error));
      }
    },
  };
}

/**
 * Who a connection belongs to: what the routes need from a token, and no more (the authorizer
 * context is limited to 8 KB and is stored with the connection).
 */
export interface Principal {
  /** The token's subject. */
  sub: string;
  /** Site names the connection may see; `['*']` means every site, `[]` none. */
  sites: string[];
  /** Roles, for routes that need them. */
  roles: string[];
}

/** The flat authorizer context API Gateway passes to every route of the connection. */
export type PrincipalContext = { sub: string; sites: string; roles: string };

function listClaim(value: unknown): string[] {
  const items = Array.isArray(value) ? value : typeof value === 'string' ? value.split(',') : [];
  return [...new Set(items.filter((item): item is string => typeof item === 'string').map((item) => item.trim()).filter(Boolean))];
}

/**
 * The principal of verified claims. Sites come from the `sitesClaim` claim (a list or a
 * comma-separated string); `*` among them means every site.
 */
export function principalOf(claims: JWTPayload, sitesClaim: string = 'sites'): Principal {
  const sites = listClaim(claims[sitesClaim]);
  return {
    sub: typeof claims.sub === 'string' ? claims.sub : 'anonymous',
    sites: sites.includes('*') ? ['*'] : sites,
    roles: listClaim(claims.roles),
  };
}

/**
 * Largest authorizer context a connection may have, in UTF-8 bytes: API Gateway refuses an
 * authorizer result over 8 KB, and the context is stored with the connection.
 */
export const MAX_PRINCIPAL_CONTEXT_BYTES = 2048;

/** Encodes a principal as the authorizer context (context values must be strings). */
export function principalContext(principal: Principal): PrincipalContext {
  return { sub: principal.sub, sites: principal.sites.join(','), roles: principal.roles.join(',') };
}

/** Decodes the authorizer context of a route event; undefined when it carries no principal. */
export function principalFromContext(context: Record<string, unknown> | null | undefined): Principal | undefined {
  if (!context || typeof context.sub !== 'string') return undefined;
  return { sub: context.sub, sites: listClaim(context.sites), roles: listClaim(context.roles) };
}

/** Mints an HS256 token, as the local runtime's development mode does at start. */
export async function mintToken(
  secret: string,
  claims: JWTPayload = { sub: 'developer', sites: ['*'] },
  expiresIn: string = '12h',
): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setIssuedAt()
    .setExpirationTime(expiresIn)
    .sign(new TextEncoder().encode(secret));
}
