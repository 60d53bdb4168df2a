/**
 * Remembers the last `capacity` record cursors (`topic:partition:offset`) so that a record
 * delivered twice (two matching sockets during a renewal, a redelivered Kafka batch) is shown once.
 * Memory is bounded: the oldest cursor is forgotten first.
 */
export class CursorWindow {
  private readonly seen = new Set<string>();
  private readonly order: string[];
  private next = 0;

  constructor(readonly capacity = 10_000) {
    this.order = new Array<string>(capacity);
  }

  /** Returns true the first time a cursor is offered, false for a duplicate. */
  admit(cursor: string): boolean {
    if (this.seen.has(cursor)) return false;
    const evicted = this.order[this.next];
    if (evicted !== undefined) this.seen.delete(evicted);
    this.order[this.next] = cursor;
    this.next = (this.next + 1) % this.capacity;
    this.seen.add(cursor);
    return true;
  }

  get size(): number {
    return this.seen.size;
  }
}
