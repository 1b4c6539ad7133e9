// Qwen2 against transformers (test/data/hf/qwen2: q/k/v biases, tied embeddings) on every backend; sliding layers, real configs, errors.

import { describe, expect, test } from 'vitest';
import '../index.js';
import { expectTensorClose, hfDir, loadRef } from '../test-util/hf-fixtures.js';
import { decodeIncrementally, describeCausalLMFixture, fixtureConfig, folderWithConfig } from '../test-util/causal-lm.js';
import { AutoModelForCausalLM } from './auto.js';
import { ConfigReader } from './base.js';
import { Qwen2ForCausalLM, qwen2Config, qwen2Weights } from './qwen2.js';

const CONFIG = fixtureConfig('qwen2');
const read = (json: Record<string, unknown>) => qwen2Config(new ConfigReader(json, 'qwen2/config.json'));

describeCausalLMFixture('qwen2', 'Qwen2');

describe('Qwen2 architecture', () => {
  test('biases on q, k and v only; lm_head is the embedding', async () => {
    const model = await AutoModelForCausalLM.fromPretrained(hfDir('qwen2')) as Qwen2ForCausalLM;
    const names = model.namedParameters().map(([n]) => n);
    for (const p of ['q_proj', 'k_proj', 'v_proj']) expect(names).toContain(`model.layers.0.self_attn.${p}.bias`);
    expect(names).not.toContain('model.layers.0.self_attn.o_proj.bias');
    expect(names.filter((n) => n.includes('mlp') && n.endsWith('bias'))).toEqual([]);
    expect(model.lm_head.weight).toBe(model.model.embed_tokens.weight);
  });
  test('sliding layers (use_sliding_window, max_window_layers): derived and explicit layer_types agree, and the KV cache matches', async () => {
    const ref = await loadRef('qwen2');
    const derived = read({ ...CONFIG, layer_types: undefined, use_sliding_window: true, sliding_window: 6, max_window_layers: 1 });
    expect(derived.layer_types).toEqual(['full_attention', 'sliding_attention']);
    const a = await AutoModelForCausalLM.fromPretrained(await folderWithConfig('qwen2', { ...CONFIG, layer_types: undefined, use_sliding_window: true, sliding_window: 6, max_window_layers: 1 }));
    const b = await AutoModelForCausalLM.fromPretrained(await folderWithConfig('qwen2', { ...CONFIG, use_sliding_window: true, sliding_window: 6, layer_types: ['full_attention', 'sliding_attention'] }));
    const inputs = { inputIds: ref['input_ids']!, attentionMask: ref['attention_mask']! };
    const la = a.forward(inputs).logits;
    await expectTensorClose(b.forward(inputs).logits, la, 1e-6, 'explicit layer_types');
    await expectTensorClose(decodeIncrementally(a, inputs.inputIds, inputs.attentionMask, 4), la, 1e-4, 'cached sliding layers');
    const got = await la.data(), want = await ref['logits']!.data();
    expect(Math.max(...got.map((v, i) => Math.abs(v - want[i]!)))).toBeGreaterThan(1e-3); // the window changed something
  });
});

describe('Qwen2 configs', () => {
  test('Qwen2.5-0.5B: a window given but use_sliding_window false, no layer_types: every layer attends fully', () => {
    const cfg = read({
      model_type: 'qwen2', vocab_size: 151936, hidden_size: 896, intermediate_size: 4864, num_hidden_layers: 24, num_attention_heads: 14,
      num_key_value_heads: 2, max_position_embeddings: 32768, max_window_layers: 21, rms_norm_eps: 1e-6, rope_theta: 1000000.0,
      sliding_window: 32768, use_sliding_window: false, tie_word_embeddings: true, hidden_act: 'silu',
    });
    expect(cfg.layer_types.every((t) => t === 'full_attention')).toBe(true);
    expect(cfg).toMatchObject({ sliding_window: null, head_dim: 64, tie_word_embeddings: true });
    const { shapes, tied } = qwen2Weights(cfg);
    expect(shapes['model.layers.23.self_attn.k_proj.bias']).toEqual([128]);
    expect(shapes['model.layers.23.self_attn.o_proj.bias']).toBeUndefined();
    expect(tied).toEqual([['model.embed_tokens.weight', 'lm_head.weight']]);
  });
  test('the same config loads the fixture unchanged', async () => {
    const ref = await loadRef('qwen2');
    const model = await AutoModelForCausalLM.fromPretrained(await folderWithConfig('qwen2', { ...CONFIG, layer_types: undefined, sliding_window: 131072, max_window_layers: 28 }));
    await expectTensorClose(model.forward({ inputIds: ref['input_ids']!, attentionMask: ref['attention_mask']! }).logits, ref['logits']!, 1e-4, 'logits');
  });
  test('bad values name the file and the key', () => {
    expect(() => read({ ...CONFIG, use_sliding_window: true, sliding_window: 0 })).toThrow(/qwen2\/config.json: "sliding_window" must be a positive integer, got 0/);
    expect(() => read({ ...CONFIG, layer_types: ['full_attention'] })).toThrow(/"layer_types" must be an array of 2 \(num_hidden_layers\) entries, each one of full_attention, sliding_attention/);
    expect(() => read({ ...CONFIG, layer_types: ['full_attention', 'chunked_attention'] })).toThrow(/"layer_types" must be an array of 2/);
    expect(() => read({ ...CONFIG, layer_types: ['full_attention', 'sliding_attention'] })).toThrow(/"layer_types" has sliding_attention layers but there is no window/);
    expect(() => read({ ...CONFIG, use_sliding_window: 'yes' })).toThrow(/"use_sliding_window" must be true or false/);
    expect(() => read({ ...CONFIG, num_attention_heads: 3, num_key_value_heads: 3 })).toThrow(/"hidden_size" \(64\) must be divisible by "num_attention_heads" \(3\)/);
    expect(() => read({ ...CONFIG, num_key_value_heads: 3 })).toThrow(/"num_attention_heads" \(4\) must be divisible by "num_key_value_heads" \(3\)/);
  });
});
