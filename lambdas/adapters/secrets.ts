/**
 * Secrets Manager values for the Lambdas, through one adapter: each value is cached for
 * `maxAgeMs` after a successful fetch, and never after a failed one, so one throttled or failed
 * call costs one request its answer rather than every request of the container's life.
 */
import { GetSecretValueCommand, type SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { AppError, errorMessage } from '../core/errors';

/** A secret could not be read, or holds no usable string; `cause` is the underlying error. */
export class SecretError extends AppError {
  constructor(
    message: string,
    /** The secret's ARN or name. */
    readonly secretId: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'SecretError';
  }
}

/** Options of {@link SecretStore}. */
export interface SecretStoreOptions {
  /** How long a fetched value is served before it is fetched again (rotation). Default 5 minutes. */
  maxAgeMs?: number;
  /** Clock, for tests. Default `Date.now`. */
  now?: () => number;
}

interface Cached {
  value: string;
  expiresAt: number;
}

/** String secrets from Secrets Manager, cached with expiry. */
export class SecretStore {
  private readonly cache = new Map<string, Cached>();
  // Concurrent cold requests share one fetch; it leaves this map when it settles, either way.
  private readonly inFlight = new Map<string, Promise<string>>();
  private readonly maxAgeMs: number;
  private readonly now: () => number;

  constructor(
    private readonly client: SecretsManagerClient,
    options: SecretStoreOptions = {},
  ) {
    this.maxAgeMs = options.maxAgeMs ?? 5 * 60_000;
    this.now = options.now ?? Date.now;
  }

  /**
   * The secret's `SecretString`, trimmed.
   * @throws SecretError when the fetch fails (with its cause) or the secret has no non-empty string.
   */
  async getString(secretId: string): Promise<string> {
    const cached = this.cache.get(secretId);
    if (cached && cached.expiresAt > this.now()) return cached.value;
    let pending = this.inFlight.get(secretId);
    if (!pending) {
      pending = this.fetch(secretId).finally(() => this.inFlight.delete(secretId));
      this.inFlight.set(secretId, pending);
    }
    return pending;
  }

  private async fetch(secretId: string): Promise<string> {
    let value: string | undefined;
    try {
      value = (await this.client.send(new GetSecretValueCommand({ SecretId: secretId }))).SecretString?.trim();
    } catch (error) {
      throw new SecretError(`could not read secret ${secretId}: ${errorMessage(error)}`, secretId, { cause: error });
    }
    if (!value) throw new SecretError(`secret ${secretId} holds no string value (binary or empty)`, secretId);
    this.cache.set(secretId, { value, expiresAt: this.now() + this.maxAgeMs });
    return value;
  }
}
