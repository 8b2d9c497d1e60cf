/**
 * Content sniffing of uploaded media: the type comes from the file's magic bytes, never from a
 * client's header, and images carry the width and height read from their own headers.
 *
 * Guarantees:
 * - {@link sniffType} looks only at the bytes; what it cannot recognise is
 *   `application/octet-stream`.
 * - {@link imageSize} parses PNG, GIF, JPEG and WebP headers without decoding pixels and answers
 *   null (never throws) for a truncated or malformed header.
 *
 * @module
 */

/** Media types this module recognises. */
export const KNOWN_TYPES = [
  "image/png",
  "image/jpeg",
  "image/gif",
  "image/webp",
  "audio/ogg",
  "audio/mpeg",
  "audio/mp4",
  "audio/wav",
  "video/mp4",
  "video/webm",
  "video/quicktime",
  "application/pdf",
  "application/zip",
  "application/octet-stream",
] as const;

/** Media types accepted when the configuration names none. */
export const DEFAULT_MEDIA_TYPES: readonly SniffedType[] = [
  "image/png",
  "image/jpeg",
  "image/gif",
  "image/webp",
  "audio/ogg",
  "audio/mpeg",
  "audio/mp4",
  "audio/wav",
  "video/mp4",
  "video/webm",
  "video/quicktime",
  "application/pdf",
  "application/zip",
];

/** A recognised media type. */
export type SniffedType = (typeof KNOWN_TYPES)[number];

function ascii(b: Uint8Array, at: number, text: string): boolean {
  if (b.length < at + text.length) return false;
  for (let i = 0; i < text.length; i++) if (b[at + i] !== text.charCodeAt(i)) return false;
  return true;
}

function bytes(b: Uint8Array, at: number, values: number[]): boolean {
  if (b.length < at + values.length) return false;
  return values.every((v, i) => b[at + i] === v);
}

/** The media type of `data`, from its magic bytes. */
export function sniffType(data: Uint8Array): SniffedType {
  if (bytes(data, 0, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return "image/png";
  if (bytes(data, 0, [0xff, 0xd8, 0xff])) return "image/jpeg";
  if (ascii(data, 0, "GIF87a") || ascii(data, 0, "GIF89a")) return "image/gif";
  if (ascii(data, 0, "RIFF") && ascii(data, 8, "WEBP")) return "image/webp";
  if (ascii(data, 0, "RIFF") && ascii(data, 8, "WAVE")) return "audio/wav";
  if (ascii(data, 0, "OggS")) return "audio/ogg";
  if (ascii(data, 0, "%PDF-")) return "application/pdf";
  if (bytes(data, 0, [0x50, 0x4b, 0x03, 0x04])) return "application/zip";
  if (bytes(data, 0, [0x1a, 0x45, 0xdf, 0xa3])) return "video/webm";
  if (ascii(data, 4, "ftyp")) {
    const brand = String.fromCharCode(...data.subarray(8, 12));
    if (brand.startsWith("M4A") || brand.startsWith("M4B")) return "audio/mp4";
    if (brand === "qt  ") return "video/quicktime";
    return "video/mp4";
  }
  if (ascii(data, 0, "ID3")) return "audio/mpeg";
  // An MPEG audio frame header: 11 sync bits, layer bits not "reserved".
  if (data.length >= 2 && data[0] === 0xff && (data[1] & 0xe0) === 0xe0 && (data[1] & 0x06)) {
    return "audio/mpeg";
  }
  return "application/octet-stream";
}

/** Width and height in pixels. */
export interface ImageSize {
  width: number;
  height: number;
}

const u16be = (b: Uint8Array, i: number) => (b[i] << 8) | b[i + 1];
const u16le = (b: Uint8Array, i: number) => b[i] | (b[i + 1] << 8);
const u24le = (b: Uint8Array, i: number) => b[i] | (b[i + 1] << 8) | (b[i + 2] << 16);
const u32be = (b: Uint8Array, i: number) =>
  ((b[i] << 24) >>> 0) + (b[i + 1] << 16) + (b[i + 2] << 8) + b[i + 3];

function valid(size: ImageSize): ImageSize | null {
  return size.width > 0 && size.height > 0 ? size : null;
}

/** The pixel size of a PNG, GIF, JPEG or WebP image; null for anything else or a bad header. */
export function imageSize(data: Uint8Array, type: string = sniffType(data)): ImageSize | null {
  switch (type) {
    case "image/png":
      // The first chunk must be IHDR: width and height are its first two fields.
      if (data.length < 24 || !ascii(data, 12, "IHDR")) return null;
      return valid({ width: u32be(data, 16), height: u32be(data, 20) });
    case "image/gif":
      if (data.length < 10) return null;
      return valid({ width: u16le(data, 6), height: u16le(data, 8) });
    case "image/jpeg":
      return jpegSize(data);
    case "image/webp":
      return webpSize(data);
    default:
      return null;
  }
}

function jpegSize(b: Uint8Array): ImageSize | null {
  let i = 2;
  while (i + 3 < b.length) {
    if (b[i] !== 0xff) return null;
    const marker = b[i + 1];
    if (marker === 0xff) {
      i++; // fill byte
      continue;
    }
    // Markers without a length field.
    if (marker === 0xd8 || marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
      i += 2;
      continue;
    }
    if (marker === 0xd9 || marker === 0xda) return null; // end of image / scan before a frame
    const length = u16be(b, i + 2);
    if (length < 2) return null;
    // SOF0..SOF15 carry the frame size, except DHT (C4), JPG (C8) and DAC (CC).
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      if (i + 9 > b.length) return null;
      return valid({ height: u16be(b, i + 5), width: u16be(b, i + 7) });
    }
    i += 2 + length;
  }
  return null;
}

function webpSize(b: Uint8Array): ImageSize | null {
  if (b.length < 30) return null;
  if (ascii(b, 12, "VP8X")) {
    return valid({ width: u24le(b, 24) + 1, height: u24le(b, 27) + 1 });
  }
  if (ascii(b, 12, "VP8L")) {
    if (b[20] !== 0x2f) return null;
    const bits = b[21] | (b[22] << 8) | (b[23] << 16) | (b[24] << 24);
    return valid({ width: (bits & 0x3fff) + 1, height: ((bits >>> 14) & 0x3fff) + 1 });
  }
  if (ascii(b, 12, "VP8 ")) {
    // A key frame's start code, then 14-bit width and height.
    if (!bytes(b, 23, [0x9d, 0x01, 0x2a])) return null;
    return valid({ width: u16le(b, 26) & 0x3fff, height: u16le(b, 28) & 0x3fff });
  }
  return null;
}
