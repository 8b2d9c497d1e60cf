/**
 * The log {@link Notifier}: one `debug` log line per offline push, with ids only (never text).
 * The default when no webhook is configured; useful in development.
 *
 * @module
 */
import type { Logger } from "../observability/log.ts";
import type { Notifier, NotifierStats, PushNotice } from "./notifier.ts";

/** A notifier that logs each notice's ids at `debug`. */
export function createLogNotifier(logger: Logger): Notifier {
  const stats: NotifierStats = { pending: 0, sent: 0, failed: 0, dropped: 0, retries: 0 };
  let closed = false;
  return {
    kind: "log",
    notify(n: PushNotice): boolean {
      if (closed) {
        stats.dropped++;
        return false;
      }
      logger.debug("offline push", {
        userId: n.userId,
        conv: n.conv,
        mid: n.mid,
        from: n.from,
        bodyType: n.bodyType,
      });
      stats.sent++;
      return true;
    },
    stats: () => ({ ...stats }),
    close() {
      closed = true;
      return Promise.resolve();
    },
  };
}
