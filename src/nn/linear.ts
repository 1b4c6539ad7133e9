// Linear and Identity layers (torch.nn.Linear: weight [out_features, in_features], bias [out_features]).

import { linear } from '../autograd/ops/matmul.js';
import { zeros } from '../tensor/create.js';
import type { Tensor } from '../tensor/tensor.js';
import { kaimingUniform_, uniform_ } from './init.js';
import { Module, Parameter } from './module.js';

export interface LinearOptions {
  bias?: boolean;
  device?: string;
}

export class Linear extends Module {
  weight: Parameter;
  bias: Parameter | null;

  constructor(readonly inFeatures: number, readonly outFeatures: number, opts: LinearOptions = {}) {
    super();
    // PyTorch's default: kaiming_uniform(a=sqrt(5)) for the weight, U(+-1/sqrt(in)) for the bias.
    this.weight = new Parameter(kaimingUniform_(zeros([outFeatures, inFeatures], { device: opts.device }), Math.sqrt(5)));
    const bound = inFeatures > 0 ? 1 / Math.sqrt(inFeatures) : 0;
    this.bias = opts.bias === false ? null : new Parameter(uniform_(zeros([outFeatures], { device: opts.device }), -bound, bound));
  }

  forward(x: Tensor): Tensor {
    return linear(x, this.weight, this.bias);
  }
}

export class Identity extends Module {
  forward(x: Tensor): Tensor {
    return x;
  }
}
