// Pooling layers as torch.nn: MaxPool1d/2d, AvgPool1d/2d (count_include_pad) and AdaptiveAvgPool1d/2d.

import { matmul } from '../autograd/ops/matmul.js';
import { tensor } from '../tensor/create.js';
import { fmtShape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import type { IntPair } from './conv.js';
import { avgPool1d, avgPool2d, maxPool1d, maxPool2d } from './functional.js';
import { Module } from './module.js';

export interface Pool1dOptions {
  /** Defaults to the kernel size, as in torch. */
  stride?: number;
  /** Implicit padding on each side, at most half the kernel (-inf for max pooling, zeros counted for average). */
  padding?: number;
}

export interface Pool2dOptions {
  stride?: IntPair;
  padding?: IntPair;
}

function checkRank(layer: string, x: Tensor, spatial: number, layout: string): void {
  if (x.ndim !== spatial + 1 && x.ndim !== spatial + 2) throw new Error(`${layer}: expected input ${layout}, got ${fmtShape(x.shape)}`);
}

export class MaxPool1d extends Module {
  constructor(readonly kernelSize: number, readonly opts: Pool1dOptions = {}) {
    super();
  }
  /** x [B, C, L] or [C, L] -> [B, C, L'] */
  forward(x: Tensor): Tensor {
    checkRank('MaxPool1d', x, 1, '[B, C, L] or [C, L]');
    return maxPool1d(x, this.kernelSize, this.opts.stride, this.opts.padding);
  }
}

export class AvgPool1d extends Module {
  constructor(readonly kernelSize: number, readonly opts: Pool1dOptions = {}) {
    super();
  }
  /** x [B, C, L] or [C, L] -> [B, C, L'] */
  forward(x: Tensor): Tensor {
    checkRank('AvgPool1d', x, 1, '[B, C, L] or [C, L]');
    return avgPool1d(x, this.kernelSize, this.opts.stride, this.opts.padding);
  }
}

export class MaxPool2d extends Module {
  constructor(readonly kernelSize: IntPair, readonly opts: Pool2dOptions = {}) {
    super();
  }
  /** x [B, C, H, W] or [C, H, W] -> [B, C, H', W'] */
  forward(x: Tensor): Tensor {
    checkRank('MaxPool2d', x, 2, '[B, C, H, W] or [C, H, W]');
    return maxPool2d(x, this.kernelSize, this.opts);
  }
}

export class AvgPool2d extends Module {
  constructor(readonly kernelSize: IntPair, readonly opts: Pool2dOptions = {}) {
    super();
  }
  /** x [B, C, H, W] or [C, H, W] -> [B, C, H', W'] */
  forward(x: Tensor): Tensor {
    checkRank('AvgPool2d', x, 2, '[B, C, H, W] or [C, H, W]');
    return avgPool2d(x, this.kernelSize, this.opts);
  }
}

/**
 * The [size, out] matrix (or [out, size] with outFirst) whose column i averages torch's adaptive window i,
 * [floor(i * size / out), ceil((i + 1) * size / out)). Pooling is then a matrix product, unequal windows included.
 */
function adaptiveMatrix(size: number, out: number, like: Tensor, outFirst = false): Tensor {
  const a = new Float32Array(size * out);
  for (let i = 0; i < out; i++) {
    const start = Math.floor((i * size) / out), end = Math.ceil(((i + 1) * size) / out);
    for (let j = start; j < end; j++) a[outFirst ? i * size + j : j * out + i] = 1 / (end - start);
  }
  return tensor(a, { shape: outFirst ? [out, size] : [size, out], dtype: like.dtype, device: like.device });
}

function checkOutputSize(layer: string, sizes: readonly number[]): void {
  if (sizes.some((s) => !Number.isInteger(s) || s < 1)) throw new Error(`${layer}: outputSize must be positive integers, got ${sizes.join('x')}`);
}

export class AdaptiveAvgPool1d extends Module {
  constructor(readonly outputSize: number) {
    super();
    checkOutputSize('AdaptiveAvgPool1d', [outputSize]);
  }
  /** x [B, C, L] or [C, L] -> [B, C, outputSize] */
  forward(x: Tensor): Tensor {
    checkRank('AdaptiveAvgPool1d', x, 1, '[B, C, L] or [C, L]');
    return matmul(x, adaptiveMatrix(x.shape[x.ndim - 1]!, this.outputSize, x)); // [..., L] @ [L, out]
  }
}

export class AdaptiveAvgPool2d extends Module {
  readonly outputSize: [number | null, number | null];

  /** outputSize: one size for both, or [H, W] where null keeps the input's size. */
  constructor(outputSize: number | [number | null, number | null]) {
    super();
    this.outputSize = typeof outputSize === 'number' ? [outputSize, outputSize] : outputSize;
    checkOutputSize('AdaptiveAvgPool2d', this.outputSize.filter((s): s is number => s !== null));
  }
  /** x [B, C, H, W] or [C, H, W] -> [B, C, outH, outW] */
  forward(x: Tensor): Tensor {
    checkRank('AdaptiveAvgPool2d', x, 2, '[B, C, H, W] or [C, H, W]');
    const H = x.shape[x.ndim - 2]!, W = x.shape[x.ndim - 1]!;
    const [oh, ow] = [this.outputSize[0] ?? H, this.outputSize[1] ?? W];
    const rows = matmul(adaptiveMatrix(H, oh, x, true), x); // [oh, H] @ [..., H, W] -> [..., oh, W]
    return matmul(rows, adaptiveMatrix(W, ow, x)); // [..., oh, W] @ [W, ow] -> [..., oh, ow]
  }
}
