/**
 * A scripted stand-in for the browser's WebSocket, for the dashboard client's unit tests: the
 * test plays the server (open, frames, drops) while fake timers run the client's clock. The
 * browser tests run the same client against the real local runtime.
 */
import type { ClientFrame, NormalisedFilter, ServerFrame } from '../../lambdas/core/protocol';
import type { SocketLike } from '../../frontend/src/ws-client';

/** A socket whose server side the test scripts. */
export class ScriptedSocket implements SocketLike {
  readyState = 0;
  sent: ClientFrame[] = [];
  closed?: { code?: number; reason?: string };
  onopen: SocketLike['onopen'] = null;
  onmessage: SocketLike['onmessage'] = null;
  onclose: SocketLike['onclose'] = null;
  onerror: SocketLike['onerror'] = null;

  /** @param confirmed the normalised filter {@link confirmAll} answers each subscribe with. */
  constructor(
    readonly url: string,
    private readonly confirmed: NormalisedFilter,
  ) {}

  send(data: string): void {
    this.sent.push(JSON.parse(data) as ClientFrame);
  }

  close(code?: number, reason?: string): void {
    this.closed = { code, reason };
    this.readyState = 3;
  }

  // The server side of the script.
  open(): void {
    this.readyState = 1;
    this.onopen?.({});
  }

  receive(frame: ServerFrame): void {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }

  /** The connection ends without a close frame (network loss), or a handshake is refused. */
  drop(code = 1006): void {
    this.readyState = 3;
    this.onclose?.({ code, reason: '' });
  }

  /** Answers every subscribe sent so far, as the server would. */
  confirmAll(): void {
    for (const frame of this.sent) if (frame.action === 'subscribe') this.receive({ type: 'subscribed', id: frame.id!, filter: this.confirmed });
  }
}
