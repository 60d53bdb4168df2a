/**
 * The module boundaries the README's Layout section states, checked on every import in the repo
 * (read with the TypeScript compiler's own pre-processor, so `import type`, re-exports and dynamic
 * `import()` count too):
 * - `lambdas/core` is pure: no AWS SDK and no Node I/O module;
 * - handlers never reach into the local runtime (`local/`);
 * - the dashboard takes from `lambdas/` only the protocol, errors and backoff modules;
 * - nothing outside `bench/` and `test/` imports them.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, relative, resolve, sep } from 'node:path';
import ts from 'typescript';

const ROOT = join(__dirname, '../..');
const SCANNED = ['lambdas', 'local', 'frontend/src', 'frontend/build.ts', 'infra', 'bench', 'scripts', 'test'];

/** Node modules that do I/O or depend on the process; core may use only pure ones such as node:crypto. */
const NODE_IO = new Set(
  builtinModules
    .map((name) => name.replace(/^node:/, '').split('/')[0]!)
    .filter((name) => !['crypto', 'util', 'buffer', 'events', 'assert', 'string_decoder', 'punycode', 'url', 'querystring', 'path'].includes(name)),
);

/**
 * The frontend's whitelist inside `lambdas/`: the protocol, the two dependency-free helpers every
 * side shares, and the token rules the authorizer applies and the page explains a refusal with.
 */
const FRONTEND_MAY_IMPORT = new Set(['lambdas/core/protocol', 'lambdas/core/errors', 'lambdas/core/backoff', 'lambdas/core/token-claims']);

/** A repo-relative path with forward slashes and no extension, or the bare package specifier. */
function target(file: string, specifier: string): string {
  if (!specifier.startsWith('.')) return specifier;
  return relative(ROOT, resolve(ROOT, dirname(file), specifier)).split(sep).join('/').replace(/\.(ts|js)$/, '');
}

/** The specifiers `source` imports, re-exports or loads dynamically. */
function importsOf(source: string): string[] {
  return ts.preProcessFile(source, true, true).importedFiles.map((ref) => ref.fileName);
}

/** Each layering rule that `source`, as the file at repo path `file`, breaks. */
export function layeringViolations(file: string, source: string): string[] {
  const violations: string[] = [];
  for (const specifier of importsOf(source)) {
    const to = target(file, specifier);
    const bare = to.replace(/^node:/, '').split('/')[0]!;
    const where = `${file} imports ${specifier}`;
    if (file.startsWith('lambdas/core/')) {
      if (to.startsWith('@aws-sdk/') || to.startsWith('@smithy/') || to === 'aws-sdk') violations.push(`${where}: lambdas/core must not use the AWS SDK`);
      if (!specifier.startsWith('.') && NODE_IO.has(bare)) violations.push(`${where}: lambdas/core must not do Node I/O`);
    }
    if (file.startsWith('lambdas/handlers/') && to.startsWith('local/')) violations.push(`${where}: handlers must not import the local runtime`);
    if (file.startsWith('frontend/') && to.startsWith('lambdas/') && !FRONTEND_MAY_IMPORT.has(to)) {
      violations.push(`${where}: the dashboard may import only ${[...FRONTEND_MAY_IMPORT].join(', ')} from lambdas/`);
    }
    for (const closed of ['bench/', 'test/']) {
      if (to.startsWith(closed) && !file.startsWith('bench/') && !file.startsWith('test/')) {
        violations.push(`${where}: only tests and benchmarks may import ${closed}`);
      }
    }
  }
  return violations;
}

function sourceFiles(path: string): string[] {
  const full = join(ROOT, path);
  if (path.endsWith('.ts')) return [path];
  return readdirSync(full, { withFileTypes: true }).flatMap((entry) => {
    const child = `${path}/${entry.name}`;
    if (entry.isDirectory()) return entry.name === 'node_modules' || entry.name === 'dist' ? [] : sourceFiles(child);
    return entry.name.endsWith('.ts') ? [child] : [];
  });
}

describe('layering rules, on the repo', () => {
  const files = SCANNED.flatMap(sourceFiles);

  it('scans the source tree (core, handlers, frontend, local, infra, bench, scripts, tests)', () => {
    for (const area of ['lambdas/core/', 'lambdas/handlers/', 'frontend/src/', 'local/', 'infra/', 'bench/', 'scripts/', 'test/']) {
      expect(files.some((file) => file.startsWith(area))).toBe(true);
    }
  });

  it('holds for every file', () => {
    const violations = files.flatMap((file) => layeringViolations(file, readFileSync(join(ROOT, file), 'utf8')));
    expect(violations).toEqual([]);
  });
});

describe('layering rules, on files that break them', () => {
  it('refuses a core file that imports the AWS SDK, even only its types', () => {
    expect(layeringViolations('lambdas/core/fanout.ts', "import { DynamoDBClient } from '@aws-sdk/client-dynamodb';")).toEqual([
      'lambdas/core/fanout.ts imports @aws-sdk/client-dynamodb: lambdas/core must not use the AWS SDK',
    ]);
    expect(layeringViolations('lambdas/core/x.ts', "import type { Foo } from '@aws-sdk/lib-dynamodb';")).toHaveLength(1);
    expect(layeringViolations('lambdas/core/x.ts', "const m = await import('@aws-sdk/client-s3');")).toHaveLength(1);
  });

  it('refuses Node I/O in core, with or without the node: prefix, but allows node:crypto', () => {
    expect(layeringViolations('lambdas/core/x.ts', "import { readFile } from 'node:fs/promises';")).toHaveLength(1);
    expect(layeringViolations('lambdas/core/x.ts', "import http from 'http';")).toHaveLength(1);
    expect(layeringViolations('lambdas/core/x.ts', "import { createHash } from 'node:crypto';")).toEqual([]);
  });

  it('refuses a handler that imports local/', () => {
    expect(layeringViolations('lambdas/handlers/stream.ts', "import { x } from '../../local/runtime';")).toEqual([
      'lambdas/handlers/stream.ts imports ../../local/runtime: handlers must not import the local runtime',
    ]);
  });

  it('refuses a dashboard import from lambdas/ other than the protocol, errors and backoff modules', () => {
    expect(layeringViolations('frontend/src/main.ts', "import { f } from '../../lambdas/core/filter';")).toHaveLength(1);
    expect(layeringViolations('frontend/src/main.ts', "export * from '../../lambdas/adapters/clients';")).toHaveLength(1);
    expect(layeringViolations('frontend/src/main.ts', "import type { ServerFrame } from '../../lambdas/core/protocol';")).toEqual([]);
  });

  it('refuses bench/ or test/ imports from product code, and allows them between tests and benchmarks', () => {
    expect(layeringViolations('local/runtime.ts', "import { a } from '../test/support/records';")).toHaveLength(1);
    expect(layeringViolations('lambdas/core/x.ts', "import { a } from '../../bench/stats';")).toHaveLength(1);
    expect(layeringViolations('test/unit/x.test.ts', "import { a } from '../../bench/stats';")).toEqual([]);
    expect(layeringViolations('bench/x.ts', "import { a } from '../test/support/records';")).toEqual([]);
  });
});
