// Encoder-decoder pretraining objectives as data functions: T5 span corruption and BART text infilling with sentence permutation.
//
// T5: Raffel et al. (2020), section 3.1.4; the semantics of transformers' examples/flax/language-modeling/
// run_t5_mlm_flax.py (compute_input_and_target_lengths, random_spans_noise_mask, create_sentinel_ids,
// filter_input_ids). BART: Lewis et al. (2020), section 2.2; fairseq's data/denoising_dataset.py
// (add_whole_word_mask with a Poisson span distribution and replace_length 1, add_insertion_noise, permute_sentences).
// Random choices come from our seeded Generator, so the masks are reproducible but not numpy's or torch's draws.

import type { Generator } from '../tensor/random.js';

/** Python's round() and numpy's np.round: halves go to the even neighbour (round(4.5) = 4, round(1.5) = 2). */
export function roundHalfEven(x: number): number {
  const f = Math.floor(x), d = x - f;
  if (d < 0.5) return f;
  if (d > 0.5) return f + 1;
  return f % 2 === 0 ? f : f + 1;
}

// ---- T5 span corruption ----

export interface SpanCorruptionOptions {
  /** Share of the tokens that become noise (T5: 0.15). */
  noiseDensity: number;
  /** Mean length of a noise span (T5: 3). */
  meanNoiseSpanLength: number;
}

export const T5_SPAN_DEFAULTS: SpanCorruptionOptions = { noiseDensity: 0.15, meanNoiseSpanLength: 3 };

function checkSpanOptions(o: SpanCorruptionOptions, where: string): void {
  if (!(o.noiseDensity > 0 && o.noiseDensity < 1)) throw new Error(`${where}: noiseDensity must be in (0, 1), got ${o.noiseDensity}`);
  if (!(o.meanNoiseSpanLength >= 1) || !Number.isFinite(o.meanNoiseSpanLength)) throw new Error(`${where}: meanNoiseSpanLength must be a number >= 1, got ${o.meanNoiseSpanLength}`);
}

/** The input and target lengths (EOS included) that span corruption makes of `tokensLength` raw tokens, as HF counts them. */
function corruptedLengths(tokensLength: number, o: SpanCorruptionOptions): { inputsLength: number; targetsLength: number; noiseSpans: number } {
  const noise = roundHalfEven(tokensLength * o.noiseDensity);
  const spans = roundHalfEven(noise / o.meanNoiseSpanLength);
  // Inputs: the non-noise tokens, one sentinel per noise span, EOS. Targets: the noise tokens, one sentinel per span, EOS.
  return { inputsLength: tokensLength - noise + spans + 1, targetsLength: noise + spans + 1, noiseSpans: spans };
}

/**
 * HF's compute_input_and_target_lengths: the raw chunk length `tokensLength` whose corrupted inputs are at most
 * `inputsLength` long (the longest such), and the length of its targets. Chunks of exactly tokensLength tokens give
 * inputs of exactly `inputsLength` (when the search can reach it) and targets of `targetsLength`, EOS included.
 */
export function computeInputAndTargetLengths(inputsLength: number, o: SpanCorruptionOptions = T5_SPAN_DEFAULTS): { tokensLength: number; targetsLength: number } {
  checkSpanOptions(o, 'computeInputAndTargetLengths');
  if (!Number.isSafeInteger(inputsLength) || inputsLength < 2) throw new Error(`computeInputAndTargetLengths: inputsLength must be an integer >= 2, got ${inputsLength}`);
  let tokensLength = inputsLength;
  while (corruptedLengths(tokensLength + 1, o).inputsLength <= inputsLength) tokensLength++;
  let { targetsLength } = corruptedLengths(tokensLength, o);
  // HF's "minor hack": at density 0.5, make the targets as long as the inputs (more likely a round number).
  if (o.noiseDensity === 0.5 && targetsLength > inputsLength) {
    tokensLength--;
    targetsLength--;
  }
  return { tokensLength, targetsLength };
}

/** The number of noise spans random_spans_noise_mask makes in a sequence of `length` tokens. */
export function numNoiseSpans(length: number, o: SpanCorruptionOptions = T5_SPAN_DEFAULTS): number {
  const noise = Math.min(Math.max(roundHalfEven(length * o.noiseDensity), 1), length - 1);
  // Current transformers: the count is limited by the smaller of noise and non-noise tokens (the same below density 0.5).
  return Math.max(roundHalfEven(Math.min(noise, length - noise) / o.meanNoiseSpanLength), 1);
}

/** `numItems` items cut into `numSegments` non-empty segments, all cuts equally likely: the segments' lengths. */
function randomSegmentation(numItems: number, numSegments: number, gen: Generator): number[] {
  // HF shuffles a boolean array with numSegments - 1 trues among numItems - 1 gaps: the first numSegments - 1 gaps
  // of a random permutation are the same distribution.
  const cuts = Array.from(gen.permutation(numItems - 1).subarray(0, numSegments - 1)).sort((a, b) => a - b);
  const lengths: number[] = [];
  let prev = 0;
  for (const c of cuts) {
    lengths.push(c + 1 - prev); // a cut after gap c starts a segment at item c + 1
    prev = c + 1;
  }
  lengths.push(numItems - prev);
  return lengths;
}

/**
 * HF's random_spans_noise_mask: round(length * noiseDensity) noise tokens (at least 1, at most length - 1) in
 * round(noise / meanNoiseSpanLength) spans (at least 1); non-noise and noise spans alternate, starting with
 * non-noise (so the sequence ends in noise); subject to that, every mask is equally likely. 1 = noise.
 */
export function randomSpansNoiseMask(length: number, gen: Generator, o: SpanCorruptionOptions = T5_SPAN_DEFAULTS): Uint8Array {
  checkSpanOptions(o, 'randomSpansNoiseMask');
  if (!Number.isSafeInteger(length) || length < 2) throw new Error(`randomSpansNoiseMask: length must be an integer >= 2 (a noise and a non-noise token), got ${length}`);
  const noise = Math.min(Math.max(roundHalfEven(length * o.noiseDensity), 1), length - 1);
  const spans = numNoiseSpans(length, o);
  const noiseLengths = randomSegmentation(noise, spans, gen);
  const keepLengths = randomSegmentation(length - noise, spans, gen);
  const mask = new Uint8Array(length);
  let at = 0;
  for (let s = 0; s < spans; s++) {
    at += keepLengths[s]!;
    mask.fill(1, at, at + noiseLengths[s]!);
    at += noiseLengths[s]!;
  }
  return mask;
}

/** The id of the k-th sentinel (k = 0, 1, ...): HF's len(tokenizer) - (k + 1), counting down from the top of the vocabulary (T5's <extra_id_k>). */
export function sentinelId(vocabSize: number, k: number): number {
  return vocabSize - 1 - k;
}

/**
 * HF's create_sentinel_ids + filter_input_ids for one sequence: every run of masked tokens becomes one sentinel
 * (the first run vocabSize - 1, the next vocabSize - 2, ...), the other tokens stay, and EOS ends the sequence.
 */
function filterWithSentinels(tokens: readonly number[], masked: (i: number) => boolean, vocabSize: number, eosId: number): number[] {
  const out: number[] = [];
  let k = 0;
  for (let i = 0; i < tokens.length; i++) {
    if (!masked(i)) out.push(tokens[i]!);
    else if (i === 0 || !masked(i - 1)) out.push(sentinelId(vocabSize, k++));
  }
  out.push(eosId);
  return out;
}

export interface SpanCorrupted {
  /** The tokens with each noise span replaced by its sentinel, then EOS. */
  inputIds: number[];
  /** Each non-noise span replaced by its sentinel, the noise tokens kept, then EOS: "<X> noise1 <Y> noise2 ... </s>". */
  labels: number[];
}

/**
 * Applies a noise mask (1 = noise) to a sequence as HF's collator does: inputs keep the non-noise tokens and
 * sentinels for the noise spans; labels keep the noise tokens and sentinels for the non-noise spans.
 */
export function applySpanCorruption(tokens: readonly number[], noiseMask: ArrayLike<number | boolean>, o: { vocabSize: number; eosId: number }): SpanCorrupted {
  if (noiseMask.length !== tokens.length) throw new Error(`applySpanCorruption: the noise mask has ${noiseMask.length} entries for ${tokens.length} tokens`);
  const noise = (i: number) => Boolean(noiseMask[i]);
  return {
    inputIds: filterWithSentinels(tokens, noise, o.vocabSize, o.eosId),
    labels: filterWithSentinels(tokens, (i) => !noise(i), o.vocabSize, o.eosId),
  };
}

/** Span corruption of one sequence with a fresh noise mask. */
export function spanCorrupt(tokens: readonly number[], gen: Generator, o: SpanCorruptionOptions & { vocabSize: number; eosId: number }): SpanCorrupted {
  return applySpanCorruption(tokens, randomSpansNoiseMask(tokens.length, gen, o), o);
}

// ---- BART text infilling and sentence permutation ----

export interface TextInfillingOptions {
  /** Share of the tokens to mask (BART: 0.3; fairseq's --mask). */
  maskRatio: number;
  /** Mean of the Poisson span lengths (BART: 3; fairseq's --poisson-lambda). */
  poissonLambda: number;
  maskId: number;
}

export const BART_INFILLING_DEFAULTS = { maskRatio: 0.3, poissonLambda: 3 } as const;

/** fairseq's span distribution: Poisson(lambda) over k = 0..127 (the table it builds), drawn by inversion. */
export function samplePoisson(n: number, lambda: number, gen: Generator): number[] {
  if (!(lambda > 0) || !Number.isFinite(lambda)) throw new Error(`samplePoisson: lambda must be a positive number, got ${lambda}`);
  const cdf: number[] = [];
  let p = Math.exp(-lambda), total = 0;
  for (let k = 0; k < 128; k++) {
    total += p;
    cdf.push(total);
    p *= lambda / (k + 1);
  }
  return Array.from(gen.uniform(n), (u) => {
    const x = u * total;
    let k = 0;
    while (k < 127 && cdf[k]! <= x) k++;
    return k;
  });
}

/** Where text infilling acts, in the original sequence's positions. */
export interface InfillingPlan {
  /** Span starts (each becomes one mask token) and their lengths (>= 1): the tokens after the start are deleted. */
  starts: number[];
  lengths: number[];
  /** Zero-length spans: masks inserted into the sequence left after masking, at these positions of the result. */
  insertAt: number[];
}

/**
 * fairseq's add_whole_word_mask (subword mode, span-poisson, replace_length 1) as a plan: ceil(maskRatio * (n - 2))
 * tokens to mask; Poisson lengths drawn until they cover that budget, the last cut to fit; spans of length 0 become
 * insertions; the other spans start at distinct random positions in 1..n-2 (the first and last tokens, <s> and
 * </s>, are never masked) and stop before the last token.
 */
export function sampleInfillingPlan(n: number, gen: Generator, o: Omit<TextInfillingOptions, 'maskId'>): InfillingPlan {
  if (!(o.maskRatio >= 0 && o.maskRatio <= 1)) throw new Error(`textInfilling: maskRatio must be in [0, 1], got ${o.maskRatio}`);
  if (!Number.isSafeInteger(n) || n < 2) throw new Error(`textInfilling: a sequence needs at least its first and last tokens (<s>, </s>), got length ${n}`);
  const budget = Math.ceil((n - 2) * o.maskRatio);
  if (budget === 0) return { starts: [], lengths: [], insertAt: [] };
  let lengths: number[] = [];
  let covered = 0;
  while (covered < budget) {
    const more = samplePoisson(budget, o.poissonLambda, gen);
    lengths = lengths.concat(more);
    covered += more.reduce((a, b) => a + b, 0);
  }
  // Trim to the budget: the first span that reaches it is shortened to fit, the rest dropped.
  let sum = 0, i = 0;
  while (sum + lengths[i]! < budget) sum += lengths[i++]!;
  lengths[i] = budget - sum;
  lengths = lengths.slice(0, i + 1);
  const spans = lengths.filter((l) => l > 0);
  const inserts = lengths.length - spans.length;
  const starts = Array.from(gen.permutation(n - 2).subarray(0, spans.length), (p) => p + 1);
  const kept = n - countDeleted(n, starts, spans);
  // fairseq's add_insertion_noise: positions 1..N-2 of the result of N = kept + inserts tokens.
  const insertAt = inserts === 0 ? [] : Array.from(gen.permutation(kept + inserts - 2).subarray(0, inserts), (p) => p + 1);
  return { starts, lengths: spans, insertAt };
}

/** Which positions a plan deletes: each span's tokens after its start, never the last token; a deleted start mask stays deleted. */
function deletedPositions(n: number, starts: readonly number[], lengths: readonly number[]): Uint8Array {
  const del = new Uint8Array(n);
  starts.forEach((s, j) => {
    for (let t = s + 1; t < Math.min(s + lengths[j]!, n - 1); t++) del[t] = 1;
  });
  return del;
}

function countDeleted(n: number, starts: readonly number[], lengths: readonly number[]): number {
  return deletedPositions(n, starts, lengths).reduce((a, b) => a + b, 0);
}

export interface Infilled {
  /** The corrupted sequence. */
  source: number[];
  /** For each mask token in `source` (in order): the original tokens it stands for ([] for an inserted mask). */
  replaced: number[][];
}

/**
 * Applies a plan as fairseq does with replace_length 1: each span's start becomes one mask and the rest of the span
 * is deleted (overlapping spans merge into the earlier mask), then the inserted masks go in. Putting each mask's
 * `replaced` tokens back in its place gives the original sequence.
 */
export function applyInfilling(tokens: readonly number[], plan: InfillingPlan, maskId: number): Infilled {
  const n = tokens.length;
  if (plan.starts.length !== plan.lengths.length) throw new Error(`applyInfilling: ${plan.starts.length} span starts for ${plan.lengths.length} lengths`);
  for (const s of plan.starts) if (!(Number.isInteger(s) && s >= 1 && s <= n - 2)) throw new Error(`applyInfilling: span start ${s} is outside 1..${n - 2} (the first and last tokens stay)`);
  const del = deletedPositions(n, plan.starts, plan.lengths);
  const isStart = new Uint8Array(n);
  for (const s of plan.starts) isStart[s] = 1;
  const masked: { id: number; replaced: number[] | null }[] = [];
  let cur: number[] | null = null;
  for (let t = 0; t < n; t++) {
    if (del[t]) {
      cur!.push(tokens[t]!); // a deleted token always follows a span start (or another deleted token)
    } else if (isStart[t]) {
      cur = [tokens[t]!];
      masked.push({ id: maskId, replaced: cur });
    } else {
      cur = null;
      masked.push({ id: tokens[t]!, replaced: null });
    }
  }
  const N = masked.length + plan.insertAt.length;
  for (const p of plan.insertAt) if (!(Number.isInteger(p) && p >= 1 && p <= N - 2)) throw new Error(`applyInfilling: insertion position ${p} is outside 1..${N - 2}`);
  const inserted = new Uint8Array(N);
  for (const p of plan.insertAt) inserted[p] = 1;
  const source: number[] = [], replaced: number[][] = [];
  let k = 0;
  for (let t = 0; t < N; t++) {
    const e = inserted[t] ? { id: maskId, replaced: [] } : masked[k++]!;
    source.push(e.id);
    if (e.replaced) replaced.push(e.replaced);
  }
  return { source, replaced };
}

/** BART's text infilling of one sequence (<s> first and </s> last) with a fresh plan. */
export function textInfilling(tokens: readonly number[], gen: Generator, o: TextInfillingOptions): Infilled {
  return applyInfilling(tokens, sampleInfillingPlan(tokens.length, gen, o), o.maskId);
}

/**
 * fairseq's permute_sentences: ceil(ratio * count) sentences chosen at random swap places among themselves in a
 * random order; the others stay where they were (ratio 1, BART's setting: a full shuffle).
 */
export function permuteSentences<T>(sentences: readonly T[], gen: Generator, ratio = 1): T[] {
  if (!(ratio >= 0 && ratio <= 1)) throw new Error(`permuteSentences: ratio must be in [0, 1], got ${ratio}`);
  const n = sentences.length;
  const k = Math.ceil(n * ratio);
  const chosen = Array.from(gen.permutation(n).subarray(0, k));
  const order = Array.from({ length: n }, (_, i) => i);
  const shuffle = gen.permutation(k);
  chosen.forEach((pos, j) => { order[pos] = chosen[shuffle[j]!]!; });
  return order.map((i) => sentences[i]!);
}

/** A BART denoising pair: the source is <s> + permuted sentences + </s> after text infilling; the target the original. */
export function bartDenoisingPair(sentences: readonly (readonly number[])[], gen: Generator, o: TextInfillingOptions & { bosId: number; eosId: number; permuteRatio?: number }): { source: number[]; target: number[] } {
  const target = [o.bosId, ...sentences.flat(), o.eosId];
  const permuted = [o.bosId, ...permuteSentences(sentences, gen, o.permuteRatio ?? 1).flat(), o.eosId];
  return { source: textInfilling(permuted, gen, o).source, target };
}
