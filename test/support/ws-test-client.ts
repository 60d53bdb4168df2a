/** A real `ws` client for tests: collects every frame and waits for the ones a test expects. */
import WebSocket from 'ws';
import { parseServerFrame, unpackFrame, type ServerFrame } from '../../lambdas/core/protocol';

export class TestClient {
  /** Every frame received, batches unpacked, in order. */
  readonly frames: ServerFrame[] = [];
  /** Raw text messages received. */
  readonly messages: string[] = [];
  closeCode?: number;
  private waiters: (() => void)[] = [];
  readonly closed: Promise<number>;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      const text = data.toString();
      this.messages.push(text);
      this.frames.push(...unpackFrame(parseServerFrame(text)));
      this.wake();
    });
    this.closed = new Promise((resolve) =>
      ws.on('close', (code) => {
        this.closeCode = code;
        this.wake();
        resolve(code);
      }),
    );
  }

  /** Opens a connection; rejects with the HTTP status when the upgrade is refused. */
  static connect(url: string): Promise<TestClient> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      const client = new TestClient(ws);
      ws.once('open', () => resolve(client));
      ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode })));
      ws.once('error', reject);
    });
  }

  send(frame: unknown): void {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    waiters.forEach((w) => w());
  }

  /** Resolves once `condition` holds, checking after each frame; rejects after `timeoutMs`. */
  async until(condition: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!condition()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}; got ${this.frames.length} frames: ${JSON.stringify(this.frames.slice(-3))}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Sends a frame and resolves with the first reply of one of `types` received after it. */
  async request<T extends ServerFrame['type']>(frame: unknown, types: T[] = ['subscribed', 'unsubscribed', 'pong', 'error'] as T[]) {
    const from = this.frames.length;
    this.send(frame);
    let found: Extract<ServerFrame, { type: T }> | undefined;
    await this.until(() => {
      found = this.frames.slice(from).find((f) => (types as string[]).includes(f.type)) as typeof found;
      return found !== undefined;
    }, 5000, `a reply to ${JSON.stringify(frame).slice(0, 80)}`);
    return found!;
  }

  /** Frames of the given type. */
  of<T extends ServerFrame['type']>(type: T): Extract<ServerFrame, { type: T }>[] {
    return this.frames.filter((f) => f.type === type) as Extract<ServerFrame, { type: T }>[];
  }

  close(): Promise<number> {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close();
    return this.closed;
  }
}

/** A device-data record. */
export function reading(deviceId: string, over: Record<string, unknown> = {}) {
  return {
    deviceId,
    deviceType: deviceId.split('-')[0],
    location: 'plant-a/line-1',
    timestamp: Date.now(),
    status: 'online',
    metrics: { temperature: 70 },
    ...over,
  };
}

/** An alert record. */
export function alertRecord(deviceId: string, level: 'info' | 'warning' | 'critical', over: Record<string, unknown> = {}) {
  return {
    alertId: `a-${Math.random().toString(36).slice(2)}`,
    deviceId,
    deviceType: deviceId.split('-')[0],
    location: 'plant-a/line-1',
    level,
    message: 'temperature above 90',
    metric: 'temperature',
    value: 93.4,
    threshold: 90,
    timestamp: Date.now(),
    ...over,
  };
}
