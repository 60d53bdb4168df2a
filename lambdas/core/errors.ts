/**
 * The one errors module: a base class for the project's own errors, the configuration error, and
 * a safe way to read a message from anything caught. Pure, so the Lambdas, the local runtime, the
 * dashboard and the scripts share it.
 */

/**
 * Base of the project's errors: `cause` keeps the error that led to it (as Powertools' errors
 * do), so a log line shows both. Each subclass spells its `name` out, because minified bundles
 * rename classes.
 */
export class AppError extends Error {
  override name = 'AppError';

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** A setting (environment variable, CDK context value, dashboard config.json) is missing or malformed; the message names it. */
export class ConfigError extends AppError {
  override name = 'ConfigError';
}

/**
 * The message of anything a `catch` or a rejected promise delivers: an `Error`'s message, or the
 * value itself as text (a thrown string, `undefined`), never a crash on a non-Error.
 */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
