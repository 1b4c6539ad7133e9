// WGSL fused optimizer steps: Adam / AdamW and SGD (PyTorch's order of operations, see AdamStepParams).

import type { AdamStepParams, SgdStepParams } from '../../tensor/backend.js';
import type { GpuBuffer, GpuContext } from './context.js';

type B = GpuBuffer;

export function adamStep(ctx: GpuContext, param: B, grad: B, expAvg: B | null, expAvgSq: B | null, p: AdamStepParams): { param: B; expAvg: B; expAvgSq: B } {
  void [ctx, param, grad, expAvg, expAvgSq, p];
  throw new Error('webgpu: adamStep is not written yet');
}
export function sgdStep(ctx: GpuContext, param: B, grad: B, momentumBuffer: B | null, p: SgdStepParams): { param: B; momentumBuffer: B | null } {
  void [ctx, param, grad, momentumBuffer, p];
  throw new Error('webgpu: sgdStep is not written yet');
}
