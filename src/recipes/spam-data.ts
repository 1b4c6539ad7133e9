// What the SpamAssassin recipes share: the seeded stratified split, label subsets, the WordPiece tokenizer, batches, scoring and saving Hugging Face folders.

import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { noGrad } from '../autograd/engine.js';
import { argmax } from '../autograd/ops/reduce.js';
import { DataLoader, padSequences } from '../data/loader.js';
import { loadSpamAssassin, SPAM_ASSASSIN_GROUPS, type SpamEmail, type SpamGroup } from '../data/spam.js';
import { splitDataset } from '../data/split.js';
import { readJsonFile } from '../io/hf.js';
import { saveSafetensors } from '../io/safetensors.js';
import { crossEntropy } from '../nn/functional.js';
import type { Module } from '../nn/module.js';
import { tensor } from '../tensor/create.js';
import { Generator } from '../tensor/random.js';
import { tidy } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { hf } from '../tokenizers/hf-lib.js';
import { Tokenizer } from '../tokenizers/tokenizer.js';
import { trainWordPiece } from '../tokenizers/train-wordpiece.js';
import { writeFileAtomic } from '../io/atomic.js';

/** Class names by id, as config.json's id2label: spam is the positive class of precision, recall and F1. */
export const SPAM_LABELS = ['ham', 'spam'] as const;
export const HAM = 0, SPAM = 1;

export interface LabeledText {
  text: string;
  /** HAM (0) or SPAM (1). */
  label: number;
}

export interface SpamSplit {
  train: LabeledText[];
  val: LabeledText[];
  test: LabeledText[];
}

/** The spam recipe's default held-out fractions: mlm-brown trains its tokenizer on the training e-mails of this split. */
export const SPAM_SPLIT = { valFraction: 0.1, testFraction: 0.1 } as const;

export interface SpamSplitOptions {
  seed: number;
  valFraction: number;
  testFraction: number;
}

/** The whole corpus, or a comma-separated list of its groups (e.g. 'hard-ham-1,spam-1' for a quick run). */
export function parseGroups(groups: string, recipe: string): SpamGroup[] | undefined {
  if (groups === 'all') return undefined;
  const names = groups.split(',').map((g) => g.trim()).filter(Boolean);
  const known = Object.keys(SPAM_ASSASSIN_GROUPS);
  for (const g of names) if (!known.includes(g)) throw new Error(`${recipe}: --groups: unknown group '${g}' (groups: all, or a comma-separated list of ${known.join(', ')})`);
  if (names.length === 0) throw new Error(`${recipe}: --groups must be 'all' or a comma-separated list of ${known.join(', ')}`);
  return names as SpamGroup[];
}

/**
 * Splits the e-mails into train / validation / test, each class on its own (stratified), with splitDataset's seeded
 * shuffle: the same split on every machine, and each split keeps the corpus' 31% of spam.
 */
export function splitSpam(mails: readonly SpamEmail[], opts: SpamSplitOptions): SpamSplit {
  const out: SpamSplit = { train: [], val: [], test: [] };
  const fractions = [1 - opts.valFraction - opts.testFraction, opts.valFraction, opts.testFraction];
  for (const label of [HAM, SPAM]) {
    const items = mails.filter((m) => (m.label === 'spam' ? SPAM : HAM) === label).map((m) => ({ text: m.text, label }));
    if (items.length === 0) continue;
    const [train, val, test] = splitDataset(items, { fractions, seed: opts.seed });
    out.train.push(...train!);
    out.val.push(...val!);
    out.test.push(...test!);
  }
  return out;
}

/** Loads the corpus (or some groups of it) and splits it; an error when a split has no e-mail of either class. */
export async function loadSpamSplit(recipe: string, groups: string, opts: SpamSplitOptions): Promise<SpamSplit & { emails: number }> {
  const mails = await loadSpamAssassin({ groups: parseGroups(groups, recipe) });
  const split = splitSpam(mails, opts);
  for (const [name, part] of Object.entries(split) as [string, LabeledText[]][]) {
    const spam = part.filter((x) => x.label === SPAM).length;
    if (spam === 0 || spam === part.length) {
      throw new Error(`${recipe}: the ${name} split of ${mails.length} e-mails (--groups ${groups}) has ${part.length} e-mails, ${spam} of them spam: every split needs both classes; use more groups or larger fractions`);
    }
  }
  return { ...split, emails: mails.length };
}

/**
 * A seeded subset of about `fraction` of each class (at least one e-mail of each), in the original order. Subsets of
 * one seed are nested: the e-mails of fraction 0.1 are among those of 0.2.
 */
export function labelSubset(items: readonly LabeledText[], fraction: number, seed: number): LabeledText[] {
  if (fraction === 1) return [...items];
  const keep = new Set<number>();
  for (const label of [HAM, SPAM]) {
    const idx = items.flatMap((x, i) => (x.label === label ? [i] : []));
    if (idx.length === 0) continue;
    // Another stream than the split's, so that the subset is not the same positions of each class.
    const perm = new Generator(seed + 1000 + label).permutation(idx.length);
    const n = Math.max(1, Math.round(idx.length * fraction));
    for (const p of perm.subarray(0, n)) keep.add(idx[p]!);
  }
  return items.filter((_, i) => keep.has(i));
}

// ---- the tokenizer ----

/** BERT's special tokens, ids 0 to 4 ([PAD] = 0). */
export const SPECIAL_TOKENS = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'] as const;

/** A lowercasing WordPiece tokenizer trained on `texts` (BERT's normaliser, pre-tokenizer and [CLS] A [SEP] template). */
export function trainTokenizer(texts: Iterable<string>, vocabSize: number, maxLength: number): Tokenizer {
  const json = trainWordPiece(texts, { vocabSize, lowercase: true, specialTokens: SPECIAL_TOKENS });
  return Tokenizer.fromJSON(json, tokenizerConfig(maxLength));
}

/** tokenizer_config.json for a saved folder: the lengths the model was trained with, and which token plays which role. */
export function tokenizerConfig(maxLength: number): Record<string, unknown> {
  return {
    tokenizer_class: 'BertTokenizerFast', do_lower_case: true, model_max_length: maxLength,
    unk_token: '[UNK]', sep_token: '[SEP]', pad_token: '[PAD]', cls_token: '[CLS]', mask_token: '[MASK]',
  };
}

/** Reads a tokenizer.json, given as the file or as the folder that holds it. */
export async function readTokenizer(path: string, maxLength: number, recipe: string, option: string): Promise<Tokenizer> {
  const info = await stat(path).catch(() => null);
  if (!info) throw new Error(`${recipe}: ${option} ${path}: no such file or folder`);
  const file = info.isDirectory() ? join(path, 'tokenizer.json') : path;
  if (!(await stat(file).catch(() => null))?.isFile()) throw new Error(`${recipe}: ${option} ${path}: the folder has no tokenizer.json`);
  const tok = Tokenizer.fromJSON(await readJsonFile(file), tokenizerConfig(maxLength), file);
  for (const t of SPECIAL_TOKENS) {
    if (tok.tokenToId(t) === undefined) throw new Error(`${recipe}: ${option} ${file} is not a BERT WordPiece tokenizer: it has no ${t} token`);
  }
  // Batches are padded with id 0, and the model's config says so.
  if (tok.tokenToId('[PAD]') !== 0) throw new Error(`${recipe}: ${option} ${file}: [PAD] must be token 0, it is ${tok.tokenToId('[PAD]')}`);
  return tok;
}

/**
 * The text cut after its first 2 * maxLength words. A word gives at least one token (unless it is nothing but control
 * characters, which the normaliser drops), so the first maxLength tokens are the whole text's, and the tokenizer does
 * not read the rest of a 190 kB e-mail.
 */
export function headWords(text: string, maxLength: number): string {
  const words = /\S+/g;
  let end = 0;
  for (let n = 0; n < 2 * maxLength; n++) {
    if (words.exec(text) === null) return text;
    end = words.lastIndex;
  }
  return text.slice(0, end);
}

/** An encoded e-mail: [CLS] tokens [SEP], at most maxLength ids. */
export interface Example {
  ids: number[];
  label: number;
}

/**
 * A function giving a text's ids without special tokens, as `tok.encode(text, { addSpecialTokens: false }).ids`, but
 * without the character offsets that Tokenizer.encode also works out: that makes encoding a corpus about twice as fast.
 */
export function pieceIds(tok: Tokenizer): (text: string) => number[] {
  const lib = new hf.Tokenizer(tok.toJSON(), {});
  return (text) => lib.encode(text, { add_special_tokens: false }).ids;
}

/** A text's ids as `tok.encode(text, { truncation: true, maxLength })` gives them for a BERT tokenizer: [CLS], the first maxLength - 2 pieces, [SEP]. */
export function bertIds(tok: Tokenizer, maxLength: number): (text: string) => number[] {
  const pieces = pieceIds(tok);
  const cls = tok.clsTokenId, sep = tok.sepTokenId;
  if (cls === null || sep === null) throw new Error('bertIds: the tokenizer has no [CLS] or [SEP] token');
  return (text) => [cls, ...pieces(text).slice(0, maxLength - 2), sep];
}

/** E-mails as the model reads them: [CLS], the first tokens, [SEP]. */
export function encodeExamples(tok: Tokenizer, items: readonly LabeledText[], maxLength: number): Example[] {
  const ids = bertIds(tok, maxLength);
  return items.map((x) => ({ ids: ids(headWords(x.text, maxLength)), label: x.label }));
}

// ---- batches ----

export interface TextBatch {
  /** [B, T] int32, padded with [PAD] = 0. */
  inputIds: Tensor;
  /** [B, T] int32: 1 at tokens, 0 at padding. */
  attentionMask: Tensor;
  /** [B] int32: the tokens of each row. */
  lengths: Tensor;
  /** [B] int32 class ids. */
  labels: Tensor;
  /** Tokens in the batch, padding left out (for tokens per second). */
  tokens: number;
}

/** Pads examples into one batch (on `device`). */
export function collate(examples: readonly Example[], device: string): TextBatch {
  const { inputIds, attentionMask } = padSequences(examples.map((e) => e.ids), { padId: 0, device });
  return {
    inputIds, attentionMask,
    lengths: tensor(Int32Array.from(examples, (e) => e.ids.length), { dtype: 'int32', device }),
    labels: tensor(Int32Array.from(examples, (e) => e.label), { dtype: 'int32', device }),
    tokens: examples.reduce((n, e) => n + e.ids.length, 0),
  };
}

/** Shuffled training batches, a new seeded order each epoch (resumable: a pure function of the epoch). */
export function trainLoader(examples: readonly Example[], batchSize: number, seed: number, device: string): DataLoader<Example, TextBatch> {
  return new DataLoader(examples, { batchSize, shuffle: true, seed, collate: (items) => collate(items, device) });
}

// ---- scoring ----

export interface BinaryScores {
  examples: number;
  accuracy: number;
  /** Of the e-mails called spam, the share that is spam (0 when none is called spam). */
  precision: number;
  /** Of the spam, the share called spam. */
  recall: number;
  f1: number;
  confusion: { truePositives: number; falsePositives: number; trueNegatives: number; falseNegatives: number };
}

/** Accuracy, and precision, recall and F1 of the spam class. */
export function binaryScores(predictions: readonly number[], labels: readonly number[]): BinaryScores {
  if (predictions.length !== labels.length) throw new Error(`binaryScores: ${predictions.length} predictions for ${labels.length} labels`);
  if (labels.length === 0) throw new Error('binaryScores: nothing to score');
  let tp = 0, fp = 0, tn = 0, fn = 0;
  predictions.forEach((p, i) => {
    const spam = labels[i] === SPAM;
    if (p === SPAM) spam ? tp++ : fp++;
    else spam ? fn++ : tn++;
  });
  const precision = tp + fp === 0 ? 0 : tp / (tp + fp);
  const recall = tp + fn === 0 ? 0 : tp / (tp + fn);
  return {
    examples: labels.length, accuracy: (tp + tn) / labels.length, precision, recall,
    f1: precision + recall === 0 ? 0 : (2 * precision * recall) / (precision + recall),
    confusion: { truePositives: tp, falsePositives: fp, trueNegatives: tn, falseNegatives: fn },
  };
}

/** A classifier's scores [B, 2] for a batch. */
export type LogitsFn<M extends Module> = (model: M, batch: TextBatch) => Tensor;

/** Predictions and mean cross-entropy of a model on examples, in batches, without gradients. */
export async function predict<M extends Module>(model: M, logitsOf: LogitsFn<M>, examples: readonly Example[], batchSize: number, device: string): Promise<{ predictions: number[]; loss: number }> {
  const predictions: number[] = [];
  let total = 0;
  for (let at = 0; at < examples.length; at += batchSize) {
    const batch = collate(examples.slice(at, at + batchSize), device);
    try {
      const [loss, pred] = noGrad(() => tidy(() => {
        const logits = logitsOf(model, batch);
        return [crossEntropy(logits, batch.labels, { reduction: 'sum' }), argmax(logits, 1)];
      }));
      total += await loss.item();
      predictions.push(...Array.from(await pred.data()));
      loss.dispose();
      pred.dispose();
    } finally {
      for (const t of [batch.inputIds, batch.attentionMask, batch.lengths, batch.labels]) t.dispose();
    }
  }
  return { predictions, loss: total / examples.length };
}

/** Validation metrics for the Trainer: loss (drawn in loss.svg), accuracy and F1. */
export async function validationMetrics<M extends Module>(model: M, logitsOf: LogitsFn<M>, examples: readonly Example[], batchSize: number, device: string): Promise<Record<string, number>> {
  const { predictions, loss } = await predict(model, logitsOf, examples, batchSize, device);
  const s = binaryScores(predictions, examples.map((e) => e.label));
  return { loss, accuracy: s.accuracy, f1: s.f1 };
}

// ---- Hugging Face folders ----

/**
 * Writes config.json, model.safetensors (tied weights once, as transformers saves them), tokenizer.json and
 * tokenizer_config.json into dir, each file atomically: the folder `attend classify` / `fill-mask` / AutoModel load.
 */
export async function saveHfFolder(dir: string, model: Module, config: Record<string, unknown>, tok: Tokenizer, maxLength: number): Promise<void> {
  const seen = new Set<Tensor>();
  const tensors: Record<string, Tensor> = {};
  for (const [k, t] of Object.entries(model.stateDict())) {
    if (seen.has(t)) continue;
    seen.add(t);
    tensors[k] = t;
  }
  await saveSafetensors(join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  await writeFileAtomic(join(dir, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
  await writeFileAtomic(join(dir, 'tokenizer.json'), JSON.stringify(tok.toJSON(), null, 2));
  await writeFileAtomic(join(dir, 'tokenizer_config.json'), `${JSON.stringify(tokenizerConfig(maxLength), null, 2)}\n`);
}

/** Sizes of the BERT encoder that the spam and mlm-brown recipes share, so that one's checkpoint fits the other. */
export interface EncoderShape {
  hidden: number;
  layers: number;
  heads: number;
  intermediate: number;
  maxLength: number;
  dropout: number;
}

/** Just the encoder's fields of a recipe's options. */
export function encoderShape(o: EncoderShape): EncoderShape {
  return { hidden: o.hidden, layers: o.layers, heads: o.heads, intermediate: o.intermediate, maxLength: o.maxLength, dropout: o.dropout };
}

/** A BERT config.json (Hugging Face's field names) for a vocabulary and encoder shape. */
export function bertConfigJson(vocabSize: number, s: EncoderShape, architecture: 'BertForMaskedLM' | 'BertForSequenceClassification'): Record<string, unknown> {
  const json: Record<string, unknown> = {
    architectures: [architecture], model_type: 'bert', vocab_size: vocabSize, hidden_size: s.hidden, num_hidden_layers: s.layers,
    num_attention_heads: s.heads, intermediate_size: s.intermediate, hidden_act: 'gelu', hidden_dropout_prob: s.dropout,
    attention_probs_dropout_prob: s.dropout, max_position_embeddings: s.maxLength, type_vocab_size: 2, initializer_range: 0.02,
    layer_norm_eps: 1e-12, pad_token_id: 0, position_embedding_type: 'absolute',
  };
  if (architecture === 'BertForSequenceClassification') {
    json['id2label'] = Object.fromEntries(SPAM_LABELS.map((l, i) => [String(i), l]));
    json['label2id'] = Object.fromEntries(SPAM_LABELS.map((l, i) => [l, i]));
  }
  return json;
}

/** Checks the encoder options every recipe of this family takes. */
export function checkEncoderShape(s: EncoderShape, recipe: string): void {
  for (const k of ['hidden', 'layers', 'heads', 'intermediate', 'maxLength'] as const) {
    if (!Number.isSafeInteger(s[k]) || s[k] < 1) throw new Error(`${recipe}: --${k === 'maxLength' ? 'max-length' : k} must be a positive integer, got ${s[k]}`);
  }
  if (s.hidden % s.heads !== 0) throw new Error(`${recipe}: --heads (${s.heads}) must divide --hidden (${s.hidden})`);
  if (s.maxLength < 3) throw new Error(`${recipe}: --max-length must leave room for [CLS], a token and [SEP], got ${s.maxLength}`);
  if (!(s.dropout >= 0 && s.dropout < 1)) throw new Error(`${recipe}: --dropout must be in [0, 1), got ${s.dropout}`);
}
