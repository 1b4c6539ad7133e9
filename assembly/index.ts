// The kernel module's entry: runJob hands out a job's tiles (an atomic counter in its parameter block)
// to whichever threads call it, and dispatches on the kernel id. Kernels never allocate: all memory
// is owned by the TypeScript allocator (src/backend/wasm/allocator.ts), above heapBase().

import { attentionGradTile, attentionTile } from './attention';
import { initKernels as initCommon, pi, pu } from './common';
import { actGradTile, binaryTile, castTile, unaryTile, whereTile } from './elementwise';
import { gemmTile, gemvTile, matmulIntTile, packATile, packBTile } from './gemm';
import { checkIndices, gatherTile, indexAddTile, indexSelectTile, scatterAddTile, stridedTile } from './movement';
import { adamTile, sgdTile } from './optim';
import { hmatmulNTile, hmatmulTTile, initHalfKernels } from './half';
import { initQuantKernels, qmatmulTile, quantActTile } from './quant';
import { crossEntropyGradTile, crossEntropyTile, normGradTile, normTile, softmaxGradTile, softmaxTile, sumPartialsTile } from './norm';
import { argReduceTile, cumsumTile, reduceTile } from './reduce';
import { ropeTile } from './rotary';
import { col2imTile, im2colTile } from './window';

// Kernel ids: the same numbers as K in src/backend/wasm/kernels.ts.
const K_CAST = 0, K_UNARY = 1, K_ACTGRAD = 2, K_BINARY = 3, K_WHERE = 4, K_REDUCE = 5, K_ARGREDUCE = 6, K_CUMSUM = 7;
const K_PACKB = 8, K_GEMM = 9, K_MATMUL_INT = 10, K_STRIDED = 11, K_INDEX_SELECT = 12, K_INDEX_ADD = 13, K_GATHER = 14;
const K_SCATTER_ADD = 15, K_SOFTMAX = 16, K_SOFTMAX_GRAD = 17, K_NORM = 18, K_NORM_GRAD = 19, K_SUM_PARTIALS = 20;
const K_IM2COL = 21, K_COL2IM = 22, K_GEMV = 23, K_ATTENTION = 24, K_ATTENTION_GRAD = 25, K_ADAM = 26, K_SGD = 27, K_PACKA = 28;
const K_CROSS_ENTROPY = 29, K_CROSS_ENTROPY_GRAD = 30;
const K_QUANT_ACT = 40, K_QMATMUL = 41, K_HMATMUL_T = 42, K_HMATMUL_N = 43, K_ROPE = 44;

function runTile(kernel: i32, p: usize, t: i32, scratch: usize): void {
  switch (kernel) {
    case K_CAST: castTile(p, t); break;
    case K_UNARY: unaryTile(p, t); break;
    case K_ACTGRAD: actGradTile(p, t); break;
    case K_BINARY: binaryTile(p, t); break;
    case K_WHERE: whereTile(p, t); break;
    case K_REDUCE: reduceTile(p, t); break;
    case K_ARGREDUCE: argReduceTile(p, t); break;
    case K_CUMSUM: cumsumTile(p, t); break;
    case K_PACKB: packBTile(p, t); break;
    case K_GEMM: gemmTile(p, t, scratch); break;
    case K_MATMUL_INT: matmulIntTile(p, t); break;
    case K_STRIDED: stridedTile(p, t); break;
    case K_INDEX_SELECT: indexSelectTile(p, t); break;
    case K_INDEX_ADD: indexAddTile(p, t); break;
    case K_GATHER: gatherTile(p, t); break;
    case K_SCATTER_ADD: scatterAddTile(p, t); break;
    case K_SOFTMAX: softmaxTile(p, t); break;
    case K_SOFTMAX_GRAD: softmaxGradTile(p, t); break;
    case K_NORM: normTile(p, t); break;
    case K_NORM_GRAD: normGradTile(p, t); break;
    case K_SUM_PARTIALS: sumPartialsTile(p, t); break;
    case K_IM2COL: im2colTile(p, t); break;
    case K_COL2IM: col2imTile(p, t); break;
    case K_GEMV: gemvTile(p, t); break;
    case K_ATTENTION: attentionTile(p, t, scratch); break;
    case K_ATTENTION_GRAD: attentionGradTile(p, t, scratch); break;
    case K_ADAM: adamTile(p, t); break;
    case K_SGD: sgdTile(p, t); break;
    case K_PACKA: packATile(p, t); break;
    case K_CROSS_ENTROPY: crossEntropyTile(p, t); break;
    case K_CROSS_ENTROPY_GRAD: crossEntropyGradTile(p, t); break;
    case K_QUANT_ACT: quantActTile(p, t); break;
    case K_QMATMUL: qmatmulTile(p, t); break;
    case K_HMATMUL_T: hmatmulTTile(p, t, scratch); break;
    case K_HMATMUL_N: hmatmulNTile(p, t); break;
    case K_ROPE: ropeTile(p, t); break;
    default: unreachable();
  }
}

/** Next tile of the job at p (slot 1 counts them out). */
@inline function nextTile(p: usize): i32 {
  if (ASC_FEATURE_THREADS) return atomic.add<i32>(p + 4, 1);
  const t = load<i32>(p + 4);
  store<i32>(p + 4, t + 1);
  return t;
}

/** Runs tiles of the job at p until none are left; tid picks this thread's scratch area. */
export function runJob(p: usize, tid: i32): void {
  const kernel = pi(p, 0), tiles = pi(p, 2);
  const scratch = pu(p, 3) + <usize>tid * pu(p, 4);
  for (let t = nextTile(p); t < tiles; t = nextTile(p)) runTile(kernel, p, t, scratch);
}

export function heapBase(): usize {
  return __heap_base;
}

/** Sets the vector constants; every instance (each thread's) calls it once after instantiation. */
export function initKernels(): void {
  initCommon();
  initHalfKernels();
  initQuantKernels();
}

export { checkIndices };
