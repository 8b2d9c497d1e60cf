/**
 * Picks the offline-push adapter from the configuration, and turns the conversation actors'
 * `delivered` events into push decisions in the recipients' user actors.
 *
 * @module
 */
import type { AfterEventHook } from "../actors/behavior.ts";
import { userActor } from "../actors/im/conversation_ids.ts";
import type { OfflineCandidate } from "../actors/im/push_prefs.ts";
import type { StoredMessage } from "../db/store.ts";
import type { Logger } from "../observability/log.ts";
import type { Notifier } from "./notifier.ts";
import { createLogNotifier } from "./notifier_log.ts";
import { createWebhookNotifier } from "./notifier_webhook.ts";

/** The configuration the choice depends on (see config.ts). */
export interface PushConfig {
  /** `PUSH_WEBHOOK_URL`: when set, the webhook adapter; otherwise the log adapter. */
  pushWebhookUrl?: string;
  /** `PUSH_WEBHOOK_SECRET`: the HMAC key (required with the URL). */
  pushWebhookSecret?: string;
}

/** The webhook notifier when a URL is configured, the log notifier otherwise. */
export function notifierFromConfig(config: PushConfig, logger: Logger): Notifier {
  if (config.pushWebhookUrl) {
    if (!config.pushWebhookSecret) throw new TypeError("A push webhook needs a secret");
    return createWebhookNotifier({
      url: config.pushWebhookUrl,
      secret: config.pushWebhookSecret,
      logger,
    });
  }
  return createLogNotifier(logger);
}

/** Message types that never cause a push (server-written events). */
const SILENT_TYPES = new Set(["system"]);

/**
 * An `after` hook for the `delivered` event of conversation actors: tells every recipient's
 * user actor (except the sender's) `push.offline`, which decides. Runs after the commit and the
 * live delivery, outside the conversation actor's turn. `connected` may name users known to be
 * online (node.ts: a connection anywhere in the cluster, per the connection directory): they
 * are skipped without a message.
 */
export function offlinePushHook(
  tell: (to: string, type: string, body: unknown) => void,
  connected: (userId: string) => boolean = () => false,
): AfterEventHook {
  return ({ payload }) => {
    const { message, users } = payload as { message: StoredMessage; users: string[] };
    const bodyType = String(message.body?.type ?? "");
    if (SILENT_TYPES.has(bodyType)) return;
    const candidate: OfflineCandidate = {
      mid: message.mid,
      conv: message.conv,
      cseq: message.cseq,
      from: message.from,
      ts: message.ts,
      bodyType,
    };
    for (const user of users) {
      if (user !== message.from && !connected(user)) {
        tell(userActor(user), "push.offline", candidate);
      }
    }
  };
}
