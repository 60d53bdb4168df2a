/**
 * Where a CPU profile's time goes (a `.cpuprofile` as V8 writes it): each sample is charged to the
 * nearest frame of this repository's code on its stack (its file and function), and to the phase
 * of the product it ran under (the replay read, its decode, packing, posting, the live stream),
 * found by the first frame of a known function walking from the leaf to the root.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** One row of a breakdown: ms of CPU and share of the samples. */
export interface ProfileRow {
  name: string;
  ms: number;
  percent: number;
}

/** A profile summarised. */
export interface ProfileSummary {
  file: string;
  wallMs: number;
  /** Sampled time not idle, ms. */
  busyMs: number;
  /** By phase of the product (see {@link PHASES}). */
  phases: ProfileRow[];
  /** By the nearest frame of this repository (file:function), or the library/native frame when none is on the stack. */
  frames: ProfileRow[];
  /** Self time by leaf function (library and native included), the top ones. */
  leaves: ProfileRow[];
}

/**
 * Phases, the first match walking from the leaf to the root: a frame's file (relative to the repo)
 * and function name. Order matters only within one stack.
 */
const PHASES: { name: string; file: RegExp; fn?: RegExp }[] = [
  { name: 'replay: decode (JSON.parse + zod parseRecord, cached by cursor)', file: /lambdas\/core\/replay\.ts$/, fn: /^(decode|of|DecodedRecords\.of)$/ },
  { name: 'replay: merge by time', file: /lambdas\/core\/replay\.ts$/, fn: /^mergeByTime$/ },
  { name: 'replay: filter', file: /lambdas\/core\/filter\.ts$/, fn: /^matchesFilter$/ },
  { name: 'replay: log read', file: /(local\/memory-log|lambdas\/adapters\/kafka-log)\.ts$/ },
  { name: 'replay: other', file: /lambdas\/core\/replay\.ts$/ },
  { name: 'replay: packing (message builder)', file: /lambdas\/core\/sessions\.ts$/, fn: /^resumeFollowUps$/ },
  { name: 'route: posting follow-ups and replies', file: /lambdas\/handlers\/message\.ts$/ },
  { name: 'route: subscribe (stores, index, snapshot)', file: /lambdas\/core\/sessions\.ts$/ },
  { name: 'live stream (decode, lookup, fan-out, posts)', file: /lambdas\/(core\/stream-|core\/fanout|handlers\/stream|core\/pacing)/ },
  { name: 'local event source / simulator', file: /local\/(runtime|simulator|msk-event|kafka-bridge|record-batcher)\.ts$/ },
  { name: 'gateway IPC (route invocations)', file: /local\/gateway/ },
  { name: 'posting, live and replay alike (signed HTTP, undici)', file: /(lambdas\/adapters\/(signed-|management-)|node_modules\/undici|@smithy)/ },
  { name: 'DynamoDB client', file: /lambdas\/adapters\/(lean-dynamo|dynamo-)/ },
];

function relative(url: string): string {
  const file = url.startsWith('file://') ? new URL(url).pathname : url;
  const root = path.resolve(__dirname, '..') + '/';
  return file.startsWith(root) ? file.slice(root.length) : file;
}

const own = (file: string) => /^(lambdas|local|bench)\//.test(file);

function top(map: Map<string, number>, totalUs: number, n: number): ProfileRow[] {
  return [...map]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([name, us]) => ({ name, ms: Math.round(us / 1000), percent: Math.round((us / totalUs) * 1000) / 10 }));
}

/** Reads and summarises a `.cpuprofile`. */
export function summariseProfile(file: string, rows = 20): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const memo = new Map<number, { phase: string; frame: string; leaf: string }>();
  const classify = (id: number) => {
    const known = memo.get(id);
    if (known) return known;
    const leafNode = byId.get(id)!;
    const leafFile = relative(leafNode.callFrame.url);
    const leaf = `${leafNode.callFrame.functionName || '(anonymous)'} ${leafFile ? `(${leafFile.replace(/^.*node_modules\//, '')})` : '(native)'}`;
    let phase: string | undefined;
    let frame: string | undefined;
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const { functionName, url } = byId.get(at)!.callFrame;
      const rel = relative(url);
      if (!frame && own(rel)) frame = `${rel}:${functionName || '(anonymous)'}`;
      if (!phase) phase = PHASES.find((p) => p.file.test(rel) && (!p.fn || p.fn.test(functionName)))?.name;
      if (phase && frame) break;
    }
    const special = ['(idle)', '(garbage collector)', '(program)'].find((name) => leafNode.callFrame.functionName === name);
    const result = { phase: special ?? phase ?? 'other', frame: special ?? frame ?? leaf, leaf };
    memo.set(id, result);
    return result;
  };
  const phases = new Map<string, number>();
  const frames = new Map<string, number>();
  const leaves = new Map<string, number>();
  let busyUs = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const us = profile.timeDeltas[i + 1] ?? 0;
    const { phase, frame, leaf } = classify(profile.samples[i]);
    if (phase === '(idle)') continue;
    busyUs += us;
    phases.set(phase, (phases.get(phase) ?? 0) + us);
    frames.set(frame, (frames.get(frame) ?? 0) + us);
    leaves.set(leaf, (leaves.get(leaf) ?? 0) + us);
  }
  return {
    file,
    wallMs: Math.round((profile.endTime - profile.startTime) / 1000),
    busyMs: Math.round(busyUs / 1000),
    phases: top(phases, busyUs, rows),
    frames: top(frames, busyUs, rows),
    leaves: top(leaves, busyUs, rows),
  };
}

if (require.main === module) {
  for (const file of process.argv.slice(2)) console.log(JSON.stringify(summariseProfile(file), null, 2));
}
