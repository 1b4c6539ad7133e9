// LLaMA against Hugging Face transformers: logits, loss, gradients, an AdamW step and KV-cache decoding on every backend; both config formats, RoPE scaling, errors.

import { copyFile, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import '../index.js';
import { noGrad } from '../autograd/engine.js';
import { cat, narrow, reshape } from '../autograd/ops/movement.js';
import { loadSafetensors, saveSafetensors } from '../io/safetensors.js';
import { AdamW } from '../optim/adamw.js';
import { listDevices } from '../tensor/backend.js';
import { arange, full, tensor, zeros } from '../tensor/create.js';
import type { Tensor } from '../tensor/tensor.js';
import { expectClose } from '../test-util/fixtures.js';
import { expectGradsMatch, expectTensorClose, hfDir, loadRef } from '../test-util/hf-fixtures.js';
import { AutoModelForCausalLM } from './auto.js';
import type { PreTrainedModel } from './base.js';
import { ConfigReader } from './base.js';
import { LlamaForCausalLM, llamaConfig, ropeInverseFrequencies, type RopeParameters } from './llama.js';

const readJson = <T>(path: string): T => JSON.parse(readFileSync(path, 'utf8')) as T;
const CONFIG = readJson<Record<string, unknown>>(`${hfDir('llama')}/config.json`);
/** transformers' inv_freq formulas evaluated by scripts/gen_llama_rope.py (torch, float32). */
const ROPE = readJson<{ cases: { name: string; rope_parameters: RopeParameters; head_dim: number; inv_freq: number[] }[] }>(`${hfDir('llama')}/rope.json`);

/** A checkpoint folder with a rewritten config.json and the fixture's weights (or the given ones). */
async function folder(config: object, weights?: Record<string, Tensor>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'attend-llama-'));
  await writeFile(join(dir, 'config.json'), JSON.stringify(config));
  if (weights) await saveSafetensors(join(dir, 'model.safetensors'), weights);
  else await copyFile(join(hfDir('llama'), 'model.safetensors'), join(dir, 'model.safetensors'));
  return dir;
}

/** The fixture config with the RoPE settings in the legacy form: top-level rope_theta and rope_scaling. */
function legacy(rope: Record<string, unknown> | null, theta = 10000): Record<string, unknown> {
  const { rope_parameters: _, ...rest } = CONFIG;
  return { ...rest, rope_theta: theta, rope_scaling: rope };
}

/** Feeds `first` tokens, then one at a time, through the model's caches; returns every step's logits, [B, T, V]. */
function decodeIncrementally(model: PreTrainedModel, inputIds: Tensor, attentionMask: Tensor | null, first: number): Tensor {
  return noGrad(() => {
    const caches = model.newCache();
    const steps: Tensor[] = [];
    for (let t = 0; t < inputIds.shape[1]!; t += t === 0 ? first : 1) {
      const n = t === 0 ? first : 1;
      steps.push(model.forward({ inputIds: narrow(inputIds, 1, t, n), attentionMask: attentionMask && narrow(attentionMask, 1, 0, t + n), pastKeyValues: caches }).logits);
    }
    for (const c of caches) c.dispose();
    return cat(steps, 1);
  });
}

for (const device of listDevices()) {
  describe(`LLaMA on ${device}`, () => {
    test('logits, hidden states and loss match transformers (a left-padded row included)', async () => {
      const ref = await loadRef('llama', device);
      const model = await AutoModelForCausalLM.fromPretrained(hfDir('llama'), { device });
      const out = model.forward({ inputIds: ref['input_ids']!, attentionMask: ref['attention_mask']!, labels: ref['input_ids']! });
      await expectTensorClose(out.logits, ref['logits']!, 1e-4, 'logits');
      await expectTensorClose(out.lastHiddenState!, ref['last_hidden_state']!, 1e-4, 'last_hidden_state');
      expect(await out.loss!.item()).toBeCloseTo((await ref['loss']!.data())[0]!, 4);
    });
    test('gradients of sum(logits * probe) match for every parameter, and so does one AdamW step on them', async () => {
      const ref = await loadRef('llama', device);
      const model = await AutoModelForCausalLM.fromPretrained(hfDir('llama'), { device });
      const logits = model.forward({ inputIds: ref['input_ids']!.narrow(0, 0, 1) }).logits;
      await expectGradsMatch(model, logits, ref);
      new AdamW(model.parameters(), { lr: 1e-2, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.01 }).step();
      for (const [name, p] of model.namedParameters()) expectClose(await p.data(), Array.from(await ref[`adamw.${name}`]!.data()), 1e-5, 0, `adamw.${name}`);
    });
    test('decoding with the KV cache gives the logits of a full pass at every step', async () => {
      const ref = await loadRef('llama', device);
      const model = await AutoModelForCausalLM.fromPretrained(hfDir('llama'), { device });
      const steps = decodeIncrementally(model, ref['input_ids']!, ref['attention_mask']!, 7);
      await expectTensorClose(steps, ref['logits']!, 1e-4, 'logits step by step');
    });
  });
}

describe('LLaMA forward', () => {
  test('labels of -100 are ignored: the loss of row 0 alone', async () => {
    const ref = await loadRef('llama');
    const model = await AutoModelForCausalLM.fromPretrained(hfDir('llama'));
    const ids = ref['input_ids']!;
    const labels = cat([narrow(ids, 0, 0, 1), full([1, 20], -100, { dtype: 'int32' })], 0);
    const both = await model.forward({ inputIds: ids, attentionMask: ref['attention_mask']!, labels }).loss!.item();
    const row0 = await model.forward({ inputIds: narrow(ids, 0, 0, 1), labels: narrow(ids, 0, 0, 1) }).loss!.item();
    expect(both).toBeCloseTo(row0, 5);
  });
  test('positionIds: rotary attention sees only relative positions, so a shift changes nothing and a stretch does', async () => {
    const ref = await loadRef('llama');
    const model = await AutoModelForCausalLM.fromPretrained(hfDir('llama'));
    const inputs = { inputIds: ref['input_ids']!, attentionMask: ref['attention_mask']! };
    const logits = (positionIds: Tensor) => model.forward({ ...inputs, positionIds }).logits;
    await expectTensorClose(logits(reshape(arange(20), [1, 20])), ref['logits']!, 1e-4, 'positions 0..19');
    await expectTensorClose(logits(reshape(arange(3, 23), [1, 20])), ref['logits']!, 1e-4, 'positions 3..22');
    // Per row, as generation derives them from a left-padded mask: row 1 counts from its first real token.
    const perRow = tensor([Array.from({ length: 20 }, (_, i) => i), Array.from({ length: 20 }, (_, i) => Math.max(0, i - 4))], { dtype: 'int32' });
    await expectTensorClose(logits(perRow), ref['logits']!, 1e-4, 'positions from the mask');
    const stretched = await logits(reshape(arange(0, 40, 2), [1, 20])).data();
    const want = await ref['logits']!.data();
    expect(Math.max(...stretched.map((v, i) => Math.abs(v - want[i]!)))).toBeGreaterThan(1e-3);
  });
  test('multi-query attention (one kv head): cached decoding equals a full pass', async () => {
    const cfg = llamaConfig(new ConfigReader({ ...CONFIG, num_key_value_heads: 1 }, 'config.json'));
    const model = new LlamaForCausalLM(cfg).eval();
    expect(model.model.layers[0]!.self_attn.k_proj.weight.shape).toEqual([16, 64]);
    const ids = reshape(tensor(Int32Array.from({ length: 24 }, (_, i) => (i * 37 + 5) % 512)), [2, 12]);
    const mask = tensor([[0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]], { dtype: 'int32' });
    const full = model.forward({ inputIds: ids, attentionMask: mask }).logits;
    await expectTensorClose(decodeIncrementally(model, ids, mask, 5), full, 1e-4, 'logits step by step');
  });
  test('tied embeddings share one tensor, and a checkpoint without lm_head.weight loads', async () => {
    const weights = await loadSafetensors(`${hfDir('llama')}/model.safetensors`);
    delete weights['lm_head.weight'];
    const tied = await AutoModelForCausalLM.fromPretrained(await folder({ ...CONFIG, tie_word_embeddings: true }, weights)) as LlamaForCausalLM;
    expect(tied.lm_head.weight).toBe(tied.model.embed_tokens.weight);
    expect(tied.namedParameters().map(([n]) => n)).not.toContain('lm_head.weight');
    await expect(AutoModelForCausalLM.fromPretrained(await folder(CONFIG, weights))).rejects.toThrow(/missing weights for lm_head.weight/);
  });
  test('attention_bias and mlp_bias add biases to the projections', () => {
    const model = new LlamaForCausalLM(llamaConfig(new ConfigReader({ ...CONFIG, attention_bias: true, mlp_bias: true }, 'config.json')));
    const names = model.namedParameters().map(([n]) => n);
    for (const p of ['q_proj', 'k_proj', 'v_proj', 'o_proj']) expect(names).toContain(`model.layers.0.self_attn.${p}.bias`);
    for (const p of ['gate_proj', 'up_proj', 'down_proj']) expect(names).toContain(`model.layers.1.mlp.${p}.bias`);
  });
  test('a checkpoint with stored rotary inv_freq buffers loads', async () => {
    const weights = await loadSafetensors(`${hfDir('llama')}/model.safetensors`);
    weights['model.rotary_emb.inv_freq'] = zeros([8]);
    weights['model.layers.0.self_attn.rotary_emb.inv_freq'] = zeros([8]);
    const ref = await loadRef('llama');
    const model = await AutoModelForCausalLM.fromPretrained(await folder(CONFIG, weights));
    await expectTensorClose(model.forward({ inputIds: ref['input_ids']!, attentionMask: ref['attention_mask']! }).logits, ref['logits']!, 1e-4, 'logits');
  });
});

describe('LLaMA RoPE configs', () => {
  test('the legacy format (top-level rope_theta, no rope_scaling) loads the same model', async () => {
    const ref = await loadRef('llama');
    for (const config of [legacy(null), { ...legacy(null), rope_scaling: undefined }]) {
      const model = await AutoModelForCausalLM.fromPretrained(await folder(config));
      await expectTensorClose(model.forward({ inputIds: ref['input_ids']!, attentionMask: ref['attention_mask']! }).logits, ref['logits']!, 1e-4, 'logits');
    }
  });
  test('rope_scaling {type | rope_type, ...} reads as rope_parameters', async () => {
    const ref = await loadRef('llama');
    const llama3 = { factor: 4, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8 };
    const pairs: [Record<string, unknown>, Record<string, unknown>][] = [
      [{ type: 'linear', factor: 2 }, { rope_type: 'linear', rope_theta: 10000, factor: 2 }],
      [{ rope_type: 'llama3', ...llama3 }, { rope_type: 'llama3', rope_theta: 10000, ...llama3 }],
    ];
    for (const [old, current] of pairs) {
      const a = await AutoModelForCausalLM.fromPretrained(await folder(legacy(old)));
      const b = await AutoModelForCausalLM.fromPretrained(await folder({ ...CONFIG, rope_parameters: current }));
      expect((a as LlamaForCausalLM).config.rope_parameters).toEqual((b as LlamaForCausalLM).config.rope_parameters);
      const inputs = { inputIds: ref['input_ids']!, attentionMask: ref['attention_mask']! };
      const la = a.forward(inputs).logits;
      await expectTensorClose(la, b.forward(inputs).logits, 1e-6, `${String(current['rope_type'])} logits`);
      // Scaled frequencies change the rotations of every position after the first.
      const want = await ref['logits']!.data();
      expect(Math.max(...(await la.data()).map((v, i) => Math.abs(v - want[i]!)))).toBeGreaterThan(1e-3);
    }
  });
  test.each(ROPE.cases.map((c) => [c.name, c] as const))('inv_freq as transformers computes it: %s', (_, c) => {
    expectClose(ropeInverseFrequencies(c.rope_parameters, c.head_dim), c.inv_freq, 0, 1e-6, c.name);
  });
  test('the model takes its rotary frequencies from the config', async () => {
    const c = ROPE.cases.find((x) => x.rope_parameters.rope_type === 'llama3' && x.head_dim === 16)!;
    const model = new LlamaForCausalLM(llamaConfig(new ConfigReader({ ...CONFIG, rope_parameters: c.rope_parameters }, 'config.json')));
    expectClose(await model.model.rotary_emb.inv_freq.data(), c.inv_freq, 0, 1e-6, 'inv_freq');
  });
});

describe('LLaMA loading errors', () => {
  const read = (json: Record<string, unknown>) => () => llamaConfig(new ConfigReader(json, 'llama/config.json'));
  test('an unknown rope type names the file, the key and the supported types', () => {
    expect(read({ ...CONFIG, rope_parameters: { rope_type: 'yarn', rope_theta: 10000, factor: 2 } }))
      .toThrow(/llama\/config.json \(rope_parameters\): "rope_type" must be one of default, linear, llama3, got "yarn"/);
    expect(read(legacy({ type: 'dynamic', factor: 2 }))).toThrow(/\(rope_scaling\): "type" must be one of default, linear, llama3, got "dynamic"/);
  });
  test('missing or bad RoPE fields name the key', () => {
    expect(read({ ...CONFIG, rope_parameters: { rope_type: 'llama3', rope_theta: 10000, factor: 8, low_freq_factor: 1, high_freq_factor: 4 } }))
      .toThrow(/\(rope_parameters\): "original_max_position_embeddings" must be a non-negative integer, got undefined/);
    expect(read(legacy({ type: 'linear' }))).toThrow(/\(rope_scaling\): "factor" must be a number/);
    expect(read(legacy({ type: 'linear', factor: -2 }))).toThrow(/"factor" must be positive, got -2/);
    expect(read(legacy({ rope_type: 'llama3', factor: 8, low_freq_factor: 4, high_freq_factor: 1, original_max_position_embeddings: 64 })))
      .toThrow(/"high_freq_factor" \(1\) must be greater than "low_freq_factor" \(4\)/);
    expect(read(legacy(null, Number.NaN))).toThrow(/"rope_theta" must be a number/);
    expect(read({ ...CONFIG, rope_parameters: 'default' })).toThrow(/"rope_parameters" must be an object, got "default"/);
  });
  test('head counts that do not divide, and odd head sizes', () => {
    expect(read({ ...CONFIG, num_key_value_heads: 3 })).toThrow(/"num_attention_heads" \(4\) must be divisible by "num_key_value_heads" \(3\)/);
    expect(read({ ...CONFIG, head_dim: undefined, num_attention_heads: 6, num_key_value_heads: 2 })).toThrow(/"hidden_size" \(64\) must be divisible by "num_attention_heads" \(6\)/);
    expect(read({ ...CONFIG, head_dim: 7 })).toThrow(/must be an even integer for rotary positions, got 7/);
    expect(read({ ...CONFIG, hidden_act: 'swish' })).toThrow(/"hidden_act" must be one of silu, gelu, gelu_new, gelu_pytorch_tanh, relu/);
  });
  test('weights of the wrong shape name the key', async () => {
    await expect(AutoModelForCausalLM.fromPretrained(await folder({ ...CONFIG, num_key_value_heads: 4 })))
      .rejects.toThrow(/weight model.layers.0.self_attn.k_proj.weight has shape \[32, 64\], the config says \[64, 64\]/);
  });
  test('missing weights name the key', async () => {
    await expect(AutoModelForCausalLM.fromPretrained(await folder({ ...CONFIG, num_hidden_layers: 3 }))).rejects.toThrow(/missing weights for model.layers.2/);
    await expect(AutoModelForCausalLM.fromPretrained(await folder({ ...CONFIG, attention_bias: true }))).rejects.toThrow(/missing weights for model.layers.0.self_attn.q_proj.bias/);
  });
  test('an input longer than max_position_embeddings, at once or through the cache', async () => {
    const dir = await folder({ ...CONFIG, max_position_embeddings: 24 });
    const model = await AutoModelForCausalLM.fromPretrained(dir);
    expect(() => model.forward({ inputIds: zeros([1, 25], { dtype: 'int32' }) })).toThrow(/25 positions exceed the model's max_position_embeddings = 24/);
    const caches = model.newCache();
    model.forward({ inputIds: zeros([1, 20], { dtype: 'int32' }), pastKeyValues: caches });
    expect(() => model.forward({ inputIds: zeros([1, 5], { dtype: 'int32' }), pastKeyValues: caches })).toThrow(/25 positions exceed/);
    for (const c of caches) c.dispose();
  });
  test('mis-shaped inputs', async () => {
    const model = await AutoModelForCausalLM.fromPretrained(hfDir('llama'));
    const ids = zeros([2, 4], { dtype: 'int32' });
    expect(() => model.forward({ inputIds: zeros([4], { dtype: 'int32' }) })).toThrow(/inputIds must be \[batch, time\], got \[4\]/);
    expect(() => model.forward({ inputIds: ids, attentionMask: zeros([2, 5], { dtype: 'int32' }) })).toThrow(/attentionMask must be \[2, 4\] or \[2, 1, 4, 4\], got \[2, 5\]/);
    expect(() => model.forward({ inputIds: ids, attentionMask: zeros([2, 1, 4, 5], { dtype: 'bool' }) })).toThrow(/attentionMask must be \[2, 4\] or \[2, 1, 4, 4\], got \[2, 1, 4, 5\]/);
    expect(() => model.forward({ inputIds: ids, positionIds: zeros([2, 3], { dtype: 'int32' }) })).toThrow(/positionIds must be \[2, 4\] or \[1, 4\], got \[2, 3\]/);
  });
  test('the config the fixture was written with reads as expected', async () => {
    const cfg = llamaConfig(new ConfigReader(JSON.parse(await readFile(`${hfDir('llama')}/config.json`, 'utf8')) as Record<string, unknown>, 'config.json'));
    expect(cfg).toMatchObject({ num_key_value_heads: 2, head_dim: 16, tie_word_embeddings: false, rope_parameters: { rope_type: 'default', rope_theta: 10000 } });
  });
});
