/**
 * The lean signer of the hot paths against the SDK's own signer (`@smithy/signature-v4`, what
 * every AWS SDK v3 client signs with): on generated POSTs (any connection id, paths with `.`
 * and `..`, header values with blanks and line breaks, session tokens, dates over the years) both
 * give the same headers, signature included.
 */
import { createHash } from 'node:crypto';
import { Hash } from '@smithy/hash-node';
import { SignatureV4 } from '@smithy/signature-v4';
import fc from 'fast-check';
import { PostSigner } from '../../lambdas/adapters/sigv4';

const hex64 = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((bytes) => Buffer.from(bytes).toString('hex'));
const credentials = fc.record(
  {
    accessKeyId: fc.stringMatching(/^[A-Z0-9]{16,20}$/),
    secretAccessKey: fc.string({ minLength: 1, maxLength: 40 }),
    sessionToken: fc.string({ minLength: 1, maxLength: 60 }),
  },
  { requiredKeys: ['accessKeyId', 'secretAccessKey'] },
);
/** A post's path as the lean poster builds it, or the DynamoDB endpoint's, or one with dot segments. */
const path = fc.oneof(
  fc
    .tuple(fc.constantFrom('', '/prod', '/local', '/a b/stage'), fc.string({ unit: 'grapheme', minLength: 1, maxLength: 24 }))
    .map(([base, id]) => `${base}/@connections/${encodeURIComponent(id)}`),
  fc.constant('/'),
  fc.array(fc.constantFrom('.', '..', '', 'a', '@connections', 'x%3D', "it's(*)!"), { maxLength: 6 }).map((parts) => `/${parts.join('/')}`),
);
const headerValue = fc.string({ unit: fc.constantFrom('a', 'B', ' ', '\t', '\r', '\n', '/', '=', 'é', '1'), maxLength: 20 });
const headers = fc.record(
  {
    'content-type': headerValue,
    'content-length': fc.nat().map(String),
    'x-amz-target': fc.constantFrom('DynamoDB_20120810.UpdateItem', 'DynamoDB_20120810.BatchGetItem'),
    'user-agent': headerValue,
    'x-amz-date': fc.constant('19990101T000000Z'),
    date: fc.constant('Fri, 01 Jan 1999 00:00:00 GMT'),
    'sec-fetch-mode': headerValue,
  },
  { requiredKeys: ['content-type'] },
);
const now = fc.integer({ min: Date.UTC(2020, 0, 1), max: Date.UTC(2035, 11, 31) });

it('signs a POST exactly as the SDK signer does', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom('eu-west-1', 'us-east-1', 'local'),
      fc.constantFrom('execute-api', 'dynamodb'),
      credentials,
      fc.constantFrom('abc123.execute-api.eu-west-1.amazonaws.com', '127.0.0.1:8081', 'dynamodb.us-east-1.amazonaws.com'),
      path,
      headers,
      hex64,
      now,
      async (region, service, creds, host, requestPath, given, payloadHash, at) => {
        const withHash = { ...given, 'x-amz-content-sha256': payloadHash };
        const sdk = new SignatureV4({ service, region, sha256: Hash.bind(null, 'sha256'), credentials: creds });
        const expected = await sdk.sign(
          { method: 'POST', protocol: 'https:', hostname: host.split(':')[0], path: requestPath, query: {}, headers: { host, ...withHash } },
          { signingDate: new Date(at) },
        );
        expect(new PostSigner(region, service).sign(creds, host, requestPath, withHash, at)).toEqual(expected.headers);
      },
    ),
    { numRuns: 300 },
  );
});

it('keeps its signing key and date right across calls, days and credentials', async () => {
  const signer = new PostSigner('eu-west-1', 'execute-api');
  const hash = createHash('sha256').update('{}').digest('hex');
  const first = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret-1' };
  const second = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret-2', sessionToken: 'token' };
  const midnight = Date.UTC(2026, 11, 3, 23, 59, 59, 900);
  // Across midnight, back, a credentials change and back: the cached key and date are never stale.
  for (const [creds, at] of [
    [first, midnight],
    [first, midnight + 200],
    [first, midnight],
    [second, midnight + 200],
    [first, midnight + 200],
  ] as const) {
    const sdk = new SignatureV4({ service: 'execute-api', region: 'eu-west-1', sha256: Hash.bind(null, 'sha256'), credentials: creds });
    const headers = { 'content-type': 'application/octet-stream', 'x-amz-content-sha256': hash };
    const expected = await sdk.sign(
      { method: 'POST', protocol: 'https:', hostname: 'h', path: '/prod/@connections/c%3D', query: {}, headers: { host: 'h', ...headers } },
      { signingDate: new Date(at) },
    );
    expect(signer.sign(creds, 'h', '/prod/@connections/c%3D', headers, at)).toEqual(expected.headers);
  }
});

it('refuses credentials it cannot sign with, and a payload without its hash', () => {
  const signer = new PostSigner('eu-west-1', 'dynamodb');
  const hash = { 'x-amz-content-sha256': 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855' };
  expect(() => signer.sign({ accessKeyId: 'A' } as never, 'h', '/', hash, 0)).toThrow('Resolved credential object is not valid');
  expect(() => signer.sign({ accessKeyId: 'A', secretAccessKey: 'S' }, 'h', '/', {}, 0)).toThrow(/x-amz-content-sha256/);
});
