// Reference product with ggml Q8_0 / Q4_0 weights, the oracle of assembly/quant.ts: x quantized per block of 32 to int8
// (as llama.cpp's quantize_row_q8_0, rounding to nearest even like its SIMD paths), exact integer dots per block, then
// float32(isum) * float32(d_w * d_x) summed in float32 block after block (the kernel's order): bit-equal to the wasm
// kernel.

import type { BackendBuffer, QuantMatmulParams, QuantWeightParams } from '../../tensor/backend.js';
import { float16ToFloat32 } from '../../tensor/dtype.js';
import { fmtShape } from '../../tensor/shape.js';

/** Values per ggml block and bytes per block (ggml-common.h: block_q8_0, block_q4_0). */
export const QBLOCK = 32;
export const QBLOCK_BYTES = { q8_0: 34, q4_0: 18 } as const;

/** Checks a quantized weight's block bytes against W [n, k] before any work; errors start with `what`. */
export function checkQuantWeight(what: string, bytes: number, dtype: string, p: QuantWeightParams): void {
  if (!(p.type in QBLOCK_BYTES)) throw new Error(`${what}: unknown block type ${JSON.stringify(p.type)} (known: q8_0, q4_0)`);
  if (p.k % QBLOCK !== 0) throw new Error(`${what}: ${p.type} needs in_features to be a multiple of ${QBLOCK}, got ${p.k}`);
  const want = (p.n * p.k / QBLOCK) * QBLOCK_BYTES[p.type];
  if (dtype !== 'uint8' || bytes !== want) throw new Error(`${what}: the weight must be ${want} uint8 block bytes, got ${bytes} ${dtype}`);
}

/** Checks a quantized product's shapes before any work; errors name the shapes. */
export function checkQuantMatmul(x: BackendBuffer, w: BackendBuffer, p: QuantMatmulParams, bias: BackendBuffer | null = null): void {
  const what = `quantMatmul: x [${p.m}, ${p.k}] @ ${p.type} weight [${p.n}, ${p.k}]^T`;
  checkQuantWeight(what, w.size, w.dtype, p);
  if (x.dtype !== 'float32') throw new Error(`${what}: x must be float32, got ${x.dtype}`);
  if (x.size !== p.m * p.k) throw new Error(`${what}: x holds ${x.size} values, expected ${fmtShape([p.m, p.k])}`);
  if (bias && (bias.dtype !== 'float32' || bias.size !== p.n)) throw new Error(`${what}: bias must be [${p.n}] float32, got ${bias.size} ${bias.dtype}`);
}

/** Round half to even (the SIMD rounding mode), on a float32 value. */
function roundEven(v: number): number {
  const r = Math.round(v);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** x [m, k] per block of 32: int8 values q, float32 scales d (d = amax / 127), and each block's sum of q. */
export function quantizeActivations(x: ArrayLike<number>, m: number, k: number): { q: Int8Array; d: Float32Array; sums: Int32Array } {
  const f = Math.fround, nb = (m * k) / QBLOCK;
  const q = new Int8Array(m * k), d = new Float32Array(nb), sums = new Int32Array(nb);
  for (let b = 0; b < nb; b++) {
    let amax = 0;
    for (let j = b * QBLOCK; j < (b + 1) * QBLOCK; j++) amax = Math.max(amax, Math.abs(x[j]!));
    const db = f(amax / 127), id = db !== 0 && !Number.isNaN(db) ? f(1 / db) : db; // NaN stays NaN, as in the kernel
    let s = 0;
    for (let j = b * QBLOCK; j < (b + 1) * QBLOCK; j++) {
      const v = f(x[j]! * id);
      q[j] = Number.isNaN(v) ? 0 : roundEven(v); // |v| <= 127 (127.00001 at most, which rounds to 127)
      s += q[j]!;
    }
    d[b] = db;
    sums[b] = s;
  }
  return { q, d, sums };
}

const halfAt = (w: Uint8Array, o: number): number => float16ToFloat32(w[o]! | (w[o + 1]! << 8));

/** y [m, n] = x [m, k] @ W^T (+ bias [n]) with W [n, k] in ggml blocks (row j: k / 32 blocks). */
export function quantMatmul(x: ArrayLike<number>, w: Uint8Array, p: QuantMatmulParams, bias: ArrayLike<number> | null = null): Float32Array {
  const { m, n, k, type } = p;
  const f = Math.fround, nb = k / QBLOCK, bytes = QBLOCK_BYTES[type];
  const { q, d } = quantizeActivations(x, m, k);
  const out = new Float32Array(m * n);
  for (let j = 0; j < n; j++) {
    for (let i = 0; i < m; i++) {
      let acc = 0; // the kernel's order: block after block
      for (let b = 0; b < nb; b++) {
        const o = (j * nb + b) * bytes, xq = (i * nb + b) * QBLOCK;
        let isum = 0;
        if (type === 'q8_0') {
          for (let t = 0; t < QBLOCK; t++) isum += ((w[o + 2 + t]! << 24) >> 24) * q[xq + t]!;
        } else {
          for (let t = 0; t < QBLOCK / 2; t++) {
            const byte = w[o + 2 + t]!;
            isum += ((byte & 0x0f) - 8) * q[xq + t]! + ((byte >> 4) - 8) * q[xq + t + QBLOCK / 2]!;
          }
        }
        acc = f(acc + f(isum * f(halfAt(w, o) * d[i * nb + b]!)));
      }
      out[i * n + j] = bias ? f(acc + bias[j]!) : acc;
    }
  }
  return out;
}
