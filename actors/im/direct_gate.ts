/**
 * Who may write to whom in a direct chat: blocks and the stranger policy, enforced by the
 * `direct` conversation actor before anything is stored or pushed.
 *
 * The direct actor caches, per participant, that participant's {@link Gate} towards the other
 * one (does it block them, are they its friend, its stranger policy) for at most
 * `GATE_TIMING.ttlMs`. The cache is filled by asking the participant's user actor, and kept
 * current by the user actors, which push every change *before* answering the request that made
 * it: pair changes (a block, a friendship) to the pair's actor, a stranger-policy change to every
 * direct actor that read the user's gate within the TTL (the user actor remembers them). Updates
 * carry the user's social revision, so a late one never overwrites a newer one. The TTL bounds
 * what a lost update could leave stale (e.g. the user's actor moved to another node meanwhile).
 *
 * Hot path: within the TTL nothing is asked (two cached lookups per send).
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

/** How long a cached gate is used without asking again (not `const` so that tests can shorten it). */
export const GATE_TIMING = { ttlMs: 30_000 };

/** A cached gate and when it was read. */
export interface CachedGate extends Gate {
  /** When it was read or pushed, ms (this node's clock). */
  at: number;
}

/** What the gate needs of a direct actor's state. */
export interface GatedDirectState {
  a: string;
  b: string;
  valid: boolean;
  /** Cached gates by participant (filled lazily, never snapshotted). */
  gates?: Record<string, CachedGate>;
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

function store(ctx: DirectCtx, user: string, gate: Gate): CachedGate {
  const gates = ctx.state.gates ??= {};
  const known = gates[user];
  const at = ctx.services.now();
  if (!known || known.rev <= gate.rev) {
    gates[user] = {
      blocks: gate.blocks === true,
      friend: gate.friend === true,
      strangers: gate.strangers === "friends" ? "friends" : "anyone",
      rev: gate.rev,
      at,
    };
  } else {
    known.at = at; // an older answer still proves the newer cached one is current
  }
  return gates[user];
}

/** The cached gate of `user` when still fresh, otherwise read from its actor. */
async function gate(ctx: DirectCtx, user: string, other: string): Promise<CachedGate> {
  const cached = ctx.state.gates?.[user];
  if (cached && ctx.services.now() - cached.at < GATE_TIMING.ttlMs) return cached;
  return await fetchGate(ctx, user, other);
}

async function fetchGate(ctx: DirectCtx, user: string, other: string): Promise<CachedGate> {
  const answer = await ctx.ask<Gate>(userActor(user), "social.gate", { other });
  return store(ctx, user, answer);
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
  const gTo = await gate(ctx, to, from);
  const gFrom = await gate(ctx, from, to);
  if (gTo.blocks) throw new ImError("blocked", "This user does not accept messages from you");
  if (gFrom.blocks) throw new ImError("blocked", "You blocked this user; unblock them first");
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
