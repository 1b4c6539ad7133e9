// Products with float16 / bfloat16 weights read as they are stored: y = x W^T + b and y = g W, x and g float32, W's
// 2-byte values widened in registers (8 at a time, SIMD) or a few rows at a time into the thread's scratch, never a
// float32 copy of the matrix. Accumulation in float32. Reference: src/backend/cpu/matmul-half.ts.

import { ARG, fma4, pi, pu } from './common';

/** Four IEEE half values (zero-extended in i32 lanes) -> float32, exact (subnormals by a power-of-two scale, inf / NaN kept). */
@inline function halfToF32x4(h: v128): v128 {
  const mag = i32x4.shl(v128.and(h, i32x4.splat(0x7fff)), 13);
  const special = i32x4.eq(v128.and(h, i32x4.splat(0x7c00)), i32x4.splat(0x7c00));
  const v = v128.bitselect(v128.or(mag, i32x4.splat(0x7f800000)), f32x4.mul(mag, f32x4.splat(reinterpret<f32>(0x77800000))), special); // 2^112
  return v128.or(v, i32x4.shl(v128.and(h, i32x4.splat(0x8000)), 16));
}

/** Weight rows widened together (the products of a row of x with four rows of W share x's loads). */
const RB: i32 = 4;

/**
 * Eight 2-byte values h -> float32: the low four (lo) and the high four (hi). bf16: the top half of a float32, so the
 * values are only moved there (an interleave with zeros). f16: moved to the top half and shifted right by 3 with the
 * sign (exponent and mantissa land in float32's fields, the exponent still biased by 15, the sign copied into the three
 * bits above it), those three bits cleared, then a multiply by 2^112 rebiases the exponent; subnormals come out exact
 * the same way. Infinities and NaN (exponent 31) need more work: a block of eight that has one takes halfToF32x4.
 */
@inline function lo(h: v128, bf16: bool, special: bool): v128 {
  const top = v128.shuffle<u8>(V_ZERO, h, 0, 0, 16, 17, 0, 0, 18, 19, 0, 0, 20, 21, 0, 0, 22, 23);
  if (bf16) return top;
  if (special) return halfToF32x4(i32x4.extend_low_i16x8_u(h));
  return f32x4.mul(v128.and(i32x4.shr_s(top, 3), V_CLEAR), V_REBIAS);
}
@inline function hi(h: v128, bf16: bool, special: bool): v128 {
  const top = v128.shuffle<u8>(V_ZERO, h, 0, 0, 24, 25, 0, 0, 26, 27, 0, 0, 28, 29, 0, 0, 30, 31);
  if (bf16) return top;
  if (special) return halfToF32x4(i32x4.extend_high_i16x8_u(h));
  return f32x4.mul(v128.and(i32x4.shr_s(top, 3), V_CLEAR), V_REBIAS);
}
/** Whether any of eight float16 values is an infinity or NaN (never for bf16, which needs no fix-up). */
@inline function hasSpecial(h: v128, bf16: bool): bool {
  return !bf16 && v128.any_true(i16x8.eq(v128.and(h, V_EXP16), V_EXP16));
}
// Vector constants as globals set once (see common.ts: a v128.const inside a loop is rebuilt at every use by V8).
let V_ZERO = i32x4.splat(0), V_CLEAR = i32x4.splat(0), V_REBIAS = f32x4.splat(0), V_EXP16 = i16x8.splat(0);
/** Sets this file's vector constants (initKernels calls it). */
export function initHalfKernels(): void {
  V_ZERO = i32x4.splat(0);
  V_CLEAR = i32x4.splat(0x8fffffff);
  V_REBIAS = f32x4.splat(reinterpret<f32>(0x77800000)); // 2^112
  V_EXP16 = i16x8.splat(0x7c00);
}
/** One 2-byte value -> float32 (scalar tails). */
@inline function one(p: usize, bf16: bool): f32 {
  const h = <u32>load<u16>(p);
  return f32x4.extract_lane(bf16 ? i32x4.splat(h << 16) : halfToF32x4(i32x4.splat(h)), 0);
}

@inline function hsum(s: v128): f32 {
  return (f32x4.extract_lane(s, 0) + f32x4.extract_lane(s, 1)) + (f32x4.extract_lane(s, 2) + f32x4.extract_lane(s, 3));
}

/** Widens rows [j, j + rows) of W [n, k] (2-byte) into dst (float32, rows x k). */
@inline function widenRows(w: usize, dst: usize, k: i32, rows: i32, bf16: bool): void {
  const total = rows * k;
  const src = w;
  let q = 0;
  for (; q + 8 <= total; q += 8) {
    const h = v128.load(src + (<usize>q << 1)), special = hasSpecial(h, bf16);
    v128.store(dst + (<usize>q << 2), lo(h, bf16, special));
    v128.store(dst + (<usize>q << 2), hi(h, bf16, special), 16);
  }
  for (; q < total; q++) store<f32>(dst + (<usize>q << 2), one(src + (<usize>q << 1), bf16));
}

/**
 * Tile t of K_HMATMUL_T: y[:, j0..j1) = x W^T (+ b) for weight rows [t * rpt, ..) (a multiple of RB). With one row of x
 * (decoding) the weights are widened in registers as they are read; with more, RB rows at a time into the scratch (when
 * they fit), then multiplied by every row of x.
 */
export function hmatmulTTile(p: usize, t: i32, scratch: usize): void {
  const bf16 = pi(p, ARG) != 0;
  const x = pu(p, ARG + 1), w = pu(p, ARG + 2), out = pu(p, ARG + 3), bias = pu(p, ARG + 4);
  const m = pi(p, ARG + 5), n = pi(p, ARG + 6), k = pi(p, ARG + 7), rpt = pi(p, ARG + 8), scratchBytes = pi(p, ARG + 9);
  const j0 = t * rpt, j1 = min(n, j0 + rpt);
  const staged = m > 1 && RB * k * 4 <= scratchBytes;
  const k4 = k & ~3;
  const rowBytes = <usize>k << 1;
  let j = j0;
  for (; staged && j + RB <= j1; j += RB) {
    widenRows(w + <usize>j * rowBytes, scratch, k, RB, bf16);
    const s0 = scratch, s1 = s0 + (<usize>k << 2), s2 = s1 + (<usize>k << 2), s3 = s2 + (<usize>k << 2);
    for (let i = 0; i < m; i++) {
      const xr = x + (<usize>i * <usize>k << 2);
      let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
      let q = 0;
      for (; q < k4; q += 4) {
        const o = <usize>q << 2, xv = v128.load(xr + o);
        a0 = fma4(xv, v128.load(s0 + o), a0);
        a1 = fma4(xv, v128.load(s1 + o), a1);
        a2 = fma4(xv, v128.load(s2 + o), a2);
        a3 = fma4(xv, v128.load(s3 + o), a3);
      }
      let y0 = hsum(a0), y1 = hsum(a1), y2 = hsum(a2), y3 = hsum(a3);
      for (; q < k; q++) {
        const xv = load<f32>(xr + (<usize>q << 2)), o = <usize>q << 2;
        y0 += xv * load<f32>(s0 + o);
        y1 += xv * load<f32>(s1 + o);
        y2 += xv * load<f32>(s2 + o);
        y3 += xv * load<f32>(s3 + o);
      }
      const c = out + ((<usize>i * <usize>n + <usize>j) << 2);
      if (bias != 0) {
        const bj = bias + (<usize>j << 2);
        y0 += load<f32>(bj);
        y1 += load<f32>(bj, 4);
        y2 += load<f32>(bj, 8);
        y3 += load<f32>(bj, 12);
      }
      store<f32>(c, y0);
      store<f32>(c, y1, 4);
      store<f32>(c, y2, 8);
      store<f32>(c, y3, 12);
    }
  }
  // Unstaged (one row of x: decoding), every row; else the last n % RB rows: one weight row at a time, widened in
  // registers as it is read in order (four rows side by side, 2k bytes apart, defeat the hardware prefetcher).
  for (; j < j1; j++) {
    const wr = w + <usize>j * rowBytes;
    for (let i = 0; i < m; i++) {
      let y = rowHalf(wr, x + (<usize>i * <usize>k << 2), k, bf16);
      if (bias != 0) y += load<f32>(bias + (<usize>j << 2));
      store<f32>(out + ((<usize>i * <usize>n + <usize>j) << 2), y);
    }
  }
}

/**
 * One weight row (wr: k 2-byte values) times one row of x (xr), sixteen values per step into four accumulators (four
 * independent chains of multiply-adds, not one chain that waits for each). f16 infinities and NaN are not converted on
 * this path: the largest exponent field seen is kept, and a row that has one is redone by rowHalfChecked.
 */
@inline function rowHalf(wr: usize, xr: usize, k: i32, bf16: bool): f32 {
  const exp16 = V_EXP16;
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0), ex = i16x8.splat(0);
  let q = 0;
  for (; q + 16 <= k; q += 16) {
    const o = <usize>q << 2, h = <usize>q << 1;
    const h0 = v128.load(wr + h), h1 = v128.load(wr + h, 16);
    if (!bf16) ex = i16x8.max_u(ex, i16x8.max_u(v128.and(h0, exp16), v128.and(h1, exp16)));
    a0 = fma4(v128.load(xr + o), lo(h0, bf16, false), a0);
    a1 = fma4(v128.load(xr + o, 16), hi(h0, bf16, false), a1);
    a2 = fma4(v128.load(xr + o, 32), lo(h1, bf16, false), a2);
    a3 = fma4(v128.load(xr + o, 48), hi(h1, bf16, false), a3);
  }
  if (!bf16 && v128.any_true(i16x8.eq(ex, exp16))) return rowHalfChecked(wr, xr, k, bf16, 0, f32x4.splat(0));
  return rowHalfChecked(wr, xr, k, bf16, q, f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3)));
}

/**
 * Values [q, k) of the row added to acc, eight at a time, each block of eight checked for f16 infinities and NaN and
 * converted exactly (rowHalf's tail, and the whole of a row that holds one), then one by one.
 */
function rowHalfChecked(wr: usize, xr: usize, k: i32, bf16: bool, q: i32, acc: v128): f32 {
  let a = acc;
  for (; q + 8 <= k; q += 8) {
    const o = <usize>q << 2, hv = v128.load(wr + (<usize>q << 1)), special = hasSpecial(hv, bf16);
    a = fma4(v128.load(xr + o, 16), hi(hv, bf16, special), fma4(v128.load(xr + o), lo(hv, bf16, special), a));
  }
  let y = hsum(a);
  for (; q < k; q++) y += load<f32>(xr + (<usize>q << 2)) * one(wr + (<usize>q << 1), bf16);
  return y;
}

/**
 * Tile t of K_HMATMUL_N: columns [16 t, 16 t + 16) of y[m, n] = g[m, k] B[k, n] with B 2-byte (the input gradient
 * g W of y = x W^T). Each strip of 16 columns keeps four accumulators per row of g; B is widened in registers.
 */
export function hmatmulNTile(p: usize, t: i32): void {
  const bf16 = pi(p, ARG) != 0;
  const g = pu(p, ARG + 1), b = pu(p, ARG + 2), out = pu(p, ARG + 3);
  const m = pi(p, ARG + 4), n = pi(p, ARG + 5), k = pi(p, ARG + 6);
  const c0 = t << 4, c1 = min(n, c0 + 16);
  const ldb = <usize>n << 1;
  for (let i = 0; i < m; i++) {
    const gr = g + (<usize>i * <usize>k << 2), yr = out + (<usize>i * <usize>n << 2);
    if (c1 - c0 == 16) {
      let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
      let bp = b + (<usize>c0 << 1);
      for (let q = 0; q < k; q++) {
        const gv = v128.load32_splat(gr + (<usize>q << 2));
        const h0 = v128.load(bp), h1 = v128.load(bp, 16), s0 = hasSpecial(h0, bf16), s1 = hasSpecial(h1, bf16);
        a0 = fma4(gv, lo(h0, bf16, s0), a0);
        a1 = fma4(gv, hi(h0, bf16, s0), a1);
        a2 = fma4(gv, lo(h1, bf16, s1), a2);
        a3 = fma4(gv, hi(h1, bf16, s1), a3);
        bp += ldb;
      }
      const yp = yr + (<usize>c0 << 2);
      v128.store(yp, a0);
      v128.store(yp, a1, 16);
      v128.store(yp, a2, 32);
      v128.store(yp, a3, 48);
    } else {
      for (let c = c0; c < c1; c++) {
        let y: f32 = 0;
        for (let q = 0; q < k; q++) y += load<f32>(gr + (<usize>q << 2)) * one(b + <usize>q * ldb + (<usize>c << 1), bf16);
        store<f32>(yr + (<usize>c << 2), y);
      }
    }
  }
}
