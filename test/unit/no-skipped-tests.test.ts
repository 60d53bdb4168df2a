/**
 * A green run includes every test: no test file may skip, focus or postpone a test, since any of
 * those lets the suite pass while testing less. (Suites that need a part this machine lacks fail
 * saying how to get it, e.g. describeKafka in test/integration/kafka-support.ts.)
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';

const TEST_ROOT = join(__dirname, '..');

/** A test, it or describe with .skip, .only or .todo, or the x- and f-prefixed forms of it, test and describe. */
const NOT_RUN = /\b(?:(?:it|test|describe)\.(?:skip|only|todo)|x(?:it|test|describe)|f(?:it|describe))\s*\(/;

function testFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? testFiles(join(dir, entry.name)) : entry.name.endsWith('.ts') ? [join(dir, entry.name)] : [],
  );
}

test('no test file skips, focuses or postpones a test', () => {
  const offenders = testFiles(TEST_ROOT)
    .filter((file) => file !== __filename)
    .flatMap((file) =>
      readFileSync(file, 'utf8')
        .split('\n')
        .flatMap((line, index) => (NOT_RUN.test(line) ? [`${relative(TEST_ROOT, file)}:${index + 1}: ${line.trim()}`] : [])),
    );
  expect(offenders).toEqual([]);
});

// Written in two halves, so that this file holds none of the calls it looks for (and other checks
// of the repository, which read it as text, do not take it for a skipped test).
const FORBIDDEN = [['it', '.skip('], ['describe', '.only ('], ['test', '.todo('], ['x', 'it('], ['f', 'describe('], ['describe', '.skip(`x`']];

test.each(FORBIDDEN.map(([head, tail]) => head + tail))('the check catches %s', (snippet) => {
  expect(NOT_RUN.test(snippet)).toBe(true);
});

test.each(['it(', 'skipped(', "it('skips a poison record'", 'describeKafka('])('the check lets %s be', (snippet) => {
  expect(NOT_RUN.test(snippet)).toBe(false);
});
