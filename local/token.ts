/**
 * `npm run token -- --sub NAME --sites plant-a,plant-b --ttl 1h [--roles operator]`: prints an
 * HS256 token for scripts, tests and tools that connect without a browser. Signed with
 * `JWT_SECRET` when set (for a deployed `hs256` stack, its Secrets Manager secret), else with the
 * local runtime's secret (see local/dev-secret.ts). `--sites '*'` grants every site.
 */
import { parseArgs } from 'node:util';
import { mintToken } from '../lambdas/core/auth';
import { errorMessage } from '../lambdas/core/errors';
import { DEV_SECRET_FILE, devSecret } from './dev-secret';

const USAGE = 'usage: npm run token -- --sub NAME --sites plant-a,plant-b [--ttl 1h] [--roles r1,r2] [--iss ISSUER] [--aud AUDIENCE]';

function list(value: string | undefined): string[] {
  return (value ?? '').split(',').map((item) => item.trim()).filter(Boolean);
}

async function main(): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        sub: { type: 'string' },
        sites: { type: 'string' },
        roles: { type: 'string' },
        ttl: { type: 'string', default: '1h' },
        iss: { type: 'string' },
        aud: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (error) {
    console.error(`${errorMessage(error)}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (!values.sub || values.sites === undefined) {
    console.error(`--sub and --sites are required\n${USAGE}`);
    return 2;
  }
  if (!/^\d+\s*(s|sec|secs|m|min|mins|h|hr|hrs|hour|hours|d|day|days)$/.test(values.ttl)) {
    console.error(`--ttl must be a duration such as 30s, 15m, 1h or 2d, got "${values.ttl}"`);
    return 2;
  }
  const secret = await devSecret({ create: false });
  if (!secret) {
    console.error(`no secret: start the local runtime once (npm start writes ${DEV_SECRET_FILE}) or set JWT_SECRET`);
    return 1;
  }
  const claims = {
    sub: values.sub,
    sites: list(values.sites),
    ...(values.roles ? { roles: list(values.roles) } : {}),
    ...(values.iss ? { iss: values.iss } : {}),
    ...(values.aud ? { aud: values.aud } : {}),
  };
  console.log(await mintToken(secret, claims, values.ttl));
  return 0;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(`token: ${errorMessage(error)}`);
    process.exit(1);
  },
);
