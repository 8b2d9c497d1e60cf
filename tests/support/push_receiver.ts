/**
 * A local HTTP receiver for offline-push webhooks (Deno.serve on port 0) that verifies each
 * request's HMAC-SHA256 signature independently of the server's code.
 *
 * @module
 */

/** One request the receiver got. */
export interface Received {
  /** The parsed JSON body. */
  body: Record<string, unknown>;
  /** The raw body text. */
  raw: string;
  headers: Headers;
  /** Whether `x-im-signature` matches `x-im-timestamp` and the raw body under the secret. */
  signatureValid: boolean;
}

/** A running receiver. */
export interface PushReceiver {
  readonly url: string;
  readonly received: Received[];
  /** Statuses to answer, in order, before answering 200 (e.g. `[500, 503]`). */
  failWith: number[];
  /** Waits until `n` requests matched `pred` (default: any). */
  waitFor(n: number, pred?: (r: Received) => boolean, timeoutMs?: number): Promise<Received[]>;
  close(): Promise<void>;
}

const encoder = new TextEncoder();

function fromHex(hex: string): Uint8Array<ArrayBuffer> {
  if (!/^([0-9a-f]{2})+$/.test(hex)) return new Uint8Array();
  return Uint8Array.from(hex.match(/../g)!, (h) => parseInt(h, 16));
}

/** Starts a receiver that checks signatures made with `secret`. */
export async function startPushReceiver(secret: string): Promise<PushReceiver> {
  const key = await crypto.subtle.importKey(
    "raw",
    encoder.encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["verify"],
  );
  const received: Received[] = [];
  const receiver = {
    failWith: [] as number[],
  };
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, async (req) => {
    const raw = await req.text();
    const ts = req.headers.get("x-im-timestamp") ?? "";
    const sig = req.headers.get("x-im-signature") ?? "";
    const signatureValid = sig.startsWith("sha256=") &&
      await crypto.subtle.verify(
        "HMAC",
        key,
        fromHex(sig.slice("sha256=".length)),
        encoder.encode(`${ts}.${raw}`),
      );
    received.push({ body: JSON.parse(raw), raw, headers: req.headers, signatureValid });
    const status = receiver.failWith.shift() ?? 200;
    return new Response(status === 200 ? "ok" : "no", { status });
  });
  return Object.assign(receiver, {
    url: `http://127.0.0.1:${server.addr.port}/push`,
    received,
    async waitFor(n: number, pred: (r: Received) => boolean = () => true, timeoutMs = 5000) {
      const end = Date.now() + timeoutMs;
      for (;;) {
        const hits = received.filter(pred);
        if (hits.length >= n) return hits;
        if (Date.now() > end) {
          throw new Error(
            `expected ${n} pushes, got ${hits.length}: ${
              JSON.stringify(received.map((r) => r.body))
            }`,
          );
        }
        await new Promise((r) => setTimeout(r, 10));
      }
    },
    close: () => server.shutdown(),
  });
}
