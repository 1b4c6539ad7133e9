// The vit-fashion recipe: its batches (normalisation, shifts, flips, erasing), split, scores, rollout and PNG by hand;
// a smoke run whose saved folder AutoModelForImageClassification reloads to the same predictions; the missing dataset.

import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { beforeAll, describe, expect, test } from 'vitest';
import '../index.js';
import { runCli } from '../cli/cli.js';
import { trainCommand } from '../cli/train.js';
import { FASHION_MNIST_CLASSES, type ImageSet } from '../data/fashion-mnist.js';
import { AutoModelForImageClassification } from '../models/auto.js';
import { Generator } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';
import { vitFashionRecipe } from './vit-fashion.js';
import { attentionRollout, encodePngGray, makeBatch, mimeticInit, pixelStats, predict, scores, sincos2d, splitTrain, teacherProbs, trainBatches, vitConfigJson, type Subset } from './vit-fashion.js';
import { reshape, slice } from '../autograd/ops/movement.js';
import { Module } from '../nn/module.js';
import { ConfigReader } from '../models/base.js';
import { ViTForImageClassification, vitConfig } from '../models/vit.js';

/** n 28x28 images: image i has pixel (y, x) = (i + y * 28 + x) % 256, label i % 10. */
function synthetic(n: number): ImageSet {
  const images = new Uint8Array(n * 784);
  for (let i = 0; i < n; i++) for (let p = 0; p < 784; p++) images[i * 784 + p] = (i + p) % 256;
  return { images, labels: Uint8Array.from({ length: n }, (_, i) => i % 10), count: n, rows: 28, cols: 28 };
}
const all = (set: ImageSet): Subset => ({ set, indices: Int32Array.from({ length: set.count }, (_, i) => i) });

describe('data', () => {
  const norm = { mean: 0.25, std: 0.5 };
  test('batches without augmentation: (x / 255 - mean) / std in [B, 1, 28, 28], with the labels', async () => {
    const s = all(synthetic(4));
    const { pixelValues, labels } = makeBatch(s, [3, 1], norm, 'cpu');
    expect(pixelValues.shape).toEqual([2, 1, 28, 28]);
    const x = await pixelValues.data();
    for (const [b, i] of [[0, 3], [1, 1]] as const) for (const p of [0, 100, 783]) expect(x[b * 784 + p]).toBeCloseTo((((i + p) % 256) / 255 - 0.25) / 0.5, 5);
    expect(Array.from(await labels.data())).toEqual([3, 1]);
  });
  test('augmentation: each image is its original shifted by at most the padding, maybe mirrored, background outside', async () => {
    const s = all(synthetic(64));
    const aug = { cropPadding: 2, flip: true, erasing: 0 };
    const x = await makeBatch(s, Array.from(s.indices), norm, 'cpu', aug, new Generator(1)).pixelValues.data();
    const value = (i: number, y: number, c: number) => (y < 0 || y > 27 || c < 0 || c > 27 ? -0.5 : (((i + y * 28 + c) % 256) / 255 - 0.25) / 0.5);
    const seen = new Set<string>();
    for (let i = 0; i < 64; i++) {
      const img = Array.from(x.subarray(i * 784, (i + 1) * 784));
      const found: string[] = [];
      for (let dy = -2; dy <= 2; dy++) for (let dx = -2; dx <= 2; dx++) for (const flip of [false, true]) {
        const ok = img.every((v, p) => {
          const y = Math.floor(p / 28), c = p % 28, sx = flip ? 27 - (c + dx) : c + dx;
          return Math.abs(v - value(i, y + dy, sx)) < 1e-5;
        });
        if (ok) found.push(`${dy},${dx},${flip}`);
      }
      expect(found, `image ${i}`).toHaveLength(1);
      seen.add(found[0]!);
    }
    expect(seen.size).toBeGreaterThan(20); // shifts and flips do vary
    // The same generator state gives the same batch; another gives another.
    expect(Array.from(await makeBatch(s, [5], norm, 'cpu', aug, new Generator(9)).pixelValues.data())).toEqual(Array.from(await makeBatch(s, [5], norm, 'cpu', aug, new Generator(9)).pixelValues.data()));
  });
  test('training batches: every image once per epoch, reshuffled each epoch, and a later start gives the same batches (resume)', async () => {
    const s = all(synthetic(40));
    const src = trainBatches(s, 8, 3, norm, { cropPadding: 1, flip: true, erasing: 0.5 }, 'cpu');
    expect(src.length).toBe(5);
    const epoch = async (e: number, start = 0) => Promise.all(Array.from(src.batches(e, start) as Iterable<{ pixelValues: Tensor; labels: Tensor }>, async (b) => [Array.from(await b.labels.data()), Array.from(await b.pixelValues.data())] as const));
    const e0 = await epoch(0), e1 = await epoch(1);
    expect(e0.flatMap(([y]) => y).sort()).toEqual(Array.from({ length: 40 }, (_, i) => i % 10).sort());
    expect(e0.map(([y]) => y)).not.toEqual(e1.map(([y]) => y));
    expect(await epoch(1, 3)).toEqual(e1.slice(3));
  });
  test('distillation targets: the teacher probabilities of the view each image got (plain or mirrored), mixed with the smoothed label', async () => {
    const s = all(synthetic(32));
    // Teacher "probabilities" that say which image and view they belong to: class c of image i, view v = (i + 10 v + c) / 1000.
    const probs = Float32Array.from({ length: 32 * 2 * 10 }, (_, k) => (Math.floor(k / 20) + 10 * (Math.floor(k / 10) % 2) + (k % 10)) / 1000);
    const aug = { cropPadding: 0, flip: true, erasing: 0 };
    const ids = [5, 17, 2, 30, 11, 8, 23, 0];
    const b = makeBatch(s, ids, norm, 'cpu', aug, new Generator(4), { probs, weight: 0.25, labelSmoothing: 0.1 });
    const [x, t] = [await b.pixelValues.data(), await b.targets!.data()];
    const plain = await makeBatch(s, ids, norm, 'cpu').pixelValues.data();
    const views = new Set<number>();
    ids.forEach((id, r) => {
      const mirrored = x[r * 784] !== plain[r * 784] ? 1 : 0; // pixel (0, 0) differs between the views of these images
      views.add(mirrored);
      for (let c = 0; c < 10; c++) {
        const label = (c === id % 10 ? 0.9 : 0) + 0.01;
        expect(t[r * 10 + c]).toBeCloseTo(0.25 * ((id + 10 * mirrored + c) / 1000) + 0.75 * label, 6);
      }
    });
    expect(views.size).toBe(2);
  });
  test("the teacher's probabilities: softmax of its logits for each image and its mirror image, at [image, view, class]", async () => {
    const s: Subset = { set: synthetic(6), indices: Int32Array.from([4, 1, 3]) };
    // A "model" whose logits are the first 10 pixels of the top row.
    const firstPixels = (_m: Module, x: Tensor) => slice(reshape(x, [x.shape[0]!, 784]), 1, 0, 10);
    const p = await teacherProbs(new Module(), firstPixels, s, norm, 2, 'cpu', true);
    const softmax = (v: number[]) => { const e = v.map((a) => Math.exp(a - Math.max(...v))); return e.map((a) => a / e.reduce((u, w) => u + w, 0)); };
    const pixel = (i: number, col: number) => (((i + col) % 256) / 255 - 0.25) / 0.5;
    for (const i of [4, 1, 3]) {
      const want = [softmax(Array.from({ length: 10 }, (_, c) => pixel(i, c))), softmax(Array.from({ length: 10 }, (_, c) => pixel(i, 27 - c)))];
      for (const v of [0, 1]) for (let c = 0; c < 10; c++) expect(p[(i * 2 + v) * 10 + c]).toBeCloseTo(want[v]![c]!, 6);
    }
    expect(p.subarray(0, 20).every((v) => v === 0)).toBe(true); // image 0 is not in the subset
    // Without flips only the plain view is needed.
    const plainOnly = await teacherProbs(new Module(), firstPixels, s, norm, 2, 'cpu', false);
    for (const i of [4, 1, 3]) {
      expect(Array.from(plainOnly.subarray(i * 20, i * 20 + 10))).toEqual(Array.from(p.subarray(i * 20, i * 20 + 10)));
      expect(plainOnly.subarray(i * 20 + 10, i * 20 + 20).every((v) => v === 0)).toBe(true);
    }
  });
  test('random erasing sets one rectangle to 0 (the mean), leaving the rest', async () => {
    const s = all(synthetic(8));
    const plain = await makeBatch(s, Array.from(s.indices), norm, 'cpu').pixelValues.data();
    const x = await makeBatch(s, Array.from(s.indices), norm, 'cpu', { cropPadding: 0, flip: false, erasing: 0.999 }, new Generator(3)).pixelValues.data();
    for (let i = 0; i < 8; i++) {
      const changed = Array.from({ length: 784 }, (_, p) => p).filter((p) => x[i * 784 + p] !== plain[i * 784 + p]);
      expect(changed.every((p) => x[i * 784 + p] === 0)).toBe(true);
      const ys = changed.map((p) => Math.floor(p / 28)), xs = changed.map((p) => p % 28);
      const h = Math.max(...ys) - Math.min(...ys) + 1, w = Math.max(...xs) - Math.min(...xs) + 1;
      // A filled rectangle of 2%..33% of the image (pixels already 0 may hide a corner, never more than a few).
      expect(changed.length).toBeGreaterThanOrEqual(h * w - 2);
      expect(h * w).toBeGreaterThanOrEqual(0.02 * 784 - 2);
      expect(h * w).toBeLessThanOrEqual(0.33 * 784 + 28);
    }
  });
  test('the validation split is seeded, disjoint from training, and the pixel statistics are the plain mean and std', () => {
    const set = synthetic(100);
    const a = splitTrain(set, 10, 4, 0), b = splitTrain(set, 10, 4, 0), c = splitTrain(set, 10, 5, 0);
    expect(a.val.indices.length).toBe(10);
    expect(new Set([...a.val.indices, ...a.train.indices]).size).toBe(100);
    expect(Array.from(a.val.indices)).toEqual(Array.from(b.val.indices));
    expect(Array.from(a.val.indices)).not.toEqual(Array.from(c.val.indices));
    expect(splitTrain(set, 10, 4, 7).train.indices.length).toBe(7);
    const flat = { images: new Uint8Array(2 * 784).fill(255, 0, 784), labels: new Uint8Array(2), count: 2, rows: 28, cols: 28 };
    const st = pixelStats(all(flat));
    expect(st.mean).toBeCloseTo(0.5, 10);
    expect(st.std).toBeCloseTo(0.5, 10);
  });
  test('scores: accuracy, confusion[true][predicted] and per-class accuracy', () => {
    const s = all(synthetic(4)); // labels 0, 1, 2, 3
    const r = scores([0, 1, 1, 0], s, 0.5);
    expect(r.accuracy).toBe(0.5);
    expect(r.confusion[2]![1]).toBe(1);
    expect(r.confusion[3]![0]).toBe(1);
    expect(r.perClass).toMatchObject({ 'T-shirt/top': 1, Trouser: 1, Pullover: 0, Dress: 0 });
  });
});

describe('mimetic initialisation', () => {
  test('2-D sine-cosine positions: [sin x w | cos x w | sin y w | cos y w], w = 1 / 10000^(i / (C/4)), worked by hand', () => {
    const p = sincos2d(2, 8); // 4 patches of 8 values; patch 1 is (x 1, y 0), patch 2 is (x 0, y 1)
    const want1 = [Math.sin(1), Math.sin(0.01), Math.cos(1), Math.cos(0.01), 0, 0, 1, 1];
    const want2 = [0, 0, 1, 1, Math.sin(1), Math.sin(0.01), Math.cos(1), Math.cos(0.01)];
    want1.forEach((v, i) => expect(p[8 + i]).toBeCloseTo(v, 6));
    want2.forEach((v, i) => expect(p[16 + i]).toBeCloseTo(v, 6));
  });

  test('W_q = W_k with W_q,h^T W_k,h about 0.7 on its range, W_v^T W_o^T about 0.4 Z - 0.4 I, positions 0.3 sincos and none for [CLS]', async () => {
    const o = { ...vitFashionRecipe.defaults, hidden: 96, heads: 3, layers: 2, patchSize: 4 };
    const model = new ViTForImageClassification(vitConfig(new ConfigReader(vitConfigJson(o), 'test')));
    mimeticInit(model, 4, 0);
    const sd = model.stateDict(), C = 96, hs = 32;
    const get = async (k: string) => Float64Array.from(await sd[k]!.data() as Float32Array);
    const pos = await get('vit.embeddings.position_embeddings'), code = sincos2d(7, C);
    expect(pos.subarray(0, C).every((v) => v === 0)).toBe(true);
    code.forEach((v, i) => expect(pos[C + i]).toBeCloseTo(0.3 * v, 6));
    for (const l of [0, 1]) {
      const p = `vit.encoder.layer.${l}.attention.`;
      const q = await get(`${p}attention.query.weight`), k = await get(`${p}attention.key.weight`);
      expect(Array.from(q)).toEqual(Array.from(k));
      // Each head's W_q,h^T W_k,h has hs non-zero eigenvalues; their mean is trace / hs = |W_q,h|^2 / hs.
      for (let h = 0; h < 3; h++) expect(q.subarray(h * hs * C, (h + 1) * hs * C).reduce((a, v) => a + v * v, 0) / hs).toBeCloseTo(0.7, 1);
      // P = W_v^T W_o^T, [C, C]: P[i][j] = sum_k W_v[k][i] W_o[j][k] (weights are [out, in]).
      const v = await get(`${p}attention.value.weight`), w = await get(`${p}output.dense.weight`);
      let diag = 0, off = 0;
      for (let i = 0; i < C; i++) for (let j = 0; j < C; j++) {
        let acc = 0;
        for (let m = 0; m < C; m++) acc += v[m * C + i]! * w[j * C + m]!;
        if (i === j) diag += acc / C; else off += (acc * acc) / (C * (C - 1));
      }
      expect(diag).toBeCloseTo(-0.4, 1);
      expect(Math.sqrt(off)).toBeGreaterThan(0.3 / Math.sqrt(C));
      expect(Math.sqrt(off)).toBeLessThan(0.5 / Math.sqrt(C));
    }
  });
});

describe('pictures', () => {
  test('attention rollout: one uniform layer gives the uniform map; two layers multiply, worked by hand', () => {
    const T = 3, uniform = new Float32Array(T * T).fill(1 / 3);
    expect(Array.from(attentionRollout([uniform], T, 1))).toEqual([0.5 / 3, 0.5 / 3].map((v) => expect.closeTo(v, 6)));
    // Two heads that average to "everyone attends to [CLS]": each layer is 0.5 A + 0.5 I.
    const toCls = new Float32Array(2 * T * T);
    for (let h = 0; h < 2; h++) for (let i = 0; i < T; i++) toCls[h * T * T + i * T] = 1;
    // A' rows: [1, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5]; (A' A') row 0 = [1, 0, 0].
    expect(Array.from(attentionRollout([toCls, toCls], T, 2))).toEqual([0, 0]);
    // Layer 1 toCls, layer 2 uniform: rollout = U' C' with U' = 0.5/3 + 0.5 I; row 0 of U' is [2/3, 1/6, 1/6], so
    // row 0 of U' C' = [2/3 + 1/6 * 0.5 * 2, 1/6 * 0.5, 1/6 * 0.5].
    const mixed = attentionRollout([toCls, new Float32Array(2 * T * T).fill(1 / 3)], T, 2);
    expect(Array.from(mixed)).toEqual([0.5 / 6, 0.5 / 6].map((v) => expect.closeTo(v, 6)));
  });
  test('the PNG encoder writes what an independent decoder (sharp / libspng) reads back', async () => {
    const px = Uint8Array.from({ length: 28 * 20 }, (_, i) => (i * 37) % 256);
    const { data, info } = await sharp(Buffer.from(encodePngGray(px, 28, 20))).toColourspace('b-w').raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height, info.channels]).toEqual([28, 20, 1]);
    expect(Array.from(data)).toEqual(Array.from(px));
  });
});

describe('the recipe', () => {
  let dir: string;
  let results: Record<string, unknown>;
  beforeAll(async () => {
    dir = join(await mkdtemp(join(tmpdir(), 'attend-vit-fashion-')), 'run');
    // On wasm: tests keep the reference backend ('cpu') as the default device, far too slow to train with.
    await trainCommand.run(['vit-fashion', '--smoke', '--device', 'wasm', '--out', dir], () => undefined);
    results = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as Record<string, unknown>;
  }, 120_000);

  test('--smoke learns above chance and writes the results, pictures and Hugging Face folder', () => {
    expect(results['data']).toMatchObject({ train: 1536, validation: 500, test: 500 });
    const vit = results['vit'] as { test: { accuracy: number; confusion: number[][] }; steps: number };
    const cnn = results['cnn'] as { test: { accuracy: number } };
    // Chance is 10%; with 500 test images 25% is more than 10 standard deviations above it.
    expect(vit.test.accuracy).toBeGreaterThan(0.25);
    expect(cnn.test.accuracy).toBeGreaterThan(0.25);
    expect(vit.test.confusion.flat().reduce((a, b) => a + b, 0)).toBe(500);
    expect(results['table']).toMatch(/\| ViT \|.*\n\| CNN \|/);
    for (const f of ['config.json', 'model.safetensors', 'preprocessor_config.json', 'confusion.svg', 'confusion-cnn.svg', 'attention.svg', 'loss.svg', 'metrics.jsonl']) expect(existsSync(join(dir, f)), f).toBe(true);
    expect(readFileSync(join(dir, 'attention.svg'), 'utf8')).toMatch(/data:image\/png;base64,/);
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    expect(config).toMatchObject({ model_type: 'vit', num_channels: 1, image_size: 28, patch_size: 7, architectures: ['ViTForImageClassification'] });
    expect(config['id2label']).toMatchObject({ 0: 'T-shirt/top', 9: 'Ankle boot' });
    const pre = JSON.parse(readFileSync(join(dir, 'preprocessor_config.json'), 'utf8')) as Record<string, unknown>;
    const norm = (results['data'] as { normalization: { mean: number; std: number } }).normalization;
    expect(pre).toMatchObject({ image_processor_type: 'ViTImageProcessor', do_resize: true, size: { height: 28, width: 28 }, do_rescale: true, rescale_factor: 1 / 255, do_normalize: true, image_mean: [norm.mean], image_std: [norm.std] });
  });

  test('--resume of a finished run reloads the CNN teacher and gives the same results', async () => {
    const lines: string[] = [];
    const again = await vitFashionRecipe.run({ ...vitFashionRecipe.defaults, ...vitFashionRecipe.smoke }, { outDir: dir, resume: true, device: 'wasm', log: (l) => lines.push(l) });
    expect(lines.join('\n')).toMatch(/CNN: finished earlier/);
    expect((again['vit'] as { test: unknown }).test).toEqual((results['vit'] as { test: unknown }).test);
    expect(again['cnn']).toEqual(results['cnn']);
  }, 60_000);

  test('the saved folder reloads through AutoModelForImageClassification to the same test predictions', async () => {
    const { loadFashionMnist } = await import('../data/fashion-mnist.js');
    const model = await AutoModelForImageClassification.fromPretrained(dir, { device: 'wasm' });
    const fm = await loadFashionMnist();
    const test: Subset = { set: fm.test, indices: Int32Array.from({ length: 500 }, (_, i) => i) };
    const norm = (results['data'] as { normalization: { mean: number; std: number } }).normalization;
    const { predictions, loss } = await predict(model, (m, x) => (m as typeof model).forward({ pixelValues: x }).logits, test, norm, 250, 'wasm');
    const saved = (results['vit'] as { test: { confusion: number[][]; loss: number } }).test;
    expect(scores(predictions, test, loss).confusion).toEqual(saved.confusion);
    expect(loss).toBeCloseTo(saved.loss, 5);
  });

  test('attend classify-image reads the folder: a test image written as PNG gets the label the model predicts', async () => {
    const { loadFashionMnist } = await import('../data/fashion-mnist.js');
    const fm = await loadFashionMnist();
    const model = await AutoModelForImageClassification.fromPretrained(dir, { device: 'wasm' });
    const norm = (results['data'] as { normalization: { mean: number; std: number } }).normalization;
    const test: Subset = { set: fm.test, indices: Int32Array.from([0, 1, 2]) };
    const { predictions } = await predict(model, (m, x) => (m as typeof model).forward({ pixelValues: x }).logits, test, norm, 3, 'wasm');
    const files = await Promise.all([0, 1, 2].map(async (i) => {
      const f = join(dir, `test-${i}.png`);
      await writeFile(f, encodePngGray(fm.test.images.subarray(784 * i, 784 * (i + 1)), 28, 28));
      return f;
    }));
    let printed = '';
    await runCli(['classify-image', '--model', dir, '--top-k', '1', ...files], (t) => { printed += t; });
    const top = printed.trim().split('\n').filter((l) => l.startsWith('  ')).map((l) => l.trim().split(/\s+/).slice(1).join(' '));
    expect(top).toEqual(Array.from(predictions, (p) => FASHION_MNIST_CLASSES[p]));
  });

  test('a missing dataset names the Debian package and how to install it', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'attend-no-fashion-'));
    const opts = { ...vitFashionRecipe.defaults, ...vitFashionRecipe.smoke, dataDir: empty };
    const err = vitFashionRecipe.run(opts, { outDir: join(empty, 'out'), resume: false, log: () => undefined });
    await expect(err).rejects.toThrow(/Fashion-MNIST not found: .*train-images-idx3-ubyte\.gz is missing\. It comes with the Debian package 'dataset-fashion-mnist' \(sudo apt-get install dataset-fashion-mnist\)/);
  });

  test('bad options name the option', async () => {
    const out = await mkdtemp(join(tmpdir(), 'attend-vit-fashion-bad-'));
    const bad = (patch: Record<string, unknown>) => vitFashionRecipe.run({ ...vitFashionRecipe.defaults, ...patch } as typeof vitFashionRecipe.defaults, { outDir: out, resume: false, log: () => undefined });
    await expect(bad({ patchSize: 5 })).rejects.toThrow(/--patch-size must be a divisor of the image size 28/);
    await expect(bad({ heads: 5 })).rejects.toThrow(/--hidden \(96\) must be divisible by --heads \(5\)/);
    await expect(bad({ valSize: 60000 })).rejects.toThrow(/--val-size must be below the 60000 training images/);
    await expect(bad({ erasing: 1.5 })).rejects.toThrow(/--erasing must be a number in \[0, 1\)/);
    await expect(bad({ seed: 2e6 })).rejects.toThrow(/--seed must be an integer from 0 to 1000000/);
    await expect(bad({ distill: 1.5 })).rejects.toThrow(/--distill must be a weight in \[0, 1\]/);
    await expect(bad({ cnnEpochs: 0 })).rejects.toThrow(/--distill needs the CNN as its teacher: --cnn-epochs above 0/);
    await expect(bad({ cropPadding: 2 })).rejects.toThrow(/--distill uses the CNN's probabilities of each training image and its mirror image, computed once: it cannot follow --crop-padding 2/);
  });
});
