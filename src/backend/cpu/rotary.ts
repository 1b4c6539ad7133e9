// Reference rotary position embedding (Backend.rope): each row's two halves rotated by cos / sin, forward or inverse.

import type { RopeParams } from '../../tensor/backend.js';
import { allocArray, type DType, type TypedArray } from '../../tensor/dtype.js';

/**
 * out = x cos + rotate_half(x) sin (inverse: x cos + rotate_half^T(x sin)) for every row of p's layouts. Each product
 * is rounded to float32 for float32 (the composed mul would store it) and the sum by the store into `out`.
 */
export function rope(x: TypedArray, cos: TypedArray, sin: TypedArray, p: RopeParams, dtype: DType): TypedArray {
  const out = allocArray(dtype, p.batch * p.heads * p.t * p.hs);
  const r = dtype === 'float32' ? Math.fround : (v: number) => v;
  const h2 = p.hs / 2, [cb, ch, ct] = p.cosStrides, sign = p.inverse ? -1 : 1;
  for (let b = 0; b < p.batch; b++) {
    for (let h = 0; h < p.heads; h++) {
      for (let i = 0; i < p.t; i++) {
        const xo = p.x.offset + b * p.x.batch + h * p.x.head + i * p.x.row;
        const oo = p.out.offset + b * p.out.batch + h * p.out.head + i * p.out.row;
        const co = b * cb + h * ch + i * ct;
        for (let d = 0; d < h2; d++) {
          const x1 = x[xo + d]!, x2 = x[xo + h2 + d]!;
          // forward: [x1 c1 - x2 s1, x2 c2 + x1 s2]; inverse: [x1 c1 + x2 s2, x2 c2 - x1 s1]
          const s1 = sin[co + d]!, s2 = sin[co + h2 + d]!;
          out[oo + d] = r(x1 * cos[co + d]!) - sign * r(x2 * (p.inverse ? s2 : s1));
          out[oo + h2 + d] = r(x2 * cos[co + h2 + d]!) + sign * r(x1 * (p.inverse ? s1 : s2));
        }
      }
    }
  }
  return out;
}
