/**
 * The `direct` actor kind: one per pair of users, key `<min>:<max>`.
 *
 * It serialises the sends of both sides so the conversation has one total order (`cseq`), and
 * answers history for the two participants only. It holds no durable state of its own: the
 * sequence lives in the store and is assigned in the commit.
 *
 * @module
 */
import { defineBehavior } from "../behavior.ts";
import { NotFoundError, NotMemberError } from "../errors.ts";
import { directConvId, directParticipants } from "./conversation_ids.ts";
import { checkSendRequest, historyPage } from "./messaging.ts";
import { directAccess } from "./conv_access.ts";
import { messageActionHandlers, sendChecked } from "./message_actions.ts";
import { receiptHandlers } from "./receipts.ts";
import { type CachedGate, checkDirect, directSocialHandlers } from "./direct_gate.ts";
import type { ImServices } from "./services.ts";

/** State of a direct conversation actor. */
export interface DirectState {
  a: string;
  b: string;
  /** Whether both users exist (checked on activation). */
  valid: boolean;
  /** Each participant's gate towards the other (blocks, friendship), cached; never snapshotted. */
  gates?: Record<string, CachedGate>;
}

/** The behaviour of direct conversations. */
export const directBehavior = defineBehavior<DirectState, ImServices>({
  kind: "direct",
  initialState(key) {
    const [a, b] = directParticipants(key);
    return { a, b, valid: false };
  },
  // Nothing to keep: existence is re-checked on activation, sequences live in the store.
  encode: () => null,
  decode(_raw, key) {
    const [a, b] = directParticipants(key);
    return { a, b, valid: false };
  },
  async onActivate(ctx) {
    const { a, b } = ctx.state;
    const ids = a === b ? [a] : [a, b];
    const found = await ctx.services.store.existingUsers(ids);
    ctx.state.valid = found.length === ids.length;
  },
  handlers: {
    ...directSocialHandlers,
    async send(ctx, body) {
      const req = checkSendRequest(body);
      const { a, b, valid } = ctx.state;
      if (req.from !== a && req.from !== b) throw new NotMemberError();
      if (!valid) throw new NotFoundError("Unknown recipient");
      // Blocks and the stranger policy (cached; see direct_gate.ts).
      await checkDirect(ctx, req.from);
      return sendChecked(ctx, req, directAccess, a === b ? [a] : [a, b]);
    },
    history(ctx, body: { user: string; before: number | null; limit: number }) {
      const { a, b, valid } = ctx.state;
      if (!valid || (body.user !== a && body.user !== b)) throw new NotMemberError();
      return ctx.defer(
        historyPage(ctx.services, directConvId(a, b), body.before, body.limit, body.user),
      );
    },
    ...messageActionHandlers(directAccess),
    ...receiptHandlers(directAccess),
  },
});
