/**
 * The metrics store's handling of a failed write: an ADD whose answer never came may have been
 * applied, so adding it again could count a connection twice (the gauge once read 31 with one
 * socket open); one DynamoDB refused is kept for the next write. The sender here is scripted:
 * dynalite cannot apply a write and then lose its answer on cue.
 */
import type { UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { DynamoMetricsStore } from '../../lambdas/adapters/dynamo-metrics';
import type { DocumentSender } from '../../lambdas/adapters/lean-dynamo';
import { METRIC, MetricsBatch } from '../../lambdas/core/metrics';

/** Answers each UpdateItem with the next scripted outcome, and records the values it was sent. */
function scriptedSender(outcomes: (Error | 'ok')[]) {
  const sent: Record<string, unknown>[] = [];
  const sender = {
    send: async (command: UpdateCommand) => {
      sent.push(command.input.ExpressionAttributeValues ?? {});
      const outcome = outcomes.shift() ?? 'ok';
      if (outcome !== 'ok') throw outcome;
      return { $metadata: {} };
    },
  } as unknown as DocumentSender;
  return { sender, sent };
}

const failure = (status: number | undefined, code?: string) =>
  Object.assign(new Error(`failed with ${status ?? code}`), status === undefined ? { code } : { $metadata: { httpStatusCode: status } });

const gaugeUp = () => new MetricsBatch().add(METRIC.connections, 1);

describe('DynamoMetricsStore after a failed write', () => {
  it('does not add again a write whose answer was lost (it may have been applied)', async () => {
    const { sender, sent } = scriptedSender([failure(undefined, 'ETIMEDOUT'), 'ok']);
    const store = new DynamoMetricsStore(sender, 'metrics');
    await expect(store.flush(gaugeUp())).rejects.toThrow('ETIMEDOUT');
    await store.flush(gaugeUp());
    expect(sent.map((values) => values[':v0'])).toEqual([1, 1]);
  });

  it('does not add again a write DynamoDB answered with a 5xx', async () => {
    const { sender, sent } = scriptedSender([failure(500), 'ok']);
    const store = new DynamoMetricsStore(sender, 'metrics');
    await expect(store.flush(gaugeUp())).rejects.toThrow();
    await store.flush(gaugeUp());
    expect(sent.map((values) => values[':v0'])).toEqual([1, 1]);
  });

  it('keeps a write DynamoDB refused (throttled) or that never left, for the next one', async () => {
    const { sender, sent } = scriptedSender([failure(400), failure(undefined, 'ECONNREFUSED'), 'ok']);
    const store = new DynamoMetricsStore(sender, 'metrics');
    await expect(store.flush(gaugeUp())).rejects.toThrow();
    await expect(store.flush(gaugeUp())).rejects.toThrow();
    await store.flush(gaugeUp());
    expect(sent.map((values) => values[':v0'])).toEqual([1, 2, 3]);
  });
});
