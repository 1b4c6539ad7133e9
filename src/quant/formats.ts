// Quantized weight formats: ggml's Q8_0 and Q4_0 blocks (byte for byte as llama.cpp stores them) and bitsandbytes' NF4.
//
// References: ggml/src/ggml-quants.c (quantize_row_q8_0_ref, quantize_row_q4_0_ref, dequantize_row_q*_0) and
// ggml-common.h (block_q8_0, block_q4_0); bitsandbytes/functional.py (quantize_4bit, create_dynamic_map,
// quantize_blockwise) and csrc/kernels.cu (dQuantizeNF4, the NF4 look-up table). Dettmers et al., "QLoRA" (2023).
//
// Q8_0: blocks of 32 weights, 34 bytes: d (float16, little-endian), then 32 int8 q; value = q * d, d = absmax / 127.
// Q4_0: blocks of 32 weights, 18 bytes: d (float16), then 16 bytes; byte j holds weight j in its low nibble and weight
//       j + 16 in its high nibble; value = (q - 8) * d, d = (the signed value of largest magnitude) / -8.
// NF4:  blocks of 64 weights over the flattened tensor, two per byte (the first in the high nibble), each an index into
//       a 16-value code book; value = code[q] * absmax of its block. The absmax values are quantized again
//       ("double quantization"): minus their mean, in blocks of 256, to the 8-bit dynamic map.

import { float16ToFloat32, float32ToFloat16 } from '../tensor/dtype.js';
import { fmtShape, sizeOf } from '../tensor/shape.js';

export const QUANT_TYPES = ['q8_0', 'q4_0', 'nf4'] as const;
export type QuantType = (typeof QUANT_TYPES)[number];

/** ggml's block sizes: weights per block and bytes per block. */
export const QK8_0 = 32;
export const QK4_0 = 32;
export const Q8_0_BLOCK_BYTES = 2 + QK8_0;
export const Q4_0_BLOCK_BYTES = 2 + QK4_0 / 2;
export const NF4_BLOCK = 64;
export const NF4_ABSMAX_BLOCK = 256;

/** bitsandbytes' NF4 code book (kernels.cu nf4_dequantization_lut; functional.get_4bit_type('nf4')). */
export const NF4_CODE: Float32Array = Float32Array.from([
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635, -0.18477343022823334,
  -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
  0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
]);

/** NF4's decision thresholds: the midpoints between neighbouring code values (dQuantizeNF4 picks the upper one above). */
const NF4_MIDPOINTS = Float32Array.from({ length: 15 }, (_, i) => (NF4_CODE[i]! + NF4_CODE[i + 1]!) / 2);

/**
 * bitsandbytes' create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8), the 8-bit code book of its blockwise
 * quantization (NF4's double-quantized absmax): 256 sorted float32 values, a decimal exponent 10^-6 .. 10^0 times a
 * linear fraction (midpoints of torch.linspace(0.1, 1, 2^e + 1)) whose resolution grows with the exponent, and 0 and 1.
 * Stored as the float32 bits that torch 1.13 (x86 CPU) computes, since its vectorised linspace rounds some values 1 ulp
 * away from a scalar evaluation of the formula; scripts/gen_dynamic_map.py prints them.
 */
export const DYNAMIC_MAP: Float32Array = ((hex: string) => {
  const bits = Uint32Array.from({ length: hex.length / 8 }, (_, i) => parseInt(hex.slice(i * 8, i * 8 + 8), 16));
  return new Float32Array(bits.buffer);
})(
  'bf7e3333bf7a9999bf770000bf736666bf6fccccbf6c3333bf68999abf650000bf616666bf5dccccbf5a3333bf569999bf530000bf4f6666' +
  'bf4bccccbf483333bf44999abf410000bf3d6667bf39cccdbf363334bf32999abf2f0000bf2b6667bf27cccdbf243333bf20999abf1d0000' +
  'bf196666bf15cccdbf123334bf0e999abf0b0000bf076666bf03cccdbf003333bef93334bef20000beeaccccbee3999abedc6666bed53332' +
  'bece0000bec6ccccbebf999abeb86666beb13332beaa0000bea2ccccbe9b999abe946666be8d3334be860000be7d999abe6f3334be60cccd' +
  'be526666be440000be359999be273333be18cccdbe0a6666bdf80000bddb3334bdc9eb85bdc428f5bdbe6667bdb8a3d7bdb2e148bdad1eb8' +
  'bda75c28bda1999abd9bd70abd96147bbd9051ebbd8a8f5dbd84cccdbd7e147abd728f5dbd670a3dbd5b851fbd500000bd447ae1bd38f5c3' +
  'bd2d70a3bd21eb85bd166667bd0ae147bcfeb852bce7ae13bcd0a3d7bcb9999abca28f5cbc8b851fbc68f5c3bc3ae148bc1f3b64bc160418' +
  'bc0ccccdbc039581bbf4bc6abbe24dd3bbcfdf3bbbbd70a4bbab020dbb989374bb8624ddbb676c8abb428f5cbb1db22dbaf1a9fcbaa7ef9d' +
  'ba7765ffba59e83eba3c6a80ba1eecc1ba016f01b9c7e283b98ce705b923d70bb8ba1f4bb88aefb3b8378034b7b24206b70205ffb65a1a94' +
  'b513a3b7000000003513a3b7365a1a94370205ff37b2420638378034388aefb338ba1f4b3923d70b398ce70539c7e2833a016f013a1eecc1' +
  '3a3c6a803a59e83e3a7765ff3aa7ef9d3af1a9fc3b1db22d3b428f5c3b676c8a3b8624dd3b9893743bab020d3bbd70a43bcfdf3b3be24dd3' +
  '3bf4bc6a3c0395813c0ccccd3c1604183c1f3b643c3ae1483c68f5c33c8b851f3ca28f5c3cb9999a3cd0a3d73ce7ae133cfeb8523d0ae147' +
  '3d1666673d21eb853d2d70a33d38f5c33d447ae13d5000003d5b851f3d670a3d3d728f5d3d7e147a3d84cccd3d8a8f5d3d9051eb3d96147b' +
  '3d9bd70a3da1999a3da75c283dad1eb83db2e1483db8a3d73dbe66673dc428f53dc9eb853ddb33343df800003e0a66663e18cccd3e273333' +
  '3e3599993e4400003e5266663e60cccd3e6f33343e7d999a3e8600003e8d33343e9466663e9b999a3ea2cccc3eaa00003eb133323eb86666' +
  '3ebf999a3ec6cccc3ece00003ed533323edc66663ee3999a3eeacccc3ef200003ef933343f0033333f03cccd3f0766663f0b00003f0e999a' +
  '3f1233343f15cccd3f1966663f1d00003f20999a3f2433333f27cccd3f2b66673f2f00003f32999a3f3633343f39cccd3f3d66673f410000' +
  '3f44999a3f4833333f4bcccc3f4f66663f5300003f5699993f5a33333f5dcccc3f6166663f6500003f68999a3f6c33333f6fcccc3f736666' +
  '3f7700003f7a99993f7e33333f800000',
);

/** NF4's per-block scales after double quantization (bitsandbytes' nested QuantState). */
export interface Nf4Absmax {
  /** One byte per NF4 block: an index into DYNAMIC_MAP. */
  codes: Uint8Array;
  /** One float32 scale per NF4_ABSMAX_BLOCK absmax values. */
  scales: Float32Array;
  /** The mean subtracted before quantizing (added back after). */
  offset: number;
}

/** A tensor stored in a quantized format: `data` holds the blocks (and `absmax` NF4's scales). */
export interface QuantizedTensor {
  type: QuantType;
  shape: number[];
  data: Uint8Array;
  absmax?: Nf4Absmax;
}

/** Bytes a quantized tensor occupies (blocks plus NF4's scales). */
export function quantizedBytes(q: QuantizedTensor): number {
  const a = q.absmax;
  return q.data.byteLength + (a ? a.codes.byteLength + a.scales.byteLength + 4 : 0);
}

/** Bytes of `n` values of a ggml type (n a multiple of its block size). */
export function ggmlBytes(type: 'q8_0' | 'q4_0', n: number): number {
  return type === 'q8_0' ? (n / QK8_0) * Q8_0_BLOCK_BYTES : (n / QK4_0) * Q4_0_BLOCK_BYTES;
}

/** ggml quantizes rows: the last dimension must be a whole number of blocks. */
export function checkQuantizable(type: QuantType, shape: readonly number[], what: string): void {
  const n = sizeOf(shape);
  if (shape.length === 0 || n === 0) throw new Error(`quantize: ${what} has shape ${fmtShape(shape)}; nothing to quantize`);
  if (type === 'nf4') return;
  const row = shape[shape.length - 1]!;
  if (row % 32 !== 0) throw new Error(`quantize: ${what} has shape ${fmtShape(shape)}: ${type} needs the last dimension to be a multiple of 32 (ggml's block size), got ${row}`);
}

/** C's roundf: halves away from zero. */
const roundf = (x: number): number => (x < 0 ? -Math.round(-x) : Math.round(x));

/** quantize_row_q8_0_ref: d = absmax / 127, q = roundf(x / d) with the float32 d (the stored d is its float16). */
export function quantizeQ8_0(x: Float32Array): Uint8Array {
  const nb = x.length / QK8_0;
  const out = new Uint8Array(nb * Q8_0_BLOCK_BYTES);
  const f = Math.fround;
  for (let b = 0; b < nb; b++) {
    let amax = 0;
    for (let j = 0; j < QK8_0; j++) amax = Math.max(amax, Math.abs(x[b * QK8_0 + j]!));
    const d = f(amax / 127), id = d ? f(1 / d) : 0;
    const o = b * Q8_0_BLOCK_BYTES, h = float32ToFloat16(d);
    out[o] = h & 0xff;
    out[o + 1] = h >> 8;
    for (let j = 0; j < QK8_0; j++) out[o + 2 + j] = roundf(f(x[b * QK8_0 + j]! * id)) & 0xff;
  }
  return out;
}

/** quantize_row_q4_0_ref: d = max / -8 (max: the value of largest magnitude, sign kept), q = min(15, trunc(x / d + 8.5)). */
export function quantizeQ4_0(x: Float32Array): Uint8Array {
  const nb = x.length / QK4_0;
  const out = new Uint8Array(nb * Q4_0_BLOCK_BYTES);
  const f = Math.fround;
  for (let b = 0; b < nb; b++) {
    let amax = 0, max = 0;
    for (let j = 0; j < QK4_0; j++) {
      const v = x[b * QK4_0 + j]!;
      if (amax < Math.abs(v)) {
        amax = Math.abs(v);
        max = v;
      }
    }
    const d = f(max / -8), id = d ? f(1 / d) : 0;
    const o = b * Q4_0_BLOCK_BYTES, h = float32ToFloat16(d);
    out[o] = h & 0xff;
    out[o + 1] = h >> 8;
    // (int8_t)(x0 + 8.5f) truncates towards zero; x / d is in [-8, 8], so the sum is in [0.5, 16.5].
    const q = (v: number): number => Math.min(15, Math.trunc(f(f(v * id) + 8.5)));
    for (let j = 0; j < QK4_0 / 2; j++) out[o + 2 + j] = q(x[b * QK4_0 + j]!) | (q(x[b * QK4_0 + QK4_0 / 2 + j]!) << 4);
  }
  return out;
}

const halfAt = (bytes: Uint8Array, o: number): number => float16ToFloat32(bytes[o]! | (bytes[o + 1]! << 8));

/** dequantize_row_q8_0 of the `count` values starting at `start` (both multiples of 32) into out[outOffset ...]. */
export function dequantizeQ8_0(bytes: Uint8Array, start: number, count: number, out: Float32Array, outOffset = 0): void {
  const f = Math.fround;
  for (let b = start / QK8_0, e = (start + count) / QK8_0, p = outOffset; b < e; b++) {
    const o = b * Q8_0_BLOCK_BYTES, d = halfAt(bytes, o);
    for (let j = 0; j < QK8_0; j++) out[p++] = f(((bytes[o + 2 + j]! << 24) >> 24) * d);
  }
}

/** dequantize_row_q4_0: weight j from the low nibble of byte j, weight j + 16 from its high nibble. */
export function dequantizeQ4_0(bytes: Uint8Array, start: number, count: number, out: Float32Array, outOffset = 0): void {
  const f = Math.fround;
  for (let b = start / QK4_0, e = (start + count) / QK4_0, p = outOffset; b < e; b++, p += QK4_0) {
    const o = b * Q4_0_BLOCK_BYTES, d = halfAt(bytes, o);
    for (let j = 0; j < QK4_0 / 2; j++) {
      const byte = bytes[o + 2 + j]!;
      out[p + j] = f(((byte & 0x0f) - 8) * d);
      out[p + j + QK4_0 / 2] = f(((byte >> 4) - 8) * d);
    }
  }
}

/** Index of the nearest code value (ties: the lower one, as bitsandbytes' binary search). */
function nearestCode(code: Float32Array, x: number): number {
  let lo = 0, hi = code.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (code[mid]! <= x) lo = mid;
    else hi = mid;
  }
  return x - code[lo]! <= code[hi]! - x ? lo : hi;
}

/** quantize_4bit(quant_type='nf4', blocksize=64, compress_statistics=True) of a flattened tensor. */
export function quantizeNf4(x: Float32Array): { data: Uint8Array; absmax: Nf4Absmax } {
  const f = Math.fround;
  const nBlocks = Math.ceil(x.length / NF4_BLOCK);
  const absmax = new Float32Array(nBlocks);
  const data = new Uint8Array(Math.ceil(x.length / 2));
  for (let b = 0; b < nBlocks; b++) {
    const end = Math.min(x.length, (b + 1) * NF4_BLOCK);
    let m = 0;
    for (let i = b * NF4_BLOCK; i < end; i++) m = Math.max(m, Math.abs(x[i]!));
    absmax[b] = m;
    const inv = m ? f(1 / m) : 0;
    for (let i = b * NF4_BLOCK; i < end; i++) {
      const v = f(x[i]! * inv);
      let q = 0;
      while (q < 15 && v > NF4_MIDPOINTS[q]!) q++;
      data[i >> 1]! |= i & 1 ? q : q << 4;
    }
  }
  return { data, absmax: quantizeAbsmax(absmax) };
}

/** The double quantization of NF4's scales: offset = mean, then 8-bit blockwise (block 256) with the dynamic map. */
function quantizeAbsmax(absmax: Float32Array): Nf4Absmax {
  const f = Math.fround;
  let sum = 0;
  for (const a of absmax) sum += a;
  const offset = f(sum / absmax.length);
  const centred = absmax.map((a) => f(a - offset));
  const scales = new Float32Array(Math.ceil(centred.length / NF4_ABSMAX_BLOCK));
  const codes = new Uint8Array(centred.length);
  for (let b = 0; b < scales.length; b++) {
    const end = Math.min(centred.length, (b + 1) * NF4_ABSMAX_BLOCK);
    let m = 0;
    for (let i = b * NF4_ABSMAX_BLOCK; i < end; i++) m = Math.max(m, Math.abs(centred[i]!));
    scales[b] = m;
    const inv = m ? f(1 / m) : 0;
    for (let i = b * NF4_ABSMAX_BLOCK; i < end; i++) codes[i] = nearestCode(DYNAMIC_MAP, f(centred[i]! * inv));
  }
  return { codes, scales, offset };
}

/** The float32 absmax of NF4 block `b`. */
export function nf4BlockAbsmax(a: Nf4Absmax, b: number): number {
  return Math.fround(Math.fround(DYNAMIC_MAP[a.codes[b]!]! * a.scales[Math.floor(b / NF4_ABSMAX_BLOCK)]!) + a.offset);
}

/** NF4 values [start, start + count) of the flattened tensor (any start: blocks may be cut) into out[outOffset ...]. */
export function dequantizeNf4(data: Uint8Array, absmax: Nf4Absmax, start: number, count: number, out: Float32Array, outOffset = 0): void {
  let block = -1, scale = 0;
  for (let i = start, p = outOffset; i < start + count; i++, p++) {
    const b = Math.floor(i / NF4_BLOCK);
    if (b !== block) {
      block = b;
      scale = nf4BlockAbsmax(absmax, b);
    }
    const byte = data[i >> 1]!;
    out[p] = Math.fround(NF4_CODE[i & 1 ? byte & 0x0f : byte >> 4]! * scale);
  }
}

/** Quantizes float32 values of the given shape (ggml types: the last dimension a multiple of 32). */
export function quantizeValues(values: Float32Array, shape: readonly number[], type: QuantType, what = 'tensor'): QuantizedTensor {
  if (!(QUANT_TYPES as readonly string[]).includes(type)) throw new Error(`quantize: unknown type ${JSON.stringify(type)} (known: ${QUANT_TYPES.join(', ')})`);
  checkQuantizable(type, shape, what);
  if (values.length !== sizeOf(shape)) throw new Error(`quantize: ${what}: ${values.length} values for shape ${fmtShape(shape)}`);
  if (type === 'nf4') return { type, shape: [...shape], ...quantizeNf4(values) };
  return { type, shape: [...shape], data: type === 'q8_0' ? quantizeQ8_0(values) : quantizeQ4_0(values) };
}

/**
 * Values [start, start + count) of the flattened tensor as float32 (the whole tensor by default): callers that multiply
 * by a quantized matrix ask for one panel of rows at a time. ggml types need start and count on block boundaries.
 */
export function dequantizeValues(q: QuantizedTensor, start = 0, count = sizeOf(q.shape) - start, out = new Float32Array(count), outOffset = 0): Float32Array {
  if (q.type === 'nf4') dequantizeNf4(q.data, q.absmax!, start, count, out, outOffset);
  else {
    if (start % 32 !== 0 || count % 32 !== 0) throw new Error(`dequantize: ${q.type} is read in whole blocks of 32, got values ${start} .. ${start + count}`);
    (q.type === 'q8_0' ? dequantizeQ8_0 : dequantizeQ4_0)(q.data, start, count, out, outOffset);
  }
  return out;
}
