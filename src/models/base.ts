// What every pretrained model shares: the forward inputs / outputs, config field checks, and strict weight loading.

import { cast, eq, where } from '../autograd/ops/elementwise.js';
import { cat, reshape, slice } from '../autograd/ops/movement.js';
import { full } from '../tensor/create.js';
import { isFloat, type FloatDType } from '../tensor/dtype.js';
import { fmtShape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import type { KVCache } from '../nn/attention.js';
import { Module } from '../nn/module.js';
import { savePretrainedFolder, type SavePretrainedOptions } from './save-pretrained.js';

export interface ModelInputs {
  /** [B, T] token ids (text models; see requireInput). */
  inputIds?: Tensor | null;
  /** [B, T] (or [B, past + T] with a cache): 1 for tokens, 0 for padding. */
  attentionMask?: Tensor | null;
  tokenTypeIds?: Tensor | null;
  /** Encoder-decoder models: the decoder's tokens (starting with the decoder start token). */
  decoderInputIds?: Tensor | null;
  decoderAttentionMask?: Tensor | null;
  /** Targets for the model's loss (-100 = ignore), in Hugging Face's convention for each head. */
  labels?: Tensor | null;
  /** Decoders: one cache per layer for incremental decoding (see newCache()). */
  pastKeyValues?: KVCache[];
  /** Encoder-decoder models: a precomputed encoder output to reuse (generation). */
  encoderHiddenStates?: Tensor | null;
  /** Decoders with learned or rotary positions: [B, T] positions (generation derives them from a left-padded mask). */
  positionIds?: Tensor | null;
  /** Vision models: [B, C, H, W] images as the image processor makes them. */
  pixelValues?: Tensor | null;
  /** Speech encoder-decoders (Whisper): [B, nMels, frames] log-mel features. */
  inputFeatures?: Tensor | null;
  /** Speech encoders on raw audio (wav2vec2): [B, samples] normalised waveform. */
  inputValues?: Tensor | null;
  /** Return each layer's attention probabilities [B, nh, T, T] as `attentions`. */
  outputAttentions?: boolean;
}

export interface ModelOutput {
  logits: Tensor;
  lastHiddenState?: Tensor;
  encoderLastHiddenState?: Tensor;
  loss?: Tensor;
  /** One [B, nh, T, T] attention map per layer, when `outputAttentions` was asked for. */
  attentions?: Tensor[];
}

/** The input a model cannot run without, or an error naming the model and the missing field. */
export function requireInput(value: Tensor | null | undefined, field: keyof ModelInputs, model: string): Tensor {
  if (!value) throw new Error(`${model}: forward needs "${field}"`);
  return value;
}

/** Token ids generation falls back on (from config.json, then generation_config.json). */
export interface GenerationDefaults {
  bosTokenId?: number;
  eosTokenId?: number | number[];
  padTokenId?: number;
  decoderStartTokenId?: number;
  /** generation_config.json's no_repeat_ngram_size, forced_bos_token_id, forced_eos_token_id (BART's summarizers). */
  noRepeatNgramSize?: number;
  forcedBosTokenId?: number;
  forcedEosTokenId?: number;
  /** Whisper's generation_config.json: [position, token | null] pairs that start the decoder prompt. */
  forcedDecoderIds?: [number, number | null][];
  /** Tokens never generated (HF's suppress_tokens), and tokens not generated first (begin_suppress_tokens). */
  suppressTokens?: number[];
  beginSuppressTokens?: number[];
  /** Whisper's prompt tokens: '<|en|>' -> id, 'transcribe' / 'translate' -> id, <|notimestamps|>. */
  langToId?: Record<string, number>;
  taskToId?: Record<string, number>;
  noTimestampsTokenId?: number;
  isMultilingual?: boolean;
}

/** Base of the Hugging Face architectures: a Module with a config and forward(inputs) -> outputs. */
export abstract class PreTrainedModel extends Module {
  abstract readonly config: object;
  abstract forward(inputs: ModelInputs): ModelOutput;
  /** True for encoder-decoder models (T5): generation runs the encoder once, then the decoder. */
  readonly isEncoderDecoder: boolean = false;
  generationConfig: GenerationDefaults = {};
  /** config.json as fromPretrained read it: what savePretrained writes back. */
  configJson?: Record<string, unknown>;
  /** generation_config.json as fromPretrained read it, when the folder had one: savePretrained writes it back. */
  generationConfigJson?: Record<string, unknown>;
  /** The dtype of the floating parameters (transformers' model.dtype): float32 unless loaded or converted otherwise. */
  get dtype(): FloatDType {
    for (const p of this.parameters()) if (isFloat(p.dtype)) return p.dtype;
    return 'float32';
  }
  /** The most positions the model can see (config key and value), or null when unlimited (relative positions). */
  positionLimit(): { key: string; value: number } | null {
    return null;
  }
  /**
   * Writes the model as a Hugging Face folder that transformers' from_pretrained loads (transformers' save_pretrained):
   * config.json, model.safetensors under Hugging Face's names (tied weights once), and generation_config.json.
   */
  savePretrained(dir: string, opts: SavePretrainedOptions = {}): Promise<void> {
    return savePretrainedFolder(this, dir, opts);
  }
  /** Fresh per-layer caches for incremental decoding; models that generate override this. */
  newCache(): KVCache[] {
    throw new Error(`${this.constructor.name} does not support incremental decoding`);
  }
}

/** The largest layer or label count a config may give (far above any published model). */
export const MAX_COUNT = 100_000;

/** A reader of config.json fields that names the file and the key in its errors. */
export class ConfigReader {
  constructor(readonly json: Record<string, unknown>, readonly path: string) {}

  /** Throws the reader's error for `key`: `${path}: "key" must be <want>, got <value>`. */
  fail(key: string, want: string): never {
    throw new Error(`${this.path}: "${key}" must be ${want}, got ${JSON.stringify(this.json[key])}`);
  }
  int(key: string, dflt?: number): number {
    const v = this.json[key] ?? dflt;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) this.fail(key, 'a non-negative integer');
    return v;
  }
  /** A size, count or width: an integer >= 1. */
  positive(key: string, dflt?: number): number {
    const v = this.json[key] ?? dflt;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) this.fail(key, 'a positive integer');
    return v;
  }
  /**
   * A count that the loader iterates over before it can compare with the checkpoint (layers, labels): a positive
   * integer up to `max`, so that a corrupt value is an error instead of a loop over billions.
   */
  count(key: string, dflt?: number, max = MAX_COUNT): number {
    const v = this.positive(key, dflt);
    if (v > max) this.fail(key, `a positive integer of at most ${max}`);
    return v;
  }
  /** A probability such as a dropout rate: a number in [0, 1]. */
  prob(key: string, dflt?: number): number {
    const v = this.json[key] ?? dflt;
    if (typeof v !== 'number' || !(v >= 0 && v <= 1)) this.fail(key, 'a number in [0, 1]');
    return v;
  }
  /** A strictly positive number (epsilons, scales). */
  positiveNum(key: string, dflt?: number): number {
    const v = this.json[key] ?? dflt;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) this.fail(key, 'a positive number');
    return v;
  }
  /** Fails unless `whole` is a multiple of `part` (e.g. heads dividing the width), naming both keys. */
  divides(partKey: string, part: number, wholeKey: string, whole: number): void {
    if (whole % part !== 0) throw new Error(`${this.path}: "${wholeKey}" (${whole}) must be divisible by "${partKey}" (${part})`);
  }
  num(key: string, dflt?: number): number {
    const v = this.json[key] ?? dflt;
    if (typeof v !== 'number' || !Number.isFinite(v)) this.fail(key, 'a number');
    return v;
  }
  bool(key: string, dflt?: boolean): boolean {
    const v = this.json[key] ?? dflt;
    if (typeof v !== 'boolean') this.fail(key, 'true or false');
    return v;
  }
  str<T extends string>(key: string, allowed: readonly T[], dflt?: T): T {
    const v = this.json[key] ?? dflt;
    if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) this.fail(key, `one of ${allowed.join(', ')}`);
    return v as T;
  }
  /** An optional value: undefined when absent or null. */
  optional<T>(key: string, read: (k: string) => T): T | undefined {
    return this.json[key] === undefined || this.json[key] === null ? undefined : read(key);
  }
}

/** Every parameter a model expects, by checkpoint name, computed from its config without allocating anything. */
export interface WeightSpec {
  shapes: Record<string, number[]>;
  /** Groups of names that share one tensor (tied embeddings): a checkpoint needs only one of each group. */
  tied: string[][];
}

const listSome = (keys: string[]): string => `${keys.slice(0, 8).join(', ')}${keys.length > 8 ? `, ... (${keys.length} in all)` : ''}`;

/**
 * Checks a checkpoint's names and shapes (from its header: nothing read or allocated) against what the config
 * implies, so that a config that disagrees with its checkpoint fails before a model is built. `configPath` names
 * the config.json the expected shapes came from.
 */
export function checkWeights(spec: WeightSpec, found: Record<string, { shape: readonly number[] }>, source: string, configPath: string, ignore: readonly RegExp[] = []): void {
  const has = (k: string): boolean => Object.hasOwn(found, k);
  const missing = Object.keys(spec.shapes).filter((k) => !has(k) && !spec.tied.some((g) => g.includes(k) && g.some(has)));
  const unexpected = Object.keys(found).filter((k) => !Object.hasOwn(spec.shapes, k) && !ignore.some((r) => r.test(k)));
  // Shapes first: a config of another size shows at its first weight, not as hundreds of missing layers.
  for (const [k, want] of Object.entries(spec.shapes)) {
    const got = has(k) ? found[k]!.shape : null;
    if (got && (got.length !== want.length || got.some((d, i) => d !== want[i]))) {
      throw new Error(`${source}: weight ${k} has shape ${fmtShape(got)}, the config says ${fmtShape(want)} (${configPath})`);
    }
  }
  if (missing.length) throw new Error(`${source}: missing weights for ${listSome(missing)} (expected from ${configPath})`);
  if (unexpected.length) throw new Error(`${source}: unexpected weights ${listSome(unexpected)} (is this checkpoint for another architecture, or does ${configPath} disagree with it?)`);
}

/**
 * Copies checkpoint tensors into the model with every name and shape checked first, so a bad
 * checkpoint changes nothing. Keys matching `ignore` (e.g. old causal-mask buffers) are skipped; a
 * model key may be absent when its tensor is tied to one that is present.
 */
export function loadPretrainedWeights(model: Module, tensors: Record<string, Tensor>, source: string, ignore: readonly RegExp[] = []): void {
  const own = model.stateDict();
  const present = new Set(Object.keys(tensors).filter((k) => k in own).map((k) => own[k]!));
  const missing = Object.keys(own).filter((k) => !(k in tensors) && !present.has(own[k]!));
  const unexpected = Object.keys(tensors).filter((k) => !(k in own) && !ignore.some((r) => r.test(k)));
  if (missing.length) throw new Error(`${source}: missing weights for ${listSome(missing)}`);
  if (unexpected.length) throw new Error(`${source}: unexpected weights ${listSome(unexpected)} (is this checkpoint for another architecture?)`);
  for (const [k, t] of Object.entries(tensors)) {
    const target = own[k];
    if (target && (target.ndim !== t.ndim || target.shape.some((d, i) => d !== t.shape[i]))) {
      throw new Error(`${source}: weight ${k} has shape ${fmtShape(t.shape)}, the config says ${fmtShape(target.shape)}`);
    }
  }
  model.loadStateDict(Object.fromEntries(Object.entries(tensors).filter(([k]) => k in own)), { strict: false });
}

/**
 * A padding mask [B, S] (1 = token, 0 = padding) as bool [B, 1, 1, S], broadcast over heads and queries; checked
 * against the keys it masks, the error naming `name` (e.g. 'GPT-2: attentionMask').
 */
export function keyMask(mask: Tensor, B: number, S: number, name: string, T?: number): Tensor {
  // A 4-D mask [B, 1, T, S] (1 = may attend) is a custom one, as transformers accepts: packed sequences' block diagonal.
  if (mask.ndim === 4 && T !== undefined) {
    if (mask.shape[0] !== B || mask.shape[1] !== 1 || mask.shape[2] !== T || mask.shape[3] !== S) {
      throw new Error(`${name} must be [${B}, ${S}] or [${B}, 1, ${T}, ${S}], got ${fmtShape(mask.shape)}`);
    }
    return cast(mask, 'bool');
  }
  if (mask.ndim !== 2 || mask.shape[0] !== B || mask.shape[1] !== S) throw new Error(`${name} must be [${B}, ${S}]${T !== undefined ? ` or [${B}, 1, ${T}, ${S}]` : ''}, got ${fmtShape(mask.shape)}`);
  return reshape(cast(mask, 'bool'), [B, 1, 1, S]); // [B, 1, 1, S]
}

/**
 * transformers' shift_tokens_right (T5's _shift_right): decoder inputs are the labels [B, T] moved one step right after
 * the decoder start token, with -100 (ignored labels) read as padding.
 */
export function shiftTokensRight(labels: Tensor, padTokenId: number, decoderStartTokenId: number): Tensor {
  const [B, T] = labels.shape as [number, number];
  const shifted = cat([full([B, 1], decoderStartTokenId, { dtype: labels.dtype, device: labels.device }), slice(labels, 1, 0, T - 1)], 1);
  return where(eq(shifted, -100), padTokenId, shifted);
}
