/**
 * The dashboard's HTTP server on the local runtime: the built page and its assets, the
 * `config.json` the page reads, GET /metrics (Prometheus text) and GET /health (JSON).
 *
 * It answers only requests whose `Host` is a loopback name (configurable): a web page whose domain
 * is rebound to 127.0.0.1 sends its own name, and so cannot read `config.json` and its token.
 */
import { readFile, stat } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { checkHealth, healthStatusCode, type HealthCheck } from '../lambdas/core/health';
import { renderPrometheus } from '../lambdas/core/metrics';
import { PROMETHEUS_CONTENT_TYPE } from '../lambdas/handlers/metrics';
import { LOOPBACK_HOSTS, hostAllowed } from './gateway';
import { errorMessage } from '../lambdas/core/errors';

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.map': 'application/json',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
  '.ico': 'image/x-icon',
  '.webmanifest': 'application/manifest+json',
  '.wav': 'audio/wav',
};

/** Options of {@link createDashboardServer}. */
export interface DashboardServerOptions {
  port: number;
  host: string;
  urlHost: string;
  frontendDir: string;
  /** The body of /config.json. */
  config: () => Record<string, unknown>;
  /** Summed metric series for /metrics. */
  metrics: () => Promise<Map<string, number>>;
  health: Record<string, HealthCheck>;
  /** Host names accepted in the `Host` header. Default the loopback names (see ./gateway.ts). */
  allowedHosts?: readonly string[];
}

/** Starts the dashboard server. */
export async function createDashboardServer(options: DashboardServerOptions) {
  const root = path.resolve(options.frontendDir);
  const metricsText = async () => renderPrometheus(await options.metrics());

  const server = http.createServer(async (req, res) => {
    const send = (status: number, type: string, body: string | Buffer, extra: Record<string, string> = {}) => {
      res.writeHead(status, { 'content-type': type, ...extra });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    try {
      if (!hostAllowed(req.headers.host, options.allowedHosts ?? LOOPBACK_HOSTS)) {
        return send(403, 'text/plain', 'Forbidden: unexpected Host\n');
      }
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        return send(405, 'text/plain', 'Method Not Allowed\n', { allow: 'GET, HEAD' });
      }
      const url = new URL(req.url ?? '/', 'http://localhost');
      if (url.pathname === '/config.json') {
        return send(200, 'application/json', JSON.stringify(options.config()), { 'cache-control': 'no-store' });
      }
      if (url.pathname === '/metrics') return send(200, PROMETHEUS_CONTENT_TYPE, await metricsText());
      if (url.pathname === '/health') {
        const report = await checkHealth(options.health);
        return send(healthStatusCode(report), 'application/json', JSON.stringify(report), { 'cache-control': 'no-store' });
      }
      let pathname = decodeURIComponent(url.pathname);
      if (pathname.endsWith('/')) pathname += 'index.html';
      const file = path.resolve(root, '.' + pathname);
      if (file !== root && !file.startsWith(root + path.sep)) return send(403, 'text/plain', 'Forbidden\n');
      const info = await stat(file).catch(() => undefined);
      if (!info?.isFile()) {
        const hint = pathname === '/index.html' ? ' (build the dashboard: npm run build:frontend)' : '';
        return send(404, 'text/plain', `Not Found${hint}\n`);
      }
      const type = CONTENT_TYPES[path.extname(file)] ?? 'application/octet-stream';
      return send(200, type, await readFile(file), { 'cache-control': 'no-cache' });
    } catch (error) {
      return send(500, 'text/plain', `Internal error: ${errorMessage(error)}\n`);
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://${options.urlHost}:${port}/`,
    port,
    metricsText,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
