// Products with weights in ggml's Q8_0 / Q4_0 blocks, never dequantized: y[M, N] = x[M, K] W^T + b, as llama.cpp
// computes them. x is first quantized per block of 32 to int8 with a float32 scale (quantizeActTile); each output is
// then a sum over blocks of (integer dot of the block) * d_w * d_x, the integer dot in SIMD, four blocks' scales at a
// time. Twin of the reference src/backend/cpu/quant.ts: the same rounding and order of float operations (bit-equal).

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
let Q_LOW4 = i8x16.splat(0), Q_EIGHT = i8x16.splat(0), H_CLEAR = i32x4.splat(0), H_REBIAS = f32x4.splat(0), H_EXP32 = i32x4.splat(0);
/** Sets this file's vector constants (initKernels calls it). */
export function initQuantKernels(): void {
  Q_LOW4 = i8x16.splat(0x0f);
  Q_EIGHT = i8x16.splat(8);
  H_CLEAR = i32x4.splat(0x8fffffff);
  H_REBIAS = f32x4.splat(reinterpret<f32>(0x77800000)); // 2^112
  H_EXP32 = i32x4.splat(0x7c000000);
}

/**
 * Integer dot of a Q8_0 block (at wb) with x's block widened to int16 (x0..x3: its four vectors, loaded once for every
 * weight row that uses them; the quantizing job writes that copy): the weights sign-extended to int16 as they are
 * loaded, 8 at a time; 4 partial sums. No relaxed path: both operands use all 8 bits. (Moving w's sign onto x to make
 * |w| the 7-bit operand was tried: no faster here, and its sums differed from the reference under Node 20; not pursued.)
 */
@inline function blockQ8(wb: usize, x0: v128, x1: v128, x2: v128, x3: v128): v128 {
  let s = i32x4.dot_i16x8_s(v128.load8x8_s(wb, 2), x0);
  s = i32x4.add(s, i32x4.dot_i16x8_s(v128.load8x8_s(wb, 10), x1));
  s = i32x4.add(s, i32x4.dot_i16x8_s(v128.load8x8_s(wb, 18), x2));
  return i32x4.add(s, i32x4.dot_i16x8_s(v128.load8x8_s(wb, 26), x3));
}

/**
 * The same for a Q4_0 block: weight j is (low nibble of byte j) - 8, weight j + 16 the high nibble - 8. Relaxed SIMD:
 * x's int8 block (a, b: its 32 values) dotted with the nibbles (0..15, top bit clear: the 7-bit operand) into int16
 * pairs, both halves added in int16 (each lane at most 4 * 127 * 15), then widened; the caller subtracts 8 * sum(x).
 * Plain SIMD: nibbles - 8 widened to int16, dotted with x's int16 copy (a..d).
 */
@inline function blockQ4(wb: usize, a: v128, b: v128, c: v128, d: v128, low4: v128, eight: v128): v128 {
  const bytes = v128.load(wb, 2);
  const lo = v128.and(bytes, low4), hi = v128.and(i16x8.shr_u(bytes, 4), low4);
  if (ASC_FEATURE_RELAXED_SIMD) {
    return i32x4.extadd_pairwise_i16x8_s(i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(a, lo), i16x8.relaxed_dot_i8x16_i7x16_s(b, hi)));
  }
  const l = i8x16.sub(lo, eight), h = i8x16.sub(hi, eight);
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

/** Four IEEE half values (zero-extended in i32 lanes) -> float32, exact (subnormals by a power-of-two scale, inf / NaN kept). */
@inline export function halfToF32x4(h: v128): v128 {
  const mag = i32x4.shl(v128.and(h, i32x4.splat(0x7fff)), 13);
  const special = i32x4.eq(v128.and(h, i32x4.splat(0x7c00)), i32x4.splat(0x7c00));
  const v = v128.bitselect(v128.or(mag, i32x4.splat(0x7f800000)), f32x4.mul(mag, f32x4.splat(reinterpret<f32>(0x77800000))), special); // 2^112
  return v128.or(v, i32x4.shl(v128.and(h, i32x4.splat(0x8000)), 16));
}

/** Blocks of a weight row taken per pass through the thread's scratch (a multiple of 4: the passes keep the order). */
const CHUNK_BLOCKS: i32 = 1024;
/** Scratch bytes of one row's pass (4 int32 partial sums per block). */
const CHUNK_BYTES: usize = <usize>CHUNK_BLOCKS << 4;

/**
 * Pass 1 over blocks [c, e) of one weight row (w1 = 0) or of two rows at once (w0, w1): each block's 4 partial integer
 * sums into the thread's scratch (row 0 at sc, row 1 at sc + CHUNK_BYTES). Two rows share each load of x's block. One
 * block per iteration: unrolled by four, V8 (11.3) hoists the loads of all four blocks, runs out of registers and
 * spills; one block (of two rows) stays in registers.
 */
@inline function blockSums(q4: bool, w0: usize, w1: usize, q8: usize, q16: usize, c: i32, e: i32, sc: usize): void {
  const rs: usize = q4 ? Q4_BYTES : Q8_BYTES;
  // Pointers stepped per block (V8 does not strength-reduce b * 18), the constants in locals (a global is loaded at
  // every use).
  const low4 = Q_LOW4, eight = Q_EIGHT;
  let wa = w0 + <usize>c * rs, wb = w1 + <usize>c * rs, x8 = q8 + (<usize>c << 5), x16 = q16 + (<usize>c << 6), sp = sc;
  for (const se = sc + (<usize>(e - c) << 4); sp < se; sp += 16) {
    if (q4 && ASC_FEATURE_RELAXED_SIMD) {
      const a = v128.load(x8), b = v128.load(x8, 16);
      v128.store(sp, blockQ4(wa, a, b, a, b, low4, eight));
      if (w1 != 0) v128.store(sp + CHUNK_BYTES, blockQ4(wb, a, b, a, b, low4, eight));
    } else {
      const a = v128.load(x16), b = v128.load(x16, 16), cc = v128.load(x16, 32), d = v128.load(x16, 48);
      v128.store(sp, q4 ? blockQ4(wa, a, b, cc, d, low4, eight) : blockQ8(wa, a, b, cc, d));
      if (w1 != 0) v128.store(sp + CHUNK_BYTES, q4 ? blockQ4(wb, a, b, cc, d, low4, eight) : blockQ8(wb, a, b, cc, d));
    }
    wa += rs;
    wb += rs;
    x8 += 32;
    x16 += 64;
  }
}

/**
 * Pass 2 over blocks [c, e) of row w: the partial sums from scratch four blocks at a time (the horizontal sums, the
 * scales, the float accumulation into acc's lanes: lane l takes blocks 4i + l); returns acc and leaves the last
 * (e - c) % 4 blocks to the caller.
 */
@inline function scaleSums(q4: bool, w: usize, xd: usize, xs: usize, c: i32, e: i32, sc: usize, acc: v128): v128 {
  const rs: usize = q4 ? Q4_BYTES : Q8_BYTES;
  let o = w + <usize>c * rs, pd = xd + (<usize>c << 2), ps = xs + (<usize>c << 2), sp = sc;
  for (let b = c; b + 4 <= e; b += 4) {
    let isum = quadSum(pairSum(v128.load(sp), v128.load(sp, 16)), pairSum(v128.load(sp, 32), v128.load(sp, 48)));
    if (q4 && ASC_FEATURE_RELAXED_SIMD) isum = i32x4.sub(isum, i32x4.shl(v128.load(ps), 3));
    // The four scales from the weight rows (not from scratch: one load of four 2-byte stores just made would wait for
    // them to retire instead of taking them from the store buffer), each moved to the top half of its lane.
    let h = i32x4.splat(<i32>load<u16>(o) << 16);
    h = i32x4.replace_lane(h, 1, <i32>load<u16>(o + rs) << 16);
    h = i32x4.replace_lane(h, 2, <i32>load<u16>(o + 2 * rs) << 16);
    h = i32x4.replace_lane(h, 3, <i32>load<u16>(o + 3 * rs) << 16);
    // Shifted right by 3 with the sign: exponent and mantissa land in float32's fields (the exponent still biased by
    // 15), the three copies of the sign are cleared, and a multiply by 2^112 rebiases the exponent (subnormals come out
    // exact the same way), as in half.ts; infinities and NaN (exponent 31) take halfToF32x4.
    const d = v128.any_true(i32x4.eq(v128.and(h, H_EXP32), H_EXP32))
      ? halfToF32x4(i32x4.shr_u(h, 16))
      : f32x4.mul(v128.and(i32x4.shr_s(h, 3), H_CLEAR), H_REBIAS);
    acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(isum), f32x4.mul(d, v128.load(pd))));
    sp += 64;
    o += 4 * rs;
    pd += 16;
    ps += 16;
  }
  return acc;
}

/** The last nb % 4 blocks of row w, one by one after acc's lanes are added (their partial sums at sc from block c). */
@inline function rowTotal(q4: bool, w: usize, xd: usize, xs: usize, c: i32, nb: i32, sc: usize, acc: v128): f32 {
  const rs: usize = q4 ? Q4_BYTES : Q8_BYTES;
  let y = (f32x4.extract_lane(acc, 0) + f32x4.extract_lane(acc, 1)) + (f32x4.extract_lane(acc, 2) + f32x4.extract_lane(acc, 3));
  for (let b = nb & ~3; b < nb; b++) {
    let isum = hsumI32(v128.load(sc + (<usize>(b - c) << 4)));
    if (q4 && ASC_FEATURE_RELAXED_SIMD) isum -= 8 * load<i32>(xs + (<usize>b << 2));
    y += <f32>isum * (halfToF32(load<u16>(w + <usize>b * rs)) * load<f32>(xd + (<usize>b << 2)));
  }
  return y;
}

/**
 * Outputs of weight rows w0 and (w1 != 0) w1: for each, the sum over blocks of float32(isum_b) * float32(d_w,b * d_x,b).
 * Blocks go four at a time into the lanes of one accumulator (lane l: blocks 4i + l), which are added as
 * (l0 + l1) + (l2 + l3); the last nb % 4 blocks follow one by one. src/backend/cpu/quant.ts keeps the same order.
 * Two passes over each run of blocks: the integer sums of both rows (blockSums), then the float accumulation of each
 * (scaleSums). Measured, one thread, [2048, 768] (one row per call): Q4_0 7.0 -> 9.0 GB/s of weights, Q8_0 12.0 -> 13.7
 * (relaxed build) against one loop unrolled by four.
 */
@inline function dotRows(q4: bool, w0: usize, w1: usize, q8: usize, q16: usize, xd: usize, xs: usize, nb: i32, sc: usize, out: usize): void {
  let acc0 = f32x4.splat(0), acc1 = f32x4.splat(0);
  for (let c = 0; c < nb; c += CHUNK_BLOCKS) {
    const e = min(nb, c + CHUNK_BLOCKS);
    blockSums(q4, w0, w1, q8, q16, c, e, sc);
    acc0 = scaleSums(q4, w0, xd, xs, c, e, sc, acc0);
    if (w1 != 0) acc1 = scaleSums(q4, w1, xd, xs, c, e, sc + CHUNK_BYTES, acc1);
    if (e == nb) {
      store<f32>(out, rowTotal(q4, w0, xd, xs, c, nb, sc, acc0));
      if (w1 != 0) store<f32>(out, rowTotal(q4, w1, xd, xs, c, nb, sc + CHUNK_BYTES, acc1), 4);
    }
  }
}

/**
 * Tile t of K_QMATMUL: weight rows (outputs) [t * rpt, ..) for every row of x, two weight rows at a time; each weight
 * row is read once.
 */
export function qmatmulTile(p: usize, t: i32, scratch: usize): void {
  const type = pi(p, ARG), w = pu(p, ARG + 1), q8 = pu(p, ARG + 2), q16 = pu(p, ARG + 3), xd = pu(p, ARG + 4), xs = pu(p, ARG + 5);
  const out = pu(p, ARG + 6), bias = pu(p, ARG + 7);
  const m = pi(p, ARG + 8), n = pi(p, ARG + 9), k = pi(p, ARG + 10), rpt = pi(p, ARG + 11);
  const nb = k / QK;
  const rowBytes = <usize>nb * (type == 0 ? Q8_BYTES : Q4_BYTES);
  const j0 = t * rpt, j1 = min(n, j0 + rpt);
  for (let j = j0; j < j1; j += 2) {
    // Two outputs per pass (the second: 0 = none), side by side in y; x's row i for each.
    const wa = w + <usize>j * rowBytes, wb = j + 1 < j1 ? wa + rowBytes : 0;
    for (let i = 0; i < m; i++) {
      const xb = <usize>i * <usize>nb, y = out + ((<usize>i * <usize>n + <usize>j) << 2);
      if (type == 0) dotRows(false, wa, wb, q8 + (xb << 5), q16 + (xb << 6), xd + (xb << 2), 0, nb, scratch, y);
      else dotRows(true, wa, wb, q8 + (xb << 5), q16 + (xb << 6), xd + (xb << 2), xs + (xb << 2), nb, scratch, y);
      if (bias != 0) {
        store<f32>(y, load<f32>(y) + load<f32>(bias + (<usize>j << 2)));
        if (wb != 0) store<f32>(y, load<f32>(y, 4) + load<f32>(bias + (<usize>(j + 1) << 2)), 4);
      }
    }
  }
}
