// WGSL strided copies: gather a strided view into a new contiguous buffer, or write a buffer into a strided view.

import type { Shape } from '../../tensor/shape.js';
import type { GpuBuffer, GpuContext } from './context.js';

export function stridedCopy(ctx: GpuContext, x: GpuBuffer, shape: Shape, strides: readonly number[], offset: number): GpuBuffer {
  void [ctx, x, shape, strides, offset];
  throw new Error('webgpu: stridedCopy is not written yet');
}

export function stridedWrite(ctx: GpuContext, dst: GpuBuffer, src: GpuBuffer, shape: Shape, strides: readonly number[], offset: number): void {
  void [ctx, dst, src, shape, strides, offset];
  throw new Error('webgpu: stridedWrite is not written yet');
}
