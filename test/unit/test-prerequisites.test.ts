/**
 * `npm test` on a machine without Chromium, Java or Maven: every tool path comes from the
 * environment, so these tests stand for such a machine with empty directories, and for apt-get
 * with a small script that "installs" by creating the tools (it must not touch this machine).
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ensurePrerequisites,
  installCommand,
  kafkaJarsDir,
  missingPrerequisites,
  PrerequisiteError,
} from '../../scripts/test-prerequisites';

const ROOT = join(__dirname, '../..');
const NOBODY = 65534;

/** Whether the unprivileged user can read `path` (every directory above it included). */
function readableByNobody(path: string): boolean {
  const probe = spawnSync(process.execPath, ['-e', `require('node:fs').accessSync(${JSON.stringify(path)})`], { uid: NOBODY, gid: NOBODY });
  return probe.status === 0;
}
const ALL_PACKAGES = 'chromium fonts-dejavu-core openjdk-17-jre-headless maven';

let dir: string;
let bin: string;
let aptLog: string;

/** An environment with no Chromium, nothing on PATH, no cached jars and a fake apt-get. */
function bareMachine(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    PATH: bin,
    HOME: join(dir, 'home'),
    CHROMIUM_PATH: join(dir, 'usr/bin/chromium'),
    KAFKA_CACHE_DIR: join(dir, 'cache'),
    APT_GET: join(dir, 'sbin/apt-get'),
    ...extra,
  };
}

function executable(path: string, body: string): void {
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, `#!/bin/sh\n${body}\n`);
  chmodSync(path, 0o755);
}

/** A fake apt-get that logs its arguments and, on install, creates the tools the packages provide. */
function fakeAptGet(env: NodeJS.ProcessEnv, exitCode = 0): void {
  executable(
    env.APT_GET!,
    [
      // The machine's own coreutils, not the bare PATH the test gives apt-get.
      'PATH=/usr/bin:/bin',
      `echo "$DEBIAN_FRONTEND $*" >> ${aptLog}`,
      `[ "$1" = install ] && [ ${exitCode} = 0 ] || exit ${exitCode}`,
      `for tool in "${env.CHROMIUM_PATH}" "${bin}/java" "${bin}/mvn"; do mkdir -p "$(dirname "$tool")"; printf '#!/bin/sh\\n' > "$tool"; chmod 755 "$tool"; done`,
    ].join('\n'),
  );
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'prereq-test-'));
  bin = join(dir, 'bin');
  mkdirSync(bin);
  aptLog = join(dir, 'apt.log');
});

afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('what npm test finds missing', () => {
  it('lists Chromium, Java and Maven on a bare machine that must start its own broker', () => {
    const missing = missingPrerequisites(bareMachine());
    expect(missing.map((item) => item.packages.join(' ')).join(' ')).toBe(ALL_PACKAGES);
    expect(missing[0]!.name).toContain(join(dir, 'usr/bin/chromium'));
  });

  it('needs neither Java nor Maven when KAFKA_BROKERS names a broker', () => {
    const missing = missingPrerequisites(bareMachine({ KAFKA_BROKERS: 'localhost:9092' }));
    expect(missing.flatMap((item) => item.packages)).toEqual(['chromium', 'fonts-dejavu-core']);
  });

  it("needs no Maven once Kafka's jars are cached", () => {
    const env = bareMachine();
    mkdirSync(kafkaJarsDir(env), { recursive: true });
    writeFileSync(join(kafkaJarsDir(env), '.complete'), '');
    expect(missingPrerequisites(env).flatMap((item) => item.packages)).not.toContain('maven');
  });

  it('finds nothing missing when the tools are there', () => {
    const env = bareMachine();
    for (const tool of [env.CHROMIUM_PATH!, join(bin, 'java'), join(bin, 'mvn')]) executable(tool, 'exit 0');
    expect(missingPrerequisites(env)).toEqual([]);
  });

  it('does not take a non-executable file for Chromium', () => {
    const env = bareMachine({ KAFKA_BROKERS: 'localhost:9092' });
    mkdirSync(join(dir, 'usr/bin'), { recursive: true });
    writeFileSync(env.CHROMIUM_PATH!, 'not a program');
    expect(missingPrerequisites(env)).toHaveLength(1);
  });
});

describe('as a user who is not root', () => {
  it('stops at once naming the one command that installs everything, and runs no apt-get', () => {
    const env = bareMachine();
    fakeAptGet(env);
    expect(() => ensurePrerequisites({ env, uid: 1000 })).toThrow(PrerequisiteError);
    expect(() => ensurePrerequisites({ env, uid: 1000 })).toThrow(
      `sudo apt-get update && sudo apt-get install -y --no-install-recommends ${ALL_PACKAGES}`,
    );
    expect(existsSync(aptLog)).toBe(false);
  });

  it('npm test itself exits before building or testing anything', () => {
    // The real entry point on the bare machine, as `nobody` when this runs as root. Where nobody
    // cannot read the clone (under /root, say), it runs as root with an apt-get that fails.
    const root = process.getuid?.() === 0;
    const asNobody = root && readableByNobody(join(ROOT, 'node_modules/tsx/package.json'));
    const env = bareMachine({ HOME: tmpdir() });
    if (root && !asNobody) executable(env.APT_GET!, 'exit 100');
    const result = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/test.ts'], {
      cwd: ROOT,
      env,
      encoding: 'utf8',
      ...(asNobody ? { uid: NOBODY, gid: NOBODY } : {}),
    });
    expect(result.status).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain(
      root && !asNobody
        ? 'apt-get update -qq` failed (exit 100)'
        : `Install them with:\n  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${ALL_PACKAGES}`,
    );
  });
});

describe('as root', () => {
  it('installs the missing packages with apt-get, non-interactively, then finds them', () => {
    const env = bareMachine();
    fakeAptGet(env);
    const lines: string[] = [];
    ensurePrerequisites({ env, uid: 0, log: (line) => lines.push(line) });
    expect(readFileSync(aptLog, 'utf8').trim().split('\n')).toEqual([
      'noninteractive update -qq',
      `noninteractive install -y -qq --no-install-recommends ${ALL_PACKAGES}`,
    ]);
    expect(lines.join('\n')).toContain(`installing ${ALL_PACKAGES}`);
    expect(missingPrerequisites(env)).toEqual([]);
  });

  it('installs nothing when nothing is missing', () => {
    const env = bareMachine({ KAFKA_BROKERS: 'localhost:9092' });
    executable(env.CHROMIUM_PATH!, 'exit 0');
    fakeAptGet(env);
    ensurePrerequisites({ env, uid: 0 });
    expect(existsSync(aptLog)).toBe(false);
  });

  it('fails naming the apt-get step that failed', () => {
    const env = bareMachine();
    fakeAptGet(env, 100);
    expect(() => ensurePrerequisites({ env, uid: 0 })).toThrow(/apt-get update -qq` failed \(exit 100\)/);
  });

  it('fails when apt-get succeeds but the tools are still missing', () => {
    const env = bareMachine();
    executable(env.APT_GET!, 'exit 0');
    expect(() => ensurePrerequisites({ env, uid: 0 })).toThrow(/still missing after .*apt-get install: Chromium/);
  });
});

test('the command names every package once, in install order', () => {
  expect(installCommand(missingPrerequisites(bareMachine()))).toBe(
    `sudo apt-get update && sudo apt-get install -y --no-install-recommends ${ALL_PACKAGES}`,
  );
});
