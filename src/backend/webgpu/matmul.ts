// WGSL batched matrix product (tiled, register-blocked), with an optional bias row.

import type { MatmulParams } from '../../tensor/backend.js';
import type { GpuBuffer, GpuContext } from './context.js';

export function matmul(ctx: GpuContext, a: GpuBuffer, b: GpuBuffer, p: MatmulParams, bias: GpuBuffer | null): GpuBuffer {
  void [ctx, a, b, p, bias];
  throw new Error('webgpu: matmul is not written yet');
}
