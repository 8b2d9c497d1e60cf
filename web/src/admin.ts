/// <reference no-default-lib="true" />
/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
/// <reference lib="esnext" />
/**
 * The admin console, served at `/admin`: plain DOM over the admin API (`/v1/admin/...`, see
 * docs/admin.md). Log in with an account that has the admin role (`deno task admin:grant`).
 *
 * Sections: online users (IP, login time, online for, devices, node) with force logout, mute,
 * disable and delete; find a user by name; broadcast a system message to everyone or a group;
 * groups with their members; a live cluster view refreshed every 2 s (nodes, connections, actors,
 * messages/s, CPU, memory, event-loop lag); runtime configuration; the audit log.
 *
 * @module
 */
import { ImClient, ImClientError } from "../../sdk/mod.ts";
import { bytes, clock, duration, h, replace } from "./dom.ts";

const client = new ImClient({
  baseUrl: location.origin,
  storage: sessionStorage,
  storageKey: "im.admin.",
});
const root = document.getElementById("app")!;
const notice = h("p", { class: "notice", role: "alert" });
let timer: ReturnType<typeof setInterval> | undefined;

type Json = Record<string, unknown>;

async function api(method: string, path: string, body?: unknown): Promise<Json> {
  const call = () =>
    fetch(path, {
      method,
      headers: {
        authorization: `Bearer ${client.session?.accessToken ?? ""}`,
        ...(body !== undefined ? { "content-type": "application/json" } : {}),
      },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
  let res = await call();
  if (res.status === 401 && client.session) {
    await client.refresh();
    res = await call();
  }
  const json = await res.json().catch(() => ({}));
  if (!res.ok) {
    const e = (json.error ?? {}) as { code?: string; message?: string };
    throw new ImClientError(e.code ?? "http_error", e.message ?? `HTTP ${res.status}`, res.status);
  }
  return json;
}

// ---------------------------------------------------------------- login

function showLogin(message = ""): void {
  clearInterval(timer);
  notice.textContent = message;
  const username = h("input", { id: "username", autocomplete: "username", required: true });
  const password = h("input", {
    id: "password",
    type: "password",
    autocomplete: "current-password",
    required: true,
  });
  replace(
    root,
    h(
      "form",
      {
        class: "auth",
        "aria-label": "Admin sign in",
        onsubmit: async (ev: Event) => {
          ev.preventDefault();
          try {
            await client.login(username.value.trim(), password.value);
            await api("GET", "/v1/admin/me");
            showConsole();
          } catch (err) {
            notice.textContent = err instanceof ImClientError && err.code === "forbidden"
              ? "This account does not have the admin role."
              : (err as Error).message;
          }
        },
      },
      h("h1", null, "IM admin console"),
      h("label", { for: "username" }, "Username"),
      username,
      h("label", { for: "password" }, "Password"),
      password,
      h("button", { type: "submit" }, "Log in"),
      notice,
    ),
  );
}

// ---------------------------------------------------------------- console

const sections = {
  online: h("section", { "aria-labelledby": "h-online", class: "wide" }),
  cluster: h("section", { "aria-labelledby": "h-cluster", class: "wide" }),
  user: h("section", { "aria-labelledby": "h-user" }),
  broadcast: h("section", { "aria-labelledby": "h-broadcast" }),
  groups: h("section", { "aria-labelledby": "h-groups" }),
  config: h("section", { "aria-labelledby": "h-config" }),
  audit: h("section", { "aria-labelledby": "h-audit" }),
};
const flash = h("p", { class: "flash-inline", role: "status", "aria-live": "polite" });

function say(text: string): void {
  flash.textContent = text;
}

async function act(what: string, fn: () => Promise<unknown>): Promise<void> {
  try {
    await fn();
    say(`${what}: done.`);
  } catch (err) {
    say(`${what}: ${(err as Error).message}`);
  }
  refreshOnline();
  refreshAudit();
}

function showConsole(): void {
  replace(
    root,
    h(
      "header",
      { class: "top" },
      h("strong", null, "IM admin console"),
      flash,
      h("button", {
        type: "button",
        class: "secondary",
        onclick: async () => {
          await client.logout();
          showLogin("Logged out.");
        },
      }, "Log out"),
    ),
    h("main", { class: "console" }, ...Object.values(sections)),
  );
  renderUserTools();
  renderBroadcast();
  refreshAll();
  clearInterval(timer);
  timer = setInterval(() => {
    refreshCluster();
    refreshOnline();
  }, 2000);
}

function refreshAll(): void {
  refreshOnline();
  refreshCluster();
  refreshGroups();
  refreshConfig();
  refreshAudit();
}

function table(caption: string, head: string[], rows: (Node | string)[][]): HTMLTableElement {
  return h(
    "table",
    null,
    h("caption", { class: "visually-hidden" }, caption),
    h("thead", null, h("tr", null, ...head.map((x) => h("th", { scope: "col" }, x)))),
    h(
      "tbody",
      null,
      ...rows.map((r) => h("tr", null, ...r.map((cell) => h("td", null, cell)))),
    ),
  );
}

function userActions(userId: string, username: string): HTMLElement {
  const base = `/v1/admin/users/${encodeURIComponent(userId)}`;
  return h(
    "div",
    { class: "actions" },
    h("button", {
      type: "button",
      "aria-label": `Force logout ${username}`,
      onclick: () => act(`Force logout ${username}`, () => api("POST", `${base}/logout`)),
    }, "Force logout"),
    h("button", {
      type: "button",
      class: "secondary",
      "aria-label": `Mute ${username} for 1 hour`,
      onclick: () => act(`Mute ${username}`, () => api("POST", `${base}/mute`, { seconds: 3600 })),
    }, "Mute 1 h"),
    h("button", {
      type: "button",
      class: "secondary",
      "aria-label": `Unmute ${username}`,
      onclick: () => act(`Unmute ${username}`, () => api("POST", `${base}/mute`, { seconds: 0 })),
    }, "Unmute"),
    h("button", {
      type: "button",
      class: "secondary",
      "aria-label": `Disable ${username}`,
      onclick: () =>
        act(`Disable ${username}`, () => api("POST", `${base}/disable`, { disabled: true })),
    }, "Disable"),
    h("button", {
      type: "button",
      class: "danger",
      "aria-label": `Delete ${username}`,
      onclick: () => {
        if (confirm(`Delete the account ${username}? This cannot be undone.`)) {
          act(`Delete ${username}`, () => api("DELETE", base));
        }
      },
    }, "Delete"),
  );
}

async function refreshOnline(): Promise<void> {
  try {
    const res = await api("GET", "/v1/admin/sessions");
    const users = res.users as Json[];
    const rows = users.map((u) => {
      const sessions = u.sessions as Json[];
      const first = sessions[0];
      return [
        `${u.username}${u.muted ? " (muted)" : ""}`,
        [...new Set(sessions.map((s) => String(s.remoteAddr)))].join(", "),
        new Date(Number(first.connectedAt)).toLocaleString(),
        duration(Math.max(...sessions.map((s) => Number(s.onlineMs)))),
        sessions.map((s) => `${s.device} (${String(s.subprotocol).replace("im.v1.", "")})`).join(
          ", ",
        ),
        [...new Set(sessions.map((s) => String(s.node)))].join(", "),
        userActions(String(u.userId), String(u.username)),
      ];
    });
    replace(
      sections.online,
      h("h2", { id: "h-online" }, `Online users (${users.length})`),
      users.length
        ? table("Online users", [
          "User",
          "Login IP",
          "Login time",
          "Online for",
          "Devices",
          "Node",
          "Actions",
        ], rows)
        : h("p", null, "Nobody is online."),
      failedNote(res),
    );
  } catch (err) {
    onError(err);
  }
}

function failedNote(res: Json): HTMLElement | null {
  const failed = (res.failedNodes ?? []) as Json[];
  return failed.length
    ? h("p", { class: "warn" }, `No answer from ${failed.map((f) => f.node).join(", ")}`)
    : null;
}

function renderUserTools(): void {
  const name = h("input", { id: "find-user", autocomplete: "off" });
  const out = h("div");
  replace(
    sections.user,
    h("h2", { id: "h-user" }, "Find a user"),
    h(
      "form",
      {
        class: "row",
        onsubmit: async (ev: Event) => {
          ev.preventDefault();
          try {
            const u = await api(
              "GET",
              `/v1/admin/users?username=${encodeURIComponent(name.value.trim())}`,
            );
            replace(
              out,
              h(
                "p",
                null,
                `${u.username} (${u.userId}) — created ${
                  new Date(Number(u.createdAt)).toLocaleString()
                }`,
                u.disabled ? " — disabled" : "",
                u.role ? ` — ${u.role}` : "",
                u.mutedUntil
                  ? ` — muted until ${new Date(Number(u.mutedUntil)).toLocaleString()}`
                  : "",
              ),
              userActions(String(u.userId), String(u.username)),
              u.disabled
                ? h("button", {
                  type: "button",
                  onclick: () =>
                    act(`Enable ${u.username}`, () =>
                      api("POST", `/v1/admin/users/${u.userId}/disable`, { disabled: false })),
                }, "Enable")
                : null,
            );
          } catch (err) {
            replace(out, h("p", null, (err as Error).message));
          }
        },
      },
      h("label", { for: "find-user" }, "Username to find"),
      name,
      h("button", { type: "submit" }, "Find"),
    ),
    out,
  );
}

function renderBroadcast(): void {
  const text = h("textarea", { id: "broadcast-text", rows: 2, maxlength: 2000 });
  const group = h("input", { id: "broadcast-group", placeholder: "everyone", autocomplete: "off" });
  replace(
    sections.broadcast,
    h("h2", { id: "h-broadcast" }, "Broadcast a system message"),
    h(
      "form",
      {
        onsubmit: (ev: Event) => {
          ev.preventDefault();
          const body: Json = { text: text.value };
          if (group.value.trim()) body.group = group.value.trim();
          act("Broadcast", async () => {
            await api("POST", "/v1/admin/broadcast", body);
            text.value = "";
          });
        },
      },
      h("label", { for: "broadcast-text" }, "Announcement"),
      text,
      h("label", { for: "broadcast-group" }, "Group id (empty: everyone)"),
      group,
      h("button", { type: "submit" }, "Send broadcast"),
    ),
  );
}

async function refreshCluster(): Promise<void> {
  try {
    const res = await api("GET", "/v1/admin/cluster");
    const nodes = res.nodes as Json[];
    const totals = res.totals as Json;
    replace(
      sections.cluster,
      h("h2", { id: "h-cluster" }, "Cluster (live)"),
      h(
        "p",
        { class: "totals" },
        `${totals.nodes} node(s) · ${totals.connections} connections · ${totals.actors} actors · ` +
          `${totals.messagesPerSec} messages/s · mailbox depth ${totals.mailboxDepth}`,
      ),
      table(
        "Nodes",
        [
          "Node",
          "Address",
          "Up since",
          "Connections",
          "Actors",
          "Messages/s",
          "CPU",
          "Memory",
          "Event-loop lag",
          "Mailbox",
        ],
        nodes.map((n) => [
          String(n.nodeId),
          String(n.address),
          clock(Number(n.startedAt)),
          String(n.connections),
          String(n.actors),
          String(n.messagesPerSec),
          `${Math.round(Number(n.cpu) * 100)} %`,
          bytes(Number(n.rssBytes)),
          `${n.eventLoopLagMs} ms`,
          String(n.mailboxDepth),
        ]),
      ),
      failedNote(res),
    );
  } catch (err) {
    onError(err);
  }
}

async function refreshGroups(): Promise<void> {
  try {
    const res = await api("GET", "/v1/admin/groups?limit=50");
    const groups = res.groups as Json[];
    replace(
      sections.groups,
      h("h2", { id: "h-groups" }, `Groups (${groups.length}${res.next ? "+" : ""})`),
      groups.length
        ? table(
          "Groups",
          ["Group", "Id", "Owner", "Members"],
          groups.map((g) => {
            const members = g.members as Json[];
            return [
              String(g.name),
              String(g.groupId),
              String(members.find((m) => m.userId === g.owner)?.username ?? g.owner),
              members.map((m) =>
                `${m.username || m.userId}${m.role !== "member" ? ` (${m.role})` : ""}`
              )
                .join(", "),
            ];
          }),
        )
        : h("p", null, "No groups yet."),
      h(
        "button",
        { type: "button", class: "secondary", onclick: () => refreshGroups() },
        "Refresh groups",
      ),
    );
  } catch (err) {
    onError(err);
  }
}

const CONFIG_FIELDS: [key: string, label: string][] = [
  ["rateLimitPerSec", "Requests per connection per second"],
  ["userRateLimitPerSec", "Requests per user per second"],
  ["messageRatePerSec", "Messages per connection per second"],
  ["userMessageRatePerSec", "Messages per user per second"],
  ["presenceRatePerSec", "Presence updates per connection per second"],
  ["userPresenceRatePerSec", "Presence updates per user per second"],
  ["maxFrameBytes", "Largest WebSocket message (bytes)"],
  ["requestTimeoutMs", "Request timeout (ms)"],
  ["groupMaxMembers", "Group member limit"],
  ["maxSocketBufferBytes", "Socket buffer limit (bytes)"],
];

async function refreshConfig(): Promise<void> {
  try {
    const res = await api("GET", "/v1/admin/config");
    const eff = res.effective as Json;
    const over = res.overrides as Json;
    const inputs = new Map<string, HTMLInputElement>();
    const level = h(
      "select",
      { id: "cfg-logLevel" },
      ...["debug", "info", "warn", "error"].map((l) =>
        h("option", { value: l, selected: eff.logLevel === l }, l)
      ),
    );
    const form = h(
      "form",
      {
        class: "config",
        onsubmit: (ev: Event) => {
          ev.preventDefault();
          const change: Json = {};
          for (const [k, input] of inputs) {
            const v = Number(input.value);
            if (input.value !== "" && v !== eff[k]) change[k] = v;
          }
          if (level.value !== eff.logLevel) change.logLevel = level.value;
          if (Object.keys(change).length === 0) {
            say("Nothing changed.");
            return;
          }
          act("Configuration", async () => {
            await api("PATCH", "/v1/admin/config", change);
            await refreshConfig();
          });
        },
      },
      ...CONFIG_FIELDS.map(([k, label]) => {
        const input = h("input", { id: `cfg-${k}`, type: "number", min: 1, value: String(eff[k]) });
        inputs.set(k, input);
        return h(
          "div",
          { class: "field" },
          h("label", { for: `cfg-${k}` }, label),
          input,
          k in over ? h("span", { class: "tag" }, "changed") : null,
        );
      }),
      h("div", { class: "field" }, h("label", { for: "cfg-logLevel" }, "Log level"), level),
      h("button", { type: "submit" }, "Save configuration"),
    );
    replace(
      sections.config,
      h("h2", { id: "h-config" }, `Runtime configuration (version ${res.version})`),
      h("p", null, "Applied on every node at once, without a restart."),
      form,
    );
  } catch (err) {
    onError(err);
  }
}

async function refreshAudit(): Promise<void> {
  try {
    const res = await api("GET", "/v1/admin/audit?limit=30");
    const entries = res.entries as Json[];
    replace(
      sections.audit,
      h("h2", { id: "h-audit" }, "Audit log"),
      entries.length
        ? table(
          "Audit log",
          ["Time", "Admin", "Action", "Target", "Details"],
          entries.map((e) => [
            new Date(Number(e.ts)).toLocaleString(),
            String(e.adminUsername || e.adminId),
            String(e.action),
            String(e.target),
            JSON.stringify(e.details),
          ]),
        )
        : h("p", null, "No admin actions yet."),
    );
  } catch (err) {
    onError(err);
  }
}

function onError(err: unknown): void {
  if (err instanceof ImClientError && (err.code === "forbidden" || err.status === 401)) {
    showLogin(
      err.code === "forbidden"
        ? "This account does not have the admin role."
        : "Please log in again.",
    );
    return;
  }
  say((err as Error).message);
}

client.onSignedOut(() => showLogin("Your session ended. Please log in again."));

if (client.session) {
  api("GET", "/v1/admin/me").then(() => showConsole(), () => showLogin());
} else showLogin();
