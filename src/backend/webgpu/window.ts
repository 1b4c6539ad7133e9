// WGSL sliding windows: im2col and its adjoint col2im (convolution and pooling are built on them).

import type { WindowParams } from '../../tensor/backend.js';
import type { GpuBuffer, GpuContext } from './context.js';

export function im2col(ctx: GpuContext, x: GpuBuffer, p: WindowParams, padValue: number): GpuBuffer {
  void [ctx, x, p, padValue];
  throw new Error('webgpu: im2col is not written yet');
}

export function col2im(ctx: GpuContext, cols: GpuBuffer, p: WindowParams): GpuBuffer {
  void [ctx, cols, p];
  throw new Error('webgpu: col2im is not written yet');
}
