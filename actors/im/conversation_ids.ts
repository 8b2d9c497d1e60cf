/**
 * Conversation and actor ids of the IM.
 *
 * A direct conversation between users `a` and `b` has the stable id `d:<min>:<max>` (the same
 * string for both sides, whoever writes first) and is served by the actor `direct/<min>:<max>`.
 * A group's conversation is `g:<groupId>`, served by `group/<groupId>`. User and group ids never
 * contain `:` (they are `u_`/`g_` + base32), so parsing is unambiguous.
 *
 * @module
 */
import { type ActorId, actorId } from "../behavior.ts";

/** The stable conversation id of the direct chat between two users. */
export function directConvId(a: string, b: string): string {
  return a <= b ? `d:${a}:${b}` : `d:${b}:${a}`;
}

/** The conversation id of a group. */
export function groupConvId(groupId: string): string {
  return `g:${groupId}`;
}

/** The actor serving a conversation, or null when `conv` is not a well-formed id. */
export function conversationActor(conv: string): ActorId | null {
  if (conv.startsWith("d:")) {
    const parts = conv.split(":");
    if (parts.length !== 3 || !parts[1] || !parts[2] || parts[1] > parts[2]) return null;
    return actorId("direct", `${parts[1]}:${parts[2]}`);
  }
  if (conv.startsWith("g:") && conv.length > 2 && !conv.includes(":", 2)) {
    return actorId("group", conv.slice(2));
  }
  return null;
}

/** The two participants of a direct actor key `<min>:<max>`. */
export function directParticipants(key: string): [string, string] {
  const i = key.indexOf(":");
  return [key.slice(0, i), key.slice(i + 1)];
}

/** The actor of a user. */
export function userActor(userId: string): ActorId {
  return actorId("user", userId);
}

/** The actor serving the direct chat between two users. */
export function directActor(a: string, b: string): ActorId {
  return actorId("direct", a <= b ? `${a}:${b}` : `${b}:${a}`);
}

/** The actor of a group. */
export function groupActor(groupId: string): ActorId {
  return actorId("group", groupId);
}
