/**
 * The lean post path: PostToConnection as a SigV4-signed HTTP request over undici's pool of
 * keep-alive connections, without the SDK's middleware stack, which costs several times the
 * request itself (see the README's benchmarks). Signing is sigv4.ts's, held equal to the SDK's own
 * signer; the body and its SHA-256 are computed once per distinct message, however many
 * connections it goes to. Outcomes are those of {@link ManagementApiPoster}: 410 is `gone`,
 * 429 and 5xx are retried with full jitter, anything else (403 included) fails at once.
 */
import { createHash } from 'node:crypto';
import type { ApiGatewayManagementApiClient } from '@aws-sdk/client-apigatewaymanagementapi';
import { backoffDelay } from '../core/backoff';
import { sleep } from '../core/concurrency';
import { errorMessage } from '../core/errors';
import type { Poster, PostOutcome } from '../core/ports';
import { SignedEndpoint } from './signed-http';

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
interface Prepared {
  body: Buffer;
  length: string;
  hash: string;
}

/** A response as far as the outcome needs it. */
interface Reply {
  status: number;
  errorType: string;
  body: string;
}

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
  private readonly endpoint: SignedEndpoint;

  constructor(
    client: ApiGatewayManagementApiClient,
    options: SignedPosterOptions = {},
  ) {
    this.maxRetries = options.maxRetries ?? 4;
    this.baseDelayMs = options.baseDelayMs ?? 50;
    this.maxDelayMs = options.maxDelayMs ?? 1000;
    this.timeoutMs = options.timeoutMs ?? 5000;
    this.maxSockets = options.maxSockets ?? 512;
    this.now = options.now ?? Date.now;
    this.endpoint = new SignedEndpoint({
      service: 'execute-api',
      maxSockets: this.maxSockets,
      timeoutMs: this.timeoutMs,
      now: this.now,
      credentials: () => client.config.credentials(),
      region: () => client.config.region(),
      endpoint: async () => {
        const endpoint = await client.config.endpoint?.();
        if (!endpoint) throw new Error('the Management API client has no endpoint: build it with the stage callback URL');
        return new URL(`${endpoint.protocol}//${endpoint.hostname}${endpoint.port ? `:${endpoint.port}` : ''}${endpoint.path ?? '/'}`);
      },
    });
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
    await this.endpoint.destroy();
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

  private async send(connectionId: string, message: Prepared): Promise<Reply> {
    const { target, signer } = await this.endpoint.get();
    const path = `${target.path.replace(/\/$/, '')}/@connections/${encodeURIComponent(connectionId)}`;
    const headers = await this.endpoint.signPost(target, signer, path, {
      'content-type': 'application/octet-stream',
      'content-length': message.length,
      // Hashed once per message; the signer takes a hash it is given instead of hashing again.
      'x-amz-content-sha256': message.hash,
    });
    return new Promise<Reply>((resolve, reject) => {
      let status = 0;
      let errorType = '';
      let chunks: Buffer[] | undefined;
      target.pool.dispatch(
        { method: 'POST', path, headers, body: message.body },
        {
          // undici takes a handler as of its current interface when it has this method.
          onRequestStart() {},
          onResponseStart(_controller, statusCode, responseHeaders) {
            // 1xx answers come before the final one.
            if (statusCode < 200) return;
            status = statusCode;
            // Nothing in the body of a success or a 410 changes the outcome: it is not kept.
            if (statusCode >= 300 && statusCode !== 410) {
              errorType = String(responseHeaders['x-amzn-errortype'] ?? '').split(':')[0];
              chunks = [];
            }
          },
          onResponseData(_controller, chunk) {
            chunks?.push(chunk);
          },
          onResponseEnd() {
            resolve({ status, errorType, body: chunks ? Buffer.concat(chunks).toString('utf8') : '' });
          },
          onResponseError(_controller, error) {
            reject(error);
          },
        },
      );
    });
  }
}
