// Rotary position embedding (RoFormer, Su et al. 2021; transformers' apply_rotary_pos_emb), x cos + rotate_half(x) sin:
// a fused primitive with its own backward where the backend has the kernel, composed from slices, cat, mul and add
// otherwise. The fused op does in one pass what the composition does in seven (a decoded token of LLaMA runs it twice a
// layer), and rotaryHeads also moves the heads forward on the way.

import type { AttentionLayout, RopeParams } from '../../tensor/backend.js';
import { broadcastShapes, broadcastStrides, fmtShape } from '../../tensor/shape.js';
import type { Tensor } from '../../tensor/tensor.js';
import { isGradEnabled, record } from '../engine.js';
import { rowsOf } from './attention.js';
import { checkFloat, checkSameDevice, wrap } from './base.js';
import { add, mul, neg } from './elementwise.js';
import { cat, reshape, slice, transpose } from './movement.js';

/** [x1, x2] -> [-x2, x1] over the last dimension (the 90-degree turn of each channel pair i, i + hs/2). */
export function rotateHalf(x: Tensor): Tensor {
  const h = x.shape[x.ndim - 1]! / 2;
  return cat([neg(slice(x, -1, h)), slice(x, -1, 0, h)], -1);
}

/** The definition, op by op (backends without the kernel, cos / sin that need a gradient, broadcasting x). */
function composed(x: Tensor, cos: Tensor, sin: Tensor): Tensor {
  return add(mul(x, cos), mul(rotateHalf(x), sin));
}

/**
 * One tensor of transformers' apply_rotary_pos_emb: x [B, H, T, hs], cos and sin broadcastable to it (a model passes
 * [B|1, 1, T, hs]); returns x cos + rotate_half(x) sin. The head size must be even.
 */
export function applyRotary(x: Tensor, cos: Tensor, sin: Tensor): Tensor {
  checkArgs('applyRotary', x, 4, cos, sin);
  const [B, H, T, hs] = x.shape as [number, number, number, number];
  return fused('applyRotary', x, cos, sin, B, H, T, hs, rowsOf(H, T, hs)) ?? composed(x, cos, sin);
}

/**
 * A q or k projection x [B, T, H * hs] -> [B, H, T, hs], rotated: the heads split and moved forward (the reshape and
 * transpose before transformers' apply_rotary_pos_emb) in the same pass.
 */
export function rotaryHeads(x: Tensor, heads: number, cos: Tensor, sin: Tensor): Tensor {
  checkArgs('rotaryHeads', x, 3, cos, sin);
  const [B, T, C] = x.shape as [number, number, number];
  if (!Number.isInteger(heads) || heads <= 0 || C % heads !== 0 || (C / heads) % 2 !== 0) {
    throw new Error(`rotaryHeads: ${fmtShape(x.shape)} does not split into ${heads} heads of an even size`);
  }
  const hs = C / heads;
  const layout = { offset: 0, batch: T * C, head: hs, row: C };
  // [B, T, H * hs] -> [B, T, H, hs] -> [B, H, T, hs]
  return fused('rotaryHeads', x, cos, sin, B, heads, T, hs, layout) ?? composed(transpose(reshape(x, [B, T, heads, hs]), 1, 2), cos, sin);
}

function checkArgs(op: string, x: Tensor, ndim: number, cos: Tensor, sin: Tensor): void {
  checkFloat(op, x);
  checkSameDevice(op, x, cos, sin);
  if (x.ndim !== ndim) throw new Error(`${op}: expected x with ${ndim} dimensions (${ndim === 4 ? '[B, H, T, hs]' : '[B, T, H * hs]'}), got ${fmtShape(x.shape)}`);
  if (ndim === 4 && x.shape[3]! % 2 !== 0) throw new Error(`${op}: the head size (last dimension of ${fmtShape(x.shape)}) must be even`);
  if (fmtShape(cos.shape) !== fmtShape(sin.shape)) throw new Error(`${op}: cos ${fmtShape(cos.shape)} and sin ${fmtShape(sin.shape)} must have one shape`);
}

/**
 * The fused kernel on x's rows at `layout` (out: contiguous [B, H, T, hs]), or null where it does not apply: no kernel,
 * cos / sin of another dtype, needing a gradient, or not broadcasting to [B, H, T, hs] with whole rows of hs.
 */
function fused(op: string, x: Tensor, cos: Tensor, sin: Tensor, B: number, H: number, T: number, hs: number, layout: AttentionLayout): Tensor | null {
  const rope = x.backend.rope?.bind(x.backend);
  const shape = [B, H, T, hs];
  if (!rope || cos.dtype !== x.dtype || sin.dtype !== x.dtype || cos.shape[cos.ndim - 1] !== hs || cos.ndim > 4) return null;
  if (isGradEnabled() && (cos.requiresGrad || sin.requiresGrad)) return null;
  if (fmtShape(broadcastShapes(cos.shape, shape, `${op} (cos, sin)`)) !== fmtShape(shape)) return null;
  const [cb, ch, ct] = broadcastStrides(cos.shape, shape) as [number, number, number];
  const out = rowsOf(H, T, hs);
  const p: RopeParams = { batch: B, heads: H, t: T, hs, x: layout, out, cosStrides: [cb, ch, ct], inverse: false };
  const y = wrap(x, rope(x.buffer, cos.buffer, sin.buffer, p), shape);
  return record('rotary', y, [x], [cos, sin], (g, [c, s]) => [
    // The transposed rotation, written back in x's layout.
    wrap(g, rope(g.buffer, c!.buffer, s!.buffer, { ...p, x: out, out: layout, inverse: true }), x.shape),
  ]);
}
