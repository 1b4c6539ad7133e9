// Products with weights in ggml's Q8_0 / Q4_0 blocks, never dequantized: y[M, N] = x[M, K] W^T + b, as llama.cpp
// computes them. x is first quantized per block of 32 to int8 with a float32 scale (quantizeActTile); each output is
// then a sum over blocks of (integer dot of the block) * d_w * d_x, the integer dots in SIMD, four weight rows at a time
// (interleaved by WasmBackend.uploadQuant, src/backend/wasm/quant-layout.ts). Twin of the reference
// src/backend/cpu/quant.ts: the same rounding and order of float operations (bit-equal).

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

// Vector constants as globals set once (see common.ts: a v128.const inside a loop is rebuilt at every use by V8).
let Q_LOW4 = i8x16.splat(0), Q_EIGHT = i8x16.splat(0), H_CLEAR = i32x4.splat(0), H_REBIAS = f32x4.splat(0);
/** Sets this file's vector constants (initKernels calls it). */
export function initQuantKernels(): void {
  Q_LOW4 = i8x16.splat(0x0f);
  Q_EIGHT = i8x16.splat(8);
  H_CLEAR = i32x4.splat(0x8fffffff);
  H_REBIAS = f32x4.splat(reinterpret<f32>(0x77800000)); // 2^112
}

/**
 * Integer dot of a Q8_0 block's 32 weights (at qp) with x's block widened to int16 (x0..x3: its four vectors, loaded
 * once for every weight row that uses them; the quantizing job writes that copy): the weights sign-extended to int16 as
 * they are loaded, 8 at a time; 4 partial sums. No relaxed path: both operands use all 8 bits. (Moving w's sign onto x
 * to make |w| the 7-bit operand was tried: no faster here, and its sums differed from the reference under Node 20.)
 */
@inline function blockQ8(qp: usize, x0: v128, x1: v128, x2: v128, x3: v128): v128 {
  let s = i32x4.dot_i16x8_s(v128.load8x8_s(qp), x0);
  s = i32x4.add(s, i32x4.dot_i16x8_s(v128.load8x8_s(qp, 8), x1));
  s = i32x4.add(s, i32x4.dot_i16x8_s(v128.load8x8_s(qp, 16), x2));
  return i32x4.add(s, i32x4.dot_i16x8_s(v128.load8x8_s(qp, 24), x3));
}

/**
 * Relaxed SIMD, a Q4_0 block's 16 bytes (at qp; weight j is the low nibble of byte j minus 8, weight j + 16 the high
 * nibble minus 8): x's int8 block (a, c: its 32 values) dotted with the nibbles (0..15, top bit clear: the 7-bit
 * operand) into int16 pairs, both halves added in int16: eight partial sums, each at most 4 * 127 * 15 = 7,620 in
 * magnitude. The caller subtracts 8 * sum(x).
 */
@inline function nibbleDot(qp: usize, a: v128, c: v128, low4: v128): v128 {
  const bytes = v128.load(qp);
  const lo = v128.and(bytes, low4), hi = v128.and(i16x8.shr_u(bytes, 4), low4);
  return i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(a, lo), i16x8.relaxed_dot_i8x16_i7x16_s(c, hi));
}

/**
 * A Q4_0 block's integer dot as 4 partial int32 sums. Relaxed SIMD: nibbleDot widened (8 * sum(x) left to the caller).
 * Plain SIMD: nibbles - 8 widened to int16, dotted with x's int16 copy (a..d).
 */
@inline function blockQ4(qp: usize, a: v128, b: v128, c: v128, d: v128, low4: v128, eight: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return i32x4.extadd_pairwise_i16x8_s(nibbleDot(qp, a, b, low4));
  const bytes = v128.load(qp);
  const l = i8x16.sub(v128.and(bytes, low4), eight), h = i8x16.sub(v128.and(i16x8.shr_u(bytes, 4), low4), eight);
  let s = i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(l), a);
  s = i32x4.add(s, i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(l), b));
  s = i32x4.add(s, i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(h), c));
  return i32x4.add(s, i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(h), d));
}

/** [a0 + a2, b0 + b2, a1 + a3, b1 + b3]: half of a horizontal sum of two i32x4. */
@inline function pairSum(a: v128, b: v128): v128 {
  return i32x4.add(v128.shuffle<i32>(a, b, 0, 4, 1, 5), v128.shuffle<i32>(a, b, 2, 6, 3, 7));
}
/** [sum(a), sum(b), sum(c), sum(d)] from pairSum(a, b) and pairSum(c, d). */
@inline function quadSum(ab: v128, cd: v128): v128 {
  return i32x4.add(v128.shuffle<i32>(ab, cd, 0, 1, 4, 5), v128.shuffle<i32>(ab, cd, 2, 3, 6, 7));
}

/** Integer dot of one block with x's int16 block (a, c, e, f) as 4 partial int32 sums (T: i8 = Q8_0, u8 = Q4_0). */
@inline function blockDot16<T>(qp: usize, a: v128, c: v128, e: v128, f: v128, low4: v128, eight: v128): v128 {
  return isSigned<T>() ? blockQ8(qp, a, c, e, f) : blockQ4(qp, a, c, e, f, low4, eight);
}

/** Integer dot of one block with x's block (at x8 / x16) as 4 partial int32 sums. */
@inline function blockDot<T>(qp: usize, x8: usize, x16: usize, low4: v128, eight: v128): v128 {
  if (!isSigned<T>() && ASC_FEATURE_RELAXED_SIMD) return blockQ4(qp, v128.load(x8), v128.load(x8, 16), low4, low4, low4, eight);
  return blockDot16<T>(qp, v128.load(x16), v128.load(x16, 16), v128.load(x16, 32), v128.load(x16, 48), low4, eight);
}

/**
 * One weight row in ggml's own layout (w: its first block), block by block: the sum over blocks, in order, of
 * float32(isum_b) * float32(d_w,b * d_x,b), the scale converted exactly (infinities and NaN included). The path of rows
 * that are not in a group of four, and of whole matrices with a non-finite scale (see WasmBackend.uploadQuant).
 */
function rowDot<T>(w: usize, x8: usize, x16: usize, xd: usize, xs: usize, nb: i32): f32 {
  const q4 = !isSigned<T>(), rs: usize = q4 ? Q4_BYTES : Q8_BYTES;
  const low4 = Q_LOW4, eight = Q_EIGHT;
  let y: f32 = 0;
  for (let b = 0; b < nb; b++) {
    let isum = hsumI32(blockDot<T>(w + 2, x8, x16, low4, eight));
    if (q4 && ASC_FEATURE_RELAXED_SIMD) isum -= 8 * load<i32>(xs);
    y += <f32>isum * (halfToF32(load<u16>(w)) * load<f32>(xd));
    w += rs;
    x8 += 32;
    x16 += 64;
    xd += 4;
    xs += 4;
  }
  return y;
}

/**
 * Outputs of one group of four weight rows (g: the group, interleaved by uploadQuant: per block, the four f16 scales,
 * then the four rows' quants) for one row of x, as the lanes of one float32 vector: row r's output is the sum over
 * blocks, in order, of float32(isum_b) * float32(d_w,b * d_x,b), as rowDot computes it. The weights are read in
 * order (four rows side by side defeat the hardware prefetcher otherwise: Q8_0 fell from 14 to 4.6 GB/s), each block
 * of x once for the four rows; the four integer dots are reduced to four exact sums with shuffles, and the scales and
 * the float accumulation are done four rows at a time (no horizontal sum of floats). Measured, one thread, the decode's
 * matrices out of cache: Q4_0 9.0 -> 14.0 GB/s of weights, Q8_0 14.0 -> 17.5 GB/s (against two rows per pass, in
 * ggml's layout, through scratch).
 */
@inline function dot4<T>(g: usize, q8: usize, q16: usize, xd: usize, xs: usize, nb: i32): v128 {
  const q4 = !isSigned<T>(), qs: usize = q4 ? 16 : 32, gb: usize = 8 + 4 * qs;
  // Constants in locals, not globals (a global is loaded at every use); pointers stepped per block (V8 does not
  // strength-reduce b * 72).
  const low4 = Q_LOW4, eight = Q_EIGHT, clear = H_CLEAR, rebias = H_REBIAS;
  let acc = f32x4.splat(0);
  let p = g, x8 = q8, x16 = q16, pd = xd, ps = xs;
  for (let b = 0; b < nb; b++) {
    let isum: v128;
    if (q4 && ASC_FEATURE_RELAXED_SIMD) {
      // Eight int16 partial sums per row; rows paired word by word and added in int16 (at most 4 * 7,620 after both
      // steps), then widened: [sum row 0, .., sum row 3].
      const a = v128.load(x8), c = v128.load(x8, 16);
      const r0 = nibbleDot(p + 8, a, c, low4), r1 = nibbleDot(p + 24, a, c, low4);
      const r2 = nibbleDot(p + 40, a, c, low4), r3 = nibbleDot(p + 56, a, c, low4);
      const v01 = i16x8.add(v128.shuffle<i32>(r0, r1, 0, 4, 1, 5), v128.shuffle<i32>(r0, r1, 2, 6, 3, 7));
      const v23 = i16x8.add(v128.shuffle<i32>(r2, r3, 0, 4, 1, 5), v128.shuffle<i32>(r2, r3, 2, 6, 3, 7));
      const u = i16x8.add(v128.shuffle<i64>(v01, v23, 0, 2), v128.shuffle<i64>(v01, v23, 1, 3));
      isum = i32x4.sub(i32x4.extadd_pairwise_i16x8_s(u), i32x4.shl(v128.load32_splat(ps), 3));
    } else {
      // x's int16 block loaded once for the four rows.
      const a = v128.load(x16), c = v128.load(x16, 16), e = v128.load(x16, 32), f = v128.load(x16, 48);
      isum = quadSum(pairSum(blockDot16<T>(p + 8, a, c, e, f, low4, eight), blockDot16<T>(p + 8 + qs, a, c, e, f, low4, eight)),
        pairSum(blockDot16<T>(p + 8 + 2 * qs, a, c, e, f, low4, eight), blockDot16<T>(p + 8 + 3 * qs, a, c, e, f, low4, eight)));
    }
    // The four scales, each f16 moved to the top half of its lane and shifted right by 3 with the sign: exponent and
    // mantissa land in float32's fields (the exponent still biased by 15), the three copies of the sign are cleared,
    // and a multiply by 2^112 rebiases the exponent (subnormals come out exact the same way), as in half.ts. No
    // infinity or NaN here: uploadQuant leaves such matrices in ggml's layout, for rowDot.
    const h = v128.shuffle<i16>(i32x4.splat(0), v128.load64_zero(p), 0, 8, 1, 9, 2, 10, 3, 11);
    const d = f32x4.mul(f32x4.mul(v128.and(i32x4.shr_s(h, 3), clear), rebias), v128.load32_splat(pd));
    acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(isum), d));
    p += gb;
    x8 += 32;
    x16 += 64;
    pd += 4;
    ps += 4;
  }
  return acc;
}

/** Job parameter slots per weight of a K_QMATMUL job: w, out, bias, n, plain, first tile. */
const QW_SLOTS: i32 = 6;

/**
 * Tile t of K_QMATMUL: y_w = x W^T + b_w for up to four weights W of one type that share x (quantized once), the
 * tiles of each weight after those of the one before. A tile is rpt output rows (a multiple of 4) of one weight, for
 * every row of x, each weight row read once: groups of four (dot4) where uploadQuant interleaved them (plain = 0), the
 * rest one by one (rowDot).
 */
export function qmatmulTile(p: usize, t: i32): void {
  const type = pi(p, ARG), q8 = pu(p, ARG + 1), q16 = pu(p, ARG + 2), xd = pu(p, ARG + 3), xs = pu(p, ARG + 4);
  const m = pi(p, ARG + 5), k = pi(p, ARG + 6), rpt = pi(p, ARG + 7), count = pi(p, ARG + 8);
  // The weight this tile belongs to: the last whose first tile is at or before t.
  let o = ARG + 9;
  while (o + QW_SLOTS < ARG + 9 + count * QW_SLOTS && pi(p, o + QW_SLOTS + 5) <= t) o += QW_SLOTS;
  const w = pu(p, o), out = pu(p, o + 1), bias = pu(p, o + 2), n = pi(p, o + 3), plain = pi(p, o + 4), lt = t - pi(p, o + 5);
  const nb = k / QK;
  const rowBytes = <usize>nb * (type == 0 ? Q8_BYTES : Q4_BYTES);
  const j0 = lt * rpt, j1 = min(n, j0 + rpt), grouped = plain != 0 ? j0 : min(j1, n & ~3);
  for (let j = j0; j < grouped; j += 4) {
    const g = w + <usize>j * rowBytes;
    for (let i = 0; i < m; i++) {
      const xb = <usize>i * <usize>nb, y = out + ((<usize>i * <usize>n + <usize>j) << 2);
      let v = type == 0
        ? dot4<i8>(g, q8 + (xb << 5), q16 + (xb << 6), xd + (xb << 2), 0, nb)
        : dot4<u8>(g, q8 + (xb << 5), q16 + (xb << 6), xd + (xb << 2), xs + (xb << 2), nb);
      if (bias != 0) v = f32x4.add(v, v128.load(bias + (<usize>j << 2)));
      v128.store(y, v);
    }
  }
  for (let j = grouped; j < j1; j++) {
    const r = w + <usize>j * rowBytes;
    for (let i = 0; i < m; i++) {
      const xb = <usize>i * <usize>nb, y = out + ((<usize>i * <usize>n + <usize>j) << 2);
      let v = type == 0
        ? rowDot<i8>(r, q8 + (xb << 5), q16 + (xb << 6), xd + (xb << 2), 0, nb)
        : rowDot<u8>(r, q8 + (xb << 5), q16 + (xb << 6), xd + (xb << 2), xs + (xb << 2), nb);
      if (bias != 0) v += load<f32>(bias + (<usize>j << 2));
      store<f32>(y, v);
    }
  }
}
