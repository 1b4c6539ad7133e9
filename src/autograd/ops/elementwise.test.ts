// Elementwise ops against PyTorch (value and gradient) on every backend, plus finite differences in float64.

import { describe, expect, test } from 'vitest';
import { tensor } from '../../tensor/create.js';
import { describeOps } from '../../test-util/op-check.js';
import { where } from './elementwise.js';

describeOps('elementwise', {
  neg: (x) => x.neg(),
  abs: (x) => x.abs(),
  sign: (x) => x.sign(),
  exp: (x) => x.exp(),
  log: (x) => x.log(),
  sqrt: (x) => x.sqrt(),
  rsqrt: (x) => x.rsqrt(),
  sin: (x) => x.sin(),
  cos: (x) => x.cos(),
  tanh: (x) => x.tanh(),
  sigmoid: (x) => x.sigmoid(),
  relu: (x) => x.relu(),
  erf: (x) => x.erf(),
  gelu: (x) => x.gelu(),
  gelu_tanh: (x) => x.gelu('tanh'),
  gelu_tanh_wide: (x) => x.gelu('tanh'),
  silu: (x) => x.silu(),
  floor: (x) => x.floor(),
  ceil: (x) => x.ceil(),
  round: [(x) => x.round(), { noGradcheck: true }], // inputs sit on the jumps at .5
  square: (x) => x.square(),
  reciprocal: (x) => x.reciprocal(),
  clamp: (x) => x.clamp(-0.5, 0.7),
  add: (a, b) => a!.add(b!),
  sub: (a, b) => a!.sub(b!),
  mul: (a, b) => a!.mul(b!),
  div: (a, b) => a!.div(b!),
  pow: (a, b) => a!.pow(b!),
  pow_scalar: (a) => a.pow(3),
  maximum: (a, b) => a!.maximum(b!),
  minimum: (a, b) => a!.minimum(b!),
  add_scalar: (a) => a.add(2.5),
  rsub_scalar: (a) => a.neg().add(1),
  eq: (a, b) => a!.eq(b!),
  lt: (a, b) => a!.lt(b!),
  ge: (a, b) => a!.ge(b!),
  logical_and: (a, b) => a!.logicalAnd(b!),
  where: (c, a, b) => where(c!, a!, b!),
  masked_fill: (x, m) => x!.maskedFill(m!, -1.5),
});

describe('elementwise dtype rules', () => {
  test('numbers default to float32; int tensors keep int32 with integer scalars and promote with fractions', async () => {
    const i = tensor([1, 2, 3], { dtype: 'int32' });
    expect(tensor([1, 2]).dtype).toBe('float32');
    expect(i.add(2).dtype).toBe('int32');
    expect(i.mul(0.5).dtype).toBe('float32');
    expect(await i.mul(0.5).tolist()).toEqual([0.5, 1, 1.5]);
    expect(i.div(2).dtype).toBe('float32');
    expect(tensor([true, false]).add(tensor([true, true])).dtype).toBe('int32');
  });
  test('broadcasting errors name the op and shapes', () => {
    expect(() => tensor([[1, 2, 3]]).add(tensor([1, 2]))).toThrow(/add: shapes \[1, 3\] and \[2\] cannot be broadcast/);
  });
  test('exp of an int tensor computes in float32, like PyTorch', async () => {
    const y = tensor([0, 1], { dtype: 'int32' }).exp();
    expect(y.dtype).toBe('float32');
    expect((await y.tolist() as number[])[1]).toBeCloseTo(Math.E, 5);
  });
});
