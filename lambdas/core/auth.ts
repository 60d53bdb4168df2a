/**
 * Token checks for $connect: a JWT in the `token` query parameter, HS256 with a shared secret or
 * RS256 (and other asymmetric algorithms) through a JWKS URL such as a Cognito user pool's.
 */
import { SignJWT, createRemoteJWKSet, jwtVerify, type JWTPayload } from 'jose';
import { errorMessage } from './errors';

/** How tokens are checked. `none` accepts every connection (local experiments only). */
export type AuthMode = 'hs256' | 'jwks' | 'none';

/** Options of {@link createTokenVerifier}. */
export interface TokenVerifierOptions {
  mode: AuthMode;
  /** HS256 secret, or a function that fetches it once (from Secrets Manager). */
  secret?: string | (() => Promise<string>);
  /** JWKS URL for `jwks` mode. */
  jwksUrl?: string;
  /** Expected `iss`, when set. */
  issuer?: string;
  /** Expected `aud`, when set. */
  audience?: string;
}

/** Result of a token check. */
export type VerifyResult = { ok: true; claims: JWTPayload } | { ok: false; reason: string };

/** Checks tokens. */
export interface TokenVerifier {
  readonly mode: AuthMode;
  verify(token: string | undefined): Promise<VerifyResult>;
}

/** A verifier for the given mode; the secret or key set is fetched once and cached. */
export function createTokenVerifier(options: TokenVerifierOptions): TokenVerifier {
  const { mode } = options;
  let key: Promise<Uint8Array> | undefined;
  const jwks = mode === 'jwks' && options.jwksUrl ? createRemoteJWKSet(new URL(options.jwksUrl)) : undefined;
  if (mode === 'jwks' && !jwks) throw new Error('AUTH_MODE=jwks needs JWKS_URL');
  if (mode === 'hs256' && !options.secret) throw new Error('AUTH_MODE=hs256 needs a secret (JWT_SECRET_ARN or JWT_SECRET)');
  const secretKey = () => {
    const secret = options.secret!;
    key ??= (typeof secret === 'string' ? Promise.resolve(secret) : secret()).then((s) => new TextEncoder().encode(s));
    // A failed fetch must not be cached for the life of the container.
    key.catch(() => (key = undefined));
    return key;
  };
  return {
    mode,
    async verify(token) {
      if (mode === 'none') return { ok: true, claims: { sub: 'anonymous', sites: ['*'] } };
      if (!token) return { ok: false, reason: 'no token: connect with ?token=<JWT>' };
      const verifyOptions = { issuer: options.issuer, audience: options.audience };
      try {
        const { payload } =
          mode === 'hs256'
            ? await jwtVerify(token, await secretKey(), { ...verifyOptions, algorithms: ['HS256'] })
            : await jwtVerify(token, jwks!, verifyOptions);
        return { ok: true, claims: payload };
      } catch (error) {
        return { ok: false, reason: errorMessage(error) };
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
