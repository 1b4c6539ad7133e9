// Transformer encoder and decoder layers and stacks (post- or pre-norm), named as torch.nn.Transformer*Layer.

import { add } from '../autograd/ops/elementwise.js';
import type { Tensor } from '../tensor/tensor.js';
import { activationFn, Dropout, type ActivationName } from './activation.js';
import { KVCache, MultiheadAttention } from './attention.js';
import { Linear } from './linear.js';
import { Module } from './module.js';
import { LayerNorm } from './normalization.js';

export interface TransformerLayerOptions {
  /** Hidden size of the feed-forward block (PyTorch's default 2048). */
  dimFeedforward?: number;
  dropout?: number;
  activation?: ActivationName;
  layerNormEps?: number;
  /** Pre-norm (x + f(norm(x))) instead of post-norm (norm(x + f(x))). */
  normFirst?: boolean;
  bias?: boolean;
  device?: string;
}

function defaults(o: TransformerLayerOptions) {
  return {
    dimFeedforward: o.dimFeedforward ?? 2048, dropout: o.dropout ?? 0.1, activation: o.activation ?? 'relu',
    eps: o.layerNormEps ?? 1e-5, normFirst: o.normFirst ?? false, bias: o.bias ?? true, device: o.device,
  };
}

/** Linear -> activation -> dropout -> Linear, the position-wise feed-forward block. */
export class FeedForward extends Module {
  linear1: Linear;
  dropout: Dropout;
  linear2: Linear;
  private readonly act: (x: Tensor) => Tensor;

  constructor(dModel: number, dimFeedforward: number, opts: { dropout?: number; activation?: ActivationName; bias?: boolean; device?: string } = {}) {
    super();
    this.linear1 = new Linear(dModel, dimFeedforward, { bias: opts.bias, device: opts.device });
    this.dropout = new Dropout(opts.dropout ?? 0);
    this.linear2 = new Linear(dimFeedforward, dModel, { bias: opts.bias, device: opts.device });
    this.act = activationFn(opts.activation ?? 'relu');
  }

  forward(x: Tensor): Tensor {
    return this.linear2.forward(this.dropout.forward(this.act(this.linear1.forward(x))));
  }
}

export interface EncoderLayerCall {
  /** Bool [T, T] with true = may not attend, or additive float (PyTorch's src_mask). */
  srcMask?: Tensor | null;
  /** [B, T] bool, true = padding. */
  srcKeyPaddingMask?: Tensor | null;
  isCausal?: boolean;
}

export class TransformerEncoderLayer extends Module {
  self_attn: MultiheadAttention;
  linear1: Linear;
  dropout: Dropout;
  linear2: Linear;
  norm1: LayerNorm;
  norm2: LayerNorm;
  dropout1: Dropout;
  dropout2: Dropout;
  readonly normFirst: boolean;
  private readonly act: (x: Tensor) => Tensor;

  constructor(dModel: number, nhead: number, opts: TransformerLayerOptions = {}) {
    super();
    const o = defaults(opts);
    this.self_attn = new MultiheadAttention(dModel, nhead, { dropout: o.dropout, bias: o.bias, device: o.device });
    this.linear1 = new Linear(dModel, o.dimFeedforward, { bias: o.bias, device: o.device });
    this.dropout = new Dropout(o.dropout);
    this.linear2 = new Linear(o.dimFeedforward, dModel, { bias: o.bias, device: o.device });
    this.norm1 = new LayerNorm(dModel, { eps: o.eps, bias: o.bias, device: o.device });
    this.norm2 = new LayerNorm(dModel, { eps: o.eps, bias: o.bias, device: o.device });
    this.dropout1 = new Dropout(o.dropout);
    this.dropout2 = new Dropout(o.dropout);
    this.normFirst = o.normFirst;
    this.act = activationFn(o.activation);
  }

  private sa(x: Tensor, c: EncoderLayerCall): Tensor {
    return this.dropout1.forward(this.self_attn.forward(x, x, x, { attnMask: c.srcMask, keyPaddingMask: c.srcKeyPaddingMask, isCausal: c.isCausal, needWeights: false })[0]);
  }
  private ff(x: Tensor): Tensor {
    return this.dropout2.forward(this.linear2.forward(this.dropout.forward(this.act(this.linear1.forward(x)))));
  }

  /** src [B, T, dModel] -> [B, T, dModel] */
  forward(src: Tensor, c: EncoderLayerCall = {}): Tensor {
    if (this.normFirst) {
      const h = add(src, this.sa(this.norm1.forward(src), c));
      return add(h, this.ff(this.norm2.forward(h)));
    }
    const h = this.norm1.forward(add(src, this.sa(src, c)));
    return this.norm2.forward(add(h, this.ff(h)));
  }
}

export interface DecoderLayerCall {
  tgtMask?: Tensor | null;
  memoryMask?: Tensor | null;
  tgtKeyPaddingMask?: Tensor | null;
  memoryKeyPaddingMask?: Tensor | null;
  tgtIsCausal?: boolean;
  /** Self-attention cache for incremental decoding (tgt is then only the new positions). */
  cache?: KVCache;
}

export class TransformerDecoderLayer extends Module {
  self_attn: MultiheadAttention;
  multihead_attn: MultiheadAttention;
  linear1: Linear;
  dropout: Dropout;
  linear2: Linear;
  norm1: LayerNorm;
  norm2: LayerNorm;
  norm3: LayerNorm;
  dropout1: Dropout;
  dropout2: Dropout;
  dropout3: Dropout;
  readonly normFirst: boolean;
  private readonly act: (x: Tensor) => Tensor;

  constructor(dModel: number, nhead: number, opts: TransformerLayerOptions = {}) {
    super();
    const o = defaults(opts);
    this.self_attn = new MultiheadAttention(dModel, nhead, { dropout: o.dropout, bias: o.bias, device: o.device });
    this.multihead_attn = new MultiheadAttention(dModel, nhead, { dropout: o.dropout, bias: o.bias, device: o.device });
    this.linear1 = new Linear(dModel, o.dimFeedforward, { bias: o.bias, device: o.device });
    this.dropout = new Dropout(o.dropout);
    this.linear2 = new Linear(o.dimFeedforward, dModel, { bias: o.bias, device: o.device });
    this.norm1 = new LayerNorm(dModel, { eps: o.eps, bias: o.bias, device: o.device });
    this.norm2 = new LayerNorm(dModel, { eps: o.eps, bias: o.bias, device: o.device });
    this.norm3 = new LayerNorm(dModel, { eps: o.eps, bias: o.bias, device: o.device });
    this.dropout1 = new Dropout(o.dropout);
    this.dropout2 = new Dropout(o.dropout);
    this.dropout3 = new Dropout(o.dropout);
    this.normFirst = o.normFirst;
    this.act = activationFn(o.activation);
  }

  private sa(x: Tensor, c: DecoderLayerCall): Tensor {
    const [y] = this.self_attn.forward(x, x, x, { attnMask: c.tgtMask, keyPaddingMask: c.tgtKeyPaddingMask, isCausal: c.tgtIsCausal, cache: c.cache, needWeights: false });
    return this.dropout1.forward(y);
  }
  private mha(x: Tensor, memory: Tensor, c: DecoderLayerCall): Tensor {
    return this.dropout2.forward(this.multihead_attn.forward(x, memory, memory, { attnMask: c.memoryMask, keyPaddingMask: c.memoryKeyPaddingMask, needWeights: false })[0]);
  }
  private ff(x: Tensor): Tensor {
    return this.dropout3.forward(this.linear2.forward(this.dropout.forward(this.act(this.linear1.forward(x)))));
  }

  /** tgt [B, T, dModel], memory [B, S, dModel] -> [B, T, dModel] */
  forward(tgt: Tensor, memory: Tensor, c: DecoderLayerCall = {}): Tensor {
    if (this.normFirst) {
      let h = add(tgt, this.sa(this.norm1.forward(tgt), c));
      h = add(h, this.mha(this.norm2.forward(h), memory, c));
      return add(h, this.ff(this.norm3.forward(h)));
    }
    let h = this.norm1.forward(add(tgt, this.sa(tgt, c)));
    h = this.norm2.forward(add(h, this.mha(h, memory, c)));
    return this.norm3.forward(add(h, this.ff(h)));
  }
}

/** A stack of encoder layers (each made by `makeLayer`) with an optional final norm. */
export class TransformerEncoder extends Module {
  layers: TransformerEncoderLayer[];
  norm: LayerNorm | null;

  constructor(makeLayer: () => TransformerEncoderLayer, numLayers: number, norm: LayerNorm | null = null) {
    super();
    this.layers = Array.from({ length: numLayers }, makeLayer);
    this.norm = norm;
  }

  forward(src: Tensor, c: EncoderLayerCall = {}): Tensor {
    const h = this.layers.reduce((x, layer) => layer.forward(x, c), src);
    return this.norm ? this.norm.forward(h) : h;
  }
}

/** A stack of decoder layers with an optional final norm; caches (one per layer) enable incremental decoding. */
export class TransformerDecoder extends Module {
  layers: TransformerDecoderLayer[];
  norm: LayerNorm | null;

  constructor(makeLayer: () => TransformerDecoderLayer, numLayers: number, norm: LayerNorm | null = null) {
    super();
    this.layers = Array.from({ length: numLayers }, makeLayer);
    this.norm = norm;
  }

  forward(tgt: Tensor, memory: Tensor, c: Omit<DecoderLayerCall, 'cache'> & { caches?: KVCache[] } = {}): Tensor {
    const h = this.layers.reduce((x, layer, i) => layer.forward(x, memory, { ...c, cache: c.caches?.[i] }), tgt);
    return this.norm ? this.norm.forward(h) : h;
  }
}
