// WGSL elementwise kernels: fill, cast, unary, activation gradients, broadcasting binary ops and where.

import type { ActivationOp, BinaryOp, UnaryOp } from '../../tensor/backend.js';
import type { DType } from '../../tensor/dtype.js';
import type { Shape } from '../../tensor/shape.js';
import type { GpuBuffer, GpuContext } from './context.js';

export function fill(ctx: GpuContext, dtype: DType, size: number, value: number): GpuBuffer {
  void [ctx, dtype, size, value];
  throw new Error('webgpu: fill is not written yet');
}

export function cast(ctx: GpuContext, x: GpuBuffer, dtype: DType): GpuBuffer {
  void [ctx, x, dtype];
  throw new Error('webgpu: cast is not written yet');
}

export function unary(ctx: GpuContext, op: UnaryOp, x: GpuBuffer): GpuBuffer {
  void [ctx, op, x];
  throw new Error('webgpu: unary is not written yet');
}

export function activationGrad(ctx: GpuContext, op: ActivationOp, x: GpuBuffer, dy: GpuBuffer): GpuBuffer {
  void [ctx, op, x, dy];
  throw new Error('webgpu: activationGrad is not written yet');
}

export function binary(ctx: GpuContext, op: BinaryOp, a: GpuBuffer, aShape: Shape, b: GpuBuffer, bShape: Shape, outShape: Shape): GpuBuffer {
  void [ctx, op, a, aShape, b, bShape, outShape];
  throw new Error('webgpu: binary is not written yet');
}

export function where(ctx: GpuContext, c: GpuBuffer, cShape: Shape, a: GpuBuffer, aShape: Shape, b: GpuBuffer, bShape: Shape, outShape: Shape): GpuBuffer {
  void [ctx, c, cShape, a, aShape, b, bShape, outShape];
  throw new Error('webgpu: where is not written yet');
}
