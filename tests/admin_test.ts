/**
 * The admin API (/v1/admin/...) end to end on real nodes: the role check, online users, forced
 * logout, disable, delete, mute, broadcasts, groups, the cluster view, runtime configuration
 * applied without a restart (also across two nodes), the audit log, and the metrics.
 */
import assert from "node:assert/strict";
import { loadConfig } from "../config.ts";
import { grantRole } from "../gateway/admin_grant.ts";
import { createMemoryCluster } from "../cluster/from_config.ts";
import { startNode } from "../node.ts";
import { createLogger } from "../observability/log.ts";
import { testNode } from "./support/node.ts";
import { type F, login, signUp, TestClient } from "./support/client.ts";

type Node = Awaited<ReturnType<typeof testNode>>;

function uniq(name: string): string {
  return `${name}_${crypto.randomUUID().slice(0, 8)}`;
}

/** Calls the admin API; returns status and JSON body. */
async function api(
  base: string,
  token: string | null,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; json: Record<string, unknown> & { [k: string]: unknown } }> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body !== undefined ? { "content-type": "application/json" } : {}),
    },
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  return { status: res.status, json: await res.json() };
}

/** An admin account on `node`. */
async function admin(node: Node) {
  const name = uniq("root");
  const tokens = await signUp(node.url, name);
  await grantRole(node.store, name, "admin");
  return { ...tokens, username: name };
}

Deno.test("the admin API refuses requests without a token or without the admin role", async () => {
  const node = await testNode();
  try {
    const user = await signUp(node.url, uniq("user"));
    const none = await api(node.url, null, "GET", "/v1/admin/cluster");
    assert.equal(none.status, 401);
    assert.equal((none.json.error as F).code, "invalid_token");
    const bad = await api(node.url, "junk", "GET", "/v1/admin/cluster");
    assert.equal(bad.status, 401);
    const plain = await api(node.url, user.accessToken, "GET", "/v1/admin/cluster");
    assert.equal(plain.status, 403);
    assert.equal((plain.json.error as F).code, "forbidden");

    const root = await admin(node);
    const me = await api(node.url, root.accessToken, "GET", "/v1/admin/me");
    assert.equal(me.status, 200);
    assert.equal(me.json.username, root.username);
    // Removing the role takes effect at the next request (it is read per request).
    await grantRole(node.store, root.username, null);
    assert.equal((await api(node.url, root.accessToken, "GET", "/v1/admin/me")).status, 403);
  } finally {
    await node.stop();
  }
});

Deno.test("an admin sees online users with IP, login time, devices and node, and forces one out", async () => {
  const node = await testNode();
  try {
    const root = await admin(node);
    const name = uniq("alice");
    const alice = await signUp(node.url, name, undefined, "phone");
    const c1 = await TestClient.connect(node.url, alice.accessToken, "im.v1.msgpack");
    const c2 = await TestClient.connect(node.url, alice.accessToken, "im.v1.json", "laptop");

    const online = await api(node.url, root.accessToken, "GET", "/v1/admin/sessions");
    assert.equal(online.status, 200);
    const entry = (online.json.users as F[]).find((u) => u.userId === alice.userId)!;
    assert.equal(entry.username, name);
    const sessions = entry.sessions as F[];
    assert.deepEqual(sessions.map((s) => s.device).sort(), ["laptop", "phone"]);
    for (const s of sessions) {
      assert.equal(s.remoteAddr, "127.0.0.1");
      assert.equal(s.node, node.nodeId);
      assert.ok(Math.abs((s.connectedAt as number) - Date.now()) < 10_000);
      assert.ok((s.onlineMs as number) >= 0);
    }
    assert.deepEqual(online.json.failedNodes, []);

    const out = await api(
      node.url,
      root.accessToken,
      "POST",
      `/v1/admin/users/${alice.userId}/logout`,
    );
    assert.equal(out.status, 200);
    assert.equal(out.json.closed, 2);
    assert.equal(out.json.revokedTokens, 1);
    assert.equal(await c1.closed, 1008);
    assert.equal(await c2.closed, 1008);
    assert.equal(c1.closeReason, "forced logout");

    // The refresh token is revoked and the old access token no longer opens a connection.
    const refresh = await fetch(`${node.url}/v1/auth/refresh`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ refreshToken: alice.refreshToken }),
    });
    assert.equal(refresh.status, 401);
    await refresh.body?.cancel();
    const again = await TestClient.open(node.url);
    const denied = await again.request({ op: "auth", token: alice.accessToken });
    assert.equal(denied.code, "invalid_token");
    assert.equal(await again.closed, 4401);

    // A new login (in a later second than the logout) works.
    await new Promise((r) => setTimeout(r, 1100));
    const fresh = await login(node.url, name, "correct horse battery");
    const c3 = await TestClient.connect(node.url, fresh.accessToken);
    await c3.close();

    const audit = await api(node.url, root.accessToken, "GET", "/v1/admin/audit");
    const last = (audit.json.entries as F[])[0];
    assert.equal(last.action, "user.logout");
    assert.equal(last.target, alice.userId);
    assert.equal(last.adminId, root.userId);
    assert.equal(last.adminUsername, root.username);
  } finally {
    await node.stop();
  }
});

Deno.test("an admin mutes, disables, re-enables and deletes users, and each action is audited", async () => {
  const node = await testNode();
  try {
    const root = await admin(node);
    const bobName = uniq("bob");
    const bob = await signUp(node.url, bobName);
    const carol = await signUp(node.url, uniq("carol"));
    const c = await TestClient.connect(node.url, bob.accessToken);
    const send = (cmid: string) =>
      c.request({
        op: "send",
        to: { user: carol.userId },
        cmid,
        body: { type: "text", text: "x" },
      });

    const muted = await api(
      node.url,
      root.accessToken,
      "POST",
      `/v1/admin/users/${bob.userId}/mute`,
      {
        seconds: 60,
      },
    );
    assert.equal(muted.status, 200);
    assert.ok((muted.json.mutedUntil as number) > Date.now());
    const refused = await send("m1");
    assert.equal(refused.op, "error");
    assert.equal(refused.code, "muted");
    const view = await api(node.url, root.accessToken, "GET", `/v1/admin/users/${bob.userId}`);
    assert.equal(view.json.mutedUntil, muted.json.mutedUntil);
    await api(node.url, root.accessToken, "POST", `/v1/admin/users/${bob.userId}/mute`, {
      seconds: 0,
    });
    const unmutedSend = await send("m1");
    assert.equal(unmutedSend.op, "ok", JSON.stringify(unmutedSend));

    const disabled = await api(
      node.url,
      root.accessToken,
      "POST",
      `/v1/admin/users/${bob.userId}/disable`,
      { disabled: true },
    );
    assert.equal(disabled.json.closed, 1);
    assert.equal(await c.closed, 1008);
    assert.equal(c.closeReason, "account disabled");
    await assert.rejects(login(node.url, bobName, "correct horse battery"), /401/);
    await api(node.url, root.accessToken, "POST", `/v1/admin/users/${bob.userId}/disable`, {
      disabled: false,
    });
    await login(node.url, bobName, "correct horse battery");

    const self = await api(node.url, root.accessToken, "DELETE", `/v1/admin/users/${root.userId}`);
    assert.equal(self.status, 400);
    const del = await api(node.url, root.accessToken, "DELETE", `/v1/admin/users/${bob.userId}`);
    assert.equal(del.status, 200);
    assert.equal(del.json.deleted, true);
    const gone = await api(node.url, root.accessToken, "GET", `/v1/admin/users/${bob.userId}`);
    assert.equal(gone.status, 404);
    // The name is free again.
    await signUp(node.url, bobName);

    const audit = await api(node.url, root.accessToken, "GET", "/v1/admin/audit?limit=10");
    const actions = (audit.json.entries as F[]).map((e) => e.action).reverse();
    assert.deepEqual(actions, [
      "role.grant",
      "user.mute",
      "user.unmute",
      "user.disable",
      "user.enable",
      "user.delete",
    ]);
  } finally {
    await node.stop();
  }
});

Deno.test("an admin broadcasts a system message to everyone and to one group, and lists groups with members", async () => {
  const node = await testNode();
  try {
    const root = await admin(node);
    const [a, b, d] = await Promise.all(
      ["ann", "ben", "dan"].map((n) => signUp(node.url, uniq(n))),
    );
    const [ca, cb, cd] = await Promise.all(
      [a, b, d].map((u) => TestClient.connect(node.url, u.accessToken)),
    );
    const created = await ca.request({ op: "group.create", name: "crew", members: [b.userId] });
    const groupId = created.groupId as string;

    const all = await api(node.url, root.accessToken, "POST", "/v1/admin/broadcast", {
      text: "maintenance at 22:00",
    });
    assert.equal(all.status, 200);
    assert.ok((all.json.delivered as number) >= 3);
    for (const c of [ca, cb, cd]) {
      const f = await c.waitFor((f) => f.op === "system" && f.scope === "all", 3000, true);
      assert.equal(f.text, "maintenance at 22:00");
    }

    const one = await api(node.url, root.accessToken, "POST", "/v1/admin/broadcast", {
      text: "crew only",
      group: groupId,
    });
    assert.equal(one.json.members, 2);
    for (const c of [ca, cb]) {
      const f = await c.waitFor((f) => f.op === "system" && f.scope === "group", 3000, true);
      assert.equal(f.group, groupId);
      assert.equal(f.conv, `g:${groupId}`);
    }
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(cd.frames.some((f) => f.op === "system" && f.scope === "group"), false);
    const missing = await api(node.url, root.accessToken, "POST", "/v1/admin/broadcast", {
      text: "x",
      group: "g_nope",
    });
    assert.equal(missing.status, 404);

    const groups = await api(node.url, root.accessToken, "GET", "/v1/admin/groups");
    const g = (groups.json.groups as F[]).find((g) => g.groupId === groupId)!;
    assert.equal(g.name, "crew");
    assert.equal(g.owner, a.userId);
    const members = (g.members as F[]).map((m) => [m.userId, m.role]).sort();
    assert.deepEqual(members, [[a.userId, "owner"], [b.userId, "member"]].sort());
    assert.ok((g.members as F[]).every((m) => typeof m.username === "string" && m.username));
    for (const c of [ca, cb, cd]) await c.close();
  } finally {
    await node.stop();
  }
});

Deno.test("runtime configuration changes apply without a restart and are refused when invalid", async () => {
  const node = await testNode();
  try {
    const root = await admin(node);
    const before = await api(node.url, root.accessToken, "GET", "/v1/admin/config");
    assert.equal((before.json.effective as F).groupMaxMembers, 2000);

    const bad = await api(node.url, root.accessToken, "PATCH", "/v1/admin/config", {
      rateLimitPerSec: 0,
    });
    assert.equal(bad.status, 400);
    const unknown = await api(node.url, root.accessToken, "PATCH", "/v1/admin/config", {
      nope: 1,
    });
    assert.equal(unknown.status, 400);

    const changed = await api(node.url, root.accessToken, "PATCH", "/v1/admin/config", {
      groupMaxMembers: 2,
      logLevel: "warn",
    });
    assert.equal(changed.status, 200);
    assert.equal((changed.json.effective as F).groupMaxMembers, 2);
    assert.equal((changed.json.overrides as F).logLevel, "warn");

    const users = await Promise.all(["x", "y", "z"].map((n) => signUp(node.url, uniq(n))));
    const c = await TestClient.connect(node.url, users[0].accessToken);
    const tooBig = await c.request({
      op: "group.create",
      name: "big",
      members: [users[1].userId, users[2].userId],
    });
    assert.equal(tooBig.code, "bad_request");

    const reset = await api(node.url, root.accessToken, "PATCH", "/v1/admin/config", {
      groupMaxMembers: null,
    });
    assert.equal((reset.json.effective as F).groupMaxMembers, 2000);
    const ok = await c.request({
      op: "group.create",
      name: "big",
      members: [users[1].userId, users[2].userId],
    });
    assert.equal(ok.op, "ok");
    await c.close();

    const cluster = await api(node.url, root.accessToken, "GET", "/v1/admin/cluster");
    const stats = (cluster.json.nodes as F[])[0];
    assert.equal(stats.nodeId, node.nodeId);
    for (
      const k of [
        "connections",
        "actors",
        "mailboxDepth",
        "messagesPerSec",
        "cpu",
        "rssBytes",
        "eventLoopLagMs",
      ]
    ) {
      assert.equal(typeof stats[k], "number", k);
    }
    assert.equal(stats.stateVersion, 2);
  } finally {
    await node.stop();
  }
});

Deno.test("two nodes share one admin view: sessions, kicks and configuration reach both", async () => {
  const dir = await Deno.makeTempDir({ prefix: "im_admin_" });
  const memoryCluster = createMemoryCluster();
  const start = () =>
    startNode(
      loadConfig({
        PORT: "0",
        HOST: "127.0.0.1",
        DATA_DIR: dir,
        PASSWORD_ITERATIONS: "1000",
        LOG_LEVEL: "error",
      }),
      { memoryCluster, logger: createLogger({ level: "error" }) },
    );
  const n1 = await start();
  const n2 = await start();
  try {
    const root = await admin(n1 as Node);
    const u = await signUp(n1.url, uniq("eve"));
    const c1 = await TestClient.connect(n1.url, u.accessToken);
    const c2 = await TestClient.connect(n2.url, u.accessToken, "im.v1.msgpack", "tablet");

    const online = await api(n2.url, root.accessToken, "GET", "/v1/admin/sessions");
    const nodes = ((online.json.users as F[]).find((x) => x.userId === u.userId)!.sessions as F[])
      .map((s) => s.node).sort();
    assert.deepEqual(nodes, [n1.nodeId, n2.nodeId].sort());

    const cluster = await api(n1.url, root.accessToken, "GET", "/v1/admin/cluster");
    assert.equal((cluster.json.totals as F).nodes, 2);

    await api(n1.url, root.accessToken, "PATCH", "/v1/admin/config", { maxFrameBytes: 4096 });
    const views = await api(n2.url, root.accessToken, "GET", "/v1/admin/cluster");
    for (const n of views.json.nodes as F[]) {
      assert.equal((n.settings as F).maxFrameBytes, 4096, `node ${n.nodeId}`);
    }
    // Applied by node 2's gateway: a larger message is refused there now.
    c2.sendRaw(new Uint8Array(5000));
    assert.equal(await c2.closed, 1009);

    const out = await api(n2.url, root.accessToken, "POST", `/v1/admin/users/${u.userId}/logout`);
    assert.equal(out.json.closed, 1);
    assert.equal(await c1.closed, 1008);
  } finally {
    await n1.shutdown();
    await n2.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("metrics cover connections, frames by op, messages stored, delivery latency, dependencies and the runtime", async () => {
  const node = await testNode();
  try {
    const [a, b] = await Promise.all([signUp(node.url, uniq("a")), signUp(node.url, uniq("b"))]);
    const ca = await TestClient.connect(node.url, a.accessToken);
    const cb = await TestClient.connect(node.url, b.accessToken);
    await ca.request({
      op: "send",
      to: { user: b.userId },
      cmid: "1",
      body: { type: "text", text: "secret words" },
    });
    const sent = ca.frames.at(-1);
    assert.equal(sent?.op, "ok", JSON.stringify(sent));
    await cb.waitForMsgs(1);
    await new Promise((r) => setTimeout(r, 1100));
    const text = await (await fetch(`${node.url}/metrics`)).text();
    const value = (line: string) => {
      const m = text.split("\n").find((l) => l.startsWith(line + " "));
      assert.ok(m, `missing ${line}`);
      return Number(m.slice(line.length + 1));
    };
    assert.equal(value("im_connections"), 2);
    assert.ok(value('im_frames_in_total{op="send"}') >= 1);
    assert.ok(value('im_frames_out_total{op="msg"}') >= 2);
    assert.equal(value("im_messages_stored_total"), 1);
    assert.ok(value("im_delivery_latency_seconds_count") >= 1);
    assert.ok(value('im_dependency_seconds_count{dep="sqlite",op="append"}') >= 1);
    assert.ok(value("im_actor_activations_total") >= 1);
    assert.ok(value("im_event_loop_lag_seconds") >= 0);
    assert.ok(value("im_process_cpu_ratio") >= 0);
    assert.ok(value("im_memory_rss_bytes") > 0);
    for (
      const name of ["im_mailbox_depth", "im_placement_moves_total", "im_actor_passivations_total"]
    ) {
      value(name);
    }
    assert.equal(text.includes("secret words"), false);
    await ca.close();
    await cb.close();
  } finally {
    await node.stop();
  }
});
