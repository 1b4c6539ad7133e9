// Stochastic gradient descent with momentum, dampening, Nesterov momentum and L2 weight decay (torch.optim.SGD).

import { wrap } from '../autograd/ops/base.js';
import { add, mul } from '../autograd/ops/elementwise.js';
import { clone } from '../autograd/ops/movement.js';
import type { Tensor } from '../tensor/tensor.js';
import { checkNumber, Optimizer, type ParamGroup, type ParamGroupInput, type ParamUpdate } from './optimizer.js';

export interface SGDOptions {
  lr: number;
  momentum: number;
  dampening: number;
  /** L2 penalty: weightDecay * param is added to the gradient. */
  weightDecay: number;
  nesterov: boolean;
}

export type SGDState = { momentumBuffer: Tensor };

const DEFAULTS: SGDOptions = { lr: 1e-3, momentum: 0, dampening: 0, weightDecay: 0, nesterov: false };

/**
 * PyTorch's update, in its order: g = grad + wd * p; buf = g on the first step, else momentum * buf + (1 - dampening) * g;
 * g = nesterov ? g + momentum * buf : buf (when momentum != 0); p = p - lr * g.
 */
export class SGD extends Optimizer<SGDOptions, SGDState> {
  protected readonly stateKeys = { tensors: ['momentumBuffer'], numbers: [] };

  constructor(params: readonly Tensor[] | readonly ParamGroupInput<SGDOptions>[], opts: Partial<SGDOptions> = {}) {
    super('SGD', params, DEFAULTS, opts);
  }

  protected override checkGroup(g: SGDOptions, where: string): void {
    super.checkGroup(g, where);
    checkNumber(g.momentum, `SGD: ${where}: momentum`, 0);
    checkNumber(g.dampening, `SGD: ${where}: dampening`);
    checkNumber(g.weightDecay, `SGD: ${where}: weightDecay`, 0);
    if (typeof g.nesterov !== 'boolean') throw new Error(`SGD: ${where}: nesterov must be true or false, got ${String(g.nesterov)}`);
    if (g.nesterov && (g.momentum <= 0 || g.dampening !== 0)) throw new Error(`SGD: ${where}: Nesterov momentum needs momentum > 0 and dampening 0`);
  }

  protected update(p: Tensor, grad: Tensor, g: ParamGroup<SGDOptions>, state: SGDState | undefined): ParamUpdate<SGDState> {
    const backend = p.backend;
    if (backend.sgdStep) {
      // One fused pass per parameter (the same rounding as the ops below, so the same result).
      const r = backend.sgdStep(p.buffer, grad.buffer, state ? state.momentumBuffer.buffer : null,
        { lr: g.lr, momentum: g.momentum, dampening: g.dampening, weightDecay: g.weightDecay, nesterov: g.nesterov });
      return { param: wrap(p, r.param, p.shape), state: r.momentumBuffer ? { momentumBuffer: wrap(p, r.momentumBuffer, p.shape) } : undefined };
    }
    let d = g.weightDecay !== 0 ? add(grad, mul(p, g.weightDecay)) : grad;
    let next: SGDState | undefined;
    if (g.momentum !== 0) {
      const buf = state === undefined ? clone(d) : add(mul(state.momentumBuffer, g.momentum), mul(d, 1 - g.dampening));
      next = { momentumBuffer: buf };
      d = g.nesterov ? add(d, mul(buf, g.momentum)) : buf;
    }
    return { param: add(p, mul(d, -g.lr)), state: next };
  }
}
