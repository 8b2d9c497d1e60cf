import assert from "node:assert/strict";
import { inQuietHours, isTimeZone, localMinutes } from "./push_prefs.ts";

const at = (iso: string) => Date.parse(iso);

Deno.test("local minutes follow the time zone, daylight saving included", () => {
  assert.equal(localMinutes(at("2026-01-15T12:30:00Z"), "UTC"), 12 * 60 + 30);
  assert.equal(localMinutes(at("2026-01-15T12:30:00Z"), "Asia/Tokyo"), 21 * 60 + 30);
  assert.equal(localMinutes(at("2026-01-15T12:30:00Z"), "Europe/Berlin"), 13 * 60 + 30);
  assert.equal(localMinutes(at("2026-07-15T12:30:00Z"), "Europe/Berlin"), 14 * 60 + 30);
  assert.equal(localMinutes(at("2026-07-15T23:59:00Z"), "UTC"), 23 * 60 + 59);
  assert.equal(localMinutes(at("2026-07-15T00:00:00Z"), "UTC"), 0);
});

Deno.test("quiet hours hold from start (inclusive) to end (exclusive), also across midnight", () => {
  const day = { start: 9 * 60, end: 17 * 60, tz: "UTC" };
  assert.equal(inQuietHours(day, at("2026-03-01T08:59:00Z")), false);
  assert.equal(inQuietHours(day, at("2026-03-01T09:00:00Z")), true);
  assert.equal(inQuietHours(day, at("2026-03-01T16:59:00Z")), true);
  assert.equal(inQuietHours(day, at("2026-03-01T17:00:00Z")), false);
  const night = { start: 22 * 60, end: 7 * 60, tz: "Asia/Tokyo" };
  // 22:00-07:00 in Tokyo is 13:00-22:00 UTC.
  assert.equal(inQuietHours(night, at("2026-03-01T12:59:00Z")), false);
  assert.equal(inQuietHours(night, at("2026-03-01T13:00:00Z")), true);
  assert.equal(inQuietHours(night, at("2026-03-01T15:00:00Z")), true);
  assert.equal(inQuietHours(night, at("2026-03-01T21:59:00Z")), true);
  assert.equal(inQuietHours(night, at("2026-03-01T22:00:00Z")), false);
});

Deno.test("only IANA zones the runtime knows are time zones", () => {
  assert.equal(isTimeZone("UTC"), true);
  assert.equal(isTimeZone("America/New_York"), true);
  assert.equal(isTimeZone("Mars/Olympus"), false);
  assert.equal(isTimeZone(""), false);
});
