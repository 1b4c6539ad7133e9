// Gradient clipping against torch.nn.utils.clip_grad_norm_ / clip_grad_value_ (test/data/optim.json from
// scripts/gen_optim_fixtures.py), plus the edge cases and bad input.

import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import '../index.js';
import { tensor, zeros } from '../tensor/create.js';
import type { FloatDType } from '../tensor/dtype.js';
import type { Tensor } from '../tensor/tensor.js';
import { expectClose } from '../test-util/fixtures.js';
import { clipGradNorm, clipGradValue } from './clip.js';

type Values = Record<string, number[]>;
interface ClipFixture {
  shapes: Record<string, number[]>;
  grads: Record<string, number[] | null>[];
  clip_norm: { maxNorm: number; normType: number | 'inf'; total: number; grads: Values }[];
  clip_value: { clipValue: number; grads: Values }[];
}
const fx = JSON.parse(readFileSync(new URL('../../test/data/optim.json', import.meta.url), 'utf8')) as ClipFixture;
const NAMES = Object.keys(fx.shapes);

/** Parameters whose gradients are the fixture's first-step gradients. */
function withGrads(dtype: FloatDType): Tensor[] {
  return NAMES.map((k) => {
    const p = zeros(fx.shapes[k]!, { dtype, requiresGrad: true });
    p.grad = tensor(fx.grads[0]![k]!, { shape: fx.shapes[k]!, dtype });
    return p;
  });
}

describe('clipGradNorm', () => {
  for (const c of fx.clip_norm) {
    test(`maxNorm ${c.maxNorm}, normType ${c.normType} matches PyTorch`, async () => {
      for (const [dtype, tol] of [['float64', 1e-12], ['float32', 2e-6]] as const) {
        const params = withGrads(dtype);
        const grads = params.map((p) => p.grad);
        const total = clipGradNorm(params, c.maxNorm, c.normType === 'inf' ? Infinity : c.normType);
        expect(total.shape).toEqual([]);
        expectClose([await total.item()], [c.total], tol, tol, `${dtype} total norm`);
        for (const [i, p] of params.entries()) {
          expect(p.grad, 'the gradient object is updated in place').toBe(grads[i]);
          expectClose(await p.grad!.data(), c.grads[NAMES[i]!]!, tol, tol, `${dtype} grad '${NAMES[i]}'`);
        }
      }
    });
  }

  test('parameters without a gradient are skipped; with none at all the norm is 0', async () => {
    const a = tensor([3, 4], { requiresGrad: true }), b = tensor([1], { requiresGrad: true });
    a.grad = tensor([3, 4], { dtype: 'float32' });
    expect(await clipGradNorm([a, b], 1).item()).toBeCloseTo(5, 6);
    expectClose(await a.grad.data(), [3 / (5 + 1e-6), 4 / (5 + 1e-6)], 1e-7, 1e-6);
    expect(b.grad).toBeNull();
    expect(await clipGradNorm([b], 1).item()).toBe(0);
    expect(await clipGradNorm([], 1).item()).toBe(0);
  });

  test('bad arguments', () => {
    const a = tensor([1], { requiresGrad: true });
    expect(() => clipGradNorm([a], Number.NaN)).toThrow(/clipGradNorm: maxNorm must be a number, got NaN/);
    expect(() => clipGradNorm([a], 1, 0)).toThrow(/clipGradNorm: normType must be a positive number or Infinity, got 0/);
    expect(() => clipGradNorm([a], 1, -2)).toThrow(/normType must be a positive number or Infinity, got -2/);
    expect(() => clipGradNorm(a as unknown as Tensor[], 1)).toThrow(/clipGradNorm: expected an array of parameters/);
  });
});

describe('clipGradValue', () => {
  test('matches PyTorch', async () => {
    const c = fx.clip_value[0]!;
    const params = withGrads('float64');
    clipGradValue(params, c.clipValue);
    for (const [i, p] of params.entries()) expectClose(await p.grad!.data(), c.grads[NAMES[i]!]!, 0, 0, `grad '${NAMES[i]}'`);
  });
  test('bad clip values', () => {
    expect(() => clipGradValue([], -1)).toThrow(/clipGradValue: clipValue must be a number >= 0, got -1/);
    expect(() => clipGradValue([], Number.NaN)).toThrow(/clipValue must be a number >= 0, got NaN/);
  });
});
