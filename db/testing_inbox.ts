/**
 * Test support for the inbox-run tests of both stores (SQLite and Postgres): message requests, a
 * model of every user's inbox built from append results, and checks of readInbox,
 * scanInboxConversations and latestSeq against it or against answers recorded before.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { AppendRequest, Store } from "./store.ts";

/** A message to `conv` from `from` for `recipients`, sent by the conversation's actor. */
export function msg(conv: string, from: string, recipients: string[], n: number): AppendRequest {
  return {
    actorId: `conv/${conv}`,
    epoch: 1,
    mid: `m_${conv}_${n}`,
    conv,
    from,
    to: conv.startsWith("g:") ? { group: conv.slice(2) } : { user: recipients[1] },
    cmid: `${conv}_${n}`,
    ts: n,
    body: { type: "text", text: `${conv} ${n}` },
    recipients,
  };
}

/** Every user's expected inbox (seq → conv, cseq, mid), taken from append results. */
export class InboxModel {
  readonly entries = new Map<string, Map<number, { conv: string; cseq: number; mid: string }>>();
  readonly hidden = new Set<string>();

  record(results: Awaited<ReturnType<Store["append"]>>): void {
    for (const r of results) {
      if (r.status !== "stored") continue;
      for (const [user, seq] of Object.entries(r.seqs)) {
        let inbox = this.entries.get(user);
        if (!inbox) this.entries.set(user, inbox = new Map());
        inbox.set(seq, { conv: r.message.conv, cseq: r.message.cseq, mid: r.message.mid });
      }
    }
  }

  /** What readInbox(user, after, limit) must answer, as [seq, conv, cseq]. */
  read(user: string, after: number, limit: number): [number, string, number][] {
    return [...(this.entries.get(user) ?? new Map()).entries()]
      .filter(([seq, e]) => seq > after && !this.hidden.has(`${user} ${e.mid}`))
      .sort((a, b) => a[0] - b[0])
      .slice(0, Math.max(0, limit))
      .map(([seq, e]) => [seq, e.conv, e.cseq]);
  }
}

export async function readAsTriples(store: Store, user: string, after: number, limit: number) {
  return (await store.readInbox(user, after, limit)).map((
    e,
  ) => [e.seq, e.message.conv, e.message.cseq] as [number, string, number]);
}

/** Checks readInbox against the model for every `after` and a few limits. */
export async function assertInboxes(store: Store, model: InboxModel): Promise<void> {
  for (const user of model.entries.keys()) {
    const last = await store.latestSeq(user);
    assert.equal(last, Math.max(...model.entries.get(user)!.keys()), `latestSeq ${user}`);
    for (let after = 0; after <= last; after++) {
      for (const limit of [1, 2, 3, 1000]) {
        assert.deepEqual(
          await readAsTriples(store, user, after, limit),
          model.read(user, after, limit),
          `readInbox(${user}, ${after}, ${limit})`,
        );
      }
    }
  }
}

/** Every readInbox, scanInboxConversations and latestSeq answer for `users`, for comparison. */
export async function inboxAnswers(store: Store, users: string[]): Promise<unknown[]> {
  const out: unknown[] = [];
  for (const user of users) {
    const last = await store.latestSeq(user);
    out.push(["latestSeq", user, last]);
    for (let after = 0; after <= last + 1; after++) {
      for (const limit of [1, 2, 3, 5, 1000]) {
        out.push(["readInbox", user, after, limit, await store.readInbox(user, after, limit)]);
        out.push([
          "scan",
          user,
          after,
          limit,
          await store.scanInboxConversations(user, after, limit),
        ]);
      }
    }
  }
  return out;
}
