// Reference elementwise kernels (casts live in dtype.ts' castStorage): unary math, activation gradients, broadcast binary ops, where.

import type { ActivationOp, BinaryOp, UnaryOp } from '../../tensor/backend.js';
import { allocArray, type DType, type TypedArray } from '../../tensor/dtype.js';
import { broadcastStrides, sizeOf, type Shape } from '../../tensor/shape.js';
import { erf, gelu, geluGrad, geluTanh, geluTanhGrad, roundHalfEven, sigmoid, silu, siluGrad } from './math.js';

const UNARY: Record<UnaryOp, (x: number) => number> = {
  neg: (x) => -x,
  abs: Math.abs,
  sign: (x) => (x > 0 ? 1 : x < 0 ? -1 : 0), // NaN -> 0 (and so abs' gradient at NaN is 0), as in PyTorch
  exp: Math.exp,
  log: Math.log,
  sqrt: Math.sqrt,
  rsqrt: (x) => 1 / Math.sqrt(x),
  sin: Math.sin,
  cos: Math.cos,
  tanh: Math.tanh,
  sigmoid,
  relu: (x) => (x < 0 ? 0 : x), // NaN and -0 stay, as in PyTorch
  erf,
  gelu,
  geluTanh,
  silu,
  floor: Math.floor,
  ceil: Math.ceil,
  round: roundHalfEven,
  not: (x) => (x === 0 ? 1 : 0),
};

export function unary(op: UnaryOp, x: TypedArray, dtype: DType): TypedArray {
  const f = UNARY[op];
  const out = allocArray(dtype, x.length);
  for (let i = 0; i < x.length; i++) out[i] = f(x[i]);
  return out;
}

const ACTIVATION_GRAD: Record<ActivationOp, (x: number) => number> = {
  relu: (x) => (x <= 0 ? 0 : 1), // NaN passes the gradient, as PyTorch's threshold_backward does
  gelu: geluGrad,
  geluTanh: geluTanhGrad,
  silu: siluGrad,
};

export function activationGrad(op: ActivationOp, x: TypedArray, dy: TypedArray, dtype: DType): TypedArray {
  const f = ACTIVATION_GRAD[op];
  const out = allocArray(dtype, x.length);
  for (let i = 0; i < x.length; i++) out[i] = f(x[i]) * dy[i];
  return out;
}

const BINARY: Record<BinaryOp, (a: number, b: number) => number> = {
  add: (a, b) => a + b,
  sub: (a, b) => a - b,
  mul: (a, b) => a * b,
  div: (a, b) => a / b,
  pow: Math.pow,
  // NaN propagates, as in PyTorch.
  maximum: (a, b) => (a !== a || b !== b ? NaN : a > b ? a : b),
  minimum: (a, b) => (a !== a || b !== b ? NaN : a < b ? a : b),
  eq: (a, b) => +(a === b),
  ne: (a, b) => +(a !== b),
  lt: (a, b) => +(a < b),
  le: (a, b) => +(a <= b),
  gt: (a, b) => +(a > b),
  ge: (a, b) => +(a >= b),
  and: (a, b) => +(a !== 0 && b !== 0),
  or: (a, b) => +(a !== 0 || b !== 0),
};

/**
 * Calls fn(outIndex, index into each input) for every element of outShape, reading inputs of the
 * given shapes with broadcasting.
 */
function forEachBroadcast(outShape: Shape, inShapes: readonly Shape[], fn: (i: number, idx: Int32Array) => void): void {
  const n = sizeOf(outShape);
  const nd = outShape.length;
  const strides = inShapes.map((s) => broadcastStrides(s, outShape));
  const idx = new Int32Array(inShapes.length);
  const counter = new Int32Array(nd);
  for (let i = 0; i < n; i++) {
    fn(i, idx);
    // Odometer step: advance the last dimension, carrying into earlier ones.
    for (let d = nd - 1; d >= 0; d--) {
      counter[d]++;
      for (let k = 0; k < idx.length; k++) idx[k] += strides[k][d];
      if (counter[d] < outShape[d]) break;
      for (let k = 0; k < idx.length; k++) idx[k] -= strides[k][d] * outShape[d];
      counter[d] = 0;
    }
  }
}

/**
 * a ** b in wrapping int32 arithmetic (PyTorch's integer pow); a negative exponent truncates 1 / a^|b| toward 0.
 */
function powInt(a: number, b: number): number {
  if (b < 0) return a === 1 ? 1 : a === -1 ? (b % 2 !== 0 ? -1 : 1) : 0;
  let r = 1, base = a | 0;
  for (let e = b; e > 0; e = Math.floor(e / 2)) {
    if (e % 2 === 1) r = Math.imul(r, base);
    base = Math.imul(base, base);
  }
  return r;
}

/** Integer products wrap like int32 (a double product above 2^53 would lose the low bits). */
const INT_BINARY: Partial<Record<BinaryOp, (a: number, b: number) => number>> = { mul: Math.imul, pow: powInt };

export function binary(op: BinaryOp, a: TypedArray, aShape: Shape, b: TypedArray, bShape: Shape, outShape: Shape, outDtype: DType): TypedArray {
  const f = (outDtype === 'int32' || outDtype === 'uint8' ? INT_BINARY[op] : undefined) ?? BINARY[op];
  const out = allocArray(outDtype, sizeOf(outShape));
  if (a.length === out.length && b.length === out.length) {
    for (let i = 0; i < out.length; i++) out[i] = f(a[i], b[i]);
  } else if (b.length === 1 && a.length === out.length) {
    const bv = b[0];
    for (let i = 0; i < out.length; i++) out[i] = f(a[i], bv);
  } else {
    forEachBroadcast(outShape, [aShape, bShape], (i, idx) => { out[i] = f(a[idx[0]], b[idx[1]]); });
  }
  return out;
}

export function where(c: TypedArray, cShape: Shape, a: TypedArray, aShape: Shape, b: TypedArray, bShape: Shape, outShape: Shape, dtype: DType): TypedArray {
  const out = allocArray(dtype, sizeOf(outShape));
  forEachBroadcast(outShape, [cShape, aShape, bShape], (i, idx) => { out[i] = c[idx[0]] ? a[idx[1]] : b[idx[2]]; });
  return out;
}
