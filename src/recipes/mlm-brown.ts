// Recipe `mlm-brown`: BERT masked-language-model pretraining on the Brown corpus, saved as a folder that fill-mask and `spam --init` load.

import { noGrad } from '../autograd/engine.js';
import { eq } from '../autograd/ops/elementwise.js';
import { indexSelect } from '../autograd/ops/indexing.js';
import { reshape } from '../autograd/ops/movement.js';
import { softmax } from '../autograd/ops/nn.js';
import { argmax, sum } from '../autograd/ops/reduce.js';
import { loadBrown } from '../data/brown.js';
import { splitDataset } from '../data/split.js';
import { ConfigReader } from '../models/base.js';
import { BertForMaskedLM, bertConfig } from '../models/bert.js';
import { crossEntropy } from '../nn/functional.js';
import { getDefaultDevice } from '../tensor/backend.js';
import { tensor } from '../tensor/create.js';
import { Generator, manualSeed } from '../tensor/random.js';
import { tidy } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { Trainer, type BatchFactory, type Metrics } from '../train/trainer.js';
import { optionError, type Recipe, type RecipeContext } from './recipe.js';
import { bertConfigJson, checkEncoderShape, encoderShape, headWords, loadSpamSplit, pieceIds, saveHfFolder, SPAM_SPLIT, SPECIAL_TOKENS, trainTokenizer } from './spam-data.js';

// ---- packing and masking ----

/**
 * Packs each document's sentences (token ids, no special tokens) into sequences [CLS] s1 s2 ... [SEP] of at most
 * maxLength ids: consecutive sentences go together while they fit; a sentence longer than a whole sequence is cut
 * into pieces. Sequences never cross documents.
 */
export function packSentences(docs: readonly (readonly (readonly number[])[])[], maxLength: number, clsId: number, sepId: number): number[][] {
  const room = maxLength - 2;
  const out: number[][] = [];
  for (const doc of docs) {
    let cur: number[] = [];
    const flush = () => {
      if (cur.length > 0) out.push([clsId, ...cur, sepId]);
      cur = [];
    };
    for (const sentence of doc) {
      if (cur.length + sentence.length > room) flush();
      for (let at = 0; at < sentence.length; at += room) {
        const piece = sentence.slice(at, at + room);
        if (cur.length + piece.length > room) flush();
        cur.push(...piece);
      }
    }
    flush();
  }
  return out;
}

export interface MaskingOptions {
  /** Share of the tokens chosen for prediction (BERT: 0.15). */
  maskProb: number;
  maskId: number;
  vocabSize: number;
  /** Ids below this are special tokens: never chosen, never a random replacement. */
  firstRegularId: number;
}

/** One masked sequence: the model's input, and the positions it must predict with their original ids. */
export interface MaskedSequence {
  input: number[];
  positions: number[];
  targets: number[];
}

/**
 * BERT's masking: each regular token is chosen with probability maskProb; a chosen token becomes [MASK] 80% of the
 * time, a random regular token 10%, and stays itself 10%; the loss is on the chosen tokens only (labels -100
 * elsewhere). A sequence with none chosen gets one, so that no batch is left without a target.
 */
export function maskSequence(ids: readonly number[], gen: Generator, o: MaskingOptions): MaskedSequence {
  const u = gen.uniform(3 * ids.length + 1);
  const input = [...ids];
  const positions: number[] = [];
  for (let t = 0; t < ids.length; t++) if (ids[t]! >= o.firstRegularId && u[3 * t]! < o.maskProb) positions.push(t);
  if (positions.length === 0) {
    const regular = ids.flatMap((id, t) => (id >= o.firstRegularId ? [t] : []));
    if (regular.length > 0) positions.push(regular[Math.floor(u[3 * ids.length]! * regular.length)]!);
  }
  for (const t of positions) {
    const r = u[3 * t + 1]!;
    if (r < 0.8) input[t] = o.maskId;
    else if (r < 0.9) input[t] = o.firstRegularId + Math.floor(u[3 * t + 2]! * (o.vocabSize - o.firstRegularId));
  }
  return { input, positions, targets: positions.map((t) => ids[t]!) };
}

/** A batch as plain arrays: the loss function makes its tensors inside the Trainer's tidy scope. */
export interface MlmBatch {
  /** [B * T] ids, padded with [PAD] = 0. */
  input: Int32Array;
  /** [B * T]: 1 at tokens, 0 at padding. */
  mask: Int32Array;
  B: number;
  T: number;
  /** Flat indices b * T + t of the positions to predict, and their original ids. */
  positions: Int32Array;
  targets: Int32Array;
  tokens: number;
}

export function collateMasked(seqs: readonly MaskedSequence[]): MlmBatch {
  const B = seqs.length, T = Math.max(...seqs.map((s) => s.input.length));
  const input = new Int32Array(B * T), mask = new Int32Array(B * T);
  const positions: number[] = [], targets: number[] = [];
  seqs.forEach((s, b) => {
    input.set(s.input, b * T);
    mask.fill(1, b * T, b * T + s.input.length);
    s.positions.forEach((t, i) => { positions.push(b * T + t); targets.push(s.targets[i]!); });
  });
  return { input, mask, B, T, positions: Int32Array.from(positions), targets: Int32Array.from(targets), tokens: seqs.reduce((n, s) => n + s.input.length, 0) };
}

/**
 * Each epoch: the sequences in a seeded order, masked afresh (dynamic masking, as RoBERTa), from a Philox stream of
 * the epoch's own, so that a resumed run sees the same batches.
 */
export function mlmBatches(seqs: readonly number[][], batchSize: number, o: MaskingOptions): BatchFactory<MlmBatch> {
  return function* (epoch, seed) {
    const gen = new Generator(seed);
    gen.setState({ seed, offset: epoch * 2 ** 32 });
    const perm = gen.permutation(seqs.length);
    for (let at = 0; at < perm.length; at += batchSize) {
      yield collateMasked(Array.from(perm.subarray(at, at + batchSize), (i) => maskSequence(seqs[i]!, gen, o)));
    }
  };
}

/** The masked-LM scores of a batch at its chosen positions only: [N, V] (the head over every position would cost ~7x more). */
function maskedLogits(model: BertForMaskedLM, b: MlmBatch, device: string): { logits: Tensor; targets: Tensor } {
  const inputIds = tensor(b.input, { shape: [b.B, b.T], dtype: 'int32', device });
  const attentionMask = tensor(b.mask, { shape: [b.B, b.T], dtype: 'int32', device });
  const hidden = model.bert.forward(inputIds, attentionMask); // [B, T, C]
  const C = hidden.shape[2]!;
  // [B, T, C] -> [B * T, C] -> [N, C]
  const picked = indexSelect(reshape(hidden, [b.B * b.T, C]), 0, tensor(b.positions, { dtype: 'int32', device }));
  return { logits: model.cls.forward(picked), targets: tensor(b.targets, { dtype: 'int32', device }) };
}

/** Masked-LM loss (mean over predicted tokens) and accuracy on fixed, pre-masked batches. */
async function mlmEval(model: BertForMaskedLM, batches: readonly MlmBatch[], device: string): Promise<Metrics> {
  let loss = 0, correct = 0, count = 0;
  for (const b of batches) {
    const [l, c] = noGrad(() => tidy(() => {
      const { logits, targets } = maskedLogits(model, b, device);
      return [crossEntropy(logits, targets, { reduction: 'sum' }), sum(eq(argmax(logits, 1), targets))];
    }));
    loss += await l.item();
    correct += await c.item();
    count += b.targets.length;
    l.dispose();
    c.dispose();
  }
  return { loss: loss / count, accuracy: correct / count };
}

/** The top-k fillers of each [MASK] of a text with their probabilities ('jury 0.123'): what `attend fill-mask` prints. */
async function fillMask(model: BertForMaskedLM, tok: Tokenizer, text: string, k: number, device: string): Promise<{ text: string; top: string[][] }> {
  const ids = tok.encode(text).ids;
  const maskId = tok.maskTokenId!;
  const probs = noGrad(() => tidy(() => softmax(model.forward({ inputIds: tensor(Int32Array.from(ids), { shape: [1, ids.length], dtype: 'int32', device }) }).logits, -1)));
  const data = await probs.data();
  probs.dispose();
  const V = probs.shape[2]!;
  const top = ids.flatMap((id, t) => {
    if (id !== maskId) return [];
    const row = Array.from(data.subarray(t * V, (t + 1) * V));
    return [[...row.keys()].sort((a, b) => row[b]! - row[a]!).slice(0, k).map((i) => `${tok.idToToken(i)!} ${row[i]!.toFixed(3)}`)];
  });
  return { text, top };
}

// ---- the recipe ----

export type MlmOptions = {
  seed: number;
  valFraction: number;
  maxDocs: number;
  tokenizerText: string;
  vocabSize: number;
  maxLength: number;
  hidden: number;
  layers: number;
  heads: number;
  intermediate: number;
  dropout: number;
  maskProb: number;
  batchSize: number;
  steps: number;
  lr: number;
  warmup: number;
  weightDecay: number;
  clipGradNorm: number;
  evalEvery: number;
  checkpointEvery: number;
  evalBatchSize: number;
};

const EXAMPLES = [
  'The [MASK] of the jury said the election was conducted fairly.',
  'He opened the [MASK] and walked into the room.',
  'Click here to [MASK] your free money now!',
];

function check(opts: MlmOptions): void {
  const fail = optionError('mlm-brown', opts);
  for (const k of ['vocabSize', 'batchSize', 'steps', 'evalBatchSize'] as const) if (!Number.isSafeInteger(opts[k]) || opts[k] < 1) fail(k, 'a positive integer');
  for (const k of ['seed', 'maxDocs', 'evalEvery', 'checkpointEvery'] as const) if (!Number.isSafeInteger(opts[k]) || opts[k] < 0) fail(k, 'a non-negative integer');
  if (!(opts.valFraction > 0 && opts.valFraction < 1)) fail('valFraction', 'a fraction between 0 and 1');
  if (!(opts.maskProb > 0 && opts.maskProb < 1)) fail('maskProb', 'in (0, 1)');
  for (const k of ['lr', 'clipGradNorm'] as const) if (!(opts[k] > 0)) fail(k, 'a positive number');
  if (!(opts.warmup >= 0 && opts.warmup < 1)) fail('warmup', 'a fraction of the steps in [0, 1)');
  if (!(opts.weightDecay >= 0)) fail('weightDecay', 'a non-negative number');
  if (opts.vocabSize < 10) fail('vocabSize', 'at least 10 (the 5 special tokens and some pieces)');
  if (opts.tokenizerText !== 'brown' && opts.tokenizerText !== 'brown+spam') fail('tokenizerText', "'brown' or 'brown+spam'");
  checkEncoderShape(encoderShape(opts), 'mlm-brown');
}

async function run(opts: MlmOptions, ctx: RecipeContext): Promise<Record<string, unknown>> {
  check(opts);
  const device = ctx.device ?? getDefaultDevice();
  const all = await loadBrown();
  const docs = opts.maxDocs > 0 ? all.slice(0, opts.maxDocs) : all;
  const [trainDocs, valDocs] = splitDataset(docs, { fractions: [1 - opts.valFraction, opts.valFraction], seed: opts.seed }) as [typeof docs, typeof docs];
  if (trainDocs.length === 0 || valDocs.length === 0) throw new Error(`mlm-brown: ${docs.length} documents leave no ${trainDocs.length === 0 ? 'training' : 'validation'} document; use more documents or another --val-fraction`);

  // The training e-mails of the spam recipe's default split (this seed), as far as a model reads them: the tokenizer
  // then also knows e-mail words, and never saw a test e-mail.
  const spamTexts = opts.tokenizerText === 'brown+spam' ? (await loadSpamSplit('mlm-brown', 'all', { seed: opts.seed, ...SPAM_SPLIT })).train.map((x) => headWords(x.text, opts.maxLength)) : [];
  const tok = trainTokenizer([...trainDocs.flatMap((d) => d.sentences), ...spamTexts], opts.vocabSize, opts.maxLength);
  const pieces = pieceIds(tok);
  const encodeDocs = (ds: typeof docs) => ds.map((d) => d.sentences.map(pieces));
  const cls = tok.clsTokenId!, sep = tok.sepTokenId!;
  const trainSeqs = packSentences(encodeDocs(trainDocs), opts.maxLength, cls, sep);
  const valSeqs = packSentences(encodeDocs(valDocs), opts.maxLength, cls, sep);
  const tokens = (seqs: number[][]) => seqs.reduce((n, s) => n + s.length, 0);
  ctx.log(`mlm-brown: Brown ${docs.length} documents: train ${trainDocs.length} (${trainSeqs.length} sequences, ${tokens(trainSeqs).toLocaleString('en-US')} tokens), validation ${valDocs.length} (${valSeqs.length} sequences); tokenizer: WordPiece on ${opts.tokenizerText === 'brown' ? 'the training documents' : `the training documents and ${spamTexts.length} spam training e-mails`}, ${tok.vocabSize} tokens`);

  const masking: MaskingOptions = { maskProb: opts.maskProb, maskId: tok.maskTokenId!, vocabSize: tok.vocabSize, firstRegularId: SPECIAL_TOKENS.length };
  // Validation masks are drawn once from a stream of their own, so that every evaluation scores the same predictions.
  const valGen = new Generator(opts.seed + 7919);
  const valBatches: MlmBatch[] = [];
  for (let at = 0; at < valSeqs.length; at += opts.evalBatchSize) valBatches.push(collateMasked(valSeqs.slice(at, at + opts.evalBatchSize).map((s) => maskSequence(s, valGen, masking))));

  const shape = encoderShape(opts);
  const config = bertConfigJson(tok.vocabSize, shape, 'BertForMaskedLM');
  manualSeed(opts.seed);
  const model = new BertForMaskedLM(bertConfig(new ConfigReader(config, 'mlm-brown: config')));
  ctx.log(`mlm-brown: BERT ${opts.layers} layers, hidden ${opts.hidden}, ${opts.heads} heads, max length ${opts.maxLength}: ${model.numParameters().toLocaleString('en-US')} parameters, on ${device}`);

  const trainer = new Trainer({
    model, device, maxSteps: opts.steps,
    data: mlmBatches(trainSeqs, opts.batchSize, masking),
    loss: (m, b: MlmBatch) => {
      const { logits, targets } = maskedLogits(m, b, device);
      return { loss: crossEntropy(logits, targets), tokens: b.tokens };
    },
    evaluate: (m) => mlmEval(m, valBatches, device),
    optimizer: { lr: opts.lr, weightDecay: opts.weightDecay, betas: [0.9, 0.98] },
    schedule: { kind: 'cosine', warmupSteps: Math.round(opts.warmup * opts.steps) },
    clipGradNorm: opts.clipGradNorm,
    evalEvery: opts.evalEvery || undefined,
    checkpointEvery: opts.checkpointEvery || undefined,
    logEvery: Math.min(20, opts.steps),
    outDir: ctx.outDir, resume: ctx.resume, seed: opts.seed, skipNonfinite: ctx.skipNonfinite,
  });
  const trainStart = performance.now();
  const result = await trainer.train();
  const trainSeconds = (performance.now() - trainStart) / 1000;

  model.eval();
  const final = await mlmEval(model, valBatches, device);
  ctx.log(`mlm-brown: validation masked-LM loss ${final['loss']!.toFixed(4)} (perplexity ${Math.exp(final['loss']!).toFixed(1)}), accuracy ${(100 * final['accuracy']!).toFixed(2)}%`);
  const examples = [];
  for (const text of EXAMPLES) examples.push(await fillMask(model, tok, text, 5, device));
  await saveHfFolder(ctx.outDir, model, config, tok, opts.maxLength);
  const trainTokens = tokens(trainSeqs);
  return {
    data: {
      documents: docs.length, trainDocuments: trainDocs.length, validationDocuments: valDocs.length,
      trainSequences: trainSeqs.length, trainTokens, validationSequences: valSeqs.length, validationTokens: tokens(valSeqs),
      validationPredictions: valBatches.reduce((n, b) => n + b.targets.length, 0),
    },
    tokenizer: { text: opts.tokenizerText, vocabSize: tok.vocabSize, spamTrainingEmails: spamTexts.length },
    model: { architecture: 'BertForMaskedLM', parameters: model.numParameters() },
    steps: result.step,
    epochs: (result.step * opts.batchSize) / trainSeqs.length,
    validation: { loss: final['loss'], perplexity: Math.exp(final['loss']!), accuracy: final['accuracy'] },
    fillMask: examples,
    seconds: { train: Math.round(trainSeconds) },
    savedModel: `${ctx.outDir} (config.json, model.safetensors, tokenizer.json): attend fill-mask --model ${ctx.outDir} "text with [MASK]"; attend train spam --init ${ctx.outDir}`,
  };
}

export const mlmBrownRecipe: Recipe<MlmOptions> = {
  name: 'mlm-brown',
  summary: 'BERT masked-LM pretraining on the Brown corpus (15% chosen: 80% [MASK], 10% random, 10% kept); a checkpoint for fill-mask and spam --init',
  chapter: 'self-supervised pretraining',
  defaults: {
    seed: 0, valFraction: 0.05, maxDocs: 0, tokenizerText: 'brown+spam', vocabSize: 8000,
    maxLength: 128, hidden: 128, layers: 2, heads: 4, intermediate: 512, dropout: 0.1, maskProb: 0.15,
    batchSize: 32, steps: 1200, lr: 1e-3, warmup: 0.06, weightDecay: 0.01, clipGradNorm: 1,
    evalEvery: 100, checkpointEvery: 200, evalBatchSize: 64,
  },
  smoke: {
    maxDocs: 6, valFraction: 0.34, tokenizerText: 'brown', vocabSize: 300, maxLength: 32, hidden: 16, layers: 1, heads: 2, intermediate: 32,
    batchSize: 16, steps: 6, evalEvery: 3, checkpointEvery: 0,
  },
  help: {
    seed: 'seed of the document split, the masks, the initial weights and the batch order',
    valFraction: 'fraction of the Brown documents held out for validation',
    maxDocs: 'use only the first N Brown documents (0 = all 500)',
    tokenizerText: "what the WordPiece tokenizer is trained on: 'brown+spam' (Brown's training documents and the spam recipe's training e-mails of this seed) or 'brown'",
    vocabSize: 'WordPiece vocabulary size',
    maxLength: 'tokens per packed sequence ([CLS] and [SEP] included); also the checkpoint\'s max_position_embeddings',
    hidden: 'hidden size',
    layers: 'encoder layers',
    heads: 'attention heads (must divide --hidden)',
    intermediate: 'feed-forward width',
    dropout: 'dropout rate (hidden and attention)',
    maskProb: 'share of the tokens chosen for prediction',
    batchSize: 'sequences per training batch',
    steps: 'training steps (AdamW updates)',
    lr: 'peak learning rate',
    warmup: 'fraction of the steps spent warming the learning rate up, before the cosine decay',
    weightDecay: 'AdamW weight decay',
    clipGradNorm: 'clip the gradient norm to this',
    evalEvery: 'steps between validations (0 = only at the end)',
    checkpointEvery: 'steps between checkpoints (0 = only at the end)',
    evalBatchSize: 'sequences per batch when evaluating',
  },
  run,
};
