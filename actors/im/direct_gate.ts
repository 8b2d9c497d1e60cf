/**
 * Who may write to whom in a direct chat: blocks and the stranger policy, enforced by the
 * `direct` conversation actor before anything is stored or pushed.
 *
 * The direct actor caches, per participant, that participant's {@link Gate} towards the other
 * one (does it block them, are they its friend, its stranger policy). The cache is filled on
 * first use by asking the participant's user actor, and kept current by the user actors: every
 * change that restricts a pair (a block, an unfriend) is pushed here with `social.update`
 * *before* the user's request is answered, and updates carry the user's social revision so a
 * late one never overwrites a newer one.
 *
 * Hot path: between friends nothing is asked (two cached lookups). When the recipient does not
 * count the sender as a friend, the recipient's actor is asked on every send, because its
 * stranger policy is global to the user and is not pushed to every conversation it has.
 *
 * No user actor ever waits, inside its own turn, for a direct actor, so the ask made here (inside
 * the direct actor's turn) cannot deadlock.
 *
 * @module
 */
import type { ActorContext, MessageMeta } from "../behavior.ts";
import { ImError, NotFoundError, NotMemberError } from "../errors.ts";
import { directConvId, userActor } from "./conversation_ids.ts";
import type { ImServices } from "./services.ts";
import { has, requireFromUser, type SocialState, type StrangerPolicy } from "./social_state.ts";

/** One user's stance towards the other participant of a direct chat. */
export interface Gate {
  /** The user blocks the other one. */
  blocks: boolean;
  /** The user counts the other one as a friend. */
  friend: boolean;
  /** The user's stranger policy. */
  strangers: StrangerPolicy;
  /** The user's social revision when this was read. */
  rev: number;
}

/** What the gate needs of a direct actor's state. */
export interface GatedDirectState {
  a: string;
  b: string;
  valid: boolean;
  /** Cached gates by participant (filled lazily, never snapshotted). */
  gates?: Record<string, Gate>;
}

type DirectCtx = ActorContext<GatedDirectState, ImServices>;

/** The gate of a user (with social state `s`) towards `other`. */
export function gateOf(s: SocialState, other: string): Gate {
  return {
    blocks: has(s.blocked, other),
    friend: has(s.friends, other),
    strangers: s.strangers,
    rev: s.rev,
  };
}

function store(ctx: DirectCtx, user: string, gate: Gate): Gate {
  const gates = ctx.state.gates ??= {};
  const known = gates[user];
  if (!known || known.rev <= gate.rev) gates[user] = gate;
  return gates[user];
}

async function fetchGate(ctx: DirectCtx, user: string, other: string): Promise<Gate> {
  const gate = await ctx.ask<Gate>(userActor(user), "social.gate", { other });
  return store(ctx, user, gate);
}

/**
 * Throws `blocked` when either participant blocks the other, and `not_friend` when the
 * recipient accepts direct messages from friends only and `from` is not one. Call inside the
 * direct actor's turn, before committing.
 */
export async function checkDirect(ctx: DirectCtx, from: string): Promise<void> {
  const { a, b } = ctx.state;
  if (a === b) return; // notes to self
  const to = from === a ? b : a;
  const gFrom = ctx.state.gates?.[from] ?? await fetchGate(ctx, from, to);
  let gTo = ctx.state.gates?.[to];
  const fresh = !gTo;
  if (!gTo) gTo = await fetchGate(ctx, to, from);
  if (gTo.blocks) throw new ImError("blocked", "This user does not accept messages from you");
  if (gFrom.blocks) throw new ImError("blocked", "You blocked this user; unblock them first");
  if (gTo.friend) return;
  // Not a friend of the recipient: its stranger policy decides, read fresh.
  if (!fresh) gTo = await fetchGate(ctx, to, from);
  if (gTo.blocks) throw new ImError("blocked", "This user does not accept messages from you");
  if (!gTo.friend && gTo.strangers === "friends") {
    throw new ImError("not_friend", "This user accepts direct messages from friends only");
  }
}

/** Handlers the direct actor adds for the social features. */
export const directSocialHandlers = {
  /** A participant's gate changed (sent by that participant's user actor). */
  "social.update"(ctx: DirectCtx, body: { user: string; gate: Gate }, meta: MessageMeta) {
    const user = requireFromUser(meta, body?.user);
    if (user !== ctx.state.a && user !== ctx.state.b) throw new NotMemberError();
    store(ctx, user, body.gate);
    return {};
  },
  /**
   * An ephemeral typing indicator from `from` (set by the gateway): pushed to the other
   * participant's devices, never stored; refused like a send would be.
   */
  async typing(ctx: DirectCtx, body: { from: string; active: boolean }) {
    const { a, b, valid } = ctx.state;
    const from = body?.from;
    if (from !== a && from !== b) throw new NotMemberError();
    if (!valid) throw new NotFoundError("Unknown recipient");
    if (a === b) return {};
    await checkDirect(ctx, from);
    ctx.services.deliver({
      frame: { op: "typing", conv: directConvId(a, b), from, active: body.active !== false },
      users: [from === a ? b : a],
    });
    return {};
  },
};
