// Elementwise kernels: cast, unary math, activation gradients, broadcast binary ops and where.
// Float32 runs in SIMD; int32 / uint8 / bool follow the reference's number semantics in scalar code.
// Whole-buffer loops may finish with one full vector past the end: every buffer is a block of the
// allocator rounded up to 64 bytes, so that vector stays inside its own block.

import {
  ARG, BOOL, erf4, erf64, exp4, F32, fma4, G_2K, G_6KC, G_INV_SQRT_2PI, G_N2K, G_N2KC, G_SQRT1_2, I32, ldf, ldi, pi, pu, sigmoid4, sigmoid64, stf, sti, tanh4, toI32, U8,
  V_FLT_MAX, V_HALF, V_NEG_HALF, V_NEG_ONE, V_ONE,
} from './common';

/** Elements per tile of the flat elementwise kernels (a multiple of 16, so tiles never share a vector). */
export const CHUNK: i32 = 16384;

// ---- cast ----

export function castTile(p: usize, t: i32): void {
  const x = pu(p, ARG), out = pu(p, ARG + 1), n = pi(p, ARG + 2), from = pi(p, ARG + 3), to = pi(p, ARG + 4);
  const s = t * CHUNK, e = min(n, s + CHUNK);
  if (from == F32 && to == F32) {
    memory.copy(out + (<usize>s << 2), x + (<usize>s << 2), <usize>(e - s) << 2);
  } else if (to == BOOL) {
    for (let i = s; i < e; i++) store<u8>(out + <usize>i, from == F32 ? <u8>(load<f32>(x + (<usize>i << 2)) != 0) : <u8>(ldi(x, <usize>i, from) != 0));
  } else if (from == F32) {
    for (let i = s; i < e; i++) sti(out, <usize>i, to, toI32(<f64>load<f32>(x + (<usize>i << 2))));
  } else if (to == F32) {
    for (let i = s; i < e; i++) store<f32>(out + (<usize>i << 2), <f32>ldi(x, <usize>i, from));
  } else {
    for (let i = s; i < e; i++) sti(out, <usize>i, to, ldi(x, <usize>i, from));
  }
}

// ---- unary ----

// Op codes, in the order of UnaryOp in src/tensor/backend.ts.
const NEG = 0, ABS = 1, SIGN = 2, EXP = 3, LOG = 4, SQRT = 5, RSQRT = 6, SIN = 7, COS = 8, TANH = 9, SIGMOID = 10;
const RELU = 11, ERF = 12, GELU = 13, GELU_TANH = 14, SILU = 15, FLOOR = 16, CEIL = 17, ROUND = 18, NOT = 19;

@inline function unary4(op: i32, x: v128): v128 {
  const one = V_ONE, zero = f32x4.splat(0);
  switch (op) {
    case NEG: return f32x4.neg(x);
    case ABS: return f32x4.abs(x);
    case SIGN: return v128.bitselect(V_NEG_ONE, v128.and(one, f32x4.gt(x, zero)), f32x4.lt(x, zero)); // NaN -> 0, as in PyTorch
    case EXP: return exp4(x);
    case SQRT: return f32x4.sqrt(x);
    case RSQRT: return f32x4.div(one, f32x4.sqrt(x));
    case TANH: return tanh4(x);
    case SIGMOID: return sigmoid4(x);
    case RELU: return v128.andnot(x, f32x4.lt(x, zero)); // NaN and -0 stay, as in PyTorch
    case ERF: return erf4(x);
    case GELU: return f32x4.mul(f32x4.mul(x, V_HALF), f32x4.add(one, erf4(f32x4.mul(x, G_SQRT1_2))));
    case GELU_TANH: {
      // 0.5 x (1 + tanh u) = x sigmoid(2u) = x / (1 + exp(-2u)): one exp and one division, about half the
      // work of the tanh form, and no cancellation in 1 + tanh u for large negative x.
      const e = exp4(f32x4.mul(x, fma4(f32x4.mul(x, x), G_N2KC, G_N2K)));
      return f32x4.div(x, f32x4.add(one, e));
    }
    case SILU: return f32x4.mul(x, sigmoid4(x));
    case FLOOR: return f32x4.floor(x);
    case CEIL: return f32x4.ceil(x);
    case ROUND: return f32x4.nearest(x);
    case NOT: return v128.and(one, f32x4.eq(x, zero));
    default: {
      // log, sin, cos: lane by lane through the f64 library.
      let r = x;
      r = f32x4.replace_lane(r, 0, <f32>unary64(op, <f64>f32x4.extract_lane(x, 0)));
      r = f32x4.replace_lane(r, 1, <f32>unary64(op, <f64>f32x4.extract_lane(x, 1)));
      r = f32x4.replace_lane(r, 2, <f32>unary64(op, <f64>f32x4.extract_lane(x, 2)));
      return f32x4.replace_lane(r, 3, <f32>unary64(op, <f64>f32x4.extract_lane(x, 3)));
    }
  }
}

/** The reference's formula in f64 (integer dtypes and the transcendental functions without a vector form). */
function unary64(op: i32, x: f64): f64 {
  switch (op) {
    case NEG: return -x;
    case ABS: return abs(x);
    case SIGN: return x > 0 ? 1 : x < 0 ? -1 : 0;
    case EXP: return Math.exp(x);
    case LOG: return Math.log(x);
    case SQRT: return Math.sqrt(x);
    case RSQRT: return 1 / Math.sqrt(x);
    case SIN: return Math.sin(x);
    case COS: return Math.cos(x);
    case TANH: return Math.tanh(x);
    case SIGMOID: return sigmoid64(x);
    case RELU: return x < 0 ? 0 : x;
    case ERF: return erf64(x);
    case GELU: return 0.5 * x * (1 + erf64(x * 0.7071067811865476));
    case GELU_TANH: return 0.5 * x * (1 + Math.tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
    case SILU: return x * sigmoid64(x);
    case FLOOR: return Math.floor(x);
    case CEIL: return Math.ceil(x);
    case ROUND: return nearest(x);
    default: return x == 0 ? 1 : 0; // not
  }
}

export function unaryTile(p: usize, t: i32): void {
  const op = pi(p, ARG), x = pu(p, ARG + 1), out = pu(p, ARG + 2), n = pi(p, ARG + 3), dt = pi(p, ARG + 4);
  const s = t * CHUNK, e = min(n, s + CHUNK);
  if (dt == F32) {
    // One loop per op: a switch inside the loop keeps V8 from keeping the math in registers.
    switch (op) {
      case NEG: for (let i = s; i < e; i += 4) v128.store(out + (<usize>i << 2), unary4(NEG, v128.load(x + (<usize>i << 2)))); break;
      case ABS: for (let i = s; i < e; i += 4) v128.store(out + (<usize>i << 2), unary4(ABS, v128.load(x + (<usize>i << 2)))); break;
      case EXP: for (let i = s; i < e; i += 4) v128.store(out + (<usize>i << 2), unary4(EXP, v128.load(x + (<usize>i << 2)))); break;
      case TANH: for (let i = s; i < e; i += 4) v128.store(out + (<usize>i << 2), unary4(TANH, v128.load(x + (<usize>i << 2)))); break;
      case SIGMOID: for (let i = s; i < e; i += 4) v128.store(out + (<usize>i << 2), unary4(SIGMOID, v128.load(x + (<usize>i << 2)))); break;
      case RELU: for (let i = s; i < e; i += 4) v128.store(out + (<usize>i << 2), unary4(RELU, v128.load(x + (<usize>i << 2)))); break;
      case GELU: for (let i = s; i < e; i += 4) v128.store(out + (<usize>i << 2), unary4(GELU, v128.load(x + (<usize>i << 2)))); break;
      case GELU_TANH: for (let i = s; i < e; i += 4) v128.store(out + (<usize>i << 2), unary4(GELU_TANH, v128.load(x + (<usize>i << 2)))); break;
      case SILU: for (let i = s; i < e; i += 4) v128.store(out + (<usize>i << 2), unary4(SILU, v128.load(x + (<usize>i << 2)))); break;
      default: for (let i = s; i < e; i += 4) v128.store(out + (<usize>i << 2), unary4(op, v128.load(x + (<usize>i << 2))));
    }
  } else {
    for (let i = s; i < e; i++) stf(out, <usize>i, dt, unary64(op, <f64>ldi(x, <usize>i, dt)));
  }
}

// ---- activation gradients: dx = f'(x) * dy ----

const A_RELU = 0, A_GELU = 1, A_GELU_TANH = 2, A_SILU = 3;

@inline function actGrad4(op: i32, x: v128): v128 {
  const one = V_ONE;
  switch (op) {
    case A_RELU: return v128.andnot(one, f32x4.le(x, f32x4.splat(0))); // NaN passes the gradient (PyTorch)
    case A_GELU: {
      const cdf = f32x4.mul(V_HALF, f32x4.add(one, erf4(f32x4.mul(x, G_SQRT1_2))));
      const pdf = f32x4.mul(G_INV_SQRT_2PI, exp4(f32x4.mul(f32x4.mul(x, x), V_NEG_HALF)));
      return fma4(x, pdf, cdf);
    }
    case A_GELU_TANH: {
      // With s = sigmoid(w), w = 2u (see the forward): d/dx [x s] = s + x s (1 - s) dw/dx, and 1 - s = e s
      // for e = exp(-w), so s (1 - s) = s^2 e, accurate where s is near 1 (s - s^2 would cancel). e is capped
      // at the largest float so that s^2 e is 0, not inf * 0, where exp overflows (x below about -4.9).
      const x2 = f32x4.mul(x, x);
      const e = f32x4.min(exp4(f32x4.mul(x, fma4(x2, G_N2KC, G_N2K))), V_FLT_MAX);
      const s = f32x4.div(one, f32x4.add(one, e));
      const ds = f32x4.mul(f32x4.mul(s, s), e);
      return fma4(f32x4.mul(x, ds), fma4(x2, G_6KC, G_2K), s);
    }
    default: {
      const s = sigmoid4(x);
      return f32x4.mul(s, fma4(x, f32x4.sub(one, s), one));
    }
  }
}

function actGrad64(op: i32, x: f64): f64 {
  switch (op) {
    case A_RELU: return x <= 0 ? 0 : 1;
    case A_GELU: return 0.5 * (1 + erf64(x * 0.7071067811865476)) + x * 0.3989422804014327 * Math.exp(-0.5 * x * x);
    case A_GELU_TANH: {
      const th = Math.tanh(0.7978845608028654 * (x + 0.044715 * x * x * x));
      return 0.5 * (1 + th) + 0.5 * x * (1 - th * th) * 0.7978845608028654 * (1 + 3 * 0.044715 * x * x);
    }
    default: {
      const s = sigmoid64(x);
      return s * (1 + x * (1 - s));
    }
  }
}

@inline function actGradStep(op: i32, x: usize, dy: usize, out: usize, i: i32): void {
  const o = <usize>i << 2;
  v128.store(out + o, f32x4.mul(actGrad4(op, v128.load(x + o)), v128.load(dy + o)));
}

export function actGradTile(p: usize, t: i32): void {
  const op = pi(p, ARG), x = pu(p, ARG + 1), dy = pu(p, ARG + 2), out = pu(p, ARG + 3), n = pi(p, ARG + 4), dt = pi(p, ARG + 5);
  const s = t * CHUNK, e = min(n, s + CHUNK);
  if (dt == F32) {
    switch (op) {
      case A_RELU: for (let i = s; i < e; i += 4) actGradStep(A_RELU, x, dy, out, i); break;
      case A_GELU: for (let i = s; i < e; i += 4) actGradStep(A_GELU, x, dy, out, i); break;
      case A_GELU_TANH: for (let i = s; i < e; i += 4) actGradStep(A_GELU_TANH, x, dy, out, i); break;
      default: for (let i = s; i < e; i += 4) actGradStep(A_SILU, x, dy, out, i);
    }
  } else {
    for (let i = s; i < e; i++) stf(out, <usize>i, dt, actGrad64(op, ldf(x, <usize>i, dt)) * ldf(dy, <usize>i, dt));
  }
}

// ---- binary ops with broadcasting ----
// The TypeScript side coalesces the broadcast to at most 8 dims; the last one is walked here, innermost.
// Slots: op, dtype, a, b, out, ndim, n, shape[8], aStrides[8], bStrides[8].

const ADD = 0, SUB = 1, MUL = 2, DIV = 3, POW = 4, MAXIMUM = 5, MINIMUM = 6;
const EQ = 7, NE = 8, LT = 9, LE = 10, GT = 11, GE = 12, AND = 13, OR = 14;
export const MAXDIM: i32 = 8;

@inline function arith4(op: i32, a: v128, b: v128): v128 {
  switch (op) {
    case ADD: return f32x4.add(a, b);
    case SUB: return f32x4.sub(a, b);
    case MUL: return f32x4.mul(a, b);
    case DIV: return f32x4.div(a, b);
    case MAXIMUM: return f32x4.max(a, b);
    default: return f32x4.min(a, b);
  }
}

function binary64(op: i32, a: f64, b: f64): f64 {
  switch (op) {
    case ADD: return a + b;
    case SUB: return a - b;
    case MUL: return a * b;
    case DIV: return a / b;
    case POW: return Math.pow(a, b);
    case MAXIMUM: return a != a || b != b ? NaN : a > b ? a : b;
    case MINIMUM: return a != a || b != b ? NaN : a < b ? a : b;
    case EQ: return <f64>(a == b);
    case NE: return <f64>(a != b);
    case LT: return <f64>(a < b);
    case LE: return <f64>(a <= b);
    case GT: return <f64>(a > b);
    case GE: return <f64>(a >= b);
    case AND: return <f64>(a != 0 && b != 0);
    default: return <f64>(a != 0 || b != 0);
  }
}

/**
 * a ** b in wrapping integer arithmetic (as PyTorch does). It equals the reference's Math.pow result
 * wherever that is exact (|result| < 2^53); a negative exponent truncates 1 / a^|b| toward zero.
 */
function powInt(a: i32, b: i32): i32 {
  if (b < 0) return a == 1 ? 1 : a == -1 ? ((b & 1) != 0 ? -1 : 1) : 0;
  let r: i32 = 1, base = a, e = b;
  while (e != 0) {
    if ((e & 1) != 0) r *= base;
    base *= base;
    e >>>= 1;
  }
  return r;
}

/** Integer ops in wrapping i32 arithmetic; div goes through f64 like the reference (truncation, x / 0 = 0). */
@inline function binaryInt(op: i32, a: i32, b: i32): i32 {
  switch (op) {
    case ADD: return a + b;
    case SUB: return a - b;
    case MUL: return a * b;
    case DIV: return toI32(<f64>a / <f64>b);
    case POW: return powInt(a, b);
    case MAXIMUM: return a > b ? a : b;
    case MINIMUM: return a < b ? a : b;
    case EQ: return <i32>(a == b);
    case NE: return <i32>(a != b);
    case LT: return <i32>(a < b);
    case LE: return <i32>(a <= b);
    case GT: return <i32>(a > b);
    case GE: return <i32>(a >= b);
    case AND: return <i32>(a != 0 && b != 0);
    default: return <i32>(a != 0 || b != 0);
  }
}

/** One contiguous run of `len` outputs from a (stride sa) and b (stride sb), in elements. */
function binaryRun(op: i32, dt: i32, a: usize, sa: i32, b: usize, sb: i32, out: usize, len: i32): void {
  if (dt == F32 && op <= MINIMUM && op != POW) {
    let i = 0;
    if (sa == 1 && sb == 1) {
      for (; i + 4 <= len; i += 4) { const o = <usize>i << 2; v128.store(out + o, arith4(op, v128.load(a + o), v128.load(b + o))); }
    } else if (sa == 1 && sb == 0) {
      const bv = v128.load32_splat(b);
      for (; i + 4 <= len; i += 4) { const o = <usize>i << 2; v128.store(out + o, arith4(op, v128.load(a + o), bv)); }
    } else if (sa == 0 && sb == 1) {
      const av = v128.load32_splat(a);
      for (; i + 4 <= len; i += 4) { const o = <usize>i << 2; v128.store(out + o, arith4(op, av, v128.load(b + o))); }
    }
    for (; i < len; i++) {
      const r = binary64(op, <f64>load<f32>(a + (<usize>(i * sa) << 2)), <f64>load<f32>(b + (<usize>(i * sb) << 2)));
      store<f32>(out + (<usize>i << 2), <f32>r);
    }
  } else if (dt == F32) {
    const logic = op >= EQ;
    for (let i = 0; i < len; i++) {
      const r = binary64(op, <f64>load<f32>(a + (<usize>(i * sa) << 2)), <f64>load<f32>(b + (<usize>(i * sb) << 2)));
      if (logic) store<u8>(out + <usize>i, <u8>r);
      else store<f32>(out + (<usize>i << 2), <f32>r);
    }
  } else {
    const od = op >= EQ ? U8 : dt;
    for (let i = 0; i < len; i++) sti(out, <usize>i, od, binaryInt(op, ldi(a, <usize>(i * sa), dt), ldi(b, <usize>(i * sb), dt)));
  }
}

export function binaryTile(p: usize, t: i32): void {
  const op = pi(p, ARG), dt = pi(p, ARG + 1), a = pu(p, ARG + 2), b = pu(p, ARG + 3), out = pu(p, ARG + 4);
  const nd = pi(p, ARG + 5), n = pi(p, ARG + 6);
  const SH = ARG + 7, SA = SH + MAXDIM, SB = SA + MAXDIM;
  const inner = pi(p, SH + nd - 1), sa = pi(p, SA + nd - 1), sb = pi(p, SB + nd - 1);
  const ea = <usize>(dt == F32 || dt == I32 ? 2 : 0), eo = <usize>(op >= EQ ? 0 : ea);
  let i = t * CHUNK;
  const e = min(n, i + CHUNK);
  while (i < e) {
    let row = i / inner, col = i % inner;
    // Offsets of this row in a and b: mixed-radix digits of the row index over the outer dims.
    let offA = col * sa, offB = col * sb;
    for (let d = nd - 2; d >= 0; d--) {
      const s = pi(p, SH + d), q = row % s;
      row /= s;
      offA += q * pi(p, SA + d);
      offB += q * pi(p, SB + d);
    }
    const len = min(inner - col, e - i);
    binaryRun(op, dt, a + (<usize>offA << ea), sa, b + (<usize>offB << ea), sb, out + (<usize>i << eo), len);
    i += len;
  }
}

// ---- where: out = cond ? a : b with broadcasting; element size 1 or 4 bytes ----
// Slots: esize, cond, a, b, out, ndim, n, shape[8], condStrides[8], aStrides[8], bStrides[8].

export function whereTile(p: usize, t: i32): void {
  const es = pi(p, ARG), c = pu(p, ARG + 1), a = pu(p, ARG + 2), b = pu(p, ARG + 3), out = pu(p, ARG + 4);
  const nd = pi(p, ARG + 5), n = pi(p, ARG + 6);
  const SH = ARG + 7, SC = SH + MAXDIM, SA = SC + MAXDIM, SB = SA + MAXDIM;
  const inner = pi(p, SH + nd - 1), sc = pi(p, SC + nd - 1), sa = pi(p, SA + nd - 1), sb = pi(p, SB + nd - 1);
  let i = t * CHUNK;
  const e = min(n, i + CHUNK);
  while (i < e) {
    let row = i / inner, col = i % inner;
    let offC = col * sc, offA = col * sa, offB = col * sb;
    for (let d = nd - 2; d >= 0; d--) {
      const s = pi(p, SH + d), q = row % s;
      row /= s;
      offC += q * pi(p, SC + d);
      offA += q * pi(p, SA + d);
      offB += q * pi(p, SB + d);
    }
    const len = min(inner - col, e - i);
    let j = 0;
    if (es == 4 && sc == 1 && sa <= 1 && sb <= 1) {
      // Four conditions widened u8 -> i32 into a lane mask; a and b contiguous or broadcast.
      const pa = a + (<usize>offA << 2), pb = b + (<usize>offB << 2), po = out + (<usize>i << 2), pc = c + <usize>offC;
      const a0 = v128.load32_splat(pa), b0 = v128.load32_splat(pb);
      for (; j + 4 <= len; j += 4) {
        const m = i32x4.ne(i32x4.extend_low_i16x8_u(i16x8.extend_low_i8x16_u(v128.load32_zero(pc + <usize>j))), i32x4.splat(0));
        const av = sa == 1 ? v128.load(pa + (<usize>j << 2)) : a0, bv = sb == 1 ? v128.load(pb + (<usize>j << 2)) : b0;
        v128.store(po + (<usize>j << 2), v128.bitselect(av, bv, m));
      }
    }
    for (; j < len; j++) {
      const pick = load<u8>(c + <usize>(offC + j * sc)) != 0;
      const src = pick ? offA + j * sa : offB + j * sb;
      if (es == 4) store<i32>(out + (<usize>(i + j) << 2), load<i32>((pick ? a : b) + (<usize>src << 2)));
      else store<u8>(out + <usize>(i + j), load<u8>((pick ? a : b) + <usize>src));
    }
    i += len;
  }
}
