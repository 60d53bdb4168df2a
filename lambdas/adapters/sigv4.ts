/**
 * SigV4 for the POSTs of the two hot paths (the lean poster and the lean DynamoDB client): the
 * headers `@smithy/signature-v4` returns for a POST without a query string, computed without its
 * layers. Profiled under 1,000 operators, the SDK's signer was 11 % of the runtime's CPU: 37 µs a
 * post, of which the signing key's cache lookup alone is an HMAC, and every step an awaited
 * promise with its byte conversions. Here a post costs one SHA-256 and one HMAC (about 8 µs): the
 * signing key is kept for its day and credentials, and the date is formatted once a second.
 * `test/unit/sigv4.test.ts` holds it equal to the SDK's signer on generated requests.
 */
import { createHash, createHmac } from 'node:crypto';

/** Headers SigV4 never signs (the SDK signer's list), and the patterns it skips. */
const UNSIGNABLE = new Set([
  'authorization',
  'cache-control',
  'connection',
  'expect',
  'from',
  'keep-alive',
  'max-forwards',
  'pragma',
  'referer',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'user-agent',
  'x-amzn-trace-id',
]);
const unsignable = (name: string) => UNSIGNABLE.has(name) || name.startsWith('proxy-') || name.startsWith('sec-');
/** Headers the signer makes: any the caller gave are dropped, as the SDK signer drops them. */
const GENERATED = new Set(['authorization', 'x-amz-date', 'date']);

/** The parts of an SDK client's credentials that signing uses. */
export interface SigningCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

/** RFC 3986 encoding as SigV4 wants it: `encodeURIComponent` and `!'()*` as well. */
const escapeUri = (text: string) => encodeURIComponent(text).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/**
 * The canonical path of a service other than S3: `.`, `..` and empty segments resolved, then
 * URI-encoded once more, slashes kept.
 */
function canonicalPath(path: string): string {
  const segments: string[] = [];
  for (const segment of path.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') segments.pop();
    else segments.push(segment);
  }
  const normalized = `${path.startsWith('/') ? '/' : ''}${segments.join('/')}${segments.length > 0 && path.endsWith('/') ? '/' : ''}`;
  return escapeUri(normalized).replace(/%2F/g, '/');
}

/** A header value as SigV4 signs it: line breaks and runs of blanks made one space, ends trimmed. */
const canonicalValue = (value: string) =>
  /[\r\n\t]| {2}|^ | $/.test(value) ? value.replace(/[\r\n]/g, ' ').replace(/[ \t]+/g, ' ').replace(/^ | $/g, '') : value;

/** Signs POSTs to one service in one region. */
export class PostSigner {
  private key?: { day: string; secret: string; value: Buffer };
  private second = NaN;
  private longDate = '';

  constructor(
    private readonly region: string,
    private readonly service: string,
  ) {}

  /**
   * The request's headers with `x-amz-date`, the session token and `authorization` added. Header
   * names are lower case; `x-amz-content-sha256` must be among them (the payload's hash, which is
   * signed as given).
   */
  sign(credentials: SigningCredentials, host: string, path: string, headers: Readonly<Record<string, string>>, now: number): Record<string, string> {
    if (typeof credentials?.accessKeyId !== 'string' || typeof credentials.secretAccessKey !== 'string') {
      throw new Error('Resolved credential object is not valid');
    }
    const payloadHash = headers['x-amz-content-sha256'];
    if (payloadHash === undefined) throw new Error('x-amz-content-sha256 must be given: the payload is signed by its hash');
    const second = Math.floor(now / 1000);
    if (second !== this.second) {
      this.second = second;
      this.longDate = new Date(second * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z').replace(/[-:]/g, '');
    }
    const longDate = this.longDate;
    const day = longDate.slice(0, 8);
    const signed: Record<string, string> = { host };
    for (const name of Object.keys(headers)) if (!GENERATED.has(name)) signed[name] = headers[name];
    signed['x-amz-date'] = longDate;
    if (credentials.sessionToken) signed['x-amz-security-token'] = credentials.sessionToken;

    const names = Object.keys(signed)
      .filter((name) => signed[name] != null && !unsignable(name))
      .sort();
    let canonicalHeaders = '';
    for (const name of names) canonicalHeaders += `${name}:${canonicalValue(signed[name])}\n`;
    const signedHeaders = names.join(';');
    const canonicalRequest = `POST\n${canonicalPath(path)}\n\n${canonicalHeaders}\n${signedHeaders}\n${payloadHash}`;
    const scope = `${day}/${this.region}/${this.service}/aws4_request`;
    const stringToSign = `AWS4-HMAC-SHA256\n${longDate}\n${scope}\n${createHash('sha256').update(canonicalRequest).digest('hex')}`;
    const signature = createHmac('sha256', this.signingKey(day, credentials.secretAccessKey)).update(stringToSign).digest('hex');
    signed.authorization = `AWS4-HMAC-SHA256 Credential=${credentials.accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`;
    return signed;
  }

  /** The day's signing key for these credentials, derived once. */
  private signingKey(day: string, secret: string): Buffer {
    const cached = this.key;
    if (cached && cached.day === day && cached.secret === secret) return cached.value;
    let value = createHmac('sha256', `AWS4${secret}`).update(day).digest();
    for (const part of [this.region, this.service, 'aws4_request']) value = createHmac('sha256', value).update(part).digest();
    this.key = { day, secret, value };
    return value;
  }
}
