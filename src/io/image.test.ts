// Image decoding and encoding with sharp: lossless PNG round trips for every channel count, JPEG, and the bad files.

import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, test, vi } from 'vitest';
import { checkImage, decodeImage, encodePng, readImage, writePng, type RawImage } from './image.js';

function pattern(width: number, height: number, channels: number): RawImage {
  return { width, height, channels, data: Uint8Array.from({ length: width * height * channels }, (_, i) => (i * 37 + 11) % 256) };
}

async function jpeg(): Promise<Buffer> {
  const img = pattern(32, 24, 3);
  return sharp(img.data, { raw: { width: 32, height: 24, channels: 3 } }).jpeg({ quality: 90 }).toBuffer();
}

describe('readImage / writePng', () => {
  test('PNG round trip keeps every channel count and every byte (1 gray, 2 gray+alpha, 3 RGB, 4 RGBA)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'attend-image-'));
    for (const channels of [1, 2, 3, 4]) {
      const img = pattern(5, 3, channels);
      const path = join(dir, `c${channels}.png`);
      await writePng(path, img);
      const back = await readImage(path);
      expect({ w: back.width, h: back.height, c: back.channels }).toEqual({ w: 5, h: 3, c: channels });
      expect(Array.from(back.data)).toEqual(Array.from(img.data));
    }
  });

  test('a JPEG decodes to RGB of its size, close to what was encoded', async () => {
    const img = await decodeImage(await jpeg(), 'x.jpg');
    expect({ w: img.width, h: img.height, c: img.channels }).toEqual({ w: 32, h: 24, c: 3 });
    // The pattern has hard edges that JPEG blurs; the mean stays close to the original's.
    const mean = (d: Uint8Array) => d.reduce((a, b) => a + b, 0) / d.length;
    expect(Math.abs(mean(img.data) - mean(pattern(32, 24, 3).data))).toBeLessThan(8);
  });

  test('a JPEG decodes to the pixels Pillow gives (test/data/image/photo.jpg, scripts/gen_image_fixtures.py)', async () => {
    const want = JSON.parse(await readFile(new URL('../../test/data/image/photo.json', import.meta.url), 'utf8')) as { width: number; height: number; channels: number; pixels: number[] };
    const img = await readImage(new URL('../../test/data/image/photo.jpg', import.meta.url).pathname);
    expect({ w: img.width, h: img.height, c: img.channels }).toEqual({ w: want.width, h: want.height, c: want.channels });
    // libjpeg-turbo (Pillow) and mozjpeg (sharp) share the integer IDCT and the chroma upsampling: measured identical.
    let maxDiff = 0;
    want.pixels.forEach((v, i) => { maxDiff = Math.max(maxDiff, Math.abs(v - img.data[i]!)); });
    expect(maxDiff).toBe(0);
  });

  test('encodePng output is a PNG', async () => {
    const png = await encodePng(pattern(2, 2, 3));
    expect(Array.from(png.subarray(0, 8))).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  });
});

describe('bad images: the error names the file and says what is wrong', () => {
  test('corrupt PNG (a flipped byte in the pixel data)', async () => {
    const png = Buffer.from(await encodePng(pattern(16, 16, 3)));
    png[png.length - 30]! ^= 0xff;
    await expect(decodeImage(png, 'photo.png')).rejects.toThrow(/^photo\.png: corrupt or truncated image/);
  });
  test('truncated PNG and truncated JPEG', async () => {
    const png = await encodePng(pattern(16, 16, 3));
    await expect(decodeImage(png.subarray(0, 60), 'cut.png')).rejects.toThrow(/^cut\.png: corrupt or truncated image/);
    const jpg = await jpeg();
    await expect(decodeImage(jpg.subarray(0, jpg.length - 100), 'cut.jpg')).rejects.toThrow(/^cut\.jpg: corrupt or truncated image/);
  });
  test('a text file named .png, an empty file, a missing file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'attend-image-'));
    await writeFile(join(dir, 'notes.png'), 'this is text, not an image\n');
    await writeFile(join(dir, 'empty.png'), '');
    await expect(readImage(join(dir, 'notes.png'))).rejects.toThrow(/notes\.png: not an image in a format sharp reads/);
    await expect(readImage(join(dir, 'empty.png'))).rejects.toThrow(/empty\.png: the file is empty \(0 bytes\)/);
    await expect(readImage(join(dir, 'missing.png'))).rejects.toThrow(/missing\.png: cannot read \(ENOENT\)/);
  });
  test('images that cannot be written: zero size, 5 channels, data of the wrong length', async () => {
    await expect(writePng('/tmp/z.png', { width: 0, height: 4, channels: 3, data: new Uint8Array(0) })).rejects.toThrow(/z\.png: width must be a positive integer, got 0/);
    expect(() => checkImage({ width: 2, height: 2, channels: 5, data: new Uint8Array(20) }, 'five')).toThrow(/five: channels must be 1 \(gray\), 2/);
    expect(() => checkImage({ width: 2, height: 2, channels: 3, data: new Uint8Array(11) }, 'short')).toThrow(/short: data holds 11 bytes, expected height 2 x width 2 x channels 3 = 12/);
  });
});

test('without sharp installed: a clear message saying how to get it', async () => {
  vi.resetModules();
  vi.doMock('sharp', () => { throw new Error("Cannot find package 'sharp'"); });
  try {
    const fresh = await import('./image.js');
    await expect(fresh.decodeImage(new Uint8Array([1, 2, 3]), 'x.png')).rejects.toThrow(/needs the optional dependency sharp, which could not be loaded: run `npm install sharp`/);
    await expect(fresh.encodePng(pattern(1, 1, 3))).rejects.toThrow(/npm install sharp/);
  } finally {
    vi.doUnmock('sharp');
    vi.resetModules();
  }
});
