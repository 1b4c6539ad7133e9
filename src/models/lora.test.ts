// LoRA adapters against PEFT: adapted and merged GPT-2 logits on every backend, save / load round trips, training only the adapters, errors.

import { copyFile, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import '../index.js';
import { noGrad } from '../autograd/engine.js';
import { add } from '../autograd/ops/elementwise.js';
import { loadSafetensors, readSafetensorsHeader, saveSafetensors } from '../io/safetensors.js';
import { AdamW } from '../optim/adamw.js';
import { listDevices } from '../tensor/backend.js';
import type { Tensor } from '../tensor/tensor.js';
import { expectClose } from '../test-util/fixtures.js';
import { expectTensorClose, hfDir, loadRef } from '../test-util/hf-fixtures.js';
import { AutoModelForCausalLM, AutoModelForMaskedLM } from './auto.js';
import { Linear } from '../nn/linear.js';
import { tensor } from '../tensor/create.js';
import type { PreTrainedModel } from './base.js';
import { addLora, loadLoraAdapter, LoraLinear, markOnlyLoraTrainable, mergeLora, saveLoraAdapter } from './lora.js';

const ADAPTER = hfDir('gpt2-lora');
const gpt2 = (device?: string): Promise<PreTrainedModel> => AutoModelForCausalLM.fromPretrained(hfDir('gpt2'), { device });
const tmp = (): Promise<string> => mkdtemp(join(tmpdir(), 'attend-lora-'));

/** An adapter folder with a rewritten adapter_config.json and the fixture's weights (or the given ones). */
async function adapterFolder(edit: (config: Record<string, unknown>) => Record<string, unknown>, weights?: Record<string, Tensor>): Promise<string> {
  const dir = await tmp();
  const config = JSON.parse(await readFile(join(ADAPTER, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
  await writeFile(join(dir, 'adapter_config.json'), JSON.stringify(edit(config)));
  if (weights) await saveSafetensors(join(dir, 'adapter_model.safetensors'), weights);
  else await copyFile(join(ADAPTER, 'adapter_model.safetensors'), join(dir, 'adapter_model.safetensors'));
  return dir;
}

async function snapshot(model: PreTrainedModel): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const [name, p] of model.namedParameters()) out.set(name, Float32Array.from(await p.data()));
  return out;
}

for (const device of listDevices()) {
  describe(`LoRA on ${device}`, () => {
    test('GPT-2 with the PEFT adapter gives PEFT\'s logits; merged, its merged_logits', async () => {
      const ref = await loadRef('gpt2-lora', device);
      const model = await gpt2(device);
      const names = await loadLoraAdapter(model, ADAPTER);
      expect(names).toEqual(['transformer.h.0.attn.c_attn', 'transformer.h.0.attn.c_proj', 'transformer.h.0.mlp.c_proj', 'transformer.h.1.attn.c_attn', 'transformer.h.1.attn.c_proj', 'transformer.h.1.mlp.c_proj']);
      const inputs = { inputIds: ref['input_ids']!, attentionMask: ref['attention_mask']! };
      await expectTensorClose(model.forward(inputs).logits, ref['logits']!, 1e-4, 'logits');
      mergeLora(model);
      await expectTensorClose(model.forward(inputs).logits, ref['merged_logits']!, 1e-4, 'merged_logits');
      expect(model.namedParameters().map(([n]) => n)).toEqual((await gpt2(device)).namedParameters().map(([n]) => n));
    });
  });
}

describe('LoRA adapters', () => {
  test('the adapted model keeps the base parameter names and adds PEFT\'s lora_A / lora_B', async () => {
    const model = await gpt2();
    await loadLoraAdapter(model, ADAPTER);
    const names = Object.keys(model.stateDict());
    expect(names).toContain('transformer.h.0.attn.c_attn.weight');
    expect(names).toContain('transformer.h.0.attn.c_attn.bias');
    expect(names).toContain('transformer.h.0.attn.c_attn.lora_A.weight');
    expect(names).toContain('transformer.h.1.mlp.c_proj.lora_B.weight');
    expect(names.filter((n) => n.includes('lora_')).length).toBe(12);
    expect(names.some((n) => n.includes('base_layer'))).toBe(false);
  });
  test('save -> load round trip: same files as PEFT wrote, same logits', async () => {
    const ref = await loadRef('gpt2-lora');
    const model = await gpt2();
    await loadLoraAdapter(model, ADAPTER);
    const dir = await tmp();
    await saveLoraAdapter(model, dir);
    const header = await readSafetensorsHeader(join(dir, 'adapter_model.safetensors'));
    expect(Object.keys(header.tensors).sort()).toEqual(Object.keys((await readSafetensorsHeader(join(ADAPTER, 'adapter_model.safetensors'))).tensors).sort());
    const config = JSON.parse(await readFile(join(dir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    expect(config).toMatchObject({ peft_type: 'LORA', r: 4, lora_alpha: 8, fan_in_fan_out: true, bias: 'none', target_modules: ['c_proj', 'c_attn'] });
    const again = await gpt2();
    await loadLoraAdapter(again, dir);
    await expectTensorClose(again.forward({ inputIds: ref['input_ids']!, attentionMask: ref['attention_mask']! }).logits, ref['logits']!, 1e-4, 'logits');
  });
  test('training only the LoRA parameters leaves the base weights unchanged; the trained adapter saves and reloads', async () => {
    const ref = await loadRef('gpt2-lora');
    const model = await gpt2();
    const before = await snapshot(model);
    const inputs = { inputIds: ref['input_ids']!, attentionMask: ref['attention_mask']! };
    const base = await model.forward(inputs).logits.data();
    addLora(model, { r: 2, alpha: 4, targetModules: ['c_attn'], dropout: 0.1 });
    // B starts at zero: a fresh adapter changes nothing.
    expectClose(await model.forward(inputs).logits.data(), Array.from(base), 1e-6, 0, 'fresh adapter');
    const trainable = markOnlyLoraTrainable(model);
    expect(trainable.length).toBe(4);
    model.train();
    const opt = new AdamW(trainable, { lr: 1e-2 });
    model.forward({ ...inputs, labels: ref['input_ids']! }).loss!.backward();
    opt.step();
    model.eval();
    const after = await snapshot(model);
    for (const [name, values] of before) expectClose(after.get(name)!, Array.from(values), 0, 0, name);
    for (const [name, p] of model.namedParameters()) if (!name.includes('lora_')) expect(p.grad, name).toBeNull();
    const b = await (model.stateDict()['transformer.h.0.attn.c_attn.lora_B.weight']!).data();
    expect(Math.max(...b.map(Math.abs))).toBeGreaterThan(1e-3);
    const trained = await model.forward(inputs).logits.data();
    const dir = await tmp();
    await saveLoraAdapter(model, dir);
    const again = await gpt2();
    await loadLoraAdapter(again, dir);
    expectClose(await again.forward(inputs).logits.data(), Array.from(trained), 1e-5, 0, 'reloaded adapter');
  });
  test('modules to save are trained, saved and loaded whole', async () => {
    const ref = await loadRef('gpt2-lora');
    const model = await gpt2();
    addLora(model, { r: 2, alpha: 2, targetModules: '.*\\.attn\\.c_proj', modulesToSave: ['ln_f'] });
    const trainable = markOnlyLoraTrainable(model);
    expect(trainable.length).toBe(2 * 2 + 2);
    const ln = model.stateDict()['transformer.ln_f.weight']!;
    noGrad(() => ln.replaceStorage(add(ln, 0.5)));
    const inputs = { inputIds: ref['input_ids']!, attentionMask: ref['attention_mask']! };
    const want = await model.forward(inputs).logits.data();
    const dir = await tmp();
    await saveLoraAdapter(model, dir);
    expect(Object.keys(await loadSafetensors(join(dir, 'adapter_model.safetensors')))).toContain('base_model.model.transformer.ln_f.weight');
    const again = await gpt2();
    await loadLoraAdapter(again, dir);
    expectClose(await again.forward(inputs).logits.data(), Array.from(want), 1e-5, 0, 'logits');
  });
  test('nn.Linear targets (rsLoRA scaling): merging gives the adapted function, untying a tied lm_head', async () => {
    const ref = await loadRef('gpt2-lora');
    const model = await gpt2();
    addLora(model, { r: 3, alpha: 6, targetModules: ['lm_head'], useRslora: true });
    const layer = model.namedModules().find(([n]) => n === 'lm_head')![1] as LoraLinear;
    expect(layer.scaling).toBeCloseTo(6 / Math.sqrt(3), 12);
    noGrad(() => layer.lora_B.weight.replaceStorage(add(layer.lora_B.weight, 0.05)));
    const inputs = { inputIds: ref['input_ids']!, attentionMask: ref['attention_mask']! };
    const adapted = await model.forward(inputs).logits.data();
    const embedding = Float32Array.from(await model.stateDict()['transformer.wte.weight']!.data());
    mergeLora(model);
    expectClose(await model.forward(inputs).logits.data(), Array.from(adapted), 1e-4, 0, 'merged lm_head');
    // lm_head was tied to the embedding: merging unties it rather than changing the embedding too.
    const sd = model.stateDict();
    expect(sd['lm_head.weight']).not.toBe(sd['transformer.wte.weight']);
    expectClose(await sd['transformer.wte.weight']!.data(), Array.from(embedding), 0, 0, 'embedding');
  });
  test('LLaMA q_proj / v_proj adapters: merging gives the adapted function', async () => {
    const ref = await loadRef('llama');
    const model = await AutoModelForCausalLM.fromPretrained(hfDir('llama'));
    expect(addLora(model, { r: 4, alpha: 16, targetModules: ['q_proj', 'v_proj'] })).toHaveLength(4);
    for (const [, m] of model.namedModules()) if (m instanceof LoraLinear) noGrad(() => m.lora_B.weight.replaceStorage(add(m.lora_B.weight, 0.02)));
    const inputs = { inputIds: ref['input_ids']!, attentionMask: ref['attention_mask']! };
    const adapted = await model.forward(inputs).logits.data();
    const base = await ref['logits']!.data();
    expect(Math.max(...adapted.map((v, i) => Math.abs(v - base[i]!)))).toBeGreaterThan(1e-3);
    mergeLora(model);
    expectClose(await model.forward(inputs).logits.data(), Array.from(adapted), 1e-4, 0, 'merged');
  });
});

describe('LoRA options for training', () => {
  test("'all-linear' adapts every Linear / Conv1D but the output head (PEFT's rule)", async () => {
    const short = (names: string[]): string[] => names.map((n) => n.replace(/^.*\.h\.\d+\.|^.*\.layers\.\d+\.|^.*\.layer\.\d+\./, ''));
    const g = addLora(await gpt2(), { r: 2, alpha: 2, targetModules: 'all-linear' });
    expect(short(g)).toEqual(['attn.c_attn', 'attn.c_proj', 'mlp.c_fc', 'mlp.c_proj', 'attn.c_attn', 'attn.c_proj', 'mlp.c_fc', 'mlp.c_proj']);
    const l = addLora(await AutoModelForCausalLM.fromPretrained(hfDir('llama')), { r: 2, alpha: 2, targetModules: 'all-linear' });
    expect(l).toHaveLength(14);
    expect(l).not.toContain('lm_head');
    // BertForMaskedLM's output head is cls.predictions.decoder (its get_output_embeddings); the transform before it is adapted.
    const b = addLora(await AutoModelForMaskedLM.fromPretrained(hfDir('bert-mlm')), { r: 2, alpha: 2, targetModules: 'all-linear' });
    expect(b).toContain('cls.predictions.transform.dense');
    expect(b).not.toContain('cls.predictions.decoder');
  });
  test('a new adapter refuses a listed target that matches nothing (a typo), naming it and the layers there are', async () => {
    expect(() => addLora(model0, { r: 2, alpha: 2, targetModules: ['c_attn', 'c_atn'] })).toThrow(/addLora: target_modules "c_atn" match no layer of the model \(its linear layers: c_attn, c_proj, c_fc, lm_head\)/);
    expect(model0.namedModules().some(([, m]) => m instanceof LoraLinear)).toBe(false);
  });
  test('lora_dropout drops the adapter\'s input in training only; eval gives base + scaling B A x', async () => {
    const base = new Linear(6, 3);
    const layer = new LoraLinear(base, 2, 4, 0.5, false);
    noGrad(() => layer.lora_B.weight.replaceStorage(add(layer.lora_B.weight, 0.3)));
    const x = tensor([[1, -2, 0.5, 3, -1, 2]]);
    const [W, bias, A, B] = await Promise.all([base.weight.data(), base.bias!.data(), layer.lora_A.weight.data(), layer.lora_B.weight.data()]);
    const xs = [1, -2, 0.5, 3, -1, 2];
    const ax = [0, 1].map((r) => xs.reduce((s, v, i) => s + A[r * 6 + i]! * v, 0));
    const want = [0, 1, 2].map((o) => xs.reduce((s, v, i) => s + W[o * 6 + i]! * v, bias[o]!) + 2 * (B[o * 2]! * ax[0]! + B[o * 2 + 1]! * ax[1]!));
    layer.eval();
    expectClose(await layer.forward(x).data(), want, 1e-5, 1e-5, 'eval');
    layer.train();
    const outs = await Promise.all(Array.from({ length: 4 }, () => layer.forward(x).data()));
    expect(outs.some((o) => Math.max(...Array.from(o, (v, i) => Math.abs(v - want[i]!))) > 1e-3)).toBe(true);
  });
});

const model0 = await gpt2();

describe('LoRA errors', () => {
  test('target modules that match no layer name the key and the layers there are', async () => {
    const dir = await adapterFolder((c) => ({ ...c, target_modules: ['q_proj', 'v_proj'] }));
    await expect(loadLoraAdapter(await gpt2(), dir)).rejects.toThrow(/adapter_config.json: target_modules \["q_proj","v_proj"\] match no layer of the model \(its linear layers: c_attn, c_proj, c_fc, lm_head\)/);
  });
  test('a target that is not a linear layer', async () => {
    await expect(loadLoraAdapter(await gpt2(), await adapterFolder((c) => ({ ...c, target_modules: ['attn'] }))))
      .rejects.toThrow(/target module transformer.h.0.attn is a GPT2Attention; LoRA adapts Linear and Conv1D layers only/);
  });
  test('weights whose shapes do not fit name the key, and the model is left as it was', async () => {
    const model = await gpt2();
    const dir = await adapterFolder((c) => ({ ...c, r: 8 }));
    await expect(loadLoraAdapter(model, dir)).rejects.toThrow(/adapter weight base_model.model.transformer.h.0.attn.c_attn.lora_A.weight has shape \[4, 64\], the model and r = 8 need \[8, 64\]/);
    expect(Object.keys(model.stateDict()).some((k) => k.includes('lora_'))).toBe(false);
  });
  test('weights for a layer the config does not target, and missing ones, name the key', async () => {
    await expect(loadLoraAdapter(await gpt2(), await adapterFolder((c) => ({ ...c, target_modules: ['c_attn'] }))))
      .rejects.toThrow(/unexpected adapter weight base_model.model.transformer.h.0.attn.c_proj.lora_A.weight/);
    const weights = await loadSafetensors(join(ADAPTER, 'adapter_model.safetensors'));
    delete weights['base_model.model.transformer.h.1.mlp.c_proj.lora_B.weight'];
    await expect(loadLoraAdapter(await gpt2(), await adapterFolder((c) => c, weights)))
      .rejects.toThrow(/missing adapter weights base_model.model.transformer.h.1.mlp.c_proj.lora_B.weight/);
  });
  test('config fields that are bad or not supported name the key', async () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ bias: 'all' }, /"bias" must be one of none, got "all"/],
      [{ use_dora: true }, /"use_dora" = true is not supported/],
      [{ rank_pattern: { c_attn: 8 } }, /"rank_pattern" = \{"c_attn":8\} is not supported/],
      [{ peft_type: 'IA3' }, /peft_type 'IA3' is not a LoRA adapter/],
      [{ r: 0 }, /r must be a positive integer, got 0/],
      [{ lora_dropout: 1 }, /lora_dropout must be in \[0, 1\), got 1/],
    ];
    for (const [edit, error] of cases) await expect(loadLoraAdapter(await gpt2(), await adapterFolder((c) => ({ ...c, ...edit })))).rejects.toThrow(error);
  });
  test('one adapter at a time; saving, training or merging needs one', async () => {
    const model = await gpt2();
    expect(() => markOnlyLoraTrainable(model)).toThrow(/has no LoRA adapter/);
    expect(() => mergeLora(model)).toThrow(/has no LoRA adapter/);
    await expect(saveLoraAdapter(model, await tmp())).rejects.toThrow(/has no LoRA adapter/);
    await loadLoraAdapter(model, ADAPTER);
    expect(() => addLora(model, { r: 2, alpha: 2, targetModules: ['c_attn'] })).toThrow(/transformer.h.0.attn.c_attn already has a LoRA adapter/);
  });
});
