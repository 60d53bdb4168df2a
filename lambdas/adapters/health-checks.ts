/** Health checks of the AWS dependencies. */
import { GetConnectionCommand, type ApiGatewayManagementApiClient } from '@aws-sdk/client-apigatewaymanagementapi';
import { GetCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { HealthCheck } from '../core/health';

/** DynamoDB answers a read of the table (a key that does not exist costs half a read unit). */
export function dynamoCheck(doc: DynamoDBDocumentClient, tableName: string, key: Record<string, string>): HealthCheck {
  return async () => {
    await doc.send(new GetCommand({ TableName: tableName, Key: key }));
  };
}

/** The Management API answers: a 410 for a connection that does not exist means it is up. */
export function managementApiCheck(client: ApiGatewayManagementApiClient): HealthCheck {
  return async () => {
    try {
      await client.send(new GetConnectionCommand({ ConnectionId: 'health-check' }));
    } catch (error) {
      const e = error as { name?: string; $metadata?: { httpStatusCode?: number } };
      if (e.name === 'GoneException' || e.$metadata?.httpStatusCode === 410 || e.name === 'ForbiddenException') return;
      throw error;
    }
  };
}
