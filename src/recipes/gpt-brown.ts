// Recipe `gpt-brown`: a byte-level BPE and a small GPT-2 trained on the Brown corpus, sampled, saved as a Hugging Face folder, and exported for the PyTorch reference.

import { mkdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { noGrad } from '../autograd/engine.js';
import { reshape } from '../autograd/ops/movement.js';
import { loadBrown, type BrownDocument } from '../data/brown.js';
import type { BatchSource } from '../data/loader.js';
import { splitDataset } from '../data/split.js';
import { generate } from '../generation/generate.js';
import { saveSafetensors } from '../io/safetensors.js';
import { GPT2LMHeadModel, type GPT2Config } from '../models/gpt2.js';
import type { Module } from '../nn/module.js';
import { crossEntropy } from '../nn/functional.js';
import { getDefaultDevice } from '../tensor/backend.js';
import { tensor } from '../tensor/create.js';
import { Generator, manualSeed } from '../tensor/random.js';
import { tidy } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import type { TokenizerJson } from '../tokenizers/json.js';
import { Tokenizer } from '../tokenizers/tokenizer.js';
import { trainByteLevelBpe } from '../tokenizers/train-bpe.js';
import { STATE_FILE, type MetricRecord } from '../train/checkpoint.js';
import { lineChart, type Series } from '../train/plot.js';
import { METRICS_FILE, noDecayParameterNames, Trainer, type Metrics, type TrainerConfig } from '../train/trainer.js';
import { optionError, type Recipe, type RecipeContext } from './recipe.js';
import { writeFileAtomic } from '../io/atomic.js';

export const EOT = '<|endoftext|>';
/** The end-of-text token is the tokenizer's only special token, so its id is 0. */
export const EOT_ID = 0;

/** The files the recipe exports for the PyTorch reference (reference/gpt_brown.py), all in the run folder. */
export const EXPORT = {
  manifest: 'reference.json',
  train: 'train.bin',
  val: 'val.bin',
  batches: 'batches.bin',
  valWindows: 'val_windows.bin',
  init: 'init.safetensors',
} as const;
/** What reference/gpt_brown.py writes next to them. */
export const TORCH_METRICS_FILE = 'torch-metrics.jsonl';
export const TORCH_RESULTS_FILE = 'torch-results.json';
export const CURVES_FILE = 'curves.svg';
export const VALIDATION_CURVES_FILE = 'validation-curves.svg';

// ---- data ----

export interface BrownStreams {
  trainDocs: BrownDocument[];
  valDocs: BrownDocument[];
  tokenizer: TokenizerJson;
  /** Tokens of the tokenizer (at most the vocabSize asked for: merges stop at pairs seen once). */
  vocabSize: number;
  /** Each split's documents as one stream of ids: every document's tokens followed by <|endoftext|>. */
  train: Uint16Array;
  val: Uint16Array;
}

/** A document as one text: its sentences joined by spaces (the corpus keeps no paragraph breaks). */
export function documentText(doc: BrownDocument): string {
  return doc.sentences.join(' ');
}

/**
 * Splits the documents with splitDataset (train, validation), trains a byte-level BPE on the training documents only,
 * and tokenizes each split into one stream.
 */
export function tokenizeBrown(docs: readonly BrownDocument[], opts: { valFraction: number; vocabSize: number; seed: number }): BrownStreams {
  const [trainDocs, valDocs] = splitDataset(docs, { fractions: [1 - opts.valFraction, opts.valFraction], seed: opts.seed }) as [BrownDocument[], BrownDocument[]];
  if (trainDocs.length === 0 || valDocs.length === 0) {
    throw new Error(`gpt-brown: ${docs.length} documents leave a split empty (train ${trainDocs.length}, validation ${valDocs.length}); use more documents or another --val-fraction`);
  }
  const json = trainByteLevelBpe(trainDocs.map(documentText), { vocabSize: opts.vocabSize, specialTokens: [EOT] });
  const tok = Tokenizer.fromJSON(json);
  const stream = (split: readonly BrownDocument[]): Uint16Array => {
    const ids: number[] = [];
    for (const d of split) {
      for (const id of tok.encode(documentText(d), { addSpecialTokens: false }).ids) ids.push(id);
      ids.push(EOT_ID);
    }
    return Uint16Array.from(ids);
  };
  return { trainDocs, valDocs, tokenizer: json, vocabSize: tok.vocabSize, train: stream(trainDocs), val: stream(valDocs) };
}

/**
 * The training windows of one epoch: the stream cut into windows of T + 1 tokens at a stride of T (inputs and their
 * next-token targets), starting at a random phase in [0, T) so that every epoch cuts the text differently, in a random
 * order; `perEpoch` batches of B windows. The windows per epoch do not depend on the phase, so every epoch has the
 * same number of batches. Draws from Generator(seed) at counter offset (epoch + 1) * 2^32: streams of their own,
 * apart from the split and the weights, which draw from the start of the same seed's stream.
 */
export function epochWindows(n: number, T: number, B: number, seed: number, epoch: number): Int32Array {
  const K = Math.floor((n - T) / T);
  const perEpoch = Math.floor(K / B);
  if (perEpoch < 1) throw new Error(`gpt-brown: the training stream has ${n} tokens: fewer than one batch of ${B} windows of ${T + 1} tokens`);
  const gen = new Generator(seed);
  gen.setState({ seed, offset: (epoch + 1) * 2 ** 32 });
  const phase = gen.integers(0, T, 1)[0]!;
  const order = gen.permutation(K);
  const starts = new Int32Array(perEpoch * B);
  for (let i = 0; i < starts.length; i++) starts[i] = phase + order[i]! * T;
  return starts;
}

/** Batches per epoch of epochWindows. */
export function batchesPerEpoch(n: number, T: number, B: number): number {
  return Math.floor(Math.floor((n - T) / T) / B);
}

/** The window starts of `steps` batches, epoch after epoch: row s of the [steps, B] plan is the batch of step s + 1. */
export function trainPlan(n: number, T: number, B: number, steps: number, seed: number): Int32Array {
  const perEpoch = batchesPerEpoch(n, T, B);
  const plan = new Int32Array(steps * B);
  for (let e = 0; e * perEpoch < steps; e++) {
    const w = epochWindows(n, T, B, seed, e);
    plan.set(w.subarray(0, Math.min(w.length, (steps - e * perEpoch) * B)), e * perEpoch * B);
  }
  return plan;
}

/** Non-overlapping validation windows of T + 1 tokens, at most `max` of them spread evenly over the stream (0: all). */
export function validationWindows(n: number, T: number, max: number): Int32Array {
  const all = Math.floor((n - 1) / T);
  if (all < 1) throw new Error(`gpt-brown: the validation stream has ${n} tokens: not one window of ${T + 1}`);
  const count = max > 0 ? Math.min(max, all) : all;
  return Int32Array.from({ length: count }, (_, i) => Math.floor((i * all) / count) * T);
}

export interface LmBatch {
  inputIds: Tensor;
  targets: Tensor;
}

/** Windows [start, start + T] of a stream: inputs are the first T tokens, targets the last T. */
export function windowBatch(stream: Uint16Array, starts: ArrayLike<number>, T: number, device: string): LmBatch {
  const B = starts.length;
  const x = new Int32Array(B * T), y = new Int32Array(B * T);
  for (let b = 0; b < B; b++) {
    const s = starts[b]!;
    x.set(stream.subarray(s, s + T), b * T);
    y.set(stream.subarray(s + 1, s + T + 1), b * T);
  }
  return { inputIds: tensor(x, { shape: [B, T], dtype: 'int32', device }), targets: tensor(y, { shape: [B, T], dtype: 'int32', device }) };
}

/** The plan as the Trainer's data: any epoch's batches from any batch on, without building the ones skipped on resume. */
export function planSource(stream: Uint16Array, plan: Int32Array, T: number, B: number, device: string): BatchSource<LmBatch> {
  const perEpoch = batchesPerEpoch(stream.length, T, B);
  const steps = plan.length / B;
  return {
    length: perEpoch,
    *batches(epoch: number, start: number) {
      for (let i = start; i < perEpoch && epoch * perEpoch + i < steps; i++) {
        const g = epoch * perEpoch + i;
        yield windowBatch(stream, plan.subarray(g * B, (g + 1) * B), T, device);
      }
    },
  };
}

function lmLoss(model: GPT2LMHeadModel, b: LmBatch, reduction: 'mean' | 'sum'): Tensor {
  const logits = model.forward({ inputIds: b.inputIds }).logits;
  return crossEntropy(reshape(logits, [-1, logits.shape[2]!]), reshape(b.targets, [-1]), { reduction });
}

/** The mean next-token loss (nats per token) over the windows. */
export async function windowsLoss(model: GPT2LMHeadModel, stream: Uint16Array, starts: Int32Array, T: number, batchSize: number, device: string): Promise<number> {
  let total = 0;
  for (let at = 0; at < starts.length; at += batchSize) {
    const b = windowBatch(stream, starts.subarray(at, at + batchSize), T, device);
    try {
      const loss = noGrad(() => tidy(() => lmLoss(model, b, 'sum')));
      total += await loss.item();
      loss.dispose();
    } finally {
      b.inputIds.dispose();
      b.targets.dispose();
    }
  }
  return total / (starts.length * T);
}

// ---- files ----

async function exists(path: string): Promise<boolean> {
  return stat(path).then(() => true, () => false);
}

/** Little-endian bytes of a typed array (the files are read back with numpy's '<u2' / '<i4' on any machine). */
function littleEndian(a: Uint16Array | Int32Array): Uint8Array {
  const out = new Uint8Array(a.byteLength);
  const view = new DataView(out.buffer);
  if (a instanceof Uint16Array) a.forEach((v, i) => view.setUint16(2 * i, v, true));
  else a.forEach((v, i) => view.setInt32(4 * i, v, true));
  return out;
}

/** The weights as a Hugging Face GPT-2 checkpoint: every tensor under its HF name, the tied lm_head left out as HF does. */
export async function saveGpt2Weights(path: string, model: Module): Promise<void> {
  const state = { ...model.stateDict() };
  delete state['lm_head.weight'];
  await saveSafetensors(path, state, { format: 'pt' });
}

/** config.json of the Hugging Face folder (transformers' GPT2Config fields). */
export function hfConfig(cfg: GPT2Config): Record<string, unknown> {
  return {
    architectures: ['GPT2LMHeadModel'], model_type: 'gpt2', ...cfg, n_ctx: cfg.n_positions,
    bos_token_id: EOT_ID, eos_token_id: EOT_ID, torch_dtype: 'float32',
  };
}

export interface ArraySpec {
  file: string;
  dtype: 'uint16' | 'int32';
  shape: number[];
}

/**
 * reference.json: what the PyTorch reference needs to train the same model on the same batches. Arrays are raw
 * little-endian files described by { file, dtype, shape }; a window at start s is tokens [s, s + seqLen] of its stream
 * (inputs s .. s + seqLen - 1, targets one later). batches row k holds the window starts of update k + 1.
 */
export interface ExportManifest {
  format: 'attend-gpt-brown-export';
  /** 2: training.noDecay lists the parameters without weight decay (1 decayed every parameter). */
  version: 2;
  arrays: { train: ArraySpec; val: ArraySpec; batches: ArraySpec; valWindows: ArraySpec };
  /** The initial weights (HF names, float32; lm_head is tied to transformer.wte). */
  init: string;
  tokenizer: string;
  model: GPT2Config;
  training: {
    seed: number; steps: number; batchSize: number; seqLen: number; batchesPerEpoch: number;
    lr: number; minLr: number; warmupSteps: number; schedule: 'cosine';
    weightDecay: number; betas: [number, number]; eps: number; clipGradNorm: number;
    /** Parameters (HF names) that weight decay spares: biases and layer norms, as Hugging Face's Trainer. */
    noDecay: string[];
    logEvery: number; evalEvery: number; evalBatchSize: number;
  };
  loss: string;
}

/**
 * The Trainer's options from the export's training section: what the PyTorch reference reads, so that both train
 * alike (AdamW without decay on training.noDecay, the cosine schedule with warm-up, clipping).
 */
export function trainingOptions(t: ExportManifest['training']): Pick<TrainerConfig<GPT2LMHeadModel, LmBatch>, 'optimizer' | 'schedule' | 'clipGradNorm' | 'maxSteps' | 'logEvery'> {
  const spared = new Set(t.noDecay);
  return {
    optimizer: { lr: t.lr, weightDecay: t.weightDecay, betas: t.betas, eps: t.eps, noDecay: (name) => spared.has(name) },
    schedule: { kind: 'cosine', warmupSteps: t.warmupSteps, minLr: t.minLr },
    clipGradNorm: t.clipGradNorm,
    maxSteps: t.steps,
    logEvery: t.logEvery,
  };
}

// ---- the recipe ----

export type GptBrownOptions = {
  seed: number;
  maxDocs: number;
  valFraction: number;
  vocabSize: number;
  nEmbd: number;
  nLayer: number;
  nHead: number;
  seqLen: number;
  dropout: number;
  batchSize: number;
  steps: number;
  lr: number;
  minLr: number;
  warmupSteps: number;
  weightDecay: number;
  clipGradNorm: number;
  logEvery: number;
  evalEvery: number;
  valWindows: number;
  evalBatchSize: number;
  checkpointEvery: number;
  stopAfter: number;
  prompts: string;
  sampleTokens: number;
  temperature: number;
  topK: number;
};

type NumericOption = { [K in keyof GptBrownOptions]: GptBrownOptions[K] extends number ? K : never }[keyof GptBrownOptions];

/** AdamW's betas and eps: GPT-style beta2 of 0.95, which keeps small-batch training of transformers steady. */
const BETAS: [number, number] = [0.9, 0.95];
const EPS = 1e-8;

function check(opts: GptBrownOptions): void {
  const fail = optionError('gpt-brown', opts);
  const keys = (...k: NumericOption[]) => k;
  for (const k of keys('nEmbd', 'nLayer', 'nHead', 'seqLen', 'batchSize', 'steps', 'logEvery', 'evalBatchSize', 'sampleTokens')) {
    if (!Number.isSafeInteger(opts[k]) || opts[k] < 1) fail(k, 'a positive integer');
  }
  for (const k of keys('seed', 'maxDocs', 'warmupSteps', 'evalEvery', 'valWindows', 'checkpointEvery', 'stopAfter', 'topK')) {
    if (!Number.isSafeInteger(opts[k]) || opts[k] < 0) fail(k, 'a non-negative integer');
  }
  if (!Number.isSafeInteger(opts.vocabSize) || opts.vocabSize < 257 || opts.vocabSize > 65536) fail('vocabSize', 'an integer from 257 (256 bytes and <|endoftext|>) to 65536 (ids are stored as uint16)');
  if (!(opts.valFraction > 0 && opts.valFraction < 1)) fail('valFraction', 'a fraction between 0 and 1');
  if (!(opts.dropout >= 0 && opts.dropout < 1)) fail('dropout', 'in [0, 1)');
  for (const k of keys('lr', 'clipGradNorm', 'temperature')) if (!(opts[k] > 0)) fail(k, 'a positive number');
  if (!(opts.minLr >= 0 && opts.minLr <= opts.lr)) fail('minLr', 'in [0, --lr]');
  if (!(opts.weightDecay >= 0)) fail('weightDecay', 'a non-negative number');
  if (opts.nEmbd % opts.nHead !== 0) throw new Error(`gpt-brown: --n-head (${opts.nHead}) must divide --n-embd (${opts.nEmbd})`);
  if (opts.warmupSteps > opts.steps) throw new Error(`gpt-brown: --warmup-steps (${opts.warmupSteps}) is more than --steps (${opts.steps})`);
  if (opts.stopAfter > opts.steps) throw new Error(`gpt-brown: --stop-after (${opts.stopAfter}) is past --steps (${opts.steps})`);
  if (prompts(opts).length === 0) throw new Error("gpt-brown: --prompts must hold at least one prompt (separate prompts with '|')");
}

function prompts(opts: GptBrownOptions): string[] {
  return opts.prompts.split('|').map((p) => p.trim()).filter(Boolean);
}

/** A seeded subset of `n` documents in corpus order (all of them for n = 0). */
function subset(docs: BrownDocument[], n: number, seed: number): BrownDocument[] {
  if (n === 0 || n >= docs.length) return docs;
  const keep = Array.from(new Generator(seed).permutation(docs.length).subarray(0, n)).sort((a, b) => a - b);
  return keep.map((i) => docs[i]!);
}

const perplexity = (loss: number): number => Math.exp(loss);

async function run(opts: GptBrownOptions, ctx: RecipeContext): Promise<Record<string, unknown>> {
  check(opts);
  const device = ctx.device ?? getDefaultDevice();
  const dir = ctx.outDir;
  // Checked here as well as by the Trainer: the exported files must not be rewritten under another run's checkpoint.
  const hasCheckpoint = await exists(join(dir, STATE_FILE));
  if (!ctx.resume && hasCheckpoint) throw new Error(`gpt-brown: ${dir} already holds a checkpoint; pass --resume to continue it, or choose another --out`);
  if (ctx.resume && !hasCheckpoint) throw new Error(`gpt-brown: --resume: ${dir} holds no checkpoint (${STATE_FILE}) to continue`);

  let t0 = performance.now();
  const docs = subset(await loadBrown(), opts.maxDocs, opts.seed);
  const data = tokenizeBrown(docs, opts);
  const tokenizeSeconds = (performance.now() - t0) / 1000;
  const T = opts.seqLen, B = opts.batchSize;
  const plan = trainPlan(data.train.length, T, B, opts.steps, opts.seed);
  const valStarts = validationWindows(data.val.length, T, opts.valWindows);
  const perEpoch = batchesPerEpoch(data.train.length, T, B);
  const vocab = data.vocabSize;
  ctx.log(`gpt-brown: Brown corpus, ${docs.length} documents: train ${data.trainDocs.length} (${data.train.length.toLocaleString('en-US')} tokens), validation ${data.valDocs.length} (${data.val.length.toLocaleString('en-US')} tokens, ${valStarts.length} windows of ${T}); byte-level BPE of ${vocab} tokens (${tokenizeSeconds.toFixed(1)} s)`);

  const config: GPT2Config = {
    vocab_size: vocab, n_positions: T, n_embd: opts.nEmbd, n_layer: opts.nLayer, n_head: opts.nHead, n_inner: null,
    activation_function: 'gelu_new', layer_norm_epsilon: 1e-5, embd_pdrop: opts.dropout, attn_pdrop: opts.dropout, resid_pdrop: opts.dropout,
    initializer_range: 0.02, tie_word_embeddings: true, scale_attn_weights: true,
  };
  // Weights are drawn before the Trainer seeds the global generator, so seed it here: the same model every time.
  manualSeed(opts.seed);
  const model = new GPT2LMHeadModel(config);
  model.to(device);

  const manifest: ExportManifest = {
    format: 'attend-gpt-brown-export', version: 2,
    arrays: {
      train: { file: EXPORT.train, dtype: 'uint16', shape: [data.train.length] },
      val: { file: EXPORT.val, dtype: 'uint16', shape: [data.val.length] },
      batches: { file: EXPORT.batches, dtype: 'int32', shape: [opts.steps, B] },
      valWindows: { file: EXPORT.valWindows, dtype: 'int32', shape: [valStarts.length] },
    },
    init: EXPORT.init, tokenizer: 'tokenizer.json', model: config,
    training: {
      seed: opts.seed, steps: opts.steps, batchSize: B, seqLen: T, batchesPerEpoch: perEpoch,
      lr: opts.lr, minLr: opts.minLr, warmupSteps: opts.warmupSteps, schedule: 'cosine',
      weightDecay: opts.weightDecay, betas: BETAS, eps: EPS, clipGradNorm: opts.clipGradNorm,
      noDecay: [...noDecayParameterNames(model)],
      logEvery: opts.logEvery, evalEvery: opts.evalEvery, evalBatchSize: opts.evalBatchSize,
    },
    loss: 'mean next-token cross-entropy in nats over the B x T targets of a batch; validation: the same, summed over all windows, over windows x T',
  };
  const manifestText = `${JSON.stringify(manifest, null, 1)}\n`;
  if (ctx.resume) {
    const before = await readFile(join(dir, EXPORT.manifest), 'utf8').catch(() => null);
    if (before !== null && before !== manifestText) {
      throw new Error(`gpt-brown: --resume: the run in ${dir} was made with other data or training options (its ${EXPORT.manifest} differs); resume with the options it was started with`);
    }
  }

  ctx.log(`gpt-brown: GPT-2, ${opts.nLayer} layers, n_embd ${opts.nEmbd}, ${opts.nHead} heads, context ${T}: ${model.numParameters().toLocaleString('en-US')} parameters, on ${device}`);

  await mkdir(dir, { recursive: true });
  await writeFileAtomic(join(dir, EXPORT.train), littleEndian(data.train));
  await writeFileAtomic(join(dir, EXPORT.val), littleEndian(data.val));
  await writeFileAtomic(join(dir, EXPORT.batches), littleEndian(plan));
  await writeFileAtomic(join(dir, EXPORT.valWindows), littleEndian(valStarts));
  await saveGpt2Weights(join(dir, EXPORT.init), model);
  await writeFileAtomic(join(dir, 'tokenizer.json'), `${JSON.stringify(data.tokenizer)}\n`);
  await writeFileAtomic(join(dir, 'config.json'), `${JSON.stringify(hfConfig(config), null, 2)}\n`);
  await writeFileAtomic(join(dir, EXPORT.manifest), manifestText);

  let evalSeconds = 0;
  const trainer: Trainer<GPT2LMHeadModel, LmBatch> = new Trainer({
    model, device,
    data: planSource(data.train, plan, T, B, device),
    loss: (m, b) => ({ loss: lmLoss(m, b, 'mean'), tokens: B * T }),
    evaluate: async (m): Promise<Metrics> => {
      const e0 = performance.now();
      const loss = await windowsLoss(m, data.val, valStarts, T, opts.evalBatchSize, device);
      evalSeconds += (performance.now() - e0) / 1000;
      return { loss, perplexity: perplexity(loss) };
    },
    ...trainingOptions(manifest.training),
    evalEvery: opts.evalEvery || undefined,
    checkpointEvery: opts.checkpointEvery || undefined,
    outDir: dir, resume: ctx.resume, seed: opts.seed, skipNonfinite: ctx.skipNonfinite,
    onStep: ({ step }) => { if (opts.stopAfter > 0 && step >= opts.stopAfter) trainer.stop(); },
  });
  t0 = performance.now();
  const result = await trainer.train();
  const trainSeconds = (performance.now() - t0) / 1000;
  const sessionSteps = result.losses.length;
  const tokensPerSecond = (sessionSteps * B * T) / Math.max(trainSeconds - evalSeconds, 1e-9);
  await saveGpt2Weights(join(dir, 'model.safetensors'), model);
  const lastEval = [...result.metrics].reverse().find((r) => r.kind === 'eval');
  if (lastEval) ctx.log(`gpt-brown: step ${lastEval.step}: validation loss ${Number(lastEval['loss']).toFixed(4)}, perplexity ${Number(lastEval['perplexity']).toFixed(1)}; ${tokensPerSecond.toFixed(0)} tokens/s`);

  model.eval();
  const tok = Tokenizer.fromJSON(data.tokenizer);
  const samples: { prompt: string; text: string }[] = [];
  for (const [i, prompt] of prompts(opts).entries()) {
    const ids = tok.encode(prompt, { addSpecialTokens: false }).ids;
    const room = T - ids.length;
    if (room < 1) throw new Error(`gpt-brown: the prompt '${prompt}' has ${ids.length} tokens, no room left in the context of ${T}`);
    const input = tensor(Int32Array.from(ids), { shape: [1, ids.length], dtype: 'int32', device });
    const out = await generate(model, input, {
      doSample: true, temperature: opts.temperature, topK: opts.topK || undefined, seed: opts.seed + i,
      maxNewTokens: Math.min(opts.sampleTokens, room), eosTokenId: EOT_ID,
    });
    const row = ((await out.tolist()) as number[][])[0]!;
    input.dispose();
    out.dispose();
    const text = prompt + tok.decode(row.slice(ids.length), { skipSpecialTokens: true });
    samples.push({ prompt, text });
    ctx.log(`> ${text}`);
  }

  return {
    data: {
      documents: { train: data.trainDocs.length, validation: data.valDocs.length },
      tokens: { train: data.train.length, validation: data.val.length },
      vocabulary: vocab,
      validationWindows: valStarts.length,
      validationTokensScored: valStarts.length * T,
    },
    model: { parameters: model.numParameters(), nLayer: opts.nLayer, nEmbd: opts.nEmbd, nHead: opts.nHead, context: T },
    steps: result.step,
    stopped: result.stopped,
    epochs: (result.step / perEpoch),
    tokensTrained: result.step * B * T,
    validation: lastEval ? { step: lastEval.step, loss: lastEval['loss'], perplexity: lastEval['perplexity'] } : null,
    seconds: { tokenize: Math.round(tokenizeSeconds), train: Math.round(trainSeconds), evaluate: Math.round(evalSeconds) },
    tokensPerSecond: Math.round(tokensPerSecond),
    samples,
    sampling: { temperature: opts.temperature, topK: opts.topK, seeds: `--seed + the prompt's index`, maxNewTokens: opts.sampleTokens },
    device,
  };
}

export const gptBrownRecipe: Recipe<GptBrownOptions> = {
  name: 'gpt-brown',
  summary: 'a byte-level BPE and a small GPT-2 trained on the Brown corpus, sampled, saved as a Hugging Face folder (with an export for the PyTorch reference)',
  chapter: 'sequence generation with a transformer decoder',
  defaults: {
    seed: 0, maxDocs: 0, valFraction: 0.05, vocabSize: 4096,
    nEmbd: 128, nLayer: 4, nHead: 4, seqLen: 128, dropout: 0,
    batchSize: 16, steps: 3000, lr: 2e-3, minLr: 1e-4, warmupSteps: 100, weightDecay: 0.1, clipGradNorm: 1,
    logEvery: 10, evalEvery: 100, valWindows: 256, evalBatchSize: 32, checkpointEvery: 250, stopAfter: 0,
    prompts: 'The jury said|In the morning|She looked at the', sampleTokens: 60, temperature: 0.8, topK: 40,
  },
  smoke: {
    maxDocs: 20, vocabSize: 300, nEmbd: 16, nLayer: 1, nHead: 2, seqLen: 16, batchSize: 4, steps: 4, warmupSteps: 1,
    logEvery: 1, evalEvery: 2, valWindows: 4, evalBatchSize: 4, checkpointEvery: 0, sampleTokens: 5,
  },
  help: {
    seed: 'seed of the split, the weights, the batch order and the samples',
    maxDocs: 'use a seeded subset of this many documents (0 = all 500)',
    valFraction: 'fraction of the documents held out for validation',
    vocabSize: 'byte-level BPE vocabulary: <|endoftext|>, 256 bytes and merges',
    nEmbd: 'model width',
    nLayer: 'transformer blocks',
    nHead: 'attention heads (must divide --n-embd)',
    seqLen: 'context length: tokens per training window',
    dropout: 'dropout (0 keeps the PyTorch comparison exact: dropout masks differ between the two)',
    batchSize: 'windows per batch',
    steps: 'training steps (AdamW updates)',
    lr: 'peak learning rate',
    minLr: 'learning rate at the last step',
    warmupSteps: 'linear warm-up steps before the cosine decay',
    weightDecay: 'AdamW weight decay (not on biases and layer norms, as Hugging Face\'s Trainer)',
    clipGradNorm: 'clip the gradient norm to this',
    logEvery: 'steps between train-loss records',
    evalEvery: 'steps between validation loss evaluations (0 = only at the end)',
    valWindows: 'validation windows, spread evenly over the validation stream (0 = all)',
    evalBatchSize: 'windows per batch when evaluating',
    checkpointEvery: 'steps between checkpoints (0 = only at the end)',
    stopAfter: 'stop after this step with a checkpoint (0 = run to the end); --resume continues',
    prompts: "prompts to sample from at the end, separated by '|'",
    sampleTokens: 'tokens to sample per prompt',
    temperature: 'sampling temperature',
    topK: 'sample from the k most likely tokens (0 = all)',
  },
  run,
};

// ---- comparison with the PyTorch reference ----

function readMetrics(text: string, path: string): MetricRecord[] {
  return text.split('\n').filter((l) => l.trim()).map((l, i) => {
    let r: unknown;
    try {
      r = JSON.parse(l);
    } catch {
      throw new Error(`${path}: line ${i + 1} is not JSON`);
    }
    const rec = r as Record<string, unknown>;
    if (rec === null || typeof rec !== 'object' || (rec['kind'] !== 'train' && rec['kind'] !== 'eval') || typeof rec['step'] !== 'number') {
      throw new Error(`${path}: line ${i + 1} is not a metrics record ({ kind: 'train' | 'eval', step, ... })`);
    }
    return rec as MetricRecord;
  });
}

async function metricsFile(path: string): Promise<MetricRecord[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    throw new Error(`${path}: cannot read it (run the recipe, then reference/gpt_brown.py, first)`);
  }
  return readMetrics(text, path);
}

/** The sharper criterion: the train-loss gap over the first steps, from the same weights on the same batches. */
export const TRAIN_GAP_STEPS = 50;
export const TRAIN_GAP_LIMIT = 1e-4;

export interface TrainLossGap {
  /** Steps of train records both runs have, up to the limit (each record's loss averages its logEvery steps). */
  steps: number[];
  /** The largest |torch - attend| / |attend| over those steps. */
  maxRelativeGap: number;
  /** Where it is (0 when no step is shared). */
  worstStep: number;
}

/** The relative gap between two runs' train losses at every step up to `upTo` that both recorded. */
export function trainLossGap(ours: readonly MetricRecord[], theirs: readonly MetricRecord[], upTo = TRAIN_GAP_STEPS): TrainLossGap {
  const losses = (ms: readonly MetricRecord[]) => new Map(ms.filter((r) => r.kind === 'train' && typeof r['loss'] === 'number' && r.step <= upTo).map((r) => [r.step, r['loss'] as number]));
  const a = losses(ours), b = losses(theirs);
  const gap: TrainLossGap = { steps: [], maxRelativeGap: 0, worstStep: 0 };
  for (const [step, l] of a) {
    const t = b.get(step);
    if (t === undefined) continue;
    gap.steps.push(step);
    const rel = Math.abs(t - l) / Math.abs(l);
    if (!(rel <= gap.maxRelativeGap)) { gap.maxRelativeGap = rel; gap.worstStep = step; }
  }
  return gap;
}

export interface Comparison {
  attend: { step: number; loss: number; perplexity: number };
  torch: { step: number; loss: number; perplexity: number };
  /** (torch - attend) / attend of the final validation losses. */
  relativeDifference: number;
  /** The largest |torch - attend| / attend over the evaluations both runs made at the same step. */
  maxRelativeDifference: number;
  /** The train-loss gap over the first TRAIN_GAP_STEPS steps (should stay below TRAIN_GAP_LIMIT). */
  trainLoss: TrainLossGap;
  files: string[];
}

/**
 * Reads a run's metrics.jsonl and the reference's torch-metrics.jsonl, and writes two pictures to each of `outDirs`:
 * curves.svg (train and validation loss of both) and validation-curves.svg (validation only, where the two are close).
 */
export async function compareWithTorch(runDir: string, outDirs: readonly string[]): Promise<Comparison> {
  const ours = await metricsFile(join(runDir, METRICS_FILE));
  const theirs = await metricsFile(join(runDir, TORCH_METRICS_FILE));
  const curve = (ms: MetricRecord[], kind: 'train' | 'eval'): [number, number][] =>
    ms.filter((r) => r.kind === kind && typeof r['loss'] === 'number').map((r) => [r.step, r['loss'] as number]);
  const finalEval = (ms: MetricRecord[], path: string) => {
    const e = curve(ms, 'eval').at(-1);
    if (!e) throw new Error(`${path}: no validation record`);
    return { step: e[0], loss: e[1], perplexity: perplexity(e[1]) };
  };
  const attend = finalEval(ours, join(runDir, METRICS_FILE)), torch = finalEval(theirs, join(runDir, TORCH_METRICS_FILE));
  if (attend.step !== torch.step) throw new Error(`gpt-brown: the runs ended at different steps (attend ${attend.step}, PyTorch ${torch.step}): compare finished runs of the same export`);
  const theirEval = new Map(curve(theirs, 'eval'));
  const rel = curve(ours, 'eval').filter(([s]) => theirEval.has(s)).map(([s, l]) => Math.abs(theirEval.get(s)! - l) / l);

  // Train curves in light tints of the validation curves' colours: attend blue, PyTorch orange.
  const all: Series[] = [
    { name: 'attend train', points: curve(ours, 'train'), color: '#aec7e8' },
    { name: 'PyTorch train', points: curve(theirs, 'train'), color: '#ffbb78' },
    { name: 'attend validation', points: curve(ours, 'eval'), color: '#1f77b4' },
    { name: 'PyTorch validation', points: curve(theirs, 'eval'), color: '#ff7f0e' },
  ];
  const pictures: [string, string][] = [
    [CURVES_FILE, lineChart(all, { title: 'GPT-2 on Brown: attend (wasm) and PyTorch, same data and batches', xLabel: 'step', yLabel: 'loss (nats per token)' })],
    [VALIDATION_CURVES_FILE, lineChart(all.slice(2), { title: 'Validation loss: attend and PyTorch', xLabel: 'step', yLabel: 'loss (nats per token)' })],
  ];
  const files: string[] = [];
  for (const d of outDirs) {
    await mkdir(d, { recursive: true });
    for (const [name, svg] of pictures) {
      await writeFileAtomic(join(d, name), svg);
      files.push(join(d, name));
    }
  }
  return { attend, torch, relativeDifference: (torch.loss - attend.loss) / attend.loss, maxRelativeDifference: Math.max(0, ...rel), trainLoss: trainLossGap(ours, theirs), files };
}
