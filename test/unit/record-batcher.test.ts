/** Lambda's batching rules (local/record-batcher.ts) without Kafka: by count, by size, by window; backpressure; close. */
import { RecordBatcher, type Sized } from '../../local/record-batcher';

interface Item extends Sized {
  readonly n: number;
}
const item = (n: number, bytes = 10): Item => ({ n, bytes });
const numbers = (batch: Item[] | undefined) => batch?.map((i) => i.n);

/** A window long enough that a test waiting on it would time out instead of passing. */
const NEVER = 10 * 60_000;

function batcher(options: Partial<ConstructorParameters<typeof RecordBatcher>[0]> = {}) {
  return new RecordBatcher<Item>({ batchSize: 3, windowMs: NEVER, maxBatchBytes: 1000, maxQueued: 10, ...options });
}

describe('RecordBatcher', () => {
  it('hands out a full batch at once, in queue order, and keeps the rest for the next', async () => {
    const b = batcher();
    for (let n = 1; n <= 7; n++) b.push(item(n));
    expect(numbers(await b.nextBatch())).toEqual([1, 2, 3]);
    expect(numbers(await b.nextBatch())).toEqual([4, 5, 6]);
    expect(b.size).toBe(1);
  });

  it('wakes a waiting taker when the batch fills', async () => {
    const b = batcher();
    const next = b.nextBatch();
    b.push(item(1));
    b.push(item(2));
    b.push(item(3));
    expect(numbers(await next)).toEqual([1, 2, 3]);
  });

  it('cuts a batch before the item that would pass the byte limit, and sends an oversized item alone', async () => {
    const b = batcher({ batchSize: 10, maxBatchBytes: 100 });
    b.push(item(1, 40));
    b.push(item(2, 40));
    b.push(item(3, 40));
    expect(numbers(await b.nextBatch())).toEqual([1, 2]);
    b.push(item(4, 500));
    expect(numbers(await b.nextBatch())).toEqual([3]);
    expect(numbers(await b.nextBatch())).toEqual([4]);
  });

  it('sends a partial batch once the window after its first item has passed', async () => {
    const b = batcher({ batchSize: 100, windowMs: 20 });
    b.push(item(1));
    b.push(item(2));
    expect(numbers(await b.nextBatch())).toEqual([1, 2]);
  });

  it('reports full at maxQueued and gives room when a batch is taken', async () => {
    const b = batcher({ maxQueued: 3 });
    b.push(item(1));
    b.push(item(2));
    expect(b.full).toBe(false);
    b.push(item(3));
    expect(b.full).toBe(true);
    const room = b.waitForRoom(NEVER);
    await b.nextBatch();
    await room;
    expect(b.full).toBe(false);
  });

  it('on close, drops the queue, ends the taker and frees waiters for room', async () => {
    const b = batcher({ maxQueued: 1 });
    const taker = b.nextBatch();
    b.push(item(1));
    const room = b.waitForRoom(NEVER);
    b.close();
    await expect(taker).resolves.toBeUndefined();
    await room;
    expect(b.size).toBe(0);
    b.push(item(2));
    await expect(b.nextBatch()).resolves.toBeUndefined();
    expect(b.size).toBe(0);
  });

  it('refuses a batch size that is not a positive integer', () => {
    expect(() => batcher({ batchSize: 0 })).toThrow(/positive integer/);
    expect(() => batcher({ batchSize: 2.5 })).toThrow(/positive integer/);
  });
});
