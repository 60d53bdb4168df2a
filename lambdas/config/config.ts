/** Reads the Lambdas' configuration from the environment once, failing with a message that says what to set. */
import { ConfigError } from '../core/errors';
import { ENV, type EnvName } from './env-names';

const HINTS: Partial<Record<EnvName, string>> = {
  [ENV.connectionsTable]: 'the name of the connections table (the CDK stack sets it; `npm start` sets it locally)',
  [ENV.subscriptionsTable]: 'the name of the subscription index table',
  [ENV.metricsTable]: 'the name of the metrics table',
  [ENV.alertsTable]: 'the name of the alerts table',
  [ENV.latestTable]: 'the name of the latest readings table',
  [ENV.jwtIssuer]: 'the OpenID Connect issuer URL, e.g. https://cognito-idp.{region}.amazonaws.com/{userPoolId}',
  [ENV.jwtAudience]: "the dashboard's OpenID Connect client id",
  [ENV.callbackUrl]: "the WebSocket stage's callback URL, https://{apiId}.execute-api.{region}.amazonaws.com/{stage}",
};

/** The value of a required variable, or a {@link ConfigError} naming it. */
export function requireEnv(name: EnvName, env: NodeJS.ProcessEnv = process.env): string {
  const value = env[name];
  if (value === undefined || value.trim() === '') {
    throw new ConfigError(`Environment variable ${name} is not set: set it to ${HINTS[name] ?? 'a value'}.`);
  }
  return value.trim();
}

/** The value of an optional variable. */
export function optionalEnv(name: EnvName, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const value = env[name]?.trim();
  return value ? value : undefined;
}

/** A positive integer variable, or its default. */
export function intEnv(name: EnvName, fallback: number, env: NodeJS.ProcessEnv = process.env): number {
  const value = optionalEnv(name, env);
  if (value === undefined) return fallback;
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed <= 0) {
    throw new ConfigError(`Environment variable ${name} must be a positive integer, got "${value}".`);
  }
  return parsed;
}
