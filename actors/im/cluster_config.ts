/**
 * The `config` actor kind, key `cluster`: the cluster-wide runtime settings and moderation state
 * an admin changes without a restart.
 *
 * One actor holds it, so concurrent admin changes are serialised (one `version` order); every
 * change is snapshotted before it is answered, so an answered change survives any node's death.
 * Nodes keep a copy ({@link ClusterState}) that the admin API pushes to every live node after a
 * change and that each node re-reads periodically and at start (gateway/admin_control.ts), so a
 * node that missed a push converges within one refresh interval.
 *
 * State:
 * - `runtime`: overrides of the node settings (rate limit, limits, log level); a field that is
 *   absent keeps each node's own configured value.
 * - `muted`: user id → until (ms since the epoch); a muted user's sends are refused (`muted`).
 * - `loggedOutAt`: user id → time of a forced logout; access tokens issued at or before it are
 *   refused. An entry is dropped once every token it could refuse has expired.
 *
 * @module
 */
import { defineBehavior } from "../behavior.ts";
import { BadRequestError } from "../errors.ts";
import type { ImServices } from "./services.ts";

/** The id of the one cluster configuration actor. */
export const CLUSTER_CONFIG_ACTOR = "config/cluster";

/** Log levels an admin may set. */
export type RuntimeLogLevel = "debug" | "info" | "warn" | "error";

/** Settings an admin may change at run time (each optional: absent = the node's own value). */
export interface RuntimeConfig {
  /** Requests per connection per second before `rate_limited` (budget `request`). */
  rateLimitPerSec?: number;
  /** Requests per user per second on one node (budget `request`). */
  userRateLimitPerSec?: number;
  /** Message ops (`send`, ...) per connection per second (budget `message`). */
  messageRatePerSec?: number;
  /** Message ops per user per second on one node. */
  userMessageRatePerSec?: number;
  /** Presence/typing updates per connection per second (budget `presence`). */
  presenceRatePerSec?: number;
  /** Presence/typing updates per user per second on one node. */
  userPresenceRatePerSec?: number;
  /** Largest WebSocket message, bytes. */
  maxFrameBytes?: number;
  /** Deadline of a client request inside the cluster, ms. */
  requestTimeoutMs?: number;
  /** Most members a group may have. */
  groupMaxMembers?: number;
  /** Bytes queued on one socket before it is closed as a slow consumer. */
  maxSocketBufferBytes?: number;
  /** Minimum log level. */
  logLevel?: RuntimeLogLevel;
}

/** The numeric runtime settings. */
export type NumericSetting = Exclude<keyof RuntimeConfig, "logLevel">;

/** Accepted ranges of the numeric runtime settings (the same as the environment's). */
export const RUNTIME_LIMITS: Record<NumericSetting, [min: number, max: number]> = {
  rateLimitPerSec: [1, 1_000_000],
  userRateLimitPerSec: [1, 1_000_000],
  messageRatePerSec: [1, 1_000_000],
  userMessageRatePerSec: [1, 1_000_000],
  presenceRatePerSec: [1, 1_000_000],
  userPresenceRatePerSec: [1, 1_000_000],
  maxFrameBytes: [1_024, 16 * 1_048_576],
  requestTimeoutMs: [100, 600_000],
  groupMaxMembers: [2, 100_000],
  maxSocketBufferBytes: [65_536, 1 << 30],
};

const LOG_LEVELS = ["debug", "info", "warn", "error"];

/** The cluster-wide state every node keeps a copy of. */
export interface ClusterState {
  /** +1 per change; a node applies a copy only when it is newer than its own. */
  version: number;
  runtime: RuntimeConfig;
  muted: Record<string, number>;
  loggedOutAt: Record<string, number>;
}

/** One change (any subset). */
export interface ClusterChange {
  /** Fields to set; a field set to null returns to the nodes' own value. */
  runtime?: { [K in keyof RuntimeConfig]?: RuntimeConfig[K] | null };
  /** Mutes `userId` until `until` (ms), or unmutes it with null. */
  mute?: { userId: string; until: number | null };
  /** Refuses the access tokens of `userId` issued up to `at` (ms). */
  logout?: { userId: string; at: number };
  /** How long an access token lives, ms: entries of `loggedOutAt` older than this are dropped. */
  accessTokenTtlMs?: number;
}

/**
 * Checks a runtime settings change; throws BadRequestError naming the field. Unknown fields are
 * refused so a typo is not silently ignored.
 */
export function validateRuntimeChange(raw: unknown): NonNullable<ClusterChange["runtime"]> {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new BadRequestError("runtime must be an object");
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(raw)) {
    if (k === "logLevel") {
      if (v !== null && !LOG_LEVELS.includes(v as string)) {
        throw new BadRequestError(`logLevel must be one of ${LOG_LEVELS.join(", ")}`);
      }
    } else if (k in RUNTIME_LIMITS) {
      const [min, max] = RUNTIME_LIMITS[k as keyof typeof RUNTIME_LIMITS];
      if (v !== null && (!Number.isSafeInteger(v) || (v as number) < min || (v as number) > max)) {
        throw new BadRequestError(`${k} must be an integer between ${min} and ${max}`);
      }
    } else {
      throw new BadRequestError(`Unknown runtime setting "${k.slice(0, 40)}"`);
    }
    out[k] = v;
  }
  return out as NonNullable<ClusterChange["runtime"]>;
}

/** A fresh, empty state. */
export function emptyClusterState(): ClusterState {
  return { version: 0, runtime: {}, muted: {}, loggedOutAt: {} };
}

/** The behaviour of the cluster configuration actor. */
export const clusterConfigBehavior = defineBehavior<ClusterState, ImServices>({
  kind: "config",
  initialState: emptyClusterState,
  snapshot: "manual",
  decode: (raw) => ({ ...emptyClusterState(), ...(raw as Partial<ClusterState> ?? {}) }),
  handlers: {
    /** The current state. */
    get(ctx) {
      return ctx.state;
    },
    /** Applies a change, snapshots it, answers the new state. */
    async update(ctx, body: ClusterChange) {
      if (typeof body !== "object" || body === null) throw new BadRequestError("Malformed change");
      const now = ctx.services.now();
      const next: ClusterState = structuredClone(ctx.state);
      if (body.runtime) {
        const change = validateRuntimeChange(body.runtime);
        for (const [k, v] of Object.entries(change)) {
          if (v === null) delete (next.runtime as Record<string, unknown>)[k];
          else (next.runtime as Record<string, unknown>)[k] = v;
        }
      }
      if (body.mute) {
        const { userId, until } = body.mute;
        if (typeof userId !== "string" || (until !== null && !Number.isSafeInteger(until))) {
          throw new BadRequestError("Malformed mute");
        }
        if (until === null) delete next.muted[userId];
        else next.muted[userId] = until;
      }
      if (body.logout) {
        const { userId, at } = body.logout;
        if (typeof userId !== "string" || !Number.isSafeInteger(at)) {
          throw new BadRequestError("Malformed logout");
        }
        next.loggedOutAt[userId] = Math.max(at, next.loggedOutAt[userId] ?? 0);
      }
      // Expired entries refuse nothing any more: keep the state (pushed to every node) small.
      for (const [u, until] of Object.entries(next.muted)) if (until <= now) delete next.muted[u];
      const ttl = body.accessTokenTtlMs ?? 86_400_000;
      for (const [u, at] of Object.entries(next.loggedOutAt)) {
        if (at + ttl + 60_000 < now) delete next.loggedOutAt[u];
      }
      next.version = ctx.state.version + 1;
      const before = ctx.state;
      ctx.state = next;
      try {
        await ctx.snapshot();
      } catch (err) {
        // Not committed: the change must not be visible either.
        ctx.state = before;
        throw err;
      }
      return next;
    },
  },
});
