/**
 * Contract steps of the message-feature part of the storage port (media, reactions, edits,
 * hiding, read cursors, the inbox scan behind conversation lists). `store_contract.ts` runs them
 * with its other steps against every adapter.
 *
 * @module
 */
import assert from "node:assert/strict";
import { FencedError } from "../actors/errors.ts";
import type { AppendRequest, AppendResult, MediaRecord, Store } from "./store.ts";
import type { StoreUnderTest } from "./store_contract.ts";

type Step = (subject: StoreUnderTest, p: string) => Promise<void>;

let counter = 0;

/** A message of conv `g:<p>grp` from `<p><from>` to members `a`, `b`, `c`. */
function msg(p: string, from: string, cmid: string, extra: Partial<AppendRequest> = {}) {
  counter++;
  return {
    actorId: `group/${p}grp`,
    epoch: 1,
    mid: `${p}mm${counter}`,
    conv: `g:${p}grp`,
    from: `${p}${from}`,
    to: { group: `${p}grp` },
    cmid,
    ts: 1_700_000_000_000 + counter,
    body: { type: "text", text: `${cmid}!` },
    recipients: [`${p}a`, `${p}b`, `${p}c`],
    ...extra,
  } satisfies AppendRequest;
}

async function append(store: Store, reqs: AppendRequest[]) {
  const results = await store.append(reqs);
  return results.map((r: AppendResult) => {
    assert.equal(r.status, "stored");
    return (r as Extract<AppendResult, { status: "stored" }>).message;
  });
}

function fenced(err: unknown): boolean {
  assert.ok(err instanceof FencedError, `expected FencedError, got ${err}`);
  return true;
}

/** Steps of the message-feature methods, as `[name, step]`. */
export const MESSAGE_FEATURE_STEPS: [string, Step][] = [
  [
    "createMedia stores a media record that getMedia returns unchanged; unknown ids are null",
    async ({ store }, p) => {
      const media: MediaRecord = {
        mediaId: `md_${p}`,
        owner: `${p}a`,
        mime: "image/png",
        size: 1234,
        width: 640,
        height: 480,
        createdAt: 1_700_000_000_000,
      };
      await store.createMedia(media);
      assert.deepEqual(await store.getMedia(media.mediaId), media);
      const file = {
        ...media,
        mediaId: `md_${p}f`,
        mime: "application/pdf",
        width: null,
        height: null,
      };
      await store.createMedia(file);
      assert.deepEqual(await store.getMedia(file.mediaId), file);
      assert.equal(await store.getMedia(`md_${p}none`), null);
    },
  ],
  [
    "addMediaRef records each conversation once, mediaConversations lists them, and a stale epoch is fenced",
    async ({ store }, p) => {
      const id = `md_${p}`;
      assert.deepEqual(await store.mediaConversations(id), []);
      await store.addMediaRef(`group/${p}g1`, 2, id, `g:${p}g1`, `${p}m1`);
      await store.addMediaRef(`group/${p}g1`, 2, id, `g:${p}g1`, `${p}m1`);
      await store.addMediaRef(`group/${p}g1`, 2, id, `g:${p}g1`, `${p}m2`);
      await store.addMediaRef(`group/${p}g2`, 1, id, `g:${p}g2`, `${p}m3`);
      assert.deepEqual(await store.mediaConversations(id), [`g:${p}g1`, `g:${p}g2`]);
      await assert.rejects(
        store.addMediaRef(`group/${p}g1`, 1, id, `g:${p}g3`, `${p}m4`),
        fenced,
      );
      assert.deepEqual(await store.mediaConversations(id), [`g:${p}g1`, `g:${p}g2`]);
    },
  ],
  [
    "getMessage finds a message by mid or cseq only within its own conversation",
    async ({ store }, p) => {
      const [m1, m2] = await append(store, [msg(p, "a", "x1"), msg(p, "b", "x2")]);
      assert.deepEqual(await store.getMessage(m1.conv, { mid: m1.mid }), m1);
      assert.deepEqual(await store.getMessage(m1.conv, { cseq: 2 }), m2);
      assert.equal(await store.getMessage(`g:${p}other`, { mid: m1.mid }), null);
      assert.equal(await store.getMessage(m1.conv, { cseq: 3 }), null);
      assert.equal(await store.getMessage(m1.conv, { mid: `${p}nope` }), null);
    },
  ],
  [
    "updateMessageBody replaces the body everywhere it is read, can drop media references, and is fenced",
    async ({ store }, p) => {
      const [m] = await append(store, [
        msg(p, "a", "e1", { body: { type: "image", mediaId: `md_${p}` } }),
      ]);
      await store.addMediaRef(`group/${p}grp`, 1, `md_${p}`, m.conv, m.mid);
      const edited = { type: "text", text: "new", edited: 5 };
      assert.equal(await store.updateMessageBody(`group/${p}grp`, 1, m.conv, m.mid, edited), true);
      assert.deepEqual((await store.getMessage(m.conv, { mid: m.mid }))?.body, edited);
      assert.deepEqual((await store.history(m.conv, null, 10))[0].body, edited);
      assert.deepEqual((await store.readInbox(`${p}b`, 0, 10))[0].message.body, edited);
      assert.deepEqual(await store.mediaConversations(`md_${p}`), [m.conv]);
      const recalled = { type: "recalled", by: `${p}a`, at: 6 };
      assert.equal(
        await store.updateMessageBody(`group/${p}grp`, 1, m.conv, m.mid, recalled, true),
        true,
      );
      assert.deepEqual(await store.mediaConversations(`md_${p}`), []);
      assert.equal(
        await store.updateMessageBody(`group/${p}grp`, 1, `g:${p}x`, m.mid, edited),
        false,
        "a message of another conversation is not touched",
      );
      await store.fence(`group/${p}grp`, 3);
      await assert.rejects(
        store.updateMessageBody(`group/${p}grp`, 2, m.conv, m.mid, edited),
        fenced,
      );
      assert.deepEqual((await store.getMessage(m.conv, { mid: m.mid }))?.body, recalled);
    },
  ],
  [
    "setReaction adds and removes idempotently and aggregates per emoji in reaction order; historyFor carries the reactions",
    async ({ store }, p) => {
      const [m, n] = await append(store, [msg(p, "a", "r1"), msg(p, "a", "r2")]);
      const actor = `group/${p}grp`;
      const r = (user: string, emoji: string, on: boolean, ts: number) =>
        store.setReaction(actor, 1, m.mid, `${p}${user}`, emoji, on, ts);
      assert.deepEqual(await r("b", "👍", true, 10), [
        { emoji: "👍", count: 1, users: [`${p}b`] },
      ]);
      await r("c", "❤️", true, 11);
      await r("a", "👍", true, 12);
      const after = await r("a", "👍", true, 13);
      assert.deepEqual(after, [
        { emoji: "👍", count: 2, users: [`${p}b`, `${p}a`] },
        { emoji: "❤️", count: 1, users: [`${p}c`] },
      ]);
      // b's 👍 (the earliest) is gone: ❤️ now has the earliest reaction.
      assert.deepEqual(await r("b", "👍", false, 14), [
        { emoji: "❤️", count: 1, users: [`${p}c`] },
        { emoji: "👍", count: 1, users: [`${p}a`] },
      ]);
      assert.deepEqual((await r("b", "👍", false, 15)).length, 2);
      const history = await store.historyFor(`${p}b`, m.conv, null, 10);
      assert.deepEqual(history.map((h) => h.mid), [n.mid, m.mid]);
      assert.deepEqual(history[0].reactions, []);
      assert.deepEqual(history[1].reactions, [
        { emoji: "❤️", count: 1, users: [`${p}c`] },
        { emoji: "👍", count: 1, users: [`${p}a`] },
      ]);
      await store.fence(actor, 2);
      await assert.rejects(r("b", "😀", true, 16), fenced);
    },
  ],
  [
    "hideMessage hides a message from that user's historyFor and readInbox only, idempotently, and is fenced",
    async ({ store }, p) => {
      const [m1, m2, m3] = await append(store, [
        msg(p, "a", "h1"),
        msg(p, "b", "h2"),
        msg(p, "c", "h3"),
      ]);
      const actor = `group/${p}grp`;
      await store.hideMessage(actor, 1, `${p}b`, m2.conv, m2.mid);
      await store.hideMessage(actor, 1, `${p}b`, m2.conv, m2.mid);
      assert.deepEqual(
        (await store.historyFor(`${p}b`, m1.conv, null, 10)).map((m) => m.cseq),
        [3, 1],
      );
      assert.deepEqual(
        (await store.historyFor(`${p}a`, m1.conv, null, 10)).map((m) => m.cseq),
        [3, 2, 1],
      );
      assert.deepEqual(
        (await store.historyFor(`${p}b`, m1.conv, 3, 1)).map((m) => m.cseq),
        [1],
        "before and limit apply to what the user sees",
      );
      assert.deepEqual((await store.readInbox(`${p}b`, 0, 10)).map((e) => e.seq), [1, 3]);
      assert.deepEqual((await store.readInbox(`${p}c`, 0, 10)).map((e) => e.seq), [1, 2, 3]);
      assert.equal(await store.latestSeq(`${p}b`), 3, "the hidden seq is not reused");
      await store.fence(actor, 2);
      await assert.rejects(store.hideMessage(actor, 1, `${p}c`, m3.conv, m3.mid), fenced);
      assert.equal((await store.readInbox(`${p}c`, 0, 10)).length, 3);
    },
  ],
  [
    "saveReadCursor only moves forward and is fenced; readCursors and userReadCursors read it back",
    async ({ store }, p) => {
      const actor = `group/${p}grp`;
      const conv = `g:${p}grp`;
      assert.equal(await store.saveReadCursor(actor, 1, conv, `${p}a`, 5, 100), 5);
      assert.equal(await store.saveReadCursor(actor, 1, conv, `${p}a`, 3, 101), 5);
      assert.equal(await store.saveReadCursor(actor, 1, conv, `${p}b`, 2, 102), 2);
      assert.equal(await store.saveReadCursor(actor, 1, conv, `${p}b`, 4, 103), 4);
      assert.deepEqual(await store.readCursors(conv), [
        { userId: `${p}a`, cseq: 5, ts: 100 },
        { userId: `${p}b`, cseq: 4, ts: 103 },
      ]);
      await store.saveReadCursor(`direct/${p}x`, 1, `d:${p}a:${p}x`, `${p}a`, 9, 104);
      assert.deepEqual(
        await store.userReadCursors(`${p}a`, [conv, `d:${p}a:${p}x`, `g:${p}none`]),
        { [conv]: 5, [`d:${p}a:${p}x`]: 9 },
      );
      assert.deepEqual(await store.userReadCursors(`${p}a`, []), {});
      await store.fence(actor, 2);
      await assert.rejects(store.saveReadCursor(actor, 1, conv, `${p}a`, 7, 105), fenced);
      assert.deepEqual((await store.readCursors(conv))[0], { userId: `${p}a`, cseq: 5, ts: 100 });
    },
  ],
  [
    "scanInboxConversations reads a user's inbox incrementally by conversation; messagesAt and unreadCounts answer for them",
    async ({ store }, p) => {
      const other = (from: string, cmid: string) =>
        msg(p, from, cmid, {
          actorId: `group/${p}g2`,
          conv: `g:${p}g2`,
          to: { group: `${p}g2` },
          recipients: [`${p}a`, `${p}b`],
        });
      const stored = await append(store, [
        msg(p, "a", "s1"),
        msg(p, "b", "s2"),
        other("b", "s3"),
        msg(p, "c", "s4"),
        other("a", "s5"),
        msg(p, "b", "s6"),
      ]);
      const first = await store.scanInboxConversations(`${p}a`, 0, 4);
      assert.equal(first.scanned, 4);
      assert.equal(first.lastSeq, 4);
      const byConv = (s: typeof first) =>
        Object.fromEntries(s.convs.map((c) => [c.conv, [c.firstCseq, c.lastCseq, c.lastSeq]]));
      assert.deepEqual(byConv(first), { [`g:${p}grp`]: [1, 3, 4], [`g:${p}g2`]: [1, 1, 3] });
      const rest = await store.scanInboxConversations(`${p}a`, first.lastSeq, 4);
      assert.equal(rest.scanned, 2);
      assert.equal(rest.lastSeq, 6);
      assert.deepEqual(byConv(rest), { [`g:${p}grp`]: [4, 4, 6], [`g:${p}g2`]: [2, 2, 5] });
      const none = await store.scanInboxConversations(`${p}a`, 6, 4);
      assert.deepEqual(none, { convs: [], scanned: 0, lastSeq: 6 });

      const at = await store.messagesAt([
        { conv: `g:${p}grp`, cseq: 4 },
        { conv: `g:${p}g2`, cseq: 2 },
        { conv: `g:${p}g2`, cseq: 9 },
      ]);
      assert.deepEqual(at.map((m) => m.mid).sort(), [stored[4].mid, stored[5].mid].sort());
      assert.deepEqual(await store.messagesAt([]), []);

      await store.hideMessage(`group/${p}grp`, 1, `${p}a`, `g:${p}grp`, stored[3].mid);
      const ranges = [
        { conv: `g:${p}grp`, after: 0, upTo: 4 },
        { conv: `g:${p}g2`, after: 0, upTo: 2 },
        { conv: `g:${p}none`, after: 3, upTo: 3 },
      ];
      // Of grp: s2 (b) and s6 (b) count; s1 is a's own, s4 (c) is hidden by a.
      assert.deepEqual(await store.unreadCounts(`${p}a`, ranges, 100), {
        [`g:${p}grp`]: 2,
        [`g:${p}g2`]: 1,
        [`g:${p}none`]: 0,
      });
      assert.deepEqual((await store.unreadCounts(`${p}a`, ranges, 1))[`g:${p}grp`], 1);
      assert.deepEqual(
        (await store.unreadCounts(`${p}a`, [{ conv: `g:${p}grp`, after: 2, upTo: 4 }], 100))[
          `g:${p}grp`
        ],
        1,
      );
    },
  ],
];
