// Adam (torch.optim.Adam) and the update it shares with AdamW: bias-corrected first and second moment estimates.

import { wrap } from '../autograd/ops/base.js';
import { add, div, mul, sqrt } from '../autograd/ops/elementwise.js';
import { zerosLike } from '../tensor/create.js';
import type { Tensor } from '../tensor/tensor.js';
import { checkNumber, Optimizer, type ParamGroup, type ParamGroupInput, type ParamUpdate } from './optimizer.js';

export interface AdamOptions {
  lr: number;
  betas: readonly [number, number];
  eps: number;
  /** Adam: L2 penalty added to the gradient. AdamW: decoupled decay, p *= 1 - lr * weightDecay. */
  weightDecay: number;
}

export type AdamState = { step: number; expAvg: Tensor; expAvgSq: Tensor };

/**
 * Adam and AdamW. PyTorch's update, in its order: p *= 1 - lr * wd (decoupled, AdamW) or g += wd * p (L2, Adam);
 * m = b1 * m + (1 - b1) * g; v = b2 * v + (1 - b2) * g * g; p -= (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
 */
export abstract class AdamBase extends Optimizer<AdamOptions, AdamState> {
  protected readonly stateKeys = { tensors: ['expAvg', 'expAvgSq'], numbers: ['step'] };

  protected constructor(name: string, params: readonly Tensor[] | readonly ParamGroupInput<AdamOptions>[], defaults: AdamOptions, opts: Partial<AdamOptions>, private readonly decoupled: boolean) {
    super(name, params, defaults, opts);
  }

  protected override checkGroup(g: AdamOptions, where: string): void {
    super.checkGroup(g, where);
    const what = `${this.name}: ${where}`;
    checkNumber(g.eps, `${what}: eps`, 0);
    checkNumber(g.weightDecay, `${what}: weightDecay`, 0);
    if (!Array.isArray(g.betas) || g.betas.length !== 2) throw new Error(`${what}: betas must be a pair [beta1, beta2], got ${JSON.stringify(g.betas)}`);
    checkNumber(g.betas[0], `${what}: betas[0]`, 0, 1);
    checkNumber(g.betas[1], `${what}: betas[1]`, 0, 1);
  }

  protected update(p: Tensor, grad: Tensor, g: ParamGroup<AdamOptions>, state: AdamState | undefined): ParamUpdate<AdamState> {
    const [b1, b2] = g.betas;
    const step = (state?.step ?? 0) + 1;
    const backend = p.backend;
    if (backend.adamStep) {
      // One fused pass per parameter instead of ~15 elementwise kernels (the same rounding, so the same result).
      const r = backend.adamStep(p.buffer, grad.buffer, state ? state.expAvg.buffer : null, state ? state.expAvgSq.buffer : null,
        { lr: g.lr, beta1: b1, beta2: b2, eps: g.eps, weightDecay: g.weightDecay, decoupled: this.decoupled, step });
      return { param: wrap(p, r.param, p.shape), state: { step, expAvg: wrap(p, r.expAvg, p.shape), expAvgSq: wrap(p, r.expAvgSq, p.shape) } };
    }
    let param = p;
    let d = grad;
    if (g.weightDecay !== 0) {
      if (this.decoupled) param = mul(p, 1 - g.lr * g.weightDecay);
      else d = add(grad, mul(p, g.weightDecay));
    }
    const m = add(mul(state?.expAvg ?? zerosLike(p), b1), mul(d, 1 - b1));
    // (value * g) * g, the order of PyTorch's addcmul.
    const v = add(mul(state?.expAvgSq ?? zerosLike(p), b2), mul(mul(d, 1 - b2), d));
    const stepSize = g.lr / (1 - b1 ** step);
    const denom = add(div(sqrt(v), (1 - b2 ** step) ** 0.5), g.eps);
    return { param: add(param, div(mul(m, -stepSize), denom)), state: { step, expAvg: m, expAvgSq: v } };
  }
}

/** Adam with L2 weight decay (default 0), like torch.optim.Adam. */
export class Adam extends AdamBase {
  constructor(params: readonly Tensor[] | readonly ParamGroupInput<AdamOptions>[], opts: Partial<AdamOptions> = {}) {
    super('Adam', params, { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0 }, opts, false);
  }
}
