import assert from "node:assert/strict";
import fc from "fast-check";
import type { ActorContext } from "../behavior.ts";
import { ImError } from "../errors.ts";
import { groupBehavior, type GroupMember, type GroupRole, type GroupState } from "./group.ts";
import {
  checkCanSpeak,
  checkOutranks,
  commitChange,
  liveAdmin,
  liveMember,
  liveOwner,
  memberList,
  memberOf,
  pageMembers,
  pageRequests,
} from "./group_rules.ts";
import type { ImServices } from "./services.ts";

function stateWith(ids: string[], extra: Partial<GroupState> = {}): GroupState {
  const s = groupBehavior.initialState("g_test");
  s.exists = true;
  s.owner = ids[0] ?? "";
  for (const [i, id] of ids.entries()) {
    s.members[id] = { role: i === 0 ? "owner" : "member", joinedAt: i };
  }
  return { ...s, ...extra };
}

function codeOf(fn: () => unknown): string | null {
  try {
    fn();
    return null;
  } catch (err) {
    assert.ok(err instanceof ImError, String(err));
    return err.code;
  }
}

Deno.test("paging members visits every member once, in user id order, for any page size", () => {
  fc.assert(
    fc.property(
      fc.uniqueArray(fc.stringMatching(/^u_[a-z0-9]{1,6}$/), { minLength: 1, maxLength: 60 }),
      fc.integer({ min: 1, max: 20 }),
      (ids, limit) => {
        const state = stateWith(ids);
        const seen: string[] = [];
        let after: string | null = null;
        for (let guard = 0; guard <= ids.length; guard++) {
          const page = pageMembers(state, after, limit, 0);
          assert.equal(page.count, ids.length);
          assert.ok(page.members.length <= limit);
          seen.push(...page.members.map((m) => m.userId));
          if (!page.more) break;
          after = page.members[page.members.length - 1].userId;
        }
        assert.deepEqual(seen, [...ids].sort());
      },
    ),
  );
});

Deno.test("page sizes are clamped to 1..500 and a cursor between ids starts after it", () => {
  const ids = Array.from({ length: 600 }, (_, i) => `u_${String(i).padStart(4, "0")}`);
  const state = stateWith(ids);
  assert.equal(pageMembers(state, null, 0, 0).members.length, 1);
  assert.equal(pageMembers(state, null, 10_000, 0).members.length, 500);
  assert.equal(pageMembers(state, null, undefined, 0).members.length, 100);
  assert.equal(pageMembers(state, "u_0009x", 1, 0).members[0].userId, "u_0010");
  assert.equal(pageMembers(state, "u_9999", 5, 0).members.length, 0);
  assert.equal(pageMembers(state, "u_9999", 5, 0).more, false);
});

Deno.test("member lists show a mute only while it lasts", () => {
  const state = stateWith(["u_a", "u_b"]);
  state.members.u_b.mutedUntil = 1000;
  assert.equal(pageMembers(state, null, 10, 999).members[1].mutedUntil, 1000);
  assert.equal(pageMembers(state, null, 10, 1000).members[1].mutedUntil, undefined);
});

Deno.test("join requests are paged by user id", () => {
  const state = stateWith(["u_a"]);
  state.requests = { u_c: { message: "c", ts: 2 }, u_b: { message: "b", ts: 1 } };
  const page = pageRequests(state, null, 1);
  assert.deepEqual(page, {
    requests: [{ userId: "u_b", message: "b", ts: 1 }],
    more: true,
    count: 2,
  });
  assert.equal(pageRequests(state, "u_b", 1).requests[0].userId, "u_c");
});

Deno.test("inherited property names are never members", () => {
  const state = stateWith(["u_a"]);
  for (const name of ["constructor", "__proto__", "toString", "hasOwnProperty"]) {
    assert.equal(memberOf(state, name), undefined);
    assert.equal(codeOf(() => liveMember(state, name)), "not_member");
  }
  assert.equal(memberOf(state, 42), undefined);
});

Deno.test("callers are checked: unknown or dissolved group, non-member, role", () => {
  const state = stateWith(["u_o", "u_m"]);
  state.members.u_a = { role: "admin", joinedAt: 0 };
  assert.equal(codeOf(() => liveMember(groupBehavior.initialState("g"), "u_o")), "not_found");
  assert.equal(codeOf(() => liveMember(state, "u_x")), "not_member");
  assert.equal(codeOf(() => liveAdmin(state, "u_m")), "forbidden");
  assert.equal(codeOf(() => liveAdmin(state, "u_a")), null);
  assert.equal(codeOf(() => liveOwner(state, "u_a")), "forbidden");
  assert.equal(codeOf(() => liveOwner(state, "u_o")), null);
  state.dissolved = true;
  assert.equal(codeOf(() => liveMember(state, "u_o")), "not_found");
});

Deno.test("admins moderate members, the owner moderates admins and members, nobody the owner", () => {
  const roles: GroupRole[] = ["member", "admin", "owner"];
  const allowed = new Set(["admin>member", "owner>member", "owner>admin"]);
  for (const a of roles) {
    for (const t of roles) {
      const actor: GroupMember = { role: a, joinedAt: 0 };
      const target: GroupMember = { role: t, joinedAt: 0 };
      const code = codeOf(() => checkOutranks(actor, target, "kick"));
      assert.equal(code === null, allowed.has(`${a}>${t}`), `${a} on ${t}`);
      if (code !== null) assert.equal(code, "forbidden");
    }
  }
});

Deno.test("a mute ends at its timestamp; mute-all silences plain members only", () => {
  const state = stateWith(["u_o", "u_m"]);
  const m = state.members.u_m;
  m.mutedUntil = 5000;
  assert.equal(codeOf(() => checkCanSpeak(state, m, 4999)), "muted");
  assert.equal(codeOf(() => checkCanSpeak(state, m, 5000)), null);
  state.muteAll = true;
  assert.equal(codeOf(() => checkCanSpeak(state, m, 6000)), "muted");
  assert.equal(codeOf(() => checkCanSpeak(state, { role: "admin", joinedAt: 0 }, 0)), null);
  assert.equal(codeOf(() => checkCanSpeak(state, state.members.u_o, 0)), null);
  // Mute-all spares admins, but an admin's own mute still holds.
  assert.equal(
    codeOf(() => checkCanSpeak(state, { role: "admin", joinedAt: 0, mutedUntil: 10 }, 0)),
    "muted",
  );
});

function fakeContext(state: GroupState, snapshot: () => Promise<void>) {
  return { state, snapshot } as unknown as ActorContext<GroupState, ImServices>;
}

Deno.test("a change whose snapshot fails leaves the state as it was", async () => {
  const state = stateWith(["u_o", "u_m"], { name: "before" });
  const list = memberList(state);
  assert.deepEqual(list, ["u_o", "u_m"]);
  const ctx = fakeContext(state, () => Promise.reject(new ImError("unavailable", "down")));
  await assert.rejects(
    commitChange(ctx, (s) => {
      s.name = "after";
      delete s.members.u_m;
      s.members.u_n = { role: "member", joinedAt: 9 };
    }),
    (err: ImError) => err.code === "unavailable",
  );
  assert.equal(ctx.state, state, "the same state object (in-flight sends are keyed by it)");
  assert.equal(state.name, "before");
  assert.deepEqual(Object.keys(state.members).sort(), ["u_m", "u_o"]);
  assert.deepEqual(memberList(state).sort(), ["u_m", "u_o"]);
});

Deno.test("a committed change refreshes the cached member list", async () => {
  const state = stateWith(["u_o"]);
  assert.deepEqual(memberList(state), ["u_o"]);
  const ctx = fakeContext(state, () => Promise.resolve());
  await commitChange(ctx, (s) => {
    s.members.u_n = { role: "member", joinedAt: 1 };
  });
  assert.deepEqual(memberList(state), ["u_o", "u_n"]);
});

Deno.test("snapshots from before group administration decode with its defaults", () => {
  const old = {
    exists: true,
    name: "old",
    owner: "u_o",
    createdAt: 1,
    members: { u_o: { role: "owner", joinedAt: 1 } },
  };
  const s = groupBehavior.decode!(old, "g_old");
  assert.equal(s.name, "old");
  assert.equal(s.dissolved, false);
  assert.equal(s.invitePolicy, "anyone");
  assert.equal(s.joinPolicy, "approval");
  assert.equal(s.muteAll, false);
  assert.deepEqual(s.requests, {});
  assert.equal(s.description, "");
});
