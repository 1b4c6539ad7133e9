// WGSL strided copies: gather a strided view into a new contiguous buffer, or write a buffer into a strided view.
// Also the strided indexing the broadcasting kernels share: dimensions collapsed, a flat index turned into offsets.

import { sizeOf, stridesOf, type Shape } from '../../tensor/shape.js';
import { PARAM_SLOTS, type GpuBuffer, type GpuContext, type Param } from './context.js';

/** An iteration space with each operand's element strides over it (several operands walk the same index). */
export interface StridedLayout {
  shape: number[];
  /** strides[j][d]: operand j's stride along dimension d. */
  strides: number[][];
}

/**
 * Drops size-1 dimensions and merges neighbours that every operand walks contiguously, so that a same-shape op
 * becomes rank 1 and a broadcast op the fewest dimensions: less index arithmetic per element, fewer parameters.
 */
export function collapseDims(shape: Shape, strides: readonly (readonly number[])[]): StridedLayout {
  const out: StridedLayout = { shape: [], strides: strides.map(() => []) };
  for (let d = 0; d < shape.length; d++) {
    const size = shape[d]!;
    if (size === 1) continue;
    const last = out.shape.length - 1;
    if (last >= 0 && strides.every((s, j) => out.strides[j]![last] === s[d]! * size)) {
      out.shape[last] = out.shape[last]! * size;
      strides.forEach((s, j) => { out.strides[j]![last] = s[d]!; });
    } else {
      out.shape.push(size);
      strides.forEach((s, j) => out.strides[j]!.push(s[d]!));
    }
  }
  if (out.shape.length === 0) {
    out.shape.push(1);
    for (const s of out.strides) s.push(0);
  }
  return out;
}

/** WGSL and parameters that turn a flat index into each operand's offset (`offsets(i)[j]`) for a layout. */
export interface Indexer {
  wgsl: string;
  /** The layout words to append to the kernel's parameters (empty when they travel in `meta`). */
  params: number[];
  /** The layout words in a storage buffer when they do not fit the parameter block; the caller binds and frees it. */
  meta: GpuBuffer | null;
}

/**
 * The layout is stored as its rank r, shape[r], then each operand's strides[r]: the rank is a parameter, not part of
 * the source, so that one pipeline serves every rank. It goes in the parameter block from slot `base` when it fits
 * (any realistic rank after collapsing), else in a storage buffer at `binding` (any rank).
 */
export function indexer(ctx: GpuContext, layout: StridedLayout, base: number, binding: number): Indexer {
  const k = layout.strides.length;
  const words = [layout.shape.length, ...layout.shape, ...layout.strides.flat()];
  const fits = base + words.length <= PARAM_SLOTS - 1;
  let meta: GpuBuffer | null = null;
  let md: string;
  if (fits) {
    md = `fn md(k: u32) -> u32 { return pu(${base}u + k); }`;
  } else {
    meta = ctx.alloc('int32', words.length);
    ctx.write(meta, Int32Array.from(words));
    md = `@group(0) @binding(${binding}) var<storage, read> layout_words: array<u32>;\nfn md(k: u32) -> u32 { return layout_words[k]; }`;
  }
  const wgsl = /* wgsl */ `
${md}
fn offsets(i: u32) -> array<i32, ${k}> {
  var o: array<i32, ${k}>;
  var rem = i;
  let r = md(0u);
  for (var d = r; d > 0u; d--) {
    let s = md(d);
    let c = i32(rem % s);
    rem = rem / s;
    for (var j = 0u; j < ${k}u; j++) { o[j] += c * bitcast<i32>(md(r * (j + 1u) + d)); }
  }
  return o;
}`;
  return { wgsl, params: fits ? words : [], meta };
}

/** The entry point of a 1-d launch over `pu(0)` elements; `body` sees the flat index `i`. */
export function main1d(body: string): string {
  return /* wgsl */ `
@compute @workgroup_size(WG_1D)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = flat(wid, nwg, lid);
  if (i >= pu(0u)) { return; }
${body}
}`;
}

/** dst[dstOffset + layout offset 1] = src[srcOffset + layout offset 0] for every index of the layout (32-bit words). */
function copyWords(ctx: GpuContext, src: GpuBuffer, dst: GpuBuffer, layout: StridedLayout, srcOffset: number, dstOffset: number): void {
  const n = sizeOf(layout.shape);
  if (n === 0) return;
  const ix = indexer(ctx, layout, 3, 3);
  const source = /* wgsl */ `
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;
${ix.wgsl}
${main1d('  let o = offsets(i);\n  dst[pi(2u) + o[1]] = src[pi(1u) + o[0]];')}`;
  const params: Param[] = [n, srcOffset, dstOffset, ...ix.params];
  ctx.run(source, params, ix.meta ? [src, dst, ix.meta] : [src, dst], ctx.groups1d(n));
  if (ix.meta) ctx.free(ix.meta);
}

export function stridedCopy(ctx: GpuContext, x: GpuBuffer, shape: Shape, strides: readonly number[], offset: number): GpuBuffer {
  const out = ctx.alloc(x.dtype, sizeOf(shape));
  copyWords(ctx, x, out, collapseDims(shape, [strides, stridesOf(shape)]), offset, 0);
  return out;
}

/**
 * Where dst strides are 0, several source elements land on one destination element: the last one wins, as in the
 * reference's sequential loop, so such dimensions are not walked and the source is read at their last index.
 */
export function stridedWrite(ctx: GpuContext, dst: GpuBuffer, src: GpuBuffer, shape: Shape, strides: readonly number[], offset: number): void {
  if (sizeOf(shape) === 0) return;
  const contiguous = stridesOf(shape);
  let srcOffset = 0;
  const walked: number[] = [], srcStrides: number[] = [], dstStrides: number[] = [];
  shape.forEach((size, d) => {
    if (strides[d] === 0) srcOffset += (size - 1) * contiguous[d]!;
    else {
      walked.push(size);
      srcStrides.push(contiguous[d]!);
      dstStrides.push(strides[d]!);
    }
  });
  copyWords(ctx, src, dst, collapseDims(walked, [srcStrides, dstStrides]), srcOffset, offset);
}
