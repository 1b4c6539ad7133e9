// Elementwise primitives with their gradients: cast, unary math, activations, broadcast binary ops, where.

import type { ActivationOp, ArithmeticOp, BinaryOp, CompareOp, UnaryOp } from '../../tensor/backend.js';
import { full } from '../../tensor/create.js';
import { isFloat, type DType } from '../../tensor/dtype.js';
import { broadcastShapes } from '../../tensor/shape.js';
import { Tensor } from '../../tensor/tensor.js';
import { noGrad, record } from '../engine.js';
import { checkSameDevice, operands, resultType, sumTo, wrap, type TensorLike } from './base.js';

// ---- cast ----

/** Converts to another dtype (returns x itself if it already has it). Differentiable between float types. */
export function cast(x: Tensor, dtype: DType): Tensor {
  if (x.dtype === dtype) return x;
  const out = wrap(x, x.backend.cast(x.buffer, dtype), x.shape);
  const from = x.dtype;
  return record('cast', out, [x], [], (g) => [isFloat(from) ? cast(g, from) : null]);
}

// ---- unary ----

/** Each unary op's gradient, from the output gradient g, the input x and the output y. */
const UNARY_GRAD: Record<UnaryOp, { save: 'x' | 'y' | 'none'; grad: ((g: Tensor, t: Tensor) => Tensor) | null }> = {
  neg: { save: 'none', grad: (g) => neg(g) },
  abs: { save: 'x', grad: (g, x) => mul(g, sign(x)) },
  exp: { save: 'y', grad: (g, y) => mul(g, y) },
  log: { save: 'x', grad: (g, x) => div(g, x) },
  sqrt: { save: 'y', grad: (g, y) => div(g, mul(y, 2)) },
  rsqrt: { save: 'y', grad: (g, y) => mul(g, mul(mul(mul(y, y), y), -0.5)) },
  sin: { save: 'x', grad: (g, x) => mul(g, cos(x)) },
  cos: { save: 'x', grad: (g, x) => mul(g, neg(sin(x))) },
  tanh: { save: 'y', grad: (g, y) => mul(g, sub(1, mul(y, y))) },
  sigmoid: { save: 'y', grad: (g, y) => mul(g, mul(y, sub(1, y))) },
  erf: { save: 'x', grad: (g, x) => mul(g, mul(exp(neg(mul(x, x))), 2 / Math.sqrt(Math.PI))) },
  relu: { save: 'x', grad: (g, x) => activationGrad('relu', x, g) },
  gelu: { save: 'x', grad: (g, x) => activationGrad('gelu', x, g) },
  geluTanh: { save: 'x', grad: (g, x) => activationGrad('geluTanh', x, g) },
  silu: { save: 'x', grad: (g, x) => activationGrad('silu', x, g) },
  // Piecewise constant: zero gradient almost everywhere.
  sign: { save: 'none', grad: (g) => mul(g, 0) },
  floor: { save: 'none', grad: (g) => mul(g, 0) },
  ceil: { save: 'none', grad: (g) => mul(g, 0) },
  round: { save: 'none', grad: (g) => mul(g, 0) },
  not: { save: 'none', grad: null },
};

/** Computed in float32 for integer and bool inputs, as in PyTorch. */
const FLOAT_ONLY = new Set<UnaryOp>(['exp', 'log', 'sqrt', 'rsqrt', 'sin', 'cos', 'tanh', 'sigmoid', 'erf']);
/** PyTorch rejects these for integer and bool inputs. */
const FLOAT_INPUT = new Set<UnaryOp>(['gelu', 'geluTanh', 'silu']);
/** PyTorch rejects these for bool inputs. */
const NO_BOOL = new Set<UnaryOp>(['neg', 'abs', 'relu', 'floor', 'ceil', 'round']);

function activationGrad(op: ActivationOp, x: Tensor, g: Tensor): Tensor {
  return wrap(x, x.backend.activationGrad(op, x.buffer, g.buffer), x.shape);
}

export function unary(op: UnaryOp, x: Tensor): Tensor {
  if (x.dtype === 'bool' && NO_BOOL.has(op)) {
    throw new Error(op === 'neg' ? 'neg: negation of a bool tensor is not supported; to invert a mask use logicalNot()' : `${op}: not implemented for bool tensors`);
  }
  if (FLOAT_INPUT.has(op) && !isFloat(x.dtype)) throw new Error(`${op === 'geluTanh' ? 'gelu' : op}: expected a floating point tensor, got ${x.dtype} (convert with .float())`);
  if (FLOAT_ONLY.has(op) && !isFloat(x.dtype)) x = cast(x, 'float32');
  if (op === 'not') x = cast(x, 'bool');
  const out = wrap(x, x.backend.unary(op, x.buffer), x.shape);
  const rule = UNARY_GRAD[op];
  const grad = rule.grad;
  if (grad === null) return out;
  const saved = rule.save === 'x' ? [x] : rule.save === 'y' ? [out] : [];
  return record(op, out, [x], saved, (g, [t]) => [grad(g, t!)]);
}

export const neg = (x: Tensor): Tensor => unary('neg', x);
export const abs = (x: Tensor): Tensor => unary('abs', x);
export const sign = (x: Tensor): Tensor => unary('sign', x);
export const exp = (x: Tensor): Tensor => unary('exp', x);
export const log = (x: Tensor): Tensor => unary('log', x);
export const sqrt = (x: Tensor): Tensor => unary('sqrt', x);
export const rsqrt = (x: Tensor): Tensor => unary('rsqrt', x);
export const sin = (x: Tensor): Tensor => unary('sin', x);
export const cos = (x: Tensor): Tensor => unary('cos', x);
export const tanh = (x: Tensor): Tensor => unary('tanh', x);
export const sigmoid = (x: Tensor): Tensor => unary('sigmoid', x);
export const relu = (x: Tensor): Tensor => unary('relu', x);
export const erf = (x: Tensor): Tensor => unary('erf', x);
export const silu = (x: Tensor): Tensor => unary('silu', x);
export const floor = (x: Tensor): Tensor => unary('floor', x);
export const ceil = (x: Tensor): Tensor => unary('ceil', x);
export const round = (x: Tensor): Tensor => unary('round', x);
export const logicalNot = (x: Tensor): Tensor => unary('not', x);
/** GELU, exact (erf) by default or with PyTorch's approximate: 'tanh'. */
export const gelu = (x: Tensor, approximate: 'none' | 'tanh' = 'none'): Tensor => unary(approximate === 'tanh' ? 'geluTanh' : 'gelu', x);

// ---- binary ----

/** Two bool operands stay bool, as in PyTorch: add and maximum are logical or, mul and minimum logical and. */
const BOOL_OP: Partial<Record<BinaryOp, BinaryOp>> = { add: 'or', maximum: 'or', mul: 'and', minimum: 'and' };

function computeType(op: BinaryOp, a: Tensor, b: Tensor): DType {
  if (op === 'and' || op === 'or') return 'bool';
  const t = resultType(a, b);
  return op === 'div' && !isFloat(t) ? 'float32' : t;
}

type Saved = { a?: Tensor; b?: Tensor; y?: Tensor };
type BinaryGrad = { save: readonly (keyof Saved)[]; grad: (g: Tensor, s: Saved, needs: readonly boolean[]) => [Tensor | null, Tensor | null] };

/**
 * PyTorch's maximum/minimum gradient: ties split it evenly; each side loses it only where the other side wins, so a
 * NaN (no winner) sends the whole gradient to both.
 */
function tieSplit(g: Tensor, aWins: Tensor, bWins: Tensor, tie: Tensor): [Tensor, Tensor] {
  const shared = where(tie, mul(g, 0.5), g);
  return [where(bWins, 0, shared), where(aWins, 0, shared)];
}

/** Each arithmetic op's gradient before summing back over broadcast dimensions, and what it saves. */
const BINARY_GRAD: Record<ArithmeticOp, BinaryGrad> = {
  add: { save: [], grad: (g) => [g, g] },
  sub: { save: [], grad: (g, _s, n) => [g, n[1] ? neg(g) : null] },
  mul: { save: ['a', 'b'], grad: (g, { a, b }, n) => [n[0] ? mul(g, b!) : null, n[1] ? mul(g, a!) : null] },
  div: { save: ['b', 'y'], grad: (g, { b, y }, n) => [n[0] ? div(g, b!) : null, n[1] ? neg(div(mul(g, y!), b!)) : null] },
  pow: {
    save: ['a', 'b', 'y'],
    // PyTorch's rules at the edges: no base gradient where the exponent is 0 (x^0 is constant, also at x = 0), and
    // no exponent gradient where the base is 0 and the exponent >= 0 (0^b is 0 or 1 there, not y * log 0 = NaN).
    grad: (g, { a, b, y }, n) => [
      n[0] ? mul(g, where(eq(b!, 0), 0, mul(b!, pow(a!, sub(b!, 1))))) : null,
      n[1] ? mul(g, where(logicalAnd(eq(a!, 0), ge(b!, 0)), 0, mul(y!, log(a!)))) : null,
    ],
  },
  maximum: { save: ['a', 'b'], grad: (g, { a, b }) => tieSplit(g, gt(a!, b!), lt(a!, b!), eq(a!, b!)) },
  minimum: { save: ['a', 'b'], grad: (g, { a, b }) => tieSplit(g, lt(a!, b!), gt(a!, b!), eq(a!, b!)) },
};

export function binary(op: BinaryOp, a: TensorLike, b: TensorLike): Tensor {
  let [ta, tb] = operands(op, a, b);
  // PyTorch: subtracting a bool tensor (or from one) is an error, whatever the other operand.
  if (op === 'sub' && (ta.dtype === 'bool' || tb.dtype === 'bool')) {
    throw new Error('sub: subtraction with a bool tensor is not supported; use logicalNot() to invert a mask, ne() for exclusive or');
  }
  if (ta.dtype === 'bool' && tb.dtype === 'bool') {
    const logical = BOOL_OP[op];
    if (logical) return binary(logical, ta, tb);
    if (op === 'pow') throw new Error('pow: not implemented for two bool tensors');
  }
  const dtype = computeType(op, ta, tb);
  ta = cast(ta, dtype);
  tb = cast(tb, dtype);
  const shape = broadcastShapes(ta.shape, tb.shape, op);
  const out = wrap(ta, ta.backend.binary(op, ta.buffer, ta.shape, tb.buffer, tb.shape, shape), shape);
  if (!(op in BINARY_GRAD)) return out;
  const rule = BINARY_GRAD[op as ArithmeticOp];
  const all: Required<Saved> = { a: ta, b: tb, y: out };
  const aShape = ta.shape, bShape = tb.shape;
  return record(op, out, [ta, tb], rule.save.map((k) => all[k]), (g, saved, needs) => {
    const s: Saved = Object.fromEntries(rule.save.map((k, i) => [k, saved[i]]));
    const [ga, gb] = rule.grad(g, s, needs);
    return [needs[0] && ga ? sumTo(ga, aShape) : null, needs[1] && gb ? sumTo(gb, bShape) : null];
  });
}

export const add = (a: TensorLike, b: TensorLike): Tensor => binary('add', a, b);
export const sub = (a: TensorLike, b: TensorLike): Tensor => binary('sub', a, b);
export const mul = (a: TensorLike, b: TensorLike): Tensor => binary('mul', a, b);
export const div = (a: TensorLike, b: TensorLike): Tensor => binary('div', a, b);
export function pow(a: TensorLike, b: TensorLike): Tensor {
  if (typeof a !== 'number' && typeof b === 'number' && !isFloat(a.dtype) && Number.isInteger(b) && b < 0) {
    throw new Error(`pow: integers to negative integer powers are not allowed (${a.dtype} tensor to the power ${b}); convert with .float()`);
  }
  // PyTorch computes a float tensor to a scalar ±0.5 as sqrt / rsqrt, so (-inf)^0.5 is NaN there, not C pow's inf;
  // its gradient stays b * x^(b - 1) (0 at -inf for b = -0.5, where rsqrt's own would be NaN).
  if (typeof a !== 'number' && isFloat(a.dtype) && (b === 0.5 || b === -0.5)) {
    const y = noGrad(() => (b > 0 ? sqrt(a) : rsqrt(a)));
    return record('pow', y, [a], [a], (g, [x]) => [mul(g, mul(pow(x!, b - 1), b))]);
  }
  return binary('pow', a, b);
}
export const maximum = (a: TensorLike, b: TensorLike): Tensor => binary('maximum', a, b);
export const minimum = (a: TensorLike, b: TensorLike): Tensor => binary('minimum', a, b);
export const compare = (op: CompareOp, a: TensorLike, b: TensorLike): Tensor => binary(op, a, b);
export const eq = (a: TensorLike, b: TensorLike): Tensor => binary('eq', a, b);
export const ne = (a: TensorLike, b: TensorLike): Tensor => binary('ne', a, b);
export const lt = (a: TensorLike, b: TensorLike): Tensor => binary('lt', a, b);
export const le = (a: TensorLike, b: TensorLike): Tensor => binary('le', a, b);
export const gt = (a: TensorLike, b: TensorLike): Tensor => binary('gt', a, b);
export const ge = (a: TensorLike, b: TensorLike): Tensor => binary('ge', a, b);
export const logicalAnd = (a: TensorLike, b: TensorLike): Tensor => binary('and', a, b);
export const logicalOr = (a: TensorLike, b: TensorLike): Tensor => binary('or', a, b);

// ---- where and its composites ----

/** Elementwise cond ? a : b with broadcasting; cond is a bool tensor (uint8 is read as bool, as PyTorch still does). */
export function where(cond: Tensor, a: TensorLike, b: TensorLike): Tensor {
  if (cond.dtype !== 'bool' && cond.dtype !== 'uint8') throw new Error(`where: expected a bool condition, got ${cond.dtype} (compare first, e.g. x.ne(0))`);
  // Two numbers: int32 when both are integers (PyTorch: int64), else float32.
  if (typeof a === 'number' && typeof b === 'number') a = full([], a, { device: cond.device, dtype: Number.isInteger(a) && Number.isInteger(b) ? 'int32' : 'float32' });
  let [ta, tb] = operands('where', a, b);
  checkSameDevice('where', cond, ta);
  const c = cast(cond, 'bool');
  const dtype = resultType(ta, tb);
  ta = cast(ta, dtype);
  tb = cast(tb, dtype);
  const shape = broadcastShapes(broadcastShapes(c.shape, ta.shape, 'where'), tb.shape, 'where');
  const out = wrap(ta, ta.backend.where(c.buffer, c.shape, ta.buffer, ta.shape, tb.buffer, tb.shape, shape), shape);
  const aShape = ta.shape, bShape = tb.shape;
  return record('where', out, [c, ta, tb], [c], (g, [sc], needs) => [
    null,
    needs[1] ? sumTo(where(sc!, g, 0), aShape) : null,
    needs[2] ? sumTo(where(sc!, 0, g), bShape) : null,
  ]);
}

/** x with `value` where mask is true; the result keeps x's dtype (2.5 into an int32 tensor is 2, as in PyTorch). */
export function maskedFill(x: Tensor, mask: Tensor, value: number): Tensor {
  if (isFloat(mask.dtype)) throw new Error(`maskedFill: mask must be a bool tensor, got ${mask.dtype}`);
  checkSameDevice('maskedFill', x, mask);
  return where(cast(mask, 'bool'), full([], value, { dtype: x.dtype, device: x.device }), x);
}

/**
 * Limits values to [min, max] (max wins where min > max, NaN stays NaN); the gradient passes exactly where
 * min <= x <= max, as in PyTorch.
 */
export function clamp(x: Tensor, min?: number, max?: number): Tensor {
  if (min === undefined && max === undefined) throw new Error("clamp: at least one of 'min' and 'max' must be given");
  let y = new Tensor(x.storage.retain(), x.shape); // x without its graph: the gradient is recorded below
  if (min !== undefined) y = where(lt(y, min), min, y);
  if (max !== undefined) y = where(gt(y, max), max, y);
  return record('clamp', y, [x], [x], (g, [sx]) => {
    let pass = min === undefined ? null : ge(sx!, min);
    if (max !== undefined) pass = pass ? logicalAnd(pass, le(sx!, max)) : le(sx!, max);
    return [pass ? where(pass, g, 0) : g];
  });
}

/** x * x; a bool tensor squares to int32 (PyTorch: int64), not to bool. */
export const square = (x: Tensor): Tensor => (x.dtype === 'bool' ? mul(cast(x, 'int32'), cast(x, 'int32')) : mul(x, x));
export const reciprocal = (x: Tensor): Tensor => div(1, x);
