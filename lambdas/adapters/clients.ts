/**
 * AWS SDK v3 clients, built once per container. Endpoints are never in source: the SDK reads
 * `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_DYNAMODB` itself, and the Management API endpoint is the
 * stage's callback URL, so the same code runs on AWS, on the local runtime and on LocalStack.
 */
import http from 'node:http';
import https from 'node:https';
import { ApiGatewayManagementApiClient } from '@aws-sdk/client-apigatewaymanagementapi';
import { DynamoDBClient, type DynamoDBClientConfig } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { LeanDocumentClient } from './lean-dynamo';

/** Keep-alive agents: a fan-out makes hundreds of requests to one host per invocation. */
function keepAliveHandler(maxSockets: number): NodeHttpHandler {
  return new NodeHttpHandler({
    httpAgent: new http.Agent({ keepAlive: true, maxSockets }),
    httpsAgent: new https.Agent({ keepAlive: true, maxSockets }),
    connectionTimeout: 3000,
    requestTimeout: 10000,
  });
}

/** A DynamoDB document client; `config` overrides (endpoint, credentials) for local use. */
export function createDocumentClient(config: DynamoDBClientConfig = {}): DynamoDBDocumentClient {
  const client = new DynamoDBClient({ requestHandler: keepAliveHandler(64), ...config });
  return DynamoDBDocumentClient.from(client, {
    marshallOptions: { removeUndefinedValues: true, convertEmptyValues: false },
  });
}

/**
 * The lean document client for the hot calls (lambdas/adapters/lean-dynamo.ts): the same endpoint,
 * region and credentials as {@link createDocumentClient}'s, without the SDK's middleware per call.
 */
export function createLeanDocumentClient(config: DynamoDBClientConfig = {}): LeanDocumentClient {
  return new LeanDocumentClient(new DynamoDBClient(config), { maxSockets: 64 });
}

/**
 * A Management API client for one stage. `maxAttempts: 1` because the poster retries throttling
 * itself, with jitter, and counts the retries.
 */
export function createManagementClient(
  endpoint: string,
  config: Partial<ConstructorParameters<typeof ApiGatewayManagementApiClient>[0]> = {},
  maxSockets = 64,
): ApiGatewayManagementApiClient {
  return new ApiGatewayManagementApiClient({
    endpoint,
    maxAttempts: 1,
    requestHandler: keepAliveHandler(maxSockets),
    ...config,
  });
}
