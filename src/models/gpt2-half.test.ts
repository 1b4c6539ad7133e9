// GPT-2 from a float16 / bfloat16 checkpoint (the fixture's weights converted): loads, and its logits stay close to float32's.

import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import '../index.js';
import { loadSafetensors, readSafetensorsHeader, saveSafetensors } from '../io/safetensors.js';
import { listDevices } from '../tensor/backend.js';
import { hfDir, loadRef } from '../test-util/hf-fixtures.js';
import { AutoModelForCausalLM } from './auto.js';

describe.each(listDevices())('GPT-2 from a half-precision checkpoint on %s', (device) => {
  test.each(['float16', 'bfloat16'] as const)('%s weights: parameters load as float32 (as transformers), logits close to the float32 model', async (dtype) => {
    const dir = await mkdtemp(join(tmpdir(), `attend-gpt2-${dtype}-`));
    try {
      const weights = await loadSafetensors(join(hfDir('gpt2'), 'model.safetensors'));
      await saveSafetensors(join(dir, 'model.safetensors'), weights, undefined, { dtype });
      await copyFile(join(hfDir('gpt2'), 'config.json'), join(dir, 'config.json'));
      const header = await readSafetensorsHeader(join(dir, 'model.safetensors'));
      expect(new Set(Object.values(header.tensors).map((e) => e.dtype))).toEqual(new Set([dtype === 'float16' ? 'F16' : 'BF16']));
      // The checkpoint itself loads at 2 bytes per element.
      const half = await loadSafetensors(join(dir, 'model.safetensors'), { device });
      expect(new Set(Object.values(half).map((t) => t.dtype))).toEqual(new Set([dtype]));

      const ref = await loadRef('gpt2', device);
      const full = await AutoModelForCausalLM.fromPretrained(hfDir('gpt2'), { device });
      const model = await AutoModelForCausalLM.fromPretrained(dir, { device });
      expect(new Set(model.parameters().map((p) => p.dtype))).toEqual(new Set(['float32']));
      const input = { inputIds: ref['input_ids']!, attentionMask: ref['attention_mask']! };
      const a = await full.forward(input).logits.data(), b = await model.forward(input).logits.data();
      let maxDiff = 0, maxAbs = 0;
      for (let i = 0; i < a.length; i++) {
        maxDiff = Math.max(maxDiff, Math.abs(a[i]! - b[i]!));
        maxAbs = Math.max(maxAbs, Math.abs(a[i]!));
      }
      // Weight rounding of 2^-11 (float16) or 2^-8 (bfloat16) relative, through two layers.
      expect(maxDiff).toBeLessThan((dtype === 'float16' ? 0.002 : 0.01) * Math.max(1, maxAbs)); // measured 2.5e-4, 1.8e-3
      expect(maxDiff).toBeGreaterThan(0); // the weights really were rounded
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
