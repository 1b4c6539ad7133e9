// DistilBERT: a 6-layer distilled BERT (post-norm, no token types, learned or sinusoidal positions), parameter names as Hugging Face's.
//
// Paper: Sanh et al., "DistilBERT, a distilled version of BERT: smaller, faster, cheaper and lighter" (2019).
// Reference: transformers/models/distilbert/modeling_distilbert.py (Embeddings, MultiHeadSelfAttention, FFN,
// TransformerBlock, DistilBertForSequenceClassification, DistilBertForMaskedLM).

import { noGrad } from '../autograd/engine.js';
import { add, mul, relu } from '../autograd/ops/elementwise.js';
import { linear } from '../autograd/ops/matmul.js';
import { reshape, select, transpose } from '../autograd/ops/movement.js';
import { arange, tensor } from '../tensor/create.js';
import { fmtShape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { Dropout } from '../nn/activation.js';
import { Embedding } from '../nn/embedding.js';
import { scaledDotProductAttention } from '../nn/functional.js';
import type { Linear } from '../nn/linear.js';
import { Module, Parameter } from '../nn/module.js';
import { LayerNorm } from '../nn/normalization.js';
import { ConfigReader, keyMask, PreTrainedModel, requireInput, type ModelInputs, type ModelOutput, type WeightSpec } from './base.js';
import { ACTIVATIONS, activation, dense, labelNames, PROBLEM_TYPES, sequenceClassificationLoss, tokenLoss } from './bert.js';

// ---- config (Hugging Face's DistilBertConfig field names) ----

/** DistilBERT's LayerNorm epsilon: fixed in transformers, not a config field. */
const LN_EPS = 1e-12;

export interface DistilBertConfig {
  vocab_size: number;
  max_position_embeddings: number;
  /** Fixed sin/cos positions (not trained) instead of learned ones. */
  sinusoidal_pos_embds: boolean;
  n_layers: number;
  n_heads: number;
  dim: number;
  hidden_dim: number;
  dropout: number;
  attention_dropout: number;
  activation: (typeof ACTIVATIONS)[number];
  initializer_range: number;
  /** Dropout before the sequence classifier. */
  seq_classif_dropout: number;
  pad_token_id: number | null;
  tie_word_embeddings: boolean;
  id2label: string[];
  problem_type: (typeof PROBLEM_TYPES)[number] | null;
}

/** Reads a DistilBERT config.json, checking every field it uses. */
export function distilBertConfig(r: ConfigReader): DistilBertConfig {
  const cfg: DistilBertConfig = {
    vocab_size: r.positive('vocab_size'), max_position_embeddings: r.positive('max_position_embeddings', 512),
    sinusoidal_pos_embds: r.bool('sinusoidal_pos_embds', false), n_layers: r.count('n_layers', 6), n_heads: r.positive('n_heads', 12),
    dim: r.positive('dim', 768), hidden_dim: r.positive('hidden_dim', 3072), dropout: r.prob('dropout', 0.1),
    attention_dropout: r.prob('attention_dropout', 0.1), activation: r.str('activation', ACTIVATIONS, 'gelu'),
    initializer_range: r.num('initializer_range', 0.02), seq_classif_dropout: r.prob('seq_classif_dropout', 0.2),
    pad_token_id: r.optional('pad_token_id', (k) => r.int(k)) ?? null, tie_word_embeddings: r.bool('tie_word_embeddings', true),
    id2label: labelNames(r), problem_type: r.optional('problem_type', (k) => r.str(k, PROBLEM_TYPES)) ?? null,
  };
  r.divides('n_heads', cfg.n_heads, 'dim', cfg.dim);
  if (cfg.sinusoidal_pos_embds && cfg.dim % 2 !== 0) throw new Error(`${r.path}: "dim" (${cfg.dim}) must be even for "sinusoidal_pos_embds"`);
  if (cfg.pad_token_id !== null && cfg.pad_token_id >= cfg.vocab_size) {
    throw new Error(`${r.path}: "pad_token_id" (${cfg.pad_token_id}) must be below "vocab_size" (${cfg.vocab_size})`);
  }
  return cfg;
}

/** The checkpoint's parameters for a DistilBERT head, from the config alone. */
export function distilBertWeights(cfg: DistilBertConfig, head: 'sequenceClassification' | 'maskedLM' | 'tokenClassification'): WeightSpec {
  const C = cfg.dim, V = cfg.vocab_size, e = 'distilbert.embeddings.';
  const shapes: Record<string, number[]> = {
    [`${e}word_embeddings.weight`]: [V, C], [`${e}position_embeddings.weight`]: [cfg.max_position_embeddings, C], [`${e}LayerNorm.weight`]: [C], [`${e}LayerNorm.bias`]: [C],
  };
  const lin = (name: string, inF: number, outF: number): void => { shapes[`${name}.weight`] = [outF, inF]; shapes[`${name}.bias`] = [outF]; };
  const norm = (name: string): void => { shapes[`${name}.weight`] = [C]; shapes[`${name}.bias`] = [C]; };
  for (let i = 0; i < cfg.n_layers; i++) {
    const p = `distilbert.transformer.layer.${i}.`;
    for (const n of ['q_lin', 'k_lin', 'v_lin', 'out_lin']) lin(`${p}attention.${n}`, C, C);
    norm(`${p}sa_layer_norm`);
    lin(`${p}ffn.lin1`, C, cfg.hidden_dim);
    lin(`${p}ffn.lin2`, cfg.hidden_dim, C);
    norm(`${p}output_layer_norm`);
  }
  const tied: string[][] = [];
  if (head === 'sequenceClassification') {
    lin('pre_classifier', C, C);
    lin('classifier', C, cfg.id2label.length);
  } else if (head === 'tokenClassification') {
    lin('classifier', C, cfg.id2label.length);
  } else {
    lin('vocab_transform', C, C);
    norm('vocab_layer_norm');
    lin('vocab_projector', C, V);
    if (cfg.tie_word_embeddings) tied.push([`${e}word_embeddings.weight`, 'vocab_projector.weight']);
  }
  return { shapes, tied };
}

/** transformers' create_sinusoidal_embeddings: row pos, column j = sin (j even) / cos (j odd) of pos / 10000^(2 floor(j/2) / dim). */
export function sinusoidalPositions(nPos: number, dim: number): Tensor {
  const w = new Float32Array(nPos * dim);
  for (let pos = 0; pos < nPos; pos++) {
    for (let j = 0; j < dim; j++) {
      const angle = pos / 10000 ** ((2 * Math.floor(j / 2)) / dim);
      w[pos * dim + j] = j % 2 === 0 ? Math.sin(angle) : Math.cos(angle);
    }
  }
  return tensor(w, { shape: [nPos, dim] });
}

// ---- embeddings / attention / feed-forward / block ----

export class Embeddings extends Module {
  word_embeddings: Embedding;
  position_embeddings: Embedding;
  LayerNorm: LayerNorm;
  dropout: Dropout;

  constructor(cfg: DistilBertConfig) {
    super();
    this.word_embeddings = new Embedding(cfg.vocab_size, cfg.dim, { paddingIdx: cfg.pad_token_id ?? undefined });
    this.position_embeddings = new Embedding(cfg.max_position_embeddings, cfg.dim);
    // N(0, initializer_range) as transformers initialises them (the padding row stays zero).
    for (const w of [this.word_embeddings.weight, this.position_embeddings.weight]) noGrad(() => w.replaceStorage(mul(w, cfg.initializer_range)));
    if (cfg.sinusoidal_pos_embds) {
      // Fixed, as transformers (requires_grad = False); checkpoints still store the table.
      this.position_embeddings.weight = new Parameter(sinusoidalPositions(cfg.max_position_embeddings, cfg.dim), false);
    }
    this.LayerNorm = new LayerNorm(cfg.dim, { eps: LN_EPS });
    this.dropout = new Dropout(cfg.dropout);
  }

  /** ids [B, T] -> [B, T, C]; positions 0 .. T - 1, no token types. */
  forward(inputIds: Tensor): Tensor {
    const pos = arange(0, inputIds.shape[1]!, 1, { device: inputIds.device });
    return this.dropout.forward(this.LayerNorm.forward(add(this.word_embeddings.forward(inputIds), this.position_embeddings.forward(pos))));
  }
}

export class MultiHeadSelfAttention extends Module {
  q_lin: Linear;
  k_lin: Linear;
  v_lin: Linear;
  out_lin: Linear;
  private readonly nHead: number;
  private readonly attnPdrop: number;

  constructor(cfg: DistilBertConfig) {
    super();
    const C = cfg.dim;
    this.q_lin = dense(C, C, cfg);
    this.k_lin = dense(C, C, cfg);
    this.v_lin = dense(C, C, cfg);
    this.out_lin = dense(C, C, cfg);
    this.nHead = cfg.n_heads;
    this.attnPdrop = cfg.attention_dropout;
  }

  /** x [B, T, C]; attend: bool [B, 1, 1, T] (true = may attend) or null -> [B, T, C]. */
  forward(x: Tensor, attend: Tensor | null): Tensor {
    const [B, T, C] = x.shape as [number, number, number];
    const hs = C / this.nHead;
    // [B, T, C] -> [B, nh, T, hs]
    const heads = (t: Tensor) => transpose(reshape(t, [B, T, this.nHead, hs]), 1, 2);
    const y = scaledDotProductAttention(heads(this.q_lin.forward(x)), heads(this.k_lin.forward(x)), heads(this.v_lin.forward(x)), {
      attnMask: attend, dropoutP: this.training ? this.attnPdrop : 0,
    });
    // [B, nh, T, hs] -> [B, T, C]
    return this.out_lin.forward(reshape(transpose(y, 1, 2), [B, T, C]));
  }
}

export class FFN extends Module {
  lin1: Linear;
  lin2: Linear;
  dropout: Dropout;
  private readonly act: (x: Tensor) => Tensor;

  constructor(cfg: DistilBertConfig) {
    super();
    this.lin1 = dense(cfg.dim, cfg.hidden_dim, cfg);
    this.lin2 = dense(cfg.hidden_dim, cfg.dim, cfg);
    this.dropout = new Dropout(cfg.dropout);
    this.act = activation(cfg.activation);
  }

  forward(x: Tensor): Tensor {
    return this.dropout.forward(this.lin2.forward(this.act(this.lin1.forward(x))));
  }
}

/** Post-norm: LayerNorm(x + attention(x)), then LayerNorm(h + ffn(h)). */
export class TransformerBlock extends Module {
  attention: MultiHeadSelfAttention;
  sa_layer_norm: LayerNorm;
  ffn: FFN;
  output_layer_norm: LayerNorm;

  constructor(cfg: DistilBertConfig) {
    super();
    this.attention = new MultiHeadSelfAttention(cfg);
    this.sa_layer_norm = new LayerNorm(cfg.dim, { eps: LN_EPS });
    this.ffn = new FFN(cfg);
    this.output_layer_norm = new LayerNorm(cfg.dim, { eps: LN_EPS });
  }

  forward(x: Tensor, attend: Tensor | null): Tensor {
    const h = this.sa_layer_norm.forward(add(this.attention.forward(x, attend), x));
    return this.output_layer_norm.forward(add(this.ffn.forward(h), h));
  }
}

export class Transformer extends Module {
  layer: TransformerBlock[];

  constructor(cfg: DistilBertConfig) {
    super();
    this.layer = Array.from({ length: cfg.n_layers }, () => new TransformerBlock(cfg));
  }

  forward(x: Tensor, attend: Tensor | null): Tensor {
    for (const l of this.layer) x = l.forward(x, attend);
    return x;
  }
}

// ---- model ----

export class DistilBertModel extends Module {
  embeddings: Embeddings;
  transformer: Transformer;

  constructor(readonly config: DistilBertConfig) {
    super();
    this.embeddings = new Embeddings(config);
    this.transformer = new Transformer(config);
  }

  /** ids [B, T] -> hidden states [B, T, C]; attentionMask [B, T] (1 = token, 0 = padding). */
  forward(inputIds: Tensor, attentionMask?: Tensor | null): Tensor {
    if (inputIds.ndim !== 2) throw new Error(`DistilBERT: inputIds must be [batch, time], got ${fmtShape(inputIds.shape)}`);
    const [B, T] = inputIds.shape as [number, number];
    if (T > this.config.max_position_embeddings) {
      throw new Error(`DistilBERT: ${T} positions exceed the model's max_position_embeddings = ${this.config.max_position_embeddings}`);
    }
    const attend = attentionMask ? keyMask(attentionMask, B, T, 'DistilBERT: attentionMask') : null;
    return this.transformer.forward(this.embeddings.forward(inputIds), attend);
  }
}

// ---- heads ----

/** One label (or value) per sequence: pre_classifier -> ReLU -> dropout -> classifier on the first token's state. */
export class DistilBertForSequenceClassification extends PreTrainedModel {
  distilbert: DistilBertModel;
  pre_classifier: Linear;
  classifier: Linear;
  dropout: Dropout;
  readonly numLabels: number;

  constructor(readonly config: DistilBertConfig) {
    super();
    this.numLabels = config.id2label.length;
    this.distilbert = new DistilBertModel(config);
    this.pre_classifier = dense(config.dim, config.dim, config);
    this.classifier = dense(config.dim, this.numLabels, config);
    this.dropout = new Dropout(config.seq_classif_dropout);
  }

  /** tokenTypeIds are not read: DistilBERT has none (transformers' tokenizer does not make them for it). */
  forward({ inputIds, attentionMask, labels }: ModelInputs): ModelOutput {
    const hidden = this.distilbert.forward(requireInput(inputIds, 'inputIds', 'DistilBERT'), attentionMask);
    const pooled = this.dropout.forward(relu(this.pre_classifier.forward(select(hidden, 1, 0)))); // [B, C]
    const logits = this.classifier.forward(pooled);
    return labels ? { logits, lastHiddenState: hidden, loss: sequenceClassificationLoss(logits, labels, this.config.problem_type) } : { logits, lastHiddenState: hidden };
  }
}

/** Masked language modelling: vocab_transform -> activation -> vocab_layer_norm -> vocab_projector (tied to the word embeddings). */
export class DistilBertForMaskedLM extends PreTrainedModel {
  distilbert: DistilBertModel;
  vocab_transform: Linear;
  vocab_layer_norm: LayerNorm;
  vocab_projector: Linear;
  private readonly act: (x: Tensor) => Tensor;

  constructor(readonly config: DistilBertConfig) {
    super();
    this.distilbert = new DistilBertModel(config);
    this.vocab_transform = dense(config.dim, config.dim, config);
    this.vocab_layer_norm = new LayerNorm(config.dim, { eps: LN_EPS });
    this.vocab_projector = dense(config.dim, config.vocab_size, config);
    if (config.tie_word_embeddings) this.vocab_projector.weight = this.distilbert.embeddings.word_embeddings.weight;
    this.act = activation(config.activation);
  }

  /** tokenTypeIds are not read: DistilBERT has none (transformers' tokenizer does not make them for it). */
  forward({ inputIds, attentionMask, labels }: ModelInputs): ModelOutput {
    const hidden = this.distilbert.forward(requireInput(inputIds, 'inputIds', 'DistilBERT'), attentionMask);
    const x = this.vocab_layer_norm.forward(this.act(this.vocab_transform.forward(hidden)));
    const logits = linear(x, this.vocab_projector.weight, this.vocab_projector.bias);
    return labels ? { logits, lastHiddenState: hidden, loss: tokenLoss(logits, labels) } : { logits, lastHiddenState: hidden };
  }
}

/** One label per token: dropout (config.dropout) -> classifier on every hidden state; cross-entropy with -100 ignored. */
export class DistilBertForTokenClassification extends PreTrainedModel {
  distilbert: DistilBertModel;
  dropout: Dropout;
  classifier: Linear;

  constructor(readonly config: DistilBertConfig) {
    super();
    this.distilbert = new DistilBertModel(config);
    this.dropout = new Dropout(config.dropout);
    this.classifier = dense(config.dim, config.id2label.length, config);
  }

  /** tokenTypeIds are not read: DistilBERT has none (transformers' tokenizer does not make them for it). */
  forward({ inputIds, attentionMask, labels }: ModelInputs): ModelOutput {
    const hidden = this.distilbert.forward(requireInput(inputIds, 'inputIds', 'DistilBERT'), attentionMask);
    const logits = this.classifier.forward(this.dropout.forward(hidden));
    return labels ? { logits, lastHiddenState: hidden, loss: tokenLoss(logits, labels) } : { logits, lastHiddenState: hidden };
  }
}
