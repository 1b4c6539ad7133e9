// Shared checks of a LLaMA-family causal LM against its Hugging Face fixture (test/data/hf/<name>): logits, gradients, AdamW, KV cache, greedy.

import { mkdtemp, writeFile, copyFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { noGrad } from '../autograd/engine.js';
import { cat, narrow } from '../autograd/ops/movement.js';
import { generateWithScores } from '../generation/generate.js';
import { AutoModelForCausalLM } from '../models/auto.js';
import type { PreTrainedModel } from '../models/base.js';
import { AdamW } from '../optim/adamw.js';
import { listDevices } from '../tensor/backend.js';
import type { Tensor } from '../tensor/tensor.js';
import { expectClose } from './fixtures.js';
import { expectGradsMatch, expectTensorClose, hfDir, loadRef } from './hf-fixtures.js';

/** The fixture's config.json. */
export const fixtureConfig = (name: string): Record<string, unknown> => JSON.parse(readFileSync(`${hfDir(name)}/config.json`, 'utf8')) as Record<string, unknown>;

/** A checkpoint folder with the given config.json and the fixture's weights. */
export async function folderWithConfig(name: string, config: object): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `attend-${name}-`));
  await writeFile(join(dir, 'config.json'), JSON.stringify(config));
  await copyFile(join(hfDir(name), 'model.safetensors'), join(dir, 'model.safetensors'));
  return dir;
}

/** Feeds `first` tokens, then one at a time, through the model's caches; returns every step's logits, [B, T, V]. */
export function decodeIncrementally(model: PreTrainedModel, inputIds: Tensor, attentionMask: Tensor | null, first: number): Tensor {
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

/**
 * On every device: logits and hidden states (a left-padded row included), gradients of sum(logits * grad_probe) and
 * one AdamW step, decoding one token at a time through the KV cache, and greedy generation, all against transformers.
 */
export function describeCausalLMFixture(name: string, label: string): void {
  for (const device of listDevices()) {
    describe(`${label} on ${device} against transformers`, () => {
      test('logits and hidden states (row 1 left-padded)', async () => {
        const ref = await loadRef(name, device);
        const model = await AutoModelForCausalLM.fromPretrained(hfDir(name), { device });
        const out = model.forward({ inputIds: ref['input_ids']!, attentionMask: ref['attention_mask']! });
        await expectTensorClose(out.logits, ref['logits']!, 1e-4, 'logits');
        await expectTensorClose(out.lastHiddenState!, ref['last_hidden_state']!, 1e-4, 'last_hidden_state');
      });
      test('gradients of sum(logits * probe) for every parameter, and one AdamW step from them', async () => {
        const ref = await loadRef(name, device);
        const model = await AutoModelForCausalLM.fromPretrained(hfDir(name), { device });
        await expectGradsMatch(model, model.forward({ inputIds: ref['input_ids']!.narrow(0, 0, 1) }).logits, ref);
        // The step from transformers' gradients: Adam's first step g / (|g| + 1e-8) is ill-conditioned where g is
        // near 0, so float32 rounding in our (already checked) gradients could move such a weight by up to lr.
        for (const [n, p] of model.namedParameters()) p.grad = ref[`grad.${n}`]!;
        new AdamW(model.parameters(), { lr: 1e-2, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.01 }).step();
        for (const [n, p] of model.namedParameters()) expectClose(await p.data(), Array.from(await ref[`adamw.${n}`]!.data()), 1e-5, 0, `adamw.${n}`);
      });
      test('one token at a time through the KV cache gives the full pass\'s logits', async () => {
        const ref = await loadRef(name, device);
        const model = await AutoModelForCausalLM.fromPretrained(hfDir(name), { device });
        await expectTensorClose(decodeIncrementally(model, ref['input_ids']!, ref['attention_mask']!, 3), ref['logits']!, 1e-4, 'logits step by step');
      });
      test('greedy generation: the same 14 tokens and scores', async () => {
        const ref = await loadRef(name, device);
        const model = await AutoModelForCausalLM.fromPretrained(hfDir(name), { device });
        const out = await generateWithScores(model, ref['gen.input_ids']!.int(), { maxNewTokens: 14, minNewTokens: 14 });
        expect(await out.sequences.tolist()).toEqual(await ref['greedy.sequences']!.int().tolist());
        const want = Array.from(await ref['greedy.scores']!.data());
        const got = out.scores.flatMap((s) => Array.from(s));
        expect(got.length).toBe(want.length);
        // The eos token is forbidden (minNewTokens): -inf on both sides, which expectClose compares exactly.
        expectClose(got, want, 1e-4, 0, 'greedy scores');
      });
    });
  }
}
