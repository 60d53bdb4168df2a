/** GET /metrics on the HTTP API: the aggregated metrics in Prometheus text format 0.0.4. */
import { timingSafeEqual } from 'node:crypto';
import type { APIGatewayProxyEventV2, APIGatewayProxyResultV2 } from 'aws-lambda';
import type { SecretStore } from '../adapters/secrets';
import { renderPrometheus } from '../core/metrics';
import type { Log } from '../core/ports';
import { ENV } from '../config/env-names';
import { optionalEnv } from '../config/config';
import { ConfigError, errorMessage } from '../core/errors';
import { defaultLogger, defaultMetricsStore, defaultSecrets, lazy } from './defaults';

/** The Prometheus text format's content type. */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** True when the request carries `Authorization: Bearer <expected>`. */
export function bearerMatches(header: string | undefined, expected: string): boolean {
  if (!header?.startsWith('Bearer ')) return false;
  const given = Buffer.from(header.slice(7));
  const wanted = Buffer.from(expected);
  return given.length === wanted.length && timingSafeEqual(given, wanted);
}

/** Dependencies of the metrics handler. */
export interface MetricsHandlerDeps {
  /** The summed series. */
  read: () => Promise<Map<string, number>>;
  /**
   * The bearer token scrapes must present; it rejects when the token cannot be read. Absent means
   * an open endpoint, which {@link metricsTokenSource} allows only outside Lambda.
   */
  token?: () => Promise<string>;
  log: Pick<Log, 'error'>;
}

const UNAUTHORIZED: APIGatewayProxyResultV2 = {
  statusCode: 401,
  headers: { 'www-authenticate': 'Bearer', 'content-type': 'text/plain' },
  body: 'GET /metrics needs Authorization: Bearer <metrics token>\n',
};

/** Builds the metrics handler. */
export function createMetricsHandler(deps: MetricsHandlerDeps) {
  return async (event: Pick<APIGatewayProxyEventV2, 'headers'>): Promise<APIGatewayProxyResultV2> => {
    if (deps.token) {
      const header = event.headers?.authorization ?? event.headers?.Authorization;
      // No credentials: refused without spending a Secrets Manager call.
      if (!header) return UNAUTHORIZED;
      let expected: string;
      try {
        expected = await deps.token();
      } catch (error) {
        // Not cached: the next scrape fetches the token again.
        deps.log.error('metrics token unavailable', { error: errorMessage(error) });
        return {
          statusCode: 503,
          headers: { 'content-type': 'text/plain', 'retry-after': '5' },
          body: 'metrics token unavailable; retry\n',
        };
      }
      if (!bearerMatches(header, expected)) return UNAUTHORIZED;
    }
    return { statusCode: 200, headers: { 'content-type': PROMETHEUS_CONTENT_TYPE }, body: renderPrometheus(await deps.read()) };
  };
}

/**
 * Where the token comes from: the secret named by METRICS_TOKEN_SECRET_ARN, else METRICS_TOKEN.
 * On Lambda (AWS_LAMBDA_FUNCTION_NAME set) one of them is required: /metrics fails closed rather
 * than serving without authentication. Elsewhere (local runtime) no token means an open endpoint.
 */
export function metricsTokenSource(
  secrets: () => Pick<SecretStore, 'getString'>,
  env: NodeJS.ProcessEnv = process.env,
): (() => Promise<string>) | undefined {
  const secretArn = optionalEnv(ENV.metricsTokenSecretArn, env);
  if (secretArn) {
    const store = secrets();
    return () => store.getString(secretArn);
  }
  const token = optionalEnv(ENV.metricsToken, env);
  if (token) return async () => token;
  if (env.AWS_LAMBDA_FUNCTION_NAME) {
    throw new ConfigError(
      `Environment variable ${ENV.metricsTokenSecretArn} is not set: GET /metrics on AWS refuses to serve without a token; ` +
        'set it to the ARN of the secret holding the bearer token (the CDK stack does).',
    );
  }
  return undefined;
}

export const handler = lazy(() => {
  const store = defaultMetricsStore();
  return createMetricsHandler({ read: () => store.read(), token: metricsTokenSource(defaultSecrets), log: defaultLogger() });
});
