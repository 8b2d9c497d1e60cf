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
import { PRESENCE_REASSERT_OP } from "../actors/im/presence.ts";
import { SeqFanout, type SeqFrame } from "./frame_codec.ts";

/** What the registry needs of a connection. */
export interface Connection {
  /** Unique per node. */
  readonly id: string;
  readonly userId: string;
  /** Queues a frame for the socket (coalesced into one WebSocket message per flush). */
  push(frame: Record<string, unknown>): void;
  /**
   * Queues one copy of a fan-out frame (see {@link SeqFanout.seqFrame}); a connection that
   * encodes with `encodeFrames` takes it as it is. Without this method the registry pushes the
   * equivalent plain frame.
   */
  pushSeq?(frame: SeqFrame | Record<string, unknown>): void;
  /** Closes the socket with a WebSocket close code. */
  close(code: number, reason: string): void;
  /** Tells the user's actor again that this connection is open (see {@link PRESENCE_REASSERT_OP}). */
  reassertPresence?(): void;
}

/**
 * Local connections by user. A user with one connection here (the common case) is stored as
 * that connection; a Set is made only for a second one (a Set per user was a large share of the
 * memory of an idle connection).
 */
export class ConnectionRegistry {
  readonly #byUser = new Map<string, Connection | Set<Connection>>();
  #count = 0;

  /** Adds an authenticated connection (idempotent). */
  add(conn: Connection): void {
    const cur = this.#byUser.get(conn.userId);
    if (cur === undefined) {
      this.#byUser.set(conn.userId, conn);
    } else if (cur instanceof Set) {
      if (cur.has(conn)) return;
      cur.add(conn);
    } else {
      if (cur === conn) return;
      this.#byUser.set(conn.userId, new Set([cur, conn]));
    }
    this.#count++;
  }

  /** Removes a connection (idempotent). */
  remove(conn: Connection): void {
    const cur = this.#byUser.get(conn.userId);
    if (cur === conn) {
      this.#byUser.delete(conn.userId);
      this.#count--;
    } else if (cur instanceof Set && cur.delete(conn)) {
      this.#count--;
      if (cur.size === 1) this.#byUser.set(conn.userId, cur.values().next().value!);
    }
  }

  /** The local connections of a user. */
  forUser(userId: string): Iterable<Connection> {
    const cur = this.#byUser.get(userId);
    return cur === undefined ? [] : cur instanceof Set ? cur : [cur];
  }

  /** Every local connection. */
  *all(): Iterable<Connection> {
    for (const cur of this.#byUser.values()) {
      if (cur instanceof Set) yield* cur;
      else yield cur;
    }
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
   *
   * A delivery of op {@link PRESENCE_REASSERT_OP} is internal: it is never sent to a client;
   * each local connection of its users re-announces itself to its user's actor instead (a user
   * actor asks for that after a restart that lost its connection list, see presence.ts).
   */
  deliver(deliveries: Delivery[]): number {
    let n = 0;
    for (const d of deliveries) {
      if (d.frame.op === PRESENCE_REASSERT_OP) {
        for (const user of d.users) {
          for (const conn of this.forUser(user)) conn.reassertPresence?.();
        }
        continue;
      }
      let fanout: SeqFanout | null = null;
      for (let i = 0; i < d.users.length; i++) {
        const cur = this.#byUser.get(d.users[i]);
        if (cur === undefined) continue;
        if (!d.seqs) {
          if (cur instanceof Set) { for (const conn of cur) conn.push(d.frame); }
          else cur.push(d.frame);
          n += cur instanceof Set ? cur.size : 1;
          continue;
        }
        fanout ??= new SeqFanout(d.frame);
        const seq = d.seqs[i];
        if (cur instanceof Set) {
          let plain: Record<string, unknown> | null = null;
          let copy: SeqFrame | Record<string, unknown> | null = null;
          for (const conn of cur) {
            if (conn.pushSeq) conn.pushSeq(copy ??= fanout.seqFrame(seq));
            else conn.push(plain ??= fanout.frameFor(seq));
            n++;
          }
        } else {
          if (cur.pushSeq) cur.pushSeq(fanout.seqFrame(seq));
          else cur.push(fanout.frameFor(seq));
          n++;
        }
      }
    }
    return n;
  }
}
