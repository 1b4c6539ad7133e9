// WGSL indexing along the middle axis of [outer, size, inner]: indexSelect, indexAdd, gather, scatterAdd.

import type { GpuBuffer, GpuContext } from './context.js';

export function indexSelect(ctx: GpuContext, x: GpuBuffer, idx: GpuBuffer, outer: number, size: number, inner: number, op: string): GpuBuffer {
  void [ctx, x, idx, outer, size, inner, op];
  throw new Error('webgpu: indexSelect is not written yet');
}

export function indexAdd(ctx: GpuContext, src: GpuBuffer, idx: GpuBuffer, outer: number, size: number, inner: number, op: string): GpuBuffer {
  void [ctx, src, idx, outer, size, inner, op];
  throw new Error('webgpu: indexAdd is not written yet');
}

export function gather(ctx: GpuContext, x: GpuBuffer, idx: GpuBuffer, outer: number, size: number, inner: number, m: number, op: string): GpuBuffer {
  void [ctx, x, idx, outer, size, inner, m, op];
  throw new Error('webgpu: gather is not written yet');
}

export function scatterAdd(ctx: GpuContext, src: GpuBuffer, idx: GpuBuffer, outer: number, size: number, inner: number, m: number, op: string): GpuBuffer {
  void [ctx, src, idx, outer, size, inner, m, op];
  throw new Error('webgpu: scatterAdd is not written yet');
}
