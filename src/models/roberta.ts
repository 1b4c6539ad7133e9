// RoBERTa: BERT's encoder (reused from bert.ts) with RoBERTa's position rule and heads, parameter names as Hugging Face's.
//
// Paper: Liu et al., "RoBERTa: A Robustly Optimized BERT Pretraining Approach" (2019).
// Reference: transformers/models/roberta/modeling_roberta.py (RobertaEmbeddings, create_position_ids_from_input_ids,
// RobertaLMHead, RobertaClassificationHead). What differs from BERT: positions start at pad_token_id + 1 and skip
// padding (the position table's padding_idx row is padding), no pooler, and the heads below.

import { noGrad } from '../autograd/engine.js';
import { add, cast, gelu, mul, ne, tanh } from '../autograd/ops/elementwise.js';
import { linear } from '../autograd/ops/matmul.js';
import { select } from '../autograd/ops/movement.js';
import { cumsum } from '../autograd/ops/reduce.js';
import { zeros } from '../tensor/create.js';
import type { Tensor } from '../tensor/tensor.js';
import { Dropout } from '../nn/activation.js';
import { Embedding } from '../nn/embedding.js';
import type { Linear } from '../nn/linear.js';
import { Module, Parameter } from '../nn/module.js';
import { LayerNorm } from '../nn/normalization.js';
import { PreTrainedModel, requireInput, type ConfigReader, type ModelInputs, type ModelOutput, type WeightSpec } from './base.js';
import { BertEmbeddings, BertModel, bertConfig, bertEncoderShapes, dense, sequenceClassificationLoss, tokenLoss, type BertConfig } from './bert.js';

// ---- config (Hugging Face's RobertaConfig: BertConfig's fields, pad_token_id 1 by default) ----

export interface RobertaConfig extends BertConfig {
  pad_token_id: number;
}

/** Reads a RoBERTa config.json: BERT's fields, and a padding id whose position rule fits the position table. */
export function robertaConfig(r: ConfigReader): RobertaConfig {
  const cfg = { ...bertConfig(r), pad_token_id: r.int('pad_token_id', 1) };
  if (cfg.pad_token_id >= cfg.vocab_size) throw new Error(`${r.path}: "pad_token_id" (${cfg.pad_token_id}) must be below "vocab_size" (${cfg.vocab_size})`);
  if (cfg.max_position_embeddings <= cfg.pad_token_id + 1) {
    throw new Error(`${r.path}: "max_position_embeddings" (${cfg.max_position_embeddings}) must exceed "pad_token_id" + 1 (${cfg.pad_token_id + 1}), where RoBERTa's positions start`);
  }
  return cfg;
}

/** The checkpoint's parameters for a RoBERTa head, from the config alone. */
export function robertaWeights(cfg: RobertaConfig, head: 'maskedLM' | 'sequenceClassification' | 'tokenClassification'): WeightSpec {
  const C = cfg.hidden_size, V = cfg.vocab_size;
  const shapes = bertEncoderShapes(cfg, 'roberta.');
  const tied: string[][] = [];
  if (head === 'maskedLM') {
    Object.assign(shapes, {
      'lm_head.dense.weight': [C, C], 'lm_head.dense.bias': [C], 'lm_head.layer_norm.weight': [C], 'lm_head.layer_norm.bias': [C],
      'lm_head.decoder.weight': [V, C], 'lm_head.decoder.bias': [V], 'lm_head.bias': [V],
    });
    tied.push(['lm_head.bias', 'lm_head.decoder.bias']);
    if (cfg.tie_word_embeddings) tied.push(['roberta.embeddings.word_embeddings.weight', 'lm_head.decoder.weight']);
  } else if (head === 'tokenClassification') {
    Object.assign(shapes, { 'classifier.weight': [cfg.id2label.length, C], 'classifier.bias': [cfg.id2label.length] });
  } else {
    const L = cfg.id2label.length;
    Object.assign(shapes, { 'classifier.dense.weight': [C, C], 'classifier.dense.bias': [C], 'classifier.out_proj.weight': [L, C], 'classifier.out_proj.bias': [L] });
  }
  return { shapes, tied };
}

// ---- positions / embeddings ----

/**
 * transformers' create_position_ids_from_input_ids: ids [B, T] -> positions [B, T] (int32) that count the non-padding
 * tokens from padding_idx + 1; padding tokens get padding_idx itself.
 */
export function robertaPositionIds(inputIds: Tensor, paddingIdx: number): Tensor {
  const isToken = cast(ne(inputIds, paddingIdx), 'int32'); // [B, T]: 1 = token, 0 = padding
  return add(mul(cumsum(isToken, 1), isToken), paddingIdx);
}

/** BERT's embeddings with RoBERTa's positions. */
export class RobertaEmbeddings extends BertEmbeddings {
  constructor(override readonly config: RobertaConfig) {
    super(config);
    // As transformers: the position table's padding_idx row (the position of every padding token) starts at zero
    // and gets no gradient.
    this.position_embeddings = new Embedding(config.max_position_embeddings, config.hidden_size, { paddingIdx: config.pad_token_id });
    const w = this.position_embeddings.weight;
    noGrad(() => w.replaceStorage(mul(w, config.initializer_range)));
  }

  /** ids, token types [B, T] -> [B, T, C]; positions [B, T] default to RoBERTa's rule. */
  override forward(inputIds: Tensor, tokenTypeIds: Tensor, positionIds?: Tensor | null): Tensor {
    const T = inputIds.shape[1]!, first = this.config.pad_token_id + 1, max = this.config.max_position_embeddings;
    if (!positionIds && first + T > max) {
      throw new Error(`RoBERTa: ${T} positions exceed max_position_embeddings = ${max} less the ${first} before the first position (pad_token_id + 1): at most ${max - first} tokens`);
    }
    return super.forward(inputIds, tokenTypeIds, positionIds ?? robertaPositionIds(inputIds, this.config.pad_token_id));
  }
}

/** BertModel (no pooler) on RoBERTa's embeddings. */
function robertaModel(cfg: RobertaConfig): BertModel {
  return new BertModel(cfg, false, { embeddings: new RobertaEmbeddings(cfg), name: 'RoBERTa' });
}

// ---- heads ----

/** dense -> gelu (exact, whatever hidden_act says) -> layer_norm -> decoder (tied to the word embeddings, bias `bias`). */
export class RobertaLMHead extends Module {
  bias: Parameter;
  dense: Linear;
  layer_norm: LayerNorm;
  decoder: Linear;

  constructor(cfg: RobertaConfig, wordEmbeddings: Parameter) {
    super();
    this.bias = new Parameter(zeros([cfg.vocab_size]));
    this.dense = dense(cfg.hidden_size, cfg.hidden_size, cfg);
    this.layer_norm = new LayerNorm(cfg.hidden_size, { eps: cfg.layer_norm_eps });
    this.decoder = dense(cfg.hidden_size, cfg.vocab_size, cfg);
    if (cfg.tie_word_embeddings) this.decoder.weight = wordEmbeddings;
    this.decoder.bias = this.bias;
  }

  /** [B, T, C] -> [B, T, V] */
  forward(x: Tensor): Tensor {
    return linear(this.layer_norm.forward(gelu(this.dense.forward(x))), this.decoder.weight, this.bias);
  }
}

/** dropout -> dense -> tanh -> dropout -> out_proj on the hidden state of <s> (RoBERTa has no pooler). */
export class RobertaClassificationHead extends Module {
  dense: Linear;
  dropout: Dropout;
  out_proj: Linear;

  constructor(cfg: RobertaConfig) {
    super();
    this.dense = dense(cfg.hidden_size, cfg.hidden_size, cfg);
    this.dropout = new Dropout(cfg.classifier_dropout ?? cfg.hidden_dropout_prob);
    this.out_proj = dense(cfg.hidden_size, cfg.id2label.length, cfg);
  }

  /** [B, T, C] -> [B, num_labels] */
  forward(hidden: Tensor): Tensor {
    const x = tanh(this.dense.forward(this.dropout.forward(select(hidden, 1, 0))));
    return this.out_proj.forward(this.dropout.forward(x));
  }
}

/** Masked language modelling: scores for every position over the vocabulary; loss on labels != -100. */
export class RobertaForMaskedLM extends PreTrainedModel {
  roberta: BertModel;
  lm_head: RobertaLMHead;

  constructor(readonly config: RobertaConfig) {
    super();
    this.roberta = robertaModel(config);
    this.lm_head = new RobertaLMHead(config, this.roberta.embeddings.word_embeddings.weight);
  }

  forward({ inputIds, attentionMask, tokenTypeIds, positionIds, labels }: ModelInputs): ModelOutput {
    const hidden = this.roberta.forward(requireInput(inputIds, 'inputIds', 'RoBERTa'), attentionMask, tokenTypeIds, positionIds);
    const logits = this.lm_head.forward(hidden);
    return labels ? { logits, lastHiddenState: hidden, loss: tokenLoss(logits, labels) } : { logits, lastHiddenState: hidden };
  }
}

/** One label (or value) per sequence from <s>; the loss as BertForSequenceClassification's. */
export class RobertaForSequenceClassification extends PreTrainedModel {
  roberta: BertModel;
  classifier: RobertaClassificationHead;

  constructor(readonly config: RobertaConfig) {
    super();
    this.roberta = robertaModel(config);
    this.classifier = new RobertaClassificationHead(config);
  }

  forward({ inputIds, attentionMask, tokenTypeIds, positionIds, labels }: ModelInputs): ModelOutput {
    const hidden = this.roberta.forward(requireInput(inputIds, 'inputIds', 'RoBERTa'), attentionMask, tokenTypeIds, positionIds);
    const logits = this.classifier.forward(hidden);
    return labels ? { logits, lastHiddenState: hidden, loss: sequenceClassificationLoss(logits, labels, this.config.problem_type) } : { logits, lastHiddenState: hidden };
  }
}

/** One label per token: dropout -> classifier on every hidden state; cross-entropy with -100 ignored. */
export class RobertaForTokenClassification extends PreTrainedModel {
  roberta: BertModel;
  dropout: Dropout;
  classifier: Linear;

  constructor(readonly config: RobertaConfig) {
    super();
    this.roberta = robertaModel(config);
    this.dropout = new Dropout(config.classifier_dropout ?? config.hidden_dropout_prob);
    this.classifier = dense(config.hidden_size, config.id2label.length, config);
  }

  forward({ inputIds, attentionMask, tokenTypeIds, positionIds, labels }: ModelInputs): ModelOutput {
    const hidden = this.roberta.forward(requireInput(inputIds, 'inputIds', 'RoBERTa'), attentionMask, tokenTypeIds, positionIds);
    const logits = this.classifier.forward(this.dropout.forward(hidden));
    return labels ? { logits, lastHiddenState: hidden, loss: tokenLoss(logits, labels) } : { logits, lastHiddenState: hidden };
  }
}
