/**
 * The dashboard's WebSocket client: one logical live connection to the API Gateway WebSocket API
 * (or the local runtime) that outlives the sockets under it.
 *
 * - subscribe / unsubscribe with filters; every wanted subscription is restored after a reconnect;
 * - a `ping` heartbeat well inside API Gateway's 10 minute idle timeout, and a pong deadline that
 *   treats a silent socket as dead;
 * - reconnect with exponential backoff and full jitter (first retry within a second, capped);
 * - renewal before API Gateway's 2 hour connection limit: a second socket is opened and
 *   subscribed before the first is closed, so no record is lost and the user notices nothing;
 * - records carrying a `cursor` are delivered once, even when two sockets carry them;
 * - after a reconnect, each subscription that was live is restored with `resume` (the last offset
 *   received per partition), so the server replays what was missed (DESIGN.md "Resume"); records
 *   are held until every replay has ended and released in offset order per partition (see
 *   ./replay-hold.ts); a renewal needs no resume, as both sockets overlap;
 * - with a URL function, every open, reopen and renewal asks for the URL (a fresh token) first,
 *   and a handshake the server refuses (told apart by `probe`) stops the retries.
 */
import {
  parseServerFrame,
  type ClientFrameInput,
  type AckedFrame,
  type AlertFrame,
  type AlertStateFrame,
  type DeviceDataFrame,
  type ErrorFrame,
  type Filter,
  type PongFrame,
  type ResumedFrame,
  type ServerFrame,
  type SnapshotFrame,
  type SubscribedFrame,
  type SystemStatusFrame,
  type UnsubscribedFrame,
} from '../../lambdas/core/protocol';
import { backoffDelay, type BackoffOptions } from '../../lambdas/core/backoff';
import { CursorWindow } from './cursor-window';
import { ReplayHold, type RecordFrame } from './replay-hold';
import { PartitionOffsets } from './resume-offsets';
import { SubscriptionBook, type SubscriptionEntry } from './subscription-book';

/** What the connection indicator shows. */
export type ConnectionStatus = 'idle' | 'connecting' | 'connected' | 'reconnecting' | 'offline' | 'refused';

export interface ConnectionState {
  readonly status: ConnectionStatus;
  /** Reconnect attempts since the last successful open (0 while connected). */
  readonly retry: number;
  /** Epoch ms of the next attempt, while reconnecting. */
  readonly nextRetryAt?: number;
  /** Close code of the socket that was lost, while reconnecting or offline. */
  readonly closeCode?: number;
}

/** The events of {@link LiveSocket} and their payloads. */
export interface LiveSocketEvents {
  /** A socket opened (first connect, reconnect) and its subscriptions are being restored. */
  connect: { readonly reconnect: boolean };
  /** The socket was lost; `willRetry` is false after {@link LiveSocket.disconnect}. */
  disconnect: { readonly code: number; readonly reason: string; readonly willRetry: boolean };
  /** The connection was moved to a fresh socket ahead of the 2 hour limit, or on {@link LiveSocket.renew}. */
  renewed: { readonly at: number };
  /** The server refused the handshake (see {@link LiveSocketOptions.probe}); no retry follows until {@link LiveSocket.connect}. */
  refused: { readonly at: number };
  /** A server `error` frame, or a frame the client could not read. */
  error: { readonly message: string; readonly frame?: ErrorFrame };
  /** Every frame after `batch` unpacking and duplicate removal. */
  message: ServerFrame;
  /** A reading, live or from a snapshot. */
  device_data: DeviceDataFrame;
  /** An alert, live or from a snapshot (then with its `state`). */
  alert: AlertFrame;
  /** An alert's state changed (another operator acknowledged it, or it was resolved). */
  alert_state: AlertStateFrame;
  /** A subscription's snapshot frame; its records are also emitted one by one as `device_data` and `alert`. */
  snapshot: SnapshotFrame;
  acked: AckedFrame;
  system_status: SystemStatusFrame;
  subscribed: SubscribedFrame;
  /**
   * The end of a subscription's replay after a reconnect; the replayed records were emitted before
   * it. With `tooFarBehind` nothing was replayed and the subscription's snapshot follows.
   */
  resumed: ResumedFrame;
  unsubscribed: UnsubscribedFrame;
  pong: PongFrame;
  /** The connection state changed. */
  state: ConnectionState;
  /** The set of subscriptions or one's state changed. */
  subscriptions: readonly SubscriptionEntry[];
}
export type LiveSocketEvent = keyof LiveSocketEvents;
type Handler<E extends LiveSocketEvent> = (payload: LiveSocketEvents[E]) => void;

/** The part of the browser's WebSocket the client uses; a test can pass its own. */
export interface SocketLike {
  readonly readyState: number;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}
export type SocketFactory = (url: string) => SocketLike;

/** A client frame as it goes on the wire (`resume` as a JSON object), typed by the protocol module. */
type WireFrame = ClientFrameInput;

/** Options of {@link LiveSocket}. Durations are milliseconds. */
export interface LiveSocketOptions {
  /**
   * The socket URL, with `?token=` already appended when a token is known; or a function giving
   * it, called before every open, reopen and renewal, so that each handshake carries a fresh token.
   */
  readonly url: string | (() => string | Promise<string>);
  /**
   * Tells a refused handshake from a network failure, after a socket closed without opening (a
   * browser sees neither the 401/403 nor its body). `refused` stops the retries. Default: every
   * failure is retried.
   */
  readonly probe?: () => Promise<'refused' | 'network'>;
  /** Interval between `ping` frames. Default 5 minutes, half API Gateway's 10 minute idle timeout. */
  readonly heartbeatIntervalMs?: number;
  /** How long after a ping with nothing received the socket is declared dead. Default 20 s. */
  readonly pongTimeoutMs?: number;
  /** Reconnect delays. Default: first retry within 1 s, doubling, capped at 30 s, full jitter. */
  readonly backoff?: BackoffOptions;
  /** Age at which the connection is moved to a fresh socket. Default 110 minutes (API Gateway cuts at 120). */
  readonly renewAfterMs?: number;
  /** How long a renewal waits for the new socket's `subscribed` replies before switching anyway. Default 10 s. */
  readonly renewalSettleMs?: number;
  /** How many record cursors are remembered to drop duplicates. Default 10000. */
  readonly cursorWindow?: number;
  /**
   * After a reconnect with `resume`, records are held until every replay has ended; at most this
   * long, then they are released and later ones pass as they come. Default 10 s.
   */
  readonly resumeHoldMs?: number;
  /** Records held at most while replays run; past it the held ones are released. Default 20000. */
  readonly resumeHoldRecords?: number;
  /** The clock, epoch ms. Default `Date.now`. */
  readonly now?: () => number;
  /** Creates sockets. Default: the global `WebSocket`. */
  readonly createSocket?: SocketFactory;
  /** Random numbers in [0, 1) for jitter. Default `Math.random`. */
  readonly random?: () => number;
}

export const LIVE_SOCKET_DEFAULTS = {
  heartbeatIntervalMs: 5 * 60_000,
  pongTimeoutMs: 20_000,
  renewAfterMs: 110 * 60_000,
  renewalSettleMs: 10_000,
  cursorWindow: 10_000,
  resumeHoldMs: 10_000,
  resumeHoldRecords: 20_000,
} as const;

const OPEN = 1;
type Timer = ReturnType<typeof setTimeout>;

/** Builds the socket URL: the configured URL with `token` as a query parameter when known. */
export function socketUrl(wsUrl: string, token?: string | null): string {
  if (!token) return wsUrl;
  const url = new URL(wsUrl);
  url.searchParams.set('token', token);
  return url.toString();
}

/** A live, self-healing WebSocket connection speaking the dashboard protocol. */
export class LiveSocket {
  private readonly options: Required<Omit<LiveSocketOptions, 'backoff' | 'probe'>> & Pick<LiveSocketOptions, 'probe'> & { backoff: BackoffOptions };
  private readonly book = new SubscriptionBook();
  private readonly cursors: CursorWindow;
  private readonly offsets = new PartitionOffsets();
  /**
   * Subscriptions that were live on a socket since lost and not yet restored: their re-subscribe
   * carries `resume`. A subscription new since then gets its snapshot instead.
   */
  private readonly resumable = new Set<string>();
  /** Subscriptions whose last subscribe on the current socket carried `resume`. */
  private readonly resumeSent = new Set<string>();
  /** Records held while the current socket's replays run. */
  private holding: { socket: SocketLike; hold: ReplayHold; timer: Timer } | undefined;
  private readonly handlers = new Map<LiveSocketEvent, Set<Handler<LiveSocketEvent>>>();
  private socket: SocketLike | null = null;
  private renewing: SocketLike | null = null;
  private renewalWaiting = new Set<string>();
  private stateValue: ConnectionState = { status: 'idle', retry: 0 };
  private everOpened = false;
  /** Sockets whose handshake succeeded: one that closes without being here was refused or unreachable. */
  private readonly opened = new WeakSet<SocketLike>();
  /** Bumped by every open and by disconnect, so that a URL arriving late is dropped. */
  private attempt = 0;
  private stopped = true;
  private retryTimer: Timer | undefined;
  private heartbeatTimer: Timer | undefined;
  private pongTimer: Timer | undefined;
  private renewTimer: Timer | undefined;
  private renewalSettleTimer: Timer | undefined;
  /** Counters for the page's footer and the benchmark. */
  readonly stats = { framesReceived: 0, recordsReceived: 0, duplicatesDropped: 0, reconnects: 0, renewals: 0, resumes: 0, tooFarBehind: 0 };

  constructor(options: LiveSocketOptions) {
    this.options = {
      heartbeatIntervalMs: options.heartbeatIntervalMs ?? LIVE_SOCKET_DEFAULTS.heartbeatIntervalMs,
      pongTimeoutMs: options.pongTimeoutMs ?? LIVE_SOCKET_DEFAULTS.pongTimeoutMs,
      renewAfterMs: options.renewAfterMs ?? LIVE_SOCKET_DEFAULTS.renewAfterMs,
      renewalSettleMs: options.renewalSettleMs ?? LIVE_SOCKET_DEFAULTS.renewalSettleMs,
      cursorWindow: options.cursorWindow ?? LIVE_SOCKET_DEFAULTS.cursorWindow,
      resumeHoldMs: options.resumeHoldMs ?? LIVE_SOCKET_DEFAULTS.resumeHoldMs,
      resumeHoldRecords: options.resumeHoldRecords ?? LIVE_SOCKET_DEFAULTS.resumeHoldRecords,
      now: options.now ?? Date.now,
      createSocket: options.createSocket ?? ((url) => new WebSocket(url) as unknown as SocketLike),
      random: options.random ?? Math.random,
      backoff: options.backoff ?? {},
      url: options.url,
      probe: options.probe,
    };
    this.cursors = new CursorWindow(this.options.cursorWindow);
  }

  get state(): ConnectionState {
    return this.stateValue;
  }

  /** The subscriptions the client wants, with their state on the server. */
  get subscriptions(): readonly SubscriptionEntry[] {
    return this.book.list();
  }

  /** Registers a handler; returns a function that removes it. */
  on<E extends LiveSocketEvent>(event: E, handler: Handler<E>): () => void {
    let set = this.handlers.get(event);
    if (!set) this.handlers.set(event, (set = new Set()));
    set.add(handler as Handler<LiveSocketEvent>);
    return () => set.delete(handler as Handler<LiveSocketEvent>);
  }

  /** Opens the connection; it then stays up (reconnecting as needed) until {@link disconnect}. */
  connect(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.setState({ status: this.everOpened ? 'reconnecting' : 'connecting', retry: 0 });
    this.open();
  }

  /** Closes the connection for good; no reconnect follows. Subscriptions are kept for a later {@link connect}. */
  disconnect(): void {
    this.stopped = true;
    this.attempt++;
    this.clearTimers();
    this.dropRenewal();
    const socket = this.socket;
    this.socket = null;
    if (socket) {
      detach(socket);
      socket.close(1000, 'client disconnect');
    }
    this.releaseHold();
    this.markAllPending();
    this.setState({ status: 'offline', retry: 0 });
    this.emit('disconnect', { code: 1000, reason: 'client disconnect', willRetry: false });
    this.emit('subscriptions', this.book.list());
  }

  /**
   * Adds a subscription, or replaces the filter of `id`. It is sent now when connected, and on
   * every reconnect until unsubscribed. Returns its id.
   */
  subscribe(filter: Filter, id: string = this.book.nextId()): string {
    this.book.set(id, filter);
    // Another filter, or a new subscription: it starts from its snapshot, not from a replay.
    this.forgetResume(id);
    this.sendEverywhere({ action: 'subscribe', id, filter });
    this.emit('subscriptions', this.book.list());
    return id;
  }

  /** Removes a subscription here and on the server. */
  unsubscribe(id: string): void {
    if (!this.book.remove(id)) return;
    this.renewalWaiting.delete(id);
    this.forgetResume(id);
    this.sendEverywhere({ action: 'unsubscribe', id });
    this.emit('subscriptions', this.book.list());
  }

  /**
   * Moves the connection to a fresh socket now, as ahead of the 2 hour limit: with a URL function,
   * the new handshake carries the token just refreshed. No record is lost or repeated.
   */
  renew(): void {
    clearTimeout(this.renewTimer);
    this.startRenewal();
  }

  /** While waiting to reconnect, tries at once (for example when the browser comes back online). */
  retryNow(): void {
    if (this.stopped || this.socket || this.stateValue.status !== 'reconnecting') return;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.open();
  }

  /** Sends a `ping` now; the heartbeat does this on its own. */
  /** Acknowledges an alert for every operator; the change comes back as `alert_state`. */
  ack(alertId: string): void {
    this.sendTo(this.socket, { action: 'ack', alertId });
  }

  ping(): void {
    this.sendTo(this.socket, { action: 'ping' });
    this.armPongDeadline();
  }

  /** Calls `use` with the socket URL, now or once the URL function gives it; `failed` if it cannot. */
  private withUrl(use: (url: string) => void, failed: (error: unknown) => void): void {
    const { url } = this.options;
    if (typeof url === 'string') return use(url);
    const attempt = ++this.attempt;
    Promise.resolve()
      .then(url)
      .then(
        (value) => attempt === this.attempt && !this.stopped && use(value),
        (error: unknown) => attempt === this.attempt && !this.stopped && failed(error),
      );
  }

  private open(): void {
    this.withUrl(
      (url) => {
        let socket: SocketLike;
        try {
          socket = this.options.createSocket(url);
        } catch (error) {
          // A malformed URL throws synchronously; treat it like a failed attempt so the UI says so.
          this.emit('error', { message: `cannot open ${url}: ${String(error)}` });
          this.scheduleRetry(1006, 'open failed');
          return;
        }
        this.socket = socket;
        this.wire(socket);
      },
      (error) => {
        this.emit('error', { message: `no token to connect with: ${String(error)}` });
        this.scheduleRetry(1006, 'no token');
      },
    );
  }

  private wire(socket: SocketLike): void {
    socket.onopen = () => this.handleOpen(socket);
    socket.onmessage = (event) => this.handleMessage(socket, event.data);
    socket.onclose = (event) => this.handleClose(socket, event.code, event.reason);
    // An `error` event is always followed by `close`, where the reconnect happens.
    socket.onerror = () => undefined;
  }

  private handleOpen(socket: SocketLike): void {
    this.opened.add(socket);
    if (socket === this.renewing) {
      this.renewalWaiting = new Set(this.book.restoreFrames().map((frame) => frame.id));
      for (const frame of this.book.restoreFrames()) this.sendTo(socket, frame);
      if (this.renewalWaiting.size === 0) this.completeRenewal();
      else this.renewalSettleTimer = setTimeout(() => this.completeRenewal(), this.options.renewalSettleMs);
      return;
    }
    if (socket !== this.socket) return;
    const reconnect = this.everOpened;
    this.everOpened = true;
    if (reconnect) this.stats.reconnects++;
    this.setState({ status: 'connected', retry: 0 });
    this.restore(socket);
    this.startHeartbeat();
    this.scheduleRenewal();
    this.emit('connect', { reconnect });
    this.emit('subscriptions', this.book.list());
  }

  private handleClose(socket: SocketLike, code: number, reason: string): void {
    if (socket === this.renewing) {
      // The fresh socket failed; the old one still serves. Try again a little later.
      this.dropRenewal();
      this.renewTimer = setTimeout(() => this.startRenewal(), 30_000);
      return;
    }
    if (socket !== this.socket) return;
    this.socket = null;
    this.stopHeartbeat();
    clearTimeout(this.renewTimer);
    if (this.holding?.socket === socket) this.releaseHold();
    this.markAllPending();
    if (this.renewing && this.renewing.readyState === OPEN) {
      // The old socket died mid-renewal but the new one is up: carry on with it.
      this.completeRenewal();
      return;
    }
    this.dropRenewal();
    this.emit('disconnect', { code, reason, willRetry: !this.stopped });
    this.emit('subscriptions', this.book.list());
    if (this.stopped) this.setState({ status: 'offline', retry: 0, closeCode: code });
    else {
      this.scheduleRetry(code, reason);
      if (!this.opened.has(socket)) this.probeRefusal();
    }
  }

  /** After a failed handshake: when the probe says the server refused it, stop retrying and say so. */
  private probeRefusal(): void {
    const probe = this.options.probe;
    if (!probe) return;
    const attempt = this.attempt;
    probe().then(
      (verdict) => {
        if (verdict !== 'refused' || this.stopped || this.socket || attempt !== this.attempt) return;
        this.stopped = true;
        this.clearTimers();
        this.setState({ status: 'refused', retry: 0 });
        this.emit('refused', { at: Date.now() });
      },
      () => undefined,
    );
  }

  private scheduleRetry(code: number, _reason: string): void {
    this.socket = null;
    const retry = this.stateValue.status === 'reconnecting' || this.stateValue.status === 'connecting'
      ? this.stateValue.retry + 1
      : 1;
    const delay = backoffDelay(retry, this.options.backoff, this.options.random);
    this.setState({ status: 'reconnecting', retry, nextRetryAt: Date.now() + delay, closeCode: code });
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      if (!this.stopped) this.open();
    }, delay);
  }

  private handleMessage(socket: SocketLike, data: unknown): void {
    if (socket === this.socket) this.disarmPongDeadline();
    if (typeof data !== 'string') {
      this.emit('error', { message: 'binary frame ignored' });
      return;
    }
    let frame: ServerFrame;
    try {
      frame = parseServerFrame(data);
    } catch (error) {
      this.emit('error', { message: error instanceof SyntaxError ? 'frame is not JSON' : (error as Error).message });
      return;
    }
    this.stats.framesReceived++;
    if (frame.type === 'batch') {
      for (const inner of frame.messages) this.dispatch(socket, inner);
    } else {
      this.dispatch(socket, frame);
    }
  }

  /** @param inSnapshot the frame came inside a `snapshot`: current state, never held nor a resume offset. */
  private dispatch(socket: SocketLike, frame: ServerFrame, inSnapshot = false): void {
    switch (frame.type) {
      case 'device_data':
      case 'alert':
        this.stats.recordsReceived++;
        if (frame.cursor !== undefined) {
          if (!this.cursors.admit(frame.cursor)) {
            this.stats.duplicatesDropped++;
            return;
          }
          // A snapshot's cursors may be hours old: naming one would put the resume out of its window.
          if (!inSnapshot) this.offsets.note(frame.cursor, this.options.now());
        }
        if (!inSnapshot && this.holding?.socket === socket) {
          if (this.holding.hold.hold(frame)) return;
          // Full: what is held goes first, in order; later records pass as they come.
          this.releaseHold();
        }
        this.deliver(frame);
        return;
      case 'system_status':
        this.emit('message', frame);
        this.emit('system_status', frame);
        return;
      case 'alert_state':
        this.emit('message', frame);
        this.emit('alert_state', frame);
        return;
      case 'acked':
        this.emit('message', frame);
        this.emit('acked', frame);
        return;
      case 'snapshot':
        // A snapshot where a replay was awaited: this server did not resume; nothing more will come.
        if (this.holding?.socket === socket && this.holding.hold.awaits(frame.id)) this.settleReplay(frame.id);
        this.emit('message', frame);
        this.emit('snapshot', frame);
        for (const inner of frame.messages) this.dispatch(socket, inner, true);
        return;
      case 'resumed':
        this.resumeSent.delete(frame.id);
        this.stats.resumes++;
        if (frame.tooFarBehind) this.stats.tooFarBehind++;
        // The replayed records reach the app before the event that says they are all there.
        if (this.holding?.socket === socket) this.settleReplay(frame.id);
        this.emit('message', frame);
        this.emit('resumed', frame);
        return;
      case 'subscribed':
        this.book.confirm(frame.id, frame.filter);
        this.resumable.delete(frame.id);
        if (socket === this.renewing) this.settleRenewal(frame.id);
        this.emit('message', frame);
        this.emit('subscribed', frame);
        this.emit('subscriptions', this.book.list());
        return;
      case 'unsubscribed':
        this.emit('message', frame);
        this.emit('unsubscribed', frame);
        return;
      case 'pong':
        this.emit('message', frame);
        this.emit('pong', frame);
        return;
      case 'error':
        if (frame.id !== undefined && socket === this.socket && this.resumeSent.delete(frame.id)) {
          // The subscribe with `resume` was refused (a server without it, or its read over the
          // rate limit): the subscription is not lost for that, it comes back with its snapshot.
          if (this.holding?.socket === socket) this.settleReplay(frame.id);
          const entry = this.book.get(frame.id);
          if (entry && entry.state === 'pending') this.sendTo(socket, { action: 'subscribe', id: entry.id, filter: entry.filter });
          this.emit('message', frame);
          this.emit('error', { message: `${frame.code}: ${frame.message} (resume dropped)`, frame });
          return;
        }
        if (frame.id !== undefined && this.book.reject(frame.id, frame.message)) {
          if (socket === this.renewing) this.settleRenewal(frame.id);
          this.emit('subscriptions', this.book.list());
        }
        this.emit('message', frame);
        this.emit('error', { message: `${frame.code}: ${frame.message}`, frame });
        return;
      case 'batch':
        // Not reached: the schema allows no batch inside a batch.
        return;
    }
  }

  private deliver(frame: RecordFrame): void {
    this.emit('message', frame);
    if (frame.type === 'device_data') this.emit('device_data', frame);
    else this.emit('alert', frame);
  }

  /**
   * Re-creates every wanted subscription on a reconnected socket. Those live on the lost socket
   * carry `resume`, and records are held until their replays end.
   */
  private restore(socket: SocketLike): void {
    const resume = this.offsets.resumeAt(this.options.now());
    this.resumeSent.clear();
    const resuming: string[] = [];
    for (const frame of this.book.restoreFrames()) {
      const id = frame.id;
      if (resume && this.resumable.has(id)) {
        resuming.push(id);
        this.resumeSent.add(id);
        this.sendTo(socket, { ...frame, resume });
      } else {
        this.sendTo(socket, frame);
      }
    }
    if (resuming.length === 0) return;
    this.releaseHold();
    const timer = setTimeout(() => this.releaseHold(), this.options.resumeHoldMs);
    this.holding = { socket, hold: new ReplayHold(resuming, this.options.resumeHoldRecords), timer };
  }

  /** `id`'s replay ended or will not come; the held records go once no replay is awaited. */
  private settleReplay(id: string): void {
    if (this.holding?.hold.settle(id)) this.releaseHold();
  }

  /** Ends holding: the held records reach the app, in order. */
  private releaseHold(): void {
    const holding = this.holding;
    if (!holding) return;
    this.holding = undefined;
    clearTimeout(holding.timer);
    for (const frame of holding.hold.release()) this.deliver(frame);
  }

  /** The connection that held the subscriptions is gone: the live ones may resume on the next. */
  private markAllPending(): void {
    for (const entry of this.book.list()) if (entry.state === 'active') this.resumable.add(entry.id);
    this.book.markAllPending();
  }

  private forgetResume(id: string): void {
    this.resumable.delete(id);
    this.resumeSent.delete(id);
    if (this.holding?.hold.awaits(id)) this.settleReplay(id);
  }

  private startHeartbeat(): void {
    this.stopHeartbeat();
    this.heartbeatTimer = setInterval(() => this.ping(), this.options.heartbeatIntervalMs);
  }

  private stopHeartbeat(): void {
    clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = undefined;
    this.disarmPongDeadline();
  }

  private armPongDeadline(): void {
    if (this.pongTimer !== undefined || !this.socket) return;
    const socket = this.socket;
    this.pongTimer = setTimeout(() => {
      this.pongTimer = undefined;
      if (socket !== this.socket) return;
      // A half-open TCP connection may take minutes to report its close; do not wait for it.
      detach(socket);
      socket.close(4000, 'pong timeout');
      this.handleClose(socket, 4000, 'pong timeout');
    }, this.options.pongTimeoutMs);
  }

  private disarmPongDeadline(): void {
    clearTimeout(this.pongTimer);
    this.pongTimer = undefined;
  }

  private scheduleRenewal(): void {
    clearTimeout(this.renewTimer);
    this.renewTimer = setTimeout(() => this.startRenewal(), this.options.renewAfterMs);
  }

  private startRenewal(): void {
    if (this.stopped || !this.socket || this.renewing) return;
    const retryLater = () => (this.renewTimer = setTimeout(() => this.startRenewal(), 30_000));
    this.withUrl(
      (url) => {
        if (!this.socket || this.renewing) return;
        try {
          this.renewing = this.options.createSocket(url);
        } catch {
          this.renewing = null;
          retryLater();
          return;
        }
        this.wire(this.renewing);
      },
      retryLater,
    );
  }

  private settleRenewal(id: string): void {
    this.renewalWaiting.delete(id);
    if (this.renewalWaiting.size === 0) this.completeRenewal();
  }

  private completeRenewal(): void {
    const fresh = this.renewing;
    if (!fresh) return;
    clearTimeout(this.renewalSettleTimer);
    this.renewing = null;
    this.renewalWaiting.clear();
    const old = this.socket;
    this.socket = fresh;
    if (old) {
      detach(old);
      old.close(1000, 'renewed');
    }
    this.stats.renewals++;
    this.setState({ status: 'connected', retry: 0 });
    this.startHeartbeat();
    this.scheduleRenewal();
    this.emit('renewed', { at: Date.now() });
  }

  private dropRenewal(): void {
    clearTimeout(this.renewalSettleTimer);
    const renewing = this.renewing;
    this.renewing = null;
    this.renewalWaiting.clear();
    if (renewing) {
      detach(renewing);
      renewing.close(1000, 'renewal abandoned');
    }
  }

  private sendEverywhere(frame: WireFrame): void {
    this.sendTo(this.socket, frame);
    this.sendTo(this.renewing, frame);
  }

  private sendTo(socket: SocketLike | null, frame: WireFrame): void {
    if (socket && socket.readyState === OPEN) socket.send(JSON.stringify(frame));
  }

  private clearTimers(): void {
    clearTimeout(this.retryTimer);
    clearTimeout(this.renewTimer);
    clearTimeout(this.renewalSettleTimer);
    this.retryTimer = this.renewTimer = this.renewalSettleTimer = undefined;
    this.stopHeartbeat();
  }

  private setState(state: ConnectionState): void {
    this.stateValue = state;
    this.emit('state', state);
  }

  private emit<E extends LiveSocketEvent>(event: E, payload: LiveSocketEvents[E]): void {
    const set = this.handlers.get(event);
    if (!set) return;
    for (const handler of set) {
      try {
        handler(payload);
      } catch (error) {
        // One broken view must not stop the others or the socket.
        console.error(`handler for "${event}" failed`, error);
      }
    }
  }
}

function detach(socket: SocketLike): void {
  socket.onopen = socket.onmessage = socket.onerror = null;
  socket.onclose = null;
}
