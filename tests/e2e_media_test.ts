/**
 * Media end to end through a real node: REST upload (`POST /v1/media`) with the type sniffed
 * from the bytes and image sizes parsed, the size and type limits, media messages over a real
 * WebSocket, and download (`GET /v1/media/:id`) only for the uploader and the participants of a
 * conversation the media was sent in (docs/protocol.md, "Media").
 */
import assert from "node:assert/strict";
import { type F, signUp, TestClient } from "./support/client.ts";
import { testNode } from "./support/node.ts";
import { exe, gif, jpeg, pdf, png, webpLossless } from "../media/testing_images.ts";

let seq = 0;
function uname(p: string): string {
  return `${p}${Date.now().toString(36)}${++seq}`.slice(0, 32);
}

type Node = Awaited<ReturnType<typeof testNode>>;

async function upload(
  node: Node,
  token: string | null,
  body: Uint8Array | ReadableStream<Uint8Array>,
  contentType = "application/octet-stream",
): Promise<{ status: number; json: F }> {
  const headers: Record<string, string> = { "content-type": contentType };
  if (token !== null) headers.authorization = `Bearer ${token}`;
  const r = await fetch(`${node.url}/v1/media`, {
    method: "POST",
    headers,
    body: body as BodyInit,
  });
  return { status: r.status, json: await r.json() };
}

async function download(node: Node, token: string | null, id: string) {
  const headers: Record<string, string> = {};
  if (token !== null) headers.authorization = `Bearer ${token}`;
  const r = await fetch(`${node.url}/v1/media/${id}`, { headers });
  if (r.status === 200) return { status: 200, bytes: new Uint8Array(await r.arrayBuffer()), r };
  return { status: r.status, json: await r.json() as F, r };
}

Deno.test("an upload is typed by its bytes, whatever the headers say, and images carry their size", async () => {
  const node = await testNode();
  try {
    const a = await signUp(node.url, uname("ua"));
    const cases: [Uint8Array, string, F][] = [
      [await png(64, 48), "text/html", { type: "image/png", width: 64, height: 48 }],
      [jpeg(1024, 768), "image/png", { type: "image/jpeg", width: 1024, height: 768 }],
      [gif(5, 7), "application/json", { type: "image/gif", width: 5, height: 7 }],
      [webpLossless(300, 200), "image/gif", { type: "image/webp", width: 300, height: 200 }],
      [pdf(), "image/png", { type: "application/pdf" }],
    ];
    for (const [bytes, claimed, expected] of cases) {
      const { status, json } = await upload(node, a.accessToken, bytes, claimed);
      assert.equal(status, 201, JSON.stringify(json));
      assert.match(json.mediaId as string, /^md_[a-z2-7]{20}$/);
      assert.deepEqual({ ...json, mediaId: undefined }, {
        mediaId: undefined,
        size: bytes.length,
        ...expected,
      });
      const got = await download(node, a.accessToken, json.mediaId as string);
      assert.equal(got.status, 200);
      assert.deepEqual(got.bytes, bytes);
      assert.equal(got.r.headers.get("content-type"), expected.type);
      assert.equal(got.r.headers.get("x-content-type-options"), "nosniff");
    }
  } finally {
    await node.stop();
  }
});

Deno.test("uploads are refused without a valid token, past the size limit, empty, of a type not allowed, or with an unreadable image header", async () => {
  const node = await testNode({
    MEDIA_MAX_BYTES: "2048",
    MEDIA_TYPES: "image/png,image/jpeg,image/gif,image/webp",
  });
  try {
    const a = await signUp(node.url, uname("ra"));
    const small = await png(4, 4);
    const expect = async (
      res: Promise<{ status: number; json: F }>,
      status: number,
      code: string,
    ) => {
      const { status: s, json } = await res;
      assert.equal(s, status, JSON.stringify(json));
      assert.equal((json.error as F).code, code);
    };
    await expect(upload(node, null, small), 401, "unauthenticated");
    await expect(upload(node, "not-a-token", small), 401, "invalid_token");
    await expect(upload(node, a.accessToken, new Uint8Array(4096)), 413, "too_large");
    // Streamed without a content-length: counted as it arrives.
    let streamed = 4;
    const stream = new ReadableStream<Uint8Array>({
      pull(c) {
        if (c.desiredSize === null) return;
        c.enqueue(new Uint8Array(1024).fill(0x89));
        if (--streamed === 0) c.close();
      },
    });
    await expect(upload(node, a.accessToken, stream), 413, "too_large");
    await expect(upload(node, a.accessToken, new Uint8Array(0)), 400, "bad_request");
    await expect(upload(node, a.accessToken, exe()), 415, "unsupported_type");
    await expect(upload(node, a.accessToken, pdf()), 415, "unsupported_type");
    await expect(
      upload(node, a.accessToken, new TextEncoder().encode("<svg onload=alert(1)>"), "image/png"),
      415,
      "unsupported_type",
    );
    await expect(upload(node, a.accessToken, small.subarray(0, 12)), 400, "bad_request");
    const ok = await upload(node, a.accessToken, small);
    assert.equal(ok.status, 201, "the limits leave ordinary uploads alone");
  } finally {
    await node.stop();
  }
});

Deno.test("media is served to its uploader and to the participants of a conversation it was sent in, to nobody else", async () => {
  const node = await testNode();
  try {
    const [a, b, c, d] = await Promise.all(
      ["sa", "sb", "sc", "sd"].map((p) => signUp(node.url, uname(p))),
    );
    const [ca, cb, cc] = await Promise.all(
      [a, b, c].map((u) => TestClient.connect(node.url, u.accessToken)),
    );
    const image = await png(32, 16);
    const up = await upload(node, a.accessToken, image, "image/png");
    const id = up.json.mediaId as string;
    for (const u of [b, c, d]) {
      assert.equal((await download(node, u.accessToken, id)).status, 404, "not sent anywhere yet");
    }
    assert.equal((await download(node, null, id)).status, 401);

    const sent = await ca.request({
      op: "send",
      to: { user: b.userId },
      cmid: "img1",
      body: { type: "image", mediaId: id, caption: "look" },
    });
    assert.equal(sent.op, "ok", JSON.stringify(sent));
    const m = await cb.waitFor((f) => f.op === "msg" && f.mid === sent.mid, 5000, true);
    assert.deepEqual(m.body, {
      type: "image",
      mediaId: id,
      caption: "look",
      width: 32,
      height: 16,
    });
    const got = await download(node, b.accessToken, id);
    assert.equal(got.status, 200);
    assert.deepEqual(got.bytes, image);
    assert.equal((await download(node, c.accessToken, id)).status, 404);

    const g = await ca.request({ op: "group.create", name: "pics", members: [c.userId] });
    const inGroup = await ca.request({
      op: "send",
      to: { group: g.groupId },
      cmid: "img2",
      body: { type: "image", mediaId: id, width: 999, height: 999 },
    });
    assert.equal(inGroup.op, "ok");
    const gm = await cc.waitFor((f) => f.op === "msg" && f.mid === inGroup.mid, 5000, true);
    assert.equal((gm.body as F).width, 32, "the server's size wins over the client's");
    assert.equal((await download(node, c.accessToken, id)).status, 200);
    assert.equal((await download(node, d.accessToken, id)).status, 404);

    // Recalling the direct message ends b's access; c still has it through the group.
    const recalled = await ca.request({ op: "msg.recall", conv: sent.conv, mid: sent.mid });
    assert.equal(recalled.op, "ok");
    assert.equal((await download(node, b.accessToken, id)).status, 404);
    assert.equal((await download(node, c.accessToken, id)).status, 200);
    assert.equal((await download(node, a.accessToken, id)).status, 200, "the uploader keeps it");
    for (const client of [ca, cb, cc]) await client.close();
  } finally {
    await node.stop();
  }
});

Deno.test("a media message is refused for someone else's, unknown or ill-fitting media", async () => {
  const node = await testNode();
  try {
    const [a, b] = await Promise.all(["ma", "mb"].map((p) => signUp(node.url, uname(p))));
    const cb = await TestClient.connect(node.url, b.accessToken);
    const ca = await TestClient.connect(node.url, a.accessToken);
    const image = (await upload(node, a.accessToken, await png(8, 8))).json.mediaId as string;
    const doc = (await upload(node, b.accessToken, pdf())).json.mediaId as string;
    const expect = async (client: TestClient, body: F, code: string) => {
      const res = await client.request({
        op: "send",
        to: { user: a.userId },
        cmid: `x${++seq}`,
        body,
      });
      assert.equal(res.code, code, JSON.stringify(res));
    };
    await expect(cb, { type: "image", mediaId: image }, "not_found");
    await expect(cb, { type: "image", mediaId: "md_aaaaaaaaaaaaaaaaaaaa" }, "not_found");
    await expect(cb, { type: "image", mediaId: doc }, "bad_request");
    await expect(cb, { type: "voice", mediaId: doc, duration: 3 }, "bad_request");
    const file = await cb.request({
      op: "send",
      to: { user: a.userId },
      cmid: "doc",
      body: { type: "file", mediaId: doc, name: "report.pdf", size: 1 },
    });
    assert.equal(file.op, "ok", JSON.stringify(file));
    const m = await ca.waitFor((f) => f.op === "msg" && f.mid === file.mid, 5000, true);
    assert.equal((m.body as F).size, pdf().length, "the server's size wins");
    assert.equal((await download(node, a.accessToken, doc)).status, 200);
    await ca.close();
    await cb.close();
  } finally {
    await node.stop();
  }
});

Deno.test("a media id cannot name anything but a media item: path tricks get 404", async () => {
  const node = await testNode();
  try {
    const a = await signUp(node.url, uname("pa"));
    await Deno.writeTextFile(`${node.dataDir}/secret.txt`, "s3cret");
    const tricks = [
      "..%2Fsecret.txt",
      "..%2F..%2Fsecret.txt",
      "md_..%2F..%2Fsecret.txt",
      "%2E%2E%2Fsecret.txt",
      "md_aaaaaaaaaaaaaaaaaaaa%00",
      "md_AAAAAAAAAAAAAAAAAAAA",
      "secret.txt",
    ];
    for (const t of tricks) {
      const r = await fetch(`${node.url}/v1/media/${t}`, {
        headers: { authorization: `Bearer ${a.accessToken}` },
      });
      const text = await r.text();
      assert.equal(r.status, 404, `${t}: ${text}`);
      assert.ok(!text.includes("s3cret"));
    }
  } finally {
    await node.stop();
  }
});
