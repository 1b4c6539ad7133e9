// AdamW against PyTorch: one torch.optim.AdamW step on every GPT-2 parameter (test/data/hf/gpt2, see its README).

import { fileURLToPath } from 'node:url';
import { expect, test } from 'vitest';
import '../index.js';
import { loadSafetensors } from '../io/safetensors.js';
import { expectClose } from '../test-util/fixtures.js';
import { AdamW } from './adamw.js';

const gpt2 = (file: string): string => fileURLToPath(new URL(`../../test/data/hf/gpt2/${file}`, import.meta.url));

test('one AdamW(lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01) step matches PyTorch on every GPT-2 parameter', async () => {
  const params = await loadSafetensors(gpt2('model.safetensors'));
  const ref = await loadSafetensors(gpt2('ref.safetensors'));
  const names = Object.keys(params);
  expect(names.length).toBe(28);
  const before: Record<string, Float32Array> = {};
  for (const name of names) {
    const p = params[name]!;
    before[name] = (await p.data()) as Float32Array;
    p.requiresGrad = true;
    p.grad = ref[`grad.${name}`]!;
    expect(p.grad, `grad.${name}`).toBeDefined();
  }
  const opt = new AdamW(names.map((n) => params[n]!), { lr: 1e-2, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.01 });
  opt.step();
  let moved = 0;
  for (const name of names) {
    const expected = [...(await ref[`adamw.${name}`]!.data())];
    expectClose(await params[name]!.data(), expected, 1e-6, 0, name);
    moved = Math.max(moved, ...expected.map((e, i) => Math.abs(e - before[name]![i]!)));
  }
  // The step is about lr per element: a comparison that would also pass with no update at all proves nothing.
  expect(moved).toBeGreaterThan(5e-3);
});
