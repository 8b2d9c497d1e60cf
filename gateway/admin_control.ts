/**
 * The node's control plane for administration: what one node answers about itself, what it does
 * when an admin acts, and how a node asks all the others.
 *
 * Node-addressed envelopes (`to: "@node"`) arrive through the ordinary transport (NATS in a
 * cluster, in-process otherwise) and are answered here instead of by an actor:
 * - `stats` → {@link NodeStats} (connections, actors, mailbox depth, messages/s, CPU, memory,
 *   event-loop lag);
 * - `sessions` → {@link SessionInfo}[] of the authenticated connections held here;
 * - `kick` `{userId, reason}` → closes that user's connections here with 1008 and `reason`;
 * - `push` `{frame}` → pushes a frame to every authenticated connection here;
 * - `state` `{state}` → applies a newer {@link ClusterState} (runtime settings, mutes, forced
 *   logouts).
 *
 * {@link NodeControl.askAll} sends one of these to every live node in parallel and reports each
 * node's answer or error, so the cluster views never hang on one dead node (the request
 * deadline bounds them).
 *
 * Guarantees: a node applies a cluster state only if its `version` is newer than the one it has,
 * so pushes and periodic refreshes may arrive in any order. Runtime settings absent from the
 * state fall back to the node's own configured values.
 *
 * @module
 */
import { decodeJwt } from "jose";
import { ImError } from "../actors/errors.ts";
import {
  CLUSTER_CONFIG_ACTOR,
  type ClusterChange,
  type ClusterState,
  emptyClusterState,
  type NumericSetting,
  RUNTIME_LIMITS,
  type RuntimeConfig,
} from "../actors/im/cluster_config.ts";
import type { Membership } from "../cluster/membership.ts";
import type { Envelope, Transport } from "../cluster/transport.ts";
import type { Logger, LogLevel } from "../observability/log.ts";
import type { RuntimeSampler } from "../observability/runtime_sampler.ts";

const NUMERIC_KEYS = Object.keys(RUNTIME_LIMITS) as NumericSetting[];

/** The address of node-level envelopes. */
export const NODE_ADDRESS = "@node";

/** How often a node re-reads the cluster state (catches a missed push), ms. */
export const STATE_REFRESH_MS = 5_000;

/** An authenticated connection, as the admin console lists it. */
export interface SessionInfo {
  userId: string;
  device: string;
  connId: string;
  node: string;
  /** Client IP as the gateway saw it. */
  remoteAddr: string;
  /** When the connection was opened, ms since the epoch. */
  connectedAt: number;
  subprotocol: string;
}

/** One node's figures for the cluster view. */
export interface NodeStats {
  nodeId: string;
  address: string;
  startedAt: number;
  connections: number;
  users: number;
  actors: number;
  mailboxDepth: number;
  activations: number;
  passivations: number;
  /** Messages stored per second by the conversation actors on this node (last sample). */
  messagesPerSec: number;
  /** Frames received per second by this node's gateway (last sample). */
  framesInPerSec: number;
  /** CPU time over wall time (1 = one core). */
  cpu: number;
  rssBytes: number;
  heapUsedBytes: number;
  eventLoopLagMs: number;
  /** Placement moves (MovedError answers) this node's router met. */
  placementMoves: number;
  /** The cluster state version this node applies. */
  stateVersion: number;
  /** The effective runtime settings. */
  settings: Required<RuntimeConfig>;
}

/** What a session must expose to be listed and kicked. */
export interface ControlledSession {
  readonly id: string;
  readonly userId: string;
  readonly device: string;
  readonly remoteAddr: string;
  readonly connectedAt: number;
  readonly subprotocol: string;
  /** A session whose socket is no longer open is skipped (it is on its way out). */
  readonly socket: { readonly readyState: number };
  push(frame: Record<string, unknown>): void;
  close(code: number, reason: string): void;
}

/** The settings a cluster state may override, as the node holds them (mutated in place). */
export type MutableSettings = Record<NumericSetting, number>;

/** What the control plane needs of its node. */
export interface NodeControlDeps {
  nodeId: string;
  address: () => string;
  startedAt: number;
  sessions: Iterable<ControlledSession>;
  transport: Transport;
  membership: Membership;
  /** Asks an actor (the cluster configuration actor). */
  ask(to: string, type: string, body: unknown, opts?: { deadline?: number }): Promise<unknown>;
  hostStats(): { active: number; mailboxDepth: number; activations: number; passivations: number };
  placementMoves(): number;
  sampler: RuntimeSampler;
  /** The node's settings objects; every one gets the effective values. */
  settings: MutableSettings[];
  /** The node's configured log level (the fallback when the state sets none). */
  logLevel: LogLevel;
  logger: Logger;
  /** Called after a state is applied (e.g. to re-read rate limits). */
  onApplied?: (runtime: Required<RuntimeConfig>) => void;
  /** Access-token lifetime, ms (how long forced-logout entries matter). */
  accessTokenTtlMs: number;
  requestTimeoutMs: number;
}

/** One node's answer in {@link NodeControl.askAll}. */
export type NodeAnswer<T> = { node: string; ok: true; value: T } | {
  node: string;
  ok: false;
  error: { code: string; message: string };
};

/** Close code and reasons of admin actions (the SDK treats these reasons as a sign-out). */
export const KICK_REASONS = {
  logout: "forced logout",
  disabled: "account disabled",
  deleted: "account deleted",
} as const;

/** The control plane of one node. */
export class NodeControl {
  readonly #deps: NodeControlDeps;
  readonly #base: MutableSettings;
  #state: ClusterState = emptyClusterState();
  #refreshTimer: ReturnType<typeof setInterval> | undefined;
  #closed = false;

  constructor(deps: NodeControlDeps) {
    this.#deps = deps;
    const base = {} as MutableSettings;
    for (const k of NUMERIC_KEYS) base[k] = deps.settings[0][k];
    this.#base = base;
  }

  /** The cluster state this node applies. */
  get state(): ClusterState {
    return this.#state;
  }

  /** Reads the cluster state now and then every {@link STATE_REFRESH_MS}. */
  async start(): Promise<void> {
    await this.refresh().catch((err) => {
      // The defaults are valid settings; the next refresh tries again.
      this.#deps.logger.warn("cannot read the cluster state yet", { err });
    });
    if (this.#closed) return;
    this.#refreshTimer = setInterval(() => {
      this.refresh().catch((err) =>
        this.#deps.logger.warn("cluster state refresh failed", { err })
      );
    }, STATE_REFRESH_MS);
  }

  /** Stops the periodic refresh. */
  close(): void {
    this.#closed = true;
    clearInterval(this.#refreshTimer);
  }

  /** Reads the state from the cluster configuration actor and applies it if newer. */
  async refresh(): Promise<void> {
    const state = await this.#deps.ask(CLUSTER_CONFIG_ACTOR, "get", null, {
      deadline: Date.now() + this.#deps.requestTimeoutMs,
    }) as ClusterState;
    this.apply(state);
  }

  /**
   * Changes the cluster state (one actor turn, snapshotted), applies it here and pushes it to
   * every live node. Resolves the new state once this node applies it; other nodes that miss
   * the push converge at their next refresh.
   */
  async change(change: ClusterChange): Promise<ClusterState> {
    const state = await this.#deps.ask(CLUSTER_CONFIG_ACTOR, "update", {
      ...change,
      accessTokenTtlMs: this.#deps.accessTokenTtlMs,
    }, { deadline: Date.now() + this.#deps.requestTimeoutMs }) as ClusterState;
    this.apply(state);
    const answers = await this.askAll("state", { state });
    for (const a of answers) {
      if (!a.ok) this.#deps.logger.warn("cluster state push failed", { node: a.node, ...a.error });
    }
    return state;
  }

  /** Applies `state` if it is newer than the one this node has. */
  apply(state: ClusterState): void {
    if (!state || typeof state.version !== "number" || state.version <= this.#state.version) {
      return;
    }
    this.#state = state;
    const eff = this.effectiveSettings();
    for (const s of this.#deps.settings) {
      for (const k of NUMERIC_KEYS) s[k] = eff[k];
    }
    this.#deps.logger.setLevel(eff.logLevel);
    this.#deps.onApplied?.(eff);
    this.#deps.logger.info("cluster state applied", { version: state.version });
  }

  /** The settings in force: the state's overrides over the node's own values. */
  effectiveSettings(): Required<RuntimeConfig> {
    const r = this.#state.runtime;
    const out = { logLevel: r.logLevel ?? this.#deps.logLevel } as Required<RuntimeConfig>;
    for (const k of NUMERIC_KEYS) out[k] = r[k] ?? this.#base[k];
    return out;
  }

  /** Whether `userId` is muted now. */
  isMuted(userId: string, now = Date.now()): boolean {
    const until = this.#state.muted[userId];
    return until !== undefined && until > now;
  }

  /**
   * Whether an access token of `userId` issued at `iatSec` (JWT seconds) was revoked by a forced
   * logout. Tokens issued in the same second as the logout count as revoked: the JWT clock has
   * second granularity and refusing a fresh login for up to a second is the safe side.
   */
  isTokenRevoked(userId: string, iatSec: number): boolean {
    const at = this.#state.loggedOutAt[userId];
    return at !== undefined && iatSec <= Math.floor(at / 1000);
  }

  /** {@link isTokenRevoked} for a verified token (reads its `iat`). */
  isRevokedToken(userId: string, token: string): boolean {
    if (this.#state.loggedOutAt[userId] === undefined) return false;
    const iat = decodeJwt(token).iat;
    return typeof iat !== "number" || this.isTokenRevoked(userId, iat);
  }

  /** Handles a node-level envelope (see the module doc). */
  handle(env: Envelope): Promise<unknown> {
    try {
      return Promise.resolve(this.#handle(env));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  #handle(env: Envelope): unknown {
    const body = (env.body ?? {}) as Record<string, unknown>;
    switch (env.type) {
      case "stats":
        return this.stats();
      case "sessions":
        return this.sessions();
      case "kick":
        return { closed: this.kick(String(body.userId), String(body.reason ?? "forced logout")) };
      case "push":
        return { pushed: this.pushAll(body.frame as Record<string, unknown>) };
      case "state":
        this.apply(body.state as ClusterState);
        return { version: this.#state.version };
      default:
        throw new ImError("bad_request", `Unknown node request "${String(env.type)}"`);
    }
  }

  /** This node's figures. */
  stats(): NodeStats {
    const d = this.#deps;
    const host = d.hostStats();
    const sample = d.sampler.read();
    let connections = 0;
    const users = new Set<string>();
    for (const s of d.sessions) {
      if (!live(s)) continue;
      connections++;
      users.add(s.userId);
    }
    return {
      nodeId: d.nodeId,
      address: d.address(),
      startedAt: d.startedAt,
      connections,
      users: users.size,
      actors: host.active,
      mailboxDepth: host.mailboxDepth,
      activations: host.activations,
      passivations: host.passivations,
      messagesPerSec: round(sample.rates.messages ?? 0),
      framesInPerSec: round(sample.rates.framesIn ?? 0),
      cpu: round(sample.cpu),
      rssBytes: sample.rssBytes,
      heapUsedBytes: sample.heapUsedBytes,
      eventLoopLagMs: round(sample.eventLoopLagMs),
      placementMoves: d.placementMoves(),
      stateVersion: this.#state.version,
      settings: this.effectiveSettings(),
    };
  }

  /** The authenticated connections held here. */
  sessions(): SessionInfo[] {
    const out: SessionInfo[] = [];
    for (const s of this.#deps.sessions) {
      if (!live(s)) continue;
      out.push({
        userId: s.userId,
        device: s.device,
        connId: s.id,
        node: this.#deps.nodeId,
        remoteAddr: s.remoteAddr,
        connectedAt: s.connectedAt,
        subprotocol: s.subprotocol,
      });
    }
    return out;
  }

  /** Closes `userId`'s connections here with 1008 and `reason`; returns how many. */
  kick(userId: string, reason: string): number {
    let n = 0;
    for (const s of [...this.#deps.sessions]) {
      if (s.userId === userId && live(s)) {
        s.close(1008, reason);
        n++;
      }
    }
    return n;
  }

  /** Pushes `frame` to every authenticated connection here; returns how many. */
  pushAll(frame: Record<string, unknown>): number {
    if (typeof frame !== "object" || frame === null || typeof frame.op !== "string") {
      throw new ImError("bad_request", "push needs a frame with an op");
    }
    let n = 0;
    for (const s of this.#deps.sessions) {
      if (!live(s)) continue;
      s.push(frame);
      n++;
    }
    return n;
  }

  /** Sends a node request to every live node (this one included) and collects the answers. */
  askAll<T = unknown>(type: string, body: unknown = null): Promise<NodeAnswer<T>[]> {
    const deadline = Date.now() + this.#deps.requestTimeoutMs;
    return Promise.all(
      this.#deps.membership.liveNodes().map(async (n) => {
        try {
          const value = n.id === this.#deps.nodeId
            ? await this.handle({ to: NODE_ADDRESS, type, body })
            : await this.#deps.transport.request(n.id, { to: NODE_ADDRESS, type, body, deadline });
          return { node: n.id, ok: true as const, value: value as T };
        } catch (err) {
          const e = err as { code?: string; message?: string };
          return {
            node: n.id,
            ok: false as const,
            error: { code: e.code ?? "internal", message: e.message ?? String(err) },
          };
        }
      }),
    );
  }
}

/** Authenticated and open. */
function live(s: ControlledSession): boolean {
  return s.userId !== "" && s.socket.readyState === 1;
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}
