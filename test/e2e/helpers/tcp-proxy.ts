/**
 * A TCP proxy the test controls, put between the page and the runtime's WebSocket port, to cut
 * the network under an open WebSocket. Chromium's offline emulation (playwright's
 * `context.setOffline`) does not do it: an open WebSocket stays up and its frames arrive late.
 * While cut, every open connection is reset and every new one is reset as soon as it is accepted,
 * so the page's reconnects fail as they do with the network gone.
 */
import { connect, createServer, type Socket } from 'node:net';

/** A running proxy; see the module comment. */
export interface TcpProxy {
  readonly port: number;
  /** `url` with its host and port replaced by the proxy's. */
  through(url: string): string;
  /** Resets every open connection, and every new one until {@link restore}. */
  cut(): void;
  /** Forwards new connections again. */
  restore(): void;
  /** Connections reset on arrival while cut: the page's failed reconnects. */
  readonly refused: number;
  stop(): Promise<void>;
}

/** Starts a proxy on a free loopback port, forwarding to `target`. */
export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const pairs = new Set<[Socket, Socket]>();
  let cut = false;
  let refused = 0;
  const server = createServer((client) => {
    if (cut) {
      refused++;
      client.resetAndDestroy();
      return;
    }
    const upstream = connect(target.port, target.host);
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('the proxy has no TCP address');
  return {
    port: address.port,
    through(url) {
      const moved = new URL(url);
      moved.hostname = '127.0.0.1';
      moved.port = String(address.port);
      return moved.toString();
    },
    cut() {
      cut = true;
      for (const [client, upstream] of pairs) {
        // A reset, not a close: the page sees the connection fail, as when a link drops.
        client.resetAndDestroy();
        upstream.destroy();
      }
      pairs.clear();
    },
    restore() {
      cut = false;
    },
    get refused() {
      return refused;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        for (const [client, upstream] of pairs) {
          client.destroy();
          upstream.destroy();
        }
        server.close(() => resolve());
      }),
  };
}
