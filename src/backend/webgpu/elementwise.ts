// WGSL elementwise kernels: fill, cast, unary, activation gradients, broadcasting binary ops and where.
//
// Results follow the cpu reference (src/backend/cpu/elementwise.ts and dtype.ts): NaN tests, casts and half
// rounding work on the bits (integer arithmetic), since GPU compilers may assume floats are never NaN.

import type { ActivationOp, BinaryOp, UnaryOp } from '../../tensor/backend.js';
import { toStorage, type DType } from '../../tensor/dtype.js';
import { broadcastStrides, sizeOf, type Shape } from '../../tensor/shape.js';
import type { GpuBuffer, GpuContext } from './context.js';
import { collapseDims, indexer, main1d } from './movement.js';

/** WGSL of NaN / infinity tests on the bits, and the special values built at run time (constants may not be NaN). */
const FLOAT_BITS = /* wgsl */ `
fn is_nan(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u; }
fn is_inf(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) == 0x7f800000u; }
fn nonzero(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) != 0u; }
fn nan_f() -> f32 { let u = 0x7fc00000u; return bitcast<f32>(u); }
fn inf_f() -> f32 { let u = 0x7f800000u; return bitcast<f32>(u); }
// m (>= 0) with the sign bit set where neg: signs on the bits, as float selects may lose the sign of zero.
fn signed(m: f32, neg: bool) -> f32 { return bitcast<f32>(bitcast<u32>(m) | select(0u, 0x80000000u, neg)); }
fn pick(f: f32, t: f32, c: bool) -> f32 { return bitcast<f32>(select(bitcast<u32>(f), bitcast<u32>(t), c)); }
`;

/** float16 / bfloat16 bits <-> float32 bits, exactly as dtype.ts (round to nearest even, NaN payloads kept). */
const HALF_BITS = /* wgsl */ `
fn f16_to_f32(h: u32) -> u32 {
  let sign = (h & 0x8000u) << 16u;
  let e = (h >> 10u) & 0x1fu;
  var frac = h & 0x3ffu;
  if (e == 0x1fu) { return sign | 0x7f800000u | (frac << 13u); }
  if (e == 0u) {
    if (frac == 0u) { return sign; }
    var ex = 113u;
    loop {
      if ((frac & 0x400u) != 0u) { break; }
      frac = frac << 1u;
      ex = ex - 1u;
    }
    return sign | (ex << 23u) | ((frac & 0x3ffu) << 13u);
  }
  return sign | ((e + 112u) << 23u) | (frac << 13u);
}
fn f32_to_f16(bits: u32) -> u32 {
  let sign = (bits >> 16u) & 0x8000u;
  let ex = (bits >> 23u) & 0xffu;
  var frac = bits & 0x7fffffu;
  if (ex == 0xffu) {
    if (frac != 0u) { return sign | 0x7c00u | select(frac >> 13u, 0x200u, (frac >> 13u) == 0u); }
    return sign | 0x7c00u;
  }
  var e = i32(ex) - 112;
  if (e >= 31) { return sign | 0x7c00u; }
  if (e <= 0) {
    if (e < -10) { return sign; }
    frac = frac | 0x800000u;
    let shift = u32(14 - e);
    let half = 1u << (shift - 1u);
    var m = frac >> shift;
    let rest = frac & ((1u << shift) - 1u);
    if (rest > half || (rest == half && (m & 1u) != 0u)) { m = m + 1u; }
    return sign | m;
  }
  var m = frac >> 13u;
  let rest = frac & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (m & 1u) != 0u)) {
    m = m + 1u;
    if (m == 0x400u) {
      m = 0u;
      e = e + 1;
      if (e >= 31) { return sign | 0x7c00u; }
    }
  }
  return sign | (u32(e) << 10u) | m;
}
fn f32_to_bf16(bits: u32) -> u32 {
  if ((bits & 0x7f800000u) == 0x7f800000u && (bits & 0x7fffffu) != 0u) {
    let hi = bits >> 16u;
    return select(hi | 0x40u, hi, (hi & 0x7fu) != 0u);
  }
  return ((bits + 0x7fffu + ((bits >> 16u) & 1u)) >> 16u) & 0xffffu;
}
`;

/** int32 <-> float32 bits as JavaScript's typed arrays convert: nearest even one way, truncation modulo 2^32 the other. */
const INT_BITS = /* wgsl */ `
fn i32_to_f32(v: i32) -> u32 {
  if (v == 0) { return 0u; }
  let sign = select(0u, 0x80000000u, v < 0);
  let m = select(bitcast<u32>(v), 0u - bitcast<u32>(v), v < 0);
  let top = 31u - countLeadingZeros(m);
  if (top <= 23u) { return sign | ((top + 127u) << 23u) | ((m << (23u - top)) & 0x7fffffu); }
  let sh = top - 23u;
  var q = m >> sh;
  let rest = m & ((1u << sh) - 1u);
  let half = 1u << (sh - 1u);
  if (rest > half || (rest == half && (q & 1u) != 0u)) { q = q + 1u; }
  return sign | (((top + 127u) << 23u) + (q - 0x800000u));
}
fn f32_to_i32(bits: u32) -> i32 {
  let ex = i32((bits >> 23u) & 0xffu) - 127;
  if (ex < 0 || ex == 128) { return 0; }
  let m = (bits & 0x7fffffu) | 0x800000u;
  var v = 0u;
  if (ex <= 23) { v = m >> u32(23 - ex); } else if (ex < 55) { v = m << u32(ex - 23); }
  return bitcast<i32>(select(v, 0u - v, (bits & 0x80000000u) != 0u));
}
`;

/** Float math the reference computes in float64, written for float32 accuracy (a few ulp) rather than with GPU builtins. */
const MATH = /* wgsl */ `
const TWO_OVER_SQRT_PI: f32 = 1.1283791670955126;
const SQRT1_2: f32 = 0.7071067811865476;
const INV_SQRT_2PI: f32 = 0.3989422804014327;
const K_TANH: f32 = 0.7978845608028654;
const C_TANH: f32 = 0.044715;
// 2^n for -126 <= n <= 127 from its bits, and x 2^n for -252 <= n <= 254 as two exact factors.
fn pow2i(n: i32) -> f32 { return bitcast<f32>(u32(n + 127) << 23u); }
fn scale2(x: f32, n: i32) -> f32 {
  let h = n / 2;
  return x * pow2i(h) * pow2i(n - h);
}
// exp to ~2 ulp: x = n ln2 + r (Cody-Waite, |r| <= ln2 / 2), e^r by its Taylor polynomial; builtins lose bits near 88.
fn exp_f(x: f32) -> f32 {
  if (is_nan(x)) { return x; }
  if (x > 88.72284) { return inf_f(); }
  if (x < -103.98) { return 0.0; }
  let n = round(x * 1.4426950408889634);
  let r = (x - n * 0.693145751953125) - n * 1.428606765330187e-6;
  let p = 1.0 + r * (1.0 + r * (0.5 + r * (0.16666666666666666 + r * (0.041666666666666664 + r * (0.008333333333333333
    + r * (0.001388888888888889 + r * 0.0001984126984126984))))));
  return scale2(p, i32(n));
}
// Taylor series of erf for |x| < 1 (terms below 1e-9 after 13).
fn erf_series(x: f32) -> f32 {
  let x2 = x * x;
  var term = x;
  var sum = x;
  for (var n = 1; n < 14; n++) {
    term = term * -x2 / f32(n);
    sum = sum + term / f32(2 * n + 1);
  }
  return TWO_OVER_SQRT_PI * sum;
}
// erfc for z >= 1 (Numerical Recipes' erfcc: relative error below 1.2e-7).
fn erfc_pos(z: f32) -> f32 {
  let t = 1.0 / (1.0 + 0.5 * z);
  let p = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807
    + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
  return t * exp_f(-z * z + p);
}
fn erf_f(x: f32) -> f32 {
  let a = abs(x);
  if (a < 1.0) { return erf_series(x); }
  if (a > 6.0) { return signed(1.0, x < 0.0); }
  return signed(1.0 - erfc_pos(a), x < 0.0);
}
fn erfc_f(x: f32) -> f32 {
  let a = abs(x);
  if (a < 1.0) { return 1.0 - erf_series(x); }
  let c = erfc_pos(a);
  return select(c, 2.0 - c, x < 0.0);
}
// tanh: a series near 0 (where 1 - e^-2x cancels), the exponential form elsewhere, +-1 beyond 10.
fn tanh_f(x: f32) -> f32 {
  let a = abs(x);
  var t: f32;
  if (a < 0.3) {
    let x2 = a * a;
    t = a * (1.0 + x2 * (-0.3333333333 + x2 * (0.1333333333 + x2 * (-0.0539682540 + x2 * (0.0218694885
      + x2 * (-0.0088632355 + x2 * 0.0035921280))))));
  } else if (a < 10.0) {
    let e = exp_f(-2.0 * a);
    t = (1.0 - e) / (1.0 + e);
  } else if (is_nan(x)) {
    return x;
  } else {
    t = 1.0;
  }
  return signed(t, (bitcast<u32>(x) & 0x80000000u) != 0u);
}
fn sigmoid_f(x: f32) -> f32 {
  if (x >= 0.0) { return 1.0 / (1.0 + exp_f(-x)); }
  let e = exp_f(x);
  return e / (1.0 + e);
}
// gelu through erfc, so that the far negative side keeps its relative accuracy.
fn gelu_f(x: f32) -> f32 { return 0.5 * x * erfc_f(-x * SQRT1_2); }
fn gelu_grad(x: f32) -> f32 { return 0.5 * erfc_f(-x * SQRT1_2) + x * INV_SQRT_2PI * exp_f(-0.5 * x * x); }
// gelu (tanh): 0.5 (1 + tanh u) = sigmoid(2u) and 1 - tanh^2 u = 4 sigmoid(2u) sigmoid(-2u), free of cancellation.
fn gelu_tanh_f(x: f32) -> f32 { return x * sigmoid_f(2.0 * K_TANH * (x + C_TANH * x * x * x)); }
fn gelu_tanh_grad(x: f32) -> f32 {
  let u2 = 2.0 * K_TANH * (x + C_TANH * x * x * x);
  let s = sigmoid_f(u2);
  return s + 2.0 * x * s * sigmoid_f(-u2) * K_TANH * (1.0 + 3.0 * C_TANH * x * x);
}
fn silu_f(x: f32) -> f32 { return x * sigmoid_f(x); }
fn silu_grad(x: f32) -> f32 {
  let s = sigmoid_f(x);
  return s * (1.0 + x * (1.0 - s));
}
// sin / cos to ~1 ulp at any argument: drivers' builtins may skip range reduction (lavapipe: cos(3e9) = 1).
// The bits of 2/pi: floor(2^256 2/pi), computed with integers (pi by Machin's formula to 420 bits).
const TWO_OVER_PI_BITS = array<u32, 8>(0xa2f9836eu, 0x4e441529u, 0xfc2757d1u, 0xf534ddc0u, 0xdb629599u, 0x3c439041u,
  0xfe5163abu, 0xdebbc561u);
// The 64-bit product a b as (low word, high word), from 16-bit halves.
fn mul32(a: u32, b: u32) -> vec2<u32> {
  let al = a & 0xffffu;
  let ah = a >> 16u;
  let bl = b & 0xffffu;
  let bh = b >> 16u;
  let ll = al * bl;
  let hl = ah * bl;
  let mid = al * bh + (ll >> 16u) + (hl & 0xffffu);
  return vec2<u32>((mid << 16u) | (ll & 0xffffu), ah * bh + (hl >> 16u) + (mid >> 16u));
}
// The 32 bits of the 160-bit number w starting at bit p (p <= 96).
fn bits32(w: ptr<function, array<u32, 5>>, p: u32) -> u32 {
  let k = p / 32u;
  let o = p % 32u;
  return select(((*w)[k] >> o) | ((*w)[k + 1u] << (32u - o)), (*w)[k], o == 0u);
}
// Payne-Hanek: x = m 2^e (m the 24-bit mantissa, x >= pi/4) times the 96 bits of 2/pi from bit k0 = max(1, e - 1)
// (earlier bits add multiples of 4) is exact to 2^-71; the quadrant is at bit s = k0 + 95 - e, the fraction below.
// Returns (r, q mod 4) with x = q pi/2 + r, |r| <= pi/4, r to ~0.5 ulp however close x is to a multiple of pi/2.
fn trig_reduce_big(x: f32) -> vec2<f32> {
  let b = bitcast<u32>(x);
  let m = (b & 0x7fffffu) | 0x800000u;
  let e = i32(b >> 23u) - 150;
  let k0 = max(1, e - 1);
  let j = u32(k0 - 1) / 32u;
  let sh = u32(k0 - 1) % 32u;
  var t = TWO_OVER_PI_BITS;
  let w0 = select((t[j] << sh) | (t[j + 1u] >> (32u - sh)), t[j], sh == 0u);
  let w1 = select((t[j + 1u] << sh) | (t[j + 2u] >> (32u - sh)), t[j + 1u], sh == 0u);
  let w2 = select((t[j + 2u] << sh) | (t[j + 3u] >> (32u - sh)), t[j + 2u], sh == 0u);
  // m (w0 w1 w2): 120 bits in 4 words, carries by hand.
  let p2 = mul32(m, w2);
  let p1 = mul32(m, w1);
  let p0 = mul32(m, w0);
  var w: array<u32, 5>;
  w[0] = p2.x;
  w[1] = p2.y + p1.x;
  let s2 = p1.y + p0.x;
  w[2] = s2 + select(0u, 1u, w[1] < p2.y);
  w[3] = p0.y + select(0u, 1u, s2 < p1.y) + select(0u, 1u, w[2] < s2);
  w[4] = 0u;
  let s = u32(k0 + 95 - e);
  var q = bits32(&w, s);
  var hi = bits32(&w, s - 32u);
  var lo = bits32(&w, s - 64u);
  // A fraction f >= 1/2 becomes f - 1 with q + 1: negate the 64 bits.
  let up = (hi & 0x80000000u) != 0u;
  if (up) {
    q = q + 1u;
    lo = 0u - lo;
    hi = ~hi + select(0u, 1u, lo == 0u);
  }
  if ((hi | lo) == 0u) { return vec2<f32>(0.0, f32(q & 3u)); }
  // f pi/2 from the top 32 bits of f (normalized) times pi/2 in 32 bits, rounded once to float32.
  let z = select(countLeadingZeros(hi), 32u + countLeadingZeros(lo), hi == 0u);
  var n = hi;
  if (z >= 32u) { n = lo << (z - 32u); } else if (z > 0u) { n = (hi << z) | (lo >> (32u - z)); }
  let p = mul32(n, 0xc90fdaa2u); // round(pi/2 2^31): f pi/2 = p 2^(-63 - z)
  let cut = 8u - countLeadingZeros(p.y);
  var mant = p.y >> cut;
  let rest = p.y & ((1u << cut) - 1u);
  let half = 1u << (cut - 1u);
  if (rest > half || (rest == half && (p.x != 0u || (mant & 1u) != 0u))) { mant = mant + 1u; }
  let r = f32(mant) * pow2i(i32(cut) - 31 - i32(z));
  return vec2<f32>(select(r, -r, up), f32(q & 3u));
}
// (r, q mod 4) for |x| = q pi/2 + r: Cody-Waite below 2^13 (pi/2 in three parts; q P1 and q P2 are exact, the
// error is ~2^-33), Payne-Hanek above, and also where |r| < 2^-6 (there 2^-33 would exceed a quarter ulp of r).
fn trig_reduce(x: f32) -> vec2<f32> {
  if (x <= 0.7853982) { return vec2<f32>(x, 0.0); }
  if (x < 8192.0) {
    let q = floor(x * 0.63661975 + 0.5);
    let r = ((x - q * 1.5703125) - q * 4.837512969970703e-4) - q * 7.549790126404332e-8;
    if (abs(r) >= 0.015625) { return vec2<f32>(r, f32(u32(q) & 3u)); }
  }
  return trig_reduce_big(x);
}
// Taylor polynomials on |r| <= pi/4 (the first omitted terms are below 3e-9 relative), z = r^2.
fn sin_poly(r: f32, z: f32) -> f32 {
  return r + r * z * (-0.16666666666666666 + z * (0.008333333333333333 + z * (-1.984126984126984e-4
    + z * 2.7557319223985893e-6)));
}
fn cos_poly(z: f32) -> f32 {
  return (1.0 - 0.5 * z) + z * z * (0.041666666666666664 + z * (-0.001388888888888889 + z * (2.48015873015873e-5
    + z * -2.755731922398589e-7)));
}
// sin (shift 0) or cos (shift 1, a quarter turn on): the polynomial and sign by the quadrant; sin keeps -0.
fn trig_f(x: f32, shift: u32) -> f32 {
  if (is_nan(x) || is_inf(x)) { return nan_f(); }
  let bits = bitcast<u32>(x);
  let red = trig_reduce(bitcast<f32>(bits & 0x7fffffffu));
  let j = u32(red.y) + shift;
  let z = red.x * red.x;
  let v = select(sin_poly(red.x, z), cos_poly(z), (j & 1u) == 1u);
  let neg = ((j & 2u) != 0u) != (shift == 0u && (bits & 0x80000000u) != 0u);
  return bitcast<f32>(bitcast<u32>(v) ^ select(0u, 0x80000000u, neg));
}
fn sin_f(x: f32) -> f32 { return trig_f(x, 0u); }
fn cos_f(x: f32) -> f32 { return trig_f(x, 1u); }
fn log_f(x: f32) -> f32 {
  if (x < 0.0) { return nan_f(); }
  if (x == 0.0) { return -inf_f(); }
  return log(x);
}
fn sqrt_f(x: f32) -> f32 {
  if (x < 0.0) { return nan_f(); }
  if (x == 0.0) { return x; }
  return sqrt(x);
}
fn max_f(a: f32, b: f32) -> f32 {
  if (is_nan(a) || is_nan(b)) { return nan_f(); }
  return pick(b, a, a > b);
}
fn min_f(a: f32, b: f32) -> f32 {
  if (is_nan(a) || is_nan(b)) { return nan_f(); }
  return pick(b, a, a < b);
}
// JavaScript's Math.pow (the reference): x^0 = 1, (+-1)^+-inf = NaN, signs of zeros and infinities by odd exponents.
fn pow_f(a: f32, b: f32) -> f32 {
  if (!nonzero(b)) { return 1.0; }
  if (is_nan(a) || is_nan(b)) { return nan_f(); }
  let m = abs(a);
  if (is_inf(b)) {
    if (m == 1.0) { return nan_f(); }
    return select(0.0, inf_f(), (m > 1.0) == (b > 0.0));
  }
  let whole = floor(b) == b;
  let odd = whole && abs(b) < 16777216.0 && (u32(abs(b)) & 1u) == 1u;
  let negative = (bitcast<u32>(a) & 0x80000000u) != 0u && odd;
  var r: f32;
  if (is_inf(a)) {
    r = select(0.0, inf_f(), b > 0.0);
  } else if (m == 0.0) {
    r = select(0.0, inf_f(), b < 0.0);
  } else if (a < 0.0 && !whole) {
    return nan_f();
  } else if (whole && abs(b) <= 64.0) {
    // Small integer exponents by squaring: exact-ish (a few roundings) where exp2(b log2 x) would lose bits.
    var e = u32(abs(b));
    var base = m;
    r = 1.0;
    loop {
      if (e == 0u) { break; }
      if ((e & 1u) == 1u) { r = r * base; }
      base = base * base;
      e = e >> 1u;
    }
    if (b < 0.0) { r = 1.0 / r; }
  } else {
    // b log2 m with m's exponent split off and b split in two halves of 12 bits: the large parts multiply exactly,
    // so that only a small remainder goes through exp2 (one rounding of b log2 m would cost bits on large results).
    var mm = m;
    var ex = -127;
    if (m < 1.17549435e-38) { mm = m * pow2i(64); ex = ex - 64; }
    ex = ex + i32((bitcast<u32>(mm) >> 23u) & 0xffu);
    var f = bitcast<f32>((bitcast<u32>(mm) & 0x7fffffu) | 0x3f800000u);
    if (f > 1.4142135) { f = f * 0.5; ex = ex + 1; }
    let bh = bitcast<f32>(bitcast<u32>(b) & 0xfffff000u);
    let k = bh * f32(ex);
    let n = round(k);
    let rest = (k - n) + (b - bh) * f32(ex) + b * log2(f);
    let n2 = round(rest);
    r = scale2(exp2(rest - n2), i32(clamp(n + n2, -250.0, 250.0)));
  }
  return signed(r, negative);
}
`;

/** JavaScript's integer results as the reference stores them (typed arrays wrap; x / 0 is 0). */
const INT_MATH = /* wgsl */ `
fn div_i(a: i32, b: i32) -> i32 {
  let q = a / select(b, 1, b == 0);
  return select(q, 0, b == 0);
}
fn pow_i(a: i32, b: i32) -> i32 {
  if (b < 0) {
    if (a == 1) { return 1; }
    if (a == -1) { return select(1, -1, (b & 1) != 0); }
    return 0;
  }
  var r = 1;
  var base = a;
  var e = b;
  loop {
    if (e <= 0) { break; }
    if ((e & 1) == 1) { r = r * base; }
    base = base * base;
    e = e >> 1;
  }
  return r;
}
`;

/** The helpers above, one entry per top-level `fn` / `const` (with the comments before it), in dependency order. */
const LIBRARY: { name: string; text: string }[] = [];
{
  let comments: string[] = [];
  for (const line of [FLOAT_BITS, HALF_BITS, INT_BITS, MATH, INT_MATH].join('\n').split('\n')) {
    const m = /^(?:fn|const) (\w+)/.exec(line);
    if (m) {
      LIBRARY.push({ name: m[1]!, text: [...comments, line].join('\n') });
      comments = [];
    } else if (line.startsWith('//')) comments.push(line);
    else if (line.trim() && LIBRARY.length > 0) LIBRARY[LIBRARY.length - 1]!.text += `\n${line}`;
  }
}

/** `code` preceded by the helpers it uses, directly or not: small shaders compile faster (software Vulkan compiles each). */
function withLibrary(code: string): string {
  const used: string[] = [];
  let text = code;
  for (let k = LIBRARY.length - 1; k >= 0; k--) {
    const item = LIBRARY[k]!;
    if (new RegExp(`\\b${item.name}\\b`).test(text)) {
      used.unshift(item.text);
      text += `\n${item.text}`;
    }
  }
  return `${used.join('\n')}\n${code}`;
}

type Kind = 'f' | 'i' | 'u';

/** How a dtype's words are viewed and computed: float32 as f32, int32 as i32, uint8 and bool as u32 computed in i32. */
function kindOf(dtype: DType, op: string): Kind {
  if (dtype === 'float32') return 'f';
  if (dtype === 'int32') return 'i';
  if (dtype === 'uint8' || dtype === 'bool') return 'u';
  throw new Error(`webgpu: ${op} has no kernel for ${dtype}`);
}

const VIEW: Record<Kind, string> = { f: 'f32', i: 'i32', u: 'u32' };
/** A loaded word as the value computed with. */
const LOAD: Record<Kind, (w: string) => string> = { f: (w) => w, i: (w) => w, u: (w) => `i32(${w})` };
/** A computed value as the stored word (uint8 wraps like a Uint8Array). */
const STORE: Record<Kind, (v: string) => string> = { f: (v) => v, i: (v) => v, u: (v) => `(u32(${v}) & 0xffu)` };

function bindings(views: readonly string[], outView: string): string {
  return views.map((v, k) => `@group(0) @binding(${k + 1}) var<storage, read> x${k}: array<${v}>;`).join('\n')
    + `\n@group(0) @binding(${views.length + 1}) var<storage, read_write> out: array<${outView}>;`;
}

// ---- fill and cast ----

/** The 32-bit word that stores `value` as `dtype` (the reference's rounding: toStorage). */
function wordOf(dtype: DType, value: number): number {
  const v = toStorage([value], dtype)[0]!;
  if (dtype === 'float32') return new Uint32Array(Float32Array.of(v).buffer)[0]!;
  return v >>> 0;
}

export function fill(ctx: GpuContext, dtype: DType, size: number, value: number): GpuBuffer {
  const out = ctx.alloc(dtype, size);
  const source = /* wgsl */ `
@group(0) @binding(1) var<storage, read_write> out: array<u32>;
${main1d('  out[i] = pu(1u);')}`;
  ctx.run(source, [size, wordOf(dtype, value)], [out], ctx.groups1d(size));
  return out;
}

/** WGSL giving float32 bits `fb` (float sources) or an i32 `iv` (integer sources) from the word `w`. */
function castFrom(dtype: DType): { float: boolean; code: string } {
  switch (dtype) {
    case 'float32': return { float: true, code: 'let fb = w;' };
    case 'float16': return { float: true, code: 'let fb = f16_to_f32(w & 0xffffu);' };
    case 'bfloat16': return { float: true, code: 'let fb = (w & 0xffffu) << 16u;' };
    case 'int32': return { float: false, code: 'let iv = bitcast<i32>(w);' };
    case 'uint8':
    case 'bool': return { float: false, code: 'let iv = i32(w);' };
    case 'float64': throw new Error('webgpu: float64 is not supported (GPUs have no 64-bit floats)');
  }
}

/** WGSL storing the converted word from `fb` or `iv` into out[i]. */
function castTo(dtype: DType, float: boolean): string {
  const fb = float ? 'fb' : 'i32_to_f32(iv)';
  const iv = float ? 'f32_to_i32(fb)' : 'iv';
  switch (dtype) {
    case 'float32': return `out[i] = ${fb};`;
    case 'float16': return `out[i] = f32_to_f16(${fb});`;
    case 'bfloat16': return `out[i] = f32_to_bf16(${fb});`;
    case 'int32': return `out[i] = bitcast<u32>(${iv});`;
    case 'uint8': return `out[i] = bitcast<u32>(${iv}) & 0xffu;`;
    // NaN is true: any bit beside the sign.
    case 'bool': return float ? 'out[i] = select(0u, 1u, (fb & 0x7fffffffu) != 0u);' : 'out[i] = select(0u, 1u, iv != 0);';
    case 'float64': throw new Error('webgpu: float64 is not supported (GPUs have no 64-bit floats); cast to float32 first');
  }
}

/** Any dtype to any dtype, on the words: half dtypes through float32, integers truncating and wrapping, as dtype.ts. */
export function cast(ctx: GpuContext, x: GpuBuffer, dtype: DType): GpuBuffer {
  const from = castFrom(x.dtype);
  const store = castTo(dtype, from.float);
  const out = ctx.alloc(dtype, x.size);
  const source = withLibrary(/* wgsl */ `
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;
${main1d(`  let w = x[i];\n  ${from.code}\n  ${store}`)}`);
  ctx.run(source, [x.size], [x, out], ctx.groups1d(x.size));
  return out;
}

// ---- unary ----

const UNARY_F: Record<UnaryOp, (x: string) => string> = {
  neg: (x) => `-${x}`,
  abs: (x) => `bitcast<f32>(bitcast<u32>(${x}) & 0x7fffffffu)`,
  // Through an integer: Mesa folds a select of -1.0 and 0.0 (even as bits) into -b2f(c), which gives -0.
  sign: (x) => `f32(select(select(0, -1, ${x} < 0.0), 1, ${x} > 0.0))`, // NaN -> 0, as the reference
  exp: (x) => `exp_f(${x})`,
  log: (x) => `log_f(${x})`,
  sqrt: (x) => `sqrt_f(${x})`,
  rsqrt: (x) => `1.0 / sqrt_f(${x})`,
  sin: (x) => `sin_f(${x})`,
  cos: (x) => `cos_f(${x})`,
  tanh: (x) => `tanh_f(${x})`,
  sigmoid: (x) => `sigmoid_f(${x})`,
  relu: (x) => `bitcast<f32>(select(bitcast<u32>(${x}), 0u, ${x} < 0.0))`, // NaN and -0 stay
  erf: (x) => `erf_f(${x})`,
  gelu: (x) => `gelu_f(${x})`,
  geluTanh: (x) => `gelu_tanh_f(${x})`,
  silu: (x) => `silu_f(${x})`,
  floor: (x) => `floor(${x})`,
  ceil: (x) => `ceil(${x})`,
  round: (x) => `round(${x})`, // WGSL rounds halves to even, as the reference
  not: (x) => `bitcast<f32>(select(0u, 0x3f800000u, !nonzero(${x})))`,
};

/** Integer unary ops that stay integer; the others compute in float32 and truncate, as the reference's typed arrays. */
const UNARY_I: Partial<Record<UnaryOp, (x: string) => string>> = {
  neg: (x) => `-${x}`,
  abs: (x) => `abs(${x})`,
  sign: (x) => `sign(${x})`,
  relu: (x) => `max(${x}, 0)`,
  floor: (x) => x,
  ceil: (x) => x,
  round: (x) => x,
  not: (x) => `select(0, 1, ${x} == 0)`,
};

export function unary(ctx: GpuContext, op: UnaryOp, x: GpuBuffer): GpuBuffer {
  const kind = kindOf(x.dtype, op);
  const intOp = UNARY_I[op];
  let value: string;
  if (kind === 'f') value = UNARY_F[op]('v');
  else if (intOp) value = STORE[kind](intOp(LOAD[kind]('v')));
  else value = STORE[kind](`f32_to_i32(bitcast<u32>(${UNARY_F[op](`bitcast<f32>(i32_to_f32(${LOAD[kind]('v')}))`)}))`);
  const out = ctx.alloc(x.dtype, x.size);
  const source = withLibrary(/* wgsl */ `
${bindings([VIEW[kind]], VIEW[kind])}
${main1d(`  let v = x0[i];\n  out[i] = ${value};`)}`);
  ctx.run(source, [x.size], [x, out], ctx.groups1d(x.size));
  return out;
}

const ACTIVATION_GRAD: Record<ActivationOp, string> = {
  relu: 'bitcast<f32>(select(0x3f800000u, 0u, v <= 0.0))', // NaN passes the gradient
  gelu: 'gelu_grad(v)',
  geluTanh: 'gelu_tanh_grad(v)',
  silu: 'silu_grad(v)',
};

export function activationGrad(ctx: GpuContext, op: ActivationOp, x: GpuBuffer, dy: GpuBuffer): GpuBuffer {
  if (x.dtype !== 'float32') throw new Error(`webgpu: activationGrad (${op}) expects float32, got ${x.dtype}`);
  const out = ctx.alloc(x.dtype, x.size);
  const source = withLibrary(/* wgsl */ `
${bindings(['f32', 'f32'], 'f32')}
${main1d(`  let v = x0[i];\n  out[i] = ${ACTIVATION_GRAD[op]} * x1[i];`)}`);
  ctx.run(source, [x.size], [x, dy, out], ctx.groups1d(x.size));
  return out;
}

// ---- binary and where ----

const COMPARE_OR_LOGIC = new Set<BinaryOp>(['eq', 'ne', 'lt', 'le', 'gt', 'ge', 'and', 'or']);

/** Float ops; comparisons with a NaN are false (ne true), tested on the bits. */
const BINARY_F: Record<BinaryOp, string> = {
  add: 'a + b',
  sub: 'a - b',
  mul: 'a * b',
  div: 'a / b',
  pow: 'pow_f(a, b)',
  maximum: 'max_f(a, b)',
  minimum: 'min_f(a, b)',
  eq: '!(is_nan(a) || is_nan(b)) && a == b',
  ne: 'is_nan(a) || is_nan(b) || a != b',
  lt: '!(is_nan(a) || is_nan(b)) && a < b',
  le: '!(is_nan(a) || is_nan(b)) && a <= b',
  gt: '!(is_nan(a) || is_nan(b)) && a > b',
  ge: '!(is_nan(a) || is_nan(b)) && a >= b',
  and: 'nonzero(a) && nonzero(b)',
  or: 'nonzero(a) || nonzero(b)',
};

/** Integer ops in wrapping i32 arithmetic (WGSL's), as the reference's Math.imul and typed-array stores. */
const BINARY_I: Record<BinaryOp, string> = {
  add: 'a + b',
  sub: 'a - b',
  mul: 'a * b',
  div: 'div_i(a, b)',
  pow: 'pow_i(a, b)',
  maximum: 'max(a, b)',
  minimum: 'min(a, b)',
  eq: 'a == b',
  ne: 'a != b',
  lt: 'a < b',
  le: 'a <= b',
  gt: 'a > b',
  ge: 'a >= b',
  and: 'a != 0 && b != 0',
  or: 'a != 0 || b != 0',
};

export function binary(ctx: GpuContext, op: BinaryOp, a: GpuBuffer, aShape: Shape, b: GpuBuffer, bShape: Shape, outShape: Shape): GpuBuffer {
  const kind = kindOf(a.dtype, op);
  const logic = COMPARE_OR_LOGIC.has(op);
  const n = sizeOf(outShape);
  const out = ctx.alloc(logic ? 'bool' : a.dtype, n);
  if (n === 0) return out;
  const layout = collapseDims(outShape, [broadcastStrides(aShape, outShape), broadcastStrides(bShape, outShape)]);
  const ix = indexer(ctx, layout, 1, 4);
  const expr = (kind === 'f' ? BINARY_F : BINARY_I)[op];
  const value = logic ? `select(0u, 1u, ${expr})` : STORE[kind](expr);
  const source = withLibrary(/* wgsl */ `
${bindings([VIEW[kind], VIEW[kind]], logic ? 'u32' : VIEW[kind])}
${ix.wgsl}
${main1d(`  let o = offsets(i);\n  let a = ${LOAD[kind]('x0[o[0]]')};\n  let b = ${LOAD[kind]('x1[o[1]]')};\n  out[i] = ${value};`)}`);
  ctx.run(source, [n, ...ix.params], ix.meta ? [a, b, out, ix.meta] : [a, b, out], ctx.groups1d(n));
  if (ix.meta) ctx.free(ix.meta);
  return out;
}

/** cond ? a : b with broadcasting, on the words (any dtype of a and b; cond bool or uint8). */
export function where(ctx: GpuContext, c: GpuBuffer, cShape: Shape, a: GpuBuffer, aShape: Shape, b: GpuBuffer, bShape: Shape, outShape: Shape): GpuBuffer {
  const n = sizeOf(outShape);
  const out = ctx.alloc(a.dtype, n);
  if (n === 0) return out;
  const layout = collapseDims(outShape, [cShape, aShape, bShape].map((s) => broadcastStrides(s, outShape)));
  const ix = indexer(ctx, layout, 1, 5);
  const source = /* wgsl */ `
${bindings(['u32', 'u32', 'u32'], 'u32')}
${ix.wgsl}
${main1d('  let o = offsets(i);\n  out[i] = select(x2[o[2]], x1[o[1]], x0[o[0]] != 0u);')}`;
  ctx.run(source, [n, ...ix.params], ix.meta ? [c, a, b, out, ix.meta] : [c, a, b, out], ctx.groups1d(n));
  if (ix.meta) ctx.free(ix.meta);
  return out;
}
