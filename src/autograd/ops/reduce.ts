// Reductions with their gradients: sum, max/min, argmax/argmin, cumsum, and composites mean, var, std, logsumexp.

import type { ReduceOp } from '../../tensor/backend.js';
import { isFloat } from '../../tensor/dtype.js';
import { normAxes, sizeOf, splitAt, stridesOf, type Shape } from '../../tensor/shape.js';
import type { Tensor } from '../../tensor/tensor.js';
import { noGrad, record } from '../engine.js';
import { checkFloat, normDim, wrap } from './base.js';
import { abs, add, cast, div, eq, exp, log, mul, sub, where } from './elementwise.js';
import { expand, reshape } from './movement.js';

export type Dims = number | readonly number[];

/**
 * The axes to reduce, sorted. A 0-d tensor takes dim 0 or -1 as PyTorch does and reduces over nothing (the
 * result is 0-d, with or without keepdim).
 */
function reduceAxes(dim: Dims | undefined, ndim: number, op: string): number[] {
  if (ndim > 0 || dim === undefined) return normAxes(dim, ndim, op);
  normAxes(typeof dim === 'number' ? [normDim(dim, 0, op)] : dim.map((d) => normDim(d, 0, op)), 1, op);
  return [];
}

/** The shape with reduced axes set to 1 (keepdim) or removed. */
function reducedShape(shape: Shape, axes: readonly number[], keepdim: boolean): number[] {
  return keepdim ? shape.map((d, i) => (axes.includes(i) ? 1 : d)) : shape.filter((_, i) => !axes.includes(i));
}

/** Runs a [outer, size, inner] kernel once per run of adjacent axes, last run first. */
function reduceRaw(x: Tensor, op: ReduceOp, axes: readonly number[]): Tensor {
  let buf = x.buffer;
  const cur = [...x.shape];
  for (let end = axes.length - 1; end >= 0;) {
    let start = end;
    while (start > 0 && axes[start - 1] === axes[start]! - 1) start--;
    const a0 = axes[start]!, a1 = axes[end]!;
    const outer = sizeOf(cur.slice(0, a0)), size = sizeOf(cur.slice(a0, a1 + 1)), inner = sizeOf(cur.slice(a1 + 1));
    const next = x.backend.reduce(op, buf, outer, size, inner);
    if (buf !== x.buffer) x.backend.free(buf);
    buf = next;
    for (let a = a0; a <= a1; a++) cur[a] = 1;
    end = start - 1;
  }
  if (buf === x.buffer) buf = x.backend.stridedCopy(buf, x.shape, stridesOf(x.shape), 0); // no axes: a copy
  return wrap(x, buf, cur);
}

/** Sum over dims (all if omitted). Integer and bool tensors sum to int32. */
export function sum(x: Tensor, dim?: Dims, keepdim = false): Tensor {
  if (!isFloat(x.dtype) && x.dtype !== 'int32') x = cast(x, 'int32');
  const axes = reduceAxes(dim, x.ndim, 'sum');
  const kept = reduceRaw(x, 'sum', axes);
  const out = keepdim ? kept : reshape(kept, reducedShape(x.shape, axes, false));
  const from = x.shape, keptShape = kept.shape;
  return record('sum', out, [x], [], (g) => [expand(reshape(g, keptShape), from)]);
}

export function mean(x: Tensor, dim?: Dims, keepdim = false): Tensor {
  checkFloat('mean', x);
  const axes = reduceAxes(dim, x.ndim, 'mean');
  const n = axes.reduce((acc, a) => acc * x.shape[a]!, 1);
  return div(sum(x, axes, keepdim), n);
}

function extremum(op: 'max' | 'min', x: Tensor, dim: Dims | undefined, keepdim: boolean): Tensor {
  const axes = reduceAxes(dim, x.ndim, op);
  checkNonEmpty(op, x, axes, dim === undefined);
  const kept = reduceRaw(x, op, axes);
  const out = keepdim ? kept : reshape(kept, reducedShape(x.shape, axes, false));
  const keptShape = kept.shape;
  return record(op, out, [x], [x, out], (g, [sx, y]) => {
    // Ties share the gradient evenly (PyTorch's amax/amin rule).
    const mask = cast(eq(sx!, reshape(y!, keptShape)), sx!.dtype);
    const count = sum(mask, axes, true);
    return [mul(div(mask, count), reshape(g, keptShape))];
  });
}

/** Largest value over dims (all if omitted), like torch.amax. Use argmax for the index. */
export function max(x: Tensor, dim?: Dims, keepdim = false): Tensor {
  return extremum('max', x, dim, keepdim);
}
export function min(x: Tensor, dim?: Dims, keepdim = false): Tensor {
  return extremum('min', x, dim, keepdim);
}

/** Reducing over an empty dimension has no answer; other dimensions may be empty (the result is then empty). */
function checkNonEmpty(op: string, x: Tensor, axes: readonly number[], all: boolean): void {
  if (all && x.numel() === 0) throw new Error(`${op}: cannot reduce an empty tensor ${JSON.stringify(x.shape)} over all dimensions; give a dimension`);
  for (const a of axes) {
    if (x.shape[a] === 0) throw new Error(`${op}: cannot reduce over dimension ${a} of size 0 (shape ${JSON.stringify(x.shape)})`);
  }
}

function argExtremum(op: 'argmax' | 'argmin', x: Tensor, dim: number | undefined, keepdim: boolean): Tensor {
  if (x.dtype === 'bool') throw new Error(`${op}: not implemented for bool tensors (PyTorch neither); cast with .int()`);
  if (dim === undefined) {
    checkNonEmpty(op, x, [], true);
    const flat = reshape(x, [x.numel()]);
    return wrap(x, x.backend.argReduce(op, flat.buffer, 1, x.numel(), 1), keepdim ? x.shape.map(() => 1) : []);
  }
  const d = normDim(dim, x.ndim, op);
  checkNonEmpty(op, x, [d], false);
  const [outer, size, inner] = splitAt(x.shape, d);
  return wrap(x, x.backend.argReduce(op, x.buffer, outer, size, inner), x.ndim === 0 ? [] : reducedShape(x.shape, [d], keepdim));
}

/** Index of the first largest value along dim (of the flattened tensor if omitted), int32. */
export function argmax(x: Tensor, dim?: number, keepdim = false): Tensor {
  return argExtremum('argmax', x, dim, keepdim);
}
export function argmin(x: Tensor, dim?: number, keepdim = false): Tensor {
  return argExtremum('argmin', x, dim, keepdim);
}

/** Cumulative sum along dim. */
export function cumsum(x: Tensor, dim: number): Tensor {
  if (!isFloat(x.dtype) && x.dtype !== 'int32') x = cast(x, 'int32');
  const d = normDim(dim, x.ndim, 'cumsum');
  const [outer, size, inner] = splitAt(x.shape, d);
  const out = wrap(x, x.backend.cumsum(x.buffer, outer, size, inner, false), x.shape);
  return record('cumsum', out, [x], [], (g) => [wrap(g, g.backend.cumsum(g.buffer, outer, size, inner, true), g.shape)]);
}

export interface VarOptions {
  /** Subtracted from the count in the denominator: 1 (Bessel, PyTorch's default) or 0. */
  correction?: number;
  keepdim?: boolean;
}

/**
 * var (or std) in float64 (PyTorch accumulates float32 in double too: the squares of 1e30 do not overflow); on a device
 * without float64, varianceScaled.
 */
function varOrStd(x: Tensor, dim: Dims | undefined, opts: VarOptions, wantStd: boolean): Tensor {
  checkFloat(wantStd ? 'std' : 'var', x);
  const axes = reduceAxes(dim, x.ndim, 'var');
  const n = axes.reduce((acc, a) => acc * x.shape[a]!, 1);
  const denom = Math.max(0, n - (opts.correction ?? 1));
  if (x.backend.float64 === false) return varianceScaled(x, axes, opts.keepdim ?? false, denom, wantStd);
  const xd = cast(x, 'float64');
  const d = sub(xd, mean(xd, axes, true));
  const v = div(sum(mul(d, d), axes, opts.keepdim ?? false), denom);
  if (!wantStd) return cast(v, x.dtype);
  const out = wrap(v, v.backend.unary('sqrt', v.buffer), v.shape);
  // The gradient is 0 where std is 0 (a constant row), as in PyTorch, not g / 0 * 0 = NaN.
  return cast(record('std', out, [v], [out], (g, [y]) => [where(eq(y!, 0), 0, div(g, mul(y!, 2)))]), x.dtype);
}

/**
 * var / std on a device without float64 (webgpu), in float32, two-pass: the deviations are divided by their largest
 * magnitude m before squaring (var = m^2 sum((d / m)^2) / denom) so that 1e30s do not overflow, and the gradient is
 * written out (2 d / denom for var, d / (denom std) for std, 0 where std is 0) so that an infinite var of huge
 * values still has PyTorch's finite gradient.
 */
function varianceScaled(x: Tensor, axes: number[], keepdim: boolean, denom: number, wantStd: boolean): Tensor {
  const x32 = cast(x, 'float32');
  const d = noGrad(() => sub(x32, mean(x32, axes, true)));
  const kept = noGrad(() => {
    const a = reduceRaw(abs(d), 'max', axes);
    const m = where(eq(a, 0), 1, a);
    const r = div(d, m);
    const v = div(sum(mul(r, r), axes, true), denom);
    return wantStd ? mul(wrap(v, v.backend.unary('sqrt', v.buffer), v.shape), m) : mul(v, mul(m, m));
  });
  const out = keepdim ? kept : reshape(kept, reducedShape(x.shape, axes, false));
  return record(wantStd ? 'std' : 'var', noGrad(() => cast(out, x.dtype)), [x32], [], (g) => {
    const gk = reshape(cast(g, 'float32'), kept.shape);
    return [wantStd ? where(eq(kept, 0), 0, div(mul(gk, d), mul(kept, denom))) : mul(gk, mul(d, 2 / denom))];
  });
}

export function variance(x: Tensor, dim?: Dims, opts: VarOptions = {}): Tensor {
  return varOrStd(x, dim, opts, false);
}

export function std(x: Tensor, dim?: Dims, opts: VarOptions = {}): Tensor {
  return varOrStd(x, dim, opts, true);
}

/** log(sum(exp(x))) over dims, computed stably; integer and bool tensors compute in float32, as in PyTorch. */
export function logsumexp(x: Tensor, dim: Dims, keepdim = false): Tensor {
  if (!isFloat(x.dtype)) x = cast(x, 'float32');
  const axes = reduceAxes(dim, x.ndim, 'logsumexp');
  const m0 = reduceRaw(x, 'max', axes); // not recorded: the result's gradient does not depend on the shift
  // An infinite maximum shifts by 0 (PyTorch's rule): [1, inf] gives inf, not inf - inf = NaN.
  const m = where(eq(abs(m0), Infinity), 0, m0);
  const s = noGrad(() => add(log(sum(exp(sub(x, m)), axes, true)), m));
  // PyTorch's gradient g * exp(x - lse): with lse = inf every finite x gets 0 (the chain rule through the shifted
  // sum would give 0 * exp(1e30) = NaN).
  const keptShape = s.shape;
  const out = record('logsumexp', s, [x], [x, s], (g, [sx, ss]) => [mul(reshape(g, keptShape), exp(sub(sx!, ss!)))]);
  return keepdim ? out : reshape(out, reducedShape(x.shape, axes, false));
}

