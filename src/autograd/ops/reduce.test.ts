// Reductions against PyTorch (value and gradient) on every backend, plus finite differences in float64.

import { describe, expect, test } from 'vitest';
import { tensor } from '../../tensor/create.js';
import { describeOps } from '../../test-util/op-check.js';

describeOps('reduce', {
  sum_all: (x) => x.sum(),
  sum_dim: (x) => x.sum(1),
  sum_dims_keepdim: (x) => x.sum([0, 2], true),
  sum_int: (x) => x.sum(0),
  mean: (x) => x.mean(-1),
  mean_all: (x) => x.mean(),
  max_dim: (x) => x.max(1),
  min_all: (x) => x.min(),
  argmax: (x) => x.argmax(1),
  argmin_all: (x) => x.argmin(),
  var: (x) => x.var(1),
  var_unbiased0: (x) => x.var(0, { correction: 0 }),
  std: (x) => x.std(),
  logsumexp: (x) => x.logsumexp(-1),
  cumsum: (x) => x.cumsum(1),
});

describe('reduce edge cases', () => {
  test('max splits the gradient evenly between ties, like torch.amax', async () => {
    const x = tensor([1, 3, 3, 2], { requiresGrad: true });
    x.max().backward();
    expect(await x.grad!.tolist()).toEqual([0, 0.5, 0.5, 0]);
  });
  test('logsumexp of a row of -inf is -inf, not NaN', async () => {
    expect(await tensor([[-Infinity, -Infinity]]).logsumexp(1).tolist()).toEqual([-Infinity]);
  });
  test('mean of an integer tensor is an error that says what to do', () => {
    expect(() => tensor([1, 2], { dtype: 'int32' }).mean()).toThrow(/mean: expected a floating point tensor, got int32/);
  });
  test('a dimension out of range names the op', () => {
    expect(() => tensor([[1, 2]]).sum(2)).toThrow(/sum: dimension 2 is out of range/);
  });
});
