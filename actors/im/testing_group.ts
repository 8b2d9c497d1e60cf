/**
 * Test support: a group actor's context on a real (in-memory SQLite) store, with a frozen clock
 * (1,000 ms) and a recorder of its deliveries, holding one stored message `m_1` (cseq 1) sent by
 * the first member. For handler tests of the conversation features (receipts, reactions, …).
 *
 * @module
 */
import type { ActorContext } from "../behavior.ts";
import type { Delivery } from "../../cluster/transport.ts";
import { openSqliteStore } from "../../db/store_sqlite.ts";
import type { Store } from "../../db/store.ts";
import { createLogger } from "../../observability/log.ts";
import type { GroupState } from "./group.ts";
import type { ImServices } from "./services.ts";

/** A group `g_1` whose members are `memberIds` (the first is the owner). Close `store` after. */
export async function groupContext(memberIds: string[]): Promise<{
  ctx: ActorContext<GroupState, ImServices>;
  delivered: Delivery[];
  store: Store;
}> {
  const store: Store = openSqliteStore(":memory:");
  await store.migrate();
  const members: GroupState["members"] = {};
  for (const [i, u] of memberIds.entries()) {
    members[u] = { role: i === 0 ? "owner" : "member", joinedAt: 1 };
  }
  const state = {
    exists: true,
    dissolved: false,
    name: "g",
    description: "",
    avatar: "",
    announcement: "",
    owner: memberIds[0],
    createdAt: 1,
    members,
    invitePolicy: "anyone",
    joinPolicy: "approval",
    muteAll: false,
    requests: {},
  } as GroupState;
  const delivered: Delivery[] = [];
  const services = {
    store,
    deliver: (d: Delivery) => delivered.push(d),
    now: () => 1_000,
    logger: createLogger({ level: "error" }),
  } as unknown as ImServices;
  const ctx = { id: "group/g_1", key: "g_1", epoch: 1, state, services } as unknown as ActorContext<
    GroupState,
    ImServices
  >;
  await store.append([{
    actorId: "group/g_1",
    epoch: 1,
    mid: "m_1",
    conv: "g:g_1",
    from: memberIds[0],
    to: { group: "g_1" },
    cmid: "c1",
    ts: 1,
    body: { type: "text", text: "hi" },
    recipients: memberIds,
  }]);
  return { ctx, delivered, store };
}
