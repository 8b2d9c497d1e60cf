/**
 * The actor host: the activations that live on this node.
 *
 * Guarantees (see docs/extending.md for the developer view):
 * - **One activation per actor id on this host**, however many first messages arrive at once:
 *   they all join one in-flight activation. Cluster-wide uniqueness comes from the placement
 *   claim (compare-and-set) plus store fencing: activation claims the id with
 *   `minEpoch = storedEpoch + 1` and raises the store's epoch (`fence`) before the first turn,
 *   so every older activation's writes are rejected from then on.
 * - **Turns.** One message at a time per actor, FIFO (so per-sender order holds), bounded
 *   mailbox (`overloaded`), expired deadlines dropped unrun (`timeout`). `onActivate` is the
 *   first turn, `onPassivate` the last; timers enqueue ordinary turns.
 * - **Fencing.** When a write of the actor is rejected as fenced, or lease renewal reports the
 *   lease lost, or renewals keep failing for `leaseMs - renewEveryMs`, the activation is dropped
 *   at once WITHOUT further writes (no snapshot, no release) and its queued messages reject with
 *   `moved` so callers re-resolve the actor. Every rejected write is logged ("fenced write
 *   rejected"), also the late ones of an activation already dropped.
 * - **Self-fencing.** When membership reports this node lost, every activation is dropped and no
 *   new one starts (`moved`) until membership lists this node again.
 * - **Passivation** after `passivateAfterMs` idle (no turn, nothing queued, no deferred reply in
 *   flight): `onPassivate`, a snapshot when a turn ran since the last one, `placement.release`.
 *   Messages that arrive meanwhile wait and re-activate the actor afterwards, from the snapshot.
 *   If that snapshot fails (other than fenced) the actor stays active and tries again later.
 *
 * @module
 */
import { Packr } from "msgpackr";
import {
  type ActorContext,
  type ActorId,
  type Behavior,
  type MessageMeta,
  parseActorId,
} from "./behavior.ts";
import {
  BadRequestError,
  DeadlineExceededError,
  ImError,
  MailboxFullError,
  MovedError,
  NotFoundError,
  toImError,
} from "./errors.ts";
import { HookRegistry } from "./hooks.ts";
import { DeferredReply, Mailbox, type MailboxHandler } from "./mailbox.ts";
import { HeapTimer, TimerHeap } from "./timer_heap.ts";
import type { Store } from "../db/store.ts";
import type { Placement } from "../cluster/placement.ts";
import type { Membership } from "../cluster/membership.ts";
import type { Envelope } from "../cluster/transport.ts";

/** The four store methods the host uses. */
export type HostStore = Pick<Store, "storedEpoch" | "fence" | "saveSnapshot" | "loadSnapshot">;

/**
 * How actors reach other actors: the cluster router, so traffic works across nodes. The host
 * never short-cuts to itself.
 */
export interface ActorSend {
  /** Request/reply; should reject with DeadlineExceededError once `deadline` passes. */
  ask(
    to: ActorId,
    type: string,
    body: unknown,
    opts?: { deadline?: number; sender?: string },
  ): Promise<unknown>;
  /** Fire-and-forget. */
  tell(to: ActorId, type: string, body: unknown, opts?: { sender?: string }): void;
}

/** What the host logs through (console fits). Never given message bodies. */
export interface HostLogger {
  /** Optional: activation records (one line per successful activation) go here. */
  debug?(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

/** Options of {@link ActorHost}. */
export interface ActorHostOptions<Svc> {
  /** This node's id (the placement owner name). */
  nodeId: string;
  store: HostStore;
  placement: Placement;
  membership: Membership;
  /** Injected into every actor context as `ctx.services`. */
  services: Svc;
  /** The cluster router, for `ctx.tell` / `ctx.ask`. */
  send: ActorSend;
  /** Idle time before passivation, ms (default 300 000; a behaviour may override it). */
  passivateAfterMs?: number;
  /** Waiting messages per actor (default 1024; a behaviour may override it). */
  mailboxCapacity?: number;
  /** Placement lease length, ms (default 10 000). */
  leaseMs?: number;
  /** Lease renewal period, ms (default `leaseMs / 4`); must be below `leaseMs`. */
  renewEveryMs?: number;
  /** Default `ctx.ask` timeout, ms (default 5 000). */
  askTimeoutMs?: number;
  /** How many entries {@link ActorHost.activationLog} keeps (default 10 000, oldest dropped). */
  activationLogSize?: number;
  /** Time source, ms since the epoch (default `Date.now`). */
  clock?: () => number;
  /** Default `console`. */
  logger?: HostLogger;
}

/** One successful activation. */
export interface ActivationLogEntry {
  actorId: ActorId;
  epoch: number;
  node: string;
  /** Clock ms when the activation completed. */
  at: number;
}

/** Counters of {@link ActorHost.stats}. */
export interface HostStats {
  /** Activations hosted now (activating, active or passivating). */
  active: number;
  /** Successful activations since start. */
  activations: number;
  /** Completed passivations since start. */
  passivations: number;
  /** Activations dropped (fenced, lease lost, self-fencing, dropAll) since start. */
  drops: number;
  /** Messages waiting in all mailboxes (running turns not counted). */
  mailboxDepth: number;
}

type Status = "activating" | "active" | "passivating" | "dropped" | "gone";

type Item =
  | { t: "msg"; type: string; body: unknown; meta: MessageMeta; internal: boolean }
  | { t: "passivate" };

interface Waiting {
  envelope: Envelope;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

/**
 * What activations and their contexts call back into: one object per host (closures made once),
 * so an activation carries no closures of its own.
 */
interface HostOps<Svc> {
  readonly services: Svc;
  turn(rec: Activation<Svc>, item: Item): Promise<unknown>;
  idle(rec: Activation<Svc>): void;
  tell(rec: Activation<Svc>, to: ActorId, type: string, body: unknown): void;
  ask(
    rec: Activation<Svc>,
    to: ActorId,
    type: string,
    body: unknown,
    timeoutMs?: number,
  ): Promise<unknown>;
  setTimer(
    rec: Activation<Svc>,
    name: string,
    delayMs: number,
    type: string,
    body: unknown,
    repeat: boolean,
  ): void;
  cancelTimer(rec: Activation<Svc>, name: string): void;
  snapshot(rec: Activation<Svc>): Promise<void>;
  defer<T>(rec: Activation<Svc>, work: Promise<T>): DeferredReply<T>;
  emit(rec: Activation<Svc>, event: string, payload: unknown): void;
}

const RESOLVED: Promise<void> = Promise.resolve();

/**
 * One activation. Lean on purpose: every connected user keeps its user actor active, so this
 * record (with its context, mailbox and timers) is paid once per connection. Rarely used parts
 * (backlog, waiters, the snapshot chain) are allocated on first use. The record is itself its
 * passivation check's entry on the host's timer heap.
 */
class Activation<Svc> extends HeapTimer implements MailboxHandler<Item> {
  status: Status = "activating";
  /** 0 until claimed. */
  epoch = 0;
  /** Clock time at which the last confirmed lease (claim or renewal) was requested. */
  leaseFrom = 0;
  state: unknown = undefined;
  readonly mailbox: Mailbox<Item>;
  readonly ctx: ActorContext<unknown, Svc>;
  /** Behaviour timers, a linked list through {@link ActorTimer.next}. */
  timers: ActorTimer<Svc> | null = null;
  lastActivity: number;
  /** Turns since the last snapshot (a passivation snapshot is skipped when 0). */
  dirty = 0;
  /** Successful turns towards `{everyTurns}`. */
  okTurns = 0;
  /** Deferred replies not yet settled. */
  inflight = 0;
  inflightWaiters: (() => void)[] | null = null;
  stopRequested = false;
  passivation: Promise<void> | null = null;
  /** Messages that arrived during passivation; re-delivered (re-activating) afterwards. */
  backlog: Waiting[] | null = null;
  /** The last snapshot write queued (null when none is in flight). */
  snapshotChain: Promise<void> | null = null;
  /** Settles when the activation attempt has finished (either way). */
  ready: Promise<void> = RESOLVED;

  constructor(
    readonly ops: HostOps<Svc>,
    readonly id: ActorId,
    readonly kind: string,
    readonly key: string,
    readonly behavior: Behavior<unknown, Svc>,
    readonly idleAfter: number,
    readonly capacity: number,
    clock: () => number,
  ) {
    super();
    this.lastActivity = clock();
    this.mailbox = new Mailbox<Item>({ owner: id, capacity, clock, paused: true, handler: this });
    this.ctx = new ActorCtx(this);
  }

  /** Mailbox handler: runs one turn. */
  run(item: Item): Promise<unknown> {
    return this.ops.turn(this, item);
  }

  /** Mailbox handler: nothing running, nothing waiting. */
  onIdle(): void {
    this.ops.idle(this);
  }

  /** The shape the placement's `renew` reads (no object per actor per renewal). */
  get actorId(): ActorId {
    return this.id;
  }
}

/** A behaviour timer (`ctx.setTimer`) on the host's timer heap. */
class ActorTimer<Svc> extends HeapTimer {
  next: ActorTimer<Svc> | null = null;
  constructor(
    readonly rec: Activation<Svc>,
    readonly name: string,
    public type: string,
    public body: unknown,
    public delay: number,
    public repeat: boolean,
  ) {
    super();
  }
}

/** The context handlers see: a view of the activation (methods on the prototype). */
class ActorCtx<Svc> implements ActorContext<unknown, Svc> {
  readonly #rec: Activation<Svc>;
  constructor(rec: Activation<Svc>) {
    this.#rec = rec;
  }
  get id(): ActorId {
    return this.#rec.id;
  }
  get kind(): string {
    return this.#rec.kind;
  }
  get key(): string {
    return this.#rec.key;
  }
  get epoch(): number {
    return this.#rec.epoch;
  }
  get state(): unknown {
    return this.#rec.state;
  }
  set state(value: unknown) {
    this.#rec.state = value;
  }
  get services(): Svc {
    return this.#rec.ops.services;
  }
  tell(to: ActorId, type: string, body: unknown): void {
    this.#rec.ops.tell(this.#rec, to, type, body);
  }
  ask<T>(to: ActorId, type: string, body: unknown, timeoutMs?: number): Promise<T> {
    return this.#rec.ops.ask(this.#rec, to, type, body, timeoutMs) as Promise<T>;
  }
  setTimer(name: string, delayMs: number, type: string, body?: unknown, repeat?: boolean): void {
    this.#rec.ops.setTimer(this.#rec, name, delayMs, type, body, repeat ?? false);
  }
  cancelTimer(name: string): void {
    this.#rec.ops.cancelTimer(this.#rec, name);
  }
  snapshot(): Promise<void> {
    return this.#rec.ops.snapshot(this.#rec);
  }
  defer<T>(work: Promise<T>): DeferredReply<T> {
    return this.#rec.ops.defer(this.#rec, work);
  }
  stop(): void {
    this.#rec.stopRequested = true;
  }
  emit(event: string, payload: unknown): void {
    this.#rec.ops.emit(this.#rec, event, payload);
  }
}

// Plain MessagePack (no msgpackr record extension) so any reader can decode a snapshot.
const snapshotCodec = new Packr({ useRecords: false });

const MAX_TIMER_MS = 2 ** 31 - 1;

type Timer = ReturnType<typeof setTimeout>;

/** Whether the activation has ended (TS cannot see status changes across awaits). */
function ended(rec: { status: Status }): boolean {
  return rec.status === "dropped" || rec.status === "gone";
}

function isFenced(err: unknown): boolean {
  return typeof err === "object" && err !== null && (err as { code?: unknown }).code === "fenced";
}

function describe(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}

/**
 * Hosts the actors of one node. See the module doc for the guarantees.
 *
 * Lifecycle: `register` the kinds, feed envelopes to `receive` (the router does), and on
 * shutdown `stopAll()` (graceful hand-off) then `close()`.
 */
export class ActorHost<Svc> {
  /** Hooks on kinds (moderation before a message, observers after events). */
  readonly hooks: HookRegistry;

  readonly #nodeId: string;
  readonly #store: HostStore;
  readonly #placement: Placement;
  readonly #membership: Membership;
  readonly #services: Svc;
  readonly #send: ActorSend;
  readonly #passivateAfterMs: number;
  readonly #mailboxCapacity: number;
  readonly #leaseMs: number;
  readonly #renewEveryMs: number;
  readonly #askTimeoutMs: number;
  readonly #logSize: number;
  readonly #clock: () => number;
  readonly #logger: HostLogger;

  readonly #kinds = new Map<string, Behavior<unknown, Svc>>();
  readonly #records = new Map<ActorId, Activation<Svc>>();
  #log: ActivationLogEntry[] = [];
  #activations = 0;
  #passivations = 0;
  #drops = 0;
  #renewTimer: Timer | undefined;
  #renewing: Promise<void> | null = null;
  #stopping = false;
  #closed = false;
  /** Membership reported this node lost and it has not rejoined yet. */
  #selfLost = false;
  readonly #ops: HostOps<Svc>;
  /** Every activation's timers (behaviour timers and passivation checks) on one native timer. */
  readonly #timers: TimerHeap<ActorTimer<Svc> | Activation<Svc>>;

  constructor(options: ActorHostOptions<Svc>) {
    this.#nodeId = options.nodeId;
    this.#store = options.store;
    this.#placement = options.placement;
    this.#membership = options.membership;
    this.#services = options.services;
    this.#send = options.send;
    this.#passivateAfterMs = options.passivateAfterMs ?? 300_000;
    this.#mailboxCapacity = options.mailboxCapacity ?? 1024;
    this.#leaseMs = options.leaseMs ?? 10_000;
    this.#renewEveryMs = options.renewEveryMs ?? this.#leaseMs / 4;
    this.#askTimeoutMs = options.askTimeoutMs ?? 5_000;
    this.#logSize = options.activationLogSize ?? 10_000;
    this.#clock = options.clock ?? Date.now;
    this.#logger = options.logger ?? console;
    if (!(this.#leaseMs > 0)) throw new RangeError("leaseMs must be positive");
    if (!(this.#renewEveryMs > 0 && this.#renewEveryMs < this.#leaseMs)) {
      throw new RangeError("renewEveryMs must be positive and below leaseMs");
    }
    this.hooks = new HookRegistry(this.#logger);
    // Monotonic time: a change of the wall clock moves no timer.
    this.#timers = new TimerHeap((t) => this.#timerFired(t));
    this.#ops = {
      services: this.#services,
      turn: (rec, item) => this.#turn(rec, item),
      idle: (rec) => this.#onIdle(rec),
      tell: (rec, to, type, body) => this.#send.tell(to, type, body, { sender: rec.id }),
      ask: (rec, to, type, body, timeoutMs) =>
        this.#ask(rec.id, to, type, body, timeoutMs ?? this.#askTimeoutMs),
      setTimer: (rec, name, delayMs, type, body, repeat) =>
        this.#setTimer(rec, name, delayMs, type, body, repeat),
      cancelTimer: (rec, name) => this.#cancelTimer(rec, name),
      snapshot: (rec) => this.#writeSnapshot(rec),
      defer: (rec, work) => this.#defer(rec, work),
      emit: (rec, event, payload) => this.hooks.emit(rec.id, rec.kind, event, payload),
    };
    // A node that cannot heartbeat is presumed dead by the others, who may take its actors over.
    this.#membership.onSelfLost(() => {
      this.#selfLost = true;
      if (!this.#closed) this.dropAll("membership lost (self-fencing)");
    });
    // Until this node is a member again, it starts no activation: the others may be taking its
    // actors over right now.
    this.#membership.onChange((nodes) => {
      if (this.#selfLost && nodes.some((n) => n.id === this.#nodeId)) this.#selfLost = false;
    });
  }

  /** This host's node id. */
  get nodeId(): string {
    return this.#nodeId;
  }

  /**
   * Registers an actor kind. Throws TypeError when the kind is malformed or already registered.
   * Messages to an unregistered kind reject with `not_found`.
   */
  // `any`: a list of kinds with different state types (`Behavior<A> | Behavior<B>`) must be
  // registrable in a loop; the state type only matters inside each behaviour.
  // deno-lint-ignore no-explicit-any
  register(behavior: Behavior<any, Svc>): void {
    const kind = behavior.kind;
    if (!kind || kind.includes("/")) throw new TypeError(`Invalid actor kind "${kind}"`);
    if (this.#kinds.has(kind)) throw new TypeError(`Actor kind "${kind}" is already registered`);
    this.#kinds.set(kind, behavior as unknown as Behavior<unknown, Svc>);
  }

  /** Whether `kind` is registered. */
  hasKind(kind: string): boolean {
    return this.#kinds.has(kind);
  }

  /**
   * Delivers an envelope to the local activation of `envelope.to`, activating it on first
   * message, and resolves with the handler's reply. Rejects with `not_found` (unknown kind),
   * `bad_request` (malformed id, unknown message type), `overloaded` (mailbox full), `timeout`
   * (deadline passed before the turn), `moved` (this node does not or no longer hosts it:
   * re-resolve), or the handler's / a hook's error.
   */
  receive(envelope: Envelope): Promise<unknown> {
    try {
      return this.#deliver(envelope);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Whether `actorId` has an activation here that is running (not activating or leaving). */
  isActive(actorId: ActorId): boolean {
    return this.#records.get(actorId)?.status === "active";
  }

  /** The ids of the activations hosted now. */
  activeIds(): ActorId[] {
    return [...this.#records.keys()];
  }

  /** Successful activations, oldest first (the last `activationLogSize`). */
  activationLog(): ActivationLogEntry[] {
    return [...this.#log];
  }

  /** Counters; see {@link HostStats}. */
  stats(): HostStats {
    let depth = 0;
    for (const rec of this.#records.values()) {
      depth += rec.mailbox.depth + (rec.backlog?.length ?? 0);
    }
    return {
      active: this.#records.size,
      activations: this.#activations,
      passivations: this.#passivations,
      drops: this.#drops,
      mailboxDepth: depth,
    };
  }

  /**
   * Passivates `actorId` now (after the messages already queued): `onPassivate`, snapshot,
   * release. Resolves when done; a no-op when it is not hosted here.
   */
  async passivate(actorId: ActorId): Promise<void> {
    let rec = this.#records.get(actorId);
    if (rec?.status === "activating") {
      await rec.ready;
      rec = this.#records.get(actorId);
    }
    if (rec) await this.#passivate(rec, false);
  }

  /**
   * Graceful hand-off (SIGTERM): refuses new messages with `moved`, lets the queued turns
   * finish, then passivates every activation (snapshot, release). Resolves when all are gone.
   */
  async stopAll(): Promise<void> {
    this.#stopping = true;
    const all = [...this.#records.values()];
    await Promise.all(all.map(async (rec) => {
      if (rec.status === "activating") await rec.ready;
      await this.#passivate(rec, true);
    }));
  }

  /**
   * A write made for `actorId` at `epoch` outside its turns (the node's ack writer batches
   * cursors of many actors) was rejected as fenced: when that activation is still hosted here,
   * it is dropped as if a write of its own had been rejected (a newer activation exists).
   */
  reportFenced(actorId: ActorId, epoch: number, where = "a batched write"): void {
    const rec = this.#records.get(actorId);
    if (rec && rec.epoch === epoch) this.#fenced(rec, where);
  }

  /**
   * Drops every activation at once, without any write (no snapshot, no release): for a node
   * that must presume itself fenced. Queued messages reject with `moved`.
   */
  dropAll(reason: string): void {
    for (const rec of [...this.#records.values()]) this.#drop(rec, reason);
  }

  /**
   * Stops the host: no more messages, renewals or timers. Activations still hosted are dropped
   * (their leases expire); call {@link ActorHost.stopAll} first for a graceful hand-off.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#stopping = true;
    this.dropAll("host closed");
    this.#timers.clear();
    this.#stopRenewLoop();
    if (this.#renewing) await this.#renewing;
  }

  // ---------------------------------------------------------------- delivery and activation

  #deliver(env: Envelope): Promise<unknown> {
    if (this.#stopping) throw new MovedError(env.to);
    let parsed: { kind: string; key: string };
    try {
      parsed = parseActorId(env.to);
    } catch {
      throw new BadRequestError(`Malformed actor id "${env.to}"`);
    }
    const behavior = this.#kinds.get(parsed.kind);
    if (!behavior) throw new NotFoundError(`Unknown actor kind "${parsed.kind}"`);
    if (!Object.hasOwn(behavior.handlers, env.type)) {
      throw new BadRequestError(`Actor kind "${parsed.kind}" has no message type "${env.type}"`);
    }
    // Checked here too so an expired message does not cost an activation.
    if (env.deadline !== undefined && this.#clock() >= env.deadline) {
      throw new DeadlineExceededError(`Deadline passed before "${env.to}" received it`);
    }
    let rec = this.#records.get(env.to);
    if (!rec) {
      if (this.#selfLost) throw new MovedError(env.to);
      rec = this.#startActivation(env.to, parsed.kind, parsed.key, behavior);
    }
    if (rec.status === "passivating") {
      const backlog = rec.backlog ??= [];
      if (backlog.length >= rec.capacity) throw new MailboxFullError(env.to);
      const { promise, resolve, reject } = Promise.withResolvers<unknown>();
      backlog.push({ envelope: env, resolve, reject });
      return promise;
    }
    return this.#enqueue(rec, env);
  }

  #enqueue(rec: Activation<Svc>, env: Envelope): Promise<unknown> {
    rec.lastActivity = this.#clock();
    return rec.mailbox.enqueue({
      t: "msg",
      type: env.type,
      body: env.body,
      meta: { type: env.type, sender: env.sender, deadline: env.deadline },
      internal: false,
    }, { deadline: env.deadline });
  }

  #startActivation(
    id: ActorId,
    kind: string,
    key: string,
    behavior: Behavior<unknown, Svc>,
  ): Activation<Svc> {
    const rec = new Activation(
      this.#ops,
      id,
      kind,
      key,
      behavior,
      behavior.passivateAfterMs ?? this.#passivateAfterMs,
      behavior.mailboxCapacity ?? this.#mailboxCapacity,
      this.#clock,
    );
    this.#records.set(id, rec);
    this.#startRenewLoop();
    const ready = this.#activate(rec);
    // Kept only while activating: a settled activation needs no promise of its own.
    if (rec.status === "activating") rec.ready = ready;
    return rec;
  }

  async #activate(rec: Activation<Svc>): Promise<void> {
    try {
      await this.#activateSteps(rec);
    } finally {
      rec.ready = RESOLVED;
    }
  }

  async #activateSteps(rec: Activation<Svc>): Promise<void> {
    const { id, key, behavior } = rec;
    let claimed = false;
    try {
      const minEpoch = (await this.#store.storedEpoch(id)) + 1;
      if (rec.status !== "activating") return;
      const claimAt = this.#clock();
      const epoch = await this.#claim(id, minEpoch);
      if (epoch === null) throw new MovedError(id);
      rec.epoch = epoch;
      rec.leaseFrom = claimAt;
      claimed = true;
      if (rec.status !== "activating") return;
      await this.#store.fence(id, epoch);
      if (rec.status !== "activating") return;
      const snap = await this.#store.loadSnapshot(id);
      if (rec.status !== "activating") return;
      if (snap) {
        const raw = snapshotCodec.unpack(snap.data);
        rec.state = behavior.decode ? behavior.decode(raw, key) : raw;
      } else {
        rec.state = behavior.initialState(key);
      }
      if (behavior.onActivate) {
        rec.dirty++;
        await behavior.onActivate(rec.ctx);
        if (rec.status !== "activating") return;
      }
    } catch (err) {
      if (rec.status !== "activating") return;
      const fenced = isFenced(err);
      const error = fenced || err instanceof MovedError ? new MovedError(id) : toImError(err);
      if (!(err instanceof MovedError)) {
        this.#logger.warn("actor activation failed", { actorId: id, error: describe(err) });
      }
      this.#drop(rec, `activation failed: ${describe(err)}`, error, false);
      // The claim is ours and nothing was written with it: hand it back at once rather than
      // leaving the id unreachable until the lease expires. Not when fenced (not ours).
      if (claimed && !fenced) await this.#release(rec);
      return;
    }
    rec.status = "active";
    const at = this.#clock();
    rec.lastActivity = at;
    this.#activations++;
    this.#log.push({ actorId: id, epoch: rec.epoch, node: this.#nodeId, at });
    // The activation record operators (and the cluster tests) count: one line per activation.
    this.#logger.debug?.("actor activated", { actorId: id, epoch: rec.epoch, node: this.#nodeId });
    if (this.#log.length > this.#logSize) this.#log = this.#log.slice(-this.#logSize);
    rec.mailbox.start();
    if (rec.stopRequested) void this.#passivate(rec, false);
  }

  /** Claims `id` for this node; the epoch, or null when another live node holds it. */
  async #claim(id: ActorId, minEpoch: number): Promise<number | null> {
    const options = { leaseMs: this.#leaseMs, minEpoch };
    let res = await this.#placement.claim(id, this.#nodeId, options);
    if (!res.claimed && res.record.node !== this.#nodeId) {
      const holder = res.record.node;
      if (this.#membership.isLive(holder)) return null;
      res = await this.#placement.claim(id, this.#nodeId, { ...options, deadNodes: [holder] });
    }
    if (!res.claimed) return null;
    if (res.record.epoch < minEpoch) {
      // A re-claim of a record this node left behind (a dropped activation) keeps its old epoch;
      // a zombie turn of that activation could still write with it. Take a fresh epoch.
      await this.#placement.release(id, this.#nodeId, res.record.epoch);
      res = await this.#placement.claim(id, this.#nodeId, options);
      if (!res.claimed || res.record.epoch < minEpoch) return null;
    }
    return res.record.epoch;
  }

  async #release(rec: Activation<Svc>): Promise<void> {
    try {
      await this.#placement.release(rec.id, this.#nodeId, rec.epoch);
    } catch (err) {
      // Harmless: the lease expires by itself; until then callers get `moved` and retry.
      this.#logger.warn("placement release failed", { actorId: rec.id, error: describe(err) });
    }
  }

  // ---------------------------------------------------------------------------- turns

  async #turn(rec: Activation<Svc>, item: Item): Promise<unknown> {
    if (item.t === "passivate") {
      if (rec.behavior.onPassivate) {
        rec.dirty++;
        await rec.behavior.onPassivate(rec.ctx);
      }
      return undefined;
    }
    rec.lastActivity = this.#clock();
    let body = item.body;
    if (!item.internal && this.hooks.hasBeforeAccept(rec.kind, item.type)) {
      body = await this.hooks.runBeforeAccept(rec.id, rec.kind, item.type, body);
    }
    const handler = Object.hasOwn(rec.behavior.handlers, item.type)
      ? rec.behavior.handlers[item.type]
      : undefined;
    if (!handler) {
      throw new BadRequestError(`Actor kind "${rec.kind}" has no message type "${item.type}"`);
    }
    rec.dirty++;
    let out: unknown;
    try {
      out = await handler(rec.ctx, body, item.meta);
    } catch (err) {
      if (isFenced(err)) {
        this.#fenced(rec, "a handler");
        throw new MovedError(rec.id);
      }
      if (!(err instanceof ImError)) {
        this.#logger.error("actor handler failed", {
          actorId: rec.id,
          type: item.type,
          error: describe(err),
        });
      }
      throw toImError(err);
    } finally {
      if (rec.stopRequested && rec.status === "active") void this.#passivate(rec, false);
    }
    await this.#afterTurn(rec);
    return out;
  }

  /** Applies the snapshot policy after a turn that did not throw. */
  async #afterTurn(rec: Activation<Svc>): Promise<void> {
    const policy = rec.behavior.snapshot ?? "manual";
    let due = false;
    if (policy === "every-turn") due = true;
    else if (typeof policy === "object") {
      rec.okTurns++;
      if (rec.okTurns >= policy.everyTurns) due = true;
    }
    if (!due || rec.status === "dropped" || rec.status === "gone") return;
    rec.okTurns = 0;
    try {
      await this.#writeSnapshot(rec);
    } catch (err) {
      // Fenced: this activation's state is gone with it; the caller must retry elsewhere.
      if (ended(rec)) throw new MovedError(rec.id);
      // Otherwise the reply stands: the state stays dirty and is written again later.
      this.#logger.warn("snapshot after turn failed", { actorId: rec.id, error: describe(err) });
    }
  }

  /** Writes `pack(encode(state))` fenced by the epoch; serialised per actor. */
  #writeSnapshot(rec: Activation<Svc>): Promise<void> {
    const run = async () => {
      if (ended(rec)) throw new MovedError(rec.id);
      const raw = rec.behavior.encode ? rec.behavior.encode(rec.state) : rec.state;
      const data = snapshotCodec.pack(raw);
      const dirty = rec.dirty;
      rec.dirty = 0;
      try {
        await this.#store.saveSnapshot(rec.id, rec.epoch, data);
      } catch (err) {
        rec.dirty += dirty;
        if (isFenced(err)) {
          this.#fenced(rec, "a snapshot");
          throw new MovedError(rec.id);
        }
        throw err;
      }
    };
    // Serialised per actor; the chain is dropped once the last write has settled.
    const p = (rec.snapshotChain ?? RESOLVED).then(run, run);
    const tail: Promise<void> = p.then(() => {
      if (rec.snapshotChain === tail) rec.snapshotChain = null;
    }, () => {
      if (rec.snapshotChain === tail) rec.snapshotChain = null;
    });
    rec.snapshotChain = tail;
    return p;
  }

  #ask(from: ActorId, to: ActorId, type: string, body: unknown, timeoutMs: number) {
    const deadline = this.#clock() + timeoutMs;
    let timer: Timer | undefined;
    // The router enforces the deadline too; this guard keeps the promise of ctx.ask even with a
    // router that does not.
    const guard = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new DeadlineExceededError(`No answer from "${to}" within ${timeoutMs} ms`)),
        Math.min(Math.max(0, timeoutMs), MAX_TIMER_MS),
      );
    });
    let call: Promise<unknown>;
    try {
      call = this.#send.ask(to, type, body, { deadline, sender: from });
    } catch (err) {
      clearTimeout(timer);
      return Promise.reject(err);
    }
    return Promise.race([call, guard]).finally(() => clearTimeout(timer));
  }

  #defer<T>(rec: Activation<Svc>, work: Promise<T>): DeferredReply<T> {
    rec.inflight++;
    const reply = Promise.resolve(work).then(
      (value) => value,
      (err) => {
        if (isFenced(err)) {
          this.#fenced(rec, "deferred work");
          throw new MovedError(rec.id);
        }
        throw toImError(err);
      },
    ).finally(() => {
      rec.inflight--;
      rec.lastActivity = this.#clock();
      if (rec.inflight === 0) {
        const waiters = rec.inflightWaiters;
        rec.inflightWaiters = null;
        if (waiters) { for (const wake of waiters) wake(); }
        if (rec.mailbox.idle) this.#onIdle(rec);
      }
    });
    // The rejection reaches the caller through the turn's reply; this branch only keeps a
    // deferral the handler forgot to return from counting as an unhandled rejection.
    reply.catch(() => {});
    return new DeferredReply(reply);
  }

  // ------------------------------------------------------------------------- timers

  #setTimer(
    rec: Activation<Svc>,
    name: string,
    delayMs: number,
    type: string,
    body: unknown,
    repeat: boolean,
  ): void {
    if (rec.status !== "active" && rec.status !== "activating") return;
    const ms = Math.min(Math.max(0, delayMs), MAX_TIMER_MS);
    const delay = repeat ? Math.max(1, ms) : ms;
    // A timer with the same name is replaced: its entry is reused.
    let t = rec.timers;
    while (t && t.name !== name) t = t.next;
    if (t) {
      t.type = type;
      t.body = body;
      t.delay = delay;
      t.repeat = repeat;
    } else {
      t = new ActorTimer(rec, name, type, body, delay, repeat);
      t.next = rec.timers;
      rec.timers = t;
    }
    this.#timers.scheduleIn(t, delay);
  }

  #timerFired(t: ActorTimer<Svc> | Activation<Svc>): void {
    if (t instanceof Activation) {
      this.#idleCheck(t);
      return;
    }
    const rec = t.rec;
    if (t.repeat) this.#timers.scheduleIn(t, t.delay);
    else this.#unlinkTimer(rec, t);
    if (rec.status !== "active" && rec.status !== "activating") return;
    const name = t.name;
    const item: Item = {
      t: "msg",
      type: t.type,
      body: t.body,
      meta: { type: t.type, sender: `timer:${name}` },
      internal: true,
    };
    try {
      rec.mailbox.enqueue(item).catch((err) => {
        if (rec.status === "dropped" || rec.status === "gone") return;
        this.#logger.warn("timer turn failed", {
          actorId: rec.id,
          timer: name,
          error: describe(err),
        });
      });
    } catch (err) {
      this.#logger.warn("timer message refused", {
        actorId: rec.id,
        timer: name,
        error: describe(err),
      });
    }
  }

  #unlinkTimer(rec: Activation<Svc>, t: ActorTimer<Svc>): void {
    if (rec.timers === t) rec.timers = t.next;
    else {
      let p = rec.timers;
      while (p && p.next !== t) p = p.next;
      if (p) p.next = t.next;
    }
    t.next = null;
  }

  #cancelTimer(rec: Activation<Svc>, name: string): void {
    let t = rec.timers;
    while (t && t.name !== name) t = t.next;
    if (!t) return;
    this.#timers.remove(t);
    this.#unlinkTimer(rec, t);
  }

  #cancelAllTimers(rec: Activation<Svc>): void {
    for (let t = rec.timers; t; t = t.next) this.#timers.remove(t);
    rec.timers = null;
    this.#timers.remove(rec);
  }

  // ------------------------------------------------------------------------ passivation

  #onIdle(rec: Activation<Svc>): void {
    rec.lastActivity = this.#clock();
    if (rec.status !== "active" || rec.inflight > 0) return;
    this.#armIdle(rec);
  }

  #armIdle(rec: Activation<Svc>): void {
    if (rec.index >= 0 || !Number.isFinite(rec.idleAfter) || rec.idleAfter < 0) return;
    // One check per idle period rather than one reset per message: when it comes early
    // (activity since), it re-arms for the remainder.
    this.#timers.scheduleIn(rec, rec.lastActivity + rec.idleAfter - this.#clock());
  }

  #idleCheck(rec: Activation<Svc>): void {
    if (rec.status !== "active" || !rec.mailbox.idle || rec.inflight > 0) return;
    if (this.#clock() - rec.lastActivity >= rec.idleAfter) void this.#passivate(rec, false);
    else this.#armIdle(rec);
  }

  #passivate(rec: Activation<Svc>, final: boolean): Promise<void> {
    if (rec.status === "passivating") return rec.passivation ?? Promise.resolve();
    if (rec.status !== "active") return Promise.resolve();
    rec.status = "passivating";
    this.#timers.remove(rec);
    rec.passivation = this.#runPassivation(rec, final);
    return rec.passivation;
  }

  /** Never rejects: every outcome is logged or turned into the actor's next state. */
  async #runPassivation(rec: Activation<Svc>, final: boolean): Promise<void> {
    let keep = false;
    try {
      try {
        // After the messages already queued: they were accepted by this activation.
        await rec.mailbox.enqueue({ t: "passivate" }, { force: true });
      } catch (err) {
        if (isFenced(err)) this.#fenced(rec, "onPassivate");
        if (ended(rec)) return;
        this.#logger.warn("onPassivate failed", { actorId: rec.id, error: describe(err) });
      }
      await this.#waitInflight(rec);
      if (ended(rec)) return;
      if (rec.dirty > 0) {
        try {
          await this.#writeSnapshot(rec);
        } catch (err) {
          if (ended(rec)) return;
          if (!final) {
            // Releasing now would lose the turns since the last snapshot: stay and retry later.
            keep = true;
            this.#logger.warn("passivation snapshot failed; actor stays active", {
              actorId: rec.id,
              error: describe(err),
            });
            return;
          }
          this.#logger.error("final snapshot failed; state since the last snapshot is lost", {
            actorId: rec.id,
            error: describe(err),
          });
        }
      }
      if (ended(rec)) return;
      await this.#release(rec);
    } catch (err) {
      this.#logger.error("passivation failed", { actorId: rec.id, error: describe(err) });
    } finally {
      if (rec.status === "passivating") {
        if (keep) this.#resume(rec);
        else this.#finishPassivation(rec);
      }
    }
  }

  #waitInflight(rec: Activation<Svc>): Promise<void> {
    if (rec.inflight === 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      // Bounded: a deferral that never settles must not block a shutdown. Writing after the
      // release is safe, since the next activation's fence rejects it.
      const timer = setTimeout(() => {
        this.#logger.warn("passivating with deferred replies still running", {
          actorId: rec.id,
          inflight: rec.inflight,
        });
        resolve();
      }, this.#leaseMs);
      (rec.inflightWaiters ??= []).push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  #resume(rec: Activation<Svc>): void {
    rec.status = "active";
    rec.stopRequested = false;
    rec.passivation = null;
    const backlog = rec.backlog ?? [];
    rec.backlog = null;
    for (const w of backlog) this.#redeliver(w, () => this.#enqueue(rec, w.envelope));
    rec.lastActivity = this.#clock();
    if (rec.mailbox.idle) this.#armIdle(rec);
  }

  #finishPassivation(rec: Activation<Svc>): void {
    rec.status = "gone";
    this.#cancelAllTimers(rec);
    this.#forget(rec);
    rec.mailbox.close(() => new MovedError(rec.id));
    this.#passivations++;
    const backlog = rec.backlog ?? [];
    rec.backlog = null;
    // In arrival order: the first re-activates the actor, the others join that activation.
    for (const w of backlog) this.#redeliver(w, () => this.#deliver(w.envelope));
  }

  #redeliver(w: Waiting, deliver: () => Promise<unknown>): void {
    try {
      deliver().then(w.resolve, w.reject);
    } catch (err) {
      w.reject(err);
    }
  }

  // -------------------------------------------------------------------- drops and leases

  #drop(rec: Activation<Svc>, reason: string, error?: ImError, log = true): void {
    if (rec.status === "dropped" || rec.status === "gone") return;
    const wasActive = rec.status !== "activating";
    rec.status = "dropped";
    this.#cancelAllTimers(rec);
    this.#forget(rec);
    const err = error ?? new MovedError(rec.id);
    rec.mailbox.close(() => err);
    const backlog = rec.backlog ?? [];
    const waiters = rec.inflightWaiters ?? [];
    rec.backlog = null;
    rec.inflightWaiters = null;
    for (const w of backlog) w.reject(err);
    for (const wake of waiters) wake();
    if (wasActive) this.#drops++;
    if (log) {
      this.#logger.warn("actor dropped", { actorId: rec.id, epoch: rec.epoch, reason });
    }
  }

  /**
   * The store rejected a write of this activation: a newer activation exists elsewhere. Logged
   * even when the activation was already dropped (a late write of a zombie turn), since that is
   * the evidence that fencing did its job; then the activation is dropped without writes.
   */
  #fenced(rec: Activation<Svc>, where: string): void {
    this.#logger.warn("fenced write rejected", { actorId: rec.id, epoch: rec.epoch, in: where });
    this.#drop(rec, `fenced write in ${where}`);
  }

  #forget(rec: Activation<Svc>): void {
    if (this.#records.get(rec.id) === rec) this.#records.delete(rec.id);
    if (this.#records.size === 0) this.#stopRenewLoop();
  }

  #startRenewLoop(): void {
    if (this.#renewTimer !== undefined || this.#closed) return;
    this.#renewTimer = setInterval(() => this.#renewTick(), this.#renewEveryMs);
  }

  #stopRenewLoop(): void {
    if (this.#renewTimer === undefined) return;
    clearInterval(this.#renewTimer);
    this.#renewTimer = undefined;
  }

  #renewTick(): void {
    this.#selfFence();
    if (this.#renewing) return;
    const held = [...this.#records.values()].filter((r) =>
      r.epoch > 0 && r.status !== "dropped" && r.status !== "gone"
    );
    if (held.length === 0) return;
    const startedAt = this.#clock();
    // The records themselves have the `{actorId, epoch}` shape renew reads.
    const actors: { actorId: string; epoch: number }[] = held;
    this.#renewing = (async () => {
      try {
        const lost = new Set(await this.#placement.renew(this.#nodeId, actors, this.#leaseMs));
        for (const rec of held) {
          if (lost.has(rec.id)) this.#drop(rec, "lease lost");
          else if (rec.status !== "dropped" && rec.status !== "gone") {
            rec.leaseFrom = Math.max(rec.leaseFrom, startedAt);
          }
        }
      } catch (err) {
        this.#logger.warn("lease renewal failed", {
          node: this.#nodeId,
          actors: actors.length,
          error: describe(err),
        });
      } finally {
        this.#renewing = null;
      }
    })();
  }

  /**
   * Drops every activation whose last confirmed lease was requested `leaseMs - renewEveryMs`
   * ago or more: the lease may expire before the next renewal, after which another node may
   * take the actor over. When renewals keep failing, that is all of them.
   */
  #selfFence(): void {
    const limit = this.#leaseMs - this.#renewEveryMs;
    const now = this.#clock();
    for (const rec of [...this.#records.values()]) {
      if (rec.epoch > 0 && now - rec.leaseFrom >= limit) {
        this.#drop(rec, "lease renewals failing (self-fencing)");
      }
    }
  }
}
