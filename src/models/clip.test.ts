// CLIP against Hugging Face transformers: embeddings, image-text logits, gradients and an AdamW step on every backend;
// pooling, padding, the contrastive loss, bad inputs and configs.

import { copyFile, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import '../index.js';
import { AdamW } from '../optim/adamw.js';
import { listDevices } from '../tensor/backend.js';
import { arange, tensor, zeros } from '../tensor/create.js';
import { loadSafetensors, saveSafetensors } from '../io/safetensors.js';
import type { Tensor } from '../tensor/tensor.js';
import { expectClose } from '../test-util/fixtures.js';
import { expectGradsMatch, expectTensorClose, hfDir, loadRef } from '../test-util/hf-fixtures.js';
import { AutoModel, AutoModelForCausalLM } from './auto.js';
import { ConfigReader } from './base.js';
import { CLIPModel, clipConfig } from './clip.js';

const load = async (device?: string): Promise<CLIPModel> => (await AutoModel.fromPretrained(hfDir('clip'), { device })) as CLIPModel;

/** Each row of a row-major [n, d] array divided by its Euclidean norm. */
function normalizeRows(x: ArrayLike<number>, d: number): number[] {
  const out = Array.from(x);
  for (let r = 0; r < out.length; r += d) {
    const n = Math.hypot(...out.slice(r, r + d));
    for (let j = r; j < r + d; j++) out[j]! /= n;
  }
  return out;
}

/** The attention key biases add the same amount to every score of a query row, so softmax cancels them: their true gradient is 0. */
const isKeyBias = (k: string): boolean => k.endsWith('.self_attn.k_proj.bias');

for (const device of listDevices()) {
  describe(`CLIP on ${device}`, () => {
    test('text and image embeddings and logits_per_image match transformers', async () => {
      const ref = await loadRef('clip', device);
      const model = await load(device);
      const out = model.forward({ inputIds: ref['input_ids']!, attentionMask: ref['attention_mask']!, pixelValues: ref['pixel_values']! });
      await expectTensorClose(out.textEmbeds, ref['text_embeds']!, 1e-4, 'text_embeds');
      await expectTensorClose(out.imageEmbeds, ref['image_embeds']!, 1e-4, 'image_embeds');
      await expectTensorClose(out.logitsPerImage, ref['logits_per_image']!, 1e-4, 'logits_per_image');
      await expectTensorClose(out.logitsPerText, ref['logits_per_image']!.transpose(0, 1), 1e-4, 'logits_per_text');
      expect(out.logits).toBe(out.logitsPerImage);
      // get*Features are the projections before normalization: normalized, they are the embeddings.
      const t = model.getTextFeatures({ inputIds: ref['input_ids']!, attentionMask: ref['attention_mask']! });
      const i = model.getImageFeatures({ pixelValues: ref['pixel_values']! });
      expect(t.shape).toEqual([3, 32]);
      expect(i.shape).toEqual([2, 32]);
      expectClose(normalizeRows(await t.data(), 32), Array.from(await ref['text_embeds']!.data()), 1e-4, 0, 'normalized getTextFeatures');
      expectClose(normalizeRows(await i.data(), 32), Array.from(await ref['image_embeds']!.data()), 1e-4, 0, 'normalized getImageFeatures');
    });
    test('gradients of sum(logits_per_image * probe) match for every parameter, and so does one AdamW step', async () => {
      const ref = await loadRef('clip', device);
      const model = await load(device);
      expect(Object.keys(ref).filter((k) => k.startsWith('grad.')).length).toBe(model.namedParameters().length);
      const out = model.forward({ inputIds: ref['input_ids']!, attentionMask: ref['attention_mask']!, pixelValues: ref['pixel_values']! });
      await expectGradsMatch(model, out.logitsPerImage, Object.fromEntries(Object.entries(ref).filter(([k]) => !isKeyBias(k.slice(5)))));
      const largest = Math.max(...(await Promise.all(model.parameters().map(async (p) => Math.max(...Array.from(await p.grad!.data(), Math.abs))))));
      const keyBiases = model.namedParameters().filter(([k]) => isKeyBias(k));
      expect(keyBiases.length).toBe(4);
      for (const [name, p] of keyBiases) expectClose(await p.grad!.data(), new Array<number>(p.numel()).fill(0), 1e-6 * largest, 0, `gradient of ${name}`);
      new AdamW(model.parameters(), { lr: 1e-2, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.01 }).step();
      // The first Adam step is lr * g / (|g| + eps): where 0 < |g| is near eps it follows float rounding noise on both
      // sides (the key biases above, and stray elements), so those elements are skipped. Exact zeros (the embedding
      // rows of tokens not in the batch) are kept: there the step is weight decay alone.
      let skipped = 0, total = 0;
      for (const [name, p] of model.namedParameters().filter(([k]) => !isKeyBias(k))) {
        const g = await ref[`grad.${name}`]!.data(), want = await ref[`adamw.${name}`]!.data(), got = await p.data();
        const keep = Array.from(g, (_, k) => k).filter((k) => g[k] === 0 || Math.abs(g[k]!) >= 1e-6);
        skipped += g.length - keep.length;
        total += g.length;
        expectClose(keep.map((k) => got[k]!), keep.map((k) => want[k]!), 1e-5, 0, `adamw.${name}`);
      }
      expect(skipped).toBeLessThan(total / 100);
    });
  });
}

async function folder(patch: (config: Record<string, unknown>) => void): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'attend-clip-'));
  const config = JSON.parse(await readFile(join(hfDir('clip'), 'config.json'), 'utf8')) as Record<string, unknown>;
  patch(config);
  await writeFile(join(dir, 'config.json'), JSON.stringify(config));
  await copyFile(join(hfDir('clip'), 'model.safetensors'), join(dir, 'model.safetensors'));
  return dir;
}
const textConfig = (c: Record<string, unknown>) => c['text_config'] as Record<string, unknown>;
const visionConfig = (c: Record<string, unknown>) => c['vision_config'] as Record<string, unknown>;

/** Row b of a [B, T, C] tensor at position t, as numbers. */
async function at(x: Tensor, b: number, t: number): Promise<number[]> {
  const [, T, C] = x.shape as [number, number, number];
  return Array.from((await x.data()).subarray((b * T + t) * C, (b * T + t + 1) * C));
}

describe('CLIP pooling, padding and loss', () => {
  test('eos_token_id 2 pools at the largest token id (transformers\' legacy rule), not at the last position', async () => {
    // The fixture's ids end in 2, but their largest ids sit at positions 4, 4 and 5: transformers pools there, and the
    // reference embeddings (matched above) agree. The last position gives other values.
    const ref = await loadRef('clip');
    const model = await load();
    const { hidden, pooled } = model.text_model.forward(ref['input_ids']!);
    const ids = Array.from(await ref['input_ids']!.data(), Number);
    const C = hidden.shape[2]!;
    for (const [b, t] of [[0, 4], [1, 4], [2, 5]] as const) {
      expect(ids.slice(8 * b, 8 * b + 8).indexOf(Math.max(...ids.slice(8 * b, 8 * b + 8)))).toBe(t);
      const row = Array.from((await pooled.data()).subarray(b * C, (b + 1) * C));
      expectClose(row, await at(hidden, b, t), 0, 0, `pooled row ${b}`);
    }
    const last = await at(hidden, 0, 7), first = Array.from((await pooled.data()).subarray(0, C));
    expect(Math.max(...first.map((v, j) => Math.abs(v - last[j]!)))).toBeGreaterThan(1e-2);
  });
  test('another eos_token_id pools at its first occurrence', async () => {
    const model = (await AutoModel.fromPretrained(await folder((c) => { textConfig(c)['eos_token_id'] = 7; }))) as CLIPModel;
    const ids = tensor([[5, 7, 9, 7, 3], [5, 6, 9, 8, 7]]);
    const { hidden, pooled } = model.text_model.forward(ids);
    const p = await pooled.data(), C = 64;
    expectClose(Array.from(p.subarray(0, C)), await at(hidden, 0, 1), 0, 0, 'row 0 at its first eos');
    expectClose(Array.from(p.subarray(C, 2 * C)), await at(hidden, 1, 4), 0, 0, 'row 1 at its eos');
  });
  test('a right-padded batch gives each text the embedding it has alone; the mask is applied', async () => {
    const model = await load();
    const long = [490, 190, 33, 278, 495, 329, 16, 2], short = [212, 290, 511, 2];
    const batch = model.getTextFeatures({ inputIds: tensor([long, [...short, 0, 0, 0, 0]]), attentionMask: tensor([[1, 1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0, 0, 0]]) });
    const alone = model.getTextFeatures({ inputIds: tensor([short]) });
    expectClose(Array.from((await batch.data()).subarray(32)), Array.from(await alone.data()), 1e-5, 0, 'padded row');
    // Masking a token before the pooled one changes the embedding (causal attention alone would not hide it).
    const masked = model.getTextFeatures({ inputIds: tensor([short]), attentionMask: tensor([[1, 0, 1, 1]]) });
    const a = await alone.data(), m = await masked.data();
    expect(Math.max(...Array.from(a, (v, j) => Math.abs(v - m[j]!)))).toBeGreaterThan(1e-3);
  });
  test('returnLoss: the mean of the text-wise and image-wise cross-entropies over matching pairs', async () => {
    const ref = await loadRef('clip');
    const model = await load();
    const inputIds = ref['input_ids']!.narrow(0, 0, 2);
    const out = model.forward({ inputIds, pixelValues: ref['pixel_values']!, returnLoss: true });
    const z = Array.from(await out.logitsPerText.data()); // [2 texts, 2 images]
    const ce = (rows: number[][]) => rows.reduce((s, r, i) => s + Math.log(r.reduce((a, v) => a + Math.exp(v), 0)) - r[i]!, 0) / rows.length;
    const want = (ce([[z[0]!, z[1]!], [z[2]!, z[3]!]]) + ce([[z[0]!, z[2]!], [z[1]!, z[3]!]])) / 2;
    expect(await out.loss!.item()).toBeCloseTo(want, 5);
    expect(() => model.forward({ inputIds: ref['input_ids']!, pixelValues: ref['pixel_values']!, returnLoss: true })).toThrow(/CLIP: the contrastive loss pairs text i with image i, got 3 texts and 2 images/);
  });
});

describe('CLIP errors', () => {
  test('bad inputs name the input and the shapes', async () => {
    const model = await load();
    const ids = tensor([[5, 2]]), img = zeros([1, 3, 32, 32]);
    expect(() => model.forward({ inputIds: ids })).toThrow(/CLIP: forward needs "pixelValues"/);
    expect(() => model.forward({ pixelValues: img })).toThrow(/CLIP: forward needs "inputIds"/);
    expect(() => model.forward({ inputIds: ids, pixelValues: img, outputAttentions: true })).toThrow(/CLIP: outputAttentions is not supported/);
    expect(() => model.getImageFeatures({ pixelValues: zeros([1, 1, 32, 32]) })).toThrow(/CLIP: pixelValues \[1, 1, 32, 32\] has 1 channels, the model's num_channels is 3/);
    expect(() => model.getImageFeatures({ pixelValues: zeros([1, 3, 32, 24]) })).toThrow(/CLIP: image size 32x24 \(pixelValues \[1, 3, 32, 24\]\) does not match the model's image_size 32x32/);
    expect(() => model.getImageFeatures({ pixelValues: zeros([3, 32, 32]) })).toThrow(/CLIP: pixelValues must be \[batch, channels, height, width\], got \[3, 32, 32\]/);
    expect(() => model.getTextFeatures({ inputIds: tensor([5, 2]) })).toThrow(/CLIP: inputIds must be \[batch, time\], got \[2\]/);
    expect(() => model.getTextFeatures({ inputIds: zeros([1, 33], { dtype: 'int32' }) })).toThrow(/CLIP: 33 tokens exceed the text model's max_position_embeddings = 32/);
    expect(() => model.getTextFeatures({ inputIds: ids, attentionMask: tensor([[1, 1, 1]]) })).toThrow(/CLIP: attentionMask must be \[1, 2\], got \[1, 3\]/);
    expect(() => model.getTextFeatures({ inputIds: tensor([[5, 512]]) })).toThrow(/512/);
  });
  test('bad config fields name the file, the sub-config and the key', async () => {
    const bad = async (patch: (c: Record<string, unknown>) => void) => AutoModel.fromPretrained(await folder(patch));
    await expect(bad((c) => { c['text_config'] = 'small'; })).rejects.toThrow(/config.json: "text_config" must be an object, got "small"/);
    await expect(bad((c) => { textConfig(c)['hidden_size'] = 'wide'; })).rejects.toThrow(/config.json \(text_config\): "hidden_size" must be a positive integer, got "wide"/);
    await expect(bad((c) => { visionConfig(c)['num_attention_heads'] = 3; })).rejects.toThrow(/config.json \(vision_config\): "hidden_size" \(64\) must be divisible by "num_attention_heads" \(3\)/);
    await expect(bad((c) => { visionConfig(c)['patch_size'] = 5; })).rejects.toThrow(/config.json \(vision_config\): "image_size" \(32\) must be divisible by "patch_size" \(5\)/);
    await expect(bad((c) => { textConfig(c)['hidden_act'] = 'mish'; })).rejects.toThrow(/config.json \(text_config\): "hidden_act" must be one of quick_gelu, gelu/);
    await expect(bad((c) => { c['projection_dim'] = 0; })).rejects.toThrow(/config.json: "projection_dim" must be a positive integer, got 0/);
  });
  test('a config that disagrees with the checkpoint names the weight; the wrong Auto class names the head', async () => {
    const bad = async (patch: (c: Record<string, unknown>) => void) => AutoModel.fromPretrained(await folder(patch));
    await expect(bad((c) => { c['projection_dim'] = 16; })).rejects.toThrow(/weight text_projection.weight has shape \[32, 64\], the config says \[16, 64\]/);
    await expect(bad((c) => { visionConfig(c)['image_size'] = 64; })).rejects.toThrow(/weight vision_model.embeddings.position_embedding.weight has shape \[17, 64\], the config says \[65, 64\]/);
    await expect(bad((c) => { textConfig(c)['num_hidden_layers'] = 3; })).rejects.toThrow(/missing weights for text_model.encoder.layers.2/);
    await expect(AutoModelForCausalLM.fromPretrained(hfDir('clip'))).rejects.toThrow(/model_type 'clip' has no causalLM head \(available: model\)/);
  });
  test('old checkpoints\' position_ids buffers are skipped', async () => {
    const dir = await folder(() => {});
    const weights = await loadSafetensors(join(hfDir('clip'), 'model.safetensors'));
    weights['text_model.embeddings.position_ids'] = arange(32).reshape([1, 32]);
    weights['vision_model.embeddings.position_ids'] = arange(17).reshape([1, 17]);
    await saveSafetensors(join(dir, 'model.safetensors'), weights);
    const ids = tensor([[5, 9, 2]]);
    const [old, now] = [(await AutoModel.fromPretrained(dir)) as CLIPModel, await load()];
    expectClose(await old.getTextFeatures({ inputIds: ids }).data(), Array.from(await now.getTextFeatures({ inputIds: ids }).data()), 0, 0, 'text features');
  });
  test('config defaults are transformers\' (openai/clip-vit-base-patch32)', () => {
    const cfg = clipConfig(new ConfigReader({ model_type: 'clip' }, 'x/config.json'));
    expect(cfg).toMatchObject({
      projection_dim: 512, logit_scale_init_value: 2.6592,
      text_config: { vocab_size: 49408, hidden_size: 512, intermediate_size: 2048, num_hidden_layers: 12, num_attention_heads: 8, max_position_embeddings: 77, hidden_act: 'quick_gelu', layer_norm_eps: 1e-5, eos_token_id: 49407 },
      vision_config: { hidden_size: 768, intermediate_size: 3072, num_hidden_layers: 12, num_attention_heads: 12, image_size: 224, patch_size: 32, num_channels: 3 },
    });
  });
});
