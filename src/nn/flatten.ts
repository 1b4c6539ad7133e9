// Flatten and Unflatten layers (torch.nn.Flatten: dimensions startDim..endDim, default 1..-1, become one).

import { flatten, unflatten } from '../autograd/ops/movement.js';
import { fmtShape, sizeOf, type Shape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { Module } from './module.js';

export class Flatten extends Module {
  constructor(readonly startDim = 1, readonly endDim = -1) {
    super();
  }
  /** e.g. [B, C, H, W] -> [B, C*H*W] with the defaults */
  forward(x: Tensor): Tensor {
    const n = Math.max(x.ndim, 1);
    const s = this.startDim < 0 ? this.startDim + n : this.startDim, e = this.endDim < 0 ? this.endDim + n : this.endDim;
    if (s < 0 || e >= n || s > e) throw new Error(`Flatten: dimensions ${this.startDim}..${this.endDim} do not fit input ${fmtShape(x.shape)}`);
    return flatten(x, s, e);
  }
}

export class Unflatten extends Module {
  constructor(readonly dim: number, readonly sizes: Shape) {
    super();
  }
  /** e.g. dim 1, sizes [C, H, W]: [B, C*H*W] -> [B, C, H, W] */
  forward(x: Tensor): Tensor {
    const d = this.dim < 0 ? this.dim + x.ndim : this.dim;
    if (d < 0 || d >= x.ndim || x.shape[d] !== sizeOf(this.sizes)) {
      throw new Error(`Unflatten: dimension ${this.dim} of input ${fmtShape(x.shape)} cannot be split into ${fmtShape(this.sizes)}`);
    }
    return unflatten(x, d, this.sizes);
  }
}
