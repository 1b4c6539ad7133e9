// Recipe `span-brown`: a small T5 pretrained with span corruption on the Brown corpus's letters, then fine-tuned on g2p, beside the same T5 from scratch.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { noGrad } from '../autograd/engine.js';
import { reshape } from '../autograd/ops/movement.js';
import { loadBrown, type BrownDocument } from '../data/brown.js';
import { loadCmudict, type CmudictEntry } from '../data/cmudict.js';
import { padSequences } from '../data/loader.js';
import { computeInputAndTargetLengths, numNoiseSpans, sentinelId, spanCorrupt, type SpanCorruptionOptions } from '../data/span-corruption.js';
import { splitDataset } from '../data/split.js';
import { T5ForConditionalGeneration, type T5Config } from '../models/t5.js';
import { crossEntropy } from '../nn/functional.js';
import { getDefaultDevice } from '../tensor/backend.js';
import { tensor } from '../tensor/create.js';
import { Generator, manualSeed } from '../tensor/random.js';
import { tidy } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { STATE_FILE } from '../train/checkpoint.js';
import { lineChart } from '../train/plot.js';
import { Trainer, type BatchFactory, type Metrics, type TrainResult } from '../train/trainer.js';
import { encodePhones, encodeWord, EOS, g2pBatches, PAD, PHONEMES, scoreG2p, splitG2p, START, subset, transcribe, UNK, type G2pBatch, type G2pPair, type G2pVocab } from './g2p.js';
import { optionError, type Recipe, type RecipeContext } from './recipe.js';
import { writeFileAtomic } from '../io/atomic.js';

// ---- text and vocabulary ----

/** A Brown document as the letters g2p reads: upper case, words of A-Z and apostrophes, everything else one space. */
export function brownLetters(doc: BrownDocument): string {
  return doc.sentences.join(' ').toUpperCase().replace(/[^A-Z']+/g, ' ').trim();
}

/**
 * g2p's table with room for pretraining: the specials, a space, the characters of the training words, the 39
 * phonemes, then `sentinels` sentinel tokens at the top (<extra_id_0> is the last id, as in T5's vocabulary). The
 * from-scratch model uses the same table, so that both models are the same T5.
 */
export function spanBrownVocab(trainWords: Iterable<string>, sentinels: number): G2pVocab {
  const chars = new Set<string>([' ']);
  for (const w of trainWords) for (const c of w) chars.add(c);
  const sorted = [...chars].sort();
  const tokens = ['<pad>', '</s>', '<s>', '<unk>', ...sorted, ...PHONEMES];
  const V = tokens.length + sentinels;
  for (let k = sentinels - 1; k >= 0; k--) tokens.push(`<extra_id_${k}>`);
  if (tokens[sentinelId(V, 0)] !== '<extra_id_0>') throw new Error('span-brown: sentinel layout is broken'); // the table's own invariant
  return {
    tokens,
    charIds: new Map(sorted.map((c, i) => [c, 4 + i])),
    phonemeIds: new Map(PHONEMES.map((p, i) => [p, 4 + sorted.length + i])),
  };
}

/**
 * HF's group_texts: the documents' ids, each followed by </s>, concatenated and cut into chunks of `length`; the
 * remainder is dropped.
 */
export function chunkDocuments(docs: readonly (readonly number[])[], length: number): number[][] {
  const all = docs.flatMap((d) => [...d, EOS]);
  const out: number[][] = [];
  for (let at = 0; at + length <= all.length; at += length) out.push(all.slice(at, at + length));
  return out;
}

// ---- span-corruption batches ----

/** Span-corrupted chunks as plain arrays ([B, S] inputs, [B, T] labels; all rows the same length): tensors are made in the loss. */
export interface SpanBatch {
  inputIds: Int32Array;
  decoderInputIds: Int32Array;
  labels: Int32Array;
  B: number;
  S: number;
  T: number;
  tokens: number;
}

/** Corrupts chunks with fresh noise masks; decoder inputs are the labels shifted right after <s> (HF's shift_tokens_right). */
export function collateSpans(chunks: readonly (readonly number[])[], gen: Generator, o: SpanCorruptionOptions & { vocabSize: number }): SpanBatch {
  const rows = chunks.map((c) => spanCorrupt(c, gen, { ...o, eosId: EOS }));
  const B = rows.length, S = rows[0]!.inputIds.length, T = rows[0]!.labels.length;
  const inputIds = new Int32Array(B * S), labels = new Int32Array(B * T), decoderInputIds = new Int32Array(B * T);
  rows.forEach((r, b) => {
    // Chunks of one length give inputs and labels of one length (HF's collator checks the same).
    if (r.inputIds.length !== S || r.labels.length !== T) throw new Error(`span-brown: chunk ${b} corrupts to ${r.inputIds.length} + ${r.labels.length} tokens, the first to ${S} + ${T}`);
    inputIds.set(r.inputIds, b * S);
    labels.set(r.labels, b * T);
    decoderInputIds[b * T] = START;
    decoderInputIds.set(r.labels.slice(0, T - 1), b * T + 1);
  });
  return { inputIds, decoderInputIds, labels, B, S, T, tokens: B * (S + T) };
}

/** Each epoch: the chunks in a seeded order, masked afresh from a Philox stream of the epoch's own (resumable). */
export function spanBatches(chunks: readonly number[][], batchSize: number, o: SpanCorruptionOptions & { vocabSize: number }): BatchFactory<SpanBatch> {
  return function* (epoch, seed) {
    const gen = new Generator(seed);
    gen.setState({ seed, offset: epoch * 2 ** 32 });
    const perm = gen.permutation(chunks.length);
    for (let at = 0; at + batchSize <= perm.length; at += batchSize) {
      yield collateSpans(Array.from(perm.subarray(at, at + batchSize), (i) => chunks[i]!), gen, o);
    }
  };
}

/** Summed cross-entropy of a span batch over its label tokens. */
function spanLoss(model: T5ForConditionalGeneration, b: SpanBatch, device: string, reduction: 'mean' | 'sum'): Tensor {
  const logits = model.forward({
    inputIds: tensor(b.inputIds, { shape: [b.B, b.S], dtype: 'int32', device }),
    decoderInputIds: tensor(b.decoderInputIds, { shape: [b.B, b.T], dtype: 'int32', device }),
  }).logits; // [B, T, V]
  return crossEntropy(reshape(logits, [b.B * b.T, -1]), tensor(b.labels, { dtype: 'int32', device }), { reduction });
}

async function spanEval(model: T5ForConditionalGeneration, batches: readonly SpanBatch[], device: string): Promise<Metrics> {
  let total = 0, count = 0;
  for (const b of batches) {
    const l = noGrad(() => tidy(() => spanLoss(model, b, device, 'sum')));
    total += await l.item();
    l.dispose();
    count += b.labels.length;
  }
  return { loss: total / count };
}

// ---- g2p evaluation ----

/** Token-weighted cross-entropy (no smoothing) of the model on whole entries' pronunciations, and greedy WER / PER on them. */
async function g2pEval(model: T5ForConditionalGeneration, vocab: G2pVocab, entries: readonly CmudictEntry[], batchSize: number, device: string): Promise<Metrics> {
  const pairs: G2pPair[] = entries.flatMap((e) => e.pronunciations.map((phones) => ({ word: e.word, phones })));
  let total = 0, count = 0;
  for (let at = 0; at < pairs.length; at += batchSize) {
    const chunk = pairs.slice(at, at + batchSize);
    const src = chunk.map((p) => encodeWord(vocab, p.word));
    const tgt = chunk.map((p) => [...encodePhones(vocab, p.phones), EOS]);
    const T = Math.max(...tgt.map((t) => t.length));
    const labels = new Int32Array(chunk.length * T).fill(-100), dec = new Int32Array(chunk.length * T).fill(PAD);
    tgt.forEach((t, b) => {
      labels.set(t, b * T);
      dec[b * T] = START;
      dec.set(t.slice(0, T - 1), b * T + 1);
    });
    count += tgt.reduce((n, t) => n + t.length, 0);
    const loss = noGrad(() => tidy(() => {
      const { inputIds, attentionMask } = padSequences(src, { padId: PAD, device });
      const logits = model.forward({ inputIds, attentionMask, decoderInputIds: tensor(dec, { shape: [chunk.length, T], dtype: 'int32', device }) }).logits;
      return crossEntropy(reshape(logits, [-1, vocab.tokens.length]), tensor(labels, { dtype: 'int32', device }), { ignoreIndex: -100, reduction: 'sum' });
    }));
    total += await loss.item();
    loss.dispose();
  }
  const s = scoreG2p(await transcribe(model, vocab, entries.map((e) => e.word), { numBeams: 1, lengthPenalty: 1, batchSize, device }), entries.map((e) => e.pronunciations));
  return { loss: total / count, greedyWer: s.wer, greedyPer: s.per };
}

// ---- the recipe ----

export type SpanBrownOptions = {
  seed: number;
  maxWords: number;
  valFraction: number;
  testFraction: number;
  brownValFraction: number;
  maxDocs: number;
  valChunks: number;
  dModel: number;
  layers: number;
  heads: number;
  dFf: number;
  dropout: number;
  inputLength: number;
  noiseDensity: number;
  meanNoiseSpanLength: number;
  pretrainSteps: number;
  pretrainBatchSize: number;
  pretrainLr: number;
  steps: number;
  batchSize: number;
  lr: number;
  warmupSteps: number;
  minLr: number;
  labelSmoothing: number;
  weightDecay: number;
  clipGradNorm: number;
  evalEvery: number;
  valWords: number;
  checkpointEvery: number;
  beams: number;
  evalBatchSize: number;
};

function check(opts: SpanBrownOptions): void {
  const fail = optionError('span-brown', opts);
  const keys = (...k: (keyof SpanBrownOptions)[]) => k;
  for (const k of keys('dModel', 'layers', 'heads', 'dFf', 'pretrainSteps', 'pretrainBatchSize', 'steps', 'batchSize', 'beams', 'evalBatchSize', 'valWords')) {
    if (!Number.isSafeInteger(opts[k]) || opts[k] < 1) fail(k, 'a positive integer');
  }
  for (const k of keys('seed', 'maxWords', 'maxDocs', 'valChunks', 'warmupSteps', 'evalEvery', 'checkpointEvery')) {
    if (!Number.isSafeInteger(opts[k]) || opts[k] < 0) fail(k, 'a non-negative integer');
  }
  if (!Number.isSafeInteger(opts.inputLength) || opts.inputLength < 4) fail('inputLength', 'an integer >= 4');
  for (const k of keys('testFraction', 'valFraction', 'brownValFraction')) if (!(opts[k] > 0 && opts[k] < 1)) fail(k, 'a fraction between 0 and 1');
  if (!(opts.testFraction + opts.valFraction < 1)) throw new Error(`span-brown: --test-fraction + --val-fraction must leave words for training, got ${opts.testFraction} + ${opts.valFraction}`);
  if (!(opts.noiseDensity > 0 && opts.noiseDensity < 1)) fail('noiseDensity', 'in (0, 1)');
  if (!(opts.meanNoiseSpanLength >= 1)) fail('meanNoiseSpanLength', 'a number >= 1');
  for (const k of keys('dropout', 'labelSmoothing')) if (!(opts[k] >= 0 && opts[k] < 1)) fail(k, 'in [0, 1)');
  for (const k of keys('lr', 'pretrainLr', 'clipGradNorm')) if (!(opts[k] > 0)) fail(k, 'a positive number');
  if (!(opts.minLr >= 0 && opts.minLr <= Math.min(opts.lr, opts.pretrainLr))) fail('minLr', 'in [0, min(--lr, --pretrain-lr)]');
  if (!(opts.weightDecay >= 0)) fail('weightDecay', 'a non-negative number');
  if (opts.dModel % opts.heads !== 0) throw new Error(`span-brown: --heads (${opts.heads}) must divide --d-model (${opts.dModel})`);
  if (opts.warmupSteps > Math.min(opts.steps, opts.pretrainSteps)) throw new Error(`span-brown: --warmup-steps (${opts.warmupSteps}) is more than --steps (${opts.steps}) or --pretrain-steps (${opts.pretrainSteps})`);
}

/** One metric of a Trainer run's log ('train') or evaluation ('eval') records, restored ones included, as [step, value] points. */
function curve(result: TrainResult, kind: 'train' | 'eval', key: string): [number, number][] {
  return result.metrics.filter((r) => r.kind === kind && typeof r[key] === 'number').map((r) => [r.step, r[key] as number]);
}

async function run(opts: SpanBrownOptions, ctx: RecipeContext): Promise<Record<string, unknown>> {
  check(opts);
  const device = ctx.device ?? getDefaultDevice();

  // g2p's data, split exactly as `attend train g2p` splits it with the same seed and fractions.
  const dict = subset(await loadCmudict({ stripStress: true }), opts.maxWords, opts.seed);
  const { train, val, test } = splitG2p(dict, opts);
  if (train.length === 0 || val.length === 0 || test.length === 0) {
    throw new Error(`span-brown: ${dict.length} words leave a g2p split empty (train ${train.length} pairs, val ${val.length}, test ${test.length} words); use more words or larger fractions`);
  }
  const span: SpanCorruptionOptions = { noiseDensity: opts.noiseDensity, meanNoiseSpanLength: opts.meanNoiseSpanLength };
  const { tokensLength, targetsLength } = computeInputAndTargetLengths(opts.inputLength, span);
  const vocab = spanBrownVocab(train.map((p) => p.word), numNoiseSpans(tokensLength, span));
  const V = vocab.tokens.length;

  // Brown as letters, split by document; chunks of tokensLength letters corrupt to inputLength inputs.
  const all = await loadBrown();
  const docs = opts.maxDocs > 0 ? all.slice(0, opts.maxDocs) : all;
  const [trainDocs, valDocs] = splitDataset(docs, { fractions: [1 - opts.brownValFraction, opts.brownValFraction], seed: opts.seed }) as [BrownDocument[], BrownDocument[]];
  const encode = (ds: BrownDocument[]) => ds.map((d) => Array.from(brownLetters(d), (c) => vocab.charIds.get(c) ?? UNK));
  const trainChunks = chunkDocuments(encode(trainDocs), tokensLength);
  const valChunksAll = chunkDocuments(encode(valDocs), tokensLength);
  // Evenly spaced through the held-out documents, so that a capped validation set still covers every genre.
  const n = opts.valChunks > 0 ? Math.min(opts.valChunks, valChunksAll.length) : valChunksAll.length;
  const valChunks = Array.from({ length: n }, (_, k) => valChunksAll[Math.floor((k * valChunksAll.length) / n)]!);
  if (trainChunks.length < opts.pretrainBatchSize || valChunks.length === 0) {
    throw new Error(`span-brown: ${docs.length} Brown documents give ${trainChunks.length} training and ${valChunks.length} validation chunks of ${tokensLength} letters; need a batch (${opts.pretrainBatchSize}) and one validation chunk: use more documents or a shorter --input-length`);
  }
  const spanOpts = { ...span, vocabSize: V };
  // Validation masks are drawn once, from a stream of their own: every evaluation scores the same targets.
  const valGen = new Generator(opts.seed + 7919);
  const valBatches: SpanBatch[] = [];
  for (let at = 0; at < valChunks.length; at += opts.evalBatchSize) valBatches.push(collateSpans(valChunks.slice(at, at + opts.evalBatchSize), valGen, spanOpts));
  const trainWords = new Set(train.map((p) => p.word)).size;
  ctx.log(`span-brown: CMUdict ${dict.length} words (g2p split: train ${trainWords} words, validation ${val.length}, test ${test.length}); Brown ${docs.length} documents as letters: ${trainChunks.length} training chunks, ${valChunks.length} validation chunks of ${tokensLength} letters -> inputs ${opts.inputLength}, targets ${targetsLength}; vocabulary ${V} (${vocab.charIds.size} characters, ${PHONEMES.length} phonemes, ${V - 4 - vocab.charIds.size - PHONEMES.length} sentinels)`);

  const config: T5Config = {
    vocab_size: V, d_model: opts.dModel, d_kv: opts.dModel / opts.heads, d_ff: opts.dFf,
    num_layers: opts.layers, num_decoder_layers: opts.layers, num_heads: opts.heads,
    relative_attention_num_buckets: 32, relative_attention_max_distance: 128, dropout_rate: opts.dropout,
    layer_norm_epsilon: 1e-6, initializer_factor: 1, feed_forward_proj: 'relu',
    tie_word_embeddings: true, scale_decoder_outputs: true, pad_token_id: PAD, decoder_start_token_id: START,
  };
  const newModel = (): T5ForConditionalGeneration => {
    // The same initial weights for both models: pretraining starts where the scratch model starts.
    manualSeed(opts.seed);
    const m = new T5ForConditionalGeneration(config);
    m.generationConfig = { eosTokenId: EOS, padTokenId: PAD, decoderStartTokenId: START };
    return m;
  };
  const pretrained = newModel();
  ctx.log(`span-brown: T5 ${opts.layers}+${opts.layers} layers, d_model ${opts.dModel}, ${opts.heads} heads, d_ff ${opts.dFf}: ${pretrained.numParameters().toLocaleString('en-US')} parameters, on ${device}`);

  const common = {
    device, clipGradNorm: opts.clipGradNorm, seed: opts.seed, skipNonfinite: ctx.skipNonfinite,
    evalEvery: opts.evalEvery || undefined, checkpointEvery: opts.checkpointEvery || undefined,
  };
  // Each phase has its own folder; --resume continues whichever phases have a checkpoint and starts the others.
  const phase = (name: string) => {
    const outDir = join(ctx.outDir, name);
    return { outDir, resume: ctx.resume && existsSync(join(outDir, STATE_FILE)) };
  };

  ctx.log(`span-brown: pretraining (span corruption: noise density ${opts.noiseDensity}, mean span ${opts.meanNoiseSpanLength}), ${opts.pretrainSteps} steps of ${opts.pretrainBatchSize} chunks`);
  const t0 = performance.now();
  const pre = await new Trainer({
    ...common, ...phase('pretrain'), model: pretrained, maxSteps: opts.pretrainSteps,
    data: spanBatches(trainChunks, opts.pretrainBatchSize, spanOpts),
    loss: (m, b: SpanBatch) => ({ loss: spanLoss(m, b, device, 'mean'), tokens: b.tokens }),
    evaluate: (m) => spanEval(m, valBatches, device),
    optimizer: { lr: opts.pretrainLr, weightDecay: opts.weightDecay, betas: [0.9, 0.98] },
    schedule: { kind: 'cosine', warmupSteps: opts.warmupSteps, minLr: opts.minLr },
    logEvery: Math.min(25, opts.pretrainSteps),
  }).train();
  const pretrainSeconds = (performance.now() - t0) / 1000;
  const preLoss = curve(pre, 'eval', 'loss').at(-1)![1]; // the Trainer evaluates after the last step
  ctx.log(`span-brown: pretraining done: validation span loss ${preLoss.toFixed(4)} (${valChunks.length} chunks)`);

  const valSubset = val.slice(0, opts.valWords);
  const fineTune = async (model: T5ForConditionalGeneration, name: string) => {
    const start = performance.now();
    const result = await new Trainer({
      ...common, ...phase(name), model, maxSteps: opts.steps,
      data: g2pBatches(vocab, train, opts.batchSize, device),
      loss: (m, b: G2pBatch) => {
        const logits = m.forward({ inputIds: b.inputIds, attentionMask: b.attentionMask, decoderInputIds: b.decoderInputIds }).logits;
        return { loss: crossEntropy(reshape(logits, [-1, V]), reshape(b.labels, [-1]), { ignoreIndex: -100, labelSmoothing: opts.labelSmoothing }), tokens: b.tokens };
      },
      evaluate: (m) => g2pEval(m, vocab, valSubset, opts.evalBatchSize, device),
      optimizer: { lr: opts.lr, weightDecay: opts.weightDecay, betas: [0.9, 0.98] },
      schedule: { kind: 'cosine', warmupSteps: opts.warmupSteps, minLr: opts.minLr },
      logEvery: Math.min(25, opts.steps),
    }).train();
    const trainSeconds = (performance.now() - start) / 1000;
    model.eval();
    const words = test.map((e) => e.word), refs = test.map((e) => e.pronunciations);
    const decode = (numBeams: number) => transcribe(model, vocab, words, { numBeams, lengthPenalty: 1, batchSize: opts.evalBatchSize, device });
    const greedy = scoreG2p(await decode(1), refs);
    const beam = opts.beams === 1 ? greedy : scoreG2p(await decode(opts.beams), refs);
    ctx.log(`span-brown: ${name}: test ${test.length} words: beam (${opts.beams}) WER ${(100 * beam.wer).toFixed(2)}% PER ${(100 * beam.per).toFixed(2)}%; greedy WER ${(100 * greedy.wer).toFixed(2)}% PER ${(100 * greedy.per).toFixed(2)}%`);
    return { result, trainSeconds, beam, greedy };
  };
  ctx.log(`span-brown: fine-tuning the pretrained T5 on g2p, ${opts.steps} steps of ${opts.batchSize} pronunciations`);
  const ft = await fineTune(pretrained, 'finetune');
  ctx.log(`span-brown: the same T5 from scratch on g2p, ${opts.steps} steps of ${opts.batchSize} pronunciations`);
  const sc = await fineTune(newModel(), 'scratch');

  await writeFileAtomic(join(ctx.outDir, 'loss.svg'), lineChart([
    { name: 'g2p train loss, pretrained', points: curve(ft.result, 'train', 'loss') },
    { name: 'g2p train loss, from scratch', points: curve(sc.result, 'train', 'loss') },
    { name: 'g2p validation loss, pretrained', points: curve(ft.result, 'eval', 'loss') },
    { name: 'g2p validation loss, from scratch', points: curve(sc.result, 'eval', 'loss') },
  ], { title: `g2p from a span-corruption-pretrained T5 vs from scratch (${opts.steps} steps each)`, xLabel: 'step', yLabel: 'cross-entropy', logY: true }));

  const row = (r: typeof ft) => ({
    beam: { wer: r.beam.wer, per: r.beam.per, wordErrors: r.beam.wordErrors, phoneErrors: r.beam.phoneErrors },
    greedy: { wer: r.greedy.wer, per: r.greedy.per, wordErrors: r.greedy.wordErrors, phoneErrors: r.greedy.phoneErrors },
    finalValidation: curve(r.result, 'eval', 'loss').at(-1)?.[1] ?? null,
    trainSeconds: Math.round(r.trainSeconds),
  });
  const table = [
    '| g2p test (' + test.length + ' words) | beam WER | beam PER | greedy WER | greedy PER |',
    '| --- | ---: | ---: | ---: | ---: |',
    ...([['pretrained on Brown (span corruption)', ft], ['from scratch', sc]] as const).map(([n, r]) => `| ${n} | ${(100 * r.beam.wer).toFixed(2)}% | ${(100 * r.beam.per).toFixed(2)}% | ${(100 * r.greedy.wer).toFixed(2)}% | ${(100 * r.greedy.per).toFixed(2)}% |`),
  ].join('\n');
  ctx.log(`span-brown: gain from pretraining at ${opts.steps} steps: beam WER ${(100 * (sc.beam.wer - ft.beam.wer)).toFixed(2)} points, PER ${(100 * (sc.beam.per - ft.beam.per)).toFixed(2)} points\n${table}`);
  return {
    data: {
      g2p: { words: dict.length, trainWords, trainPronunciations: train.length, valWords: val.length, testWords: test.length },
      brown: { documents: docs.length, trainDocuments: trainDocs.length, validationDocuments: valDocs.length, trainChunks: trainChunks.length, validationChunks: valChunks.length, chunkLetters: tokensLength, inputLength: valBatches[0]!.S, targetLength: targetsLength },
      vocabulary: V,
    },
    parameters: pretrained.numParameters(),
    pretraining: { steps: pre.step, epochs: (pre.step * opts.pretrainBatchSize) / trainChunks.length, validationLoss: preLoss, seconds: Math.round(pretrainSeconds) },
    pretrained: row(ft),
    scratch: row(sc),
    gain: {
      steps: opts.steps,
      beamWer: sc.beam.wer - ft.beam.wer, beamPer: sc.beam.per - ft.beam.per,
      greedyWer: sc.greedy.wer - ft.greedy.wer, greedyPer: sc.greedy.per - ft.greedy.per,
    },
    table,
  };
}

export const spanBrownRecipe: Recipe<SpanBrownOptions> = {
  name: 'span-brown',
  summary: 'T5 span-corruption pretraining on Brown (letters), then g2p fine-tuning beside the same T5 from scratch at equal steps: the gain in WER / PER',
  chapter: 'self-supervised pretraining of an encoder-decoder',
  defaults: {
    seed: 0, maxWords: 0, valFraction: 0.02, testFraction: 0.05, brownValFraction: 0.05, maxDocs: 0, valChunks: 512,
    dModel: 128, layers: 3, heads: 4, dFf: 512, dropout: 0.1,
    inputLength: 64, noiseDensity: 0.15, meanNoiseSpanLength: 3, pretrainSteps: 600, pretrainBatchSize: 64, pretrainLr: 2e-3,
    steps: 800, batchSize: 128, lr: 2e-3, warmupSteps: 100, minLr: 1e-5, labelSmoothing: 0.1, weightDecay: 0.01, clipGradNorm: 1,
    evalEvery: 100, valWords: 500, checkpointEvery: 200, beams: 5, evalBatchSize: 256,
  },
  smoke: {
    maxWords: 300, maxDocs: 6, brownValFraction: 0.34, valChunks: 16, dModel: 16, layers: 1, heads: 2, dFf: 32, inputLength: 24,
    pretrainSteps: 4, pretrainBatchSize: 8, steps: 4, batchSize: 16, warmupSteps: 1, evalEvery: 2, valWords: 4, checkpointEvery: 0,
    beams: 2, evalBatchSize: 8,
  },
  help: {
    seed: 'seed of the splits, the initial weights (the same for both models), the masks and the batch order',
    maxWords: 'use a seeded subset of this many dictionary words (0 = all), as g2p',
    valFraction: 'fraction of the words held out for g2p validation (as g2p)',
    testFraction: 'fraction of the words held out for the g2p test (as g2p)',
    brownValFraction: 'fraction of the Brown documents held out for the pretraining validation loss',
    maxDocs: 'use only the first N Brown documents (0 = all 500)',
    valChunks: 'held-out Brown chunks scored at each pretraining validation, evenly spaced (0 = all)',
    dModel: 'model width',
    layers: 'encoder layers (and as many decoder layers)',
    heads: 'attention heads (must divide --d-model)',
    dFf: 'feed-forward width',
    dropout: 'dropout rate',
    inputLength: 'letters per corrupted pretraining input (</s> and sentinels included); chunks are longer by the removed noise (HF\'s compute_input_and_target_lengths)',
    noiseDensity: 'share of the letters that become noise',
    meanNoiseSpanLength: 'mean length of a noise span',
    pretrainSteps: 'pretraining steps (AdamW updates)',
    pretrainBatchSize: 'chunks per pretraining batch',
    pretrainLr: 'peak learning rate of the pretraining',
    steps: 'g2p steps, the same for the pretrained and the from-scratch model',
    batchSize: 'pronunciations per g2p batch',
    lr: 'peak learning rate of the g2p training',
    warmupSteps: 'linear warm-up steps (each phase) before the cosine decay',
    minLr: 'learning rate at the last step of each phase',
    labelSmoothing: 'label smoothing of the g2p training loss',
    weightDecay: 'AdamW weight decay',
    clipGradNorm: 'clip the gradient norm to this',
    evalEvery: 'steps between validations (0 = only at the end)',
    valWords: 'g2p validation words scored (loss, greedy WER / PER) at each evaluation',
    checkpointEvery: 'steps between checkpoints (0 = only at the end)',
    beams: 'beams for the final test decoding',
    evalBatchSize: 'chunks or words per batch when evaluating and decoding',
  },
  run,
};
