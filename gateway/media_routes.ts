/**
 * Media over REST (docs/protocol.md, "Media"):
 *
 * | route | success | failures |
 * | --- | --- | --- |
 * | `POST /v1/media` (raw bytes) | 201 `{mediaId, type, size, width?, height?}` | 400 `bad_request`, 401, 413 `too_large`, 415 `unsupported_type` |
 * | `GET /v1/media/:id` | 200 the bytes | 401, 404 `not_found` |
 *
 * Both need `Authorization: Bearer <accessToken>`.
 *
 * Guarantees:
 * - The type is sniffed from the bytes (media/sniff.ts); request headers are never trusted for
 *   it. Only the configured types are accepted; images must have a readable header, and their
 *   width and height are recorded.
 * - The size limit holds whatever `content-length` says: the body is read with a running count
 *   and refused as soon as it passes the limit.
 * - The bytes are stored (durably) before the record, so a recorded media item always has them.
 * - A media item is served only to its uploader and to the participants of a conversation it
 *   was sent in, asked of that conversation's actor at request time (so leaving a group ends
 *   access). Everyone else, and every id that is not a well-formed media id (so no path trick
 *   reaches the blob store), gets the same 404.
 *
 * @module
 */
import { type Context, Hono } from "hono";
import { BadRequestError, ImError, NotFoundError } from "../actors/errors.ts";
import { conversationActor } from "../actors/im/conversation_ids.ts";
import type { MediaRecord, Store } from "../db/store.ts";
import { type BlobStore, isMediaId } from "../media/blob_store.ts";
import { imageSize, sniffType } from "../media/sniff.ts";

export { DEFAULT_MEDIA_TYPES } from "../media/sniff.ts";
import type { Logger } from "../observability/log.ts";
import { httpError } from "./http_errors.ts";

/** What the media routes need. */
export interface MediaRoutesDeps {
  store: Store;
  blobs: BlobStore;
  tokens: { verifyAccess(token: string): Promise<{ userId: string }> };
  /** Asks conversation actors whether a user participates (the cluster router). */
  actors: {
    ask(to: string, type: string, body: unknown, opts?: { deadline?: number }): Promise<unknown>;
  };
  newId(prefix: string): string;
  /** Largest upload, bytes. */
  maxBytes: number;
  /** Accepted sniffed types. */
  allowedTypes: readonly string[];
  requestTimeoutMs: number;
  logger: Pick<Logger, "warn" | "error">;
  /** ms since the epoch (default Date.now). */
  clock?: () => number;
}

async function authenticate(c: Context, deps: MediaRoutesDeps): Promise<string> {
  const header = c.req.header("authorization") ?? "";
  const m = /^Bearer ([^\s]+)$/i.exec(header);
  if (!m) throw new ImError("unauthenticated", "Send Authorization: Bearer <accessToken>");
  try {
    return (await deps.tokens.verifyAccess(m[1])).userId;
  } catch (err) {
    if (err instanceof ImError && err.code !== "invalid_token") throw err;
    throw new ImError("invalid_token", "Invalid or expired token");
  }
}

/** Reads the request body, refusing it with `too_large` once it passes `max` bytes. */
async function readCapped(req: Request, max: number): Promise<Uint8Array> {
  const declared = Number(req.headers.get("content-length") ?? NaN);
  const tooLarge = () => new ImError("too_large", `Media is limited to ${max} bytes`);
  if (Number.isFinite(declared) && declared > max) {
    await req.body?.cancel().catch(() => {});
    throw tooLarge();
  }
  if (!req.body) return new Uint8Array(0);
  const reader = req.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.length;
    if (total > max) {
      await reader.cancel().catch(() => {});
      throw tooLarge();
    }
    chunks.push(value);
  }
  const out = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}

function describe(m: MediaRecord): Record<string, unknown> {
  return {
    mediaId: m.mediaId,
    type: m.mime,
    size: m.size,
    ...(m.width !== null && m.height !== null ? { width: m.width, height: m.height } : {}),
  };
}

/** May `user` download `media`? The uploader, or a participant of a conversation it is in. */
async function mayRead(deps: MediaRoutesDeps, media: MediaRecord, user: string) {
  if (media.owner === user) return true;
  const convs = await deps.store.mediaConversations(media.mediaId);
  const deadline = Date.now() + deps.requestTimeoutMs;
  const answers = await Promise.all(convs.map(async (conv) => {
    const actor = conversationActor(conv);
    if (!actor) return false;
    const res = await deps.actors.ask(actor, "access", { user }, { deadline }) as {
      participant?: boolean;
    };
    return res?.participant === true;
  }));
  return answers.includes(true);
}

/** A Hono app with the media routes; mount with `app.route("/", mediaRoutes(deps))`. */
export function mediaRoutes(deps: MediaRoutesDeps): Hono {
  const clock = deps.clock ?? Date.now;
  const allowed = new Set(deps.allowedTypes);
  const app = new Hono();
  app.onError((err, c) => httpError(c, err, deps.logger));

  app.post("/v1/media", async (c) => {
    const user = await authenticate(c, deps);
    const data = await readCapped(c.req.raw, deps.maxBytes);
    if (data.length === 0) throw new BadRequestError("Empty upload");
    const mime = sniffType(data);
    if (!allowed.has(mime)) {
      throw new ImError("unsupported_type", `Media of type ${mime} is not accepted`);
    }
    let size = null;
    if (mime.startsWith("image/")) {
      size = imageSize(data, mime);
      if (!size) throw new BadRequestError("The image's header cannot be read");
    }
    const media: MediaRecord = {
      mediaId: deps.newId("md_"),
      owner: user,
      mime,
      size: data.length,
      width: size?.width ?? null,
      height: size?.height ?? null,
      createdAt: clock(),
    };
    await deps.blobs.put(media.mediaId, data);
    try {
      await deps.store.createMedia(media);
    } catch (err) {
      await deps.blobs.delete(media.mediaId).catch((e) =>
        deps.logger.warn("orphan media blob left behind", { mediaId: media.mediaId, err: e })
      );
      throw err;
    }
    return c.json(describe(media), 201);
  });

  app.get("/v1/media/:id", async (c) => {
    const user = await authenticate(c, deps);
    const id = c.req.param("id");
    const notFound = new NotFoundError("No such media");
    if (!isMediaId(id)) throw notFound;
    const media = await deps.store.getMedia(id);
    if (!media || !(await mayRead(deps, media, user))) throw notFound;
    const data = await deps.blobs.get(id);
    if (!data) {
      deps.logger.error("media record without its bytes", { mediaId: id });
      throw notFound;
    }
    const inline = /^(image|audio|video)\//.test(media.mime);
    return new Response(data as Uint8Array<ArrayBuffer>, {
      status: 200,
      headers: {
        "content-type": media.mime,
        "content-length": String(data.length),
        "x-content-type-options": "nosniff",
        "content-security-policy": "default-src 'none'; sandbox",
        "cache-control": "private, max-age=3600",
        "content-disposition": inline ? "inline" : `attachment; filename="${id}"`,
      },
    });
  });
  return app;
}
