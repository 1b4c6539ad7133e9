// GPT-2 against Hugging Face transformers: logits, hidden states, loss and gradients on every backend; loading errors.

import { mkdtemp, writeFile, copyFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import '../index.js';
import { listDevices } from '../tensor/backend.js';
import { expectGradsMatch, expectTensorClose, hfDir, loadRef } from '../test-util/hf-fixtures.js';
import { AutoModelForCausalLM, AutoModelForMaskedLM } from './auto.js';

for (const device of listDevices()) {
  describe(`GPT-2 on ${device}`, () => {
    test('logits, hidden states and loss match transformers (a left-padded row included)', async () => {
      const ref = await loadRef('gpt2', device);
      const model = await AutoModelForCausalLM.fromPretrained(hfDir('gpt2'), { device });
      const out = model.forward({ inputIds: ref['input_ids']!, attentionMask: ref['attention_mask']!, labels: ref['input_ids']! });
      await expectTensorClose(out.logits, ref['logits']!, 1e-4, 'logits');
      await expectTensorClose(out.lastHiddenState!, ref['last_hidden_state']!, 1e-4, 'last_hidden_state');
      expect(await out.loss!.item()).toBeCloseTo((await ref['loss']!.data())[0]!, 4);
    });
    test('gradients of sum(logits * probe) match for every parameter', async () => {
      const ref = await loadRef('gpt2', device);
      const model = await AutoModelForCausalLM.fromPretrained(hfDir('gpt2'), { device });
      const logits = model.forward({ inputIds: ref['input_ids']!.narrow(0, 0, 1) }).logits;
      await expectGradsMatch(model, logits, ref);
    });
  });
}

describe('loading errors', () => {
  async function folder(config: object, copyWeights = true): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), 'attend-hf-'));
    await writeFile(join(dir, 'config.json'), JSON.stringify(config));
    if (copyWeights) await copyFile(join(hfDir('gpt2'), 'model.safetensors'), join(dir, 'model.safetensors'));
    return dir;
  }
  const base = { model_type: 'gpt2', vocab_size: 512, n_positions: 128, n_embd: 64, n_layer: 2, n_head: 4 };
  test('an unknown model_type names the file and the type', async () => {
    const dir = await folder({ ...base, model_type: 'mamba' });
    await expect(AutoModelForCausalLM.fromPretrained(dir)).rejects.toThrow(/config.json: unknown model_type 'mamba'/);
  });
  test('a head the architecture lacks', async () => {
    await expect(AutoModelForMaskedLM.fromPretrained(hfDir('gpt2'))).rejects.toThrow(/model_type 'gpt2' has no maskedLM head/);
  });
  test('weights of the wrong shape name the key', async () => {
    const dir = await folder({ ...base, n_positions: 64 });
    await expect(AutoModelForCausalLM.fromPretrained(dir)).rejects.toThrow(/weight transformer.wpe.weight has shape \[128, 64\], the config says \[64, 64\]/);
  });
  test('missing weights name the key', async () => {
    const dir = await folder({ ...base, n_layer: 3 });
    await expect(AutoModelForCausalLM.fromPretrained(dir)).rejects.toThrow(/missing weights for transformer.h.2/);
  });
  test('a bad config field names the key', async () => {
    const dir = await folder({ ...base, n_head: 'four' });
    await expect(AutoModelForCausalLM.fromPretrained(dir)).rejects.toThrow(/"n_head" must be a positive integer/);
  });
  test('no weights file', async () => {
    const dir = await folder(base, false);
    await expect(AutoModelForCausalLM.fromPretrained(dir)).rejects.toThrow(/no model.safetensors or model.safetensors.index.json/);
  });
  test('an input longer than the positions', async () => {
    const model = await AutoModelForCausalLM.fromPretrained(hfDir('gpt2'));
    const { zeros } = await import('../tensor/create.js');
    expect(() => model.forward({ inputIds: zeros([1, 129], { dtype: 'int32' }) })).toThrow(/129 positions exceed the model's n_positions = 128/);
  });
});
