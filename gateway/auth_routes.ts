/**
 * REST auth routes of the v1 contract (PROTOCOL-CORE.md):
 *
 * | route | success | failures |
 * | --- | --- | --- |
 * | `POST /v1/auth/register` `{username, password}` | 201 `{userId}` | 400 `bad_request`, 409 `username_taken`, 429 `rate_limited` |
 * | `POST /v1/auth/login` `{username, password, device?}` | 200 {@link TokenPair} | 400 `bad_request`, 401 `invalid_credentials`, 429 `rate_limited` |
 * | `POST /v1/auth/refresh` `{refreshToken}` | 200 {@link TokenPair} | 400 `bad_request`, 401 `invalid_token` |
 *
 * Every error body is `{"error": {"code", "message"}}`. A body is malformed (400 `bad_request`)
 * when its content type is not `application/json`, it is not valid JSON, it is not a JSON object,
 * or a field has the wrong type. On register, a username or password that breaks the rules is
 * also 400 `bad_request`; on login, well-typed but unknown or wrong credentials are always 401
 * `invalid_credentials`, whether the account is missing, disabled or the password wrong, and all
 * three cost one password verification so accounts cannot be probed by timing.
 *
 * Bodies over {@link AuthRoutesDeps.maxBodyBytes} (default 16 KiB) are answered 413 with code
 * `bad_request`: the contract fixes few error codes, so "too large" stays a kind of bad request
 * and the status tells the difference.
 *
 * @module
 */
import { type Context, Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { BadRequestError, ImError, UnavailableError } from "../actors/errors.ts";
import type { Store } from "../db/store.ts";
import type { Logger } from "../observability/log.ts";
import { errorResponse, httpError } from "./http_errors.ts";
import type { LoginThrottle } from "./login_throttle.ts";
import { newId } from "./ids.ts";
import type { RegistrationThrottle } from "./registration_throttle.ts";
import {
  DEFAULT_PASSWORD_ITERATIONS,
  hashPassword,
  validatePassword,
  validateUsername,
  verifyPassword,
} from "./password.ts";
import { MAX_DEVICE_LENGTH, type TokenPair, type TokenService } from "./tokens.ts";

export type { TokenPair };

/** What the auth routes need. */
export interface AuthRoutesDeps {
  store: Store;
  tokens: TokenService;
  /** PBKDF2 iterations for new hashes (and the timing dummy); default 210,000. */
  passwordIterations?: number;
  /** Makes the id of a new account; default `newId("u_")`. */
  newUserId?: () => string;
  logger?: Pick<Logger, "info" | "warn" | "error">;
  /** Largest accepted request body in bytes; default 16 KiB. */
  maxBodyBytes?: number;
  /** Milliseconds since the epoch, for `createdAt`; default `Date.now`. */
  clock?: () => number;
  /** Throttles failed logins per username and IP (429 `rate_limited`); absent = none. */
  loginThrottle?: LoginThrottle;
  /** Throttles registrations per IP (429 `rate_limited` + `Retry-After`); absent = none. */
  registrationThrottle?: RegistrationThrottle;
  /** The client's address for the throttles; default "". */
  clientIp?: (c: Context) => string;
}

/** Default cap on an auth request body. */
export const DEFAULT_AUTH_MAX_BODY_BYTES = 16 * 1024;

const BAD_CREDENTIALS = "Invalid username or password";

/** A Hono app with the three auth routes; mount it with `app.route("/", authRoutes(deps))`. */
export function authRoutes(deps: AuthRoutesDeps): Hono {
  const iterations = deps.passwordIterations ?? DEFAULT_PASSWORD_ITERATIONS;
  const newUserId = deps.newUserId ?? (() => newId("u_"));
  const clock = deps.clock ?? Date.now;
  const { store, tokens, logger } = deps;
  // Verified against when the username is unknown: same scheme and iteration count as real hashes,
  // random salt and hash, so the work (and the answer: false) matches a wrong password.
  const dummyHash = `pbkdf2-sha256$${iterations}$${randomB64(16)}$${randomB64(32)}`;

  const app = new Hono();
  app.onError((err, c) => httpError(c, err, logger));
  app.use(
    "/v1/auth/*",
    bodyLimit({
      maxSize: deps.maxBodyBytes ?? DEFAULT_AUTH_MAX_BODY_BYTES,
      onError: (c) => errorResponse(c, "bad_request", "Request body too large", 413),
    }),
  );

  app.post("/v1/auth/register", async (c) => {
    const body = await readJsonObject(c);
    const { username, password } = body;
    if (typeof username !== "string" || typeof password !== "string") {
      throw new BadRequestError("username and password must be strings");
    }
    if (!validateUsername(username)) {
      throw new BadRequestError("username must be 3-32 characters of a-z 0-9 _ . -");
    }
    if (!validatePassword(password)) {
      throw new BadRequestError("password must be 8-128 characters");
    }
    // Taken after the input checks (a typo costs nothing) and before the store is asked.
    const ticket = deps.registrationThrottle?.take(deps.clientIp?.(c) ?? "");
    if (ticket && "retryAfterSec" in ticket) {
      c.header("Retry-After", String(ticket.retryAfterSec));
      return errorResponse(
        c,
        "rate_limited",
        "Too many registrations from this address, retry later",
        429,
      );
    }
    try {
      // Cheap early answer; the store's unique constraint still decides races.
      if (await store.getUserByUsername(username)) {
        throw new ImError("username_taken", "Username is already taken");
      }
      const userId = newUserId();
      const passwordHash = await hashPassword(password, { iterations });
      await store.createUser({
        userId,
        username,
        passwordHash,
        createdAt: clock(),
        disabled: false,
      });
      logger?.info("user registered", { userId });
      return c.json({ userId }, 201);
    } catch (err) {
      // The store was down: the client is told to retry, so the retry must not be refused.
      if (err instanceof UnavailableError) ticket?.refund();
      throw err;
    }
  });

  app.post("/v1/auth/login", async (c) => {
    const body = await readJsonObject(c);
    const { username, password, device } = body;
    if (typeof username !== "string" || typeof password !== "string") {
      throw new BadRequestError("username and password must be strings");
    }
    if (device !== undefined && !isDeviceId(device)) {
      throw new BadRequestError(
        `device must be a string of 1-${MAX_DEVICE_LENGTH} characters without control characters`,
      );
    }
    // Taken before the slow password check, so concurrent guesses cannot outrun the count.
    const attempt = deps.loginThrottle?.attempt(username, deps.clientIp?.(c) ?? "");
    if (attempt === null) {
      return errorResponse(c, "rate_limited", "Too many login attempts, retry later", 429);
    }
    const user = validateUsername(username) ? await store.getUserByUsername(username) : null;
    const matches = await verifyPassword(password, user?.passwordHash ?? dummyHash);
    if (user === null || !matches || user.disabled) {
      throw new ImError("invalid_credentials", BAD_CREDENTIALS);
    }
    attempt?.succeeded();
    const pair = await tokens.login(user, device);
    return c.json(pair satisfies TokenPair, 200);
  });

  app.post("/v1/auth/refresh", async (c) => {
    const body = await readJsonObject(c);
    const { refreshToken } = body;
    if (typeof refreshToken !== "string") {
      throw new BadRequestError("refreshToken must be a string");
    }
    const pair = await tokens.refresh(refreshToken);
    return c.json(pair satisfies TokenPair, 200);
  });

  return app;
}

/** True for a device id a client may choose: 1–64 UTF-16 units, no control characters. */
export function isDeviceId(value: unknown): value is string {
  return typeof value === "string" && value.length >= 1 && value.length <= MAX_DEVICE_LENGTH &&
    // deno-lint-ignore no-control-regex
    !/[\u0000-\u001f\u007f]/.test(value);
}

/** The request body as a JSON object, or a BadRequestError (content type, syntax, shape). */
async function readJsonObject(c: Context): Promise<Record<string, unknown>> {
  const type = c.req.header("content-type") ?? "";
  if (type.split(";")[0].trim().toLowerCase() !== "application/json") {
    throw new BadRequestError("Content-Type must be application/json");
  }
  const text = await c.req.text();
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new BadRequestError("Body is not valid JSON");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new BadRequestError("Body must be a JSON object");
  }
  return value as Record<string, unknown>;
}

function randomB64(bytes: number): string {
  return crypto.getRandomValues(new Uint8Array(bytes)).toBase64();
}
