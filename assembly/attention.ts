// Fused attention over q [BH, T, hs], k [BH, S, hs], v [BH, S, hv]: one tile per (batch, head). Each
// block of QB query rows computes its scores with the GEMM micro-kernel into per-thread scratch (never
// the whole [T, S] matrix), applies scale, bias and the causal limit, a safe softmax, and multiplies by
// the packed V. The backward recomputes the probabilities from the saved log-sum-exp (FlashAttention's
// recipe) and accumulates dK and dV inside the tile, so tiles never write the same memory.
// Causal blocks stop at their last visible key: about half the work of the dense product.

import { ARG, exp4, pf, pi, pu } from './common';
import { gemmAll, gemmBlock, KC, MC, packB } from './gemm';

/** Bytes of the GEMM scratch at the start of each thread's region (packed A block + edge tile). */
const A_SCRATCH: usize = <usize>(MC * KC * 4 + 128);
/** Query rows per block (ATTENTION_ROWS in src/backend/wasm/kernels.ts): small, so causal blocks stop early. */
const QB: i32 = 64;

@inline function pad8(n: i32): i32 {
  return ((n + 7) >> 3) << 3;
}

// Slots (forward and backward): q, k, v, bias (0 = none), out, lse, heads, T, S, hs, hv, scale, causal,
// biasStrides[4]; the backward adds dOut, dq, dk, dv.
const Q = ARG, K_ = ARG + 1, V = ARG + 2, BIAS = ARG + 3, OUT = ARG + 4, LSE = ARG + 5, HEADS = ARG + 6, T_ = ARG + 7;
const S_ = ARG + 8, HS = ARG + 9, HV = ARG + 10, SCALE = ARG + 11, CAUSAL = ARG + 12, BS = ARG + 13;
const DOUT = ARG + 17, DQ = ARG + 18, DK = ARG + 19, DV = ARG + 20;

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
  const qB = pu(p, Q) + (<usize>bh * <usize>t * <usize>hs << 2), kB = pu(p, K_) + (<usize>bh * <usize>s * <usize>hs << 2);
  const vB = pu(p, V) + (<usize>bh * <usize>s * <usize>hv << 2), oB = pu(p, OUT) + (<usize>bh * <usize>t * <usize>hv << 2);
  const lB = pu(p, LSE) + (<usize>bh * <usize>t << 2);
  const kPackT = scratch + A_SCRATCH;
  const vPack = kPackT + (<usize>hs * <usize>pad8(s) << 2);
  const scores = vPack + (<usize>s * <usize>pad8(hv) << 2);
  const invL = scores + (<usize>QB * <usize>s << 2);
  packB(kB, true, hs, hs, s, kPackT); // scores = Q K^T: B(d, j) = K[j, d]
  packB(vB, false, hv, s, hv, vPack);
  for (let i0 = 0; i0 < t; i0 += QB) {
    const rows = min(QB, t - i0), nEff = visibleKeys(causal, i0, rows, t, s);
    if (nEff > 0) gemmBlock(qB, false, hs, t, hs, i0, rows, kPackT, hs, s, 0, (nEff + 7) >> 3, scores, s, false, scratch);
    for (let r = 0; r < rows; r++) {
      const row = scores + (<usize>r * <usize>s << 2);
      const nRow = nEff > 0 ? scaleRow(p, row, bh, i0 + r, nEff) : 0;
      let m: f32 = -Infinity;
      for (let j = 0; j < nRow; j++) m = max(m, load<f32>(row + (<usize>j << 2)));
      if (m == -Infinity) {
        // Nothing to attend: output 0, lse -inf (PyTorch's safe softmax).
        memory.fill(row, 0, <usize>nEff << 2);
        store<f32>(lB + (<usize>(i0 + r) << 2), -Infinity);
        store<f32>(invL + (<usize>r << 2), 0);
        continue;
      }
      const l = expRow(row, nRow, m);
      memory.fill(row + (<usize>nRow << 2), 0, <usize>(nEff - nRow) << 2);
      store<f32>(lB + (<usize>(i0 + r) << 2), <f32>(<f64>m + Math.log(l)));
      store<f32>(invL + (<usize>r << 2), <f32>(1.0 / l));
    }
    const oBlk = oB + (<usize>i0 * <usize>hv << 2);
    if (nEff > 0) gemmBlock(scores, false, s, rows, nEff, 0, rows, vPack, s, hv, 0, (hv + 7) >> 3, oBlk, hv, false, scratch);
    for (let r = 0; r < rows; r++) {
      const o = oBlk + (<usize>r * <usize>hv << 2), w = load<f32>(invL + (<usize>r << 2));
      if (w == 0) memory.fill(o, 0, <usize>hv << 2);
      else for (let d = 0; d < hv; d++) store<f32>(o + (<usize>d << 2), load<f32>(o + (<usize>d << 2)) * w);
    }
  }
}

export function attentionGradTile(p: usize, bh: i32, scratch: usize): void {
  const t = pi(p, T_), s = pi(p, S_), hs = pi(p, HS), hv = pi(p, HV), causal = pi(p, CAUSAL) != 0, scale = pf(p, SCALE);
  const qB = pu(p, Q) + (<usize>bh * <usize>t * <usize>hs << 2), kB = pu(p, K_) + (<usize>bh * <usize>s * <usize>hs << 2);
  const vB = pu(p, V) + (<usize>bh * <usize>s * <usize>hv << 2), oB = pu(p, OUT) + (<usize>bh * <usize>t * <usize>hv << 2);
  const lB = pu(p, LSE) + (<usize>bh * <usize>t << 2), gB = pu(p, DOUT) + (<usize>bh * <usize>t * <usize>hv << 2);
  const dqB = pu(p, DQ) + (<usize>bh * <usize>t * <usize>hs << 2), dkB = pu(p, DK) + (<usize>bh * <usize>s * <usize>hs << 2);
  const dvB = pu(p, DV) + (<usize>bh * <usize>s * <usize>hv << 2);
  const kPackT = scratch + A_SCRATCH;
  const kPackN = kPackT + (<usize>hs * <usize>pad8(s) << 2);
  const vPackT = kPackN + (<usize>s * <usize>pad8(hs) << 2);
  const pBuf = vPackT + (<usize>hv * <usize>pad8(s) << 2);
  const dpBuf = pBuf + (<usize>QB * <usize>s << 2);
  const gPack = dpBuf + (<usize>QB * <usize>s << 2);
  const qPack = gPack + (<usize>QB * <usize>pad8(hv) << 2);
  const dRow = qPack + (<usize>QB * <usize>pad8(hs) << 2);
  memory.fill(dqB, 0, <usize>t * <usize>hs << 2);
  memory.fill(dkB, 0, <usize>s * <usize>hs << 2);
  memory.fill(dvB, 0, <usize>s * <usize>hv << 2);
  packB(kB, true, hs, hs, s, kPackT); // scores = Q K^T
  packB(kB, false, hs, s, hs, kPackN); // dQ = dS K
  packB(vB, true, hv, hv, s, vPackT); // dP = dO V^T
  const sv = f32x4.splat(scale);
  for (let i0 = 0; i0 < t; i0 += QB) {
    const rows = min(QB, t - i0), nEff = visibleKeys(causal, i0, rows, t, s);
    if (nEff == 0) continue; // no key visible: every row of the block has zero gradient
    gemmBlock(qB, false, hs, t, hs, i0, rows, kPackT, hs, s, 0, (nEff + 7) >> 3, pBuf, s, false, scratch);
    // P = exp(s - lse) over the visible keys, 0 elsewhere; D = dO . O per row.
    for (let r = 0; r < rows; r++) {
      const i = i0 + r, row = pBuf + (<usize>r * <usize>s << 2), lse = load<f32>(lB + (<usize>i << 2));
      if (lse == -Infinity) {
        memory.fill(row, 0, <usize>nEff << 2);
      } else {
        const nRow = scaleRow(p, row, bh, i, nEff);
        expRow(row, nRow, lse);
        memory.fill(row + (<usize>nRow << 2), 0, <usize>(nEff - nRow) << 2);
      }
      let dot: f64 = 0;
      for (let d = 0; d < hv; d++) {
        const q = (<usize>i * <usize>hv + <usize>d) << 2;
        dot += <f64>load<f32>(gB + q) * <f64>load<f32>(oB + q);
      }
      store<f32>(dRow + (<usize>r << 2), <f32>dot);
    }
    // dV += P^T dO_blk
    const gBlk = gB + (<usize>i0 * <usize>hv << 2);
    packB(gBlk, false, hv, rows, hv, gPack);
    gemmAll(pBuf, true, s, nEff, rows, gPack, rows, hv, dvB, hv, true, scratch);
    // dP = dO_blk V^T, then dS = P (dP - D) scale, in place of P.
    gemmBlock(gB, false, hv, t, hv, i0, rows, vPackT, hv, s, 0, (nEff + 7) >> 3, dpBuf, s, false, scratch);
    for (let r = 0; r < rows; r++) {
      const pr = pBuf + (<usize>r * <usize>s << 2), dr = dpBuf + (<usize>r * <usize>s << 2);
      const dv = f32x4.splat(load<f32>(dRow + (<usize>r << 2)));
      let j = 0;
      for (; j + 4 <= nEff; j += 4) {
        const o = <usize>j << 2;
        v128.store(pr + o, f32x4.mul(f32x4.mul(v128.load(pr + o), f32x4.sub(v128.load(dr + o), dv)), sv));
      }
      const ds = load<f32>(dRow + (<usize>r << 2));
      for (; j < nEff; j++) {
        const o = <usize>j << 2;
        store<f32>(pr + o, load<f32>(pr + o) * (load<f32>(dr + o) - ds) * scale);
      }
    }
    // dQ_blk += dS K;  dK += dS^T Q_blk
    gemmBlock(pBuf, false, s, rows, nEff, 0, rows, kPackN, s, hs, 0, (hs + 7) >> 3, dqB + (<usize>i0 * <usize>hs << 2), hs, true, scratch);
    packB(qB + (<usize>i0 * <usize>hs << 2), false, hs, rows, hs, qPack);
    gemmAll(pBuf, true, s, nEff, rows, qPack, rows, hs, dkB, hs, true, scratch);
  }
}
