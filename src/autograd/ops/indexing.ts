// Indexing with gradients: indexSelect, gather, scatterAdd, embedding lookup, tril/triu masks.

import { arange, zeros } from '../../tensor/create.js';
import { isFloat } from '../../tensor/dtype.js';
import { fmtShape, splitAt } from '../../tensor/shape.js';
import type { Tensor } from '../../tensor/tensor.js';
import { record } from '../engine.js';
import { checkSameDevice, normDim, wrap } from './base.js';
import { add, cast, le, mul, ne, sub, where } from './elementwise.js';
import { pad, reshape, slice, unsqueeze } from './movement.js';

/** Index tensors are int32 on the kernel side; other integer types convert, floats are an error. */
function asIndex(index: Tensor, op: string): Tensor {
  if (isFloat(index.dtype)) throw new Error(`${op}: index must be an integer tensor, got ${index.dtype}`);
  return cast(index, 'int32');
}

/** Picks whole slices along dim: out has index.numel() entries there. `op` names the op in errors (ops built on it pass theirs). */
export function indexSelect(x: Tensor, dim: number, index: Tensor, op = 'indexSelect'): Tensor {
  checkSameDevice(op, x, index);
  const d = normDim(dim, x.ndim, op);
  if (index.ndim > 1) throw new Error(`${op}: index must be 0-d or 1-d, got ${fmtShape(index.shape)}`);
  const idx = asIndex(index, op);
  const [outer, size, inner] = splitAt(x.shape, d);
  const shape = x.shape.map((v, i) => (i === d ? idx.numel() : v));
  const out = wrap(x, x.backend.indexSelect(x.buffer, idx.buffer, outer, size, inner, op), shape);
  return record('indexSelect', out, [x], [idx], (g, [i]) => [wrap(g, g.backend.indexAdd(g.buffer, i!.buffer, outer, size, inner, op), [...x.shape])]);
}

/** PyTorch's rule: index has x's rank and is no larger than x in every dimension but d. */
function checkGatherShapes(op: string, x: Tensor, d: number, index: Tensor): void {
  if (index.ndim !== x.ndim || index.shape.some((v, i) => i !== d && v > x.shape[i]!)) {
    throw new Error(`${op}: index ${fmtShape(index.shape)} must have the rank of input ${fmtShape(x.shape)} and be no larger in every dimension but ${d}`);
  }
}

/** x cut down to `shape` (its leading part) in every dimension but `skip` (-1: none), with the gradient. */
function leading(x: Tensor, shape: readonly number[], skip: number): Tensor {
  let out = x;
  shape.forEach((v, i) => {
    if (i !== skip && v !== out.shape[i]) out = slice(out, i, 0, v);
  });
  return out;
}

/** out[..., j, ...] = x[..., index[..., j, ...], ...] along dim (index has x's shape except at dim). */
export function gather(x: Tensor, dim: number, index: Tensor): Tensor {
  checkSameDevice('gather', x, index);
  const d = normDim(dim, x.ndim, 'gather');
  checkGatherShapes('gather', x, d, index);
  const idx = asIndex(index, 'gather');
  x = leading(x, idx.shape, d);
  const [outer, size, inner] = splitAt(x.shape, d);
  const m = idx.shape[d] ?? 1;
  const out = wrap(x, x.backend.gather(x.buffer, idx.buffer, outer, size, inner, m, 'gather'), idx.shape);
  const from = x.shape;
  return record('gather', out, [x], [idx], (g, [i]) => [wrap(g, g.backend.scatterAdd(g.buffer, i!.buffer, outer, size, inner, m, 'gather'), from)]);
}

/** x plus src added at the positions index names along dim (torch.Tensor.scatter_add). */
export function scatterAdd(x: Tensor, dim: number, index: Tensor, src: Tensor): Tensor {
  checkSameDevice('scatterAdd', x, index, src);
  const d = normDim(dim, x.ndim, 'scatterAdd');
  checkGatherShapes('scatterAdd', x, d, index);
  if (index.ndim !== src.ndim || index.shape.some((v, i) => v > src.shape[i]!)) {
    throw new Error(`scatterAdd: index ${fmtShape(index.shape)} must have the rank of src ${fmtShape(src.shape)} and be no larger in any dimension`);
  }
  if (src.dtype !== x.dtype) throw new Error(`scatterAdd: src must have the dtype of the input (${x.dtype}), got ${src.dtype}`);
  const idx = asIndex(index, 'scatterAdd');
  // Only src's leading part of index's shape is read (PyTorch's rule). Bools add as logical or (PyTorch keeps
  // bool): count in int32, then read the counts as bool.
  const part = leading(src, idx.shape, -1);
  const s = part.dtype === 'bool' ? cast(part, 'int32') : part;
  // Scatter into x's shape cut to index's in every dimension but d, then pad with zeros up to x's shape.
  const target = idx.shape.map((v, i) => (i === d ? x.shape[d]! : v));
  const [outer, size, inner] = splitAt(target, d);
  const m = idx.shape[d] ?? 1;
  const scattered = wrap(s, s.backend.scatterAdd(s.buffer, idx.buffer, outer, size, inner, m, 'scatterAdd'), target);
  let added = record('scatterAdd', scattered, [s], [idx], (g, [i]) => [wrap(g, g.backend.gather(g.buffer, i!.buffer, outer, size, inner, m, 'scatterAdd'), idx.shape)]);
  if (target.some((v, i) => v !== x.shape[i])) added = pad(added, [...target.keys()].reverse().flatMap((i) => [0, x.shape[i]! - target[i]!]));
  return add(x, x.dtype === 'bool' ? cast(added, 'bool') : added);
}

/**
 * Rows of `weight` [num, dim] for each id: out is [...ids.shape, dim]. Rows at paddingIdx get no
 * gradient, as in torch.nn.Embedding.
 */
export function embedding(ids: Tensor, weight: Tensor, paddingIdx?: number): Tensor {
  checkSameDevice('embedding', ids, weight);
  if (weight.ndim !== 2) throw new Error(`embedding: weight must be 2-d [num_embeddings, embedding_dim], got ${fmtShape(weight.shape)}`);
  const idx = reshape(asIndex(ids, 'embedding'), [ids.numel()]);
  const [num, dim] = weight.shape as [number, number];
  const out = wrap(weight, weight.backend.indexSelect(weight.buffer, idx.buffer, 1, num, dim, 'embedding'), [...ids.shape, dim]);
  return record('embedding', out, [weight], [idx], (g, [i]) => {
    let g2 = reshape(g, [i!.numel(), dim]);
    if (paddingIdx !== undefined) g2 = mul(g2, unsqueeze(cast(ne(i!, paddingIdx), g.dtype), 1));
    return [wrap(g, g.backend.indexAdd(g2.buffer, i!.buffer, 1, num, dim, 'embedding'), [num, dim])];
  });
}

/** Keeps elements with col - row <= diagonal (lower triangle) of the last two dimensions. */
export function tril(x: Tensor, diagonal = 0): Tensor {
  return where(triMask(x, 'tril', diagonal), x, zeroOf(x));
}

/** A 0-d zero of x's dtype: tril/triu keep the dtype (a bool mask stays bool). */
function zeroOf(x: Tensor): Tensor {
  return zeros([], { dtype: x.dtype, device: x.device });
}

/** Keeps elements with col - row >= diagonal (upper triangle) of the last two dimensions. */
export function triu(x: Tensor, diagonal = 0): Tensor {
  return where(triMask(x, 'triu', diagonal - 1), zeroOf(x), x);
}

function triMask(x: Tensor, op: string, diagonal: number): Tensor {
  if (x.ndim < 2) throw new Error(`${op}: expected at least 2 dimensions, got ${fmtShape(x.shape)}`);
  const rows = x.shape[x.ndim - 2]!, cols = x.shape[x.ndim - 1]!;
  const r = reshape(arange(rows, undefined, 1, { device: x.device }), [rows, 1]);
  const c = arange(cols, undefined, 1, { device: x.device });
  return le(sub(c, r), diagonal);
}
