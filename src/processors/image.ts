// Image preprocessing as Hugging Face's ViTImageProcessor: resize (antialiased), rescale, normalize, HWC uint8 -> NCHW.
//
// Both of transformers' processors resize the uint8 image with a separable convolution whose kernel widens by the
// scale factor when shrinking (so downscaling is antialiased), in fixed point, horizontal pass first, each pass
// rounded to a byte; then rescale and normalize in float32. transformers 5's default ("fast") processors do it with
// torchvision on uint8 tensors (16-bit weights), transformers 4's with Pillow's Image.resize (22-bit weights). Both
// are reproduced here bit for bit ('torchvision' and 'pil' backends): Pillow's Resample.c and ATen's uint8 kernel.

import { fileExists, readJsonFile } from '../io/hf.js';
import { checkImage, type RawImage } from '../io/image.js';
import { fromArray, type Tensor } from '../tensor/tensor.js';

/** Pillow's resampling filters; `resample` in preprocessor_config.json holds PIL's number for one of them. */
export type ResampleFilter = 'nearest' | 'box' | 'bilinear' | 'hamming' | 'bicubic' | 'lanczos';

/** PIL.Image.Resampling values, as preprocessor_config.json stores them. */
export const PIL_RESAMPLE: Readonly<Record<number, ResampleFilter>> = { 0: 'nearest', 1: 'lanczos', 2: 'bilinear', 3: 'bicubic', 4: 'box', 5: 'hamming' };

interface Filter {
  support: number;
  weight(x: number): number;
}

function sinc(x: number): number {
  if (x === 0) return 1;
  const px = x * Math.PI;
  return Math.sin(px) / px;
}

// Resample.c's filters: the same kernels, supports and half-open box.
const FILTERS: Record<Exclude<ResampleFilter, 'nearest'>, Filter> = {
  box: { support: 0.5, weight: (x) => (x > -0.5 && x <= 0.5 ? 1 : 0) },
  bilinear: { support: 1, weight: (x) => { x = Math.abs(x); return x < 1 ? 1 - x : 0; } },
  hamming: {
    support: 1,
    weight: (x) => {
      x = Math.abs(x);
      if (x === 0) return 1;
      if (x >= 1) return 0;
      const px = x * Math.PI;
      return (Math.sin(px) / px) * (0.54 + 0.46 * Math.cos(px));
    },
  },
  bicubic: {
    support: 2,
    weight: (x) => {
      const a = -0.5;
      x = Math.abs(x);
      if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
      if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
      return 0;
    },
  },
  lanczos: { support: 3, weight: (x) => (x > -3 && x < 3 ? sinc(x) * sinc(x / 3) : 0) },
};

/**
 * How the 8-bit resize is computed, as the two Hugging Face image processors do it:
 * - 'torchvision': transformers 5's default ("fast") processors, torchvision's `resize(antialias=True)` on uint8
 *   tensors (ATen's uint8 kernel: Pillow's kernels and bounds, with 16-bit weights);
 * - 'pil': the Pillow path of the older ("slow", `use_fast=False`) processors: Pillow's `Image.resize`, 22-bit weights.
 * Both round each pass to a byte; they differ by at most one level on some pixels. Checked: 'pil' against Pillow 9.4
 * for every filter; 'torchvision' bilinear against transformers 5.17 (the ViT fixture) and nearest against torch.
 * torchvision's bicubic (a = -0.5 with antialias) runs the same kernel code but has no reference here.
 */
export type ResizeBackend = 'torchvision' | 'pil';

/** Per output pixel: the first input pixel, how many it reads, and their fixed-point weights with `bits` fraction bits. */
interface Coefficients {
  first: Int32Array;
  count: Int32Array;
  ksize: number;
  weights: Int32Array;
  bits: number;
}

/**
 * The kernel of one axis of inSize pixels resized to outSize: Pillow's precompute_coeffs (ATen's
 * _compute_index_ranges_weights computes the same), then fixed point: Pillow's normalize_coeffs_8bpc (22 bits) or
 * ATen's int16 weights (as many bits as keep the largest weight below 2^15).
 */
function coefficients(inSize: number, outSize: number, filter: Filter, backend: ResizeBackend): Coefficients {
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1); // shrinking widens the kernel: the antialiasing
  const support = filter.support * filterscale;
  const invscale = 1 / filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const first = new Int32Array(outSize), count = new Int32Array(outSize), real = new Float64Array(outSize * ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const xmin = Math.max(0, Math.trunc(center - support + 0.5)); // C's (int) cast truncates
    const xmax = Math.min(inSize, Math.trunc(center + support + 0.5)) - xmin;
    let sum = 0;
    for (let x = 0; x < xmax; x++) {
      const w = filter.weight((x + xmin - center + 0.5) * invscale);
      real[xx * ksize + x] = w;
      sum += w;
    }
    if (sum !== 0) for (let x = 0; x < xmax; x++) real[xx * ksize + x]! /= sum;
    first[xx] = xmin;
    count[xx] = xmax;
  }
  let bits = 22; // Pillow: 32 - 8 - 2
  if (backend === 'torchvision') {
    const maxWeight = real.reduce((a, b) => Math.max(a, b), 0);
    for (bits = 0; bits < 22; bits++) if (Math.trunc(0.5 + maxWeight * 2 ** (bits + 1)) >= 1 << 15) break;
  }
  const weights = new Int32Array(real.length);
  for (let i = 0; i < real.length; i++) weights[i] = Math.trunc(real[i]! < 0 ? -0.5 + real[i]! * 2 ** bits : 0.5 + real[i]! * 2 ** bits);
  return { first, count, ksize, weights, bits };
}

/** One pass along x or y, each output rounded to a byte (both backends round between their two passes). */
function resamplePass(src: RawImage, outSize: number, axis: 'x' | 'y', filter: Filter, backend: ResizeBackend): RawImage {
  const { width, height, channels: c, data } = src;
  const inSize = axis === 'x' ? width : height;
  const { first, count, ksize, weights, bits } = coefficients(inSize, outSize, filter, backend);
  const outW = axis === 'x' ? outSize : width, outH = axis === 'x' ? height : outSize;
  const out = new Uint8Array(outW * outH * c);
  const half = 2 ** (bits - 1), unit = 2 ** bits;
  for (let y = 0; y < outH; y++) {
    for (let x = 0; x < outW; x++) {
      const o = axis === 'x' ? x : y;
      const start = first[o]!, n = count[o]!, kOff = o * ksize;
      for (let ch = 0; ch < c; ch++) {
        let ss = half; // rounds to nearest
        for (let i = 0; i < n; i++) {
          const idx = axis === 'x' ? (y * width + start + i) * c + ch : ((start + i) * width + x) * c + ch;
          ss += data[idx]! * weights[kOff + i]!;
        }
        // The fixed-point sum back to a byte, clamped (bicubic and lanczos overshoot).
        const v = Math.floor(ss / unit);
        out[(y * outW + x) * c + ch] = v < 0 ? 0 : v > 255 ? 255 : v;
      }
    }
  }
  return { data: out, width: outW, height: outH, channels: c };
}

/**
 * Nearest neighbour: the input pixel under each output pixel's centre. Pillow (ImagingScaleAffine) accumulates the
 * position in float64; ATen's nearest-exact (what transformers maps PIL's NEAREST to) computes it in float32.
 */
function resizeNearest(src: RawImage, width: number, height: number, backend: ResizeBackend): RawImage {
  const { channels: c, data } = src;
  const table = (inSize: number, outSize: number): Int32Array => {
    const t = new Int32Array(outSize);
    if (backend === 'pil') {
      const step = inSize / outSize;
      let pos = step * 0.5;
      for (let i = 0; i < outSize; i++, pos += step) t[i] = Math.min(inSize - 1, Math.trunc(pos));
    } else {
      const scale = Math.fround(inSize / outSize);
      for (let i = 0; i < outSize; i++) t[i] = Math.min(inSize - 1, Math.floor(Math.fround((i + 0.5) * scale)));
    }
    return t;
  };
  const xs = table(src.width, width), ys = table(src.height, height);
  const out = new Uint8Array(width * height * c);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const s = (ys[y]! * src.width + xs[x]!) * c, d = (y * width + x) * c;
      for (let ch = 0; ch < c; ch++) out[d + ch] = data[s + ch]!;
    }
  }
  return { data: out, width, height, channels: c };
}

/** Filters torchvision resizes tensors with (the others exist only in Pillow). */
const TORCHVISION_FILTERS: readonly ResampleFilter[] = ['nearest', 'bilinear', 'bicubic'];

export interface ResizeOptions {
  resample?: ResampleFilter;
  backend?: ResizeBackend;
  /** Names the image in errors. */
  source?: string;
}

/**
 * Pillow's RGBA -> RGBa (and LA -> La) before filtering, or back after it (Convert.c): colour times alpha / 255,
 * rounded as MULDIV255; back, 255 * colour / alpha truncated and clipped (alpha 0 and 255 left alone).
 */
function premultiply(image: RawImage, back: boolean): RawImage {
  const { data, channels: c } = image;
  const out = data.slice();
  for (let p = 0; p < data.length; p += c) {
    const alpha = data[p + c - 1]!;
    for (let ch = 0; ch < c - 1; ch++) {
      const v = data[p + ch]!;
      if (!back) {
        const t = v * alpha + 128;
        out[p + ch] = ((t >> 8) + t) >> 8;
      } else if (alpha !== 0 && alpha !== 255) {
        out[p + ch] = Math.min(255, Math.floor((255 * v) / alpha));
      }
    }
  }
  return { ...image, data: out };
}

/**
 * Resizes an 8-bit image as Hugging Face's processors do (see `ResizeBackend`; default 'torchvision', bilinear),
 * downscaling antialiased. With backend 'pil' the bytes equal Pillow's `Image.resize((width, height), resample)`,
 * which filters gray + alpha and RGBA images with premultiplied alpha; torchvision filters every channel on its own.
 */
export function resizeImage(image: RawImage, width: number, height: number, opts: ResizeOptions = {}): RawImage {
  const { resample = 'bilinear', backend = 'torchvision', source = 'image' } = opts;
  checkImage(image, source);
  if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0) throw new Error(`${source}: cannot resize to ${width}x${height}: sizes must be positive integers`);
  if (backend === 'torchvision' && !TORCHVISION_FILTERS.includes(resample)) {
    throw new Error(`resample '${resample}' is not available in torchvision: use backend 'pil' (Pillow has it)`);
  }
  if (width === image.width && height === image.height) return { ...image, data: image.data.slice() };
  if (resample === 'nearest') return resizeNearest(image, width, height, backend);
  const filter = FILTERS[resample];
  const alpha = backend === 'pil' && (image.channels === 2 || image.channels === 4);
  let out = alpha ? premultiply(image, false) : image;
  if (width !== image.width) out = resamplePass(out, width, 'x', filter, backend); // horizontal pass first, as both do
  if (height !== image.height) out = resamplePass(out, height, 'y', filter, backend);
  return alpha ? premultiply(out, true) : out;
}

/** PIL's `convert('RGB')`: gray is repeated, alpha is dropped (not composited). */
function toRgb(image: RawImage): RawImage {
  const { width, height, channels: c, data } = image;
  if (c === 3) return image;
  const out = new Uint8Array(width * height * 3);
  for (let p = 0; p < width * height; p++) {
    for (let ch = 0; ch < 3; ch++) out[p * 3 + ch] = data[p * c + (c >= 3 ? ch : 0)]!;
  }
  return { data: out, width, height, channels: 3 };
}

const CHANNEL_NAMES: Record<number, string> = { 1: 'gray', 2: 'gray + alpha', 3: 'RGB', 4: 'RGBA' };

/** preprocessor_config.json's fields for ViTImageProcessor, with Hugging Face's names. */
export interface ViTImageProcessorConfig {
  do_resize?: boolean;
  /** `{height, width}`; a legacy single integer means a square. */
  size?: { height: number; width: number } | number;
  /** PIL.Image.Resampling: 0 nearest, 1 lanczos, 2 bilinear (default), 3 bicubic, 4 box, 5 hamming. */
  resample?: number;
  do_rescale?: boolean;
  rescale_factor?: number;
  do_normalize?: boolean;
  image_mean?: number | number[];
  image_std?: number | number[];
  do_convert_rgb?: boolean | null;
}

export interface ImageProcessorOptions {
  /** Channels the model takes (config.json's `num_channels`); default: the length of image_mean, else 3. */
  numChannels?: number;
  /** Names the configuration in error messages (a file path). */
  source?: string;
  /**
   * Which Hugging Face processor to reproduce: 'torchvision' (default: transformers 5's processors, the "fast" ones)
   * or 'pil' (the Pillow/numpy processors of transformers 4, `use_fast=False`). See `ResizeBackend`.
   */
  backend?: ResizeBackend;
}

export interface ProcessOptions {
  /** Names of the images (file paths) for error messages, one per image. */
  names?: readonly string[];
  device?: string;
}

export interface ImageProcessorOutput {
  /** [B, C, H, W] float32. */
  pixelValues: Tensor;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/**
 * Hugging Face's ViTImageProcessor: channels to the model's (do_convert_rgb), resize to `size` (antialiased when
 * shrinking, rounded to bytes), rescale, normalize, channels first, batched. With the 'torchvision' backend the
 * values equal transformers 5's bit for bit (checked on the ViT fixture); with 'pil' they equal transformers 4's.
 */
export class ViTImageProcessor {
  readonly doResize: boolean;
  readonly size: { height: number; width: number };
  readonly resample: ResampleFilter;
  readonly doRescale: boolean;
  readonly rescaleFactor: number;
  readonly doNormalize: boolean;
  readonly imageMean: number[];
  readonly imageStd: number[];
  readonly doConvertRgb: boolean;
  readonly numChannels: number;
  readonly backend: ResizeBackend;

  /** Defaults are Hugging Face's: 224x224 bilinear, rescale 1/255, mean = std = 0.5. Every field is checked. */
  constructor(config: ViTImageProcessorConfig = {}, opts: ImageProcessorOptions = {}) {
    const src = opts.source ?? 'ViTImageProcessor config';
    const raw = config as Record<string, unknown>;
    const bool = (key: string, dflt: boolean): boolean => {
      const v = raw[key];
      if (v === undefined || v === null) return dflt;
      if (typeof v !== 'boolean') throw new Error(`${src}: "${key}" must be true or false, got ${JSON.stringify(v)}`);
      return v;
    };
    const positive = (key: string, v: unknown): number => {
      if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw new Error(`${src}: "${key}" must be a positive number, got ${JSON.stringify(v)}`);
      return v;
    };
    this.doResize = bool('do_resize', true);
    this.doRescale = bool('do_rescale', true);
    this.doNormalize = bool('do_normalize', true);
    this.doConvertRgb = bool('do_convert_rgb', false);

    const size = raw['size'] ?? { height: 224, width: 224 };
    if (typeof size === 'number') {
      if (!Number.isInteger(size) || size <= 0) throw new Error(`${src}: "size" must be a positive integer or {"height": H, "width": W}, got ${JSON.stringify(size)}`);
      this.size = { height: size, width: size };
    } else if (isObject(size) && 'height' in size && 'width' in size) {
      for (const k of ['height', 'width']) {
        const v = size[k];
        if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw new Error(`${src}: "size.${k}" must be a positive integer, got ${JSON.stringify(v)}`);
      }
      this.size = { height: size['height'] as number, width: size['width'] as number };
    } else {
      throw new Error(`${src}: "size" must be {"height": H, "width": W} or a positive integer for ViTImageProcessor, got ${JSON.stringify(size)}`);
    }

    const resample = raw['resample'] ?? 2;
    const filter = typeof resample === 'number' ? PIL_RESAMPLE[resample] : undefined;
    if (!filter) throw new Error(`${src}: "resample" ${JSON.stringify(resample)} is not a PIL filter (0 nearest, 1 lanczos, 2 bilinear, 3 bicubic, 4 box, 5 hamming)`);
    this.resample = filter;
    this.backend = opts.backend ?? 'torchvision';
    if (this.backend !== 'torchvision' && this.backend !== 'pil') throw new Error(`${src}: backend must be 'torchvision' or 'pil', got ${JSON.stringify(this.backend)}`);
    if (this.backend === 'torchvision' && !TORCHVISION_FILTERS.includes(filter)) {
      throw new Error(`${src}: "resample" ${resample as number} (${filter}) is a Pillow filter that torchvision does not have: use the 'pil' backend`);
    }
    this.rescaleFactor = positive('rescale_factor', raw['rescale_factor'] ?? 1 / 255);

    const list = (key: string, dflt: number[]): number[] => {
      const v = raw[key] ?? dflt;
      const arr = typeof v === 'number' ? [v] : v;
      if (!Array.isArray(arr) || arr.length === 0 || arr.some((x) => typeof x !== 'number' || !Number.isFinite(x))) {
        throw new Error(`${src}: "${key}" must be a number or a list of numbers (one per channel), got ${JSON.stringify(v)}`);
      }
      return arr as number[];
    };
    const mean = list('image_mean', [0.5, 0.5, 0.5]), std = list('image_std', [0.5, 0.5, 0.5]);
    if (std.some((s) => s === 0)) throw new Error(`${src}: "image_std" must not contain 0, got ${JSON.stringify(std)}`);
    const n = opts.numChannels ?? (Array.isArray(raw['image_mean']) ? mean.length : 3);
    if (!Number.isInteger(n) || n < 1 || n > 4) throw new Error(`${src}: the model's number of channels must be 1 to 4, got ${n}`);
    this.numChannels = n;
    for (const [key, v] of [['image_mean', mean], ['image_std', std]] as const) {
      if (v.length !== 1 && v.length !== n) throw new Error(`${src}: "${key}" has ${v.length} values, the model takes ${n} channel${n === 1 ? '' : 's'}`);
    }
    this.imageMean = mean.length === 1 ? Array<number>(n).fill(mean[0]!) : mean;
    this.imageStd = std.length === 1 ? Array<number>(n).fill(std[0]!) : std;
  }

  /**
   * Reads `preprocessor_config.json` from a model folder; the model's channel count comes from config.json's
   * `num_channels` when the folder has one. Errors name the file and the key.
   */
  static async fromPretrained(dir: string, opts: Omit<ImageProcessorOptions, 'source'> = {}): Promise<ViTImageProcessor> {
    const { path, json } = await readPreprocessorConfig(dir);
    return new ViTImageProcessor(json as ViTImageProcessorConfig, { ...opts, numChannels: opts.numChannels ?? (await modelChannels(dir)), source: path });
  }

  /** The image as the model's channels (PIL's RGB conversion when do_convert_rgb), or an error naming it. */
  private channelsFor(image: RawImage, name: string): RawImage {
    const c = image.channels, n = this.numChannels;
    if (c === n) return image;
    if (n === 3 && this.doConvertRgb) return toRgb(image);
    const hint = n === 3 ? ' (set "do_convert_rgb": true in preprocessor_config.json to convert it to RGB as Hugging Face does)' : '';
    throw new Error(`${name}: the image has ${c} channel${c === 1 ? '' : 's'} (${CHANNEL_NAMES[c] ?? '?'}), the model takes ${n} (${CHANNEL_NAMES[n] ?? '?'})${hint}`);
  }

  /** One image to [C, H, W] float32 values: channels, resize (rounded to bytes), rescale, normalize. */
  preprocess(image: RawImage, name = 'image'): PreprocessedImage {
    checkImage(image, name);
    let img = this.channelsFor(image, name);
    if (this.doResize) img = resizeImage(img, this.size.width, this.size.height, { resample: this.resample, backend: this.backend, source: name });
    const { width: W, height: H, channels: C, data } = img;
    const out = new Float32Array(C * H * W);
    const f = Math.fround;
    const torch = this.backend === 'torchvision';
    // transformers' fast processors fold the rescale into mean and std (mean / factor, std / factor) when both are on.
    const fused = torch && this.doRescale && this.doNormalize;
    const factor = torch ? f(this.rescaleFactor) : this.rescaleFactor;
    for (let ch = 0; ch < C; ch++) {
      const mean = fused ? f(f(this.imageMean[ch]!) * f(1 / this.rescaleFactor)) : f(this.imageMean[ch]!);
      const std = fused ? f(f(this.imageStd[ch]!) * f(1 / this.rescaleFactor)) : f(this.imageStd[ch]!);
      for (let p = 0; p < H * W; p++) {
        // float32 arithmetic as torch's (or, for 'pil', numpy's: the rescale in float64 stored as float32).
        let v: number = data[p * C + ch]!;
        if (this.doRescale && !fused) v = f(v * factor);
        if (this.doNormalize) v = f(f(v - mean) / std);
        out[ch * H * W + p] = v;
      }
    }
    return { data: out, channels: C, height: H, width: W };
  }

  /** Images to `pixelValues` [B, C, H, W] float32 (every image must come out the same size: resize, or equal sizes). */
  process(images: RawImage | readonly RawImage[], opts: ProcessOptions = {}): ImageProcessorOutput {
    const list = Array.isArray(images) ? (images as readonly RawImage[]) : [images as RawImage];
    if (list.length === 0) throw new Error('ViTImageProcessor: no images to process');
    const names = list.map((_, i) => opts.names?.[i] ?? (list.length === 1 ? 'image' : `image ${i}`));
    return stackImages(list.map((img, i) => this.preprocess(img, names[i])), { ...opts, names });
  }
}

/** An image after `preprocess`: [C, H, W] float32, row-major. */
export interface PreprocessedImage {
  data: Float32Array;
  channels: number;
  height: number;
  width: number;
}

/** Preprocessed images to `pixelValues` [B, C, H, W]; they must share one shape (an error names the odd one). */
export function stackImages(items: readonly PreprocessedImage[], opts: ProcessOptions = {}): ImageProcessorOutput {
  if (items.length === 0) throw new Error('stackImages: no images');
  const name = (i: number): string => opts.names?.[i] ?? `image ${i}`;
  const { channels: C, height: H, width: W } = items[0]!;
  items.forEach((it, i) => {
    if (it.channels !== C || it.height !== H || it.width !== W) {
      throw new Error(`${name(i)}: ${it.width}x${it.height} with ${it.channels} channels after preprocessing, but ${name(0)} is ${W}x${H} with ${C}: a batch needs one shape (do_resize is off?)`);
    }
  });
  const per = C * H * W;
  const batch = new Float32Array(items.length * per);
  items.forEach((it, i) => batch.set(it.data, i * per));
  return { pixelValues: fromArray(batch, [items.length, C, H, W], 'float32', opts.device) };
}

async function readPreprocessorConfig(dir: string): Promise<{ path: string; json: Record<string, unknown> }> {
  const path = `${dir.replace(/\/$/, '')}/preprocessor_config.json`;
  if (!(await fileExists(path))) throw new Error(`${path}: not found (a Hugging Face image model folder has a preprocessor_config.json)`);
  const json = await readJsonFile(path);
  if (!isObject(json)) throw new Error(`${path}: expected a JSON object`);
  return { path, json };
}

/** config.json's num_channels, if the folder has a config.json that sets it. */
async function modelChannels(dir: string): Promise<number | undefined> {
  const path = `${dir.replace(/\/$/, '')}/config.json`;
  if (!(await fileExists(path))) return undefined;
  const json = await readJsonFile(path);
  const n = isObject(json) ? json['num_channels'] : undefined;
  if (n === undefined) return undefined;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 4) throw new Error(`${path}: "num_channels" must be an integer from 1 to 4, got ${JSON.stringify(n)}`);
  return n;
}

/** Image processor classes this library implements, by preprocessor_config.json's `image_processor_type`. */
const IMAGE_PROCESSORS: Readonly<Record<string, 'vit' | 'clip'>> = { ViTImageProcessor: 'vit', ViTImageProcessorFast: 'vit', CLIPImageProcessor: 'clip', CLIPImageProcessorFast: 'clip' };

/** What AutoImageProcessor returns: every processor here has `process(images) -> { pixelValues }` and `preprocess(image)`. */
export type ImageProcessor = ViTImageProcessor | CLIPImageProcessor;

/**
 * Picks the image processor a folder's preprocessor_config.json names (`image_processor_type`), as transformers'
 * AutoImageProcessor: CLIPImageProcessor(Fast) for CLIP, ViTImageProcessor(Fast) or no type for ViTImageProcessor.
 */
export class AutoImageProcessor {
  static async fromPretrained(dir: string, opts: Omit<ImageProcessorOptions, 'source'> = {}): Promise<ImageProcessor> {
    const { path, json } = await readPreprocessorConfig(dir);
    const type = json['image_processor_type'];
    if (type !== undefined && (typeof type !== 'string' || !Object.hasOwn(IMAGE_PROCESSORS, type))) {
      throw new Error(`${path}: "image_processor_type" ${JSON.stringify(type)} is not supported (supported: ${Object.keys(IMAGE_PROCESSORS).join(', ')})`);
    }
    return type !== undefined && IMAGE_PROCESSORS[type] === 'clip' ? CLIPImageProcessor.fromPretrained(dir, opts) : ViTImageProcessor.fromPretrained(dir, opts);
  }
}

// ---- CLIP ----

/** OpenAI CLIP's per-channel mean and std (transformers' OPENAI_CLIP_MEAN / OPENAI_CLIP_STD), CLIPImageProcessor's defaults. */
export const OPENAI_CLIP_MEAN: readonly number[] = [0.48145466, 0.4578275, 0.40821073];
export const OPENAI_CLIP_STD: readonly number[] = [0.26862954, 0.26130258, 0.27577711];

/** preprocessor_config.json's fields for CLIPImageProcessor, with Hugging Face's names. */
export interface CLIPImageProcessorConfig extends Omit<ViTImageProcessorConfig, 'size'> {
  /** `{shortest_edge}` (keep the aspect ratio), `{height, width}`, or a legacy integer meaning the shortest edge. */
  size?: { shortest_edge: number } | { height: number; width: number } | number;
  do_center_crop?: boolean;
  /** `{height, width}`; a legacy integer means a square. */
  crop_size?: { height: number; width: number } | number;
}

/**
 * The top-left of a `crop`-long window centred on `n` pixels (negative: the window starts in zero padding). Both
 * processors take (n - crop) // 2 inside the image; when padding, transformers 4 (numpy) puts the extra pixel before
 * the image (ceil), transformers 5 (torchvision pad) after it (floor).
 */
function cropOffset(n: number, crop: number, backend: ResizeBackend): number {
  if (crop <= n) return Math.floor((n - crop) / 2);
  return -(backend === 'pil' ? Math.ceil((crop - n) / 2) : Math.floor((crop - n) / 2));
}

/** transformers' center_crop on an 8-bit image: a centred window, zero-padded where it is larger than the image. */
function centerCrop(image: RawImage, height: number, width: number, backend: ResizeBackend): RawImage {
  const { data, width: W, height: H, channels: c } = image;
  const top = cropOffset(H, height, backend), left = cropOffset(W, width, backend);
  const out = new Uint8Array(width * height * c);
  for (let y = 0; y < height; y++) {
    const sy = y + top;
    if (sy < 0 || sy >= H) continue;
    for (let x = 0; x < width; x++) {
      const sx = x + left;
      if (sx >= 0 && sx < W) out.set(data.subarray((sy * W + sx) * c, (sy * W + sx + 1) * c), (y * width + x) * c);
    }
  }
  return { data: out, width, height, channels: c };
}

/**
 * Hugging Face's CLIPImageProcessor: RGB conversion, resize so the shortest edge is `size.shortest_edge` (the other
 * edge int(size * long / short)), centre crop to `crop_size`, rescale, normalize with OpenAI's mean and std. The
 * rescale, normalization and channel checks are ViTImageProcessor's; backends as there ('torchvision' default, 'pil').
 */
export class CLIPImageProcessor {
  readonly doResize: boolean;
  readonly size: { shortestEdge: number } | { height: number; width: number };
  readonly resample: ResampleFilter;
  readonly doCenterCrop: boolean;
  readonly cropSize: { height: number; width: number };
  readonly backend: ResizeBackend;
  /** Channels, rescale and normalize (its resize is off). */
  readonly normalizer: ViTImageProcessor;

  /** Defaults are Hugging Face's: shortest edge 224 bicubic, centre crop 224x224, rescale 1/255, OpenAI's mean and std, RGB. */
  constructor(config: CLIPImageProcessorConfig = {}, opts: ImageProcessorOptions = {}) {
    const src = opts.source ?? 'CLIPImageProcessor config';
    const raw = config as Record<string, unknown>;
    const pick = (key: string): unknown => raw[key];
    this.normalizer = new ViTImageProcessor({
      do_resize: false, resample: pick('resample') ?? 3, do_rescale: pick('do_rescale'), rescale_factor: pick('rescale_factor'), do_normalize: pick('do_normalize'),
      image_mean: pick('image_mean') ?? [...OPENAI_CLIP_MEAN], image_std: pick('image_std') ?? [...OPENAI_CLIP_STD], do_convert_rgb: pick('do_convert_rgb') ?? true,
    } as ViTImageProcessorConfig, { ...opts, source: src });
    this.resample = this.normalizer.resample;
    this.backend = this.normalizer.backend;
    const bool = (key: string): boolean => {
      const v = raw[key] ?? true;
      if (typeof v !== 'boolean') throw new Error(`${src}: "${key}" must be true or false, got ${JSON.stringify(v)}`);
      return v;
    };
    this.doResize = bool('do_resize');
    this.doCenterCrop = bool('do_center_crop');
    const int = (key: string, v: unknown): number => {
      if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw new Error(`${src}: "${key}" must be a positive integer, got ${JSON.stringify(v)}`);
      return v;
    };
    const size = raw['size'] ?? { shortest_edge: 224 };
    if (typeof size === 'number') this.size = { shortestEdge: int('size', size) };
    else if (isObject(size) && 'shortest_edge' in size) this.size = { shortestEdge: int('size.shortest_edge', size['shortest_edge']) };
    else if (isObject(size) && 'height' in size && 'width' in size) this.size = { height: int('size.height', size['height']), width: int('size.width', size['width']) };
    else throw new Error(`${src}: "size" must be {"shortest_edge": N}, {"height": H, "width": W} or a positive integer, got ${JSON.stringify(size)}`);
    const crop = raw['crop_size'] ?? { height: 224, width: 224 };
    if (typeof crop === 'number') this.cropSize = { height: int('crop_size', crop), width: crop };
    else if (isObject(crop) && 'height' in crop && 'width' in crop) this.cropSize = { height: int('crop_size.height', crop['height']), width: int('crop_size.width', crop['width']) };
    else throw new Error(`${src}: "crop_size" must be {"height": H, "width": W} or a positive integer, got ${JSON.stringify(crop)}`);
  }

  /** The normalization's settings, as on ViTImageProcessor (HF's image_mean, image_std; the model's channels). */
  get imageMean(): number[] { return this.normalizer.imageMean; }
  get imageStd(): number[] { return this.normalizer.imageStd; }
  get numChannels(): number { return this.normalizer.numChannels; }

  /** Reads `preprocessor_config.json` from a model folder (errors name the file and the key). */
  static async fromPretrained(dir: string, opts: Omit<ImageProcessorOptions, 'source'> = {}): Promise<CLIPImageProcessor> {
    const { path, json } = await readPreprocessorConfig(dir);
    return new CLIPImageProcessor(json as CLIPImageProcessorConfig, { ...opts, source: path });
  }

  /** The resized [height, width] of an image: transformers' get_resize_output_image_size(default_to_square=False). */
  outputSize(height: number, width: number): [number, number] {
    if (!('shortestEdge' in this.size)) return [this.size.height, this.size.width];
    const s = this.size.shortestEdge, short = Math.min(height, width), long = Math.max(height, width);
    const other = Math.trunc((s * long) / short);
    return width <= height ? [other, s] : [s, other];
  }

  /** One image to [C, H, W] float32 values: RGB, resize (rounded to bytes), centre crop, rescale, normalize. */
  preprocess(image: RawImage, name = 'image'): PreprocessedImage {
    checkImage(image, name);
    let img = this.normalizer.doConvertRgb && this.normalizer.numChannels === 3 && image.channels !== 3 ? toRgb(image) : image;
    if (this.doResize) {
      const [h, w] = this.outputSize(img.height, img.width);
      img = resizeImage(img, w, h, { resample: this.resample, backend: this.backend, source: name });
    }
    if (this.doCenterCrop) img = centerCrop(img, this.cropSize.height, this.cropSize.width, this.backend);
    return this.normalizer.preprocess(img, name);
  }

  /** Images to `pixelValues` [B, C, H, W] float32. */
  process(images: RawImage | readonly RawImage[], opts: ProcessOptions = {}): ImageProcessorOutput {
    const list = Array.isArray(images) ? (images as readonly RawImage[]) : [images as RawImage];
    if (list.length === 0) throw new Error('CLIPImageProcessor: no images to process');
    const names = list.map((_, i) => opts.names?.[i] ?? (list.length === 1 ? 'image' : `image ${i}`));
    return stackImages(list.map((img, i) => this.preprocess(img, names[i])), { ...opts, names });
  }
}
