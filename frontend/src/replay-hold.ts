/**
 * The records a reconnected socket receives while the server replays what it missed (DESIGN.md
 * "Resume"). Replay and live frames look alike and may interleave: live records of a partition can
 * arrive before the replayed ones that precede them. So until every resumed subscription has had
 * its `resumed` (or failed), records are held, then released in offset order within each
 * partition and, across partitions, by record time, as the server merges its replay. Bounded: the
 * owner releases early when {@link ReplayHold.hold} says the hold is full, or after a deadline.
 */
import type { AlertFrame, DeviceDataFrame } from '../../lambdas/core/protocol';

/** A record frame, as held. */
export type RecordFrame = DeviceDataFrame | AlertFrame;

/** Records held while the replays named at construction are under way. */
export class ReplayHold {
  private readonly waiting: Set<string>;
  private held: RecordFrame[] = [];

  /**
   * @param ids the subscriptions whose re-subscribe carried `resume`.
   * @param limit records held at most.
   */
  constructor(
    ids: Iterable<string>,
    readonly limit: number,
  ) {
    this.waiting = new Set(ids);
  }

  /** Whether `id`'s replay is still awaited. */
  awaits(id: string): boolean {
    return this.waiting.has(id);
  }

  /** Holds a record; false when the hold is full (the record is not held). */
  hold(frame: RecordFrame): boolean {
    if (this.held.length >= this.limit) return false;
    this.held.push(frame);
    return true;
  }

  /** `id`'s replay is over (`resumed`, refused, or unsubscribed); true when none is awaited any more. */
  settle(id: string): boolean {
    this.waiting.delete(id);
    return this.waiting.size === 0;
  }

  /** The held records in delivery order; the hold is empty afterwards. */
  release(): RecordFrame[] {
    const held = this.held;
    this.held = [];
    return deliveryOrder(held);
  }
}

/** `topic:partition` and offset of a cursor, or undefined when it has none or another shape. */
function position(frame: RecordFrame): { lane: string; offset: number } | undefined {
  const cursor = frame.cursor;
  if (cursor === undefined) return undefined;
  const at = cursor.lastIndexOf(':');
  const offset = Number(cursor.slice(at + 1));
  return at > 0 && Number.isSafeInteger(offset) ? { lane: cursor.slice(0, at), offset } : undefined;
}

/**
 * Orders records for delivery: each partition's in offset order, partitions merged by record time
 * (the earliest head first). Records without a readable cursor keep their arrival order, in a lane
 * of their own.
 */
export function deliveryOrder(frames: readonly RecordFrame[]): RecordFrame[] {
  const lanes = new Map<string, { offset: number; frame: RecordFrame }[]>();
  for (const frame of frames) {
    const at = position(frame) ?? { lane: '', offset: 0 };
    let lane = lanes.get(at.lane);
    if (!lane) lanes.set(at.lane, (lane = []));
    lane.push({ offset: at.offset, frame });
  }
  // Array.prototype.sort is stable, so the cursor-less lane (all offset 0) keeps arrival order.
  const heads = [...lanes.values()].map((lane) => ({ lane: lane.sort((a, b) => a.offset - b.offset), next: 0 }));
  const out: RecordFrame[] = [];
  while (out.length < frames.length) {
    let best: (typeof heads)[number] | undefined;
    for (const head of heads) {
      if (head.next >= head.lane.length) continue;
      if (!best || head.lane[head.next]!.frame.data.timestamp < best.lane[best.next]!.frame.data.timestamp) best = head;
    }
    out.push(best!.lane[best!.next++]!.frame);
  }
  return out;
}
