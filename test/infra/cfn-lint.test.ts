/**
 * cfn-lint (AWS's CloudFormation linter: resource specs, property types, value patterns, per
 * region) on the synthesized templates of the default stack and its main variants: no errors.
 * cfn-lint is a Python tool; this finds it in .venv-lint or on PATH, or installs it into the
 * git-ignored .venv-lint from PyPI, so no manual step is needed.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { REPLAY_CONTEXT, REPO_ROOT, buildStack } from './stack-fixture';

const VENV = path.join(REPO_ROOT, '.venv-lint');
const VENV_CFN_LINT = path.join(VENV, 'bin', 'cfn-lint');

/**
 * Older cfn-lint releases carry older resource specs and report properties CloudFormation has
 * since added (1.51 rejects the Tags of AWS::CloudWatch::Dashboard); 1.58 is the one checked.
 */
const MIN_VERSION = [1, 58];

/** True when `command` runs and reports at least {@link MIN_VERSION}. */
function usable(command: string): boolean {
  const result = spawnSync(command, ['--version'], { encoding: 'utf8', timeout: 60_000 });
  const m = /(\d+)\.(\d+)/.exec(result.stdout ?? '');
  if (result.status !== 0 || !m) return false;
  const [major, minor] = [Number(m[1]), Number(m[2])];
  return major > MIN_VERSION[0]! || (major === MIN_VERSION[0] && minor >= MIN_VERSION[1]!);
}

/** The cfn-lint executable: .venv-lint's, else one on PATH, else installed into .venv-lint now. */
function cfnLint(): string {
  if (fs.existsSync(VENV_CFN_LINT) && usable(VENV_CFN_LINT)) return VENV_CFN_LINT;
  if (usable('cfn-lint')) return 'cfn-lint';
  const venv = spawnSync('python3', ['-m', 'venv', VENV], { encoding: 'utf8', timeout: 120_000 });
  if (venv.status !== 0) {
    throw new Error(
      `cannot create ${VENV} for cfn-lint (${(venv.stderr || String(venv.error)).trim()}). ` +
        'Install Python\'s venv module once: apt-get install -y python3-venv',
    );
  }
  const pip = spawnSync(path.join(VENV, 'bin', 'pip'), ['install', '--quiet', '--upgrade', `cfn-lint>=${MIN_VERSION.join('.')}`], {
    encoding: 'utf8',
    timeout: 600_000,
  });
  if (pip.status !== 0) throw new Error(`pip install cfn-lint failed: ${pip.stderr.trim()}`);
  return VENV_CFN_LINT;
}

const ACCOUNT = '123456789012';
const VARIANTS: Record<string, Record<string, unknown>> = {
  defaults: {},
  'jwks, MSK SASL/SCRAM with a CMK, S3 failure destination, logs role, reserved concurrency, OK actions': {
    authMode: 'jwks',
    jwksUrl: 'https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_abc/.well-known/jwks.json',
    jwtIssuer: 'https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_abc',
    jwtAudience: 'dashboard',
    kafkaAuth: 'sasl-scram-512',
    kafkaSecretArn: `arn:aws:secretsmanager:eu-west-1:${ACCOUNT}:secret:AmazonMSK_iot-AbCdEf`,
    kafkaSecretKmsKeyArn: `arn:aws:kms:eu-west-1:${ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab`,
    failureDestination: 's3',
    apiGatewayLogsRole: true,
    reservedConcurrency: { authorizer: 20, stream: 10 },
    alarmOkActions: true,
    alarmEmail: 'ops@example.com',
  },
  'defaults with the replay reader in the MSK cluster VPC': REPLAY_CONTEXT,
  'hs256, self-managed Kafka in a VPC without auth': {
    authMode: 'hs256',
    kafkaSource: 'self-managed',
    kafkaBootstrapServers: 'b1:9092,b2:9092',
    kafkaAuth: 'none',
    kafkaVpcId: 'vpc-0123456789abcdef0',
    kafkaSubnetIds: 'subnet-0123456789abcdef1,subnet-0123456789abcdef2',
    kafkaSecurityGroupId: 'sg-0123456789abcdef0',
  },
};

interface Finding {
  Level: string;
  Rule: { Id: string };
  Message: string;
  Location: { Path: string[] };
  Filename: string;
}

it('finds no error in the synthesized templates', () => {
  const linter = cfnLint();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cfn-lint-'));
  try {
    const files = Object.entries(VARIANTS).map(([name, context], i) => {
      const file = path.join(dir, `variant-${i}.json`);
      fs.writeFileSync(file, JSON.stringify(buildStack(context).template.toJSON()));
      return [file, name] as const;
    });
    const result = spawnSync(linter, ['--format', 'json', '--regions', 'eu-west-1', 'us-east-1', '--', ...files.map(([f]) => f)], {
      encoding: 'utf8',
      timeout: 300_000,
    });
    // Exit status is a bit mask (2 errors, 4 warnings, 8 informational); the JSON says which.
    expect(result.error).toBeUndefined();
    const findings = JSON.parse(result.stdout || '[]') as Finding[];
    const variantOf = new Map(files);
    const errors = findings
      .filter((f) => f.Level === 'Error')
      .map((f) => `${variantOf.get(f.Filename) ?? f.Filename}: ${f.Rule.Id} ${f.Message} at ${f.Location.Path.join('/')}`);
    expect(errors).toEqual([]);
    // The linter did run on every file (a crash prints no JSON and exits 1 or 32).
    expect([0, 2, 4, 6, 8, 10, 12, 14]).toContain(result.status);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}, 900_000);
