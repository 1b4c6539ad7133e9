// Matrix products with their gradients: bmm (the primitive, with transposed operands), matmul, linear.

import { broadcastShapes, fmtShape, shapeEq, sizeOf } from '../../tensor/shape.js';
import type { Tensor } from '../../tensor/tensor.js';
import { record } from '../engine.js';
import { checkSameDevice, wrap } from './base.js';
import { add } from './elementwise.js';
import { expand, reshape, squeeze } from './movement.js';
import { sum } from './reduce.js';

/**
 * Batched product of 3-d tensors: out[i] = op(a[i]) @ op(b[i]) with op = transpose where asked.
 * A batch of 1 on either side is reused for every batch entry of the other (no copy). A bias [n] is added to
 * every row inside the product (no separate pass over the output; its gradient sums the output gradient's rows).
 */
export function bmm(a: Tensor, b: Tensor, transA = false, transB = false, bias: Tensor | null = null): Tensor {
  return product('bmm', a, b, transA, transB, bias);
}

/** bmm, with errors that name the op the user called (`op`). Integer products wrap like int32, as in PyTorch. */
function product(op: string, a: Tensor, b: Tensor, transA: boolean, transB: boolean, bias: Tensor | null): Tensor {
  checkSameDevice(op, a, b, ...(bias ? [bias] : []));
  if (a.ndim !== 3 || b.ndim !== 3) throw new Error(`${op}: expected 3-d tensors, got ${fmtShape(a.shape)} and ${fmtShape(b.shape)}`);
  if (a.dtype !== b.dtype || a.dtype === 'bool') {
    throw new Error(`${op}: expected two floating point or two integer tensors of one dtype, got ${a.dtype} and ${b.dtype}`);
  }
  const [ba, a1, a2] = a.shape as [number, number, number];
  const [bb, b1, b2] = b.shape as [number, number, number];
  const m = transA ? a2 : a1, k = transA ? a1 : a2;
  const kb = transB ? b2 : b1, n = transB ? b1 : b2;
  // Built only for an error message (formatting shapes on every call shows up in profiles).
  const desc = () => `${fmtShape(a.shape)}${transA ? 'ᵀ' : ''} @ ${fmtShape(b.shape)}${transB ? 'ᵀ' : ''}`;
  if (k !== kb) throw new Error(`${op}: shapes do not match: ${desc()} (inner sizes ${k} and ${kb})`);
  if (ba !== bb && ba !== 1 && bb !== 1) throw new Error(`${op}: batch sizes do not match: ${desc()}`);
  if (bias && (bias.ndim !== 1 || bias.shape[0] !== n || bias.dtype !== a.dtype)) {
    throw new Error(`${op}: bias must be [${n}] ${a.dtype}, got ${fmtShape(bias.shape)} ${bias.dtype}`);
  }
  const batch = Math.max(ba, bb);
  const buf = a.backend.matmul(a.buffer, b.buffer, {
    batch, m, n, k, transA, transB, strideA: ba === 1 ? 0 : m * k, strideB: bb === 1 ? 0 : k * n,
  }, bias ? bias.buffer : null);
  const out = wrap(a, buf, [batch, m, n]);
  return record('matmul', out, bias ? [a, b, bias] : [a, b], [a, b], (g, [sa, sb], needs) => {
    const reduceBatch = (t: Tensor, size: number) => (size === 1 && batch > 1 ? sum(t, 0, true) : t);
    const ga = needs[0] ? reduceBatch(transA ? bmm(sb!, g, transB, true) : bmm(g, sb!, false, !transB), ba) : null;
    const be = g.backend;
    if (bias && needs[1] && needs[2] && !transB && batch === 1 && be.matmulColSums) {
      // x^T g and the bias gradient (the column sums of g) from one pass over g.
      const r = be.matmulColSums(sa!.buffer, g.buffer, { batch: 1, m: k, n, k: m, transA: !transA, transB: false, strideA: 0, strideB: 0 });
      return [ga, wrap(g, r.out, [1, k, n]), wrap(g, r.sums, [n])];
    }
    const gb = needs[1] ? reduceBatch(transB ? bmm(g, sa!, true, transA) : bmm(sa!, g, !transA, false), bb) : null;
    // The bias gradient: the rows of every batch entry summed, one reduction.
    const gc = bias && needs[2] ? wrap(g, be.reduce('sum', g.buffer, 1, batch * m, n), [n]) : null;
    return [ga, gb, gc];
  });
}

/** Matrix product with PyTorch's rules: 1-d operands are promoted, batch dimensions broadcast. */
export function matmul(a: Tensor, b: Tensor): Tensor {
  if (a.ndim === 0 || b.ndim === 0) throw new Error(`matmul: both operands need at least 1 dimension, got ${fmtShape(a.shape)} and ${fmtShape(b.shape)}`);
  const a2 = a.ndim === 1 ? reshape(a, [1, a.shape[0]!]) : a;
  const b2 = b.ndim === 1 ? reshape(b, [b.shape[0]!, 1]) : b;
  const m = a2.shape[a2.ndim - 2]!, k = a2.shape[a2.ndim - 1]!, n = b2.shape[b2.ndim - 1]!;
  const kb = b2.shape[b2.ndim - 2]!;
  if (k !== kb) throw new Error(`matmul: shapes ${fmtShape(a.shape)} and ${fmtShape(b.shape)} do not match (inner sizes ${k} and ${kb})`);
  const batchA = a2.shape.slice(0, -2), batchB = b2.shape.slice(0, -2);
  const batch = broadcastShapes(batchA, batchB, 'matmul');
  let out: Tensor;
  if (batchB.length === 0) {
    // [..., m, k] @ [k, n]: fold the batch into the rows, one large product.
    out = reshape(product('matmul', reshape(a2, [1, sizeOf(batch) * m, k]), reshape(b2, [1, k, n]), false, false, null), [...batch, m, n]);
  } else {
    const fit = (t: Tensor, own: readonly number[], r: number, c: number) =>
      sizeOf(own) === 1 ? reshape(t, [1, r, c]) : reshape(shapeEq(own, batch) ? t : expand(t, [...batch, r, c]), [sizeOf(batch), r, c]);
    out = reshape(product('matmul', fit(a2, batchA, m, k), fit(b2, batchB, k, n), false, false, null), [...batch, m, n]);
  }
  if (a.ndim === 1) out = squeeze(out, -2);
  if (b.ndim === 1) out = squeeze(out, -1);
  return out;
}

/** Whether a bias can ride inside the product: [n], the product's dtype and device. */
function fusableBias(bias: Tensor | null | undefined, x: Tensor, n: number): bias is Tensor {
  return !!bias && bias.ndim === 1 && bias.shape[0] === n && bias.dtype === x.dtype && bias.device === x.device;
}

/** y = x @ weight^T + bias, with weight [out, in] as in torch.nn.Linear (no transpose is copied). */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  const inF = weight.shape[1]!, outF = weight.shape[0]!;
  if (weight.ndim !== 2 || x.shape[x.ndim - 1] !== inF) {
    throw new Error(`linear: input ${fmtShape(x.shape)} does not fit weight ${fmtShape(weight.shape)} (expected last dimension ${inF})`);
  }
  const rows = sizeOf(x.shape.slice(0, -1)); // not numel / inF: in_features may be 0
  const fused = fusableBias(bias, x, outF);
  const y = reshape(product('linear', reshape(x, [1, rows, inF]), reshape(weight, [1, outF, inF]), false, true, fused ? bias : null), [...x.shape.slice(0, -1), outF]);
  return bias && !fused ? add(y, bias) : y;
}

/** y = x @ weight + bias with weight [in, out] (GPT-2's Conv1D), the bias added inside the product where it can be. */
export function matmulAdd(x: Tensor, weight: Tensor, bias: Tensor): Tensor {
  const inF = weight.shape[0]!, outF = weight.shape[1]!;
  if (weight.ndim !== 2 || x.ndim < 1 || x.shape[x.ndim - 1] !== inF || !fusableBias(bias, x, outF)) return add(matmul(x, weight), bias);
  const rows = sizeOf(x.shape.slice(0, -1));
  return reshape(product('matmul', reshape(x, [1, rows, inF]), reshape(weight, [1, inF, outF]), false, false, bias), [...x.shape.slice(0, -1), outF]);
}
