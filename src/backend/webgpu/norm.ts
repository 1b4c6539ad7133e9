// WGSL row kernels: softmax / log-softmax and their gradient, layer norm, RMS norm and their gradients, fused cross-entropy.

import type { GpuBuffer, GpuContext } from './context.js';

type B = GpuBuffer;

export function softmax(ctx: GpuContext, x: B, rows: number, cols: number, log: boolean): B {
  void [ctx, x, rows, cols, log];
  throw new Error('webgpu: softmax is not written yet');
}
export function softmaxGrad(ctx: GpuContext, y: B, dy: B, rows: number, cols: number, log: boolean): B {
  void [ctx, y, dy, rows, cols, log];
  throw new Error('webgpu: softmaxGrad is not written yet');
}
export function layerNorm(ctx: GpuContext, x: B, w: B | null, b: B | null, rows: number, cols: number, eps: number): { y: B; mean: B; rstd: B } {
  void [ctx, x, w, b, rows, cols, eps];
  throw new Error('webgpu: layerNorm is not written yet');
}
export function layerNormGrad(ctx: GpuContext, x: B, w: B | null, mean: B, rstd: B, dy: B, rows: number, cols: number): { dx: B; dweight: B; dbias: B } {
  void [ctx, x, w, mean, rstd, dy, rows, cols];
  throw new Error('webgpu: layerNormGrad is not written yet');
}
export function rmsNorm(ctx: GpuContext, x: B, w: B | null, rows: number, cols: number, eps: number): { y: B; rstd: B } {
  void [ctx, x, w, rows, cols, eps];
  throw new Error('webgpu: rmsNorm is not written yet');
}
export function rmsNormGrad(ctx: GpuContext, x: B, w: B | null, rstd: B, dy: B, rows: number, cols: number): { dx: B; dweight: B } {
  void [ctx, x, w, rstd, dy, rows, cols];
  throw new Error('webgpu: rmsNormGrad is not written yet');
}
export function crossEntropy(ctx: GpuContext, logits: B, target: B, rows: number, cols: number, ignoreIndex: number, op: string): { loss: B; lse: B } {
  void [ctx, logits, target, rows, cols, ignoreIndex, op];
  throw new Error('webgpu: crossEntropy is not written yet');
}
export function crossEntropyGrad(ctx: GpuContext, logits: B, target: B, lse: B, dloss: B, rows: number, cols: number, ignoreIndex: number): B {
  void [ctx, logits, target, lse, dloss, rows, cols, ignoreIndex];
  throw new Error('webgpu: crossEntropyGrad is not written yet');
}
