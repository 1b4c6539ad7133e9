// Autograd semantics as in PyTorch: accumulation, noGrad, detach, retainGrad, retainGraph, and the errors.

import { describe, expect, test } from 'vitest';
import '../index.js';
import { tensor } from '../tensor/create.js';
import { tidy } from '../tensor/scope.js';
import { noGrad, setGradEnabled } from './engine.js';

describe('autograd engine', () => {
  test('gradients accumulate over backward calls until cleared', async () => {
    const x = tensor([1, 2], { requiresGrad: true });
    x.mul(3).sum().backward();
    x.mul(x).sum().backward();
    expect(await x.grad!.tolist()).toEqual([5, 7]);
  });
  test('a tensor used twice receives the sum of both paths', async () => {
    const x = tensor([3], { requiresGrad: true });
    const y = x.mul(x).add(x); // dy/dx = 2x + 1
    y.backward();
    expect(await x.grad!.tolist()).toEqual([7]);
  });
  test('noGrad records nothing', () => {
    const x = tensor([1], { requiresGrad: true });
    const y = noGrad(() => x.mul(2));
    expect(y.requiresGrad).toBe(false);
    expect(() => y.backward()).toThrow(/does not require grad/);
    setGradEnabled(false);
    expect(x.add(1).requiresGrad).toBe(false);
    setGradEnabled(true);
  });
  test('detach cuts the graph', async () => {
    const x = tensor([2], { requiresGrad: true });
    x.detach().mul(x).backward(); // only the second factor carries a gradient
    expect(await x.grad!.tolist()).toEqual([2]);
  });
  test('retainGrad keeps a non-leaf gradient; leaves only otherwise', async () => {
    const x = tensor([1, 2], { requiresGrad: true });
    const h = x.mul(2).retainGrad();
    const z = x.mul(2);
    h.add(z).sum().backward();
    expect(await h.grad!.tolist()).toEqual([1, 1]);
    expect(z.grad).toBeNull();
  });
  test('backward twice needs retainGraph, as in PyTorch', async () => {
    const x = tensor([1], { requiresGrad: true });
    const y = x.exp();
    y.backward(undefined, { retainGraph: true });
    y.backward();
    expect((await x.grad!.tolist() as number[])[0]).toBeCloseTo(2 * Math.E, 5);
    expect(() => y.backward()).toThrow(/backward through 'exp' a second time/);
  });
  test('a non-scalar output needs an explicit gradient', async () => {
    const x = tensor([1, 2], { requiresGrad: true });
    expect(() => x.mul(2).backward()).toThrow(/gradient can only be implied for a one-element tensor/);
    x.mul(2).backward(tensor([1, 10]));
    expect(await x.grad!.tolist()).toEqual([2, 20]);
  });
  test('saved tensors outlive a tidy scope, so backward may run after it', async () => {
    const x = tensor([2], { requiresGrad: true });
    const y = tidy(() => x.mul(x).mul(x)); // intermediates disposed here
    y.backward();
    expect(await x.grad!.tolist()).toEqual([12]);
  });
  test('only floating point tensors can require grad; gradients do not flow into int tensors', () => {
    expect(() => tensor([1], { dtype: 'int32', requiresGrad: true })).toThrow(/only floating point tensors can require gradients/);
    const x = tensor([1.5], { requiresGrad: true });
    expect(x.int().requiresGrad).toBe(false);
  });
  test('in-place updates of leaves that require grad need noGrad', async () => {
    const p = tensor([1, 2], { requiresGrad: true });
    expect(() => p.zero_()).toThrow(/in-place update of a leaf that requires grad/);
    noGrad(() => p.copy_(tensor([5, 6])));
    expect(await p.tolist()).toEqual([5, 6]);
  });
});
