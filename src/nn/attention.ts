// Multi-head attention (torch.nn.MultiheadAttention's parameters and masks, batch-first) and a KV cache.

import { attentionProbs } from '../autograd/ops/attention.js';
import { cast, logicalNot, logicalOr, maskedFill, where } from '../autograd/ops/elementwise.js';
import { isGradEnabled } from '../autograd/engine.js';
import { indexSelect } from '../autograd/ops/indexing.js';
import { bmm, linear } from '../autograd/ops/matmul.js';
import { cat, clone, reshape, slice, split, transpose } from '../autograd/ops/movement.js';
import { mean } from '../autograd/ops/reduce.js';
import { zeros } from '../tensor/create.js';
import { keep } from '../tensor/scope.js';
import { fmtShape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { dropout, scaledDotProductAttention } from './functional.js';
import { xavierUniform_, zeros_ } from './init.js';
import { Linear } from './linear.js';
import { Module, Parameter } from './module.js';

/**
 * Keys and values of earlier steps, [B, nh, S, hs] each, for incremental decoding. They live in buffers with room to
 * grow (the capacity doubles when full), so that a step writes only its own positions instead of copying the cache:
 * attention reads the first `length` positions in place (`append`, then `kvLength`), or takes them as tensors of their
 * own (`update`, `key`, `value`).
 */
export class KVCache {
  /** [B, nh, capacity, hs]; positions from `length` on are unused. */
  private k: Tensor | null = null;
  private v: Tensor | null = null;
  private used = 0;

  /** Number of cached positions. */
  get length(): number {
    return this.used;
  }

  /** The cached keys [B, nh, S, hs] (a copy of the used positions while the buffer has room left). */
  get key(): Tensor | null {
    return this.k && slice(this.k, 2, 0, this.used);
  }

  /** The cached values [B, nh, S, hs]. */
  get value(): Tensor | null {
    return this.v && slice(this.v, 2, 0, this.used);
  }

  /** Appends this step's keys and values (along the sequence axis) and returns all of them. */
  update(k: Tensor, v: Tensor): [Tensor, Tensor] {
    this.append(k, v);
    return [this.key!, this.value!];
  }

  /**
   * Appends this step's keys and values [B, nh, T, hs]; returns the buffers [B, nh, capacity, hs] and the number of
   * positions in use (attention's `kvLength`). Positions past it may change with the next append.
   */
  append(k: Tensor, v: Tensor): { key: Tensor; value: Tensor; length: number } {
    if (isGradEnabled() && (k.requiresGrad || v.requiresGrad)) {
      // Written in place, a buffer would cut the graph: with gradients the cache is rebuilt by cat, with no room left.
      const key = keep(this.k ? cat([this.key!, k], 2) : clone(k));
      const value = keep(this.v ? cat([this.value!, v], 2) : clone(v));
      this.dispose();
      [this.k, this.v, this.used] = [key, value, key.shape[2]!];
    } else {
      this.k = this.write(this.k, k, 'keys');
      this.v = this.write(this.v, v, 'values');
      this.used += k.shape[2]!;
    }
    return { key: this.k, value: this.v, length: this.used };
  }

  /** Writes x at positions used.. of buf (a new buffer, twice as long, when it is full); returns the buffer. */
  private write(buf: Tensor | null, x: Tensor, what: string): Tensor {
    const [B, H, T, hs] = x.shape as [number, number, number, number];
    if (x.ndim !== 4 || (buf && (buf.shape[0] !== B || buf.shape[1] !== H || buf.shape[3] !== hs || buf.dtype !== x.dtype || buf.device !== x.device))) {
      throw new Error(`KVCache: ${what} ${x.describe()} do not fit the cache's ${buf ? buf.describe() : ''} (expected [B, heads, T, head size])`);
    }
    let out = buf;
    const capacity = buf?.shape[2] ?? 0;
    if (this.used + T > capacity) {
      // The first append takes exactly its positions (a cross-attention cache is written once), later ones double.
      out = keep(zeros([B, H, Math.max(this.used + T, 2 * capacity), hs], { dtype: x.dtype, device: x.device }));
      if (buf && this.used > 0) writeAt(out, slice(buf, 2, 0, this.used), 0);
      buf?.dispose();
    }
    writeAt(out!, x, this.used);
    return out!;
  }

  /** Keeps batch rows in the given order (beam search): row i becomes old row indices[i]. */
  reorder(indices: Tensor): void {
    if (!this.k || !this.v) return;
    const key = keep(indexSelect(this.k, 0, indices));
    const value = keep(indexSelect(this.v, 0, indices));
    this.k.dispose();
    this.v.dispose();
    [this.k, this.v] = [key, value];
  }

  /** Keeps the first `length` positions (HF's DynamicCache.crop): speculative decoding drops rejected tokens. */
  crop(length: number): void {
    if (!Number.isInteger(length) || length < 0) throw new Error(`KVCache.crop: length must be a non-negative integer, got ${length}`);
    if (length === 0) return this.dispose();
    this.used = Math.min(this.used, length);
  }

  dispose(): void {
    this.k?.dispose();
    this.v?.dispose();
    this.k = this.v = null;
    this.used = 0;
  }
}

/** dst[:, :, at:at + T] = src [B, H, T, hs] in place (dst [B, H, capacity, hs], a cache buffer no one else holds). */
function writeAt(dst: Tensor, src: Tensor, at: number): void {
  const [, H, cap, hs] = dst.shape as [number, number, number, number];
  dst.backend.stridedWrite(dst.buffer, src.buffer, src.shape, [H * cap * hs, cap * hs, hs, 1], at * hs);
}

export interface MultiheadAttentionOptions {
  dropout?: number;
  bias?: boolean;
  device?: string;
}

export interface AttentionCallOptions {
  /** [B, S] bool, true marks padding keys to ignore (PyTorch's key_padding_mask). */
  keyPaddingMask?: Tensor | null;
  /** [T, S] or [B * nh, T, S]: bool with true = may NOT attend (PyTorch's attn_mask), or an additive float mask. */
  attnMask?: Tensor | null;
  isCausal?: boolean;
  /** Incremental decoding: keys and values are appended to the cache and attention runs over all of them. */
  cache?: KVCache;
  /** Return the attention weights (PyTorch's need_weights, default true); false keeps the fused kernel and returns null. */
  needWeights?: boolean;
  /** Weights averaged over the heads, [B, T, S] (default, as PyTorch), or per head, [B, nh, T, S]. */
  averageAttnWeights?: boolean;
}

/**
 * Batch-first multi-head attention: query [B, T, E], key and value [B, S, E]. Parameter names match
 * torch.nn.MultiheadAttention (in_proj_weight [3E, E], in_proj_bias, out_proj), so its state dicts load.
 */
export class MultiheadAttention extends Module {
  in_proj_weight: Parameter;
  in_proj_bias: Parameter | null;
  out_proj: Linear;
  readonly headDim: number;
  readonly dropout: number;

  constructor(readonly embedDim: number, readonly numHeads: number, opts: MultiheadAttentionOptions = {}) {
    super();
    if (embedDim % numHeads !== 0) throw new Error(`MultiheadAttention: embedDim ${embedDim} is not divisible by numHeads ${numHeads}`);
    this.headDim = embedDim / numHeads;
    this.dropout = opts.dropout ?? 0;
    const bias = opts.bias ?? true;
    this.in_proj_weight = new Parameter(xavierUniform_(zeros([3 * embedDim, embedDim], { device: opts.device })));
    this.in_proj_bias = bias ? new Parameter(zeros([3 * embedDim], { device: opts.device })) : null;
    this.out_proj = new Linear(embedDim, embedDim, { bias, device: opts.device });
    if (this.out_proj.bias) zeros_(this.out_proj.bias); // as PyTorch initialises it
  }

  /** Rows [i*E, (i+1)*E) of the packed projection: 0 = query, 1 = key, 2 = value. */
  private project(x: Tensor, which: number, count = 1): Tensor {
    const E = this.embedDim;
    const w = count === 3 ? this.in_proj_weight : slice(this.in_proj_weight, 0, which * E, (which + count) * E);
    const b = this.in_proj_bias && (count === 3 ? this.in_proj_bias : slice(this.in_proj_bias, 0, which * E, (which + count) * E));
    return linear(x, w, b);
  }

  /** [B, L, E] -> [B, nh, L, hs] */
  private heads(x: Tensor): Tensor {
    const [B, L] = x.shape as [number, number];
    return transpose(reshape(x, [B, L, this.numHeads, this.headDim]), 1, 2);
  }

  /**
   * Returns [output [B, T, E], weights]: the softmax probabilities (after dropout, as PyTorch returns them),
   * [B, T, S] averaged over heads or [B, nh, T, S], or null when needWeights is false. Fully masked rows give 0.
   */
  forward(query: Tensor, key: Tensor, value: Tensor, opts: AttentionCallOptions = {}): [Tensor, Tensor | null] {
    const E = this.embedDim;
    if (query.ndim !== 3 || query.shape[2] !== E || key.ndim !== 3 || key.shape[2] !== E || value.ndim !== 3 || value.shape[2] !== E || key.shape[1] !== value.shape[1]) {
      throw new Error(`MultiheadAttention: expected query [B, T, ${E}] and key, value [B, S, ${E}], got ${fmtShape(query.shape)}, ${fmtShape(key.shape)}, ${fmtShape(value.shape)}`);
    }
    const [B, T] = query.shape as [number, number];
    let q: Tensor, k: Tensor, v: Tensor;
    if (query === key && key === value) {
      [q, k, v] = split(this.project(query, 0, 3), E, -1) as [Tensor, Tensor, Tensor]; // one [B, T, 3E] product
    } else {
      q = this.project(query, 0);
      k = this.project(key, 1);
      v = this.project(value, 2);
    }
    q = this.heads(q);
    k = this.heads(k);
    v = this.heads(v);
    if (opts.cache) [k, v] = opts.cache.update(k, v);
    const S = k.shape[2]!;

    // Combine the masks into one: bool "may attend" [B, 1|nh, T, S], or an additive float mask.
    let mask: Tensor | null = null;
    if (opts.keyPaddingMask) {
      const kpm = opts.keyPaddingMask;
      if (kpm.ndim !== 2 || kpm.shape[0] !== B || kpm.shape[1] !== S) throw new Error(`MultiheadAttention: keyPaddingMask must be [${B}, ${S}], got ${fmtShape(kpm.shape)}`);
      mask = reshape(cast(kpm, 'bool'), [B, 1, 1, S]); // true = blocked
    }
    let additive: Tensor | null = null;
    if (opts.attnMask) {
      const am = opts.attnMask;
      const ok = am.ndim === 2 ? am.shape[0] === T && am.shape[1] === S : am.ndim === 3 && am.shape[0] === B * this.numHeads && am.shape[1] === T && am.shape[2] === S;
      if (!ok) throw new Error(`MultiheadAttention: attnMask must be [${T}, ${S}] or [${B * this.numHeads}, ${T}, ${S}] (batch * heads), got ${fmtShape(am.shape)}`);
      const shaped = am.ndim === 3 ? reshape(am, [B, this.numHeads, T, S]) : am;
      if (am.dtype === 'bool') mask = mask ? logicalOr(mask, shaped) : shaped;
      else additive = shaped;
    }
    let attnMask: Tensor | null = mask ? logicalNot(mask) : null;
    if (additive) attnMask = attnMask ? maskedFill(additive, logicalNot(attnMask), -Infinity) : additive;
    const dropoutP = this.training ? this.dropout : 0;
    let y: Tensor, weights: Tensor | null = null;
    if (opts.needWeights ?? true) {
      // The probabilities are needed, so compose the attention instead of the fused kernel.
      // In q's dtype, so that a float16 model's probabilities (and output) stay float16.
      const bias = attnMask && cast(attnMask.dtype === 'bool' ? where(attnMask, 0, -Infinity) : attnMask, q.dtype);
      const nh = this.numHeads, hs = this.headDim;
      const p = dropout(attentionProbs(q, k, { bias, causal: opts.isCausal ?? false }), dropoutP, this.training);
      y = reshape(bmm(reshape(p, [B * nh, T, S]), reshape(v, [B * nh, S, hs])), [B, nh, T, hs]);
      weights = (opts.averageAttnWeights ?? true) ? mean(p, 1) : p;
    } else {
      y = scaledDotProductAttention(q, k, v, { attnMask, isCausal: opts.isCausal ?? false, dropoutP });
    }
    // [B, nh, T, hs] -> [B, T, E]
    return [this.out_proj.forward(reshape(transpose(y, 1, 2), [B, T, E])), weights];
  }
}
