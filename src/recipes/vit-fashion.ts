// Recipe `vit-fashion`: a vision transformer from scratch on Fashion-MNIST, a small CNN on the same split for
// comparison, a confusion matrix, attention maps, and the ViT saved as a Hugging Face folder.

import { access, mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { deflateSync, crc32 } from 'node:zlib';
import { noGrad } from '../autograd/engine.js';
import { relu } from '../autograd/ops/elementwise.js';
import { flatten, flip } from '../autograd/ops/movement.js';
import { softmax } from '../autograd/ops/nn.js';
import { argmax } from '../autograd/ops/reduce.js';
import { FASHION_MNIST_CLASSES, loadFashionMnist, type ImageSet } from '../data/fashion-mnist.js';
import type { BatchSource } from '../data/loader.js';
import { loadSafetensors, saveSafetensors } from '../io/safetensors.js';
import { ConfigReader } from '../models/base.js';
import { ViTForImageClassification, vitConfig } from '../models/vit.js';
import { Dropout } from '../nn/activation.js';
import { Conv2d } from '../nn/conv.js';
import { crossEntropy, maxPool2d } from '../nn/functional.js';
import { Linear } from '../nn/linear.js';
import { Module } from '../nn/module.js';
import { getDefaultDevice } from '../tensor/backend.js';
import { tensor } from '../tensor/create.js';
import { Generator, manualSeed } from '../tensor/random.js';
import { tidy } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { formatDuration } from '../train/progress.js';
import { lineChart } from '../train/plot.js';
import { Trainer, type TrainResult } from '../train/trainer.js';
import { optionError, type Recipe, type RecipeContext } from './recipe.js';
import { writeFileAtomic } from '../io/atomic.js';

export type VitFashionOptions = {
  seed: number;
  dataDir: string;
  valSize: number;
  trainLimit: number;
  testLimit: number;
  patchSize: number;
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
  labelSmoothing: number;
  clipGradNorm: number;
  cropPadding: number;
  flip: boolean;
  erasing: number;
  evalEvery: number;
  checkpointEvery: number;
  evalBatchSize: number;
  cnnEpochs: number;
  cnnChannels: number;
  cnnLr: number;
  distill: number;
  mimeticInit: boolean;
  attentionImages: number;
};

export const TARGET_ACCURACY = 0.92;
const SIZE = 28;
const PIXELS = SIZE * SIZE;
const CLASSES = FASHION_MNIST_CLASSES.length;
const MAX_SEED = 1_000_000;

function check(o: VitFashionOptions): void {
  const fail = optionError('vit-fashion', o);
  for (const k of ['valSize', 'patchSize', 'hidden', 'layers', 'heads', 'intermediate', 'batchSize', 'epochs', 'evalBatchSize', 'cnnChannels'] as const) {
    if (!Number.isSafeInteger(o[k]) || o[k] < 1) fail(k, 'a positive integer');
  }
  for (const k of ['seed', 'trainLimit', 'testLimit', 'evalEvery', 'checkpointEvery', 'cnnEpochs', 'cropPadding', 'attentionImages'] as const) {
    if (!Number.isSafeInteger(o[k]) || o[k] < 0) fail(k, 'a non-negative integer');
  }
  // The batch generators' seeds are built from seed, epoch and batch as exact integers (below 2^53).
  if (o.seed > MAX_SEED) fail('seed', `an integer from 0 to ${MAX_SEED}`);
  if (SIZE % o.patchSize !== 0) fail('patchSize', `a divisor of the image size ${SIZE} (1, 2, 4, 7, 14 or 28)`);
  if (o.hidden % o.heads !== 0) throw new Error(`vit-fashion: --hidden (${o.hidden}) must be divisible by --heads (${o.heads})`);
  if (o.valSize >= 60000) fail('valSize', 'below the 60000 training images');
  for (const k of ['lr', 'clipGradNorm', 'cnnLr'] as const) if (!(o[k] > 0)) fail(k, 'a positive number');
  for (const k of ['dropout', 'labelSmoothing', 'erasing'] as const) if (!(o[k] >= 0 && o[k] < 1)) fail(k, 'a number in [0, 1)');
  if (!(o.distill >= 0 && o.distill <= 1)) fail('distill', 'a weight in [0, 1]');
  if (o.distill > 0 && o.cnnEpochs === 0) throw new Error('vit-fashion: --distill needs the CNN as its teacher: --cnn-epochs above 0 (or --distill 0)');
  if (o.distill > 0 && (o.cropPadding > 0 || o.erasing > 0)) {
    throw new Error(`vit-fashion: --distill uses the CNN's probabilities of each training image and its mirror image, computed once: it cannot follow --crop-padding ${o.cropPadding} or --erasing ${o.erasing} (set them to 0, or --distill 0)`);
  }
  if (!(o.warmup >= 0 && o.warmup < 1)) fail('warmup', 'a fraction of the steps in [0, 1)');
  if (!(o.weightDecay >= 0)) fail('weightDecay', 'a non-negative number');
  if (o.cropPadding >= SIZE / 2) fail('cropPadding', `below ${SIZE / 2}`);
}

// ---- data: the split, normalisation and augmented batches ----

/** Indices into a set of images, plus the set. */
export interface Subset {
  set: ImageSet;
  indices: Int32Array;
}

/** A seeded validation hold-out from the training images; the test images stay aside until the end. */
export function splitTrain(train: ImageSet, valSize: number, seed: number, trainLimit: number): { train: Subset; val: Subset } {
  const perm = new Generator(seed).permutation(train.count);
  const rest = perm.subarray(valSize);
  return { val: { set: train, indices: perm.subarray(0, valSize) }, train: { set: train, indices: trainLimit ? rest.subarray(0, trainLimit) : rest } };
}

/** Mean and standard deviation of the pixels (scaled to [0, 1]) of a subset: what the image processor normalises with. */
export function pixelStats(s: Subset): { mean: number; std: number } {
  let sum = 0, sq = 0;
  for (const i of s.indices) {
    for (let p = i * PIXELS; p < (i + 1) * PIXELS; p++) {
      const v = s.set.images[p]! / 255;
      sum += v;
      sq += v * v;
    }
  }
  const n = s.indices.length * PIXELS, mean = sum / n;
  return { mean, std: Math.sqrt(sq / n - mean * mean) };
}

type Batch = { pixelValues: Tensor; labels: Tensor; targets?: Tensor };

export interface Augment {
  /** Random crop after zero padding by this many pixels (a shift of up to that much). */
  cropPadding: number;
  flip: boolean;
  /** Probability of erasing one random rectangle (Zhong et al., 2020) to the mean. */
  erasing: number;
}

/** A teacher's class probabilities for the training images, seen plain and mirrored, mixed into the labels. */
export interface SoftTargets {
  /** [image of the set, plain | mirrored, class], as teacherProbs writes them. */
  probs: Float32Array;
  /** The teacher's share of each target; the rest is the label (smoothed). */
  weight: number;
  labelSmoothing: number;
}

/**
 * images [B, 1, 28, 28] as the image processor makes them ((x / 255 - mean) / std), augmented when `aug` and `gen`
 * are given, and their labels [B]; with `soft`, also each image's target distribution [B, 10]: the teacher's
 * probabilities of the view it gets (plain or mirrored) mixed with the smoothed label.
 */
export function makeBatch(s: Subset, ids: ArrayLike<number>, norm: { mean: number; std: number }, device: string, aug?: Augment, gen?: Generator, soft?: SoftTargets): Batch {
  const B = ids.length, out = new Float32Array(B * PIXELS), labels = new Int32Array(B), targets = soft ? new Float32Array(B * CLASSES) : null;
  const scale = 1 / (255 * norm.std), shift = norm.mean / norm.std, background = -shift;
  const r = aug && gen ? gen.uniform(B * 8) : null;
  for (let b = 0; b < B; b++) {
    const src = ids[b]! * PIXELS, dst = b * PIXELS;
    labels[b] = s.set.labels[ids[b]!]!;
    let dx = 0, dy = 0, flip = false;
    if (r && aug) {
      const p = aug.cropPadding;
      dx = Math.floor(r[8 * b]! * (2 * p + 1)) - p;
      dy = Math.floor(r[8 * b + 1]! * (2 * p + 1)) - p;
      flip = aug.flip && r[8 * b + 2]! < 0.5;
    }
    if (soft && targets) {
      const w = soft.weight, eps = soft.labelSmoothing, from = (ids[b]! * 2 + (flip ? 1 : 0)) * CLASSES;
      for (let c = 0; c < CLASSES; c++) targets[b * CLASSES + c] = w * soft.probs[from + c]! + (1 - w) * ((c === labels[b] ? 1 - eps : 0) + eps / CLASSES);
    }
    for (let y = 0; y < SIZE; y++) {
      const sy = y + dy;
      for (let x = 0; x < SIZE; x++) {
        const sx0 = x + dx, sx = flip ? SIZE - 1 - sx0 : sx0;
        out[dst + y * SIZE + x] = sy >= 0 && sy < SIZE && sx >= 0 && sx < SIZE ? s.set.images[src + sy * SIZE + sx]! * scale - shift : background;
      }
    }
    if (r && aug && r[8 * b + 3]! < aug.erasing) {
      // Area 2%..33% of the image, aspect ratio 0.3..3.3 (log-uniform), as torchvision's RandomErasing.
      const area = PIXELS * (0.02 + 0.31 * r[8 * b + 4]!), ratio = Math.exp(Math.log(0.3) + (Math.log(10 / 3) - Math.log(0.3)) * r[8 * b + 5]!);
      const h = Math.min(SIZE, Math.round(Math.sqrt(area * ratio))), w = Math.min(SIZE, Math.round(Math.sqrt(area / ratio)));
      const y0 = Math.floor(r[8 * b + 6]! * (SIZE - h + 1)), x0 = Math.floor(r[8 * b + 7]! * (SIZE - w + 1));
      for (let y = y0; y < y0 + h; y++) out.fill(0, dst + y * SIZE + x0, dst + y * SIZE + x0 + w);
    }
  }
  const batch: Batch = { pixelValues: tensor(out, { shape: [B, 1, SIZE, SIZE], device }), labels: tensor(labels, { device }) };
  if (targets) batch.targets = tensor(targets, { shape: [B, CLASSES], device });
  return batch;
}

/** Shuffled, augmented training batches: epoch e's order and batch b's augmentation come from seeds of their own, so a resumed run sees the same batches. */
export function trainBatches(s: Subset, batchSize: number, seed: number, norm: { mean: number; std: number }, aug: Augment, device: string, soft?: SoftTargets): BatchSource<Batch> {
  const n = s.indices.length, length = Math.max(1, Math.floor(n / batchSize));
  return {
    length,
    *batches(epoch: number, start: number): Iterable<Batch> {
      const perm = new Generator(seed * 1_000_003 + epoch + 1).permutation(n);
      for (let b = start; b < length; b++) {
        const ids = Array.from(perm.subarray(b * batchSize, Math.min(n, (b + 1) * batchSize)), (j) => s.indices[j]!);
        yield makeBatch(s, ids, norm, device, aug, new Generator(seed * 2 ** 32 + epoch * 1_000_003 + b + 7), soft);
      }
    },
  };
}

type LogitsFn = (m: Module, pixelValues: Tensor) => Tensor;

/** Predictions (argmax) and the mean cross-entropy over a subset, without augmentation. */
export async function predict(model: Module, logitsOf: LogitsFn, s: Subset, norm: { mean: number; std: number }, batchSize: number, device: string): Promise<{ predictions: Int32Array; loss: number }> {
  const predictions = new Int32Array(s.indices.length);
  let total = 0;
  for (let at = 0; at < s.indices.length; at += batchSize) {
    const batch = makeBatch(s, s.indices.subarray(at, at + batchSize), norm, device);
    const [loss, pred] = noGrad(() => tidy(() => {
      const logits = logitsOf(model, batch.pixelValues);
      return [crossEntropy(logits, batch.labels, { reduction: 'sum' }), argmax(logits, 1)];
    }));
    total += await loss.item();
    predictions.set(await pred.data(), at);
    for (const t of [loss, pred, batch.pixelValues, batch.labels]) t.dispose();
  }
  return { predictions, loss: total / s.indices.length };
}

/**
 * A trained model's class probabilities for each image of the subset, plain and (with `mirror`, the other view flips
 * give) mirrored, at [index in the set, plain | mirrored, class]: the teacher's part of the distillation targets.
 */
export async function teacherProbs(model: Module, logitsOf: LogitsFn, s: Subset, norm: { mean: number; std: number }, batchSize: number, device: string, mirror: boolean): Promise<Float32Array> {
  const probs = new Float32Array(s.set.count * 2 * CLASSES);
  for (let at = 0; at < s.indices.length; at += batchSize) {
    const ids = s.indices.subarray(at, at + batchSize), batch = makeBatch(s, ids, norm, device);
    for (const mirrored of mirror ? [0, 1] : [0]) {
      const p = noGrad(() => tidy(() => softmax(logitsOf(model, mirrored ? flip(batch.pixelValues, [3]) : batch.pixelValues), 1)));
      const d = await p.data();
      ids.forEach((id, b) => probs.set(d.subarray(b * CLASSES, (b + 1) * CLASSES), (id * 2 + mirrored) * CLASSES));
      p.dispose();
    }
    batch.pixelValues.dispose();
    batch.labels.dispose();
  }
  return probs;
}

export interface Scores {
  accuracy: number;
  loss: number;
  /** confusion[true][predicted]: counts. */
  confusion: number[][];
  perClass: Record<string, number>;
}

export function scores(predictions: ArrayLike<number>, s: Subset, loss: number): Scores {
  const confusion = Array.from({ length: CLASSES }, () => new Array<number>(CLASSES).fill(0));
  let right = 0;
  for (let i = 0; i < predictions.length; i++) {
    const y = s.set.labels[s.indices[i]!]!, p = predictions[i]!;
    confusion[y]![p]!++;
    if (y === p) right++;
  }
  const perClass = Object.fromEntries(FASHION_MNIST_CLASSES.map((name, c) => [name, confusion[c]![c]! / Math.max(1, confusion[c]!.reduce((a, b) => a + b, 0))]));
  return { accuracy: right / predictions.length, loss, confusion, perClass };
}

// ---- initialisation: a locality prior without changing the architecture ----

/** 2-D sine-cosine position embeddings (MAE's get_2d_sincos_pos_embed) for a grid x grid of patches: [grid^2, C], C divisible by 4. */
export function sincos2d(grid: number, C: number): Float32Array {
  const out = new Float32Array(grid * grid * C), q = C / 4;
  for (let y = 0; y < grid; y++) for (let x = 0; x < grid; x++) {
    const row = out.subarray((y * grid + x) * C, (y * grid + x + 1) * C);
    for (let i = 0; i < q; i++) {
      const w = 1 / 10000 ** (i / q);
      // The first half encodes the column (x), the second the row (y), each as [sin | cos].
      row[i] = Math.sin(x * w); row[q + i] = Math.cos(x * w);
      row[2 * q + i] = Math.sin(y * w); row[3 * q + i] = Math.cos(y * w);
    }
  }
  return out;
}

/** A random orthogonal n x n matrix (row-major): Gram-Schmidt on Gaussian rows. */
function orthogonal(n: number, gen: Generator): Float64Array {
  const m = gen.normal(n * n);
  for (let i = 0; i < n; i++) {
    const r = m.subarray(i * n, (i + 1) * n);
    for (let j = 0; j < i; j++) {
      const o = m.subarray(j * n, (j + 1) * n);
      let dot = 0;
      for (let k = 0; k < n; k++) dot += r[k]! * o[k]!;
      for (let k = 0; k < n; k++) r[k]! -= dot * o[k]!;
    }
    let norm = 0;
    for (let k = 0; k < n; k++) norm += r[k]! * r[k]!;
    norm = Math.sqrt(norm);
    for (let k = 0; k < n; k++) r[k]! /= norm;
  }
  return m;
}

/**
 * Mimetic initialisation (Trockman and Kolter, 2023): each layer's query and key weights equal (so W_q^T W_k is about
 * 0.7 times a projection: tokens attend to tokens like themselves) and W_v^T W_o^T = 0.4 Z - 0.4 I, with 2-D sine-cosine
 * position embeddings so that "like themselves" starts out as "nearby". Pre-trained ViTs show these patterns; a ViT
 * initialised so learns on small data much faster. Only the initial values change: the model stays transformers' ViT.
 */
export function mimeticInit(model: ViTForImageClassification, patchSize: number, seed: number): void {
  const cfg = model.config, C = cfg.hidden_size, grid = SIZE / patchSize, gen = new Generator(seed * 7919 + 13);
  const state: Record<string, Tensor> = {};
  const pos = new Float32Array((grid * grid + 1) * C);
  // [CLS] keeps no position; the patches get the grid's code, scaled down so that the pixels still show through.
  sincos2d(grid, C).forEach((v, i) => { pos[C + i] = 0.3 * v; });
  state['vit.embeddings.position_embeddings'] = tensor(pos, { shape: [1, grid * grid + 1, C] });
  const qkScale = Math.sqrt(0.7 / C);
  for (let l = 0; l < cfg.num_hidden_layers; l++) {
    const p = `vit.encoder.layer.${l}.attention.`;
    // Linear weights are [out, in]: q = x W_q^T. With W_k = W_q = G, G's rows N(0, 0.7 / C): W_q^T W_k ~ 0.7 P.
    const g = Float32Array.from(gen.normal(C * C), (v) => v * qkScale);
    state[`${p}attention.query.weight`] = tensor(g, { shape: [C, C] });
    state[`${p}attention.key.weight`] = tensor(g.slice(), { shape: [C, C] });
    // W_v = s Q (Q orthogonal), W_o = (0.4 Z - 0.4 I)^T Q^T / s, so W_v^T W_o^T = 0.4 Z - 0.4 I with Z ~ N(0, 1 / C).
    const s = 0.7, Q = orthogonal(C, gen), z = gen.normal(C * C), zs = 0.4 / Math.sqrt(C);
    const m = Float64Array.from({ length: C * C }, (_, i) => zs * z[i]! - (Math.floor(i / C) === i % C ? 0.4 : 0)); // M [C, C]
    const wv = Float32Array.from(Q, (v) => s * v), wo = new Float32Array(C * C);
    // W_o = M^T Q^T / s: wo[i][j] = sum_k M[k][i] Q[j][k] / s
    for (let i = 0; i < C; i++) for (let j = 0; j < C; j++) {
      let acc = 0;
      for (let k = 0; k < C; k++) acc += m[k * C + i]! * Q[j * C + k]!;
      wo[i * C + j] = acc / s;
    }
    state[`${p}attention.value.weight`] = tensor(wv, { shape: [C, C] });
    state[`${p}output.dense.weight`] = tensor(wo, { shape: [C, C] });
  }
  model.loadStateDict(state, { strict: false });
}

// ---- the "older paradigm": a small CNN ----

/** Two conv-relu-pool stages (28 -> 14 -> 7) and a two-layer classifier: LeNet's shape at Fashion-MNIST's scale. */
export class SmallCnn extends Module {
  conv1: Conv2d;
  conv2: Conv2d;
  fc1: Linear;
  dropout: Dropout;
  fc2: Linear;

  constructor(channels: number, dropout: number) {
    super();
    this.conv1 = new Conv2d(1, channels, 3, { padding: 1 });
    this.conv2 = new Conv2d(channels, 2 * channels, 3, { padding: 1 });
    this.fc1 = new Linear(2 * channels * 7 * 7, 128);
    this.dropout = new Dropout(dropout);
    this.fc2 = new Linear(128, CLASSES);
  }

  /** [B, 1, 28, 28] -> [B, 10] */
  forward(x: Tensor): Tensor {
    const h1 = maxPool2d(relu(this.conv1.forward(x)), 2); // [B, c, 14, 14]
    const h2 = maxPool2d(relu(this.conv2.forward(h1)), 2); // [B, 2c, 7, 7]
    return this.fc2.forward(this.dropout.forward(relu(this.fc1.forward(flatten(h2, 1)))));
  }
}

// ---- the Hugging Face folder ----

export function vitConfigJson(o: VitFashionOptions): Record<string, unknown> {
  return {
    architectures: ['ViTForImageClassification'], model_type: 'vit', hidden_size: o.hidden, num_hidden_layers: o.layers, num_attention_heads: o.heads,
    intermediate_size: o.intermediate, hidden_act: 'gelu', hidden_dropout_prob: o.dropout, attention_probs_dropout_prob: o.dropout, initializer_range: 0.02,
    layer_norm_eps: 1e-12, image_size: SIZE, patch_size: o.patchSize, num_channels: 1, qkv_bias: true, encoder_stride: o.patchSize,
    id2label: Object.fromEntries(FASHION_MNIST_CLASSES.map((n, i) => [String(i), n])), label2id: Object.fromEntries(FASHION_MNIST_CLASSES.map((n, i) => [n, i])),
    problem_type: 'single_label_classification', torch_dtype: 'float32',
  };
}

/** preprocessor_config.json for transformers' ViTImageProcessor: resize to 28x28, rescale 1/255, normalise with the training split's statistics. */
export function preprocessorConfig(norm: { mean: number; std: number }): Record<string, unknown> {
  return {
    image_processor_type: 'ViTImageProcessor', do_resize: true, size: { height: SIZE, width: SIZE }, resample: 2,
    do_rescale: true, rescale_factor: 1 / 255, do_normalize: true, image_mean: [norm.mean], image_std: [norm.std],
  };
}

async function saveHfFolder(dir: string, model: ViTForImageClassification, o: VitFashionOptions, norm: { mean: number; std: number }): Promise<void> {
  await saveSafetensors(join(dir, 'model.safetensors'), model.stateDict(), { format: 'pt' });
  await writeFileAtomic(join(dir, 'config.json'), `${JSON.stringify(vitConfigJson(o), null, 2)}\n`);
  await writeFileAtomic(join(dir, 'preprocessor_config.json'), `${JSON.stringify(preprocessorConfig(norm), null, 2)}\n`);
}

// ---- pictures ----

/** A greyscale PNG (8-bit, no filter), as bytes. */
export function encodePngGray(pixels: Uint8Array, width: number, height: number): Uint8Array {
  const chunk = (type: string, data: Uint8Array): Buffer => {
    const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const out = Buffer.alloc(body.length + 8);
    out.writeUInt32BE(data.length, 0);
    body.copy(out, 4);
    out.writeUInt32BE(crc32(body), body.length + 4);
    return out;
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 0, 0, 0, 0], 8); // bit depth 8, greyscale, deflate, no filter set, no interlace
  const rows = Buffer.alloc((width + 1) * height); // each row: filter type 0, then its bytes
  for (let y = 0; y < height; y++) rows.set(pixels.subarray(y * width, (y + 1) * width), y * (width + 1) + 1);
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', header), chunk('IDAT', deflateSync(rows)), chunk('IEND', new Uint8Array(0))]);
}

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** confusion.svg: rows are the true classes, columns the predictions; cells shaded by the share of their row. */
export function confusionSvg(confusion: number[][], title: string): string {
  const cell = 44, left = 110, top = 70, n = confusion.length;
  const parts: string[] = [];
  confusion.forEach((row, i) => {
    const total = Math.max(1, row.reduce((a, b) => a + b, 0));
    row.forEach((count, j) => {
      const share = count / total;
      const fill = i === j ? `rgba(33,102,172,${(0.1 + 0.9 * share).toFixed(3)})` : `rgba(214,96,77,${Math.min(1, 4 * share).toFixed(3)})`;
      parts.push(`<rect x="${left + j * cell}" y="${top + i * cell}" width="${cell}" height="${cell}" fill="${fill}" stroke="#ddd"/>`);
      if (count) parts.push(`<text x="${left + j * cell + cell / 2}" y="${top + i * cell + cell / 2 + 4}" text-anchor="middle" font-size="11" fill="${i === j && share > 0.5 ? '#fff' : '#000'}">${count}</text>`);
    });
    parts.push(`<text x="${left - 6}" y="${top + i * cell + cell / 2 + 4}" text-anchor="end" font-size="11">${esc(FASHION_MNIST_CLASSES[i] ?? String(i))}</text>`);
    parts.push(`<text transform="translate(${left + i * cell + cell / 2},${top - 6}) rotate(-35)" font-size="11">${esc(FASHION_MNIST_CLASSES[i] ?? String(i))}</text>`);
  });
  const w = left + n * cell + 60, h = top + n * cell + 40;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" font-family="sans-serif">
<rect width="100%" height="100%" fill="#fff"/>
<text x="${w / 2}" y="18" text-anchor="middle" font-size="14">${esc(title)}</text>
${parts.join('\n')}
<text x="${left + (n * cell) / 2}" y="${h - 12}" text-anchor="middle" font-size="12">predicted class (rows: true class)</text>
</svg>
`;
}

/**
 * Attention rollout (Abnar and Zuidema, 2020): each layer's head-averaged map with the residual added (0.5 A + 0.5 I,
 * rows renormalised), multiplied through the layers; returns the [CLS] row over the patches.
 */
export function attentionRollout(layers: Float32Array[], T: number, heads: number): Float64Array {
  let roll: Float64Array | null = null;
  for (const maps of layers) {
    const a = new Float64Array(T * T);
    for (let h = 0; h < heads; h++) for (let i = 0; i < T * T; i++) a[i]! += maps[h * T * T + i]! / heads / 2;
    for (let i = 0; i < T; i++) a[i * T + i]! += 0.5;
    if (!roll) { roll = a; continue; }
    const next: Float64Array = new Float64Array(T * T);
    for (let i = 0; i < T; i++) for (let k = 0; k < T; k++) {
      const v = a[i * T + k]!;
      for (let j = 0; j < T; j++) next[i * T + j]! += v * roll[k * T + j]!;
    }
    roll = next;
  }
  return roll!.slice(1, T);
}

/** A heat colour for t in [0, 1] (black-red-yellow-white, like 'hot'). */
function heat(t: number): string {
  const c = (v: number) => Math.round(255 * Math.max(0, Math.min(1, v)));
  return `rgb(${c(3 * t)},${c(3 * t - 1)},${c(3 * t - 2)})`;
}

export interface AttentionPanel {
  image: Uint8Array;
  label: number;
  predicted: number;
  /** [CLS] attention over the patches, last layer, averaged over heads. */
  last: Float64Array;
  rollout: Float64Array;
}

/** attention.svg: per image, the image, the last layer's [CLS] attention over it and the rollout: the more attention, the brighter and more opaque the patch. */
export function attentionSvg(panels: readonly AttentionPanel[], grid: number, title: string): string {
  const scale = 5, px = SIZE * scale, gap = 14, rowH = px + 34, colW = 3 * px + 2 * gap + 30, top = 68;
  const cols = Math.min(2, panels.length), rows = Math.ceil(panels.length / cols);
  const w = cols * colW + 20, h = rows * rowH + top;
  const out: string[] = [];
  panels.forEach((p, n) => {
    const x0 = 10 + (n % cols) * colW, y0 = top + Math.floor(n / cols) * rowH;
    const href = `data:image/png;base64,${Buffer.from(encodePngGray(p.image, SIZE, SIZE)).toString('base64')}`;
    const ok = p.label === p.predicted;
    out.push(`<text x="${x0}" y="${y0 - 6}" font-size="11" fill="${ok ? '#000' : '#b2182b'}">${esc(FASHION_MNIST_CLASSES[p.label]!)}${ok ? '' : ` (predicted ${esc(FASHION_MNIST_CLASSES[p.predicted]!)})`}</text>`);
    [null, p.last, p.rollout].forEach((map, k) => {
      const x = x0 + k * (px + gap);
      out.push(`<image x="${x}" y="${y0}" width="${px}" height="${px}" href="${href}" style="image-rendering:pixelated"/>`);
      if (!map) return;
      const lo = Math.min(...map), span = Math.max(...map) - lo || 1, cell = px / grid;
      map.forEach((v, i) => {
        const t = (v - lo) / span;
        out.push(`<rect x="${(x + (i % grid) * cell).toFixed(1)}" y="${(y0 + Math.floor(i / grid) * cell).toFixed(1)}" width="${cell.toFixed(1)}" height="${cell.toFixed(1)}" fill="${heat(0.35 + 0.65 * t)}" fill-opacity="${(0.75 * t).toFixed(2)}"/>`);
      });
    });
  });
  const heads = Array.from({ length: cols }, (_, c) => ['image', 'last layer [CLS] attention', 'attention rollout']
    .map((t, k) => `<text x="${10 + c * colW + k * (px + gap)}" y="38" font-size="11" fill="#555">${t}</text>`).join('')).join('');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" font-family="sans-serif">
<rect width="100%" height="100%" fill="#fff"/>
<text x="10" y="18" font-size="14">${esc(title)}</text>
${heads}
${out.join('\n')}
</svg>
`;
}

/** The first test image of each class (up to n), with the ViT's attention maps. */
async function attentionPanels(model: ViTForImageClassification, test: Subset, norm: { mean: number; std: number }, n: number, device: string): Promise<AttentionPanel[]> {
  const picked: number[] = [];
  for (let c = 0; picked.length < Math.min(n, CLASSES); c++) {
    const i = Array.from(test.indices).find((j) => test.set.labels[j] === c % CLASSES && !picked.includes(j));
    if (i === undefined) break;
    picked.push(i);
  }
  if (picked.length === 0) return [];
  const batch = makeBatch(test, picked, norm, device);
  const out = noGrad(() => model.forward({ pixelValues: batch.pixelValues, outputAttentions: true }));
  const preds = await argmax(out.logits, 1).data();
  const maps = await Promise.all(out.attentions!.map((a) => a.data() as Promise<Float32Array>));
  const [, H, T] = out.attentions![0]!.shape as [number, number, number];
  return picked.map((i, b) => {
    const per = maps.map((m) => m.subarray(b * H * T * T, (b + 1) * H * T * T));
    const lastLayer = per[per.length - 1]!, last = new Float64Array(T - 1);
    for (let h = 0; h < H; h++) for (let j = 1; j < T; j++) last[j - 1]! += lastLayer[h * T * T + j]! / H;
    return { image: test.set.images.subarray(i * PIXELS, (i + 1) * PIXELS), label: test.set.labels[i]!, predicted: preds[b]!, last, rollout: attentionRollout(per, T, H) };
  });
}

// ---- the run ----

const pct = (x: number): string => `${(100 * x).toFixed(2)}%`;

interface ModelResult {
  name: string;
  parameters: number;
  steps: number;
  epochs: number;
  trainSeconds: number;
  imagesPerSecond: number;
  validation: { accuracy: number; loss: number };
  test: Scores;
}

export function resultsTable(rows: readonly ModelResult[]): string {
  const head = ['model', 'parameters', 'epochs', 'train time', 'validation accuracy', 'test accuracy'];
  const line = (c: string[]) => `| ${c.join(' | ')} |`;
  return [line(head), line(head.map(() => '---')), ...rows.map((r) => line([
    r.name, r.parameters.toLocaleString('en-US'), String(r.epochs), formatDuration(r.trainSeconds), pct(r.validation.accuracy), pct(r.test.accuracy),
  ]))].join('\n');
}

const exists = (p: string): Promise<boolean> => access(p).then(() => true, () => false);

/** Trains one model with the Trainer (checkpoints in dir), then scores it on validation and test. */
async function fit(name: string, model: Module, logitsOf: LogitsFn, dir: string, epochs: number, lr: number, o: VitFashionOptions, data: { train: Subset; val: Subset; test: Subset; norm: { mean: number; std: number } }, ctx: RecipeContext, device: string, soft?: SoftTargets): Promise<{ result: ModelResult; train: TrainResult }> {
  const aug: Augment = { cropPadding: o.cropPadding, flip: o.flip, erasing: o.erasing };
  const source = trainBatches(data.train, o.batchSize, o.seed, data.norm, aug, device, soft);
  const totalSteps = source.length! * epochs;
  const evalScores = async (m: Module) => {
    const { predictions, loss } = await predict(m, logitsOf, data.val, data.norm, o.evalBatchSize, device);
    return { loss, accuracy: scores(predictions, data.val, loss).accuracy };
  };
  const resume = ctx.resume && (await exists(join(dir, 'trainer_state.json')));
  const t0 = performance.now();
  const trainer = new Trainer({
    model, device, data: source, epochs,
    // Soft targets already hold the smoothed label.
    loss: (m, b: Batch) => ({ loss: crossEntropy(logitsOf(m, b.pixelValues), b.targets ?? b.labels, { labelSmoothing: b.targets ? 0 : o.labelSmoothing }), tokens: b.labels.shape[0]! }),
    evaluate: async (m, { step }) => {
      const r = await evalScores(m);
      const elapsed = (performance.now() - t0) / 1000;
      ctx.log(`vit-fashion: ${name}: epoch ${(step / source.length!).toFixed(2)}/${epochs}, validation accuracy ${pct(r.accuracy)}, ${formatDuration(elapsed)} elapsed, about ${formatDuration((elapsed / step) * (totalSteps - step))} to go`);
      return r;
    },
    optimizer: { lr, weightDecay: o.weightDecay },
    schedule: { kind: 'cosine', warmupSteps: Math.round(o.warmup * totalSteps) },
    clipGradNorm: o.clipGradNorm,
    evalEvery: o.evalEvery || source.length,
    checkpointEvery: o.checkpointEvery || source.length,
    logEvery: Math.min(50, totalSteps),
    outDir: dir, resume, seed: o.seed, skipNonfinite: ctx.skipNonfinite,
  });
  const train = await trainer.train();
  const trainSeconds = (performance.now() - t0) / 1000;
  model.eval();
  const val = await predict(model, logitsOf, data.val, data.norm, o.evalBatchSize, device);
  const test = await predict(model, logitsOf, data.test, data.norm, o.evalBatchSize, device);
  const testScores = scores(test.predictions, data.test, test.loss);
  ctx.log(`vit-fashion: ${name}: test accuracy ${pct(testScores.accuracy)} (${data.test.indices.length} images), trained ${formatDuration(trainSeconds)}${resume ? ' (resumed: this part only)' : ''}`);
  return {
    train,
    result: {
      name, parameters: model.numParameters(), steps: train.step, epochs, trainSeconds,
      imagesPerSecond: (totalSteps * o.batchSize) / trainSeconds,
      validation: { accuracy: scores(val.predictions, data.val, val.loss).accuracy, loss: val.loss }, test: testScores,
    },
  };
}

async function run(o: VitFashionOptions, ctx: RecipeContext): Promise<Record<string, unknown>> {
  check(o);
  const started = performance.now();
  const device = ctx.device ?? getDefaultDevice();
  const fm = await loadFashionMnist(o.dataDir ? { dir: o.dataDir } : {});
  const { train, val } = splitTrain(fm.train, o.valSize, o.seed, o.trainLimit);
  // The test images are only read after training, to score the final models.
  const testIdx = Int32Array.from({ length: o.testLimit ? Math.min(o.testLimit, fm.test.count) : fm.test.count }, (_, i) => i);
  const test: Subset = { set: fm.test, indices: testIdx };
  const norm = pixelStats(train);
  const data = { train, val, test, norm };
  ctx.log(`vit-fashion: Fashion-MNIST: train ${train.indices.length}, validation ${val.indices.length} (held out of the 60000 training images, seed ${o.seed}), test ${test.indices.length}; pixels normalised with mean ${norm.mean.toFixed(4)}, std ${norm.std.toFixed(4)}`);

  // The CNN first: it is the comparison and, with --distill, the ViT's teacher.
  let cnnResult: ModelResult | null = null;
  let soft: SoftTargets | undefined;
  if (o.cnnEpochs > 0) {
    const dir = join(ctx.outDir, 'cnn'), done = join(dir, 'result.json'), weights = join(dir, 'model.safetensors');
    manualSeed(o.seed);
    const cnn = new SmallCnn(o.cnnChannels, 0.25);
    const cnnLogits: LogitsFn = (m, x) => (m as SmallCnn).forward(x);
    if (ctx.resume && (await exists(done))) {
      cnnResult = JSON.parse(await readFile(done, 'utf8')) as ModelResult;
      if (o.distill > 0) {
        cnn.loadStateDict(await loadSafetensors(weights));
        cnn.to(device);
      }
      ctx.log(`vit-fashion: CNN: finished earlier (${done})`);
    } else {
      await mkdir(dir, { recursive: true });
      ctx.log(`vit-fashion: CNN: conv ${o.cnnChannels}, conv ${2 * o.cnnChannels}, each 3x3 with max-pool, dense 128: ${cnn.numParameters().toLocaleString('en-US')} parameters, ${o.cnnEpochs} epochs`);
      cnnResult = (await fit('CNN', cnn, cnnLogits, dir, o.cnnEpochs, o.cnnLr, o, data, ctx, device)).result;
      await saveSafetensors(weights, cnn.stateDict(), { format: 'pt' });
      await writeFileAtomic(done, `${JSON.stringify(cnnResult, null, 2)}\n`);
    }
    if (o.distill > 0) {
      cnn.eval();
      const t0 = performance.now();
      soft = { probs: await teacherProbs(cnn, cnnLogits, train, norm, o.evalBatchSize, device, o.flip), weight: o.distill, labelSmoothing: o.labelSmoothing };
      ctx.log(`vit-fashion: ViT targets: ${o.distill} x the CNN's probabilities of the image${o.flip ? ' (or its mirror image)' : ''} + ${1 - o.distill} x the label (smoothed by ${o.labelSmoothing}); the CNN's probabilities took ${formatDuration((performance.now() - t0) / 1000)}`);
    }
  }

  manualSeed(o.seed);
  const vit = new ViTForImageClassification(vitConfig(new ConfigReader(vitConfigJson(o), 'vit-fashion: config')));
  if (o.mimeticInit) mimeticInit(vit, o.patchSize, o.seed);
  const tokens = (SIZE / o.patchSize) ** 2 + 1;
  ctx.log(`vit-fashion: ViT: patch ${o.patchSize} (${tokens} tokens), hidden ${o.hidden}, ${o.layers} layers, ${o.heads} heads, MLP ${o.intermediate}: ${vit.numParameters().toLocaleString('en-US')} parameters, ${o.epochs} epochs of batches of ${o.batchSize} on ${device}`);
  // logits(): forward's logits with the last layer run for [CLS] alone, 1.2x the images per second here.
  const vitLogits: LogitsFn = (m, x) => (m as ViTForImageClassification).logits(x);
  const v = await fit('ViT', vit, vitLogits, ctx.outDir, o.epochs, o.lr, o, data, ctx, device, soft);
  await saveHfFolder(ctx.outDir, vit, o, norm);
  const rows = cnnResult ? [v.result, cnnResult] : [v.result];

  const table = resultsTable(rows);
  ctx.log(`\n${table}\n`);
  await writeFileAtomic(join(ctx.outDir, 'confusion.svg'), confusionSvg(v.result.test.confusion, `ViT on Fashion-MNIST: test accuracy ${pct(v.result.test.accuracy)} (${test.indices.length} images)`));
  if (cnnResult) await writeFileAtomic(join(ctx.outDir, 'confusion-cnn.svg'), confusionSvg(cnnResult.test.confusion, `CNN on Fashion-MNIST: test accuracy ${pct(cnnResult.test.accuracy)}`));
  const panels = await attentionPanels(vit, test, norm, o.attentionImages, device);
  if (panels.length) await writeFileAtomic(join(ctx.outDir, 'attention.svg'), attentionSvg(panels, SIZE / o.patchSize, `ViT attention on test images (${o.layers} layers, patch ${o.patchSize})`));
  const evals = v.train.metrics.filter((r) => r.kind === 'eval');
  if (evals.length) {
    await writeFileAtomic(join(ctx.outDir, 'validation.svg'), lineChart([{ name: 'ViT validation accuracy', points: evals.map((r) => [r.step / (v.result.steps / o.epochs), r['accuracy'] as number]) }], { title: 'vit-fashion: validation accuracy', xLabel: 'epoch', yLabel: 'accuracy' }));
  }
  const seconds = (performance.now() - started) / 1000;
  ctx.log(`vit-fashion: ViT test accuracy ${pct(v.result.test.accuracy)}${cnnResult ? `, CNN ${pct(cnnResult.test.accuracy)}` : ''}; ${formatDuration(seconds)} in all`);
  return {
    data: { train: train.indices.length, validation: val.indices.length, test: test.indices.length, normalization: norm, source: o.dataDir || '/usr/share/datasets/fashion-mnist (Debian dataset-fashion-mnist)' },
    vit: v.result,
    cnn: cnnResult,
    table,
    target: { accuracy: TARGET_ACCURACY, met: v.result.test.accuracy >= TARGET_ACCURACY },
    seconds: Math.round(seconds),
    savedModel: `${ctx.outDir} (config.json, model.safetensors, preprocessor_config.json): attend classify-image --model ${ctx.outDir} image.png`,
    pictures: ['confusion.svg', ...(cnnResult ? ['confusion-cnn.svg'] : []), ...(panels.length ? ['attention.svg'] : []), ...(evals.length ? ['validation.svg'] : []), 'loss.svg'],
  };
}

export const vitFashionRecipe: Recipe<VitFashionOptions> = {
  name: 'vit-fashion',
  summary: 'a vision transformer from scratch on Fashion-MNIST, a small CNN on the same split: test accuracy, confusion matrix, attention maps',
  chapter: 'vision transformers',
  defaults: {
    seed: 0, dataDir: '', valSize: 5000, trainLimit: 0, testLimit: 0,
    patchSize: 4, hidden: 96, layers: 4, heads: 3, intermediate: 192, dropout: 0,
    batchSize: 64, epochs: 27, lr: 1e-3, warmup: 0.05, weightDecay: 0.05, labelSmoothing: 0.1, clipGradNorm: 1,
    cropPadding: 0, flip: true, erasing: 0,
    evalEvery: 0, checkpointEvery: 0, evalBatchSize: 500, cnnEpochs: 3, cnnChannels: 32, cnnLr: 1e-3, distill: 0.5, mimeticInit: true, attentionImages: 10,
  },
  smoke: {
    valSize: 500, trainLimit: 1536, testLimit: 500, hidden: 32, layers: 2, heads: 2, intermediate: 64, patchSize: 7,
    batchSize: 64, epochs: 3, lr: 5e-3, warmup: 0.1, labelSmoothing: 0, erasing: 0,
    cnnEpochs: 1, cnnChannels: 8, cnnLr: 2e-3, attentionImages: 4,
  },
  help: {
    seed: 'seed of the validation split, the initial weights, the batch order and the augmentation',
    dataDir: 'folder of the four Fashion-MNIST .gz files (default: /usr/share/datasets/fashion-mnist from the Debian package dataset-fashion-mnist)',
    valSize: 'training images held out for validation (model selection; the test set is only used at the end)',
    trainLimit: 'train on only this many of the remaining training images (0 = all)',
    testLimit: 'score on only the first this many test images (0 = all 10000)',
    patchSize: 'patch size (divides 28): (28 / patch)^2 tokens plus [CLS]',
    hidden: 'ViT hidden size',
    layers: 'ViT encoder layers',
    heads: 'ViT attention heads (must divide --hidden)',
    intermediate: 'ViT MLP width',
    dropout: 'ViT dropout (hidden and attention)',
    batchSize: 'images per training batch (ViT and CNN)',
    epochs: 'ViT passes over the training images',
    lr: 'ViT peak learning rate (AdamW)',
    warmup: 'fraction of the steps spent warming the learning rate up, before the cosine decay',
    weightDecay: 'AdamW weight decay (not on biases and LayerNorm weights)',
    labelSmoothing: 'label smoothing of the training loss',
    clipGradNorm: 'clip the gradient norm to this',
    cropPadding: 'augmentation: random shifts of up to this many pixels (random crop of the zero-padded image; off by default: Fashion-MNIST is centred and shifts cost accuracy, docs/RESULTS.md)',
    flip: 'augmentation: random horizontal flips',
    erasing: 'augmentation: probability of erasing a random rectangle',
    evalEvery: 'steps between validations (0 = once per epoch)',
    checkpointEvery: 'steps between checkpoints (0 = once per epoch)',
    evalBatchSize: 'images per batch when evaluating',
    cnnEpochs: 'CNN passes over the training images (0 = no CNN)',
    cnnChannels: 'CNN channels of the first conv (the second has twice as many)',
    cnnLr: 'CNN peak learning rate (AdamW)',
    distill: "ViT trained on this share of the CNN's probabilities and the rest of the label (DeiT-style soft distillation from the CNN trained first; 0 = labels only)",
    mimeticInit: "initialise attention mimetically (W_q = W_k, W_v W_o ~ -0.4 I) with 2-D sine-cosine positions (false: transformers' random init)",
    attentionImages: 'test images drawn with their attention maps (one per class, up to 10)',
  },
  run,
};
