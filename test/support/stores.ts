/**
 * The product's connection store and subscription index over the local tables, as the runtime
 * builds them (local/runtime.ts), for the suites that drive the handlers or the session core
 * directly against dynalite.
 */
import { DynamoConnectionStore } from '../../lambdas/adapters/dynamo-connections';
import { DynamoSubscriptionIndex } from '../../lambdas/adapters/dynamo-subscriptions';
import type { DocumentSender } from '../../lambdas/adapters/lean-dynamo';
import { LOCAL_TABLES } from '../../local/dynamo';

export function localSessionStores(doc: DocumentSender): { connections: DynamoConnectionStore; index: DynamoSubscriptionIndex } {
  return {
    connections: new DynamoConnectionStore(doc, LOCAL_TABLES.connections),
    index: new DynamoSubscriptionIndex(doc, LOCAL_TABLES.subscriptions),
  };
}
