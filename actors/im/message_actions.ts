/**
 * Message features inside the conversation actors (`direct`, `group`): the checks of a send that
 * need server state (quotes, media, mentions), and the handlers that change stored messages:
 * reactions, recall, edit and delete-for-me, plus `access` (may this user read the
 * conversation?, asked by the media download route).
 *
 * Guarantees:
 * - Every handler authorises `user` (set by the gateway from the authenticated connection)
 *   against the actor's state; a message is only ever looked up inside this conversation, so a
 *   `mid` of another conversation is `not_found`.
 * - Changes are written through fenced store methods (the actor's epoch) before they are
 *   answered; then one ephemeral `msg.updated` frame goes to every participant (only to the
 *   user's own devices for delete-for-me).
 * - A `send` without a quote or a media id costs nothing here beyond in-memory checks: no store
 *   round trip is added to the text-message hot path. With a quote or media, the lookups run
 *   inside the actor's turn, so the conversation's order still follows arrival.
 *
 * @module
 */
import type { ActorContext, Handler } from "../behavior.ts";
import { BadRequestError, ImError, NotFoundError, NotMemberError } from "../errors.ts";
import type { ReactionSummary, StoredMessage } from "../../db/store.ts";
import type { ConvAccess } from "./conv_access.ts";
import { commitSend, type SendRequest } from "./messaging.ts";
import { bodyMediaId, MEDIA_BODY_TYPES, previewText, type ReplyRef } from "./message_types.ts";
import type { ImServices } from "./services.ts";

/** Default of `limits.recallWindowMs`: two minutes. */
export const DEFAULT_RECALL_WINDOW_MS = 120_000;

/** Most reactions one user may put on one message. */
export const MAX_REACTIONS_PER_USER = 20;

type Ctx<S> = ActorContext<S, ImServices>;
type Body = Record<string, unknown>;

function forbidden(message: string): ImError {
  return new ImError("forbidden", message);
}

/** The server's snapshot of a quoted message, stored in the reply's `body.replyTo`. */
export function quoteOf(m: StoredMessage): Body {
  const quote: Body = { mid: m.mid, cseq: m.cseq, from: m.from, type: m.body.type };
  const text = previewText(m.body);
  if (text) quote.text = text;
  const media = bodyMediaId(m.body);
  if (media) quote.mediaId = media;
  return quote;
}

/** Mentions must name participants; `mentionAll` needs a group admin or the owner. */
function checkMentions<S>(access: ConvAccess<S>, state: S, from: string, body: Body): void {
  const mentions = body.mentions;
  if (Array.isArray(mentions)) {
    for (const u of mentions) {
      if (typeof u !== "string" || !access.isParticipant(state, u)) {
        throw new BadRequestError(
          `Mentioned user "${String(u).slice(0, 64)}" is not in this conversation`,
        );
      }
    }
  }
  if (body.mentionAll === true) {
    if (access.kind !== "group") {
      throw new BadRequestError(`"mentionAll" is only for groups`);
    }
    if (!access.mayMentionAll(state, from)) {
      throw forbidden("Only group admins and the owner may mention everyone");
    }
  }
}

/**
 * Sends `req` in this conversation after the stateful checks: mentions (in memory), then, only
 * when the body has them, the quoted message (replaced by its snapshot) and the media (must be
 * the sender's upload of a fitting type; its size and image dimensions are filled in from the
 * upload, and the media → conversation reference is recorded before the message is delivered).
 */
export function sendChecked<S extends object>(
  ctx: Ctx<S>,
  req: SendRequest,
  access: ConvAccess<S>,
  recipients: string[],
) {
  const conv = access.conv(ctx);
  checkMentions(access, ctx.state, req.from, req.body);
  const reply = req.body.replyTo as ReplyRef | Body | undefined;
  const mediaId = bodyMediaId(req.body);
  const needsQuote = !!reply && !("from" in reply);
  if (!needsQuote && !mediaId) return commitSend(ctx, req, conv, recipients);

  const store = ctx.services.store;
  return (async () => {
    const [quoted, media] = await Promise.all([
      needsQuote ? store.getMessage(conv, reply as ReplyRef) : null,
      mediaId ? store.getMedia(mediaId) : null,
    ]);
    const body: Body = { ...req.body };
    if (needsQuote) {
      if (!quoted) throw new NotFoundError("The quoted message is not in this conversation");
      body.replyTo = quoteOf(quoted);
    }
    if (mediaId) {
      // Someone else's upload is as unknown as a missing one: ids cannot be probed.
      if (!media || media.owner !== req.from) throw new NotFoundError("Unknown media");
      const type = String(body.type);
      if (!MEDIA_BODY_TYPES[type](media.mime)) {
        throw new BadRequestError(`A ${type} message cannot carry ${media.mime} media`);
      }
      if (type === "image" && media.width && media.height) {
        body.width = media.width;
        body.height = media.height;
      }
      if (type === "file") body.size = media.size;
    }
    return commitSend(
      ctx,
      { ...req, body },
      conv,
      recipients,
      mediaId ? (m) => store.addMediaRef(ctx.id, ctx.epoch, mediaId, conv, m.mid) : undefined,
    );
  })();
}

/** A message of this conversation that `user` may act on. */
async function target<S>(
  ctx: Ctx<S>,
  access: ConvAccess<S>,
  body: { user?: unknown; mid?: unknown },
  needLive: boolean,
): Promise<{ conv: string; user: string; message: StoredMessage }> {
  const user = body?.user;
  if (typeof user !== "string" || !access.isParticipant(ctx.state, user)) {
    throw new NotMemberError();
  }
  if (needLive && !access.live(ctx.state)) throw new NotFoundError("Unknown group");
  if (typeof body.mid !== "string") throw new BadRequestError(`"mid" must be a string`);
  const conv = access.conv(ctx);
  const message = await ctx.services.store.getMessage(conv, { mid: body.mid });
  if (!message) throw new NotFoundError("Unknown message");
  return { conv, user, message };
}

function updated(m: StoredMessage, change: string, by: string, fields: Body): Body {
  return { op: "msg.updated", conv: m.conv, mid: m.mid, cseq: m.cseq, change, by, ...fields };
}

/** The last reaction time given out by each activation (its state object), ms. */
const lastReactionTs = new WeakMap<object, number>();

/**
 * The message-feature handlers of a conversation actor kind; spread them into its `handlers`.
 *
 * - `access {user}` → `{participant}`.
 * - `react {user, mid, emoji, on}` → `{reactions}`.
 * - `recall {user, mid}` → `{body}` (the sender within the recall window; group moderators any
 *   time).
 * - `edit {user, mid, body}` → `{body}` (the sender; same type, same media, quote kept).
 * - `hide {user, mid}` → `{}` (delete for me).
 */
export function messageActionHandlers<S extends object>(
  access: ConvAccess<S>,
): Record<string, Handler<S, ImServices>> {
  return {
    access(ctx, body: { user?: unknown }) {
      return {
        participant: typeof body?.user === "string" && access.isParticipant(ctx.state, body.user),
      };
    },

    async react(ctx, body: { user: string; mid: string; emoji: string; on: boolean }) {
      const { user, message } = await target(ctx, access, body, true);
      if (typeof body.emoji !== "string" || typeof body.on !== "boolean") {
        throw new BadRequestError("Malformed reaction");
      }
      if (message.body.type === "recalled") {
        throw new BadRequestError("A recalled message takes no reactions");
      }
      const svc = ctx.services;
      // Reactions are listed in the order they were made (by ts): two in the same millisecond
      // must still get distinct, increasing times. Turns of one actor run one at a time.
      const ts = Math.max(svc.now(), (lastReactionTs.get(ctx.state) ?? 0) + 1);
      lastReactionTs.set(ctx.state, ts);
      let reactions: ReactionSummary[] = await svc.store.setReaction(
        ctx.id,
        ctx.epoch,
        message.mid,
        user,
        body.emoji,
        body.on,
        ts,
      );
      if (
        body.on && reactions.filter((r) => r.users.includes(user)).length > MAX_REACTIONS_PER_USER
      ) {
        reactions = await svc.store.setReaction(
          ctx.id,
          ctx.epoch,
          message.mid,
          user,
          body.emoji,
          false,
          svc.now(),
        );
        throw new BadRequestError(
          `At most ${MAX_REACTIONS_PER_USER} different reactions per user on one message`,
        );
      }
      svc.deliver({
        frame: updated(message, "reaction", user, { emoji: body.emoji, on: body.on, reactions }),
        users: access.participants(ctx.state),
      });
      return { reactions };
    },

    async recall(ctx, body: { user: string; mid: string }) {
      const { conv, user, message } = await target(ctx, access, body, true);
      if (message.body.type === "recalled") return { body: message.body };
      if (message.body.type === "system") throw forbidden("System messages cannot be recalled");
      const svc = ctx.services;
      const now = svc.now();
      const windowMs = svc.limits.recallWindowMs ?? DEFAULT_RECALL_WINDOW_MS;
      if (!access.moderates(ctx.state, user, message.from)) {
        if (message.from !== user) {
          throw forbidden("Only the sender or a group admin may recall this message");
        }
        if (now - message.ts > windowMs) {
          throw forbidden(`Messages can be recalled within ${windowMs / 1000} s of sending`);
        }
      }
      const recalled = { type: "recalled", by: user, at: now };
      await svc.store.updateMessageBody(ctx.id, ctx.epoch, conv, message.mid, recalled, true);
      svc.deliver({
        frame: updated(message, "recall", user, { body: recalled }),
        users: access.participants(ctx.state),
      });
      return { body: recalled };
    },

    async edit(ctx, body: { user: string; mid: string; body: Body }) {
      const { conv, user, message } = await target(ctx, access, body, true);
      const next = body.body;
      if (!next || typeof next !== "object") throw new BadRequestError(`"body" must be a map`);
      if (message.from !== user) throw forbidden("Only the sender may edit a message");
      const old = message.body;
      if (old.type === "recalled") throw new BadRequestError("A recalled message cannot be edited");
      if (old.type === "system") throw forbidden("System messages cannot be edited");
      access.checkCanPost(ctx, user);
      if (next.type !== old.type) throw new BadRequestError("An edit keeps the message type");
      if (next.replyTo !== undefined) {
        throw new BadRequestError("An edit cannot change the quoted message");
      }
      if (bodyMediaId(old) !== bodyMediaId(next)) {
        throw new BadRequestError("An edit keeps the media of the message");
      }
      checkMentions(access, ctx.state, user, next);
      const svc = ctx.services;
      const edited: Body = { ...next };
      // What the server set at send time stays: the quote snapshot and the media's facts.
      for (const key of ["replyTo", "width", "height", "size"]) {
        if (key === "replyTo" || bodyMediaId(old)) {
          if (old[key] !== undefined) edited[key] = old[key];
        }
      }
      edited.edited = svc.now();
      await svc.store.updateMessageBody(ctx.id, ctx.epoch, conv, message.mid, edited);
      svc.deliver({
        frame: updated(message, "edit", user, { body: edited }),
        users: access.participants(ctx.state),
      });
      return { body: edited };
    },

    async hide(ctx, body: { user: string; mid: string }) {
      const { conv, user, message } = await target(ctx, access, body, false);
      const svc = ctx.services;
      await svc.store.hideMessage(ctx.id, ctx.epoch, user, conv, message.mid);
      svc.deliver({ frame: updated(message, "delete", user, {}), users: [user] });
      return {};
    },
  };
}
