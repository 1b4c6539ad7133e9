// Mistral against transformers (test/data/hf/mistral: window 8 over 20 positions) on every backend; the window's exact edge, real configs, errors.

import { describe, expect, test } from 'vitest';
import '../index.js';
import { narrow } from '../autograd/ops/movement.js';
import { loadSafetensors } from '../io/safetensors.js';
import { expectTensorClose, hfDir, loadRef } from '../test-util/hf-fixtures.js';
import { decodeIncrementally, describeCausalLMFixture, fixtureConfig, folderWithConfig } from '../test-util/causal-lm.js';
import { AutoModelForCausalLM } from './auto.js';
import { ConfigReader } from './base.js';
import { MistralForCausalLM, mistralConfig, mistralWeights } from './mistral.js';

const CONFIG = fixtureConfig('mistral');
const read = (json: Record<string, unknown>) => mistralConfig(new ConfigReader(json, 'mistral/config.json'));

describeCausalLMFixture('mistral', 'Mistral');

describe('Mistral sliding window', () => {
  test('the window is in effect: without it the logits differ, but only from position 8 on', async () => {
    const ref = await loadRef('mistral');
    const full = await AutoModelForCausalLM.fromPretrained(await folderWithConfig('mistral', { ...CONFIG, sliding_window: null }));
    const logits = full.forward({ inputIds: ref['input_ids']! }).logits;
    const want = narrow(ref['logits']!, 0, 0, 1);
    await expectTensorClose(narrow(logits, 1, 0, 8).narrow(0, 0, 1), narrow(want, 1, 0, 8), 1e-4, 'positions 0..7');
    const late = await narrow(logits, 1, 8, 12).narrow(0, 0, 1).data(), wantLate = await narrow(want, 1, 8, 12).data();
    expect(Math.max(...late.map((v, i) => Math.abs(v - wantLate[i]!)))).toBeGreaterThan(1e-3);
  });
  test('one layer: position i sees exactly keys i-w+1..i, so it equals a windowless pass over those w tokens alone', async () => {
    const weights = await loadSafetensors(`${hfDir('mistral')}/model.safetensors`);
    const oneLayer = (window: number | null) => {
      const m = new MistralForCausalLM(read({ ...CONFIG, num_hidden_layers: 1, sliding_window: window })).eval();
      m.loadStateDict(Object.fromEntries(Object.entries(weights).filter(([k]) => !k.includes('layers.1.'))), { strict: true });
      return m;
    };
    const ref = await loadRef('mistral');
    const ids = narrow(ref['input_ids']!, 0, 0, 1);
    const w = 5, windowed = oneLayer(w).forward({ inputIds: ids }).logits, plain = oneLayer(null);
    for (const i of [w - 1, w, 11, 19]) {
      // RoPE sees only relative positions, so the w tokens may start at position 0.
      const alone = plain.forward({ inputIds: narrow(ids, 1, i - w + 1, w) }).logits;
      await expectTensorClose(narrow(windowed, 1, i, 1), narrow(alone, 1, w - 1, 1), 1e-4, `position ${i}`);
    }
  });
  test('through the KV cache beyond the window, with a left-padded row, several tokens at first', async () => {
    const ref = await loadRef('mistral');
    const model = await AutoModelForCausalLM.fromPretrained(hfDir('mistral'));
    await expectTensorClose(decodeIncrementally(model, ref['input_ids']!, ref['attention_mask']!, 11), ref['logits']!, 1e-4, 'prefill 11, then 1 by 1');
  });
});

describe('Mistral configs', () => {
  test('the fixture config, and MistralConfig\'s defaults (window 4096) when fields are absent', () => {
    expect(read(CONFIG)).toMatchObject({ sliding_window: 8, num_key_value_heads: 2, head_dim: 16, attention_bias: false });
    const { sliding_window: _, head_dim: __, max_position_embeddings: ___, ...bare } = CONFIG;
    expect(read(bare)).toMatchObject({ sliding_window: 4096, head_dim: 16, max_position_embeddings: 131072 });
  });
  test('Mistral-7B-Instruct-v0.2: sliding_window null, legacy rope_theta; the weights are checked from the config alone', () => {
    const cfg = read({
      model_type: 'mistral', vocab_size: 32000, hidden_size: 4096, intermediate_size: 14336, num_hidden_layers: 32, num_attention_heads: 32,
      num_key_value_heads: 8, max_position_embeddings: 32768, rms_norm_eps: 1e-5, rope_theta: 1000000.0, sliding_window: null, hidden_act: 'silu', tie_word_embeddings: false,
    });
    expect(cfg).toMatchObject({ sliding_window: null, head_dim: 128, rope_parameters: { rope_type: 'default', rope_theta: 1e6 } });
    const { shapes } = mistralWeights(cfg);
    expect(shapes['model.layers.31.self_attn.k_proj.weight']).toEqual([1024, 4096]);
    expect(shapes['model.layers.0.self_attn.q_proj.bias']).toBeUndefined();
  });
  test('bad values name the file and the key', async () => {
    expect(() => read({ ...CONFIG, sliding_window: 0 })).toThrow(/mistral\/config.json: "sliding_window" must be a positive integer, got 0/);
    expect(() => read({ ...CONFIG, sliding_window: -8 })).toThrow(/"sliding_window" must be a positive integer, got -8/);
    expect(() => read({ ...CONFIG, sliding_window: 'eight' })).toThrow(/"sliding_window" must be a positive integer, got "eight"/);
    expect(() => read({ ...CONFIG, num_key_value_heads: 3 })).toThrow(/"num_attention_heads" \(4\) must be divisible by "num_key_value_heads" \(3\)/);
    expect(() => read({ ...CONFIG, head_dim: null, num_attention_heads: 6, num_key_value_heads: 2 })).toThrow(/"hidden_size" \(64\) must be divisible by "num_attention_heads" \(6\)/);
    await expect(AutoModelForCausalLM.fromPretrained(await folderWithConfig('mistral', { ...CONFIG, num_key_value_heads: 4 })))
      .rejects.toThrow(/model.layers.0.self_attn.k_proj.weight has shape \[32, 64\], the config says \[64, 64\]/);
  });
  test('errors at run time name Mistral', async () => {
    const model = await AutoModelForCausalLM.fromPretrained(hfDir('mistral'));
    const ref = await loadRef('mistral');
    expect(() => model.forward({ inputIds: ref['input_ids']!, attentionMask: narrow(ref['attention_mask']!, 1, 0, 5) })).toThrow(/Mistral: attentionMask must be \[2, 20\]/);
  });
});
