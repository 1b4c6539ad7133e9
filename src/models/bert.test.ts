// BERT against Hugging Face transformers: logits, hidden states, losses and gradients on every backend; heads and errors.

import { copyFile, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import '../index.js';
import { linear } from '../autograd/ops/matmul.js';
import { loadSafetensors, saveSafetensors } from '../io/safetensors.js';
import type { Module } from '../nn/module.js';
import { listDevices } from '../tensor/backend.js';
import { arange, ones, randn, tensor, zeros } from '../tensor/create.js';
import type { Tensor } from '../tensor/tensor.js';
import { expectClose } from '../test-util/fixtures.js';
import { expectGradsMatch, expectTensorClose, hfDir, loadRef } from '../test-util/hf-fixtures.js';
import { AutoModelForMaskedLM, AutoModelForSequenceClassification, AutoModelForTokenClassification } from './auto.js';
import { ConfigReader } from './base.js';
import { BertForMaskedLM, BertForSequenceClassification, BertForTokenClassification, bertConfig } from './bert.js';

/** Labels and the loss of the reference logits on them (float64, scripts/gen_bert_t5_losses.py). */
const lossRef = (name: string) => JSON.parse(readFileSync(`${hfDir(name)}/loss.json`, 'utf8')) as { labels: number[]; loss: number };

/**
 * expectGradsMatch, except for the attention key biases: they shift every score of a query row by the same amount, so
 * softmax cancels them and their true gradient is zero; the reference holds float32 rounding noise there (~1e-10),
 * which a bound relative to that noise cannot compare. They are checked to be zero next to the other gradients instead.
 */
async function expectBertGradsMatch(model: Module, logits: Tensor, ref: Record<string, Tensor>): Promise<void> {
  const isKeyBias = (k: string) => k.endsWith('.attention.self.key.bias');
  await expectGradsMatch(model, logits, Object.fromEntries(Object.entries(ref).filter(([k]) => !isKeyBias(k))));
  const largest = Math.max(...(await Promise.all(model.parameters().map(async (p) => Math.max(...Array.from(await p.grad!.data(), Math.abs))))));
  const keyBiases = model.namedParameters().filter(([k]) => isKeyBias(k));
  expect(keyBiases.length).toBeGreaterThan(0);
  for (const [name, p] of keyBiases) expectClose(await p.grad!.data(), new Array<number>(p.numel()).fill(0), 1e-6 * largest, 0, `gradient of ${name}`);
}

for (const device of listDevices()) {
  describe(`BERT on ${device}`, () => {
    test('masked LM: logits and hidden states match transformers (a right-padded row, token types)', async () => {
      const ref = await loadRef('bert-mlm', device);
      const model = await AutoModelForMaskedLM.fromPretrained(hfDir('bert-mlm'), { device });
      const out = model.forward({ inputIds: ref['input_ids']!, attentionMask: ref['attention_mask']!, tokenTypeIds: ref['token_type_ids']! });
      await expectTensorClose(out.logits, ref['logits']!, 1e-4, 'logits');
      await expectTensorClose(out.lastHiddenState!, ref['last_hidden_state']!, 1e-4, 'last_hidden_state');
    });
    test('masked LM: loss on the labelled positions only', async () => {
      const ref = await loadRef('bert-mlm', device);
      const model = await AutoModelForMaskedLM.fromPretrained(hfDir('bert-mlm'), { device });
      const mlm = lossRef('bert-mlm');
      const labels = tensor(Int32Array.from(mlm.labels), { shape: [2, 12], device });
      const out = model.forward({ inputIds: ref['input_ids']!, attentionMask: ref['attention_mask']!, tokenTypeIds: ref['token_type_ids']!, labels });
      expect(await out.loss!.item()).toBeCloseTo(mlm.loss, 4);
    });
    test('masked LM: gradients of sum(logits * probe) match for every parameter', async () => {
      const ref = await loadRef('bert-mlm', device);
      const model = await AutoModelForMaskedLM.fromPretrained(hfDir('bert-mlm'), { device });
      const row = (k: string) => ref[k]!.narrow(0, 0, 1);
      const logits = model.forward({ inputIds: row('input_ids'), attentionMask: row('attention_mask'), tokenTypeIds: row('token_type_ids') }).logits;
      await expectBertGradsMatch(model, logits, ref);
    });
    test('sequence classification: logits, hidden states and cross-entropy loss match', async () => {
      const ref = await loadRef('bert-cls', device);
      const model = await AutoModelForSequenceClassification.fromPretrained(hfDir('bert-cls'), { device });
      const cls = lossRef('bert-cls');
      const labels = tensor(Int32Array.from(cls.labels), { shape: [2], device });
      const out = model.forward({ inputIds: ref['input_ids']!, attentionMask: ref['attention_mask']!, tokenTypeIds: ref['token_type_ids']!, labels });
      await expectTensorClose(out.logits, ref['logits']!, 1e-4, 'logits');
      await expectTensorClose(out.lastHiddenState!, ref['last_hidden_state']!, 1e-4, 'last_hidden_state');
      expect(await out.loss!.item()).toBeCloseTo(cls.loss, 4);
    });
    test('sequence classification: gradients of sum(logits * probe) match for every parameter', async () => {
      const ref = await loadRef('bert-cls', device);
      const model = await AutoModelForSequenceClassification.fromPretrained(hfDir('bert-cls'), { device });
      const logits = model.forward({ inputIds: ref['input_ids']!, attentionMask: ref['attention_mask']!, tokenTypeIds: ref['token_type_ids']! }).logits;
      await expectBertGradsMatch(model, logits, ref);
    });
  });
}

describe('BERT heads', () => {
  test('token classification: the classifier on every token, cross-entropy with -100 ignored', async () => {
    // bert-cls's encoder and 3-label classifier load as a token classifier too (its pooler is skipped).
    const ref = await loadRef('bert-cls');
    const model = await AutoModelForTokenClassification.fromPretrained(hfDir('bert-cls')) as BertForTokenClassification;
    expect(model.bert.pooler).toBeNull();
    const labels = Int32Array.from({ length: 24 }, (_, i) => (i % 5 === 0 ? -100 : i % 3));
    const out = model.forward({ inputIds: ref['input_ids']!, attentionMask: ref['attention_mask']!, tokenTypeIds: ref['token_type_ids']!, labels: tensor(labels, { shape: [2, 12] }) });
    const want = linear(ref['last_hidden_state']!, model.classifier.weight, model.classifier.bias);
    await expectTensorClose(out.logits, want, 1e-4, 'logits');
    const z = await want.data();
    let total = 0, count = 0;
    labels.forEach((y, i) => {
      if (y === -100) return;
      const row = Array.from(z.subarray(3 * i, 3 * i + 3));
      total += Math.log(row.reduce((a, v) => a + Math.exp(v), 0)) - row[y]!;
      count++;
    });
    expect(await out.loss!.item()).toBeCloseTo(total / count, 4);
  });

  const tiny = (extra: Record<string, unknown>) => bertConfig(new ConfigReader({
    vocab_size: 50, hidden_size: 16, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 32, max_position_embeddings: 16, ...extra,
  }, 'tiny/config.json'));
  const ids = tensor(Int32Array.from([3, 7, 9, 4, 0, 0, 5, 8, 2, 6, 1, 11]), { shape: [2, 6] });

  test('sequence classification with num_labels 1 is regression: mean squared error', async () => {
    const model = new BertForSequenceClassification(tiny({ num_labels: 1 })).eval();
    const labels = tensor([0.5, -1.25]);
    const out = model.forward({ inputIds: ids, labels });
    const z = await out.logits.data();
    expect(out.logits.shape).toEqual([2, 1]);
    expect(await out.loss!.item()).toBeCloseTo(((z[0]! - 0.5) ** 2 + (z[1]! + 1.25) ** 2) / 2, 5);
  });
  test('float labels [B, num_labels] are multi-label: binary cross-entropy with logits', async () => {
    const model = new BertForSequenceClassification(tiny({ id2label: { 0: 'a', 1: 'b', 2: 'c' } })).eval();
    const y = [1, 0, 1, 0, 0, 1];
    const out = model.forward({ inputIds: ids, labels: tensor(y, { shape: [2, 3], dtype: 'float32' }) });
    const z = await out.logits.data();
    const bce = y.reduce((a, t, i) => a + Math.log(1 + Math.exp(-z[i]!)) + (1 - t) * z[i]!, 0) / y.length;
    expect(await out.loss!.item()).toBeCloseTo(bce, 5);
  });
  test('problem_type from the config wins over inference', async () => {
    const model = new BertForSequenceClassification(tiny({ num_labels: 2, problem_type: 'regression' })).eval();
    const out = model.forward({ inputIds: ids, labels: tensor([[0.5, 1], [0, -1]]) });
    const z = await out.logits.data();
    expect(await out.loss!.item()).toBeCloseTo([0.5, 1, 0, -1].reduce((a, t, i) => a + (z[i]! - t) ** 2, 0) / 4, 5);
  });
  test('config defaults: id2label names, 2 labels, token types zero; the MLM decoder is tied', async () => {
    const cfg = tiny({});
    expect(cfg.id2label).toEqual(['LABEL_0', 'LABEL_1']);
    expect(cfg.hidden_act).toBe('gelu');
    const model = new BertForMaskedLM(cfg).eval();
    const a = await model.forward({ inputIds: ids }).logits.data();
    const b = await model.forward({ inputIds: ids, tokenTypeIds: zeros([2, 6], { dtype: 'int32' }) }).logits.data();
    expect(Array.from(a)).toEqual(Array.from(b));
    expect(model.cls.predictions.decoder.weight).toBe(model.bert.embeddings.word_embeddings.weight);
    expect(model.cls.predictions.decoder.bias).toBe(model.cls.predictions.bias);
  });
  test('padding: a padded row equals the same tokens alone', async () => {
    const ref = await loadRef('bert-mlm');
    const model = await AutoModelForMaskedLM.fromPretrained(hfDir('bert-mlm'));
    const row = (k: string) => ref[k]!.narrow(0, 1, 1).narrow(1, 0, 8);
    const alone = model.forward({ inputIds: row('input_ids'), tokenTypeIds: row('token_type_ids') }).logits;
    await expectTensorClose(alone, ref['logits']!.narrow(0, 1, 1).narrow(1, 0, 8), 1e-4, 'unpadded row 1');
  });
  test('pre-training checkpoints load: position_ids buffers, the pooler and NSP head are skipped, a stored decoder is the tied one', async () => {
    const tensors = await loadSafetensors(join(hfDir('bert-mlm'), 'model.safetensors'));
    const dir = await mkdtemp(join(tmpdir(), 'attend-bert-'));
    await copyFile(join(hfDir('bert-mlm'), 'config.json'), join(dir, 'config.json'));
    await saveSafetensors(join(dir, 'model.safetensors'), {
      ...tensors, 'bert.embeddings.position_ids': arange(0, 128, 1, { dtype: 'int32' }).reshape([1, 128]),
      'bert.pooler.dense.weight': randn([64, 64]), 'bert.pooler.dense.bias': zeros([64]),
      'cls.seq_relationship.weight': randn([2, 64]), 'cls.seq_relationship.bias': zeros([2]),
      'cls.predictions.decoder.weight': tensors['bert.embeddings.word_embeddings.weight']!, 'cls.predictions.decoder.bias': tensors['cls.predictions.bias']!,
    });
    const ref = await loadRef('bert-mlm');
    const model = await AutoModelForMaskedLM.fromPretrained(dir);
    const out = model.forward({ inputIds: ref['input_ids']!, attentionMask: ref['attention_mask']!, tokenTypeIds: ref['token_type_ids']! });
    await expectTensorClose(out.logits, ref['logits']!, 1e-4, 'logits');
  });
});

describe('BERT errors', () => {
  async function folder(patch: Record<string, unknown>, from = 'bert-mlm'): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), 'attend-bert-'));
    const config = JSON.parse(await readFile(join(hfDir(from), 'config.json'), 'utf8')) as Record<string, unknown>;
    await writeFile(join(dir, 'config.json'), JSON.stringify({ ...config, ...patch }));
    await copyFile(join(hfDir(from), 'model.safetensors'), join(dir, 'model.safetensors'));
    return dir;
  }
  test('an input longer than max_position_embeddings', async () => {
    const model = await AutoModelForMaskedLM.fromPretrained(hfDir('bert-mlm'));
    expect(() => model.forward({ inputIds: zeros([1, 129], { dtype: 'int32' }) })).toThrow(/BERT: 129 positions exceed the model's max_position_embeddings = 128/);
  });
  test('masks and token types of the wrong shape', async () => {
    const model = await AutoModelForMaskedLM.fromPretrained(hfDir('bert-mlm'));
    const ids = zeros([2, 5], { dtype: 'int32' });
    expect(() => model.forward({ inputIds: ids, attentionMask: ones([2, 4]) })).toThrow(/BERT: attentionMask must be \[2, 5\], got \[2, 4\]/);
    expect(() => model.forward({ inputIds: ids, tokenTypeIds: zeros([5], { dtype: 'int32' }) })).toThrow(/BERT: tokenTypeIds must be \[2, 5\], got \[5\]/);
    expect(() => model.forward({ inputIds: zeros([5], { dtype: 'int32' }) })).toThrow(/BERT: inputIds must be \[batch, time\], got \[5\]/);
  });
  test('bad config fields name the file and key', async () => {
    await expect(AutoModelForMaskedLM.fromPretrained(await folder({ hidden_act: 'gelu_fast' }))).rejects.toThrow(/config.json: "hidden_act" must be one of gelu, gelu_new/);
    await expect(AutoModelForMaskedLM.fromPretrained(await folder({ num_attention_heads: 5 }))).rejects.toThrow(/config.json: "hidden_size" \(64\) must be divisible by "num_attention_heads" \(5\)/);
    await expect(AutoModelForMaskedLM.fromPretrained(await folder({ position_embedding_type: 'relative_key' }))).rejects.toThrow(/"position_embedding_type" must be one of absolute/);
    await expect(AutoModelForMaskedLM.fromPretrained(await folder({ layer_norm_eps: '1e-12' }))).rejects.toThrow(/"layer_norm_eps" must be a positive number/);
    await expect(AutoModelForSequenceClassification.fromPretrained(await folder({ id2label: { 0: 'a', 2: 'c' } }, 'bert-cls'))).rejects.toThrow(/"id2label" must map the indices 0..1 to names/);
    await expect(AutoModelForSequenceClassification.fromPretrained(await folder({ problem_type: 'ranking' }, 'bert-cls'))).rejects.toThrow(/"problem_type" must be one of regression/);
  });
  test('weights of the wrong shape name the key', async () => {
    await expect(AutoModelForMaskedLM.fromPretrained(await folder({ vocab_size: 500 }))).rejects.toThrow(/weight bert.embeddings.word_embeddings.weight has shape \[512, 64\], the config says \[500, 64\]/);
    await expect(AutoModelForSequenceClassification.fromPretrained(await folder({ id2label: { 0: 'no', 1: 'yes' } }, 'bert-cls'))).rejects.toThrow(/weight classifier.weight has shape \[3, 64\], the config says \[2, 64\]/);
  });
  test('a masked-LM checkpoint lacks what a classifier needs', async () => {
    await expect(AutoModelForSequenceClassification.fromPretrained(hfDir('bert-mlm'))).rejects.toThrow(/missing weights for bert.pooler.dense.weight, bert.pooler.dense.bias, classifier.weight, classifier.bias/);
  });
  test('missing encoder layers name the key', async () => {
    await expect(AutoModelForMaskedLM.fromPretrained(await folder({ num_hidden_layers: 3 }))).rejects.toThrow(/missing weights for bert.encoder.layer.2/);
  });
});
