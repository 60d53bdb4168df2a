/**
 * The last offset the dashboard received per `topic:partition`, read from record cursors, for the
 * `resume` of a re-subscribe after a reconnect (DESIGN.md "Resume"). Memory is bounded by the
 * partitions one `resume` may name ({@link LIMITS.maxResumePartitions}); the partition heard from
 * least recently is forgotten first.
 */
import { LIMITS, TOPICS } from '../../lambdas/core/protocol';

const TOPIC_NAMES: ReadonlySet<string> = new Set(Object.values(TOPICS));

/**
 * `topic:partition:offset` of a product topic, as the server's `resume` schema takes them: a
 * cursor of any other shape is never named, since one bad name gets the whole subscribe refused.
 */
const CURSOR = /^([a-z][a-z0-9-]*):(0|[1-9][0-9]{0,5}):(0|[1-9][0-9]{0,15})$/;

interface Heard {
  readonly offset: number;
  /** Epoch ms the record arrived. */
  readonly at: number;
}

/** Last offsets per partition; see the module comment. */
export class PartitionOffsets {
  private readonly last = new Map<string, Heard>();

  /** @param capacity partitions remembered. Default {@link LIMITS.maxResumePartitions}. */
  constructor(readonly capacity: number = LIMITS.maxResumePartitions) {}

  /** Notes a received record's cursor; a cursor not of a product topic is ignored. */
  note(cursor: string, at: number): void {
    const match = CURSOR.exec(cursor);
    if (!match || !TOPIC_NAMES.has(match[1]!)) return;
    const offset = Number(match[3]);
    if (!Number.isSafeInteger(offset)) return;
    const name = `${match[1]}:${match[2]}`;
    const known = this.last.get(name);
    // Deleting first keeps the map in order of last arrival, so the stalest partition is first.
    this.last.delete(name);
    this.last.set(name, { offset: known && known.offset > offset ? known.offset : offset, at });
    if (this.last.size > this.capacity) this.last.delete(this.last.keys().next().value!);
  }

  /**
   * The `resume` to send at `now`: the partitions heard from within `windowMs`. A partition quiet
   * for longer is left out: the server starts the partitions a resume does not name where the
   * client was last current, and a cursor older than its window would make the whole resume too
   * far behind. When every partition is that quiet, the freshest is named all the same, so the
   * server tells the client it is too far behind instead of the client saying nothing.
   * Undefined when no record was ever received.
   */
  resumeAt(now: number, windowMs: number = LIMITS.resumeWindowMs): Record<string, number> | undefined {
    const resume: Record<string, number> = {};
    let freshest: [string, Heard] | undefined;
    let named = 0;
    for (const [name, heard] of this.last) {
      if (!freshest || heard.at >= freshest[1].at) freshest = [name, heard];
      if (now - heard.at > windowMs) continue;
      resume[name] = heard.offset;
      named++;
    }
    if (!freshest) return undefined;
    if (named === 0) resume[freshest[0]] = freshest[1].offset;
    return resume;
  }

  /** Partitions remembered. */
  get size(): number {
    return this.last.size;
  }
}
