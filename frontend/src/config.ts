/**
 * The dashboard's runtime configuration: `config.json` beside the page (the CDK stack writes it
 * at deploy; the local runtime serves its own). With `auth`, the page signs the operator in
 * there; a `?token=` in the page URL (for scripts) is used instead, and taken out of the address
 * bar at once.
 */
import { ConfigError } from '../../lambdas/core/errors';

/** Where and how the page signs in (OpenID Connect, authorization code with PKCE). */
export interface AuthConfig {
  /** The issuer URL, e.g. `https://cognito-idp.{region}.amazonaws.com/{userPoolId}`. */
  readonly issuer: string;
  /** The dashboard's client id (a public client: no secret). */
  readonly clientId: string;
  /** Scopes to ask for; `openid` among them. */
  readonly scopes: readonly string[];
  /** The ID token claim that lists the user's sites. Default `sites`. */
  readonly sitesClaim?: string;
}

export interface DashboardConfig {
  /** `wss://{api}.execute-api.{region}.amazonaws.com/{stage}` or `ws://localhost:8081`. */
  readonly wsUrl: string;
  /** Sign-in settings; absent when the server needs no sign-in (or hands out {@link token}). */
  readonly auth?: AuthConfig;
  /** A fixed token for `$connect`: the page URL's `?token=`, or config.json's (local test runtime). */
  readonly token?: string;
}

function authOf(value: unknown): AuthConfig | undefined {
  if (value === undefined) return undefined;
  const { issuer, clientId, scopes, sitesClaim } = (value ?? {}) as Record<string, unknown>;
  if (typeof issuer !== 'string' || !/^https?:\/\//.test(issuer)) throw new ConfigError('config.json "auth.issuer" must be the issuer URL');
  if (typeof clientId !== 'string' || clientId === '') throw new ConfigError('config.json "auth.clientId" must be the client id');
  const scopeList = scopes === undefined ? ['openid'] : scopes;
  if (!Array.isArray(scopeList) || !scopeList.every((scope) => typeof scope === 'string') || !scopeList.includes('openid')) {
    throw new ConfigError('config.json "auth.scopes" must be a list of scopes with "openid"');
  }
  if (sitesClaim !== undefined && typeof sitesClaim !== 'string') throw new ConfigError('config.json "auth.sitesClaim" must be a claim name');
  return { issuer, clientId, scopes: scopeList as string[], ...(sitesClaim ? { sitesClaim } : {}) };
}

/** Validates the parsed config.json and applies the page URL's `?token=`. */
export function resolveConfig(json: unknown, pageUrl: string): DashboardConfig {
  if (typeof json !== 'object' || json === null) throw new ConfigError('config.json must be a JSON object');
  const { wsUrl, token, auth } = json as { wsUrl?: unknown; token?: unknown; auth?: unknown };
  if (typeof wsUrl !== 'string' || !/^wss?:\/\//.test(wsUrl)) {
    throw new ConfigError('config.json needs "wsUrl": "wss://..." (the WebSocket stage URL)');
  }
  const authConfig = authOf(auth);
  const urlToken = new URL(pageUrl).searchParams.get('token');
  const chosen = urlToken || (typeof token === 'string' && token ? token : undefined);
  return { wsUrl, ...(authConfig ? { auth: authConfig } : {}), ...(chosen ? { token: chosen } : {}) };
}

/** The page URL without `?token=`: what the address bar and history should hold. */
export function withoutToken(pageUrl: string): string | undefined {
  const url = new URL(pageUrl);
  if (!url.searchParams.has('token')) return undefined;
  url.searchParams.delete('token');
  return url.href;
}

/** Fetches `./config.json` relative to the page. */
export async function loadConfig(pageUrl: string = window.location.href): Promise<DashboardConfig> {
  const url = new URL('config.json', pageUrl);
  let response: Response;
  try {
    response = await fetch(url, { cache: 'no-store' });
  } catch (error) {
    throw new ConfigError(`cannot fetch ${url.pathname}`, { cause: error });
  }
  if (!response.ok) {
    throw new ConfigError(`${url.pathname} answered HTTP ${response.status}; deploy or start the local runtime to write it`);
  }
  let json: unknown;
  try {
    json = await response.json();
  } catch (error) {
    throw new ConfigError(`${url.pathname} is not valid JSON`, { cause: error });
  }
  return resolveConfig(json, pageUrl);
}
