// Activation and dropout layers: ReLU, GELU, SiLU, Tanh, Sigmoid, Softmax, Dropout.

import { gelu, relu, sigmoid, silu, tanh } from '../autograd/ops/elementwise.js';
import { softmax } from '../autograd/ops/nn.js';
import type { Tensor } from '../tensor/tensor.js';
import { dropout } from './functional.js';
import { Module } from './module.js';

export class ReLU extends Module {
  forward(x: Tensor): Tensor {
    return relu(x);
  }
}

export class GELU extends Module {
  constructor(readonly approximate: 'none' | 'tanh' = 'none') {
    super();
  }
  forward(x: Tensor): Tensor {
    return gelu(x, this.approximate);
  }
}

export class SiLU extends Module {
  forward(x: Tensor): Tensor {
    return silu(x);
  }
}

export class Tanh extends Module {
  forward(x: Tensor): Tensor {
    return tanh(x);
  }
}

export class Sigmoid extends Module {
  forward(x: Tensor): Tensor {
    return sigmoid(x);
  }
}

export class Softmax extends Module {
  constructor(readonly dim = -1) {
    super();
  }
  forward(x: Tensor): Tensor {
    return softmax(x, this.dim);
  }
}

/** Zeroes elements with probability p while training; identity in eval mode. */
export class Dropout extends Module {
  constructor(readonly p = 0.5) {
    super();
    if (p < 0 || p > 1) throw new Error(`Dropout: p must be in [0, 1], got ${p}`);
  }
  forward(x: Tensor): Tensor {
    return dropout(x, this.p, this.training);
  }
}

/** The activations layers accept by name. */
export type ActivationName = 'relu' | 'gelu' | 'gelu_tanh' | 'silu' | 'tanh' | 'sigmoid';

export function activationFn(name: ActivationName): (x: Tensor) => Tensor {
  switch (name) {
    case 'relu': return relu;
    case 'gelu': return (x) => gelu(x);
    case 'gelu_tanh': return (x) => gelu(x, 'tanh');
    case 'silu': return silu;
    case 'tanh': return tanh;
    case 'sigmoid': return sigmoid;
  }
}
