/**
 * How a function that reads Kafka itself (the replay reader, ../handlers/replay.ts) signs in to
 * the brokers, for each way the stack's event source mapping does (infra/config.ts `kafkaAuth`):
 * - `iam` (MSK): SASL/OAUTHBEARER with an MSK IAM token, a SigV4-presigned
 *   `kafka-cluster:Connect` URL signed with the function role's credentials by AWS's
 *   aws-msk-iam-sasl-signer-js (kafkajs's own `aws` mechanism is not MSK's and is refused);
 * - `sasl-scram-512`, `sasl-scram-256`, `basic` (SASL/PLAIN): the `username` and `password` of the
 *   Secrets Manager secret the event source mapping uses;
 * - `none`: no SASL and no TLS (brokers reachable only inside a VPC).
 * Every SASL mode runs over TLS, as Lambda's event source mapping requires.
 */
import { generateAuthTokenFromCredentialsProvider } from 'aws-msk-iam-sasl-signer-js';
import type { SASLOptions } from 'kafkajs';
import { ConfigError } from '../core/errors';
import type { Credentials } from './signed-http';

/** The ways to authenticate to Kafka, as the stack names them (infra/config.ts `KafkaAuth`). */
export const KAFKA_AUTH_MODES = ['iam', 'sasl-scram-512', 'sasl-scram-256', 'basic', 'none'] as const;
export type KafkaAuthMode = (typeof KAFKA_AUTH_MODES)[number];

/** An auth mode by name, or a {@link ConfigError} naming the variable it came from. */
export function parseKafkaAuth(value: string, source: string): KafkaAuthMode {
  if (!(KAFKA_AUTH_MODES as readonly string[]).includes(value)) {
    throw new ConfigError(`${source} must be one of ${KAFKA_AUTH_MODES.join(', ')}; got "${value}"`);
  }
  return value as KafkaAuthMode;
}

/** Whether a mode needs the credentials secret. */
export function needsSecret(auth: KafkaAuthMode): boolean {
  return auth !== 'iam' && auth !== 'none';
}

/** Username and password of a SASL secret. */
export interface SaslCredentials {
  username: string;
  password: string;
}

/**
 * The credentials a SASL secret holds: JSON `{"username": ..., "password": ...}`, the form Lambda's
 * event source mapping reads. The message never quotes the secret's value.
 */
export function parseSaslSecret(secretString: string, secretId: string): SaslCredentials {
  let value: unknown;
  try {
    value = JSON.parse(secretString);
  } catch (error) {
    throw new ConfigError(`secret ${secretId} is not JSON; it must hold {"username": "...", "password": "..."}`, { cause: error });
  }
  const { username, password } = (value ?? {}) as Record<string, unknown>;
  if (typeof username !== 'string' || typeof password !== 'string' || !username || !password) {
    throw new ConfigError(`secret ${secretId} must hold {"username": "...", "password": "..."} with both non-empty`);
  }
  return { username, password };
}

/** What {@link kafkaSecurity} needs for the mode at hand. */
export interface KafkaSecurityInputs {
  /** SASL/SCRAM and SASL/PLAIN: the secret's credentials. */
  credentials?: SaslCredentials;
  /** `iam`: makes a fresh MSK IAM token (see {@link mskIamToken}). */
  iamToken?: () => Promise<string>;
}

/** TLS and the kafkajs SASL options of a mode. */
export function kafkaSecurity(auth: KafkaAuthMode, inputs: KafkaSecurityInputs): { ssl: boolean; sasl?: SASLOptions } {
  if (auth === 'none') return { ssl: false };
  if (auth === 'iam') {
    const token = inputs.iamToken;
    if (!token) throw new ConfigError('kafka auth iam needs a token provider');
    // kafkajs asks again on every new connection and re-authentication, so a token never outlives its 15 minutes.
    return { ssl: true, sasl: { mechanism: 'oauthbearer', oauthBearerProvider: async () => ({ value: await token() }) } };
  }
  const credentials = inputs.credentials;
  if (!credentials) throw new ConfigError(`kafka auth ${auth} needs the username and password of its secret`);
  const mechanism = auth === 'basic' ? 'plain' : auth === 'sasl-scram-512' ? 'scram-sha-512' : 'scram-sha-256';
  return { ssl: true, sasl: { mechanism, username: credentials.username, password: credentials.password } };
}

/** Options of {@link mskIamToken}. */
export interface MskIamTokenOptions {
  /** The cluster's region. */
  region: string;
  /** The signing credentials (the function role's). */
  credentials: Credentials;
}

/**
 * An MSK IAM token: a `kafka-cluster:Connect` URL presigned with SigV4 for 15 minutes,
 * base64url-encoded, made by AWS's signer library for MSK IAM.
 */
export async function mskIamToken(options: MskIamTokenOptions): Promise<string> {
  const { token } = await generateAuthTokenFromCredentialsProvider({ region: options.region, awsCredentialsProvider: async () => options.credentials });
  return token;
}
