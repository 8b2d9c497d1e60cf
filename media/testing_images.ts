/**
 * Small media files for tests, built byte by byte: a real PNG (zlib-compressed pixels, CRCs),
 * a real GIF, and JPEG and WebP files whose headers follow their specifications (enough for
 * sniffing and size parsing; their pixel data is not decodable).
 *
 * @module
 */

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function concat(...parts: (Uint8Array | number[])[]): Uint8Array {
  const arrays = parts.map((p) => p instanceof Uint8Array ? p : new Uint8Array(p));
  const out = new Uint8Array(arrays.reduce((n, a) => n + a.length, 0));
  let off = 0;
  for (const a of arrays) {
    out.set(a, off);
    off += a.length;
  }
  return out;
}

const be32 = (n: number) => [(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255];
const le16 = (n: number) => [n & 255, (n >>> 8) & 255];
const be16 = (n: number) => [(n >>> 8) & 255, n & 255];
const le24 = (n: number) => [n & 255, (n >>> 8) & 255, (n >>> 16) & 255];
const le32 = (n: number) => [n & 255, (n >>> 8) & 255, (n >>> 16) & 255, (n >>> 24) & 255];
const ascii = (s: string) => [...s].map((ch) => ch.charCodeAt(0));

function pngChunk(type: string, data: Uint8Array): Uint8Array {
  const td = concat(ascii(type), data);
  return concat(be32(data.length), td, be32(crc32(td)));
}

async function zlib(data: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([data as Uint8Array<ArrayBuffer>]).stream().pipeThrough(
    new CompressionStream("deflate"),
  );
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** A valid RGB PNG of `width` × `height` grey pixels. */
export async function png(width: number, height: number): Promise<Uint8Array> {
  const raw = new Uint8Array(height * (1 + width * 3)).fill(128);
  for (let y = 0; y < height; y++) raw[y * (1 + width * 3)] = 0; // filter: none
  const ihdr = new Uint8Array([...be32(width), ...be32(height), 8, 2, 0, 0, 0]);
  return concat(
    [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a],
    pngChunk("IHDR", ihdr),
    pngChunk("IDAT", await zlib(raw)),
    pngChunk("IEND", new Uint8Array(0)),
  );
}

/** A valid GIF89a of one colour, `width` × `height`. */
export function gif(width: number, height: number): Uint8Array {
  return concat(
    ascii("GIF89a"),
    le16(width),
    le16(height),
    [0x80, 0, 0], // global colour table of 2 entries
    [0, 0, 0, 255, 255, 255],
    [0x2c, 0, 0, 0, 0, ...le16(width), ...le16(height), 0], // image descriptor
    [2, 2, 0x4c, 0x01, 0], // LZW data of one (clear, pixel, end) block
    [0x3b],
  );
}

/** A JPEG with an APP0 (JFIF) segment, then a baseline frame header (SOF0) of that size. */
export function jpeg(width: number, height: number): Uint8Array {
  const app0 = concat([0xff, 0xe0], be16(16), ascii("JFIF\0"), [1, 1, 0, 0, 1, 0, 1, 0, 0]);
  const sof0 = concat([0xff, 0xc0], be16(17), [8], be16(height), be16(width), [
    3,
    1,
    0x22,
    0,
    2,
    0x11,
    1,
    3,
    0x11,
    1,
  ]);
  return concat([0xff, 0xd8], app0, sof0, [0xff, 0xd9]);
}

/** A lossless WebP (VP8L) header for `width` × `height`. */
export function webpLossless(width: number, height: number): Uint8Array {
  const bits = ((width - 1) & 0x3fff) | (((height - 1) & 0x3fff) << 14);
  const payload = concat([0x2f], le32(bits), new Uint8Array(8));
  return concat(
    ascii("RIFF"),
    le32(4 + 8 + payload.length),
    ascii("WEBP"),
    ascii("VP8L"),
    le32(payload.length),
    payload,
  );
}

/** An extended WebP (VP8X) header for `width` × `height`. */
export function webpExtended(width: number, height: number): Uint8Array {
  const payload = concat([0, 0, 0, 0], le24(width - 1), le24(height - 1));
  return concat(
    ascii("RIFF"),
    le32(4 + 8 + payload.length),
    ascii("WEBP"),
    ascii("VP8X"),
    le32(payload.length),
    payload,
  );
}

/** A lossy WebP (VP8) key-frame header for `width` × `height`. */
export function webpLossy(width: number, height: number): Uint8Array {
  const payload = concat([0, 0, 0], [0x9d, 0x01, 0x2a], le16(width), le16(height), [0, 0]);
  return concat(
    ascii("RIFF"),
    le32(4 + 8 + payload.length),
    ascii("WEBP"),
    ascii("VP8 "),
    le32(payload.length),
    payload,
  );
}

/** A minimal PDF. */
export function pdf(): Uint8Array {
  return new TextEncoder().encode(
    "%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n",
  );
}

/** A Windows executable header (never an accepted type). */
export function exe(): Uint8Array {
  return concat(ascii("MZ"), new Uint8Array(62));
}
