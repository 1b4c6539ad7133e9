// Fused neural-network primitives, each with its own backward kernel: softmax, log-softmax, layer norm, RMS norm,
// and cross-entropy over rows.

import { fmtShape, sizeOf, type Shape } from '../../tensor/shape.js';
import type { Tensor } from '../../tensor/tensor.js';
import { record } from '../engine.js';
import { checkFloat, checkSameDevice, normDim, wrap } from './base.js';
import { cast, ne, neg, where } from './elementwise.js';
import { gather } from './indexing.js';
import { squeeze, transpose, unsqueeze } from './movement.js';

function softmaxLast(x: Tensor, log: boolean): Tensor {
  const cols = x.shape[x.ndim - 1] ?? 1, rows = x.numel() / Math.max(cols, 1);
  const out = wrap(x, x.backend.softmax(x.buffer, rows, cols, log), x.shape);
  return record(log ? 'logSoftmax' : 'softmax', out, [x], [out], (g, [y]) => [wrap(g, g.backend.softmaxGrad(y!.buffer, g.buffer, rows, cols, log), g.shape)]);
}

function softmaxAlong(x: Tensor, dim: number, log: boolean): Tensor {
  const op = log ? 'logSoftmax' : 'softmax';
  checkFloat(op, x);
  const d = normDim(dim, x.ndim, op);
  if (d === x.ndim - 1 || x.ndim === 0) return softmaxLast(x, log);
  return transpose(softmaxLast(transpose(x, d, -1), log), d, -1);
}

export function softmax(x: Tensor, dim = -1): Tensor {
  return softmaxAlong(x, dim, false);
}

export function logSoftmax(x: Tensor, dim = -1): Tensor {
  return softmaxAlong(x, dim, true);
}

function normRows(op: string, x: Tensor, normalizedShape: Shape, params: (Tensor | null | undefined)[]): [number, number] {
  checkFloat(op, x);
  const tail = x.shape.slice(x.ndim - normalizedShape.length);
  if (normalizedShape.length > x.ndim || tail.some((d, i) => d !== normalizedShape[i])) {
    throw new Error(`${op}: input ${fmtShape(x.shape)} does not end with normalized shape ${fmtShape(normalizedShape)}`);
  }
  for (const p of params) {
    if (p && p.numel() !== sizeOf(normalizedShape)) throw new Error(`${op}: parameter ${fmtShape(p.shape)} does not match normalized shape ${fmtShape(normalizedShape)}`);
    if (p) checkSameDevice(op, x, p);
    // The kernels read every buffer as x's dtype (a float16 weight beside float32 x would be read as garbage); torch raises too.
    if (p && p.dtype !== x.dtype) throw new Error(`${op}: parameter dtype ${p.dtype} does not match the input's ${x.dtype} (convert one with .to())`);
  }
  const cols = sizeOf(normalizedShape);
  return [x.numel() / Math.max(cols, 1), cols];
}

/** Layer normalisation over the trailing `normalizedShape` dimensions, as torch.nn.functional.layer_norm. */
export function layerNorm(x: Tensor, normalizedShape: Shape, weight?: Tensor | null, bias?: Tensor | null, eps = 1e-5): Tensor {
  const [rows, cols] = normRows('layerNorm', x, normalizedShape, [weight, bias]);
  const w = weight ?? null, b = bias ?? null;
  const r = x.backend.layerNorm(x.buffer, w && w.buffer, b && b.buffer, rows, cols, eps);
  const mean = wrap(x, r.mean, [rows]), rstd = wrap(x, r.rstd, [rows]);
  const out = wrap(x, r.y, x.shape);
  const inputs = [x, ...(w ? [w] : []), ...(b ? [b] : [])];
  return record('layerNorm', out, inputs, [x, mean, rstd, ...(w ? [w] : [])], (g, [sx, m, rs, sw]) => {
    const gr = g.backend.layerNormGrad(sx!.buffer, sw ? sw.buffer : null, m!.buffer, rs!.buffer, g.buffer, rows, cols);
    return [wrap(g, gr.dx, g.shape), ...(w ? [wrap(g, gr.dweight, w.shape)] : []), ...(b ? [wrap(g, gr.dbias, b.shape)] : [])];
  });
}

/** RMS normalisation (LLaMA, T5): x / sqrt(mean(x^2) + eps) * weight. */
export function rmsNorm(x: Tensor, normalizedShape: Shape, weight?: Tensor | null, eps = 1.1920928955078125e-7): Tensor {
  const [rows, cols] = normRows('rmsNorm', x, normalizedShape, [weight]);
  const w = weight ?? null;
  const r = x.backend.rmsNorm(x.buffer, w && w.buffer, rows, cols, eps);
  const rstd = wrap(x, r.rstd, [rows]);
  const out = wrap(x, r.y, x.shape);
  return record('rmsNorm', out, w ? [x, w] : [x], [x, rstd, ...(w ? [w] : [])], (g, [sx, rs, sw]) => {
    const gr = g.backend.rmsNormGrad(sx!.buffer, sw ? sw.buffer : null, rs!.buffer, g.buffer, rows, cols);
    return [wrap(g, gr.dx, g.shape), ...(w ? [wrap(g, gr.dweight, w.shape)] : [])];
  });
}

/**
 * Cross-entropy of each row of logits [N, C] against class indices [N]: logsumexp(row) - row[target], and 0 where
 * the target is ignoreIndex. One fused pass each way where the backend has the kernels (no log-probabilities, no
 * one-hot gradient and none of the small ops around them); composed from logSoftmax and gather otherwise.
 */
export function crossEntropyRows(logits: Tensor, target: Tensor, ignoreIndex = -100): Tensor {
  checkFloat('crossEntropy', logits);
  checkSameDevice('crossEntropy', logits, target);
  if (logits.ndim !== 2 || target.ndim !== 1 || target.shape[0] !== logits.shape[0]) {
    throw new Error(`crossEntropy: expected logits [N, C] and targets [N], got ${fmtShape(logits.shape)} and ${fmtShape(target.shape)}`);
  }
  const [rows, cols] = logits.shape as [number, number];
  const t = cast(target, 'int32');
  const b = logits.backend;
  if (!b.crossEntropy || !b.crossEntropyGrad) {
    const valid = ne(t, ignoreIndex);
    const picked = squeeze(gather(logSoftmax(logits, 1), 1, unsqueeze(where(valid, t, 0), 1)), 1);
    return where(valid, neg(picked), 0); // exactly 0 for an ignored row, whatever its logits hold
  }
  const r = b.crossEntropy(logits.buffer, t.buffer, rows, cols, ignoreIndex, 'crossEntropy');
  const loss = wrap(logits, r.loss, [rows]);
  const lse = wrap(logits, r.lse, [rows]);
  const grad = b.crossEntropyGrad.bind(b);
  return record('crossEntropy', loss, [logits], [logits, t, lse], (g, [x, tt, l]) => [
    wrap(g, grad(x!.buffer, tt!.buffer, l!.buffer, g.buffer, rows, cols, ignoreIndex), [rows, cols]),
  ]);
}
