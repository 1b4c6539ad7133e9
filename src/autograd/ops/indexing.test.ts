// Indexing ops against PyTorch (value and gradient) on every backend, plus finite differences in float64.

import { describe, expect, test } from 'vitest';
import { tensor, zeros } from '../../tensor/create.js';
import { describeOps } from '../../test-util/op-check.js';
import { embedding } from './indexing.js';

describeOps('indexing', {
  index_select: (x, i) => x!.indexSelect(1, i!),
  gather: (x, i) => x!.gather(1, i!),
  scatter_add: (x, i, s) => x!.scatterAdd(0, i!, s!),
  embedding: (w, i) => embedding(i!, w!),
  // The padding row gets no gradient by design, so finite differences disagree there; PyTorch's gradient is the check.
  embedding_padding: [(w, i) => embedding(i!, w!, 2), { noGradcheck: true }],
  tril: (x) => x.tril(),
  triu: (x) => x.triu(1),
});

describe('indexing errors', () => {
  test('an out-of-range index names the op and the size, and nothing is computed', () => {
    const w = zeros([4, 2]);
    expect(() => embedding(tensor([1, 4], { dtype: 'int32' }), w)).toThrow(/embedding: index 4 is out of range for a dimension of size 4/);
    expect(() => w.indexSelect(0, tensor([-1], { dtype: 'int32' }))).toThrow(/indexSelect: index -1 is out of range/);
    expect(() => w.gather(1, tensor([[0, 2]], { dtype: 'int32' }))).toThrow(/gather: index .* must match input/);
  });
  test('float indices are rejected', () => {
    expect(() => zeros([3]).indexSelect(0, tensor([0.5]))).toThrow(/indexSelect: index must be an integer tensor, got float32/);
  });
});
