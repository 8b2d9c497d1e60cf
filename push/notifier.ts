/**
 * The offline-push port: where a notice goes when a message reaches a user who has no
 * connected device (the decision is the user actor's, see `actors/im/push_prefs.ts`).
 *
 * Adapters: `notifier_webhook.ts` (signed HTTP POST to a push gateway, with retries) and
 * `notifier_log.ts` (a log line, for development). `from_config.ts` picks one from the
 * configuration.
 *
 * Guarantees every adapter keeps:
 * - `notify` never blocks and never throws: it queues (or drops, when its bounded queue is full)
 *   and answers whether the notice was accepted. Delivery is best-effort and at-least-once per
 *   accepted notice (a retried webhook may arrive twice; receivers de-duplicate by its `id`).
 * - A notice never carries message text, and adapters never log one beyond its ids: the push
 *   wakes the device, which then syncs over the WebSocket.
 * - `close` stops all work (timers, requests) and resolves once nothing is left running.
 *
 * @module
 */

/** What a push says: which message reached which user. No text. */
export interface PushNotice {
  /** The recipient. */
  userId: string;
  /** Server message id. */
  mid: string;
  /** Conversation id (`d:<a>:<b>` or `g:<groupId>`). */
  conv: string;
  /** The message's conversation sequence. */
  cseq: number;
  /** The sender. */
  from: string;
  /** Server time of the message, ms. */
  ts: number;
  /** The message body's `type` (`text`, `image`, ...), so a client can word the alert. */
  bodyType: string;
}

/** Counters of a notifier. */
export interface NotifierStats {
  /** Accepted notices not yet finished (queued, in flight or waiting for a retry). */
  pending: number;
  /** Notices delivered. */
  sent: number;
  /** Notices given up on (a refusal, or every attempt failed). */
  failed: number;
  /** Notices refused because the queue was full, or after close. */
  dropped: number;
  /** Attempts repeated after a failure. */
  retries: number;
}

/** The offline-push port. */
export interface Notifier {
  /** `webhook` or `log`. */
  readonly kind: string;
  /** Queues a notice; false when it was dropped (queue full, or closed). Never throws. */
  notify(notice: PushNotice): boolean;
  stats(): NotifierStats;
  /** Stops: waits for requests in flight (bounded by their timeout), drops what is queued. */
  close(): Promise<void>;
}
