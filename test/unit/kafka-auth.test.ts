/**
 * How the replay reader signs in to Kafka (lambdas/adapters/kafka-auth.ts). The MSK IAM token is
 * checked the way the broker checks it: decoded, and its SigV4 signature computed again here with
 * node:crypto from the URL's own parameters, independently of the signer that made it.
 */
import { createHash, createHmac } from 'node:crypto';
import { ConfigError } from '../../lambdas/core/errors';
import { kafkaSecurity, mskIamToken, needsSecret, parseKafkaAuth, parseSaslSecret } from '../../lambdas/adapters/kafka-auth';

const CREDENTIALS = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY', sessionToken: 'FwoGZXIvYXdzE//token+with/slashes=' };

const hmac = (key: Buffer | string, data: string) => createHmac('sha256', key).update(data, 'utf8').digest();
const sha256 = (data: string) => createHash('sha256').update(data, 'utf8').digest('hex');
const rfc3986 = (value: string) => encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/** The SigV4 signature of a presigned GET, as AWS computes it from the request's URL. */
function expectedSignature(url: URL, secretAccessKey: string): string {
  const params = [...url.searchParams.entries()].filter(([key]) => key !== 'X-Amz-Signature' && key !== 'User-Agent');
  const canonicalQuery = params
    .map(([key, value]) => [rfc3986(key), rfc3986(value)] as const)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([key, value]) => `${key}=${value}`)
    .join('&');
  // A presigned request with no body signs the hash of the empty payload.
  const canonicalRequest = ['GET', '/', canonicalQuery, `host:${url.host}\n`, 'host', sha256('')].join('\n');
  const date = url.searchParams.get('X-Amz-Date')!;
  const [, , region, service] = url.searchParams.get('X-Amz-Credential')!.split('/');
  const scope = `${date.slice(0, 8)}/${region}/${service}/aws4_request`;
  const stringToSign = ['AWS4-HMAC-SHA256', date, scope, sha256(canonicalRequest)].join('\n');
  const key = hmac(hmac(hmac(hmac(`AWS4${secretAccessKey}`, date.slice(0, 8)), region!), service!), 'aws4_request');
  return createHmac('sha256', key).update(stringToSign, 'utf8').digest('hex');
}

function decode(token: string): URL {
  expect(token).toMatch(/^[A-Za-z0-9_-]+$/); // base64url, no padding
  return new URL(Buffer.from(token, 'base64url').toString('utf8'));
}

describe('MSK IAM token', () => {
  it('is a kafka-cluster:Connect URL presigned for the region, whose signature verifies', async () => {
    const url = decode(await mskIamToken({ region: 'eu-west-1', credentials: CREDENTIALS }));
    expect(url.protocol).toBe('https:');
    expect(url.host).toBe('kafka.eu-west-1.amazonaws.com');
    expect(url.pathname).toBe('/');
    const q = url.searchParams;
    expect(q.get('Action')).toBe('kafka-cluster:Connect');
    expect(q.get('X-Amz-Algorithm')).toBe('AWS4-HMAC-SHA256');
    const date = q.get('X-Amz-Date')!;
    expect(date).toMatch(/^\d{8}T\d{6}Z$/);
    expect(Math.abs(Date.parse(`${date.slice(0, 4)}-${date.slice(4, 6)}-${date.slice(6, 8)}T${date.slice(9, 11)}:${date.slice(11, 13)}:${date.slice(13, 15)}Z`) - Date.now())).toBeLessThan(60_000);
    expect(q.get('X-Amz-Credential')).toBe(`AKIDEXAMPLE/${date.slice(0, 8)}/eu-west-1/kafka-cluster/aws4_request`);
    expect(q.get('X-Amz-Expires')).toBe('900');
    expect(q.get('X-Amz-SignedHeaders')).toBe('host');
    expect(q.get('X-Amz-Security-Token')).toBe(CREDENTIALS.sessionToken);
    expect(q.get('User-Agent')).toMatch(/^aws-msk-iam-sasl-signer-js\//);
    expect(q.get('X-Amz-Signature')).toBe(expectedSignature(url, CREDENTIALS.secretAccessKey));
  });

  it('fails verification with another secret key (the check above can fail)', async () => {
    const url = decode(await mskIamToken({ region: 'eu-west-1', credentials: CREDENTIALS }));
    expect(url.searchParams.get('X-Amz-Signature')).not.toBe(expectedSignature(url, 'another-secret'));
  });

  it('without a session token carries none', async () => {
    const { sessionToken: _t, ...longTerm } = CREDENTIALS;
    const url = decode(await mskIamToken({ region: 'us-east-1', credentials: longTerm }));
    expect(url.searchParams.has('X-Amz-Security-Token')).toBe(false);
    expect(url.searchParams.get('X-Amz-Signature')).toBe(expectedSignature(url, CREDENTIALS.secretAccessKey));
  });
});

describe('kafkajs security settings', () => {
  it('uses OAUTHBEARER over TLS for iam, asking for a fresh token on each connection', async () => {
    let made = 0;
    const { ssl, sasl } = kafkaSecurity('iam', { iamToken: async () => `token-${++made}` });
    expect(ssl).toBe(true);
    expect(sasl?.mechanism).toBe('oauthbearer');
    const provider = (sasl as { oauthBearerProvider: () => Promise<{ value: string }> }).oauthBearerProvider;
    expect(await provider()).toEqual({ value: 'token-1' });
    expect(await provider()).toEqual({ value: 'token-2' });
  });

  it.each([
    ['sasl-scram-512', 'scram-sha-512'],
    ['sasl-scram-256', 'scram-sha-256'],
    ['basic', 'plain'],
  ] as const)('uses %s as kafkajs %s over TLS with the secret\'s credentials', (auth, mechanism) => {
    expect(needsSecret(auth)).toBe(true);
    expect(kafkaSecurity(auth, { credentials: { username: 'u', password: 'p' } })).toEqual({ ssl: true, sasl: { mechanism, username: 'u', password: 'p' } });
    expect(() => kafkaSecurity(auth, {})).toThrow(ConfigError);
  });

  it('uses neither SASL nor TLS for none, and no secret for iam or none', () => {
    expect(kafkaSecurity('none', {})).toEqual({ ssl: false });
    expect(needsSecret('iam')).toBe(false);
    expect(needsSecret('none')).toBe(false);
  });

  it('reads the secret as Lambda\'s event source mapping does, without quoting it in errors', () => {
    expect(parseSaslSecret('{"username":"dash","password":"s3cret"}', 'arn:s')).toEqual({ username: 'dash', password: 's3cret' });
    expect(() => parseSaslSecret('s3cret', 'arn:s')).toThrow(/arn:s is not JSON/);
    expect(() => parseSaslSecret('{"username":"dash"}', 'arn:s')).toThrow(/username.*password/);
    for (const bad of ['s3cret', '{"username":"dash","password":""}']) {
      try {
        parseSaslSecret(bad, 'arn:s');
      } catch (error) {
        expect(String(error)).not.toContain('s3cret');
      }
    }
  });

  it('refuses an auth mode it does not know, naming where it came from', () => {
    expect(parseKafkaAuth('sasl-scram-512', 'KAFKA_AUTH')).toBe('sasl-scram-512');
    expect(() => parseKafkaAuth('aws', 'KAFKA_AUTH')).toThrow(/KAFKA_AUTH must be one of iam, sasl-scram-512/);
  });
});
