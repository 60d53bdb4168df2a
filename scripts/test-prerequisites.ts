/**
 * What `npm test` needs beyond `npm ci`, found or installed before any test runs: Debian's
 * Chromium for the browser tests and, when it has to start its own Kafka broker, a Java runtime
 * and (until Kafka's jars are cached) Maven to fetch them. As root it installs what is missing
 * with apt-get; otherwise it stops at once with the one command that would.
 *
 * Every path comes from the environment it is given (`CHROMIUM_PATH`, `PATH`, `APT_GET`,
 * `KAFKA_CACHE_DIR`), so a test can stand for a machine that lacks the tools.
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import { AppError } from '../lambdas/core/errors';

const ROOT = join(__dirname, '..');

/** Debian's Chromium, where the browser tests look for it unless `CHROMIUM_PATH` says otherwise. */
export const DEFAULT_CHROMIUM_PATH = '/usr/bin/chromium';

/** One tool `npm test` needs, and the Debian packages that provide it. */
export interface Prerequisite {
  /** What is missing, as a person would name it. */
  readonly name: string;
  /** What needs it. */
  readonly neededFor: string;
  /** Debian packages that provide it. */
  readonly packages: readonly string[];
}

/** The tools are missing and this process cannot install them; the message names the command that would. */
export class PrerequisiteError extends AppError {}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The absolute path of `command` on `PATH`, or undefined. */
export function findOnPath(command: string, path: string | undefined): string | undefined {
  for (const dir of (path ?? '').split(delimiter)) {
    if (dir && isExecutable(join(dir, command))) return join(dir, command);
  }
  return undefined;
}

/** Where local/kafka/kafka.sh keeps Kafka's jars for the version pinned in local/kafka/pom.xml. */
export function kafkaJarsDir(env: NodeJS.ProcessEnv): string {
  const pom = readFileSync(join(ROOT, 'local/kafka/pom.xml'), 'utf8');
  const version = /<kafka\.version>([^<]+)<\/kafka\.version>/.exec(pom)?.[1];
  if (!version) throw new PrerequisiteError('local/kafka/pom.xml has no <kafka.version>');
  const cache = env.KAFKA_CACHE_DIR || join(env.XDG_CACHE_HOME || join(env.HOME || homedir(), '.cache'), 'iot-dashboard-kafka');
  return join(cache, `kafka-${version}`, 'libs');
}

/** True when `npm test` starts its own broker, i.e. `KAFKA_BROKERS` names none. */
export function needsOwnBroker(env: NodeJS.ProcessEnv): boolean {
  return !env.KAFKA_BROKERS?.trim();
}

/** The prerequisites this environment lacks, in install order. */
export function missingPrerequisites(env: NodeJS.ProcessEnv): Prerequisite[] {
  const missing: Prerequisite[] = [];
  const chromium = env.CHROMIUM_PATH || DEFAULT_CHROMIUM_PATH;
  if (!isExecutable(chromium)) {
    missing.push({ name: `Chromium (${chromium})`, neededFor: 'the browser tests', packages: ['chromium', 'fonts-dejavu-core'] });
  }
  if (needsOwnBroker(env)) {
    if (!findOnPath('java', env.PATH)) {
      missing.push({ name: 'a Java runtime (java)', neededFor: 'the Kafka broker of the Kafka tests', packages: ['openjdk-17-jre-headless'] });
    }
    if (!existsSync(join(kafkaJarsDir(env), '.complete')) && !findOnPath('mvn', env.PATH)) {
      missing.push({ name: 'Maven (mvn)', neededFor: "fetching Kafka's jars from Maven Central, once", packages: ['maven'] });
    }
  }
  return missing;
}

/** The one shell command that installs `missing`, for a user who is not root. */
export function installCommand(missing: readonly Prerequisite[]): string {
  const packages = missing.flatMap((item) => item.packages).join(' ');
  return `sudo apt-get update && sudo apt-get install -y --no-install-recommends ${packages}`;
}

function describe(missing: readonly Prerequisite[]): string {
  return missing.map((item) => `${item.name} for ${item.neededFor}`).join('; ');
}

/** How {@link ensurePrerequisites} reports and which user it runs as. */
export interface EnsureOptions {
  readonly env: NodeJS.ProcessEnv;
  /** The effective user id; 0 may install. */
  readonly uid: number;
  readonly log?: (line: string) => void;
}

/**
 * Returns when nothing is missing. Otherwise, as root, installs the missing packages with
 * apt-get (`APT_GET` in `env`, default `apt-get`) and checks again; as any other user, throws a
 * {@link PrerequisiteError} at once naming the one command to run.
 */
export function ensurePrerequisites({ env, uid, log = () => {} }: EnsureOptions): void {
  const missing = missingPrerequisites(env);
  if (missing.length === 0) return;
  if (uid !== 0) {
    throw new PrerequisiteError(`npm test needs ${describe(missing)}. Install them with:\n  ${installCommand(missing)}`);
  }
  const aptGet = env.APT_GET || 'apt-get';
  const packages = missing.flatMap((item) => item.packages);
  log(`installing ${packages.join(' ')} with ${aptGet} (missing: ${describe(missing)})`);
  const aptEnv = { ...env, DEBIAN_FRONTEND: 'noninteractive' };
  for (const args of [['update', '-qq'], ['install', '-y', '-qq', '--no-install-recommends', ...packages]]) {
    const result = spawnSync(aptGet, args, { env: aptEnv, stdio: ['ignore', 'inherit', 'inherit'] });
    if (result.error || result.status !== 0) {
      throw new PrerequisiteError(`\`${aptGet} ${args.join(' ')}\` failed (${result.error?.message ?? `exit ${result.status}`})`, {
        cause: result.error,
      });
    }
  }
  const still = missingPrerequisites(env);
  if (still.length > 0) throw new PrerequisiteError(`still missing after ${aptGet} install: ${describe(still)}`);
}
