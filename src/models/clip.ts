// CLIP: a text transformer and a vision transformer trained to agree, each projected into one embedding space where
// cosine similarity scores image-text pairs; parameter names as Hugging Face's.
//
// Paper: Radford et al., "Learning Transferable Visual Models From Natural Language Supervision" (2021).
// Reference: transformers/models/clip/modeling_clip.py (CLIPModel, CLIPTextTransformer, CLIPVisionTransformer).

import { attentionPacked } from '../autograd/ops/attention.js';
import { add, cast, div, eq, exp, gelu, mul, relu, sigmoid, silu, sqrt, where } from '../autograd/ops/elementwise.js';
import { gather } from '../autograd/ops/indexing.js';
import { linear, matmul } from '../autograd/ops/matmul.js';
import { cat, expand, flatten, reshape, select, transpose } from '../autograd/ops/movement.js';
import { argmax, sum } from '../autograd/ops/reduce.js';
import { arange, tensor, zeros } from '../tensor/create.js';
import { fmtShape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { Conv2d } from '../nn/conv.js';
import { Embedding } from '../nn/embedding.js';
import { crossEntropy } from '../nn/functional.js';
import { normal_, zeros_ } from '../nn/init.js';
import { Linear } from '../nn/linear.js';
import { Module, Parameter } from '../nn/module.js';
import { LayerNorm } from '../nn/normalization.js';
import { ConfigReader, keyMask, PreTrainedModel, requireInput, type ModelInputs, type ModelOutput, type WeightSpec } from './base.js';

// ---- config (Hugging Face's CLIPConfig / CLIPTextConfig / CLIPVisionConfig field names) ----

const ACTIVATIONS = ['quick_gelu', 'gelu', 'gelu_new', 'gelu_pytorch_tanh', 'relu', 'silu', 'swish'] as const;

/** What the two towers share: one pre-norm encoder each. */
interface CLIPEncoderConfig {
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  hidden_act: (typeof ACTIVATIONS)[number];
  layer_norm_eps: number;
  initializer_range: number;
}

export interface CLIPTextConfig extends CLIPEncoderConfig {
  vocab_size: number;
  max_position_embeddings: number;
  /** 2 selects the original pooling rule (the largest token id marks the end, as in OpenAI's vocabulary). */
  eos_token_id: number;
}

export interface CLIPVisionConfig extends CLIPEncoderConfig {
  image_size: number;
  patch_size: number;
  num_channels: number;
}

export interface CLIPConfig {
  text_config: CLIPTextConfig;
  vision_config: CLIPVisionConfig;
  projection_dim: number;
  logit_scale_init_value: number;
}

/** A reader for one sub-config ("text_config"), its errors naming the file and the sub-config. */
function subReader(r: ConfigReader, key: string): ConfigReader {
  const v = r.json[key] ?? {};
  if (typeof v !== 'object' || v === null || Array.isArray(v)) r.fail(key, 'an object');
  return new ConfigReader(v as Record<string, unknown>, `${r.path} (${key})`);
}

function encoderConfig(r: ConfigReader, dflt: { hidden: number; inner: number; heads: number }): CLIPEncoderConfig {
  const cfg = {
    hidden_size: r.positive('hidden_size', dflt.hidden), intermediate_size: r.positive('intermediate_size', dflt.inner),
    num_hidden_layers: r.count('num_hidden_layers', 12), num_attention_heads: r.positive('num_attention_heads', dflt.heads),
    hidden_act: r.str('hidden_act', ACTIVATIONS, 'quick_gelu'), layer_norm_eps: r.positiveNum('layer_norm_eps', 1e-5),
    initializer_range: r.num('initializer_range', 0.02),
  };
  r.divides('num_attention_heads', cfg.num_attention_heads, 'hidden_size', cfg.hidden_size);
  return cfg;
}

/** Reads a CLIP config.json (transformers' defaults: openai/clip-vit-base-patch32), checking every field it uses. */
export function clipConfig(r: ConfigReader): CLIPConfig {
  const t = subReader(r, 'text_config'), v = subReader(r, 'vision_config');
  const vision: CLIPVisionConfig = {
    ...encoderConfig(v, { hidden: 768, inner: 3072, heads: 12 }),
    image_size: v.positive('image_size', 224), patch_size: v.positive('patch_size', 32), num_channels: v.positive('num_channels', 3),
  };
  v.divides('patch_size', vision.patch_size, 'image_size', vision.image_size);
  return {
    text_config: {
      ...encoderConfig(t, { hidden: 512, inner: 2048, heads: 8 }),
      vocab_size: t.positive('vocab_size', 49408), max_position_embeddings: t.positive('max_position_embeddings', 77), eos_token_id: t.int('eos_token_id', 49407),
    },
    vision_config: vision,
    projection_dim: r.positive('projection_dim', 512), logit_scale_init_value: r.num('logit_scale_init_value', 2.6592),
  };
}

/** The checkpoint's parameters (from the config alone, so a checkpoint is checked before anything is allocated). */
export function clipWeights(cfg: CLIPConfig): WeightSpec {
  const shapes: Record<string, number[]> = {};
  const dense = (name: string, inF: number, outF: number, bias = true): void => {
    shapes[`${name}.weight`] = [outF, inF];
    if (bias) shapes[`${name}.bias`] = [outF];
  };
  const norm = (name: string, C: number): void => { shapes[`${name}.weight`] = [C]; shapes[`${name}.bias`] = [C]; };
  const encoder = (prefix: string, c: CLIPEncoderConfig): void => {
    const C = c.hidden_size;
    for (let i = 0; i < c.num_hidden_layers; i++) {
      const l = `${prefix}.encoder.layers.${i}.`;
      for (const n of ['q_proj', 'k_proj', 'v_proj', 'out_proj']) dense(`${l}self_attn.${n}`, C, C);
      norm(`${l}layer_norm1`, C);
      dense(`${l}mlp.fc1`, C, c.intermediate_size);
      dense(`${l}mlp.fc2`, c.intermediate_size, C);
      norm(`${l}layer_norm2`, C);
    }
  };
  const t = cfg.text_config, v = cfg.vision_config, P = v.patch_size;
  shapes['text_model.embeddings.token_embedding.weight'] = [t.vocab_size, t.hidden_size];
  shapes['text_model.embeddings.position_embedding.weight'] = [t.max_position_embeddings, t.hidden_size];
  encoder('text_model', t);
  norm('text_model.final_layer_norm', t.hidden_size);
  shapes['vision_model.embeddings.class_embedding'] = [v.hidden_size];
  shapes['vision_model.embeddings.patch_embedding.weight'] = [v.hidden_size, v.num_channels, P, P];
  shapes['vision_model.embeddings.position_embedding.weight'] = [(v.image_size / P) ** 2 + 1, v.hidden_size];
  norm('vision_model.pre_layrnorm', v.hidden_size);
  encoder('vision_model', v);
  norm('vision_model.post_layernorm', v.hidden_size);
  dense('text_projection', t.hidden_size, cfg.projection_dim, false);
  dense('visual_projection', v.hidden_size, cfg.projection_dim, false);
  shapes['logit_scale'] = [];
  return { shapes, tied: [] };
}

function activation(name: CLIPEncoderConfig['hidden_act']): (x: Tensor) => Tensor {
  switch (name) {
    case 'quick_gelu': return (x) => mul(x, sigmoid(mul(x, 1.702))); // x * sigmoid(1.702 x), OpenAI's approximation
    case 'gelu': return (x) => gelu(x);
    case 'gelu_new':
    case 'gelu_pytorch_tanh': return (x) => gelu(x, 'tanh');
    case 'relu': return relu;
    case 'silu':
    case 'swish': return silu;
  }
}

/** A Linear with N(0, initializer_range) weights and zero bias (training from scratch; checkpoints overwrite it). */
function dense(inF: number, outF: number, std: number, bias = true): Linear {
  const l = new Linear(inF, outF, { bias });
  normal_(l.weight, 0, std);
  if (l.bias) zeros_(l.bias);
  return l;
}

// ---- attention / MLP / layer / encoder (the same in both towers) ----

export class CLIPAttention extends Module {
  q_proj: Linear;
  k_proj: Linear;
  v_proj: Linear;
  out_proj: Linear;
  private readonly nHead: number;

  constructor(cfg: CLIPEncoderConfig) {
    super();
    const C = cfg.hidden_size, std = cfg.initializer_range;
    this.q_proj = dense(C, C, std);
    this.k_proj = dense(C, C, std);
    this.v_proj = dense(C, C, std);
    this.out_proj = dense(C, C, std);
    this.nHead = cfg.num_attention_heads;
  }

  /** x [B, T, C] -> [B, T, C]; bias: additive [B, 1, 1, T] (-Infinity on padding) or null; causal for the text tower. */
  forward(x: Tensor, bias: Tensor | null, causal: boolean): Tensor {
    // One [B, T, 3C] projection with the three weights stacked, read in place by the fused kernel: no per-head copies.
    const w = cat([this.q_proj.weight, this.k_proj.weight, this.v_proj.weight]);
    const b = cat([this.q_proj.bias!, this.k_proj.bias!, this.v_proj.bias!]);
    return this.out_proj.forward(attentionPacked(linear(x, w, b), this.nHead, { bias, causal }));
  }
}

export class CLIPMLP extends Module {
  fc1: Linear;
  fc2: Linear;
  private readonly act: (x: Tensor) => Tensor;

  constructor(cfg: CLIPEncoderConfig) {
    super();
    this.fc1 = dense(cfg.hidden_size, cfg.intermediate_size, cfg.initializer_range);
    this.fc2 = dense(cfg.intermediate_size, cfg.hidden_size, cfg.initializer_range);
    this.act = activation(cfg.hidden_act);
  }

  forward(x: Tensor): Tensor {
    return this.fc2.forward(this.act(this.fc1.forward(x)));
  }
}

/** Pre-norm: x + attention(LN(x)), then h + MLP(LN(h)). */
export class CLIPEncoderLayer extends Module {
  self_attn: CLIPAttention;
  layer_norm1: LayerNorm;
  mlp: CLIPMLP;
  layer_norm2: LayerNorm;

  constructor(cfg: CLIPEncoderConfig) {
    super();
    this.self_attn = new CLIPAttention(cfg);
    this.layer_norm1 = new LayerNorm(cfg.hidden_size, { eps: cfg.layer_norm_eps });
    this.mlp = new CLIPMLP(cfg);
    this.layer_norm2 = new LayerNorm(cfg.hidden_size, { eps: cfg.layer_norm_eps });
  }

  forward(x: Tensor, bias: Tensor | null, causal: boolean): Tensor {
    const h = add(x, this.self_attn.forward(this.layer_norm1.forward(x), bias, causal));
    return add(h, this.mlp.forward(this.layer_norm2.forward(h)));
  }
}

export class CLIPEncoder extends Module {
  layers: CLIPEncoderLayer[];

  constructor(cfg: CLIPEncoderConfig) {
    super();
    this.layers = Array.from({ length: cfg.num_hidden_layers }, () => new CLIPEncoderLayer(cfg));
  }

  forward(x: Tensor, bias: Tensor | null, causal: boolean): Tensor {
    for (const layer of this.layers) x = layer.forward(x, bias, causal);
    return x;
  }
}

// ---- text tower ----

export class CLIPTextEmbeddings extends Module {
  token_embedding: Embedding;
  position_embedding: Embedding;

  constructor(readonly config: CLIPTextConfig) {
    super();
    this.token_embedding = new Embedding(config.vocab_size, config.hidden_size);
    this.position_embedding = new Embedding(config.max_position_embeddings, config.hidden_size);
    normal_(this.token_embedding.weight, 0, config.initializer_range);
    normal_(this.position_embedding.weight, 0, config.initializer_range);
  }

  /** ids [B, T] -> [B, T, C]: token plus learned position 0 .. T - 1. */
  forward(inputIds: Tensor): Tensor {
    const T = inputIds.shape[1]!;
    return add(this.token_embedding.forward(inputIds), this.position_embedding.forward(arange(T, undefined, 1, { device: inputIds.device })));
  }
}

export class CLIPTextTransformer extends Module {
  embeddings: CLIPTextEmbeddings;
  encoder: CLIPEncoder;
  final_layer_norm: LayerNorm;

  constructor(readonly config: CLIPTextConfig) {
    super();
    this.embeddings = new CLIPTextEmbeddings(config);
    this.encoder = new CLIPEncoder(config);
    this.final_layer_norm = new LayerNorm(config.hidden_size, { eps: config.layer_norm_eps });
  }

  /** ids [B, T] -> last hidden state [B, T, C] (causal, after the final LayerNorm) and the pooled [B, C] at the end token. */
  forward(inputIds: Tensor, attentionMask?: Tensor | null): { hidden: Tensor; pooled: Tensor } {
    if (inputIds.ndim !== 2) throw new Error(`CLIP: inputIds must be [batch, time], got ${fmtShape(inputIds.shape)}`);
    const [B, T] = inputIds.shape as [number, number];
    const limit = this.config.max_position_embeddings;
    if (T > limit) throw new Error(`CLIP: ${T} tokens exceed the text model's max_position_embeddings = ${limit}`);
    if (T === 0) throw new Error('CLIP: inputIds has no tokens');
    const bias = attentionMask ? where(keyMask(attentionMask, B, T, 'CLIP: attentionMask'), 0, -Infinity) : null;
    const hidden = this.final_layer_norm.forward(this.encoder.forward(this.embeddings.forward(inputIds), bias, true));
    // transformers' rule: with the legacy eos_token_id 2 the end token is the largest id (OpenAI's vocabulary puts it
    // last); otherwise the first position holding eos_token_id.
    const ids = cast(inputIds, 'int32'), eos = this.config.eos_token_id;
    const end = eos === 2 ? argmax(ids, -1) : argmax(cast(eq(ids, eos), 'int32'), -1); // [B]
    const C = hidden.shape[2]!;
    // [B] -> [B, 1, C] index; [B, T, C] gathered at it -> [B, 1, C] -> [B, C]
    const pooled = reshape(gather(hidden, 1, expand(reshape(end, [B, 1, 1]), [B, 1, C])), [B, C]);
    return { hidden, pooled };
  }
}

// ---- vision tower ----

export class CLIPVisionEmbeddings extends Module {
  class_embedding: Parameter;
  patch_embedding: Conv2d;
  position_embedding: Embedding;

  constructor(readonly config: CLIPVisionConfig) {
    super();
    const C = config.hidden_size, P = config.patch_size, N = (config.image_size / P) ** 2;
    this.class_embedding = new Parameter(normal_(zeros([C]), 0, config.initializer_range));
    this.patch_embedding = new Conv2d(config.num_channels, C, P, { stride: P, bias: false });
    this.position_embedding = new Embedding(N + 1, C);
    normal_(this.position_embedding.weight, 0, config.initializer_range);
  }

  /** [B, ch, H, W] -> [B, 1 + N, C]: the class embedding first, then the patches row by row, each plus its position. */
  forward(pixelValues: Tensor): Tensor {
    const { num_channels: ch, image_size: S } = this.config;
    if (pixelValues.ndim !== 4) throw new Error(`CLIP: pixelValues must be [batch, channels, height, width], got ${fmtShape(pixelValues.shape)}`);
    const [B, c, h, w] = pixelValues.shape as [number, number, number, number];
    if (c !== ch) throw new Error(`CLIP: pixelValues ${fmtShape(pixelValues.shape)} has ${c} channels, the model's num_channels is ${ch}`);
    if (h !== S || w !== S) throw new Error(`CLIP: image size ${h}x${w} (pixelValues ${fmtShape(pixelValues.shape)}) does not match the model's image_size ${S}x${S}`);
    const C = this.config.hidden_size;
    // [B, C, H/P, W/P] -> [B, C, N] -> [B, N, C]
    const patches = transpose(flatten(this.patch_embedding.forward(cast(pixelValues, this.patch_embedding.weight.dtype)), 2), 1, 2);
    const x = cat([expand(reshape(this.class_embedding, [1, 1, C]), [B, 1, C]), patches], 1);
    return add(x, this.position_embedding.weight);
  }
}

export class CLIPVisionTransformer extends Module {
  embeddings: CLIPVisionEmbeddings;
  pre_layrnorm: LayerNorm; // sic: transformers' name
  encoder: CLIPEncoder;
  post_layernorm: LayerNorm;

  constructor(readonly config: CLIPVisionConfig) {
    super();
    this.embeddings = new CLIPVisionEmbeddings(config);
    this.pre_layrnorm = new LayerNorm(config.hidden_size, { eps: config.layer_norm_eps });
    this.encoder = new CLIPEncoder(config);
    this.post_layernorm = new LayerNorm(config.hidden_size, { eps: config.layer_norm_eps });
  }

  /** images [B, ch, H, W] -> last hidden state [B, 1 + N, C] (no final norm) and the pooled class token [B, C] (post-norm). */
  forward(pixelValues: Tensor): { hidden: Tensor; pooled: Tensor } {
    const hidden = this.encoder.forward(this.pre_layrnorm.forward(this.embeddings.forward(pixelValues)), null, false);
    return { hidden, pooled: this.post_layernorm.forward(select(hidden, 1, 0)) };
  }
}

// ---- model ----

/** CLIPModel.forward's inputs: text and images together; returnLoss adds the symmetric contrastive loss. */
export interface CLIPInputs extends ModelInputs {
  returnLoss?: boolean;
}

/** transformers' CLIPOutput; `logits` is logitsPerImage (so generic code that reads logits gets the image-text scores). */
export interface CLIPOutput extends ModelOutput {
  /** [B_images, B_texts]: exp(logit_scale) * cosine similarity. */
  logitsPerImage: Tensor;
  /** [B_texts, B_images]: its transpose. */
  logitsPerText: Tensor;
  /** Projected and L2-normalized: [B_texts, projection_dim], [B_images, projection_dim]. */
  textEmbeds: Tensor;
  imageEmbeds: Tensor;
  textLastHiddenState: Tensor;
  visionLastHiddenState: Tensor;
}

/** x / ||x|| along the last dimension. */
const l2normalize = (x: Tensor): Tensor => div(x, sqrt(sum(mul(x, x), -1, true)));

export class CLIPModel extends PreTrainedModel {
  text_model: CLIPTextTransformer;
  vision_model: CLIPVisionTransformer;
  text_projection: Linear;
  visual_projection: Linear;
  logit_scale: Parameter;

  constructor(readonly config: CLIPConfig) {
    super();
    this.text_model = new CLIPTextTransformer(config.text_config);
    this.vision_model = new CLIPVisionTransformer(config.vision_config);
    this.text_projection = dense(config.text_config.hidden_size, config.projection_dim, config.text_config.initializer_range, false);
    this.visual_projection = dense(config.vision_config.hidden_size, config.projection_dim, config.vision_config.initializer_range, false);
    this.logit_scale = new Parameter(tensor(config.logit_scale_init_value));
  }

  /** Text features [B, projection_dim]: the pooled end token through text_projection (not normalized, as transformers). */
  getTextFeatures({ inputIds, attentionMask }: Pick<ModelInputs, 'inputIds' | 'attentionMask'>): Tensor {
    return this.text_projection.forward(this.text_model.forward(requireInput(inputIds, 'inputIds', 'CLIP'), attentionMask).pooled);
  }

  /** Image features [B, projection_dim]: the post-normed class token through visual_projection (not normalized). */
  getImageFeatures({ pixelValues }: Pick<ModelInputs, 'pixelValues'>): Tensor {
    return this.visual_projection.forward(this.vision_model.forward(requireInput(pixelValues, 'pixelValues', 'CLIP')).pooled);
  }

  /** Every image against every text: inputIds [B_t, T] (+ attentionMask), pixelValues [B_i, ch, H, W]. */
  forward({ inputIds, attentionMask, pixelValues, returnLoss, outputAttentions }: CLIPInputs): CLIPOutput {
    if (outputAttentions) throw new Error('CLIP: outputAttentions is not supported');
    const text = this.text_model.forward(requireInput(inputIds, 'inputIds', 'CLIP'), attentionMask);
    const vision = this.vision_model.forward(requireInput(pixelValues, 'pixelValues', 'CLIP'));
    const textEmbeds = l2normalize(this.text_projection.forward(text.pooled));
    const imageEmbeds = l2normalize(this.visual_projection.forward(vision.pooled));
    // [B_t, D] @ [D, B_i] -> [B_t, B_i], scaled by the learned temperature
    const logitsPerText = mul(matmul(textEmbeds, transpose(imageEmbeds, 0, 1)), exp(this.logit_scale));
    const logitsPerImage = transpose(logitsPerText, 0, 1);
    const out: CLIPOutput = {
      logits: logitsPerImage, logitsPerImage, logitsPerText, textEmbeds, imageEmbeds,
      textLastHiddenState: text.hidden, visionLastHiddenState: vision.hidden,
    };
    if (returnLoss) out.loss = clipLoss(logitsPerText);
    return out;
  }
}

/** transformers' clip_loss: the mean of cross-entropy over texts (each text's image is its own index) and over images. */
export function clipLoss(logitsPerText: Tensor): Tensor {
  const [Bt, Bi] = logitsPerText.shape as [number, number];
  if (Bt !== Bi) throw new Error(`CLIP: the contrastive loss pairs text i with image i, got ${Bt} texts and ${Bi} images`);
  const target = arange(Bt, undefined, 1, { device: logitsPerText.device });
  return mul(add(crossEntropy(logitsPerText, target), crossEntropy(transpose(logitsPerText, 0, 1), target)), 0.5);
}
