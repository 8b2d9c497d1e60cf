/**
 * Which nodes hold connections of which users: deliveries go only to those nodes
 * (ARCHITECTURE.md: "Deliveries to a connection go to the node that holds the connection").
 *
 * Every node keeps the whole cluster's map, fed by the nodes themselves: each node is the
 * authority on its own connections and tells every other node when a user gets their first
 * connection there (`add`) or loses their last (`remove`). A node that joins (or that this node
 * has not heard from yet) is asked for its list (`dump`); until it has answered, every delivery
 * also goes to it, so nothing is routed on a map that is not complete.
 *
 * Guarantees:
 * - {@link ConnectionDirectory.connected} resolves once every live node has recorded the user
 *   (or after `announceTimeoutMs`, logged). The gateway calls it before the user actor reads the
 *   latest inbox `seq` for the `auth` answer, so a message routed without this node was committed
 *   before that read: the client's `sync` from its cursor covers it. A node that missed the
 *   announcement (timeout) may skip pushes to that connection; pushes are hints and the next
 *   message's `seq` shows the gap (the client syncs).
 * - Entries only err on the side of delivering: a lost `remove` costs a delivery the node drops;
 *   dumps are merged, never replace what `add`s recorded; a node that leaves the cluster is
 *   forgotten at once.
 * - {@link ConnectionDirectory.route} never blocks and never asks the network.
 *
 * @module
 */
import type { Envelope, Transport } from "./transport.ts";
import type { Membership } from "./membership.ts";

/** The transport address of every node's directory (handled by node.ts, not by an actor). */
export const DIRECTORY_ADDRESS = "@directory";

/** What the directory needs. */
export interface DirectoryDeps {
  nodeId: string;
  transport: Pick<Transport, "request" | "tell">;
  membership: Pick<Membership, "liveNodes" | "onChange">;
  /** How long `connected` waits for the other nodes, ms (default 1000). */
  announceTimeoutMs?: number;
  /** Reports a node that could not be told or asked (for the log). */
  onError?(what: string, node: string, err: unknown): void;
}

/** The cluster's user → nodes map, as this node knows it. See the module doc. */
export class ConnectionDirectory {
  readonly #deps: DirectoryDeps;
  /** Other nodes holding connections of a user: one id, or a set when several. */
  readonly #remote = new Map<string, string | Set<string>>();
  /** Remote nodes whose list has been merged. */
  readonly #synced = new Set<string>();
  /** Remote live nodes whose list is not merged yet: every delivery goes to them too. */
  #pending: string[] = [];
  /**
   * Nodes that asked for this node's list but are not in its live view yet (views lag by up to
   * a heartbeat): they are told about connections too, or they would miss the ones made before
   * this node sees them. Dropped once the view has shown them and then lost them.
   */
  readonly #askers = new Map<string, { seenLive: boolean }>();
  #closed = false;
  readonly #retries = new Set<ReturnType<typeof setTimeout>>();
  /** Connections (counted from `connected` to `disconnected`) per user on this node. */
  readonly #local = new Map<string, { count: number; announced: Promise<void> }>();

  constructor(deps: DirectoryDeps) {
    this.#deps = deps;
    deps.membership.onChange(() => this.#onMembership());
    this.#onMembership();
  }

  /**
   * The nodes a delivery to `users` must reach: those holding (or opening) a connection of any
   * of them, this node included, plus nodes whose list is not known yet. Empty when nobody is
   * connected anywhere.
   */
  route(users: readonly string[]): string[] {
    const self = this.#deps.nodeId;
    if (this.#remote.size === 0 && this.#pending.length === 0) {
      // One node (or nobody elsewhere): no set to build for every delivery.
      for (let i = 0; i < users.length; i++) if (this.#local.has(users[i])) return [self];
      return [];
    }
    const nodes = new Set<string>(this.#pending);
    const remote = this.#remote.size > 0;
    for (let i = 0; i < users.length; i++) {
      const u = users[i];
      if (this.#local.has(u)) nodes.add(self);
      if (!remote) continue;
      const at = this.#remote.get(u);
      if (at === undefined) continue;
      if (typeof at === "string") nodes.add(at);
      else for (const n of at) nodes.add(n);
    }
    return [...nodes];
  }

  /** Live nodes whose list this node has not merged yet (deliveries go to them all). */
  get pendingNodes(): number {
    return this.#pending.length;
  }

  /**
   * Whether `user` has a connection on any node, as far as this node knows (a node whose list
   * is not merged yet may hold one: a `false` is a hint to check, never a promise).
   */
  isConnected(user: string): boolean {
    return this.#local.has(user) || this.#remote.has(user);
  }

  /**
   * A connection of `user` is opening on this node (call before the user actor reads the inbox
   * `seq` for the `auth` answer). The first one tells every other live node and resolves when
   * they have answered (at most `announceTimeoutMs`; failures are reported, not thrown); later
   * ones resolve with that same announcement.
   */
  connected(user: string): Promise<void> {
    const entry = this.#local.get(user);
    if (entry) {
      entry.count++;
      return entry.announced;
    }
    const announced = this.#announce(user);
    this.#local.set(user, { count: 1, announced });
    return announced;
  }

  /**
   * A connection of `user` counted by {@link connected} is gone. After the last one, the other
   * nodes are told (fire and forget).
   */
  disconnected(user: string): void {
    const entry = this.#local.get(user);
    if (!entry) return;
    if (--entry.count > 0) return;
    this.#local.delete(user);
    for (const n of this.#others()) {
      try {
        this.#deps.transport.tell(n, {
          to: DIRECTORY_ADDRESS,
          type: "remove",
          body: { node: this.#deps.nodeId, user },
        });
      } catch (err) {
        this.#deps.onError?.("remove", n, err);
      }
    }
  }

  /** Users with connections on this node (what a `dump` answers). */
  localUsers(): string[] {
    return [...this.#local.keys()];
  }

  async #announce(user: string): Promise<void> {
    const others = this.#others();
    if (others.length === 0) return;
    const deadline = Date.now() + (this.#deps.announceTimeoutMs ?? 1000);
    await Promise.all(others.map((n) =>
      this.#deps.transport.request(n, {
        to: DIRECTORY_ADDRESS,
        type: "add",
        body: { node: this.#deps.nodeId, user },
        deadline,
      }).then(() => {}, (err) => this.#deps.onError?.("announce", n, err))
    ));
  }

  /** Handles a directory envelope from another node (`add`, `remove`, `dump`). */
  handle(env: Envelope): Promise<unknown> {
    const body = (env.body ?? {}) as { node?: unknown; user?: unknown };
    switch (env.type) {
      case "add":
        if (typeof body.node === "string" && typeof body.user === "string") {
          this.#add(body.user, body.node);
        }
        return Promise.resolve({ ok: true });
      case "remove":
        if (typeof body.node === "string" && typeof body.user === "string") {
          this.#remove(body.user, body.node);
        }
        return Promise.resolve({ ok: true });
      case "dump":
        if (typeof body.node === "string" && body.node !== this.#deps.nodeId) {
          this.#askers.set(body.node, { seenLive: false });
        }
        return Promise.resolve({ users: this.localUsers() });
      default:
        return Promise.reject(new Error(`Unknown directory request "${String(env.type)}"`));
    }
  }

  /** Stops asking other nodes (their answers are ignored from now on). */
  close(): void {
    this.#closed = true;
    for (const t of this.#retries) clearTimeout(t);
    this.#retries.clear();
  }

  /** Number of (user, remote node) entries (metrics, tests). */
  get size(): number {
    let n = 0;
    for (const at of this.#remote.values()) n += typeof at === "string" ? 1 : at.size;
    return n;
  }

  #others(): string[] {
    const self = this.#deps.nodeId;
    const live = this.#deps.membership.liveNodes().map((n) => n.id).filter((id) => id !== self);
    if (this.#askers.size === 0) return live;
    return [...new Set([...live, ...this.#askers.keys()])];
  }

  #add(user: string, node: string): void {
    const at = this.#remote.get(user);
    if (at === undefined) this.#remote.set(user, node);
    else if (typeof at === "string") {
      if (at !== node) this.#remote.set(user, new Set([at, node]));
    } else at.add(node);
  }

  #remove(user: string, node: string): void {
    const at = this.#remote.get(user);
    if (at === undefined) return;
    if (typeof at === "string") {
      if (at === node) this.#remote.delete(user);
      return;
    }
    at.delete(node);
    if (at.size === 1) this.#remote.set(user, at.values().next().value!);
  }

  #onMembership(): void {
    if (this.#closed) return;
    const self = this.#deps.nodeId;
    const live = new Set(
      this.#deps.membership.liveNodes().map((n) => n.id).filter((id) => id !== self),
    );
    for (const [n, asker] of this.#askers) {
      if (live.has(n)) asker.seenLive = true;
      else if (asker.seenLive) this.#askers.delete(n);
    }
    // Nodes that left: forget their connections (their sockets are gone with them).
    for (const n of [...this.#synced]) {
      if (!live.has(n)) {
        this.#synced.delete(n);
        this.#forgetNode(n);
      }
    }
    const pendingBefore = new Set(this.#pending);
    this.#pending = [...live].filter((n) => !this.#synced.has(n));
    for (const n of this.#pending) if (!pendingBefore.has(n)) this.#sync(n);
  }

  #forgetNode(node: string): void {
    for (const [user, at] of this.#remote) {
      if (at === node) this.#remote.delete(user);
      else if (typeof at !== "string" && at.has(node)) this.#remove(user, node);
    }
  }

  /** Asks `node` for its list, retrying while it stays live and unsynced. */
  async #sync(node: string): Promise<void> {
    for (let attempt = 0; !this.#closed; attempt++) {
      if (!this.#pending.includes(node)) return;
      try {
        const reply = await this.#deps.transport.request(node, {
          to: DIRECTORY_ADDRESS,
          type: "dump",
          body: { node: this.#deps.nodeId },
          deadline: Date.now() + 5000,
        }) as { users?: unknown };
        if (this.#closed || !this.#pending.includes(node)) return;
        if (Array.isArray(reply?.users)) {
          for (const u of reply.users) if (typeof u === "string") this.#add(u, node);
        }
        this.#synced.add(node);
        this.#pending = this.#pending.filter((n) => n !== node);
        return;
      } catch (err) {
        this.#deps.onError?.("dump", node, err);
        if (this.#closed) return;
        await new Promise<void>((resolve) => {
          const t = setTimeout(() => {
            this.#retries.delete(t);
            resolve();
          }, Math.min(2000, 100 * 2 ** attempt));
          this.#retries.add(t);
        });
      }
    }
  }
}
