import assert from "node:assert/strict";
import fc from "fast-check";
import { imageSize, sniffType } from "./sniff.ts";
import {
  exe,
  gif,
  jpeg,
  pdf,
  png,
  webpExtended,
  webpLossless,
  webpLossy,
} from "./testing_images.ts";

Deno.test("sniffType names each format from its magic bytes", async () => {
  const ascii = (s: string) => new TextEncoder().encode(s);
  const cases: [Uint8Array, string][] = [
    [await png(3, 2), "image/png"],
    [jpeg(3, 2), "image/jpeg"],
    [gif(3, 2), "image/gif"],
    [webpLossless(3, 2), "image/webp"],
    [pdf(), "application/pdf"],
    [new Uint8Array([0x50, 0x4b, 0x03, 0x04, 0, 0]), "application/zip"],
    [ascii("OggS\0\x02"), "audio/ogg"],
    [ascii("ID3\x03\0"), "audio/mpeg"],
    [new Uint8Array([0xff, 0xfb, 0x90, 0x00]), "audio/mpeg"],
    [ascii("RIFF\0\0\0\0WAVEfmt "), "audio/wav"],
    [ascii("\0\0\0\x18ftypisom\0\0\0\0"), "video/mp4"],
    [ascii("\0\0\0\x18ftypM4A \0\0\0\0"), "audio/mp4"],
    [ascii("\0\0\0\x14ftypqt  \0\0\0\0"), "video/quicktime"],
    [new Uint8Array([0x1a, 0x45, 0xdf, 0xa3, 0x9f]), "video/webm"],
    [exe(), "application/octet-stream"],
    [ascii("<html><script>alert(1)</script>"), "application/octet-stream"],
    [new Uint8Array(0), "application/octet-stream"],
  ];
  for (const [bytes, type] of cases) assert.equal(sniffType(bytes), type);
});

Deno.test("imageSize reads width and height from PNG, GIF, JPEG and WebP headers", async () => {
  assert.deepEqual(imageSize(await png(640, 480)), { width: 640, height: 480 });
  assert.deepEqual(imageSize(gif(320, 200)), { width: 320, height: 200 });
  assert.deepEqual(imageSize(jpeg(1920, 1080)), { width: 1920, height: 1080 });
  assert.deepEqual(imageSize(webpLossless(16383, 1)), { width: 16383, height: 1 });
  assert.deepEqual(imageSize(webpExtended(20000, 3000)), { width: 20000, height: 3000 });
  assert.deepEqual(imageSize(webpLossy(800, 600)), { width: 800, height: 600 });
  assert.equal(imageSize(pdf()), null);
});

Deno.test("imageSize skips JPEG segments before the frame header and refuses a zero size", () => {
  const j = jpeg(10, 20);
  // Two extra APPn segments and fill bytes between SOI and the frame header.
  const extra = new Uint8Array([0xff, 0xe1, 0, 4, 1, 2, 0xff, 0xff, 0xe2, 0, 2]);
  const withExtra = new Uint8Array([...j.subarray(0, 2), ...extra, ...j.subarray(2)]);
  assert.deepEqual(imageSize(withExtra), { width: 10, height: 20 });
  assert.equal(imageSize(jpeg(0, 5)), null);
  assert.equal(imageSize(gif(0, 0)), null);
});

Deno.test("imageSize never throws on truncated or random bytes", async () => {
  const samples = [await png(7, 9), gif(7, 9), jpeg(7, 9), webpLossless(7, 9), webpExtended(7, 9)];
  for (const s of samples) {
    for (let n = 0; n < s.length; n++) {
      const size = imageSize(s.subarray(0, n));
      if (size) assert.deepEqual(size, { width: 7, height: 9 });
    }
  }
  fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
    const size = imageSize(bytes);
    assert.ok(size === null || (size.width > 0 && size.height > 0));
  }));
});
