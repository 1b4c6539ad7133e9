// GPT-2: a decoder-only transformer (pre-norm, learned positions, GELU MLP), parameter names as Hugging Face's.
//
// Paper: Radford et al., "Language Models are Unsupervised Multitask Learners" (2019).
// Reference: transformers/models/gpt2/modeling_gpt2.py (GPT2LMHeadModel).

import { attentionPacked } from '../autograd/ops/attention.js';
import { add, cast, gelu, relu, silu, where } from '../autograd/ops/elementwise.js';
import { matmulAdd } from '../autograd/ops/matmul.js';
import { cat, reshape, slice, split, transpose } from '../autograd/ops/movement.js';
import { arange, full, zeros } from '../tensor/create.js';
import { fmtShape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { Dropout } from '../nn/activation.js';
import { KVCache } from '../nn/attention.js';
import { Embedding } from '../nn/embedding.js';
import { crossEntropy, scaledDotProductAttention } from '../nn/functional.js';
import { normal_, zeros_ } from '../nn/init.js';
import { Linear } from '../nn/linear.js';
import { Module, Parameter } from '../nn/module.js';
import { LayerNorm } from '../nn/normalization.js';
import { ConfigReader, keyMask, PreTrainedModel, requireInput, type ModelInputs, type ModelOutput, type WeightSpec } from './base.js';

// ---- config (Hugging Face's GPT2Config field names) ----

export interface GPT2Config {
  vocab_size: number;
  n_positions: number;
  n_embd: number;
  n_layer: number;
  n_head: number;
  /** MLP width; null means 4 * n_embd. */
  n_inner?: number | null;
  activation_function?: 'gelu_new' | 'gelu' | 'gelu_pytorch_tanh' | 'relu' | 'silu';
  layer_norm_epsilon?: number;
  embd_pdrop?: number;
  attn_pdrop?: number;
  resid_pdrop?: number;
  initializer_range?: number;
  tie_word_embeddings?: boolean;
  scale_attn_weights?: boolean;
}

const ACTIVATIONS = ['gelu_new', 'gelu', 'gelu_pytorch_tanh', 'relu', 'silu'] as const;

/** Reads a GPT-2 config.json, checking every field it uses. */
export function gpt2Config(r: ConfigReader): GPT2Config {
  const cfg = {
    vocab_size: r.positive('vocab_size'), n_positions: r.positive('n_positions'), n_embd: r.positive('n_embd'), n_layer: r.count('n_layer'), n_head: r.positive('n_head'),
    n_inner: r.optional('n_inner', (k) => r.positive(k)) ?? null, activation_function: r.str('activation_function', ACTIVATIONS, 'gelu_new'),
    layer_norm_epsilon: r.positiveNum('layer_norm_epsilon', 1e-5), embd_pdrop: r.prob('embd_pdrop', 0.1), attn_pdrop: r.prob('attn_pdrop', 0.1),
    resid_pdrop: r.prob('resid_pdrop', 0.1), initializer_range: r.num('initializer_range', 0.02), tie_word_embeddings: r.bool('tie_word_embeddings', true),
    scale_attn_weights: r.bool('scale_attn_weights', true),
  };
  r.divides('n_head', cfg.n_head, 'n_embd', cfg.n_embd);
  return cfg;
}

/** The checkpoint's parameters by name and shape (from the config alone, so a checkpoint is checked before anything is allocated). */
export function gpt2Weights(cfg: GPT2Config): WeightSpec {
  const C = cfg.n_embd, inner = cfg.n_inner ?? 4 * C;
  const shapes: Record<string, number[]> = { 'transformer.wte.weight': [cfg.vocab_size, C], 'transformer.wpe.weight': [cfg.n_positions, C] };
  for (let i = 0; i < cfg.n_layer; i++) {
    const p = `transformer.h.${i}.`;
    Object.assign(shapes, {
      [`${p}ln_1.weight`]: [C], [`${p}ln_1.bias`]: [C], [`${p}attn.c_attn.weight`]: [C, 3 * C], [`${p}attn.c_attn.bias`]: [3 * C],
      [`${p}attn.c_proj.weight`]: [C, C], [`${p}attn.c_proj.bias`]: [C], [`${p}ln_2.weight`]: [C], [`${p}ln_2.bias`]: [C],
      [`${p}mlp.c_fc.weight`]: [C, inner], [`${p}mlp.c_fc.bias`]: [inner], [`${p}mlp.c_proj.weight`]: [inner, C], [`${p}mlp.c_proj.bias`]: [C],
    });
  }
  Object.assign(shapes, { 'transformer.ln_f.weight': [C], 'transformer.ln_f.bias': [C], 'lm_head.weight': [cfg.vocab_size, C] });
  return { shapes, tied: cfg.tie_word_embeddings ?? true ? [['transformer.wte.weight', 'lm_head.weight']] : [] };
}

function activation(name: GPT2Config['activation_function']): (x: Tensor) => Tensor {
  switch (name ?? 'gelu_new') {
    case 'gelu_new':
    case 'gelu_pytorch_tanh': return (x) => gelu(x, 'tanh');
    case 'gelu': return (x) => gelu(x);
    case 'relu': return relu;
    case 'silu': return silu;
    default: throw new Error(`GPT-2: unsupported activation_function '${name}'`);
  }
}

/** GPT-2's "Conv1D": a linear layer whose weight is stored [in, out] (transposed from nn.Linear). */
export class Conv1D extends Module {
  weight: Parameter;
  bias: Parameter;
  constructor(nx: number, nf: number, std = 0.02) {
    super();
    this.weight = new Parameter(normal_(zeros([nx, nf]), 0, std));
    this.bias = new Parameter(zeros([nf]));
  }
  forward(x: Tensor): Tensor {
    // The bias rides inside the product (no separate pass over the output).
    return matmulAdd(x, this.weight, this.bias);
  }
}

// ---- attention / MLP / block ----

export class GPT2Attention extends Module {
  c_attn: Conv1D;
  c_proj: Conv1D;
  resid_dropout: Dropout;
  private readonly nHead: number;
  private readonly attnPdrop: number;
  private readonly scale: boolean;

  constructor(cfg: GPT2Config) {
    super();
    const C = cfg.n_embd, std = cfg.initializer_range ?? 0.02;
    this.c_attn = new Conv1D(C, 3 * C, std);
    this.c_proj = new Conv1D(C, C, std / Math.sqrt(2 * cfg.n_layer)); // GPT-2's scaled residual init
    this.resid_dropout = new Dropout(cfg.resid_pdrop ?? 0.1);
    this.nHead = cfg.n_head;
    this.attnPdrop = cfg.attn_pdrop ?? 0.1;
    this.scale = cfg.scale_attn_weights ?? true;
  }

  /** x [B, T, C]; attend: bool [B, 1, 1, S] (true = may attend) or null. */
  forward(x: Tensor, attend: Tensor | null, cache?: KVCache): Tensor {
    const [B, T, C] = x.shape as [number, number, number];
    const hs = C / this.nHead;
    const qkv = this.c_attn.forward(x);
    const scale = this.scale ? 1 / Math.sqrt(hs) : 1, dropoutP = this.training ? this.attnPdrop : 0;
    if (!cache && dropoutP === 0) {
      // Attention reads q, k, v straight from the [B, T, 3C] projection and writes [B, T, C]: no split or head copies.
      const bias = attend ? where(attend, 0, -Infinity) : null;
      return this.resid_dropout.forward(this.c_proj.forward(attentionPacked(qkv, this.nHead, { bias, causal: true, scale })));
    }
    // [B, T, 3C] -> 3 x [B, T, C] -> [B, nh, T, hs]
    const heads = (t: Tensor) => transpose(reshape(t, [B, T, this.nHead, hs]), 1, 2);
    const [q, k0, v0] = split(qkv, C, 2).map(heads) as [Tensor, Tensor, Tensor];
    // The cache has room to grow: attention reads its first S positions in place.
    const { key, value, length: S } = cache ? cache.append(k0, v0) : { key: k0, value: v0, length: T };
    const y = scaledDotProductAttention(q, key, value, { attnMask: attend, isCausal: true, scale, dropoutP, kvLength: S });
    // [B, nh, T, hs] -> [B, T, C]
    return this.resid_dropout.forward(this.c_proj.forward(reshape(transpose(y, 1, 2), [B, T, C])));
  }
}

export class GPT2MLP extends Module {
  c_fc: Conv1D;
  c_proj: Conv1D;
  dropout: Dropout;
  private readonly act: (x: Tensor) => Tensor;

  constructor(cfg: GPT2Config) {
    super();
    const C = cfg.n_embd, inner = cfg.n_inner ?? 4 * C, std = cfg.initializer_range ?? 0.02;
    this.c_fc = new Conv1D(C, inner, std);
    this.c_proj = new Conv1D(inner, C, std / Math.sqrt(2 * cfg.n_layer));
    this.dropout = new Dropout(cfg.resid_pdrop ?? 0.1);
    this.act = activation(cfg.activation_function);
  }

  forward(x: Tensor): Tensor {
    return this.dropout.forward(this.c_proj.forward(this.act(this.c_fc.forward(x))));
  }
}

export class GPT2Block extends Module {
  ln_1: LayerNorm;
  attn: GPT2Attention;
  ln_2: LayerNorm;
  mlp: GPT2MLP;

  constructor(cfg: GPT2Config) {
    super();
    const eps = cfg.layer_norm_epsilon ?? 1e-5;
    this.ln_1 = new LayerNorm(cfg.n_embd, { eps });
    this.attn = new GPT2Attention(cfg);
    this.ln_2 = new LayerNorm(cfg.n_embd, { eps });
    this.mlp = new GPT2MLP(cfg);
  }

  forward(x: Tensor, attend: Tensor | null, cache?: KVCache): Tensor {
    const h = add(x, this.attn.forward(this.ln_1.forward(x), attend, cache));
    return add(h, this.mlp.forward(this.ln_2.forward(h)));
  }
}

// ---- model ----

export class GPT2Model extends Module {
  wte: Embedding;
  wpe: Embedding;
  drop: Dropout;
  h: GPT2Block[];
  ln_f: LayerNorm;

  constructor(readonly config: GPT2Config) {
    super();
    const std = config.initializer_range ?? 0.02;
    this.wte = new Embedding(config.vocab_size, config.n_embd);
    this.wpe = new Embedding(config.n_positions, config.n_embd);
    normal_(this.wte.weight, 0, std);
    normal_(this.wpe.weight, 0, std);
    this.drop = new Dropout(config.embd_pdrop ?? 0.1);
    this.h = Array.from({ length: config.n_layer }, () => new GPT2Block(config));
    this.ln_f = new LayerNorm(config.n_embd, { eps: config.layer_norm_epsilon ?? 1e-5 });
  }

  /** ids [B, T] -> hidden states [B, T, C]; positions default to past .. past + T - 1. */
  forward(inputIds: Tensor, attentionMask?: Tensor | null, caches?: KVCache[], positionIds?: Tensor | null): Tensor {
    if (inputIds.ndim !== 2) throw new Error(`GPT-2: inputIds must be [batch, time], got ${fmtShape(inputIds.shape)}`);
    const [B, T] = inputIds.shape as [number, number];
    const past = caches?.[0]?.length ?? 0;
    if (past + T > this.config.n_positions) {
      throw new Error(`GPT-2: ${past + T} positions exceed the model's n_positions = ${this.config.n_positions}`);
    }
    const pos = positionIds ?? arange(past, past + T, 1, { device: inputIds.device });
    let x = this.drop.forward(add(this.wte.forward(inputIds), this.wpe.forward(pos)));
    const attend = attentionMask ? keyMask(attentionMask, B, past + T, 'GPT-2: attentionMask', T) : null;
    this.h.forEach((block, i) => { x = block.forward(x, attend, caches?.[i]); });
    return this.ln_f.forward(x);
  }
}

export class GPT2LMHeadModel extends PreTrainedModel {
  transformer: GPT2Model;
  lm_head: Linear;

  constructor(readonly config: GPT2Config) {
    super();
    this.transformer = new GPT2Model(config);
    this.lm_head = new Linear(config.n_embd, config.vocab_size, { bias: false });
    if (config.tie_word_embeddings ?? true) this.lm_head.weight = this.transformer.wte.weight;
    else normal_(this.lm_head.weight, 0, config.initializer_range ?? 0.02);
    for (const [, m] of this.namedModules()) if (m instanceof LayerNorm && m.bias) zeros_(m.bias);
  }

  /** labels [B, T] are shifted inside (position t predicts labels[t + 1]); -100 is ignored. */
  forward({ inputIds, attentionMask, labels, pastKeyValues, positionIds }: ModelInputs): ModelOutput {
    const hidden = this.transformer.forward(requireInput(inputIds, 'inputIds', 'GPT-2'), attentionMask, pastKeyValues, positionIds);
    const logits = this.lm_head.forward(hidden);
    if (!labels) return { logits, lastHiddenState: hidden };
    const [B, T, V] = logits.shape as [number, number, number];
    // Position t predicts token t + 1: every position against the next label, the last one against -100
    // (ignored), which is the loss over [B, T-1] without copying the logits.
    const next = cat([slice(cast(labels, 'int32'), 1, 1, T), full([B, 1], -100, { dtype: 'int32', device: labels.device })], 1);
    return { logits, lastHiddenState: hidden, loss: crossEntropy(reshape(logits, [B * T, V]), reshape(next, [B * T]), { ignoreIndex: -100 }) };
  }

  override positionLimit(): { key: string; value: number } {
    return { key: 'n_positions', value: this.config.n_positions };
  }

  override newCache(): KVCache[] {
    return this.transformer.h.map(() => new KVCache());
  }
}
