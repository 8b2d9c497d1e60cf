import assert from "node:assert/strict";
import fc from "fast-check";
import { ImError } from "../errors.ts";
import {
  BODY_TYPES,
  bodyMediaId,
  MAX_CUSTOM_BYTES,
  previewText,
  validateBody,
} from "./message_types.ts";

const MEDIA = "md_abcdefghijklmnopqrst";

function refuses(body: unknown): void {
  assert.throws(() => validateBody(body), (err: unknown) => {
    assert.ok(err instanceof ImError);
    assert.equal(err.code, "bad_request");
    return true;
  }, JSON.stringify(body));
}

Deno.test("validateBody accepts each body type in its shape and normalises integers and mentions", () => {
  assert.deepEqual(
    validateBody({ type: "image", mediaId: MEDIA, width: 10n, height: 20, caption: "c" }),
    { type: "image", mediaId: MEDIA, width: 10, height: 20, caption: "c" },
  );
  assert.deepEqual(
    validateBody({ type: "text", text: "hi", mentions: ["u_a", "u_a", "u_b"], mentionAll: false }),
    { type: "text", text: "hi", mentions: ["u_a", "u_b"] },
  );
  assert.deepEqual(validateBody({ type: "text", text: "x", replyTo: { cseq: 3n } }), {
    type: "text",
    text: "x",
    replyTo: { cseq: 3 },
  });
  assert.deepEqual(validateBody({ type: "voice", mediaId: MEDIA, duration: 1.5 }), {
    type: "voice",
    mediaId: MEDIA,
    duration: 1.5,
  });
  assert.deepEqual(validateBody({ type: "file", mediaId: MEDIA, name: "a b.pdf" }), {
    type: "file",
    mediaId: MEDIA,
    name: "a b.pdf",
  });
});

Deno.test("validateBody refuses unknown types, server-only types, unknown fields and out-of-bound values", () => {
  for (
    const body of [
      null,
      [],
      "text",
      { type: "" },
      { type: "x".repeat(33) },
      { type: "system", event: "x" },
      { type: "recalled" },
      { type: "text", text: "x", edited: 1 },
      { type: "text", text: "x", replyTo: { mid: "m", text: "forged" } },
      { type: "text", text: "x", replyTo: { cseq: 0 } },
      { type: "text", text: "x", mentions: new Array(101).fill("u") },
      { type: "image", mediaId: MEDIA, width: 1.5 },
      { type: "file", mediaId: MEDIA, name: ".." },
      { type: "file", mediaId: MEDIA, name: "a\nb" },
      { type: "video", mediaId: MEDIA, duration: Infinity },
      { type: "location", lat: NaN, lng: 0 },
      { type: "custom", ext: "x", data: { s: "y".repeat(MAX_CUSTOM_BYTES) } },
    ]
  ) refuses(body);
});

Deno.test("validateBody either refuses a random map or returns a body of a known type with only known fields", () => {
  const field = fc.constantFrom(
    "type",
    "text",
    "mediaId",
    "width",
    "name",
    "lat",
    "lng",
    "emoji",
    "ext",
    "data",
    "mentions",
    "other",
  );
  const value = fc.oneof(
    fc.constantFrom(...BODY_TYPES, MEDIA, "u_a"),
    fc.string(),
    fc.integer(),
    fc.double(),
    fc.boolean(),
    fc.array(fc.string(), { maxLength: 3 }),
    fc.dictionary(fc.string({ maxLength: 4 }), fc.integer(), { maxKeys: 3 }),
  );
  fc.assert(
    fc.property(fc.dictionary(field, value), (raw) => {
      let body: Record<string, unknown>;
      try {
        body = validateBody(raw);
      } catch (err) {
        assert.ok(err instanceof ImError && err.code === "bad_request");
        return;
      }
      assert.ok((BODY_TYPES as readonly string[]).includes(body.type as string));
      for (const key of Object.keys(body)) assert.ok(key in raw, `${key} was not given`);
      assert.equal(typeof previewText(body), "string");
      if (bodyMediaId(body)) assert.equal(bodyMediaId(body), MEDIA);
    }),
    { numRuns: 500 },
  );
});
