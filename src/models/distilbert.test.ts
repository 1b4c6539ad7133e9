// DistilBERT against Hugging Face transformers (test/data/hf/distilbert-cls): logits, gradients and an AdamW step on every
// backend; padding, sinusoidal positions, the masked-LM head, checkpoints and errors.

import { copyFile, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import '../index.js';
import { gelu, relu } from '../autograd/ops/elementwise.js';
import { linear } from '../autograd/ops/matmul.js';
import { select } from '../autograd/ops/movement.js';
import { sum } from '../autograd/ops/reduce.js';
import { loadSafetensors, saveSafetensors } from '../io/safetensors.js';
import { layerNorm } from '../nn/functional.js';
import { AdamW } from '../optim/adamw.js';
import { listDevices } from '../tensor/backend.js';
import { arange, ones, randn, tensor, zeros } from '../tensor/create.js';
import { expectClose } from '../test-util/fixtures.js';
import { expectGradsMatch, expectTensorClose, hfDir, loadRef } from '../test-util/hf-fixtures.js';
import { AutoModelForMaskedLM, AutoModelForSequenceClassification } from './auto.js';
import { ConfigReader } from './base.js';
import { DistilBertForMaskedLM, DistilBertForSequenceClassification, distilBertConfig, sinusoidalPositions } from './distilbert.js';

const load = (device?: string) => AutoModelForSequenceClassification.fromPretrained(hfDir('distilbert-cls'), { device }) as Promise<DistilBertForSequenceClassification>;

async function folder(patch: Record<string, unknown>, tensors?: Record<string, import('../tensor/tensor.js').Tensor>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'attend-distilbert-'));
  const config = JSON.parse(await readFile(join(hfDir('distilbert-cls'), 'config.json'), 'utf8')) as Record<string, unknown>;
  await writeFile(join(dir, 'config.json'), JSON.stringify({ ...config, ...patch }));
  if (tensors) await saveSafetensors(join(dir, 'model.safetensors'), tensors);
  else await copyFile(join(hfDir('distilbert-cls'), 'model.safetensors'), join(dir, 'model.safetensors'));
  return dir;
}

for (const device of listDevices()) {
  describe(`DistilBERT on ${device}`, () => {
    test('sequence classification: logits and hidden states match transformers (row 1 right-padded)', async () => {
      const ref = await loadRef('distilbert-cls', device);
      const out = (await load(device)).forward({ inputIds: ref['input_ids']!, attentionMask: ref['attention_mask']! });
      await expectTensorClose(out.logits, ref['logits']!, 1e-4, 'logits');
      // The fixture has no hidden states: hidden.safetensors is from scripts/gen_distilbert_hidden.py's PyTorch
      // transcription, which reproduces the fixture's logits to 6e-9.
      const { last_hidden_state: hidden } = await loadSafetensors(join(hfDir('distilbert-cls'), 'hidden.safetensors'), { device });
      await expectTensorClose(out.lastHiddenState!, hidden!, 1e-4, 'last_hidden_state');
    });
    test('gradients of sum(logits * probe) match for every parameter, and so does one AdamW step on them', async () => {
      const ref = await loadRef('distilbert-cls', device);
      const model = await load(device);
      expect(Object.keys(ref).filter((k) => k.startsWith('grad.')).length).toBe(model.namedParameters().length);
      const logits = model.forward({ inputIds: ref['input_ids']!, attentionMask: ref['attention_mask']! }).logits;
      // A key bias shifts every score of a query row equally (softmax cancels it): true gradient zero, float32 noise in
      // the reference, so it is checked to be zero instead (as in bert.test.ts).
      const isKeyBias = (k: string) => k.endsWith('.attention.k_lin.bias');
      expect(await sum(logits).item()).not.toBe(0);
      await expectGradsMatch(model, logits, Object.fromEntries(Object.entries(ref).filter(([k]) => !isKeyBias(k))));
      const largest = Math.max(...(await Promise.all(model.parameters().map(async (p) => Math.max(...Array.from(await p.grad!.data(), Math.abs))))));
      const keyBiases = model.namedParameters().filter(([k]) => isKeyBias(k));
      expect(keyBiases.length).toBe(2);
      for (const [name, p] of keyBiases) expectClose(await p.grad!.data(), new Array<number>(p.numel()).fill(0), 1e-6 * largest, 0, `gradient of ${name}`);
      new AdamW(model.parameters(), { lr: 1e-2, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.01 }).step();
      // The first Adam step is lr * g / (|g| + eps): it follows float rounding noise where the gradient is noise (below
      // 1e-6 of its tensor's largest) or within 10 eps of zero, so those elements are skipped (the q/k gradients here
      // are small but real, ~1e-5, and kept); exact zeros (unused embedding rows) are kept: the step is weight decay.
      let skipped = 0, total = 0;
      for (const [name, p] of model.namedParameters().filter(([k]) => !isKeyBias(k))) {
        const g = await ref[`grad.${name}`]!.data(), want = await ref[`adamw.${name}`]!.data(), got = await p.data();
        const noise = 1e-6 * Math.max(...Array.from(g, Math.abs));
        const keep = Array.from(g, (_, k) => k).filter((k) => g[k] === 0 || Math.abs(g[k]!) >= Math.max(noise, 1e-7));
        skipped += g.length - keep.length;
        total += g.length;
        expectClose(keep.map((k) => got[k]!), keep.map((k) => want[k]!), 1e-5, 0, `adamw.${name}`);
      }
      expect(skipped).toBeLessThan(total / 100);
    });
  });
}

describe('DistilBERT', () => {
  test('padding: a padded row equals the same tokens alone; token types are not read (the model has none)', async () => {
    const ref = await loadRef('distilbert-cls');
    const model = await load();
    const ids = ref['input_ids']!.narrow(0, 1, 1).narrow(1, 0, 7);
    await expectTensorClose(model.forward({ inputIds: ids }).logits, ref['logits']!.narrow(0, 1, 1), 1e-4, 'unpadded row 1');
    const withTypes = model.forward({ inputIds: ids, tokenTypeIds: ones([1, 7], { dtype: 'int32' }) }).logits;
    await expectTensorClose(withTypes, ref['logits']!.narrow(0, 1, 1), 1e-4, 'token types ignored');
  });
  test('the loss follows problem_type as transformers: cross-entropy for class indices', async () => {
    const ref = await loadRef('distilbert-cls');
    const out = (await load()).forward({ inputIds: ref['input_ids']!, attentionMask: ref['attention_mask']!, labels: tensor(Int32Array.from([3, 1])) });
    const z = await ref['logits']!.data();
    const ce = [3, 1].reduce((a, y, i) => a + Math.log([0, 1, 2, 3].reduce((s, j) => s + Math.exp(z[4 * i + j]!), 0)) - z[4 * i + y]!, 0) / 2;
    expect(await out.loss!.item()).toBeCloseTo(ce, 5);
  });
  test('sinusoidal positions: transformers\' table, fixed (no gradient); a stored table still loads', async () => {
    const w = await sinusoidalPositions(4, 6).data();
    const want = [0, 1, 2, 3].flatMap((p) => [0, 1, 2, 3, 4, 5].map((j) => {
      const a = p / 10000 ** ((2 * Math.floor(j / 2)) / 6);
      return j % 2 === 0 ? Math.sin(a) : Math.cos(a);
    }));
    expectClose(w, want, 1e-6, 0, 'sinusoids');
    expect(Array.from(w.subarray(0, 6))).toEqual([0, 1, 0, 1, 0, 1]);
    const model = await AutoModelForSequenceClassification.fromPretrained(await folder({ sinusoidal_pos_embds: true })) as DistilBertForSequenceClassification;
    const pos = model.distilbert.embeddings.position_embeddings.weight;
    expect(pos.requiresGrad).toBe(false);
    const ref = await loadRef('distilbert-cls');
    const logits = model.forward({ inputIds: ref['input_ids']!, attentionMask: ref['attention_mask']! }).logits;
    await expectTensorClose(logits, ref['logits']!, 1e-4, 'logits with the stored table');
    sum(logits).backward();
    expect(pos.grad).toBeNull();
    expect(model.distilbert.embeddings.word_embeddings.weight.grad).not.toBeNull();
    const fresh = new DistilBertForSequenceClassification(distilBertConfig(new ConfigReader({ vocab_size: 20, dim: 6, n_heads: 2, n_layers: 1, hidden_dim: 8, max_position_embeddings: 4, sinusoidal_pos_embds: true }, 'c.json')));
    expectClose(await fresh.distilbert.embeddings.position_embeddings.weight.data(), want, 1e-6, 0, 'initial table');
  });
  test('masked LM: vocab_transform -> gelu -> vocab_layer_norm -> vocab_projector tied to the word embeddings', async () => {
    const tensors = await loadSafetensors(join(hfDir('distilbert-cls'), 'model.safetensors'));
    const { 'pre_classifier.weight': _pw, 'pre_classifier.bias': _pb, 'classifier.weight': _cw, 'classifier.bias': _cb, ...encoder } = tensors;
    const dir = await folder({ architectures: ['DistilBertForMaskedLM'] }, {
      ...encoder, 'distilbert.embeddings.position_ids': arange(0, 64, 1, { dtype: 'int32' }).reshape([1, 64]),
      'vocab_transform.weight': randn([64, 64]).mul(0.1), 'vocab_transform.bias': randn([64]), 'vocab_layer_norm.weight': randn([64]),
      'vocab_layer_norm.bias': randn([64]), 'vocab_projector.bias': randn([512]),
    });
    const model = await AutoModelForMaskedLM.fromPretrained(dir) as DistilBertForMaskedLM;
    expect(model.vocab_projector.weight).toBe(model.distilbert.embeddings.word_embeddings.weight);
    const ref = await loadRef('distilbert-cls');
    const out = model.forward({ inputIds: ref['input_ids']!, attentionMask: ref['attention_mask']!, labels: tensor(Int32Array.from({ length: 20 }, (_, i) => (i % 3 ? -100 : i))).reshape([2, 10]) });
    // The encoder is the classifier's: its first-token state gives the reference logits through pre_classifier.
    const cls = await load();
    const pooled = relu(linear(select(out.lastHiddenState!, 1, 0), cls.pre_classifier.weight, cls.pre_classifier.bias));
    await expectTensorClose(linear(pooled, cls.classifier.weight, cls.classifier.bias), ref['logits']!, 1e-4, 'encoder');
    const x = layerNorm(gelu(linear(out.lastHiddenState!, model.vocab_transform.weight, model.vocab_transform.bias)), [64], model.vocab_layer_norm.weight, model.vocab_layer_norm.bias, 1e-12);
    await expectTensorClose(out.logits, linear(x, encoder['distilbert.embeddings.word_embeddings.weight']!, model.vocab_projector.bias), 1e-4, 'logits');
    expect(Number.isFinite(await out.loss!.item())).toBe(true);
  });
});

describe('DistilBERT errors', () => {
  test('bad config fields name the file and key', async () => {
    await expect(AutoModelForSequenceClassification.fromPretrained(await folder({ n_heads: 5 }))).rejects.toThrow(/config.json: "dim" \(64\) must be divisible by "n_heads" \(5\)/);
    await expect(AutoModelForSequenceClassification.fromPretrained(await folder({ activation: 'gelu_fast' }))).rejects.toThrow(/config.json: "activation" must be one of gelu/);
    await expect(AutoModelForSequenceClassification.fromPretrained(await folder({ sinusoidal_pos_embds: 'yes' }))).rejects.toThrow(/config.json: "sinusoidal_pos_embds" must be true or false/);
    await expect(AutoModelForSequenceClassification.fromPretrained(await folder({ seq_classif_dropout: 2 }))).rejects.toThrow(/config.json: "seq_classif_dropout" must be a number in \[0, 1\]/);
    expect(() => distilBertConfig(new ConfigReader({ vocab_size: 20, dim: 5, n_heads: 1, sinusoidal_pos_embds: true }, 'odd/config.json'))).toThrow(/odd\/config.json: "dim" \(5\) must be even for "sinusoidal_pos_embds"/);
  });
  test('weights that disagree with the config name the key; a classifier checkpoint lacks the masked-LM head', async () => {
    await expect(AutoModelForSequenceClassification.fromPretrained(await folder({ id2label: { 0: 'a', 1: 'b' } }))).rejects.toThrow(/weight classifier.weight has shape \[4, 64\], the config says \[2, 64\]/);
    await expect(AutoModelForSequenceClassification.fromPretrained(await folder({ n_layers: 3 }))).rejects.toThrow(/missing weights for distilbert.transformer.layer.2/);
    await expect(AutoModelForMaskedLM.fromPretrained(hfDir('distilbert-cls'))).rejects.toThrow(/missing weights for vocab_transform.weight/);
  });
  test('inputs of the wrong shape or length', async () => {
    const model = await load();
    expect(() => model.forward({ inputIds: zeros([1, 65], { dtype: 'int32' }) })).toThrow(/DistilBERT: 65 positions exceed the model's max_position_embeddings = 64/);
    expect(() => model.forward({ inputIds: zeros([2, 5], { dtype: 'int32' }), attentionMask: ones([2, 4]) })).toThrow(/DistilBERT: attentionMask must be \[2, 5\], got \[2, 4\]/);
    expect(() => model.forward({ inputIds: zeros([5], { dtype: 'int32' }) })).toThrow(/DistilBERT: inputIds must be \[batch, time\], got \[5\]/);
    expect(() => model.forward({})).toThrow(/DistilBERT: forward needs "inputIds"/);
  });
});
