// Recipe `g2p`: grapheme-to-phoneme on CMUdict without stress, a small T5 encoder-decoder decoded with beam search, scored by WER and PER.

import { reshape } from '../autograd/ops/movement.js';
import { loadCmudict, type CmudictEntry } from '../data/cmudict.js';
import { padSequences } from '../data/loader.js';
import { splitByKey } from '../data/split.js';
import { generate } from '../generation/generate.js';
import { T5ForConditionalGeneration, type T5Config } from '../models/t5.js';
import { crossEntropy } from '../nn/functional.js';
import { noGrad } from '../autograd/engine.js';
import { getDefaultDevice } from '../tensor/backend.js';
import { tensor } from '../tensor/create.js';
import { Generator, manualSeed } from '../tensor/random.js';
import { tidy } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { Trainer, type BatchFactory, type Metrics } from '../train/trainer.js';
import { optionError, type Recipe, type RecipeContext } from './recipe.js';

/** The 39 ARPAbet phonemes of CMUdict once the vowels' stress digits are removed. */
export const PHONEMES = [
  'AA', 'AE', 'AH', 'AO', 'AW', 'AY', 'B', 'CH', 'D', 'DH', 'EH', 'ER', 'EY', 'F', 'G', 'HH', 'IH', 'IY', 'JH', 'K',
  'L', 'M', 'N', 'NG', 'OW', 'OY', 'P', 'R', 'S', 'SH', 'T', 'TH', 'UH', 'UW', 'V', 'W', 'Y', 'Z', 'ZH',
] as const;

export const PAD = 0, EOS = 1, START = 2, UNK = 3;
const SPECIALS = ['<pad>', '</s>', '<s>', '<unk>'];

/**
 * One table of tokens for both sides, because T5 shares its embedding between encoder and decoder: the specials,
 * then the characters of the training words, then the phonemes. The decoder learns to give characters no mass.
 */
export interface G2pVocab {
  tokens: string[];
  charIds: Map<string, number>;
  phonemeIds: Map<string, number>;
}

/** The vocabulary of a training set: its characters (sorted) and the 39 phonemes. */
export function buildVocab(trainWords: Iterable<string>): G2pVocab {
  const chars = new Set<string>();
  for (const w of trainWords) for (const c of w) chars.add(c);
  const tokens = [...SPECIALS, ...[...chars].sort(), ...PHONEMES];
  const charIds = new Map([...chars].sort().map((c, i) => [c, SPECIALS.length + i]));
  const phonemeIds = new Map(PHONEMES.map((p, i) => [p, SPECIALS.length + chars.size + i]));
  return { tokens, charIds, phonemeIds };
}

/** A word's characters as ids; characters the training words never had become <unk>. */
export function encodeWord(vocab: G2pVocab, word: string): number[] {
  return Array.from(word, (c) => vocab.charIds.get(c) ?? UNK);
}

/** Phonemes as ids; anything outside the 39 is an error (the dictionary was not stripped of stress?). */
export function encodePhones(vocab: G2pVocab, phones: readonly string[]): number[] {
  return phones.map((p) => {
    const id = vocab.phonemeIds.get(p);
    if (id === undefined) throw new Error(`g2p: '${p}' is not one of the 39 ARPAbet phonemes without stress`);
    return id;
  });
}

/** Generated ids (start token first) as phonemes up to the first end token; a character id stays as itself, a wrong phoneme. */
export function decodePhones(vocab: G2pVocab, ids: readonly number[]): string[] {
  const out: string[] = [];
  for (const id of ids.slice(1)) {
    if (id === EOS) break;
    if (id !== PAD) out.push(vocab.tokens[id] ?? '<unk>');
  }
  return out;
}

// ---- scoring ----

/** Levenshtein distance between two phoneme sequences (unit cost for insertion, deletion and substitution). */
export function editDistance(a: readonly string[], b: readonly string[]): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length]!;
}

export interface G2pScore {
  words: number;
  /** Words whose prediction equals none of their reference pronunciations. */
  wordErrors: number;
  /** Edits against each word's closest reference, summed over the words. */
  phoneErrors: number;
  /** Phonemes of those closest references, summed. */
  referencePhones: number;
  /** wordErrors / words. */
  wer: number;
  /** phoneErrors / referencePhones. */
  per: number;
}

/**
 * The standard CMUdict scoring: a word is right when the prediction equals ANY of its reference pronunciations
 * (WER counts the others); PER is the edit distance to the closest reference, over that reference's length, summed
 * over all words before dividing (ties between references go to the one listed first).
 */
export function scoreG2p(predictions: readonly (readonly string[])[], references: readonly (readonly (readonly string[])[])[]): G2pScore {
  if (predictions.length !== references.length) throw new Error(`g2p: ${predictions.length} predictions for ${references.length} words`);
  if (predictions.length === 0) throw new Error('g2p: nothing to score');
  let wordErrors = 0, phoneErrors = 0, referencePhones = 0;
  predictions.forEach((pred, i) => {
    const refs = references[i]!;
    if (refs.length === 0) throw new Error(`g2p: word ${i} has no reference pronunciation`);
    let best = Infinity, bestLen = 0;
    for (const r of refs) {
      const d = editDistance(pred, r);
      if (d < best) { best = d; bestLen = r.length; }
    }
    if (best > 0) wordErrors++;
    phoneErrors += best;
    referencePhones += bestLen;
  });
  const words = predictions.length;
  return { words, wordErrors, phoneErrors, referencePhones, wer: wordErrors / words, per: phoneErrors / referencePhones };
}

// ---- data ----

/** One training pair: a word and one of its pronunciations. */
export interface G2pPair {
  word: string;
  phones: string[];
}

export interface G2pSplit {
  train: G2pPair[];
  /** Validation and test are whole words with all their pronunciations, for scoring against any of them. */
  val: CmudictEntry[];
  test: CmudictEntry[];
}

/**
 * Splits the dictionary's (word, pronunciation) pairs by word with splitByKey, fractions [train, val, test] of the
 * words, so that no word has a pronunciation on both sides.
 */
export function splitG2p(entries: readonly CmudictEntry[], opts: { valFraction: number; testFraction: number; seed: number }): G2pSplit {
  const pairs = entries.flatMap((e) => e.pronunciations.map((phones) => ({ word: e.word, phones })));
  const { valFraction: v, testFraction: t } = opts;
  const [train, val, test] = splitByKey(pairs, (p) => p.word, { fractions: [1 - v - t, v, t], seed: opts.seed });
  const group = (ps: G2pPair[]): CmudictEntry[] => {
    const byWord = new Map<string, string[][]>();
    for (const p of ps) {
      const prons = byWord.get(p.word);
      if (prons) prons.push(p.phones); else byWord.set(p.word, [p.phones]);
    }
    return [...byWord].map(([word, pronunciations]) => ({ word, pronunciations }));
  };
  return { train: train!, val: group(val!), test: group(test!) };
}

/** A training batch: encoder input, teacher-forced decoder input (labels shifted right after <s>) and labels (-100 at padding). */
export interface G2pBatch {
  inputIds: Tensor;
  attentionMask: Tensor;
  decoderInputIds: Tensor;
  labels: Tensor;
  tokens: number;
}

function collate(vocab: G2pVocab, pairs: readonly G2pPair[], device: string): G2pBatch {
  const src = pairs.map((p) => encodeWord(vocab, p.word));
  const tgt = pairs.map((p) => [...encodePhones(vocab, p.phones), EOS]);
  const T = Math.max(...tgt.map((t) => t.length));
  const labels = new Int32Array(pairs.length * T).fill(-100);
  const dec = new Int32Array(pairs.length * T).fill(PAD);
  tgt.forEach((t, b) => {
    labels.set(t, b * T);
    dec[b * T] = START;
    dec.set(t.slice(0, T - 1), b * T + 1);
  });
  const { inputIds, attentionMask } = padSequences(src, { padId: PAD, device });
  const tokens = src.reduce((n, s) => n + s.length, 0) + tgt.reduce((n, t) => n + t.length, 0);
  return {
    inputIds, attentionMask, tokens,
    decoderInputIds: tensor(dec, { shape: [pairs.length, T], dtype: 'int32', device }),
    labels: tensor(labels, { shape: [pairs.length, T], dtype: 'int32', device }),
  };
}

/** Batches made of this many batches' worth of shuffled pairs, sorted by length, so that a batch holds similar lengths. */
const BUCKET = 32;

/**
 * Each epoch: the pairs in a seeded random order, cut into buckets that are sorted by word length and cut into
 * batches (little padding), then the batches in a seeded random order. A pure function of (epoch, seed), from a
 * Philox stream of its own per epoch, so that resuming sees the same batches.
 */
export function g2pBatches(vocab: G2pVocab, pairs: readonly G2pPair[], batchSize: number, device: string): BatchFactory<G2pBatch> {
  return function* (epoch, seed) {
    const gen = new Generator(seed);
    gen.setState({ seed, offset: epoch * 2 ** 32 });
    const perm = gen.permutation(pairs.length);
    const batches: number[][] = [];
    for (let at = 0; at < perm.length; at += batchSize * BUCKET) {
      const bucket = Array.from(perm.subarray(at, at + batchSize * BUCKET));
      bucket.sort((a, b) => pairs[a]!.word.length - pairs[b]!.word.length || pairs[a]!.phones.length - pairs[b]!.phones.length || a - b);
      for (let i = 0; i < bucket.length; i += batchSize) batches.push(bucket.slice(i, i + batchSize));
    }
    for (const b of gen.permutation(batches.length)) yield collate(vocab, batches[b]!.map((i) => pairs[i]!), device);
  };
}

// ---- decoding ----

export interface DecodeOptions {
  numBeams: number;
  lengthPenalty: number;
  /** Words per generate call. */
  batchSize: number;
  device: string;
}

/**
 * Pronunciations of words by generate() (greedy with one beam, else Hugging Face's beam search), in the words'
 * order. Words are decoded in batches of similar length, so that padding and finished rows cost little.
 */
export async function transcribe(model: T5ForConditionalGeneration, vocab: G2pVocab, words: readonly string[], o: DecodeOptions): Promise<string[][]> {
  const order = words.map((_, i) => i).sort((a, b) => words[a]!.length - words[b]!.length || a - b);
  const out: string[][] = new Array<string[]>(words.length);
  for (let at = 0; at < order.length; at += o.batchSize) {
    const idx = order.slice(at, at + o.batchSize);
    const src = idx.map((i) => encodeWord(vocab, words[i]!));
    const { inputIds, attentionMask } = padSequences(src, { padId: PAD, device: o.device });
    // Pronunciations run at most a few phonemes longer than their spelling ("W" has 7); the margin costs nothing once every row has ended.
    const maxNewTokens = 2 * Math.max(...src.map((s) => s.length)) + 8;
    try {
      const seqs = await generate(model, inputIds, {
        attentionMask, numBeams: o.numBeams, lengthPenalty: o.lengthPenalty, maxNewTokens,
        eosTokenId: EOS, padTokenId: PAD, decoderStartTokenId: START,
      });
      const rows = (await seqs.tolist()) as number[][];
      seqs.dispose();
      rows.forEach((r, k) => { out[idx[k]!] = decodePhones(vocab, r); });
    } finally {
      inputIds.dispose();
      attentionMask.dispose();
    }
  }
  return out;
}

/** Token-weighted cross-entropy (no label smoothing) of the model on whole entries' pronunciations. */
async function meanLoss(model: T5ForConditionalGeneration, vocab: G2pVocab, entries: readonly CmudictEntry[], batchSize: number, device: string): Promise<number> {
  const pairs = entries.flatMap((e) => e.pronunciations.map((phones) => ({ word: e.word, phones })));
  let total = 0, count = 0;
  for (let at = 0; at < pairs.length; at += batchSize) {
    const chunk = pairs.slice(at, at + batchSize);
    count += chunk.reduce((n, p) => n + p.phones.length + 1, 0); // the phonemes and </s>
    const b = collate(vocab, chunk, device);
    try {
      const loss = noGrad(() => tidy(() => {
        const logits = model.forward({ inputIds: b.inputIds, attentionMask: b.attentionMask, decoderInputIds: b.decoderInputIds }).logits;
        return crossEntropy(reshape(logits, [-1, vocab.tokens.length]), reshape(b.labels, [-1]), { ignoreIndex: -100, reduction: 'sum' });
      }));
      total += await loss.item();
      loss.dispose();
    } finally {
      for (const t of [b.inputIds, b.attentionMask, b.decoderInputIds, b.labels]) t.dispose();
    }
  }
  return total / count;
}

// ---- the recipe ----

export type G2pOptions = {
  seed: number;
  maxWords: number;
  valFraction: number;
  testFraction: number;
  dModel: number;
  layers: number;
  heads: number;
  dFf: number;
  dropout: number;
  labelSmoothing: number;
  batchSize: number;
  steps: number;
  lr: number;
  warmupSteps: number;
  minLr: number;
  weightDecay: number;
  clipGradNorm: number;
  evalEvery: number;
  valWords: number;
  checkpointEvery: number;
  beams: number;
  lengthPenalty: number;
  evalBatchSize: number;
  examples: number;
};

/** Published WER on the latest CMUdict without stress (cmusphinx/g2p-seq2seq README), and this recipe's target. */
const PUBLISHED = { 'g2p-seq2seq (tensor2tensor transformer)': 0.31, 'Phonetisaurus (WFST)': 0.339 };
const TARGET_WER = 0.3;

function check(opts: G2pOptions): void {
  const fail = optionError('g2p', opts);
  const keys = (...k: (keyof G2pOptions)[]) => k;
  for (const k of keys('dModel', 'layers', 'heads', 'dFf', 'batchSize', 'steps', 'beams', 'evalBatchSize')) {
    if (!Number.isSafeInteger(opts[k]) || opts[k] < 1) fail(k, 'a positive integer');
  }
  for (const k of keys('seed', 'maxWords', 'warmupSteps', 'evalEvery', 'valWords', 'checkpointEvery', 'examples')) {
    if (!Number.isSafeInteger(opts[k]) || opts[k] < 0) fail(k, 'a non-negative integer');
  }
  for (const k of keys('testFraction', 'valFraction')) if (!(opts[k] > 0 && opts[k] < 1)) fail(k, 'a fraction between 0 and 1');
  if (!(opts.testFraction + opts.valFraction < 1)) throw new Error(`g2p: --test-fraction + --val-fraction must leave words for training, got ${opts.testFraction} + ${opts.valFraction}`);
  for (const k of keys('dropout', 'labelSmoothing')) if (!(opts[k] >= 0 && opts[k] < 1)) fail(k, 'in [0, 1)');
  for (const k of keys('lr', 'clipGradNorm')) if (!(opts[k] > 0)) fail(k, 'a positive number');
  if (!(opts.minLr >= 0 && opts.minLr <= opts.lr)) fail('minLr', `in [0, --lr]`);
  if (!(opts.weightDecay >= 0)) fail('weightDecay', 'a non-negative number');
  if (!Number.isFinite(opts.lengthPenalty)) fail('lengthPenalty', 'a number');
  if (opts.dModel % opts.heads !== 0) throw new Error(`g2p: --heads (${opts.heads}) must divide --d-model (${opts.dModel})`);
  if (opts.warmupSteps > opts.steps) throw new Error(`g2p: --warmup-steps (${opts.warmupSteps}) is more than --steps (${opts.steps})`);
}

/** A seeded subset of `n` entries in dictionary order (all of them for n = 0). */
export function subset(entries: CmudictEntry[], n: number, seed: number): CmudictEntry[] {
  if (n === 0 || n >= entries.length) return entries;
  const keep = Array.from(new Generator(seed).permutation(entries.length).subarray(0, n)).sort((a, b) => a - b);
  return keep.map((i) => entries[i]!);
}

async function run(opts: G2pOptions, ctx: RecipeContext): Promise<Record<string, unknown>> {
  check(opts);
  const device = ctx.device ?? getDefaultDevice();
  const dict = subset(await loadCmudict({ stripStress: true }), opts.maxWords, opts.seed);
  const { train, val, test } = splitG2p(dict, opts);
  if (train.length === 0 || val.length === 0 || test.length === 0) {
    throw new Error(`g2p: ${dict.length} words leave a split empty (train ${train.length} pairs, val ${val.length}, test ${test.length} words); use more words or larger fractions`);
  }
  const vocab = buildVocab(train.map((p) => p.word));
  const trainWords = new Set(train.map((p) => p.word)).size;
  ctx.log(`g2p: CMUdict without stress, ${dict.length} words: train ${trainWords} words (${train.length} pronunciations), validation ${val.length}, test ${test.length} words; vocabulary ${vocab.tokens.length} tokens (${vocab.charIds.size} characters, ${PHONEMES.length} phonemes)`);

  const config: T5Config = {
    vocab_size: vocab.tokens.length, d_model: opts.dModel, d_kv: opts.dModel / opts.heads, d_ff: opts.dFf,
    num_layers: opts.layers, num_decoder_layers: opts.layers, num_heads: opts.heads,
    relative_attention_num_buckets: 32, relative_attention_max_distance: 128, dropout_rate: opts.dropout,
    layer_norm_epsilon: 1e-6, initializer_factor: 1, feed_forward_proj: 'relu',
    // T5 v1.0's tied, rescaled output layer: the N(0, 1) embedding read with d_model^-0.5 starts the logits near unit scale.
    tie_word_embeddings: true, scale_decoder_outputs: true, pad_token_id: PAD, decoder_start_token_id: START,
  };
  // Weights are drawn before the Trainer seeds the global generator, so seed it here: the same model every time.
  manualSeed(opts.seed);
  const model = new T5ForConditionalGeneration(config);
  model.generationConfig = { eosTokenId: EOS, padTokenId: PAD, decoderStartTokenId: START };
  ctx.log(`g2p: T5 encoder-decoder, ${opts.layers}+${opts.layers} layers, d_model ${opts.dModel}, ${opts.heads} heads, d_ff ${opts.dFf}: ${model.numParameters().toLocaleString('en-US')} parameters, on ${device}`);

  const valSubset = val.slice(0, opts.valWords);
  const decode = (words: readonly string[], numBeams: number) => transcribe(model, vocab, words, { numBeams, lengthPenalty: opts.lengthPenalty, batchSize: opts.evalBatchSize, device });
  const trainer = new Trainer({
    model, device,
    data: g2pBatches(vocab, train, opts.batchSize, device),
    loss: (m, b: G2pBatch) => {
      const logits = m.forward({ inputIds: b.inputIds, attentionMask: b.attentionMask, decoderInputIds: b.decoderInputIds }).logits;
      const loss = crossEntropy(reshape(logits, [-1, vocab.tokens.length]), reshape(b.labels, [-1]), { ignoreIndex: -100, labelSmoothing: opts.labelSmoothing });
      return { loss, tokens: b.tokens };
    },
    evaluate: async (m): Promise<Metrics> => {
      const metrics: Metrics = { loss: await meanLoss(m, vocab, val, opts.evalBatchSize, device) };
      if (valSubset.length > 0) {
        const s = scoreG2p(await decode(valSubset.map((e) => e.word), 1), valSubset.map((e) => e.pronunciations));
        Object.assign(metrics, { greedyWer: s.wer, greedyPer: s.per });
      }
      return metrics;
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
  const trainStart = performance.now();
  const result = await trainer.train();
  const trainSeconds = (performance.now() - trainStart) / 1000;
  const lastEval = [...result.metrics].reverse().find((r) => r.kind === 'eval');

  model.eval();
  const words = test.map((e) => e.word), refs = test.map((e) => e.pronunciations);
  let t0 = performance.now();
  const greedy = await decode(words, 1);
  const greedySeconds = (performance.now() - t0) / 1000;
  t0 = performance.now();
  const beam = await decode(words, opts.beams);
  const beamSeconds = (performance.now() - t0) / 1000;
  const g = scoreG2p(greedy, refs), b = scoreG2p(beam, refs);
  ctx.log(`g2p: test ${test.length} words: beam (${opts.beams}) WER ${(100 * b.wer).toFixed(2)}% PER ${(100 * b.per).toFixed(2)}%; greedy WER ${(100 * g.wer).toFixed(2)}% PER ${(100 * g.per).toFixed(2)}%`);

  const sumPairs = test.reduce((n, e) => n + e.pronunciations.length, 0);
  return {
    scoring: 'WER: a word is correct when the prediction equals any of its reference pronunciations. PER: edit distance to the closest reference (ties: the first listed), summed over words, over the summed lengths of those references.',
    data: { words: dict.length, trainWords, trainPronunciations: train.length, valWords: val.length, testWords: test.length, testPronunciations: sumPairs, vocabulary: vocab.tokens.length },
    parameters: model.numParameters(),
    steps: result.step,
    epochs: (result.step * opts.batchSize) / train.length,
    validation: lastEval ? { step: lastEval.step, loss: lastEval['loss'], greedyWer: lastEval['greedyWer'], greedyPer: lastEval['greedyPer'], words: valSubset.length } : null,
    test: {
      words: test.length,
      beam: { numBeams: opts.beams, lengthPenalty: opts.lengthPenalty, wer: b.wer, per: b.per, wordErrors: b.wordErrors, phoneErrors: b.phoneErrors, referencePhones: b.referencePhones },
      greedy: { wer: g.wer, per: g.per, wordErrors: g.wordErrors, phoneErrors: g.phoneErrors, referencePhones: g.referencePhones },
    },
    target: { wer: TARGET_WER, met: b.wer <= TARGET_WER, published: PUBLISHED },
    seconds: { train: Math.round(trainSeconds), greedyDecode: Math.round(greedySeconds), beamDecode: Math.round(beamSeconds) },
    examples: test.slice(0, opts.examples).map((e, i) => ({
      word: e.word,
      references: e.pronunciations.map((p) => p.join(' ')),
      beam: beam[i]!.join(' '),
      greedy: greedy[i]!.join(' '),
      correct: e.pronunciations.some((p) => p.join(' ') === beam[i]!.join(' ')),
    })),
  };
}

export const g2pRecipe: Recipe<G2pOptions> = {
  name: 'g2p',
  summary: 'grapheme-to-phoneme on CMUdict (no stress): a T5 encoder-decoder, beam search, word and phoneme error rates',
  chapter: 'sequence-to-sequence with a transformer encoder-decoder',
  defaults: {
    seed: 0, maxWords: 0, valFraction: 0.02, testFraction: 0.05,
    dModel: 128, layers: 3, heads: 4, dFf: 512, dropout: 0.1, labelSmoothing: 0.1,
    batchSize: 128, steps: 6000, lr: 2e-3, warmupSteps: 400, minLr: 1e-5, weightDecay: 0.01, clipGradNorm: 1,
    evalEvery: 500, valWords: 500, checkpointEvery: 500,
    beams: 5, lengthPenalty: 1, evalBatchSize: 256, examples: 20,
  },
  smoke: {
    maxWords: 300, dModel: 16, layers: 1, heads: 2, dFf: 32, batchSize: 16, steps: 4, warmupSteps: 1,
    evalEvery: 2, valWords: 4, checkpointEvery: 0, beams: 2, evalBatchSize: 8, examples: 3,
  },
  help: {
    seed: 'seed of the split, the initial weights and the batch order',
    maxWords: 'use a seeded subset of this many dictionary words (0 = all 125,005)',
    valFraction: 'fraction of the words held out for validation',
    testFraction: 'fraction of the words held out for the test (all pronunciations of a word stay together)',
    dModel: 'model width',
    layers: 'encoder layers (and as many decoder layers)',
    heads: 'attention heads (must divide --d-model)',
    dFf: 'feed-forward width',
    dropout: 'dropout rate',
    labelSmoothing: 'label smoothing of the training loss',
    batchSize: 'pronunciations per training batch',
    steps: 'training steps (AdamW updates)',
    lr: 'peak learning rate',
    warmupSteps: 'linear warm-up steps before the cosine decay',
    minLr: 'learning rate at the last step',
    weightDecay: 'AdamW weight decay',
    clipGradNorm: 'clip the gradient norm to this',
    evalEvery: 'steps between validation (loss, and greedy WER/PER on --val-words words); 0 = only at the end',
    valWords: 'validation words decoded greedily at each evaluation',
    checkpointEvery: 'steps between checkpoints (0 = only at the end)',
    beams: 'beams for the final test decoding',
    lengthPenalty: 'beam score = log-probability / length ** this',
    evalBatchSize: 'words per batch when evaluating and decoding',
    examples: 'test words whose predictions go into results.json',
  },
  run,
};
