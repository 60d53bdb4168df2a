/**
 * Alerts first on one machine (issue 18): the local runtime's two stream lanes, telemetry and
 * alerts, share this machine's cores, where on AWS they are separate containers. Under load an
 * alert's posts waited behind the telemetry posts queued for the same CPU (10,000 clients under
 * the post quota: alert p95 17.6 s, 31,339 of 38,253 alert deliveries late). While an alert batch
 * runs, telemetry starts no new post; the posts already in flight finish.
 */
import type { Poster } from '../lambdas/core/ports';

/** Holds telemetry's new posts while an alert batch runs. */
export class AlertsFirst {
  private running = 0;
  /** While an alert batch runs: resolved when the last one ends. */
  private idle?: { promise: Promise<void>; resolve: () => void };

  /** Runs an alert batch; telemetry posts wait until no alert batch runs. */
  async run<T>(batch: () => Promise<T>): Promise<T> {
    if (this.running++ === 0) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      this.idle = { promise, resolve };
    }
    try {
      return await batch();
    } finally {
      if (--this.running === 0) {
        this.idle!.resolve();
        this.idle = undefined;
      }
    }
  }

  /** `poster`, its posts started only while no alert batch runs (at once when none does). */
  behind(poster: Poster): Poster {
    const later: Poster['post'] = async (connectionId, text) => {
      while (this.idle) await this.idle.promise;
      return poster.post(connectionId, text);
    };
    return { post: (connectionId, text) => (this.idle ? later(connectionId, text) : poster.post(connectionId, text)) };
  }
}
