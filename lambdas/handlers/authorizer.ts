/**
 * REQUEST authorizer of `$connect`: checks the JWT in the `token` query parameter and passes the
 * principal (subject, sites, roles) to the routes in the authorizer context.
 */
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { APIGatewayAuthorizerResult, APIGatewayRequestAuthorizerEvent } from 'aws-lambda';
import { createTokenVerifier, principalContext, principalOf, type AuthMode, type TokenVerifier } from '../core/auth';
import type { Log } from '../core/ports';
import { ENV } from '../config/env-names';
import { optionalEnv, requireEnv } from '../config/config';
import { ConfigError } from '../core/errors';
import { defaultLogger, lazy } from './defaults';

/** The token of a $connect request: `?token=`, else an `Authorization: Bearer` header. */
export function tokenOf(event: Pick<APIGatewayRequestAuthorizerEvent, 'queryStringParameters' | 'headers'>): string | undefined {
  const query = event.queryStringParameters?.token;
  if (query) return query;
  const header = event.headers?.Authorization ?? event.headers?.authorization;
  return header?.startsWith('Bearer ') ? header.slice(7) : undefined;
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
    const result = await deps.verifier.verify(tokenOf(event));
    if (!result.ok) {
      deps.log.info('connection refused', { reason: result.reason });
      return policy('anonymous', 'Deny', event.methodArn);
    }
    const principal = principalOf(result.claims, deps.sitesClaim);
    return policy(principal.sub, 'Allow', event.methodArn, principalContext(principal));
  };
}

function verifierFromEnv(): TokenVerifier {
  const mode = (optionalEnv(ENV.authMode) ?? 'hs256') as AuthMode;
  if (!['hs256', 'jwks', 'none'].includes(mode)) {
    throw new ConfigError(`AUTH_MODE must be hs256, jwks or none, got "${mode}".`);
  }
  const secretArn = optionalEnv(ENV.jwtSecretArn);
  const secret =
    optionalEnv(ENV.jwtSecret) ??
    (secretArn
      ? async () => {
          const out = await new SecretsManagerClient({}).send(new GetSecretValueCommand({ SecretId: secretArn }));
          if (!out.SecretString) throw new ConfigError(`secret ${secretArn} has no string value`);
          return out.SecretString;
        }
      : undefined);
  return createTokenVerifier({
    mode,
    secret,
    jwksUrl: mode === 'jwks' ? requireEnv(ENV.jwksUrl) : undefined,
    issuer: optionalEnv(ENV.jwtIssuer),
    audience: optionalEnv(ENV.jwtAudience),
  });
}

export const handler = lazy(() =>
  createAuthorizerHandler({ verifier: verifierFromEnv(), log: defaultLogger(), sitesClaim: optionalEnv(ENV.sitesClaim) }),
);
