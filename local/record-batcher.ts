/**
 * Lambda's batching for an event source, on its own: records queue here as they are fetched, and
 * {@link RecordBatcher.nextBatch} hands out the next event's worth when it holds `batchSize`
 * records, when it nears the payload limit, or `windowMs` after its first record arrived,
 * whichever comes first. A bound on queued records gives the fetcher backpressure.
 */

/** A queued item and what it adds to the event's size. */
export interface Sized {
  /** Approximate bytes this item adds to the event payload. */
  readonly bytes: number;
}

/** Options of {@link RecordBatcher}. */
export interface RecordBatcherOptions {
  /** Most items in one batch. */
  readonly batchSize: number;
  /** Milliseconds a batch waits to fill after its first item was queued. */
  readonly windowMs: number;
  /** Most bytes in one batch; a single larger item still goes, alone. */
  readonly maxBatchBytes: number;
  /** Items queued before {@link RecordBatcher.full} says to stop fetching. */
  readonly maxQueued: number;
}

/** A queue with Lambda's batching rules; one taker at a time calls {@link nextBatch}. */
export class RecordBatcher<T extends Sized> {
  private queue: { item: T; queuedAt: number }[] = [];
  private queuedBytes = 0;
  private closed = false;
  private wakeTaker: (() => void) | undefined;
  private roomWaiters: (() => void)[] = [];

  constructor(private readonly options: RecordBatcherOptions) {
    if (!Number.isInteger(options.batchSize) || options.batchSize < 1) {
      throw new RangeError(`batchSize must be a positive integer, got ${options.batchSize}`);
    }
  }

  /** Items queued and not yet handed out. */
  get size(): number {
    return this.queue.length;
  }

  /** True when the queue holds `maxQueued` items: the fetcher should wait for room. */
  get full(): boolean {
    return this.queue.length >= this.options.maxQueued;
  }

  /** Queues an item; ignored once closed. */
  push(item: T): void {
    if (this.closed) return;
    this.queue.push({ item, queuedAt: Date.now() });
    this.queuedBytes += item.bytes;
    this.wake();
  }

  /** Resolves with the next batch, in queue order, or with undefined once {@link close} was called. */
  async nextBatch(): Promise<T[] | undefined> {
    while (!this.closed) {
      if (this.queue.length === 0) {
        await this.sleep(undefined);
        continue;
      }
      const windowEnds = this.queue[0]!.queuedAt + this.options.windowMs;
      if (this.ready() || Date.now() >= windowEnds) return this.take();
      await this.sleep(windowEnds - Date.now());
    }
    return undefined;
  }

  /** Resolves when a batch was taken or the batcher closed, or after `maxMs` (to let the caller heartbeat). */
  waitForRoom(maxMs: number): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, maxMs);
      this.roomWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** Drops what is queued and wakes every waiter; {@link nextBatch} resolves with undefined from now on. */
  close(): void {
    this.closed = true;
    this.queue = [];
    this.queuedBytes = 0;
    this.wake();
    this.notifyRoom();
  }

  private ready(): boolean {
    return this.queue.length >= this.options.batchSize || this.queuedBytes >= this.options.maxBatchBytes;
  }

  private take(): T[] {
    let bytes = 0;
    let count = 0;
    while (count < this.queue.length && count < this.options.batchSize) {
      const next = this.queue[count]!.item.bytes;
      if (count > 0 && bytes + next > this.options.maxBatchBytes) break;
      bytes += next;
      count++;
    }
    const batch = this.queue.splice(0, count).map((entry) => entry.item);
    this.queuedBytes -= bytes;
    this.notifyRoom();
    return batch;
  }

  /** Waits for a push or close, or `ms` when given. */
  private sleep(ms: number | undefined): Promise<void> {
    return new Promise((resolve) => {
      const timer = ms === undefined ? undefined : setTimeout(resolve, ms);
      this.wakeTaker = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  private wake(): void {
    const wake = this.wakeTaker;
    this.wakeTaker = undefined;
    wake?.();
  }

  private notifyRoom(): void {
    const waiters = this.roomWaiters;
    this.roomWaiters = [];
    for (const waiter of waiters) waiter();
  }
}
