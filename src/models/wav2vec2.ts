// wav2vec 2.0 with a CTC head: conv feature encoder on raw audio, weight-normed convolutional positions, transformer encoder.
//
// Paper: Baevski et al., "wav2vec 2.0: A Framework for Self-Supervised Learning of Speech Representations" (2020).
// Reference: transformers/models/wav2vec2/modeling_wav2vec2.py (Wav2Vec2ForCTC).

import { ctcLoss } from '../autograd/ops/ctc.js';
import { add, cast, div, floor, ge, gelu, lt, mul, relu, silu, sqrt, sub, where } from '../autograd/ops/elementwise.js';
import { logSoftmax } from '../autograd/ops/nn.js';
import { reshape, slice, transpose, unsqueeze } from '../autograd/ops/movement.js';
import { sum } from '../autograd/ops/reduce.js';
import { arange, full, zeros } from '../tensor/create.js';
import { defaultGenerator } from '../tensor/random.js';
import { isFloat } from '../tensor/dtype.js';
import { fmtShape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { Dropout } from '../nn/activation.js';
import { Conv1d } from '../nn/conv.js';
import { conv1d, scaledDotProductAttention } from '../nn/functional.js';
import { normal_, zeros_ } from '../nn/init.js';
import { Linear } from '../nn/linear.js';
import { Module, Parameter } from '../nn/module.js';
import { GroupNorm, LayerNorm } from '../nn/normalization.js';
import { ConfigReader, PreTrainedModel, requireInput, type ModelInputs, type ModelOutput, type WeightSpec } from './base.js';

// ---- config (Hugging Face's Wav2Vec2Config field names) ----

const ACTIVATIONS = ['gelu', 'gelu_new', 'gelu_pytorch_tanh', 'relu', 'silu', 'swish'] as const;
type Activation = (typeof ACTIVATIONS)[number];

export interface Wav2Vec2Config {
  vocab_size: number;
  hidden_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  intermediate_size: number;
  hidden_act: Activation;
  hidden_dropout: number;
  activation_dropout: number;
  attention_dropout: number;
  feat_proj_dropout: number;
  final_dropout: number;
  /** Probability of skipping a whole encoder layer in training. */
  layerdrop: number;
  layer_norm_eps: number;
  /** 'group': GroupNorm (one group per channel) after the first conv only; 'layer': LayerNorm over channels after every conv. */
  feat_extract_norm: 'group' | 'layer';
  feat_extract_activation: Activation;
  conv_dim: number[];
  conv_stride: number[];
  conv_kernel: number[];
  conv_bias: boolean;
  num_conv_pos_embeddings: number;
  num_conv_pos_embedding_groups: number;
  /** true: pre-norm layers and a final LayerNorm (large models); false: post-norm layers, LayerNorm before them. */
  do_stable_layer_norm: boolean;
  pad_token_id: number;
  ctc_loss_reduction: 'mean' | 'sum';
  ctc_zero_infinity: boolean;
  initializer_range: number;
}

/** A list of positive integers (conv_dim, conv_kernel, conv_stride), naming the file and key when it is not. */
function intList(r: ConfigReader, key: string, dflt: number[]): number[] {
  const v = r.json[key] ?? dflt;
  if (!Array.isArray(v) || v.length === 0 || v.length > 64 || !v.every((d) => Number.isSafeInteger(d) && (d as number) >= 1)) {
    r.fail(key, 'a non-empty list of positive integers');
  }
  return v as number[];
}

/** Reads a wav2vec2 config.json (defaults as Wav2Vec2Config's), checking every field it uses. */
export function wav2vec2Config(r: ConfigReader): Wav2Vec2Config {
  const cfg: Wav2Vec2Config = {
    vocab_size: r.positive('vocab_size', 32), hidden_size: r.positive('hidden_size', 768), num_hidden_layers: r.count('num_hidden_layers', 12),
    num_attention_heads: r.positive('num_attention_heads', 12), intermediate_size: r.positive('intermediate_size', 3072),
    hidden_act: r.str('hidden_act', ACTIVATIONS, 'gelu'), hidden_dropout: r.prob('hidden_dropout', 0.1), activation_dropout: r.prob('activation_dropout', 0.1),
    attention_dropout: r.prob('attention_dropout', 0.1), feat_proj_dropout: r.prob('feat_proj_dropout', 0), final_dropout: r.prob('final_dropout', 0.1),
    layerdrop: r.prob('layerdrop', 0.1), layer_norm_eps: r.positiveNum('layer_norm_eps', 1e-5), feat_extract_norm: r.str('feat_extract_norm', ['group', 'layer'], 'group'),
    feat_extract_activation: r.str('feat_extract_activation', ACTIVATIONS, 'gelu'),
    conv_dim: intList(r, 'conv_dim', [512, 512, 512, 512, 512, 512, 512]), conv_stride: intList(r, 'conv_stride', [5, 2, 2, 2, 2, 2, 2]),
    conv_kernel: intList(r, 'conv_kernel', [10, 3, 3, 3, 3, 2, 2]), conv_bias: r.bool('conv_bias', false),
    num_conv_pos_embeddings: r.positive('num_conv_pos_embeddings', 128), num_conv_pos_embedding_groups: r.positive('num_conv_pos_embedding_groups', 16),
    do_stable_layer_norm: r.bool('do_stable_layer_norm', false), pad_token_id: r.int('pad_token_id', 0),
    ctc_loss_reduction: r.str('ctc_loss_reduction', ['mean', 'sum'], 'sum'), ctc_zero_infinity: r.bool('ctc_zero_infinity', false),
    initializer_range: r.num('initializer_range', 0.02),
  };
  const n = cfg.conv_dim.length;
  if (cfg.conv_kernel.length !== n || cfg.conv_stride.length !== n) {
    throw new Error(`${r.path}: "conv_dim", "conv_kernel" and "conv_stride" must have the same length, got ${n}, ${cfg.conv_kernel.length} and ${cfg.conv_stride.length}`);
  }
  r.divides('num_attention_heads', cfg.num_attention_heads, 'hidden_size', cfg.hidden_size);
  r.divides('num_conv_pos_embedding_groups', cfg.num_conv_pos_embedding_groups, 'hidden_size', cfg.hidden_size);
  if (cfg.pad_token_id >= cfg.vocab_size) throw new Error(`${r.path}: "pad_token_id" (${cfg.pad_token_id}) is the CTC blank and must be below "vocab_size" (${cfg.vocab_size})`);
  // The adapter (conv layers after the encoder) and per-language attention adapters are not implemented.
  if (r.json['add_adapter'] === true) r.fail('add_adapter', 'false (the adapter is not supported)');
  if (r.json['adapter_attn_dim'] !== undefined && r.json['adapter_attn_dim'] !== null) r.fail('adapter_attn_dim', 'null (attention adapters are not supported)');
  return cfg;
}

/** The checkpoint's parameters by name and shape, from the config alone (checked before anything is allocated). */
export function wav2vec2Weights(cfg: Wav2Vec2Config): WeightSpec {
  const H = cfg.hidden_size, I = cfg.intermediate_size, shapes: Record<string, number[]> = {};
  const dense = (name: string, inF: number, outF: number): void => { shapes[`${name}.weight`] = [outF, inF]; shapes[`${name}.bias`] = [outF]; };
  const norm = (name: string, C: number): void => { shapes[`${name}.weight`] = [C]; shapes[`${name}.bias`] = [C]; };
  cfg.conv_dim.forEach((C, i) => {
    const p = `wav2vec2.feature_extractor.conv_layers.${i}.`;
    shapes[`${p}conv.weight`] = [C, i === 0 ? 1 : cfg.conv_dim[i - 1]!, cfg.conv_kernel[i]!];
    if (cfg.conv_bias) shapes[`${p}conv.bias`] = [C];
    if (cfg.feat_extract_norm === 'layer' || i === 0) norm(`${p}layer_norm`, C);
  });
  const last = cfg.conv_dim[cfg.conv_dim.length - 1]!, k = cfg.num_conv_pos_embeddings;
  norm('wav2vec2.feature_projection.layer_norm', last);
  dense('wav2vec2.feature_projection.projection', last, H);
  const pos = 'wav2vec2.encoder.pos_conv_embed.conv.';
  Object.assign(shapes, {
    [`${pos}bias`]: [H], [`${pos}parametrizations.weight.original0`]: [1, 1, k], [`${pos}parametrizations.weight.original1`]: [H, H / cfg.num_conv_pos_embedding_groups, k],
  });
  norm('wav2vec2.encoder.layer_norm', H);
  for (let i = 0; i < cfg.num_hidden_layers; i++) {
    const p = `wav2vec2.encoder.layers.${i}.`;
    for (const n of ['k_proj', 'v_proj', 'q_proj', 'out_proj']) dense(`${p}attention.${n}`, H, H);
    norm(`${p}layer_norm`, H);
    dense(`${p}feed_forward.intermediate_dense`, H, I);
    dense(`${p}feed_forward.output_dense`, I, H);
    norm(`${p}final_layer_norm`, H);
  }
  dense('lm_head', H, cfg.vocab_size);
  return { shapes, tied: [] };
}

/**
 * transformers' renaming of old checkpoint keys: weight_norm's `weight_g` / `weight_v` (torch.nn.utils.weight_norm) are
 * the parametrization's `original0` / `original1` (torch.nn.utils.parametrizations.weight_norm).
 */
export function wav2vec2RenameKey(key: string): string {
  return key.replace(/\.weight_g$/, '.parametrizations.weight.original0').replace(/\.weight_v$/, '.parametrizations.weight.original1');
}

function activation(name: Activation): (x: Tensor) => Tensor {
  switch (name) {
    case 'gelu': return (x) => gelu(x);
    case 'gelu_new':
    case 'gelu_pytorch_tanh': return (x) => gelu(x, 'tanh');
    case 'relu': return relu;
    case 'silu':
    case 'swish': return silu;
  }
}

/** A Linear with wav2vec2's initialisation: N(0, initializer_range) weights, zero bias. */
function dense(inF: number, outF: number, cfg: Wav2Vec2Config): Linear {
  const l = new Linear(inF, outF);
  normal_(l.weight, 0, cfg.initializer_range);
  zeros_(l.bias!);
  return l;
}

/** HF's _get_feat_extract_output_lengths for one length: floor((L - k) / s) + 1 per conv layer (0 when too short). */
function framesFor(cfg: Wav2Vec2Config, samples: number): number {
  let n = samples;
  cfg.conv_kernel.forEach((k, i) => { n = n >= k ? Math.floor((n - k) / cfg.conv_stride[i]!) + 1 : 0; });
  return n;
}

/** The fewest samples that give one output frame: each layer needs k + (n - 1) * s inputs for n outputs. */
function minSamples(cfg: Wav2Vec2Config): number {
  let n = 1;
  for (let i = cfg.conv_kernel.length - 1; i >= 0; i--) n = cfg.conv_kernel[i]! + (n - 1) * cfg.conv_stride[i]!;
  return n;
}

// ---- feature encoder and projection ----

/** One conv of the feature encoder: conv -> (GroupNorm | LayerNorm over channels | nothing) -> activation. */
export class Wav2Vec2ConvLayer extends Module {
  conv: Conv1d;
  layer_norm: GroupNorm | LayerNorm | null;
  private readonly act: (x: Tensor) => Tensor;

  constructor(cfg: Wav2Vec2Config, i: number) {
    super();
    const C = cfg.conv_dim[i]!;
    this.conv = new Conv1d(i === 0 ? 1 : cfg.conv_dim[i - 1]!, C, cfg.conv_kernel[i]!, { stride: cfg.conv_stride[i]!, bias: cfg.conv_bias });
    // torch defaults (eps 1e-5), as transformers builds these norms without layer_norm_eps.
    this.layer_norm = cfg.feat_extract_norm === 'layer' ? new LayerNorm(C) : i === 0 ? new GroupNorm(C, C) : null;
    this.act = activation(cfg.feat_extract_activation);
  }

  /** x [B, C_in, L] -> [B, C, L'] */
  forward(x: Tensor): Tensor {
    let h = this.conv.forward(x);
    if (this.layer_norm instanceof GroupNorm) h = this.layer_norm.forward(h);
    // [B, C, L'] -> [B, L', C] -> LayerNorm over C -> [B, C, L']
    else if (this.layer_norm) h = transpose(this.layer_norm.forward(transpose(h, 1, 2)), 1, 2);
    return this.act(h);
  }
}

export class Wav2Vec2FeatureEncoder extends Module {
  conv_layers: Wav2Vec2ConvLayer[];

  constructor(cfg: Wav2Vec2Config) {
    super();
    this.conv_layers = cfg.conv_dim.map((_, i) => new Wav2Vec2ConvLayer(cfg, i));
  }

  /** samples [B, S] -> features [B, C, frames] */
  forward(inputValues: Tensor): Tensor {
    let h = unsqueeze(inputValues, 1); // [B, 1, S]
    for (const layer of this.conv_layers) h = layer.forward(h);
    return h;
  }
}

export class Wav2Vec2FeatureProjection extends Module {
  layer_norm: LayerNorm;
  projection: Linear;
  dropout: Dropout;

  constructor(cfg: Wav2Vec2Config) {
    super();
    const C = cfg.conv_dim[cfg.conv_dim.length - 1]!;
    this.layer_norm = new LayerNorm(C, { eps: cfg.layer_norm_eps });
    this.projection = new Linear(C, cfg.hidden_size); // torch's default init (transformers: U(+-1/sqrt(C)))
    this.dropout = new Dropout(cfg.feat_proj_dropout);
  }

  /** [B, frames, C] -> [B, frames, hidden] */
  forward(x: Tensor): Tensor {
    return this.dropout.forward(this.projection.forward(this.layer_norm.forward(x)));
  }
}

// ---- convolutional positional embedding with weight norm ----

/** torch's weight_norm(dim=2) parametrization: weight = g * v / ||v||, the norm over every dim but the kernel's. */
export class WeightNorm extends Module {
  /** g [1, 1, k] */
  original0: Parameter;
  /** v [out, in / groups, k] */
  original1: Parameter;

  constructor(v: Tensor) {
    super();
    this.original1 = new Parameter(v);
    this.original0 = new Parameter(WeightNorm.norm(v)); // weight_norm starts with g = ||v||, so weight = v
  }

  /** ||v|| over dims 0 and 1: [out, in / groups, k] -> [1, 1, k] */
  static norm(v: Tensor): Tensor {
    return sqrt(sum(mul(v, v), [0, 1], true));
  }

  /** The conv weight [out, in / groups, k]; gradients reach g and v. */
  weight(): Tensor {
    return mul(this.original1, div(this.original0, WeightNorm.norm(this.original1)));
  }
}

/** The `parametrizations` container torch puts on a module, so that names match: conv.parametrizations.weight.original0. */
export class Parametrizations extends Module {
  constructor(public weight: WeightNorm) {
    super();
  }
}

/** A grouped Conv1d whose weight is weight-normed (the positional conv), padded by k // 2 on both sides. */
export class WeightNormConv1d extends Module {
  bias: Parameter;
  parametrizations: Parametrizations;

  constructor(channels: number, private readonly k: number, private readonly groups: number) {
    super();
    // transformers' init: N(0, 2 / sqrt(k * H)) weight, zero bias.
    this.bias = new Parameter(zeros([channels]));
    this.parametrizations = new Parametrizations(new WeightNorm(normal_(zeros([channels, channels / groups, k]), 0, 2 * Math.sqrt(1 / (k * channels)))));
  }

  /** [B, H, T] -> [B, H, T + 1 - k % 2] */
  forward(x: Tensor): Tensor {
    return conv1d(x, this.parametrizations.weight.weight(), this.bias, { padding: Math.floor(this.k / 2), groups: this.groups });
  }
}

export class Wav2Vec2PositionalConvEmbedding extends Module {
  conv: WeightNormConv1d;
  private readonly act: (x: Tensor) => Tensor;

  constructor(cfg: Wav2Vec2Config) {
    super();
    this.conv = new WeightNormConv1d(cfg.hidden_size, cfg.num_conv_pos_embeddings, cfg.num_conv_pos_embedding_groups);
    this.act = activation(cfg.feat_extract_activation);
  }

  /** [B, T, H] -> [B, T, H] */
  forward(x: Tensor): Tensor {
    const T = x.shape[1]!;
    // [B, T, H] -> [B, H, T]; an even kernel gives T + 1 frames: the last is dropped (transformers' SamePadLayer).
    const y = this.conv.forward(transpose(x, 1, 2));
    const same = y.shape[2] === T ? y : slice(y, 2, 0, T);
    return transpose(this.act(same), 1, 2); // [B, H, T] -> [B, T, H]
  }
}

// ---- attention / feed-forward / layer ----

export class Wav2Vec2Attention extends Module {
  k_proj: Linear;
  v_proj: Linear;
  q_proj: Linear;
  out_proj: Linear;

  constructor(cfg: Wav2Vec2Config, private readonly nHead = cfg.num_attention_heads, private readonly pDrop = cfg.attention_dropout) {
    super();
    const H = cfg.hidden_size;
    this.k_proj = dense(H, H, cfg);
    this.v_proj = dense(H, H, cfg);
    this.q_proj = dense(H, H, cfg);
    this.out_proj = dense(H, H, cfg);
  }

  /** x [B, T, H]; attend: bool [B, 1, 1, T] (true = may attend) or null -> [B, T, H]. */
  forward(x: Tensor, attend: Tensor | null): Tensor {
    const [B, T, H] = x.shape as [number, number, number];
    const hs = H / this.nHead;
    // [B, T, H] -> [B, nh, T, hs]
    const heads = (t: Tensor) => transpose(reshape(t, [B, T, this.nHead, hs]), 1, 2);
    const y = scaledDotProductAttention(heads(this.q_proj.forward(x)), heads(this.k_proj.forward(x)), heads(this.v_proj.forward(x)), {
      attnMask: attend, dropoutP: this.training ? this.pDrop : 0,
    });
    // [B, nh, T, hs] -> [B, T, H]
    return this.out_proj.forward(reshape(transpose(y, 1, 2), [B, T, H]));
  }
}

export class Wav2Vec2FeedForward extends Module {
  intermediate_dropout: Dropout;
  intermediate_dense: Linear;
  output_dense: Linear;
  output_dropout: Dropout;
  private readonly act: (x: Tensor) => Tensor;

  constructor(cfg: Wav2Vec2Config) {
    super();
    this.intermediate_dropout = new Dropout(cfg.activation_dropout);
    this.intermediate_dense = dense(cfg.hidden_size, cfg.intermediate_size, cfg);
    this.output_dense = dense(cfg.intermediate_size, cfg.hidden_size, cfg);
    this.output_dropout = new Dropout(cfg.hidden_dropout);
    this.act = activation(cfg.hidden_act);
  }

  forward(x: Tensor): Tensor {
    const h = this.intermediate_dropout.forward(this.act(this.intermediate_dense.forward(x)));
    return this.output_dropout.forward(this.output_dense.forward(h));
  }
}

/** Post-norm (Wav2Vec2EncoderLayer) or, with do_stable_layer_norm, pre-norm (Wav2Vec2EncoderLayerStableLayerNorm). */
export class Wav2Vec2EncoderLayer extends Module {
  attention: Wav2Vec2Attention;
  dropout: Dropout;
  layer_norm: LayerNorm;
  feed_forward: Wav2Vec2FeedForward;
  final_layer_norm: LayerNorm;
  private readonly stable: boolean;

  constructor(cfg: Wav2Vec2Config) {
    super();
    this.attention = new Wav2Vec2Attention(cfg);
    this.dropout = new Dropout(cfg.hidden_dropout);
    this.layer_norm = new LayerNorm(cfg.hidden_size, { eps: cfg.layer_norm_eps });
    this.feed_forward = new Wav2Vec2FeedForward(cfg);
    this.final_layer_norm = new LayerNorm(cfg.hidden_size, { eps: cfg.layer_norm_eps });
    this.stable = cfg.do_stable_layer_norm;
  }

  forward(x: Tensor, attend: Tensor | null): Tensor {
    if (this.stable) {
      const h = add(x, this.dropout.forward(this.attention.forward(this.layer_norm.forward(x), attend)));
      return add(h, this.feed_forward.forward(this.final_layer_norm.forward(h)));
    }
    const h = this.layer_norm.forward(add(x, this.dropout.forward(this.attention.forward(x, attend))));
    return this.final_layer_norm.forward(add(h, this.feed_forward.forward(h)));
  }
}

export class Wav2Vec2Encoder extends Module {
  pos_conv_embed: Wav2Vec2PositionalConvEmbedding;
  layer_norm: LayerNorm;
  dropout: Dropout;
  layers: Wav2Vec2EncoderLayer[];

  constructor(private readonly cfg: Wav2Vec2Config) {
    super();
    this.pos_conv_embed = new Wav2Vec2PositionalConvEmbedding(cfg);
    this.layer_norm = new LayerNorm(cfg.hidden_size, { eps: cfg.layer_norm_eps });
    this.dropout = new Dropout(cfg.hidden_dropout);
    this.layers = Array.from({ length: cfg.num_hidden_layers }, () => new Wav2Vec2EncoderLayer(cfg));
  }

  /** x [B, T, H]; frames: bool [B, T] (true = real frame) or null -> [B, T, H]. */
  forward(x: Tensor, frames: Tensor | null): Tensor {
    const [B, T] = x.shape as [number, number];
    // Padding frames are zeroed before the positional conv sees them (transformers does the same).
    const h0 = frames ? where(unsqueeze(frames, -1), x, 0) : x;
    const attend = frames ? reshape(frames, [B, 1, 1, T]) : null; // [B, 1, 1, T]: mask keys only
    let h = add(h0, this.pos_conv_embed.forward(h0));
    if (!this.cfg.do_stable_layer_norm) h = this.layer_norm.forward(h);
    h = this.dropout.forward(h);
    for (const layer of this.layers) {
      // LayerDrop: in training, each layer is skipped with probability layerdrop (seeded by manualSeed).
      if (this.training && this.cfg.layerdrop > 0 && defaultGenerator.uniform(1)[0]! < this.cfg.layerdrop) continue;
      h = layer.forward(h, attend);
    }
    return this.cfg.do_stable_layer_norm ? this.layer_norm.forward(h) : h;
  }
}

// ---- model ----

export class Wav2Vec2Model extends Module {
  feature_extractor: Wav2Vec2FeatureEncoder;
  feature_projection: Wav2Vec2FeatureProjection;
  encoder: Wav2Vec2Encoder;

  constructor(readonly config: Wav2Vec2Config) {
    super();
    this.feature_extractor = new Wav2Vec2FeatureEncoder(config);
    this.feature_projection = new Wav2Vec2FeatureProjection(config);
    this.encoder = new Wav2Vec2Encoder(config);
  }

  /** The fewest samples the conv feature encoder turns into one frame (400 for the base models: 25 ms at 16 kHz). */
  get minSamples(): number {
    return minSamples(this.config);
  }

  /** inputValues [B, S], attentionMask [B, S] (1 = sample, 0 = padding) -> the encoder's hidden states [B, frames, H]. */
  forward(inputValues: Tensor, attentionMask?: Tensor | null): Tensor {
    if (inputValues.ndim !== 2) throw new Error(`wav2vec2: inputValues must be [batch, samples], got ${fmtShape(inputValues.shape)}`);
    if (!isFloat(inputValues.dtype)) throw new Error(`wav2vec2: inputValues must be floating point audio samples, got ${inputValues.dtype}`);
    const [B, S] = inputValues.shape as [number, number];
    const need = minSamples(this.config);
    if (S < need) {
      throw new Error(`wav2vec2: inputValues has ${S} samples; the conv feature encoder (kernels ${this.config.conv_kernel.join(', ')}, strides ${this.config.conv_stride.join(', ')}) needs at least ${need}`);
    }
    if (attentionMask && (attentionMask.ndim !== 2 || attentionMask.shape[0] !== B || attentionMask.shape[1] !== S)) {
      throw new Error(`wav2vec2: attentionMask must be [${B}, ${S}] like inputValues, got ${fmtShape(attentionMask.shape)}`);
    }
    const features = transpose(this.feature_extractor.forward(inputValues), 1, 2); // [B, C, F] -> [B, F, C]
    const F = features.shape[1]!;
    // Frame f is real when f < the frames of the example's unpadded length.
    const frames = attentionMask ? lt(unsqueeze(arange(0, F, 1, { device: features.device }), 0), unsqueeze(featureLengthsTensor(this.config, sum(cast(attentionMask, 'int32'), -1)), 1)) : null; // [B, F]
    return this.encoder.forward(this.feature_projection.forward(features), frames);
  }
}

/** HF's _get_feat_extract_output_lengths on a tensor of lengths (int32 in, int32 out; 0 when too short). */
function featureLengthsTensor(cfg: Wav2Vec2Config, lengths: Tensor): Tensor {
  let n = cast(lengths, 'float32'); // exact below 2^24 samples (17 minutes at 16 kHz)
  cfg.conv_kernel.forEach((k, i) => { n = where(ge(n, k), add(floor(div(sub(n, k), cfg.conv_stride[i]!)), 1), 0); });
  return cast(n, 'int32');
}

export class Wav2Vec2ForCTC extends PreTrainedModel {
  wav2vec2: Wav2Vec2Model;
  dropout: Dropout;
  lm_head: Linear;

  constructor(readonly config: Wav2Vec2Config) {
    super();
    this.wav2vec2 = new Wav2Vec2Model(config);
    this.dropout = new Dropout(config.final_dropout);
    this.lm_head = dense(config.hidden_size, config.vocab_size, config);
  }

  /** Output frames for input lengths in samples (HF's _get_feat_extract_output_lengths); 0 where an input is too short. */
  featureLengths(inputLengths: Tensor): Tensor;
  featureLengths(inputLengths: readonly number[]): number[];
  featureLengths(inputLengths: Tensor | readonly number[]): Tensor | number[] {
    return Array.isArray(inputLengths) ? inputLengths.map((n) => framesFor(this.config, n)) : featureLengthsTensor(this.config, inputLengths as Tensor);
  }

  /**
   * inputValues [B, S] (normalised audio), attentionMask [B, S] optional -> logits [B, frames, vocab] and the encoder's
   * last hidden state. labels [B, L] (negative = padding, as HF's -100) add the CTC loss, blank = pad_token_id; on a
   * device that cannot be read synchronously (webgpu) pass labels and attentionMask as cpu tensors.
   */
  forward({ inputValues, attentionMask, labels }: ModelInputs): ModelOutput {
    const x = requireInput(inputValues, 'inputValues', 'wav2vec2');
    // A cpu mask is welcome on any device: the loss reads it on the host, the encoder on x's device.
    const hidden = this.wav2vec2.forward(x, attentionMask && attentionMask.device !== x.device ? attentionMask.to(x.device) : attentionMask);
    const logits = this.lm_head.forward(this.dropout.forward(hidden));
    if (!labels) return { logits, lastHiddenState: hidden };
    return { logits, lastHiddenState: hidden, loss: this.ctcLossFor(logits, x, attentionMask ?? null, labels) };
  }

  /** transformers' Wav2Vec2ForCTC loss: ctc_loss(log_softmax(logits) as [frames, B, V], labels >= 0, frame lengths, label lengths). */
  private ctcLossFor(logits: Tensor, x: Tensor, attentionMask: Tensor | null, labels: Tensor): Tensor {
    const [B, S] = x.shape as [number, number];
    if (labels.ndim !== 2 || labels.shape[0] !== B) throw new Error(`wav2vec2: labels must be [${B}, length] (negative = padding), got ${fmtShape(labels.shape)}`);
    // Lengths and targets size the loss by their values: they are worked out on the host (cpu).
    const host = (t: Tensor, name: string): Tensor => {
      if (!t.backend.readSync) throw new Error(`wav2vec2: the CTC loss reads ${name} on the host, and device '${t.device}' cannot be read synchronously: pass ${name} as a cpu tensor`);
      return t.to('cpu');
    };
    const samples = attentionMask ? sum(cast(host(attentionMask, 'attentionMask'), 'int32'), -1) : full([B], S, { dtype: 'int32', device: 'cpu' });
    const inputLengths = featureLengthsTensor(this.config, samples);
    const hostLabels = host(labels, 'labels');
    const keep = ge(hostLabels, 0); // [B, L]: negative labels (-100) are padding, wherever they are
    const targetLengths = sum(cast(keep, 'int32'), -1); // [B]
    const targets = cast(hostLabels, 'int32').at([keep]); // labels.masked_select(labels >= 0): 1-D, concatenated
    const logProbs = transpose(logSoftmax(cast(logits, 'float32'), -1), 0, 1); // [B, F, V] -> [F, B, V]
    return ctcLoss(logProbs, targets, inputLengths, targetLengths, { blank: this.config.pad_token_id, reduction: this.config.ctc_loss_reduction, zeroInfinity: this.config.ctc_zero_infinity });
  }
}
