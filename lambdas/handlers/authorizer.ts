/**
 * REQUEST authorizer of `$connect`: checks the JWT in the `token` query parameter and passes the
 * principal (subject, sites, roles) to the routes in the authorizer context.
 */
import type { APIGatewayAuthorizerResult, APIGatewayRequestAuthorizerEvent } from 'aws-lambda';
import { createRemoteJWKSet, type JWTVerifyGetKey } from 'jose';
import {
  MAX_PRINCIPAL_CONTEXT_BYTES,
  createTokenVerifier,
  principalContext,
  principalOf,
  type AuthMode,
  type TokenVerifier,
  type TokenVerifierOptions,
} from '../core/auth';
import { errorMessage } from '../core/errors';
import type { Log } from '../core/ports';
import { ENV } from '../config/env-names';
import { optionalEnv, requireEnv } from '../config/config';
import { ConfigError } from '../core/errors';
import { defaultLogger, defaultSecrets, lazy } from './defaults';

/**
 * The token of a $connect request: the `token` query parameter, the only identity source API
 * Gateway passes (an `Authorization` header is not read, so the local gateway behaves the same).
 */
function tokenOf(event: Pick<APIGatewayRequestAuthorizerEvent, 'queryStringParameters'>): string | undefined {
  return event.queryStringParameters?.token || undefined;
}

function policy(principalId: string, effect: 'Allow' | 'Deny', resource: string, context?: Record<string, string>): APIGatewayAuthorizerResult {
  return {
    principalId,
    policyDocument: {
      Version: '2012-10-17',
      Statement: [{ Action: 'execute-api:Invoke', Effect: effect, Resource: resource }],
    },
    ...(context ? { context } : {}),
  };
}

/** Builds the authorizer over a verifier. */
export function createAuthorizerHandler(deps: { verifier: TokenVerifier; log: Log; sitesClaim?: string }) {
  return async (event: APIGatewayRequestAuthorizerEvent): Promise<APIGatewayAuthorizerResult> => {
    let result;
    try {
      result = await deps.verifier.verify(tokenOf(event));
    } catch (error) {
      // The key set or secret could not be fetched: not the caller's fault, but nobody gets in.
      deps.log.error('token check failed', { error: errorMessage(error) });
      return policy('anonymous', 'Deny', event.methodArn);
    }
    if (!result.ok) {
      deps.log.info('connection refused', { problem: result.problem, detail: result.detail });
      return policy('anonymous', 'Deny', event.methodArn);
    }
    const context = principalContext(principalOf(result.claims, deps.sitesClaim));
    if (Buffer.byteLength(JSON.stringify(context)) > MAX_PRINCIPAL_CONTEXT_BYTES) {
      deps.log.info('connection refused', { problem: 'oversized', sub: context.sub.slice(0, 64) });
      return policy('anonymous', 'Deny', event.methodArn);
    }
    return policy(context.sub, 'Allow', event.methodArn, context);
  };
}

/**
 * The issuer's key set: `JWKS_URL` when set, else the `jwks_uri` of the issuer's discovery
 * document, looked up on first use (and again after a failed look-up).
 */
export function issuerKeys(issuer: string, jwksUrl: string | undefined): JWTVerifyGetKey {
  if (jwksUrl) return createRemoteJWKSet(new URL(jwksUrl));
  let keys: Promise<JWTVerifyGetKey> | undefined;
  const discover = async () => {
    const response = await fetch(`${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`);
    if (!response.ok) throw new ConfigError(`OpenID discovery of ${issuer} answered HTTP ${response.status}`);
    const { jwks_uri: uri } = (await response.json()) as { jwks_uri?: unknown };
    if (typeof uri !== 'string') throw new ConfigError(`OpenID discovery of ${issuer} has no jwks_uri`);
    return createRemoteJWKSet(new URL(uri));
  };
  return async (header, token) => {
    keys ??= discover();
    keys.catch(() => (keys = undefined));
    return (await keys)(header, token);
  };
}

function verifierFromEnv(): TokenVerifier {
  const mode = (optionalEnv(ENV.authMode) ?? 'hs256') as AuthMode;
  const options: TokenVerifierOptions = {};
  if (mode === 'none') {
    options.none = true;
  } else if (mode === 'hs256') {
    const secretArn = optionalEnv(ENV.jwtSecretArn);
    const secret =
      optionalEnv(ENV.jwtSecret) ??
      (secretArn ? () => defaultSecrets().getString(secretArn) : undefined);
    if (!secret) throw new ConfigError('AUTH_MODE=hs256 needs JWT_SECRET_ARN (or JWT_SECRET)');
    options.hs256 = { secret, issuer: optionalEnv(ENV.jwtIssuer), audience: optionalEnv(ENV.jwtAudience) };
  } else if (mode === 'jwks') {
    const issuer = requireEnv(ENV.jwtIssuer);
    options.oidc = { issuer, clientId: requireEnv(ENV.jwtAudience), keys: issuerKeys(issuer, optionalEnv(ENV.jwksUrl)) };
  } else {
    throw new ConfigError(`AUTH_MODE must be hs256, jwks or none, got "${mode}".`);
  }
  return createTokenVerifier(options);
}

export const handler = lazy(() =>
  createAuthorizerHandler({ verifier: verifierFromEnv(), log: defaultLogger(), sitesClaim: optionalEnv(ENV.sitesClaim) }),
);
