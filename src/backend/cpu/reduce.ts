// Reference reductions over the middle axis of [outer, size, inner]: sum/max/min, argmax/argmin, cumsum.

import type { ArgReduceOp, ReduceOp } from '../../tensor/backend.js';
import { allocArray, type DType, type TypedArray } from '../../tensor/dtype.js';

export function reduce(op: ReduceOp, x: TypedArray, outer: number, size: number, inner: number, dtype: DType): TypedArray {
  const out = allocArray(dtype, outer * inner);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const base = o * size * inner + i;
      let acc = op === 'sum' ? 0 : op === 'max' ? -Infinity : Infinity;
      for (let r = 0; r < size; r++) {
        const v = x[base + r * inner];
        if (op === 'sum') acc += v;
        else if (v !== v) { acc = NaN; break; } // NaN propagates through max/min
        else if (op === 'max' ? v > acc : v < acc) acc = v;
      }
      out[o * inner + i] = acc;
    }
  }
  return out;
}

/** Index of the first maximum (minimum) along the axis, as int32. */
export function argReduce(op: ArgReduceOp, x: TypedArray, outer: number, size: number, inner: number): Int32Array {
  const out = new Int32Array(outer * inner);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const base = o * size * inner + i;
      let best = x[base], arg = 0;
      for (let r = 1; r < size && best === best; r++) {
        const v = x[base + r * inner];
        if (v !== v || (op === 'argmax' ? v > best : v < best)) { best = v; arg = r; }
      }
      out[o * inner + i] = arg;
    }
  }
  return out;
}

export function cumsum(x: TypedArray, outer: number, size: number, inner: number, reverse: boolean, dtype: DType): TypedArray {
  const out = allocArray(dtype, x.length);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const base = o * size * inner + i;
      let acc = 0;
      for (let s = 0; s < size; s++) {
        const r = reverse ? size - 1 - s : s;
        acc += x[base + r * inner];
        out[base + r * inner] = acc;
      }
    }
  }
  return out;
}
