// WGSL fused attention (flash-style: scores never stored whole), forward and backward, causal, with an additive bias and strided layouts.

import type { AttentionParams } from '../../tensor/backend.js';
import type { GpuBuffer, GpuContext } from './context.js';

type B = GpuBuffer;

export function attention(ctx: GpuContext, q: B, k: B, v: B, bias: B | null, p: AttentionParams): { out: B; lse: B } {
  void [ctx, q, k, v, bias, p];
  throw new Error('webgpu: attention is not written yet');
}
export function attentionGrad(ctx: GpuContext, q: B, k: B, v: B, bias: B | null, out: B, lse: B, dOut: B, p: AttentionParams): { dq: B; dk: B; dv: B } {
  void [ctx, q, k, v, bias, out, lse, dOut, p];
  throw new Error('webgpu: attentionGrad is not written yet');
}
