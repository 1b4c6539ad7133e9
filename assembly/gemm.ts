// GEMM: B packed into 8-column panels (one parallel job), then tiles of C computed from A packed into
// 4-row panels per K block (KC = 384) by a 4x8 register-tiled SIMD micro-kernel (8 accumulators; wider
// tiles spill registers under V8's x64 register allocator). Also the few-rows product and integer GEMM.

import { ARG, fma4, ldi, pi, pu, sti } from './common';

export const KC: i32 = 384;
export const MC: i32 = 128;

// ---- packing ----

// Packed B of one batch entry (k rows, npad = n rounded up to 8 columns): K block pc starts at pc * npad;
// inside it, panel jp (columns 8jp..8jp+7, zero padded) holds kc rows of 8 floats at jp * 8 * kc.

/**
 * Packs column panel jp (8 columns, zero padded) of op(B) over all k rows into dst, in the packed
 * layout above. B element (q, j) is at b + 4 * (transB ? j * ldb + q : q * ldb + j).
 */
function packBPanel(b: usize, transB: bool, ldb: i32, k: i32, n: i32, jp: i32, dst: usize, sums: usize = 0): void {
  const npad = ((n + 7) >> 3) * 8;
  const j0 = jp * 8, nc = min(8, n - j0);
  if (sums != 0) panelSums(b, transB, ldb, k, j0, nc, sums + (<usize>j0 << 2));
  for (let pc = 0; pc < k; pc += KC) {
    const kc = min(KC, k - pc);
    const d = dst + ((<usize>pc * <usize>npad + <usize>(jp * 8 * kc)) << 2);
    if (!transB) {
      if (nc == 8) {
        for (let q = 0; q < kc; q++) {
          const s = b + ((<usize>(pc + q) * <usize>ldb + <usize>j0) << 2);
          v128.store(d + (<usize>q << 5), v128.load(s));
          v128.store(d + (<usize>q << 5), v128.load(s, 16), 16);
        }
      } else {
        for (let q = 0; q < kc; q++) {
          const s = b + ((<usize>(pc + q) * <usize>ldb + <usize>j0) << 2);
          for (let c = 0; c < 8; c++) store<f32>(d + (<usize>(q * 8 + c) << 2), c < nc ? load<f32>(s + (<usize>c << 2)) : 0);
        }
      }
    } else if (nc == 8) {
      // Panel column c is row j0 + c of the stored matrix: 4x4 blocks of rows j0..j0+3 and j0+4..j0+7,
      // transposed in registers, give 4 panel rows at a time.
      const s0 = b + ((<usize>j0 * <usize>ldb + <usize>pc) << 2), ld = <usize>ldb << 2;
      let q = 0;
      for (; q + 4 <= kc; q += 4) {
        const o = <usize>q << 2, dq = d + (<usize>q << 5);
        for (let half = 0; half < 2; half++) {
          const sh = s0 + <usize>(half * 4) * ld + o;
          const v0 = v128.load(sh), v1 = v128.load(sh + ld), v2 = v128.load(sh + 2 * ld), v3 = v128.load(sh + 3 * ld);
          const t0 = v128.shuffle<f32>(v0, v1, 0, 4, 1, 5), t1 = v128.shuffle<f32>(v2, v3, 0, 4, 1, 5);
          const t2 = v128.shuffle<f32>(v0, v1, 2, 6, 3, 7), t3 = v128.shuffle<f32>(v2, v3, 2, 6, 3, 7);
          const dh = dq + (<usize>half << 4);
          v128.store(dh, v128.shuffle<f32>(t0, t1, 0, 1, 4, 5));
          v128.store(dh, v128.shuffle<f32>(t0, t1, 2, 3, 6, 7), 32);
          v128.store(dh, v128.shuffle<f32>(t2, t3, 0, 1, 4, 5), 64);
          v128.store(dh, v128.shuffle<f32>(t2, t3, 2, 3, 6, 7), 96);
        }
      }
      for (; q < kc; q++) {
        for (let c = 0; c < 8; c++) store<f32>(d + (<usize>(q * 8 + c) << 2), load<f32>(s0 + <usize>c * ld + (<usize>q << 2)));
      }
    } else {
      // Panel column c is row j0 + c of the stored matrix.
      for (let c = 0; c < 8; c++) {
        if (c < nc) {
          const s = b + ((<usize>(j0 + c) * <usize>ldb + <usize>pc) << 2);
          for (let q = 0; q < kc; q++) store<f32>(d + (<usize>(q * 8 + c) << 2), load<f32>(s + (<usize>q << 2)));
        } else {
          for (let q = 0; q < kc; q++) store<f32>(d + (<usize>(q * 8 + c) << 2), 0);
        }
      }
    }
  }
}

/**
 * The sums over all k rows of op(B)'s columns j0..j0+nc, in f64, stored as f32 at dst: the bias gradient
 * that rides along with packing g for a weight gradient (the panel is in cache for the packing anyway).
 */
function panelSums(b: usize, transB: bool, ldb: i32, k: i32, j0: i32, nc: i32, dst: usize): void {
  if (!transB && nc == 8) {
    let a0 = f64x2.splat(0), a1 = f64x2.splat(0), a2 = f64x2.splat(0), a3 = f64x2.splat(0);
    let s = b + (<usize>j0 << 2);
    const ld = <usize>ldb << 2;
    for (let q = 0; q < k; q++) {
      const v0 = v128.load(s), v1 = v128.load(s, 16);
      a0 = f64x2.add(a0, f64x2.promote_low_f32x4(v0));
      a1 = f64x2.add(a1, f64x2.promote_low_f32x4(v128.shuffle<f32>(v0, v0, 2, 3, 2, 3)));
      a2 = f64x2.add(a2, f64x2.promote_low_f32x4(v1));
      a3 = f64x2.add(a3, f64x2.promote_low_f32x4(v128.shuffle<f32>(v1, v1, 2, 3, 2, 3)));
      s += ld;
    }
    v128.store(dst, v128.shuffle<f32>(f32x4.demote_f64x2_zero(a0), f32x4.demote_f64x2_zero(a1), 0, 1, 4, 5));
    v128.store(dst, v128.shuffle<f32>(f32x4.demote_f64x2_zero(a2), f32x4.demote_f64x2_zero(a3), 0, 1, 4, 5), 16);
    return;
  }
  for (let c = 0; c < nc; c++) {
    let acc: f64 = 0;
    for (let q = 0; q < k; q++) acc += <f64>load<f32>(b + ((transB ? <usize>(j0 + c) * <usize>ldb + <usize>q : <usize>q * <usize>ldb + <usize>(j0 + c)) << 2));
    store<f32>(dst + (<usize>c << 2), <f32>acc);
  }
}

/** Packs every panel of op(B) (k x n) into dst. */
export function packB(b: usize, transB: bool, ldb: i32, k: i32, n: i32, dst: usize): void {
  const panels = (n + 7) >> 3;
  for (let jp = 0; jp < panels; jp++) packBPanel(b, transB, ldb, k, n, jp, dst);
}

/** Tile t of K_PACKB: panel (t % npanels) of batch entry (t / npanels). */
export function packBTile(p: usize, t: i32): void {
  const b = pu(p, ARG), packed = pu(p, ARG + 1);
  const k = pi(p, ARG + 3), n = pi(p, ARG + 4), transB = pi(p, ARG + 5) != 0, strideB = pi(p, ARG + 6), npanels = pi(p, ARG + 7);
  const e = t / npanels, jp = t % npanels;
  const src = b + (<usize>e * <usize>strideB << 2);
  // Column sums (slot 8, 0 = none) of batch entry 0 only.
  const sums = e == 0 ? pu(p, ARG + 8) : 0;
  packBPanel(src, transB, transB ? k : n, k, n, jp, packed + ((<usize>e * <usize>k * <usize>(npanels * 8)) << 2), sums);
}

/**
 * Packs rows i0..i0+mc, columns pc..pc+kc of op(A) (m rows) into 4-row panels: panel ip holds kc groups
 * of 4 floats. A element (i, q) is at a + 4 * (transA ? q * lda + i : i * lda + q).
 */
function packA(a: usize, transA: bool, lda: i32, m: i32, i0: i32, mc: i32, pc: i32, kc: i32, dst: usize): void {
  const panels = (mc + 3) >> 2;
  for (let ip = 0; ip < panels; ip++) {
    const r0 = i0 + ip * 4;
    const d = dst + (<usize>(ip * 4 * kc) << 2);
    if (transA) {
      // A is [k, m]: the 4 rows of a panel are 4 adjacent floats of each stored row.
      if (r0 + 4 <= m) {
        for (let q = 0; q < kc; q++) v128.store(d + (<usize>q << 4), v128.load(a + ((<usize>(pc + q) * <usize>lda + <usize>r0) << 2)));
      } else {
        for (let q = 0; q < kc; q++) {
          for (let r = 0; r < 4; r++) {
            store<f32>(d + (<usize>(q * 4 + r) << 2), r0 + r < m ? load<f32>(a + ((<usize>(pc + q) * <usize>lda + <usize>(r0 + r)) << 2)) : 0);
          }
        }
      }
    } else if (r0 + 4 <= m) {
      const s0 = a + ((<usize>r0 * <usize>lda + <usize>pc) << 2), ld = <usize>lda << 2;
      let q = 0;
      // 4x4 blocks transposed in registers.
      for (; q + 4 <= kc; q += 4) {
        const o = <usize>q << 2;
        const v0 = v128.load(s0 + o), v1 = v128.load(s0 + ld + o), v2 = v128.load(s0 + 2 * ld + o), v3 = v128.load(s0 + 3 * ld + o);
        const t0 = v128.shuffle<f32>(v0, v1, 0, 4, 1, 5), t1 = v128.shuffle<f32>(v2, v3, 0, 4, 1, 5);
        const t2 = v128.shuffle<f32>(v0, v1, 2, 6, 3, 7), t3 = v128.shuffle<f32>(v2, v3, 2, 6, 3, 7);
        const dq = d + (<usize>q << 4);
        v128.store(dq, v128.shuffle<f32>(t0, t1, 0, 1, 4, 5));
        v128.store(dq, v128.shuffle<f32>(t0, t1, 2, 3, 6, 7), 16);
        v128.store(dq, v128.shuffle<f32>(t2, t3, 0, 1, 4, 5), 32);
        v128.store(dq, v128.shuffle<f32>(t2, t3, 2, 3, 6, 7), 48);
      }
      for (; q < kc; q++) {
        for (let r = 0; r < 4; r++) store<f32>(d + (<usize>(q * 4 + r) << 2), load<f32>(s0 + <usize>r * ld + (<usize>q << 2)));
      }
    } else {
      for (let r = 0; r < 4; r++) {
        const s = a + ((<usize>(r0 + r) * <usize>lda + <usize>pc) << 2);
        for (let q = 0; q < kc; q++) store<f32>(d + (<usize>(q * 4 + r) << 2), r0 + r < m ? load<f32>(s + (<usize>q << 2)) : 0);
      }
    }
  }
}

// ---- micro-kernel ----

/**
 * C[4x8] (row stride ldc bytes) = (or +=) A panel [kc x 4] times B panel [kc x 8], plus the 8 floats at bias
 * in every row when bias != 0 (the accumulators start from it: the bias add costs nothing).
 */
@inline function kernel4x8(ap: usize, bp: usize, kc: i32, c: usize, ldc: usize, accumulate: bool, bias: usize, bStep: usize): void {
  let c00 = f32x4.splat(0), c01 = f32x4.splat(0);
  if (bias != 0) {
    c00 = v128.load(bias);
    c01 = v128.load(bias, 16);
  }
  let c10 = c00, c11 = c01, c20 = c00, c21 = c01, c30 = c00, c31 = c01;
  for (let q = 0; q < kc; q++) {
    const b0 = v128.load(bp), b1 = v128.load(bp, 16);
    let a = v128.load32_splat(ap);
    c00 = fma4(a, b0, c00);
    c01 = fma4(a, b1, c01);
    a = v128.load32_splat(ap, 4);
    c10 = fma4(a, b0, c10);
    c11 = fma4(a, b1, c11);
    a = v128.load32_splat(ap, 8);
    c20 = fma4(a, b0, c20);
    c21 = fma4(a, b1, c21);
    a = v128.load32_splat(ap, 12);
    c30 = fma4(a, b0, c30);
    c31 = fma4(a, b1, c31);
    ap += 16;
    bp += bStep;
  }
  if (accumulate) {
    c00 = f32x4.add(c00, v128.load(c));
    c01 = f32x4.add(c01, v128.load(c, 16));
    c10 = f32x4.add(c10, v128.load(c + ldc));
    c11 = f32x4.add(c11, v128.load(c + ldc, 16));
    c20 = f32x4.add(c20, v128.load(c + 2 * ldc));
    c21 = f32x4.add(c21, v128.load(c + 2 * ldc, 16));
    c30 = f32x4.add(c30, v128.load(c + 3 * ldc));
    c31 = f32x4.add(c31, v128.load(c + 3 * ldc, 16));
  }
  v128.store(c, c00);
  v128.store(c, c01, 16);
  v128.store(c + ldc, c10);
  v128.store(c + ldc, c11, 16);
  v128.store(c + 2 * ldc, c20);
  v128.store(c + 2 * ldc, c21, 16);
  v128.store(c + 3 * ldc, c30);
  v128.store(c + 3 * ldc, c31, 16);
}

/**
 * With bRow > 0, B is not packed: bPacked is B itself, row-major [k, n] with rows bRow floats apart, and the
 * micro-kernel reads each panel's 8 floats straight from the rows (n must then be a multiple of 8).
 *
 * C (row stride ldc floats; c points at row i0) = (or += when accumulate) op(A) [m x k] times packed B,
 * for rows i0..i0+mc (mc <= MC) and column panels jp0..jp1, plus bias [n] on every row when bias != 0 and
 * not accumulating. kPacked is the k the B panels were packed with (it sets the layout; k <= kPacked rows
 * of it are used). Scratch: the packed A block, then a 4x8 edge tile. The bias is read in whole 8-float
 * panels: its allocator block is padded to 64 bytes, so the last panel stays inside it.
 */
export function gemmBlock(a: usize, transA: bool, lda: i32, m: i32, k: i32, i0: i32, mc: i32,
  bPacked: usize, kPacked: i32, n: i32, jp0: i32, jp1: i32, c: usize, ldc: i32, accumulate: bool, scratch: usize, bias: usize = 0,
  aPacked: usize = 0, aPackedRows: i32 = MC, bRow: i32 = 0): void {
  const npad = ((n + 7) >> 3) * 8;
  const bStep: usize = bRow > 0 ? <usize>bRow << 2 : 32;
  const tmp = scratch + (<usize>(MC * KC) << 2);
  const ldcB = <usize>ldc << 2;
  const mPanels = (mc + 3) >> 2;
  for (let pc = 0; pc < k; pc += KC) {
    const kc = min(KC, k - pc), kcPacked = min(KC, kPacked - pc);
    const acc = accumulate || pc > 0;
    // A block packed already (packATile, once for every tile that shares it), or packed here into scratch.
    const aBlock = aPacked != 0 ? aPacked + (<usize>(aPackedRows * pc) << 2) : scratch;
    if (aPacked == 0) packA(a, transA, lda, m, i0, mc, pc, kc, scratch);
    const bBlock = bPacked + (<usize>pc * <usize>(bRow > 0 ? bRow : npad) << 2);
    for (let jp = jp0; jp < jp1; jp++) {
      const bp = bBlock + (<usize>(bRow > 0 ? jp * 8 : jp * 8 * kcPacked) << 2);
      const j0 = jp * 8, nc = min(8, n - j0);
      const bb = !acc && bias != 0 ? bias + (<usize>j0 << 2) : 0;
      for (let ip = 0; ip < mPanels; ip++) {
        const ap = aBlock + (<usize>(ip * 4 * kc) << 2);
        const r0 = i0 + ip * 4, mr = min(4, m - r0);
        const cp = c + <usize>(r0 - i0) * ldcB + (<usize>j0 << 2);
        if (mr == 4 && nc == 8) {
          kernel4x8(ap, bp, kc, cp, ldcB, acc, bb, bStep);
        } else {
          kernel4x8(ap, bp, kc, tmp, 32, false, bb, bStep);
          for (let i = 0; i < mr; i++) {
            for (let j = 0; j < nc; j++) {
              const dst = cp + <usize>i * ldcB + (<usize>j << 2);
              const v = load<f32>(tmp + (<usize>(i * 8 + j) << 2));
              store<f32>(dst, acc ? load<f32>(dst) + v : v);
            }
          }
        }
      }
    }
  }
}

/** C = (or +=) op(A) [m x k] times packed B [k x n], all rows in MC blocks. */
export function gemmAll(a: usize, transA: bool, lda: i32, m: i32, k: i32, bPacked: usize, kPacked: i32, n: i32,
  c: usize, ldc: i32, accumulate: bool, scratch: usize): void {
  const panels = (n + 7) >> 3;
  for (let i0 = 0; i0 < m; i0 += MC) {
    gemmBlock(a, transA, lda, m, k, i0, min(MC, m - i0), bPacked, kPacked, n, 0, panels, c + (<usize>i0 * <usize>ldc << 2), ldc, accumulate, scratch);
  }
}

/**
 * Tile t of K_PACKA: A block (rows ib * mb.., K block kb) of batch entry 0, packed as gemmBlock packs it
 * into scratch, at aPacked + (ib * mb * k + mb * pc) floats. Slots: a, aPacked, m, k, transA, kBlocks, mb.
 */
export function packATile(p: usize, t: i32): void {
  const a = pu(p, ARG), dst = pu(p, ARG + 1), m = pi(p, ARG + 2), k = pi(p, ARG + 3), transA = pi(p, ARG + 4) != 0, kBlocks = pi(p, ARG + 5);
  const mb = pi(p, ARG + 6);
  const ib = t / kBlocks, pc = (t % kBlocks) * KC, i0 = ib * mb;
  packA(a, transA, transA ? m : k, m, i0, min(mb, m - i0), pc, min(KC, k - pc), dst + ((<usize>i0 * <usize>k + <usize>(mb * pc)) << 2));
}

/**
 * Tile t of K_GEMM: batch entry bi, rows ib*mb.. (mb: slot 15, a multiple of 4 up to MC), column panels
 * jc*chunkPanels.. of C, over all of k. With aPacked (slot 14, batch of 1 only), A comes packed by K_PACKA.
 */
export function gemmTile(p: usize, t: i32, scratch: usize): void {
  const a = pu(p, ARG), packed = pu(p, ARG + 1), cOut = pu(p, ARG + 2);
  const m = pi(p, ARG + 4), n = pi(p, ARG + 5), k = pi(p, ARG + 6);
  const transA = pi(p, ARG + 7) != 0, strideA = pi(p, ARG + 8), packedPerBatch = pi(p, ARG + 9) != 0;
  const mBlocks = pi(p, ARG + 10), nChunks = pi(p, ARG + 11), chunkPanels = pi(p, ARG + 12), bias = pu(p, ARG + 13);
  const aPacked = pu(p, ARG + 14), mb = pi(p, ARG + 15), bRow = pi(p, ARG + 16);
  const per = mBlocks * nChunks;
  const bi = t / per, r = t % per, ib = r / nChunks, jc = r % nChunks;
  const npanels = (n + 7) >> 3, npad = npanels * 8;
  const i0 = ib * mb;
  const jp0 = jc * chunkPanels, jp1 = min(npanels, jp0 + chunkPanels);
  const aBase = a + (<usize>bi * <usize>strideA << 2);
  const cBase = cOut + (<usize>bi * <usize>m * <usize>n << 2);
  const bBatch = packed + ((packedPerBatch ? <usize>bi * <usize>k * <usize>npad : 0) << 2);
  gemmBlock(aBase, transA, transA ? m : k, m, k, i0, min(mb, m - i0), bBatch, k, n, jp0, jp1, cBase + (<usize>i0 * <usize>n << 2), n, false, scratch, bias,
    aPacked != 0 ? aPacked + (<usize>i0 * <usize>k << 2) : 0, mb, bRow);
}

/** Tile t of K_MATMUL_INT: row (t % m) of batch entry (t / m), exact wrapping integer arithmetic. */
export function matmulIntTile(p: usize, t: i32): void {
  const dt = pi(p, ARG), a = pu(p, ARG + 1), b = pu(p, ARG + 2), c = pu(p, ARG + 3);
  const m = pi(p, ARG + 5), n = pi(p, ARG + 6), k = pi(p, ARG + 7);
  const transA = pi(p, ARG + 8) != 0, transB = pi(p, ARG + 9) != 0, strideA = pi(p, ARG + 10), strideB = pi(p, ARG + 11);
  const bi = t / m, i = t % m;
  const a0 = <usize>bi * <usize>strideA, b0 = <usize>bi * <usize>strideB, c0 = <usize>bi * <usize>m * <usize>n + <usize>i * <usize>n;
  for (let j = 0; j < n; j++) {
    let s: i32 = 0;
    for (let q = 0; q < k; q++) {
      const av = ldi(a, a0 + (transA ? <usize>q * <usize>m + <usize>i : <usize>i * <usize>k + <usize>q), dt);
      const bv = ldi(b, b0 + (transB ? <usize>j * <usize>k + <usize>q : <usize>q * <usize>n + <usize>j), dt);
      s += av * bv;
    }
    sti(c, c0 + <usize>j, dt, s);
  }
}

/**
 * Tile t of K_GEMV, the product for m <= 3 rows (token-by-token decoding), where packing would cost
 * as much as the product: batch entry t / chunks, columns (t % chunks) * 64.., straight from A and B.
 */
export function gemvTile(p: usize, t: i32): void {
  const a = pu(p, ARG), b = pu(p, ARG + 1), c = pu(p, ARG + 2);
  const m = pi(p, ARG + 4), n = pi(p, ARG + 5), k = pi(p, ARG + 6);
  const transA = pi(p, ARG + 7) != 0, transB = pi(p, ARG + 8) != 0, strideA = pi(p, ARG + 9), strideB = pi(p, ARG + 10);
  const bias = pu(p, ARG + 11);
  const chunks = (n + 63) >> 6, bi = t / chunks, j0 = (t % chunks) << 6, j1 = min(n, j0 + 64);
  const aB = a + (<usize>bi * <usize>strideA << 2), bB = b + (<usize>bi * <usize>strideB << 2);
  const cB = c + (<usize>bi * <usize>m * <usize>n << 2);
  for (let i = 0; i < m; i++) {
    const aRow = transA ? aB + (<usize>i << 2) : aB + (<usize>i * <usize>k << 2);
    const aStep = transA ? <usize>m << 2 : 4;
    const cRow = cB + (<usize>i * <usize>n << 2);
    if (!transB) {
      // C[i, j..j+16) = sum_q A[i, q] B[q, j..j+16): four vector accumulators per strip.
      let j = j0;
      for (; j + 16 <= j1; j += 16) {
        let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
        if (bias != 0) {
          const bj = bias + (<usize>j << 2);
          s0 = v128.load(bj);
          s1 = v128.load(bj, 16);
          s2 = v128.load(bj, 32);
          s3 = v128.load(bj, 48);
        }
        let ap = aRow, bp = bB + (<usize>j << 2);
        const ldb = <usize>n << 2;
        for (let q = 0; q < k; q++) {
          const av = v128.load32_splat(ap);
          s0 = fma4(av, v128.load(bp), s0);
          s1 = fma4(av, v128.load(bp, 16), s1);
          s2 = fma4(av, v128.load(bp, 32), s2);
          s3 = fma4(av, v128.load(bp, 48), s3);
          ap += aStep;
          bp += ldb;
        }
        const cp = cRow + (<usize>j << 2);
        v128.store(cp, s0);
        v128.store(cp, s1, 16);
        v128.store(cp, s2, 32);
        v128.store(cp, s3, 48);
      }
      for (; j < j1; j++) {
        let s: f32 = bias != 0 ? load<f32>(bias + (<usize>j << 2)) : 0;
        for (let q = 0; q < k; q++) s += load<f32>(aRow + <usize>q * aStep) * load<f32>(bB + ((<usize>q * <usize>n + <usize>j) << 2));
        store<f32>(cRow + (<usize>j << 2), s);
      }
    } else {
      // B is [n, k]: C[i, j] = A[i, :] . B[j, :], both contiguous when A is not transposed.
      for (let j = j0; j < j1; j++) {
        const bRow = bB + (<usize>j * <usize>k << 2);
        let q = 0;
        let s: f32 = 0;
        if (!transA) {
          let s0 = f32x4.splat(0), s1 = f32x4.splat(0);
          for (; q + 8 <= k; q += 8) {
            const o = <usize>q << 2;
            s0 = fma4(v128.load(aRow + o), v128.load(bRow + o), s0);
            s1 = fma4(v128.load(aRow + o, 16), v128.load(bRow + o, 16), s1);
          }
          s0 = f32x4.add(s0, s1);
          s = f32x4.extract_lane(s0, 0) + f32x4.extract_lane(s0, 1) + f32x4.extract_lane(s0, 2) + f32x4.extract_lane(s0, 3);
        }
        for (; q < k; q++) s += load<f32>(aRow + <usize>q * aStep) * load<f32>(bRow + (<usize>q << 2));
        if (bias != 0) s += load<f32>(bias + (<usize>j << 2));
        store<f32>(cRow + (<usize>j << 2), s);
      }
    }
  }
}
