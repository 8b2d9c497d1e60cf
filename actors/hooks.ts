/**
 * Hooks on actor kinds: `beforeAccept` (may refuse a message or replace its body) and `after`
 * (observes events a behaviour emits, e.g. `stored`).
 *
 * Guarantees:
 * - `beforeAccept` hooks run inside the actor's turn, before the handler, in registration order
 *   (hooks for the exact type and for `"*"` interleaved as registered). A throw refuses the
 *   message with that error; a return value other than `undefined` replaces the body seen by the
 *   next hook and the handler.
 * - `after` hooks run asynchronously (never inside the turn that emitted), each independently:
 *   a failing or slow hook is logged and never breaks the actor or the other hooks.
 *
 * @module
 */
import type { ActorId, AfterEventHook, BeforeAcceptHook } from "./behavior.ts";

/** What the hooks log through (console fits). */
export interface HookLogger {
  error(message: string, fields?: Record<string, unknown>): void;
}

/** Registers hooks for kinds; the actor host runs them. */
export class HookRegistry {
  readonly #before = new Map<string, { type: string; hook: BeforeAcceptHook }[]>();
  readonly #after = new Map<string, AfterEventHook[]>();
  readonly #logger: HookLogger;

  constructor(logger: HookLogger = console) {
    this.#logger = logger;
  }

  /**
   * Runs `hook` before every message of `type` (or of any type with `"*"`) that an actor of
   * `kind` accepts. Returns a function that unregisters it.
   */
  beforeAccept(kind: string, type: string, hook: BeforeAcceptHook): () => void {
    const list = this.#before.get(kind) ?? [];
    const entry = { type, hook };
    this.#before.set(kind, [...list, entry]);
    return () => {
      const now = this.#before.get(kind) ?? [];
      this.#before.set(kind, now.filter((e) => e !== entry));
    };
  }

  /**
   * Runs `hook` after every `event` an actor of `kind` emits. Returns a function that
   * unregisters it.
   */
  after(kind: string, event: string, hook: AfterEventHook): () => void {
    const key = `${kind}\u0000${event}`;
    this.#after.set(key, [...(this.#after.get(key) ?? []), hook]);
    return () => {
      this.#after.set(key, (this.#after.get(key) ?? []).filter((h) => h !== hook));
    };
  }

  /** Whether any beforeAccept hook could apply to `kind`/`type` (lets the host skip an await). */
  hasBeforeAccept(kind: string, type: string): boolean {
    const list = this.#before.get(kind);
    return !!list && list.some((e) => e.type === type || e.type === "*");
  }

  /**
   * Runs the beforeAccept hooks of `kind`/`type` in order and resolves with the (possibly
   * replaced) body; rejects with the first hook's error, which refuses the message.
   */
  async runBeforeAccept(
    actorId: ActorId,
    kind: string,
    type: string,
    body: unknown,
  ): Promise<unknown> {
    // A snapshot of the list: hooks registered while this message runs apply to the next one.
    const list = this.#before.get(kind);
    if (!list) return body;
    for (const { type: t, hook } of list) {
      if (t !== type && t !== "*") continue;
      const out = await hook({ actorId, type, body });
      if (out !== undefined) body = out;
    }
    return body;
  }

  /** Schedules the `after` hooks of `kind`/`event`; never throws, never waits for them. */
  emit(actorId: ActorId, kind: string, event: string, payload: unknown): void {
    const list = this.#after.get(`${kind}\u0000${event}`);
    if (!list || list.length === 0) return;
    for (const hook of list) {
      Promise.resolve()
        .then(() => hook({ actorId, event, payload }))
        .catch((err) => {
          this.#logger.error("after-hook failed", { actorId, kind, event, error: String(err) });
        });
    }
  }
}
