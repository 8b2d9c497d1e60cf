/**
 * Node-to-node transport over NATS: the {@link Transport} port for a cluster.
 *
 * Wire: MessagePack (msgpackr). Every node listens on `<prefix>.node.<nodeId>.req` (requests
 * and tells) and `<prefix>.node.<nodeId>.dlv` (deliveries). Envelopes, replies and deliveries
 * are coalesced per destination: everything queued in one turn of the event loop (or up to
 * `maxBatch` items) travels as ONE NATS message holding an array, which is what makes NATS fast
 * (publishes are cheap, round trips are not).
 *
 * Request/reply uses ONE shared reply subscription per node (`<prefix>.node.<nodeId>.rep.*`)
 * and correlation ids, not `nc.request()`. Each request batch carries its own reply subject
 * suffix so that NATS's "no responders" answer for a destination nobody serves fails exactly
 * that batch at once with UnavailableError.
 *
 * Guarantees (on top of the port's):
 * - Deadlines are enforced by the caller: a request settles by its deadline at the latest.
 *   An envelope that arrives already expired is not run.
 * - A request to this node itself calls the handler directly.
 * - Remote ImErrors keep their code and message; other errors arrive as `internal` without
 *   their details.
 * - While NATS is unreachable, requests fail at once with UnavailableError (pending ones too),
 *   tells and deliveries are dropped (they are hints); the client reconnects by itself and
 *   traffic resumes without any action.
 *
 * @module
 */

import { connect, Events, type Msg, type NatsConnection, type NatsError } from "nats";
import { Packr } from "msgpackr";
import type { Delivery, Envelope, EnvelopeHandler, Transport } from "./transport.ts";
import { createLogger, type Logger } from "../observability/log.ts";
import {
  BadRequestError,
  DeadlineExceededError,
  errorFromWire,
  UnavailableError,
} from "../actors/errors.ts";
import {
  errorToWire,
  FALLBACK_TIMEOUT_MS,
  invoke,
  rethrowAsImError,
  type WireError,
  withDeadline,
} from "./deadline.ts";

/** Options of {@link NatsTransport.connect}. */
export interface NatsTransportOptions {
  /** This node's id: a NATS subject token (no `.`, `*`, `>` or whitespace). */
  nodeId: string;
  /** NATS server url(s) (default `nats://127.0.0.1:4222`). */
  servers?: string | string[];
  /** First token of every subject (default `im`), so several clusters can share one NATS. */
  subjectPrefix?: string;
  /** Items per destination after which a batch is sent without waiting for the turn's end. */
  maxBatch?: number;
  /** Timeout of envelopes without a deadline, ms (default 30000). */
  fallbackTimeoutMs?: number;
  /** Pause between reconnect attempts, ms (default 250). */
  reconnectTimeWaitMs?: number;
  /** Where connection changes and dropped items are reported (default: a stderr logger). */
  log?: Pick<Logger, "warn" | "error">;
}

/** Counters of a {@link NatsTransport}. */
export interface NatsTransportStats {
  /** NATS messages published (each may carry many items). */
  published: number;
  /** Items (envelopes, replies, deliveries) sent in them. */
  items: number;
  /** Tells and deliveries dropped (destination unreachable, connection down, no handler). */
  dropped: number;
  /** Requests in flight. */
  pending: number;
}

/** Request/tell item: [correlation id (0 = tell), to, type, body, deadline (0 = none), sender]. */
type RequestItem = [number, string, string, unknown, number, string | null];
/** Delivery item: [frame, users, seqs]. */
type DeliveryItem = [Record<string, unknown>, string[], number[] | null];

interface Pending {
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
  timer: ReturnType<typeof setTimeout>;
  /** The reply-subject suffix of the batch this request left in (0 = not sent yet). */
  batch: number;
}

interface Outbox {
  items: unknown[];
  /** Correlation ids of the request items, for failing them together. */
  requests: number[];
}

const TOKEN = /^[^.*>\s]+$/;

// Bodies are plain data; records (useRecords) would make every message depend on shared
// structure state between nodes.
// copyBuffers: a decoded byte array must not be a view into the NATS read buffer.
const packr = new Packr({ useRecords: false, moreTypes: false, copyBuffers: true });

/** The {@link Transport} port over NATS (see the module doc). */
export class NatsTransport implements Transport {
  /** This node's id. */
  readonly nodeId: string;
  readonly #nc: NatsConnection;
  readonly #prefix: string;
  readonly #maxBatch: number;
  readonly #fallbackTimeoutMs: number;
  readonly #replyBase: string;
  #handler: EnvelopeHandler | null = null;
  #deliveryHandler: ((deliveries: Delivery[]) => void) | null = null;
  #connected = true;
  #closed = false;
  #seq = 0;
  #batchSeq = 0;
  readonly #pending = new Map<number, Pending>();
  readonly #batches = new Map<number, number[]>();
  readonly #reqOut = new Map<string, Outbox>();
  readonly #dlvOut = new Map<string, Outbox>();
  readonly #replyOut = new Map<string, unknown[]>();
  readonly #selfDeliveries: Delivery[] = [];
  #flushScheduled = false;
  #statusLoop: Promise<void> = Promise.resolve();
  #stopStatus = () => {};
  readonly #stats = { published: 0, items: 0, dropped: 0 };
  readonly #log: Pick<Logger, "warn" | "error">;

  private constructor(nc: NatsConnection, options: NatsTransportOptions) {
    this.nodeId = options.nodeId;
    this.#nc = nc;
    this.#prefix = options.subjectPrefix ?? "im";
    this.#maxBatch = options.maxBatch ?? 256;
    this.#fallbackTimeoutMs = options.fallbackTimeoutMs ?? FALLBACK_TIMEOUT_MS;
    this.#replyBase = `${this.#subject(this.nodeId)}.rep`;
    this.#log = options.log ?? createLogger({ level: "warn", fields: { node: options.nodeId } });
  }

  /**
   * Connects to NATS and subscribes to this node's replies and deliveries; `serve` starts
   * taking requests. Rejects with UnavailableError when NATS cannot be reached.
   */
  static async connect(options: NatsTransportOptions): Promise<NatsTransport> {
    if (!TOKEN.test(options.nodeId)) {
      throw new RangeError(`Node id "${options.nodeId}" is not a NATS subject token`);
    }
    const prefix = options.subjectPrefix ?? "im";
    if (!prefix.split(".").every((t) => TOKEN.test(t))) {
      throw new RangeError(`Subject prefix "${prefix}" is not a NATS subject`);
    }
    let nc: NatsConnection;
    try {
      nc = await connect({
        servers: options.servers ?? "nats://127.0.0.1:4222",
        name: `im-${options.nodeId}`,
        maxReconnectAttempts: -1,
        reconnectTimeWait: options.reconnectTimeWaitMs ?? 250,
        reconnectJitter: 50,
      });
    } catch (err) {
      throw new UnavailableError("NATS is unreachable", { cause: err });
    }
    const t = new NatsTransport(nc, options);
    t.#start();
    try {
      await nc.flush();
    } catch (err) {
      await t.close();
      throw new UnavailableError("NATS is unreachable", { cause: err });
    }
    return t;
  }

  #subject(node: string): string {
    return `${this.#prefix}.node.${node}`;
  }

  #start(): void {
    const nc = this.#nc;
    nc.subscribe(`${this.#replyBase}.*`, {
      callback: (err, msg) => err ? this.#subscriptionFailed(err) : this.#onReply(msg),
    });
    nc.subscribe(`${this.#subject(this.nodeId)}.dlv`, {
      callback: (err, msg) => err ? this.#subscriptionFailed(err) : this.#onDeliveries(msg),
    });
    const status = nc.status();
    // The iterator does not end by itself when the connection closes; close() stops it.
    this.#stopStatus = () => (status as unknown as { stop(): void }).stop();
    this.#statusLoop = (async () => {
      for await (const s of status) {
        if (s.type === Events.Disconnect) {
          if (this.#connected) this.#log.warn("nats: connection lost; reconnecting");
          this.#connected = false;
          // Replies cannot reach us while we are away: fail now rather than at the deadline.
          this.#failAll(new UnavailableError("NATS connection lost"));
        } else if (s.type === Events.Reconnect) {
          this.#connected = true;
          this.#log.warn("nats: connection restored");
        }
      }
    })();
  }

  /** Starts serving: `handler` receives envelopes addressed to this node. */
  async serve(handler: EnvelopeHandler): Promise<void> {
    if (this.#closed) throw new UnavailableError("Transport is closed");
    if (this.#handler) throw new Error("Transport is already serving");
    this.#handler = handler;
    this.#nc.subscribe(`${this.#subject(this.nodeId)}.req`, {
      callback: (err, msg) => err ? this.#subscriptionFailed(err) : this.#onRequests(msg),
    });
    try {
      // The subscription is registered on the server once the flush returns.
      await this.#nc.flush();
    } catch (err) {
      throw new UnavailableError("NATS is unreachable", { cause: err });
    }
  }

  /** Request/reply to `node`, settled by the envelope's deadline at the latest. */
  request(node: string, envelope: Envelope): Promise<unknown> {
    if (this.#closed) return Promise.reject(new UnavailableError("Transport is closed"));
    const now = Date.now();
    const deadline = envelope.deadline ?? now + this.#fallbackTimeoutMs;
    if (deadline <= now) return Promise.reject(new DeadlineExceededError());
    if (node === this.nodeId) {
      const handler = this.#handler;
      if (!handler) return Promise.reject(new UnavailableError("This node is not serving"));
      return withDeadline(invoke(handler, envelope).catch(rethrowAsImError), deadline);
    }
    if (!this.#connected) {
      return Promise.reject(new UnavailableError("NATS connection is down"));
    }
    const id = ++this.#seq;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        if (this.#settle(id)) reject(new DeadlineExceededError());
      }, deadline - now);
      this.#pending.set(id, { resolve, reject, timer, batch: 0 });
      this.#enqueue(this.#reqOut, node, [
        id,
        envelope.to,
        envelope.type,
        envelope.body,
        deadline,
        envelope.sender ?? null,
      ], id);
    });
  }

  /** Fire-and-forget to `node` (dropped while NATS is unreachable). */
  tell(node: string, envelope: Envelope): void {
    if (this.#closed) {
      this.#stats.dropped++;
      return;
    }
    if (node === this.nodeId) {
      const handler = this.#handler;
      if (!handler) {
        this.#stats.dropped++;
        return;
      }
      invoke(handler, envelope).catch((err) => this.#tellFailed(envelope, err));
      return;
    }
    if (!this.#connected) {
      this.#stats.dropped++;
      return;
    }
    this.#enqueue(this.#reqOut, node, [
      0,
      envelope.to,
      envelope.type,
      envelope.body,
      envelope.deadline ?? 0,
      envelope.sender ?? null,
    ], 0);
  }

  /** Queues a delivery for `node`; flushed at the end of this turn or when the batch is full. */
  deliver(node: string, delivery: Delivery): void {
    if (this.#closed) return;
    if (node === this.nodeId) {
      this.#selfDeliveries.push(delivery);
      this.#scheduleFlush();
      return;
    }
    if (!this.#connected) {
      this.#stats.dropped++;
      return;
    }
    const item: DeliveryItem = [delivery.frame, delivery.users, delivery.seqs ?? null];
    this.#enqueue(this.#dlvOut, node, item, 0);
  }

  /** Registers the handler for deliveries arriving at this node. */
  onDeliveries(handler: (deliveries: Delivery[]) => void): void {
    this.#deliveryHandler = handler;
  }

  /** Counters since start. */
  stats(): NatsTransportStats {
    return { ...this.#stats, pending: this.#pending.size };
  }

  /** Sends what is queued, fails pending requests with UnavailableError and disconnects. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#flush();
    this.#closed = true;
    this.#handler = null;
    this.#failAll(new UnavailableError("Transport is closed"));
    try {
      await this.#nc.drain();
    } catch {
      // Already closed (e.g. NATS went away for good): nothing left to drain.
      if (!this.#nc.isClosed()) await this.#nc.close();
    }
    this.#stopStatus();
    await this.#statusLoop;
  }

  // ---- sending ----

  #enqueue(outboxes: Map<string, Outbox>, node: string, item: unknown, requestId: number): void {
    let box = outboxes.get(node);
    if (!box) {
      box = { items: [], requests: [] };
      outboxes.set(node, box);
    }
    box.items.push(item);
    if (requestId) box.requests.push(requestId);
    if (box.items.length >= this.#maxBatch) {
      outboxes.delete(node);
      this.#publishBatch(outboxes === this.#reqOut ? "req" : "dlv", node, box);
    } else {
      this.#scheduleFlush();
    }
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    queueMicrotask(() => this.#flush());
  }

  #flush(): void {
    this.#flushScheduled = false;
    if (this.#selfDeliveries.length > 0) {
      const batch = this.#selfDeliveries.splice(0);
      this.#handDeliveries(batch);
    }
    for (const [kind, outboxes] of [["req", this.#reqOut], ["dlv", this.#dlvOut]] as const) {
      if (outboxes.size === 0) continue;
      const boxes = [...outboxes];
      outboxes.clear();
      for (const [node, box] of boxes) this.#publishBatch(kind, node, box);
    }
    if (this.#replyOut.size > 0) {
      const replies = [...this.#replyOut];
      this.#replyOut.clear();
      for (const [subject, items] of replies) this.#publishReplies(subject, items);
    }
  }

  #publishBatch(kind: "req" | "dlv", node: string, box: Outbox): void {
    const subject = `${this.#subject(node)}.${kind}`;
    let items = box.items;
    if (kind === "req" && box.requests.length !== countPending(box, this.#pending)) {
      // Requests that failed or timed out before leaving are not sent at all.
      items = items.filter((item) => {
        const id = (item as RequestItem)[0];
        return id === 0 || this.#pending.has(id);
      });
    }
    for (const chunk of this.#encode(items, (item, err) => this.#dropItem(kind, item, err))) {
      let reply: string | undefined;
      if (kind === "req") {
        const ids: number[] = [];
        for (const item of chunk.items) {
          const id = (item as RequestItem)[0];
          const p = id ? this.#pending.get(id) : undefined;
          if (p) ids.push(id);
        }
        if (ids.length > 0) {
          const batch = ++this.#batchSeq;
          for (const id of ids) this.#pending.get(id)!.batch = batch;
          this.#batches.set(batch, ids);
          reply = `${this.#replyBase}.${batch}`;
        }
      }
      try {
        this.#nc.publish(subject, chunk.data, reply ? { reply } : undefined);
        this.#stats.published++;
        this.#stats.items += chunk.items.length;
      } catch (err) {
        for (const item of chunk.items) this.#dropItem(kind, item, err);
      }
    }
  }

  #publishReplies(subject: string, items: unknown[]): void {
    // Reply items are flat triples [id, status, value]; encode per triple on failure.
    const triples: unknown[][] = [];
    for (let i = 0; i < items.length; i += 3) triples.push(items.slice(i, i + 3));
    const failed: unknown[][] = [];
    const chunks = this.#encode(triples, (triple) => {
      this.#log.error("transport: a reply could not be encoded; answering internal");
      failed.push([(triple as unknown[])[0], 1, {
        code: "internal",
        message: "Unencodable reply",
      }]);
    });
    if (failed.length > 0) chunks.push(...this.#encode(failed, () => {}));
    for (const chunk of chunks) {
      try {
        this.#nc.publish(subject, chunk.data);
        this.#stats.published++;
        this.#stats.items += chunk.items.length;
      } catch (err) {
        // The caller's deadline settles its request.
        this.#log.warn("transport: reply lost", { err });
      }
    }
  }

  /**
   * Encodes `items` as one array, split into several when larger than the server's max
   * payload; items that cannot be encoded (or alone exceed the limit) go to `reject`.
   */
  #encode(
    items: unknown[],
    reject: (item: unknown, err: unknown) => void,
  ): { items: unknown[]; data: Uint8Array }[] {
    const max = this.#nc.info?.max_payload ?? 1024 * 1024;
    const out: { items: unknown[]; data: Uint8Array }[] = [];
    const go = (part: unknown[]) => {
      if (part.length === 0) return;
      let data: Uint8Array | undefined;
      try {
        data = packr.pack(part);
      } catch (err) {
        if (part.length === 1) return reject(part[0], err);
      }
      if (data && data.length <= max) {
        out.push({ items: part, data });
        return;
      }
      if (part.length === 1) {
        return reject(part[0], new BadRequestError("Envelope exceeds the NATS max payload"));
      }
      const half = part.length >> 1;
      go(part.slice(0, half));
      go(part.slice(half));
    };
    go(items);
    return out;
  }

  #dropItem(kind: "req" | "dlv", item: unknown, err: unknown): void {
    if (kind === "req") {
      const id = (item as RequestItem)[0];
      if (id && this.#pending.has(id)) {
        const p = this.#pending.get(id)!;
        this.#settle(id);
        p.reject(
          err instanceof BadRequestError
            ? err
            : new UnavailableError("Envelope could not be sent", { cause: err }),
        );
        return;
      }
    }
    this.#stats.dropped++;
    this.#log.warn("transport: item dropped", { kind, err });
  }

  // ---- receiving ----

  #onRequests(msg: Msg): void {
    const handler = this.#handler;
    let items: RequestItem[];
    try {
      items = packr.unpack(msg.data) as RequestItem[];
    } catch (err) {
      this.#log.error("transport: undecodable request batch dropped", { err });
      return;
    }
    const reply = msg.reply;
    const now = Date.now();
    for (const [id, to, type, body, deadline, sender] of items) {
      const envelope: Envelope = { to, type, body };
      if (deadline) envelope.deadline = deadline;
      if (sender !== null && sender !== undefined) envelope.sender = sender;
      if (!handler) {
        if (id && reply) this.#queueReply(reply, id, 1, unavailableWire);
        continue;
      }
      if (deadline && deadline <= now) {
        // Expired messages are dropped, not run late.
        if (id && reply) this.#queueReply(reply, id, 1, timeoutWire);
        continue;
      }
      const run = invoke(handler, envelope);
      if (id && reply) {
        run.then(
          (value) => this.#queueReply(reply, id, 0, value),
          (err) => this.#queueReply(reply, id, 1, errorToWire(err)),
        );
      } else {
        run.catch((err) => this.#tellFailed(envelope, err));
      }
    }
  }

  #queueReply(subject: string, id: number, status: 0 | 1, value: unknown): void {
    if (this.#closed && this.#nc.isClosed()) return;
    let items = this.#replyOut.get(subject);
    if (!items) {
      items = [];
      this.#replyOut.set(subject, items);
    }
    items.push(id, status, value);
    if (items.length >= this.#maxBatch * 3) {
      this.#replyOut.delete(subject);
      this.#publishReplies(subject, items);
    } else {
      this.#scheduleFlush();
    }
  }

  #onReply(msg: Msg): void {
    if (msg.data.length === 0 && msg.headers?.code === 503) {
      // No responders: nobody serves the destination. Fail that batch now.
      const batch = Number(msg.subject.slice(this.#replyBase.length + 1));
      const ids = this.#batches.get(batch) ?? [];
      for (const id of ids) {
        const p = this.#pending.get(id);
        if (p && this.#settle(id)) {
          p.reject(new UnavailableError("Destination node is unreachable"));
        }
      }
      return;
    }
    let items: unknown[];
    try {
      items = packr.unpack(msg.data) as unknown[];
    } catch (err) {
      this.#log.error("transport: undecodable reply batch dropped", { err });
      return;
    }
    for (const triple of items as [number, 0 | 1, unknown][]) {
      const [id, status, value] = triple;
      const p = this.#pending.get(id);
      if (!p || !this.#settle(id)) continue;
      if (status === 0) p.resolve(value);
      else p.reject(errorFromWire(value as WireError));
    }
  }

  #onDeliveries(msg: Msg): void {
    let items: DeliveryItem[];
    try {
      items = packr.unpack(msg.data) as DeliveryItem[];
    } catch (err) {
      this.#log.error("transport: undecodable delivery batch dropped", { err });
      return;
    }
    const batch: Delivery[] = items.map(([frame, users, seqs]) =>
      seqs ? { frame, users, seqs } : { frame, users }
    );
    this.#handDeliveries(batch);
  }

  #handDeliveries(batch: Delivery[]): void {
    const handler = this.#deliveryHandler;
    if (!handler) {
      this.#stats.dropped += batch.length;
      return;
    }
    try {
      handler(batch);
    } catch (err) {
      this.#log.error("transport: delivery handler failed", { err });
    }
  }

  // ---- bookkeeping ----

  /** Forgets pending request `id`; false when it was already settled. */
  #settle(id: number): boolean {
    const p = this.#pending.get(id);
    if (!p) return false;
    this.#pending.delete(id);
    clearTimeout(p.timer);
    if (p.batch) {
      const ids = this.#batches.get(p.batch);
      if (ids) {
        const i = ids.indexOf(id);
        if (i >= 0) ids.splice(i, 1);
        if (ids.length === 0) this.#batches.delete(p.batch);
      }
    }
    return true;
  }

  #failAll(err: Error): void {
    for (const [id, p] of [...this.#pending]) {
      if (this.#settle(id)) p.reject(err);
    }
  }

  #tellFailed(envelope: Envelope, err: unknown): void {
    const code = (err as { code?: string })?.code ?? "internal";
    this.#log.warn("transport: tell failed", { type: envelope.type, to: envelope.to, code });
  }

  #subscriptionFailed(err: NatsError): void {
    this.#log.error("transport: subscription failed", { err });
  }
}

function countPending(box: Outbox, pending: Map<number, Pending>): number {
  let n = 0;
  for (const id of box.requests) if (pending.has(id)) n++;
  return n;
}

const timeoutWire: WireError = errorToWire(new DeadlineExceededError());
const unavailableWire: WireError = errorToWire(new UnavailableError("Node is not serving"));
