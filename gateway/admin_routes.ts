/**
 * The admin API: JSON over REST under `/v1/admin/` (documented in docs/admin.md).
 *
 * Every route needs `Authorization: Bearer <accessToken>` of an account with the `admin` role
 * (401 `invalid_token` without a valid token, 403 `forbidden` without the role). Every action
 * that changes something writes an audit log entry (store table `audit_log`) before it answers;
 * the entry names the admin, the action, the target and the parameters — never a token, a
 * password or message text (a broadcast's text is recorded by its length only).
 *
 * Cluster-wide views and actions ask every live node through the transport
 * ({@link NodeControl.askAll}); an unreachable node is reported in `failedNodes`, never hangs the
 * answer past the request deadline.
 *
 * @module
 */
import { type Context, Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { BadRequestError, ImError, NotFoundError } from "../actors/errors.ts";
import { GROUP_ADMIN_INFO, type GroupAdminInfo } from "../actors/im/admin_views.ts";
import { validateRuntimeChange } from "../actors/im/cluster_config.ts";
import { groupActor, groupConvId } from "../actors/im/conversation_ids.ts";
import type { Store, UserRecord } from "../db/store.ts";
import type { Logger } from "../observability/log.ts";
import {
  KICK_REASONS,
  type NodeAnswer,
  type NodeControl,
  type NodeStats,
  type SessionInfo,
} from "./admin_control.ts";
import { errorResponse, httpError } from "./http_errors.ts";

/** What the admin routes need. */
export interface AdminRoutesDeps {
  store: Store;
  tokens: { verifyAccess(token: string): Promise<{ userId: string; device: string }> };
  control: NodeControl;
  /** Asks an actor anywhere in the cluster. */
  ask(to: string, type: string, body: unknown): Promise<unknown>;
  /** Pushes a frame to the connections of `users` on every node. */
  deliver(delivery: { frame: Record<string, unknown>; users: string[] }): void;
  logger: Logger;
  now?: () => number;
}

type Vars = { Variables: { admin: UserRecord } };

const MAX_BROADCAST_CHARS = 2000;
const MAX_MUTE_SECONDS = 365 * 86_400;

/** The admin API; mount with `app.route("/", adminRoutes(deps))`. */
export function adminRoutes(deps: AdminRoutesDeps): Hono<Vars> {
  const { store, control, logger } = deps;
  const now = deps.now ?? Date.now;
  const app = new Hono<Vars>();
  app.onError((err, c) => httpError(c, err, logger));
  app.use(
    "/v1/admin/*",
    bodyLimit({
      maxSize: 16 * 1024,
      onError: (c) => errorResponse(c, "bad_request", "Request body too large", 413),
    }),
  );

  // Authentication and the role, for every admin route.
  app.use("/v1/admin/*", async (c, next) => {
    const header = c.req.header("authorization") ?? "";
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    if (!m) throw new ImError("invalid_token", "Send Authorization: Bearer <accessToken>");
    const { userId } = await deps.tokens.verifyAccess(m[1]);
    if (control.isRevokedToken(userId, m[1])) {
      throw new ImError("invalid_token", "Invalid or expired token");
    }
    const [user, role] = await Promise.all([store.getUser(userId), store.getUserRole(userId)]);
    if (!user || role !== "admin") {
      throw new ImError("forbidden", "This needs the admin role");
    }
    c.set("admin", user);
    await next();
  });

  const audit = async (
    c: Context<Vars>,
    action: string,
    target: string,
    details: Record<string, unknown> = {},
  ) => {
    const admin = c.get("admin");
    await store.appendAudit({ ts: now(), adminId: admin.userId, action, target, details });
    logger.info("admin action", { admin: admin.userId, action, target });
  };

  const userOr404 = async (userId: string): Promise<UserRecord> => {
    const user = await store.getUser(userId);
    if (!user) throw new NotFoundError("No such user");
    return user;
  };

  const usernames = async (ids: Iterable<string>): Promise<Record<string, string>> => {
    const out: Record<string, string> = {};
    await Promise.all([...new Set(ids)].map(async (id) => {
      out[id] = (await store.getUser(id))?.username ?? "";
    }));
    return out;
  };

  const kickEverywhere = async (userId: string, reason: string): Promise<number> => {
    const answers = await control.askAll<{ closed: number }>("kick", { userId, reason });
    return answers.reduce((n, a) => n + (a.ok ? a.value.closed : 0), 0);
  };

  app.get("/v1/admin/me", (c) => {
    const admin = c.get("admin");
    return c.json({ userId: admin.userId, username: admin.username, role: "admin" });
  });

  // ---- online users ----

  app.get("/v1/admin/sessions", async (c) => {
    const answers = await control.askAll<SessionInfo[]>("sessions");
    const t = now();
    const byUser = new Map<string, (SessionInfo & { onlineMs: number })[]>();
    for (const a of answers) {
      if (!a.ok) continue;
      for (const s of a.value) {
        const list = byUser.get(s.userId) ?? [];
        list.push({ ...s, onlineMs: Math.max(0, t - s.connectedAt) });
        byUser.set(s.userId, list);
      }
    }
    const names = await usernames(byUser.keys());
    const users = [...byUser].map(([userId, sessions]) => ({
      userId,
      username: names[userId],
      muted: control.isMuted(userId),
      sessions: sessions.sort((x, y) => x.connectedAt - y.connectedAt),
    })).sort((x, y) => x.username.localeCompare(y.username));
    return c.json({ users, failedNodes: failed(answers) });
  });

  // ---- users ----

  const userView = async (user: UserRecord) => ({
    userId: user.userId,
    username: user.username,
    createdAt: user.createdAt,
    disabled: user.disabled,
    role: await store.getUserRole(user.userId),
    mutedUntil: control.state.muted[user.userId] ?? null,
  });

  app.get("/v1/admin/users", async (c) => {
    const username = c.req.query("username");
    if (!username) throw new BadRequestError("Give ?username=");
    const user = await store.getUserByUsername(username);
    if (!user) throw new NotFoundError("No such user");
    return c.json(await userView(user));
  });

  app.get("/v1/admin/users/:userId", async (c) => {
    return c.json(await userView(await userOr404(c.req.param("userId"))));
  });

  app.post("/v1/admin/users/:userId/logout", async (c) => {
    const user = await userOr404(c.req.param("userId"));
    const revokedTokens = await store.revokeUserRefreshTokens(user.userId);
    await control.change({ logout: { userId: user.userId, at: now() } });
    const closed = await kickEverywhere(user.userId, KICK_REASONS.logout);
    await audit(c, "user.logout", user.userId, { closed, revokedTokens });
    return c.json({ closed, revokedTokens });
  });

  app.post("/v1/admin/users/:userId/disable", async (c) => {
    const user = await userOr404(c.req.param("userId"));
    const body = await readJson(c);
    const disabled = body.disabled ?? true;
    if (typeof disabled !== "boolean") throw new BadRequestError("disabled must be a boolean");
    if (disabled && user.userId === c.get("admin").userId) {
      throw new BadRequestError("An admin cannot disable their own account");
    }
    await store.setUserDisabled(user.userId, disabled);
    let closed = 0;
    if (disabled) {
      await store.revokeUserRefreshTokens(user.userId);
      closed = await kickEverywhere(user.userId, KICK_REASONS.disabled);
    }
    await audit(c, disabled ? "user.disable" : "user.enable", user.userId, { closed });
    return c.json({ disabled, closed });
  });

  app.delete("/v1/admin/users/:userId", async (c) => {
    const user = await userOr404(c.req.param("userId"));
    if (user.userId === c.get("admin").userId) {
      throw new BadRequestError("An admin cannot delete their own account");
    }
    // Disabled first: a connection opened between the kick and the delete is refused too.
    await store.setUserDisabled(user.userId, true);
    const closed = await kickEverywhere(user.userId, KICK_REASONS.deleted);
    const deleted = await store.deleteUser(user.userId);
    await audit(c, "user.delete", user.userId, { username: user.username, closed });
    return c.json({ deleted, closed });
  });

  app.post("/v1/admin/users/:userId/mute", async (c) => {
    const user = await userOr404(c.req.param("userId"));
    const body = await readJson(c);
    const seconds = body.seconds ?? 3600;
    if (
      seconds !== null && (!Number.isSafeInteger(seconds) || (seconds as number) < 0 ||
        (seconds as number) > MAX_MUTE_SECONDS)
    ) {
      throw new BadRequestError(`seconds must be an integer 0..${MAX_MUTE_SECONDS} (0 unmutes)`);
    }
    const until = seconds ? now() + (seconds as number) * 1000 : null;
    await control.change({ mute: { userId: user.userId, until } });
    await audit(c, until ? "user.mute" : "user.unmute", user.userId, { seconds: seconds ?? 0 });
    return c.json({ mutedUntil: until });
  });

  app.post("/v1/admin/users/:userId/role", async (c) => {
    const user = await userOr404(c.req.param("userId"));
    const body = await readJson(c);
    if (body.role !== "admin" && body.role !== null) {
      throw new BadRequestError(`role must be "admin" or null`);
    }
    if (body.role === null && user.userId === c.get("admin").userId) {
      throw new BadRequestError("An admin cannot remove their own role");
    }
    await store.setUserRole(user.userId, body.role);
    await audit(c, body.role ? "role.grant" : "role.revoke", user.userId, { role: "admin" });
    return c.json({ role: body.role });
  });

  // ---- system messages ----

  app.post("/v1/admin/broadcast", async (c) => {
    const body = await readJson(c);
    const text = body.text;
    if (typeof text !== "string" || text.trim() === "" || text.length > MAX_BROADCAST_CHARS) {
      throw new BadRequestError(`text must be 1-${MAX_BROADCAST_CHARS} characters`);
    }
    const ts = now();
    if (body.group === undefined || body.group === null) {
      const frame = { op: "system", scope: "all", text, ts };
      const answers = await control.askAll<{ pushed: number }>("push", { frame });
      const delivered = answers.reduce((n, a) => n + (a.ok ? a.value.pushed : 0), 0);
      await audit(c, "broadcast.all", "", { chars: text.length, delivered });
      return c.json({ delivered, failedNodes: failed(answers) });
    }
    if (typeof body.group !== "string") throw new BadRequestError("group must be a group id");
    const info = await deps.ask(groupActor(body.group), GROUP_ADMIN_INFO, {}) as GroupAdminInfo;
    if (!info.exists) throw new NotFoundError("No such group");
    const users = info.members.map((m) => m.userId);
    deps.deliver({
      frame: {
        op: "system",
        scope: "group",
        group: body.group,
        conv: groupConvId(body.group),
        text,
        ts,
      },
      users,
    });
    await audit(c, "broadcast.group", body.group, { chars: text.length, members: users.length });
    return c.json({ members: users.length });
  });

  // ---- groups ----

  app.get("/v1/admin/groups", async (c) => {
    const limit = clampInt(c.req.query("limit"), 1, 100, 20);
    const after = c.req.query("after") ?? null;
    const ids = await store.listSnapshotActors("group", after ? `group/${after}` : null, limit + 1);
    const page = ids.slice(0, limit);
    const groups = await Promise.all(page.map(async (actorId) => {
      const groupId = actorId.slice("group/".length);
      const info = await deps.ask(actorId, GROUP_ADMIN_INFO, {}) as GroupAdminInfo;
      return { groupId, conv: groupConvId(groupId), ...info };
    }));
    const existing = groups.filter((g) => g.exists);
    const names = await usernames(existing.flatMap((g) => g.members.map((m) => m.userId)));
    return c.json({
      groups: existing.map(({ exists: _e, ...g }) => ({
        ...g,
        members: g.members.map((m) => ({ ...m, username: names[m.userId] ?? "" })),
      })),
      next: ids.length > limit ? page.at(-1)!.slice("group/".length) : null,
    });
  });

  // ---- cluster ----

  app.get("/v1/admin/cluster", async (c) => {
    const answers = await control.askAll<NodeStats>("stats");
    const nodes = answers.filter((a) => a.ok).map((a) => (a as { value: NodeStats }).value)
      .sort((x, y) => x.startedAt - y.startedAt);
    const sum = (f: (n: NodeStats) => number) => nodes.reduce((t, n) => t + f(n), 0);
    return c.json({
      nodes,
      failedNodes: failed(answers),
      totals: {
        nodes: nodes.length,
        connections: sum((n) => n.connections),
        actors: sum((n) => n.actors),
        mailboxDepth: sum((n) => n.mailboxDepth),
        messagesPerSec: Math.round(sum((n) => n.messagesPerSec) * 100) / 100,
      },
    });
  });

  // ---- runtime configuration ----

  const configView = () => ({
    version: control.state.version,
    overrides: control.state.runtime,
    effective: control.effectiveSettings(),
    muted: control.state.muted,
  });

  app.get("/v1/admin/config", (c) => c.json(configView()));

  app.patch("/v1/admin/config", async (c) => {
    const runtime = validateRuntimeChange(await readJson(c));
    if (Object.keys(runtime).length === 0) throw new BadRequestError("Nothing to change");
    await control.change({ runtime });
    await audit(c, "config.update", "cluster", { runtime });
    return c.json(configView());
  });

  // ---- audit log ----

  app.get("/v1/admin/audit", async (c) => {
    const limit = clampInt(c.req.query("limit"), 1, 500, 50);
    const beforeRaw = c.req.query("before");
    const before = beforeRaw ? clampInt(beforeRaw, 1, Number.MAX_SAFE_INTEGER, 0) : null;
    const entries = await store.listAudit(before, limit);
    const names = await usernames(entries.map((e) => e.adminId));
    return c.json({
      entries: entries.map((e) => ({ ...e, adminUsername: names[e.adminId] ?? "" })),
      next: entries.length === limit ? entries.at(-1)!.id : null,
    });
  });

  return app;
}

function failed(answers: NodeAnswer<unknown>[]) {
  return answers.filter((a) => !a.ok).map((a) => ({
    node: a.node,
    error: (a as { error: { code: string; message: string } }).error,
  }));
}

function clampInt(raw: string | undefined, min: number, max: number, def: number): number {
  if (raw === undefined || raw === "") return def;
  if (!/^\d+$/.test(raw)) throw new BadRequestError(`Not a non-negative integer: "${raw}"`);
  return Math.min(max, Math.max(min, Number(raw)));
}

async function readJson(c: Context): Promise<Record<string, unknown>> {
  const text = await c.req.text();
  if (text.trim() === "") return {};
  const type = c.req.header("content-type") ?? "";
  if (type.split(";")[0].trim().toLowerCase() !== "application/json") {
    throw new BadRequestError("Content-Type must be application/json");
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new BadRequestError("Body is not valid JSON");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new BadRequestError("Body must be a JSON object");
  }
  return value as Record<string, unknown>;
}
