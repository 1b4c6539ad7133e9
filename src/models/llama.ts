// LLaMA: a decoder-only transformer (pre-norm RMS, rotary positions, SwiGLU MLP, grouped-query attention), parameter names as Hugging Face's.
//
// Papers: Touvron et al., "LLaMA: Open and Efficient Foundation Language Models" (2023); Su et al., "RoFormer:
// Enhanced Transformer with Rotary Position Embedding" (2021); Ainslie et al., "GQA" (2023).
// Reference: transformers/models/llama/modeling_llama.py (LlamaForCausalLM) and transformers/modeling_rope_utils.py.

import { add, cast, cos, gelu, logicalAnd, mul, relu, silu, sin } from '../autograd/ops/elementwise.js';
import { cat, expand, narrow, reshape, slice, transpose, unsqueeze } from '../autograd/ops/movement.js';
import { rotaryHeads } from '../autograd/ops/rotary.js';
import { arange, full, tensor } from '../tensor/create.js';
import { fmtShape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { KVCache } from '../nn/attention.js';
import { Embedding } from '../nn/embedding.js';
import { crossEntropy, scaledDotProductAttention } from '../nn/functional.js';
import { normal_, zeros_ } from '../nn/init.js';
import { Linear } from '../nn/linear.js';
import { Module } from '../nn/module.js';
import { RMSNorm } from '../nn/normalization.js';
import { QuantLinear } from '../quant/quant-linear.js';
import { ConfigReader, keyMask, PreTrainedModel, requireInput, type ModelInputs, type ModelOutput, type WeightSpec } from './base.js';

// ---- config (Hugging Face's LlamaConfig field names) ----

export const ROPE_TYPES = ['default', 'linear', 'llama3'] as const;
export type RopeType = (typeof ROPE_TYPES)[number];

/** The RoPE settings in transformers' current `rope_parameters` form (legacy configs are converted to it). */
export interface RopeParameters {
  rope_type: RopeType;
  rope_theta: number;
  /** linear, llama3: how much longer the context is than in pre-training. */
  factor?: number;
  /** llama3: wavelengths above original_max_position_embeddings / low_freq_factor are scaled by 1 / factor ... */
  low_freq_factor?: number;
  /** ... those below original_max_position_embeddings / high_freq_factor are kept; the ones between are blended. */
  high_freq_factor?: number;
  original_max_position_embeddings?: number;
}

export const LLAMA_ACTIVATIONS = ['silu', 'gelu', 'gelu_new', 'gelu_pytorch_tanh', 'relu'] as const;

export interface LlamaConfig {
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  /** Fewer key / value heads than query heads: grouped-query (1: multi-query) attention. */
  num_key_value_heads: number;
  head_dim: number;
  max_position_embeddings: number;
  rms_norm_eps: number;
  hidden_act: (typeof LLAMA_ACTIVATIONS)[number];
  attention_bias: boolean;
  mlp_bias: boolean;
  attention_dropout: number;
  initializer_range: number;
  tie_word_embeddings: boolean;
  rope_parameters: RopeParameters;
}

/**
 * Reads a LLaMA config.json, checking every field it uses (RoPE in the current or the legacy format). `defaults`
 * replace LLaMA's for absent (or null) fields: a descendant's config class has defaults of its own.
 */
export function llamaConfig(config: ConfigReader, defaults: Record<string, unknown> = {}): LlamaConfig {
  const r = withDefaults(config, defaults);
  const hidden = r.positive('hidden_size'), heads = r.positive('num_attention_heads');
  const kvHeads = r.optional('num_key_value_heads', (k) => r.positive(k)) ?? heads;
  r.divides('num_key_value_heads', kvHeads, 'num_attention_heads', heads);
  const explicitHeadDim = r.optional('head_dim', (k) => r.positive(k));
  if (explicitHeadDim === undefined) r.divides('num_attention_heads', heads, 'hidden_size', hidden);
  const headDim = explicitHeadDim ?? hidden / heads;
  if (!Number.isInteger(headDim) || headDim % 2 !== 0) {
    throw new Error(`${r.path}: the head size (head_dim, or hidden_size / num_attention_heads) must be an even integer for rotary positions, got ${headDim}`);
  }
  return {
    vocab_size: r.positive('vocab_size'), hidden_size: hidden, intermediate_size: r.positive('intermediate_size'), num_hidden_layers: r.count('num_hidden_layers'),
    num_attention_heads: heads, num_key_value_heads: kvHeads, head_dim: headDim, max_position_embeddings: r.positive('max_position_embeddings', 2048),
    rms_norm_eps: r.positiveNum('rms_norm_eps', 1e-6), hidden_act: r.str('hidden_act', LLAMA_ACTIVATIONS, 'silu'), attention_bias: r.bool('attention_bias', false),
    mlp_bias: r.bool('mlp_bias', false), attention_dropout: r.prob('attention_dropout', 0), initializer_range: r.num('initializer_range', 0.02),
    tie_word_embeddings: r.bool('tie_word_embeddings', false), rope_parameters: ropeParameters(r),
  };
}

/** A reader whose absent or null fields take the given values (errors still name the file and the key). */
function withDefaults(r: ConfigReader, defaults: Record<string, unknown>): ConfigReader {
  const missing = Object.entries(defaults).filter(([k]) => r.json[k] === undefined || r.json[k] === null);
  return missing.length ? new ConfigReader({ ...r.json, ...Object.fromEntries(missing) }, r.path) : r;
}

// ---- what LLaMA's descendants change ----

/**
 * The architectural changes of LLaMA's descendants (mistral.ts, qwen2.ts, gemma.ts fill it in from their configs).
 * Every field's default is LLaMA's own choice: `{}` is LLaMA.
 */
export interface LlamaVariant {
  /** The model's name in error messages (default 'LLaMA'). */
  name?: string;
  /** Biases on q_proj, k_proj and v_proj but not on o_proj (Qwen2); default: attention_bias on all four. */
  qkvBias?: boolean;
  /**
   * Per layer, its sliding window w: the query at cache position i sees the keys at positions j with i - j < w
   * (Mistral; Qwen2's sliding layers). null or absent: every earlier key.
   */
  slidingWindows?: readonly (number | null)[];
  /** Builds the decoder's RMSNorms (Gemma's scales by 1 + weight); default nn's RMSNorm. */
  rmsNorm?: (dim: number, eps: number) => RMSNorm;
  /** Multiplies the embeddings by sqrt(hidden_size), the factor rounded to the embeddings' dtype (Gemma). */
  scaleEmbeddings?: boolean;
}

/** The checkpoint's parameters (from the config alone, so a checkpoint is checked before anything is allocated). */
export function llamaWeights(cfg: LlamaConfig, variant: LlamaVariant = {}): WeightSpec {
  const C = cfg.hidden_size, F = cfg.intermediate_size, q = cfg.num_attention_heads * cfg.head_dim, kv = cfg.num_key_value_heads * cfg.head_dim;
  const shapes: Record<string, number[]> = { 'model.embed_tokens.weight': [cfg.vocab_size, C] };
  const linear = (name: string, inF: number, outF: number, bias: boolean): void => {
    shapes[`${name}.weight`] = [outF, inF];
    if (bias) shapes[`${name}.bias`] = [outF];
  };
  for (let i = 0; i < cfg.num_hidden_layers; i++) {
    const p = `model.layers.${i}.`;
    const qkvBias = variant.qkvBias ?? cfg.attention_bias;
    linear(`${p}self_attn.q_proj`, C, q, qkvBias);
    linear(`${p}self_attn.k_proj`, C, kv, qkvBias);
    linear(`${p}self_attn.v_proj`, C, kv, qkvBias);
    linear(`${p}self_attn.o_proj`, q, C, cfg.attention_bias);
    linear(`${p}mlp.gate_proj`, C, F, cfg.mlp_bias);
    linear(`${p}mlp.up_proj`, C, F, cfg.mlp_bias);
    linear(`${p}mlp.down_proj`, F, C, cfg.mlp_bias);
    shapes[`${p}input_layernorm.weight`] = [C];
    shapes[`${p}post_attention_layernorm.weight`] = [C];
  }
  shapes['model.norm.weight'] = [C];
  shapes['lm_head.weight'] = [cfg.vocab_size, C];
  return { shapes, tied: cfg.tie_word_embeddings ? [['model.embed_tokens.weight', 'lm_head.weight']] : [] };
}

/**
 * `rope_parameters` (transformers 5: rope_type, rope_theta and the scaling fields in one object), or the legacy
 * top-level `rope_theta` with an optional `rope_scaling` ({type or rope_type, factor, ...}).
 */
function ropeParameters(r: ConfigReader): RopeParameters {
  const key = r.json['rope_parameters'] !== undefined && r.json['rope_parameters'] !== null ? 'rope_parameters' : 'rope_scaling';
  const nested = r.json[key];
  const topTheta = (): number => r.num('rope_theta', 10000);
  if (nested === undefined || nested === null) return { rope_type: 'default', rope_theta: topTheta() };
  if (typeof nested !== 'object' || Array.isArray(nested)) throw new Error(`${r.path}: "${key}" must be an object, got ${JSON.stringify(nested)}`);
  const json = nested as Record<string, unknown>;
  // Old configs name the type "type"; read it under whichever name is there so that errors name that key.
  const typeKey = json['rope_type'] === undefined && json['type'] !== undefined ? 'type' : 'rope_type';
  const s = new ConfigReader(json, `${r.path} (${key})`);
  const ropeType = s.str(typeKey, ROPE_TYPES, 'default');
  const theta = s.optional('rope_theta', (k) => s.num(k)) ?? topTheta();
  const positive = (k: string): number => {
    const v = s.num(k);
    if (v <= 0) throw new Error(`${s.path}: "${k}" must be positive, got ${v}`);
    return v;
  };
  if (ropeType === 'default') return { rope_type: ropeType, rope_theta: theta };
  if (ropeType === 'linear') return { rope_type: ropeType, rope_theta: theta, factor: positive('factor') };
  const low = positive('low_freq_factor'), high = positive('high_freq_factor');
  if (high <= low) throw new Error(`${s.path}: "high_freq_factor" (${high}) must be greater than "low_freq_factor" (${low})`);
  return {
    rope_type: ropeType, rope_theta: theta, factor: positive('factor'), low_freq_factor: low, high_freq_factor: high,
    original_max_position_embeddings: s.int('original_max_position_embeddings'),
  };
}

function activation(name: LlamaConfig['hidden_act']): (x: Tensor) => Tensor {
  switch (name) {
    case 'silu': return silu;
    case 'gelu': return (x) => gelu(x);
    case 'gelu_new':
    case 'gelu_pytorch_tanh': return (x) => gelu(x, 'tanh');
    case 'relu': return relu;
  }
}

// ---- rotary position embedding ----

/**
 * The rotation frequencies of the `dim / 2` pairs of a head, as transformers' ROPE_INIT_FUNCTIONS compute them.
 * Every step is rounded to float32 (Math.fround) because the reference computes in float32.
 */
export function ropeInverseFrequencies(rope: RopeParameters, dim: number): Float32Array {
  const f = Math.fround;
  // default: theta^(-2i / dim)
  const inv = Float32Array.from({ length: dim / 2 }, (_, i) => f(1 / f(rope.rope_theta ** f((2 * i) / dim))));
  if (rope.rope_type === 'default') return inv;
  const factor = rope.factor!;
  // linear: every frequency divided by the factor (positions interpolated into the trained range).
  if (rope.rope_type === 'linear') return inv.map((x) => f(x / factor));
  // llama3: long wavelengths scaled like linear, short ones kept, the band between blended smoothly.
  const low = rope.low_freq_factor!, high = rope.high_freq_factor!, context = rope.original_max_position_embeddings!;
  const lowWavelen = context / low, highWavelen = context / high;
  return inv.map((x) => {
    const wavelen = f(f(2 * Math.PI) / x);
    if (wavelen < highWavelen) return x;
    if (wavelen > lowWavelen) return f(x / factor);
    const smooth = f(f(f(context / wavelen) - low) / (high - low));
    return f(f(f(1 - smooth) * x) / factor + f(smooth * x));
  });
}

/** cos / sin of position * frequency for every head channel (LlamaRotaryEmbedding); no weights, only a buffer. */
export class LlamaRotaryEmbedding extends Module {
  inv_freq: Tensor;
  /** The frequencies in float32: a half-precision model still rotates in float32, as transformers does. */
  private readonly freqs: Float32Array;

  constructor(cfg: LlamaConfig) {
    super();
    this.freqs = ropeInverseFrequencies(cfg.rope_parameters, cfg.head_dim);
    // Not persistent: checkpoints do not hold it (old ones that do are skipped on load).
    this.inv_freq = this.registerBuffer('inv_freq', tensor(this.freqs), false);
  }

  /** positions [B|1, T] -> cos, sin [B|1, 1, T, hs] (broadcast over the heads). */
  forward(positions: Tensor): [Tensor, Tensor] {
    const [B, T] = positions.shape as [number, number];
    // After module.half() the buffer is rounded (an angle of position * 2^-11 off): use the float32 values, then
    // give cos / sin the model's dtype (transformers: computed in float32, cast to x's dtype).
    const dtype = this.inv_freq.dtype;
    const invFreq = dtype === 'float32' ? this.inv_freq : tensor(this.freqs, { device: this.inv_freq.device });
    const freqs = mul(reshape(cast(positions, 'float32'), [B, T, 1]), invFreq); // [B, T, hs/2]
    // The two halves of a head rotate together: channel i pairs with channel i + hs/2.
    const emb = unsqueeze(cat([freqs, freqs], -1), 1);
    return [cast(cos(emb), dtype), cast(sin(emb), dtype)];
  }
}

// ---- attention / MLP / block ----

export class LlamaAttention extends Module {
  q_proj: Linear;
  k_proj: Linear;
  v_proj: Linear;
  o_proj: Linear;
  private readonly nHead: number;
  private readonly nKv: number;
  private readonly hs: number;
  private readonly dropoutP: number;

  constructor(cfg: LlamaConfig, variant: LlamaVariant = {}) {
    super();
    const C = cfg.hidden_size, bias = cfg.attention_bias, qkvBias = variant.qkvBias ?? bias;
    this.nHead = cfg.num_attention_heads;
    this.nKv = cfg.num_key_value_heads;
    this.hs = cfg.head_dim;
    this.q_proj = new Linear(C, this.nHead * this.hs, { bias: qkvBias });
    this.k_proj = new Linear(C, this.nKv * this.hs, { bias: qkvBias });
    this.v_proj = new Linear(C, this.nKv * this.hs, { bias: qkvBias });
    this.o_proj = new Linear(this.nHead * this.hs, C, { bias });
    this.dropoutP = cfg.attention_dropout;
  }

  /** x [B, T, C]; cos, sin [B|1, 1, T, hs]; attend: bool [B|1, 1, 1|T, S] (true = may attend) or null. */
  forward(x: Tensor, cosT: Tensor, sinT: Tensor, attend: Tensor | null, cache?: KVCache): Tensor {
    const [B, T] = x.shape as [number, number];
    // One job for the three projections when they are quantized (x quantized once), else three products.
    const [qp, kp, vp] = QuantLinear.forwardShared(x, [this.q_proj, this.k_proj, this.v_proj]) as [Tensor, Tensor, Tensor];
    // [B, T, n * hs] -> [B, n, T, hs], rotated (x cos + rotate_half(x) sin) in the same pass
    const q = rotaryHeads(qp, this.nHead, cosT, sinT);
    const k0 = rotaryHeads(kp, this.nKv, cosT, sinT);
    const v0 = transpose(reshape(vp, [B, T, this.nKv, this.hs]), 1, 2);
    // The cache holds the rotated keys of the kv heads only, with room to grow: attention reads its first S positions.
    const { key, value, length: S } = cache ? cache.append(k0, v0) : { key: k0, value: v0, length: T };
    const y = scaledDotProductAttention(q, this.repeatKv(key, S), this.repeatKv(value, S), {
      attnMask: attend, isCausal: true, scale: 1 / Math.sqrt(this.hs), dropoutP: this.training ? this.dropoutP : 0, kvLength: S,
    });
    // [B, nh, T, hs] -> [B, T, nh * hs]
    return this.o_proj.forward(reshape(transpose(y, 1, 2), [B, T, this.nHead * this.hs]));
  }

  /**
   * The first S positions of t [B, nkv, capacity, hs] as [B, nh, S, hs], kv head j repeated for query heads j * rep ..
   * (j + 1) * rep - 1; with one query head per kv head, t itself.
   */
  private repeatKv(t: Tensor, S: number): Tensor {
    const rep = this.nHead / this.nKv;
    if (rep === 1) return t;
    const B = t.shape[0]!;
    return reshape(expand(unsqueeze(narrow(t, 2, 0, S), 2), [B, this.nKv, rep, S, this.hs]), [B, this.nHead, S, this.hs]);
  }
}

/** SwiGLU: down(act(gate(x)) * up(x)). */
export class LlamaMLP extends Module {
  gate_proj: Linear;
  up_proj: Linear;
  down_proj: Linear;
  private readonly act: (x: Tensor) => Tensor;

  constructor(cfg: LlamaConfig) {
    super();
    const C = cfg.hidden_size, inner = cfg.intermediate_size, bias = cfg.mlp_bias;
    this.gate_proj = new Linear(C, inner, { bias });
    this.up_proj = new Linear(C, inner, { bias });
    this.down_proj = new Linear(inner, C, { bias });
    this.act = activation(cfg.hidden_act);
  }

  forward(x: Tensor): Tensor {
    const [gate, up] = QuantLinear.forwardShared(x, [this.gate_proj, this.up_proj]) as [Tensor, Tensor];
    return this.down_proj.forward(mul(this.act(gate), up));
  }
}

export class LlamaDecoderLayer extends Module {
  self_attn: LlamaAttention;
  mlp: LlamaMLP;
  input_layernorm: RMSNorm;
  post_attention_layernorm: RMSNorm;

  constructor(cfg: LlamaConfig, variant: LlamaVariant = {}) {
    super();
    const norm = variant.rmsNorm ?? defaultRmsNorm;
    this.self_attn = new LlamaAttention(cfg, variant);
    this.mlp = new LlamaMLP(cfg);
    this.input_layernorm = norm(cfg.hidden_size, cfg.rms_norm_eps);
    this.post_attention_layernorm = norm(cfg.hidden_size, cfg.rms_norm_eps);
  }

  forward(x: Tensor, cosT: Tensor, sinT: Tensor, attend: Tensor | null, cache?: KVCache): Tensor {
    const h = add(x, this.self_attn.forward(this.input_layernorm.forward(x), cosT, sinT, attend, cache));
    return add(h, this.mlp.forward(this.post_attention_layernorm.forward(h)));
  }
}

const defaultRmsNorm = (dim: number, eps: number): RMSNorm => new RMSNorm(dim, { eps });

/**
 * `attend` (or null) and-ed with a sliding window w: the query at cache position past + t sees the key at s when
 * past + t - s < w. Later keys are left to the causal mask. [B|1, 1, T, S] bool, or `attend` when no key is too old.
 */
function slidingWindowMask(attend: Tensor | null, w: number, past: number, T: number, device: string): Tensor | null {
  const S = past + T;
  if (S <= w) return attend;
  const band = new Uint8Array(T * S);
  for (let t = 0; t < T; t++) band.fill(1, t * S + Math.max(0, past + t - w + 1), (t + 1) * S);
  const m = tensor(band, { dtype: 'bool', shape: [1, 1, T, S], device });
  return attend ? logicalAnd(attend, m) : m;
}

// ---- model ----

export class LlamaModel extends Module {
  embed_tokens: Embedding;
  layers: LlamaDecoderLayer[];
  norm: RMSNorm;
  rotary_emb: LlamaRotaryEmbedding;
  /** The name in error messages. */
  readonly name: string;
  private readonly windows: readonly (number | null)[];
  private readonly scaleEmbeddings: boolean;

  constructor(readonly config: LlamaConfig, variant: LlamaVariant = {}) {
    super();
    this.embed_tokens = new Embedding(config.vocab_size, config.hidden_size);
    this.layers = Array.from({ length: config.num_hidden_layers }, () => new LlamaDecoderLayer(config, variant));
    this.norm = (variant.rmsNorm ?? defaultRmsNorm)(config.hidden_size, config.rms_norm_eps);
    this.rotary_emb = new LlamaRotaryEmbedding(config);
    this.name = variant.name ?? 'LLaMA';
    this.windows = variant.slidingWindows ?? [];
    this.scaleEmbeddings = variant.scaleEmbeddings ?? false;
  }

  /** ids [B, T] -> hidden states [B, T, C]; positions default to past .. past + T - 1 on every row. */
  forward(inputIds: Tensor, attentionMask?: Tensor | null, caches?: KVCache[], positionIds?: Tensor | null): Tensor {
    const name = this.name;
    if (inputIds.ndim !== 2) throw new Error(`${name}: inputIds must be [batch, time], got ${fmtShape(inputIds.shape)}`);
    const [B, T] = inputIds.shape as [number, number];
    const past = caches?.[0]?.length ?? 0;
    if (past + T > this.config.max_position_embeddings) {
      throw new Error(`${name}: ${past + T} positions exceed the model's max_position_embeddings = ${this.config.max_position_embeddings}`);
    }
    if (positionIds && (positionIds.ndim !== 2 || (positionIds.shape[0] !== B && positionIds.shape[0] !== 1) || positionIds.shape[1] !== T)) {
      throw new Error(`${name}: positionIds must be [${B}, ${T}] or [1, ${T}], got ${fmtShape(positionIds.shape)}`);
    }
    const pos = positionIds ?? reshape(arange(past, past + T, 1, { device: inputIds.device }), [1, T]);
    const [cosT, sinT] = this.rotary_emb.forward(pos);
    const attend = attentionMask ? keyMask(attentionMask, B, past + T, `${name}: attentionMask`, T) : null;
    // One mask per distinct sliding window (null: the padding mask alone), built when a layer first needs it.
    const masks = new Map<number | null, Tensor | null>([[null, attend]]);
    const maskFor = (w: number | null): Tensor | null => {
      if (!masks.has(w)) masks.set(w, slidingWindowMask(attend, w!, past, T, inputIds.device));
      return masks.get(w)!;
    };
    let x = this.embed_tokens.forward(inputIds);
    // As transformers: the factor is a tensor of the embeddings' dtype (sqrt(3072) becomes 55.5 in bfloat16).
    if (this.scaleEmbeddings) x = mul(x, full([], Math.sqrt(this.config.hidden_size), { dtype: x.dtype, device: x.device }));
    this.layers.forEach((layer, i) => { x = layer.forward(x, cosT, sinT, maskFor(this.windows[i] ?? null), caches?.[i]); });
    return this.norm.forward(x);
  }
}

export class LlamaForCausalLM extends PreTrainedModel {
  model: LlamaModel;
  lm_head: Linear;

  constructor(readonly config: LlamaConfig, variant: LlamaVariant = {}) {
    super();
    this.model = new LlamaModel(config, variant);
    this.lm_head = new Linear(config.hidden_size, config.vocab_size, { bias: false });
    const std = config.initializer_range;
    // transformers' _init_weights: N(0, initializer_range) for every projection and the embedding, zero biases.
    for (const [, m] of this.namedModules()) {
      if (m instanceof Linear) {
        normal_(m.weight, 0, std);
        if (m.bias) zeros_(m.bias);
      }
    }
    normal_(this.model.embed_tokens.weight, 0, std);
    if (config.tie_word_embeddings) this.lm_head.weight = this.model.embed_tokens.weight;
  }

  /** labels [B, T] are shifted inside (position t predicts labels[t + 1]); -100 is ignored. */
  forward({ inputIds, attentionMask, labels, pastKeyValues, positionIds }: ModelInputs): ModelOutput {
    const hidden = this.model.forward(requireInput(inputIds, 'inputIds', this.model.name), attentionMask, pastKeyValues, positionIds);
    const logits = this.lm_head.forward(hidden);
    if (!labels) return { logits, lastHiddenState: hidden };
    const [B, T, V] = logits.shape as [number, number, number];
    // Every position against the next label and the last one against -100 (ignored): the loss over [B, T-1].
    const next = cat([slice(cast(labels, 'int32'), 1, 1, T), full([B, 1], -100, { dtype: 'int32', device: labels.device })], 1);
    return { logits, lastHiddenState: hidden, loss: crossEntropy(reshape(logits, [B * T, V]), reshape(next, [B * T]), { ignoreIndex: -100 }) };
  }

  override positionLimit(): { key: string; value: number } {
    return { key: 'max_position_embeddings', value: this.config.max_position_embeddings };
  }

  override newCache(): KVCache[] {
    return this.model.layers.map(() => new KVCache());
  }
}
