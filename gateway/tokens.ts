/**
 * Access tokens (JWT, HS256, via `jose`) and rotating refresh tokens.
 *
 * Access tokens are short-lived JWTs: `alg` HS256 with a `kid` header, claims `iss`, `aud`,
 * `sub` (the user id), `dev` (the device), `iat`, `exp`. Verification pins the algorithm, the
 * issuer and the audience and requires `exp`, `iat`, `sub` and `dev`, so `alg: none`, another
 * algorithm (RS256/ES256 included: no public key is ever accepted as an HMAC secret), another
 * audience, a token without an expiry, one whose `nbf` has not come or whose `iat` lies more than
 * {@link MAX_CLOCK_SKEW_SEC} in the future is refused. Keys can be replaced at run time
 * ({@link TokenService.setKeys}).
 *
 * Refresh tokens are 32 random bytes (base64url, 43 characters). Only their SHA-256 (hex) is
 * stored. Every refresh rotates: the presented token is marked used (atomically, in the store) and
 * a new one of the same family is issued. Presenting a used token again is treated as theft: the
 * whole family is revoked, so both the thief's and the owner's copies stop working and the owner
 * must log in again. (Consequence: two concurrent refreshes with the same token also revoke the
 * family; clients must serialise refreshes.)
 *
 * Every failure a client can cause surfaces as ImError `invalid_token` with a fixed message that
 * does not say which check failed. Store failures propagate unchanged (e.g. `unavailable`).
 *
 * @module
 */
import { jwtVerify, SignJWT } from "jose";
import { ImError } from "../actors/errors.ts";
import type { RefreshTokenRecord, Store, UserRecord } from "../db/store.ts";
import { newId } from "./ids.ts";

/** One HMAC signing key. */
export interface SigningKey {
  /** Key id, written to the JWT `kid` header. */
  kid: string;
  /** HS256 secret, at least 32 bytes of UTF-8. */
  secret: string;
}

/** The store operations the token service needs. */
export type TokenStore = Pick<
  Store,
  "saveRefreshToken" | "getRefreshToken" | "useRefreshToken" | "revokeRefreshFamily" | "getUser"
>;

/** Options of {@link TokenService}. Give `secret` or `keys`. */
export interface TokenServiceOptions {
  /** One HS256 secret (≥ 32 bytes); its `kid` is {@link DEFAULT_KID}. */
  secret?: string;
  /** Keys for rotation: the first signs, all verify (by `kid`). */
  keys?: readonly SigningKey[];
  /** JWT `iss`; default `"im"`. */
  issuer?: string;
  /** JWT `aud`; default `"im.v1"`. */
  audience?: string;
  /** Access token lifetime in seconds; default 900. */
  accessTtlSec?: number;
  /** Refresh token lifetime in seconds (sliding: each rotation starts it again); default 30 days. */
  refreshTtlSec?: number;
  store: TokenStore;
  /** Milliseconds since the epoch; default `Date.now`. */
  clock?: () => number;
}

/** What login and refresh return; the HTTP answer body of both routes. */
export interface TokenPair {
  userId: string;
  accessToken: string;
  refreshToken: string;
  /** Access token lifetime, seconds. */
  expiresIn: number;
}

/** The identity an access token carries. */
export interface AccessIdentity {
  userId: string;
  device: string;
}

/** Options of {@link TokenService.verifyAccess}. */
export interface VerifyAccessOptions {
  /**
   * Also look the user up and refuse a missing or disabled account (default true). Turn off only
   * where a store read per verification is too costly and a 15-minute window is acceptable.
   */
  checkUser?: boolean;
}

/** `kid` of the key built from the `secret` option. */
export const DEFAULT_KID = "k1";
/** Default access token lifetime, seconds. */
export const DEFAULT_ACCESS_TTL_SEC = 900;
/** Default refresh token lifetime, seconds (30 days). */
export const DEFAULT_REFRESH_TTL_SEC = 30 * 24 * 3600;

const INVALID_TOKEN = "Invalid or expired token";
/** How far in the future a token's `iat` may lie (clock skew between nodes), seconds. */
export const MAX_CLOCK_SKEW_SEC = 60;
const MIN_SECRET_BYTES = 32;
const REFRESH_TOKEN_BYTES = 32;
const REFRESH_TOKEN_RE = /^[A-Za-z0-9_-]{43}$/;
/** Longest device id accepted in a token (the login route validates its input the same way). */
export const MAX_DEVICE_LENGTH = 64;

/** Issues and verifies access tokens; issues, rotates and revokes refresh tokens. */
export class TokenService {
  readonly issuer: string;
  readonly audience: string;
  readonly accessTtlSec: number;
  readonly refreshTtlSec: number;
  #keys: ReadonlyMap<string, Uint8Array>;
  #signKid: string;
  readonly #store: TokenStore;
  readonly #clock: () => number;

  /** Throws (a configuration error) on a missing, short or duplicate key or a bad lifetime. */
  constructor(options: TokenServiceOptions) {
    const keys: readonly SigningKey[] = options.keys ??
      (options.secret !== undefined ? [{ kid: DEFAULT_KID, secret: options.secret }] : []);
    this.#keys = keyMap(keys);
    this.#signKid = keys[0].kid;
    this.issuer = options.issuer ?? "im";
    this.audience = options.audience ?? "im.v1";
    this.accessTtlSec = options.accessTtlSec ?? DEFAULT_ACCESS_TTL_SEC;
    this.refreshTtlSec = options.refreshTtlSec ?? DEFAULT_REFRESH_TTL_SEC;
    for (const ttl of [this.accessTtlSec, this.refreshTtlSec]) {
      if (!Number.isSafeInteger(ttl) || ttl <= 0) throw new Error("Token lifetimes must be > 0 s");
    }
    this.#store = options.store;
    this.#clock = options.clock ?? Date.now;
  }

  /**
   * Replaces the keys (rotation without a restart): the first signs from now on, all verify.
   * Tokens signed with a key that is still in the list stay valid until they expire; those of a
   * removed key stop verifying at once. Throws (and keeps the old keys) on a missing, short or
   * duplicate key.
   */
  setKeys(keys: readonly SigningKey[]): void {
    const map = keyMap(keys);
    this.#keys = map;
    this.#signKid = keys[0].kid;
  }

  /** The key ids in use, the signing one first. */
  get kids(): string[] {
    return [this.#signKid, ...[...this.#keys.keys()].filter((k) => k !== this.#signKid)];
  }

  /** A signed access token for `userId` on `device`, valid for `accessTtlSec`. */
  async issueAccess(userId: string, device: string): Promise<{ token: string; expiresIn: number }> {
    const iat = Math.floor(this.#clock() / 1000);
    const token = await new SignJWT({ dev: device })
      .setProtectedHeader({ alg: "HS256", typ: "JWT", kid: this.#signKid })
      .setIssuer(this.issuer)
      .setAudience(this.audience)
      .setSubject(userId)
      .setIssuedAt(iat)
      .setExpirationTime(iat + this.accessTtlSec)
      .sign(this.#keys.get(this.#signKid)!);
    return { token, expiresIn: this.accessTtlSec };
  }

  /**
   * The identity of a valid access token. Rejects with `invalid_token` for anything else: bad
   * signature, unknown `kid`, another algorithm, wrong issuer or audience, expired, missing claims,
   * and (unless `checkUser` is false) a missing or disabled account.
   */
  async verifyAccess(token: unknown, options: VerifyAccessOptions = {}): Promise<AccessIdentity> {
    if (typeof token !== "string" || token.length === 0 || token.length > 4096) {
      throw new ImError("invalid_token", INVALID_TOKEN);
    }
    let identity: AccessIdentity;
    try {
      const { payload } = await jwtVerify(token, (header) => {
        const key = header.kid === undefined ? undefined : this.#keys.get(header.kid);
        if (key === undefined) throw new Error("unknown kid");
        return key;
      }, {
        algorithms: ["HS256"],
        issuer: this.issuer,
        audience: this.audience,
        requiredClaims: ["exp", "iat", "sub", "dev"],
        currentDate: new Date(this.#clock()),
      });
      // jose checks `nbf` but not an `iat` in the future: a token "issued" later than now (beyond
      // the clock skew nodes may have between them) is not valid yet.
      if (
        typeof payload.iat !== "number" ||
        payload.iat > this.#clock() / 1000 + MAX_CLOCK_SKEW_SEC
      ) {
        throw new Error("issued in the future");
      }
      if (
        typeof payload.sub !== "string" || payload.sub === "" ||
        typeof payload.dev !== "string" || payload.dev === ""
      ) {
        throw new Error("ill-typed claims");
      }
      identity = { userId: payload.sub, device: payload.dev };
    } catch (err) {
      // The reason (expired, bad signature, …) is kept as the cause for logs, not told to clients.
      throw new ImError("invalid_token", INVALID_TOKEN, { cause: err });
    }
    if (options.checkUser ?? true) {
      const user = await this.#store.getUser(identity.userId);
      if (user === null || user.disabled) throw new ImError("invalid_token", INVALID_TOKEN);
    }
    return identity;
  }

  /**
   * Starts a session: an access token and a refresh token of a new family. Without `device`, a
   * fresh device id (`d_…`) is made, so each login is its own device. Rejects with
   * `invalid_credentials` for a disabled account (callers check first; this is a backstop).
   */
  async login(user: Pick<UserRecord, "userId" | "disabled">, device?: string): Promise<TokenPair> {
    if (user.disabled) throw new ImError("invalid_credentials", "Invalid username or password");
    const dev = device ?? newId("d_");
    const refreshToken = await this.#saveNewRefresh(user.userId, dev, newId("f_"));
    const access = await this.issueAccess(user.userId, dev);
    return {
      userId: user.userId,
      accessToken: access.token,
      refreshToken,
      expiresIn: access.expiresIn,
    };
  }

  /**
   * Rotates a refresh token: exactly one call per token succeeds; a reuse revokes the family.
   * Rejects with `invalid_token` for a malformed, unknown, expired, revoked or reused token and for
   * a missing or disabled account.
   */
  async refresh(refreshToken: unknown): Promise<TokenPair> {
    if (typeof refreshToken !== "string" || !REFRESH_TOKEN_RE.test(refreshToken)) {
      throw new ImError("invalid_token", INVALID_TOKEN);
    }
    const hash = await hashRefreshToken(refreshToken);
    const record = await this.#store.getRefreshToken(hash);
    if (record === null || record.revoked) throw new ImError("invalid_token", INVALID_TOKEN);
    const now = this.#clock();
    if (record.usedAt !== null) {
      await this.#store.revokeRefreshFamily(record.familyId);
      throw new ImError("invalid_token", INVALID_TOKEN);
    }
    if (record.expiresAt <= now) throw new ImError("invalid_token", INVALID_TOKEN);
    const user = await this.#store.getUser(record.userId);
    if (user === null || user.disabled) throw new ImError("invalid_token", INVALID_TOKEN);
    if (!(await this.#store.useRefreshToken(hash, now))) {
      // Lost the race against another use of the same token: a reuse.
      await this.#store.revokeRefreshFamily(record.familyId);
      throw new ImError("invalid_token", INVALID_TOKEN);
    }
    const next = await this.#saveNewRefresh(record.userId, record.device, record.familyId);
    // A concurrent reuse may have revoked the family before the new token existed, which would
    // let the new token escape the revocation: look again and revoke it too if so.
    const after = await this.#store.getRefreshToken(hash);
    if (after === null || after.revoked) {
      await this.#store.revokeRefreshFamily(record.familyId);
      throw new ImError("invalid_token", INVALID_TOKEN);
    }
    const access = await this.issueAccess(record.userId, record.device);
    return {
      userId: record.userId,
      accessToken: access.token,
      refreshToken: next,
      expiresIn: access.expiresIn,
    };
  }

  /**
   * Ends the session a refresh token belongs to (logout): revokes its whole family. Resolves
   * `false` when the token is malformed or unknown, `true` otherwise.
   */
  async revoke(refreshToken: unknown): Promise<boolean> {
    if (typeof refreshToken !== "string" || !REFRESH_TOKEN_RE.test(refreshToken)) return false;
    const record = await this.#store.getRefreshToken(await hashRefreshToken(refreshToken));
    if (record === null) return false;
    await this.#store.revokeRefreshFamily(record.familyId);
    return true;
  }

  async #saveNewRefresh(userId: string, device: string, familyId: string): Promise<string> {
    const token = crypto.getRandomValues(new Uint8Array(REFRESH_TOKEN_BYTES))
      .toBase64({ alphabet: "base64url", omitPadding: true });
    const record: RefreshTokenRecord = {
      tokenHash: await hashRefreshToken(token),
      userId,
      device,
      familyId,
      expiresAt: this.#clock() + this.refreshTtlSec * 1000,
      usedAt: null,
      revoked: false,
    };
    await this.#store.saveRefreshToken(record);
    return token;
  }
}

/** Validates keys into a kid → secret map; throws a configuration error. */
function keyMap(keys: readonly SigningKey[]): Map<string, Uint8Array> {
  if (keys.length === 0) throw new Error("TokenService needs a secret or keys");
  const map = new Map<string, Uint8Array>();
  for (const k of keys) {
    const bytes = new TextEncoder().encode(k.secret);
    // The kid is safe to name; the secret is never put in a message.
    if (bytes.length < MIN_SECRET_BYTES) {
      throw new Error(`JWT secret "${k.kid}" must be at least ${MIN_SECRET_BYTES} bytes`);
    }
    if (k.kid === "" || map.has(k.kid)) throw new Error(`Bad or duplicate JWT kid "${k.kid}"`);
    map.set(k.kid, bytes);
  }
  return map;
}

/** Hex SHA-256 of a refresh token: the only form in which refresh tokens are stored. */
export async function hashRefreshToken(token: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(token));
  return new Uint8Array(digest).toHex();
}
