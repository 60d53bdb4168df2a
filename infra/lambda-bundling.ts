/**
 * How every Lambda is built: the handler entry files and the esbuild settings NodejsFunction uses.
 * Kept apart from the constructs so that test/infra/bundle.test.ts bundles the entries with exactly
 * these settings and loads the result in plain Node.
 */
import * as path from 'node:path';

/** Handler entry files under `lambdas/handlers/`, one Lambda each; every one exports `handler`. */
export const HANDLER_NAMES = [
  'connect',
  'disconnect',
  'subscribe',
  'unsubscribe',
  'ping',
  'ack',
  'default',
  'stream',
  'authorizer',
  'metrics',
  'health',
  'replay',
] as const;

/** A handler entry name, the file name without `.ts`. */
export type HandlerName = (typeof HANDLER_NAMES)[number];

/** The repository root (the NodejsFunction project root, where package-lock.json lives). */
export const PROJECT_ROOT = path.resolve(__dirname, '..');

/** Absolute path of a handler's entry file. */
export function handlerEntry(name: HandlerName): string {
  return path.join(PROJECT_ROOT, 'lambdas', 'handlers', `${name}.ts`);
}

/** esbuild target matching the Lambda runtime (Node.js 22). */
export const ESBUILD_TARGET = 'node22';

/**
 * esbuild settings shared by NodejsFunction and the bundle test.
 * - Nothing is external: the AWS SDK v3 clients are bundled at the versions in package-lock.json
 *   rather than taken from whatever the Lambda runtime ships, so what is tested is what runs.
 * - Minified with a source map, so stack traces in CloudWatch point at the TypeScript.
 */
export const ESBUILD_SETTINGS = {
  minify: true,
  sourceMap: true,
  sourcesContent: false,
  target: ESBUILD_TARGET,
  externalModules: [] as string[],
} as const;
