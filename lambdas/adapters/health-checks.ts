/** Health checks of the AWS dependencies. */
import { GetConnectionCommand, type ApiGatewayManagementApiClient } from '@aws-sdk/client-apigatewaymanagementapi';
import { GetCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { HealthCheck } from '../core/health';

/**
 * The connection id the Management API check asks about: shaped like a real one (16 characters
 * of base64) so that API Gateway answers "gone" rather than rejecting the id as malformed.
 */
export const PROBE_CONNECTION_ID = 'AAAAAAAAAAAAAAA=';

/** DynamoDB answers a read of the table (a key that does not exist costs half a read unit). */
export function dynamoCheck(doc: DynamoDBDocumentClient, tableName: string, key: Record<string, string>): HealthCheck {
  return async () => {
    await doc.send(new GetCommand({ TableName: tableName, Key: key }));
  };
}

/**
 * The Management API answers and this function may call it: up only on 410 for the probe id
 * (the call was authorized and the connection is unknown) or 200. A 403 is the failure the check
 * exists for: the role lacks `execute-api:ManageConnections`, or the callback URL names another
 * API or stage.
 */
export function managementApiCheck(client: ApiGatewayManagementApiClient): HealthCheck {
  return async () => {
    try {
      await client.send(new GetConnectionCommand({ ConnectionId: PROBE_CONNECTION_ID }));
    } catch (error) {
      const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      if ((error as Error).name === 'GoneException' || status === 410) return;
      if (status === 403) {
        throw new Error(
          'Management API refused GetConnection (403): the role lacks execute-api:ManageConnections (GET) on this stage, ' +
            'or WS_CALLBACK_URL names another API or stage',
          { cause: error },
        );
      }
      throw error;
    }
  };
}
