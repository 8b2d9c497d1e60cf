/**
 * The client connections held by this node, by user id.
 *
 * Deliveries that arrive from any node (through the transport) are pushed here to the
 * matching local sockets. A user may have several connections (devices) on several nodes;
 * each node only knows its own.
 *
 * @module
 */
import type { Delivery } from "../cluster/transport.ts";
import { SeqFanout } from "./frame_codec.ts";

/** What the registry needs of a connection. */
export interface Connection {
  /** Unique per node. */
  readonly id: string;
  readonly userId: string;
  /** Queues a frame for the socket (coalesced into one WebSocket message per flush). */
  push(frame: Record<string, unknown>): void;
  /** Closes the socket with a WebSocket close code. */
  close(code: number, reason: string): void;
}

/** Local connections by user. */
export class ConnectionRegistry {
  readonly #byUser = new Map<string, Set<Connection>>();
  #count = 0;

  /** Adds an authenticated connection. */
  add(conn: Connection): void {
    let set = this.#byUser.get(conn.userId);
    if (!set) {
      set = new Set();
      this.#byUser.set(conn.userId, set);
    }
    if (!set.has(conn)) {
      set.add(conn);
      this.#count++;
    }
  }

  /** Removes a connection (idempotent). */
  remove(conn: Connection): void {
    const set = this.#byUser.get(conn.userId);
    if (set?.delete(conn)) {
      this.#count--;
      if (set.size === 0) this.#byUser.delete(conn.userId);
    }
  }

  /** The local connections of a user. */
  forUser(userId: string): Iterable<Connection> {
    return this.#byUser.get(userId) ?? [];
  }

  /** Every local connection. */
  *all(): Iterable<Connection> {
    for (const set of this.#byUser.values()) yield* set;
  }

  /** Number of authenticated connections. */
  get size(): number {
    return this.#count;
  }

  /** Number of users with at least one connection here. */
  get users(): number {
    return this.#byUser.size;
  }

  /**
   * Pushes deliveries to local sockets. A frame with `seqs` gets each recipient's own `seq`
   * (placed right after `op`, as in PROTOCOL-CORE.md); the shared fields are encoded once per
   * delivery, not once per recipient ({@link SeqFanout}), and one frame object serves every
   * device of the same user. Returns the number of frames queued.
   */
  deliver(deliveries: Delivery[]): number {
    let n = 0;
    for (const d of deliveries) {
      let fanout: SeqFanout | null = null;
      for (let i = 0; i < d.users.length; i++) {
        const set = this.#byUser.get(d.users[i]);
        if (!set) continue;
        let frame = d.frame;
        if (d.seqs) {
          fanout ??= new SeqFanout(d.frame);
          frame = fanout.frameFor(d.seqs[i]);
        }
        for (const conn of set) {
          conn.push(frame);
          n++;
        }
      }
    }
    return n;
  }
}
