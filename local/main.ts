/**
 * `npm start`: the whole product on this machine. Flags (each also an environment variable):
 *   --port N          dashboard, /metrics, /health (PORT, default 8080)
 *   --ws-port N       WebSocket API and Management API (WS_PORT, default 8081)
 *   --devices N       simulated devices (DEVICES, default 50)
 *   --rate N          simulated readings per second in all (RATE, default 2 per device)
 *   --no-simulator    no simulated devices
 *   --kafka BROKERS   read from Kafka, e.g. localhost:9092 (KAFKA_BROKERS); the simulator then produces to it
 *   --auth MODE       `oidc` (default): the dashboard signs in at the embedded OpenID provider;
 *                     `dev`: no provider, config.json hands the page a token; `none`: no token at all (AUTH)
 *   --oidc-port N     the embedded OpenID provider (OIDC_PORT, default 8082); demo users admin and
 *                     operator-a, password DEMO_PASSWORD or random, printed at start
 *   --post-latency MS each Management API call answers after about MS ms, jittered, as on AWS (POST_LATENCY, default 0)
 *   --post-quota N    refuse posts beyond N a second with 429, as API Gateway's account quota (POST_QUOTA_LOCAL, default none)
 *   --no-open         do not open the dashboard in the desktop's browser (it opens only on a desktop terminal)
 */
import { spawn, spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { DEV_SECRET_FILE, devSecret } from './dev-secret';
import { DEMO_USERS } from './oidc-provider';
import { startLocalRuntime } from './runtime';

// The SDK's own multi-line warning drowns the start-up lines; one line below says the same.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

function intOption(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined || value === '') return fallback;
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 0) {
    console.error(`--${name} must be a whole number, got "${value}"`);
    process.exit(2);
  }
  return parsed;
}

/**
 * Opens the dashboard in the desktop's browser, the way dev servers do: only from an interactive
 * terminal on a desktop session, never in CI or over SSH without a display.
 */
function openInBrowser(url: string): void {
  const desktop = process.env.DISPLAY || process.env.WAYLAND_DISPLAY || process.platform === 'darwin';
  if (!process.stdout.isTTY || process.env.CI || !desktop) return;
  const opener = process.platform === 'darwin' ? 'open' : 'xdg-open';
  if (spawnSync('which', [opener]).status !== 0) return;
  spawn(opener, [url], { detached: true, stdio: 'ignore' }).on('error', () => {}).unref();
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: 'string' },
      'ws-port': { type: 'string' },
      devices: { type: 'string' },
      rate: { type: 'string' },
      'no-simulator': { type: 'boolean' },
      kafka: { type: 'string' },
      auth: { type: 'string' },
      'oidc-port': { type: 'string' },
      'post-latency': { type: 'string' },
      'post-quota': { type: 'string' },
      'no-open': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(
      'usage: npm start -- [--port 8080] [--ws-port 8081] [--devices 50] [--rate 100] [--no-simulator] [--kafka localhost:9092] ' +
        '[--auth oidc|dev|none] [--oidc-port 8082] [--post-latency 20] [--post-quota 10000] [--no-open]',
    );
    return;
  }
  const env = process.env;
  const devices = intOption('devices', values.devices ?? env.DEVICES, 50);
  const rate = intOption('rate', values.rate ?? env.RATE, devices * 2);
  const brokers = (values.kafka ?? env.KAFKA_BROKERS)?.split(',').map((b) => b.trim()).filter(Boolean);
  const authMode = values.auth ?? env.AUTH ?? 'oidc';
  if (!['oidc', 'dev', 'none'].includes(authMode)) {
    console.error(`--auth must be oidc, dev or none, got "${authMode}"`);
    process.exit(2);
  }
  const demoPassword = env.DEMO_PASSWORD || randomBytes(9).toString('base64url');
  const started = Date.now();
  const runtime = await startLocalRuntime({
    dashboardPort: intOption('port', values.port ?? env.PORT, 8080),
    wsPort: intOption('ws-port', values['ws-port'] ?? env.WS_PORT, 8081),
    auth: authMode === 'none' ? 'none' : 'dev',
    // The same secret as `npm run token`, kept across restarts.
    jwtSecret: authMode === 'none' ? undefined : await devSecret({ create: true }),
    oidc:
      authMode === 'oidc'
        ? {
            embedded: true,
            port: intOption('oidc-port', values['oidc-port'] ?? env.OIDC_PORT, 8082),
            password: demoPassword,
            // Tokens issued before a restart still verify after it (sessions do not survive it).
            keyFile: path.join(path.dirname(DEV_SECRET_FILE), 'oidc-signing-key.json'),
          }
        : undefined,
    simulator: values['no-simulator'] ? false : { devices, readingsPerSecond: rate },
    kafka: brokers?.length ? { brokers } : undefined,
    postLatencyMs: intOption('post-latency', values['post-latency'] ?? env.POST_LATENCY, 0),
    postQuota: intOption('post-quota', values['post-quota'] ?? env.POST_QUOTA_LOCAL, 0) || undefined,
    log: (line) => {
      if (!line.startsWith('info')) console.log(line);
    },
  });
  console.log(`IoT live dashboard running (started in ${Date.now() - started} ms)`);
  if (Number(process.versions.node.split('.')[0]) < 22) {
    console.log(`  note           Node ${process.versions.node}: AWS SDK v3 releases from January 2027 need Node 22 or newer`);
  }
  console.log(`  dashboard      ${runtime.dashboardUrl}`);
  console.log(`  WebSocket API  ${runtime.wsUrl}${runtime.token ? '  (connect with ?token=, see below)' : ''}`);
  console.log(`  Management API ${runtime.managementUrl}/@connections/{connectionId}`);
  console.log(`  metrics        ${runtime.dashboardUrl}metrics`);
  console.log(`  health         ${runtime.dashboardUrl}health`);
  console.log(`  DynamoDB       ${runtime.dynamoEndpoint} (dynalite, in memory)`);
  if (values['post-latency'] || values['post-quota']) {
    console.log(`  as on AWS      posts answer after ~${values['post-latency'] ?? 0} ms; quota ${values['post-quota'] ?? 'none'} posts/s (429 beyond)`);
  }
  console.log(
    `  records        ${brokers?.length ? `Kafka ${brokers.join(',')}, topics device-data and alerts` : 'simulator straight into the stream handler'}` +
      (values['no-simulator'] ? ' (no simulated devices)' : `; ${devices} simulated devices, ${rate} readings/s`),
  );
  if (runtime.oidc) {
    console.log(`  sign-in        ${runtime.oidc.issuer} (OpenID provider)`);
    const users = DEMO_USERS.map((user) => `${user.username} (sites ${user.sites.join(',')})`).join(', ');
    console.log(`  demo users     ${users}; password ${env.DEMO_PASSWORD ? 'from DEMO_PASSWORD' : demoPassword}`);
  }
  if (runtime.token) console.log('  script tokens  npm run token -- --sub NAME --sites plant-a --ttl 1h');
  const how = runtime.oidc ? 'sign in as admin or operator-a' : runtime.token ? 'it reads the token from config.json' : 'no sign-in';
  console.log(`Open ${runtime.dashboardUrl} in a browser (${how}). Ctrl-C stops.`);
  if (!values['no-open']) openInBrowser(runtime.dashboardUrl);

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`\n${signal}: stopping…`);
    await runtime.stop();
    console.log('stopped.');
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
}

main().catch((error: NodeJS.ErrnoException) => {
  if (error.code === 'EADDRINUSE') {
    console.error(`A port is already in use (${error.message}). Stop the other process or pick ports with --port / --ws-port.`);
  } else {
    console.error(`Could not start: ${error.stack ?? error.message}`);
  }
  process.exit(1);
});
