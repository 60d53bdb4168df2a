/** GET /health on the HTTP API: the state of each dependency, 200 or 503. */
import type { APIGatewayProxyResultV2 } from 'aws-lambda';
import { createDocumentClient, createManagementClient } from '../adapters/clients';
import { dynamoCheck, managementApiCheck } from '../adapters/health-checks';
import { checkHealth, healthStatusCode, type HealthCheck } from '../core/health';
import { ENV } from '../config/env-names';
import { requireEnv } from '../config/config';
import { lazy } from './defaults';

/** Builds the health handler over named checks. */
export function createHealthHandler(checks: Record<string, HealthCheck>) {
  return async (): Promise<APIGatewayProxyResultV2> => {
    const report = await checkHealth(checks);
    return {
      statusCode: healthStatusCode(report),
      headers: { 'content-type': 'application/json', 'cache-control': 'no-store' },
      body: JSON.stringify(report),
    };
  };
}

export const handler = lazy(() => {
  const doc = createDocumentClient();
  return createHealthHandler({
    dynamodb: dynamoCheck(doc, requireEnv(ENV.connectionsTable), { connectionId: 'health-check' }),
    managementApi: managementApiCheck(createManagementClient(requireEnv(ENV.callbackUrl))),
  });
});
