/** GET /metrics on the HTTP API: the aggregated metrics in Prometheus text format 0.0.4. */
import { timingSafeEqual } from 'node:crypto';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { APIGatewayProxyEventV2, APIGatewayProxyResultV2 } from 'aws-lambda';
import { renderPrometheus } from '../core/metrics';
import { ENV } from '../config/env-names';
import { optionalEnv } from '../config/config';
import { defaultMetricsStore, lazy } from './defaults';

/** The Prometheus text format's content type. */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** True when the request carries `Authorization: Bearer <expected>`. */
export function bearerMatches(header: string | undefined, expected: string): boolean {
  if (!header?.startsWith('Bearer ')) return false;
  const given = Buffer.from(header.slice(7));
  const wanted = Buffer.from(expected);
  return given.length === wanted.length && timingSafeEqual(given, wanted);
}

/** Builds the metrics handler. With no token configured, the endpoint is open (local use). */
export function createMetricsHandler(deps: { read: () => Promise<Map<string, number>>; token?: () => Promise<string | undefined> }) {
  return async (event: Pick<APIGatewayProxyEventV2, 'headers'>): Promise<APIGatewayProxyResultV2> => {
    const token = await deps.token?.();
    if (token && !bearerMatches(event.headers?.authorization ?? event.headers?.Authorization, token)) {
      return {
        statusCode: 401,
        headers: { 'www-authenticate': 'Bearer', 'content-type': 'text/plain' },
        body: 'GET /metrics needs Authorization: Bearer <metrics token>\n',
      };
    }
    return { statusCode: 200, headers: { 'content-type': PROMETHEUS_CONTENT_TYPE }, body: renderPrometheus(await deps.read()) };
  };
}

export const handler = lazy(() => {
  const store = defaultMetricsStore();
  let token: Promise<string | undefined> | undefined;
  const secretArn = optionalEnv(ENV.metricsTokenSecretArn);
  return createMetricsHandler({
    read: () => store.read(),
    token: () =>
      (token ??= secretArn
        ? new SecretsManagerClient({})
            .send(new GetSecretValueCommand({ SecretId: secretArn }))
            .then((out) => out.SecretString)
        : Promise.resolve(optionalEnv(ENV.metricsToken))),
  });
});
