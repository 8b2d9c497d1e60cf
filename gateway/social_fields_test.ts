import assert from "node:assert/strict";
import fc from "fast-check";
import { BadRequestError } from "../actors/errors.ts";
import type { Frame } from "./ops.ts";
import {
  cursorField,
  encodeCursor,
  idField,
  idList,
  isIdShape,
  textField,
} from "./social_fields.ts";

const frame = (fields: Record<string, unknown>): Frame => ({ op: "x", ...fields });
const isCursor = (v: unknown): v is { key: string; userId: string } =>
  typeof v === "object" && v !== null && typeof (v as { key: unknown }).key === "string";

Deno.test("a cursor survives encoding for any key, and anything else is bad_request", () => {
  fc.assert(fc.property(fc.string(), fc.string(), (key, userId) => {
    const c = encodeCursor({ key, userId });
    assert.match(c, /^[A-Za-z0-9_-]*$/);
    assert.deepEqual(cursorField(frame({ after: c }), "after", isCursor), { key, userId });
  }));
  assert.equal(cursorField(frame({}), "after", isCursor), null);
  for (const bad of ["!!", encodeCursor([1]), 5, "x".repeat(600)]) {
    assert.throws(() => cursorField(frame({ after: bad }), "after", isCursor), BadRequestError);
  }
});

Deno.test("ids are server-shaped: prototype names and separators are refused", () => {
  assert.equal(isIdShape("u_abcdefghijklmnopqrst"), true);
  for (const bad of ["__proto__", "_x", "", "a:b", "a/b", "x".repeat(65), 7]) {
    assert.equal(isIdShape(bad), false, String(bad));
  }
  assert.throws(() => idField(frame({ userId: "__proto__" }), "userId"), BadRequestError);
  assert.deepEqual(idList(frame({ ids: ["a1", "a1", "b2"] }), "ids", 3), ["a1", "b2"]);
  assert.throws(() => idList(frame({ ids: ["a", "b"] }), "ids", 1), BadRequestError);
});

Deno.test("texts are counted in code points and refuse control characters unless multi-line", () => {
  assert.equal(textField(frame({ t: "😀".repeat(3) }), "t", 3), "😀😀😀");
  assert.throws(() => textField(frame({ t: "abcd" }), "t", 3), BadRequestError);
  assert.throws(() => textField(frame({ t: "a\nb" }), "t", 10), BadRequestError);
  assert.equal(textField(frame({ t: "a\nb\tc" }), "t", 10, { multiLine: true }), "a\nb\tc");
  assert.throws(
    () => textField(frame({ t: "a\u0000" }), "t", 10, { multiLine: true }),
    BadRequestError,
  );
  assert.equal(textField(frame({}), "t", 3, { def: "" }), "");
  assert.throws(() => textField(frame({}), "t", 3), BadRequestError);
});
