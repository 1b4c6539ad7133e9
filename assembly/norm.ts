// Fused row kernels over [rows, cols]: (log-)softmax, layer norm and RMS norm, each with its backward.
// Rows are split into tiles of whole rows. Row sums use f32x4 partials folded into f64 every 256
// elements. The norm backward writes per-chunk partial weight/bias gradients, summed by a second job
// in a fixed order: the result does not depend on the thread count.

import { ARG, exp4, fma4, pf, pi, pu } from './common';

@inline function hsum(v: v128): f64 {
  return <f64>f32x4.extract_lane(v, 0) + <f64>f32x4.extract_lane(v, 1) + <f64>f32x4.extract_lane(v, 2) + <f64>f32x4.extract_lane(v, 3);
}

/** max of a row (NaN if any is NaN, as Math.max does). */
function rowMax(x: usize, n: i32): f32 {
  let m: f32 = -Infinity;
  let i = 0;
  if (n >= 4) {
    let v = v128.load(x);
    for (i = 4; i + 4 <= n; i += 4) v = f32x4.max(v, v128.load(x + (<usize>i << 2)));
    // Fold the lanes (f32x4.max propagates NaN).
    v = f32x4.max(v, v128.shuffle<f32>(v, v, 2, 3, 0, 1));
    v = f32x4.max(v, v128.shuffle<f32>(v, v, 1, 0, 3, 2));
    m = f32x4.extract_lane(v, 0);
    if (m != m) return NaN;
  }
  for (; i < n; i++) {
    const e = load<f32>(x + (<usize>i << 2));
    if (e != e) return NaN;
    m = max(m, e);
  }
  return m;
}

/** sum over a row of a[i] * b[i] (b = 0: sum of a[i]). */
function rowDot(a: usize, b: usize, n: i32): f64 {
  let total: f64 = 0;
  let i = 0;
  while (i + 4 <= n) {
    const end = min(n - 3, i + 256);
    let s = f32x4.splat(0);
    if (b == 0) for (; i < end; i += 4) s = f32x4.add(s, v128.load(a + (<usize>i << 2)));
    else for (; i < end; i += 4) s = fma4(v128.load(a + (<usize>i << 2)), v128.load(b + (<usize>i << 2)), s);
    total += hsum(s);
  }
  for (; i < n; i++) total += <f64>load<f32>(a + (<usize>i << 2)) * (b == 0 ? 1.0 : <f64>load<f32>(b + (<usize>i << 2)));
  return total;
}

// Slots: x, out, rows, cols, log, rowsPerTile.
export function softmaxTile(p: usize, t: i32): void {
  const x = pu(p, ARG), out = pu(p, ARG + 1), rows = pi(p, ARG + 2), cols = pi(p, ARG + 3), log = pi(p, ARG + 4) != 0, rpt = pi(p, ARG + 5);
  const r1 = min(rows, (t + 1) * rpt);
  for (let r = t * rpt; r < r1; r++) {
    const xr = x + (<usize>r * <usize>cols << 2), yr = out + (<usize>r * <usize>cols << 2);
    let mx = rowMax(xr, cols);
    if (mx == -Infinity) mx = 0; // a fully masked row: NaN for softmax, as in PyTorch
    const mv = f32x4.splat(mx);
    // Pass 1: e = exp(x - max), kept in out for softmax, summed.
    let total: f64 = 0;
    let i = 0;
    while (i + 4 <= cols) {
      const end = min(cols - 3, i + 256);
      let s = f32x4.splat(0);
      for (; i < end; i += 4) {
        const e = exp4(f32x4.sub(v128.load(xr + (<usize>i << 2)), mv));
        if (!log) v128.store(yr + (<usize>i << 2), e);
        s = f32x4.add(s, e);
      }
      total += hsum(s);
    }
    for (; i < cols; i++) {
      const e = Math.exp(<f64>(load<f32>(xr + (<usize>i << 2)) - mx));
      if (!log) store<f32>(yr + (<usize>i << 2), <f32>e);
      total += e;
    }
    // Pass 2: scale, or subtract max, then log(sum) (as PyTorch: one shift max + log(sum) would round to max for
    // huge logits, and the backward's exp(y) of tied 1e30 logits would be 1 each, not 0.5).
    i = 0;
    if (log) {
      const ls = <f32>Math.log(total);
      const lv = f32x4.splat(ls);
      for (; i + 4 <= cols; i += 4) v128.store(yr + (<usize>i << 2), f32x4.sub(f32x4.sub(v128.load(xr + (<usize>i << 2)), mv), lv));
      for (; i < cols; i++) store<f32>(yr + (<usize>i << 2), (load<f32>(xr + (<usize>i << 2)) - mx) - ls);
    } else {
      const inv = <f32>(1.0 / total);
      const iv = f32x4.splat(inv);
      for (; i + 4 <= cols; i += 4) v128.store(yr + (<usize>i << 2), f32x4.mul(v128.load(yr + (<usize>i << 2)), iv));
      for (; i < cols; i++) store<f32>(yr + (<usize>i << 2), load<f32>(yr + (<usize>i << 2)) * inv);
    }
  }
}

// Slots: y, dy, dx, rows, cols, log, rowsPerTile.
export function softmaxGradTile(p: usize, t: i32): void {
  const y = pu(p, ARG), dy = pu(p, ARG + 1), dx = pu(p, ARG + 2), rows = pi(p, ARG + 3), cols = pi(p, ARG + 4);
  const log = pi(p, ARG + 5) != 0, rpt = pi(p, ARG + 6);
  const r1 = min(rows, (t + 1) * rpt);
  for (let r = t * rpt; r < r1; r++) {
    const o = <usize>r * <usize>cols << 2;
    const yr = y + o, gr = dy + o, dr = dx + o;
    const dot = <f32>(log ? rowDot(gr, 0, cols) : rowDot(gr, yr, cols));
    const dv = f32x4.splat(dot);
    let i = 0;
    if (log) {
      // dx = dy - softmax * sum(dy)
      for (; i + 4 <= cols; i += 4) {
        const q = <usize>i << 2;
        v128.store(dr + q, f32x4.sub(v128.load(gr + q), f32x4.mul(exp4(v128.load(yr + q)), dv)));
      }
      for (; i < cols; i++) {
        const q = <usize>i << 2;
        store<f32>(dr + q, <f32>(<f64>load<f32>(gr + q) - Math.exp(<f64>load<f32>(yr + q)) * <f64>dot));
      }
    } else {
      // dx = y * (dy - sum(dy * y))
      for (; i + 4 <= cols; i += 4) {
        const q = <usize>i << 2;
        v128.store(dr + q, f32x4.mul(v128.load(yr + q), f32x4.sub(v128.load(gr + q), dv)));
      }
      for (; i < cols; i++) {
        const q = <usize>i << 2;
        store<f32>(dr + q, load<f32>(yr + q) * (load<f32>(gr + q) - dot));
      }
    }
  }
}

// Slots: x, weight (0 = none), bias (0 = none), y, mean (0 for RMS norm), rstd, rows, cols, eps, rowsPerTile.
export function normTile(p: usize, t: i32): void {
  const x = pu(p, ARG), w = pu(p, ARG + 1), b = pu(p, ARG + 2), y = pu(p, ARG + 3), meanOut = pu(p, ARG + 4), rstdOut = pu(p, ARG + 5);
  const rows = pi(p, ARG + 6), cols = pi(p, ARG + 7), eps = <f64>pf(p, ARG + 8), rpt = pi(p, ARG + 9);
  const rms = meanOut == 0;
  const r1 = min(rows, (t + 1) * rpt);
  for (let r = t * rpt; r < r1; r++) {
    const o = <usize>r * <usize>cols << 2;
    const xr = x + o, yr = y + o;
    const mu: f32 = rms ? 0 : <f32>(rowDot(xr, 0, cols) / <f64>cols);
    // Centred second moment (two passes: no cancellation).
    const mv = f32x4.splat(mu);
    let ss: f64 = 0;
    let i = 0;
    while (i + 4 <= cols) {
      const end = min(cols - 3, i + 256);
      let s = f32x4.splat(0);
      for (; i < end; i += 4) {
        const d = f32x4.sub(v128.load(xr + (<usize>i << 2)), mv);
        s = fma4(d, d, s);
      }
      ss += hsum(s);
    }
    for (; i < cols; i++) {
      const d = <f64>(load<f32>(xr + (<usize>i << 2)) - mu);
      ss += d * d;
    }
    const rs = <f32>(1.0 / Math.sqrt(ss / <f64>cols + eps));
    if (!rms) store<f32>(meanOut + (<usize>r << 2), mu);
    store<f32>(rstdOut + (<usize>r << 2), rs);
    const rv = f32x4.splat(rs);
    i = 0;
    for (; i + 4 <= cols; i += 4) {
      const q = <usize>i << 2;
      let v = f32x4.mul(f32x4.sub(v128.load(xr + q), mv), rv);
      if (w != 0) v = f32x4.mul(v, v128.load(w + q));
      if (b != 0) v = f32x4.add(v, v128.load(b + q));
      v128.store(yr + q, v);
    }
    for (; i < cols; i++) {
      const q = <usize>i << 2;
      let v = (load<f32>(xr + q) - mu) * rs;
      if (w != 0) v *= load<f32>(w + q);
      if (b != 0) v += load<f32>(b + q);
      store<f32>(yr + q, v);
    }
  }
}

// Slots: x, weight (0 = none), mean (0 for RMS norm), rstd, dy, dx, partials, rows, cols, rowsPerChunk.
// Tile t = chunk t of rows: writes dx for its rows, and its partial sums of dy * xhat (then of dy, for
// layer norm) at partials + t * 2 * cols.
export function normGradTile(p: usize, t: i32): void {
  const x = pu(p, ARG), w = pu(p, ARG + 1), mean = pu(p, ARG + 2), rstd = pu(p, ARG + 3), dy = pu(p, ARG + 4), dx = pu(p, ARG + 5);
  const partials = pu(p, ARG + 6), rows = pi(p, ARG + 7), cols = pi(p, ARG + 8), rpc = pi(p, ARG + 9);
  const rms = mean == 0;
  const pw = partials + (<usize>t * 2 * <usize>cols << 2), pb = pw + (<usize>cols << 2);
  memory.fill(pw, 0, <usize>cols << 3);
  const r1 = min(rows, (t + 1) * rpc);
  const invCols = 1.0 / <f64>cols;
  for (let r = t * rpc; r < r1; r++) {
    const o = <usize>r * <usize>cols << 2;
    const xr = x + o, gr = dy + o, dr = dx + o;
    const mu: f32 = rms ? 0 : load<f32>(mean + (<usize>r << 2)), rs = load<f32>(rstd + (<usize>r << 2));
    const mv = f32x4.splat(mu), rv = f32x4.splat(rs);
    // sums of g and g * xhat, g = dy * w; and the weight / bias partials.
    let sg: f64 = 0, sgx: f64 = 0;
    let i = 0;
    while (i + 4 <= cols) {
      const end = min(cols - 3, i + 256);
      let a = f32x4.splat(0), bsum = f32x4.splat(0);
      for (; i < end; i += 4) {
        const q = <usize>i << 2;
        const xh = f32x4.mul(f32x4.sub(v128.load(xr + q), mv), rv), d = v128.load(gr + q);
        const g = w != 0 ? f32x4.mul(d, v128.load(w + q)) : d;
        a = f32x4.add(a, g);
        bsum = fma4(g, xh, bsum);
        v128.store(pw + q, fma4(d, xh, v128.load(pw + q)));
        if (!rms) v128.store(pb + q, f32x4.add(v128.load(pb + q), d));
      }
      sg += hsum(a);
      sgx += hsum(bsum);
    }
    for (; i < cols; i++) {
      const q = <usize>i << 2;
      const xh = (load<f32>(xr + q) - mu) * rs, d = load<f32>(gr + q);
      const g = w != 0 ? d * load<f32>(w + q) : d;
      sg += <f64>g;
      sgx += <f64>g * <f64>xh;
      store<f32>(pw + q, load<f32>(pw + q) + d * xh);
      if (!rms) store<f32>(pb + q, load<f32>(pb + q) + d);
    }
    // dx = rstd * (g - mean(g) - xhat * mean(g * xhat)); RMS norm has no mean(g) term.
    const mg = f32x4.splat(rms ? 0 : <f32>(sg * invCols)), mgx = f32x4.splat(<f32>(sgx * invCols));
    const mgs = f32x4.extract_lane(mg, 0), mgxs = f32x4.extract_lane(mgx, 0);
    i = 0;
    for (; i + 4 <= cols; i += 4) {
      const q = <usize>i << 2;
      const xh = f32x4.mul(f32x4.sub(v128.load(xr + q), mv), rv), d = v128.load(gr + q);
      const g = w != 0 ? f32x4.mul(d, v128.load(w + q)) : d;
      v128.store(dr + q, f32x4.mul(rv, f32x4.sub(f32x4.sub(g, mg), f32x4.mul(xh, mgx))));
    }
    for (; i < cols; i++) {
      const q = <usize>i << 2;
      const xh = (load<f32>(xr + q) - mu) * rs, d = load<f32>(gr + q);
      const g = w != 0 ? d * load<f32>(w + q) : d;
      store<f32>(dr + q, rs * (g - mgs - xh * mgxs));
    }
  }
}

// Slots: partials, chunks, cols, dweight, dbias (0 = none), colsPerTile. Sums the chunks' partials in f64.
export function sumPartialsTile(p: usize, t: i32): void {
  const partials = pu(p, ARG), chunks = pi(p, ARG + 1), cols = pi(p, ARG + 2), dw = pu(p, ARG + 3), db = pu(p, ARG + 4), cpt = pi(p, ARG + 5);
  const c1 = min(cols, (t + 1) * cpt);
  const stride = <usize>cols << 3;
  for (let c = t * cpt; c < c1; c++) {
    let sw: f64 = 0, sb: f64 = 0;
    for (let ch = 0; ch < chunks; ch++) {
      const q = partials + <usize>ch * stride + (<usize>c << 2);
      sw += <f64>load<f32>(q);
      sb += <f64>load<f32>(q + (<usize>cols << 2));
    }
    store<f32>(dw + (<usize>c << 2), <f32>sw);
    if (db != 0) store<f32>(db + (<usize>c << 2), <f32>sb);
  }
}

// ---- cross-entropy over rows against int32 class indices (checked on the TypeScript side first) ----

// Slots: x, target, loss, lse, rows, cols, ignoreIndex, rowsPerTile.
export function crossEntropyTile(p: usize, t: i32): void {
  const x = pu(p, ARG), target = pu(p, ARG + 1), loss = pu(p, ARG + 2), lseOut = pu(p, ARG + 3);
  const rows = pi(p, ARG + 4), cols = pi(p, ARG + 5), ignore = pi(p, ARG + 6), rpt = pi(p, ARG + 7);
  const r1 = min(rows, (t + 1) * rpt);
  for (let r = t * rpt; r < r1; r++) {
    const xr = x + (<usize>r * <usize>cols << 2);
    const mx = rowMax(xr, cols);
    const mv = f32x4.splat(mx);
    let total: f64 = 0;
    let i = 0;
    while (i + 4 <= cols) {
      const end = min(cols - 3, i + 256);
      let s = f32x4.splat(0);
      for (; i < end; i += 4) s = f32x4.add(s, exp4(f32x4.sub(v128.load(xr + (<usize>i << 2)), mv)));
      total += hsum(s);
    }
    for (; i < cols; i++) total += Math.exp(<f64>(load<f32>(xr + (<usize>i << 2)) - mx));
    const lse = <f64>mx + Math.log(total);
    store<f32>(lseOut + (<usize>r << 2), <f32>lse);
    const tr = load<i32>(target + (<usize>r << 2));
    store<f32>(loss + (<usize>r << 2), tr == ignore ? 0 : <f32>(lse - <f64>load<f32>(xr + (<usize>tr << 2))));
  }
}

// Slots: x, target, lse, dloss, dx, rows, cols, ignoreIndex, rowsPerTile.
export function crossEntropyGradTile(p: usize, t: i32): void {
  const x = pu(p, ARG), target = pu(p, ARG + 1), lse = pu(p, ARG + 2), dloss = pu(p, ARG + 3), dx = pu(p, ARG + 4);
  const rows = pi(p, ARG + 5), cols = pi(p, ARG + 6), ignore = pi(p, ARG + 7), rpt = pi(p, ARG + 8);
  const r1 = min(rows, (t + 1) * rpt);
  for (let r = t * rpt; r < r1; r++) {
    const o = <usize>r * <usize>cols << 2;
    const xr = x + o, dr = dx + o;
    const tr = load<i32>(target + (<usize>r << 2));
    // An ignored row gets 0 * softmax (PyTorch's log-softmax backward): NaN where the row's logits are NaN.
    const skip = tr == ignore;
    const g: f32 = skip ? 0 : load<f32>(dloss + (<usize>r << 2)), l = load<f32>(lse + (<usize>r << 2));
    const gv = f32x4.splat(g), lv = f32x4.splat(l);
    let i = 0;
    for (; i + 4 <= cols; i += 4) v128.store(dr + (<usize>i << 2), f32x4.mul(exp4(f32x4.sub(v128.load(xr + (<usize>i << 2)), lv)), gv));
    for (; i < cols; i++) store<f32>(dr + (<usize>i << 2), <f32>Math.exp(<f64>(load<f32>(xr + (<usize>i << 2)) - l)) * g);
    if (skip) continue;
    const dt = dr + (<usize>tr << 2);
    store<f32>(dt, load<f32>(dt) - g);
  }
}
