// WGSL row kernels: softmax / log-softmax and their gradient, layer norm, RMS norm and their gradients, fused cross-entropy.
//
// One workgroup of 256 threads per row: the threads stride along the row and combine their partial sums / maxima
// in workgroup memory (the formulas are the cpu kernels', src/backend/cpu/norm.ts). The weight / bias gradients
// are column sums over the rows: a second kernel over (column block, row chunk), then a sum over the chunks.

import { ERRORS_WGSL, WG, type GpuBuffer, type GpuContext } from './context.js';
import { IS_NAN_WGSL, reduce } from './reduce.js';

type B = GpuBuffer;

/** Per-row launch: the row of this workgroup, and the shared reductions (every thread gets the row's result). */
const ROW_WGSL = /* wgsl */ `${IS_NAN_WGSL}
var<workgroup> red: array<f32, ${WG}>;
fn rowSum(v: f32, t: u32) -> f32 {
  red[t] = v;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s >>= 1u) {
    if (t < s) { red[t] = red[t] + red[t + s]; }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}
// The maximum with NaN propagated, as Math.max in the cpu kernels.
fn maxNan(a: f32, b: f32) -> f32 { if (isNan(a)) { return a; } if (isNan(b) || b > a) { return b; } return a; }
fn rowMax(v: f32, t: u32) -> f32 {
  red[t] = v;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s >>= 1u) {
    if (t < s) { red[t] = maxNan(red[t], red[t + s]); }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}
const NEG_INF_BITS: u32 = 0xff800000u;
`;

const ENTRY = `@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>)`;

/** The row of this workgroup (launched over groups1d(rows * WG)); returns when past the last row (uniformly). */
const ROW = `let row = wid.y * nwg.x + wid.x;
  let rows = pu(0); let cols = pu(1); let t = lid.x;
  if (row >= rows) { return; }
  let o = row * cols;`;

/** A storage binding; `rw` for outputs. */
function bind(k: number, name: string, type: string, rw = false): string {
  return `@group(0) @binding(${k}) var<storage, ${rw ? 'read_write' : 'read'}> ${name}: array<${type}>;`;
}

function rowGroups(ctx: GpuContext, rows: number): [number, number] {
  return ctx.groups1d(rows * WG);
}

export function softmax(ctx: GpuContext, x: B, rows: number, cols: number, log: boolean): B {
  const out = ctx.alloc(x.dtype, rows * cols);
  const write = log
    ? 'let lse = log(s); for (var c = t; c < cols; c += WG_1D) { out[o + c] = x[o + c] - m - lse; }'
    : 'for (var c = t; c < cols; c += WG_1D) { out[o + c] = exp(x[o + c] - m) / s; }';
  ctx.run(`${ROW_WGSL}
${bind(1, 'x', 'f32')}
${bind(2, 'out', 'f32', true)}
${ENTRY} {
  ${ROW}
  var m = pf(3); // -Infinity (WGSL constants cannot be infinite)
  for (var c = t; c < cols; c += WG_1D) { m = maxNan(m, x[o + c]); }
  m = rowMax(m, t);
  // A fully masked row: softmax gives NaN (0 / 0) as in PyTorch.
  if (bitcast<u32>(m) == NEG_INF_BITS) { m = 0.0; }
  var s = 0.0;
  for (var c = t; c < cols; c += WG_1D) { s += exp(x[o + c] - m); }
  s = rowSum(s, t);
  ${write}
}`, [rows, cols, 0, { f32: -Infinity }], [x, out], rowGroups(ctx, rows));
  return out;
}

export function softmaxGrad(ctx: GpuContext, y: B, dy: B, rows: number, cols: number, log: boolean): B {
  const dx = ctx.alloc(y.dtype, rows * cols);
  // log: dx = dy - softmax * sum(dy); else dx = y * (dy - sum(dy * y)).
  const [term, write] = log
    ? ['dy[o + c]', 'dy[o + c] - exp(y[o + c]) * d']
    : ['dy[o + c] * y[o + c]', 'y[o + c] * (dy[o + c] - d)'];
  ctx.run(`${ROW_WGSL}
${bind(1, 'y', 'f32')}
${bind(2, 'dy', 'f32')}
${bind(3, 'dx', 'f32', true)}
${ENTRY} {
  ${ROW}
  var d = 0.0;
  for (var c = t; c < cols; c += WG_1D) { d += ${term}; }
  d = rowSum(d, t);
  for (var c = t; c < cols; c += WG_1D) { dx[o + c] = ${write}; }
}`, [rows, cols], [y, dy, dx], rowGroups(ctx, rows));
  return dx;
}

export function layerNorm(ctx: GpuContext, x: B, w: B | null, b: B | null, rows: number, cols: number, eps: number): { y: B; mean: B; rstd: B } {
  const y = ctx.alloc(x.dtype, rows * cols), mean = ctx.alloc(x.dtype, rows), rstd = ctx.alloc(x.dtype, rows);
  const ins = [x, ...(w ? [w] : []), ...(b ? [b] : [])];
  const k = ins.length;
  ctx.run(`${ROW_WGSL}
${bind(1, 'x', 'f32')}
${w ? bind(2, 'w', 'f32') : ''}
${b ? bind(k, 'b', 'f32') : ''}
${bind(k + 1, 'y', 'f32', true)}
${bind(k + 2, 'mean', 'f32', true)}
${bind(k + 3, 'rstd', 'f32', true)}
${ENTRY} {
  ${ROW}
  var s = 0.0;
  for (var c = t; c < cols; c += WG_1D) { s += x[o + c]; }
  let mu = rowSum(s, t) / f32(cols);
  var v = 0.0;
  for (var c = t; c < cols; c += WG_1D) { let d = x[o + c] - mu; v += d * d; }
  let rs = 1.0 / sqrt(rowSum(v, t) / f32(cols) + pf(2));
  if (t == 0u) { mean[row] = mu; rstd[row] = rs; }
  for (var c = t; c < cols; c += WG_1D) { y[o + c] = (x[o + c] - mu) * rs${w ? ' * w[c]' : ''}${b ? ' + b[c]' : ''}; }
}`, [rows, cols, { f32: eps }], [...ins, y, mean, rstd], rowGroups(ctx, rows));
  return { y, mean, rstd };
}

/** Rows per workgroup of the column-sum kernel: its partial sums are then added over the ceil(rows / CHUNK) chunks. */
const CHUNK = 256;
/** Columns per workgroup of the column-sum kernel (adjacent threads read adjacent words), and lanes over the rows. */
const COLS = 32, LANES = WG / COLS;

/**
 * dweight[c] = sum_r dy[r, c] * xhat[r, c] (and dbias[c] = sum_r dy[r, c] with `mean`), xhat = (x - mean) * rstd:
 * partial sums of CHUNK rows per workgroup, summed over the chunks by the reduce kernel when there is more than one.
 */
function weightGrads(ctx: GpuContext, x: B, mean: B | null, rstd: B, dy: B, rows: number, cols: number): { dweight: B; dbias: B | null } {
  const chunks = Math.max(1, Math.ceil(rows / CHUNK)), blocks = Math.ceil(cols / COLS);
  const dw = ctx.alloc(x.dtype, chunks * cols), db = mean ? ctx.alloc(x.dtype, chunks * cols) : null;
  const k = mean ? 5 : 4;
  ctx.run(`
${bind(1, 'x', 'f32')}
${bind(2, 'rstd', 'f32')}
${bind(3, 'dy', 'f32')}
${mean ? bind(4, 'mean', 'f32') : ''}
${bind(k, 'dw', 'f32', true)}
${mean ? bind(k + 1, 'db', 'f32', true) : ''}
var<workgroup> shw: array<f32, ${WG}>;
var<workgroup> shb: array<f32, ${WG}>;
${ENTRY} {
  let g = wid.y * nwg.x + wid.x;
  let rows = pu(0); let cols = pu(1); let blocks = pu(2); let chunks = pu(3);
  if (g >= blocks * chunks) { return; }
  let chunk = g / blocks;
  let c = (g % blocks) * ${COLS}u + lid.x % ${COLS}u;
  let lane = lid.x / ${COLS}u;
  var sw = 0.0; var sb = 0.0;
  if (c < cols) {
    let end = min(rows, (chunk + 1u) * ${CHUNK}u);
    for (var r = chunk * ${CHUNK}u + lane; r < end; r += ${LANES}u) {
      let d = dy[r * cols + c];
      sw += d * (x[r * cols + c]${mean ? ' - mean[r]' : ''}) * rstd[r];
      sb += d;
    }
  }
  shw[lid.x] = sw; shb[lid.x] = sb;
  workgroupBarrier();
  for (var s = ${LANES / 2}u; s > 0u; s >>= 1u) {
    if (lane < s) {
      shw[lid.x] += shw[lid.x + s * ${COLS}u];
      shb[lid.x] += shb[lid.x + s * ${COLS}u];
    }
    workgroupBarrier();
  }
  if (lane == 0u && c < cols) {
    dw[chunk * cols + c] = shw[lid.x];
    ${mean ? 'db[chunk * cols + c] = shb[lid.x];' : ''}
  }
}`, [rows, cols, blocks, chunks], [x, rstd, dy, ...(mean ? [mean] : []), dw, ...(db ? [db] : [])], ctx.groups1d(blocks * chunks * WG));
  if (chunks === 1) return { dweight: dw, dbias: db };
  const total = (p: B): B => {
    const s = reduce(ctx, 'sum', p, 1, chunks, cols);
    ctx.free(p);
    return s;
  };
  return { dweight: total(dw), dbias: db && total(db) };
}

export function layerNormGrad(ctx: GpuContext, x: B, w: B | null, mean: B, rstd: B, dy: B, rows: number, cols: number): { dx: B; dweight: B; dbias: B } {
  const dx = ctx.alloc(x.dtype, rows * cols);
  // dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * w
  ctx.run(`${ROW_WGSL}
${bind(1, 'x', 'f32')}
${bind(2, 'mean', 'f32')}
${bind(3, 'rstd', 'f32')}
${bind(4, 'dy', 'f32')}
${bind(5, 'dx', 'f32', true)}
${w ? bind(6, 'w', 'f32') : ''}
${ENTRY} {
  ${ROW}
  let mu = mean[row]; let rs = rstd[row];
  var sg = 0.0; var sgx = 0.0;
  for (var c = t; c < cols; c += WG_1D) {
    let g = dy[o + c]${w ? ' * w[c]' : ''};
    sg += g;
    sgx += g * (x[o + c] - mu) * rs;
  }
  sg = rowSum(sg, t) / f32(cols);
  sgx = rowSum(sgx, t) / f32(cols);
  for (var c = t; c < cols; c += WG_1D) {
    let g = dy[o + c]${w ? ' * w[c]' : ''};
    dx[o + c] = rs * (g - sg - (x[o + c] - mu) * rs * sgx);
  }
}`, [rows, cols], [x, mean, rstd, dy, dx, ...(w ? [w] : [])], rowGroups(ctx, rows));
  const { dweight, dbias } = weightGrads(ctx, x, mean, rstd, dy, rows, cols);
  return { dx, dweight, dbias: dbias! };
}

export function rmsNorm(ctx: GpuContext, x: B, w: B | null, rows: number, cols: number, eps: number): { y: B; rstd: B } {
  const y = ctx.alloc(x.dtype, rows * cols), rstd = ctx.alloc(x.dtype, rows);
  ctx.run(`${ROW_WGSL}
${bind(1, 'x', 'f32')}
${bind(2, 'y', 'f32', true)}
${bind(3, 'rstd', 'f32', true)}
${w ? bind(4, 'w', 'f32') : ''}
${ENTRY} {
  ${ROW}
  var ss = 0.0;
  for (var c = t; c < cols; c += WG_1D) { let v = x[o + c]; ss += v * v; }
  let rs = 1.0 / sqrt(rowSum(ss, t) / f32(cols) + pf(2));
  if (t == 0u) { rstd[row] = rs; }
  for (var c = t; c < cols; c += WG_1D) { y[o + c] = x[o + c] * rs${w ? ' * w[c]' : ''}; }
}`, [rows, cols, { f32: eps }], [x, y, rstd, ...(w ? [w] : [])], rowGroups(ctx, rows));
  return { y, rstd };
}

export function rmsNormGrad(ctx: GpuContext, x: B, w: B | null, rstd: B, dy: B, rows: number, cols: number): { dx: B; dweight: B } {
  const dx = ctx.alloc(x.dtype, rows * cols);
  // dx = rstd * (g - xhat * mean(g * xhat)), xhat = x * rstd, g = dy * w
  ctx.run(`${ROW_WGSL}
${bind(1, 'x', 'f32')}
${bind(2, 'rstd', 'f32')}
${bind(3, 'dy', 'f32')}
${bind(4, 'dx', 'f32', true)}
${w ? bind(5, 'w', 'f32') : ''}
${ENTRY} {
  ${ROW}
  let rs = rstd[row];
  var sgx = 0.0;
  for (var c = t; c < cols; c += WG_1D) { sgx += dy[o + c]${w ? ' * w[c]' : ''} * x[o + c] * rs; }
  sgx = rowSum(sgx, t) / f32(cols);
  for (var c = t; c < cols; c += WG_1D) { dx[o + c] = rs * (dy[o + c]${w ? ' * w[c]' : ''} - x[o + c] * rs * sgx); }
}`, [rows, cols], [x, rstd, dy, dx, ...(w ? [w] : [])], rowGroups(ctx, rows));
  return { dx, dweight: weightGrads(ctx, x, null, rstd, dy, rows, cols).dweight };
}

/**
 * loss[r] = logsumexp(logits[r]) - logits[r, target[r]] (0 where target is ignoreIndex), and lse[r]. A target
 * outside [0, cols) fails the error slots: the next read throws `${op}: index ... out of range ...`.
 */
export function crossEntropy(ctx: GpuContext, logits: B, target: B, rows: number, cols: number, ignoreIndex: number, op: string): { loss: B; lse: B } {
  const loss = ctx.alloc(logits.dtype, rows), lse = ctx.alloc(logits.dtype, rows);
  ctx.run(`${ROW_WGSL}
${ERRORS_WGSL}
${bind(2, 'x', 'f32')}
${bind(3, 'tgt', 'i32')}
${bind(4, 'loss', 'f32', true)}
${bind(5, 'lse', 'f32', true)}
${ENTRY} {
  ${ROW}
  let ignore = pi(2);
  let tr = tgt[row];
  let skip = tr == ignore;
  var tc = tr;
  if (!skip && (tr < 0 || tr >= i32(cols))) {
    if (t == 0u) { fail(tr); }
    tc = 0; // keeps the read in bounds; the error is thrown at the next read
  }
  var m = pf(3); // -Infinity (WGSL constants cannot be infinite)
  for (var c = t; c < cols; c += WG_1D) { m = maxNan(m, x[o + c]); }
  m = rowMax(m, t);
  var s = 0.0;
  for (var c = t; c < cols; c += WG_1D) { s += exp(x[o + c] - m); }
  s = rowSum(s, t);
  if (t == 0u) {
    let l = m + log(s);
    lse[row] = l;
    loss[row] = select(l - x[o + u32(tc)], 0.0, skip);
  }
}`, [rows, cols, ignoreIndex, { f32: -Infinity }], [logits, target, loss, lse], rowGroups(ctx, rows),
  (v) => `${op}: index ${v} is out of range for a dimension of size ${cols}`);
  return { loss, lse };
}

/** d logits[r, j] = dloss[r] * (exp(logits[r, j] - lse[r]) - (j == target[r])); 0 * softmax on ignored rows (NaN stays NaN). */
export function crossEntropyGrad(ctx: GpuContext, logits: B, target: B, lse: B, dloss: B, rows: number, cols: number, ignoreIndex: number): B {
  const n = rows * cols;
  const dx = ctx.alloc(logits.dtype, n);
  ctx.run(`
${bind(1, 'x', 'f32')}
${bind(2, 'tgt', 'i32')}
${bind(3, 'lse', 'f32')}
${bind(4, 'dloss', 'f32')}
${bind(5, 'dx', 'f32', true)}
${ENTRY} {
  let k = flat(wid, nwg, lid);
  let n = pu(0); let cols = pu(1);
  if (k >= n) { return; }
  let r = k / cols;
  let tr = tgt[r];
  let p = exp(x[k] - lse[r]);
  if (tr == pi(2)) {
    // 0 * p by its bits (a compiler may fold 0 * p to 0): NaN where p is NaN or Inf.
    let bits = bitcast<u32>(p);
    dx[k] = select(0.0, bitcast<f32>(bits | 0x400000u), (bits & 0x7f800000u) == 0x7f800000u);
    return;
  }
  dx[k] = dloss[r] * (p - select(0.0, 1.0, i32(k % cols) == tr));
}`, [n, cols, ignoreIndex], [logits, target, lse, dloss, dx], ctx.groups1d(n));
  return dx;
}
