// T5: an encoder-decoder transformer (pre-norm RMS, relative position buckets, no biases), parameter names as Hugging Face's.
//
// Paper: Raffel et al., "Exploring the Limits of Transfer Learning with a Unified Text-to-Text Transformer" (2020);
// v1.1 / mT5 / Flan-T5: gated-GELU feed-forward and an untied, unscaled lm_head.
// Reference: transformers/models/t5/modeling_t5.py (T5ForConditionalGeneration).

import { add, gelu, mul, relu, silu, where } from '../autograd/ops/elementwise.js';
import { permute, reshape, transpose } from '../autograd/ops/movement.js';
import { tensor } from '../tensor/create.js';
import { fmtShape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { Dropout } from '../nn/activation.js';
import { KVCache } from '../nn/attention.js';
import { Embedding } from '../nn/embedding.js';
import { crossEntropy, scaledDotProductAttention } from '../nn/functional.js';
import { constant_, normal_ } from '../nn/init.js';
import { Linear } from '../nn/linear.js';
import { Module } from '../nn/module.js';
import { RMSNorm } from '../nn/normalization.js';
import { ConfigReader, keyMask, PreTrainedModel, requireInput, shiftTokensRight, type ModelInputs, type ModelOutput, type WeightSpec } from './base.js';

// ---- config (Hugging Face's T5Config field names) ----

/** "[gated-]activation"; gated-gelu is the tanh approximation (gelu_new), as transformers maps it. */
const FEED_FORWARD = ['relu', 'gelu', 'gelu_new', 'silu', 'gated-relu', 'gated-gelu', 'gated-gelu_new', 'gated-silu'] as const;

export interface T5Config {
  vocab_size: number;
  d_model: number;
  /** Size of one attention head; num_heads * d_kv need not equal d_model. */
  d_kv: number;
  d_ff: number;
  num_layers: number;
  num_decoder_layers: number;
  num_heads: number;
  relative_attention_num_buckets: number;
  relative_attention_max_distance: number;
  dropout_rate: number;
  layer_norm_epsilon: number;
  initializer_factor: number;
  feed_forward_proj: (typeof FEED_FORWARD)[number];
  tie_word_embeddings: boolean;
  /** Multiply the decoder output by d_model^-0.5 before lm_head; configs without the field (before transformers 5) imply tie_word_embeddings. */
  scale_decoder_outputs: boolean;
  pad_token_id: number;
  decoder_start_token_id: number | null;
}

/** Reads a T5 config.json, checking every field it uses. */
export function t5Config(r: ConfigReader): T5Config {
  const tie = r.bool('tie_word_embeddings', true);
  const numLayers = r.count('num_layers');
  const cfg: T5Config = {
    vocab_size: r.positive('vocab_size'), d_model: r.positive('d_model'), d_kv: r.positive('d_kv'), d_ff: r.positive('d_ff'), num_layers: numLayers,
    num_decoder_layers: r.optional('num_decoder_layers', (k) => r.count(k)) ?? numLayers, num_heads: r.positive('num_heads'),
    relative_attention_num_buckets: r.positive('relative_attention_num_buckets', 32), relative_attention_max_distance: r.positive('relative_attention_max_distance', 128),
    dropout_rate: r.prob('dropout_rate', 0.1), layer_norm_epsilon: r.positiveNum('layer_norm_epsilon', 1e-6), initializer_factor: r.num('initializer_factor', 1),
    feed_forward_proj: r.str('feed_forward_proj', FEED_FORWARD, 'relu'), tie_word_embeddings: tie,
    scale_decoder_outputs: r.optional('scale_decoder_outputs', (k) => r.bool(k)) ?? tie, pad_token_id: r.int('pad_token_id', 0),
    decoder_start_token_id: r.optional('decoder_start_token_id', (k) => r.int(k)) ?? null,
  };
  // Buckets are split by direction (encoder) and then into exact and logarithmic halves: fewer than 4 leaves a log of 0.
  if (cfg.relative_attention_num_buckets < 4) r.fail('relative_attention_num_buckets', 'at least 4');
  for (const k of ['pad_token_id', 'decoder_start_token_id'] as const) {
    const v = cfg[k];
    if (v !== null && v >= cfg.vocab_size) throw new Error(`${r.path}: "${k}" (${v}) must be below "vocab_size" (${cfg.vocab_size})`);
  }
  return cfg;
}

/** The checkpoint's parameters (from the config alone, so a checkpoint is checked before anything is allocated). */
export function t5Weights(cfg: T5Config): WeightSpec {
  const C = cfg.d_model, inner = cfg.num_heads * cfg.d_kv, F = cfg.d_ff;
  const shapes: Record<string, number[]> = { 'shared.weight': [cfg.vocab_size, C] };
  const attention = (p: string, bias: boolean): void => {
    Object.assign(shapes, { [`${p}q.weight`]: [inner, C], [`${p}k.weight`]: [inner, C], [`${p}v.weight`]: [inner, C], [`${p}o.weight`]: [C, inner] });
    if (bias) shapes[`${p}relative_attention_bias.weight`] = [cfg.relative_attention_num_buckets, cfg.num_heads];
  };
  const ff = (p: string): void => {
    const gated = cfg.feed_forward_proj.startsWith('gated-');
    for (const n of gated ? ['wi_0', 'wi_1'] : ['wi']) shapes[`${p}DenseReluDense.${n}.weight`] = [F, C];
    shapes[`${p}DenseReluDense.wo.weight`] = [C, F];
    shapes[`${p}layer_norm.weight`] = [C];
  };
  for (const stack of ['encoder', 'decoder'] as const) {
    shapes[`${stack}.embed_tokens.weight`] = [cfg.vocab_size, C];
    const n = stack === 'encoder' ? cfg.num_layers : cfg.num_decoder_layers;
    for (let i = 0; i < n; i++) {
      const p = `${stack}.block.${i}.layer.`;
      attention(`${p}0.SelfAttention.`, i === 0);
      shapes[`${p}0.layer_norm.weight`] = [C];
      if (stack === 'decoder') {
        attention(`${p}1.EncDecAttention.`, false);
        shapes[`${p}1.layer_norm.weight`] = [C];
      }
      ff(`${p}${stack === 'decoder' ? 2 : 1}.`);
    }
    shapes[`${stack}.final_layer_norm.weight`] = [C];
  }
  shapes['lm_head.weight'] = [cfg.vocab_size, C];
  const embeddings = ['shared.weight', 'encoder.embed_tokens.weight', 'decoder.embed_tokens.weight'];
  return { shapes, tied: [cfg.tie_word_embeddings ? [...embeddings, 'lm_head.weight'] : embeddings] };
}

/**
 * The bucket of a relative position (key - query): exact for small distances, logarithmic up to max_distance, one
 * bucket beyond; bidirectional (encoder) buckets split by sign, causal (decoder) ones see only the past. The
 * arithmetic is float32, as transformers' _relative_position_bucket, so that truncation lands in the same bucket.
 */
export function relativePositionBucket(relative: number, bidirectional: boolean, numBuckets: number, maxDistance: number): number {
  let bucket = 0, n = numBuckets, rel = relative;
  if (bidirectional) {
    n = Math.floor(n / 2);
    if (rel > 0) bucket += n;
    rel = Math.abs(rel);
  } else {
    rel = Math.max(-rel, 0);
  }
  const maxExact = Math.floor(n / 2);
  if (rel < maxExact) return bucket + rel;
  const f = Math.fround;
  const large = maxExact + Math.trunc(f(f(f(Math.log(f(rel / maxExact))) / f(Math.log(maxDistance / maxExact))) * (n - maxExact)));
  return bucket + Math.min(large, n - 1);
}

/** A bias-free Linear with N(0, std) weights (T5's initialisation). */
function proj(inF: number, outF: number, std: number): Linear {
  const l = new Linear(inF, outF, { bias: false });
  normal_(l.weight, 0, std);
  return l;
}

function rmsNorm(cfg: T5Config): RMSNorm {
  const n = new RMSNorm(cfg.d_model, { eps: cfg.layer_norm_epsilon });
  constant_(n.weight!, cfg.initializer_factor);
  return n;
}

// ---- attention ----

export class T5Attention extends Module {
  q: Linear;
  k: Linear;
  v: Linear;
  o: Linear;
  /** Only the first block of each stack owns one; its bias is shared by every block of the stack. */
  relative_attention_bias: Embedding | null;
  private readonly nHead: number;
  private readonly dKv: number;
  private readonly pDrop: number;

  constructor(private readonly cfg: T5Config, hasRelativeBias: boolean, private readonly isDecoder: boolean) {
    super();
    const C = cfg.d_model, inner = cfg.num_heads * cfg.d_kv, f = cfg.initializer_factor;
    this.q = proj(C, inner, f * (C * cfg.d_kv) ** -0.5); // T5 folds 1/sqrt(d_kv) into q's initialisation, not the scores
    this.k = proj(C, inner, f * C ** -0.5);
    this.v = proj(C, inner, f * C ** -0.5);
    this.o = proj(inner, C, f * inner ** -0.5);
    this.relative_attention_bias = null;
    if (hasRelativeBias) {
      this.relative_attention_bias = new Embedding(cfg.relative_attention_num_buckets, cfg.num_heads);
      normal_(this.relative_attention_bias.weight, 0, f * C ** -0.5);
    }
    this.nHead = cfg.num_heads;
    this.dKv = cfg.d_kv;
    this.pDrop = cfg.dropout_rate;
  }

  /** The learned bias [1, nh, T, S] for queries at positions start .. start + T - 1 over keys 0 .. S - 1. */
  positionBias(start: number, T: number, S: number, device: string): Tensor {
    if (!this.relative_attention_bias) throw new Error('T5: only the first block of a stack has relative_attention_bias');
    const { relative_attention_num_buckets: nb, relative_attention_max_distance: md } = this.cfg;
    // Key j of query i sits at j - start - i, from -(start + T - 1) up to S - 1 - start: one bucket per distance.
    const lo = -(start + T - 1);
    const byDistance = Array.from({ length: S - lo - start }, (_, d) => relativePositionBucket(d + lo, !this.isDecoder, nb, md));
    const buckets = new Int32Array(T * S);
    for (let i = 0; i < T; i++) for (let j = 0; j < S; j++) buckets[i * S + j] = byDistance[j - start - i - lo]!;
    // [T, S] -> [T, S, nh] -> [1, nh, T, S]
    const values = this.relative_attention_bias.forward(tensor(buckets, { shape: [T, S], device }));
    return reshape(permute(values, [2, 0, 1]), [1, this.nHead, T, S]);
  }

  /** [B, L, C] -> [B, nh, L, d_kv] */
  private heads(x: Tensor, projection: Linear): Tensor {
    const [B, L] = x.shape as [number, number];
    return transpose(reshape(projection.forward(x), [B, L, this.nHead, this.dKv]), 1, 2);
  }

  /** Unscaled dot products plus mask (additive float with the position bias, or bool "may attend"). */
  private attend(x: Tensor, k: Tensor, v: Tensor, mask: Tensor | null, causal: boolean): Tensor {
    const [B, T] = x.shape as [number, number];
    const y = scaledDotProductAttention(this.heads(x, this.q), k, v, {
      attnMask: mask, isCausal: causal, scale: 1, dropoutP: this.training ? this.pDrop : 0,
    });
    // [B, nh, T, d_kv] -> [B, T, nh * d_kv] -> [B, T, C]
    return this.o.forward(reshape(transpose(y, 1, 2), [B, T, this.nHead * this.dKv]));
  }

  /** x [B, T, C]; the decoder's is causal, with this step's keys and values appended to the cache. */
  selfAttention(x: Tensor, mask: Tensor | null, cache?: KVCache): Tensor {
    const [k0, v0] = [this.heads(x, this.k), this.heads(x, this.v)];
    const [k, v] = cache ? cache.update(k0, v0) : [k0, v0];
    return this.attend(x, k, v, mask, this.isDecoder);
  }

  /** Decoder x [B, T, C] over encoder states [B, S, C]; a cache keeps their keys and values from its first call on. */
  crossAttention(x: Tensor, encoderStates: Tensor, mask: Tensor | null, cache?: KVCache): Tensor {
    let k: Tensor, v: Tensor;
    if (cache?.key && cache.value) [k, v] = [cache.key, cache.value];
    else {
      [k, v] = [this.heads(encoderStates, this.k), this.heads(encoderStates, this.v)];
      if (cache) [k, v] = cache.update(k, v);
    }
    return this.attend(x, k, v, mask, false);
  }
}

export class T5LayerSelfAttention extends Module {
  SelfAttention: T5Attention;
  layer_norm: RMSNorm;
  dropout: Dropout;

  constructor(cfg: T5Config, hasRelativeBias: boolean, isDecoder: boolean) {
    super();
    this.SelfAttention = new T5Attention(cfg, hasRelativeBias, isDecoder);
    this.layer_norm = rmsNorm(cfg);
    this.dropout = new Dropout(cfg.dropout_rate);
  }

  forward(x: Tensor, mask: Tensor | null, cache?: KVCache): Tensor {
    return add(x, this.dropout.forward(this.SelfAttention.selfAttention(this.layer_norm.forward(x), mask, cache)));
  }
}

export class T5LayerCrossAttention extends Module {
  EncDecAttention: T5Attention;
  layer_norm: RMSNorm;
  dropout: Dropout;

  constructor(cfg: T5Config) {
    super();
    this.EncDecAttention = new T5Attention(cfg, false, true);
    this.layer_norm = rmsNorm(cfg);
    this.dropout = new Dropout(cfg.dropout_rate);
  }

  forward(x: Tensor, encoderStates: Tensor, mask: Tensor | null, cache?: KVCache): Tensor {
    return add(x, this.dropout.forward(this.EncDecAttention.crossAttention(this.layer_norm.forward(x), encoderStates, mask, cache)));
  }
}

// ---- feed-forward ----

function activation(name: string): (x: Tensor) => Tensor {
  switch (name) {
    case 'relu': return relu;
    case 'gelu': return (x) => gelu(x);
    case 'silu': return silu;
    default: return (x) => gelu(x, 'tanh'); // gelu_new
  }
}

/** v1.0: wo(act(wi(x))). */
export class T5DenseActDense extends Module {
  wi: Linear;
  wo: Linear;
  dropout: Dropout;

  constructor(cfg: T5Config, private readonly act: (x: Tensor) => Tensor) {
    super();
    this.wi = proj(cfg.d_model, cfg.d_ff, cfg.initializer_factor * cfg.d_model ** -0.5);
    this.wo = proj(cfg.d_ff, cfg.d_model, cfg.initializer_factor * cfg.d_ff ** -0.5);
    this.dropout = new Dropout(cfg.dropout_rate);
  }

  forward(x: Tensor): Tensor {
    return this.wo.forward(this.dropout.forward(this.act(this.wi.forward(x))));
  }
}

/** v1.1: wo(act(wi_0(x)) * wi_1(x)). */
export class T5DenseGatedActDense extends Module {
  wi_0: Linear;
  wi_1: Linear;
  wo: Linear;
  dropout: Dropout;

  constructor(cfg: T5Config, private readonly act: (x: Tensor) => Tensor) {
    super();
    const std = cfg.initializer_factor * cfg.d_model ** -0.5;
    this.wi_0 = proj(cfg.d_model, cfg.d_ff, std);
    this.wi_1 = proj(cfg.d_model, cfg.d_ff, std);
    this.wo = proj(cfg.d_ff, cfg.d_model, cfg.initializer_factor * cfg.d_ff ** -0.5);
    this.dropout = new Dropout(cfg.dropout_rate);
  }

  forward(x: Tensor): Tensor {
    return this.wo.forward(this.dropout.forward(mul(this.act(this.wi_0.forward(x)), this.wi_1.forward(x))));
  }
}

export class T5LayerFF extends Module {
  DenseReluDense: T5DenseActDense | T5DenseGatedActDense;
  layer_norm: RMSNorm;
  dropout: Dropout;

  constructor(cfg: T5Config) {
    super();
    const proj = cfg.feed_forward_proj;
    const act = activation(proj === 'gated-gelu' ? 'gelu_new' : proj.replace(/^gated-/, ''));
    this.DenseReluDense = proj.startsWith('gated-') ? new T5DenseGatedActDense(cfg, act) : new T5DenseActDense(cfg, act);
    this.layer_norm = rmsNorm(cfg);
    this.dropout = new Dropout(cfg.dropout_rate);
  }

  forward(x: Tensor): Tensor {
    return add(x, this.dropout.forward(this.DenseReluDense.forward(this.layer_norm.forward(x))));
  }
}

// ---- blocks and stacks ----

export class T5EncoderBlock extends Module {
  layer: [T5LayerSelfAttention, T5LayerFF];

  constructor(cfg: T5Config, first: boolean) {
    super();
    this.layer = [new T5LayerSelfAttention(cfg, first, false), new T5LayerFF(cfg)];
  }

  forward(x: Tensor, mask: Tensor | null): Tensor {
    return this.layer[1].forward(this.layer[0].forward(x, mask));
  }
}

export class T5DecoderBlock extends Module {
  layer: [T5LayerSelfAttention, T5LayerCrossAttention, T5LayerFF];

  constructor(cfg: T5Config, first: boolean) {
    super();
    this.layer = [new T5LayerSelfAttention(cfg, first, true), new T5LayerCrossAttention(cfg), new T5LayerFF(cfg)];
  }

  forward(x: Tensor, selfMask: Tensor | null, encoderStates: Tensor, crossMask: Tensor | null, selfCache?: KVCache, crossCache?: KVCache): Tensor {
    const h = this.layer[1].forward(this.layer[0].forward(x, selfMask, selfCache), encoderStates, crossMask, crossCache);
    return this.layer[2].forward(h);
  }
}

/** The position bias [1, nh, T, S], with masked keys set to -Infinity ([B, nh, T, S]) when there is a mask. */
function maskedBias(bias: Tensor, mask: Tensor | null): Tensor {
  return mask ? where(mask, bias, -Infinity) : bias;
}

export class T5EncoderStack extends Module {
  embed_tokens: Embedding;
  block: T5EncoderBlock[];
  final_layer_norm: RMSNorm;
  dropout: Dropout;

  constructor(cfg: T5Config, shared: Embedding) {
    super();
    this.embed_tokens = shared;
    this.block = Array.from({ length: cfg.num_layers }, (_, i) => new T5EncoderBlock(cfg, i === 0));
    this.final_layer_norm = rmsNorm(cfg);
    this.dropout = new Dropout(cfg.dropout_rate);
  }

  /** ids [B, S], mask [B, S] -> [B, S, C] */
  forward(inputIds: Tensor, attentionMask?: Tensor | null): Tensor {
    if (inputIds.ndim !== 2) throw new Error(`T5: inputIds must be [batch, time], got ${fmtShape(inputIds.shape)}`);
    const [B, S] = inputIds.shape as [number, number];
    let x = this.dropout.forward(this.embed_tokens.forward(inputIds));
    const bias = this.block[0]!.layer[0].SelfAttention.positionBias(0, S, S, inputIds.device);
    const mask = maskedBias(bias, attentionMask ? keyMask(attentionMask, B, S, 'T5: attentionMask') : null);
    for (const b of this.block) x = b.forward(x, mask);
    return this.dropout.forward(this.final_layer_norm.forward(x));
  }
}

export class T5DecoderStack extends Module {
  embed_tokens: Embedding;
  block: T5DecoderBlock[];
  final_layer_norm: RMSNorm;
  dropout: Dropout;

  constructor(cfg: T5Config, shared: Embedding) {
    super();
    this.embed_tokens = shared;
    this.block = Array.from({ length: cfg.num_decoder_layers }, (_, i) => new T5DecoderBlock(cfg, i === 0));
    this.final_layer_norm = rmsNorm(cfg);
    this.dropout = new Dropout(cfg.dropout_rate);
  }

  /**
   * ids [B, T] (the new tokens when caching) over encoder states [B, S, C] -> [B, T, C]. encoderMask is [B, S]; the
   * decoder mask, if any, [B, past + T]. caches: [self_0, cross_0, self_1, cross_1, ...] (see newCache).
   */
  forward(ids: Tensor, encoderStates: Tensor, encoderMask?: Tensor | null, decoderMask?: Tensor | null, caches?: KVCache[]): Tensor {
    if (ids.ndim !== 2) throw new Error(`T5: decoderInputIds must be [batch, time], got ${fmtShape(ids.shape)}`);
    const [B, T] = ids.shape as [number, number];
    if (caches && caches.length !== 2 * this.block.length) {
      throw new Error(`T5: pastKeyValues must hold ${2 * this.block.length} caches (self- and cross-attention per decoder block), got ${caches.length}`);
    }
    const past = caches?.[0]!.length ?? 0;
    let x = this.dropout.forward(this.embed_tokens.forward(ids));
    const bias = this.block[0]!.layer[0].SelfAttention.positionBias(past, T, past + T, ids.device);
    const selfMask = maskedBias(bias, decoderMask ? keyMask(decoderMask, B, past + T, 'T5: decoderAttentionMask') : null);
    const crossMask = encoderMask ? keyMask(encoderMask, B, encoderStates.shape[1]!, 'T5: attentionMask') : null;
    this.block.forEach((b, i) => { x = b.forward(x, selfMask, encoderStates, crossMask, caches?.[2 * i], caches?.[2 * i + 1]); });
    return this.dropout.forward(this.final_layer_norm.forward(x));
  }
}

// ---- model ----

export class T5ForConditionalGeneration extends PreTrainedModel {
  shared: Embedding;
  encoder: T5EncoderStack;
  decoder: T5DecoderStack;
  lm_head: Linear;
  override readonly isEncoderDecoder = true;

  constructor(readonly config: T5Config) {
    super();
    this.shared = new Embedding(config.vocab_size, config.d_model);
    normal_(this.shared.weight, 0, config.initializer_factor);
    this.encoder = new T5EncoderStack(config, this.shared);
    this.decoder = new T5DecoderStack(config, this.shared);
    this.lm_head = new Linear(config.d_model, config.vocab_size, { bias: false });
    if (config.tie_word_embeddings) this.lm_head.weight = this.shared.weight;
    else normal_(this.lm_head.weight, 0, config.initializer_factor);
  }

  /**
   * inputIds / attentionMask [B, S] feed the encoder, unless encoderHiddenStates [B, S, C] is given (generation encodes
   * once). decoderInputIds [B, T] default to labels shifted right; with pastKeyValues they are only the new tokens.
   * labels [B, T]: cross-entropy over every position, -100 ignored.
   */
  forward({ inputIds, attentionMask, decoderInputIds, decoderAttentionMask, labels, pastKeyValues, encoderHiddenStates }: ModelInputs): ModelOutput {
    const C = this.config.d_model;
    const encoded = encoderHiddenStates ?? this.encoder.forward(requireInput(inputIds, 'inputIds', 'T5'), attentionMask);
    if (encoded.ndim !== 3 || encoded.shape[2] !== C) throw new Error(`T5: encoderHiddenStates must be [batch, time, ${C}], got ${fmtShape(encoded.shape)}`);
    let ids = decoderInputIds;
    if (!ids) {
      if (!labels) throw new Error('T5: pass decoderInputIds, or labels to derive them from');
      const start = this.config.decoder_start_token_id;
      if (start === null) throw new Error('T5: the config has no decoder_start_token_id to shift labels right with');
      ids = shiftTokensRight(labels, this.config.pad_token_id, start);
    }
    if (ids.shape[0] !== encoded.shape[0]) throw new Error(`T5: decoder batch ${ids.shape[0]} differs from the encoder's ${encoded.shape[0]}`);
    const hidden = this.decoder.forward(ids, encoded, attentionMask, decoderAttentionMask, pastKeyValues);
    // Tied embeddings are N(0, 1)-scale, so mesh-tensorflow rescales the decoder output before reading them as an lm_head.
    const logits = this.lm_head.forward(this.config.scale_decoder_outputs ? mul(hidden, C ** -0.5) : hidden);
    const out: ModelOutput = { logits, lastHiddenState: hidden, encoderLastHiddenState: encoded };
    if (labels) out.loss = crossEntropy(reshape(logits, [-1, this.config.vocab_size]), reshape(labels, [-1]), { ignoreIndex: -100 });
    return out;
  }

  /**
   * Caches for incremental decoding, two per decoder block in this order: [self_0, cross_0, self_1, cross_1, ...].
   * self_i grows by the new tokens' keys and values each step; cross_i holds block i's projections of the encoder
   * states, filled on the first step and reused after. All are KVCaches, so reorder() keeps beam rows together.
   */
  override newCache(): KVCache[] {
    return this.decoder.block.flatMap(() => [new KVCache(), new KVCache()]);
  }
}
