// Models in float16 / bfloat16: fromPretrained's dtype option (transformers' torch_dtype), GPT-2 forward, loss and
// greedy generation against the float32 model, and 2 bytes per parameter in memory, on every backend.

import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import '../index.js';
import { generateWithScores } from '../generation/generate.js';
import { loadSafetensors, saveSafetensors } from '../io/safetensors.js';
import { listDevices } from '../tensor/backend.js';
import { tensor } from '../tensor/create.js';
import { memory, reclaimMemory } from '../tensor/memory.js';
import type { Tensor } from '../tensor/tensor.js';
import { hfDir, loadRef } from '../test-util/hf-fixtures.js';
import { AutoModelForCausalLM, AutoModelForMaskedLM, AutoModelForSeq2SeqLM, AutoModelForSequenceClassification, type FromPretrainedOptions } from './auto.js';
import type { PreTrainedModel } from './base.js';
import type { LlamaForCausalLM } from './llama.js';

/** The largest |a - b| and the largest |a|. */
async function diff(a: Tensor, b: Tensor): Promise<{ maxDiff: number; maxAbs: number }> {
  const x = await a.data(), y = await b.data();
  let maxDiff = 0, maxAbs = 0;
  for (let i = 0; i < x.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(x[i]! - y[i]!));
    maxAbs = Math.max(maxAbs, Math.abs(x[i]!));
  }
  return { maxDiff, maxAbs };
}

/** Loads a model and returns it with the bytes it added on its device (after reclaiming every temporary). */
async function loadMeasured(dir: string, opts: FromPretrainedOptions & { device: string }): Promise<{ model: PreTrainedModel; bytes: number }> {
  await reclaimMemory();
  const before = memory().devices[opts.device]?.bytes ?? 0;
  const model = await AutoModelForCausalLM.fromPretrained(dir, opts);
  await reclaimMemory();
  return { model, bytes: memory().devices[opts.device]!.bytes - before };
}

/** Allowed |half - float32| for values near 1: four roundings of float16 (2^-11), two of bfloat16 (2^-8). */
const TOL = { float16: 2e-3, bfloat16: 8e-3 } as const;

let root = '';

/** config.json of the GPT-2 fixture with `changes` (undefined deletes a key) written to dir. */
async function writeConfig(dir: string, changes: Record<string, string | undefined>): Promise<void> {
  const config = JSON.parse(await readFile(join(hfDir('gpt2'), 'config.json'), 'utf8')) as Record<string, unknown>;
  await writeFile(join(dir, 'config.json'), JSON.stringify({ ...config, ...changes }));
}
const halfDir = (dtype: string): string => join(root, dtype);

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'attend-dtype-'));
  const weights = await loadSafetensors(join(hfDir('gpt2'), 'model.safetensors'));
  for (const dtype of ['float16', 'bfloat16'] as const) {
    await mkdir(halfDir(dtype));
    await saveSafetensors(join(halfDir(dtype), 'model.safetensors'), weights, undefined, { dtype });
    await writeConfig(halfDir(dtype), { dtype }); // as save_pretrained writes a half model's config
  }
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe.each(listDevices())('GPT-2 in half precision on %s', (device) => {
  test.each(['float16', 'bfloat16'] as const)('fromPretrained({ dtype: %s }) of the float32 checkpoint: 2 bytes per parameter; logits and loss close to float32', async (dtype) => {
    const ref = await loadRef('gpt2', device);
    const full = await AutoModelForCausalLM.fromPretrained(hfDir('gpt2'), { device });
    const { model, bytes } = await loadMeasured(hfDir('gpt2'), { device, dtype });
    expect(new Set(model.parameters().map((p) => p.dtype))).toEqual(new Set([dtype]));
    expect([model.dtype, full.dtype]).toEqual([dtype, 'float32']);
    expect(model.namedBuffers().filter(([, b]) => b.dtype === 'float32')).toEqual([]);
    expect(bytes).toBe(2 * model.numParameters() + model.namedBuffers().reduce((n, [, b]) => n + b.storage.bytes, 0));

    const input = { inputIds: ref['input_ids']!, attentionMask: ref['attention_mask']!, labels: ref['input_ids']! };
    const a = full.forward(input), b = model.forward(input);
    expect([b.logits.dtype, b.loss!.dtype]).toEqual([dtype, dtype]); // as torch: a half model's outputs are half
    const { maxDiff, maxAbs } = await diff(b.logits, a.logits);
    // About one rounding of the output (2^-11 relative for float16, 2^-8 for bfloat16) at |logit| ~ 1; measured
    // 5.1e-4 (float16) and 3.9e-3 (bfloat16) on cpu and wasm. The loss (~6.2): measured 6e-4 and 3.3e-3.
    const tol = TOL[dtype];
    expect(maxDiff).toBeLessThan(tol * Math.max(1, maxAbs));
    expect(maxDiff).toBeGreaterThan(0); // really computed in half
    expect(Math.abs((await b.loss!.item()) - (await a.loss!.item()))).toBeLessThan(8 * tol);
  });
  test.each(['float16', 'bfloat16'] as const)('greedy generate() in %s: transformers\' float32 tokens, scores close', async (dtype) => {
    const ref = await loadRef('gpt2', device);
    const model = await AutoModelForCausalLM.fromPretrained(hfDir('gpt2'), { device, dtype });
    const out = await generateWithScores(model, ref['gen.input_ids']!.int(), { maxNewTokens: 12, minNewTokens: 12 });
    const want = await ref['greedy.scores']!.data();
    const got = out.scores.flatMap((s) => Array.from(s));
    expect(await out.sequences.tolist()).toEqual(await ref['greedy.sequences']!.int().tolist());
    expect(got.length).toBe(want.length);
    let maxDiff = 0;
    for (let i = 0; i < got.length; i++) {
      if (Number.isFinite(want[i]!)) maxDiff = Math.max(maxDiff, Math.abs(got[i]! - want[i]!));
      else expect(got[i]).toBe(want[i]); // the forbidden eos stays -inf
    }
    expect(maxDiff).toBeLessThan(TOL[dtype]); // measured 5.5e-4 (float16), 4.4e-3 (bfloat16)
  });
  test('dtype auto: a 2-byte checkpoint stays 2 bytes (same values), a float32 one float32, config.json\'s dtype first', async () => {
    const f16 = await loadSafetensors(join(halfDir('float16'), 'model.safetensors'), { device });
    const { model, bytes } = await loadMeasured(halfDir('float16'), { device, dtype: 'auto' });
    expect(new Set(model.parameters().map((p) => p.dtype))).toEqual(new Set(['float16']));
    expect(bytes).toBe(2 * model.numParameters());
    const own = model.stateDict();
    for (const [k, t] of Object.entries(f16)) if (own[k]) expect(await own[k].data(), k).toEqual(await t.data()); // decoded exactly: equal values, equal bits
    const bf = await AutoModelForCausalLM.fromPretrained(halfDir('bfloat16'), { device, dtype: 'auto' });
    expect(new Set(bf.parameters().map((p) => p.dtype))).toEqual(new Set(['bfloat16']));
    const f32 = await AutoModelForCausalLM.fromPretrained(hfDir('gpt2'), { device, dtype: 'auto' });
    expect(new Set(f32.parameters().map((p) => p.dtype))).toEqual(new Set(['float32']));
    // transformers reads config.json's dtype (torch_dtype before version 5), then the first floating weight; float16
    // weights here.
    const cases = [
      ['torch_dtype', { dtype: undefined, torch_dtype: 'bfloat16' }, 'bfloat16'],
      ['dtype', { dtype: 'float32' }, 'float32'],
      ['none', { dtype: undefined }, 'float16'],
    ] as const;
    for (const [name, changes, want] of cases) {
      const dir = join(root, `declared-${name}-${device}`);
      await mkdir(dir);
      await copyFile(join(halfDir('float16'), 'model.safetensors'), join(dir, 'model.safetensors'));
      await writeConfig(dir, changes);
      const model = await AutoModelForCausalLM.fromPretrained(dir, { device, dtype: 'auto' });
      expect(model.dtype, name).toBe(want);
    }
    // The default stays float32, as transformers (an F16 checkpoint is widened).
    const dflt = await AutoModelForCausalLM.fromPretrained(halfDir('float16'), { device });
    expect(new Set(dflt.parameters().map((p) => p.dtype))).toEqual(new Set(['float32']));
  });
});

describe.each(listDevices())('LLaMA, BERT and T5 in half precision on %s', (device) => {
  const cases = [['llama', AutoModelForCausalLM], ['bert-mlm', AutoModelForMaskedLM], ['bert-cls', AutoModelForSequenceClassification], ['t5', AutoModelForSeq2SeqLM]] as const;
  test.each(cases.flatMap(([name, auto]) => (['float16', 'bfloat16'] as const).map((dtype) => [name, dtype, auto] as const)))('%s in %s: logits close to transformers\' float32', async (name, dtype, auto) => {
    const ref = await loadRef(name, device);
    const model = await auto.fromPretrained(hfDir(name), { device, dtype });
    expect(model.dtype).toBe(dtype);
    const opt = (k: string): Tensor | undefined => ref[k]?.int();
    const out = model.forward({ inputIds: opt('input_ids')!, attentionMask: opt('attention_mask'), tokenTypeIds: opt('token_type_ids'), decoderInputIds: opt('decoder_input_ids') });
    expect(out.logits.dtype).toBe(dtype);
    const { maxDiff, maxAbs } = await diff(out.logits, ref['logits']!);
    // measured (cpu, wasm) float16 / bfloat16: llama 4.8e-4 / 3.7e-3, bert-mlm 6.9e-4 / 5.1e-3, bert-cls 4e-5 / 2.6e-4,
    // t5 (|logit| up to 5.3) 4.1e-3 / 3.4e-2
    expect(maxDiff).toBeLessThan(TOL[dtype] * Math.max(1, maxAbs));
    expect(maxDiff).toBeGreaterThan(0);
    if (name === 'llama') {
      const gen = await generateWithScores(model, ref['gen.input_ids']!.int(), { maxNewTokens: 12, minNewTokens: 12 });
      expect(await gen.sequences.tolist()).toEqual(await ref['greedy.sequences']!.int().tolist());
    }
  });
  test('a half LLaMA still rotates in float32 (only cos / sin are rounded), as transformers', async () => {
    const model = (await AutoModelForCausalLM.fromPretrained(hfDir('llama'), { device })) as LlamaForCausalLM;
    const rotary = model.model.rotary_emb;
    const pos = tensor([[1000, 4095]], { device });
    const [c32, s32] = rotary.forward(pos);
    model.half();
    expect(rotary.inv_freq.dtype).toBe('float16'); // the buffer is converted, as torch's module.half()
    const [c16, s16] = rotary.forward(pos);
    expect(c16.dtype).toBe('float16');
    // Rounded once from the float32 values; from the rounded frequencies, position 4095 would be up to 1 radian off.
    expect(await c16.tolist()).toEqual(await c32.half().tolist());
    expect(await s16.tolist()).toEqual(await s32.half().tolist());
  });
});

describe('fromPretrained dtype option errors', () => {
  test.each([['fp16'], ['int32'], [16], [null]])('%j is refused before any file is read, naming the option and its values', async (bad) => {
    const missing = join(tmpdir(), 'attend-no-such-model');
    await expect(AutoModelForCausalLM.fromPretrained(missing, { dtype: bad as 'float16' })).rejects.toThrow(
      `fromPretrained: option "dtype" must be one of float32, float16, bfloat16, float64, auto, got ${JSON.stringify(bad)}`);
  });
});
