// Reference products with float16 / bfloat16 weights (Backend.matmulHalf): one row of B widened at a time, never the matrix.

import type { BackendBuffer, MatmulParams } from '../../tensor/backend.js';
import { decodeHalf, isHalf, type HalfDType } from '../../tensor/dtype.js';
import { fmtShape } from '../../tensor/shape.js';

/** Throws unless a is float32, b is float16 / bfloat16, bias is float32 [n] and the sizes fit the buffers. */
export function checkMatmulHalf(a: BackendBuffer, b: BackendBuffer, p: MatmulParams, bias: BackendBuffer | null = null): void {
  const { batch, m, n, k } = p;
  if (a.dtype !== 'float32' || !isHalf(b.dtype)) throw new Error(`matmulHalf: expects float32 and float16 / bfloat16 operands, got ${a.dtype} and ${b.dtype}`);
  if (p.transA) throw new Error('matmulHalf: a transposed first operand is not supported');
  const needA = (batch - 1) * p.strideA + m * k, needB = (batch - 1) * p.strideB + k * n;
  if (a.size < needA || b.size < needB) throw new Error(`matmulHalf: buffers of ${a.size} and ${b.size} elements are too small for ${batch} x ${fmtShape([m, k])} @ ${fmtShape(p.transB ? [n, k] : [k, n])}${p.transB ? 'ᵀ' : ''}`);
  if (bias && (bias.dtype !== 'float32' || bias.size !== n)) throw new Error(`matmulHalf: bias must be [${n}] float32, got ${bias.size} ${bias.dtype}`);
}

/** op(A) op(B) with B's bits `b` (float16 / bfloat16), A float32 not transposed; accumulated in double (the oracle). */
export function matmulHalf(a: ArrayLike<number>, b: Uint16Array, dtype: HalfDType, p: MatmulParams, bias: ArrayLike<number> | null = null): Float32Array {
  const { batch, m, n, k, transB, strideA, strideB } = p;
  const out = new Float32Array(batch * m * n);
  const acc = new Float64Array(m * n);
  for (let bi = 0; bi < batch; bi++) {
    const a0 = bi * strideA, b0 = bi * strideB;
    if (bias) for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) acc[i * n + j] = bias[j]!;
    else acc.fill(0);
    if (transB) {
      // B [n, k]: row j is column j of op(B).
      for (let j = 0; j < n; j++) {
        const row = decodeHalf(b.subarray(b0 + j * k, b0 + (j + 1) * k), dtype);
        for (let i = 0; i < m; i++) {
          let s = 0;
          for (let q = 0; q < k; q++) s += a[a0 + i * k + q]! * row[q]!;
          acc[i * n + j] += s;
        }
      }
    } else {
      // B [k, n]: row q meets column q of A.
      for (let q = 0; q < k; q++) {
        const row = decodeHalf(b.subarray(b0 + q * n, b0 + (q + 1) * n), dtype);
        for (let i = 0; i < m; i++) {
          const av = a[a0 + i * k + q]!;
          for (let j = 0; j < n; j++) acc[i * n + j] += av * row[j]!;
        }
      }
    }
    out.set(acc, bi * m * n);
  }
  return out;
}
