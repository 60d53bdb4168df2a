/** Posting to connections through the API Gateway Management API. */
import {
  GoneException,
  PostToConnectionCommand,
  type ApiGatewayManagementApiClient,
} from '@aws-sdk/client-apigatewaymanagementapi';
import { backoffDelay } from '../core/backoff';
import { sleep } from '../core/concurrency';
import type { Poster, PostOutcome } from '../core/ports';

/** Options of {@link ManagementApiPoster}. */
export interface ManagementApiPosterOptions {
  /** Retries of a throttled (429) or 5xx post. Default 4. */
  maxRetries?: number;
  /** Backoff base, ms. Default 50. */
  baseDelayMs?: number;
  /** Backoff cap, ms. Default 1000. */
  maxDelayMs?: number;
}

function isRetryable(error: unknown): boolean {
  const e = error as { name?: string; $metadata?: { httpStatusCode?: number }; $retryable?: unknown };
  const status = e?.$metadata?.httpStatusCode ?? 0;
  return (
    e?.name === 'LimitExceededException' ||
    e?.name === 'TooManyRequestsException' ||
    e?.name === 'ThrottlingException' ||
    status === 429 ||
    status >= 500 ||
    e?.name === 'TimeoutError' ||
    (error as NodeJS.ErrnoException)?.code === 'ECONNRESET'
  );
}

function isGone(error: unknown): boolean {
  const e = error as { name?: string; $metadata?: { httpStatusCode?: number } };
  return error instanceof GoneException || e?.name === 'GoneException' || e?.$metadata?.httpStatusCode === 410;
}

/**
 * {@link Poster} over a Management API client. The client should be built with `maxAttempts: 1`
 * so that throttling is retried here, with full-jitter backoff, and counted.
 */
export class ManagementApiPoster implements Poster {
  calls = 0;
  private readonly maxRetries: number;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly encoder = new TextEncoder();

  constructor(
    private readonly client: ApiGatewayManagementApiClient,
    options: ManagementApiPosterOptions = {},
  ) {
    this.maxRetries = options.maxRetries ?? 4;
    this.baseDelayMs = options.baseDelayMs ?? 50;
    this.maxDelayMs = options.maxDelayMs ?? 1000;
  }

  async post(connectionId: string, text: string): Promise<{ outcome: PostOutcome; retries: number; error?: string }> {
    const data = this.encoder.encode(text);
    for (let attempt = 0; ; attempt++) {
      try {
        this.calls++;
        await this.client.send(new PostToConnectionCommand({ ConnectionId: connectionId, Data: data }));
        return { outcome: 'ok', retries: attempt };
      } catch (error) {
        if (isGone(error)) return { outcome: 'gone', retries: attempt };
        if (attempt < this.maxRetries && isRetryable(error)) {
          await sleep(backoffDelay(attempt + 1, { baseMs: this.baseDelayMs, capMs: this.maxDelayMs }) + 1);
          continue;
        }
        const e = error as { name?: string; message?: string };
        return { outcome: 'failed', retries: attempt, error: `${e?.name ?? 'Error'}: ${e?.message ?? String(error)}` };
      }
    }
  }
}
