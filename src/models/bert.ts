// BERT: a bidirectional encoder (post-norm, learned positions, token types) and its heads, parameter names as Hugging Face's.
//
// Paper: Devlin et al., "BERT: Pre-training of Deep Bidirectional Transformers for Language Understanding" (2019).
// Reference: transformers/models/bert/modeling_bert.py (BertModel, BertForMaskedLM, BertForSequenceClassification,
// BertForTokenClassification).

import { noGrad } from '../autograd/engine.js';
import { add, cast, gelu, mul, relu, silu, tanh } from '../autograd/ops/elementwise.js';
import { linear } from '../autograd/ops/matmul.js';
import { reshape, select, squeeze, transpose } from '../autograd/ops/movement.js';
import { arange, zeros } from '../tensor/create.js';
import { isFloat } from '../tensor/dtype.js';
import { fmtShape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { Dropout } from '../nn/activation.js';
import { Embedding } from '../nn/embedding.js';
import { binaryCrossEntropyWithLogits, crossEntropy, mseLoss, scaledDotProductAttention } from '../nn/functional.js';
import { normal_, zeros_ } from '../nn/init.js';
import { Linear } from '../nn/linear.js';
import { Module, Parameter } from '../nn/module.js';
import { LayerNorm } from '../nn/normalization.js';
import { ConfigReader, keyMask, PreTrainedModel, requireInput, type ModelInputs, type ModelOutput, type WeightSpec } from './base.js';

// ---- config (Hugging Face's BertConfig field names) ----

export const ACTIVATIONS = ['gelu', 'gelu_new', 'gelu_pytorch_tanh', 'relu', 'silu', 'swish'] as const;
export const PROBLEM_TYPES = ['regression', 'single_label_classification', 'multi_label_classification'] as const;

export interface BertConfig {
  vocab_size: number;
  hidden_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  intermediate_size: number;
  hidden_act: (typeof ACTIVATIONS)[number];
  hidden_dropout_prob: number;
  attention_probs_dropout_prob: number;
  max_position_embeddings: number;
  type_vocab_size: number;
  initializer_range: number;
  layer_norm_eps: number;
  pad_token_id: number | null;
  tie_word_embeddings: boolean;
  /** Dropout before the classifiers; null means hidden_dropout_prob. */
  classifier_dropout: number | null;
  /** Class names by index, from config.json's id2label (or num_labels generic names; 2 by default, as transformers). */
  id2label: string[];
  /** The sequence classification loss; null infers it from num_labels and the labels' dtype, as transformers does. */
  problem_type: (typeof PROBLEM_TYPES)[number] | null;
}

/** Reads a BERT config.json, checking every field it uses. */
export function bertConfig(r: ConfigReader): BertConfig {
  const cfg: BertConfig = {
    vocab_size: r.positive('vocab_size'), hidden_size: r.positive('hidden_size'), num_hidden_layers: r.count('num_hidden_layers'),
    num_attention_heads: r.positive('num_attention_heads'), intermediate_size: r.positive('intermediate_size'),
    hidden_act: r.str('hidden_act', ACTIVATIONS, 'gelu'), hidden_dropout_prob: r.prob('hidden_dropout_prob', 0.1),
    attention_probs_dropout_prob: r.prob('attention_probs_dropout_prob', 0.1), max_position_embeddings: r.positive('max_position_embeddings', 512),
    type_vocab_size: r.positive('type_vocab_size', 2), initializer_range: r.num('initializer_range', 0.02), layer_norm_eps: r.positiveNum('layer_norm_eps', 1e-12),
    pad_token_id: r.optional('pad_token_id', (k) => r.int(k)) ?? null, tie_word_embeddings: r.bool('tie_word_embeddings', true),
    classifier_dropout: r.optional('classifier_dropout', (k) => r.prob(k)) ?? null, id2label: labelNames(r),
    problem_type: r.optional('problem_type', (k) => r.str(k, PROBLEM_TYPES)) ?? null,
  };
  r.str('position_embedding_type', ['absolute'], 'absolute'); // relative_key(_query) variants are not implemented
  r.divides('num_attention_heads', cfg.num_attention_heads, 'hidden_size', cfg.hidden_size);
  if (cfg.pad_token_id !== null && cfg.pad_token_id >= cfg.vocab_size) {
    throw new Error(`${r.path}: "pad_token_id" (${cfg.pad_token_id}) must be below "vocab_size" (${cfg.vocab_size})`);
  }
  return cfg;
}

/** The checkpoint's parameters for a BERT head (from the config alone, so a checkpoint is checked before anything is allocated). */
export function bertWeights(cfg: BertConfig, head: 'maskedLM' | 'sequenceClassification' | 'tokenClassification'): WeightSpec {
  const C = cfg.hidden_size, e = 'bert.embeddings.';
  const shapes = bertEncoderShapes(cfg, 'bert.');
  const dense = (name: string, inF: number, outF: number): void => { shapes[`${name}.weight`] = [outF, inF]; shapes[`${name}.bias`] = [outF]; };
  const norm = (name: string): void => { shapes[`${name}.weight`] = [C]; shapes[`${name}.bias`] = [C]; };
  const tied: string[][] = [];
  if (head === 'maskedLM') {
    const h = 'cls.predictions.';
    shapes[`${h}bias`] = [cfg.vocab_size];
    dense(`${h}transform.dense`, C, C);
    norm(`${h}transform.LayerNorm`);
    dense(`${h}decoder`, C, cfg.vocab_size);
    tied.push([`${h}bias`, `${h}decoder.bias`]);
    if (cfg.tie_word_embeddings) tied.push([`${e}word_embeddings.weight`, `${h}decoder.weight`]);
  } else {
    if (head === 'sequenceClassification') dense('bert.pooler.dense', C, C);
    dense('classifier', C, cfg.id2label.length);
  }
  return { shapes, tied };
}

/** The embeddings' and encoder layers' parameter shapes under `prefix` ('bert.', 'roberta.'), shared by the BERT family. */
export function bertEncoderShapes(cfg: BertConfig, prefix: string): Record<string, number[]> {
  const C = cfg.hidden_size, F = cfg.intermediate_size, e = `${prefix}embeddings.`;
  const shapes: Record<string, number[]> = {
    [`${e}word_embeddings.weight`]: [cfg.vocab_size, C], [`${e}position_embeddings.weight`]: [cfg.max_position_embeddings, C],
    [`${e}token_type_embeddings.weight`]: [cfg.type_vocab_size, C], [`${e}LayerNorm.weight`]: [C], [`${e}LayerNorm.bias`]: [C],
  };
  const dense = (name: string, inF: number, outF: number): void => { shapes[`${name}.weight`] = [outF, inF]; shapes[`${name}.bias`] = [outF]; };
  const norm = (name: string): void => { shapes[`${name}.weight`] = [C]; shapes[`${name}.bias`] = [C]; };
  for (let i = 0; i < cfg.num_hidden_layers; i++) {
    const p = `${prefix}encoder.layer.${i}.`;
    for (const n of ['query', 'key', 'value']) dense(`${p}attention.self.${n}`, C, C);
    dense(`${p}attention.output.dense`, C, C);
    norm(`${p}attention.output.LayerNorm`);
    dense(`${p}intermediate.dense`, C, F);
    dense(`${p}output.dense`, F, C);
    norm(`${p}output.LayerNorm`);
  }
  return shapes;
}

/** config.json's id2label as names by index (or num_labels generic names, 2 by default), checked. */
export function labelNames(r: ConfigReader): string[] {
  const map = r.json['id2label'];
  if (map === undefined || map === null) return Array.from({ length: r.count('num_labels', 2) }, (_, i) => `LABEL_${i}`);
  if (typeof map !== 'object' || Array.isArray(map)) throw new Error(`${r.path}: "id2label" must be an object of index -> name`);
  const entries = Object.entries(map as Record<string, unknown>);
  if (entries.length === 0) throw new Error(`${r.path}: "id2label" must name at least one label`);
  const names = new Array<string>(entries.length);
  for (const [k, v] of entries) {
    const i = Number(k);
    if (!Number.isInteger(i) || i < 0 || i >= entries.length || typeof v !== 'string') {
      throw new Error(`${r.path}: "id2label" must map the indices 0..${entries.length - 1} to names, got ${JSON.stringify(k)}: ${JSON.stringify(v)}`);
    }
    names[i] = v;
  }
  return names;
}

export function activation(name: BertConfig['hidden_act']): (x: Tensor) => Tensor {
  switch (name) {
    case 'gelu': return (x) => gelu(x);
    case 'gelu_new':
    case 'gelu_pytorch_tanh': return (x) => gelu(x, 'tanh');
    case 'relu': return relu;
    case 'silu':
    case 'swish': return silu;
  }
}

/** A Linear with BERT's initialisation: N(0, initializer_range) weights, zero bias. */
export function dense(inF: number, outF: number, cfg: { initializer_range: number }): Linear {
  const l = new Linear(inF, outF);
  normal_(l.weight, 0, cfg.initializer_range);
  zeros_(l.bias!);
  return l;
}

// ---- embeddings / attention / feed-forward / layer ----

export class BertEmbeddings extends Module {
  word_embeddings: Embedding;
  position_embeddings: Embedding;
  token_type_embeddings: Embedding;
  LayerNorm: LayerNorm;
  dropout: Dropout;

  constructor(readonly config: BertConfig) {
    super();
    const C = config.hidden_size, std = config.initializer_range;
    this.word_embeddings = new Embedding(config.vocab_size, C, { paddingIdx: config.pad_token_id ?? undefined });
    this.position_embeddings = new Embedding(config.max_position_embeddings, C);
    this.token_type_embeddings = new Embedding(config.type_vocab_size, C);
    normal_(this.position_embeddings.weight, 0, std);
    normal_(this.token_type_embeddings.weight, 0, std);
    // Scaling Embedding's N(0, 1) keeps its padding row at zero, as transformers initialises it.
    const w = this.word_embeddings.weight;
    noGrad(() => w.replaceStorage(mul(w, std)));
    this.LayerNorm = new LayerNorm(C, { eps: config.layer_norm_eps });
    this.dropout = new Dropout(config.hidden_dropout_prob);
  }

  /** ids, token types [B, T] -> [B, T, C]; positions [B, T] default to 0 .. T - 1. */
  forward(inputIds: Tensor, tokenTypeIds: Tensor, positionIds?: Tensor | null): Tensor {
    const T = inputIds.shape[1]!;
    const pos = positionIds ?? arange(0, T, 1, { device: inputIds.device });
    const x = add(add(this.word_embeddings.forward(inputIds), this.position_embeddings.forward(pos)), this.token_type_embeddings.forward(tokenTypeIds));
    return this.dropout.forward(this.LayerNorm.forward(x));
  }
}

export class BertSelfAttention extends Module {
  query: Linear;
  key: Linear;
  value: Linear;
  private readonly nHead: number;
  private readonly attnPdrop: number;

  constructor(cfg: BertConfig) {
    super();
    const C = cfg.hidden_size;
    this.query = dense(C, C, cfg);
    this.key = dense(C, C, cfg);
    this.value = dense(C, C, cfg);
    this.nHead = cfg.num_attention_heads;
    this.attnPdrop = cfg.attention_probs_dropout_prob;
  }

  /** x [B, T, C]; attend: bool [B, 1, 1, T] (true = may attend) or null -> [B, T, C]. */
  forward(x: Tensor, attend: Tensor | null): Tensor {
    const [B, T, C] = x.shape as [number, number, number];
    const hs = C / this.nHead;
    // [B, T, C] -> [B, nh, T, hs]
    const heads = (t: Tensor) => transpose(reshape(t, [B, T, this.nHead, hs]), 1, 2);
    const y = scaledDotProductAttention(heads(this.query.forward(x)), heads(this.key.forward(x)), heads(this.value.forward(x)), {
      attnMask: attend, dropoutP: this.training ? this.attnPdrop : 0,
    });
    // [B, nh, T, hs] -> [B, T, C]
    return reshape(transpose(y, 1, 2), [B, T, C]);
  }
}

/** dense -> dropout -> LayerNorm(+ residual): the post-norm step after attention and after the feed-forward. */
export class BertResidualOutput extends Module {
  dense: Linear;
  LayerNorm: LayerNorm;
  dropout: Dropout;

  constructor(inF: number, cfg: BertConfig) {
    super();
    this.dense = dense(inF, cfg.hidden_size, cfg);
    this.LayerNorm = new LayerNorm(cfg.hidden_size, { eps: cfg.layer_norm_eps });
    this.dropout = new Dropout(cfg.hidden_dropout_prob);
  }

  forward(h: Tensor, residual: Tensor): Tensor {
    return this.LayerNorm.forward(add(this.dropout.forward(this.dense.forward(h)), residual));
  }
}

export class BertAttention extends Module {
  self: BertSelfAttention;
  output: BertResidualOutput;

  constructor(cfg: BertConfig) {
    super();
    this.self = new BertSelfAttention(cfg);
    this.output = new BertResidualOutput(cfg.hidden_size, cfg);
  }

  forward(x: Tensor, attend: Tensor | null): Tensor {
    return this.output.forward(this.self.forward(x, attend), x);
  }
}

export class BertIntermediate extends Module {
  dense: Linear;
  private readonly act: (x: Tensor) => Tensor;

  constructor(cfg: BertConfig) {
    super();
    this.dense = dense(cfg.hidden_size, cfg.intermediate_size, cfg);
    this.act = activation(cfg.hidden_act);
  }

  forward(x: Tensor): Tensor {
    return this.act(this.dense.forward(x));
  }
}

export class BertLayer extends Module {
  attention: BertAttention;
  intermediate: BertIntermediate;
  output: BertResidualOutput;

  constructor(cfg: BertConfig) {
    super();
    this.attention = new BertAttention(cfg);
    this.intermediate = new BertIntermediate(cfg);
    this.output = new BertResidualOutput(cfg.intermediate_size, cfg);
  }

  forward(x: Tensor, attend: Tensor | null): Tensor {
    const h = this.attention.forward(x, attend);
    return this.output.forward(this.intermediate.forward(h), h);
  }
}

export class BertEncoder extends Module {
  layer: BertLayer[];

  constructor(cfg: BertConfig) {
    super();
    this.layer = Array.from({ length: cfg.num_hidden_layers }, () => new BertLayer(cfg));
  }

  forward(x: Tensor, attend: Tensor | null): Tensor {
    for (const l of this.layer) x = l.forward(x, attend);
    return x;
  }
}

/** tanh(dense(hidden state of the first token)): the sentence vector the classifier reads. */
export class BertPooler extends Module {
  dense: Linear;

  constructor(cfg: BertConfig) {
    super();
    this.dense = dense(cfg.hidden_size, cfg.hidden_size, cfg);
  }

  /** [B, T, C] -> [B, C] */
  forward(hidden: Tensor): Tensor {
    return tanh(this.dense.forward(select(hidden, 1, 0)));
  }
}

// ---- model ----

export interface BertModelOptions {
  /** Embeddings of a BERT variant (RoBERTa's positions), in place of BertEmbeddings. */
  embeddings?: BertEmbeddings;
  /** The model's name in error messages. */
  name?: string;
}

export class BertModel extends Module {
  embeddings: BertEmbeddings;
  encoder: BertEncoder;
  pooler: BertPooler | null;
  private readonly modelName: string;

  constructor(readonly config: BertConfig, addPoolingLayer = true, opts: BertModelOptions = {}) {
    super();
    this.embeddings = opts.embeddings ?? new BertEmbeddings(config);
    this.encoder = new BertEncoder(config);
    this.pooler = addPoolingLayer ? new BertPooler(config) : null;
    this.modelName = opts.name ?? 'BERT';
  }

  /**
   * ids [B, T] -> hidden states [B, T, C]; attentionMask [B, T] (1 = token, 0 = padding); token types default to 0;
   * positionIds [B, T] default to the embeddings' rule.
   */
  forward(inputIds: Tensor, attentionMask?: Tensor | null, tokenTypeIds?: Tensor | null, positionIds?: Tensor | null): Tensor {
    const name = this.modelName;
    if (inputIds.ndim !== 2) throw new Error(`${name}: inputIds must be [batch, time], got ${fmtShape(inputIds.shape)}`);
    const [B, T] = inputIds.shape as [number, number];
    if (T > this.config.max_position_embeddings) {
      throw new Error(`${name}: ${T} positions exceed the model's max_position_embeddings = ${this.config.max_position_embeddings}`);
    }
    const attend = attentionMask ? keyMask(attentionMask, B, T, `${name}: attentionMask`) : null;
    for (const [key, t] of [['tokenTypeIds', tokenTypeIds], ['positionIds', positionIds]] as const) {
      if (t && (t.ndim !== 2 || t.shape[0] !== B || t.shape[1] !== T)) throw new Error(`${name}: ${key} must be [${B}, ${T}], got ${fmtShape(t.shape)}`);
    }
    const types = tokenTypeIds ?? zeros([B, T], { dtype: 'int32', device: inputIds.device });
    return this.encoder.forward(this.embeddings.forward(inputIds, types, positionIds), attend);
  }
}

// ---- heads ----

export class BertPredictionHeadTransform extends Module {
  dense: Linear;
  LayerNorm: LayerNorm;
  private readonly act: (x: Tensor) => Tensor;

  constructor(cfg: BertConfig) {
    super();
    this.dense = dense(cfg.hidden_size, cfg.hidden_size, cfg);
    this.LayerNorm = new LayerNorm(cfg.hidden_size, { eps: cfg.layer_norm_eps });
    this.act = activation(cfg.hidden_act);
  }

  forward(x: Tensor): Tensor {
    return this.LayerNorm.forward(this.act(this.dense.forward(x)));
  }
}

/** transform, then scores over the vocabulary; the decoder's weight is the word embeddings and its bias is `bias`, as in transformers. */
export class BertLMPredictionHead extends Module {
  bias: Parameter;
  transform: BertPredictionHeadTransform;
  decoder: Linear;

  constructor(cfg: BertConfig, wordEmbeddings: Parameter) {
    super();
    this.bias = new Parameter(zeros([cfg.vocab_size]));
    this.transform = new BertPredictionHeadTransform(cfg);
    this.decoder = dense(cfg.hidden_size, cfg.vocab_size, cfg);
    if (cfg.tie_word_embeddings) this.decoder.weight = wordEmbeddings;
    this.decoder.bias = this.bias;
  }

  forward(x: Tensor): Tensor {
    return linear(this.transform.forward(x), this.decoder.weight, this.bias);
  }
}

export class BertOnlyMLMHead extends Module {
  predictions: BertLMPredictionHead;

  constructor(cfg: BertConfig, wordEmbeddings: Parameter) {
    super();
    this.predictions = new BertLMPredictionHead(cfg, wordEmbeddings);
  }

  forward(x: Tensor): Tensor {
    return this.predictions.forward(x);
  }
}

/** [B, T, V] scores against labels [B, T] (-100 = ignore), flattened as transformers does. */
export function tokenLoss(logits: Tensor, labels: Tensor): Tensor {
  const n = logits.shape[logits.ndim - 1]!;
  return crossEntropy(reshape(logits, [-1, n]), reshape(labels, [-1]), { ignoreIndex: -100 });
}

/** Masked language modelling: scores for every position over the vocabulary; loss on labels != -100. */
export class BertForMaskedLM extends PreTrainedModel {
  bert: BertModel;
  cls: BertOnlyMLMHead;

  constructor(readonly config: BertConfig) {
    super();
    this.bert = new BertModel(config, false);
    this.cls = new BertOnlyMLMHead(config, this.bert.embeddings.word_embeddings.weight);
  }

  forward({ inputIds, attentionMask, tokenTypeIds, labels }: ModelInputs): ModelOutput {
    const hidden = this.bert.forward(requireInput(inputIds, 'inputIds', 'BERT'), attentionMask, tokenTypeIds);
    const logits = this.cls.forward(hidden);
    return labels ? { logits, lastHiddenState: hidden, loss: tokenLoss(logits, labels) } : { logits, lastHiddenState: hidden };
  }
}

/** One label (or value) per sequence from the pooled first token. */
export class BertForSequenceClassification extends PreTrainedModel {
  bert: BertModel;
  dropout: Dropout;
  classifier: Linear;
  readonly numLabels: number;

  constructor(readonly config: BertConfig) {
    super();
    this.numLabels = config.id2label.length;
    this.bert = new BertModel(config, true);
    this.dropout = new Dropout(config.classifier_dropout ?? config.hidden_dropout_prob);
    this.classifier = dense(config.hidden_size, this.numLabels, config);
  }

  /**
   * labels: [B] class indices (cross-entropy), [B] values when num_labels is 1 (mean squared error), or [B, num_labels]
   * floats for multi-label (binary cross-entropy), chosen by problem_type or inferred as transformers does.
   */
  forward({ inputIds, attentionMask, tokenTypeIds, labels }: ModelInputs): ModelOutput {
    const hidden = this.bert.forward(requireInput(inputIds, 'inputIds', 'BERT'), attentionMask, tokenTypeIds);
    const logits = this.classifier.forward(this.dropout.forward(this.bert.pooler!.forward(hidden)));
    return labels ? { logits, lastHiddenState: hidden, loss: sequenceClassificationLoss(logits, labels, this.config.problem_type) } : { logits, lastHiddenState: hidden };
  }
}

/**
 * The loss of sequence scores [B, num_labels] as transformers' *ForSequenceClassification: by problem_type, else mean
 * squared error for one label, binary cross-entropy for float labels [B, num_labels], cross-entropy for class indices.
 */
export function sequenceClassificationLoss(logits: Tensor, labels: Tensor, problemType: BertConfig['problem_type']): Tensor {
  const numLabels = logits.shape[logits.ndim - 1]!;
  const problem = problemType
    ?? (numLabels === 1 ? 'regression' : isFloat(labels.dtype) ? 'multi_label_classification' : 'single_label_classification');
  if (problem === 'regression') return mseLoss(squeeze(logits), squeeze(cast(labels, logits.dtype)));
  if (problem === 'single_label_classification') return tokenLoss(logits, labels);
  return binaryCrossEntropyWithLogits(logits, cast(labels, logits.dtype));
}

/** One label per token (e.g. named entities); loss ignores labels of -100 (padding, sub-word continuations). */
export class BertForTokenClassification extends PreTrainedModel {
  bert: BertModel;
  dropout: Dropout;
  classifier: Linear;
  readonly numLabels: number;

  constructor(readonly config: BertConfig) {
    super();
    this.numLabels = config.id2label.length;
    this.bert = new BertModel(config, false);
    this.dropout = new Dropout(config.classifier_dropout ?? config.hidden_dropout_prob);
    this.classifier = dense(config.hidden_size, this.numLabels, config);
  }

  forward({ inputIds, attentionMask, tokenTypeIds, labels }: ModelInputs): ModelOutput {
    const hidden = this.bert.forward(requireInput(inputIds, 'inputIds', 'BERT'), attentionMask, tokenTypeIds);
    const logits = this.classifier.forward(this.dropout.forward(hidden));
    return labels ? { logits, lastHiddenState: hidden, loss: tokenLoss(logits, labels) } : { logits, lastHiddenState: hidden };
  }
}
