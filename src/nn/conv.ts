// Convolution layers as torch.nn.Conv1d / Conv2d: weight [out, in / groups, k...], bias [out], torch's init and padding modes.

import { pad } from '../autograd/ops/movement.js';
import { zeros } from '../tensor/create.js';
import { fmtShape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { conv1d, conv2d } from './functional.js';
import { kaimingUniform_, uniform_ } from './init.js';
import { Module, Parameter } from './module.js';

export type IntPair = number | [number, number];

export interface ConvLayerOptions<S> {
  stride?: S;
  /** Zero padding on each side, or 'valid' (none) or 'same' (output as long as the input; stride 1 only). */
  padding?: S | 'valid' | 'same';
  dilation?: S;
  groups?: number;
  bias?: boolean;
  device?: string;
}

const toPair = (v: IntPair): [number, number] => (typeof v === 'number' ? [v, v] : [v[0], v[1]]);

/**
 * Per-dimension padding for 'same': torch puts floor(total / 2) on both sides and, when dilation * (k - 1) is
 * odd, the one extra row or column after the input.
 */
function samePadding(layer: string, kernel: readonly number[], dilation: readonly number[], stride: readonly number[]): { both: number[]; extra: number[] } {
  if (stride.some((s) => s !== 1)) throw new Error(`${layer}: padding 'same' needs stride 1, got stride ${stride.join('x')}`);
  const total = kernel.map((k, i) => dilation[i]! * (k - 1));
  const both = total.map((t) => Math.floor(t / 2));
  return { both, extra: total.map((t, i) => t - 2 * both[i]!) };
}

/** Shared checks and parameters: weight [out, in / groups, ...kernel] kaiming_uniform(a = sqrt(5)), bias U(+-1/sqrt(fan_in)). */
abstract class ConvNd extends Module {
  weight: Parameter;
  bias: Parameter | null;
  readonly groups: number;

  protected constructor(protected readonly layerName: string, readonly inChannels: number, readonly outChannels: number, kernel: readonly number[], opts: { groups?: number; bias?: boolean; device?: string }) {
    super();
    this.groups = opts.groups ?? 1;
    const g = this.groups;
    if (!Number.isInteger(g) || g < 1 || inChannels % g !== 0 || outChannels % g !== 0) {
      throw new Error(`${layerName}: inChannels ${inChannels} and outChannels ${outChannels} must both be divisible by groups ${g}`);
    }
    if (kernel.some((k) => !Number.isInteger(k) || k < 1)) throw new Error(`${layerName}: kernelSize must be positive integers, got ${kernel.join('x')}`);
    this.weight = new Parameter(kaimingUniform_(zeros([outChannels, inChannels / g, ...kernel], { device: opts.device }), Math.sqrt(5)));
    const fanIn = (inChannels / g) * kernel.reduce((a, b) => a * b, 1);
    const bound = 1 / Math.sqrt(fanIn);
    this.bias = opts.bias === false ? null : new Parameter(uniform_(zeros([outChannels], { device: opts.device }), -bound, bound));
  }

  /** Checks x is [B, inChannels, ...spatial] or [inChannels, ...spatial]. */
  protected checkInput(x: Tensor, spatial: number, layout: string): void {
    if ((x.ndim !== spatial + 1 && x.ndim !== spatial + 2) || x.shape[x.ndim - spatial - 1] !== this.inChannels) {
      throw new Error(`${this.layerName}: expected input ${layout} with C = inChannels ${this.inChannels}, got ${fmtShape(x.shape)}`);
    }
  }
}

export class Conv1d extends ConvNd {
  readonly kernelSize: number;
  readonly stride: number;
  readonly padding: number | 'valid' | 'same';
  readonly dilation: number;
  readonly #pad: { both: number[]; extra: number[] };

  constructor(inChannels: number, outChannels: number, kernelSize: number, opts: ConvLayerOptions<number> = {}) {
    super('Conv1d', inChannels, outChannels, [kernelSize], opts);
    this.kernelSize = kernelSize;
    this.stride = opts.stride ?? 1;
    this.padding = opts.padding ?? 0;
    this.dilation = opts.dilation ?? 1;
    const p = this.padding;
    this.#pad = p === 'same' ? samePadding('Conv1d', [kernelSize], [this.dilation], [this.stride]) : { both: [p === 'valid' ? 0 : p], extra: [0] };
  }

  /** x [B, C, L] or [C, L] -> [B, O, L'] */
  forward(x: Tensor): Tensor {
    this.checkInput(x, 1, '[B, C, L] or [C, L]');
    const { both, extra } = this.#pad;
    const xp = extra[0] ? pad(x, [0, extra[0]]) : x;
    return conv1d(xp, this.weight, this.bias, { stride: this.stride, padding: both[0], dilation: this.dilation, groups: this.groups });
  }
}

export class Conv2d extends ConvNd {
  readonly kernelSize: [number, number];
  readonly stride: [number, number];
  readonly padding: [number, number] | 'valid' | 'same';
  readonly dilation: [number, number];
  readonly #pad: { both: number[]; extra: number[] };

  constructor(inChannels: number, outChannels: number, kernelSize: IntPair, opts: ConvLayerOptions<IntPair> = {}) {
    const k = toPair(kernelSize);
    super('Conv2d', inChannels, outChannels, k, opts);
    this.kernelSize = k;
    this.stride = toPair(opts.stride ?? 1);
    const p = opts.padding ?? 0;
    this.padding = p === 'same' || p === 'valid' ? p : toPair(p);
    this.dilation = toPair(opts.dilation ?? 1);
    this.#pad = p === 'same' ? samePadding('Conv2d', k, this.dilation, this.stride) : { both: p === 'valid' ? [0, 0] : toPair(p), extra: [0, 0] };
  }

  /** x [B, C, H, W] or [C, H, W] -> [B, O, H', W'] */
  forward(x: Tensor): Tensor {
    this.checkInput(x, 2, '[B, C, H, W] or [C, H, W]');
    const { both, extra } = this.#pad;
    const xp = extra[0] || extra[1] ? pad(x, [0, extra[1]!, 0, extra[0]!]) : x; // pad's order: W then H
    return conv2d(xp, this.weight, this.bias, { stride: this.stride, padding: [both[0]!, both[1]!], dilation: this.dilation, groups: this.groups });
  }
}
