/** A real `ws` client for tests: collects every frame and waits for the ones a test expects. */
import WebSocket from 'ws';
import {
  parseServerFrame,
  unpackFrame,
  type AlertFrame,
  type DeviceDataFrame,
  type Filter,
  type ServerFrame,
} from '../../lambdas/core/protocol';

/** A record frame as a client received it. */
export type RecordFrame = DeviceDataFrame | AlertFrame;

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

  /** Opens a connection (with `?token=` when a token is given); rejects with the HTTP status when the upgrade is refused. */
  static connect(wsUrl: string, token?: string): Promise<TestClient> {
    const url = token ? `${wsUrl}${wsUrl.includes('?') ? '&' : '?'}token=${encodeURIComponent(token)}` : wsUrl;
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
    // The wait only bounds a hang: a reply comes or not, and on a loaded shared machine (1,000
    // clients subscribing at once) a correct one can take longer than a few seconds.
    await this.until(() => {
      found = this.frames.slice(from).find((f) => (types as string[]).includes(f.type)) as typeof found;
      return found !== undefined;
    }, 30_000, `a reply to ${JSON.stringify(frame).slice(0, 80)}`);
    return found!;
  }

  /** Record frames received, unpacked from `batch` frames, in arrival order. */
  get records(): RecordFrame[] {
    return this.frames.filter((f): f is RecordFrame => f.type === 'device_data' || f.type === 'alert');
  }

  /** Records received for one device. */
  recordsOf(deviceId: string): RecordFrame[] {
    return this.records.filter((frame) => frame.data.deviceId === deviceId);
  }

  /** Subscribes and waits for the `subscribed` reply; throws with the error frame when refused. */
  async subscribe(id: string, filter: Filter): Promise<void> {
    const reply = await this.request({ action: 'subscribe', id, filter });
    if (reply.type !== 'subscribed') throw new Error(`subscribe ${id} refused: ${JSON.stringify(reply)}`);
  }

  /**
   * Sends a ping and waits for its pong. The server writes to a socket in order, so every record
   * posted to this client before the ping has arrived once this resolves.
   */
  async barrier(): Promise<void> {
    await this.request({ action: 'ping' }, ['pong']);
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
