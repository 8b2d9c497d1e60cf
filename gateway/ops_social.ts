/**
 * Social ops: friend requests and friends, blocks, follows, the stranger policy, profiles and
 * user search (docs/protocol.md, "Social graph").
 *
 * Every op asks the caller's own user actor (`ctx.userId`, set from the token): the target ids
 * in a frame only ever name *whom* the caller acts on, never who acts. That actor checks
 * existence and its own state, and talks to the other user's actor, which checks its own
 * (`actors/im/social.ts`).
 *
 * @module
 */
import { BadRequestError } from "../actors/errors.ts";
import { userActor } from "../actors/im/conversation_ids.ts";
import { SOCIAL_LIMITS } from "../actors/im/social_state.ts";
import type { FollowCursor, SearchCursor, SearchPage } from "../db/store.ts";
import type { OpContext, OpRegistry } from "./op_registry.ts";
import type { Frame } from "./ops.ts";
import {
  cursorField,
  encodeCursor,
  enumField,
  idField,
  isIdShape,
  isPlainString,
  optionalIdField,
  pageLimit,
  textField,
} from "./social_fields.ts";

/** Limits of the profile fields, in code points. */
export const PROFILE_LIMITS = { displayName: 64, avatar: 512, bio: 500 } as const;

/** Largest page of `friend.list`, `block.list`, `follow.list`; `user.search` has its own. */
const MAX_PAGE = 500;
const SEARCH_MAX_PAGE = 50;

/** An avatar: an http(s) URL or a media id. */
const MEDIA_ID = /^[A-Za-z0-9_.:-]{1,128}$/;

function me(ctx: OpContext, type: string, body: Record<string, unknown>): Promise<unknown> {
  return ctx.ask(userActor(ctx.userId), type, body);
}

function isSearchCursor(v: unknown): v is SearchCursor {
  const c = v as SearchCursor;
  return !!c && typeof c === "object" && isPlainString(c.key, 256) && isIdShape(c.userId);
}

function isFollowCursor(v: unknown): v is FollowCursor {
  const c = v as FollowCursor;
  return !!c && typeof c === "object" && Number.isSafeInteger(c.ts) && c.ts >= 0 &&
    isIdShape(c.userId);
}

function afterId(frame: Frame): string | null {
  const v = frame.after;
  return v === undefined || v === null ? null : idField(frame, "after");
}

function avatarField(frame: Frame): string {
  const v = textField(frame, "avatar", PROFILE_LIMITS.avatar);
  if (v === "" || MEDIA_ID.test(v)) return v;
  let url: URL;
  try {
    url = new URL(v);
  } catch {
    throw new BadRequestError(`"avatar" must be an http(s) URL or a media id`);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    throw new BadRequestError(`"avatar" must be an http(s) URL or a media id`);
  }
  return v;
}

/** Registers the social ops. */
export function registerSocialOps(ops: OpRegistry): void {
  // ---- friends
  ops.register("friend.request", (ctx, frame) =>
    me(ctx, "social.friendRequest", {
      userId: idField(frame, "userId"),
      message: textField(frame, "message", SOCIAL_LIMITS.requestMessage, {
        def: "",
        multiLine: true,
      }),
    }));
  ops.register(
    "friend.accept",
    (ctx, frame) => me(ctx, "social.friendAccept", { userId: idField(frame, "userId") }),
  );
  ops.register(
    "friend.reject",
    (ctx, frame) => me(ctx, "social.friendReject", { userId: idField(frame, "userId") }),
  );
  ops.register(
    "friend.cancel",
    (ctx, frame) => me(ctx, "social.friendCancel", { userId: idField(frame, "userId") }),
  );
  ops.register(
    "friend.delete",
    (ctx, frame) => me(ctx, "social.friendDelete", { userId: idField(frame, "userId") }),
  );
  ops.register("friend.remark", (ctx, frame) =>
    me(ctx, "social.friendRemark", {
      userId: idField(frame, "userId"),
      remark: textField(frame, "remark", SOCIAL_LIMITS.remark),
    }));
  ops.register(
    "friend.list",
    (ctx, frame) =>
      me(ctx, "social.friends", { after: afterId(frame), limit: pageLimit(frame, 100, MAX_PAGE) }),
  );
  ops.register("friend.requests", (ctx) => me(ctx, "social.requests", {}));

  // ---- blocks
  ops.register(
    "block.add",
    (ctx, frame) => me(ctx, "social.block", { userId: idField(frame, "userId") }),
  );
  ops.register(
    "block.remove",
    (ctx, frame) => me(ctx, "social.unblock", { userId: idField(frame, "userId") }),
  );
  ops.register(
    "block.list",
    (ctx, frame) =>
      me(ctx, "social.blocks", { after: afterId(frame), limit: pageLimit(frame, 100, MAX_PAGE) }),
  );

  // ---- stranger policy
  ops.register("privacy.get", (ctx) => me(ctx, "social.privacy", {}));
  ops.register(
    "privacy.set",
    (ctx, frame) =>
      me(ctx, "social.privacy", {
        strangers: enumField(frame, "strangers", ["anyone", "friends"]),
      }),
  );

  // ---- follows
  ops.register(
    "follow.add",
    (ctx, frame) => me(ctx, "social.follow", { userId: idField(frame, "userId") }),
  );
  ops.register(
    "follow.remove",
    (ctx, frame) => me(ctx, "social.unfollow", { userId: idField(frame, "userId") }),
  );
  ops.register("follow.list", async (ctx, frame) => {
    const limit = pageLimit(frame, 100, MAX_PAGE);
    const res = await me(ctx, "social.follows", {
      userId: optionalIdField(frame, "userId", ctx.userId),
      kind: enumField(frame, "kind", ["followers", "following"]),
      after: cursorField(frame, "after", isFollowCursor),
      limit,
    }) as { users: { userId: string; ts: number }[]; more: boolean };
    const last = res.users.at(-1);
    return {
      users: res.users,
      next: res.more && last ? encodeCursor({ ts: last.ts, userId: last.userId }) : null,
    };
  });
  ops.register(
    "follow.counts",
    (ctx, frame) =>
      me(ctx, "social.followCounts", { userId: optionalIdField(frame, "userId", ctx.userId) }),
  );

  // ---- profiles and search
  ops.register(
    "profile.get",
    (ctx, frame) =>
      me(ctx, "social.profile", { userId: optionalIdField(frame, "userId", ctx.userId) }),
  );
  ops.register("profile.update", (ctx, frame) => {
    const patch: Record<string, string> = {};
    if (frame.displayName !== undefined) {
      patch.displayName = textField(frame, "displayName", PROFILE_LIMITS.displayName);
    }
    if (frame.avatar !== undefined) patch.avatar = avatarField(frame);
    if (frame.bio !== undefined) {
      patch.bio = textField(frame, "bio", PROFILE_LIMITS.bio, { multiLine: true });
    }
    if (Object.keys(patch).length === 0) {
      throw new BadRequestError(`Give at least one of "displayName", "avatar", "bio"`);
    }
    return me(ctx, "social.profileUpdate", { patch });
  });
  ops.register("user.search", async (ctx, frame) => {
    const query = textField(frame, "query", 64).trim();
    if (query.length === 0) throw new BadRequestError(`"query" must not be empty`);
    const page = await me(ctx, "social.search", {
      query,
      after: cursorField(frame, "after", isSearchCursor),
      limit: pageLimit(frame, 20, SEARCH_MAX_PAGE),
    }) as SearchPage;
    return { users: page.users, next: page.next ? encodeCursor(page.next) : null };
  });
}
