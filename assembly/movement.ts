// Strided copies (one kernel for stridedCopy and stridedWrite) and the index kernels: indexSelect,
// indexAdd (embedding backward), gather, scatterAdd, plus the index range check they all rely on.

import { ARG, F32, I32, ldi, pi, pu, sti } from './common';
import { CHUNK, MAXDIM } from './elementwise';

// ---- strided copy: dst[dstOff + i . dstStrides] = src[srcOff + i . srcStrides] over `shape` ----
// Slots: esize, src, dst, ndim, n, srcOff, dstOff, shape[8], srcStrides[8], dstStrides[8].
export function stridedTile(p: usize, t: i32): void {
  const es = pi(p, ARG), src = pu(p, ARG + 1), dst = pu(p, ARG + 2), nd = pi(p, ARG + 3), n = pi(p, ARG + 4);
  const srcOff = pi(p, ARG + 5), dstOff = pi(p, ARG + 6);
  const SH = ARG + 7, SS = SH + MAXDIM, SD = SS + MAXDIM;
  const inner = pi(p, SH + nd - 1), ss = pi(p, SS + nd - 1), sd = pi(p, SD + nd - 1);
  const sh = <usize>(es == 4 ? 2 : 0);
  let i = t * CHUNK;
  const e = min(n, i + CHUNK);
  while (i < e) {
    let row = i / inner, col = i % inner;
    let os = srcOff + col * ss, od = dstOff + col * sd;
    for (let d = nd - 2; d >= 0; d--) {
      const s = pi(p, SH + d), q = row % s;
      row /= s;
      os += q * pi(p, SS + d);
      od += q * pi(p, SD + d);
    }
    const len = min(inner - col, e - i);
    if (ss == 1 && sd == 1) {
      memory.copy(dst + (<usize>od << sh), src + (<usize>os << sh), <usize>len << sh);
    } else if (es == 4) {
      for (let j = 0; j < len; j++) store<i32>(dst + (<usize>(od + j * sd) << 2), load<i32>(src + (<usize>(os + j * ss) << 2)));
    } else {
      for (let j = 0; j < len; j++) store<u8>(dst + <usize>(od + j * sd), load<u8>(src + <usize>(os + j * ss)));
    }
    i += len;
  }
}

// ---- index kernels over [outer, size, inner]; indices are int32 and were range-checked first ----

/** The position of the first index outside [0, size), or -1. */
export function checkIndices(idx: usize, n: i32, size: i32): i32 {
  for (let j = 0; j < n; j++) {
    const v = load<i32>(idx + (<usize>j << 2));
    if (<u32>v >= <u32>size) return j;
  }
  return -1;
}

// Slots: esize, x, idx, out, outer, size, inner, m, rowsPerTile. Rows (o, j) of out copied whole.
export function indexSelectTile(p: usize, t: i32): void {
  const es = <usize>pi(p, ARG), x = pu(p, ARG + 1), idx = pu(p, ARG + 2), out = pu(p, ARG + 3);
  const outer = pi(p, ARG + 4), size = pi(p, ARG + 5), inner = <usize>pi(p, ARG + 6), m = pi(p, ARG + 7), rpt = pi(p, ARG + 8);
  const r1 = min(outer * m, (t + 1) * rpt);
  const rowBytes = inner * es;
  for (let r = t * rpt; r < r1; r++) {
    const o = r / m, j = r % m;
    const s = <usize>(o * size + load<i32>(idx + (<usize>j << 2)));
    memory.copy(out + <usize>r * rowBytes, x + s * rowBytes, rowBytes);
  }
}

/** dst[0..len) += src[0..len) for one dtype. */
@inline function addRun(dt: i32, dst: usize, src: usize, len: i32): void {
  if (dt == F32) {
    let i = 0;
    for (; i + 4 <= len; i += 4) {
      const o = <usize>i << 2;
      v128.store(dst + o, f32x4.add(v128.load(dst + o), v128.load(src + o)));
    }
    for (; i < len; i++) {
      const o = <usize>i << 2;
      store<f32>(dst + o, load<f32>(dst + o) + load<f32>(src + o));
    }
  } else {
    for (let i = 0; i < len; i++) sti(dst, <usize>i, dt, ldi(dst, <usize>i, dt) + ldi(src, <usize>i, dt));
  }
}

// Slots: dtype, src, idx, out (zeroed), outer, size, inner, m, innerChunk. Tiles: outer x inner chunks,
// so two tiles never add into the same element.
export function indexAddTile(p: usize, t: i32): void {
  const dt = pi(p, ARG), src = pu(p, ARG + 1), idx = pu(p, ARG + 2), out = pu(p, ARG + 3);
  const size = pi(p, ARG + 5), inner = pi(p, ARG + 6), m = pi(p, ARG + 7), chunk = pi(p, ARG + 8);
  const chunks = (inner + chunk - 1) / chunk, o = t / chunks, i0 = (t % chunks) * chunk, len = min(inner - i0, chunk);
  const sh = <usize>(dt == F32 || dt == I32 ? 2 : 0);
  for (let j = 0; j < m; j++) {
    const d = <usize>(o * size + load<i32>(idx + (<usize>j << 2))) * <usize>inner + <usize>i0;
    const s = (<usize>o * <usize>m + <usize>j) * <usize>inner + <usize>i0;
    addRun(dt, out + (d << sh), src + (s << sh), len);
  }
}

// Slots: esize, x, idx, out, outer, size, inner, m, rowsPerTile. out[o, j, i] = x[o, idx[o, j, i], i].
export function gatherTile(p: usize, t: i32): void {
  const es = pi(p, ARG), x = pu(p, ARG + 1), idx = pu(p, ARG + 2), out = pu(p, ARG + 3);
  const outer = pi(p, ARG + 4), size = pi(p, ARG + 5), inner = pi(p, ARG + 6), m = pi(p, ARG + 7), rpt = pi(p, ARG + 8);
  const r1 = min(outer * m, (t + 1) * rpt);
  for (let r = t * rpt; r < r1; r++) {
    const o = r / m;
    for (let i = 0; i < inner; i++) {
      const q = <usize>r * <usize>inner + <usize>i;
      const s = <usize>(o * size + load<i32>(idx + (q << 2))) * <usize>inner + <usize>i;
      if (es == 4) store<i32>(out + (q << 2), load<i32>(x + (s << 2)));
      else store<u8>(out + q, load<u8>(x + s));
    }
  }
}

// Slots: dtype, src, idx, out (zeroed), outer, size, inner, m, innerChunk. out[o, idx[o, j, i], i] += src[o, j, i].
export function scatterAddTile(p: usize, t: i32): void {
  const dt = pi(p, ARG), src = pu(p, ARG + 1), idx = pu(p, ARG + 2), out = pu(p, ARG + 3);
  const size = pi(p, ARG + 5), inner = pi(p, ARG + 6), m = pi(p, ARG + 7), chunk = pi(p, ARG + 8);
  const chunks = (inner + chunk - 1) / chunk, o = t / chunks, i0 = (t % chunks) * chunk, i1 = min(inner, i0 + chunk);
  for (let j = 0; j < m; j++) {
    for (let i = i0; i < i1; i++) {
      const q = (<usize>o * <usize>m + <usize>j) * <usize>inner + <usize>i;
      const d = <usize>(o * size + load<i32>(idx + (q << 2))) * <usize>inner + <usize>i;
      if (dt == F32) store<f32>(out + (d << 2), load<f32>(out + (d << 2)) + load<f32>(src + (q << 2)));
      else sti(out, d, dt, ldi(out, d, dt) + ldi(src, q, dt));
    }
  }
}
