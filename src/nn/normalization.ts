// LayerNorm, RMSNorm and GroupNorm layers (weight ones, bias zeros; eps defaults as in PyTorch).

import { layerNorm, rmsNorm } from '../autograd/ops/nn.js';
import { ones, zeros } from '../tensor/create.js';
import { fmtShape, type Shape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { groupNorm } from './functional.js';
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

/** torch.nn.GroupNorm: numChannels in numGroups groups, normalised per example and group; affine per channel. */
export class GroupNorm extends Module {
  readonly eps: number;
  weight: Parameter | null;
  bias: Parameter | null;

  constructor(readonly numGroups: number, readonly numChannels: number, opts: { eps?: number; affine?: boolean; device?: string } = {}) {
    super();
    if (!Number.isInteger(numGroups) || numGroups < 1 || !Number.isInteger(numChannels) || numChannels % numGroups !== 0) {
      throw new Error(`GroupNorm: numChannels ${numChannels} must be divisible by numGroups ${numGroups}`);
    }
    this.eps = opts.eps ?? 1e-5;
    const affine = opts.affine ?? true;
    this.weight = affine ? new Parameter(ones([numChannels], { device: opts.device })) : null;
    this.bias = affine ? new Parameter(zeros([numChannels], { device: opts.device })) : null;
  }

  /** x [B, C, *] -> same shape. */
  forward(x: Tensor): Tensor {
    if (x.ndim < 2 || x.shape[1] !== this.numChannels) throw new Error(`GroupNorm: expected input [B, ${this.numChannels}, *], got ${fmtShape(x.shape)}`);
    return groupNorm(x, this.numGroups, this.weight, this.bias, this.eps);
  }
}
