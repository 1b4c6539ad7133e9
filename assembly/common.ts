// Shared pieces of the AssemblyScript kernels: job parameter slots, dtype codes, SIMD math (exp, tanh, erf).

// ---- job parameter block: i32 slots written by the TypeScript side (src/backend/wasm/jobs.ts) ----
// [0] kernel id, [1] next tile (atomic counter), [2] tile count, [3] scratch base, [4] scratch bytes per
// thread, then the kernel's own parameters from slot ARG.
export const ARG: i32 = 5;

@inline export function pi(p: usize, slot: i32): i32 {
  return load<i32>(p + (<usize>slot << 2));
}
@inline export function pu(p: usize, slot: i32): usize {
  return <usize>load<i32>(p + (<usize>slot << 2));
}
@inline export function pf(p: usize, slot: i32): f32 {
  return load<f32>(p + (<usize>slot << 2));
}

// ---- dtype codes (the same numbers as DT in src/backend/wasm/kernels.ts) ----
export const F32: i32 = 0;
export const I32: i32 = 1;
export const U8: i32 = 2; // uint8 and bool share storage and arithmetic
export const BOOL: i32 = 3; // only as a cast target: x != 0

/** ECMAScript ToInt32 (what storing a number into an Int32Array does): truncate, wrap mod 2^32, NaN/inf -> 0. */
export function toI32(x: f64): i32 {
  if (x > -2147483649.0 && x < 2147483648.0) return <i32>x;
  if (!isFinite(x)) return 0;
  let m = trunc(x) % 4294967296.0; // exact (fmod)
  if (m < 0) m += 4294967296.0;
  return <i32><u32>m;
}

/** Element i of an int32 / uint8 buffer as i32. */
@inline export function ldi(ptr: usize, i: usize, dt: i32): i32 {
  return dt == I32 ? load<i32>(ptr + (i << 2)) : <i32>load<u8>(ptr + i);
}
@inline export function sti(ptr: usize, i: usize, dt: i32, v: i32): void {
  if (dt == I32) store<i32>(ptr + (i << 2), v);
  else store<u8>(ptr + i, <u8>v);
}
/** Element i of any (non-f64) buffer as f64. */
@inline export function ldf(ptr: usize, i: usize, dt: i32): f64 {
  return dt == F32 ? <f64>load<f32>(ptr + (i << 2)) : <f64>ldi(ptr, i, dt);
}
/** Stores a number with typed-array semantics: fround for f32, ToInt32 / ToUint8 for the integer types. */
@inline export function stf(ptr: usize, i: usize, dt: i32, v: f64): void {
  if (dt == F32) store<f32>(ptr + (i << 2), <f32>v);
  else sti(ptr, i, dt, toI32(v));
}

// ---- SIMD math ----

/** a * b + c, fused where the module was built with relaxed SIMD. */
@inline export function fma4(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, c);
  return f32x4.add(f32x4.mul(a, b), c);
}

// Vector constants live in mutable globals set by initKernels(): V8 rebuilds a v128.const at every use
// inside a loop (several instructions each), while a global is one load; binaryen cannot fold a
// global that is written at run time back into a constant. Measured: exp 1.5x faster.
export let V_ONE = f32x4.splat(0), V_TWO = f32x4.splat(0), V_HALF = f32x4.splat(0), V_SIGN = f32x4.splat(0), V_INF = f32x4.splat(0);
let E_HI = f32x4.splat(0), E_LO2 = f32x4.splat(0), E_L2E = f32x4.splat(0), E_MAGIC = f32x4.splat(0), E_BIAS = f32x4.splat(0), E_TMAX = f32x4.splat(0);
let E_C1 = f32x4.splat(0), E_C2 = f32x4.splat(0), E_Q0 = f32x4.splat(0), E_Q1 = f32x4.splat(0), E_Q2 = f32x4.splat(0);
let E_Q3 = f32x4.splat(0), E_Q4 = f32x4.splat(0);
let T_SMALL = f32x4.splat(0), T_P0 = f32x4.splat(0), T_P1 = f32x4.splat(0), T_P2 = f32x4.splat(0), T_P3 = f32x4.splat(0), T_P4 = f32x4.splat(0);
let R_P = f32x4.splat(0), R_A1 = f32x4.splat(0), R_A2 = f32x4.splat(0), R_A3 = f32x4.splat(0), R_A4 = f32x4.splat(0), R_A5 = f32x4.splat(0);
let R_SMALL = f32x4.splat(0), R_S1 = f32x4.splat(0), R_S2 = f32x4.splat(0), R_S3 = f32x4.splat(0), R_S4 = f32x4.splat(0), R_S5 = f32x4.splat(0);
let R_2SQRTPI = f32x4.splat(0);
// GELU: sqrt(1/2), 1/sqrt(2 pi); and -1, -1/2.
export let G_SQRT1_2 = f32x4.splat(0), G_INV_SQRT_2PI = f32x4.splat(0);
export let V_NEG_ONE = f32x4.splat(0), V_NEG_HALF = f32x4.splat(0);
// The tanh GELU as x * sigmoid(w), w = 2u = x (2k + 2kc x^2) with k = sqrt(2/pi), c = 0.044715: -2k, -2kc
// (for exp(-w)), and dw/dx = 2k + 6kc x^2; the largest float.
export let G_N2K = f32x4.splat(0), G_N2KC = f32x4.splat(0), G_2K = f32x4.splat(0), G_6KC = f32x4.splat(0), V_FLT_MAX = f32x4.splat(0);

/** Sets the vector constants; every instance (each thread's) calls it once after instantiation. */
export function initKernels(): void {
  V_ONE = f32x4.splat(1);
  V_TWO = f32x4.splat(2);
  V_HALF = f32x4.splat(0.5);
  V_SIGN = i32x4.splat(0x80000000);
  V_INF = f32x4.splat(Infinity);
  // The largest float32 whose exp is finite (ln(FLT_MAX) = 88.7228391 rounds up to a float whose exp overflows).
  E_HI = f32x4.splat(88.72283172607421875);
  // round(-88 log2(e)) = -127: below about -87.68 exp gives exactly 0 (the true value is at most a denormal).
  E_LO2 = f32x4.splat(-88.0);
  E_L2E = f32x4.splat(1.44269504088896341);
  E_MAGIC = f32x4.splat(12582912.0); // 1.5 * 2^23
  E_TMAX = f32x4.splat(12582912.0 + 127); // MAGIC + the largest exponent 2^n can hold
  E_BIAS = i32x4.splat(127 - 0x4b400000);
  E_C1 = f32x4.splat(-0.693359375);
  E_C2 = f32x4.splat(2.12194440e-4);
  E_Q0 = f32x4.splat(0.4999999403953552);
  E_Q1 = f32x4.splat(0.1666652113199234);
  E_Q2 = f32x4.splat(0.041668329387903214);
  E_Q3 = f32x4.splat(0.008368710055947304);
  E_Q4 = f32x4.splat(0.0013817886356264353);
  T_SMALL = f32x4.splat(0.625);
  T_P0 = f32x4.splat(-5.70498872745e-3);
  T_P1 = f32x4.splat(2.06390887954e-2);
  T_P2 = f32x4.splat(-5.37397155531e-2);
  T_P3 = f32x4.splat(1.33314422036e-1);
  T_P4 = f32x4.splat(-3.33332819422e-1);
  R_P = f32x4.splat(0.3275911);
  R_A1 = f32x4.splat(0.254829592);
  R_A2 = f32x4.splat(-0.284496736);
  R_A3 = f32x4.splat(1.421413741);
  R_A4 = f32x4.splat(-1.453152027);
  R_A5 = f32x4.splat(1.061405429);
  R_SMALL = f32x4.splat(0.5);
  R_S1 = f32x4.splat(-1.0 / 3.0);
  R_S2 = f32x4.splat(1.0 / 10.0);
  R_S3 = f32x4.splat(-1.0 / 42.0);
  R_S4 = f32x4.splat(1.0 / 216.0);
  R_S5 = f32x4.splat(-1.0 / 1320.0);
  R_2SQRTPI = f32x4.splat(1.1283791670955126);
  G_SQRT1_2 = f32x4.splat(0.7071067811865476);
  G_INV_SQRT_2PI = f32x4.splat(0.3989422804014327);
  V_NEG_ONE = f32x4.splat(-1);
  V_FLT_MAX = f32x4.splat(3.4028234663852886e38);
  G_N2K = f32x4.splat(-2 * 0.7978845608028654);
  G_N2KC = f32x4.splat(-2 * 0.7978845608028654 * 0.044715);
  G_2K = f32x4.splat(2 * 0.7978845608028654);
  G_6KC = f32x4.splat(6 * 0.7978845608028654 * 0.044715);
  V_NEG_HALF = f32x4.splat(-0.5);
}

/**
 * exp(x) to about 2 ulp: x = n ln2 + r, |r| <= ln2/2 (Cephes expf's reduction), exp(r) = 1 + r + r^2 q(r)
 * with q a degree-4 minimax fit for relative error (3e-9: one term fewer than Cephes' degree 5, with the
 * same float32 accuracy, measured). n is rounded by adding 1.5 * 2^23, whose low mantissa bits then hold
 * n, shifted straight into the exponent field of 2^n.
 */
@inline export function exp4(x: v128): v128 {
  // pmin / pmax are single minps / maxps; min / max cost V8 a NaN- and signed-zero-exact sequence each.
  // A NaN x still passes through both (every comparison with it is false). The low clamp E_LO2 makes n = -127,
  // whose 2^n bits are 0: the result is exactly 0 below it (exp(-inf) = 0) with no compare and select.
  const xc = f32x4.pmax(f32x4.pmin(x, E_HI), E_LO2);
  const t = fma4(xc, E_L2E, E_MAGIC);
  const n = f32x4.sub(t, E_MAGIC);
  let r = fma4(n, E_C1, xc);
  r = fma4(n, E_C2, r);
  let y = fma4(E_Q4, r, E_Q3);
  y = fma4(y, r, E_Q2);
  y = fma4(y, r, E_Q1);
  y = fma4(y, r, E_Q0);
  y = fma4(y, f32x4.mul(r, r), f32x4.add(r, V_ONE));
  // Between 127.5 ln2 = 88.376 and E_HI, n is 128 and 2^128 has no float32 exponent: scale by 2 first (exact),
  // then by 2^127.
  const tc = f32x4.pmin(t, E_TMAX);
  y = fma4(y, f32x4.sub(t, tc), y);
  y = f32x4.mul(y, i32x4.shl(i32x4.add(tc, E_BIAS), 23));
  return v128.bitselect(V_INF, y, f32x4.gt(x, E_HI));
}

/** tanh: an odd polynomial near 0 (where 1 - 2/(e^2x + 1) cancels), the exp form elsewhere. */
@inline export function tanh4(x: v128): v128 {
  const ax = f32x4.abs(x);
  const e = exp4(f32x4.add(ax, ax));
  let big = f32x4.sub(V_ONE, f32x4.div(V_TWO, f32x4.add(e, V_ONE)));
  big = v128.or(big, v128.and(x, V_SIGN)); // copy the sign of x
  const z = f32x4.mul(x, x);
  let p = fma4(T_P0, z, T_P1);
  p = fma4(p, z, T_P2);
  p = fma4(p, z, T_P3);
  p = fma4(p, z, T_P4);
  const small = fma4(f32x4.mul(p, z), x, x);
  return v128.bitselect(small, big, f32x4.lt(ax, T_SMALL));
}

/** 1 / (1 + exp(-x)). */
@inline export function sigmoid4(x: v128): v128 {
  return f32x4.div(V_ONE, f32x4.add(V_ONE, exp4(f32x4.neg(x))));
}

/**
 * erf: the Maclaurin series below |x| = 0.5, Abramowitz & Stegun 7.1.26 above (absolute error < 1.5e-7).
 */
@inline export function erf4(x: v128): v128 {
  const ax = f32x4.abs(x);
  const t = f32x4.div(V_ONE, fma4(ax, R_P, V_ONE));
  let q = fma4(R_A5, t, R_A4);
  q = fma4(q, t, R_A3);
  q = fma4(q, t, R_A2);
  q = fma4(q, t, R_A1);
  q = f32x4.mul(q, t);
  let big = f32x4.sub(V_ONE, f32x4.mul(q, exp4(f32x4.neg(f32x4.mul(ax, ax)))));
  big = v128.or(big, v128.and(x, V_SIGN));
  // 2/sqrt(pi) * (x - x^3/3 + x^5/10 - x^7/42 + x^9/216 - x^11/1320)
  const z = f32x4.mul(x, x);
  let s = fma4(R_S5, z, R_S4);
  s = fma4(s, z, R_S3);
  s = fma4(s, z, R_S2);
  s = fma4(s, z, R_S1);
  s = fma4(s, z, V_ONE);
  const small = f32x4.mul(f32x4.mul(s, x), R_2SQRTPI);
  return v128.bitselect(small, big, f32x4.lt(ax, R_SMALL));
}

// ---- scalar f64 versions (row tails and the scalar paths), the reference formulas ----

export function erf64(x: f64): f64 {
  const ax = abs(x);
  if (ax < 0.5) {
    const z = x * x;
    return 1.1283791670955126 * x * (1 + z * (-1.0 / 3 + z * (1.0 / 10 + z * (-1.0 / 42 + z * (1.0 / 216 + z * (-1.0 / 1320))))));
  }
  const t = 1 / (1 + 0.3275911 * ax);
  const y = 1 - t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))) * Math.exp(-ax * ax);
  return x < 0 ? -y : y;
}
export function sigmoid64(x: f64): f64 {
  if (x >= 0) return 1 / (1 + Math.exp(-x));
  const e = Math.exp(x);
  return e / (1 + e);
}
