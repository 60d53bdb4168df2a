/**
 * The $connect token checks, case by case, as an attacker would try them: each refusal names the
 * rule the token broke. The issuer's key set is a local one (no network); the authorizer over a
 * real key set URL is in test/integration.
 */
import { SignJWT, createLocalJWKSet, exportJWK, generateKeyPair, type JWTPayload, type KeyLike } from 'jose';
import { createTokenVerifier, mintToken, type TokenVerifier } from '../../lambdas/core/auth';
import { createAuthorizerHandler } from '../../lambdas/handlers/authorizer';
import type { APIGatewayRequestAuthorizerEvent } from 'aws-lambda';

const ISSUER = 'https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Example';
const CLIENT_ID = 'dashboard-client';
const SECRET = 'a-test-secret-of-some-length-0123456789abcdef';

let signingKey: KeyLike;
let otherKey: KeyLike;
let verifier: TokenVerifier;

beforeAll(async () => {
  const pair = await generateKeyPair('RS256');
  signingKey = pair.privateKey;
  otherKey = (await generateKeyPair('RS256')).privateKey;
  const jwk = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
  verifier = createTokenVerifier({
    hs256: { secret: SECRET },
    oidc: { keys: createLocalJWKSet({ keys: [jwk] }), issuer: ISSUER, clientId: CLIENT_ID },
  });
});

/** An ID token as Cognito issues it, with `overrides` applied (undefined removes a claim). */
function idToken(overrides: JWTPayload = {}, options: { key?: KeyLike; header?: Record<string, unknown> } = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const claims: JWTPayload = { sub: 'user-1', iss: ISSUER, aud: CLIENT_ID, token_use: 'id', iat: now, exp: now + 300, 'custom:sites': 'plant-a', ...overrides };
  for (const [name, value] of Object.entries(claims)) if (value === undefined) delete claims[name];
  return new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: 'k1', ...options.header }).sign(options.key ?? signingKey);
}

const b64 = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');

async function problemOf(token: string | undefined): Promise<string> {
  const result = await verifier.verify(token);
  return result.ok ? 'accepted' : result.problem;
}

describe('ID tokens of the OpenID Connect issuer', () => {
  it('accepts a fresh ID token of the issuer for the dashboard client', async () => {
    const result = await verifier.verify(await idToken());
    expect(result).toMatchObject({ ok: true, claims: { sub: 'user-1', 'custom:sites': 'plant-a' } });
  });

  it('refuses a missing or empty token', async () => {
    expect(await problemOf(undefined)).toBe('no_token');
    expect(await problemOf('')).toBe('no_token');
  });

  it('refuses an expired token, and allows only a bounded clock skew', async () => {
    const now = Math.floor(Date.now() / 1000);
    expect(await problemOf(await idToken({ exp: now - 3600 }))).toBe('expired');
    expect(await problemOf(await idToken({ exp: now - 40 }))).toBe('expired');
    expect(await problemOf(await idToken({ exp: now - 10 }))).toBe('accepted');
  });

  it('refuses a token without exp or sub', async () => {
    expect(await problemOf(await idToken({ exp: undefined }))).toBe('no_expiry');
    expect(await problemOf(await idToken({ sub: undefined }))).toBe('malformed');
  });

  it('refuses a token signed with another key, even with the right kid', async () => {
    expect(await problemOf(await idToken({}, { key: otherKey }))).toBe('bad_signature');
  });

  it('refuses alg none, in its spellings, and a token whose payload was changed after signing', async () => {
    const claims = { sub: 'admin', iss: ISSUER, aud: CLIENT_ID, token_use: 'id', exp: Math.floor(Date.now() / 1000) + 300, 'custom:sites': '*' };
    for (const alg of ['none', 'None', 'NONE']) {
      expect(await problemOf(`${b64({ alg, typ: 'JWT' })}.${b64(claims)}.`)).toBe('unsigned');
    }
    const [header, , signature] = (await idToken()).split('.');
    expect(await problemOf(`${header}.${b64(claims)}.${signature}`)).toBe('bad_signature');
  });

  it('refuses the issuer\'s public key used as an HS256 secret (algorithm confusion)', async () => {
    const forged = await new SignJWT({ sub: 'admin', iss: ISSUER, aud: CLIENT_ID, 'custom:sites': '*' })
      .setProtectedHeader({ alg: 'HS256' })
      .setExpirationTime('5m')
      .sign(new TextEncoder().encode('not-the-shared-secret-but-a-guess-0123456789'));
    expect(await problemOf(forged)).toBe('bad_signature');
  });

  it('refuses a token of another issuer', async () => {
    expect(await problemOf(await idToken({ iss: 'https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Other' }))).toBe('wrong_issuer');
    expect(await problemOf(await idToken({ iss: undefined }))).toBe('wrong_issuer');
  });

  it('refuses a token for another client', async () => {
    expect(await problemOf(await idToken({ aud: 'another-app-client' }))).toBe('wrong_audience');
    expect(await problemOf(await idToken({ aud: undefined }))).toBe('wrong_audience');
    expect(await problemOf(await idToken({ aud: [CLIENT_ID, 'other'], azp: 'other' }))).toBe('wrong_audience');
  });

  it('refuses an access token of the same pool and client (token use)', async () => {
    // Cognito marks use with token_use, Keycloak with typ, RFC 9068 with the header's typ.
    expect(await problemOf(await idToken({ token_use: 'access' }))).toBe('wrong_token_use');
    expect(await problemOf(await idToken({ token_use: undefined, typ: 'Bearer' }))).toBe('wrong_token_use');
    expect(await problemOf(await idToken({ token_use: undefined }, { header: { typ: 'at+jwt' } }))).toBe('wrong_token_use');
  });

  it('refuses garbage of every shape', async () => {
    for (const junk of ['x', 'a.b', 'a.b.c', '...', `${b64({ alg: 'RS256' })}.${b64([1, 2])}.x`, `${b64({ alg: 'RS256' })}.bm90IGpzb24.x`]) {
      expect(await problemOf(junk)).toBe('malformed');
    }
  });
});

describe('HS256 tokens for scripts', () => {
  it('accepts a token of the shared secret and refuses one without exp', async () => {
    expect(await problemOf(await mintToken(SECRET, { sub: 'script', sites: ['plant-a'] }, '1h'))).toBe('accepted');
    const noExp = await new SignJWT({ sub: 'script' }).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(SECRET));
    expect(await problemOf(noExp)).toBe('no_expiry');
  });

  it('refuses a token of another secret, and HS256 where no secret is configured', async () => {
    expect(await problemOf(await mintToken('another-secret-entirely-0123456789', { sub: 's' }, '1h'))).toBe('bad_signature');
    const issuerOnly = createTokenVerifier({ oidc: { keys: createLocalJWKSet({ keys: [] }), issuer: ISSUER, clientId: CLIENT_ID } });
    const result = await issuerOnly.verify(await mintToken(SECRET, { sub: 's' }, '1h'));
    expect(result).toMatchObject({ ok: false, problem: 'bad_signature' });
  });
});

describe('authorizer', () => {
  const event = (token?: string) =>
    ({ type: 'REQUEST', methodArn: 'arn:aws:execute-api:eu-west-1:1:api/live/$connect', queryStringParameters: token ? { token } : {} }) as unknown as APIGatewayRequestAuthorizerEvent;
  const log = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };

  it('passes only subject, sites and roles on, from the claim the deployment names', async () => {
    const handler = createAuthorizerHandler({ verifier, log, sitesClaim: 'custom:sites' });
    const result = await handler(event(await idToken({ email: 'user@example.com', 'cognito:groups': ['a'] })));
    expect(result.policyDocument.Statement[0]).toMatchObject({ Effect: 'Allow' });
    expect(result.context).toEqual({ sub: 'user-1', sites: 'plant-a', roles: '' });
  });

  it('gives no site through a prototype-named claim', async () => {
    const handler = createAuthorizerHandler({ verifier, log });
    // Built as raw JSON so that "__proto__" is an own key of the payload, as an attacker would send it.
    const now = Math.floor(Date.now() / 1000);
    const payload = `{"sub":"user-1","iss":"${ISSUER}","aud":"${CLIENT_ID}","exp":${now + 300},"__proto__":{"sites":["*"],"roles":["admin"]}}`;
    const token = await new SignJWT(JSON.parse(payload)).setProtectedHeader({ alg: 'RS256', kid: 'k1' }).sign(signingKey);
    const result = await handler(event(token));
    expect(result.policyDocument.Statement[0]).toMatchObject({ Effect: 'Allow' });
    expect(result.context).toEqual({ sub: 'user-1', sites: '', roles: '' });
  });

  it('refuses a token whose sites would overflow the authorizer context', async () => {
    const handler = createAuthorizerHandler({ verifier, log, sitesClaim: 'custom:sites' });
    const sites = Array.from({ length: 400 }, (_, i) => `plant-${i}`).join(',');
    const result = await handler(event(await idToken({ 'custom:sites': sites })));
    expect(result.policyDocument.Statement[0]).toMatchObject({ Effect: 'Deny' });
  });

  it('denies, and does not throw, when the key set cannot be fetched', async () => {
    const failing = createTokenVerifier({
      oidc: { keys: async () => Promise.reject(new TypeError('fetch failed')), issuer: ISSUER, clientId: CLIENT_ID },
    });
    const handler = createAuthorizerHandler({ verifier: failing, log });
    expect((await handler(event(await idToken()))).policyDocument.Statement[0]).toMatchObject({ Effect: 'Deny' });
  });
});
