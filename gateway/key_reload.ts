/**
 * JWT signing-key rotation without a restart.
 *
 * Key ids are derived from the secrets themselves (`h` + 12 hex digits of SHA-256 of the
 * secret), so a key keeps its `kid` wherever it stands in the list and whichever node loads it:
 * adding a new secret in front and, later, removing the old one at the end never changes the
 * `kid` of another key. (The digest of a ≥ 32-byte secret says nothing usable about it; an HS256
 * token is already an HMAC of the secret.)
 *
 * {@link KeyReloader} re-reads JWT_SECRET_FILE (secrets of JWT_SECRET first, then the file's
 * lines: the first signs, all verify) on demand (`reload()`, which main.ts calls on SIGHUP) and
 * every `intervalSec` seconds (JWT_RELOAD_SEC, default 60; 0 = only on demand). A read that fails
 * or yields a bad list keeps the keys in force and logs a warning (without the secrets), so a
 * half-written file never locks every client out.
 *
 * Rotation procedure (docs/security.md): put the new secret on the FIRST line of the file on every
 * node and reload; wait at least the access-token lifetime; remove the old line and reload.
 *
 * @module
 */
import { readJwtSecrets } from "../config.ts";
import type { Logger } from "../observability/log.ts";
import type { SigningKey, TokenService } from "./tokens.ts";

/** Signing keys for `secrets` (first signs) with content-derived, stable key ids. */
export async function keysFromSecrets(secrets: readonly string[]): Promise<SigningKey[]> {
  const keys: SigningKey[] = [];
  const seen = new Set<string>();
  for (const secret of secrets) {
    const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(secret));
    const kid = "h" + new Uint8Array(digest).toHex().slice(0, 12);
    // The same secret listed twice is one key (its first place decides whether it signs).
    if (seen.has(kid)) continue;
    seen.add(kid);
    keys.push({ kid, secret });
  }
  return keys;
}

/** Options of {@link KeyReloader}. */
export interface KeyReloaderOptions {
  tokens: Pick<TokenService, "setKeys" | "kids">;
  /** Secrets that come before the file's (from JWT_SECRET). */
  fromEnv: readonly string[];
  /** The file to re-read (JWT_SECRET_FILE). */
  file: string;
  /** Seconds between automatic re-reads; 0 = only `reload()`. */
  intervalSec: number;
  logger: Pick<Logger, "info" | "warn">;
}

/** Re-reads the secret file on demand and on a timer; `close()` stops the timer. */
export class KeyReloader {
  #timer: ReturnType<typeof setInterval> | undefined;
  #running: Promise<boolean> | null = null;
  constructor(private readonly options: KeyReloaderOptions) {
    if (options.intervalSec > 0) {
      this.#timer = setInterval(() => void this.reload(), options.intervalSec * 1000);
    }
  }

  /**
   * Re-reads the file and installs its keys. Resolves true when the key set changed, false when
   * it is unchanged or the new list was refused (the old keys stay). Never rejects.
   */
  reload(): Promise<boolean> {
    // One read at a time; a reload requested meanwhile joins the one in flight.
    this.#running ??= this.#reload().finally(() => this.#running = null);
    return this.#running;
  }

  async #reload(): Promise<boolean> {
    const { tokens, fromEnv, file, logger } = this.options;
    try {
      const keys = await keysFromSecrets(readJwtSecrets(fromEnv, file));
      const before = tokens.kids.join(",");
      if (keys.length === 0) throw new Error("no secret in the file");
      if (keys.map((k) => k.kid).join(",") === before) return false;
      tokens.setKeys(keys);
      logger.info("jwt keys reloaded", { kids: tokens.kids });
      return true;
    } catch (err) {
      // The message names the file or the rule broken, never a secret.
      logger.warn("jwt key reload refused; keeping the current keys", {
        reason: (err as Error).message,
      });
      return false;
    }
  }

  /** Stops the timer (idempotent). */
  close(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
