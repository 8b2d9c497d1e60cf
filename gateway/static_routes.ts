/**
 * Serves the web client (`/`) and the admin console (`/admin`) from the built assets in
 * `web/dist/` (committed; rebuilt with `deno task build:web`).
 *
 * Routes: `GET /` → `index.html`, `GET /admin` → `admin.html`, `GET /assets/<file>` → a file of
 * `web/dist/` (JavaScript, CSS, source maps). File names are checked against a strict pattern
 * before any file is opened, so no path can leave the folder. Files are read once and kept in
 * memory. Pages carry a Content-Security-Policy that allows scripts, styles and connections only
 * to this origin (images also from `blob:`/`data:`, for media fetched with a token).
 *
 * @module
 */
import { Hono } from "hono";

const DIST = new URL("../web/dist/", import.meta.url);

const TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  css: "text/css; charset=utf-8",
  map: "application/json; charset=utf-8",
  svg: "image/svg+xml",
  png: "image/png",
};

const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' blob: data:",
  "connect-src 'self' ws: wss:",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'self'",
].join("; ");

const ASSET_NAME = /^[a-z0-9_-]{1,64}\.(js|css|map|svg|png)$/;

/** The static routes; mount with `app.route("/", staticRoutes())`. */
export function staticRoutes(dist: URL = DIST): Hono {
  const cache = new Map<string, Uint8Array>();
  const read = async (name: string): Promise<Uint8Array | null> => {
    const hit = cache.get(name);
    if (hit) return hit;
    try {
      const bytes = await Deno.readFile(new URL(name, dist));
      cache.set(name, bytes);
      return bytes;
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return null;
      throw err;
    }
  };
  const serve = async (name: string, page: boolean): Promise<Response> => {
    const bytes = await read(name);
    if (!bytes) {
      return Response.json(
        { error: { code: "not_found", message: "No such file (run deno task build:web)" } },
        { status: 404 },
      );
    }
    const ext = name.slice(name.lastIndexOf(".") + 1);
    const headers: Record<string, string> = {
      "content-type": TYPES[ext] ?? "application/octet-stream",
      "x-content-type-options": "nosniff",
      "cache-control": page ? "no-cache" : "public, max-age=300",
    };
    if (page) {
      headers["content-security-policy"] = CSP;
      headers["referrer-policy"] = "no-referrer";
      headers["x-frame-options"] = "DENY";
    }
    return new Response(bytes as Uint8Array<ArrayBuffer>, { headers });
  };

  const app = new Hono();
  app.get("/", () => serve("index.html", true));
  app.get("/admin", () => serve("admin.html", true));
  app.get("/assets/:name", (c) => {
    const name = c.req.param("name");
    if (!ASSET_NAME.test(name)) {
      return c.json({ error: { code: "not_found", message: "No such file" } }, 404);
    }
    return serve(name, false);
  });
  return app;
}
