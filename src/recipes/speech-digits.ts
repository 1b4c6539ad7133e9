// Recipe `speech-digits`: spoken digit strings from espeak-ng, log-mel features, a conv + transformer encoder with a CTC head, held-out voices, pocketsphinx beside it.

import { mkdir, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { noGrad } from '../autograd/engine.js';
import { ctcLoss } from '../autograd/ops/ctc.js';
import { add, gelu, mul } from '../autograd/ops/elementwise.js';
import { matmul } from '../autograd/ops/matmul.js';
import { transpose } from '../autograd/ops/movement.js';
import { logSoftmax } from '../autograd/ops/nn.js';
import { recognizeDigits } from '../data/pocketsphinx.js';
import {
  DEFAULT_SETTINGS, SAMPLE_RATE, WORDS, checkEspeak, defaultCacheDir, englishAccents, sampleUtterances, splitVariants,
  synthesizeSet, voiceName, voiceVariants, type SynthesisSettings, type UtteranceSpec,
} from '../data/spoken-digits.js';
import { charErrorRate, wordErrorRate, type ErrorRate } from '../data/wer.js';
import { ctcGreedyDecodeAsync } from '../generation/ctc.js';
import { saveSafetensors } from '../io/safetensors.js';
import { Conv1d } from '../nn/conv.js';
import { Linear } from '../nn/linear.js';
import { Module } from '../nn/module.js';
import { LayerNorm } from '../nn/normalization.js';
import { TransformerEncoder, TransformerEncoderLayer } from '../nn/transformer.js';
import { loadAudio } from '../processors/audio.js';
import { WhisperFeatureExtractor, type LogMel } from '../processors/whisper.js';
import { getBackend, getDefaultDevice, listDevices } from '../tensor/backend.js';
import { tensor } from '../tensor/create.js';
import { Generator, manualSeed } from '../tensor/random.js';
import { tidy } from '../tensor/scope.js';
import { fmtShape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { lineChart } from '../train/plot.js';
import { Trainer, type BatchFactory, type Metrics } from '../train/trainer.js';
import { optionError, type Recipe, type RecipeContext } from './recipe.js';

// ---- vocabulary ----

/**
 * CTC outputs: blank, then one token per word. Word tokens rather than characters: the vocabulary is closed (11
 * words), so a word token is one label per spoken word, decoding needs no spelling or lexicon, and the CTC path is
 * short enough for 80 ms frames at any speaking rate (a word lasts 150 ms or more even at 260 words per minute).
 * Characters would only matter for open vocabularies.
 */
export const BLANK = 0;
export const TOKENS = ['<blank>', ...WORDS];
const WORD_ID = new Map<string, number>(WORDS.map((w, i) => [w, i + 1]));

export function encodeTranscript(text: string): number[] {
  return text.trim().split(/\s+/).filter((w) => w !== '').map((w) => {
    const id = WORD_ID.get(w);
    if (id === undefined) throw new Error(`speech-digits: '${w}' is not one of the words ${WORDS.join(', ')}`);
    return id;
  });
}

export function decodeTokens(ids: readonly number[]): string {
  return ids.filter((i) => i !== BLANK).map((i) => TOKENS[i] ?? '?').join(' ');
}

// ---- features ----

/**
 * Whisper log-mel features of many clips at once, as WhisperFeatureExtractor.logMel computes them (same Hann window,
 * mel filters, log10, clamp to max - 8 per clip, (x + 4) / 4), with the DFT done as one matrix product per chunk of
 * frames on the tensor backend: the extractor's direct DFT costs ~50 ms per 2 s clip, which at 13,000 clips is most
 * of the time budget. speech-digits.test.ts checks the two against each other.
 */
export function logMelBatch(fe: WhisperFeatureExtractor, clips: readonly Float32Array[], modelDevice: string, framesPerChunk = 4096): LogMel[] {
  // The spectra are read back per chunk: on a device that reads only asynchronously (webgpu) they run on the CPU kernels.
  const device = getBackend(modelDevice).readSync ? modelDevice : listDevices().includes('wasm') ? 'wasm' : 'cpu';
  const { n_fft: nFft, hop_length: hop, feature_size: nMels } = fe.config;
  const half = Math.floor(nFft / 2), bins = half + 1;
  // basis [nFft, 2 * bins]: window * cos | window * sin, so that frames @ basis = [re | im].
  const basisData = new Float32Array(nFft * 2 * bins);
  for (let n = 0; n < nFft; n++) {
    const w = 0.5 - 0.5 * Math.cos((2 * Math.PI * n) / nFft);
    for (let k = 0; k < bins; k++) {
      const a = (2 * Math.PI * ((k * n) % nFft)) / nFft;
      basisData[n * 2 * bins + k] = w * Math.cos(a);
      basisData[n * 2 * bins + bins + k] = w * Math.sin(a);
    }
  }
  const basis = tensor(basisData, { shape: [nFft, 2 * bins], device });
  const mel = tensor(Float32Array.from(fe.melFilters), { shape: [bins, nMels], device });
  const out: LogMel[] = new Array<LogMel>(clips.length);
  try {
    let c = 0;
    while (c < clips.length) {
      const group: number[] = [];
      let frames = 0;
      do {
        const len = clips[c]!.length;
        if (len <= half) throw new Error(`speech-digits: clip ${c} has ${len} samples, too short for the ${nFft}-point STFT`);
        group.push(c);
        frames += Math.floor(len / hop);
        c++;
      } while (c < clips.length && frames + Math.floor(clips[c]!.length / hop) <= framesPerChunk);
      const frameData = new Float32Array(frames * nFft);
      let row = 0;
      for (const g of group) {
        const x = clips[g]!, len = x.length;
        const reflect = (i: number): number => (i < 0 ? -i : i >= len ? 2 * (len - 1) - i : i);
        const nf = Math.floor(len / hop);
        for (let t = 0; t < nf; t++, row++) {
          const base = t * hop - half, o = row * nFft;
          for (let n = 0; n < nFft; n++) frameData[o + n] = x[reflect(base + n)]!;
        }
      }
      const melData = tidy(() => {
        const spec = matmul(tensor(frameData, { shape: [frames, nFft], device }), basis); // [F, 2 * bins]
        const s = spec.dataSync() as Float32Array;
        const power = new Float32Array(frames * bins);
        for (let f = 0; f < frames; f++) {
          for (let k = 0; k < bins; k++) {
            const re = s[f * 2 * bins + k]!, im = s[f * 2 * bins + bins + k]!;
            power[f * bins + k] = re * re + im * im;
          }
        }
        return matmul(tensor(power, { shape: [frames, bins], device }), mel).dataSync() as Float32Array; // [F, nMels]
      });
      let f0 = 0;
      for (const g of group) {
        const nf = Math.floor(clips[g]!.length / hop);
        const data = new Float32Array(nMels * nf);
        let max = -Infinity;
        for (let t = 0; t < nf; t++) {
          for (let m = 0; m < nMels; m++) {
            const v = Math.log10(Math.max(melData[(f0 + t) * nMels + m]!, 1e-10));
            data[m * nf + t] = v;
            if (v > max) max = v;
          }
        }
        for (let i = 0; i < data.length; i++) data[i] = (Math.max(data[i]!, max - 8) + 4) / 4;
        out[g] = { data, nMels, frames: nf };
        f0 += nf;
      }
    }
  } finally {
    basis.dispose();
    mel.dispose();
  }
  return out;
}

// ---- model ----

export interface SpeechDigitsConfig {
  num_mel_bins: number;
  d_model: number;
  encoder_layers: number;
  encoder_attention_heads: number;
  encoder_ffn_dim: number;
  dropout: number;
  vocab_size: number;
  max_source_positions: number;
  /** Stride-2 convolutions of the front end: 2 (40 ms frames) or 3 (80 ms). */
  conv_layers: number;
}

/** Frames after `convLayers` stride-2 convolutions (kernel 3, padding 1): ceil(T / 2), that many times. */
export function subsampledLength(frames: number, convLayers: number): number {
  let n = frames;
  for (let i = 0; i < convLayers; i++) n = Math.ceil(n / 2);
  return n;
}

/** Sinusoidal positions [n, d] (Vaswani et al.; sin on even, cos on odd channels). */
function sinusoids(n: number, d: number): Float32Array {
  const out = new Float32Array(n * d);
  for (let p = 0; p < n; p++) {
    for (let i = 0; i < d; i += 2) {
      const a = p / 10000 ** (i / d);
      out[p * d + i] = Math.sin(a);
      if (i + 1 < d) out[p * d + i + 1] = Math.cos(a);
    }
  }
  return out;
}

/**
 * Stride-2 Conv1d(k3) + GELU layers (80 -> d, then d -> d), sinusoidal positions, a pre-norm transformer encoder and
 * a linear CTC head. Conformer subsamples 4x and Whisper 2x; 3 layers (8x, 80 ms per output frame) halve the
 * encoder's work again, which word tokens allow (see TOKENS).
 */
export class SpeechDigitsCtc extends Module {
  convs: Conv1d[];
  encoder: TransformerEncoder;
  head: Linear;
  readonly config: SpeechDigitsConfig;
  private readonly positions: Float32Array;

  constructor(config: SpeechDigitsConfig) {
    super();
    this.config = config;
    const d = config.d_model;
    if (!(Number.isSafeInteger(config.conv_layers) && config.conv_layers >= 1 && config.conv_layers <= 4)) {
      throw new Error(`speech-digits: conv_layers must be 1 to 4, got ${config.conv_layers}`);
    }
    this.convs = Array.from({ length: config.conv_layers }, (_, i) => new Conv1d(i === 0 ? config.num_mel_bins : d, d, 3, { stride: 2, padding: 1 }));
    this.encoder = new TransformerEncoder(
      () => new TransformerEncoderLayer(d, config.encoder_attention_heads, { dimFeedforward: config.encoder_ffn_dim, dropout: config.dropout, activation: 'gelu', normFirst: true }),
      config.encoder_layers, new LayerNorm(d),
    );
    this.head = new Linear(d, config.vocab_size);
    this.positions = sinusoids(config.max_source_positions, d);
  }

  /**
   * features [B, nMels, T] and each clip's frame count -> logits [B, T', vocab] and each clip's T'. Padding is zeroed
   * after each convolution and masked in attention, so that a clip's logits do not depend on what it is batched with.
   */
  forward(features: Tensor, frames: readonly number[]): { logits: Tensor; lengths: number[] } {
    const [B, nMels, T] = features.shape as [number, number, number];
    if (nMels !== this.config.num_mel_bins || frames.length !== B) {
      throw new Error(`speech-digits: expected features [B, ${this.config.num_mel_bins}, T] and B frame counts, got ${fmtShape(features.shape)} and ${frames.length}`);
    }
    const device = features.device;
    const validMask = (lengths: readonly number[], n: number) => tensor(Float32Array.from(lengths.flatMap((len) => Array.from({ length: n }, (_, t) => (t < len ? 1 : 0)))), { shape: [B, 1, n], device });
    const padded = frames.some((n) => n < T);
    let h = padded ? mul(features, validMask(frames, T)) : features;
    let lengths = [...frames];
    this.convs.forEach((conv, i) => {
      h = gelu(conv.forward(h)); // [B, d, ceil(T_i / 2)]
      lengths = lengths.map((n) => Math.ceil(n / 2));
      if (padded && i < this.convs.length - 1) h = mul(h, validMask(lengths, h.shape[2]!));
    });
    const Tp = h.shape[2]!, d = this.config.d_model;
    if (Tp > this.config.max_source_positions) {
      throw new Error(`speech-digits: ${T} frames (${(T / 100).toFixed(1)} s) give ${Tp} positions, more than the model's ${this.config.max_source_positions}`);
    }
    const pos = tensor(this.positions.subarray(0, Tp * d), { shape: [Tp, d], device });
    const x = add(transpose(h, 1, 2), pos); // [B, T', d]
    const keyPadding = padded ? tensor(lengths.map((n) => Array.from({ length: Tp }, (_, t) => t >= n)), { device }) : null; // [B, T'] true = padding
    const enc = this.encoder.forward(x, { srcKeyPaddingMask: keyPadding });
    return { logits: this.head.forward(enc), lengths };
  }
}

// ---- batches ----

export interface Clip {
  mel: LogMel;
  /** Token ids of the transcript (no blank). */
  targets: number[];
}

export interface SpeechBatch {
  features: Tensor;
  frames: number[];
  targets: Tensor;
  targetLengths: number[];
}

export interface SpecAugment {
  freqMasks: number;
  freqWidth: number;
  timeMasks: number;
  /** Largest time mask as a fraction of the clip's frames. */
  timeFraction: number;
}

/** Pads clips to [B, nMels, Tmax] (zeros, which the model masks) and targets to [B, Smax]; SpecAugment if given. */
export function collateClips(clips: readonly Clip[], device: string, augment?: { spec: SpecAugment; gen: Generator }): SpeechBatch {
  const nMels = clips[0]!.mel.nMels;
  const T = Math.max(...clips.map((c) => c.mel.frames));
  const S = Math.max(1, ...clips.map((c) => c.targets.length));
  const feats = new Float32Array(clips.length * nMels * T);
  const targets = new Int32Array(clips.length * S);
  clips.forEach((c, b) => {
    const { data, frames } = c.mel;
    let mean = 0;
    for (const v of data) mean += v;
    mean /= data.length;
    const o = b * nMels * T;
    for (let m = 0; m < nMels; m++) feats.set(data.subarray(m * frames, (m + 1) * frames), o + m * T);
    if (augment) {
      const u = () => augment.gen.uniform(1)[0]!;
      const { freqMasks, freqWidth, timeMasks, timeFraction } = augment.spec;
      for (let k = 0; k < freqMasks; k++) {
        const w = Math.floor(u() * (freqWidth + 1)), f0 = Math.floor(u() * Math.max(1, nMels - w));
        for (let m = f0; m < f0 + w; m++) feats.fill(mean, o + m * T, o + m * T + frames);
      }
      const maxW = Math.floor(timeFraction * frames);
      for (let k = 0; k < timeMasks; k++) {
        const w = Math.floor(u() * (maxW + 1)), t0 = Math.floor(u() * Math.max(1, frames - w));
        for (let m = 0; m < nMels; m++) feats.fill(mean, o + m * T + t0, o + m * T + t0 + w);
      }
    }
    targets.set(c.targets, b * S);
  });
  return {
    features: tensor(feats, { shape: [clips.length, nMels, T], device }),
    frames: clips.map((c) => c.mel.frames),
    targets: tensor(targets, { shape: [clips.length, S], dtype: 'int32', device }),
    targetLengths: clips.map((c) => c.targets.length),
  };
}

/** Each epoch: shuffled, bucketed by length (little padding), batches in a shuffled order; a pure function of (epoch, seed). */
export function speechBatches(clips: readonly Clip[], batchSize: number, device: string, spec: SpecAugment | null): BatchFactory<SpeechBatch> {
  return function* (epoch, seed) {
    const gen = new Generator(seed);
    gen.setState({ seed, offset: epoch * 2 ** 32 });
    const perm = gen.permutation(clips.length);
    const batches: number[][] = [];
    const bucket = batchSize * 16;
    for (let at = 0; at < perm.length; at += bucket) {
      const ids = Array.from(perm.subarray(at, at + bucket)).sort((a, b) => clips[a]!.mel.frames - clips[b]!.mel.frames || a - b);
      for (let i = 0; i < ids.length; i += batchSize) batches.push(ids.slice(i, i + batchSize));
    }
    const order = gen.permutation(batches.length);
    for (let k = 0; k < order.length; k++) {
      const augGen = new Generator(seed + 1);
      augGen.setState({ seed: seed + 1, offset: (epoch * 65536 + k) * 2 ** 20 });
      yield collateClips(batches[order[k]!]!.map((i) => clips[i]!), device, spec ? { spec, gen: augGen } : undefined);
    }
  };
}

function batchLoss(model: SpeechDigitsCtc, b: SpeechBatch): Tensor {
  const { logits, lengths } = model.forward(b.features, b.frames);
  const logProbs = transpose(logSoftmax(logits, -1), 0, 1); // [T', B, V]
  return ctcLoss(logProbs, b.targets, lengths, b.targetLengths, { blank: BLANK, reduction: 'mean', zeroInfinity: true });
}

/** Greedy CTC transcripts of clips, in order (batches of similar length), and their mean CTC loss as training reduces it. */
export async function transcribeClips(model: SpeechDigitsCtc, clips: readonly Clip[], batchSize: number, device: string): Promise<{ texts: string[]; loss: number }> {
  const order = clips.map((_, i) => i).sort((a, b) => clips[a]!.mel.frames - clips[b]!.mel.frames || a - b);
  const texts = new Array<string>(clips.length);
  let lossSum = 0;
  for (let at = 0; at < order.length; at += batchSize) {
    const idx = order.slice(at, at + batchSize);
    const b = collateClips(idx.map((i) => clips[i]!), device);
    try {
      const lengths = b.frames.map((n) => subsampledLength(n, model.config.conv_layers));
      const [loss, logits] = noGrad(() => tidy(() => {
        const out = model.forward(b.features, b.frames);
        const logProbs = transpose(logSoftmax(out.logits, -1), 0, 1); // [T', B, V]
        return [ctcLoss(logProbs, b.targets, lengths, b.targetLengths, { blank: BLANK, reduction: 'none', zeroInfinity: true }), out.logits];
      }));
      // The training loss's 'mean': each clip's loss over its target length (at least 1), averaged.
      (await loss.data()).forEach((l, k) => { lossSum += l / Math.max(1, b.targetLengths[k]!); });
      const ids = await ctcGreedyDecodeAsync(logits, { blank: BLANK, lengths });
      loss.dispose();
      logits.dispose();
      ids.forEach((seq, k) => { texts[idx[k]!] = decodeTokens(seq); });
    } finally {
      for (const t of [b.features, b.targets]) t.dispose();
    }
  }
  return { texts, loss: lossSum / clips.length };
}

// ---- the recipe ----

export type SpeechDigitsOptions = {
  seed: number;
  trainUtterances: number;
  valUtterances: number;
  testUtterances: number;
  testVariants: number;
  valVariants: number;
  maxDigits: number;
  snrMin: number;
  snrMax: number;
  cacheDir: string;
  convLayers: number;
  dModel: number;
  layers: number;
  heads: number;
  dFf: number;
  dropout: number;
  freqMasks: number;
  timeMasks: number;
  batchSize: number;
  steps: number;
  lr: number;
  warmupSteps: number;
  minLr: number;
  weightDecay: number;
  clipGradNorm: number;
  evalEvery: number;
  checkpointEvery: number;
  evalBatchSize: number;
  pocketsphinx: boolean;
  realRecordings: boolean;
  examples: number;
};

const TARGET_WER = 0.05;
const TESTDATA = '/usr/share/pocketsphinx/test/data';

/**
 * Real recordings of spoken digits in Debian's pocketsphinx-testdata. References: TIDIGITS' file-name convention for
 * dhd.2934z ("z" = zero), cards.transcription for cards/004; numbers.raw ships without a transcript.
 */
export const REAL_RECORDINGS: { name: string; path: string; raw: boolean; reference: string | null }[] = [
  { name: 'numbers.raw', path: `${TESTDATA}/numbers.raw`, raw: true, reference: null },
  { name: 'tidigits/dhd.2934z.raw', path: `${TESTDATA}/tidigits/dhd.2934z.raw`, raw: true, reference: 'two nine three four zero' },
  { name: 'cards/004.wav', path: `${TESTDATA}/cards/004.wav`, raw: false, reference: 'five five' },
];

function check(opts: SpeechDigitsOptions): void {
  const fail = optionError('speech-digits', opts);
  const keys = (...k: (keyof SpeechDigitsOptions)[]) => k;
  for (const k of keys('trainUtterances', 'valUtterances', 'testUtterances', 'testVariants', 'maxDigits', 'convLayers', 'dModel', 'layers', 'heads', 'dFf', 'batchSize', 'steps', 'evalBatchSize')) {
    if (!Number.isSafeInteger(opts[k]) || (opts[k] as number) < 1) fail(k, 'a positive integer');
  }
  for (const k of keys('seed', 'valVariants', 'freqMasks', 'timeMasks', 'warmupSteps', 'evalEvery', 'checkpointEvery', 'examples')) {
    if (!Number.isSafeInteger(opts[k]) || (opts[k] as number) < 0) fail(k, 'a non-negative integer');
  }
  if (opts.maxDigits > 20) fail('maxDigits', 'at most 20');
  if (!(opts.convLayers >= 1 && opts.convLayers <= 4)) fail('convLayers', '1 to 4');
  if (!(opts.snrMin <= opts.snrMax && opts.snrMin >= -20 && opts.snrMax <= 100)) throw new Error(`speech-digits: need -20 <= --snr-min <= --snr-max <= 100, got ${opts.snrMin} and ${opts.snrMax}`);
  if (!(opts.dropout >= 0 && opts.dropout < 1)) fail('dropout', 'in [0, 1)');
  for (const k of keys('lr', 'clipGradNorm')) if (!((opts[k] as number) > 0)) fail(k, 'a positive number');
  if (!(opts.minLr >= 0 && opts.minLr <= opts.lr)) fail('minLr', 'in [0, --lr]');
  if (!(opts.weightDecay >= 0)) fail('weightDecay', 'a non-negative number');
  if (opts.dModel % opts.heads !== 0) throw new Error(`speech-digits: --heads (${opts.heads}) must divide --d-model (${opts.dModel})`);
  if (opts.dModel % 2 !== 0) fail('dModel', 'even (sinusoidal positions)');
  if (opts.warmupSteps > opts.steps) throw new Error(`speech-digits: --warmup-steps (${opts.warmupSteps}) is more than --steps (${opts.steps})`);
}

/** Error counts grouped by a key of each utterance. */
function groupedWer(keys: readonly string[], refs: readonly string[], hyps: readonly string[]): Record<string, { utterances: number; words: number; wer: number }> {
  const groups = new Map<string, number[]>();
  keys.forEach((k, i) => { const g = groups.get(k); if (g) g.push(i); else groups.set(k, [i]); });
  const out: Record<string, { utterances: number; words: number; wer: number }> = {};
  for (const [k, idx] of [...groups].sort(([a], [b]) => a.localeCompare(b))) {
    const r = wordErrorRate(idx.map((i) => refs[i]!), idx.map((i) => hyps[i]!));
    out[k] = { utterances: idx.length, words: r.referenceLength, wer: r.rate };
  }
  return out;
}

/** Validation WER over training, with the final test WER of ours and of pocketsphinx (percent, linear axis). */
export function werChart(evalCurve: readonly { step: number; wer: number }[], steps: number, testWer: number, sphinxWer: number | null): string {
  return lineChart([
    { name: 'ours, validation', points: evalCurve.map((e) => [e.step, 100 * e.wer] as const) },
    { name: 'ours, test (final)', points: [[steps, 100 * testWer]] },
    ...(sphinxWer === null ? [] : [{ name: 'pocketsphinx, test', points: [[0, 100 * sphinxWer], [steps, 100 * sphinxWer]] as const }]),
  ], { title: 'speech-digits: word error rate on held-out voices', xLabel: 'step', yLabel: 'WER (%)' });
}

const snrBucket = (u: UtteranceSpec): string => (u.snrDb === null ? 'clean' : u.snrDb >= 25 ? '25-40 dB' : u.snrDb >= 15 ? '15-25 dB' : '5-15 dB');
const pct = (x: number): string => `${(100 * x).toFixed(2)}%`;
const summary = (r: ErrorRate) => ({ rate: r.rate, errors: r.errors, substitutions: r.substitutions, deletions: r.deletions, insertions: r.insertions, referenceLength: r.referenceLength, sentenceAccuracy: r.correctUtterances / r.utterances });

async function run(opts: SpeechDigitsOptions, ctx: RecipeContext): Promise<Record<string, unknown>> {
  check(opts);
  const t0 = performance.now();
  const device = ctx.device ?? getDefaultDevice();
  const espeak = checkEspeak();
  const accents = englishAccents();
  const split = splitVariants(voiceVariants(), { test: opts.testVariants, val: opts.valVariants, seed: opts.seed });
  ctx.log(`speech-digits: ${espeak.version}; ${accents.length} accents x variants: ${split.train.length} for training, ${split.val.length} for validation (${split.val.join(' ')}), ${split.test.length} held out for the test (${split.test.join(' ')})`);
  const settings: SynthesisSettings = { ...DEFAULT_SETTINGS, maxDigits: opts.maxDigits, snrDb: [opts.snrMin, opts.snrMax] };
  const specs = {
    train: sampleUtterances(opts.trainUtterances, { accents, variants: split.train }, settings, opts.seed * 3 + 1),
    val: sampleUtterances(opts.valUtterances, { accents, variants: split.val }, settings, opts.seed * 3 + 2),
    test: sampleUtterances(opts.testUtterances, { accents, variants: split.test }, settings, opts.seed * 3 + 3),
  };
  const cacheDir = opts.cacheDir || defaultCacheDir();
  const synth = async (name: string, s: UtteranceSpec[]) => {
    const set = await synthesizeSet(s, { cacheDir, onProgress: (d, n) => { if (d < n) ctx.log(`speech-digits: ${name}: ${d}/${n} utterances ready`); } });
    const secs = set.audio.reduce((n, a) => n + a.length, 0) / SAMPLE_RATE;
    ctx.log(`speech-digits: ${name}: ${s.length} utterances, ${(secs / 60).toFixed(1)} min of audio (${set.cached ? 'all from the cache' : 'synthesised'} in ${cacheDir})`);
    return { ...set, seconds: secs };
  };
  const audio = { train: await synth('train', specs.train), val: await synth('validation', specs.val), test: await synth('test', specs.test) };
  const synthSeconds = (performance.now() - t0) / 1000;

  const tf = performance.now();
  const fe = new WhisperFeatureExtractor();
  const toClips = (a: Float32Array[], s: UtteranceSpec[]): Clip[] => logMelBatch(fe, a, device).map((mel, i) => ({ mel, targets: encodeTranscript(s[i]!.text) }));
  const clips = { train: toClips(audio.train.audio, specs.train), val: toClips(audio.val.audio, specs.val), test: toClips(audio.test.audio, specs.test) };
  const featureSeconds = (performance.now() - tf) / 1000;
  ctx.log(`speech-digits: log-mel features (80 bins, 10 ms hop) in ${featureSeconds.toFixed(0)} s`);

  const config: SpeechDigitsConfig = {
    num_mel_bins: fe.config.feature_size, d_model: opts.dModel, encoder_layers: opts.layers, encoder_attention_heads: opts.heads,
    encoder_ffn_dim: opts.dFf, dropout: opts.dropout, vocab_size: TOKENS.length, conv_layers: opts.convLayers,
    max_source_positions: Math.ceil(3000 / 2 ** opts.convLayers), // 30 s
  };
  manualSeed(opts.seed);
  const model = new SpeechDigitsCtc(config);
  ctx.log(`speech-digits: conv x${opts.convLayers} (${2 ** opts.convLayers}x subsampling) + ${opts.layers}-layer pre-norm transformer, d ${opts.dModel}, ${opts.heads} heads, ffn ${opts.dFf}, CTC over ${TOKENS.length} tokens: ${model.numParameters().toLocaleString('en-US')} parameters, on ${device}`);

  const spec: SpecAugment = { freqMasks: opts.freqMasks, freqWidth: 15, timeMasks: opts.timeMasks, timeFraction: 0.1 };
  const valRefs = specs.val.map((s) => s.text);
  const evalCurve: { step: number; wer: number; loss: number }[] = [];
  const trainer = new Trainer({
    model, device,
    data: speechBatches(clips.train, opts.batchSize, device, opts.freqMasks + opts.timeMasks > 0 ? spec : null),
    loss: (m, b: SpeechBatch) => ({ loss: batchLoss(m, b), tokens: b.frames.reduce((a, n) => a + subsampledLength(n, opts.convLayers), 0) }),
    evaluate: async (m, { step }): Promise<Metrics> => {
      const r = await transcribeClips(m, clips.val, opts.evalBatchSize, device);
      const wer = wordErrorRate(valRefs, r.texts).rate;
      evalCurve.push({ step, wer, loss: r.loss });
      return { loss: r.loss, wer, cer: charErrorRate(valRefs, r.texts).rate };
    },
    optimizer: { lr: opts.lr, weightDecay: opts.weightDecay, betas: [0.9, 0.98] },
    schedule: { kind: 'cosine', warmupSteps: opts.warmupSteps, minLr: opts.minLr },
    clipGradNorm: opts.clipGradNorm,
    maxSteps: opts.steps,
    evalEvery: opts.evalEvery || undefined,
    checkpointEvery: opts.checkpointEvery || undefined,
    logEvery: Math.min(50, opts.steps),
    outDir: ctx.outDir, resume: ctx.resume, seed: opts.seed, skipNonfinite: ctx.skipNonfinite,
  });
  const tt = performance.now();
  const result = await trainer.train();
  const trainSeconds = (performance.now() - tt) / 1000;
  model.eval();

  // Held-out voices: ours, then pocketsphinx on the very same audio.
  const te = performance.now();
  const refs = specs.test.map((s) => s.text);
  const ours = (await transcribeClips(model, clips.test, opts.evalBatchSize, device)).texts;
  const testSeconds = (performance.now() - te) / 1000;
  const oursWer = wordErrorRate(refs, ours), oursCer = charErrorRate(refs, ours);
  const valByVariant = groupedWer(specs.val.map((s) => s.variant), valRefs, (await transcribeClips(model, clips.val, opts.evalBatchSize, device)).texts);
  ctx.log(`speech-digits: held-out voices, ${refs.length} utterances: WER ${pct(oursWer.rate)}, CER ${pct(oursCer.rate)} (${testSeconds.toFixed(0)} s)`);
  let sphinx: { hypotheses: string[]; seconds: number; command: string } | null = null;
  if (opts.pocketsphinx) {
    sphinx = await recognizeDigits(audio.test.audio, join(ctx.outDir, 'pocketsphinx'));
    ctx.log(`speech-digits: pocketsphinx (digits grammar): WER ${pct(wordErrorRate(refs, sphinx.hypotheses).rate)} (${sphinx.seconds.toFixed(0)} s)`);
  }
  const sphinxWer = sphinx ? wordErrorRate(refs, sphinx.hypotheses) : null, sphinxCer = sphinx ? charErrorRate(refs, sphinx.hypotheses) : null;

  // Real human recordings.
  const real: Record<string, unknown>[] = [];
  if (opts.realRecordings) {
    const present = REAL_RECORDINGS.filter((r) => existsSync(r.path));
    if (present.length < REAL_RECORDINGS.length) ctx.log(`speech-digits: some real recordings are missing (Debian package pocketsphinx-testdata): ${REAL_RECORDINGS.filter((r) => !existsSync(r.path)).map((r) => r.name).join(', ')}`);
    if (present.length > 0) {
      const waves = await Promise.all(present.map((r) => loadAudio(r.path, r.raw ? { raw: { sampleRate: SAMPLE_RATE, format: 's16le' } } : {})));
      const mels = logMelBatch(fe, waves, device).map((mel) => ({ mel, targets: [] as number[] }));
      const texts = (await transcribeClips(model, mels, 1, device)).texts;
      const ps = opts.pocketsphinx ? (await recognizeDigits(waves, join(ctx.outDir, 'pocketsphinx-real'))).hypotheses : null;
      present.forEach((r, i) => {
        const row: Record<string, unknown> = { recording: r.name, seconds: waves[i]!.length / SAMPLE_RATE, reference: r.reference, ours: texts[i], pocketsphinx: ps?.[i] ?? null };
        if (r.reference) {
          row['oursWer'] = wordErrorRate([r.reference], [texts[i]!]).rate;
          if (ps) row['pocketsphinxWer'] = wordErrorRate([r.reference], [ps[i]!]).rate;
        }
        real.push(row);
        ctx.log(`speech-digits: ${r.name}: reference ${r.reference === null ? '(none shipped)' : `"${r.reference}"`}; ours "${texts[i]}"; pocketsphinx "${ps?.[i] ?? '-'}"`);
      });
    }
  }

  // Pictures, tables, the model.
  await mkdir(ctx.outDir, { recursive: true });
  if (evalCurve.length > 0) await writeFile(join(ctx.outDir, 'wer.svg'), werChart(evalCurve, result.step, oursWer.rate, sphinxWer?.rate ?? null));
  const variantOf = specs.test.map((s) => s.variant), accentOf = specs.test.map((s) => s.accent), snrOf = specs.test.map(snrBucket);
  const byVariant = { ours: groupedWer(variantOf, refs, ours), pocketsphinx: sphinx ? groupedWer(variantOf, refs, sphinx.hypotheses) : null };
  const byAccent = { ours: groupedWer(accentOf, refs, ours), pocketsphinx: sphinx ? groupedWer(accentOf, refs, sphinx.hypotheses) : null };
  const bySnr = { ours: groupedWer(snrOf, refs, ours), pocketsphinx: sphinx ? groupedWer(snrOf, refs, sphinx.hypotheses) : null };
  const byVoice = groupedWer(specs.test.map(voiceName), refs, ours);
  const table = [
    '| system | test WER | test CER | sentence accuracy |', '| --- | ---: | ---: | ---: |',
    `| ours (conv + transformer + CTC, ${model.numParameters().toLocaleString('en-US')} params) | ${pct(oursWer.rate)} | ${pct(oursCer.rate)} | ${pct(oursWer.correctUtterances / oursWer.utterances)} |`,
    ...(sphinxWer && sphinxCer ? [`| pocketsphinx 0.8 en-us, digits JSGF | ${pct(sphinxWer.rate)} | ${pct(sphinxCer.rate)} | ${pct(sphinxWer.correctUtterances / sphinxWer.utterances)} |`] : []),
    '', '| held-out variant | utterances | ours WER | pocketsphinx WER |', '| --- | ---: | ---: | ---: |',
    ...Object.entries(byVariant.ours).map(([k, v]) => `| ${k} | ${v.utterances} | ${pct(v.wer)} | ${byVariant.pocketsphinx ? pct(byVariant.pocketsphinx[k]!.wer) : '-'} |`),
    '', '| accent | utterances | ours WER | pocketsphinx WER |', '| --- | ---: | ---: | ---: |',
    ...Object.entries(byAccent.ours).map(([k, v]) => `| ${k} | ${v.utterances} | ${pct(v.wer)} | ${byAccent.pocketsphinx ? pct(byAccent.pocketsphinx[k]!.wer) : '-'} |`),
    '', '| SNR | utterances | ours WER | pocketsphinx WER |', '| --- | ---: | ---: | ---: |',
    ...Object.entries(bySnr.ours).map(([k, v]) => `| ${k} | ${v.utterances} | ${pct(v.wer)} | ${bySnr.pocketsphinx ? pct(bySnr.pocketsphinx[k]!.wer) : '-'} |`),
    ...(real.length > 0 ? ['', '| real recording | reference | ours | pocketsphinx |', '| --- | --- | --- | --- |',
      ...real.map((r) => `| ${String(r['recording'])} | ${r['reference'] === null ? '(no transcript shipped)' : String(r['reference'])} | ${String(r['ours']) || '(nothing)'} | ${r['pocketsphinx'] === null ? '-' : String(r['pocketsphinx']) || '(nothing)'} |`)] : []),
  ].join('\n');
  await writeFile(join(ctx.outDir, 'table.md'), `${table}\n`);
  const modelDir = join(ctx.outDir, 'model');
  await mkdir(modelDir, { recursive: true });
  await saveSafetensors(join(modelDir, 'model.safetensors'), model.stateDict());
  await writeFile(join(modelDir, 'config.json'), `${JSON.stringify({ model_type: 'speech-digits-ctc', ...config, vocab: TOKENS, features: fe.config }, null, 2)}\n`);

  const lastEval = [...result.metrics].reverse().find((r) => r.kind === 'eval');
  return {
    data: {
      espeak: espeak.version, accents, variants: split, cacheDir,
      utterances: { train: specs.train.length, val: specs.val.length, test: specs.test.length },
      audioMinutes: { train: audio.train.seconds / 60, val: audio.val.seconds / 60, test: audio.test.seconds / 60 },
      synthesis: settings,
      split: 'voices are accent x variant; the test variants are never heard in training or validation (in any accent), the validation variants are a second held-out set, also never trained on',
    },
    tokens: TOKENS,
    parameters: model.numParameters(),
    steps: result.step,
    epochs: (result.step * opts.batchSize) / specs.train.length,
    trainLoss: result.losses.length > 0 ? { first: result.losses[0]!.loss, last: result.losses[result.losses.length - 1]!.loss } : null,
    validation: lastEval ? { step: lastEval.step, loss: lastEval['loss'], wer: lastEval['wer'], cer: lastEval['cer'], byVariant: valByVariant } : null,
    test: {
      utterances: refs.length,
      ours: { wer: summary(oursWer), cer: summary(oursCer), decoding: 'greedy CTC' },
      pocketsphinx: sphinxWer && sphinxCer && sphinx ? { wer: summary(sphinxWer), cer: summary(sphinxCer), command: sphinx.command, seconds: sphinx.seconds } : null,
      byVariant, byAccent, bySnr, byVoice,
    },
    target: { wer: TARGET_WER, met: oursWer.rate <= TARGET_WER && (!sphinxWer || oursWer.rate < sphinxWer.rate) },
    realRecordings: real,
    seconds: { synthesis: Math.round(synthSeconds), features: Math.round(featureSeconds), train: Math.round(trainSeconds), test: Math.round(testSeconds) },
    examples: specs.test.slice(0, opts.examples).map((s, i) => ({ voice: voiceName(s), snrDb: s.snrDb, reference: s.text, ours: ours[i], pocketsphinx: sphinx?.hypotheses[i] ?? null })),
  };
}

export const speechDigitsRecipe: Recipe<SpeechDigitsOptions> = {
  name: 'speech-digits',
  summary: 'spoken digit strings (espeak-ng voices, noise): a conv + transformer CTC recognizer from scratch, tested on unseen voices beside pocketsphinx',
  chapter: 'speech: a transformer encoder with CTC',
  defaults: {
    seed: 0, trainUtterances: 8000, valUtterances: 400, testUtterances: 1000, testVariants: 12, valVariants: 6,
    maxDigits: 7, snrMin: 5, snrMax: 40, cacheDir: '',
    convLayers: 3, dModel: 144, layers: 4, heads: 4, dFf: 576, dropout: 0.1, freqMasks: 2, timeMasks: 2,
    batchSize: 32, steps: 3000, lr: 1.5e-3, warmupSteps: 300, minLr: 1e-5, weightDecay: 0.01, clipGradNorm: 1,
    evalEvery: 250, checkpointEvery: 500, evalBatchSize: 64, pocketsphinx: true, realRecordings: true, examples: 20,
  },
  smoke: {
    trainUtterances: 32, valUtterances: 6, testUtterances: 12, maxDigits: 3,
    dModel: 32, layers: 1, heads: 2, dFf: 64, batchSize: 8, steps: 6, warmupSteps: 1, evalEvery: 3, checkpointEvery: 0, evalBatchSize: 8, examples: 3,
  },
  help: {
    seed: 'seed of the voice split, the utterances, the weights and the batch order',
    trainUtterances: 'training utterances (training voices)',
    valUtterances: 'validation utterances (validation voices, unseen in training)',
    testUtterances: 'test utterances (held-out voices)',
    testVariants: 'espeak-ng voice variants held out for the test, in every accent',
    valVariants: 'further held-out variants for validation',
    maxDigits: 'digits per utterance: 1 to this',
    snrMin: 'lowest signal-to-noise ratio of the added noise (dB)',
    snrMax: 'highest signal-to-noise ratio (dB)',
    cacheDir: "where synthesised audio is cached ('' = $ATTEND_CACHE/speech-digits or ~/.cache/attend/speech-digits)",
    convLayers: 'stride-2 convolutions before the transformer: 2 (40 ms frames) or 3 (80 ms)',
    dModel: 'model width',
    layers: 'transformer encoder layers',
    heads: 'attention heads (must divide --d-model)',
    dFf: 'feed-forward width',
    dropout: 'dropout rate',
    freqMasks: 'SpecAugment frequency masks per training clip (up to 15 mel bins each)',
    timeMasks: 'SpecAugment time masks per training clip (up to 10% of its frames each)',
    batchSize: 'clips per training batch',
    steps: 'training steps (AdamW updates)',
    lr: 'peak learning rate',
    warmupSteps: 'linear warm-up steps before the cosine decay',
    minLr: 'learning rate at the last step',
    weightDecay: 'AdamW weight decay',
    clipGradNorm: 'clip the gradient norm to this',
    evalEvery: 'steps between validation (CTC loss, greedy WER/CER); 0 = only at the end',
    checkpointEvery: 'steps between checkpoints (0 = only at the end)',
    evalBatchSize: 'clips per batch when evaluating',
    pocketsphinx: 'also run pocketsphinx (digits grammar) on the test audio',
    realRecordings: "also transcribe pocketsphinx-testdata's real recordings of digits",
    examples: 'test utterances whose transcripts go into results.json',
  },
  run,
};
