// Whisper's log-mel front end, as Hugging Face's WhisperFeatureExtractor: slaney mel filters, Hann STFT, log10, clamp.

import { tensor } from '../tensor/create.js';
import type { Tensor } from '../tensor/tensor.js';
import { fileExists, readJsonFile } from '../io/hf.js';
import { withSource, type ModelSource } from '../io/source.js';

/** preprocessor_config.json's fields, with Hugging Face's names and Whisper's defaults. */
export interface WhisperFeatureExtractorConfig {
  feature_size: number;
  sampling_rate: number;
  hop_length: number;
  n_fft: number;
  chunk_length: number;
  padding_value: number;
}

const DEFAULTS: WhisperFeatureExtractorConfig = { feature_size: 80, sampling_rate: 16000, hop_length: 160, n_fft: 400, chunk_length: 30, padding_value: 0 };

/** Hertz to mels on the slaney scale (linear below 1 kHz, logarithmic above), as transformers' hertz_to_mel. */
export function hertzToMel(freq: number): number {
  const minLogHertz = 1000, minLogMel = 15, logstep = 27 / Math.log(6.4);
  return freq >= minLogHertz ? minLogMel + Math.log(freq / minLogHertz) * logstep : (3 * freq) / 200;
}

export function melToHertz(mel: number): number {
  const minLogHertz = 1000, minLogMel = 15, logstep = Math.log(6.4) / 27;
  return mel >= minLogMel ? minLogHertz * Math.exp(logstep * (mel - minLogMel)) : (200 * mel) / 3;
}

/** numpy.linspace: start + i * step, with the last point exactly `stop`. */
function linspace(start: number, stop: number, n: number): Float64Array {
  const out = new Float64Array(n);
  const step = (stop - start) / (n - 1);
  for (let i = 0; i < n; i++) out[i] = start + i * step;
  if (n > 1) out[n - 1] = stop;
  return out;
}

/**
 * Triangular mel filters [numFrequencyBins, numMelFilters] (row-major), slaney scale and slaney area normalisation:
 * transformers' mel_filter_bank(..., norm='slaney', mel_scale='slaney').
 */
export function melFilterBank(numFrequencyBins: number, numMelFilters: number, minFrequency: number, maxFrequency: number, samplingRate: number): Float64Array {
  const filterFreqs = linspace(hertzToMel(minFrequency), hertzToMel(maxFrequency), numMelFilters + 2).map(melToHertz);
  const fftFreqs = linspace(0, Math.floor(samplingRate / 2), numFrequencyBins);
  const out = new Float64Array(numFrequencyBins * numMelFilters);
  for (let f = 0; f < numFrequencyBins; f++) {
    for (let m = 0; m < numMelFilters; m++) {
      const down = -(filterFreqs[m]! - fftFreqs[f]!) / (filterFreqs[m + 1]! - filterFreqs[m]!);
      const up = (filterFreqs[m + 2]! - fftFreqs[f]!) / (filterFreqs[m + 2]! - filterFreqs[m + 1]!);
      const enorm = 2 / (filterFreqs[m + 2]! - filterFreqs[m]!);
      out[f * numMelFilters + m] = Math.max(0, Math.min(down, up)) * enorm;
    }
  }
  return out;
}

/**
 * A complex FFT of one fixed length (any length; fast when its prime factors are small, as 200 = 4*2*5*5): kissfft's
 * mixed-radix recursion with generic butterflies, in float64.
 */
class ComplexFft {
  /** [p0, m0, p1, m1, ...]: at each level, p sub-transforms of length m. */
  private readonly factors: number[] = [];
  private readonly twRe: Float64Array;
  private readonly twIm: Float64Array;
  private readonly scratchRe: Float64Array;
  private readonly scratchIm: Float64Array;

  constructor(readonly n: number) {
    let m = n, p = 4, largest = 1;
    while (m > 1) {
      while (m % p !== 0) p = p === 4 ? 2 : p === 2 ? 3 : p + 2 > Math.sqrt(m) ? m : p + 2;
      m /= p;
      this.factors.push(p, m);
      largest = Math.max(largest, p);
    }
    if (!this.factors.length) this.factors.push(1, 1);
    this.twRe = new Float64Array(n).map((_, i) => Math.cos((-2 * Math.PI * i) / n));
    this.twIm = new Float64Array(n).map((_, i) => Math.sin((-2 * Math.PI * i) / n));
    this.scratchRe = new Float64Array(largest);
    this.scratchIm = new Float64Array(largest);
  }

  /** out[k] = sum_t in[t] exp(-2 pi i k t / n). */
  transform(inRe: Float64Array, inIm: Float64Array, outRe: Float64Array, outIm: Float64Array): void {
    this.work(outRe, outIm, 0, inRe, inIm, 0, 1, 0);
  }

  private work(re: Float64Array, im: Float64Array, out: number, inRe: Float64Array, inIm: Float64Array, at: number, stride: number, level: number): void {
    const p = this.factors[level]!, m = this.factors[level + 1]!;
    if (m === 1) {
      for (let k = 0; k < p; k++) { re[out + k] = inRe[at + k * stride]!; im[out + k] = inIm[at + k * stride]!; }
    } else {
      for (let k = 0; k < p; k++) this.work(re, im, out + k * m, inRe, inIm, at + k * stride, stride * p, level + 2);
    }
    // Generic radix-p butterflies over the p transforms of length m.
    const { scratchRe: sRe, scratchIm: sIm, twRe, twIm, n } = this;
    for (let u = 0; u < m; u++) {
      for (let q = 0; q < p; q++) { sRe[q] = re[out + u + q * m]!; sIm[q] = im[out + u + q * m]!; }
      for (let q1 = 0, k = u; q1 < p; q1++, k += m) {
        let accRe = sRe[0]!, accIm = sIm[0]!, tw = 0;
        for (let q = 1; q < p; q++) {
          tw += stride * k;
          if (tw >= n) tw -= n;
          accRe += sRe[q]! * twRe[tw]! - sIm[q]! * twIm[tw]!;
          accIm += sRe[q]! * twIm[tw]! + sIm[q]! * twRe[tw]!;
        }
        re[out + k] = accRe;
        im[out + k] = accIm;
      }
    }
  }
}

/**
 * The first n / 2 + 1 bins of a real signal's DFT. An even length packs the signal into n / 2 complex points
 * (z[t] = x[2t] + i x[2t+1]) and unpacks the even and odd halves: half the work of a complex FFT of length n.
 */
class RealFft {
  private readonly fft: ComplexFft;
  private readonly zRe: Float64Array;
  private readonly zIm: Float64Array;
  private readonly fRe: Float64Array;
  private readonly fIm: Float64Array;
  /** exp(-2 pi i k / n) for the unpacking, k = 0 .. n / 2. */
  private readonly wRe: Float64Array;
  private readonly wIm: Float64Array;

  constructor(readonly n: number) {
    const len = n % 2 === 0 ? n / 2 : n;
    this.fft = new ComplexFft(len);
    [this.zRe, this.zIm, this.fRe, this.fIm] = [0, 1, 2, 3].map(() => new Float64Array(len)) as [Float64Array, Float64Array, Float64Array, Float64Array];
    this.wRe = Float64Array.from({ length: Math.floor(n / 2) + 1 }, (_, k) => Math.cos((-2 * Math.PI * k) / n));
    this.wIm = Float64Array.from({ length: Math.floor(n / 2) + 1 }, (_, k) => Math.sin((-2 * Math.PI * k) / n));
  }

  /** re/im[k] for k = 0 .. n / 2. */
  transform(x: Float64Array, re: Float64Array, im: Float64Array): void {
    const { n, zRe, zIm, fRe, fIm } = this;
    if (n % 2 !== 0) {
      zRe.set(x);
      zIm.fill(0);
      this.fft.transform(zRe, zIm, fRe, fIm);
      for (let k = 0; k <= (n - 1) / 2; k++) { re[k] = fRe[k]!; im[k] = fIm[k]!; }
      return;
    }
    const M = n / 2;
    for (let t = 0; t < M; t++) { zRe[t] = x[2 * t]!; zIm[t] = x[2 * t + 1]!; }
    this.fft.transform(zRe, zIm, fRe, fIm);
    for (let k = 0; k <= M; k++) {
      const a = k % M, b = (M - k) % M;
      // E = (Z[k] + conj Z[M-k]) / 2, O = (Z[k] - conj Z[M-k]) / 2i, X[k] = E + exp(-2 pi i k / n) O
      const eRe = (fRe[a]! + fRe[b]!) / 2, eIm = (fIm[a]! - fIm[b]!) / 2;
      const oRe = (fIm[a]! + fIm[b]!) / 2, oIm = -(fRe[a]! - fRe[b]!) / 2;
      const c = this.wRe[k]!, s = this.wIm[k]!;
      re[k] = eRe + c * oRe - s * oIm;
      im[k] = eIm + c * oIm + s * oRe;
    }
  }
}

/** A log-mel spectrogram: data is [nMels, frames] row-major. */
export interface LogMel {
  data: Float32Array;
  nMels: number;
  frames: number;
}

function readNumber(json: Record<string, unknown>, key: keyof WhisperFeatureExtractorConfig, path: string, integer: boolean): number {
  const v = json[key] ?? DEFAULTS[key];
  const ok = typeof v === 'number' && Number.isFinite(v) && (!integer || (Number.isSafeInteger(v) && v >= 1));
  if (!ok) throw new Error(`${path}: "${key}" must be ${integer ? 'a positive integer' : 'a number'}, got ${JSON.stringify(v)}`);
  return v;
}

/**
 * Hugging Face's WhisperFeatureExtractor: audio at `sampling_rate` -> [1, feature_size, chunk_length * sampling_rate /
 * hop_length] log-mel features, padded with zeros (or truncated) to chunk_length seconds first.
 */
export class WhisperFeatureExtractor {
  readonly config: WhisperFeatureExtractorConfig;
  /** [1 + n_fft / 2, feature_size] row-major, as transformers' `mel_filters`. */
  readonly melFilters: Float64Array;
  private readonly window: Float64Array;
  private readonly fft: RealFft;
  /** Each filter's nonzero bins [first, last): a triangle covers a few of the 201. */
  private readonly melSpan: [number, number][];

  constructor(config: Partial<WhisperFeatureExtractorConfig> = {}) {
    this.config = { ...DEFAULTS, ...config };
    const { n_fft: nFft, feature_size: nMels, sampling_rate: sr, hop_length: hop } = this.config;
    for (const [k, v] of Object.entries({ n_fft: nFft, feature_size: nMels, sampling_rate: sr, hop_length: hop })) {
      if (!Number.isSafeInteger(v) || v < 1) throw new Error(`WhisperFeatureExtractor: ${k} must be a positive integer, got ${v}`);
    }
    this.melFilters = melFilterBank(1 + Math.floor(nFft / 2), nMels, 0, 8000, sr);
    // Periodic Hann window (torch.hann_window, transformers' window_function(periodic=True)).
    this.window = new Float64Array(nFft).map((_, n) => 0.5 - 0.5 * Math.cos((2 * Math.PI * n) / nFft));
    this.fft = new RealFft(nFft);
    const bins = 1 + Math.floor(nFft / 2);
    this.melSpan = Array.from({ length: nMels }, (_, m) => {
      let first = 0, last = bins;
      while (first < bins && this.melFilters[first * nMels + m] === 0) first++;
      while (last > first && this.melFilters[(last - 1) * nMels + m] === 0) last--;
      return [first, last];
    });
  }

  /**
   * Reads preprocessor_config.json from a model folder (Whisper's defaults when the file is absent): a path (Node), a
   * URL, or files in memory.
   */
  static fromPretrained(src: ModelSource): Promise<WhisperFeatureExtractor> {
    return withSource(src, (dir) => WhisperFeatureExtractor.fromFolder(dir));
  }

  private static async fromFolder(dir: string): Promise<WhisperFeatureExtractor> {
    const path = `${dir.replace(/\/$/, '')}/preprocessor_config.json`;
    if (!(await fileExists(path))) return new WhisperFeatureExtractor();
    const json = await readJsonFile(path);
    if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new Error(`${path}: expected a JSON object`);
    const obj = json as Record<string, unknown>;
    return new WhisperFeatureExtractor({
      feature_size: readNumber(obj, 'feature_size', path, true),
      sampling_rate: readNumber(obj, 'sampling_rate', path, true),
      hop_length: readNumber(obj, 'hop_length', path, true),
      n_fft: readNumber(obj, 'n_fft', path, true),
      chunk_length: readNumber(obj, 'chunk_length', path, true),
      padding_value: readNumber(obj, 'padding_value', path, false),
    });
  }

  /** Samples in one chunk (480,000 for 30 s at 16 kHz). */
  get nSamples(): number {
    return this.config.chunk_length * this.config.sampling_rate;
  }

  /** Frames in one chunk (3,000 for 30 s at 16 kHz). */
  get nbMaxFrames(): number {
    return Math.floor(this.nSamples / this.config.hop_length);
  }

  /**
   * The log-mel spectrogram of `samples` as they are (no padding to 30 s): floor(len / hop) frames, clamped to
   * 8 below this signal's own maximum. For training on short clips.
   */
  logMel(samples: Float32Array, opts: { samplingRate?: number } = {}): LogMel {
    this.checkRate(opts.samplingRate);
    if (samples.length === 0) throw new Error('WhisperFeatureExtractor: the audio is empty (0 samples)');
    const half = Math.floor(this.config.n_fft / 2);
    if (samples.length <= half) {
      throw new Error(`WhisperFeatureExtractor: ${samples.length} samples is too short for reflect padding by n_fft / 2 = ${half}; need at least ${half + 1}`);
    }
    return this.compute(samples);
  }

  /**
   * Features as Hugging Face's __call__ gives them: [B, feature_size, nbMaxFrames]. Each signal is padded with
   * `padding_value` to chunk_length seconds; a longer one is cut there when `truncation` is true (Hugging Face's
   * default) and is an error otherwise.
   */
  call(audio: Float32Array | Float32Array[], opts: { samplingRate?: number; truncation?: boolean; device?: string } = {}): { inputFeatures: Tensor } {
    this.checkRate(opts.samplingRate);
    const batch = Array.isArray(audio) ? audio : [audio];
    if (batch.length === 0) throw new Error('WhisperFeatureExtractor: no audio given (empty batch)');
    const n = this.nSamples;
    const { feature_size: nMels } = this.config;
    const frames = this.nbMaxFrames;
    const out = new Float32Array(batch.length * nMels * frames);
    batch.forEach((samples, b) => {
      if (samples.length === 0) throw new Error(`WhisperFeatureExtractor: audio ${b} is empty (0 samples)`);
      if (samples.length > n && opts.truncation === false) {
        const secs = (samples.length / this.config.sampling_rate).toFixed(2);
        throw new Error(`WhisperFeatureExtractor: audio ${b} is ${secs} s (${samples.length} samples), longer than the model accepts (${this.config.chunk_length} s = ${n} samples); cut it into chunks or pass truncation: true`);
      }
      const padded = new Float32Array(n).fill(this.config.padding_value);
      padded.set(samples.length > n ? samples.subarray(0, n) : samples);
      const mel = this.compute(padded);
      out.set(mel.data, b * nMels * frames);
    });
    return { inputFeatures: tensor(out, { shape: [batch.length, nMels, frames], device: opts.device }) };
  }

  private checkRate(rate: number | undefined): void {
    if (rate !== undefined && rate !== this.config.sampling_rate) {
      throw new Error(
        `WhisperFeatureExtractor: the audio is sampled at ${rate} Hz, the model expects ${this.config.sampling_rate} Hz; ` +
          `resample it first (resample() in src/processors/resample.ts)`,
      );
    }
  }

  /** STFT (centered, reflect-padded) -> power -> mel -> log10, last frame dropped, clamp to max - 8, (x + 4) / 4. */
  private compute(samples: Float32Array): LogMel {
    const { n_fft: nFft, hop_length: hop, feature_size: nMels } = this.config;
    const half = Math.floor(nFft / 2);
    const len = samples.length;
    const bins = 1 + half;
    const frames = Math.floor((len + 2 * half - nFft) / hop); // centered frames, minus the dropped last one
    const reflect = (i: number): number => (i < 0 ? -i : i >= len ? 2 * (len - 1) - i : i);
    const frame = new Float64Array(nFft);
    const specRe = new Float64Array(bins), specIm = new Float64Array(bins);
    const power = new Float64Array(bins);
    const logSpec = new Float64Array(nMels * frames);
    let max = -Infinity;
    for (let t = 0; t < frames; t++) {
      let silent = true;
      for (let n = 0; n < nFft; n++) {
        const v = samples[reflect(t * hop + n - half)]! * this.window[n]!;
        frame[n] = v;
        if (v !== 0) silent = false;
      }
      if (silent) power.fill(0); // padding: skip the FFT
      else {
        this.fft.transform(frame, specRe, specIm);
        for (let k = 0; k < bins; k++) power[k] = specRe[k]! * specRe[k]! + specIm[k]! * specIm[k]!;
      }
      for (let m = 0; m < nMels; m++) {
        let s = 0;
        const [first, last] = this.melSpan[m]!;
        for (let k = first; k < last; k++) s += this.melFilters[k * nMels + m]! * power[k]!;
        const v = Math.log10(Math.max(s, 1e-10));
        logSpec[m * frames + t] = v;
        if (v > max) max = v;
      }
    }
    const data = new Float32Array(nMels * frames);
    for (let i = 0; i < data.length; i++) data[i] = (Math.max(logSpec[i]!, max - 8) + 4) / 4;
    return { data, nMels, frames };
  }
}
