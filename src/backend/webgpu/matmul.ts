// WGSL batched matrix product (tiled, register-blocked), with an optional bias row.
//
// fp32: a 128 x 128 tile with 8 x 8 outputs per thread (large products), the same kernel with a 64 x 64 tile and
// 4 x 4 outputs (small or skinny products), and a GEMV for products of at most GEMV_ROWS rows or one column
// (decode), where each workgroup reduces over k for a few output columns. int32 / uint8: one thread per output.

import type { MatmulParams } from '../../tensor/backend.js';
import type { DType } from '../../tensor/dtype.js';
import type { GpuBuffer, GpuContext } from './context.js';

/** Products with at most this many rows per batch entry take the GEMV kernel. */
const GEMV_ROWS = 4;
/** The big tile pays off once it still gives the device this many workgroups; below, the 64 tile gives 4x more. */
const BIG_TILE_GROUPS = 64;
/** Workgroups per dispatch dimension (WebGPU's guaranteed limit): batches are dispatched in chunks of this. */
const MAX_GROUPS = 65535;

type Scalar = 'f32' | 'i32' | 'u32';

function scalarOf(dtype: DType): Scalar {
  switch (dtype) {
    case 'float32': return 'f32';
    case 'int32': return 'i32';
    case 'uint8': return 'u32';
    default: throw new Error(`webgpu: matmul of ${dtype} tensors is not supported (float32, int32 or uint8)`);
  }
}

/** The stored value: uint8 results keep their low 8 bits (the CPU backends store into a Uint8Array). */
function stored(dtype: DType, v: string): string {
  return dtype === 'uint8' ? `(${v} & 255u)` : v;
}

/**
 * WGSL loading one operand's tile into workgroup memory `dst` laid out [BK][T] (k-major; vec4 words), zero outside the
 * matrix. `alongMN`: the operand is contiguous along m (A^T) or n (B), else along k. `vec`: the source is bound as vec4
 * (contiguous length and batch stride multiples of 4).
 */
function loadTile(dst: string, src: string, tile: number, bk: number, alongMN: boolean, vec: boolean, base: string, mn: string): string {
  if (vec && alongMN) {
    // T/4 vec4 per k row, BK rows: one vec4 per thread. Source index (k0 + kk) * mn + r0 + 4 v.
    return `{
    let kk = li / ${tile / 4}u; let v = li % ${tile / 4}u;
    let q = k0 + kk; let r = ${base}Row0 + 4u * v;
    var x = vec4<f32>(0);
    if (q < K && r < ${mn}) { x = ${src}[(${base}Off + q * ${mn} + r) / 4u]; }
    ${dst}[kk * ${tile / 4}u + v] = x;
  }`;
  }
  if (vec) {
    // BK/4 vec4 per row of T rows: one vec4 (4 consecutive k) per thread, spread over 4 k rows of the tile.
    return `{
    let rr = li / ${bk / 4}u; let kq = li % ${bk / 4}u;
    let q = k0 + 4u * kq; let r = ${base}Row0 + rr;
    var x = vec4<f32>(0);
    if (q < K && r < ${mn}) { x = ${src}[(${base}Off + r * K + q) / 4u]; }
    for (var c = 0u; c < 4u; c++) { ${dst}[(4u * kq + c) * ${tile / 4}u + rr / 4u][rr % 4u] = x[c]; }
  }`;
  }
  // Scalar loads: 4 elements per thread, consecutive threads on the contiguous dimension.
  const idx = alongMN
    ? `let kk = e / ${tile}u; let rr = e % ${tile}u; let q = k0 + kk; let r = ${base}Row0 + rr;
      if (q < K && r < ${mn}) { x = ${src}[${base}Off + q * ${mn} + r]; }`
    : `let kk = e % ${bk}u; let rr = e / ${bk}u; let q = k0 + kk; let r = ${base}Row0 + rr;
      if (q < K && r < ${mn}) { x = ${src}[${base}Off + r * K + q]; }`;
  return `for (var s = 0u; s < 4u; s++) {
    let e = li + 256u * s;
    var x = 0.0;
    ${idx}
    ${dst}[kk * ${tile / 4}u + rr / 4u][rr % 4u] = x;
  }`;
}

/**
 * The fp32 tiled kernel: workgroups of 16 x 16 threads, a tile of T = 16 TM rows and columns, each thread TM x TM outputs
 * in vec4 registers (rows g*64 + 4 ty + r, columns h*64 + 4 tx + c), k in steps of BK = 1024 / T through workgroup
 * memory. Params: M, N, K, strideA, strideB, first batch entry.
 */
function tiledSource(tm: 4 | 8, transA: boolean, transB: boolean, vecA: boolean, vecB: boolean, bias: boolean): string {
  const t = 'f32';
  const tile = 16 * tm, bk = 1024 / tile, groups = tm / 4;
  const binding = (i: number, name: string, vec: boolean): string =>
    `@group(0) @binding(${i}) var<storage, read> ${name}: array<${vec ? `vec4<${t}>` : t}>;`;
  const compute: string[] = [];
  for (let g = 0; g < groups; g++) compute.push(`let a${g} = As[kk * ${tile / 4}u + ${g * 16}u + ty];`);
  for (let h = 0; h < groups; h++) compute.push(`let b${h} = Bs[kk * ${tile / 4}u + ${h * 16}u + tx];`);
  for (let g = 0; g < groups; g++) {
    for (let r = 0; r < 4; r++) {
      for (let h = 0; h < groups; h++) {
        const i = (g * 4 + r) * groups + h;
        compute.push(`acc[${i}] = fma(vec4<f32>(a${g}[${r}]), b${h}, acc[${i}]);`);
      }
    }
  }
  return /* wgsl */ `
${binding(1, 'A', vecA)}
${binding(2, 'B', vecB)}
${bias ? binding(3, 'bias', false) : ''}
@group(0) @binding(${bias ? 4 : 3}) var<storage, read_write> C: array<${t}>;
var<workgroup> As: array<vec4<${t}>, 256>;
var<workgroup> Bs: array<vec4<${t}>, 256>;

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let M = pu(0u); let N = pu(1u); let K = pu(2u);
  let bi = wid.z + pu(5u);
  let tx = lid.x; let ty = lid.y;
  let aRow0 = wid.y * ${tile}u; let bRow0 = wid.x * ${tile}u;
  let aOff = bi * pu(3u); let bOff = bi * pu(4u);
  var acc: array<vec4<${t}>, ${tm * groups}>;
  for (var k0 = 0u; k0 < K; k0 += ${bk}u) {
    ${loadTile('As', 'A', tile, bk, transA, vecA, 'a', 'M')}
    ${loadTile('Bs', 'B', tile, bk, !transB, vecB, 'b', 'N')}
    workgroupBarrier();
    for (var kk = 0u; kk < ${bk}u; kk++) {
      ${compute.join('\n      ')}
    }
    workgroupBarrier();
  }
  let cOff = bi * M * N;
  for (var g = 0u; g < ${groups}u; g++) {
    for (var r = 0u; r < 4u; r++) {
      let i = aRow0 + g * 64u + 4u * ty + r;
      if (i >= M) { continue; }
      for (var h = 0u; h < ${groups}u; h++) {
        let v = acc[(g * 4u + r) * ${groups}u + h];
        for (var c = 0u; c < 4u; c++) {
          let j = bRow0 + h * 64u + 4u * tx + c;
          if (j < N) { C[cOff + i * N + j] = ${bias ? 'v[c] + bias[j]' : 'v[c]'}; }
        }
      }
    }
  }
}`;
}

/**
 * The fp32 GEMV kernel: one workgroup per (row, batch entry) and a few columns, threads splitting k. transB (B rows
 * contiguous in k): 8 columns x 32 lanes; else 32 consecutive columns x 8 k-slices. Partial sums meet in workgroup
 * memory. `biasAll`: the single bias value is added to every output (a product with n = 1 computed transposed).
 * Params: M, N, K, strideA, strideB, first batch entry.
 */
function gemvSource(transA: boolean, transB: boolean, bias: boolean, biasAll: boolean): string {
  const t = 'f32';
  const [cols, lanes] = transB ? [8, 32] : [32, 8];
  const aIndex = transA ? 'aOff + q * M + i' : 'aOff + i * K + q';
  const bIndex = transB ? 'bOff + j * K + q' : 'bOff + q * N + j';
  // transB: lanes are lid.x (consecutive k); else columns are lid.x (consecutive j): both read coalesced.
  const [col, lane] = transB ? ['lid.y', 'lid.x'] : ['lid.x', 'lid.y'];
  return /* wgsl */ `
@group(0) @binding(1) var<storage, read> A: array<${t}>;
@group(0) @binding(2) var<storage, read> B: array<${t}>;
${bias ? `@group(0) @binding(3) var<storage, read> bias: array<${t}>;` : ''}
@group(0) @binding(${bias ? 4 : 3}) var<storage, read_write> C: array<${t}>;
var<workgroup> part: array<${t}, 256>;

@compute @workgroup_size(${transB ? lanes : cols}, ${transB ? cols : lanes})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let M = pu(0u); let N = pu(1u); let K = pu(2u);
  let bi = wid.z + pu(5u);
  let i = wid.y;
  let col = ${col}; let lane = ${lane};
  let j = wid.x * ${cols}u + col;
  let aOff = bi * pu(3u); let bOff = bi * pu(4u);
  var acc = ${t}(0);
  if (j < N) {
    for (var q = lane; q < K; q += ${lanes}u) { acc = fma(A[${aIndex}], B[${bIndex}], acc); }
  }
  part[col * ${lanes}u + lane] = acc;
  workgroupBarrier();
  for (var w = ${lanes / 2}u; w > 0u; w >>= 1u) {
    if (lane < w) { part[col * ${lanes}u + lane] += part[col * ${lanes}u + lane + w]; }
    workgroupBarrier();
  }
  if (lane == 0u && j < N) {
    let v = part[col * ${lanes}u]${bias ? ` + bias[${biasAll ? '0u' : 'j'}]` : ''};
    C[bi * M * N + i * N + j] = v;
  }
}`;
}

/**
 * Integer products (no speed target; Mesa's compiler takes seconds over the vectorized integer tile): one thread per
 * output over the flat index of [batch, m, n]. Params: M, N, K, strideA, strideB, count.
 */
function integerSource(dtype: DType, transA: boolean, transB: boolean, bias: boolean): string {
  const t = scalarOf(dtype);
  return /* wgsl */ `
@group(0) @binding(1) var<storage, read> A: array<${t}>;
@group(0) @binding(2) var<storage, read> B: array<${t}>;
${bias ? `@group(0) @binding(3) var<storage, read> bias: array<${t}>;` : ''}
@group(0) @binding(${bias ? 4 : 3}) var<storage, read_write> C: array<${t}>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let o = flat(wid, nwg, lid);
  if (o >= pu(5u)) { return; }
  let M = pu(0u); let N = pu(1u); let K = pu(2u);
  let j = o % N; let i = (o / N) % M; let bi = o / (M * N);
  let aOff = bi * pu(3u); let bOff = bi * pu(4u);
  var acc = ${bias ? 'bias[j]' : `${t}(0)`};
  for (var q = 0u; q < K; q++) {
    acc += A[${transA ? 'aOff + q * M + i' : 'aOff + i * K + q'}] * B[${transB ? 'bOff + j * K + q' : 'bOff + q * N + j'}];
  }
  C[o] = ${stored(dtype, 'acc')};
}`;
}

/** Dispatches `source` over the batch in chunks the dispatch limit allows (param 5 is the chunk's first entry). */
function dispatch(ctx: GpuContext, source: string, params: number[], buffers: GpuBuffer[], gx: number, gy: number, batch: number): void {
  if (gy > MAX_GROUPS) throw new Error(`webgpu: matmul of ${gy} row blocks exceeds the dispatch limit of ${MAX_GROUPS}`);
  for (let b0 = 0; b0 < batch; b0 += MAX_GROUPS) {
    ctx.run(source, [...params.slice(0, 5), b0], buffers, [gx, gy, Math.min(MAX_GROUPS, batch - b0)]);
  }
}

/** op(A) op(B) per batch entry (stride 0 repeats an operand), plus bias [n] on every row; k = 0 gives the bias or zeros. */
export function matmul(ctx: GpuContext, a: GpuBuffer, b: GpuBuffer, p: MatmulParams, bias: GpuBuffer | null): GpuBuffer {
  const { batch, m, n, k, transA, transB, strideA, strideB } = p;
  const dtype = a.dtype;
  scalarOf(dtype);
  if (b.dtype !== dtype || (bias && bias.dtype !== dtype)) {
    throw new Error(`webgpu: matmul operands must share one dtype, got ${dtype}, ${b.dtype}${bias ? `, bias ${bias.dtype}` : ''}`);
  }
  const out = ctx.alloc(dtype, batch * m * n);
  if (batch * m * n === 0) return out;
  const withBias = bias ? [bias] : [];
  const params = [m, n, k, strideA, strideB];
  if (dtype !== 'float32') {
    ctx.run(integerSource(dtype, transA, transB, !!bias), [...params, batch * m * n], [a, b, ...withBias, out], ctx.groups1d(batch * m * n));
    return out;
  }
  if (m <= GEMV_ROWS) {
    const cols = transB ? 8 : 32;
    dispatch(ctx, gemvSource(transA, transB, !!bias, false), params, [a, b, ...withBias, out], Math.ceil(n / cols), m, batch);
    return out;
  }
  if (n === 1) {
    // C [m, 1] = (op(B)^T op(A)^T) [1, m]: the same words, computed as a GEMV over A's rows.
    const cols = transA ? 32 : 8;
    const q: number[] = [1, m, k, strideB, strideA];
    dispatch(ctx, gemvSource(!transB, !transA, !!bias, true), q, [b, a, ...withBias, out], Math.ceil(m / cols), 1, batch);
    return out;
  }
  const big = Math.ceil(m / 128) * Math.ceil(n / 128) * batch >= BIG_TILE_GROUPS;
  const tm = big ? 8 : 4, tile = 16 * tm;
  // vec4 loads need the contiguous length and the batch stride to be multiples of 4 (16-byte aligned rows).
  // (A vec4 binding must also hold at least one vec4.)
  const vecA = (transA ? m : k) % 4 === 0 && strideA % 4 === 0 && a.size % 4 === 0 && a.size > 0;
  const vecB = (transB ? k : n) % 4 === 0 && strideB % 4 === 0 && b.size % 4 === 0 && b.size > 0;
  dispatch(ctx, tiledSource(tm, transA, transB, vecA, vecB, !!bias), params, [a, b, ...withBias, out], Math.ceil(n / tile), Math.ceil(m / tile), batch);
  return out;
}
