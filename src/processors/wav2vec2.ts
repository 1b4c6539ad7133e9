// wav2vec2's audio front end, as Hugging Face's Wav2Vec2FeatureExtractor: batch padding and per-utterance normalisation.

import { tensor } from '../tensor/create.js';
import type { Tensor } from '../tensor/tensor.js';
import { fileExists, readJsonFile } from '../io/hf.js';
import { withSource, type ModelSource } from '../io/source.js';

/** preprocessor_config.json's fields, with Hugging Face's names and defaults. */
export interface Wav2Vec2FeatureExtractorConfig {
  feature_size: number;
  sampling_rate: number;
  padding_value: number;
  /** Return an attention mask (1 = sample, 0 = padding); false for the group-norm base models, which take zero padding. */
  return_attention_mask: boolean;
  /** Zero mean and unit variance per utterance (over its real samples when a mask is made). */
  do_normalize: boolean;
}

const DEFAULTS: Wav2Vec2FeatureExtractorConfig = { feature_size: 1, sampling_rate: 16000, padding_value: 0, return_attention_mask: false, do_normalize: true };

/** transformers' epsilon in zero_mean_unit_var_norm: (x - mean) / sqrt(var + 1e-7). */
const NORM_EPS = 1e-7;

export interface Wav2Vec2CallOptions {
  /** The audio's rate: an error unless it is the extractor's (resample first). */
  samplingRate?: number;
  /** false (the default, as HF): every signal must have the same length; true / 'longest': pad to the longest; 'max_length': pad to maxLength. */
  padding?: boolean | 'longest' | 'max_length';
  maxLength?: number;
  /** Cut signals longer than maxLength (otherwise they are an error with padding 'max_length'). */
  truncation?: boolean;
  padToMultipleOf?: number;
  /** Overrides the config's return_attention_mask. */
  returnAttentionMask?: boolean;
  device?: string;
}

export interface Wav2Vec2Features {
  /** [B, S] float32 */
  inputValues: Tensor;
  /** [B, S] int32 (1 = sample, 0 = padding), when asked for. */
  attentionMask?: Tensor;
}

export class Wav2Vec2FeatureExtractor {
  readonly config: Wav2Vec2FeatureExtractorConfig;

  constructor(config: Partial<Wav2Vec2FeatureExtractorConfig> = {}) {
    this.config = { ...DEFAULTS, ...config };
    const { feature_size: size, sampling_rate: rate, padding_value: pad } = this.config;
    if (size !== 1) throw new Error(`Wav2Vec2FeatureExtractor: feature_size must be 1 (mono samples), got ${size}`);
    if (!Number.isSafeInteger(rate) || rate < 1) throw new Error(`Wav2Vec2FeatureExtractor: sampling_rate must be a positive integer, got ${rate}`);
    if (!Number.isFinite(pad)) throw new Error(`Wav2Vec2FeatureExtractor: padding_value must be a finite number, got ${pad}`);
  }

  /**
   * Reads preprocessor_config.json from a model folder (Hugging Face's defaults when the file is absent): a path (Node),
   * a URL, or files in memory.
   */
  static fromPretrained(src: ModelSource): Promise<Wav2Vec2FeatureExtractor> {
    return withSource(src, (dir) => Wav2Vec2FeatureExtractor.fromFolder(dir));
  }

  private static async fromFolder(dir: string): Promise<Wav2Vec2FeatureExtractor> {
    const path = `${dir.replace(/\/$/, '')}/preprocessor_config.json`;
    if (!(await fileExists(path))) return new Wav2Vec2FeatureExtractor();
    const json = await readJsonFile(path);
    if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new Error(`${path}: expected a JSON object`);
    const obj = json as Record<string, unknown>;
    const field = <T>(key: keyof Wav2Vec2FeatureExtractorConfig, type: 'number' | 'boolean'): T | undefined => {
      const v = obj[key];
      if (v === undefined || v === null) return undefined;
      if (typeof v !== type || (type === 'number' && !Number.isFinite(v))) throw new Error(`${path}: "${key}" must be a ${type}, got ${JSON.stringify(v)}`);
      return v as T;
    };
    const cfg: Partial<Wav2Vec2FeatureExtractorConfig> = {};
    for (const k of ['feature_size', 'sampling_rate', 'padding_value'] as const) { const v = field<number>(k, 'number'); if (v !== undefined) cfg[k] = v; }
    for (const k of ['return_attention_mask', 'do_normalize'] as const) { const v = field<boolean>(k, 'boolean'); if (v !== undefined) cfg[k] = v; }
    try {
      return new Wav2Vec2FeatureExtractor(cfg);
    } catch (e) {
      throw new Error(`${path}: ${(e as Error).message}`);
    }
  }

  /**
   * Input values as Hugging Face's __call__ gives them: the signals padded (right, with padding_value) to a common
   * length, then each normalised to zero mean and unit variance when do_normalize is set — over its real samples,
   * padding set back to padding_value, when an attention mask is made; over the whole padded row otherwise.
   */
  call(audio: Float32Array | readonly number[] | readonly (Float32Array | readonly number[])[], opts: Wav2Vec2CallOptions = {}): Wav2Vec2Features {
    const rate = this.config.sampling_rate;
    if (opts.samplingRate !== undefined && opts.samplingRate !== rate) {
      throw new Error(`Wav2Vec2FeatureExtractor: the audio is sampled at ${opts.samplingRate} Hz, the model at ${rate} Hz; resample it first`);
    }
    const batch = isBatch(audio) ? audio : [audio as Float32Array | readonly number[]];
    if (batch.length === 0) throw new Error('Wav2Vec2FeatureExtractor: no audio given (empty batch)');
    batch.forEach((s, b) => {
      if (s.length === 0) throw new Error(`Wav2Vec2FeatureExtractor: audio ${b} is empty (0 samples)`);
      for (let i = 0; i < s.length; i++) {
        if (typeof s[i] !== 'number' || !Number.isFinite(s[i])) throw new Error(`Wav2Vec2FeatureExtractor: audio ${b} sample ${i} is ${s[i]}, not a finite number`);
      }
    });
    const lengths = this.targetLengths(batch.map((s) => s.length), opts);
    const S = lengths.target;
    const withMask = opts.returnAttentionMask ?? this.config.return_attention_mask;
    const values = new Float32Array(batch.length * S).fill(this.config.padding_value);
    const mask = new Int32Array(batch.length * S);
    batch.forEach((s, b) => {
      const n = Math.min(s.length, S);
      for (let i = 0; i < n; i++) values[b * S + i] = s[i]!;
      mask.fill(1, b * S, b * S + n);
    });
    if (this.config.do_normalize) {
      // HF normalises over the real samples only when it pads with a mask; otherwise over the whole padded row.
      const useMask = withMask && lengths.padded;
      batch.forEach((s, b) => normalize(values.subarray(b * S, (b + 1) * S), useMask ? Math.min(s.length, S) : S, this.config.padding_value));
    }
    const out: Wav2Vec2Features = { inputValues: tensor(values, { shape: [batch.length, S], device: opts.device }) };
    if (withMask) out.attentionMask = tensor(mask, { shape: [batch.length, S], device: opts.device });
    return out;
  }

  /** The common length after padding / truncation, and whether any padding strategy is on (HF's DO_NOT_PAD test). */
  private targetLengths(lengths: number[], opts: Wav2Vec2CallOptions): { target: number; padded: boolean } {
    const strategy = opts.padding === true ? 'longest' : opts.padding || false;
    const longest = Math.max(...lengths);
    const { maxLength, padToMultipleOf: multiple } = opts;
    if (maxLength !== undefined && (!Number.isSafeInteger(maxLength) || maxLength < 1)) throw new Error(`Wav2Vec2FeatureExtractor: maxLength must be a positive integer, got ${maxLength}`);
    if (multiple !== undefined && (!Number.isSafeInteger(multiple) || multiple < 1)) throw new Error(`Wav2Vec2FeatureExtractor: padToMultipleOf must be a positive integer, got ${multiple}`);
    if (opts.truncation && maxLength === undefined) throw new Error('Wav2Vec2FeatureExtractor: truncation needs maxLength');
    let target: number;
    if (strategy === 'max_length') {
      if (maxLength === undefined) throw new Error("Wav2Vec2FeatureExtractor: padding 'max_length' needs maxLength");
      const over = lengths.findIndex((n) => n > maxLength);
      if (over >= 0 && !opts.truncation) throw new Error(`Wav2Vec2FeatureExtractor: audio ${over} has ${lengths[over]} samples, more than maxLength ${maxLength}; pass truncation: true to cut it`);
      target = maxLength;
    } else {
      target = opts.truncation ? Math.min(longest, maxLength!) : longest;
      const uneven = lengths.findIndex((n) => Math.min(n, target) !== target);
      if (!strategy && uneven >= 0) {
        throw new Error(`Wav2Vec2FeatureExtractor: audio ${uneven} has ${lengths[uneven]} samples and audio 0 has ${lengths[0]}; pass padding: true to batch signals of different lengths`);
      }
    }
    if (multiple !== undefined && strategy) target = Math.ceil(target / multiple) * multiple;
    return { target, padded: strategy !== false };
  }
}

function isBatch(a: Float32Array | readonly number[] | readonly (Float32Array | readonly number[])[]): a is readonly (Float32Array | readonly number[])[] {
  return Array.isArray(a) && a.length > 0 && typeof a[0] !== 'number';
}

/** In place: x[0, n) -> (x - mean) / sqrt(var + 1e-7) (population variance, in float64); x[n, end) -> padding. */
function normalize(x: Float32Array, n: number, padding: number): void {
  let mean = 0;
  for (let i = 0; i < n; i++) mean += x[i]!;
  mean /= n;
  let v = 0;
  for (let i = 0; i < n; i++) v += (x[i]! - mean) ** 2;
  const scale = 1 / Math.sqrt(v / n + NORM_EPS);
  for (let i = 0; i < n; i++) x[i] = (x[i]! - mean) * scale;
  x.fill(padding, n);
}
