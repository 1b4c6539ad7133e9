// Helpers every op file shares: wrapping kernel results, scalar operands, device checks, sumTo.

import type { BackendBuffer } from '../../tensor/backend.js';
import { full } from '../../tensor/create.js';
import { isFloat, promoteTypes, type DType } from '../../tensor/dtype.js';
import { fmtShape, normAxis, shapeEq, sizeOf, type Shape } from '../../tensor/shape.js';
import { Tensor } from '../../tensor/tensor.js';

/** A tensor or a JavaScript number standing for a 0-d tensor. */
export type TensorLike = Tensor | number;

/** Wraps a kernel's output buffer as a tensor on the same backend as `like`. */
export function wrap(like: Tensor, buffer: BackendBuffer, shape: Shape): Tensor {
  return Tensor.fromBuffer(like.backend, buffer, shape);
}

export function checkSameDevice(op: string, ...ts: Tensor[]): void {
  const d = ts[0]!.device;
  for (const t of ts) {
    if (t.device !== d) throw new Error(`${op}: tensors are on different devices (${ts.map((x) => x.device).join(', ')}); move them with .to(device)`);
  }
}

export function checkFloat(op: string, t: Tensor): void {
  if (!isFloat(t.dtype)) throw new Error(`${op}: expected a floating point tensor, got ${t.dtype} (convert with .float())`);
}

/**
 * The dtype a JS number takes next to a tensor of dtype `other` (PyTorch's "weak" scalar typing). JS cannot tell 1e30
 * from an integer: a whole number outside int32's range is read as the float it most likely is.
 */
export function scalarDType(value: number, other: DType): DType {
  if (isFloat(other)) return other;
  if (!Number.isInteger(value) || Math.abs(value) > 2147483647) return 'float32';
  return other === 'bool' ? 'int32' : other;
}

/** Turns two operands (at least one a tensor) into tensors on one device, before dtype promotion. */
export function operands(op: string, a: TensorLike, b: TensorLike): [Tensor, Tensor] {
  if (typeof a === 'number' && typeof b === 'number') throw new Error(`${op}: at least one operand must be a tensor`);
  const ta = typeof a === 'number' ? full([], a, { dtype: scalarDType(a, (b as Tensor).dtype), device: (b as Tensor).device }) : a;
  const tb = typeof b === 'number' ? full([], b, { dtype: scalarDType(b, ta.dtype), device: ta.device }) : b;
  checkSameDevice(op, ta, tb);
  return [ta, tb];
}

/**
 * PyTorch's result_type for two operands (a JS number already stands as a 0-d tensor of scalarDType): dimensioned
 * tensors outrank 0-d tensors, and a 0-d tensor changes the type only when it is of a higher category
 * (bool < integer < float): float64 0-d * float32 [3] is float32, float64 0-d * int32 [3] is float64.
 * Two bools stay bool: add and maximum are logical or, mul and minimum logical and (binary() picks the op).
 */
export function resultType(a: Tensor, b: Tensor): DType {
  if ((a.ndim === 0) === (b.ndim === 0)) return promoteTypes(a.dtype, b.dtype);
  const [higher, lower] = a.ndim === 0 ? [b.dtype, a.dtype] : [a.dtype, b.dtype];
  // c10's combine_categories: a float dimensioned type wins; otherwise only a higher category promotes.
  if (isFloat(higher)) return higher;
  if (higher === 'bool' || isFloat(lower)) return promoteTypes(higher, lower);
  return higher;
}

/**
 * A dimension index for an op on a tensor of `ndim` dimensions; a 0-d tensor takes 0 and -1 like a 1-d one
 * (as PyTorch's dim wrapping does).
 */
export function normDim(dim: number, ndim: number, op: string): number {
  return normAxis(dim, Math.max(ndim, 1), op);
}

/** Sums a broadcast gradient back down to `shape` (no autograd: used inside backward functions). */
export function sumTo(g: Tensor, shape: Shape): Tensor {
  if (shapeEq(g.shape, shape)) return g;
  const lead = g.ndim - shape.length;
  let buf = g.buffer;
  let cur = [...g.shape];
  // Reduce from the last axis backwards so that each reduction keeps the axes before it in place.
  for (let d = g.ndim - 1; d >= 0; d--) {
    const target = d < lead ? 1 : shape[d - lead]!;
    if (cur[d] === target) continue;
    if (target !== 1) throw new Error(`sumTo: cannot reduce ${fmtShape(g.shape)} to ${fmtShape(shape)}`);
    const outer = sizeOf(cur.slice(0, d)), inner = sizeOf(cur.slice(d + 1));
    const next = g.backend.reduce('sum', buf, outer, cur[d]!, inner);
    if (buf !== g.buffer) g.backend.free(buf);
    buf = next;
    cur[d] = 1;
  }
  return buf === g.buffer ? new Tensor(g.storage.retain(), shape) : wrap(g, buf, shape);
}
