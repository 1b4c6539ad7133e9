// Loss modules (torch.nn.CrossEntropyLoss, NLLLoss, MSELoss, L1Loss, BCEWithLogitsLoss) over the functional losses.

import { isFloat } from '../tensor/dtype.js';
import { fmtShape, shapeEq } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { binaryCrossEntropyWithLogits, crossEntropy, l1Loss, mseLoss, nllLoss, type Reduction } from './functional.js';
import { Module } from './module.js';
import { ctcLoss, type CtcLossOptions } from '../autograd/ops/ctc.js';

const REDUCTIONS: readonly string[] = ['mean', 'sum', 'none'];

function checkReduction(op: string, r: string): Reduction {
  if (!REDUCTIONS.includes(r)) throw new Error(`${op}: reduction must be 'mean', 'sum' or 'none', got '${r}'`);
  return r as Reduction;
}

function checkFloatInput(op: string, name: string, t: Tensor): void {
  if (!isFloat(t.dtype)) throw new Error(`${op}: ${name} must be a floating point tensor, got ${t.dtype}`);
}

function checkSameShape(op: string, input: Tensor, target: Tensor): void {
  if (!shapeEq(input.shape, target.shape)) {
    throw new Error(`${op}: target ${fmtShape(target.shape)} must have the input's shape ${fmtShape(input.shape)}`);
  }
}

function checkWeight(op: string, name: string, w: Tensor | null, size: number): void {
  if (w && (w.ndim !== 1 || w.shape[0] !== size)) throw new Error(`${op}: ${name} must be [${size}] (one per class), got ${fmtShape(w.shape)}`);
}

export interface NLLLossOptions {
  /** Per-class weights [C]. */
  weight?: Tensor | null;
  /** Targets equal to this contribute nothing and are left out of the mean (default -100). */
  ignoreIndex?: number;
  reduction?: Reduction;
}

export interface CrossEntropyLossOptions extends NLLLossOptions {
  /** Mixes the target with the uniform distribution over classes, 0..1 (default 0). */
  labelSmoothing?: number;
}

/** Checks class-index targets against input [C], [N, C] or [N, C, d...]: target [], [N] or [N, d...]. */
function checkClassTarget(op: string, input: Tensor, target: Tensor, weight: Tensor | null): void {
  if (input.ndim < 1) throw new Error(`${op}: input needs a class dimension, got ${fmtShape(input.shape)}`);
  checkFloatInput(op, 'input', input);
  const classes = input.ndim === 1 ? input.shape[0]! : input.shape[1]!;
  checkWeight(op, 'weight', weight, classes);
  if (isFloat(target.dtype)) return;
  const expected = input.ndim === 1 ? [] : [input.shape[0]!, ...input.shape.slice(2)];
  if (!shapeEq(target.shape, expected)) {
    throw new Error(`${op}: class-index target ${fmtShape(target.shape)} does not fit input ${fmtShape(input.shape)} (expected ${fmtShape(expected)})`);
  }
}

/** torch.nn.NLLLoss: input log-probabilities [N, C] (or [C], [N, C, d...]), target class indices (an integer tensor). */
export class NLLLoss extends Module {
  weight: Tensor | null;
  readonly ignoreIndex: number;
  readonly reduction: Reduction;

  constructor(opts: NLLLossOptions = {}) {
    super();
    this.weight = this.registerBuffer('weight', opts.weight ?? null);
    this.ignoreIndex = opts.ignoreIndex ?? -100;
    this.reduction = checkReduction('NLLLoss', opts.reduction ?? 'mean');
  }

  forward(input: Tensor, target: Tensor): Tensor {
    checkClassTarget('NLLLoss', input, target, this.weight);
    if (isFloat(target.dtype)) throw new Error(`NLLLoss: target must hold class indices (an integer tensor), got ${target.dtype}`);
    return nllLoss(input, target, { weight: this.weight ?? undefined, ignoreIndex: this.ignoreIndex, reduction: this.reduction });
  }
}

/**
 * torch.nn.CrossEntropyLoss: logits [N, C] (or [C], [N, C, d...]) against class indices (an integer tensor)
 * or class probabilities of the logits' shape.
 */
export class CrossEntropyLoss extends Module {
  weight: Tensor | null;
  readonly ignoreIndex: number;
  readonly reduction: Reduction;
  readonly labelSmoothing: number;

  constructor(opts: CrossEntropyLossOptions = {}) {
    super();
    this.weight = this.registerBuffer('weight', opts.weight ?? null);
    this.ignoreIndex = opts.ignoreIndex ?? -100;
    this.reduction = checkReduction('CrossEntropyLoss', opts.reduction ?? 'mean');
    this.labelSmoothing = opts.labelSmoothing ?? 0;
    if (!(this.labelSmoothing >= 0 && this.labelSmoothing <= 1)) throw new Error(`CrossEntropyLoss: labelSmoothing must be in [0, 1], got ${this.labelSmoothing}`);
  }

  forward(input: Tensor, target: Tensor): Tensor {
    checkClassTarget('CrossEntropyLoss', input, target, this.weight);
    if (isFloat(target.dtype)) checkSameShape('CrossEntropyLoss', input, target);
    return crossEntropy(input, target, {
      weight: this.weight ?? undefined, ignoreIndex: this.ignoreIndex, reduction: this.reduction, labelSmoothing: this.labelSmoothing,
    });
  }
}

/** A loss of each element of input against target (same shape), then reduced: MSELoss and L1Loss. */
class ElementwiseLoss extends Module {
  readonly reduction: Reduction;
  constructor(private readonly lossName: string, private readonly loss: (input: Tensor, target: Tensor, r: Reduction) => Tensor, opts: { reduction?: Reduction }) {
    super();
    this.reduction = checkReduction(lossName, opts.reduction ?? 'mean');
  }
  forward(input: Tensor, target: Tensor): Tensor {
    checkFloatInput(this.lossName, 'input', input);
    checkSameShape(this.lossName, input, target);
    return this.loss(input, target, this.reduction);
  }
}

/** torch.nn.MSELoss: mean (or sum, or none) of (input - target)^2; target must have the input's shape. */
export class MSELoss extends ElementwiseLoss {
  constructor(opts: { reduction?: Reduction } = {}) {
    super('MSELoss', mseLoss, opts);
  }
}

/** torch.nn.L1Loss: mean (or sum, or none) of |input - target|; target must have the input's shape. */
export class L1Loss extends ElementwiseLoss {
  constructor(opts: { reduction?: Reduction } = {}) {
    super('L1Loss', l1Loss, opts);
  }
}

export interface BCEWithLogitsLossOptions {
  /** Rescales each element's loss; broadcast against the input (e.g. [C] over [N, C]). */
  weight?: Tensor | null;
  /** Weight of the positive term per class, broadcast over the last dimension (PyTorch's pos_weight). */
  posWeight?: Tensor | null;
  reduction?: Reduction;
}

/** torch.nn.BCEWithLogitsLoss: sigmoid and binary cross-entropy in one stable expression; float targets in [0, 1]. */
export class BCEWithLogitsLoss extends Module {
  weight: Tensor | null;
  pos_weight: Tensor | null;
  readonly reduction: Reduction;

  constructor(opts: BCEWithLogitsLossOptions = {}) {
    super();
    this.weight = this.registerBuffer('weight', opts.weight ?? null);
    this.pos_weight = this.registerBuffer('pos_weight', opts.posWeight ?? null);
    this.reduction = checkReduction('BCEWithLogitsLoss', opts.reduction ?? 'mean');
  }

  forward(input: Tensor, target: Tensor): Tensor {
    const op = 'BCEWithLogitsLoss';
    checkFloatInput(op, 'input', input);
    checkFloatInput(op, 'target', target);
    checkSameShape(op, input, target);
    const last = input.shape[input.ndim - 1] ?? 1;
    if (this.pos_weight && this.pos_weight.ndim > 0 && this.pos_weight.shape[this.pos_weight.ndim - 1] !== last && this.pos_weight.shape[this.pos_weight.ndim - 1] !== 1) {
      throw new Error(`${op}: posWeight ${fmtShape(this.pos_weight.shape)} does not broadcast over the input's last dimension (${last})`);
    }
    return binaryCrossEntropyWithLogits(input, target, this.reduction, { weight: this.weight, posWeight: this.pos_weight });
  }
}

/** torch.nn.CTCLoss: forward(logProbs [T, B, C], targets, inputLengths, targetLengths), options as F.ctcLoss. */
export class CTCLoss extends Module {
  readonly blank: number;
  readonly reduction: Reduction;
  readonly zeroInfinity: boolean;

  constructor(opts: CtcLossOptions = {}) {
    super();
    this.blank = opts.blank ?? 0;
    if (!Number.isInteger(this.blank) || this.blank < 0) throw new Error(`CTCLoss: blank must be a non-negative integer, got ${this.blank}`);
    this.reduction = checkReduction('CTCLoss', opts.reduction ?? 'mean');
    this.zeroInfinity = opts.zeroInfinity ?? false;
  }

  forward(logProbs: Tensor, targets: Tensor, inputLengths: Tensor | readonly number[] | number, targetLengths: Tensor | readonly number[] | number): Tensor {
    return ctcLoss(logProbs, targets, inputLengths, targetLengths, { blank: this.blank, reduction: this.reduction, zeroInfinity: this.zeroInfinity });
  }
}
