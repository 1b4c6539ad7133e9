// torch.nn.functional: losses, dropout, convolution, pooling and attention, composed from the autograd primitives.

import { gelu, relu, sigmoid, silu, tanh } from '../autograd/ops/elementwise.js';
import { abs, add, cast, div, eq, exp, ge, log, maximum, mul, ne, neg, sub, where } from '../autograd/ops/elementwise.js';
import { embedding, gather, indexSelect } from '../autograd/ops/indexing.js';
import { attention, attentionProbs } from '../autograd/ops/attention.js';
import { bmm, linear } from '../autograd/ops/matmul.js';
import { detach, expand, flatten, movedim, narrow, reshape, squeeze, unsqueeze } from '../autograd/ops/movement.js';
import { record } from '../autograd/engine.js';
import { crossEntropyRows, layerNorm, logSoftmax, rmsNorm, softmax } from '../autograd/ops/nn.js';
import { argmax, mean, sum } from '../autograd/ops/reduce.js';
import { unfold, type Window2d } from '../autograd/ops/window.js';
import { arange, rand } from '../tensor/create.js';
import { isFloat } from '../tensor/dtype.js';
import type { Generator } from '../tensor/random.js';
import { fmtShape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';

export { embedding, gelu, layerNorm, linear, logSoftmax, relu, rmsNorm, sigmoid, silu, softmax, tanh, unfold };
export { ctcLoss, type CtcLossOptions } from '../autograd/ops/ctc.js';

export type Reduction = 'mean' | 'sum' | 'none';

function reduce(loss: Tensor, reduction: Reduction): Tensor {
  return reduction === 'mean' ? mean(loss) : reduction === 'sum' ? sum(loss) : loss;
}

// ---- losses ----

export interface NllOptions {
  /** Targets equal to this contribute nothing (default -100, as in PyTorch). */
  ignoreIndex?: number;
  /** Per-class weights [C]. */
  weight?: Tensor;
  reduction?: Reduction;
  /** Mixes the one-hot target with the uniform distribution (0..1), as in PyTorch. */
  labelSmoothing?: number;
}

/** Moves the class dimension (1) last and flattens: [N, C, d1, ...] -> [N * d1 * ..., C]. */
function classesLast(x: Tensor, op: string): Tensor {
  if (x.ndim === 1) return unsqueeze(x, 0);
  if (x.ndim === 2) return x;
  if (x.ndim < 1) throw new Error(`${op}: input needs a class dimension, got ${fmtShape(x.shape)}`);
  return flatten(movedim(x, 1, -1), 0, -2);
}

/** Negative log-likelihood of class targets under log-probabilities [N, C] (or [N, C, d...]). */
export function nllLoss(logProbs: Tensor, target: Tensor, opts: NllOptions = {}): Tensor {
  const { ignoreIndex = -100, reduction = 'mean', labelSmoothing = 0, weight } = opts;
  if (isFloat(target.dtype)) throw new Error(`nllLoss: target must hold class indices (an integer tensor), got ${target.dtype}`);
  const lp = classesLast(logProbs, 'nllLoss');
  const [rows, classes] = lp.shape as [number, number];
  const expected = logProbs.ndim === 1 ? [] : [logProbs.shape[0]!, ...logProbs.shape.slice(2)];
  if (target.numel() !== rows || target.ndim !== expected.length || target.shape.some((d, i) => d !== expected[i])) {
    throw new Error(`nllLoss: target ${fmtShape(target.shape)} does not match input ${fmtShape(logProbs.shape)} (expected ${fmtShape(expected)})`);
  }
  if (labelSmoothing < 0 || labelSmoothing > 1) throw new Error(`nllLoss: labelSmoothing must be in [0, 1], got ${labelSmoothing}`);
  const t = reshape(cast(target, 'int32'), [rows]);
  const valid = ne(t, ignoreIndex);
  const safe = where(valid, t, 0); // ignored rows read class 0, then count for nothing
  const validF = cast(valid, lp.dtype);
  const picked = squeeze(gather(lp, 1, unsqueeze(safe, 1)), 1);
  const w = weight ? mul(indexSelect(weight, 0, safe), validF) : validF;
  // where, not a product with 0: an ignored row contributes exactly 0 even when its log-probs hold -inf or NaN.
  let loss = where(valid, neg(mul(picked, w)), 0);
  if (labelSmoothing > 0) {
    const perClass = weight ? mul(lp, weight) : lp;
    const smooth = where(valid, neg(sum(perClass, 1)), 0);
    loss = add(mul(loss, 1 - labelSmoothing), mul(smooth, labelSmoothing / classes));
  }
  if (reduction === 'none') return reshape(loss, expected);
  if (reduction === 'sum') return sum(loss);
  return weightedMean(sum(loss), sum(w));
}

/**
 * total / count for a mean over the targets that count. With none (every target ignored) the loss is NaN (0 / 0)
 * but the gradient is 0, as in PyTorch: the NaN is added as a constant, so that one all-padding batch does not
 * put NaN into every weight through the optimizer.
 */
function weightedMean(total: Tensor, count: Tensor): Tensor {
  const none = eq(count, 0);
  return add(div(total, where(none, 1, count)), cast(where(none, NaN, 0), total.dtype)); // NaN when nothing counts, in the loss's dtype
}

/**
 * Cross-entropy between logits [N, C] (or [N, C, d...], or [C]) and class indices, or class
 * probabilities of the logits' shape, as torch.nn.functional.cross_entropy.
 */
export function crossEntropy(logits: Tensor, target: Tensor, opts: NllOptions = {}): Tensor {
  if (!isFloat(target.dtype) && logits.ndim === 2 && target.ndim === 1 && target.shape[0] === logits.shape[0] && !opts.weight && !opts.labelSmoothing) {
    // The common case (class indices, no weights or smoothing): the fused per-row primitive.
    const ignoreIndex = opts.ignoreIndex ?? -100, reduction = opts.reduction ?? 'mean';
    const rows = crossEntropyRows(logits, target, ignoreIndex);
    if (reduction === 'none') return rows;
    if (reduction === 'sum') return sum(rows);
    return weightedMean(sum(rows), sum(cast(ne(target, ignoreIndex), logits.dtype)));
  }
  const lp = logSoftmax(logits, logits.ndim === 1 ? 0 : 1);
  if (isFloat(target.dtype)) {
    if (target.ndim !== logits.ndim || target.shape.some((d, i) => d !== logits.shape[i])) {
      throw new Error(`crossEntropy: probability targets ${fmtShape(target.shape)} must have the logits' shape ${fmtShape(logits.shape)}`);
    }
    const eps = opts.labelSmoothing ?? 0;
    const classes = logits.ndim === 1 ? logits.shape[0]! : logits.shape[1]!;
    const p = eps > 0 ? add(mul(target, 1 - eps), eps / classes) : target;
    // Class weights scale each class's term; the mean divides by the number of rows, not by the weights (PyTorch).
    const w = opts.weight ? (logits.ndim > 2 ? reshape(opts.weight, [classes, ...Array<number>(logits.ndim - 2).fill(1)]) : opts.weight) : null;
    const lpw = w ? mul(lp, w) : lp;
    const loss = neg(sum(mul(lpw, p), logits.ndim === 1 ? 0 : 1));
    return reduce(loss, opts.reduction ?? 'mean');
  }
  return nllLoss(lp, target, opts);
}

export function mseLoss(input: Tensor, target: Tensor, reduction: Reduction = 'mean'): Tensor {
  const d = sub(input, target);
  return reduce(mul(d, d), reduction);
}

export function l1Loss(input: Tensor, target: Tensor, reduction: Reduction = 'mean'): Tensor {
  return reduce(abs(sub(input, target)), reduction);
}

export interface BceOptions {
  /** Rescales each element's loss; broadcast against the logits. */
  weight?: Tensor | null;
  /** Weight of the positive term, broadcast over the last dimension (PyTorch's pos_weight). */
  posWeight?: Tensor | null;
}

/**
 * Sigmoid + binary cross-entropy, PyTorch's stable expression (1 - y) x + m + log(exp(-m) + exp(-x - m)) with
 * m = max(-x, 0), and its gradients sigmoid(x) - y and -x, so that infinite logits give what PyTorch gives.
 * `weight` rescales each element's loss, `posWeight` the positive term per class (F.binary_cross_entropy_with_logits).
 */
export function binaryCrossEntropyWithLogits(logits: Tensor, target: Tensor, reduction: Reduction = 'mean', opts: BceOptions = {}): Tensor {
  if (logits.ndim !== target.ndim || logits.shape.some((d, i) => d !== target.shape[i])) {
    throw new Error(`binaryCrossEntropyWithLogits: target ${fmtShape(target.shape)} must have the logits' shape ${fmtShape(logits.shape)}`);
  }
  const x = detach(logits), y = detach(target);
  const m = maximum(neg(x), 0);
  const values = add(add(mul(sub(1, y), x), m), log(add(exp(neg(m)), exp(sub(neg(x), m)))));
  const loss = record('binaryCrossEntropyWithLogits', values, [logits, target], [x, y], (g, [sx, sy], needs) => [
    needs[0] ? mul(g, sub(sigmoid(sx!), sy!)) : null,
    needs[1] ? mul(g, neg(sx!)) : null,
  ]);
  let weighted = loss;
  if (opts.posWeight) {
    // PyTorch: (1 - y) x + (1 + (pw - 1) y) softplus(-x), i.e. the plain loss plus (pw - 1) y softplus(-x).
    const softplusNeg = add(maximum(neg(logits), 0), log(add(exp(neg(abs(logits))), 1)));
    weighted = add(weighted, mul(mul(target, sub(opts.posWeight, 1)), softplusNeg));
  }
  if (opts.weight) weighted = mul(weighted, opts.weight);
  return reduce(weighted, reduction);
}

// ---- regularisation ----

/** Zeroes elements with probability p and scales the rest by 1 / (1 - p); identity when not training. */
export function dropout(x: Tensor, p = 0.5, training = true, generator?: Generator): Tensor {
  if (p < 0 || p > 1) throw new Error(`dropout: p must be in [0, 1], got ${p}`);
  if (!training || p === 0) return x;
  if (p === 1) return mul(x, 0);
  const keep = cast(ge(rand(x.shape, { device: x.device, dtype: isFloat(x.dtype) ? x.dtype : 'float32', generator }), p), x.dtype);
  return mul(x, mul(keep, 1 / (1 - p)));
}

// ---- convolution and pooling (unfold + matmul / reduce) ----

export interface ConvOptions {
  stride?: number | [number, number];
  padding?: number | [number, number];
  dilation?: number | [number, number];
  groups?: number;
}

const pair = (v: number | [number, number] | undefined, dflt: number): [number, number] =>
  v === undefined ? [dflt, dflt] : typeof v === 'number' ? [v, v] : v;

/** x [B, C, H, W] (or [C, H, W]), weight [O, C / groups, kH, kW], bias [O]. */
export function conv2d(x: Tensor, weight: Tensor, bias?: Tensor | null, opts: ConvOptions = {}): Tensor {
  if (x.ndim === 3) return squeeze(conv2d(unsqueeze(x, 0), weight, bias, opts), 0);
  const groups = opts.groups ?? 1;
  if (weight.ndim !== 4) throw new Error(`conv2d: weight must be [out, in / groups, kH, kW], got ${fmtShape(weight.shape)}`);
  const [outC, inPerGroup, kH, kW] = weight.shape as [number, number, number, number];
  const inC = x.shape[1]!;
  if (x.ndim !== 4 || inC !== inPerGroup * groups || outC % groups !== 0) {
    throw new Error(`conv2d: input ${fmtShape(x.shape)} does not fit weight ${fmtShape(weight.shape)} with groups=${groups}`);
  }
  const win: Window2d = { kernel: [kH, kW], stride: pair(opts.stride, 1), padding: pair(opts.padding, 0), dilation: pair(opts.dilation, 1) };
  const cols = unfold(x, win, 0, 'conv2d'); // [B, C * kH * kW, L]
  const [B, K, L] = cols.shape as [number, number, number];
  let y: Tensor;
  if (groups === 1) {
    y = bmm(reshape(weight, [1, outC, K]), cols); // [1, O, K] @ [B, K, L] -> [B, O, L]
  } else {
    const Kg = K / groups, Og = outC / groups;
    const c = reshape(cols, [B * groups, Kg, L]);
    const w = reshape(weight, [groups, Og, Kg]);
    // One group's weights against that group's columns, for every batch entry: [B*g, Og, L].
    const wb = B === 1 ? w : reshape(expand(unsqueeze(w, 0), [B, groups, Og, Kg]), [B * groups, Og, Kg]);
    y = bmm(wb, c);
  }
  const inH = x.shape[2]!, inW = x.shape[3]!;
  const [sh, sw] = win.stride!, [ph, pw] = win.padding!, [dh, dw] = win.dilation!;
  const outH = Math.floor((inH + 2 * ph - dh * (kH - 1) - 1) / sh) + 1, outW = Math.floor((inW + 2 * pw - dw * (kW - 1) - 1) / sw) + 1;
  let out = reshape(y, [B, outC, outH, outW]);
  if (bias) out = add(out, reshape(bias, [1, outC, 1, 1]));
  return out;
}

export interface Conv1dOptions {
  stride?: number;
  padding?: number;
  dilation?: number;
  groups?: number;
}

/** x [B, C, L] (or [C, L]), weight [O, C / groups, k], bias [O]. */
export function conv1d(x: Tensor, weight: Tensor, bias?: Tensor | null, opts: Conv1dOptions = {}): Tensor {
  if (x.ndim === 2) return squeeze(conv1d(unsqueeze(x, 0), weight, bias, opts), 0);
  if (x.ndim !== 3 || weight.ndim !== 3) throw new Error(`conv1d: expected input [B, C, L] and weight [O, C / groups, k], got ${fmtShape(x.shape)} and ${fmtShape(weight.shape)}`);
  const y = conv2d(unsqueeze(x, 2), unsqueeze(weight, 2), bias, {
    stride: [1, opts.stride ?? 1], padding: [0, opts.padding ?? 0], dilation: [1, opts.dilation ?? 1], groups: opts.groups ?? 1,
  });
  return squeeze(y, 2);
}

export interface PoolOptions {
  stride?: number | [number, number];
  padding?: number | [number, number];
}

function pool2d(op: 'maxPool2d' | 'avgPool2d', x: Tensor, kernel: number | [number, number], opts: PoolOptions): Tensor {
  if (x.ndim === 3) return squeeze(pool2d(op, unsqueeze(x, 0), kernel, opts), 0);
  const k = pair(kernel, 1);
  const win: Window2d = { kernel: k, stride: pair(opts.stride ?? kernel, 1), padding: pair(opts.padding, 0) };
  const [pH, pW] = win.padding!;
  if (pH > k[0] / 2 || pW > k[1] / 2) throw new Error(`${op}: padding should be at most half the kernel size, got padding ${pH}x${pW} for kernel ${k[0]}x${k[1]}`);
  const isMax = op === 'maxPool2d';
  const cols = unfold(x, win, isMax ? -Infinity : 0, op); // [B, C * kH * kW, L]
  const [B, C] = x.shape as [number, number];
  const L = cols.shape[2]!;
  const windows = reshape(cols, [B, C, k[0] * k[1], L]);
  // Max: the whole gradient goes to the first largest value of a window (PyTorch's rule; max() would split ties).
  const pooled = isMax ? squeeze(gather(windows, 2, argmax(windows, 2, true)), 2) : mean(windows, 2); // [B, C, L]
  const outH = Math.floor((x.shape[2]! + 2 * pH - k[0]) / win.stride![0]) + 1;
  return reshape(pooled, [B, C, outH, L / outH]);
}

export function maxPool2d(x: Tensor, kernel: number | [number, number], opts: PoolOptions = {}): Tensor {
  return pool2d('maxPool2d', x, kernel, opts);
}
/** Average pooling; padded positions count as zeros (count_include_pad=True, PyTorch's default). */
export function avgPool2d(x: Tensor, kernel: number | [number, number], opts: PoolOptions = {}): Tensor {
  return pool2d('avgPool2d', x, kernel, opts);
}

function pool1d(op: 'maxPool2d' | 'avgPool2d', x: Tensor, kernel: number, stride?: number, padding = 0): Tensor {
  if (x.ndim !== 2 && x.ndim !== 3) throw new Error(`${op === 'maxPool2d' ? 'maxPool1d' : 'avgPool1d'}: expected [B, C, L] or [C, L], got ${fmtShape(x.shape)}`);
  return squeeze(pool2d(op, unsqueeze(x, -2), [1, kernel], { stride: [1, stride ?? kernel], padding: [0, padding] }), -2);
}
export function maxPool1d(x: Tensor, kernel: number, stride?: number, padding = 0): Tensor {
  return pool1d('maxPool2d', x, kernel, stride, padding);
}
export function avgPool1d(x: Tensor, kernel: number, stride?: number, padding = 0): Tensor {
  return pool1d('avgPool2d', x, kernel, stride, padding);
}

// ---- attention ----

export interface AttentionOptions {
  /** Bool (true = may attend) or additive float mask, broadcastable to [..., T, S]. */
  attnMask?: Tensor | null;
  /** Query i may attend keys up to its own position; with S > T the queries are the last T positions. */
  isCausal?: boolean;
  dropoutP?: number;
  /** Defaults to 1 / sqrt(head size). */
  scale?: number;
  generator?: Generator;
  /** attend's: only the first kvLength positions of k and v take part (a KVCache's buffers, read in place). */
  kvLength?: number;
}

/** softmax(q k^T * scale + mask) v for q [..., T, hs], k and v [..., S, hs] (and [..., S, hv]), up to 4 dimensions. */
export function scaledDotProductAttention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions = {}): Tensor {
  const nd = q.ndim;
  if (nd < 2 || nd > 4 || k.ndim !== nd || v.ndim !== nd) {
    throw new Error(`scaledDotProductAttention: q, k, v must have the same rank, 2 to 4, got ${fmtShape(q.shape)}, ${fmtShape(k.shape)}, ${fmtShape(v.shape)}`);
  }
  // Work in [B, H, L, d]: missing leading dimensions become 1.
  const to4 = (t: Tensor) => reshape(t, [...Array(4 - nd).fill(1), ...t.shape]);
  const [q4, k4, v4] = [to4(q), to4(k), to4(v)];
  let bias: Tensor | null = null;
  if (opts.attnMask) {
    const m = opts.attnMask;
    // A [B, T, S] mask for [B, T, hs] inputs belongs to the batch dimension, not the heads.
    const m4 = nd === 3 && m.ndim === 3 ? unsqueeze(m, 1) : m;
    // In q's dtype: the composed path (dropout) would otherwise compute a float16 model's probabilities in float32.
    bias = cast(m.dtype === 'bool' ? where(m4, 0, -Infinity) : m4, q.dtype);
  }
  const a = { bias, causal: opts.isCausal ?? false, scale: opts.scale };
  let out: Tensor;
  if (opts.dropoutP) {
    const S = opts.kvLength ?? k4.shape[2]!;
    const [B, H, T] = [q4.shape[0]!, q4.shape[1]!, q4.shape[2]!];
    const [k5, v5] = S < k4.shape[2]! ? [narrow(k4, 2, 0, S), narrow(v4, 2, 0, S)] : [k4, v4];
    const p = dropout(attentionProbs(q4, k5, a), opts.dropoutP, true, opts.generator);
    // [B*H, T, S] @ [B*H, S, hv] -> [B, H, T, hv]
    out = reshape(bmm(reshape(p, [B * H, T, S]), reshape(v5, [B * H, S, v4.shape[3]!])), [B, H, T, v4.shape[3]!]);
  } else {
    out = attention(q4, k4, v4, { ...a, kvLength: opts.kvLength });
  }
  return reshape(out, [...q.shape.slice(0, -1), v.shape[nd - 1]!]);
}

/** One-hot int32 encoding: [...ids.shape, numClasses]. Ids must be integers in [0, numClasses), as in PyTorch. */
export function oneHot(ids: Tensor, numClasses: number): Tensor {
  if (isFloat(ids.dtype) || ids.dtype === 'bool') throw new Error(`oneHot: ids must be an integer tensor, got ${ids.dtype}`);
  if (!Number.isInteger(numClasses) || numClasses < 0) throw new Error(`oneHot: numClasses must be a non-negative integer, got ${numClasses}`);
  const classes = arange(numClasses, undefined, 1, { dtype: 'int32', device: ids.device });
  // The index kernel rejects an id outside [0, numClasses) with a clear error (the gathered values are not needed).
  // Not rows of eye(numClasses): that would be numClasses^2 elements, 10 GB for GPT-2's vocabulary.
  indexSelect(classes, 0, reshape(ids, [ids.numel()]), 'oneHot').dispose();
  return cast(eq(unsqueeze(ids, -1), classes), 'int32');
}

/**
 * Group normalisation (torch.nn.functional.group_norm): x [B, C, *] in `numGroups` groups of C / numGroups channels,
 * each group of each example normalised over its channels and positions (biased variance), then weight [C] and
 * bias [C] per channel. Composed: one layer norm over [B, G, -1], then the per-channel affine.
 */
export function groupNorm(x: Tensor, numGroups: number, weight?: Tensor | null, bias?: Tensor | null, eps = 1e-5): Tensor {
  const C = x.shape[1];
  if (x.ndim < 2 || C === undefined) throw new Error(`groupNorm: expected input [B, C, *], got ${fmtShape(x.shape)}`);
  if (!Number.isInteger(numGroups) || numGroups < 1 || C % numGroups !== 0) throw new Error(`groupNorm: ${C} channels are not divisible into ${numGroups} groups (input ${fmtShape(x.shape)})`);
  for (const [name, p] of [['weight', weight], ['bias', bias]] as const) {
    if (p && (p.ndim !== 1 || p.shape[0] !== C)) throw new Error(`groupNorm: ${name} must be [${C}], got ${fmtShape(p.shape)}`);
  }
  const B = x.shape[0]!, perGroup = x.numel() / Math.max(B * numGroups, 1);
  // [B, C, *] -> [B, G, C/G * prod(*)]: each row is one group of one example.
  const normed = reshape(layerNorm(reshape(x, [B, numGroups, perGroup]), [perGroup], null, null, eps), x.shape);
  // weight / bias [C] -> [1, C, 1, ...] to broadcast over batch and positions.
  const perChannel = [1, C, ...Array<number>(x.ndim - 2).fill(1)];
  const scaled = weight ? mul(normed, reshape(weight, perChannel)) : normed;
  return bias ? add(scaled, reshape(bias, perChannel)) : scaled;
}
