/**
 * Runs one part of the benchmark (the batch-cost bench or one fan-out scenario) in a fresh
 * process, so that the server's memory and CPU figures are that part's own and not what an earlier
 * scenario left in the heap. The parent talks to it over IPC: options in, log lines and the result
 * out.
 */
import { fork } from 'node:child_process';
import { runBatchCostBench, type BatchCostOptions, type BatchCostReport } from './batch-cost';
import { runFanoutScenario, type FanoutScenarioOptions, type FanoutScenarioResult } from './fanout';
import { runPostCostBench, type PostCostOptions, type PostCostReport } from './post-cost';
import { runDynamoCostBench, type DynamoCostOptions, type DynamoCostReport } from './dynamo-cost';

/** A part to run. */
export type IsolatedPart =
  | { kind: 'batch-cost'; options: Omit<BatchCostOptions, 'log'> }
  | { kind: 'fanout'; options: Omit<FanoutScenarioOptions, 'log'> }
  | { kind: 'post-cost'; options: Omit<PostCostOptions, 'log'> }
  | { kind: 'dynamo-cost'; options: Omit<DynamoCostOptions, 'log'> };

type PartResult<P extends IsolatedPart> = P extends { kind: 'batch-cost' }
  ? BatchCostReport
  : P extends { kind: 'post-cost' }
    ? PostCostReport
    : P extends { kind: 'dynamo-cost' }
      ? DynamoCostReport
      : FanoutScenarioResult;

type ChildMessage = { type: 'log'; line: string } | { type: 'result'; result: unknown } | { type: 'error'; message: string };

/** Runs `part` in a child process and resolves with its result. */
export function runIsolated<P extends IsolatedPart>(part: P, log: (line: string) => void): Promise<PartResult<P>> {
  return new Promise((resolve, reject) => {
    const child = fork(__filename, [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    let settled = false;
    child.on('message', (message: ChildMessage) => {
      if (message.type === 'log') log(message.line);
      else if (message.type === 'result') {
        settled = true;
        resolve(message.result as PartResult<P>);
      } else {
        settled = true;
        reject(new Error(message.message));
      }
    });
    child.on('exit', (code) => {
      if (!settled) reject(new Error(`benchmark process for ${part.kind} exited with ${code} before it reported`));
    });
    child.send(part);
  });
}

if (require.main === module) {
  const send = (message: ChildMessage) => new Promise<void>((resolve) => process.send!(message, () => resolve()));
  const log = (line: string) => void send({ type: 'log', line });
  process.once('message', (part: IsolatedPart) => {
    const run: Promise<unknown> =
      part.kind === 'batch-cost'
        ? runBatchCostBench({ ...part.options, log })
        : part.kind === 'post-cost'
          ? runPostCostBench({ ...part.options, log })
          : part.kind === 'dynamo-cost'
            ? runDynamoCostBench({ ...part.options, log })
            : runFanoutScenario({ ...part.options, log });
    run.then(
      async (result) => {
        await send({ type: 'result', result });
        process.exit(0);
      },
      async (error: unknown) => {
        await send({ type: 'error', message: error instanceof Error ? (error.stack ?? error.message) : String(error) });
        process.exit(1);
      },
    );
  });
}
