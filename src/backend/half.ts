// float16 / bfloat16 on CPU-side backends: kernels get float32 copies of 2-byte inputs and their float results are rounded back once.
//
// A backend stores half buffers as bits and implements memory, cast and the strided copies for them itself;
// every other kernel is wrapped here. PyTorch computes half ops on CPU in float32 and rounds the result once,
// which is what widening, running the float32 kernel and narrowing gives.

import type { Backend, BackendBuffer, MatmulParams } from '../tensor/backend.js';
import { isHalf, type HalfDType } from '../tensor/dtype.js';

/**
 * The kernels that compute (everything except memory, cast and the strided copies), with the position of the
 * operand whose dtype decides: ops hand a kernel float operands of one dtype, so one look-up per call suffices.
 */
const WIDENED_KERNELS = {
  unary: 1, activationGrad: 1, binary: 1, where: 2, reduce: 1, argReduce: 1, cumsum: 0, matmul: 0, matmulColSums: 0,
  indexSelect: 0, indexAdd: 0, gather: 0, scatterAdd: 0, softmax: 0, softmaxGrad: 0, layerNorm: 0, layerNormGrad: 0, rmsNorm: 0,
  rmsNormGrad: 0, crossEntropy: 0, crossEntropyGrad: 0, attention: 0, attentionGrad: 0, rope: 0, adamStep: 0, sgdStep: 0, im2col: 0,
  col2im: 0,
} as const satisfies Partial<Record<keyof Backend, 0 | 1 | 2>>;

type Kernel = (...args: unknown[]) => unknown;

/** The half dtype of a buffer argument, else null. */
function halfOf(v: unknown): HalfDType | null {
  const d = (v as BackendBuffer).dtype;
  return d === 'float16' || d === 'bfloat16' ? d : null;
}

function isBuffer(v: unknown): v is BackendBuffer {
  return typeof v === 'object' && v !== null && typeof (v as { dtype?: unknown }).dtype === 'string' && typeof (v as { size?: unknown }).size === 'number';
}

/**
 * Wraps the computing kernels of `backend` (an instance; call it from the constructor) so that they accept
 * float16 / bfloat16 buffers. `backend.cast` must convert between float32 and both half dtypes. Calls without
 * a half buffer run the original kernel untouched.
 */
export function installHalfKernels(backend: Backend): void {
  const methods = backend as unknown as Record<string, Kernel | undefined>;
  for (const [name, primary] of Object.entries(WIDENED_KERNELS)) {
    const kernel = methods[name];
    if (typeof kernel !== 'function') continue;
    if (kernel.length > 9) throw new Error(`installHalfKernels: ${name} takes ${kernel.length} arguments; the wrapper passes 9`);
    // Fixed arity (the longest kernel, attentionGrad, takes 9 arguments): no rest array on the common path.
    methods[name] = (a0?: unknown, a1?: unknown, a2?: unknown, a3?: unknown, a4?: unknown, a5?: unknown, a6?: unknown, a7?: unknown, a8?: unknown): unknown => {
      const half = halfOf(primary === 0 ? a0 : primary === 1 ? a1 : a2);
      if (half === null) return kernel.call(backend, a0, a1, a2, a3, a4, a5, a6, a7, a8);
      if (name === 'matmul' && backend.matmulHalf && halfOf(a1) === half && !(a2 as MatmulParams).transA) return matmulHalfB(backend, a0 as BackendBuffer, a1 as BackendBuffer, a2 as MatmulParams, a3 as BackendBuffer | null | undefined, half);
      const args = [a0, a1, a2, a3, a4, a5, a6, a7, a8];
      // One float32 copy per distinct buffer: kernels compare operands by identity (shared q/k/v buffers).
      const wide = new Map<BackendBuffer, BackendBuffer>();
      const widen = (a: unknown): unknown => {
        if (!isBuffer(a) || !isHalf(a.dtype)) return a;
        let w = wide.get(a);
        if (w === undefined) wide.set(a, (w = backend.cast(a, 'float32')));
        return w;
      };
      const freed = new Set<BackendBuffer>();
      try {
        return narrowResult(backend, kernel.apply(backend, args.map(widen)), half, freed);
      } finally {
        for (const w of wide.values()) if (!freed.has(w)) backend.free(w);
      }
    };
  }
}

/**
 * A product of two half operands on a backend with matmulHalf: only A (activations, or an output gradient) and the bias
 * are widened; B (typically the weight) is read as stored. The result is rounded back to `half` once, as before.
 */
function matmulHalfB(backend: Backend, a: BackendBuffer, b: BackendBuffer, p: MatmulParams, bias: BackendBuffer | null | undefined, half: HalfDType): BackendBuffer {
  const wa = backend.cast(a, 'float32'), wbias = bias ? backend.cast(bias, 'float32') : null;
  try {
    const y = backend.matmulHalf!(wa, b, p, wbias);
    const out = backend.cast(y, half);
    backend.free(y);
    return out;
  } finally {
    backend.free(wa);
    if (wbias) backend.free(wbias);
  }
}

/**
 * Statistics a forward kernel saves for its backward (layerNorm's mean/rstd, rmsNorm's rstd, crossEntropy's and
 * attention's lse) stay float32, as PyTorch keeps them for half inputs: rounded to float16 the rstd of a
 * near-constant row is off enough to double its gradient. Backward kernels take them as they are.
 */
const FLOAT32_STATS = new Set(['mean', 'rstd', 'lse']);

/** Rounds the float32 buffers of a kernel result (a buffer, or an object of them) back to `half`, freeing the float32 ones. */
function narrowResult(backend: Backend, result: unknown, half: HalfDType, freed: Set<BackendBuffer>): unknown {
  const narrowed = new Map<BackendBuffer, BackendBuffer>();
  const narrow = (v: unknown): unknown => {
    if (!isBuffer(v) || v.dtype !== 'float32') return v;
    let n = narrowed.get(v);
    if (n === undefined) {
      narrowed.set(v, (n = backend.cast(v, half)));
      backend.free(v);
      freed.add(v);
    }
    return n;
  };
  if (isBuffer(result)) return narrow(result);
  if (typeof result === 'object' && result !== null) {
    return Object.fromEntries(Object.entries(result).map(([k, v]) => [k, FLOAT32_STATS.has(k) ? v : narrow(v)]));
  }
  return result;
}
