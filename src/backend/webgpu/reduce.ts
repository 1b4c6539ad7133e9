// WGSL reductions over the middle axis of [outer, size, inner]: sum / max / min, argmax / argmin, cumsum.
//
// A workgroup of 256 threads covers C adjacent inner columns (C a power of two <= 32, so that neighbouring threads
// read neighbouring words) of one outer index, with L = 256 / C lanes striding down the reduced axis; the lanes
// are then combined in workgroup memory. Short axes (size <= SERIAL) take one thread per output instead.

import type { ArgReduceOp, ReduceOp } from '../../tensor/backend.js';
import type { DType } from '../../tensor/dtype.js';
import { WG, type GpuBuffer, type GpuContext } from './context.js';

/** Axes this short are walked by one thread per output: a workgroup per output would leave most lanes idle. */
const SERIAL = 16;
/** A reduction launching fewer workgroups than this splits its axis into chunks of at least SPLIT_ROWS rows. */
const SPLIT_GROUPS = 256, SPLIT_ROWS = 1024;

type WgslType = 'f32' | 'i32' | 'u32';

/** The WGSL view of a dtype's 32-bit words (kernels see float32, int32, bool and uint8 only). */
export function wgslType(dtype: DType): WgslType {
  if (dtype === 'float32') return 'f32';
  if (dtype === 'int32') return 'i32';
  if (dtype === 'bool' || dtype === 'uint8') return 'u32';
  throw new Error(`webgpu: reductions do not take ${dtype} buffers`);
}

/** NaN by its bits: a compiler may assume `v != v` is false. */
export const IS_NAN_WGSL = /* wgsl */ `
fn isNan(v: f32) -> bool { return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u; }
`;

/** Bits of the identity of `op` in type t (passed as a parameter: WGSL constants cannot be infinite). */
function identity(op: ReduceOp | ArgReduceOp, t: WgslType): number | { f32: number } {
  const low = op === 'max' || op === 'argmax';
  if (op === 'sum') return 0;
  if (t === 'f32') return { f32: low ? -Infinity : Infinity };
  if (t === 'i32') return low ? -0x80000000 : 0x7fffffff;
  return low ? 0 : 0xffffffff;
}

/** Columns per workgroup for `inner` columns: the next power of two, at most 32. */
function columns(inner: number): number {
  let c = 1;
  while (c < inner && c < 32) c *= 2;
  return c;
}

/** Workgroup index of a launch spread over x and y by groups1d. */
const GROUP = 'let g = wid.y * nwg.x + wid.x;';
const ENTRY = `@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>)`;

/** comb(a, b) of the op; max / min propagate NaN as the cpu kernel does; stored values wrap to 8 bits for uint8. */
function combiner(op: ReduceOp, t: WgslType): string {
  if (op === 'sum') return `fn comb(a: ${t}, b: ${t}) -> ${t} { return a + b; }`;
  const cmp = op === 'max' ? '>' : '<';
  if (t !== 'f32') return `fn comb(a: ${t}, b: ${t}) -> ${t} { return select(a, b, b ${cmp} a); }`;
  return `fn comb(a: f32, b: f32) -> f32 { if (isNan(a)) { return a; } if (isNan(b) || b ${cmp} a) { return b; } return a; }`;
}

/** The stored result: integer reductions over an empty axis give 0 (the cpu kernel's infinities cast to int). */
function finish(t: WgslType): string {
  if (t === 'f32') return 'fn finish(v: f32) -> f32 { return v; }';
  const wrapped = t === 'u32' ? 'v & 255u' : 'v';
  return `fn finish(v: ${t}) -> ${t} { return select(${wrapped}, ${t}(0), pu(1) == 0u); }`;
}

export function reduce(ctx: GpuContext, op: ReduceOp, x: GpuBuffer, outer: number, size: number, inner: number): GpuBuffer {
  const t = wgslType(x.dtype);
  const head = `${IS_NAN_WGSL}
@group(0) @binding(1) var<storage, read> x: array<${t}>;
@group(0) @binding(2) var<storage, read_write> out: array<${t}>;
${combiner(op, t)}
${finish(t)}`;
  const id = identity(op, t);
  if (size <= SERIAL) {
    const n = outer * inner;
    const out = ctx.alloc(x.dtype, n);
    ctx.run(`${head}
${ENTRY} {
  let n = pu(0); let size = pu(1); let inner = pu(2);
  let k = flat(wid, nwg, lid);
  if (k >= n) { return; }
  let base = (k / inner) * size * inner + k % inner;
  var acc = bitcast<${t}>(pu(3));
  for (var r = 0u; r < size; r++) { acc = comb(acc, x[base + r * inner]); }
  out[k] = finish(acc);
}`, [n, size, inner, id], [x, out], ctx.groups1d(n));
    return out;
  }
  const c = columns(inner), lanes = WG / c, blocks = Math.ceil(inner / c);
  // Few workgroups over a long axis (a full sum, a bias gradient [1, B * T, C]): split the axis into chunks reduced
  // by their own workgroups, then reduce the chunks' partial results.
  const chunks = Math.max(1, Math.min(Math.ceil(SPLIT_GROUPS / (outer * blocks)), Math.floor(size / SPLIT_ROWS)));
  const chunkLen = Math.ceil(size / chunks), groups = outer * chunks * blocks;
  const part = ctx.alloc(x.dtype, outer * chunks * inner);
  ctx.run(`${head}
var<workgroup> sh: array<${t}, ${WG}>;
${ENTRY} {
  ${GROUP}
  let groups = pu(0); let size = pu(1); let inner = pu(2); let blocks = pu(4); let chunkLen = pu(5);
  if (g >= groups) { return; }
  let oc = g / blocks; // outer index * chunks + chunk
  let i = (g % blocks) * ${c}u + lid.x % ${c}u;
  let lane = lid.x / ${c}u;
  var acc = bitcast<${t}>(pu(3));
  if (i < inner) {
    let chunk = oc % pu(6);
    let base = (oc / pu(6)) * size * inner + i;
    let end = min(size, (chunk + 1u) * chunkLen);
    for (var r = chunk * chunkLen + lane; r < end; r += ${lanes}u) { acc = comb(acc, x[base + r * inner]); }
  }
  sh[lid.x] = acc;
  workgroupBarrier();
  for (var s = ${lanes / 2}u; s > 0u; s >>= 1u) {
    if (lane < s) { sh[lid.x] = comb(sh[lid.x], sh[lid.x + s * ${c}u]); }
    workgroupBarrier();
  }
  if (lane == 0u && i < inner) { out[oc * inner + i] = finish(sh[lid.x]); }
}`, [groups, size, inner, id, blocks, chunkLen, chunks], [x, part], ctx.groups1d(groups * WG));
  if (chunks === 1) return part;
  const total = reduce(ctx, op, part, outer, chunks, inner);
  ctx.free(part);
  return total;
}

/**
 * better(a, ia, b, ib): whether candidate b beats a. The first NaN wins (as in the cpu kernel), then the larger
 * (smaller) value, ties going to the lower index: the same answer in any order of combination.
 */
function better(op: ArgReduceOp, t: WgslType): string {
  const cmp = op === 'argmax' ? '>' : '<';
  const nan = t === 'f32' ? `
  let na = isNan(a); let nb = isNan(b);
  if (na || nb) { return nb && (!na || ib < ia); }` : '';
  return `fn better(a: ${t}, ia: u32, b: ${t}, ib: u32) -> bool {${nan}
  return b ${cmp} a || (b == a && ib < ia);
}`;
}

/** Index of the first maximum (minimum) along the axis, int32 (0 for an empty axis, as the cpu kernel). */
export function argReduce(ctx: GpuContext, op: ArgReduceOp, x: GpuBuffer, outer: number, size: number, inner: number): GpuBuffer {
  const t = wgslType(x.dtype);
  const out = ctx.alloc('int32', outer * inner);
  const head = `${IS_NAN_WGSL}
@group(0) @binding(1) var<storage, read> x: array<${t}>;
@group(0) @binding(2) var<storage, read_write> out: array<i32>;
const NONE: u32 = 0xffffffffu;
${better(op, t)}`;
  const id = identity(op, t);
  if (size <= SERIAL) {
    const n = outer * inner;
    ctx.run(`${head}
${ENTRY} {
  let n = pu(0); let size = pu(1); let inner = pu(2);
  let k = flat(wid, nwg, lid);
  if (k >= n) { return; }
  let base = (k / inner) * size * inner + k % inner;
  var best = bitcast<${t}>(pu(3)); var arg = NONE;
  for (var r = 0u; r < size; r++) {
    let v = x[base + r * inner];
    if (better(best, arg, v, r)) { best = v; arg = r; }
  }
  out[k] = select(i32(arg), 0, arg == NONE);
}`, [n, size, inner, id], [x, out], ctx.groups1d(n));
    return out;
  }
  const c = columns(inner), lanes = WG / c, blocks = Math.ceil(inner / c), groups = outer * blocks;
  ctx.run(`${head}
var<workgroup> shv: array<${t}, ${WG}>;
var<workgroup> shi: array<u32, ${WG}>;
${ENTRY} {
  ${GROUP}
  let groups = pu(0); let size = pu(1); let inner = pu(2); let blocks = pu(4);
  if (g >= groups) { return; }
  let o = g / blocks;
  let i = (g % blocks) * ${c}u + lid.x % ${c}u;
  let lane = lid.x / ${c}u;
  var best = bitcast<${t}>(pu(3)); var arg = NONE;
  if (i < inner) {
    let base = o * size * inner + i;
    for (var r = lane; r < size; r += ${lanes}u) {
      let v = x[base + r * inner];
      if (better(best, arg, v, r)) { best = v; arg = r; }
    }
  }
  shv[lid.x] = best; shi[lid.x] = arg;
  workgroupBarrier();
  for (var s = ${lanes / 2}u; s > 0u; s >>= 1u) {
    if (lane < s) {
      let j = lid.x + s * ${c}u;
      if (better(shv[lid.x], shi[lid.x], shv[j], shi[j])) { shv[lid.x] = shv[j]; shi[lid.x] = shi[j]; }
    }
    workgroupBarrier();
  }
  if (lane == 0u && i < inner) { out[o * inner + i] = select(i32(shi[lid.x]), 0, shi[lid.x] == NONE); }
}`, [groups, size, inner, id, blocks], [x, out], ctx.groups1d(groups * WG));
  return out;
}

/**
 * Inclusive running sums along the axis (from the end with `reverse`). The lanes of a workgroup take the axis
 * `lanes` rows at a time: a scan across the lanes in workgroup memory, plus the carry of the rows before.
 */
export function cumsum(ctx: GpuContext, x: GpuBuffer, outer: number, size: number, inner: number, reverse: boolean): GpuBuffer {
  const t = wgslType(x.dtype);
  const out = ctx.alloc(x.dtype, x.size);
  // uint8 / bool sums wrap to 8 bits, as the cpu kernel's Uint8Array stores them.
  const store = t === 'u32' ? '(v & 255u)' : 'v';
  const head = `@group(0) @binding(1) var<storage, read> x: array<${t}>;
@group(0) @binding(2) var<storage, read_write> out: array<${t}>;
fn store(k: u32, v: ${t}) { out[k] = ${store}; }
fn row(s: u32, size: u32) -> u32 { return select(s, size - 1u - s, pu(3) != 0u); }`;
  if (size <= SERIAL) {
    const n = outer * inner;
    ctx.run(`${head}
${ENTRY} {
  let n = pu(0); let size = pu(1); let inner = pu(2);
  let k = flat(wid, nwg, lid);
  if (k >= n) { return; }
  let base = (k / inner) * size * inner + k % inner;
  var acc = ${t}(0);
  for (var s = 0u; s < size; s++) {
    let j = base + row(s, size) * inner;
    acc += x[j];
    store(j, acc);
  }
}`, [n, size, inner, reverse ? 1 : 0], [x, out], ctx.groups1d(n));
    return out;
  }
  const c = columns(inner), lanes = WG / c, blocks = Math.ceil(inner / c), groups = outer * blocks;
  ctx.run(`${head}
var<workgroup> sh: array<${t}, ${WG}>;
${ENTRY} {
  ${GROUP}
  let groups = pu(0); let size = pu(1); let inner = pu(2); let blocks = pu(4);
  if (g >= groups) { return; }
  let o = g / blocks;
  let i = (g % blocks) * ${c}u + lid.x % ${c}u;
  let lane = lid.x / ${c}u;
  let base = o * size * inner + i;
  var carry = ${t}(0);
  for (var s0 = 0u; s0 < size; s0 += ${lanes}u) {
    let s = s0 + lane;
    let live = i < inner && s < size;
    var v = ${t}(0);
    if (live) { v = x[base + row(s, size) * inner]; }
    sh[lid.x] = v;
    workgroupBarrier();
    // Hillis-Steele inclusive scan over the lanes of each column.
    for (var d = 1u; d < ${lanes}u; d <<= 1u) {
      if (lane >= d) { v += sh[lid.x - d * ${c}u]; }
      workgroupBarrier();
      sh[lid.x] = v;
      workgroupBarrier();
    }
    if (live) { store(base + row(s, size) * inner, carry + v); }
    carry += sh[(${lanes}u - 1u) * ${c}u + lid.x % ${c}u];
    workgroupBarrier();
  }
}`, [groups, size, inner, reverse ? 1 : 0, blocks], [x, out], ctx.groups1d(groups * WG));
  return out;
}
