// Fused attention over q [BH, T, hs], k [BH, S, hs], v [BH, S, hv]: one tile per (batch, head). Each
// block of QB query rows computes its scores with the GEMM micro-kernel into per-thread scratch (never
// the whole [T, S] matrix), applies scale, bias and the causal limit, a safe softmax, and multiplies by
// the packed V. The backward recomputes the probabilities from the saved log-sum-exp (FlashAttention's
// recipe) and accumulates dK and dV inside the tile, so tiles never write the same memory.
// Causal blocks stop at their last visible key: about half the work of the dense product.

import { ARG, exp4, fma4, pf, pi, pu } from './common';
import { gemmAll, gemmBlock, KC, MC, packB } from './gemm';

/** Bytes of the GEMM scratch at the start of each thread's region (packed A block + edge tile). */
const A_SCRATCH: usize = <usize>(MC * KC * 4 + 128);
/** Query rows per block (ATTENTION_ROWS in src/backend/wasm/kernels.ts): small, so causal blocks stop early. */
const QB: i32 = 32;

@inline function pad8(n: i32): i32 {
  return ((n + 7) >> 3) << 3;
}

// Slots (forward and backward): q, k, v, bias (0 = none), out, lse, heads, T, S, hs, hv, scale, causal,
// biasStrides[4]; the backward adds dOut, dq, dk, dv; then the (batch, head, row) element strides of q, k, v
// and out (the gradients share their operand's strides, dOut shares out's). Rows are contiguous.
const Q = ARG, K_ = ARG + 1, V = ARG + 2, BIAS = ARG + 3, OUT = ARG + 4, LSE = ARG + 5, HEADS = ARG + 6, T_ = ARG + 7;
const S_ = ARG + 8, HS = ARG + 9, HV = ARG + 10, SCALE = ARG + 11, CAUSAL = ARG + 12, BS = ARG + 13;
const DOUT = ARG + 17, DQ = ARG + 18, DK = ARG + 19, DV = ARG + 20;
const LQ = ARG + 21, LK = ARG + 24, LV = ARG + 27, LO = ARG + 30;
// The probabilities [BH, T, S] (0 = none): written by the forward (normalised, visible keys of each query
// block) so that the backward reads them instead of recomputing Q K^T and the exps.
const PROBS = ARG + 33;

/** Byte address of the (batch, head) matrix bh of the operand at slot `ptr` with strides at slot `l`. */
@inline function base(p: usize, ptr: i32, l: i32, bh: i32): usize {
  const heads = pi(p, HEADS);
  return pu(p, ptr) + ((<usize>(bh / heads) * <usize>pi(p, l) + <usize>(bh % heads) * <usize>pi(p, l + 1)) << 2);
}

/** Keys a block of rows i0..i0+rows can see: a causal block stops after its last row's limit. */
@inline function visibleKeys(causal: bool, i0: i32, rows: i32, t: i32, s: i32): i32 {
  return causal ? max(0, min(s, i0 + rows + s - t)) : s;
}

/**
 * Row r (query i) of a score block: s = raw * scale + bias over the keys it may see (nRow of them);
 * returns that count. Keys past it up to nEff are left for the caller to zero.
 */
function scaleRow(p: usize, row: usize, bh: i32, i: i32, nEff: i32): i32 {
  const t = pi(p, T_), s = pi(p, S_), causal = pi(p, CAUSAL) != 0, scale = pf(p, SCALE), bias = pu(p, BIAS);
  const nRow = causal ? max(0, min(nEff, i + s - t + 1)) : nEff;
  if (bias != 0) {
    const heads = pi(p, HEADS);
    const off = (bh / heads) * pi(p, BS) + (bh % heads) * pi(p, BS + 1) + i * pi(p, BS + 2), sj = pi(p, BS + 3);
    for (let j = 0; j < nRow; j++) {
      const q = row + (<usize>j << 2);
      store<f32>(q, load<f32>(q) * scale + load<f32>(bias + (<usize>(off + j * sj) << 2)));
    }
  } else {
    const sv = f32x4.splat(scale);
    let j = 0;
    for (; j + 4 <= nRow; j += 4) v128.store(row + (<usize>j << 2), f32x4.mul(v128.load(row + (<usize>j << 2)), sv));
    for (; j < nRow; j++) store<f32>(row + (<usize>j << 2), load<f32>(row + (<usize>j << 2)) * scale);
  }
  return nRow;
}

/** Largest of row[0..n) (-Infinity for n = 0), in SIMD. */
function maxRow(row: usize, n: i32): f32 {
  let m: f32 = -Infinity;
  let j = 0;
  if (n >= 4) {
    let v = v128.load(row);
    for (j = 4; j + 4 <= n; j += 4) v = f32x4.max(v, v128.load(row + (<usize>j << 2)));
    v = f32x4.max(v, v128.shuffle<f32>(v, v, 2, 3, 0, 1));
    v = f32x4.max(v, v128.shuffle<f32>(v, v, 1, 0, 3, 2));
    m = f32x4.extract_lane(v, 0);
  }
  for (; j < n; j++) m = max(m, load<f32>(row + (<usize>j << 2)));
  return m;
}

/**
 * row[j] = exp(row[j] * scale - shift) for j < n, on raw scores (no bias): the scaling rides in the exp's
 * argument instead of a pass of its own. Returns the sum in f64.
 */
function expScaledRow(row: usize, n: i32, scale: f32, shift: f32): f64 {
  const sc = f32x4.splat(scale), sv = f32x4.splat(-shift);
  let acc = f32x4.splat(0);
  let j = 0;
  for (; j + 4 <= n; j += 4) {
    const e = exp4(fma4(v128.load(row + (<usize>j << 2)), sc, sv));
    v128.store(row + (<usize>j << 2), e);
    acc = f32x4.add(acc, e);
  }
  let total = <f64>f32x4.extract_lane(acc, 0) + <f64>f32x4.extract_lane(acc, 1) + <f64>f32x4.extract_lane(acc, 2) + <f64>f32x4.extract_lane(acc, 3);
  for (; j < n; j++) {
    const e = <f32>Math.exp(<f64>(load<f32>(row + (<usize>j << 2)) * scale - shift));
    store<f32>(row + (<usize>j << 2), e);
    total += <f64>e;
  }
  return total;
}

/**
 * Probabilities of one score row in place: exp(s - shift) over the nRow keys the row sees, with s = raw *
 * scale + bias. shift = NaN asks for the row's own maximum (the forward), else it is the saved log-sum-exp
 * (the backward). Returns the sum of the exps (f64), or -1 when the row has nothing to attend (every key
 * masked); *maxOut gets the maximum used. Keys from nRow to nEff are left for the caller.
 */
@inline function probRow(p: usize, row: usize, bh: i32, i: i32, nEff: i32, shift: f32, maxOut: usize): f64 {
  const t = pi(p, T_), s = pi(p, S_), causal = pi(p, CAUSAL) != 0, scale = pf(p, SCALE);
  const nRow = causal ? max(0, min(nEff, i + s - t + 1)) : nEff;
  store<i32>(maxOut + 4, nRow);
  if (pu(p, BIAS) == 0 && scale > 0) {
    // Raw scores: max(raw) * scale is the scaled maximum (scaling by a positive number keeps the order).
    const m = shift != shift ? maxRow(row, nRow) * scale : shift;
    store<f32>(maxOut, m);
    if (m == -Infinity) return -1;
    return expScaledRow(row, nRow, scale, m);
  }
  scaleRow(p, row, bh, i, nEff);
  const m = shift != shift ? maxRow(row, nRow) : shift;
  store<f32>(maxOut, m);
  if (m == -Infinity) return -1;
  return expRow(row, nRow, m);
}

/** row[j] = exp(row[j] - shift) for j < n; returns the sum in f64. */
function expRow(row: usize, n: i32, shift: f32): f64 {
  const sv = f32x4.splat(shift);
  let total: f64 = 0;
  let acc = f32x4.splat(0);
  let j = 0;
  for (; j + 4 <= n; j += 4) {
    const e = exp4(f32x4.sub(v128.load(row + (<usize>j << 2)), sv));
    v128.store(row + (<usize>j << 2), e);
    acc = f32x4.add(acc, e);
  }
  total = <f64>f32x4.extract_lane(acc, 0) + <f64>f32x4.extract_lane(acc, 1) + <f64>f32x4.extract_lane(acc, 2) + <f64>f32x4.extract_lane(acc, 3);
  for (; j < n; j++) {
    const e = <f32>Math.exp(<f64>(load<f32>(row + (<usize>j << 2)) - shift));
    store<f32>(row + (<usize>j << 2), e);
    total += <f64>e;
  }
  return total;
}

export function attentionTile(p: usize, bh: i32, scratch: usize): void {
  const t = pi(p, T_), s = pi(p, S_), hs = pi(p, HS), hv = pi(p, HV), causal = pi(p, CAUSAL) != 0;
  const qB = base(p, Q, LQ, bh), kB = base(p, K_, LK, bh), vB = base(p, V, LV, bh), oB = base(p, OUT, LO, bh);
  const qR = pi(p, LQ + 2), kR = pi(p, LK + 2), vR = pi(p, LV + 2), oR = pi(p, LO + 2);
  const lB = pu(p, LSE) + (<usize>bh * <usize>t << 2);
  const kPackT = scratch + A_SCRATCH;
  const vPack = kPackT + (<usize>hs * <usize>pad8(s) << 2);
  const scores = vPack + (<usize>s * <usize>pad8(hv) << 2);
  const invL = scores + (<usize>QB * <usize>s << 2);
  const rowInfo = invL + (<usize>QB << 2); // probRow's maximum and key count
  const probs = pu(p, PROBS), pBase = probs != 0 ? probs + (<usize>bh * <usize>t * <usize>s << 2) : 0;
  packB(kB, true, kR, hs, s, kPackT); // scores = Q K^T: B(d, j) = K[j, d]
  packB(vB, false, vR, s, hv, vPack);
  for (let i0 = 0; i0 < t; i0 += QB) {
    const rows = min(QB, t - i0), nEff = visibleKeys(causal, i0, rows, t, s);
    // The block's scores, then probabilities (row stride s): in scratch, or kept for the backward.
    const sc = pBase != 0 ? pBase + (<usize>i0 * <usize>s << 2) : scores;
    if (nEff > 0) gemmBlock(qB, false, qR, t, hs, i0, rows, kPackT, hs, s, 0, (nEff + 7) >> 3, sc, s, false, scratch);
    for (let r = 0; r < rows; r++) {
      const row = sc + (<usize>r * <usize>s << 2);
      const l = nEff > 0 ? probRow(p, row, bh, i0 + r, nEff, NaN, rowInfo) : -1;
      if (l < 0) {
        // Nothing to attend: output 0, lse -inf (PyTorch's safe softmax).
        memory.fill(row, 0, <usize>nEff << 2);
        store<f32>(lB + (<usize>(i0 + r) << 2), -Infinity);
        store<f32>(invL + (<usize>r << 2), 0);
        continue;
      }
      const m = load<f32>(rowInfo), nRow = load<i32>(rowInfo, 4);
      memory.fill(row + (<usize>nRow << 2), 0, <usize>(nEff - nRow) << 2);
      store<f32>(lB + (<usize>(i0 + r) << 2), <f32>(<f64>m + Math.log(l)));
      const w = <f32>(1.0 / l);
      store<f32>(invL + (<usize>r << 2), w);
      if (pBase != 0) {
        // Kept probabilities are normalised (the row is in L1); the output then needs no scaling.
        const wv = f32x4.splat(w);
        let j = 0;
        for (; j + 4 <= nRow; j += 4) v128.store(row + (<usize>j << 2), f32x4.mul(v128.load(row + (<usize>j << 2)), wv));
        for (; j < nRow; j++) store<f32>(row + (<usize>j << 2), load<f32>(row + (<usize>j << 2)) * w);
      }
    }
    const oBlk = oB + (<usize>i0 * <usize>oR << 2);
    if (nEff > 0) gemmBlock(sc, false, s, rows, nEff, 0, rows, vPack, s, hv, 0, (hv + 7) >> 3, oBlk, oR, false, scratch);
    // Empty rows: zero probabilities give zero output when they were kept; scratch rows of exps need scaling.
    for (let r = 0; r < rows && (pBase == 0 || nEff == 0); r++) {
      const o = oBlk + (<usize>r * <usize>oR << 2), w = load<f32>(invL + (<usize>r << 2));
      if (w == 0) {
        memory.fill(o, 0, <usize>hv << 2);
        continue;
      }
      const wv = f32x4.splat(w);
      let d = 0;
      for (; d + 4 <= hv; d += 4) v128.store(o + (<usize>d << 2), f32x4.mul(v128.load(o + (<usize>d << 2)), wv));
      for (; d < hv; d++) store<f32>(o + (<usize>d << 2), load<f32>(o + (<usize>d << 2)) * w);
    }
  }
}

export function attentionGradTile(p: usize, bh: i32, scratch: usize): void {
  const t = pi(p, T_), s = pi(p, S_), hs = pi(p, HS), hv = pi(p, HV), causal = pi(p, CAUSAL) != 0, scale = pf(p, SCALE);
  const qB = base(p, Q, LQ, bh), kB = base(p, K_, LK, bh), vB = base(p, V, LV, bh), oB = base(p, OUT, LO, bh);
  const qR = pi(p, LQ + 2), kR = pi(p, LK + 2), vR = pi(p, LV + 2), oR = pi(p, LO + 2);
  const lB = pu(p, LSE) + (<usize>bh * <usize>t << 2), gB = base(p, DOUT, LO, bh);
  const dqB = base(p, DQ, LQ, bh), dkB = base(p, DK, LK, bh), dvB = base(p, DV, LV, bh);
  const kPackT = scratch + A_SCRATCH;
  const kPackN = kPackT + (<usize>hs * <usize>pad8(s) << 2);
  const vPackT = kPackN + (<usize>s * <usize>pad8(hs) << 2);
  const pBuf = vPackT + (<usize>hv * <usize>pad8(s) << 2);
  const dpBuf = pBuf + (<usize>QB * <usize>s << 2);
  const gPack = dpBuf + (<usize>QB * <usize>s << 2);
  const qPack = gPack + (<usize>QB * <usize>pad8(hv) << 2);
  const dRow = qPack + (<usize>QB * <usize>pad8(hs) << 2);
  const rowInfo = dRow + (<usize>QB << 2); // probRow's maximum and key count
  const probs = pu(p, PROBS), pBase = probs != 0 ? probs + (<usize>bh * <usize>t * <usize>s << 2) : 0;
  for (let i = 0; i < t; i++) memory.fill(dqB + (<usize>i * <usize>qR << 2), 0, <usize>hs << 2);
  for (let j = 0; j < s; j++) {
    memory.fill(dkB + (<usize>j * <usize>kR << 2), 0, <usize>hs << 2);
    memory.fill(dvB + (<usize>j * <usize>vR << 2), 0, <usize>hv << 2);
  }
  packB(kB, true, kR, hs, s, kPackT); // scores = Q K^T
  packB(kB, false, kR, s, hs, kPackN); // dQ = dS K
  packB(vB, true, vR, hv, s, vPackT); // dP = dO V^T
  const sv = f32x4.splat(scale);
  for (let i0 = 0; i0 < t; i0 += QB) {
    const rows = min(QB, t - i0), nEff = visibleKeys(causal, i0, rows, t, s);
    if (nEff == 0) continue; // no key visible: every row of the block has zero gradient
    // P: kept by the forward (read only), or recomputed into scratch from the log-sum-exp.
    const pb = pBase != 0 ? pBase + (<usize>i0 * <usize>s << 2) : pBuf;
    if (pBase == 0) gemmBlock(qB, false, qR, t, hs, i0, rows, kPackT, hs, s, 0, (nEff + 7) >> 3, pBuf, s, false, scratch);
    // P = exp(s - lse) over the visible keys, 0 elsewhere; D = dO . O per row.
    for (let r = 0; r < rows; r++) {
      const i = i0 + r, row = pBuf + (<usize>r * <usize>s << 2), lse = load<f32>(lB + (<usize>i << 2));
      if (pBase != 0) {
        // Kept by the forward: nothing to recompute.
      } else if (lse == -Infinity) {
        memory.fill(row, 0, <usize>nEff << 2);
      } else {
        probRow(p, row, bh, i, nEff, lse, rowInfo);
        const nRow = load<i32>(rowInfo, 4);
        memory.fill(row + (<usize>nRow << 2), 0, <usize>(nEff - nRow) << 2);
      }
      // D = dO . O for the row: f32 products in SIMD, summed in f64.
      const go = gB + (<usize>i * <usize>oR << 2), oo = oB + (<usize>i * <usize>oR << 2);
      let acc = f32x4.splat(0);
      let d = 0;
      for (; d + 4 <= hv; d += 4) acc = fma4(v128.load(go + (<usize>d << 2)), v128.load(oo + (<usize>d << 2)), acc);
      let dot = <f64>f32x4.extract_lane(acc, 0) + <f64>f32x4.extract_lane(acc, 1) + <f64>f32x4.extract_lane(acc, 2) + <f64>f32x4.extract_lane(acc, 3);
      for (; d < hv; d++) dot += <f64>load<f32>(go + (<usize>d << 2)) * <f64>load<f32>(oo + (<usize>d << 2));
      store<f32>(dRow + (<usize>r << 2), <f32>dot);
    }
    // dV += P^T dO_blk
    const gBlk = gB + (<usize>i0 * <usize>oR << 2);
    packB(gBlk, false, oR, rows, hv, gPack);
    gemmAll(pb, true, s, nEff, rows, gPack, rows, hv, dvB, vR, true, scratch);
    // dP = dO_blk V^T, then dS = P (dP - D) scale: in place of P in scratch, or of dP when P is kept.
    gemmBlock(gB, false, oR, t, hv, i0, rows, vPackT, hv, s, 0, (nEff + 7) >> 3, dpBuf, s, false, scratch);
    const dsBuf = pBase != 0 ? dpBuf : pBuf;
    for (let r = 0; r < rows; r++) {
      const pr = pb + (<usize>r * <usize>s << 2), dr = dpBuf + (<usize>r * <usize>s << 2), out = dsBuf + (<usize>r * <usize>s << 2);
      const dv = f32x4.splat(load<f32>(dRow + (<usize>r << 2)));
      let j = 0;
      for (; j + 4 <= nEff; j += 4) {
        const o = <usize>j << 2;
        v128.store(out + o, f32x4.mul(f32x4.mul(v128.load(pr + o), f32x4.sub(v128.load(dr + o), dv)), sv));
      }
      const ds = load<f32>(dRow + (<usize>r << 2));
      for (; j < nEff; j++) {
        const o = <usize>j << 2;
        store<f32>(out + o, load<f32>(pr + o) * (load<f32>(dr + o) - ds) * scale);
      }
    }
    // dQ_blk += dS K;  dK += dS^T Q_blk
    gemmBlock(dsBuf, false, s, rows, nEff, 0, rows, kPackN, s, hs, 0, (hs + 7) >> 3, dqB + (<usize>i0 * <usize>qR << 2), qR, true, scratch);
    packB(qB + (<usize>i0 * <usize>qR << 2), false, qR, rows, hs, qPack);
    gemmAll(dsBuf, true, s, nEff, rows, qPack, rows, hs, dkB, kR, true, scratch);
  }
}
