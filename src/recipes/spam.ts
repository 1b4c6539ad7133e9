// Recipe `spam`: a small BERT encoder trained from scratch (or from an mlm-brown checkpoint) to tell spam from ham in SpamAssassin.

import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { loadCheckpoint, readConfig } from '../io/hf.js';
import { ConfigReader } from '../models/base.js';
import { BertForSequenceClassification, bertConfig } from '../models/bert.js';
import { crossEntropy } from '../nn/functional.js';
import { getDefaultDevice } from '../tensor/backend.js';
import { manualSeed } from '../tensor/random.js';
import { fmtShape } from '../tensor/shape.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { lineChart } from '../train/plot.js';
import { Trainer, type TrainResult } from '../train/trainer.js';
import { optionError, type Recipe, type RecipeContext } from './recipe.js';
import {
  bertConfigJson, binaryScores, checkEncoderShape, encodeExamples, encoderShape, headWords, labelSubset, loadSpamSplit, predict, readTokenizer, saveHfFolder,
  SPAM, SPAM_SPLIT, trainLoader, trainTokenizer, validationMetrics, type EncoderShape, type LogitsFn,
} from './spam-data.js';
import { writeFileAtomic } from '../io/atomic.js';

export type SpamOptions = {
  seed: number;
  groups: string;
  valFraction: number;
  testFraction: number;
  trainFraction: number;
  init: string;
  tokenizer: string;
  vocabSize: number;
  maxLength: number;
  hidden: number;
  layers: number;
  heads: number;
  intermediate: number;
  dropout: number;
  batchSize: number;
  epochs: number;
  lr: number;
  warmup: number;
  weightDecay: number;
  clipGradNorm: number;
  evalEvery: number;
  checkpointEvery: number;
  evalBatchSize: number;
};

export const TARGET_ACCURACY = 0.97;

/** The options' own checks (before any file is read or written). */
export function checkSpamOptions(opts: SpamOptions): void {
  const fail = optionError('spam', opts);
  for (const k of ['vocabSize', 'batchSize', 'epochs', 'evalBatchSize'] as const) if (!Number.isSafeInteger(opts[k]) || opts[k] < 1) fail(k, 'a positive integer');
  for (const k of ['seed', 'evalEvery', 'checkpointEvery'] as const) if (!Number.isSafeInteger(opts[k]) || opts[k] < 0) fail(k, 'a non-negative integer');
  for (const k of ['valFraction', 'testFraction'] as const) if (!(opts[k] > 0 && opts[k] < 1)) fail(k, 'a fraction between 0 and 1');
  if (!(opts.valFraction + opts.testFraction < 1)) throw new Error(`spam: --val-fraction + --test-fraction must leave e-mails for training, got ${opts.valFraction} + ${opts.testFraction}`);
  if (!(opts.trainFraction > 0 && opts.trainFraction <= 1)) fail('trainFraction', 'in (0, 1]');
  for (const k of ['lr', 'clipGradNorm'] as const) if (!(opts[k] > 0)) fail(k, 'a positive number');
  if (!(opts.warmup >= 0 && opts.warmup < 1)) fail('warmup', 'a fraction of the steps in [0, 1)');
  if (!(opts.weightDecay >= 0)) fail('weightDecay', 'a non-negative number');
  if (opts.vocabSize < 10) fail('vocabSize', 'at least 10 (the 5 special tokens and some pieces)');
  checkEncoderShape(encoderShape(opts), 'spam');
  if (opts.init !== '' && opts.tokenizer !== '') throw new Error('spam: give --init or --tokenizer, not both (--init uses the tokenizer of its checkpoint)');
}

/** The config.json fields that fix the encoder's weight shapes, with the options that set them. */
const SHAPE_FIELDS: [string, string][] = [
  ['vocab_size', 'its tokenizer'], ['hidden_size', '--hidden'], ['num_hidden_layers', '--layers'], ['num_attention_heads', '--heads'],
  ['intermediate_size', '--intermediate'], ['max_position_embeddings', '--max-length'],
];

/** An --init folder's tokenizer, after checking that it is a BERT checkpoint whose config.json gives this run's encoder. */
export async function readInit(dir: string, shape: EncoderShape): Promise<Tokenizer> {
  if (!(await stat(dir).catch(() => null))?.isDirectory()) throw new Error(`spam: --init ${dir}: no such folder (train one with: attend train mlm-brown --out ${dir})`);
  const { path, json } = await readConfig(dir).catch((e: unknown) => {
    throw new Error(`spam: --init ${dir} is not a Hugging Face model folder: ${e instanceof Error ? e.message : String(e)}`);
  });
  if (json['model_type'] !== 'bert') throw new Error(`spam: --init ${path}: model_type is ${JSON.stringify(json['model_type'])}, not a BERT checkpoint`);
  const arch = json['architectures'];
  if (Array.isArray(arch) && !arch.includes('BertForMaskedLM')) {
    throw new Error(`spam: --init ${path} is a ${arch.join(', ')} checkpoint; --init takes a masked-LM (BertForMaskedLM) folder such as mlm-brown writes`);
  }
  const tok = await readTokenizer(dir, shape.maxLength, 'spam', '--init');
  const want = bertConfigJson(tok.vocabSize, shape, 'BertForMaskedLM');
  for (const [field, option] of SHAPE_FIELDS) {
    if (json[field] !== want[field]) {
      throw new Error(`spam: --init ${path} has ${field} ${JSON.stringify(json[field])}, this run builds ${want[field]} (from ${option}); give the model options of the pretraining run`);
    }
  }
  return tok;
}

/**
 * Copies the encoder weights (embeddings and layers) of a masked-LM checkpoint into the classifier, every name and
 * shape checked first; the pooler and the classifier keep their fresh initialisation, as transformers does.
 */
export async function loadEncoderWeights(model: BertForSequenceClassification, dir: string): Promise<number> {
  const { tensors, source } = await loadCheckpoint(dir);
  try {
    const own = model.stateDict();
    const keys = Object.keys(own).filter((k) => k.startsWith('bert.') && !k.startsWith('bert.pooler.'));
    for (const k of keys) {
      const t = tensors[k];
      if (!t) throw new Error(`spam: --init ${source} has no weight ${k}: not a BERT encoder checkpoint`);
      const target = own[k]!;
      if (t.shape.length !== target.shape.length || t.shape.some((d, i) => d !== target.shape[i])) {
        throw new Error(`spam: --init ${source}: weight ${k} has shape ${fmtShape(t.shape)}, this model's is ${fmtShape(target.shape)}`);
      }
    }
    model.loadStateDict(Object.fromEntries(keys.map((k) => [k, tensors[k]!])), { strict: false });
    return keys.length;
  } finally {
    for (const t of Object.values(tensors)) t.dispose();
  }
}

const logitsOf: LogitsFn<BertForSequenceClassification> = (m, b) => m.forward({ inputIds: b.inputIds, attentionMask: b.attentionMask }).logits;

/** validation.svg: validation accuracy and F1 against the step. */
export function validationChart(metrics: TrainResult['metrics'], title: string): string | null {
  const evals = metrics.filter((r) => r.kind === 'eval');
  const curve = (k: string): [number, number][] => evals.flatMap((r) => (typeof r[k] === 'number' ? [[r.step, r[k]] as [number, number]] : []));
  if (evals.length === 0) return null;
  return lineChart([{ name: 'validation accuracy', points: curve('accuracy') }, { name: 'validation F1 (spam)', points: curve('f1') }], { title, xLabel: 'step', yLabel: 'score' });
}

async function run(opts: SpamOptions, ctx: RecipeContext): Promise<Record<string, unknown>> {
  checkSpamOptions(opts);
  const device = ctx.device ?? getDefaultDevice();
  const shape = encoderShape(opts);
  const initTok = opts.init ? await readInit(opts.init, shape) : null;
  const fileTok = opts.tokenizer ? await readTokenizer(opts.tokenizer, opts.maxLength, 'spam', '--tokenizer') : null;
  const data = await loadSpamSplit('spam', opts.groups, opts);
  const labeled = labelSubset(data.train, opts.trainFraction, opts.seed);
  // The tokenizer reads the whole training split (only the labels are limited by --train-fraction), each e-mail as
  // far as the model will read it: the tails of long e-mails would fill the vocabulary with pieces never seen.
  const tok = initTok ?? fileTok ?? trainTokenizer(data.train.map((x) => headWords(x.text, opts.maxLength)), opts.vocabSize, opts.maxLength);
  const tokenizerSource = opts.init ? `--init ${opts.init}` : opts.tokenizer ? `--tokenizer ${opts.tokenizer}` : `WordPiece trained on the ${data.train.length} training e-mails`;
  const spamShare = (xs: readonly { label: number }[]) => xs.filter((x) => x.label === SPAM).length;
  ctx.log(`spam: ${data.emails} e-mails: train ${data.train.length} (${labeled.length} labelled, ${spamShare(labeled)} spam), validation ${data.val.length}, test ${data.test.length} (${spamShare(data.test)} spam); tokenizer: ${tokenizerSource}, ${tok.vocabSize} tokens`);

  const t0 = performance.now();
  const train = encodeExamples(tok, labeled, opts.maxLength);
  const val = encodeExamples(tok, data.val, opts.maxLength);
  const test = encodeExamples(tok, data.test, opts.maxLength);
  const encodeSeconds = (performance.now() - t0) / 1000;
  const meanTokens = train.reduce((n, e) => n + e.ids.length, 0) / train.length;

  const config = bertConfigJson(tok.vocabSize, shape, 'BertForSequenceClassification');
  // Weights are drawn before the Trainer seeds the global generator, so seed here: the same model every time.
  manualSeed(opts.seed);
  const model = new BertForSequenceClassification(bertConfig(new ConfigReader(config, 'spam: config')));
  const initialised = opts.init ? await loadEncoderWeights(model, opts.init) : 0;
  ctx.log(`spam: BERT ${opts.layers} layers, hidden ${opts.hidden}, ${opts.heads} heads, max length ${opts.maxLength}: ${model.numParameters().toLocaleString('en-US')} parameters${opts.init ? ` (${initialised} encoder tensors from ${opts.init})` : ', from scratch'}, on ${device}; ${meanTokens.toFixed(0)} tokens per e-mail on average`);

  const loader = trainLoader(train, opts.batchSize, opts.seed, device);
  const totalSteps = loader.length * opts.epochs;
  const trainer = new Trainer({
    model, device, data: loader, epochs: opts.epochs,
    loss: (m, b) => ({ loss: crossEntropy(logitsOf(m, b), b.labels), tokens: b.tokens }),
    evaluate: (m) => validationMetrics(m, logitsOf, val, opts.evalBatchSize, device),
    optimizer: { lr: opts.lr, weightDecay: opts.weightDecay },
    schedule: { kind: 'cosine', warmupSteps: Math.round(opts.warmup * totalSteps) },
    clipGradNorm: opts.clipGradNorm,
    evalEvery: opts.evalEvery || undefined,
    checkpointEvery: opts.checkpointEvery || undefined,
    logEvery: Math.min(10, totalSteps),
    outDir: ctx.outDir, resume: ctx.resume, seed: opts.seed, skipNonfinite: ctx.skipNonfinite,
  });
  const trainStart = performance.now();
  const result = await trainer.train();
  const trainSeconds = (performance.now() - trainStart) / 1000;

  model.eval();
  const evalStart = performance.now();
  const { predictions } = await predict(model, logitsOf, test, opts.evalBatchSize, device);
  const scores = binaryScores(predictions, test.map((e) => e.label));
  const testSeconds = (performance.now() - evalStart) / 1000;
  ctx.log(`spam: test ${scores.examples} e-mails: accuracy ${(100 * scores.accuracy).toFixed(2)}%, precision ${(100 * scores.precision).toFixed(2)}%, recall ${(100 * scores.recall).toFixed(2)}%, F1 ${(100 * scores.f1).toFixed(2)}%`);

  await saveHfFolder(ctx.outDir, model, config, tok, opts.maxLength);
  const chart = validationChart(result.metrics, `spam: validation (${opts.init ? 'from mlm-brown' : 'from scratch'}, ${labeled.length} labelled e-mails)`);
  if (chart) await writeFileAtomic(join(ctx.outDir, 'validation.svg'), chart);
  const lastEval = [...result.metrics].reverse().find((r) => r.kind === 'eval');
  return {
    data: {
      emails: data.emails, train: data.train.length, labelled: labeled.length, labelledSpam: spamShare(labeled),
      validation: data.val.length, test: data.test.length, testSpam: spamShare(data.test), meanTrainTokens: meanTokens,
    },
    tokenizer: { source: tokenizerSource, vocabSize: tok.vocabSize },
    model: { architecture: 'BertForSequenceClassification', parameters: model.numParameters(), init: opts.init || null, initialisedTensors: initialised },
    steps: result.step,
    validation: lastEval ? { step: lastEval.step, loss: lastEval['loss'], accuracy: lastEval['accuracy'], f1: lastEval['f1'] } : null,
    test: scores,
    target: { accuracy: TARGET_ACCURACY, met: scores.accuracy >= TARGET_ACCURACY },
    seconds: { encode: Math.round(encodeSeconds), train: Math.round(trainSeconds), test: Math.round(testSeconds) },
    savedModel: `${ctx.outDir} (config.json, model.safetensors, tokenizer.json): attend classify --model ${ctx.outDir} "text"`,
  };
}

export const spamRecipe: Recipe<SpamOptions> = {
  name: 'spam',
  summary: 'spam or ham on SpamAssassin: a small BERT encoder from scratch (or --init from mlm-brown); test accuracy, precision, recall, F1',
  chapter: 'sequence modelling with a transformer encoder',
  defaults: {
    seed: 0, groups: 'all', ...SPAM_SPLIT, trainFraction: 1, init: '', tokenizer: '', vocabSize: 8000,
    maxLength: 128, hidden: 128, layers: 2, heads: 4, intermediate: 512, dropout: 0.1,
    batchSize: 32, epochs: 4, lr: 1e-3, warmup: 0.1, weightDecay: 0.01, clipGradNorm: 1,
    evalEvery: 50, checkpointEvery: 100, evalBatchSize: 64,
  },
  smoke: {
    groups: 'easy-ham-2,spam-1', trainFraction: 0.1, vocabSize: 300, maxLength: 32, hidden: 16, layers: 1, heads: 2, intermediate: 32,
    batchSize: 16, epochs: 1, evalEvery: 3, checkpointEvery: 0, evalBatchSize: 64,
  },
  help: {
    seed: 'seed of the split, the label subset, the initial weights and the batch order',
    groups: "corpus groups: 'all', or a comma-separated list of easy-ham-1, easy-ham-2, hard-ham-1, spam-1, spam-2",
    valFraction: 'fraction of each class held out for validation',
    testFraction: 'fraction of each class held out for the test',
    trainFraction: 'use the labels of only this fraction of the training split (a seeded subset of each class), in (0, 1]',
    init: 'start from this masked-LM folder (written by mlm-brown): its encoder weights and tokenizer.json',
    tokenizer: 'use this tokenizer.json (or the folder holding it) instead of training one on the training split',
    vocabSize: 'WordPiece vocabulary size when training the tokenizer',
    maxLength: 'tokens per e-mail ([CLS] and [SEP] included); the rest is cut',
    hidden: 'hidden size',
    layers: 'encoder layers',
    heads: 'attention heads (must divide --hidden)',
    intermediate: 'feed-forward width',
    dropout: 'dropout rate (hidden and attention)',
    batchSize: 'e-mails per training batch',
    epochs: 'passes over the labelled training e-mails',
    lr: 'peak learning rate (AdamW)',
    warmup: 'fraction of the steps spent warming the learning rate up, before the cosine decay',
    weightDecay: 'AdamW weight decay',
    clipGradNorm: 'clip the gradient norm to this',
    evalEvery: 'steps between validations (0 = only at the end)',
    checkpointEvery: 'steps between checkpoints (0 = only at the end)',
    evalBatchSize: 'e-mails per batch when evaluating',
  },
  run,
};
