// ViT: the transformer encoder on image patches (conv patch embedding, [CLS] token, learned positions, pre-norm
// layers) with a linear classifier on [CLS], parameter names as Hugging Face's.
//
// Paper: Dosovitskiy et al., "An Image is Worth 16x16 Words: Transformers for Image Recognition at Scale" (2021).
// Reference: transformers/models/vit/modeling_vit.py (ViTModel, ViTForImageClassification).

import { attentionPacked, attentionProbs } from '../autograd/ops/attention.js';
import { add } from '../autograd/ops/elementwise.js';
import { bmm, linear } from '../autograd/ops/matmul.js';
import { cat, expand, flatten, narrow, reshape, select, transpose } from '../autograd/ops/movement.js';
import { fmtShape } from '../tensor/shape.js';
import { zeros } from '../tensor/create.js';
import type { Tensor } from '../tensor/tensor.js';
import { Dropout } from '../nn/activation.js';
import { Conv2d } from '../nn/conv.js';
import { dropout, scaledDotProductAttention } from '../nn/functional.js';
import { normal_, zeros_ } from '../nn/init.js';
import { Linear } from '../nn/linear.js';
import { Module, Parameter } from '../nn/module.js';
import { LayerNorm } from '../nn/normalization.js';
import { ConfigReader, PreTrainedModel, requireInput, type ModelInputs, type ModelOutput, type WeightSpec } from './base.js';
// The config fields, activations and classification losses ViT shares with BERT (transformers' copies of them).
import { ACTIVATIONS, activation, labelNames, PROBLEM_TYPES, sequenceClassificationLoss } from './bert.js';

// ---- config (Hugging Face's ViTConfig field names) ----

export interface ViTConfig {
  hidden_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  intermediate_size: number;
  hidden_act: (typeof ACTIVATIONS)[number];
  hidden_dropout_prob: number;
  attention_probs_dropout_prob: number;
  initializer_range: number;
  layer_norm_eps: number;
  /** Height and width the model takes (config.json holds one number for square images, or [h, w]). */
  image_size: [number, number];
  patch_size: [number, number];
  num_channels: number;
  qkv_bias: boolean;
  /** Class names by index, from id2label (or num_labels generic names, 2 by default, as transformers). */
  id2label: string[];
  label2id: Record<string, number>;
  num_labels: number;
  /** The loss for labels; null infers it from num_labels and the labels' dtype, as transformers does. */
  problem_type: (typeof PROBLEM_TYPES)[number] | null;
}

/** Reads a ViT config.json, checking every field it uses. */
export function vitConfig(r: ConfigReader): ViTConfig {
  const id2label = labelNames(r);
  const cfg: ViTConfig = {
    hidden_size: r.positive('hidden_size', 768), num_hidden_layers: r.count('num_hidden_layers', 12), num_attention_heads: r.positive('num_attention_heads', 12),
    intermediate_size: r.positive('intermediate_size', 3072), hidden_act: r.str('hidden_act', ACTIVATIONS, 'gelu'),
    hidden_dropout_prob: r.prob('hidden_dropout_prob', 0), attention_probs_dropout_prob: r.prob('attention_probs_dropout_prob', 0),
    initializer_range: r.num('initializer_range', 0.02), layer_norm_eps: r.positiveNum('layer_norm_eps', 1e-12),
    image_size: sizePair(r, 'image_size', 224), patch_size: sizePair(r, 'patch_size', 16), num_channels: r.positive('num_channels', 3),
    qkv_bias: r.bool('qkv_bias', true), id2label, label2id: Object.fromEntries(id2label.map((n, i) => [n, i])), num_labels: id2label.length,
    problem_type: r.optional('problem_type', (k) => r.str(k, PROBLEM_TYPES)) ?? null,
  };
  r.divides('num_attention_heads', cfg.num_attention_heads, 'hidden_size', cfg.hidden_size);
  for (const i of [0, 1]) r.divides('patch_size', cfg.patch_size[i]!, 'image_size', cfg.image_size[i]!);
  return cfg;
}

/** A size given as one number (square) or [height, width]. */
function sizePair(r: ConfigReader, key: string, dflt: number): [number, number] {
  const v = r.json[key] ?? dflt;
  if (Array.isArray(v) && v.length === 2 && v.every((d) => Number.isSafeInteger(d) && d >= 1)) return [v[0] as number, v[1] as number];
  const n = r.positive(key, dflt);
  return [n, n];
}

/** The checkpoint's parameters (from the config alone, so a checkpoint is checked before anything is allocated). */
export function vitWeights(cfg: ViTConfig): WeightSpec {
  const C = cfg.hidden_size, F = cfg.intermediate_size, [p, q] = cfg.patch_size, e = 'vit.embeddings.';
  const patches = (cfg.image_size[0] / p) * (cfg.image_size[1] / q);
  const shapes: Record<string, number[]> = {
    [`${e}cls_token`]: [1, 1, C], [`${e}position_embeddings`]: [1, patches + 1, C],
    [`${e}patch_embeddings.projection.weight`]: [C, cfg.num_channels, p, q], [`${e}patch_embeddings.projection.bias`]: [C],
  };
  const dense = (name: string, inF: number, outF: number, bias = true): void => {
    shapes[`${name}.weight`] = [outF, inF];
    if (bias) shapes[`${name}.bias`] = [outF];
  };
  const norm = (name: string): void => { shapes[`${name}.weight`] = [C]; shapes[`${name}.bias`] = [C]; };
  for (let i = 0; i < cfg.num_hidden_layers; i++) {
    const l = `vit.encoder.layer.${i}.`;
    for (const n of ['query', 'key', 'value']) dense(`${l}attention.attention.${n}`, C, C, cfg.qkv_bias);
    dense(`${l}attention.output.dense`, C, C);
    dense(`${l}intermediate.dense`, C, F);
    dense(`${l}output.dense`, F, C);
    norm(`${l}layernorm_before`);
    norm(`${l}layernorm_after`);
  }
  norm('vit.layernorm');
  dense('classifier', C, cfg.num_labels);
  return { shapes, tied: [] };
}

/** A Linear with ViT's initialisation: N(0, initializer_range) weights (transformers' truncation at +-2 never bites), zero bias. */
function dense(inF: number, outF: number, cfg: ViTConfig, bias = true): Linear {
  const l = new Linear(inF, outF, { bias });
  normal_(l.weight, 0, cfg.initializer_range);
  if (l.bias) zeros_(l.bias);
  return l;
}

// ---- embeddings / attention / MLP / layer ----

/** Non-overlapping patches through a conv with kernel = stride = patch size: [B, C, H, W] -> [B, N, hidden]. */
export class ViTPatchEmbeddings extends Module {
  projection: Conv2d;

  constructor(readonly config: ViTConfig) {
    super();
    this.projection = new Conv2d(config.num_channels, config.hidden_size, config.patch_size, { stride: config.patch_size });
    normal_(this.projection.weight, 0, config.initializer_range);
    zeros_(this.projection.bias!);
  }

  forward(pixelValues: Tensor): Tensor {
    const { num_channels: C, image_size: [H, W] } = this.config;
    if (pixelValues.ndim !== 4) throw new Error(`ViT: pixelValues must be [batch, channels, height, width], got ${fmtShape(pixelValues.shape)}`);
    const [, c, h, w] = pixelValues.shape as [number, number, number, number];
    if (c !== C) throw new Error(`ViT: pixelValues ${fmtShape(pixelValues.shape)} has ${c} channels, the model's num_channels is ${C}`);
    if (h !== H || w !== W) throw new Error(`ViT: image size ${h}x${w} (pixelValues ${fmtShape(pixelValues.shape)}) does not match the model's image_size ${H}x${W}`);
    // [B, hidden, H/p, W/q] -> [B, hidden, N] -> [B, N, hidden]
    return transpose(flatten(this.projection.forward(pixelValues), 2), 1, 2);
  }
}

export class ViTEmbeddings extends Module {
  cls_token: Parameter;
  position_embeddings: Parameter;
  patch_embeddings: ViTPatchEmbeddings;
  dropout: Dropout;

  constructor(config: ViTConfig) {
    super();
    const C = config.hidden_size, N = (config.image_size[0] / config.patch_size[0]) * (config.image_size[1] / config.patch_size[1]);
    this.cls_token = new Parameter(normal_(zeros([1, 1, C]), 0, config.initializer_range));
    this.position_embeddings = new Parameter(normal_(zeros([1, N + 1, C]), 0, config.initializer_range));
    this.patch_embeddings = new ViTPatchEmbeddings(config);
    this.dropout = new Dropout(config.hidden_dropout_prob);
  }

  /** [B, C, H, W] -> [B, 1 + N, hidden]: [CLS] first, then the patches row by row, each plus its position. */
  forward(pixelValues: Tensor): Tensor {
    const patches = this.patch_embeddings.forward(pixelValues);
    const [B, , C] = patches.shape as [number, number, number];
    const x = cat([expand(this.cls_token, [B, 1, C]), patches], 1);
    return this.dropout.forward(add(x, this.position_embeddings));
  }
}

export class ViTSelfAttention extends Module {
  query: Linear;
  key: Linear;
  value: Linear;
  private readonly nHead: number;
  private readonly attnPdrop: number;

  constructor(cfg: ViTConfig) {
    super();
    const C = cfg.hidden_size;
    this.query = dense(C, C, cfg, cfg.qkv_bias);
    this.key = dense(C, C, cfg, cfg.qkv_bias);
    this.value = dense(C, C, cfg, cfg.qkv_bias);
    this.nHead = cfg.num_attention_heads;
    this.attnPdrop = cfg.attention_probs_dropout_prob;
  }

  /**
   * x [B, T, C] -> [B, T, C], and the probabilities [B, nh, T, T] when asked for. clsOnly: only [CLS]'s query,
   * x [B, T, C] -> [B, 1, C] (keys and values of every token).
   */
  forward(x: Tensor, withProbs: boolean, clsOnly = false): [Tensor, Tensor | null] {
    const [B, T, C] = x.shape as [number, number, number];
    const hs = C / this.nHead, dropoutP = this.training ? this.attnPdrop : 0;
    if (clsOnly) {
      // [B, 1, C] -> [B, nh, 1, hs] against keys and values [B, nh, T, hs] -> [B, nh, 1, hs] -> [B, 1, C]
      const q = transpose(reshape(this.query.forward(narrow(x, 1, 0, 1)), [B, 1, this.nHead, hs]), 1, 2);
      const [k, v] = [this.key.forward(x), this.value.forward(x)].map((t) => transpose(reshape(t, [B, T, this.nHead, hs]), 1, 2)) as [Tensor, Tensor];
      return [reshape(transpose(scaledDotProductAttention(q, k, v, { dropoutP }), 1, 2), [B, 1, C]), null];
    }
    if (!withProbs && dropoutP === 0) {
      // One [B, T, 3C] projection with the three weights stacked, read in place by the fused kernel: no per-head copies.
      const bias = this.query.bias && cat([this.query.bias, this.key.bias!, this.value.bias!]);
      return [attentionPacked(linear(x, cat([this.query.weight, this.key.weight, this.value.weight]), bias), this.nHead), null];
    }
    // [B, T, C] -> [B, nh, T, hs]
    const heads = (t: Tensor) => transpose(reshape(t, [B, T, this.nHead, hs]), 1, 2);
    const [q, k, v] = [heads(this.query.forward(x)), heads(this.key.forward(x)), heads(this.value.forward(x))];
    let y: Tensor, probs: Tensor | null = null;
    if (withProbs) {
      // The maps themselves are wanted, so compose: [B*nh, T, T] @ [B*nh, T, hs] -> [B, nh, T, hs]
      probs = attentionProbs(q, k);
      y = reshape(bmm(reshape(dropout(probs, dropoutP), [B * this.nHead, T, T]), reshape(v, [B * this.nHead, T, hs])), [B, this.nHead, T, hs]);
    } else {
      y = scaledDotProductAttention(q, k, v, { dropoutP });
    }
    // [B, nh, T, hs] -> [B, T, C]
    return [reshape(transpose(y, 1, 2), [B, T, C]), probs];
  }
}

/** The projection after attention (the residual is added by the layer, as in transformers). */
export class ViTSelfOutput extends Module {
  dense: Linear;
  dropout: Dropout;

  constructor(cfg: ViTConfig) {
    super();
    this.dense = dense(cfg.hidden_size, cfg.hidden_size, cfg);
    this.dropout = new Dropout(cfg.hidden_dropout_prob);
  }

  forward(h: Tensor): Tensor {
    return this.dropout.forward(this.dense.forward(h));
  }
}

export class ViTAttention extends Module {
  attention: ViTSelfAttention;
  output: ViTSelfOutput;

  constructor(cfg: ViTConfig) {
    super();
    this.attention = new ViTSelfAttention(cfg);
    this.output = new ViTSelfOutput(cfg);
  }

  forward(x: Tensor, withProbs: boolean, clsOnly = false): [Tensor, Tensor | null] {
    const [h, probs] = this.attention.forward(x, withProbs, clsOnly);
    return [this.output.forward(h), probs];
  }
}

export class ViTIntermediate extends Module {
  dense: Linear;
  private readonly act: (x: Tensor) => Tensor;

  constructor(cfg: ViTConfig) {
    super();
    this.dense = dense(cfg.hidden_size, cfg.intermediate_size, cfg);
    this.act = activation(cfg.hidden_act);
  }

  forward(x: Tensor): Tensor {
    return this.act(this.dense.forward(x));
  }
}

/** dense -> dropout, plus the residual. */
export class ViTOutput extends Module {
  dense: Linear;
  dropout: Dropout;

  constructor(cfg: ViTConfig) {
    super();
    this.dense = dense(cfg.intermediate_size, cfg.hidden_size, cfg);
    this.dropout = new Dropout(cfg.hidden_dropout_prob);
  }

  forward(h: Tensor, residual: Tensor): Tensor {
    return add(this.dropout.forward(this.dense.forward(h)), residual);
  }
}

/** Pre-norm: x + attention(LN(x)), then h + MLP(LN(h)). */
export class ViTLayer extends Module {
  attention: ViTAttention;
  intermediate: ViTIntermediate;
  output: ViTOutput;
  layernorm_before: LayerNorm;
  layernorm_after: LayerNorm;

  constructor(cfg: ViTConfig) {
    super();
    this.attention = new ViTAttention(cfg);
    this.intermediate = new ViTIntermediate(cfg);
    this.output = new ViTOutput(cfg);
    this.layernorm_before = new LayerNorm(cfg.hidden_size, { eps: cfg.layer_norm_eps });
    this.layernorm_after = new LayerNorm(cfg.hidden_size, { eps: cfg.layer_norm_eps });
  }

  /** x [B, T, C] -> [B, T, C]; clsOnly: -> [B, 1, C], [CLS]'s row alone (the other rows still serve as keys and values). */
  forward(x: Tensor, withProbs: boolean, clsOnly = false): [Tensor, Tensor | null] {
    const [a, probs] = this.attention.forward(this.layernorm_before.forward(x), withProbs, clsOnly);
    const h = add(a, clsOnly ? narrow(x, 1, 0, 1) : x);
    return [this.output.forward(this.intermediate.forward(this.layernorm_after.forward(h)), h), probs];
  }
}

export class ViTEncoder extends Module {
  layer: ViTLayer[];

  constructor(cfg: ViTConfig) {
    super();
    this.layer = Array.from({ length: cfg.num_hidden_layers }, () => new ViTLayer(cfg));
  }

  /**
   * [B, T, C] -> the last layer's output [B, T, C] (transformers' hidden_states[-1]) and each layer's maps if asked;
   * clsOnly: the last layer computes [CLS]'s row alone, [B, 1, C].
   */
  forward(x: Tensor, outputAttentions = false, clsOnly = false): { hidden: Tensor; attentions: Tensor[] } {
    const attentions: Tensor[] = [];
    for (const [i, layer] of this.layer.entries()) {
      const [y, probs] = layer.forward(x, outputAttentions, clsOnly && i === this.layer.length - 1);
      x = y;
      if (probs) attentions.push(probs);
    }
    return { hidden: x, attentions };
  }
}

// ---- model ----

export class ViTModel extends Module {
  embeddings: ViTEmbeddings;
  encoder: ViTEncoder;
  layernorm: LayerNorm;

  constructor(readonly config: ViTConfig) {
    super();
    this.embeddings = new ViTEmbeddings(config);
    this.encoder = new ViTEncoder(config);
    this.layernorm = new LayerNorm(config.hidden_size, { eps: config.layer_norm_eps });
  }

  /**
   * images [B, C, H, W] -> hidden states [B, 1 + N, hidden] (after the final LayerNorm) and each layer's attention maps
   * if asked; clsOnly: [B, 1, hidden], the last layer run for [CLS] alone.
   */
  forward(pixelValues: Tensor, outputAttentions = false, clsOnly = false): { hidden: Tensor; attentions?: Tensor[] } {
    const { hidden, attentions } = this.encoder.forward(this.embeddings.forward(pixelValues), outputAttentions, clsOnly);
    return outputAttentions ? { hidden: this.layernorm.forward(hidden), attentions } : { hidden: this.layernorm.forward(hidden) };
  }
}

/** A label (or values) per image from the final [CLS] state. */
export class ViTForImageClassification extends PreTrainedModel {
  vit: ViTModel;
  classifier: Linear;

  constructor(readonly config: ViTConfig) {
    super();
    this.vit = new ViTModel(config);
    this.classifier = dense(config.hidden_size, config.num_labels, config);
  }

  /**
   * pixelValues [B, C, H, W] (as the image processor makes them) -> logits [B, num_labels]. labels: [B] class indices
   * (cross-entropy), [B] values when num_labels is 1 (mean squared error), or [B, num_labels] floats (multi-label
   * binary cross-entropy), chosen by problem_type or inferred as transformers does.
   */
  forward({ pixelValues, labels, outputAttentions }: ModelInputs): ModelOutput {
    const { hidden, attentions } = this.vit.forward(requireInput(pixelValues, 'pixelValues', 'ViT'), outputAttentions);
    const logits = this.classifier.forward(select(hidden, 1, 0)); // [B, hidden] of [CLS] -> [B, num_labels]
    const out: ModelOutput = attentions ? { logits, lastHiddenState: hidden, attentions } : { logits, lastHiddenState: hidden };
    if (!labels) return out;
    out.loss = sequenceClassificationLoss(logits, labels, this.config.problem_type);
    return out;
  }

  /**
   * pixelValues [B, C, H, W] -> logits [B, num_labels] alone, forward's values with the last layer run for [CLS] only:
   * no other row of it reaches the classifier, so training and evaluation skip that work (about 1/L of the layers').
   */
  logits(pixelValues: Tensor): Tensor {
    const { hidden } = this.vit.forward(pixelValues, false, true); // [B, 1, hidden]
    return this.classifier.forward(select(hidden, 1, 0));
  }
}
