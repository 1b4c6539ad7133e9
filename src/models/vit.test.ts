// ViT against Hugging Face transformers: logits, hidden states, gradients and an AdamW step on every backend;
// attention maps, the classification losses, bad images and configs.

import { copyFile, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import '../index.js';
import { linear } from '../autograd/ops/matmul.js';
import { select } from '../autograd/ops/movement.js';
import type { Module } from '../nn/module.js';
import { AdamW } from '../optim/adamw.js';
import { listDevices } from '../tensor/backend.js';
import { randn, tensor, zeros } from '../tensor/create.js';
import type { Tensor } from '../tensor/tensor.js';
import { expectClose } from '../test-util/fixtures.js';
import { expectGradsMatch, expectTensorClose, hfDir, loadRef } from '../test-util/hf-fixtures.js';
import { AutoModelForImageClassification } from './auto.js';
import { ConfigReader } from './base.js';
import { ViTForImageClassification, vitConfig } from './vit.js';

/**
 * transformers 5 names the gradients and AdamW results after its internal modules (`vit.layers.0.attention.q_proj`,
 * `mlp.fc1`), while checkpoints keep the original names (`vit.encoder.layer.0.attention.attention.query`,
 * `intermediate.dense`): the reference keys in checkpoint names.
 */
function checkpointName(key: string): string {
  return key
    .replace(/\bvit\.layers\.(\d+)\./, 'vit.encoder.layer.$1.')
    .replace(/\.attention\.([qkv])_proj\./, (_, c: string) => `.attention.attention.${{ q: 'query', k: 'key', v: 'value' }[c]}.`)
    .replace('.attention.o_proj.', '.attention.output.dense.')
    .replace('.mlp.fc1.', '.intermediate.dense.')
    .replace('.mlp.fc2.', '.output.dense.');
}

async function vitRef(device?: string): Promise<Record<string, Tensor>> {
  const ref = await loadRef('vit', device);
  return Object.fromEntries(Object.entries(ref).map(([k, v]) => {
    const m = /^(grad|adamw)\.(.*)$/.exec(k);
    return [m ? `${m[1]}.${checkpointName(m[2]!)}` : k, v];
  }));
}

/**
 * expectGradsMatch, except for the attention key biases: they shift every score of a query row by the same amount, so
 * softmax cancels them and their true gradient is zero; the reference holds float32 rounding noise there (~1e-9),
 * which a bound relative to that noise cannot compare. They are checked to be zero next to the other gradients instead.
 */
async function expectViTGradsMatch(model: Module, logits: Tensor, ref: Record<string, Tensor>): Promise<void> {
  const isKeyBias = (k: string) => k.endsWith('.attention.attention.key.bias');
  await expectGradsMatch(model, logits, Object.fromEntries(Object.entries(ref).filter(([k]) => !isKeyBias(k))));
  const largest = Math.max(...(await Promise.all(model.parameters().map(async (p) => Math.max(...Array.from(await p.grad!.data(), Math.abs))))));
  const keyBiases = model.namedParameters().filter(([k]) => isKeyBias(k));
  expect(keyBiases.length).toBe(2);
  for (const [name, p] of keyBiases) expectClose(await p.grad!.data(), new Array<number>(p.numel()).fill(0), 1e-6 * largest, 0, `gradient of ${name}`);
}

for (const device of listDevices()) {
  describe(`ViT on ${device}`, () => {
    test('logits and hidden states match transformers', async () => {
      const ref = await vitRef(device);
      const model = await AutoModelForImageClassification.fromPretrained(hfDir('vit'), { device }) as ViTForImageClassification;
      const out = model.forward({ pixelValues: ref['pixel_values']! });
      await expectTensorClose(out.logits, ref['logits']!, 1e-4, 'logits');
      // The fixture's last_hidden_state is transformers' hidden_states[-1]: the encoder's output before the final
      // LayerNorm. lastHiddenState is ViTModel's last_hidden_state, after it.
      const encoded = model.vit.encoder.forward(model.vit.embeddings.forward(ref['pixel_values']!)).hidden;
      await expectTensorClose(encoded, ref['last_hidden_state']!, 1e-4, 'encoder output (hidden_states[-1])');
      await expectTensorClose(out.lastHiddenState!, model.vit.layernorm.forward(ref['last_hidden_state']!), 1e-4, 'last_hidden_state');
      expect(out.attentions).toBeUndefined();
    });
    test('gradients of sum(logits * probe) match for every parameter, and so does one AdamW step on them', async () => {
      const ref = await vitRef(device);
      const model = await AutoModelForImageClassification.fromPretrained(hfDir('vit'), { device });
      expect(Object.keys(ref).filter((k) => k.startsWith('grad.')).length).toBe(model.namedParameters().length);
      await expectViTGradsMatch(model, model.forward({ pixelValues: ref['pixel_values']! }).logits, ref);
      new AdamW(model.parameters(), { lr: 1e-2, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.01 }).step();
      // The first Adam step is lr * g / (|g| + eps): where |g| is near eps = 1e-8 it follows float rounding noise on
      // both sides (the key biases, whose true gradient is 0, and a few stray elements), so those elements are skipped.
      let skipped = 0, total = 0;
      for (const [name, p] of model.namedParameters()) {
        const g = await ref[`grad.${name}`]!.data(), want = await ref[`adamw.${name}`]!.data(), got = await p.data();
        const keep = Array.from(g, (_, i) => i).filter((i) => Math.abs(g[i]!) >= 1e-6);
        skipped += g.length - keep.length;
        total += g.length;
        expectClose(keep.map((i) => got[i]!), keep.map((i) => want[i]!), 1e-5, 0, `adamw.${name}`);
      }
      expect(skipped).toBeLessThan(total / 500);
    });
    test("logits(): the last layer for [CLS] alone gives transformers' logits and gradients", async () => {
      const ref = await vitRef(device);
      const model = await AutoModelForImageClassification.fromPretrained(hfDir('vit'), { device }) as ViTForImageClassification;
      const logits = model.logits(ref['pixel_values']!);
      await expectTensorClose(logits, ref['logits']!, 1e-4, 'logits');
      await expectViTGradsMatch(model, logits, ref);
    });
    test('attention maps: one [B, nh, T, T] per layer, rows summing to 1, the same logits as without them', async () => {
      const ref = await vitRef(device);
      const model = await AutoModelForImageClassification.fromPretrained(hfDir('vit'), { device });
      const out = model.forward({ pixelValues: ref['pixel_values']!, outputAttentions: true });
      await expectTensorClose(out.logits, ref['logits']!, 1e-4, 'logits with attention maps');
      expect(out.attentions).toHaveLength(2);
      for (const a of out.attentions!) {
        expect(a.shape).toEqual([2, 4, 17, 17]);
        const p = await a.data();
        const sums = Array.from({ length: p.length / 17 }, (_, r) => Array.from(p.subarray(17 * r, 17 * r + 17)).reduce((s, v) => s + v, 0));
        expectClose(sums, new Array<number>(sums.length).fill(1), 1e-5, 0, 'attention rows');
        expect(Math.min(...p)).toBeGreaterThanOrEqual(0);
      }
    });
  });
}

describe('ViT losses and config', () => {
  test('labels [B]: cross-entropy of the [CLS] logits (transformers\' single-label rule)', async () => {
    const ref = await vitRef();
    const model = await AutoModelForImageClassification.fromPretrained(hfDir('vit'));
    const labels = tensor([3, 7]);
    const out = model.forward({ pixelValues: ref['pixel_values']!, labels });
    const z = await ref['logits']!.data();
    const ce = [3, 7].reduce((a, y, b) => {
      const row = Array.from(z.subarray(10 * b, 10 * b + 10));
      return a + Math.log(row.reduce((s, v) => s + Math.exp(v), 0)) - row[y]!;
    }, 0) / 2;
    expect(await out.loss!.item()).toBeCloseTo(ce, 4);
    // The classifier reads the final [CLS] state only.
    const m = model as ViTForImageClassification;
    const cls = m.vit.layernorm.forward(select(ref['last_hidden_state']!, 1, 0));
    await expectTensorClose(linear(cls, m.classifier.weight, m.classifier.bias), ref['logits']!, 1e-4, 'classifier on [CLS]');
  });
  const tiny = (extra: Record<string, unknown>) => vitConfig(new ConfigReader({
    hidden_size: 16, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 32, image_size: 8, patch_size: 4, num_channels: 1, ...extra,
  }, 'tiny/config.json'));
  test('num_labels 1 is regression; float [B, n] labels are multi-label', async () => {
    const x = randn([2, 1, 8, 8]);
    const reg = new ViTForImageClassification(tiny({ num_labels: 1 })).eval();
    const out = reg.forward({ pixelValues: x, labels: tensor([0.5, -1.25]) });
    const z = await out.logits.data();
    expect(await out.loss!.item()).toBeCloseTo(((z[0]! - 0.5) ** 2 + (z[1]! + 1.25) ** 2) / 2, 5);
    const multi = new ViTForImageClassification(tiny({ num_labels: 3 })).eval();
    const y = [1, 0, 1, 0, 0, 1];
    const o2 = multi.forward({ pixelValues: x, labels: tensor(y, { shape: [2, 3], dtype: 'float32' }) });
    const w = await o2.logits.data();
    expect(await o2.loss!.item()).toBeCloseTo(y.reduce((a, t, i) => a + Math.log(1 + Math.exp(-w[i]!)) + (1 - t) * w[i]!, 0) / 6, 5);
  });
  test('config: defaults, label maps, [h, w] sizes', () => {
    const cfg = tiny({ id2label: { 0: 'cat', 1: 'dog' } });
    expect(cfg).toMatchObject({ hidden_act: 'gelu', layer_norm_eps: 1e-12, qkv_bias: true, num_labels: 2, label2id: { cat: 0, dog: 1 }, image_size: [8, 8] });
    const rect = new ViTForImageClassification(tiny({ image_size: [8, 12] })).eval();
    expect(rect.vit.embeddings.position_embeddings.shape).toEqual([1, 7, 16]);
    expect(rect.forward({ pixelValues: zeros([1, 1, 8, 12]) }).logits.shape).toEqual([1, 2]);
    expect(new ViTForImageClassification(tiny({ qkv_bias: false })).vit.encoder.layer[0]!.attention.attention.query.bias).toBeNull();
  });
});

describe('ViT errors', () => {
  test('images of the wrong channel count, size or rank name the shapes', async () => {
    const model = await AutoModelForImageClassification.fromPretrained(hfDir('vit'));
    expect(() => model.forward({ pixelValues: zeros([1, 1, 32, 32]) })).toThrow(/ViT: pixelValues \[1, 1, 32, 32\] has 1 channels, the model's num_channels is 3/);
    expect(() => model.forward({ pixelValues: zeros([1, 3, 28, 32]) })).toThrow(/ViT: image size 28x32 \(pixelValues \[1, 3, 28, 32\]\) does not match the model's image_size 32x32/);
    expect(() => model.forward({ pixelValues: zeros([3, 32, 32]) })).toThrow(/ViT: pixelValues must be \[batch, channels, height, width\], got \[3, 32, 32\]/);
    expect(() => model.forward({ inputIds: zeros([1, 4], { dtype: 'int32' }) })).toThrow(/ViT: forward needs "pixelValues"/);
  });
  async function folder(patch: Record<string, unknown>): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), 'attend-vit-'));
    const config = JSON.parse(await readFile(join(hfDir('vit'), 'config.json'), 'utf8')) as Record<string, unknown>;
    await writeFile(join(dir, 'config.json'), JSON.stringify({ ...config, ...patch }));
    await copyFile(join(hfDir('vit'), 'model.safetensors'), join(dir, 'model.safetensors'));
    return dir;
  }
  test('bad config fields name the file and key', async () => {
    await expect(AutoModelForImageClassification.fromPretrained(await folder({ patch_size: 5 }))).rejects.toThrow(/config.json: "image_size" \(32\) must be divisible by "patch_size" \(5\)/);
    await expect(AutoModelForImageClassification.fromPretrained(await folder({ num_attention_heads: 3 }))).rejects.toThrow(/"hidden_size" \(64\) must be divisible by "num_attention_heads" \(3\)/);
    await expect(AutoModelForImageClassification.fromPretrained(await folder({ hidden_act: 'quick_gelu' }))).rejects.toThrow(/config.json: "hidden_act" must be one of gelu/);
    await expect(AutoModelForImageClassification.fromPretrained(await folder({ image_size: 'big' }))).rejects.toThrow(/"image_size" must be a positive integer/);
    await expect(AutoModelForImageClassification.fromPretrained(await folder({ id2label: { 0: 'a', 5: 'b' } }))).rejects.toThrow(/"id2label" must map the indices 0..1 to names/);
  });
  test('a config that disagrees with the checkpoint names the weight', async () => {
    await expect(AutoModelForImageClassification.fromPretrained(await folder({ num_channels: 1 }))).rejects.toThrow(/weight vit.embeddings.patch_embeddings.projection.weight has shape \[64, 3, 8, 8\], the config says \[64, 1, 8, 8\]/);
    await expect(AutoModelForImageClassification.fromPretrained(await folder({ image_size: 64 }))).rejects.toThrow(/weight vit.embeddings.position_embeddings has shape \[1, 17, 64\], the config says \[1, 65, 64\]/);
    await expect(AutoModelForImageClassification.fromPretrained(await folder({ num_hidden_layers: 3 }))).rejects.toThrow(/missing weights for vit.encoder.layer.2/);
    await expect(AutoModelForImageClassification.fromPretrained(await folder({ id2label: { 0: 'a', 1: 'b' } }))).rejects.toThrow(/weight classifier.weight has shape \[10, 64\], the config says \[2, 64\]/);
  });
});
