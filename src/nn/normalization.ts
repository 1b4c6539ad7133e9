// LayerNorm and RMSNorm layers (weight ones, bias zeros; eps defaults as in PyTorch).

import { layerNorm, rmsNorm } from '../autograd/ops/nn.js';
import { ones, zeros } from '../tensor/create.js';
import type { Shape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { Module, Parameter } from './module.js';

export interface NormOptions {
  eps?: number;
  /** Learnable weight (and bias, for LayerNorm); true by default. */
  elementwiseAffine?: boolean;
  /** LayerNorm only: learn a bias (default true). */
  bias?: boolean;
  device?: string;
}

export class LayerNorm extends Module {
  readonly normalizedShape: Shape;
  readonly eps: number;
  weight: Parameter | null;
  bias: Parameter | null;

  constructor(normalizedShape: number | Shape, opts: NormOptions = {}) {
    super();
    this.normalizedShape = typeof normalizedShape === 'number' ? [normalizedShape] : [...normalizedShape];
    this.eps = opts.eps ?? 1e-5;
    const affine = opts.elementwiseAffine ?? true;
    this.weight = affine ? new Parameter(ones(this.normalizedShape, { device: opts.device })) : null;
    this.bias = affine && opts.bias !== false ? new Parameter(zeros(this.normalizedShape, { device: opts.device })) : null;
  }

  forward(x: Tensor): Tensor {
    return layerNorm(x, this.normalizedShape, this.weight, this.bias, this.eps);
  }
}

export class RMSNorm extends Module {
  readonly normalizedShape: Shape;
  readonly eps: number | undefined;
  weight: Parameter | null;

  constructor(normalizedShape: number | Shape, opts: NormOptions = {}) {
    super();
    this.normalizedShape = typeof normalizedShape === 'number' ? [normalizedShape] : [...normalizedShape];
    this.eps = opts.eps;
    this.weight = opts.elementwiseAffine ?? true ? new Parameter(ones(this.normalizedShape, { device: opts.device })) : null;
  }

  forward(x: Tensor): Tensor {
    return rmsNorm(x, this.normalizedShape, this.weight, this.eps);
  }
}
