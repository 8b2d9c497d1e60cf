/// <reference no-default-lib="true" />
/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
/// <reference lib="esnext" />
/**
 * The web chat client, built on the SDK (sdk/mod.ts) with plain DOM. Served by the gateway at
 * `/` from `web/dist/` (`deno task build:web`).
 *
 * Sign up / log in; a conversation list with unread counts (the `conversations` op); direct and
 * group chats; create a group; find people and add friends; text and image messages; history
 * scroll-back; read receipts; typing; presence; reconnects by itself (the SDK), and returns to
 * the login form with a notice when an admin signs the user out.
 *
 * Accessible names the tests and screen readers rely on: fields "Username", "Password",
 * "Message", "Find people", "Group name"; buttons "Sign up", "Log in", "Send"; the message list
 * is `role="log"`; a direct conversation in the list shows the other person's username.
 *
 * @module
 */
import {
  type ConnectionState,
  ImClient,
  ImClientError,
  type MessageBody,
  type MsgFrame,
  type Recipient,
  type SignedOutReason,
} from "../../sdk/mod.ts";
import { clock, h, replace } from "./dom.ts";
import {
  type GroupChanges,
  type GroupInfo,
  groupSettingsEl,
  joinGroupForm,
  type JoinRequest,
  joinRequestsEl,
} from "./group_admin.ts";

// ---------------------------------------------------------------- state

interface ChatMessage {
  mid: string;
  cseq: number;
  from: string;
  ts: number;
  body: MessageBody;
  /** Set while the message is in the send queue. */
  pending?: string;
  failed?: boolean;
  /** Totals per emoji, ordered by each emoji's earliest reaction (protocol.md). */
  reactions?: Reaction[];
}

interface Reaction {
  emoji: string;
  count: number;
  users: string[];
}

/** The reaction the message toolbar offers at once (any emoji works over the protocol). */
const QUICK_REACTION = "👍";
/** The others the toolbar's "More reactions" opens. */
const MORE_REACTIONS = ["❤️", "😂", "😮", "😢", "🙏", "🎉"];

interface Conv {
  conv: string;
  peer: Recipient;
  unread: number;
  /** My read position (cseq). */
  read: number;
  /** Highest cseq another participant has read (direct chats: the peer). */
  peerRead: number;
  /** Highest cseq known (for unread accounting and replays). */
  lastCseq: number;
  last: ChatMessage | null;
  messages: Map<string, ChatMessage>;
  oldest: number | null;
  more: boolean;
  loaded: boolean;
  typing: Map<string, ReturnType<typeof setTimeout>>;
}

interface Person {
  userId: string;
  username: string;
  displayName?: string;
}

const client = new ImClient({
  baseUrl: location.origin,
  device: deviceId(),
  storage: sessionStorage,
});

const state = {
  me: null as Person | null,
  convs: new Map<string, Conv>(),
  people: new Map<string, Person>(),
  groups: new Map<string, { name: string }>(),
  friends: new Map<string, { since: number }>(),
  incoming: new Map<string, { message: string; ts: number }>(),
  outgoing: new Set<string>(),
  presence: new Map<string, { online: boolean; lastSeen: number | null }>(),
  active: null as string | null,
  ready: false,
  buffered: [] as MsgFrame[],
  lookups: new Map<string, Promise<void>>(),
  media: new Map<string, Promise<string>>(),
  /** The message being edited and its draft: kept across re-renders (new messages arriving). */
  editing: null as { conv: string; mid: string; draft: string } | null,
};

function deviceId(): string {
  let id = localStorage.getItem("im.device");
  if (!id) {
    id = `web-${crypto.randomUUID().slice(0, 12)}`;
    localStorage.setItem("im.device", id);
  }
  return id;
}

// ---------------------------------------------------------------- layout

const root = document.getElementById("app")!;
const notice = h("p", { class: "notice", role: "alert", id: "notice" });
const status = h("span", { class: "status", role: "status", "aria-live": "polite" });
const announcement = h("div", { class: "announcement", role: "status", hidden: true });
const convList = h("ul", { class: "conv-list" });
const friendList = h("ul", { class: "friend-list" });
const requestList = h("ul", { class: "request-list" });
const searchResults = h("ul", { class: "search-results", "aria-label": "Search results" });
const chat = h("section", { class: "chat", "aria-label": "Chat" });

function showAuth(message = ""): void {
  state.ready = false;
  notice.textContent = message;
  const username = h("input", {
    id: "username",
    name: "username",
    autocomplete: "username",
    required: true,
    minlength: 3,
    maxlength: 32,
  });
  const password = h("input", {
    id: "password",
    name: "password",
    type: "password",
    autocomplete: "current-password",
    required: true,
    minlength: 8,
  });
  const act = (mode: "signup" | "login") => async (ev: Event) => {
    ev.preventDefault();
    if (!username.value || !password.value) {
      notice.textContent = "Enter a username and a password.";
      return;
    }
    notice.textContent = mode === "signup" ? "Creating your account…" : "Logging in…";
    try {
      if (mode === "signup") await client.signUp(username.value.trim(), password.value);
      else await client.login(username.value.trim(), password.value);
      notice.textContent = "";
      await start(username.value.trim());
    } catch (err) {
      notice.textContent = describe(err);
    }
  };
  const form = h(
    "form",
    { class: "auth", "aria-label": "Sign in", onsubmit: act("login") },
    h("h1", null, "IM"),
    h("label", { for: "username" }, "Username"),
    username,
    h("label", { for: "password" }, "Password"),
    password,
    h(
      "div",
      { class: "row" },
      h("button", { type: "submit" }, "Log in"),
      h("button", { type: "button", class: "secondary", onclick: act("signup") }, "Sign up"),
    ),
    notice,
  );
  replace(root, form);
  username.focus();
}

function showMain(): void {
  const search = h("input", {
    id: "search",
    type: "search",
    placeholder: "username",
    autocomplete: "off",
  });
  const groupForm = newGroupForm();
  replace(
    root,
    h(
      "header",
      { class: "top" },
      h("strong", { class: "me" }, state.me?.username ?? ""),
      status,
      h("button", { type: "button", class: "secondary", onclick: () => logout() }, "Log out"),
    ),
    announcement,
    h(
      "div",
      { class: "main" },
      h(
        "aside",
        { class: "side" },
        h(
          "form",
          {
            class: "search",
            role: "search",
            onsubmit: (ev: Event) => {
              ev.preventDefault();
              findPeople(search.value.trim());
            },
          },
          h("label", { for: "search" }, "Find people"),
          h("div", { class: "row" }, search, h("button", { type: "submit" }, "Search")),
        ),
        searchResults,
        h("h2", null, "Friend requests"),
        requestList,
        h("h2", null, "Friends"),
        friendList,
        groupForm,
        joinGroupForm(joinGroup),
        h("h2", { id: "convs-title" }, "Conversations"),
        h("nav", { "aria-labelledby": "convs-title" }, convList),
      ),
      chat,
    ),
  );
  renderConvList();
  renderFriends();
  renderChat();
}

function newGroupForm(): HTMLElement {
  const name = h("input", { id: "group-name", maxlength: 100, required: true });
  const picks = h("fieldset", { class: "picks" }, h("legend", null, "Members"));
  const details = h(
    "details",
    {
      class: "new-group",
      ontoggle: () => {
        replace(picks, h("legend", null, "Members"));
        for (const id of state.friends.keys()) {
          const boxId = `pick-${id}`;
          picks.append(
            h(
              "div",
              { class: "pick" },
              h("input", { type: "checkbox", id: boxId, value: id }),
              h("label", { for: boxId }, nameOf(id)),
            ),
          );
        }
        if (state.friends.size === 0) picks.append(h("p", null, "Add friends to invite them."));
      },
    },
    h("summary", null, "New group"),
    h(
      "form",
      {
        onsubmit: async (ev: Event) => {
          ev.preventDefault();
          const members = [...picks.querySelectorAll<HTMLInputElement>("input:checked")].map(
            (i) => i.value,
          );
          try {
            const g = await client.createGroup(name.value.trim(), members);
            state.groups.set(g.groupId, { name: name.value.trim() });
            const c = ensureConv(g.conv, { group: g.groupId });
            c.loaded = true;
            name.value = "";
            details.open = false;
            openConv(c.conv);
          } catch (err) {
            flash(describe(err));
          }
        },
      },
      h("label", { for: "group-name" }, "Group name"),
      name,
      picks,
      h("button", { type: "submit" }, "Create group"),
    ),
  );
  return details;
}

/**
 * Asks to join `group` (sidebar form): an open group is joined and opened at once, a group that
 * approves requests gets one (its admins answer; the `member.joined` message or a
 * `group.join_rejected` push tells the outcome). True when the request went through.
 */
async function joinGroup(group: string, message: string): Promise<boolean> {
  if (!group) return false;
  try {
    const r = await client.request("group.join", { group, ...(message ? { message } : {}) });
    if (r.status === "joined") {
      const c = ensureConv(`g:${group}`, { group });
      await titleLookup(c);
      openConv(c.conv);
    } else flash("Request sent: an admin of the group will answer.");
    return true;
  } catch (err) {
    flash(
      err instanceof ImClientError && err.code === "not_found" ? "No such group." : describe(err),
    );
    return false;
  }
}

// ---------------------------------------------------------------- session

async function start(username?: string): Promise<void> {
  state.convs.clear();
  state.active = null;
  state.ready = false;
  state.buffered = [];
  const userId = client.userId!;
  state.me = { userId, username: username ?? "" };
  showMain();
  status.textContent = "Connecting…";
  try {
    await client.connect();
  } catch (err) {
    showAuth(describe(err));
    return;
  }
  await Promise.all([
    lookup(userId).then(() => {
      state.me = state.people.get(userId) ?? state.me;
      const el = root.querySelector(".me");
      if (el) el.textContent = state.me!.username;
    }),
    loadConversations(),
    loadFriends(),
  ]);
  state.ready = true;
  for (const m of state.buffered.splice(0)) onMsg(m);
  renderConvList();
}

async function logout(): Promise<void> {
  await client.logout();
  showAuth("You are logged out.");
}

client.onState((s: ConnectionState) => {
  status.textContent = s === "open"
    ? "Online"
    : s === "reconnecting"
    ? "Reconnecting…"
    : s === "connecting"
    ? "Connecting…"
    : "Offline";
  status.dataset.state = s;
});

client.onSignedOut((reason: SignedOutReason) => {
  const messages: Record<SignedOutReason, string> = {
    forced_logout: "You were signed out by an administrator.",
    account_disabled: "Your account was disabled by an administrator.",
    account_deleted: "Your account was deleted by an administrator.",
    invalid_token: "Your session has expired. Please log in again.",
    logout: "You are logged out.",
  };
  showAuth(messages[reason]);
});

// ---------------------------------------------------------------- data loading

async function loadConversations(): Promise<void> {
  try {
    const ok = await client.request("conversations", { limit: 200 });
    for (const c of ok.convs as Record<string, unknown>[]) {
      const peer = (c.group ? { group: c.group } : { user: c.user }) as Recipient;
      const conv = ensureConv(c.conv as string, peer);
      conv.unread = Number(c.unread ?? 0);
      conv.read = Number(c.read ?? 0);
      const last = c.last as MsgFrame | null;
      if (last) {
        conv.last = toMessage(last);
        conv.lastCseq = Math.max(conv.lastCseq, last.cseq);
      }
    }
  } catch (err) {
    // Without the conversations op the list is built from synced messages.
    if (!(err instanceof ImClientError && err.code === "bad_request")) flash(describe(err));
  }
  await Promise.all([...state.convs.values()].map(titleLookup));
}

async function loadFriends(): Promise<void> {
  try {
    const [friends, requests] = await Promise.all([
      client.request("friend.list", { limit: 500 }),
      client.request("friend.requests"),
    ]);
    for (const f of friends.friends as (Person & { since: number })[]) {
      state.people.set(f.userId, f);
      state.friends.set(f.userId, { since: f.since });
    }
    for (const r of requests.incoming as (Person & { message: string; ts: number })[]) {
      state.people.set(r.userId, r);
      state.incoming.set(r.userId, { message: r.message, ts: r.ts });
    }
    for (const r of requests.outgoing as Person[]) {
      state.people.set(r.userId, r);
      state.outgoing.add(r.userId);
    }
    await watchPresence([...state.friends.keys()]);
  } catch (err) {
    if (!(err instanceof ImClientError && err.code === "bad_request")) flash(describe(err));
  }
  renderFriends();
}

async function watchPresence(userIds: string[]): Promise<void> {
  if (userIds.length === 0) return;
  try {
    const ok = await client.request("presence.subscribe", { userIds: userIds.slice(0, 100) });
    const list = (ok.users ?? ok.presence ?? []) as Array<
      { userId: string; online: boolean; lastSeen: number | null }
    >;
    for (const p of list) state.presence.set(p.userId, p);
    renderFriends();
    renderChatHeader();
  } catch {
    // Presence is a nicety: the chat works without it.
  }
}

/** Loads a user's profile once (username for the lists). */
function lookup(userId: string): Promise<void> {
  if (state.people.has(userId) && state.people.get(userId)!.username) return Promise.resolve();
  let p = state.lookups.get(userId);
  if (!p) {
    p = client.request("profile.get", { userId }).then(
      (ok) => {
        state.people.set(userId, {
          userId,
          username: ok.username as string,
          displayName: ok.displayName as string,
        });
      },
      () => {
        state.lookups.delete(userId);
      },
    );
    state.lookups.set(userId, p);
  }
  return p;
}

async function titleLookup(c: Conv): Promise<void> {
  if ("user" in c.peer) await lookup(c.peer.user);
  else if (!state.groups.has(c.peer.group)) {
    try {
      const info = await client.request("group.info", { group: c.peer.group });
      state.groups.set(c.peer.group, { name: info.name as string });
    } catch {
      state.groups.set(c.peer.group, { name: "Group" });
    }
  }
}

function nameOf(userId: string): string {
  if (userId === state.me?.userId) return state.me.username || "me";
  return state.people.get(userId)?.username || userId;
}

function titleOf(c: Conv): string {
  if ("user" in c.peer) return nameOf(c.peer.user);
  return state.groups.get(c.peer.group)?.name ?? "Group";
}

// ---------------------------------------------------------------- conversations

function ensureConv(conv: string, peer?: Recipient): Conv {
  let c = state.convs.get(conv);
  if (!c) {
    c = {
      conv,
      peer: peer ?? peerOf(conv),
      unread: 0,
      read: 0,
      peerRead: 0,
      lastCseq: 0,
      last: null,
      messages: new Map(),
      oldest: null,
      more: true,
      loaded: false,
      typing: new Map(),
    };
    state.convs.set(conv, c);
  }
  return c;
}

function peerOf(conv: string): Recipient {
  if (conv.startsWith("g:")) return { group: conv.slice(2) };
  const [, a, b] = conv.split(":");
  return { user: a === state.me?.userId ? b : a };
}

function directConv(userId: string): string {
  const me = state.me!.userId;
  return me <= userId ? `d:${me}:${userId}` : `d:${userId}:${me}`;
}

function toMessage(m: MsgFrame): ChatMessage {
  const msg: ChatMessage = { mid: m.mid, cseq: m.cseq, from: m.from, ts: m.ts, body: m.body };
  const reactions = (m as { reactions?: unknown }).reactions;
  if (Array.isArray(reactions)) msg.reactions = reactions as Reaction[];
  return msg;
}

function key(m: ChatMessage): string {
  return m.pending ? `p:${m.pending}` : `c:${m.cseq}`;
}

function renderConvList(): void {
  const convs = [...state.convs.values()].sort((a, b) =>
    (b.last?.ts ?? 0) - (a.last?.ts ?? 0) || a.conv.localeCompare(b.conv)
  );
  replace(
    convList,
    ...convs.map((c) => {
      const title = titleOf(c);
      return h(
        "li",
        null,
        h(
          "button",
          {
            type: "button",
            class: `conv${c.conv === state.active ? " active" : ""}`,
            "aria-current": c.conv === state.active ? "true" : null,
            onclick: () => openConv(c.conv),
          },
          h("span", { class: "title" }, title),
          c.unread > 0
            ? h("span", { class: "badge", "aria-label": `${c.unread} unread` }, String(c.unread))
            : null,
          h("span", { class: "preview" }, c.last ? preview(c.last) : ""),
        ),
      );
    }),
  );
  if (convs.length === 0) convList.append(h("li", { class: "empty" }, "No conversations yet."));
}

function preview(m: ChatMessage): string {
  const who = m.from === state.me?.userId ? "You: " : "";
  switch (m.body.type) {
    case "text":
      return who + String(m.body.text ?? "").slice(0, 60);
    case "image":
      return `${who}[image]`;
    case "system":
      return "[group update]";
    default:
      return `${who}[${m.body.type}]`;
  }
}

async function openConv(conv: string): Promise<void> {
  const c = ensureConv(conv);
  state.active = conv;
  renderConvList();
  renderChat();
  await titleLookup(c);
  renderChatHeader();
  renderConvList();
  if (!c.loaded) await loadOlder(c);
  if ("user" in c.peer) {
    watchPresence([c.peer.user]);
    refreshPeerRead(c);
  }
  markRead(c);
}

async function loadOlder(c: Conv): Promise<void> {
  if (!c.more && c.loaded) return;
  try {
    const page = await client.history(c.conv, {
      limit: 30,
      ...(c.oldest !== null ? { before: c.oldest } : {}),
    });
    for (const m of page.messages) addMessage(c, toMessage(m));
    c.more = page.more;
    c.loaded = true;
    const list = chat.querySelector<HTMLElement>(".messages");
    const before = list ? list.scrollHeight - list.scrollTop : 0;
    if (state.active === c.conv) renderMessages(c, false);
    if (list && c.oldest !== null) list.scrollTop = list.scrollHeight - before;
  } catch (err) {
    if (err instanceof ImClientError && err.code === "not_member") {
      c.loaded = true;
      c.more = false;
    } else flash(describe(err));
  }
}

function addMessage(c: Conv, m: ChatMessage): void {
  c.messages.set(key(m), m);
  if (!m.pending) {
    c.oldest = c.oldest === null ? m.cseq : Math.min(c.oldest, m.cseq);
    if (!c.last || m.cseq >= c.last.cseq) c.last = m;
  }
}

async function refreshPeerRead(c: Conv): Promise<void> {
  const mine = [...c.messages.values()].filter((m) => m.from === state.me?.userId && !m.pending);
  const latest = mine.sort((a, b) => b.cseq - a.cseq)[0];
  if (!latest) return;
  try {
    const ok = await client.request("receipts", { conv: c.conv, cseq: latest.cseq });
    if (Number(ok.count ?? 0) > 0) {
      c.peerRead = Math.max(c.peerRead, latest.cseq);
      if (state.active === c.conv) updateStatuses(c);
    }
  } catch {
    // Receipts are optional information.
  }
}

/** Tells the server this conversation is read up to its latest message (when visible). */
function markRead(c: Conv): void {
  if (state.active !== c.conv || document.visibilityState !== "visible") return;
  const latest = Math.max(c.lastCseq, c.last?.cseq ?? 0);
  c.unread = 0;
  renderConvList();
  if (latest > c.read) {
    c.read = latest;
    client.request("read", { conv: c.conv, cseq: latest }).catch(() => {
      c.read = 0; // try again next time
    });
  }
}

document.addEventListener("visibilitychange", () => {
  const c = state.active ? state.convs.get(state.active) : null;
  if (c) markRead(c);
});

// ---------------------------------------------------------------- chat view

function renderChat(): void {
  const c = state.active ? state.convs.get(state.active) : null;
  if (!c) {
    replace(
      chat,
      h("p", { class: "placeholder" }, "Pick a conversation, or find people to chat with."),
    );
    return;
  }
  const text = h("textarea", {
    id: "message",
    rows: 2,
    maxlength: 4000,
    placeholder: "Write a message",
    onkeydown: (ev: KeyboardEvent) => {
      if (ev.key === "Enter" && !ev.shiftKey) {
        ev.preventDefault();
        form.requestSubmit();
      }
    },
    oninput: () => typing(c, text.value.length > 0),
  });
  const file = h("input", {
    id: "attach",
    type: "file",
    accept: "image/*",
    class: "visually-hidden",
    onchange: () => {
      const f = file.files?.[0];
      file.value = "";
      if (f) sendImage(c, f);
    },
  });
  const form = h(
    "form",
    {
      class: "composer",
      onsubmit: (ev: Event) => {
        ev.preventDefault();
        const value = text.value.trim();
        if (!value) return;
        text.value = "";
        typing(c, false);
        sendBody(c, { type: "text", text: value });
      },
    },
    h("label", { for: "message", class: "visually-hidden" }, "Message"),
    text,
    h("label", { for: "attach", class: "attach", title: "Attach image" }, "Attach image"),
    file,
    h("button", { type: "submit" }, "Send"),
  );
  const list = h("div", {
    class: "messages",
    role: "log",
    "aria-label": "Conversation history",
    "aria-live": "polite",
    tabindex: 0,
    onscroll: () => {
      if (list.scrollTop < 40 && c.more && c.loaded) loadOlder(c);
    },
  });
  const membersPanel = h("section", { class: "members-panel", "aria-label": "Group members" });
  replace(
    chat,
    h(
      "header",
      { class: "chat-head" },
      h("h2", { id: "chat-title" }),
      h("span", { class: "presence" }),
      "group" in c.peer
        ? h(
          "details",
          {
            class: "members",
            ontoggle: (ev: Event) => {
              if ((ev.target as HTMLDetailsElement).open) renderMembers(c, membersPanel);
            },
          },
          h("summary", null, "Members"),
          membersPanel,
        )
        : null,
    ),
    h(
      "button",
      { type: "button", class: "older secondary", onclick: () => loadOlder(c) },
      "Load older messages",
    ),
    list,
    h("p", { class: "typing", "aria-live": "polite" }),
    form,
  );
  renderChatHeader();
  renderMessages(c, true);
  text.focus();
}

interface GroupMember {
  userId: string;
  role: "owner" | "admin" | "member";
  /** Server ms until which the member's sends are refused (absent: not muted). */
  mutedUntil?: number;
}

/** How long the members panel mutes someone for. */
const MUTE_MS = 60 * 60 * 1000;

/**
 * The members of a group chat with what the caller's role allows (protocol.md, "Group
 * administration"): the owner makes and unmakes admins and hands the group over; the owner
 * removes and mutes admins and members, an admin members; whoever the invite policy lets adds
 * friends; everyone but the owner can leave; the owner can dissolve. Redrawn after each change.
 */
async function renderMembers(c: Conv, panel: HTMLElement): Promise<void> {
  if (!("group" in c.peer)) return;
  const group = c.peer.group;
  let info: Record<string, unknown>, page: Record<string, unknown>;
  try {
    [info, page] = await Promise.all([
      client.request("group.info", { group }),
      // A page of 100 (each shown member's name is looked up); larger groups say so.
      client.request("group.members", { group, limit: 100 }),
    ]);
  } catch (err) {
    replace(panel, h("p", null, describe(err)));
    return;
  }
  const me = state.me?.userId ?? "";
  const myRole = info.role as GroupMember["role"];
  const members = page.members as GroupMember[];
  let requests: { requests: JoinRequest[]; count: number } | null = null;
  if (myRole !== "member") {
    try {
      const r = await client.request("group.requests", { group, limit: 100 });
      requests = { requests: r.requests as JoinRequest[], count: Number(r.count) };
    } catch (err) {
      flash(describe(err));
    }
  }
  await Promise.all(
    [...members.map((m) => m.userId), ...(requests?.requests ?? []).map((r) => r.userId)].map(
      lookup,
    ),
  );
  const act = (op: string, fields: Record<string, unknown>, after?: () => void) => async () => {
    try {
      await client.request(op, { group, ...fields });
      if (after) after();
      else await renderMembers(c, panel);
    } catch (err) {
      flash(describe(err));
    }
  };
  const button = (label: string, text: string, onclick: () => void, cls = "secondary") =>
    h("button", { type: "button", class: cls, "aria-label": label, onclick }, text);
  const rows = members.map((m) => {
    const name = nameOf(m.userId);
    const other = m.userId !== me;
    const mayKick = other &&
      (myRole === "owner" ? m.role !== "owner" : myRole === "admin" && m.role === "member");
    return h(
      "li",
      null,
      h("span", { class: "name" }, other ? name : `${name} (you)`),
      h("span", { class: "role" }, m.role),
      myRole === "owner" && other
        ? m.role === "admin"
          ? button(
            `Remove ${name} as admin`,
            "Remove admin",
            act("group.set_role", { user: m.userId, role: "member" }),
          )
          : button(
            `Make ${name} admin`,
            "Make admin",
            act("group.set_role", { user: m.userId, role: "admin" }),
          )
        : null,
      // Mute takes the same ranks as removal.
      mayKick
        ? (m.mutedUntil ?? 0) > Date.now()
          ? button(`Unmute ${name}`, "Unmute", act("group.mute", { user: m.userId, durationMs: 0 }))
          : button(
            `Mute ${name} for an hour`,
            "Mute 1 h",
            act("group.mute", { user: m.userId, durationMs: MUTE_MS }),
          )
        : null,
      mayKick
        ? button(`Remove ${name} from the group`, "Remove", act("group.kick", { user: m.userId }))
        : null,
      myRole === "owner" && other
        ? button(
          `Make ${name} the owner`,
          "Make owner",
          () => {
            if (confirm(`Hand the group over to ${name}? You stay an admin.`)) {
              act("group.transfer", { user: m.userId })();
            }
          },
        )
        : null,
    );
  });
  const inGroup = new Set(members.map((m) => m.userId));
  const candidates = [...state.friends.keys()].filter((f) => !inGroup.has(f));
  const mayInvite = info.invitePolicy === "anyone" || myRole !== "member";
  const picks = candidates.map((f) =>
    h("label", null, h("input", { type: "checkbox", value: f }), " ", nameOf(f))
  );
  const invite = mayInvite && candidates.length > 0
    ? h(
      "div",
      { class: "invite" },
      ...picks,
      button("Add to group", "Add to group", () => {
        const users = picks.map((l) => l.querySelector("input")!).filter((i) => i.checked)
          .map((i) => i.value);
        if (users.length > 0) act("group.invite", { users })();
      }),
    )
    : null;
  const leave = myRole !== "owner"
    ? button(
      "Leave group",
      "Leave group",
      act("group.leave", {}, () => replace(panel, h("p", null, "You left this group."))),
      "danger",
    )
    : button(
      "Dissolve group",
      "Dissolve group",
      () => {
        if (confirm("Dissolve the group for everyone? Its history stays readable.")) {
          act(
            "group.dissolve",
            {},
            () => replace(panel, h("p", null, "The group is dissolved.")),
          )();
        }
      },
      "danger",
    );
  const save = async (changes: GroupChanges) => {
    try {
      if (Object.keys(changes.update).length > 0) {
        await client.request("group.update", { group, ...changes.update });
      }
      if (changes.muteAll !== undefined) {
        await client.request("group.mute_all", { group, on: changes.muteAll });
      }
      if (changes.update.name) {
        state.groups.set(group, { name: changes.update.name });
        renderConvList();
        renderChatHeader();
      }
      await renderMembers(c, panel);
      flash("Group settings saved.");
    } catch (err) {
      flash(describe(err));
    }
  };
  replace(
    panel,
    groupSettingsEl(info as unknown as GroupInfo, save),
    requests
      ? joinRequestsEl(
        requests.requests,
        requests.count,
        nameOf,
        (user, approve) => act(approve ? "group.approve" : "group.reject", { user })(),
      )
      : null,
    h("p", null, page.count === 1 ? "1 member" : `${page.count} members`),
    h("ul", { class: "member-list" }, ...rows),
    page.more ? h("p", null, `Showing the first ${members.length}.`) : null,
    invite,
    leave,
  );
}

function renderChatHeader(): void {
  const c = state.active ? state.convs.get(state.active) : null;
  if (!c) return;
  const title = chat.querySelector("#chat-title");
  if (title) title.textContent = titleOf(c);
  const pres = chat.querySelector(".presence");
  if (pres) {
    if ("user" in c.peer) {
      const p = state.presence.get(c.peer.user);
      pres.textContent = !p
        ? ""
        : p.online
        ? "online"
        : p.lastSeen
        ? `last seen ${clock(p.lastSeen)}`
        : "offline";
    } else pres.textContent = "";
  }
  const older = chat.querySelector<HTMLButtonElement>(".older");
  if (older) older.hidden = !c.more;
}

function renderMessages(c: Conv, scrollToEnd: boolean): void {
  const list = chat.querySelector<HTMLElement>(".messages");
  if (!list) return;
  const atEnd = list.scrollHeight - list.scrollTop - list.clientHeight < 60;
  const sorted = [...c.messages.values()].sort((a, b) =>
    (a.pending ? Infinity : a.cseq) - (b.pending ? Infinity : b.cseq)
  );
  const editorFocused = Boolean(document.activeElement?.closest(".msg .edit"));
  replace(list, ...sorted.map((m) => messageEl(c, m)));
  if (editorFocused) list.querySelector<HTMLInputElement>(".msg .edit input")?.focus();
  if (scrollToEnd || atEnd) list.scrollTop = list.scrollHeight;
  renderChatHeader();
}

function messageEl(c: Conv, m: ChatMessage): HTMLElement {
  const mine = m.from === state.me?.userId;
  if (m.body.type === "system") {
    return h("div", { class: "msg system", "data-cseq": m.cseq }, systemText(m));
  }
  let content: HTMLElement;
  if (m.body.type === "image" && typeof m.body.mediaId === "string") {
    const img = h("img", { alt: String(m.body.caption ?? "Image"), class: "image" });
    mediaUrl(m.body.mediaId).then((u) => (img.src = u), () => (img.alt = "Image unavailable"));
    content = h("div", { class: "body" }, img);
  } else if (m.body.type === "text") {
    const editing = state.editing?.conv === c.conv && state.editing.mid === m.mid
      ? state.editing
      : null;
    content = editing
      ? editorEl(c, m, editing.draft)
      : h("div", { class: "body" }, String(m.body.text ?? ""));
  } else if (m.body.type === "recalled") {
    content = h("div", { class: "body muted" }, "Message recalled");
  } else {
    content = h("div", { class: "body muted" }, `[${m.body.type}]`);
  }
  const live = !m.pending && m.body.type !== "recalled";
  return h(
    "div",
    { class: `msg${mine ? " mine" : ""}`, "data-cseq": m.pending ? null : m.cseq },
    h("span", { class: "author" }, mine ? "You" : nameOf(m.from)),
    content,
    live && m.reactions?.length ? reactionsEl(c, m) : null,
    h(
      "span",
      { class: "meta" },
      m.body.edited ? h("span", { class: "edited" }, "edited") : null,
      h("time", { datetime: new Date(m.ts).toISOString() }, clock(m.ts)),
      mine ? h("span", { class: "receipt" }, statusOf(c, m)) : null,
    ),
    live ? actionsEl(c, m, mine) : null,
  );
}

/** The message's reactions: one toggle per emoji ("👍 2"), pressed when mine is among them. */
function reactionsEl(c: Conv, m: ChatMessage): HTMLElement {
  const me = state.me?.userId ?? "";
  return h(
    "div",
    { class: "reactions" },
    ...m.reactions!.map((r) => {
      const mineToo = r.users.includes(me);
      return h(
        "button",
        {
          type: "button",
          class: "reaction",
          "aria-pressed": mineToo ? "true" : "false",
          "aria-label": `${r.emoji} ${r.count}: ${r.users.map(nameOf).join(", ")}`,
          onclick: () => react(c, m, r.emoji, !mineToo),
        },
        `${r.emoji} ${r.count}`,
      );
    }),
  );
}

/** What can be done to a message: react; the sender may also edit (text) and recall. */
function actionsEl(c: Conv, m: ChatMessage, mine: boolean): HTMLElement {
  const me = state.me?.userId ?? "";
  // A toggle: reacting with an emoji already given takes it back.
  const reactButton = (emoji: string) => {
    const reacted = m.reactions?.some((r) => r.emoji === emoji && r.users.includes(me)) ?? false;
    return h("button", {
      type: "button",
      class: "link",
      "aria-label": reacted ? `Remove ${emoji}` : `React ${emoji}`,
      onclick: () => react(c, m, emoji, !reacted),
    }, emoji);
  };
  return h(
    "div",
    { class: "actions" },
    reactButton(QUICK_REACTION),
    h(
      "details",
      { class: "more-reactions" },
      h("summary", { "aria-label": "More reactions", title: "More reactions" }, "+"),
      ...MORE_REACTIONS.map(reactButton),
    ),
    mine && m.body.type === "text"
      ? h("button", { type: "button", class: "link", onclick: () => startEdit(c, m) }, "Edit")
      : null,
    mine
      ? h("button", { type: "button", class: "link", onclick: () => recall(c, m) }, "Recall")
      : null,
  );
}

async function react(c: Conv, m: ChatMessage, emoji: string, on: boolean): Promise<void> {
  try {
    const ok = await client.request(on ? "msg.react" : "msg.unreact", {
      conv: c.conv,
      mid: m.mid,
      emoji,
    });
    // The push (msg.updated) says the same; the answer is applied at once for this device.
    applyUpdate(c, m.mid, { reactions: ok.reactions as Reaction[] });
  } catch (err) {
    flash(describe(err));
  }
}

async function recall(c: Conv, m: ChatMessage): Promise<void> {
  try {
    const ok = await client.request("msg.recall", { conv: c.conv, mid: m.mid });
    applyUpdate(c, m.mid, { body: ok.body as MessageBody });
  } catch (err) {
    flash(describe(err));
  }
}

/** Opens the inline editor on `m` (see {@link editorEl}). */
function startEdit(c: Conv, m: ChatMessage): void {
  state.editing = { conv: c.conv, mid: m.mid, draft: String(m.body.text ?? "") };
  renderMessages(c, false);
  chat.querySelector<HTMLInputElement>(".msg .edit input")?.focus();
}

function stopEdit(c: Conv): void {
  state.editing = null;
  renderMessages(c, false);
}

/** The inline editor in place of `m`'s text: Enter (or Save) stores the edit, Escape cancels. */
function editorEl(c: Conv, m: ChatMessage, draft: string): HTMLElement {
  const field = h("input", { "aria-label": "Edit message", value: draft, maxlength: 10_000 });
  field.addEventListener("input", () => {
    if (state.editing?.mid === m.mid) state.editing.draft = field.value;
  });
  const save = async () => {
    const text = field.value.trim();
    if (!text || text === m.body.text) return stopEdit(c);
    try {
      // Only what an edit may carry: not `edited` or the stored `replyTo` snapshot (kept by the
      // server), but the mentions, so the edit does not drop them.
      const body: MessageBody = { type: "text", text };
      if (m.body.mentions) body.mentions = m.body.mentions;
      if (m.body.mentionAll) body.mentionAll = m.body.mentionAll;
      const ok = await client.request("msg.edit", { conv: c.conv, mid: m.mid, body });
      state.editing = null;
      applyUpdate(c, m.mid, { body: ok.body as MessageBody });
    } catch (err) {
      flash(describe(err));
    }
  };
  field.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter") save();
    else if (ev.key === "Escape") stopEdit(c);
  });
  return h("div", { class: "edit" }, field, h("button", { type: "button", onclick: save }, "Save"));
}

/** Applies a change to the message `mid` of `c` (if loaded) and redraws the open chat. */
function applyUpdate(
  c: Conv,
  mid: string,
  change: { body?: MessageBody; reactions?: Reaction[]; deleted?: boolean },
): void {
  for (const [k, m] of c.messages) {
    if (m.mid !== mid) continue;
    if (change.deleted) c.messages.delete(k);
    if (change.body) m.body = change.body;
    if (change.reactions) m.reactions = change.reactions;
  }
  if (state.active === c.conv) renderMessages(c, false);
}

function statusOf(c: Conv, m: ChatMessage): string {
  if (m.failed) return "Not sent";
  if (m.pending) return "Sending…";
  return c.peerRead >= m.cseq ? "Read" : "Sent";
}

function updateStatuses(c: Conv): void {
  for (const el of chat.querySelectorAll<HTMLElement>(".msg.mine[data-cseq]")) {
    const m = c.messages.get(`c:${el.dataset.cseq}`);
    const r = el.querySelector(".receipt");
    if (m && r) r.textContent = statusOf(c, m);
  }
}

function systemText(m: ChatMessage): string {
  const b = m.body as Record<string, unknown>;
  const who = nameOf(m.from);
  switch (b.event) {
    case "member.invited":
      return `${who} added ${((b.users as string[]) ?? []).map(nameOf).join(", ")}`;
    case "member.joined":
      return `${nameOf(String(b.user))} joined`;
    case "member.left":
      return `${nameOf(String(b.user))} left`;
    case "member.kicked":
      return `${who} removed ${nameOf(String(b.user))}`;
    case "group.dissolved":
      return `${who} dissolved the group`;
    default:
      return `${who}: ${String(b.event ?? "group update")}`;
  }
}

// ---------------------------------------------------------------- sending

function sendBody(c: Conv, body: MessageBody): void {
  const cmid = `w${Date.now().toString(36)}${Math.random().toString(36).slice(2, 10)}`;
  const local: ChatMessage = {
    mid: "",
    cseq: 0,
    from: state.me!.userId,
    ts: Date.now(),
    body,
    pending: cmid,
  };
  addMessage(c, local);
  if (state.active === c.conv) renderMessages(c, true);
  client.send(c.peer, body, { cmid }).then(
    (ok) => {
      c.messages.delete(key(local));
      const sent: ChatMessage = { mid: ok.mid, cseq: ok.cseq, from: local.from, ts: ok.ts, body };
      addMessage(c, sent);
      c.lastCseq = Math.max(c.lastCseq, ok.cseq);
      c.read = Math.max(c.read, ok.cseq);
      renderConvList();
      if (state.active === c.conv) renderMessages(c, true);
    },
    (err) => {
      local.failed = true;
      if (state.active === c.conv) renderMessages(c, false);
      flash(describe(err));
    },
  );
}

async function sendImage(c: Conv, file: File): Promise<void> {
  try {
    const res = await authorizedFetch("/v1/media", {
      method: "POST",
      headers: { "content-type": file.type || "application/octet-stream" },
      body: file,
    });
    const info = await res.json();
    if (!res.ok) {
      throw new ImClientError(
        info.error?.code ?? "http_error",
        info.error?.message ?? "Upload failed",
      );
    }
    sendBody(c, {
      type: "image",
      mediaId: info.mediaId,
      ...(info.width ? { width: info.width, height: info.height } : {}),
    });
  } catch (err) {
    flash(describe(err));
  }
}

async function authorizedFetch(path: string, init: RequestInit = {}): Promise<Response> {
  const attempt = () =>
    fetch(path, {
      ...init,
      headers: { ...(init.headers ?? {}), authorization: `Bearer ${client.session?.accessToken}` },
    });
  let res = await attempt();
  if (res.status === 401 && client.session) {
    await client.refresh();
    res = await attempt();
  }
  return res;
}

function mediaUrl(mediaId: string): Promise<string> {
  let p = state.media.get(mediaId);
  if (!p) {
    p = authorizedFetch(`/v1/media/${encodeURIComponent(mediaId)}`).then(async (res) => {
      if (!res.ok) throw new Error(`media ${res.status}`);
      return URL.createObjectURL(await res.blob());
    });
    state.media.set(mediaId, p);
    p.catch(() => state.media.delete(mediaId));
  }
  return p;
}

let typingSentAt = 0;
let typingActive = false;
function typing(c: Conv, active: boolean): void {
  const now = Date.now();
  if (active && typingActive && now - typingSentAt < 3000) return;
  if (!active && !typingActive) return;
  typingActive = active;
  typingSentAt = now;
  client.request("typing", { to: c.peer, active }).catch(() => {});
}

// ---------------------------------------------------------------- people and friends

async function findPeople(query: string): Promise<void> {
  if (!query) return;
  try {
    const ok = await client.request("user.search", { query, limit: 20 });
    const users = (ok.users as Person[]).filter((u) => u.userId !== state.me?.userId);
    for (const u of users) state.people.set(u.userId, u);
    replace(
      searchResults,
      ...users.map((u) =>
        h(
          "li",
          null,
          h("span", { class: "name" }, u.username),
          state.friends.has(u.userId)
            ? h("span", { class: "tag" }, "Friend")
            : state.outgoing.has(u.userId)
            ? h("span", { class: "tag" }, "Requested")
            : h("button", {
              type: "button",
              "aria-label": `Add ${u.username} as a friend`,
              onclick: () => addFriend(u.userId),
            }, "Add friend"),
          h("button", {
            type: "button",
            class: "secondary",
            "aria-label": `Message ${u.username}`,
            onclick: () => openConv(ensureConv(directConv(u.userId), { user: u.userId }).conv),
          }, "Message"),
        )
      ),
    );
    if (users.length === 0) searchResults.append(h("li", { class: "empty" }, "Nobody found."));
  } catch (err) {
    flash(describe(err));
  }
}

async function addFriend(userId: string): Promise<void> {
  try {
    const ok = await client.request("friend.request", { userId });
    if (ok.status === "friends" || ok.friends === true) {
      state.friends.set(userId, { since: Date.now() });
    } else state.outgoing.add(userId);
    flash(`Friend request sent to ${nameOf(userId)}.`);
    replace(searchResults);
    renderFriends();
  } catch (err) {
    flash(describe(err));
  }
}

async function answerRequest(userId: string, accept: boolean): Promise<void> {
  try {
    await client.request(accept ? "friend.accept" : "friend.reject", { userId });
    state.incoming.delete(userId);
    if (accept) {
      state.friends.set(userId, { since: Date.now() });
      watchPresence([userId]);
    }
    renderFriends();
  } catch (err) {
    flash(describe(err));
  }
}

function renderFriends(): void {
  replace(
    requestList,
    ...[...state.incoming.keys()].map((id) =>
      h(
        "li",
        null,
        h("span", { class: "name" }, nameOf(id)),
        h("button", {
          type: "button",
          "aria-label": `Accept ${nameOf(id)}`,
          onclick: () => answerRequest(id, true),
        }, "Accept"),
        h("button", {
          type: "button",
          class: "secondary",
          "aria-label": `Reject ${nameOf(id)}`,
          onclick: () => answerRequest(id, false),
        }, "Reject"),
      )
    ),
  );
  if (state.incoming.size === 0) requestList.append(h("li", { class: "empty" }, "None."));
  replace(
    friendList,
    ...[...state.friends.keys()].sort((a, b) => nameOf(a).localeCompare(nameOf(b))).map((id) => {
      const p = state.presence.get(id);
      return h(
        "li",
        null,
        h(
          "button",
          {
            type: "button",
            class: "friend",
            onclick: () => openConv(ensureConv(directConv(id), { user: id }).conv),
          },
          h("span", { class: `dot${p?.online ? " on" : ""}`, "aria-hidden": "true" }),
          nameOf(id),
        ),
        h("span", { class: "visually-hidden" }, p?.online ? "online" : "offline"),
      );
    }),
  );
  if (state.friends.size === 0) friendList.append(h("li", { class: "empty" }, "No friends yet."));
}

// ---------------------------------------------------------------- push frames

function onMsg(m: MsgFrame): void {
  if (!state.ready) {
    state.buffered.push(m);
    return;
  }
  const c = ensureConv(m.conv, m.to && "group" in m.to ? { group: m.to.group } : undefined);
  const isNew = m.cseq > c.lastCseq;
  c.lastCseq = Math.max(c.lastCseq, m.cseq);
  const msg = toMessage(m);
  // My own message from this device replaces its pending copy (same mid via the send ok).
  for (const [k, v] of c.messages) if (v.mid === msg.mid && k !== key(msg)) c.messages.delete(k);
  addMessage(c, msg);
  if (m.from !== state.me?.userId && isNew && m.cseq > c.read) {
    const visible = state.active === c.conv && document.visibilityState === "visible";
    if (!visible) c.unread++;
    const t = c.typing.get(m.from);
    if (t) {
      clearTimeout(t);
      c.typing.delete(m.from);
      renderTyping(c);
    }
  }
  if (state.people.has(m.from) === false) lookup(m.from).then(() => renderConvList());
  titleLookup(c).then(() => renderConvList());
  if (state.active === c.conv) {
    renderMessages(c, false);
    markRead(c);
  }
  renderConvList();
}

client.on<MsgFrame & { op: "msg" }>("msg", onMsg);

client.on("msg.updated", (f) => {
  const c = state.convs.get(f.conv as string);
  if (!c) return;
  const mid = f.mid as string;
  if (f.change === "reaction") applyUpdate(c, mid, { reactions: f.reactions as Reaction[] });
  else if (f.change === "edit" || f.change === "recall") {
    applyUpdate(c, mid, { body: f.body as MessageBody });
  } else if (f.change === "delete") applyUpdate(c, mid, { deleted: true });
});

client.on("read", (f) => {
  const c = state.convs.get(f.conv as string);
  if (!c || f.user === state.me?.userId) return;
  c.peerRead = Math.max(c.peerRead, Number(f.cseq));
  if (state.active === c.conv) updateStatuses(c);
});

client.on("conv.updated", (f) => {
  const c = state.convs.get(f.conv as string);
  if (!c) return;
  if (typeof f.read === "number") c.read = Math.max(c.read, f.read);
  if (typeof f.unread === "number") c.unread = f.unread;
  renderConvList();
});

client.on("typing", (f) => {
  const c = state.convs.get(f.conv as string);
  const from = f.from as string;
  if (!c || from === state.me?.userId) return;
  clearTimeout(c.typing.get(from));
  if (f.active === false) c.typing.delete(from);
  else {
    c.typing.set(
      from,
      setTimeout(() => {
        c.typing.delete(from);
        renderTyping(c);
      }, 6000),
    );
  }
  renderTyping(c);
});

function renderTyping(c: Conv): void {
  if (state.active !== c.conv) return;
  const el = chat.querySelector(".typing");
  if (!el) return;
  const names = [...c.typing.keys()].map(nameOf);
  el.textContent = names.length === 0
    ? ""
    : `${names.join(", ")} ${names.length === 1 ? "is" : "are"} typing…`;
}

client.on("presence", (f) => {
  state.presence.set(f.userId as string, {
    online: f.online === true,
    lastSeen: (f.lastSeen as number | null) ?? null,
  });
  renderFriends();
  renderChatHeader();
});

client.on("friend.request", (f) => {
  const id = f.userId as string;
  state.incoming.set(id, { message: String(f.message ?? ""), ts: Number(f.ts ?? Date.now()) });
  lookup(id).then(() => {
    renderFriends();
    flash(`${nameOf(id)} wants to be your friend.`);
  });
});

client.on("friend.accepted", (f) => {
  const id = f.userId as string;
  state.outgoing.delete(id);
  state.friends.set(id, { since: Number(f.since ?? Date.now()) });
  lookup(id).then(() => {
    renderFriends();
    flash(`${nameOf(id)} accepted your friend request.`);
  });
  watchPresence([id]);
});

for (const op of ["friend.rejected", "friend.cancelled", "friend.removed"]) {
  client.on(op, (f) => {
    const id = f.userId as string;
    state.outgoing.delete(id);
    state.incoming.delete(id);
    if (op === "friend.removed") state.friends.delete(id);
    renderFriends();
  });
}

client.on("group.updated", (f) => {
  if (typeof f.groupId === "string" && typeof f.name === "string") {
    state.groups.set(f.groupId, { name: f.name });
    renderConvList();
    renderChatHeader();
    refreshMembersPanel(f.groupId);
  }
});

client.on("group.join_request", (f) => {
  const group = String(f.group);
  const user = String(f.user);
  Promise.all([lookup(user), titleLookup(ensureConv(`g:${group}`, { group }))]).then(() => {
    flash(`${nameOf(user)} asks to join ${state.groups.get(group)?.name ?? "a group"}.`);
    refreshMembersPanel(group);
  });
});

client.on("group.join_rejected", (f) => {
  const group = String(f.group);
  flash(`Your request to join ${state.groups.get(group)?.name ?? group} was declined.`);
});

/** Redraws the members panel when it is open on `group` (a change made elsewhere). */
function refreshMembersPanel(group: string): void {
  const c = state.active ? state.convs.get(state.active) : null;
  const details = chat.querySelector<HTMLDetailsElement>("details.members");
  const panel = chat.querySelector<HTMLElement>(".members-panel");
  if (c && "group" in c.peer && c.peer.group === group && details?.open && panel) {
    renderMembers(c, panel);
  }
}

client.on("system", (f) => {
  const text = String(f.text ?? "");
  const scope = f.scope === "group"
    ? ` (${state.groups.get(String(f.group))?.name ?? "group"})`
    : "";
  announcement.hidden = false;
  replace(
    announcement,
    h("strong", null, `Announcement${scope}: `),
    text,
    h("button", {
      type: "button",
      class: "secondary",
      "aria-label": "Dismiss announcement",
      onclick: () => (announcement.hidden = true),
    }, "×"),
  );
});

// ---------------------------------------------------------------- helpers

let flashTimer: ReturnType<typeof setTimeout> | undefined;
function flash(text: string): void {
  let el = document.getElementById("flash");
  if (!el) {
    el = h("div", { id: "flash", class: "flash", role: "status", "aria-live": "polite" });
    document.body.append(el);
  }
  el.textContent = text;
  el.hidden = false;
  clearTimeout(flashTimer);
  flashTimer = setTimeout(() => (el!.hidden = true), 5000);
}

function describe(err: unknown): string {
  if (err instanceof ImClientError) {
    const known: Record<string, string> = {
      username_taken: "That username is taken.",
      invalid_credentials: "Wrong username or password.",
      bad_request: err.message,
      network: "Cannot reach the server.",
      muted: "You are muted and cannot send messages right now.",
      blocked: "You cannot message this person.",
      rate_limited: "Slow down a little.",
    };
    return known[err.code] ?? err.message;
  }
  return (err as Error)?.message ?? String(err);
}

addEventListener("online", () => client.reconnectNow());

// Resume a session kept in this tab, or ask to log in.
if (client.session) start();
else showAuth();
