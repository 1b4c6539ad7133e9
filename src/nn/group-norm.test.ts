// GroupNorm (F.groupNorm and the layer) against PyTorch's group_norm: values and gradients on every backend.

import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import '../index.js';
import { noGrad } from '../autograd/engine.js';
import { mul } from '../autograd/ops/elementwise.js';
import { sum } from '../autograd/ops/reduce.js';
import { listDevices } from '../tensor/backend.js';
import { tensor } from '../tensor/create.js';
import { expectClose } from '../test-util/fixtures.js';
import { groupNorm } from './functional.js';
import { GroupNorm } from './normalization.js';

interface Case {
  shape: number[]; groups: number; eps: number; x: number[]; weight: number[] | null; bias: number[] | null;
  out: number[]; probe: number[]; grad_x: number[]; grad_weight: number[] | null; grad_bias: number[] | null;
}
const { cases } = JSON.parse(readFileSync(new URL('../../test/data/groupnorm.json', import.meta.url), 'utf8')) as { cases: Case[] };

for (const device of listDevices()) {
  describe(`groupNorm on ${device}`, () => {
    for (const c of cases) {
      test(`[${c.shape.join(', ')}] in ${c.groups} groups${c.weight ? '' : ', no affine'}: values and gradients match torch`, async () => {
        const x = tensor(c.x, { shape: c.shape, device, requiresGrad: true });
        const w = c.weight ? tensor(c.weight, { device, requiresGrad: true }) : null;
        const b = c.bias ? tensor(c.bias, { device, requiresGrad: true }) : null;
        const y = groupNorm(x, c.groups, w, b, c.eps);
        expect(y.shape).toEqual(c.shape);
        expectClose(await y.data(), c.out, 1e-5, 1e-4, 'out');
        sum(mul(y, tensor(c.probe, { shape: c.shape, device }))).backward();
        expectClose(await x.grad!.data(), c.grad_x, 1e-4, 1e-4, 'grad x');
        if (w) expectClose(await w.grad!.data(), c.grad_weight!, 1e-4, 1e-4, 'grad weight');
        if (b) expectClose(await b.grad!.data(), c.grad_bias!, 1e-4, 1e-4, 'grad bias');
      });
    }
  });
}

describe('GroupNorm layer', () => {
  test('uses its weight and bias', async () => {
    const c = cases[0]!;
    const layer = new GroupNorm(c.groups, c.shape[1]!);
    noGrad(() => { layer.weight!.copy_(tensor(c.weight!)); layer.bias!.copy_(tensor(c.bias!)); });
    expectClose(await layer.forward(tensor(c.x, { shape: c.shape })).data(), c.out, 1e-5, 1e-4, 'out');
  });
  test('bad shapes name the op and the sizes', () => {
    expect(() => new GroupNorm(4, 6)).toThrow(/GroupNorm: numChannels 6 must be divisible by numGroups 4/);
    expect(() => new GroupNorm(2, 4).forward(tensor([[1, 2, 3]]))).toThrow(/GroupNorm: expected input \[B, 4, \*\], got \[1, 3\]/);
    expect(() => groupNorm(tensor([[1, 2, 3]]), 2)).toThrow(/groupNorm: 3 channels are not divisible into 2 groups/);
    expect(() => groupNorm(tensor([[1, 2]]), 2, tensor([1, 2, 3]))).toThrow(/groupNorm: weight must be \[2\], got \[3\]/);
  });
});
