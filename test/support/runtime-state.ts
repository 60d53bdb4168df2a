/**
 * What a running local runtime holds, read the way an operator would check it: the items of a
 * table, the index entries by connection, and the `websocket_connections` gauge from /metrics.
 * Shared by the suites that check that the gauge, the tables and the open sockets agree.
 */
import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import { createDocumentClient } from '../../lambdas/adapters/clients';
import { LOCAL_AWS, LOCAL_TABLES } from '../../local/dynamo';
import type { LocalRuntime } from '../../local/runtime';

/** Reads a runtime's tables and metrics; {@link destroy} when done. */
export class RuntimeState {
  private readonly doc: ReturnType<typeof createDocumentClient>;

  constructor(private readonly runtime: LocalRuntime) {
    this.doc = createDocumentClient({ endpoint: runtime.dynamoEndpoint, ...LOCAL_AWS });
  }

  /** Every item of a table. */
  async scan(table: string): Promise<Record<string, unknown>[]> {
    const items: Record<string, unknown>[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const out = await this.doc.send(new ScanCommand({ TableName: table, ExclusiveStartKey: start }));
      items.push(...(out.Items ?? []));
      start = out.LastEvaluatedKey;
    } while (start);
    return items;
  }

  /** Index entries (`c:` attributes) in the subscriptions table, by connection id. */
  async entriesByConnection(): Promise<Map<string, number>> {
    const counts = new Map<string, number>();
    for (const item of await this.scan(LOCAL_TABLES.subscriptions)) {
      for (const name of Object.keys(item)) {
        if (!name.startsWith('c:')) continue;
        const id = name.slice(2, name.lastIndexOf('#'));
        counts.set(id, (counts.get(id) ?? 0) + 1);
      }
    }
    return counts;
  }

  /** The `websocket_connections` gauge, as /metrics shows it. */
  async gauge(): Promise<number> {
    const match = /^websocket_connections (\d+)/m.exec(await this.runtime.metricsText());
    return Number(match?.[1] ?? 0);
  }

  destroy(): void {
    this.doc.destroy();
  }
}
