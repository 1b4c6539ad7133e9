// Direct Preference Optimization (Rafailov et al. 2023, arXiv:2305.18290): TRL's sigmoid DPO loss and sequence log-probabilities.

import { abs, add, cast, exp, gt, log, mul, neg, sub } from '../autograd/ops/elementwise.js';
import { detach, reshape, slice } from '../autograd/ops/movement.js';
import { mean, sum } from '../autograd/ops/reduce.js';
import { crossEntropy } from '../nn/functional.js';
import { isFloat } from '../tensor/dtype.js';
import { fmtShape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';

/** Summed log-probabilities of each chosen / rejected completion [B], under the policy and the frozen reference. */
export interface DpoLogps {
  policyChosenLogps: Tensor;
  policyRejectedLogps: Tensor;
  referenceChosenLogps: Tensor;
  referenceRejectedLogps: Tensor;
}

export interface DpoOptions {
  /** β: the strength of the implicit KL penalty to the reference (TRL's default 0.1). Larger stays closer. */
  beta?: number;
  /** Conservative DPO (cDPO): the assumed probability, in [0, 0.5], that a preference label is flipped. Default 0. */
  labelSmoothing?: number;
}

export interface DpoLossOutput {
  /** The mean loss over the batch (a scalar with gradient to the policy log-probabilities). */
  loss: Tensor;
  /** β (policy − reference) log-probability of each chosen completion [B]: TRL's rewards/chosen (no gradient). */
  chosenRewards: Tensor;
  /** The same for the rejected completions [B]: rewards/rejected. */
  rejectedRewards: Tensor;
  /** chosenRewards − rejectedRewards [B]: rewards/margins. */
  margins: Tensor;
  /** Fraction of pairs whose chosen reward is above the rejected one (scalar): rewards/accuracies. */
  accuracy: Tensor;
}

/** log σ(x), stable for any x: (x − |x|)/2 − log(1 + e^−|x|). Written with (x − |x|)/2 rather than min(x, 0) so the gradient at 0 is σ(0) = 1/2. */
export function logSigmoid(x: Tensor): Tensor {
  const a = abs(x);
  return sub(mul(sub(x, a), 0.5), log(add(exp(neg(a)), 1)));
}

/**
 * TRL's DPO loss (loss_type 'sigmoid'): with z = β((πc − rc) − (πr − rr)) on summed log-probabilities,
 * loss = −(1 − ε) log σ(z) − ε log σ(−z), averaged over the batch. The reference log-probabilities are constants
 * (detached). Returns the loss with TRL's logged statistics.
 */
export function dpoLoss(logps: DpoLogps, opts: DpoOptions = {}): DpoLossOutput {
  const beta = opts.beta ?? 0.1;
  const eps = opts.labelSmoothing ?? 0;
  if (typeof beta !== 'number' || !(beta > 0) || !Number.isFinite(beta)) throw new Error(`dpoLoss: beta must be a positive number, got ${String(beta)}`);
  if (typeof eps !== 'number' || !(eps >= 0 && eps <= 0.5)) throw new Error(`dpoLoss: labelSmoothing must be in [0, 0.5], got ${String(eps)}`);
  const names = ['policyChosenLogps', 'policyRejectedLogps', 'referenceChosenLogps', 'referenceRejectedLogps'] as const;
  for (const name of names) {
    const t = logps[name];
    if (t === undefined || t === null) throw new Error(`dpoLoss: ${name} is missing`);
    if (t.ndim !== 1 || t.shape[0] === 0) throw new Error(`dpoLoss: ${name} must be a non-empty 1-D tensor [batch], got shape ${fmtShape(t.shape)}`);
    if (!isFloat(t.dtype)) throw new Error(`dpoLoss: ${name} must hold floating-point log-probabilities, got ${t.dtype}`);
    if (t.shape[0] !== logps.policyChosenLogps.shape[0]) throw new Error(`dpoLoss: ${name} has shape ${fmtShape(t.shape)} but policyChosenLogps has ${fmtShape(logps.policyChosenLogps.shape)}`);
  }
  const chosenRatio = sub(logps.policyChosenLogps, detach(logps.referenceChosenLogps)); // [B]
  const rejectedRatio = sub(logps.policyRejectedLogps, detach(logps.referenceRejectedLogps)); // [B]
  const z = mul(sub(chosenRatio, rejectedRatio), beta); // [B]
  let perPair = neg(logSigmoid(z));
  if (eps > 0) perPair = add(mul(perPair, 1 - eps), mul(neg(logSigmoid(neg(z))), eps));
  const chosenRewards = detach(mul(chosenRatio, beta));
  const rejectedRewards = detach(mul(rejectedRatio, beta));
  return {
    loss: mean(perPair),
    chosenRewards,
    rejectedRewards,
    margins: sub(chosenRewards, rejectedRewards),
    accuracy: mean(cast(gt(chosenRewards, rejectedRewards), chosenRewards.dtype)),
  };
}

/**
 * Summed log-probability of each sequence's label tokens under a causal LM: logits at position t predict the label at
 * t + 1 (labels are aligned with the input ids, as Hugging Face's), and labels equal to -100 (prompt, padding) count
 * for nothing. logits [B, T, V], labels [B, T] -> [B], with gradient to the logits.
 */
export function sequenceLogps(logits: Tensor, labels: Tensor, opts: { ignoreIndex?: number } = {}): Tensor {
  const ignoreIndex = opts.ignoreIndex ?? -100;
  if (logits.ndim !== 3) throw new Error(`sequenceLogps: logits must be [batch, length, vocab], got shape ${fmtShape(logits.shape)}`);
  if (labels.ndim !== 2 || labels.shape[0] !== logits.shape[0] || labels.shape[1] !== logits.shape[1]) {
    throw new Error(`sequenceLogps: labels ${fmtShape(labels.shape)} must be [batch, length] matching logits ${fmtShape(logits.shape)}`);
  }
  if (!isFloat(logits.dtype)) throw new Error(`sequenceLogps: logits must be floating point, got ${logits.dtype}`);
  if (isFloat(labels.dtype)) throw new Error(`sequenceLogps: labels must hold token ids (an integer tensor), got ${labels.dtype}`);
  const [B, T, V] = logits.shape as [number, number, number];
  if (T < 2) throw new Error(`sequenceLogps: sequences need at least 2 positions (one to predict from, one to predict), got length ${T}`);
  const pred = reshape(slice(logits, 1, 0, T - 1), [B * (T - 1), V]); // [B*(T-1), V]: positions 0..T-2 predict...
  const target = reshape(slice(labels, 1, 1, T), [B * (T - 1)]); // ...labels 1..T-1
  const nll = crossEntropy(pred, target, { ignoreIndex, reduction: 'none' }); // [B*(T-1)], 0 where ignored
  return neg(sum(reshape(nll, [B, T - 1]), 1)); // [B]
}
