/**
 * Helpers for end-to-end tests of the social features: signed-up users with connected clients,
 * and request helpers that assert the answer.
 *
 * @module
 */
import assert from "node:assert/strict";
import { type F, type Proto, signUp, TestClient } from "./client.ts";

let seq = 0;

/** A username unique to this process and run (3-32 chars of a-z 0-9 _). */
export function uniqueName(prefix: string): string {
  const rand = crypto.randomUUID().replaceAll("-", "").slice(0, 8);
  return `${prefix}${rand}${++seq}`.toLowerCase().slice(0, 32);
}

/** A user with a connected client. */
export interface Person {
  userId: string;
  username: string;
  token: string;
  /** The first connected client (more can be opened with {@link connectAgain}). */
  c: TestClient;
}

/** Signs up users with fresh names and connects one client each. */
export async function people(base: string, names: string[], proto: Proto): Promise<Person[]> {
  const out: Person[] = [];
  for (const name of names) {
    const username = uniqueName(name);
    const login = await signUp(base, username);
    const c = await TestClient.connect(base, login.accessToken, proto);
    out.push({ userId: login.userId, username, token: login.accessToken, c });
  }
  return out;
}

/** Another connected client (device) of `p`. */
export function connectAgain(base: string, p: Person, proto: Proto, device?: string) {
  return TestClient.connect(base, p.token, proto, device);
}

/** Sends `frame` and asserts an `ok` answer; returns it. */
export async function ok(c: TestClient, frame: F): Promise<F> {
  const res = await c.request(frame);
  assert.equal(res.op, "ok", `${frame.op}: ${JSON.stringify(res)}`);
  return res;
}

/** Sends `frame` and asserts an `error` answer with `code`; returns it. */
export async function refused(c: TestClient, frame: F, code: string): Promise<F> {
  const res = await c.request(frame);
  assert.equal(res.op, "error", `${frame.op} should be refused: ${JSON.stringify(res)}`);
  assert.equal(res.code, code, `${frame.op}: ${JSON.stringify(res)}`);
  return res;
}

/** Waits for a pushed frame with `op` (and matching `fields`), also among frames already seen. */
export function pushed(c: TestClient, op: string, fields: F = {}, timeoutMs = 5000): Promise<F> {
  return c.waitFor(
    (f) => f.op === op && Object.entries(fields).every(([k, v]) => f[k] === v),
    timeoutMs,
    true,
  );
}

/** Frames with `op` received so far. */
export function framesOf(c: TestClient, op: string): F[] {
  return c.frames.filter((f) => f.op === op);
}

/** Closes every client. */
export async function closeAll(list: Person[], extra: TestClient[] = []): Promise<void> {
  await Promise.all([...list.map((p) => p.c.close()), ...extra.map((c) => c.close())]);
}

/** A user id of the right shape that names no account. */
export const NOBODY = "u_" + "a".repeat(20);

let cmid = 0;

/** A text `send` frame to a user. */
export function textTo(userId: string, text = "hello"): F {
  return { op: "send", to: { user: userId }, cmid: `c${++cmid}`, body: { type: "text", text } };
}

/** Sleeps. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
