// Products with weights in ggml's Q8_0 / Q4_0 blocks, never dequantized: y[M, N] = x[M, K] W^T + b, as llama.cpp
// computes them. x is first quantized per block of 32 to int8 with a float32 scale (quantizeActTile); each output is
// then a sum over blocks of (integer dot of the block) * d_w * d_x, the integer dot in SIMD. Twin of the reference
// src/backend/cpu/quant.ts, with the same rounding and the same order of float operations (results are bit-equal).

import { ARG, pi, pu } from './common';

const QK: i32 = 32;
const Q8_BYTES: usize = 34; // f16 d, 32 x int8
const Q4_BYTES: usize = 18; // f16 d, 16 bytes of nibble pairs

/** IEEE half bits -> float32, exact (subnormals through a power-of-two scaling, inf / NaN kept). */
@inline function halfToF32(h: u32): f32 {
  const mag = (h & 0x7fff) << 13;
  let v = (h & 0x7c00) == 0x7c00 ? reinterpret<f32>(mag | 0x7f800000) : reinterpret<f32>(mag) * reinterpret<f32>(0x77800000); // 2^112
  return reinterpret<f32>(reinterpret<u32>(v) | ((h & 0x8000) << 16));
}

@inline function hsumI32(s: v128): i32 {
  const t = i32x4.add(s, swapHalves(s));
  return i32x4.extract_lane(t, 0) + i32x4.extract_lane(t, 1);
}
@inline function swapHalves(s: v128): v128 {
  return v128.shuffle<i32>(s, s, 2, 3, 0, 1);
}

/**
 * Tile t of K_QUANT_ACT: rows [t * rpt, ..) of x [M, K] (float32) quantized per block of 32 like ggml's
 * quantize_row_q8_0: d = amax / 127, q = round-to-nearest-even(x / d) (x * (1 / d), as ggml). Writes q as int8 and
 * int16 (the plain-SIMD dot reads the widened copy), d, and the sum of q of each block (Q4_0's offset of 8).
 */
export function quantActTile(p: usize, t: i32): void {
  const x = pu(p, ARG), q8 = pu(p, ARG + 1), q16 = pu(p, ARG + 2), xd = pu(p, ARG + 3), xs = pu(p, ARG + 4);
  const m = pi(p, ARG + 5), k = pi(p, ARG + 6), rpt = pi(p, ARG + 7);
  const nb = k / QK;
  const r0 = t * rpt, r1 = min(m, r0 + rpt);
  for (let b = <usize>r0 * <usize>nb, e = <usize>r1 * <usize>nb; b < e; b++) {
    const src = x + (b << 7);
    const v0 = v128.load(src), v1 = v128.load(src, 16), v2 = v128.load(src, 32), v3 = v128.load(src, 48);
    const v4 = v128.load(src, 64), v5 = v128.load(src, 80), v6 = v128.load(src, 96), v7 = v128.load(src, 112);
    // max (not pmax): a NaN anywhere in the block makes d NaN, so the outputs that use it are NaN.
    const a = f32x4.max(f32x4.max(f32x4.max(f32x4.abs(v0), f32x4.abs(v1)), f32x4.max(f32x4.abs(v2), f32x4.abs(v3))),
      f32x4.max(f32x4.max(f32x4.abs(v4), f32x4.abs(v5)), f32x4.max(f32x4.abs(v6), f32x4.abs(v7))));
    const amax = max(max(f32x4.extract_lane(a, 0), f32x4.extract_lane(a, 1)), max(f32x4.extract_lane(a, 2), f32x4.extract_lane(a, 3)));
    const d: f32 = amax / 127;
    const id = f32x4.splat(d != 0 ? <f32>1 / d : 0);
    const c0 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v0, id))), c1 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v1, id)));
    const c2 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v2, id))), c3 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v3, id)));
    const c4 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v4, id))), c5 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v5, id)));
    const c6 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v6, id))), c7 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v7, id)));
    const h0 = i16x8.narrow_i32x4_s(c0, c1), h1 = i16x8.narrow_i32x4_s(c2, c3), h2 = i16x8.narrow_i32x4_s(c4, c5), h3 = i16x8.narrow_i32x4_s(c6, c7);
    const d16 = q16 + (b << 6);
    v128.store(d16, h0);
    v128.store(d16, h1, 16);
    v128.store(d16, h2, 32);
    v128.store(d16, h3, 48);
    const d8 = q8 + (b << 5);
    v128.store(d8, i8x16.narrow_i16x8_s(h0, h1));
    v128.store(d8, i8x16.narrow_i16x8_s(h2, h3), 16);
    store<f32>(xd + (b << 2), d);
    const s = i32x4.add(i32x4.add(i32x4.extadd_pairwise_i16x8_s(h0), i32x4.extadd_pairwise_i16x8_s(h1)),
      i32x4.add(i32x4.extadd_pairwise_i16x8_s(h2), i32x4.extadd_pairwise_i16x8_s(h3)));
    store<i32>(xs + (b << 2), hsumI32(s));
  }
}

/** sum_b (integer dot of block b) * (d_w * d_x) over one Q8_0 weight row and one quantized x row, in block order. */
@inline function dotQ8(w: usize, q16: usize, xd: usize, nb: i32): f32 {
  let acc: f32 = 0;
  for (let b = 0; b < nb; b++) {
    const wb = w + <usize>b * Q8_BYTES, xp = q16 + (<usize>b << 6);
    const w0 = v128.load(wb, 2), w1 = v128.load(wb, 18);
    let s = i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(w0), v128.load(xp));
    s = i32x4.add(s, i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(w0), v128.load(xp, 16)));
    s = i32x4.add(s, i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(w1), v128.load(xp, 32)));
    s = i32x4.add(s, i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(w1), v128.load(xp, 48)));
    const scale = halfToF32(load<u16>(wb)) * load<f32>(xd + (<usize>b << 2));
    acc += <f32>hsumI32(s) * scale;
  }
  return acc;
}

/**
 * The same for a Q4_0 row: weight j of a block is (low nibble of byte j) - 8, weight j + 16 the high nibble - 8.
 * Relaxed SIMD: dot(x, nibble) with the nibbles (0..15, top bit clear) as the 7-bit operand, minus 8 * sum(x);
 * plain SIMD: nibbles - 8 widened to int16.
 */
@inline function dotQ4(w: usize, q8: usize, q16: usize, xd: usize, xs: usize, nb: i32): f32 {
  let acc: f32 = 0;
  const lowMask = i8x16.splat(0x0f), eight = i8x16.splat(8);
  for (let b = 0; b < nb; b++) {
    const wb = w + <usize>b * Q4_BYTES;
    const bytes = v128.load(wb, 2);
    const lo = v128.and(bytes, lowMask), hi = i8x16.shr_u(bytes, 4);
    let isum: i32;
    if (ASC_FEATURE_RELAXED_SIMD) {
      const xp = q8 + (<usize>b << 5);
      let s = i32x4.relaxed_dot_i8x16_i7x16_add_s(v128.load(xp), lo, i32x4.splat(0));
      s = i32x4.relaxed_dot_i8x16_i7x16_add_s(v128.load(xp, 16), hi, s);
      isum = hsumI32(s) - 8 * load<i32>(xs + (<usize>b << 2));
    } else {
      const xp = q16 + (<usize>b << 6);
      const l = i8x16.sub(lo, eight), h = i8x16.sub(hi, eight);
      let s = i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(l), v128.load(xp));
      s = i32x4.add(s, i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(l), v128.load(xp, 16)));
      s = i32x4.add(s, i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(h), v128.load(xp, 32)));
      s = i32x4.add(s, i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(h), v128.load(xp, 48)));
      isum = hsumI32(s);
    }
    const scale = halfToF32(load<u16>(wb)) * load<f32>(xd + (<usize>b << 2));
    acc += <f32>isum * scale;
  }
  return acc;
}

/** Tile t of K_QMATMUL: weight rows (outputs) [t * rpt, ..) for every row of x; each weight row is read once. */
export function qmatmulTile(p: usize, t: i32): void {
  const type = pi(p, ARG), w = pu(p, ARG + 1), q8 = pu(p, ARG + 2), q16 = pu(p, ARG + 3), xd = pu(p, ARG + 4), xs = pu(p, ARG + 5);
  const out = pu(p, ARG + 6), bias = pu(p, ARG + 7);
  const m = pi(p, ARG + 8), n = pi(p, ARG + 9), k = pi(p, ARG + 10), rpt = pi(p, ARG + 11);
  const nb = k / QK;
  const rowBytes = <usize>nb * (type == 0 ? Q8_BYTES : Q4_BYTES);
  const j0 = t * rpt, j1 = min(n, j0 + rpt);
  for (let j = j0; j < j1; j++) {
    const wr = w + <usize>j * rowBytes;
    const bj: f32 = bias != 0 ? load<f32>(bias + (<usize>j << 2)) : 0;
    for (let i = 0; i < m; i++) {
      const xb = <usize>i * <usize>nb;
      const y = type == 0
        ? dotQ8(wr, q16 + (xb << 6), xd + (xb << 2), nb)
        : dotQ4(wr, q8 + (xb << 5), q16 + (xb << 6), xd + (xb << 2), xs + (xb << 2), nb);
      store<f32>(out + ((<usize>i * <usize>n + <usize>j) << 2), bias != 0 ? y + bj : y);
    }
  }
}
