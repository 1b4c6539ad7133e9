// AdamW (torch.optim.AdamW): Adam with decoupled weight decay, the usual optimizer for transformers.

import type { Tensor } from '../tensor/tensor.js';
import { AdamBase, type AdamOptions } from './adam.js';
import type { ParamGroupInput } from './optimizer.js';

/** Adam whose weight decay (default 0.01) shrinks the parameters directly: p *= 1 - lr * weightDecay, before the Adam step. */
export class AdamW extends AdamBase {
  constructor(params: readonly Tensor[] | readonly ParamGroupInput<AdamOptions>[], opts: Partial<AdamOptions> = {}) {
    super('AdamW', params, { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.01 }, opts, true);
  }
}
