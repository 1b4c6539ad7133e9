// BART: a denoising sequence-to-sequence transformer (learned positions offset by 2, post-norm layers, a LayerNorm on
// the embeddings, a logits bias), parameter names as Hugging Face's.
//
// Paper: Lewis et al., "BART: Denoising Sequence-to-Sequence Pre-training for Natural Language Generation,
// Translation, and Comprehension" (2020).
// Reference: transformers/models/bart/modeling_bart.py (BartForConditionalGeneration).

import { noGrad } from '../autograd/engine.js';
import { add, gelu, mul, relu, silu, tanh } from '../autograd/ops/elementwise.js';
import { reshape, slice, transpose } from '../autograd/ops/movement.js';
import { zeros } from '../tensor/create.js';
import { fmtShape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { Dropout } from '../nn/activation.js';
import { KVCache } from '../nn/attention.js';
import { Embedding } from '../nn/embedding.js';
import { crossEntropy, scaledDotProductAttention } from '../nn/functional.js';
import { normal_, zeros_ } from '../nn/init.js';
import { Linear } from '../nn/linear.js';
import { Module } from '../nn/module.js';
import { LayerNorm } from '../nn/normalization.js';
import { ConfigReader, keyMask, PreTrainedModel, requireInput, shiftTokensRight, type ModelInputs, type ModelOutput, type WeightSpec } from './base.js';

// ---- config (Hugging Face's BartConfig field names) ----

const ACTIVATIONS = ['gelu', 'gelu_new', 'gelu_pytorch_tanh', 'relu', 'silu', 'swish', 'tanh'] as const;

/** fairseq reserved position rows 0 and 1 (its padding convention): position p reads row p + 2. */
export const BART_POSITION_OFFSET = 2;

export interface BartConfig {
  vocab_size: number;
  d_model: number;
  encoder_layers: number;
  encoder_attention_heads: number;
  encoder_ffn_dim: number;
  decoder_layers: number;
  decoder_attention_heads: number;
  decoder_ffn_dim: number;
  /** Positions per sequence; the tables hold max_position_embeddings + 2 rows (BART_POSITION_OFFSET). */
  max_position_embeddings: number;
  activation_function: (typeof ACTIVATIONS)[number];
  dropout: number;
  attention_dropout: number;
  activation_dropout: number;
  init_std: number;
  /** Token embeddings are multiplied by sqrt(d_model) when true. */
  scale_embedding: boolean;
  pad_token_id: number;
  decoder_start_token_id: number;
  tie_word_embeddings: boolean;
}

/**
 * Reads a BART config.json, checking every field it uses. Older configs carry switches for mBART-style variants
 * (pre-norm, a final LayerNorm, sinusoidal positions, no embedding LayerNorm); a value other than BART's is refused.
 */
export function bartConfig(r: ConfigReader): BartConfig {
  const cfg: BartConfig = {
    vocab_size: r.positive('vocab_size', 50265), d_model: r.positive('d_model', 1024),
    encoder_layers: r.count('encoder_layers', 12), encoder_attention_heads: r.positive('encoder_attention_heads', 16), encoder_ffn_dim: r.positive('encoder_ffn_dim', 4096),
    decoder_layers: r.count('decoder_layers', 12), decoder_attention_heads: r.positive('decoder_attention_heads', 16), decoder_ffn_dim: r.positive('decoder_ffn_dim', 4096),
    max_position_embeddings: r.positive('max_position_embeddings', 1024), activation_function: r.str('activation_function', ACTIVATIONS, 'gelu'),
    dropout: r.prob('dropout', 0.1), attention_dropout: r.prob('attention_dropout', 0), activation_dropout: r.prob('activation_dropout', 0),
    init_std: r.num('init_std', 0.02), scale_embedding: r.bool('scale_embedding', false), pad_token_id: r.int('pad_token_id', 1),
    decoder_start_token_id: r.int('decoder_start_token_id', 2), tie_word_embeddings: r.bool('tie_word_embeddings', true),
  };
  r.divides('encoder_attention_heads', cfg.encoder_attention_heads, 'd_model', cfg.d_model);
  r.divides('decoder_attention_heads', cfg.decoder_attention_heads, 'd_model', cfg.d_model);
  for (const k of ['pad_token_id', 'decoder_start_token_id'] as const) {
    if (cfg[k] >= cfg.vocab_size) throw new Error(`${r.path}: "${k}" (${cfg[k]}) must be below "vocab_size" (${cfg.vocab_size})`);
  }
  const legacy: [string, boolean][] = [['normalize_before', false], ['add_final_layer_norm', false], ['static_position_embeddings', false], ['normalize_embedding', true], ['add_bias_logits', false]];
  for (const [k, bart] of legacy) {
    if (r.optional(k, (key) => r.bool(key)) === !bart) throw new Error(`${r.path}: "${k}": ${!bart} is an mBART / Marian-style variant that BART does not support (BART has ${bart})`);
  }
  return cfg;
}

/** The checkpoint's parameters (from the config alone, so a checkpoint is checked before anything is allocated). */
export function bartWeights(cfg: BartConfig): WeightSpec {
  const C = cfg.d_model, V = cfg.vocab_size;
  const shapes: Record<string, number[]> = { 'model.shared.weight': [V, C] };
  const linear = (p: string, outF: number, inF: number): void => { shapes[`${p}.weight`] = [outF, inF]; shapes[`${p}.bias`] = [outF]; };
  const norm = (p: string): void => { shapes[`${p}.weight`] = [C]; shapes[`${p}.bias`] = [C]; };
  const attention = (p: string): void => { for (const n of ['q_proj', 'k_proj', 'v_proj', 'out_proj']) linear(`${p}.${n}`, C, C); };
  for (const stack of ['encoder', 'decoder'] as const) {
    const n = stack === 'encoder' ? cfg.encoder_layers : cfg.decoder_layers, F = stack === 'encoder' ? cfg.encoder_ffn_dim : cfg.decoder_ffn_dim;
    shapes[`model.${stack}.embed_tokens.weight`] = [V, C];
    shapes[`model.${stack}.embed_positions.weight`] = [cfg.max_position_embeddings + BART_POSITION_OFFSET, C];
    norm(`model.${stack}.layernorm_embedding`);
    for (let i = 0; i < n; i++) {
      const p = `model.${stack}.layers.${i}`;
      attention(`${p}.self_attn`);
      norm(`${p}.self_attn_layer_norm`);
      if (stack === 'decoder') { attention(`${p}.encoder_attn`); norm(`${p}.encoder_attn_layer_norm`); }
      linear(`${p}.fc1`, F, C);
      linear(`${p}.fc2`, C, F);
      norm(`${p}.final_layer_norm`);
    }
  }
  shapes['lm_head.weight'] = [V, C];
  shapes['final_logits_bias'] = [1, V];
  const embeddings = ['model.shared.weight', 'model.encoder.embed_tokens.weight', 'model.decoder.embed_tokens.weight'];
  return { shapes, tied: [cfg.tie_word_embeddings ? [...embeddings, 'lm_head.weight'] : embeddings] };
}

function activation(name: BartConfig['activation_function']): (x: Tensor) => Tensor {
  switch (name) {
    case 'gelu': return (x) => gelu(x);
    case 'gelu_new': case 'gelu_pytorch_tanh': return (x) => gelu(x, 'tanh');
    case 'relu': return relu;
    case 'silu': case 'swish': return silu;
    case 'tanh': return tanh;
  }
}

/** transformers' _init_weights: N(0, init_std) weights, zero biases. */
export function linear(inF: number, outF: number, std: number, bias = true): Linear {
  const l = new Linear(inF, outF, { bias });
  normal_(l.weight, 0, std);
  if (l.bias) zeros_(l.bias);
  return l;
}

// ---- attention / layers ----

export class BartAttention extends Module {
  q_proj: Linear;
  k_proj: Linear;
  v_proj: Linear;
  out_proj: Linear;
  private readonly hs: number;

  /** keyBias false: Whisper's key projection (a bias on keys only shifts every score of a query equally). */
  constructor(readonly C: number, readonly nHead: number, private readonly pDrop: number, std: number, keyBias = true) {
    super();
    this.q_proj = linear(C, C, std);
    this.k_proj = linear(C, C, std, keyBias);
    this.v_proj = linear(C, C, std);
    this.out_proj = linear(C, C, std);
    this.hs = C / nHead;
  }

  /** [B, L, C] -> [B, nh, L, hs] */
  private heads(x: Tensor, projection: Linear): Tensor {
    const [B, L] = x.shape as [number, number];
    return transpose(reshape(projection.forward(x), [B, L, this.nHead, this.hs]), 1, 2);
  }

  /** Scores scaled by hs^-0.5 (BART scales the queries: the same product); mask is bool "may attend" [B, 1, 1, S]. */
  private attend(x: Tensor, k: Tensor, v: Tensor, mask: Tensor | null, causal: boolean): Tensor {
    const [B, T] = x.shape as [number, number];
    const y = scaledDotProductAttention(this.heads(x, this.q_proj), k, v, { attnMask: mask, isCausal: causal, dropoutP: this.training ? this.pDrop : 0 });
    // [B, nh, T, hs] -> [B, T, nh, hs] -> [B, T, C]
    return this.out_proj.forward(reshape(transpose(y, 1, 2), [B, T, this.C]));
  }

  /** x [B, T, C]; causal in the decoder, where this step's keys and values are appended to the cache. */
  selfAttention(x: Tensor, mask: Tensor | null, causal: boolean, cache?: KVCache): Tensor {
    const [k0, v0] = [this.heads(x, this.k_proj), this.heads(x, this.v_proj)];
    const [k, v] = cache ? cache.update(k0, v0) : [k0, v0];
    return this.attend(x, k, v, mask, causal);
  }

  /** Decoder x [B, T, C] over encoder states [B, S, C]; a cache keeps their keys and values from its first call on. */
  crossAttention(x: Tensor, encoderStates: Tensor, mask: Tensor | null, cache?: KVCache): Tensor {
    let k: Tensor, v: Tensor;
    if (cache?.key && cache.value) [k, v] = [cache.key, cache.value];
    else {
      [k, v] = [this.heads(encoderStates, this.k_proj), this.heads(encoderStates, this.v_proj)];
      if (cache) [k, v] = cache.update(k, v);
    }
    return this.attend(x, k, v, mask, false);
  }
}

/** Post-norm: each sublayer is x = norm(x + dropout(sublayer(x))). */
export class BartEncoderLayer extends Module {
  self_attn: BartAttention;
  self_attn_layer_norm: LayerNorm;
  fc1: Linear;
  fc2: Linear;
  final_layer_norm: LayerNorm;
  dropout: Dropout;
  activation_dropout: Dropout;
  private readonly act: (x: Tensor) => Tensor;

  constructor(cfg: BartConfig) {
    super();
    const C = cfg.d_model;
    this.self_attn = new BartAttention(C, cfg.encoder_attention_heads, cfg.attention_dropout, cfg.init_std);
    this.self_attn_layer_norm = new LayerNorm(C);
    this.fc1 = linear(C, cfg.encoder_ffn_dim, cfg.init_std);
    this.fc2 = linear(cfg.encoder_ffn_dim, C, cfg.init_std);
    this.final_layer_norm = new LayerNorm(C);
    this.dropout = new Dropout(cfg.dropout);
    this.activation_dropout = new Dropout(cfg.activation_dropout);
    this.act = activation(cfg.activation_function);
  }

  forward(x: Tensor, mask: Tensor | null): Tensor {
    const h = this.self_attn_layer_norm.forward(add(x, this.dropout.forward(this.self_attn.selfAttention(x, mask, false))));
    const f = this.fc2.forward(this.activation_dropout.forward(this.act(this.fc1.forward(h))));
    return this.final_layer_norm.forward(add(h, this.dropout.forward(f)));
  }
}

export class BartDecoderLayer extends Module {
  self_attn: BartAttention;
  self_attn_layer_norm: LayerNorm;
  encoder_attn: BartAttention;
  encoder_attn_layer_norm: LayerNorm;
  fc1: Linear;
  fc2: Linear;
  final_layer_norm: LayerNorm;
  dropout: Dropout;
  activation_dropout: Dropout;
  private readonly act: (x: Tensor) => Tensor;

  constructor(cfg: BartConfig) {
    super();
    const C = cfg.d_model;
    this.self_attn = new BartAttention(C, cfg.decoder_attention_heads, cfg.attention_dropout, cfg.init_std);
    this.self_attn_layer_norm = new LayerNorm(C);
    this.encoder_attn = new BartAttention(C, cfg.decoder_attention_heads, cfg.attention_dropout, cfg.init_std);
    this.encoder_attn_layer_norm = new LayerNorm(C);
    this.fc1 = linear(C, cfg.decoder_ffn_dim, cfg.init_std);
    this.fc2 = linear(cfg.decoder_ffn_dim, C, cfg.init_std);
    this.final_layer_norm = new LayerNorm(C);
    this.dropout = new Dropout(cfg.dropout);
    this.activation_dropout = new Dropout(cfg.activation_dropout);
    this.act = activation(cfg.activation_function);
  }

  forward(x: Tensor, selfMask: Tensor | null, encoderStates: Tensor, crossMask: Tensor | null, selfCache?: KVCache, crossCache?: KVCache): Tensor {
    let h = this.self_attn_layer_norm.forward(add(x, this.dropout.forward(this.self_attn.selfAttention(x, selfMask, true, selfCache))));
    h = this.encoder_attn_layer_norm.forward(add(h, this.dropout.forward(this.encoder_attn.crossAttention(h, encoderStates, crossMask, crossCache))));
    const f = this.fc2.forward(this.activation_dropout.forward(this.act(this.fc1.forward(h))));
    return this.final_layer_norm.forward(add(h, this.dropout.forward(f)));
  }
}

// ---- encoder and decoder ----

/** A learned position table of max_position_embeddings + 2 rows (BartLearnedPositionalEmbedding). */
function positionTable(cfg: BartConfig): Embedding {
  const e = new Embedding(cfg.max_position_embeddings + BART_POSITION_OFFSET, cfg.d_model);
  normal_(e.weight, 0, cfg.init_std);
  return e;
}

/** Token embeddings (times embed_scale) plus the positions past .. past + T - 1, through layernorm_embedding: [B, T, C]. */
function embed(cfg: BartConfig, ids: Tensor, tokens: Embedding, positions: Embedding, norm: LayerNorm, past: number, what: string): Tensor {
  if (ids.ndim !== 2) throw new Error(`BART: ${what} must be [batch, time], got ${fmtShape(ids.shape)}`);
  const T = ids.shape[1]!, P = cfg.max_position_embeddings;
  if (past + T > P) throw new Error(`BART: ${what} needs ${past + T} positions, more than max_position_embeddings = ${P}`);
  const x = tokens.forward(ids);
  const scaled = cfg.scale_embedding ? mul(x, Math.sqrt(cfg.d_model)) : x;
  // Position p reads row p + 2: the rows of past + 2 .. past + T + 1, [T, C], broadcast over the batch.
  return norm.forward(add(scaled, slice(positions.weight, 0, past + BART_POSITION_OFFSET, past + T + BART_POSITION_OFFSET)));
}

export class BartEncoder extends Module {
  embed_tokens: Embedding;
  embed_positions: Embedding;
  layers: BartEncoderLayer[];
  layernorm_embedding: LayerNorm;
  dropout: Dropout;

  constructor(private readonly cfg: BartConfig, shared: Embedding) {
    super();
    this.embed_tokens = shared;
    this.embed_positions = positionTable(cfg);
    this.layers = Array.from({ length: cfg.encoder_layers }, () => new BartEncoderLayer(cfg));
    this.layernorm_embedding = new LayerNorm(cfg.d_model);
    this.dropout = new Dropout(cfg.dropout);
  }

  /** ids [B, S], mask [B, S] (1 = token) -> [B, S, C]; there is no final LayerNorm (each layer ends with one). */
  forward(inputIds: Tensor, attentionMask?: Tensor | null): Tensor {
    let x = this.dropout.forward(embed(this.cfg, inputIds, this.embed_tokens, this.embed_positions, this.layernorm_embedding, 0, 'inputIds'));
    const [B, S] = inputIds.shape as [number, number];
    const mask = attentionMask ? keyMask(attentionMask, B, S, 'BART: attentionMask') : null;
    for (const l of this.layers) x = l.forward(x, mask);
    return x;
  }
}

export class BartDecoder extends Module {
  embed_tokens: Embedding;
  embed_positions: Embedding;
  layers: BartDecoderLayer[];
  layernorm_embedding: LayerNorm;
  dropout: Dropout;

  constructor(private readonly cfg: BartConfig, shared: Embedding) {
    super();
    this.embed_tokens = shared;
    this.embed_positions = positionTable(cfg);
    this.layers = Array.from({ length: cfg.decoder_layers }, () => new BartDecoderLayer(cfg));
    this.layernorm_embedding = new LayerNorm(cfg.d_model);
    this.dropout = new Dropout(cfg.dropout);
  }

  /**
   * ids [B, T] (the new tokens when caching) over encoder states [B, S, C] -> [B, T, C]. encoderMask is [B, S]; the
   * decoder mask, if any, [B, past + T]. caches: [self_0, cross_0, self_1, cross_1, ...] (see newCache).
   */
  forward(ids: Tensor, encoderStates: Tensor, encoderMask?: Tensor | null, decoderMask?: Tensor | null, caches?: KVCache[]): Tensor {
    if (caches && caches.length !== 2 * this.layers.length) {
      throw new Error(`BART: pastKeyValues must hold ${2 * this.layers.length} caches (self- and cross-attention per decoder layer), got ${caches.length}`);
    }
    const past = caches?.[0]!.length ?? 0;
    let x = this.dropout.forward(embed(this.cfg, ids, this.embed_tokens, this.embed_positions, this.layernorm_embedding, past, 'decoderInputIds'));
    const [B, T] = ids.shape as [number, number];
    const selfMask = decoderMask ? keyMask(decoderMask, B, past + T, 'BART: decoderAttentionMask') : null;
    const crossMask = encoderMask ? keyMask(encoderMask, B, encoderStates.shape[1]!, 'BART: attentionMask') : null;
    this.layers.forEach((l, i) => { x = l.forward(x, selfMask, encoderStates, crossMask, caches?.[2 * i], caches?.[2 * i + 1]); });
    return x;
  }
}

export class BartModel extends Module {
  /** The one token embedding: the encoder's and decoder's embed_tokens (and a tied lm_head) are this table. */
  shared: Embedding;
  encoder: BartEncoder;
  decoder: BartDecoder;

  constructor(cfg: BartConfig) {
    super();
    this.shared = new Embedding(cfg.vocab_size, cfg.d_model, { paddingIdx: cfg.pad_token_id });
    // N(0, init_std), the padding row kept at zero (Embedding draws N(0, 1) with that row zeroed).
    const w = this.shared.weight;
    noGrad(() => w.replaceStorage(mul(w, cfg.init_std)));
    this.encoder = new BartEncoder(cfg, this.shared);
    this.decoder = new BartDecoder(cfg, this.shared);
  }
}

// ---- model ----

export class BartForConditionalGeneration extends PreTrainedModel {
  model: BartModel;
  lm_head: Linear;
  /** [1, V] added to the logits: a buffer (zeros in BART's checkpoints, a learned bias in some fine-tunes), never trained. */
  final_logits_bias: Tensor;
  override readonly isEncoderDecoder = true;

  constructor(readonly config: BartConfig) {
    super();
    this.model = new BartModel(config);
    this.lm_head = new Linear(config.d_model, config.vocab_size, { bias: false });
    if (config.tie_word_embeddings) this.lm_head.weight = this.model.shared.weight;
    else normal_(this.lm_head.weight, 0, config.init_std);
    this.final_logits_bias = this.registerBuffer('final_logits_bias', zeros([1, config.vocab_size]));
  }

  /**
   * inputIds / attentionMask [B, S] feed the encoder, unless encoderHiddenStates [B, S, C] is given (generation
   * encodes once). decoderInputIds [B, T] default, as in transformers, to labels shifted right, else to inputIds
   * shifted right (the denoising setting); with pastKeyValues they are only the new tokens. labels [B, T]:
   * cross-entropy over every position, -100 ignored.
   */
  forward({ inputIds, attentionMask, decoderInputIds, decoderAttentionMask, labels, pastKeyValues, encoderHiddenStates }: ModelInputs): ModelOutput {
    const { d_model: C, pad_token_id: pad, decoder_start_token_id: start } = this.config;
    const encoded = encoderHiddenStates ?? this.model.encoder.forward(requireInput(inputIds, 'inputIds', 'BART'), attentionMask);
    if (encoded.ndim !== 3 || encoded.shape[2] !== C) throw new Error(`BART: encoderHiddenStates must be [batch, time, ${C}], got ${fmtShape(encoded.shape)}`);
    let ids = decoderInputIds;
    if (!ids) {
      const from = labels ?? inputIds;
      if (!from) throw new Error('BART: pass decoderInputIds, or labels (or inputIds) to derive them from');
      ids = shiftTokensRight(from, pad, start);
    }
    if (ids.shape[0] !== encoded.shape[0]) throw new Error(`BART: decoder batch ${ids.shape[0]} differs from the encoder's ${encoded.shape[0]}`);
    const hidden = this.model.decoder.forward(ids, encoded, attentionMask, decoderAttentionMask, pastKeyValues);
    const logits = add(this.lm_head.forward(hidden), this.final_logits_bias);
    const out: ModelOutput = { logits, lastHiddenState: hidden, encoderLastHiddenState: encoded };
    if (labels) out.loss = crossEntropy(reshape(logits, [-1, this.config.vocab_size]), reshape(labels, [-1]), { ignoreIndex: -100 });
    return out;
  }

  override positionLimit(): { key: string; value: number } {
    return { key: 'max_position_embeddings', value: this.config.max_position_embeddings };
  }

  /** Two caches per decoder layer, [self_0, cross_0, self_1, cross_1, ...], as T5's (see t5.ts newCache). */
  override newCache(): KVCache[] {
    return this.model.decoder.layers.flatMap(() => [new KVCache(), new KVCache()]);
  }
}
