// WGSL reductions over the middle axis of [outer, size, inner]: sum / max / min, argmax / argmin, cumsum.

import type { ArgReduceOp, ReduceOp } from '../../tensor/backend.js';
import type { GpuBuffer, GpuContext } from './context.js';

export function reduce(ctx: GpuContext, op: ReduceOp, x: GpuBuffer, outer: number, size: number, inner: number): GpuBuffer {
  void [ctx, op, x, outer, size, inner];
  throw new Error('webgpu: reduce is not written yet');
}

export function argReduce(ctx: GpuContext, op: ArgReduceOp, x: GpuBuffer, outer: number, size: number, inner: number): GpuBuffer {
  void [ctx, op, x, outer, size, inner];
  throw new Error('webgpu: argReduce is not written yet');
}

export function cumsum(ctx: GpuContext, x: GpuBuffer, outer: number, size: number, inner: number, reverse: boolean): GpuBuffer {
  void [ctx, x, outer, size, inner, reverse];
  throw new Error('webgpu: cumsum is not written yet');
}
