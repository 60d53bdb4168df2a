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
      if (mode === 'none') return { ok: true, claims: { sub: 'anonymous' } };
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

/** Mints an HS256 token, as the local runtime's development mode does at start. */
export async function mintToken(
  secret: string,
  claims: JWTPayload = { sub: 'developer' },
  expiresIn: string = '12h',
): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setIssuedAt()
    .setExpirationTime(expiresIn)
    .sign(new TextEncoder().encode(secret));
}
