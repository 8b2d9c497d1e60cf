/**
 * The webhook {@link Notifier}: each notice is an HTTP POST of a JSON body to a configured URL
 * (a push gateway that talks to APNs / FCM), signed with HMAC-SHA256.
 *
 * Wire format (documented for receivers in README.md):
 * - Body: `{"type": "message", "id", "userId", "mid", "conv", "cseq", "from", "ts", "bodyType"}`
 *   (`id` is unique per notice and the same on every retry of it).
 * - Headers: `content-type: application/json`, `x-im-delivery: <id>`,
 *   `x-im-timestamp: <ms since the epoch of this attempt>`,
 *   `x-im-signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`. Receivers
 *   recompute the signature over the raw body and refuse stale timestamps (replays).
 *
 * Guarantees:
 * - Bounded: at most `maxQueue` notices are pending (queued, in flight, waiting to retry); more
 *   are dropped and counted, never buffered without bound. At most `concurrency` requests run.
 * - A 2xx answer delivers the notice. A network error, a timeout, 408, 429 or 5xx is retried
 *   with exponential backoff (`baseDelayMs * 2^(attempt-1)`, capped at `maxDelayMs`, with
 *   jitter in its upper half) up to `maxAttempts` attempts in all; any other answer is a refusal
 *   and is not retried.
 * - Logs carry the notice id, attempt and HTTP status only: never the body, never the URL
 *   (it may hold credentials), never the secret.
 *
 * @module
 */
import type { Logger } from "../observability/log.ts";
import type { Notifier, NotifierStats, PushNotice } from "./notifier.ts";

/** Options of {@link createWebhookNotifier}. */
export interface WebhookNotifierOptions {
  /** Where to POST (http or https). */
  url: string;
  /** The HMAC-SHA256 key. */
  secret: string;
  logger: Logger;
  /** Most pending notices (default 10 000). */
  maxQueue?: number;
  /** Attempts per notice, the first included (default 6). */
  maxAttempts?: number;
  /** Delay before the first retry, ms (default 500). */
  baseDelayMs?: number;
  /** Longest delay between attempts, ms (default 60 000). */
  maxDelayMs?: number;
  /** Requests at once (default 4). */
  concurrency?: number;
  /** Deadline of one request, ms (default 5 000). */
  timeoutMs?: number;
}

interface Job {
  id: string;
  body: string;
  attempt: number;
}

const encoder = new TextEncoder();

/** Hex HMAC-SHA256 of `message` under `key`. */
export async function hmacSha256Hex(key: CryptoKey, message: string): Promise<string> {
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, encoder.encode(message)));
  return Array.from(mac, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The HMAC key of a secret. */
export function hmacKey(secret: string): Promise<CryptoKey> {
  return crypto.subtle.importKey(
    "raw",
    encoder.encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign", "verify"],
  );
}

/** A notifier that POSTs signed notices to `options.url`. */
export function createWebhookNotifier(options: WebhookNotifierOptions): Notifier {
  const maxQueue = options.maxQueue ?? 10_000;
  const maxAttempts = options.maxAttempts ?? 6;
  const baseDelayMs = options.baseDelayMs ?? 500;
  const maxDelayMs = options.maxDelayMs ?? 60_000;
  const concurrency = options.concurrency ?? 4;
  const timeoutMs = options.timeoutMs ?? 5_000;
  const log = options.logger;
  const key = hmacKey(options.secret);
  // A failure to import the key is reported by the first send; keep it from being unhandled.
  key.catch(() => {});

  const stats: NotifierStats = { pending: 0, sent: 0, failed: 0, dropped: 0, retries: 0 };
  const ready: Job[] = [];
  const retryTimers = new Map<ReturnType<typeof setTimeout>, Job>();
  const inFlight = new Set<Promise<void>>();
  const aborts = new Set<AbortController>();
  let closed = false;

  const finish = (outcome: "sent" | "failed") => {
    stats.pending--;
    stats[outcome]++;
  };

  const pump = () => {
    while (!closed && inFlight.size < concurrency && ready.length > 0) {
      const job = ready.shift()!;
      const run = attempt(job).finally(() => {
        inFlight.delete(run);
        pump();
      });
      inFlight.add(run);
    }
  };

  const retryLater = (job: Job, why: Record<string, unknown>) => {
    if (job.attempt >= maxAttempts || closed) {
      log.warn("offline push failed", { id: job.id, attempts: job.attempt, ...why });
      finish("failed");
      return;
    }
    const exp = Math.min(maxDelayMs, baseDelayMs * 2 ** (job.attempt - 1));
    const delay = exp / 2 + Math.random() * (exp / 2);
    stats.retries++;
    const timer = setTimeout(() => {
      retryTimers.delete(timer);
      ready.push(job);
      pump();
    }, delay);
    retryTimers.set(timer, job);
  };

  const attempt = async (job: Job): Promise<void> => {
    job.attempt++;
    const abort = new AbortController();
    aborts.add(abort);
    const timer = setTimeout(() => abort.abort(), timeoutMs);
    try {
      const ts = String(Date.now());
      const signature = await hmacSha256Hex(await key, `${ts}.${job.body}`);
      const res = await fetch(options.url, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "x-im-delivery": job.id,
          "x-im-timestamp": ts,
          "x-im-signature": `sha256=${signature}`,
        },
        body: job.body,
        signal: abort.signal,
      });
      // The answer's body is not needed; release the connection.
      await res.body?.cancel();
      if (res.ok) {
        finish("sent");
      } else if (res.status === 408 || res.status === 429 || res.status >= 500) {
        retryLater(job, { status: res.status });
      } else {
        log.warn("offline push refused", { id: job.id, status: res.status });
        finish("failed");
      }
    } catch (err) {
      retryLater(job, { error: abort.signal.aborted ? "timeout" : (err as Error).name });
    } finally {
      clearTimeout(timer);
      aborts.delete(abort);
    }
  };

  return {
    kind: "webhook",
    notify(notice: PushNotice): boolean {
      if (closed || stats.pending >= maxQueue) {
        stats.dropped++;
        if (!closed && stats.dropped % 1000 === 1) {
          log.warn("offline push queue full: dropping", { dropped: stats.dropped, maxQueue });
        }
        return false;
      }
      const id = crypto.randomUUID();
      const body = JSON.stringify({
        type: "message",
        id,
        userId: notice.userId,
        mid: notice.mid,
        conv: notice.conv,
        cseq: notice.cseq,
        from: notice.from,
        ts: notice.ts,
        bodyType: notice.bodyType,
      });
      stats.pending++;
      ready.push({ id, body, attempt: 0 });
      pump();
      return true;
    },
    stats: () => ({ ...stats }),
    async close() {
      if (closed) return;
      closed = true;
      const left = ready.length + retryTimers.size;
      for (const timer of retryTimers.keys()) clearTimeout(timer);
      retryTimers.clear();
      ready.length = 0;
      stats.pending -= left;
      stats.dropped += left;
      if (left) log.warn("offline push notices dropped at shutdown", { count: left });
      // Requests in flight end by their own deadline at the latest.
      await Promise.allSettled([...inFlight]);
    },
  };
}
