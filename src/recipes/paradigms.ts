// Recipe `paradigms`: four ways to read an e-mail (bag of embeddings + MLP, LSTM, CNN, transformer) on one split, tokenizer and budget.

import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { cast, div, mul, relu } from '../autograd/ops/elementwise.js';
import { cat, reshape, transpose } from '../autograd/ops/movement.js';
import { max, sum } from '../autograd/ops/reduce.js';
import { ConfigReader } from '../models/base.js';
import { BertForSequenceClassification, bertConfig } from '../models/bert.js';
import { Dropout } from '../nn/activation.js';
import { Conv1d } from '../nn/conv.js';
import { Embedding } from '../nn/embedding.js';
import { crossEntropy } from '../nn/functional.js';
import { Linear } from '../nn/linear.js';
import { Module } from '../nn/module.js';
import { LSTM } from '../nn/rnn.js';
import { getDefaultDevice } from '../tensor/backend.js';
import { manualSeed } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';
import { STATE_FILE } from '../train/checkpoint.js';
import { lineChart } from '../train/plot.js';
import { Trainer } from '../train/trainer.js';
import { optionError, type Recipe, type RecipeContext } from './recipe.js';
import {
  bertConfigJson, binaryScores, checkEncoderShape, encodeExamples, headWords, labelSubset, loadSpamSplit, predict, SPAM_SPLIT, trainLoader, trainTokenizer,
  validationMetrics, type BinaryScores, type LogitsFn, type TextBatch,
} from './spam-data.js';
import { writeFileAtomic } from '../io/atomic.js';

/** A classifier of padded token batches: scores [B, 2]. */
export abstract class TextClassifier extends Module {
  abstract logits(b: TextBatch): Tensor;
}

/** [B, T] 0/1 mask -> [B, T, 1] float, to weigh [B, T, C] features. */
function featureMask(mask: Tensor): Tensor {
  const [B, T] = mask.shape as [number, number];
  return reshape(cast(mask, 'float32'), [B, T, 1]);
}

/** The MLP paradigm: the mean of the tokens' embeddings (word order thrown away), then a hidden layer. */
export class BagOfEmbeddings extends TextClassifier {
  embedding: Embedding;
  hidden: Linear;
  dropout: Dropout;
  out: Linear;

  constructor(vocabSize: number, embed: number, hidden: number, dropout: number) {
    super();
    this.embedding = new Embedding(vocabSize, embed, { paddingIdx: 0 });
    this.hidden = new Linear(embed, hidden);
    this.dropout = new Dropout(dropout);
    this.out = new Linear(hidden, 2);
  }

  logits(b: TextBatch): Tensor {
    const B = b.inputIds.shape[0]!;
    const e = mul(this.embedding.forward(b.inputIds), featureMask(b.attentionMask)); // [B, T, E], zero at padding
    const mean = div(sum(e, 1), reshape(cast(b.lengths, 'float32'), [B, 1])); // [B, E]
    return this.out.forward(this.dropout.forward(relu(this.hidden.forward(mean))));
  }
}

/** The recurrent paradigm: a bidirectional LSTM read to each e-mail's last token; its two final states classify. */
export class LstmClassifier extends TextClassifier {
  embedding: Embedding;
  lstm: LSTM;
  dropout: Dropout;
  out: Linear;

  constructor(vocabSize: number, embed: number, hidden: number, dropout: number) {
    super();
    this.embedding = new Embedding(vocabSize, embed, { paddingIdx: 0 });
    this.lstm = new LSTM(embed, hidden, { batchFirst: true, bidirectional: true });
    this.dropout = new Dropout(dropout);
    this.out = new Linear(2 * hidden, 2);
  }

  logits(b: TextBatch): Tensor {
    const B = b.inputIds.shape[0]!;
    const { hN } = this.lstm.forward(this.embedding.forward(b.inputIds), null, { lengths: b.lengths }); // hN [2, B, H]
    // [2, B, H] -> [B, 2, H] -> [B, 2H]: forward and backward final states side by side
    const both = reshape(transpose(hN, 0, 1), [B, -1]);
    return this.out.forward(this.dropout.forward(both));
  }
}

/** The convolutional paradigm (Kim, 2014): n-gram filters of widths 3, 4 and 5 over the embeddings, max-pooled over time. */
export class CnnClassifier extends TextClassifier {
  embedding: Embedding;
  convs: Conv1d[];
  dropout: Dropout;
  out: Linear;

  constructor(vocabSize: number, embed: number, filters: number, dropout: number) {
    super();
    this.embedding = new Embedding(vocabSize, embed, { paddingIdx: 0 });
    this.convs = [3, 4, 5].map((k) => new Conv1d(embed, filters, k, { padding: 'same' }));
    this.dropout = new Dropout(dropout);
    this.out = new Linear(3 * filters, 2);
  }

  logits(b: TextBatch): Tensor {
    const [B, T] = b.inputIds.shape as [number, number];
    const x = transpose(this.embedding.forward(b.inputIds), 1, 2); // [B, T, E] -> [B, E, T]
    const mask = reshape(cast(b.attentionMask, 'float32'), [B, 1, T]);
    // After the ReLU every feature is >= 0, so zeroing the padding positions keeps them out of the max.
    const pooled = this.convs.map((c) => max(mul(relu(c.forward(x)), mask), 2)); // 3 x [B, F]
    return this.out.forward(this.dropout.forward(cat(pooled, 1)));
  }
}

/** The attention paradigm: the spam recipe's BERT encoder, classifying from its [CLS] token. */
export class TransformerClassifier extends TextClassifier {
  bert: BertForSequenceClassification;

  constructor(config: Record<string, unknown>) {
    super();
    this.bert = new BertForSequenceClassification(bertConfig(new ConfigReader(config, 'paradigms: config')));
  }

  logits(b: TextBatch): Tensor {
    return this.bert.forward({ inputIds: b.inputIds, attentionMask: b.attentionMask }).logits;
  }
}

export const PARADIGMS = ['mlp', 'lstm', 'cnn', 'transformer'] as const;
export type Paradigm = (typeof PARADIGMS)[number];

export const PARADIGM_NAMES: Record<Paradigm, string> = {
  mlp: 'MLP (mean of embeddings)', lstm: 'LSTM (bidirectional)', cnn: 'CNN (widths 3-5, max-pool)', transformer: 'Transformer (BERT encoder)',
};

export type ParadigmsOptions = {
  seed: number;
  groups: string;
  valFraction: number;
  testFraction: number;
  trainFraction: number;
  models: string;
  vocabSize: number;
  maxLength: number;
  embed: number;
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
  evalBatchSize: number;
};

function parseModels(models: string): Paradigm[] {
  const names = models.split(',').map((m) => m.trim()).filter(Boolean);
  for (const m of names) if (!(PARADIGMS as readonly string[]).includes(m)) throw new Error(`paradigms: --models: unknown model '${m}' (models: ${PARADIGMS.join(', ')})`);
  if (names.length === 0 || new Set(names).size !== names.length) throw new Error(`paradigms: --models must list distinct models of ${PARADIGMS.join(', ')}, got '${models}'`);
  return names as Paradigm[];
}

function check(opts: ParadigmsOptions): Paradigm[] {
  const fail = optionError('paradigms', opts);
  for (const k of ['vocabSize', 'embed', 'batchSize', 'epochs', 'evalBatchSize'] as const) if (!Number.isSafeInteger(opts[k]) || opts[k] < 1) fail(k, 'a positive integer');
  for (const k of ['seed', 'evalEvery'] as const) if (!Number.isSafeInteger(opts[k]) || opts[k] < 0) fail(k, 'a non-negative integer');
  for (const k of ['valFraction', 'testFraction'] as const) if (!(opts[k] > 0 && opts[k] < 1)) fail(k, 'a fraction between 0 and 1');
  if (!(opts.valFraction + opts.testFraction < 1)) throw new Error(`paradigms: --val-fraction + --test-fraction must leave e-mails for training, got ${opts.valFraction} + ${opts.testFraction}`);
  if (!(opts.trainFraction > 0 && opts.trainFraction <= 1)) fail('trainFraction', 'in (0, 1]');
  for (const k of ['lr', 'clipGradNorm'] as const) if (!(opts[k] > 0)) fail(k, 'a positive number');
  if (!(opts.warmup >= 0 && opts.warmup < 1)) fail('warmup', 'a fraction of the steps in [0, 1)');
  if (!(opts.weightDecay >= 0)) fail('weightDecay', 'a non-negative number');
  if (opts.vocabSize < 10) fail('vocabSize', 'at least 10 (the 5 special tokens and some pieces)');
  checkEncoderShape(opts, 'paradigms');
  return parseModels(opts.models);
}

function build(p: Paradigm, vocabSize: number, o: ParadigmsOptions): TextClassifier {
  switch (p) {
    case 'mlp': return new BagOfEmbeddings(vocabSize, o.embed, o.hidden, o.dropout);
    case 'lstm': return new LstmClassifier(vocabSize, o.embed, o.hidden, o.dropout);
    case 'cnn': return new CnnClassifier(vocabSize, o.embed, o.hidden, o.dropout);
    case 'transformer': return new TransformerClassifier(bertConfigJson(vocabSize, o, 'BertForSequenceClassification'));
  }
}

/** One row of the table. */
export interface ParadigmRow {
  model: Paradigm;
  name: string;
  parameters: number;
  steps: number;
  trainSeconds: number;
  /** true when the time covers only the part after a --resume. */
  resumed: boolean;
  validation: { accuracy: number; f1: number };
  test: BinaryScores;
  /** Validation accuracy at each evaluation, for the picture. */
  curve: [number, number][];
}

const pct = (x: number): string => `${(100 * x).toFixed(2)}%`;

export function formatTable(rows: readonly ParadigmRow[]): string {
  const head = ['model', 'parameters', 'train time', 'test accuracy', 'test F1 (spam)', 'precision', 'recall'];
  const body = rows.map((r) => [
    r.name, r.parameters.toLocaleString('en-US'), `${Math.round(r.trainSeconds)} s${r.resumed ? ' (resumed)' : ''}`,
    pct(r.test.accuracy), pct(r.test.f1), pct(r.test.precision), pct(r.test.recall),
  ]);
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [line(head), line(head.map(() => '---')), ...body.map(line)].join('\n');
}

const exists = (p: string): Promise<boolean> => stat(p).then(() => true, () => false);

async function run(opts: ParadigmsOptions, ctx: RecipeContext): Promise<Record<string, unknown>> {
  const models = check(opts);
  // Refuse before anything is written: a model's folder from an earlier run needs --resume (or another --out).
  if (!ctx.resume) {
    for (const m of models) {
      if (await exists(join(ctx.outDir, m, STATE_FILE))) throw new Error(`paradigms: ${join(ctx.outDir, m)} already holds a checkpoint; pass --resume to continue it, or choose another --out`);
    }
  }
  const device = ctx.device ?? getDefaultDevice();
  const data = await loadSpamSplit('paradigms', opts.groups, opts);
  const tok = trainTokenizer(data.train.map((x) => headWords(x.text, opts.maxLength)), opts.vocabSize, opts.maxLength);
  const train = encodeExamples(tok, labelSubset(data.train, opts.trainFraction, opts.seed), opts.maxLength);
  const val = encodeExamples(tok, data.val, opts.maxLength);
  const test = encodeExamples(tok, data.test, opts.maxLength);
  ctx.log(`paradigms: ${data.emails} e-mails: train ${train.length} of ${data.train.length}, validation ${val.length}, test ${test.length}; WordPiece ${tok.vocabSize} tokens, at most ${opts.maxLength} per e-mail; ${opts.epochs} epochs of batches of ${opts.batchSize} for each model`);

  const logitsOf: LogitsFn<TextClassifier> = (m, b) => m.logits(b);
  const rows: ParadigmRow[] = [];
  for (const p of models) {
    const dir = join(ctx.outDir, p);
    const done = join(dir, 'result.json');
    if (ctx.resume && (await exists(done))) {
      rows.push(JSON.parse(await readFile(done, 'utf8')) as ParadigmRow);
      ctx.log(`paradigms: ${p}: finished earlier (${done})`);
      continue;
    }
    // Every model starts from the same seed, so that the comparison does not hinge on the order they train in.
    manualSeed(opts.seed);
    const model = build(p, tok.vocabSize, opts);
    ctx.log(`paradigms: ${PARADIGM_NAMES[p]}: ${model.numParameters().toLocaleString('en-US')} parameters`);
    const loader = trainLoader(train, opts.batchSize, opts.seed, device);
    const totalSteps = loader.length * opts.epochs;
    const resumed = ctx.resume && (await exists(join(dir, STATE_FILE)));
    const trainer = new Trainer({
      model, device, data: loader, epochs: opts.epochs,
      loss: (m, b) => ({ loss: crossEntropy(m.logits(b), b.labels), tokens: b.tokens }),
      evaluate: (m) => validationMetrics(m, logitsOf, val, opts.evalBatchSize, device),
      optimizer: { lr: opts.lr, weightDecay: opts.weightDecay },
      schedule: { kind: 'cosine', warmupSteps: Math.round(opts.warmup * totalSteps) },
      clipGradNorm: opts.clipGradNorm,
      evalEvery: opts.evalEvery || undefined,
      logEvery: Math.min(10, totalSteps),
      outDir: dir, resume: resumed, seed: opts.seed, skipNonfinite: ctx.skipNonfinite,
    });
    const t0 = performance.now();
    const result = await trainer.train();
    const trainSeconds = (performance.now() - t0) / 1000;
    model.eval();
    const { predictions } = await predict(model, logitsOf, test, opts.evalBatchSize, device);
    const scores = binaryScores(predictions, test.map((e) => e.label));
    const evals = result.metrics.filter((r) => r.kind === 'eval');
    const last = evals[evals.length - 1]!;
    const row: ParadigmRow = {
      model: p, name: PARADIGM_NAMES[p], parameters: model.numParameters(), steps: result.step, trainSeconds, resumed,
      validation: { accuracy: last['accuracy'] as number, f1: last['f1'] as number }, test: scores,
      curve: evals.map((r) => [r.step, r['accuracy'] as number]),
    };
    await writeFileAtomic(done, `${JSON.stringify(row, null, 2)}\n`);
    rows.push(row);
    ctx.log(`paradigms: ${PARADIGM_NAMES[p]}: test accuracy ${pct(scores.accuracy)}, F1 ${pct(scores.f1)}, ${Math.round(trainSeconds)} s`);
  }

  const table = formatTable(rows);
  ctx.log(`\n${table}\n`);
  const chart = lineChart(rows.map((r) => ({ name: r.name, points: r.curve })), { title: 'paradigms: validation accuracy (same split, tokenizer and budget)', xLabel: 'step', yLabel: 'accuracy' });
  await writeFileAtomic(join(ctx.outDir, 'paradigms.svg'), chart);
  return {
    data: { emails: data.emails, train: data.train.length, labelled: train.length, validation: val.length, test: test.length, vocabSize: tok.vocabSize, maxLength: opts.maxLength },
    budget: { epochs: opts.epochs, batchSize: opts.batchSize, steps: rows[0]?.steps, lr: opts.lr },
    table,
    models: rows.map(({ curve: _curve, ...r }) => r),
  };
}

export const paradigmsRecipe: Recipe<ParadigmsOptions> = {
  name: 'paradigms',
  summary: 'an MLP, an LSTM, a CNN and a transformer on the same spam split, tokenizer and budget: one table of accuracy, F1, size and time',
  chapter: 'paradigms of deep learning research',
  defaults: {
    seed: 0, groups: 'all', ...SPAM_SPLIT, trainFraction: 1, models: PARADIGMS.join(','), vocabSize: 8000, maxLength: 128,
    embed: 128, hidden: 128, layers: 2, heads: 4, intermediate: 512, dropout: 0.1,
    batchSize: 32, epochs: 3, lr: 1e-3, warmup: 0.1, weightDecay: 0.01, clipGradNorm: 1, evalEvery: 50, evalBatchSize: 64,
  },
  smoke: {
    groups: 'easy-ham-2,spam-1', trainFraction: 0.1, vocabSize: 300, maxLength: 24, embed: 16, hidden: 16, layers: 1, heads: 2, intermediate: 32,
    batchSize: 64, epochs: 1, evalEvery: 0,
  },
  help: {
    seed: 'seed of the split, the initial weights and the batch order (the same for every model)',
    groups: "corpus groups: 'all', or a comma-separated list of easy-ham-1, easy-ham-2, hard-ham-1, spam-1, spam-2",
    valFraction: 'fraction of each class held out for validation',
    testFraction: 'fraction of each class held out for the test',
    trainFraction: 'train on the labels of only this fraction of the training split (a seeded subset of each class), in (0, 1]',
    models: `which models to train, comma-separated, of ${PARADIGMS.join(', ')}`,
    vocabSize: 'WordPiece vocabulary size (the tokenizer is trained on the training split)',
    maxLength: 'tokens per e-mail ([CLS] and [SEP] included); the rest is cut',
    embed: 'token embedding size of the MLP, LSTM and CNN',
    hidden: 'MLP hidden units, LSTM units per direction, CNN filters per width, and the transformer\'s hidden size',
    layers: 'transformer layers',
    heads: 'transformer attention heads (must divide --hidden)',
    intermediate: 'transformer feed-forward width',
    dropout: 'dropout rate',
    batchSize: 'e-mails per training batch',
    epochs: 'passes over the training e-mails (every model gets the same)',
    lr: 'peak learning rate (AdamW), the same for every model',
    warmup: 'fraction of the steps spent warming the learning rate up, before the cosine decay',
    weightDecay: 'AdamW weight decay',
    clipGradNorm: 'clip the gradient norm to this',
    evalEvery: 'steps between validations (0 = only at the end)',
    evalBatchSize: 'e-mails per batch when evaluating',
  },
  run,
};
