// RoBERTa against Hugging Face transformers (test/data/hf/roberta-mlm): logits, hidden states, gradients and an AdamW step
// on every backend; the position rule on a padded row, the classification head, checkpoints and errors.

import { copyFile, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import '../index.js';
import { tanh } from '../autograd/ops/elementwise.js';
import { linear } from '../autograd/ops/matmul.js';
import { select } from '../autograd/ops/movement.js';
import { loadSafetensors, saveSafetensors } from '../io/safetensors.js';
import type { Module } from '../nn/module.js';
import { AdamW } from '../optim/adamw.js';
import { listDevices } from '../tensor/backend.js';
import { arange, ones, randn, tensor, zeros } from '../tensor/create.js';
import type { Tensor } from '../tensor/tensor.js';
import { expectClose } from '../test-util/fixtures.js';
import { expectGradsMatch, expectTensorClose, hfDir, loadRef } from '../test-util/hf-fixtures.js';
import { AutoModelForMaskedLM, AutoModelForSequenceClassification } from './auto.js';
import { ConfigReader } from './base.js';
import { RobertaForMaskedLM, RobertaForSequenceClassification, robertaConfig, robertaPositionIds } from './roberta.js';

const load = (device?: string) => AutoModelForMaskedLM.fromPretrained(hfDir('roberta-mlm'), { device }) as Promise<RobertaForMaskedLM>;

// A key bias shifts every score of a query row equally, so softmax cancels it: its true gradient is zero and the
// reference holds float32 noise there (as in bert.test.ts). Those are checked to be zero instead.
const isKeyBias = (k: string) => k.endsWith('.attention.self.key.bias');

async function expectGradsAndAdamW(model: Module, logits: Tensor, ref: Record<string, Tensor>): Promise<void> {
  await expectGradsMatch(model, logits, Object.fromEntries(Object.entries(ref).filter(([k]) => !isKeyBias(k))));
  const largest = Math.max(...(await Promise.all(model.parameters().map(async (p) => Math.max(...Array.from(await p.grad!.data(), Math.abs))))));
  const keyBiases = model.namedParameters().filter(([k]) => isKeyBias(k));
  expect(keyBiases.length).toBe(2);
  for (const [name, p] of keyBiases) expectClose(await p.grad!.data(), new Array<number>(p.numel()).fill(0), 1e-6 * largest, 0, `gradient of ${name}`);
  new AdamW(model.parameters(), { lr: 1e-2, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.01 }).step();
  // The first Adam step is lr * g / (|g| + eps): where 0 < |g| is near eps it follows float rounding noise on both sides
  // (the key biases, stray elements), so those are skipped; exact zeros (unused embedding rows, the padding position
  // row) are kept: there the step is weight decay alone.
  let skipped = 0, total = 0;
  for (const [name, p] of model.namedParameters().filter(([k]) => !isKeyBias(k))) {
    const g = await ref[`grad.${name}`]!.data(), want = await ref[`adamw.${name}`]!.data(), got = await p.data();
    const keep = Array.from(g, (_, k) => k).filter((k) => g[k] === 0 || Math.abs(g[k]!) >= 1e-6);
    skipped += g.length - keep.length;
    total += g.length;
    expectClose(keep.map((k) => got[k]!), keep.map((k) => want[k]!), 1e-5, 0, `adamw.${name}`);
  }
  expect(skipped).toBeLessThan(total / 100);
}

for (const device of listDevices()) {
  describe(`RoBERTa on ${device}`, () => {
    test('masked LM: logits and hidden states match transformers (row 1 right-padded)', async () => {
      const ref = await loadRef('roberta-mlm', device);
      const model = await load(device);
      const out = model.forward({ inputIds: ref['input_ids']!, attentionMask: ref['attention_mask']! });
      await expectTensorClose(out.logits, ref['logits']!, 1e-4, 'logits');
      await expectTensorClose(out.lastHiddenState!, ref['last_hidden_state']!, 1e-4, 'last_hidden_state');
    });
    test('gradients of sum(logits * probe) match for every parameter, and so does one AdamW step on them', async () => {
      const ref = await loadRef('roberta-mlm', device);
      const model = await load(device);
      expect(Object.keys(ref).filter((k) => k.startsWith('grad.')).length).toBe(model.namedParameters().length);
      await expectGradsAndAdamW(model, model.forward({ inputIds: ref['input_ids']!, attentionMask: ref['attention_mask']! }).logits, ref);
    });
  });
}

describe('RoBERTa positions', () => {
  test('positions count tokens from pad_token_id + 1; padding tokens get pad_token_id (transformers\' rule)', async () => {
    const ref = await loadRef('roberta-mlm');
    const pos = robertaPositionIds(ref['input_ids']!, 1);
    expect(Array.from(await pos.data())).toEqual([
      2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13,
      2, 3, 4, 5, 6, 7, 8, 9, 1, 1, 1, 1,
    ]);
    // Padding in the middle (left padding) is skipped too: the next token continues the count.
    const mid = robertaPositionIds(tensor(Int32Array.from([1, 1, 0, 5, 1, 7]), { shape: [1, 6] }), 1);
    expect(Array.from(await mid.data())).toEqual([1, 1, 2, 3, 1, 4]);
  });
  test('a padded row equals the same tokens alone, and explicit positionIds equal the rule', async () => {
    const ref = await loadRef('roberta-mlm');
    const model = await load();
    const ids = ref['input_ids']!.narrow(0, 1, 1).narrow(1, 0, 8);
    await expectTensorClose(model.forward({ inputIds: ids }).logits, ref['logits']!.narrow(0, 1, 1).narrow(1, 0, 8), 1e-4, 'unpadded row 1');
    // BERT's positions 0 .. T - 1 would give other logits: the rule is what matches.
    const bertPositions = model.forward({ inputIds: ids, positionIds: arange(0, 8, 1, { dtype: 'int32' }).reshape([1, 8]) }).logits;
    const want = await ref['logits']!.narrow(0, 1, 1).narrow(1, 0, 8).data();
    const diff = Math.max(...Array.from(await bertPositions.data(), (v, i) => Math.abs(v - want[i]!)));
    expect(diff).toBeGreaterThan(1e-2);
    const rule = arange(2, 10, 1, { dtype: 'int32' }).reshape([1, 8]);
    await expectTensorClose(model.forward({ inputIds: ids, positionIds: rule }).logits, ref['logits']!.narrow(0, 1, 1).narrow(1, 0, 8), 1e-4, 'explicit positions');
  });
});

describe('RoBERTa heads', () => {
  test('masked LM: cross-entropy on labels != -100, from the reference logits', async () => {
    const ref = await loadRef('roberta-mlm');
    const model = await load();
    const labels = Array.from({ length: 24 }, (_, i) => (i % 4 === 1 ? (i * 37) % 512 : -100));
    const out = model.forward({ inputIds: ref['input_ids']!, attentionMask: ref['attention_mask']!, labels: tensor(Int32Array.from(labels), { shape: [2, 12] }) });
    const V = 512, z = await ref['logits']!.data();
    let total = 0, count = 0;
    labels.forEach((y, i) => {
      if (y === -100) return;
      const row = Array.from(z.subarray(i * V, (i + 1) * V)), m = Math.max(...row);
      total += m + Math.log(row.reduce((a, v) => a + Math.exp(v - m), 0)) - row[y]!;
      count++;
    });
    expect(await out.loss!.item()).toBeCloseTo(total / count, 4);
    expect(model.lm_head.decoder.weight).toBe(model.roberta.embeddings.word_embeddings.weight);
    expect(model.lm_head.decoder.bias).toBe(model.lm_head.bias);
  });
  test('sequence classification: dense -> tanh -> out_proj on <s>, over the reference hidden states', async () => {
    const ref = await loadRef('roberta-mlm');
    const config = JSON.parse(await readFile(join(hfDir('roberta-mlm'), 'config.json'), 'utf8')) as Record<string, unknown>;
    const model = new RobertaForSequenceClassification(robertaConfig(new ConfigReader({ ...config, num_labels: 3 }, 'roberta/config.json'))).eval();
    model.roberta.loadStateDict((await load()).roberta.stateDict());
    const out = model.forward({ inputIds: ref['input_ids']!, attentionMask: ref['attention_mask']!, labels: tensor(Int32Array.from([2, 0])) });
    const c = model.classifier, first = select(ref['last_hidden_state']!, 1, 0); // [B, C]
    const want = linear(tanh(linear(first, c.dense.weight, c.dense.bias)), c.out_proj.weight, c.out_proj.bias);
    await expectTensorClose(out.logits, want, 1e-4, 'logits');
    const z = await want.data();
    const ce = [2, 0].reduce((a, y, i) => a + Math.log(Math.exp(z[3 * i]!) + Math.exp(z[3 * i + 1]!) + Math.exp(z[3 * i + 2]!)) - z[3 * i + y]!, 0) / 2;
    expect(await out.loss!.item()).toBeCloseTo(ce, 5);
  });
  test('a roberta-base style checkpoint loads: position_ids, the pooler and a stored tied decoder', async () => {
    const tensors = await loadSafetensors(join(hfDir('roberta-mlm'), 'model.safetensors'));
    const dir = await mkdtemp(join(tmpdir(), 'attend-roberta-'));
    await copyFile(join(hfDir('roberta-mlm'), 'config.json'), join(dir, 'config.json'));
    await saveSafetensors(join(dir, 'model.safetensors'), {
      ...tensors, 'roberta.embeddings.position_ids': arange(0, 40, 1, { dtype: 'int32' }).reshape([1, 40]),
      'roberta.pooler.dense.weight': randn([64, 64]), 'roberta.pooler.dense.bias': zeros([64]),
      'lm_head.decoder.weight': tensors['roberta.embeddings.word_embeddings.weight']!, 'lm_head.decoder.bias': tensors['lm_head.bias']!,
    });
    const ref = await loadRef('roberta-mlm');
    const out = (await AutoModelForMaskedLM.fromPretrained(dir)).forward({ inputIds: ref['input_ids']!, attentionMask: ref['attention_mask']! });
    await expectTensorClose(out.logits, ref['logits']!, 1e-4, 'logits');
  });
});

describe('RoBERTa errors', () => {
  async function folder(patch: Record<string, unknown>): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), 'attend-roberta-'));
    const config = JSON.parse(await readFile(join(hfDir('roberta-mlm'), 'config.json'), 'utf8')) as Record<string, unknown>;
    await writeFile(join(dir, 'config.json'), JSON.stringify({ ...config, ...patch }));
    await copyFile(join(hfDir('roberta-mlm'), 'model.safetensors'), join(dir, 'model.safetensors'));
    return dir;
  }
  test('inputs longer than the positions after pad_token_id + 1, and inputs of the wrong shape', async () => {
    const model = await load();
    model.forward({ inputIds: ones([1, 38], { dtype: 'int32' }) });
    expect(() => model.forward({ inputIds: ones([1, 39], { dtype: 'int32' }) })).toThrow(/RoBERTa: 39 positions exceed max_position_embeddings = 40 less the 2 before the first position \(pad_token_id \+ 1\): at most 38 tokens/);
    expect(() => model.forward({ inputIds: ones([1, 41], { dtype: 'int32' }) })).toThrow(/RoBERTa: 41 positions exceed the model's max_position_embeddings = 40/);
    const ids = zeros([2, 5], { dtype: 'int32' });
    expect(() => model.forward({ inputIds: ids, attentionMask: ones([2, 4]) })).toThrow(/RoBERTa: attentionMask must be \[2, 5\], got \[2, 4\]/);
    expect(() => model.forward({ inputIds: ids, positionIds: zeros([5], { dtype: 'int32' }) })).toThrow(/RoBERTa: positionIds must be \[2, 5\], got \[5\]/);
    expect(() => model.forward({})).toThrow(/RoBERTa: forward needs "inputIds"/);
  });
  test('bad config fields name the file and key', async () => {
    await expect(AutoModelForMaskedLM.fromPretrained(await folder({ pad_token_id: 512 }))).rejects.toThrow(/config.json: "pad_token_id" \(512\) must be below "vocab_size" \(512\)/);
    await expect(AutoModelForMaskedLM.fromPretrained(await folder({ pad_token_id: 39 }))).rejects.toThrow(/config.json: "max_position_embeddings" \(40\) must exceed "pad_token_id" \+ 1 \(40\)/);
    await expect(AutoModelForMaskedLM.fromPretrained(await folder({ pad_token_id: -1 }))).rejects.toThrow(/config.json: "pad_token_id" must be a non-negative integer, got -1/);
    await expect(AutoModelForMaskedLM.fromPretrained(await folder({ hidden_act: 'gelu_fast' }))).rejects.toThrow(/config.json: "hidden_act" must be one of gelu/);
    await expect(AutoModelForMaskedLM.fromPretrained(await folder({ num_attention_heads: 5 }))).rejects.toThrow(/config.json: "hidden_size" \(64\) must be divisible by "num_attention_heads" \(5\)/);
  });
  test('weights that disagree with the config, and a masked-LM checkpoint loaded as a classifier, name the keys', async () => {
    await expect(AutoModelForMaskedLM.fromPretrained(await folder({ max_position_embeddings: 514 }))).rejects.toThrow(/weight roberta.embeddings.position_embeddings.weight has shape \[40, 64\], the config says \[514, 64\]/);
    await expect(AutoModelForMaskedLM.fromPretrained(await folder({ num_hidden_layers: 3 }))).rejects.toThrow(/missing weights for roberta.encoder.layer.2/);
    await expect(AutoModelForSequenceClassification.fromPretrained(hfDir('roberta-mlm'))).rejects.toThrow(/missing weights for classifier.dense.weight, classifier.dense.bias, classifier.out_proj.weight, classifier.out_proj.bias/);
  });
});
