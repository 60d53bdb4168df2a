/**
 * A real OpenID provider on this machine, so that the dashboard signs in locally exactly as in the
 * cloud: authorization code with PKCE, ID tokens signed with an RS256 key, refresh
 * tokens, discovery and JWKS. It is `oidc-provider` (certified by the OpenID Foundation) with two
 * demo users; this module adds only the login page and the users.
 *
 * `oidc-provider` is ESM-only: it is loaded with `import()`, which works under tsx (`npm start`)
 * but not inside jest, so tests run this file as a child process:
 * `tsx local/oidc-provider.ts --port 0 [--id-token-ttl 60] [--key-file F]` prints one JSON line
 * `{"issuer": "...", "clientId": "..."}`; passwords come from `DEMO_PASSWORD`.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import { errorMessage } from '../lambdas/core/errors';

/** A user of the local provider. */
export interface DemoUser {
  readonly username: string;
  readonly name: string;
  /** The `sites` claim: site names, or `['*']` for every site. */
  readonly sites: readonly string[];
}

/** The demo users of `npm start`. */
export const DEMO_USERS: readonly DemoUser[] = [
  { username: 'admin', name: 'Administrator', sites: ['*'] },
  { username: 'operator-a', name: 'Operator A', sites: ['plant-a'] },
];

/** The dashboard's client id at the local provider. */
const LOCAL_CLIENT_ID = 'iot-dashboard';

/** Scopes the dashboard asks the local provider for (`offline_access` is implied: see issueRefreshToken). */
export const LOCAL_SCOPES = ['openid', 'profile'] as const;

/** Options of {@link startOidcProvider}. */
export interface OidcProviderOptions {
  /** Port; 0 for a free one. Default 8082. */
  port?: number;
  /** Interface to bind. Default 127.0.0.1. */
  host?: string;
  /** Host name in the issuer URL. Default localhost. */
  urlHost?: string;
  /** Every demo user's password. */
  password: string;
  /** Lifetime of ID and access tokens, in seconds. Default 3600, as Cognito's. */
  idTokenTtlSeconds?: number;
  /** Users. Default {@link DEMO_USERS}. */
  users?: readonly DemoUser[];
  /**
   * A file keeping the signing key (a private JWK, mode 0600), created when absent, so that
   * tokens issued before a restart still verify after it. Default: a new key every start.
   */
  keyFile?: string;
}

/** A running local provider. */
export interface LocalOidcProvider {
  readonly issuer: string;
  readonly clientId: string;
  close(): Promise<void>;
}

/** Loopback origins only, on any port: the dashboard's port may be chosen at start (port 0). */
function isLoopbackOrigin(origin: string): boolean {
  const url = URL.parse(origin);
  return url !== null && url.protocol === 'http:' && ['localhost', '127.0.0.1', '[::1]'].includes(url.hostname);
}

const escapeHtml = (text: string) =>
  text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

function loginPage(uid: string, error?: string, username = ''): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in · IoT live dashboard (local)</title>
<style>body{font:16px system-ui,sans-serif;background:#0f172a;color:#e2e8f0;display:grid;place-items:center;min-height:100vh;margin:0}
form{background:#1e293b;padding:2rem;border-radius:8px;display:grid;gap:.75rem;min-width:18rem}
input,button{font:inherit;padding:.5rem;border-radius:4px;border:1px solid #475569}button{background:#2563eb;color:#fff;cursor:pointer}
.error{color:#fca5a5}.hint{color:#94a3b8;font-size:.85rem}</style></head>
<body><form method="post" action="/interaction/${escapeHtml(uid)}/login" autocomplete="off">
<h1>Sign in</h1><p class="hint">Local OpenID provider of <code>npm start</code>. Users: admin, operator-a.</p>
${error ? `<p class="error" role="alert" data-testid="login-error">${escapeHtml(error)}</p>` : ''}
<label>User <input name="username" value="${escapeHtml(username)}" autofocus required data-testid="login-username"></label>
<label>Password <input name="password" type="password" required data-testid="login-password"></label>
<button type="submit" data-testid="login-submit">Sign in</button></form></body></html>`;
}

async function formBody(req: IncomingMessage): Promise<URLSearchParams> {
  let body = '';
  for await (const chunk of req) {
    body += chunk;
    if (body.length > 4096) throw new Error('form too large');
  }
  return new URLSearchParams(body);
}

const digest = (text: string) => createHash('sha256').update(text).digest();

async function loadSigningKey(file: string | undefined): Promise<JWK> {
  if (file) {
    try {
      return JSON.parse(await readFile(file, 'utf8')) as JWK;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
  }
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const key = { ...(await exportJWK(privateKey)), kid: randomBytes(8).toString('hex'), alg: 'RS256', use: 'sig' };
  if (file) {
    await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    await writeFile(file, JSON.stringify(key), { mode: 0o600 });
  }
  return key;
}

/** Starts the provider. */
export async function startOidcProvider(options: OidcProviderOptions): Promise<LocalOidcProvider> {
  // oidc-provider is ESM-only; tsx's CommonJS output keeps this import() native.
  const { default: Provider } = await import('oidc-provider');
  const users = new Map((options.users ?? DEMO_USERS).map((user) => [user.username, user]));
  const passwordDigest = digest(options.password);
  const ttl = options.idTokenTtlSeconds ?? 3600;
  const signingKey = await loadSigningKey(options.keyFile);

  const server = http.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 8082, options.host ?? '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const issuer = `http://${options.urlHost ?? 'localhost'}:${port}`;

  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: LOCAL_CLIENT_ID,
        // A native client may redirect to a loopback URL on any port (RFC 8252 7.3), which lets the
        // dashboard run on whatever port it was given.
        application_type: 'native',
        token_endpoint_auth_method: 'none',
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        redirect_uris: ['http://localhost/', 'http://127.0.0.1/'],
        post_logout_redirect_uris: ['http://localhost/', 'http://127.0.0.1/'],
      },
    ],
    async findAccount(_ctx: unknown, id: string) {
      const user = users.get(id);
      if (!user) return undefined;
      return { accountId: id, claims: async () => ({ sub: id, name: user.name, preferred_username: id, sites: [...user.sites] }) };
    },
    claims: { openid: ['sub'], profile: ['name', 'preferred_username', 'sites'] },
    // The ID token carries the profile claims (sites among them): it is what the dashboard connects with.
    conformIdTokenClaims: false,
    features: { devInteractions: { enabled: false } },
    interactions: { url: (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}` },
    pkce: { required: () => true },
    ttl: { IdToken: ttl, AccessToken: ttl, AuthorizationCode: 60, Interaction: 600, RefreshToken: 8 * 3600, Session: 8 * 3600, Grant: 8 * 3600 },
    // Refresh tokens without offline_access and its consent prompt, as Cognito gives them.
    issueRefreshToken: async (_ctx: unknown, client: { grantTypeAllowed(type: string): boolean }) => client.grantTypeAllowed('refresh_token'),
    clientBasedCORS: (_ctx: unknown, origin: string) => isLoopbackOrigin(origin),
    cookies: { keys: [randomBytes(32).toString('hex')] },
    jwks: { keys: [signingKey] },
  });
  const callback = provider.callback();

  const interaction = async (req: IncomingMessage, res: ServerResponse, uid: string, action: string | undefined) => {
    const send = (status: number, html: string) => {
      res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', 'x-frame-options': 'DENY' });
      res.end(html);
    };
    const details = await provider.interactionDetails(req, res);
    if (details.uid !== uid) return send(400, 'interaction mismatch');
    // The dashboard is this provider's own first-party client: consent is given with the login,
    // and never asked for (a native client is otherwise asked every time).
    const finish = async (accountId: string) => {
      const grant = new provider.Grant({ accountId, clientId: String(details.params.client_id) });
      grant.addOIDCScope(String(details.params.scope ?? 'openid'));
      const grantId = await grant.save();
      await provider.interactionFinished(req, res, { login: { accountId }, consent: { grantId } }, { mergeWithLastSubmission: false });
    };
    if (req.method === 'GET' && !action) {
      const signedIn = details.session?.accountId;
      if (details.prompt.name === 'consent' && signedIn && users.has(signedIn)) return finish(signedIn);
      return send(200, loginPage(uid));
    }
    if (req.method === 'POST' && action === 'login') {
      const form = await formBody(req);
      const username = form.get('username') ?? '';
      const known = users.has(username);
      // Compared as digests of equal length, in constant time; an unknown user costs the same.
      const passwordOk = timingSafeEqual(digest(form.get('password') ?? ''), passwordDigest);
      if (!known || !passwordOk) return send(401, loginPage(uid, 'Wrong user or password.', username.slice(0, 64)));
      return finish(username);
    }
    return send(405, 'method not allowed');
  };

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const match = /^\/interaction\/([\w-]+)(?:\/(\w+))?$/.exec(new URL(req.url ?? '/', issuer).pathname);
    if (!match) return callback(req, res);
    interaction(req, res, match[1], match[2]).catch((error: unknown) => {
      if (res.headersSent) return res.end();
      // An expired or unknown interaction: start the sign-in again from the dashboard.
      res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(`Sign-in cannot continue (${errorMessage(error)}). Go back to the dashboard and sign in again.\n`);
    });
  });

  return {
    issuer,
    clientId: LOCAL_CLIENT_ID,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { port: { type: 'string', default: '8082' }, 'id-token-ttl': { type: 'string', default: '3600' }, 'key-file': { type: 'string' } },
  });
  const password = process.env.DEMO_PASSWORD;
  if (!password) throw new Error('set DEMO_PASSWORD');
  const provider = await startOidcProvider({
    port: Number(values.port),
    urlHost: '127.0.0.1',
    password,
    idTokenTtlSeconds: Number(values['id-token-ttl']),
    keyFile: values['key-file'],
  });
  console.log(JSON.stringify({ issuer: provider.issuer, clientId: provider.clientId }));
  const stop = () => void provider.close().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

if (require.main === module) {
  main().catch((error: unknown) => {
    console.error(`oidc-provider: ${errorMessage(error)}`);
    process.exit(1);
  });
}
