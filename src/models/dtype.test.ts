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
import { memory, reclaimMemory } from '../tensor/memory.js';
import type { Tensor } from '../tensor/tensor.js';
import { hfDir, loadRef } from '../test-util/hf-fixtures.js';
import { AutoModelForCausalLM, type FromPretrainedOptions } from './auto.js';
import type { PreTrainedModel } from './base.js';

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
const halfDir = (dtype: string): string => join(root, dtype);

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'attend-dtype-'));
  const weights = await loadSafetensors(join(hfDir('gpt2'), 'model.safetensors'));
  for (const dtype of ['float16', 'bfloat16'] as const) {
    await mkdir(halfDir(dtype));
    await saveSafetensors(join(halfDir(dtype), 'model.safetensors'), weights, undefined, { dtype });
    await copyFile(join(hfDir('gpt2'), 'config.json'), join(halfDir(dtype), 'config.json'));
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
  test('dtype auto: a 2-byte checkpoint stays 2 bytes (same values), a float32 one float32, config.json\'s torch_dtype first', async () => {
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
    // transformers reads config.json's torch_dtype before the weights: float16 weights, bfloat16 declared.
    const dir = join(root, `declared-${device}`);
    await mkdir(dir);
    await copyFile(join(halfDir('float16'), 'model.safetensors'), join(dir, 'model.safetensors'));
    const config = JSON.parse(await readFile(join(hfDir('gpt2'), 'config.json'), 'utf8')) as Record<string, unknown>;
    await writeFile(join(dir, 'config.json'), JSON.stringify({ ...config, torch_dtype: 'bfloat16' }));
    const declared = await AutoModelForCausalLM.fromPretrained(dir, { device, dtype: 'auto' });
    expect(new Set(declared.parameters().map((p) => p.dtype))).toEqual(new Set(['bfloat16']));
    // The default stays float32, as transformers (an F16 checkpoint is widened).
    const dflt = await AutoModelForCausalLM.fromPretrained(halfDir('float16'), { device });
    expect(new Set(dflt.parameters().map((p) => p.dtype))).toEqual(new Set(['float32']));
  });
});

describe('fromPretrained dtype option errors', () => {
  test.each([['fp16'], ['int32'], [16], [null]])('%j is refused before any file is read, naming the option and its values', async (bad) => {
    const missing = join(tmpdir(), 'attend-no-such-model');
    await expect(AutoModelForCausalLM.fromPretrained(missing, { dtype: bad as 'float16' })).rejects.toThrow(
      `fromPretrained: option "dtype" must be one of float32, float16, bfloat16, float64, auto, got ${JSON.stringify(bad)}`);
  });
});
