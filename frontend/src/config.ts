/**
 * The dashboard's runtime configuration: `config.json` beside the page (the CDK stack writes it
 * at deploy; the local runtime serves its own), with `?token=` in the page URL taking precedence.
 */
import { ConfigError } from '../../lambdas/core/errors';

export interface DashboardConfig {
  /** `wss://{api}.execute-api.{region}.amazonaws.com/{stage}` or `ws://localhost:8081`. */
  readonly wsUrl: string;
  /** Token for `$connect`, appended to the socket URL as `?token=`. */
  readonly token?: string;
}

/** Validates the parsed config.json and applies the page URL's `?token=`. */
export function resolveConfig(json: unknown, pageUrl: string): DashboardConfig {
  if (typeof json !== 'object' || json === null) throw new ConfigError('config.json must be a JSON object');
  const { wsUrl, token } = json as { wsUrl?: unknown; token?: unknown };
  if (typeof wsUrl !== 'string' || !/^wss?:\/\//.test(wsUrl)) {
    throw new ConfigError('config.json needs "wsUrl": "wss://..." (the WebSocket stage URL)');
  }
  const urlToken = new URL(pageUrl).searchParams.get('token');
  const chosen = urlToken || (typeof token === 'string' && token ? token : undefined);
  return chosen === undefined ? { wsUrl } : { wsUrl, token: chosen };
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
