// Reference batched matrix multiply with transposed operands and broadcast (stride 0) batches.

import type { MatmulParams } from '../../tensor/backend.js';
import { allocArray, type DType, type TypedArray } from '../../tensor/dtype.js';

export function matmul(a: TypedArray, b: TypedArray, p: MatmulParams, dtype: DType): TypedArray {
  const { batch, m, n, k, transA, transB, strideA, strideB } = p;
  const out = allocArray(dtype, batch * m * n);
  const row = new Float64Array(n); // accumulate in double: the oracle should be the accurate one
  for (let bi = 0; bi < batch; bi++) {
    const a0 = bi * strideA, b0 = bi * strideB, c0 = bi * m * n;
    for (let i = 0; i < m; i++) {
      row.fill(0);
      for (let p2 = 0; p2 < k; p2++) {
        const av = transA ? a[a0 + p2 * m + i] : a[a0 + i * k + p2];
        if (av === 0) continue;
        if (transB) for (let j = 0; j < n; j++) row[j] += av * b[b0 + j * k + p2];
        else for (let j = 0, bo = b0 + p2 * n; j < n; j++) row[j] += av * b[bo + j];
      }
      for (let j = 0; j < n; j++) out[c0 + i * n + j] = row[j];
    }
  }
  return out;
}
