/**
 * Starts the real local runtime (local/runtime.ts) for the browser tests, as every suite does
 * (test/support/runtime.ts), serving the built dashboard.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { LocalRuntime, LocalRuntimeOptions } from '../../../local/runtime';
import { startTestRuntime } from '../../support/runtime';

export const ROOT = join(__dirname, '../../..');
export const FRONTEND_DIST = join(ROOT, 'frontend/dist');

/**
 * The runtime on free ports. URLs use 127.0.0.1: the browser's host-resolver rule maps every
 * other name (localhost included) to NOTFOUND, which keeps the page off the network.
 */
export async function startRuntime(options: Partial<LocalRuntimeOptions> = {}): Promise<LocalRuntime> {
  if (!existsSync(join(FRONTEND_DIST, 'index.html'))) {
    throw new Error('frontend/dist is missing: run `npm run build:frontend` (npm run test:e2e does)');
  }
  return startTestRuntime({
    urlHost: '127.0.0.1',
    frontendDir: FRONTEND_DIST,
    ...options,
  });
}
