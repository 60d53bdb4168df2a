/**
 * One AWS service endpoint reached by SigV4-signed requests over undici's pool of keep-alive
 * connections, without the SDK's middleware stack: what the lean poster (signed-poster.ts) and
 * the lean DynamoDB client (lean-dynamo.ts) share. Signing is {@link PostSigner} (sigv4.ts), held
 * equal to the SDK's own signer by a test, at a fifth of its CPU; the endpoint, region and
 * credentials come from an SDK client's config, resolved once, with credentials fetched again
 * shortly before they expire.
 */
import { Pool } from 'undici';
import { PostSigner, type SigningCredentials } from './sigv4';

/** Credentials are fetched again this long before they expire. */
const CREDENTIALS_REFRESH_MS = 5 * 60_000;

/** Credentials as SDK clients resolve them: what signing takes, and when they expire. */
export interface Credentials extends SigningCredentials {
  expiration?: Date;
}

/** Where requests go: the pool and the parts of the URL the signature covers. */
export interface SignedTarget {
  pool: Pool;
  host: string;
  /** The endpoint's path, `/` when it has none. */
  path: string;
}

/** Options of {@link SignedEndpoint}. */
export interface SignedEndpointOptions {
  /** The signing name: `execute-api`, `dynamodb`. */
  service: string;
  /** Connections in the pool: at least the requests in flight. */
  maxSockets: number;
  /** Time a request may wait for its headers or body, ms. */
  timeoutMs: number;
  /** The signing clock. */
  now: () => number;
  /** The client's credentials provider. */
  credentials: () => Promise<Credentials>;
  /** The client's region. */
  region: () => Promise<string>;
  /** The endpoint to reach, given the region and the credentials (for account endpoints). */
  endpoint: (region: string, credentials: () => Promise<Credentials>) => Promise<URL>;
}

/** A signed, pooled endpoint, set up on first use; a failed set-up is tried again next time. */
export class SignedEndpoint {
  private ready?: { target: SignedTarget; signer: PostSigner };
  private setting?: Promise<{ target: SignedTarget; signer: PostSigner }>;
  private credentials?: Credentials;

  constructor(private readonly options: SignedEndpointOptions) {}

  /** The target and its signer. */
  async get(): Promise<{ target: SignedTarget; signer: PostSigner }> {
    if (this.ready) return this.ready;
    this.setting ??= this.setUp();
    this.ready = await this.setting.catch((error: unknown) => {
      this.setting = undefined;
      throw error;
    });
    return this.ready;
  }

  /** Signs a POST of `path` with these headers (`x-amz-content-sha256` among them) as of now. */
  async signPost(target: SignedTarget, signer: PostSigner, path: string, headers: Record<string, string>): Promise<Record<string, string>> {
    const credentials = this.credentialsNow();
    return signer.sign(credentials instanceof Promise ? await credentials : credentials, target.host, path, headers, this.options.now());
  }

  /** Closes the pooled sockets. */
  async destroy(): Promise<void> {
    await (await this.setting?.catch(() => undefined))?.target.pool.destroy();
  }

  /** Credentials, refreshed shortly before they expire; resolved once, not per request. */
  private credentialsNow(): Credentials | Promise<Credentials> {
    const cached = this.credentials;
    if (cached && (!cached.expiration || cached.expiration.getTime() - this.options.now() > CREDENTIALS_REFRESH_MS)) return cached;
    return this.options.credentials().then((credentials) => (this.credentials = credentials));
  }

  private async setUp(): Promise<{ target: SignedTarget; signer: PostSigner }> {
    const { maxSockets, timeoutMs, service } = this.options;
    const region = await this.options.region();
    const endpoint = await this.options.endpoint(region, () => Promise.resolve(this.credentialsNow()));
    const target: SignedTarget = {
      // undici over node:http: about a third less CPU per request, measured in bench/post-cost.ts.
      pool: new Pool(endpoint.origin, {
        connections: maxSockets,
        pipelining: 1,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
        connectTimeout: Math.min(timeoutMs, 3000),
      }),
      host: endpoint.host,
      path: endpoint.pathname || '/',
    };
    return { target, signer: new PostSigner(region, service) };
  }
}
