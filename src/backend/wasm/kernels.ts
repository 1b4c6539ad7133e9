// Numbers shared with the AssemblyScript kernels (assembly/*.ts): kernel ids, dtype codes, op codes,
// parameter slot layout and tile sizes. Each table must match its twin named in the comment.

import type { ActivationOp, BinaryOp, UnaryOp } from '../../tensor/backend.js';

/** Kernel ids (assembly/index.ts). */
export const K = {
  cast: 0, unary: 1, actGrad: 2, binary: 3, where: 4, reduce: 5, argReduce: 6, cumsum: 7,
  packB: 8, gemm: 9, matmulInt: 10, strided: 11, indexSelect: 12, indexAdd: 13, gather: 14,
  scatterAdd: 15, softmax: 16, softmaxGrad: 17, norm: 18, normGrad: 19, sumPartials: 20,
  im2col: 21, col2im: 22, gemv: 23, attention: 24, attentionGrad: 25, adam: 26, sgd: 27, packA: 28, crossEntropy: 29, crossEntropyGrad: 30,
  quantAct: 40, qmatmul: 41, hmatmulT: 42, hmatmulN: 43, rope: 44,
} as const;

/** Dtype codes (assembly/common.ts); bool shares uint8's code except as a cast target. */
export const DT_F32 = 0, DT_I32 = 1, DT_U8 = 2, DT_BOOL_CAST = 3;

/** Slot of a kernel's first parameter in the job block (ARG in assembly/common.ts). */
export const ARG = 5;
/** Slots in the job parameter block. */
export const PARAM_SLOTS = 64;
/** Most dims a coalesced broadcast / strided walk may have (MAXDIM in assembly/elementwise.ts). */
export const MAXDIM = 8;
/** Elements per tile of the flat elementwise kernels (CHUNK in assembly/elementwise.ts). */
export const CHUNK = 16384;
/** GEMM blocking (assembly/gemm.ts): rows per packed A block, K block, micro-tile columns. */
export const GEMM_MC = 128, GEMM_KC = 384, GEMM_NR = 8;
/** Per-thread scratch: the packed A block plus a 4x8 edge tile. */
export const SCRATCH_BYTES = GEMM_MC * GEMM_KC * 4 + 128;

/** Query rows per block of the fused attention (QB in assembly/attention.ts). */
export const ATTENTION_ROWS = 32;
const pad8 = (n: number) => Math.ceil(n / 8) * 8;
/** Per-thread scratch of the fused attention (assembly/attention.ts lays it out in this order). */
export function attentionScratchBytes(s: number, hs: number, hv: number, backward: boolean): number {
  const r = ATTENTION_ROWS;
  // The last 2 floats: the maximum and key count of the row being exponentiated.
  const floats = backward
    ? hs * pad8(s) + s * pad8(hs) + hv * pad8(s) + 2 * r * s + r * pad8(hv) + r * pad8(hs) + r + 2
    : hs * pad8(s) + s * pad8(hv) + r * s + r + 2;
  return Math.ceil((SCRATCH_BYTES + floats * 4) / 64) * 64;
}

/** UnaryOp codes (assembly/elementwise.ts), in the order UnaryOp lists them. */
export const UNARY_CODE: Record<UnaryOp, number> = {
  neg: 0, abs: 1, sign: 2, exp: 3, log: 4, sqrt: 5, rsqrt: 6, sin: 7, cos: 8, tanh: 9, sigmoid: 10,
  relu: 11, erf: 12, gelu: 13, geluTanh: 14, silu: 15, floor: 16, ceil: 17, round: 18, not: 19,
};
export const ACTIVATION_CODE: Record<ActivationOp, number> = { relu: 0, gelu: 1, geluTanh: 2, silu: 3 };
export const BINARY_CODE: Record<BinaryOp, number> = {
  add: 0, sub: 1, mul: 2, div: 3, pow: 4, maximum: 5, minimum: 6,
  eq: 7, ne: 8, lt: 9, le: 10, gt: 11, ge: 12, and: 13, or: 14,
};
export const REDUCE_CODE = { sum: 0, max: 1, min: 2 } as const;
