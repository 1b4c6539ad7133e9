// Gradient clipping: by total norm (torch.nn.utils.clip_grad_norm_) and by value (clip_grad_value_).

import { noGrad } from '../autograd/engine.js';
import { abs, add, clamp, div, maximum, mul, pow, sqrt } from '../autograd/ops/elementwise.js';
import { max, sum } from '../autograd/ops/reduce.js';
import { zeros } from '../tensor/create.js';
import { tidy } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';

/** The p-norm of all elements of x (p > 0, or Infinity for the largest magnitude). */
function vectorNorm(x: Tensor, p: number): Tensor {
  if (p === Infinity) return max(abs(x));
  if (p === 2) return sqrt(sum(mul(x, x)));
  if (p === 1) return sum(abs(x));
  return pow(sum(pow(abs(x), p)), 1 / p);
}

/** The gradients present, skipping empty ones (their norm is 0 and there is nothing to scale). */
function gradsOf(params: readonly Tensor[], op: string): Tensor[] {
  if (!Array.isArray(params)) throw new Error(`${op}: expected an array of parameters`);
  return params.flatMap((p) => (p.grad !== null && p.grad.numel() > 0 ? [p.grad] : []));
}

/**
 * Scales all gradients in place so that their joint normType-norm is at most maxNorm, like PyTorch:
 * coef = min(1, maxNorm / (total + 1e-6)). Returns the total norm before clipping as a 0-d tensor, without
 * reading it back (no device sync). With no gradients the norm is 0.
 */
export function clipGradNorm(params: readonly Tensor[], maxNorm: number, normType = 2): Tensor {
  if (typeof maxNorm !== 'number' || Number.isNaN(maxNorm)) throw new Error(`clipGradNorm: maxNorm must be a number, got ${String(maxNorm)}`);
  if (typeof normType !== 'number' || !(normType > 0)) throw new Error(`clipGradNorm: normType must be a positive number or Infinity, got ${String(normType)}`);
  const grads = gradsOf(params, 'clipGradNorm');
  if (grads.length === 0) return zeros([]);
  return noGrad(() => tidy(() => {
    // The norm of the per-gradient norms, as PyTorch computes it; adding and maximum promote mixed float dtypes.
    const norms = grads.map((g) => vectorNorm(g, normType));
    const total = normType === Infinity
      ? norms.reduce((a, b) => maximum(a, b))
      : normType === 1 ? norms.reduce((a, b) => add(a, b)) : pow(norms.map((n) => pow(n, normType)).reduce((a, b) => add(a, b)), 1 / normType);
    const coef = clamp(div(maxNorm, add(total, 1e-6)), undefined, 1);
    for (const g of grads) g.replaceStorage(mul(g, coef).to(g.dtype));
    return total;
  }));
}

/** Clamps every gradient in place to [-clipValue, clipValue], like torch.nn.utils.clip_grad_value_. */
export function clipGradValue(params: readonly Tensor[], clipValue: number): void {
  if (typeof clipValue !== 'number' || !(clipValue >= 0)) throw new Error(`clipGradValue: clipValue must be a number >= 0, got ${String(clipValue)}`);
  const grads = gradsOf(params, 'clipGradValue');
  noGrad(() => tidy(() => {
    for (const g of grads) g.replaceStorage(clamp(g, -clipValue, clipValue));
  }));
}
