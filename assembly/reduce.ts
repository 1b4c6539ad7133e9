// Reductions over the middle axis of [outer, size, inner]: sum / max / min, argmax / argmin, cumsum.
// Tiles are (group of outer rows) x (chunk of inner columns). Float32 sums accumulate in f64 (blocks of
// f32 SIMD partial sums for contiguous rows), so long reductions stay accurate.

import { ARG, F32, ldi, pi, pu, sti } from './common';

const SUM = 0, MAX = 1;

/** Sum of n contiguous f32 in f64: f32x4 partial sums over blocks of 1024, folded into f64. */
function sumRow(x: usize, n: i32): f64 {
  let total: f64 = 0;
  let i = 0;
  while (i + 16 <= n) {
    const end = min(n - 15, i + 1024);
    let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
    for (; i < end; i += 16) {
      const q = x + (<usize>i << 2);
      s0 = f32x4.add(s0, v128.load(q));
      s1 = f32x4.add(s1, v128.load(q, 16));
      s2 = f32x4.add(s2, v128.load(q, 32));
      s3 = f32x4.add(s3, v128.load(q, 48));
    }
    const s = f32x4.add(f32x4.add(s0, s1), f32x4.add(s2, s3));
    total += <f64>f32x4.extract_lane(s, 0) + <f64>f32x4.extract_lane(s, 1) + <f64>f32x4.extract_lane(s, 2) + <f64>f32x4.extract_lane(s, 3);
  }
  for (; i < n; i++) total += <f64>load<f32>(x + (<usize>i << 2));
  return total;
}

/** max (isMax) or min of n contiguous f32; NaN if any element is NaN; -inf / inf when n = 0. */
function extremeRow(x: usize, n: i32, isMax: bool): f32 {
  let acc: f32 = isMax ? -Infinity : Infinity;
  let i = 0;
  if (n >= 4) {
    let v = v128.load(x);
    for (i = 4; i + 4 <= n; i += 4) {
      const w = v128.load(x + (<usize>i << 2));
      v = isMax ? f32x4.max(v, w) : f32x4.min(v, w);
    }
    // Fold the lanes (f32x4.max / min propagate NaN).
    v = isMax ? f32x4.max(v, v128.shuffle<f32>(v, v, 2, 3, 0, 1)) : f32x4.min(v, v128.shuffle<f32>(v, v, 2, 3, 0, 1));
    v = isMax ? f32x4.max(v, v128.shuffle<f32>(v, v, 1, 0, 3, 2)) : f32x4.min(v, v128.shuffle<f32>(v, v, 1, 0, 3, 2));
    acc = f32x4.extract_lane(v, 0);
    if (acc != acc) return NaN;
  }
  for (; i < n; i++) {
    const e = load<f32>(x + (<usize>i << 2));
    if (e != e) return NaN;
    acc = isMax ? max(acc, e) : min(acc, e);
  }
  return acc;
}

// Slots: op, dtype, x, out, outer, size, inner, outerPerTile, innerChunk.
export function reduceTile(p: usize, t: i32): void {
  const op = pi(p, ARG), dt = pi(p, ARG + 1), x = pu(p, ARG + 2), out = pu(p, ARG + 3);
  const size = pi(p, ARG + 5), inner = pi(p, ARG + 6);
  const outer = pi(p, ARG + 4), outerPerTile = pi(p, ARG + 7), innerChunk = pi(p, ARG + 8);
  const innerTiles = (inner + innerChunk - 1) / innerChunk, to = t / innerTiles, ti = t % innerTiles;
  const o0 = to * outerPerTile, o1 = min(outer, o0 + outerPerTile), i0 = ti * innerChunk, i1 = min(inner, i0 + innerChunk);
  for (let o = o0; o < o1; o++) {
    const base = <usize>o * <usize>size * <usize>inner;
    if (dt != F32) {
      for (let i = i0; i < i1; i++) {
        let acc: i32 = 0;
        for (let s = 0; s < size; s++) {
          const v = ldi(x, base + <usize>(s * inner + i), dt);
          acc = op == SUM ? acc + v : s == 0 ? v : op == MAX ? max(acc, v) : min(acc, v);
        }
        sti(out, <usize>(o * inner + i), dt, acc);
      }
    } else if (inner == 1) {
      const row = x + (base << 2);
      store<f32>(out + (<usize>o << 2), op == SUM ? <f32>sumRow(row, size) : extremeRow(row, size, op == MAX));
    } else if (op == SUM) {
      let i = i0;
      // Strips of 16 columns (a cache line) in eight f64x2 accumulators: independent add chains, so the
      // walk down the rows is not held up by the latency of one chain.
      for (; i + 16 <= i1; i += 16) {
        let a0 = f64x2.splat(0), a1 = f64x2.splat(0), a2 = f64x2.splat(0), a3 = f64x2.splat(0);
        let a4 = f64x2.splat(0), a5 = f64x2.splat(0), a6 = f64x2.splat(0), a7 = f64x2.splat(0);
        let q = x + ((base + <usize>i) << 2);
        const step = <usize>inner << 2;
        for (let s = 0; s < size; s++) {
          const v0 = v128.load(q), v1 = v128.load(q, 16), v2 = v128.load(q, 32), v3 = v128.load(q, 48);
          a0 = f64x2.add(a0, f64x2.promote_low_f32x4(v0));
          a1 = f64x2.add(a1, f64x2.promote_low_f32x4(v128.shuffle<f32>(v0, v0, 2, 3, 2, 3)));
          a2 = f64x2.add(a2, f64x2.promote_low_f32x4(v1));
          a3 = f64x2.add(a3, f64x2.promote_low_f32x4(v128.shuffle<f32>(v1, v1, 2, 3, 2, 3)));
          a4 = f64x2.add(a4, f64x2.promote_low_f32x4(v2));
          a5 = f64x2.add(a5, f64x2.promote_low_f32x4(v128.shuffle<f32>(v2, v2, 2, 3, 2, 3)));
          a6 = f64x2.add(a6, f64x2.promote_low_f32x4(v3));
          a7 = f64x2.add(a7, f64x2.promote_low_f32x4(v128.shuffle<f32>(v3, v3, 2, 3, 2, 3)));
          q += step;
        }
        const dst = out + (<usize>(o * inner + i) << 2);
        v128.store(dst, v128.shuffle<f32>(f32x4.demote_f64x2_zero(a0), f32x4.demote_f64x2_zero(a1), 0, 1, 4, 5));
        v128.store(dst, v128.shuffle<f32>(f32x4.demote_f64x2_zero(a2), f32x4.demote_f64x2_zero(a3), 0, 1, 4, 5), 16);
        v128.store(dst, v128.shuffle<f32>(f32x4.demote_f64x2_zero(a4), f32x4.demote_f64x2_zero(a5), 0, 1, 4, 5), 32);
        v128.store(dst, v128.shuffle<f32>(f32x4.demote_f64x2_zero(a6), f32x4.demote_f64x2_zero(a7), 0, 1, 4, 5), 48);
      }
      // Strips of 4 columns summed in two f64x2 accumulators.
      for (; i + 4 <= i1; i += 4) {
        let lo = f64x2.splat(0), hi = f64x2.splat(0);
        for (let s = 0; s < size; s++) {
          const v = v128.load(x + ((base + <usize>(s * inner + i)) << 2));
          lo = f64x2.add(lo, f64x2.promote_low_f32x4(v));
          hi = f64x2.add(hi, f64x2.promote_low_f32x4(v128.shuffle<f32>(v, v, 2, 3, 2, 3)));
        }
        v128.store(out + (<usize>(o * inner + i) << 2), v128.shuffle<f32>(f32x4.demote_f64x2_zero(lo), f32x4.demote_f64x2_zero(hi), 0, 1, 4, 5));
      }
      for (; i < i1; i++) {
        let acc: f64 = 0;
        for (let s = 0; s < size; s++) acc += <f64>load<f32>(x + ((base + <usize>(s * inner + i)) << 2));
        store<f32>(out + (<usize>(o * inner + i) << 2), <f32>acc);
      }
    } else {
      const isMax = op == MAX;
      for (let i = i0; i < i1; i++) {
        let acc: f32 = isMax ? -Infinity : Infinity;
        for (let s = 0; s < size; s++) {
          const v = load<f32>(x + ((base + <usize>(s * inner + i)) << 2));
          if (v != v) { acc = NaN; break; }
          acc = isMax ? max(acc, v) : min(acc, v);
        }
        store<f32>(out + (<usize>(o * inner + i) << 2), acc);
      }
    }
  }
}

// Slots: op (0 argmax, 1 argmin), dtype, x, out (int32), outer, size, inner, outerPerTile, innerChunk.
// The first extreme wins; the first NaN wins over everything (as the reference does).
export function argReduceTile(p: usize, t: i32): void {
  const isMax = pi(p, ARG) == 0, dt = pi(p, ARG + 1), x = pu(p, ARG + 2), out = pu(p, ARG + 3);
  const size = pi(p, ARG + 5), inner = pi(p, ARG + 6);
  const outer = pi(p, ARG + 4), outerPerTile = pi(p, ARG + 7), innerChunk = pi(p, ARG + 8);
  const innerTiles = (inner + innerChunk - 1) / innerChunk, to = t / innerTiles, ti = t % innerTiles;
  const o0 = to * outerPerTile, o1 = min(outer, o0 + outerPerTile), i0 = ti * innerChunk, i1 = min(inner, i0 + innerChunk);
  for (let o = o0; o < o1; o++) {
    const base = <usize>o * <usize>size * <usize>inner;
    for (let i = i0; i < i1; i++) {
      let arg = 0;
      if (dt == F32) {
        let best = size > 0 ? load<f32>(x + ((base + <usize>i) << 2)) : 0;
        for (let s = 1; s < size && best == best; s++) {
          const v = load<f32>(x + ((base + <usize>(s * inner + i)) << 2));
          if (v != v || (isMax ? v > best : v < best)) { best = v; arg = s; }
        }
      } else {
        let best = size > 0 ? ldi(x, base + <usize>i, dt) : 0;
        for (let s = 1; s < size; s++) {
          const v = ldi(x, base + <usize>(s * inner + i), dt);
          if (isMax ? v > best : v < best) { best = v; arg = s; }
        }
      }
      store<i32>(out + (<usize>(o * inner + i) << 2), arg);
    }
  }
}

// Slots: dtype, x, out, reverse, outer, size, inner, outerPerTile, innerChunk.
export function cumsumTile(p: usize, t: i32): void {
  const dt = pi(p, ARG), x = pu(p, ARG + 1), out = pu(p, ARG + 2), reverse = pi(p, ARG + 3) != 0;
  const size = pi(p, ARG + 5), inner = pi(p, ARG + 6);
  const outer = pi(p, ARG + 4), outerPerTile = pi(p, ARG + 7), innerChunk = pi(p, ARG + 8);
  const innerTiles = (inner + innerChunk - 1) / innerChunk, to = t / innerTiles, ti = t % innerTiles;
  const o0 = to * outerPerTile, o1 = min(outer, o0 + outerPerTile), i0 = ti * innerChunk, i1 = min(inner, i0 + innerChunk);
  for (let o = o0; o < o1; o++) {
    const base = <usize>o * <usize>size * <usize>inner;
    for (let i = i0; i < i1; i++) {
      let accF: f64 = 0;
      let accI: i32 = 0;
      for (let s0 = 0; s0 < size; s0++) {
        const s = reverse ? size - 1 - s0 : s0;
        const q = base + <usize>(s * inner + i);
        if (dt == F32) {
          accF += <f64>load<f32>(x + (q << 2));
          store<f32>(out + (q << 2), <f32>accF);
        } else {
          accI += ldi(x, q, dt);
          sti(out, q, dt, accI);
        }
      }
    }
  }
}
