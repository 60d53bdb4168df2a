/**
 * The lean post path: PostToConnection as a SigV4-signed HTTP request over undici's pool of
 * keep-alive connections, without the SDK's middleware stack, which costs several times the request itself (see
 * the README's benchmarks). Signing is `@smithy/signature-v4`, the SDK's own signer, with its
 * signing-key cache; the body and its SHA-256 are computed once per distinct message, however
 * many connections it goes to. Outcomes are those of {@link ManagementApiPoster}: 410 is `gone`,
 * 429 and 5xx are retried with full jitter, anything else (403 included) fails at once.
 */
import { createHash } from 'node:crypto';
import type { ApiGatewayManagementApiClient } from '@aws-sdk/client-apigatewaymanagementapi';
import { Hash } from '@smithy/hash-node';
import { SignatureV4 } from '@smithy/signature-v4';
import { Pool } from 'undici';
import { backoffDelay } from '../core/backoff';
import { sleep } from '../core/concurrency';
import { errorMessage } from '../core/errors';
import type { Poster, PostOutcome } from '../core/ports';

/** Options of {@link SignedPoster}. */
export interface SignedPosterOptions {
  /** Connections to the Management API; at least the posts in flight. Default 512. */
  maxSockets?: number;
  /** Time a post may take before it is abandoned and retried, ms. Default 5000. */
  timeoutMs?: number;
  /** Retries of a throttled (429) or 5xx post. Default 4. */
  maxRetries?: number;
  /** Backoff base, ms. Default 50. */
  baseDelayMs?: number;
  /** Backoff cap, ms. Default 1000. */
  maxDelayMs?: number;
  /** The signing clock. Default `Date.now`. */
  now?: () => number;
}

/** Messages whose body and hash are kept for reuse: a batch posts a few distinct messages to many. */
const PREPARED_CACHE_SIZE = 64;
/** Credentials are fetched again this long before they expire. */
const CREDENTIALS_REFRESH_MS = 5 * 60_000;

interface Prepared {
  body: Buffer;
  length: string;
  hash: string;
}

interface Target {
  pool: Pool;
  protocol: string;
  hostname: string;
  port?: number;
  host: string;
  basePath: string;
}

/** A response as far as the outcome needs it. */
interface Reply {
  status: number;
  errorType: string;
  body: string;
}

/** Credentials as the Management API client resolves them. */
type Credentials = Awaited<ReturnType<ApiGatewayManagementApiClient['config']['credentials']>>;

const retryable = (status: number) => status === 429 || status >= 500;

/**
 * {@link Poster} over signed HTTP requests. It takes the stage's Management API client for its
 * endpoint, region and credentials (the rare calls, GetConnection and DeleteConnection, stay on
 * that client).
 */
export class SignedPoster implements Poster {
  calls = 0;
  private readonly maxRetries: number;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly timeoutMs: number;
  private readonly maxSockets: number;
  private readonly now: () => number;
  private readonly prepared = new Map<string, Prepared>();
  private ready?: { target: Target; signer: SignatureV4 };
  private setting?: Promise<{ target: Target; signer: SignatureV4 }>;
  private credentials?: Credentials;

  constructor(
    private readonly client: ApiGatewayManagementApiClient,
    options: SignedPosterOptions = {},
  ) {
    this.maxRetries = options.maxRetries ?? 4;
    this.baseDelayMs = options.baseDelayMs ?? 50;
    this.maxDelayMs = options.maxDelayMs ?? 1000;
    this.timeoutMs = options.timeoutMs ?? 5000;
    this.maxSockets = options.maxSockets ?? 512;
    this.now = options.now ?? Date.now;
  }

  async post(connectionId: string, text: string): Promise<{ outcome: PostOutcome; retries: number; error?: string }> {
    const message = this.prepare(text);
    for (let attempt = 0; ; attempt++) {
      let reply: Reply;
      try {
        this.calls++;
        reply = await this.send(connectionId, message);
      } catch (error) {
        // A reset or timed-out socket is worth another try, as the SDK's retry strategy has it.
        if (attempt < this.maxRetries) {
          await sleep(backoffDelay(attempt + 1, { baseMs: this.baseDelayMs, capMs: this.maxDelayMs }) + 1);
          continue;
        }
        return { outcome: 'failed', retries: attempt, error: errorMessage(error) };
      }
      if (reply.status >= 200 && reply.status < 300) return { outcome: 'ok', retries: attempt };
      if (reply.status === 410) return { outcome: 'gone', retries: attempt };
      if (retryable(reply.status) && attempt < this.maxRetries) {
        await sleep(backoffDelay(attempt + 1, { baseMs: this.baseDelayMs, capMs: this.maxDelayMs }) + 1);
        continue;
      }
      return { outcome: 'failed', retries: attempt, error: `${reply.errorType || `HTTP ${reply.status}`}: ${reply.body.slice(0, 200)}` };
    }
  }

  /** Closes the pooled sockets. */
  async destroy(): Promise<void> {
    await (await this.setting?.catch(() => undefined))?.target.pool.destroy();
  }

  private prepare(text: string): Prepared {
    let prepared = this.prepared.get(text);
    if (!prepared) {
      if (this.prepared.size >= PREPARED_CACHE_SIZE) this.prepared.clear();
      const body = Buffer.from(text, 'utf8');
      prepared = { body, length: String(body.length), hash: createHash('sha256').update(body).digest('hex') };
      this.prepared.set(text, prepared);
    }
    return prepared;
  }

  private async resolveTarget(): Promise<Target> {
    const endpoint = await this.client.config.endpoint?.();
    if (!endpoint) throw new Error('the Management API client has no endpoint: build it with the stage callback URL');
    const host = endpoint.port ? `${endpoint.hostname}:${endpoint.port}` : endpoint.hostname;
    return {
      // undici over node:http: about a third less CPU per request, measured in bench/post-cost.ts.
      pool: new Pool(`${endpoint.protocol}//${host}`, {
        connections: this.maxSockets,
        pipelining: 1,
        headersTimeout: this.timeoutMs,
        bodyTimeout: this.timeoutMs,
        connectTimeout: Math.min(this.timeoutMs, 3000),
      }),
      protocol: endpoint.protocol,
      hostname: endpoint.hostname,
      port: endpoint.port,
      host,
      basePath: (endpoint.path ?? '').replace(/\/$/, ''),
    };
  }

  /** Credentials, refreshed shortly before they expire; resolved once, not per post. */
  private credentialsNow(): Credentials | Promise<Credentials> {
    const cached = this.credentials;
    if (cached && (!cached.expiration || cached.expiration.getTime() - this.now() > CREDENTIALS_REFRESH_MS)) return cached;
    return this.client.config.credentials().then((credentials) => (this.credentials = credentials));
  }

  private async setUp(): Promise<{ target: Target; signer: SignatureV4 }> {
    const [target, region] = await Promise.all([this.resolveTarget(), this.client.config.region()]);
    const signer = new SignatureV4({
      service: 'execute-api',
      region,
      sha256: Hash.bind(null, 'sha256'),
      credentials: () => Promise.resolve(this.credentialsNow()),
    });
    return { target, signer };
  }

  private async send(connectionId: string, message: Prepared): Promise<Reply> {
    if (!this.ready) {
      this.setting ??= this.setUp();
      this.ready = await this.setting.catch((error: unknown) => {
        this.setting = undefined;
        throw error;
      });
    }
    const { target, signer } = this.ready;
    const path = `${target.basePath}/@connections/${encodeURIComponent(connectionId)}`;
    const signed = await signer.sign(
      {
        method: 'POST',
        protocol: target.protocol,
        hostname: target.hostname,
        port: target.port,
        path,
        query: {},
        headers: {
          host: target.host,
          'content-type': 'application/octet-stream',
          'content-length': message.length,
          // Hashed once per message; the signer takes a hash it is given instead of hashing again.
          'x-amz-content-sha256': message.hash,
        },
      },
      { signingDate: new Date(this.now()) },
    );
    const res = await target.pool.request({ method: 'POST', path, headers: signed.headers, body: message.body });
    const status = res.statusCode;
    if (status < 300 || status === 410) {
      // Nothing in the body changes the outcome: drained, not read.
      await res.body.dump();
      return { status, errorType: '', body: '' };
    }
    return {
      status,
      errorType: String(res.headers['x-amzn-errortype'] ?? '').split(':')[0],
      body: await res.body.text(),
    };
  }
}
