// WGSL indexing along the middle axis of [outer, size, inner]: indexSelect, indexAdd, gather, scatterAdd.
//
// Indices are int32. A bad index (negative or >= size) is found on the device: the first one in order is reported
// through the context's error slots, so the next read throws the CPU backend's message; the kernels skip bad
// indices instead of reading or writing out of bounds. The adds have no atomics: each invocation owns its outputs
// and sums its sources in index order, so results are deterministic and equal the CPU backend's bit for bit.

import { ERRORS_WGSL, type GpuBuffer, type GpuContext } from './context.js';

/** Lanes a GPU keeps busy at once (order of magnitude): below this, fewer invocations do not finish sooner. */
const LANES = 16384;
/** "No bad index yet" in the first-bad-position slot. */
const NONE = 0xffffffff;

/** WGSL storage type of a dtype's words for adding: f32, i32, or u32 (bool / uint8, wrapped to 8 bits). */
function wordType(dtype: string): 'f32' | 'i32' | 'u32' {
  if (dtype === 'float32') return 'f32';
  if (dtype === 'int32') return 'i32';
  if (dtype === 'bool' || dtype === 'uint8') return 'u32';
  throw new Error(`webgpu indexing: unsupported dtype ${dtype}`);
}

/** The final store of a sum: uint8 / bool wrap like the CPU backend's Uint8Array. */
function wrapped(t: 'f32' | 'i32' | 'u32', expr: string): string {
  return t === 'u32' ? `(${expr}) & 255u` : expr;
}

// Pass 1: every invocation with a bad index lowers the first-bad-position slot to its position.
const FIND_BAD = /* wgsl */ `
@group(0) @binding(1) var<storage, read> idx: array<i32>;
@group(0) @binding(2) var<storage, read_write> first: array<atomic<u32>>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = flat(wid, nwg, lid);
  if (i >= pu(0u)) { return; }
  let v = idx[i];
  if (v < 0 || v >= pi(1u)) { atomicMin(&first[0], i); }
}
`;

// Pass 2: one invocation reports the value at the first bad position, as the CPU backend's sequential check does.
const REPORT_BAD = /* wgsl */ `${ERRORS_WGSL}
@group(0) @binding(2) var<storage, read> idx: array<i32>;
@group(0) @binding(3) var<storage, read> first: array<u32>;
@compute @workgroup_size(1)
fn main() {
  let f = first[0];
  if (f != ${NONE}u) { fail(idx[f]); }
}
`;

/** Queues the range check of every index in [0, size): the next read throws the first bad one, named after `op`. */
function checkIndices(ctx: GpuContext, idx: GpuBuffer, size: number, op: string): void {
  if (idx.size === 0) return;
  const first = ctx.alloc('int32', 1);
  ctx.write(first, new Uint32Array([NONE]));
  ctx.run(FIND_BAD, [idx.size, size], [idx, first], ctx.groups1d(idx.size));
  ctx.run(REPORT_BAD, [], [idx, first], [1], (v) => `${op}: index ${v} is out of range for a dimension of size ${size}`);
  ctx.free(first);
}

/** A 1-d kernel over n invocations: `i` is the flat index; params slot 0 holds n. */
function kernel1d(bindings: string, body: string): string {
  return /* wgsl */ `${bindings}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = flat(wid, nwg, lid);
  if (i >= pu(0u)) { return; }
${body}
}
`;
}

const COPY_BINDINGS = /* wgsl */ `
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read> idx: array<i32>;
@group(0) @binding(3) var<storage, read_write> out: array<u32>;`;

// out[o, j, i] = x[o, idx[j], i]; params: n, size, inner, m. Bad indices give 0 (the read throws anyway).
const INDEX_SELECT = kernel1d(COPY_BINDINGS, /* wgsl */ `
  let size = pu(1u); let inner = pu(2u); let m = pu(3u);
  let i_ = i % inner; let oj = i / inner; let j = oj % m; let o = oj / m;
  let v = idx[j];
  if (v < 0 || u32(v) >= size) { out[i] = 0u; return; }
  out[i] = x[(o * size + u32(v)) * inner + i_];`);

// out[o, j, i] = x[o, idx[o, j, i], i]; params: n, size, inner, m.
const GATHER = kernel1d(COPY_BINDINGS, /* wgsl */ `
  let size = pu(1u); let inner = pu(2u); let m = pu(3u);
  let i_ = i % inner; let o = i / inner / m;
  let v = idx[i];
  if (v < 0 || u32(v) >= size) { out[i] = 0u; return; }
  out[i] = x[(o * size + u32(v)) * inner + i_];`);

export function indexSelect(ctx: GpuContext, x: GpuBuffer, idx: GpuBuffer, outer: number, size: number, inner: number, op: string): GpuBuffer {
  checkIndices(ctx, idx, size, op);
  const m = idx.size, n = outer * m * inner;
  const out = ctx.alloc(x.dtype, n);
  ctx.run(INDEX_SELECT, [n, size, inner, m], [x, idx, out], ctx.groups1d(n));
  return out;
}

export function gather(ctx: GpuContext, x: GpuBuffer, idx: GpuBuffer, outer: number, size: number, inner: number, m: number, op: string): GpuBuffer {
  checkIndices(ctx, idx, size, op);
  const n = outer * m * inner;
  const out = ctx.alloc(x.dtype, n);
  ctx.run(GATHER, [n, size, inner, m], [x, idx, out], ctx.groups1d(n));
  return out;
}

/**
 * The sum kernels of indexAdd (`perIndex` false: one index per row j) and scatterAdd (true: one per element), in two
 * shapes: one invocation per (o, i) column, which adds the m rows into its zeroed column in order (work m each,
 * outer * inner invocations); or one per output element, which scans the m rows for the ones aimed at it (work m
 * each, outer * size * inner invocations). Both add in row order from 0, as the CPU backend does.
 * Params: n (invocations), size, inner, m.
 */
function addKernel(dtype: string, perIndex: boolean, perColumn: boolean): string {
  const t = wordType(dtype);
  const bindings = /* wgsl */ `
@group(0) @binding(1) var<storage, read> src: array<${t}>;
@group(0) @binding(2) var<storage, read> idx: array<i32>;
@group(0) @binding(3) var<storage, read_write> out: array<${t}>;`;
  const head = 'let size = pu(1u); let inner = pu(2u); let m = pu(3u);';
  if (perColumn) {
    const at = perIndex ? 'idx[(o * m + j) * inner + i_]' : 'idx[j]';
    return kernel1d(bindings, /* wgsl */ `
  ${head}
  let i_ = i % inner; let o = i / inner;
  let base = o * size * inner + i_;
  for (var j = 0u; j < m; j++) {
    let v = ${at};
    if (v >= 0 && u32(v) < size) {
      let d = base + u32(v) * inner;
      out[d] = ${wrapped(t, 'out[d] + src[(o * m + j) * inner + i_]')};
    }
  }`);
  }
  const at = perIndex ? 'idx[s]' : 'idx[j]';
  return kernel1d(bindings, /* wgsl */ `
  ${head}
  let i_ = i % inner; let or_ = i / inner; let r = i32(or_ % size); let o = or_ / size;
  var acc = ${t}(0);
  for (var j = 0u; j < m; j++) {
    let s = (o * m + j) * inner + i_;
    if (${at} == r) { acc = acc + src[s]; }
  }
  out[i] = ${wrapped(t, 'acc')};`);
}

// Zeroes n words (0 is 0.0, 0 and false in every dtype's words): the per-column sums add into it.
const ZERO = kernel1d('@group(0) @binding(1) var<storage, read_write> out: array<u32>;', '  out[i] = 0u;');

/**
 * Runs the cheaper of the two sum shapes. Estimated time: loop length times the waves of LANES invocations, plus
 * one wave per LANES elements zeroed for the per-column shape.
 */
function addInto(ctx: GpuContext, src: GpuBuffer, idx: GpuBuffer, outer: number, size: number, inner: number, m: number, perIndex: boolean): GpuBuffer {
  const columns = outer * inner, elements = outer * size * inner;
  const out = ctx.alloc(src.dtype, elements);
  const columnTime = m * Math.max(1, columns / LANES) + elements / LANES, elementTime = m * Math.max(1, elements / LANES);
  const perColumn = columnTime < elementTime;
  if (perColumn) ctx.run(ZERO, [elements], [out], ctx.groups1d(elements));
  const n = perColumn ? columns : elements;
  ctx.run(addKernel(src.dtype, perIndex, perColumn), [n, size, inner, m], [src, idx, out], ctx.groups1d(n));
  return out;
}

export function indexAdd(ctx: GpuContext, src: GpuBuffer, idx: GpuBuffer, outer: number, size: number, inner: number, op: string): GpuBuffer {
  checkIndices(ctx, idx, size, op);
  return addInto(ctx, src, idx, outer, size, inner, idx.size, false);
}

export function scatterAdd(ctx: GpuContext, src: GpuBuffer, idx: GpuBuffer, outer: number, size: number, inner: number, m: number, op: string): GpuBuffer {
  checkIndices(ctx, idx, size, op);
  return addInto(ctx, src, idx, outer, size, inner, m, true);
}
