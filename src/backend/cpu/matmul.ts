// Reference batched matrix multiply with transposed operands and broadcast (stride 0) batches.

import type { MatmulParams } from '../../tensor/backend.js';
import { allocArray, type DType, type TypedArray } from '../../tensor/dtype.js';

/** op(A) op(B) per batch entry, plus bias [n] on every row when given (added to the double accumulator). */
export function matmul(a: TypedArray, b: TypedArray, p: MatmulParams, dtype: DType, bias: TypedArray | null = null): TypedArray {
  const { batch, m, n, k, transA, transB, strideA, strideB } = p;
  if (dtype === 'int32' || dtype === 'uint8') return matmulInt(a, b, p, dtype, bias);
  const out = allocArray(dtype, batch * m * n);
  const row = new Float64Array(n); // accumulate in double: the oracle should be the accurate one
  for (let bi = 0; bi < batch; bi++) {
    const a0 = bi * strideA, b0 = bi * strideB, c0 = bi * m * n;
    for (let i = 0; i < m; i++) {
      if (bias) row.set(bias);
      else row.fill(0);
      for (let p2 = 0; p2 < k; p2++) {
        // No skipping of zeros in A: 0 * NaN must give NaN, as every other backend does.
        const av = transA ? a[a0 + p2 * m + i] : a[a0 + i * k + p2];
        if (transB) for (let j = 0; j < n; j++) row[j] += av * b[b0 + j * k + p2];
        else for (let j = 0, bo = b0 + p2 * n; j < n; j++) row[j] += av * b[bo + j];
      }
      for (let j = 0; j < n; j++) out[c0 + i * n + j] = row[j];
    }
  }
  return out;
}

/** Integer products in wrapping int32 arithmetic (Math.imul), as PyTorch computes int32 matmul. */
function matmulInt(a: TypedArray, b: TypedArray, p: MatmulParams, dtype: DType, bias: TypedArray | null): TypedArray {
  const { batch, m, n, k, transA, transB, strideA, strideB } = p;
  const out = allocArray(dtype, batch * m * n);
  for (let bi = 0; bi < batch; bi++) {
    const a0 = bi * strideA, b0 = bi * strideB, c0 = bi * m * n;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let acc = bias ? bias[j] | 0 : 0;
        for (let q = 0; q < k; q++) {
          const av = transA ? a[a0 + q * m + i] : a[a0 + i * k + q];
          const bv = transB ? b[b0 + j * k + q] : b[b0 + q * n + j];
          acc = (acc + Math.imul(av, bv)) | 0;
        }
        out[c0 + i * n + j] = acc;
      }
    }
  }
  return out;
}

/** The sums of op(B)'s columns over its k rows (batch entry 0), in double. */
export function colSums(b: TypedArray, p: MatmulParams, dtype: DType): TypedArray {
  const { n, k, transB } = p;
  const acc = new Float64Array(n);
  for (let q = 0; q < k; q++) for (let j = 0; j < n; j++) acc[j] += transB ? b[j * k + q] : b[q * n + j];
  const out = allocArray(dtype, n);
  out.set(acc);
  return out;
}
