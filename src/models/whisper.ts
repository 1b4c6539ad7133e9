// Whisper: a speech encoder-decoder (conv front end on log-mel features, sinusoidal encoder positions, pre-norm
// layers, a text decoder with cross-attention), parameter names as Hugging Face's.
//
// Paper: Radford et al., "Robust Speech Recognition via Large-Scale Weak Supervision" (2022).
// Reference: transformers/models/whisper/modeling_whisper.py (WhisperForConditionalGeneration).

import { add, cast, gelu, relu, silu } from '../autograd/ops/elementwise.js';
import { reshape, slice, transpose } from '../autograd/ops/movement.js';
import { tensor } from '../tensor/create.js';
import { isFloat } from '../tensor/dtype.js';
import { fmtShape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { Dropout } from '../nn/activation.js';
import { KVCache } from '../nn/attention.js';
import { Conv1d } from '../nn/conv.js';
import { Embedding } from '../nn/embedding.js';
import { crossEntropy } from '../nn/functional.js';
import { normal_, zeros_ } from '../nn/init.js';
import { Linear } from '../nn/linear.js';
import { Module, Parameter } from '../nn/module.js';
import { LayerNorm } from '../nn/normalization.js';
import { BartAttention, linear } from './bart.js';
import { ConfigReader, keyMask, PreTrainedModel, requireInput, shiftTokensRight, type ModelInputs, type ModelOutput, type WeightSpec } from './base.js';

// ---- config (Hugging Face's WhisperConfig field names) ----

const ACTIVATIONS = ['gelu', 'gelu_new', 'relu', 'silu'] as const;

export interface WhisperConfig {
  vocab_size: number;
  num_mel_bins: number;
  d_model: number;
  encoder_layers: number;
  encoder_attention_heads: number;
  encoder_ffn_dim: number;
  decoder_layers: number;
  decoder_attention_heads: number;
  decoder_ffn_dim: number;
  /** Encoder positions after the stride-2 conv: the model reads at most 2 * max_source_positions mel frames. */
  max_source_positions: number;
  max_target_positions: number;
  activation_function: (typeof ACTIVATIONS)[number];
  dropout: number;
  attention_dropout: number;
  activation_dropout: number;
  init_std: number;
  pad_token_id: number;
  decoder_start_token_id: number;
  tie_word_embeddings: boolean;
}

/** Reads a Whisper config.json, checking every field it uses. */
export function whisperConfig(r: ConfigReader): WhisperConfig {
  const cfg: WhisperConfig = {
    vocab_size: r.positive('vocab_size', 51865), num_mel_bins: r.positive('num_mel_bins', 80), d_model: r.positive('d_model', 384),
    encoder_layers: r.count('encoder_layers', 4), encoder_attention_heads: r.positive('encoder_attention_heads', 6), encoder_ffn_dim: r.positive('encoder_ffn_dim', 1536),
    decoder_layers: r.count('decoder_layers', 4), decoder_attention_heads: r.positive('decoder_attention_heads', 6), decoder_ffn_dim: r.positive('decoder_ffn_dim', 1536),
    max_source_positions: r.positive('max_source_positions', 1500), max_target_positions: r.positive('max_target_positions', 448),
    activation_function: r.str('activation_function', ACTIVATIONS, 'gelu'), dropout: r.prob('dropout', 0), attention_dropout: r.prob('attention_dropout', 0),
    activation_dropout: r.prob('activation_dropout', 0), init_std: r.num('init_std', 0.02), pad_token_id: r.int('pad_token_id', 50256),
    decoder_start_token_id: r.int('decoder_start_token_id', 50257), tie_word_embeddings: r.bool('tie_word_embeddings', true),
  };
  r.divides('encoder_attention_heads', cfg.encoder_attention_heads, 'd_model', cfg.d_model);
  r.divides('decoder_attention_heads', cfg.decoder_attention_heads, 'd_model', cfg.d_model);
  if (cfg.d_model % 2 !== 0 || cfg.d_model < 4) r.fail('d_model', 'an even number of at least 4 (sinusoidal positions)');
  for (const k of ['pad_token_id', 'decoder_start_token_id'] as const) {
    if (cfg[k] >= cfg.vocab_size) throw new Error(`${r.path}: "${k}" (${cfg[k]}) must be below "vocab_size" (${cfg.vocab_size})`);
  }
  return cfg;
}

/** The checkpoint's parameters (from the config alone, so a checkpoint is checked before anything is allocated). */
export function whisperWeights(cfg: WhisperConfig): WeightSpec {
  const C = cfg.d_model;
  const shapes: Record<string, number[]> = {
    'model.encoder.conv1.weight': [C, cfg.num_mel_bins, 3], 'model.encoder.conv1.bias': [C], 'model.encoder.conv2.weight': [C, C, 3], 'model.encoder.conv2.bias': [C],
    'model.encoder.embed_positions.weight': [cfg.max_source_positions, C],
    'model.decoder.embed_tokens.weight': [cfg.vocab_size, C], 'model.decoder.embed_positions.weight': [cfg.max_target_positions, C],
  };
  const norm = (p: string): void => { shapes[`${p}.weight`] = [C]; shapes[`${p}.bias`] = [C]; };
  const attention = (p: string): void => {
    Object.assign(shapes, { [`${p}.q_proj.weight`]: [C, C], [`${p}.q_proj.bias`]: [C], [`${p}.k_proj.weight`]: [C, C], [`${p}.v_proj.weight`]: [C, C], [`${p}.v_proj.bias`]: [C], [`${p}.out_proj.weight`]: [C, C], [`${p}.out_proj.bias`]: [C] });
  };
  for (const stack of ['encoder', 'decoder'] as const) {
    const n = stack === 'encoder' ? cfg.encoder_layers : cfg.decoder_layers, F = stack === 'encoder' ? cfg.encoder_ffn_dim : cfg.decoder_ffn_dim;
    for (let i = 0; i < n; i++) {
      const p = `model.${stack}.layers.${i}`;
      attention(`${p}.self_attn`);
      norm(`${p}.self_attn_layer_norm`);
      if (stack === 'decoder') { attention(`${p}.encoder_attn`); norm(`${p}.encoder_attn_layer_norm`); }
      Object.assign(shapes, { [`${p}.fc1.weight`]: [F, C], [`${p}.fc1.bias`]: [F], [`${p}.fc2.weight`]: [C, F], [`${p}.fc2.bias`]: [C] });
      norm(`${p}.final_layer_norm`);
    }
    norm(`model.${stack}.layer_norm`);
  }
  shapes['proj_out.weight'] = [cfg.vocab_size, C];
  return { shapes, tied: cfg.tie_word_embeddings ? [['model.decoder.embed_tokens.weight', 'proj_out.weight']] : [] };
}

/** Whisper's fixed encoder positions [length, channels]: sin of position / 10000^(i / (channels/2 - 1)), then cos. */
export function sinusoids(length: number, channels: number): Tensor {
  const half = channels / 2;
  const out = new Float32Array(length * channels);
  // float32 steps, as transformers computes them in torch
  const inc = Math.fround(Math.log(10000) / (half - 1));
  for (let t = 0; t < length; t++) {
    for (let i = 0; i < half; i++) {
      const x = Math.fround(t * Math.fround(Math.exp(Math.fround(-inc * i))));
      out[t * channels + i] = Math.sin(x);
      out[t * channels + half + i] = Math.cos(x);
    }
  }
  return tensor(out, { shape: [length, channels] });
}

function activation(name: WhisperConfig['activation_function']): (x: Tensor) => Tensor {
  switch (name) {
    case 'gelu': return (x) => gelu(x);
    case 'gelu_new': return (x) => gelu(x, 'tanh');
    case 'relu': return relu;
    case 'silu': return silu;
  }
}

function layerNorm(C: number): LayerNorm {
  return new LayerNorm(C, { eps: 1e-5 });
}

// ---- attention / layers ----

/** BART's attention (self-attention with a KV cache, cross-attention with keys computed once), without a key bias. */
export class WhisperAttention extends BartAttention {
  constructor(C: number, nHead: number, pDrop: number, std: number) {
    super(C, nHead, pDrop, std, false);
  }
}

export class WhisperEncoderLayer extends Module {
  self_attn: WhisperAttention;
  self_attn_layer_norm: LayerNorm;
  fc1: Linear;
  fc2: Linear;
  final_layer_norm: LayerNorm;
  dropout: Dropout;
  activation_dropout: Dropout;
  private readonly act: (x: Tensor) => Tensor;

  constructor(cfg: WhisperConfig) {
    super();
    const C = cfg.d_model;
    this.self_attn = new WhisperAttention(C, cfg.encoder_attention_heads, cfg.attention_dropout, cfg.init_std);
    this.self_attn_layer_norm = layerNorm(C);
    this.fc1 = linear(C, cfg.encoder_ffn_dim, cfg.init_std);
    this.fc2 = linear(cfg.encoder_ffn_dim, C, cfg.init_std);
    this.final_layer_norm = layerNorm(C);
    this.dropout = new Dropout(cfg.dropout);
    this.activation_dropout = new Dropout(cfg.activation_dropout);
    this.act = activation(cfg.activation_function);
  }

  forward(x: Tensor): Tensor {
    const h = add(x, this.dropout.forward(this.self_attn.selfAttention(this.self_attn_layer_norm.forward(x), null, false)));
    const f = this.fc2.forward(this.activation_dropout.forward(this.act(this.fc1.forward(this.final_layer_norm.forward(h)))));
    return add(h, this.dropout.forward(f));
  }
}

export class WhisperDecoderLayer extends Module {
  self_attn: WhisperAttention;
  self_attn_layer_norm: LayerNorm;
  encoder_attn: WhisperAttention;
  encoder_attn_layer_norm: LayerNorm;
  fc1: Linear;
  fc2: Linear;
  final_layer_norm: LayerNorm;
  dropout: Dropout;
  activation_dropout: Dropout;
  private readonly act: (x: Tensor) => Tensor;

  constructor(cfg: WhisperConfig) {
    super();
    const C = cfg.d_model;
    this.self_attn = new WhisperAttention(C, cfg.decoder_attention_heads, cfg.attention_dropout, cfg.init_std);
    this.self_attn_layer_norm = layerNorm(C);
    this.encoder_attn = new WhisperAttention(C, cfg.decoder_attention_heads, cfg.attention_dropout, cfg.init_std);
    this.encoder_attn_layer_norm = layerNorm(C);
    this.fc1 = linear(C, cfg.decoder_ffn_dim, cfg.init_std);
    this.fc2 = linear(cfg.decoder_ffn_dim, C, cfg.init_std);
    this.final_layer_norm = layerNorm(C);
    this.dropout = new Dropout(cfg.dropout);
    this.activation_dropout = new Dropout(cfg.activation_dropout);
    this.act = activation(cfg.activation_function);
  }

  forward(x: Tensor, selfMask: Tensor | null, encoderStates: Tensor, selfCache?: KVCache, crossCache?: KVCache): Tensor {
    let h = add(x, this.dropout.forward(this.self_attn.selfAttention(this.self_attn_layer_norm.forward(x), selfMask, true, selfCache)));
    h = add(h, this.dropout.forward(this.encoder_attn.crossAttention(this.encoder_attn_layer_norm.forward(h), encoderStates, null, crossCache)));
    const f = this.fc2.forward(this.activation_dropout.forward(this.act(this.fc1.forward(this.final_layer_norm.forward(h)))));
    return add(h, this.dropout.forward(f));
  }
}

// ---- encoder and decoder ----

export class WhisperEncoder extends Module {
  conv1: Conv1d;
  conv2: Conv1d;
  /** Fixed sinusoids, stored in checkpoints and never trained (transformers freezes them). */
  embed_positions: Embedding;
  layers: WhisperEncoderLayer[];
  layer_norm: LayerNorm;
  dropout: Dropout;

  constructor(private readonly cfg: WhisperConfig) {
    super();
    const C = cfg.d_model;
    this.conv1 = new Conv1d(cfg.num_mel_bins, C, 3, { padding: 1 });
    this.conv2 = new Conv1d(C, C, 3, { stride: 2, padding: 1 });
    for (const conv of [this.conv1, this.conv2]) { // transformers' _init_weights: N(0, init_std), zero bias
      normal_(conv.weight, 0, cfg.init_std);
      zeros_(conv.bias!);
    }
    this.embed_positions = new Embedding(cfg.max_source_positions, C);
    this.embed_positions.weight = new Parameter(sinusoids(cfg.max_source_positions, C), false);
    this.layers = Array.from({ length: cfg.encoder_layers }, () => new WhisperEncoderLayer(cfg));
    this.layer_norm = layerNorm(C);
    this.dropout = new Dropout(cfg.dropout);
  }

  /** features [B, nMels, F] (F <= 2 * max_source_positions) -> [B, ceil(F / 2), C] */
  forward(features: Tensor): Tensor {
    const { num_mel_bins: M, max_source_positions: P } = this.cfg;
    if (features.ndim !== 3 || features.shape[1] !== M) {
      throw new Error(`Whisper: inputFeatures must be [batch, ${M} mel bins, frames] (config num_mel_bins = ${M}), got ${fmtShape(features.shape)}`);
    }
    const frames = features.shape[2]!;
    if (frames > 2 * P) throw new Error(`Whisper: inputFeatures has ${frames} frames: audio longer than the model accepts (max_source_positions*2 = ${2 * P} frames)`);
    // The extractor gives float32; a float16 / bfloat16 model reads the features in its own dtype (as the pipeline casts).
    const dtype = this.conv1.weight.dtype;
    const input = isFloat(features.dtype) && features.dtype !== dtype ? cast(features, dtype) : features;
    // [B, M, F] -> [B, C, F] -> [B, C, S] -> [B, S, C]
    const x = transpose(gelu(this.conv2.forward(gelu(this.conv1.forward(input)))), 1, 2);
    const S = x.shape[1]!;
    let h = this.dropout.forward(add(x, slice(this.embed_positions.weight, 0, 0, S)));
    for (const layer of this.layers) h = layer.forward(h);
    return this.layer_norm.forward(h);
  }
}

export class WhisperDecoder extends Module {
  embed_tokens: Embedding;
  embed_positions: Embedding;
  layers: WhisperDecoderLayer[];
  layer_norm: LayerNorm;
  dropout: Dropout;

  constructor(private readonly cfg: WhisperConfig) {
    super();
    const C = cfg.d_model;
    this.embed_tokens = new Embedding(cfg.vocab_size, C);
    normal_(this.embed_tokens.weight, 0, cfg.init_std);
    this.embed_positions = new Embedding(cfg.max_target_positions, C);
    normal_(this.embed_positions.weight, 0, cfg.init_std);
    this.layers = Array.from({ length: cfg.decoder_layers }, () => new WhisperDecoderLayer(cfg));
    this.layer_norm = layerNorm(C);
    this.dropout = new Dropout(cfg.dropout);
  }

  /** ids [B, T] (the new tokens when caching) over encoder states [B, S, C] -> [B, T, C]; caches [self_0, cross_0, ...]. */
  forward(ids: Tensor, encoderStates: Tensor, decoderMask?: Tensor | null, caches?: KVCache[]): Tensor {
    if (ids.ndim !== 2) throw new Error(`Whisper: decoderInputIds must be [batch, time], got ${fmtShape(ids.shape)}`);
    const [B, T] = ids.shape as [number, number];
    if (caches && caches.length !== 2 * this.layers.length) {
      throw new Error(`Whisper: pastKeyValues must hold ${2 * this.layers.length} caches (self- and cross-attention per decoder layer), got ${caches.length}`);
    }
    const past = caches?.[0]!.length ?? 0;
    const P = this.cfg.max_target_positions;
    if (past + T > P) throw new Error(`Whisper: ${past + T} decoder positions exceed max_target_positions = ${P}`);
    const positions = slice(this.embed_positions.weight, 0, past, past + T); // [T, C]
    let x = this.dropout.forward(add(this.embed_tokens.forward(ids), positions));
    const mask = decoderMask ? keyMask(decoderMask, B, past + T, 'Whisper: decoderAttentionMask') : null;
    this.layers.forEach((l, i) => { x = l.forward(x, mask, encoderStates, caches?.[2 * i], caches?.[2 * i + 1]); });
    return this.layer_norm.forward(x);
  }
}

export class WhisperModel extends Module {
  encoder: WhisperEncoder;
  decoder: WhisperDecoder;

  constructor(cfg: WhisperConfig) {
    super();
    this.encoder = new WhisperEncoder(cfg);
    this.decoder = new WhisperDecoder(cfg);
  }
}

// ---- model ----

export class WhisperForConditionalGeneration extends PreTrainedModel {
  model: WhisperModel;
  proj_out: Linear;
  override readonly isEncoderDecoder = true;

  constructor(readonly config: WhisperConfig) {
    super();
    this.model = new WhisperModel(config);
    this.proj_out = new Linear(config.d_model, config.vocab_size, { bias: false });
    if (config.tie_word_embeddings) this.proj_out.weight = this.model.decoder.embed_tokens.weight;
    else normal_(this.proj_out.weight, 0, config.init_std);
  }

  /**
   * inputFeatures [B, nMels, frames] feed the encoder, unless encoderHiddenStates [B, S, C] is given (generation
   * encodes once). decoderInputIds [B, T] default to labels shifted right; with pastKeyValues they are only the new
   * tokens. labels [B, T]: cross-entropy over every position, -100 ignored.
   */
  forward({ inputFeatures, decoderInputIds, decoderAttentionMask, labels, pastKeyValues, encoderHiddenStates }: ModelInputs): ModelOutput {
    const C = this.config.d_model;
    const encoded = encoderHiddenStates ?? this.model.encoder.forward(requireInput(inputFeatures, 'inputFeatures', 'Whisper'));
    if (encoded.ndim !== 3 || encoded.shape[2] !== C) throw new Error(`Whisper: encoderHiddenStates must be [batch, time, ${C}], got ${fmtShape(encoded.shape)}`);
    let ids = decoderInputIds;
    if (!ids) {
      if (!labels) throw new Error('Whisper: pass decoderInputIds, or labels to derive them from');
      ids = shiftTokensRight(labels, this.config.pad_token_id, this.config.decoder_start_token_id);
    }
    if (ids.shape[0] !== encoded.shape[0]) throw new Error(`Whisper: decoder batch ${ids.shape[0]} differs from the encoder's ${encoded.shape[0]}`);
    const hidden = this.model.decoder.forward(ids, encoded, decoderAttentionMask, pastKeyValues);
    const logits = this.proj_out.forward(hidden);
    const out: ModelOutput = { logits, lastHiddenState: hidden, encoderLastHiddenState: encoded };
    if (labels) out.loss = crossEntropy(reshape(logits, [-1, this.config.vocab_size]), reshape(labels, [-1]), { ignoreIndex: -100 });
    return out;
  }

  override positionLimit(): { key: string; value: number } {
    return { key: 'max_target_positions', value: this.config.max_target_positions };
  }

  /** Two caches per decoder layer, [self_0, cross_0, self_1, cross_1, ...], as T5's (see t5.ts newCache). */
  override newCache(): KVCache[] {
    return this.model.decoder.layers.flatMap(() => [new KVCache(), new KVCache()]);
  }
}
