// Reference strided copies: one gather and one scatter cover permute, expand, slice, pad and concat.

import { allocArray, type DType, type TypedArray } from '../../tensor/dtype.js';
import { sizeOf, type Shape } from '../../tensor/shape.js';

/** Calls fn(i, j) for i = 0.. over `shape` in row-major order, with j = offset + sum_k idx_k * strides[k]. */
function forEachStrided(shape: Shape, strides: readonly number[], offset: number, fn: (i: number, j: number) => void): void {
  const n = sizeOf(shape);
  const nd = shape.length;
  const counter = new Int32Array(nd);
  let j = offset;
  for (let i = 0; i < n; i++) {
    fn(i, j);
    for (let d = nd - 1; d >= 0; d--) {
      counter[d]++;
      j += strides[d];
      if (counter[d] < shape[d]) break;
      j -= strides[d] * shape[d];
      counter[d] = 0;
    }
  }
}

export function stridedCopy(x: TypedArray, shape: Shape, strides: readonly number[], offset: number, dtype: DType): TypedArray {
  const out = allocArray(dtype, sizeOf(shape));
  forEachStrided(shape, strides, offset, (i, j) => { out[i] = x[j]; });
  return out;
}

export function stridedWrite(dst: TypedArray, src: TypedArray, shape: Shape, strides: readonly number[], offset: number): void {
  forEachStrided(shape, strides, offset, (i, j) => { dst[j] = src[i]; });
}
