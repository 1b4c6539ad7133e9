// Reference indexing along the middle axis of [outer, size, inner]: select / add rows, gather / scatter-add.

import { allocArray, type DType, type TypedArray } from '../../tensor/dtype.js';

function checkIndex(v: number, size: number, op: string): void {
  if (!(v >= 0 && v < size)) throw new Error(`${op}: index ${v} is out of range for a dimension of size ${size}`);
}

/** Checks every index before anything is computed, so a bad index leaves no partial result. */
function checkAll(idx: TypedArray, size: number, op: string): void {
  for (let j = 0; j < idx.length; j++) checkIndex(idx[j], size, op);
}

export function indexSelect(x: TypedArray, idx: TypedArray, outer: number, size: number, inner: number, op: string, dtype: DType): TypedArray {
  checkAll(idx, size, op);
  const m = idx.length;
  const out = allocArray(dtype, outer * m * inner);
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < m; j++) {
      const src = (o * size + idx[j]) * inner;
      out.set(x.subarray(src, src + inner), (o * m + j) * inner);
    }
  }
  return out;
}

export function indexAdd(src: TypedArray, idx: TypedArray, outer: number, size: number, inner: number, op: string, dtype: DType): TypedArray {
  checkAll(idx, size, op);
  const m = idx.length;
  const out = allocArray(dtype, outer * size * inner);
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < m; j++) {
      const d = (o * size + idx[j]) * inner, s = (o * m + j) * inner;
      for (let i = 0; i < inner; i++) out[d + i] += src[s + i];
    }
  }
  return out;
}

export function gather(x: TypedArray, idx: TypedArray, outer: number, size: number, inner: number, m: number, op: string, dtype: DType): TypedArray {
  checkAll(idx, size, op);
  const out = allocArray(dtype, outer * m * inner);
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < m; j++) {
      for (let i = 0; i < inner; i++) {
        const q = (o * m + j) * inner + i;
        out[q] = x[(o * size + idx[q]) * inner + i];
      }
    }
  }
  return out;
}

export function scatterAdd(src: TypedArray, idx: TypedArray, outer: number, size: number, inner: number, m: number, op: string, dtype: DType): TypedArray {
  checkAll(idx, size, op);
  const out = allocArray(dtype, outer * size * inner);
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < m; j++) {
      for (let i = 0; i < inner; i++) {
        const q = (o * m + j) * inner + i;
        out[(o * size + idx[q]) * inner + i] += src[q];
      }
    }
  }
  return out;
}
