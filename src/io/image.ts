// Reading and writing images (PNG, JPEG and whatever else sharp decodes) as raw 8-bit pixels, with errors naming the file.
//
// sharp (libvips) is an optional dependency, imported only when an image is decoded or encoded, so that code that never
// touches images (and browser bundles) does not need it.

import { fs, sharp } from '#platform';

/**
 * An 8-bit image: `data` holds `height * width * channels` bytes, row-major, channels interleaved (HWC).
 * Channels are kept as the file stores them: 1 gray, 2 gray + alpha, 3 RGB, 4 RGBA. Nothing is converted or dropped
 * here (an alpha channel stays); image processors decide what a model needs.
 */
export interface RawImage {
  data: Uint8Array;
  width: number;
  height: number;
  channels: number;
}

type SharpModule = typeof import('sharp');

let sharpModule: Promise<SharpModule> | undefined;

/** sharp, loaded once; a clear message if the optional dependency is not installed. */
async function loadSharp(): Promise<SharpModule> {
  sharpModule ??= sharp().catch((e: unknown) => {
    sharpModule = undefined;
    throw new Error(`reading and writing images needs the optional dependency sharp, which could not be loaded: run \`npm install sharp\` (${(e as Error).message})`);
  });
  return sharpModule!;
}

/** Checks that an image's fields agree (sizes positive integers, 1 to 4 channels, data of the right length). */
export function checkImage(image: RawImage, source = 'image'): void {
  const { width, height, channels, data } = image;
  for (const [k, v] of [['width', width], ['height', height]] as const) {
    if (!Number.isInteger(v) || v <= 0) throw new Error(`${source}: ${k} must be a positive integer, got ${v} (a zero-size image has no pixels)`);
  }
  if (!Number.isInteger(channels) || channels < 1 || channels > 4) throw new Error(`${source}: channels must be 1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGBA), got ${channels}`);
  if (!(data instanceof Uint8Array)) throw new Error(`${source}: data must be a Uint8Array of 8-bit pixels`);
  if (data.length !== width * height * channels) {
    throw new Error(`${source}: data holds ${data.length} bytes, expected height ${height} x width ${width} x channels ${channels} = ${width * height * channels}`);
  }
}

/**
 * Decodes an encoded image (PNG, JPEG, WebP, GIF's first frame, TIFF, ...) to 8-bit pixels. `source` names the image
 * in errors (a file name). The EXIF orientation is applied, as Hugging Face's `load_image` does; 16-bit images are
 * reduced to 8 bits. A corrupt or truncated file, a file that is not an image, or an empty one is an error.
 */
export async function decodeImage(bytes: Uint8Array, source = 'image'): Promise<RawImage> {
  if (bytes.length === 0) throw new Error(`${source}: the file is empty (0 bytes), not an image`);
  const sharp = await loadSharp();
  let data: Uint8Array, width: number, height: number, channels: number;
  try {
    // failOn 'warning' (sharp's default, stated): a truncated JPEG or a PNG with a bad checksum is an error, not a grey tail.
    const img = sharp(bytes, { failOn: 'warning', autoOrient: true });
    const stored = (await img.metadata()).channels;
    // libvips writes raw pixels as sRGB (R = G = B for a gray image): a gray image is taken back to its stored bands.
    if (stored === 1) img.toColourspace('b-w');
    const out = await img.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
    ({ width, height, channels } = out.info);
    data = new Uint8Array(out.data.buffer, out.data.byteOffset, out.data.length);
    if (stored === 2 && channels === 4) {
      data = grayAlpha(data);
      channels = 2;
    }
  } catch (e) {
    const msg = (e as Error).message;
    const what = /unsupported image format/i.test(msg) ? 'not an image in a format sharp reads'
      : /pixel limit/i.test(msg) ? 'too large to decode' : 'corrupt or truncated image';
    throw new Error(`${source}: ${what} (${msg.trim()})`);
  }
  const image: RawImage = { data, width, height, channels };
  checkImage(image, source);
  return image;
}

/** Gray + alpha from RGBA whose R = G = B (libvips's sRGB form of a gray image with alpha). */
function grayAlpha(rgba: Uint8Array): Uint8Array {
  const out = new Uint8Array(rgba.length / 2);
  for (let i = 0, j = 0; i < rgba.length; i += 4, j += 2) {
    out[j] = rgba[i]!;
    out[j + 1] = rgba[i + 3]!;
  }
  return out;
}

/** Reads and decodes an image file; see `decodeImage`. Errors name the file. */
export async function readImage(path: string): Promise<RawImage> {
  const { readFile } = await fs(`readImage(${JSON.stringify(path)}) (in a browser use decodeImage on the bytes)`);
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (e) {
    throw new Error(`${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  return decodeImage(bytes, path);
}

/** Encodes an image as PNG (lossless: 1 to 4 channels are stored as they are). */
export async function encodePng(image: RawImage, source = 'image'): Promise<Uint8Array> {
  checkImage(image, source);
  const sharp = await loadSharp();
  const { width, height, channels } = image;
  const img = sharp(image.data, { raw: { width, height, channels: channels as 1 | 2 | 3 | 4 } });
  // Without this libvips would store a gray image as RGB.
  if (channels <= 2) img.toColourspace('b-w');
  const buf = await img.png().toBuffer();
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.length);
}

/** Writes an image to a PNG file. */
export async function writePng(path: string, image: RawImage): Promise<void> {
  const bytes = await encodePng(image, path);
  const { writeFile } = await fs(`writePng(${JSON.stringify(path)}) (in a browser use encodePng)`);
  await writeFile(path, bytes);
}
