// Attention softmax(q k^T * scale + bias) v: a fused primitive with its own backward where the backend has the
// kernel, composed from bmm and softmax otherwise. Queries are the last T of S positions when causal.

import type { AttentionLayout, AttentionParams } from '../../tensor/backend.js';
import { arange } from '../../tensor/create.js';
import { broadcastShapes, broadcastStrides, fmtShape } from '../../tensor/shape.js';
import type { Tensor } from '../../tensor/tensor.js';
import { isGradEnabled, record } from '../engine.js';
import { checkFloat, checkSameDevice, wrap } from './base.js';
import { add, cast, eq, gt, mul, where } from './elementwise.js';
import { bmm } from './matmul.js';
import { clone, detach, narrow, reshape, split, transpose } from './movement.js';
import { softmax } from './nn.js';
import { max } from './reduce.js';

export interface AttentionOpOptions {
  /** Additive float bias broadcastable to [B, H, T, S] (-Infinity masks a key). */
  bias?: Tensor | null;
  causal?: boolean;
  scale?: number;
  /**
   * Only the first kvLength positions of k and v take part (S = kvLength for the mask and the causal limit): a KV
   * cache with room to grow (KVCache.append), read in place.
   */
  kvLength?: number;
}

function dims(q: Tensor, k: Tensor, v: Tensor): [number, number, number, number, number, number] {
  if (q.ndim !== 4 || k.ndim !== 4 || v.ndim !== 4) throw new Error(`attention: expected q, k, v as [B, H, T, hs], got ${fmtShape(q.shape)}, ${fmtShape(k.shape)}, ${fmtShape(v.shape)}`);
  const [B, H, T, hs] = q.shape as [number, number, number, number];
  const S = k.shape[2]!, hv = v.shape[3]!;
  if (k.shape[0] !== B || k.shape[1] !== H || k.shape[3] !== hs || v.shape[0] !== B || v.shape[1] !== H || v.shape[2] !== S) {
    throw new Error(`attention: shapes do not fit: q ${fmtShape(q.shape)}, k ${fmtShape(k.shape)}, v ${fmtShape(v.shape)}`);
  }
  return [B, H, T, S, hs, hv];
}

/**
 * The attention probabilities [B, H, T, S], composed from primitives. A row with no key left to
 * attend is all zeros (PyTorch's safe softmax), not NaN.
 */
export function attentionProbs(q: Tensor, k: Tensor, opts: AttentionOpOptions = {}): Tensor {
  const [B, H, T, hs] = q.shape as [number, number, number, number];
  const S = k.shape[2]!;
  // [B*H, T, hs] @ [B*H, S, hs]^T -> [B, H, T, S]
  let scores = reshape(mul(bmm(reshape(q, [B * H, T, hs]), reshape(k, [B * H, S, hs]), false, true), opts.scale ?? 1 / Math.sqrt(hs)), [B, H, T, S]);
  if (opts.bias) scores = add(scores, opts.bias);
  if (opts.causal) {
    const row = reshape(arange(T, undefined, 1, { device: q.device }), [T, 1]);
    const col = arange(S, undefined, 1, { device: q.device });
    scores = where(gt(col, add(row, S - T)), -Infinity, scores);
  }
  if (!opts.bias && !(opts.causal && T > S)) return softmax(scores, -1);
  // Rows with every key masked: softmax them over zeros (finite gradients), then zero them.
  const empty = eq(max(detach(scores), -1, true), -Infinity); // [B, H, T, 1]
  return where(empty, 0, softmax(where(empty, 0, scores), -1));
}

export function attention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOpOptions = {}): Tensor {
  const [B, H, T, rows, hs, hv] = dims(q, k, v);
  checkSameDevice('attention', q, k, v);
  checkFloat('attention', q);
  const backend = q.backend;
  const bias = opts.bias ? cast(opts.bias, q.dtype) : null;
  const S = opts.kvLength ?? rows;
  if (!Number.isInteger(S) || S < 0 || S > rows) throw new Error(`attention: kvLength must be an integer from 0 to ${rows} (the keys' length), got ${opts.kvLength}`);
  if (!backend.attention || !backend.attentionGrad || bias?.requiresGrad || k.dtype !== q.dtype || v.dtype !== q.dtype) {
    const [k1, v1] = S < rows ? [narrow(k, 2, 0, S), narrow(v, 2, 0, S)] : [k, v];
    // [B*H, T, S] @ [B*H, S, hv] -> [B, H, T, hv]
    const p = attentionProbs(q, k1, opts);
    return reshape(bmm(reshape(p, [B * H, T, S]), reshape(v1, [B * H, S, hv])), [B, H, T, hv]);
  }
  if (bias) broadcastShapes(bias.shape, [B, H, T, S], 'attention bias');
  // One tensor as q, k and v (self-attention on x): the kernel's gradients come back one buffer per distinct input
  // buffer for disjoint regions, so overlapping operands each get their own copy (the copy's gradient flows back).
  if (k.buffer === q.buffer) k = clone(k);
  if (v.buffer === q.buffer || v.buffer === k.buffer) v = clone(v);
  const p: AttentionParams = {
    batch: B, heads: H, t: T, s: S, hs, hv, scale: opts.scale ?? 1 / Math.sqrt(hs), causal: opts.causal ?? false,
    biasStrides: bias ? (broadcastStrides(bias.shape, [B, H, T, S]) as [number, number, number, number]) : null,
    // Keys past kvLength: the kernel reads (and the backward writes) the first S rows of each (batch, head) in place.
    ...(S < rows ? { layout: { q: rowsOf(H, T, hs), k: rowsOf(H, rows, hs), v: rowsOf(H, rows, hv), out: rowsOf(H, T, hv) } } : {}),
    saveProbs: willBackward(q, k, v),
  };
  const r = backend.attention(q.buffer, k.buffer, v.buffer, bias && bias.buffer, p);
  const out = wrap(q, r.out, [B, H, T, hv]);
  const lse = wrap(q, r.lse, [B, H, T]);
  const probs = r.probs ? wrap(q, r.probs, [r.probs.size]) : null;
  const attentionGrad = backend.attentionGrad.bind(backend);
  return record('attention', out, [q, k, v], [q, k, v, out, lse, ...(probs ? [probs] : []), ...(bias ? [bias] : [])], (g, saved) => {
    const [sq, sk, sv, so, sl] = saved as [Tensor, Tensor, Tensor, Tensor, Tensor];
    const sp = probs ? saved[5]! : null, sb = bias ? saved[probs ? 6 : 5]! : null;
    const gr = attentionGrad(sq.buffer, sk.buffer, sv.buffer, sb ? sb.buffer : null, so.buffer, sl.buffer, g.buffer, p, sp ? sp.buffer : null);
    return [wrap(g, gr.dq, sq.shape), wrap(g, gr.dk, sk.shape), wrap(g, gr.dv, sv.shape)];
  });
}

/** Contiguous [B, H, n, w] rows as an attention layout (n: the rows each (batch, head) holds). */
export function rowsOf(H: number, n: number, w: number): AttentionLayout {
  return { offset: 0, batch: H * n * w, head: n * w, row: w };
}

/** Whether the op's result will be recorded for a backward (then the forward may keep what it needs). */
function willBackward(...inputs: Tensor[]): boolean {
  return isGradEnabled() && inputs.some((t) => t.requiresGrad);
}

/**
 * Self-attention straight from a packed projection: qkv [B, T, 3 * C] holds the queries, then the keys, then the
 * values of each position, heads side by side in each (GPT-2's c_attn output); returns [B, T, C], heads side by
 * side again (what the output projection takes). The same as splitting qkv, moving the heads forward, attention,
 * and moving them back, but where the backend has the fused kernel it reads and writes those layouts in place:
 * no split, transpose or merge copies forward, and one gradient buffer for qkv backward.
 */
export function attentionPacked(qkv: Tensor, heads: number, opts: AttentionOpOptions = {}): Tensor {
  checkFloat('attentionPacked', qkv);
  const C3 = qkv.shape[2] ?? 0;
  if (qkv.ndim !== 3 || !Number.isInteger(heads) || heads <= 0 || C3 % (3 * heads) !== 0) {
    throw new Error(`attentionPacked: expected qkv [B, T, 3 * heads * headSize] with ${heads} heads, got ${fmtShape(qkv.shape)}`);
  }
  const [B, T] = qkv.shape as [number, number];
  const C = C3 / 3, hs = C / heads;
  const backend = qkv.backend;
  const bias = opts.bias ? cast(opts.bias, qkv.dtype) : null;
  if (!backend.attention || !backend.attentionGrad || bias?.requiresGrad) {
    const [q, k, v] = split(qkv, C, 2).map((t) => transpose(reshape(t, [B, T, heads, hs]), 1, 2)) as [Tensor, Tensor, Tensor];
    return reshape(transpose(attention(q, k, v, opts), 1, 2), [B, T, C]);
  }
  if (bias) checkSameDevice('attentionPacked', qkv, bias);
  if (bias) broadcastShapes(bias.shape, [B, heads, T, T], 'attention bias');
  const operand = (offset: number) => ({ offset, batch: T * C3, head: hs, row: C3 });
  const p: AttentionParams = {
    batch: B, heads, t: T, s: T, hs, hv: hs, scale: opts.scale ?? 1 / Math.sqrt(hs), causal: opts.causal ?? false,
    biasStrides: bias ? (broadcastStrides(bias.shape, [B, heads, T, T]) as [number, number, number, number]) : null,
    layout: { q: operand(0), k: operand(C), v: operand(2 * C), out: { offset: 0, batch: T * C, head: hs, row: C } },
    saveProbs: willBackward(qkv),
  };
  const r = backend.attention(qkv.buffer, qkv.buffer, qkv.buffer, bias && bias.buffer, p);
  const out = wrap(qkv, r.out, [B, T, C]);
  const lse = wrap(qkv, r.lse, [B, heads, T]);
  const probs = r.probs ? wrap(qkv, r.probs, [r.probs.size]) : null;
  const attentionGrad = backend.attentionGrad.bind(backend);
  return record('attention', out, [qkv], [qkv, out, lse, ...(probs ? [probs] : []), ...(bias ? [bias] : [])], (g, saved) => {
    const [sx, so, sl] = saved as [Tensor, Tensor, Tensor];
    const sp = probs ? saved[3]! : null, sb = bias ? saved[probs ? 4 : 3]! : null;
    // q, k and v are one buffer, so their gradients come back as one buffer shaped like qkv.
    const gr = attentionGrad(sx.buffer, sx.buffer, sx.buffer, sb ? sb.buffer : null, so.buffer, sl.buffer, g.buffer, p, sp ? sp.buffer : null);
    return [wrap(g, gr.dq, sx.shape)];
  });
}
