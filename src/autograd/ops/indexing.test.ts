// Indexing ops against PyTorch (value and gradient) on every backend, plus finite differences in float64.

import { describe, expect, test } from 'vitest';
import { listDevices } from '../../tensor/backend.js';
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

// Issue 15: answers printed by torch 1.13 (snippets in the comments).
for (const device of listDevices()) {
  describe(`indexing PyTorch parity on ${device}`, () => {
    test('tril and triu keep the dtype', async () => {
      // torch.ones(2,2,dtype=torch.bool).triu() -> bool [[True, True], [False, True]]
      const b = tensor([[true, true], [true, true]], { dtype: 'bool', device });
      expect(b.triu().dtype).toBe('bool');
      expect(await b.triu().tolist()).toEqual([[true, true], [false, true]]);
      expect(await b.tril().tolist()).toEqual([[true, false], [true, true]]);
      const i = tensor([[1, 2], [3, 4]], { dtype: 'int32', device });
      expect(i.tril().dtype).toBe('int32');
      expect(await i.triu(1).tolist()).toEqual([[0, 2], [0, 0]]);
    });

    test('scatterAdd of bools stays bool; src of another dtype raises', async () => {
      // torch.zeros(3,dtype=torch.bool).scatter_add(0, torch.tensor([0,0]), torch.tensor([True,True])) -> [True, False, False]
      const y = zeros([3], { dtype: 'bool', device }).scatterAdd(0, tensor([0, 0], { dtype: 'int32', device }), tensor([true, true], { dtype: 'bool', device }));
      expect(y.dtype).toBe('bool');
      expect(await y.tolist()).toEqual([true, false, false]);
      // torch: scatter(): Expected self.dtype to be equal to src.dtype
      expect(() => zeros([3], { dtype: 'int32', device }).scatterAdd(0, tensor([0], { dtype: 'int32', device }), tensor([1.5], { dtype: 'float32', device })))
        .toThrow(/scatterAdd: src must have the dtype of the input \(int32\), got float32/);
    });

    test('gather and indexSelect take dim -1 on a 0-d tensor', async () => {
      // torch.tensor(2.).gather(0, torch.tensor(0)) -> tensor(2.); .index_select(-1, torch.tensor(0)) -> tensor(2.)
      const x = tensor(2, { dtype: 'float32', device });
      const idx = tensor(0, { dtype: 'int32', device });
      expect(x.gather(-1, idx).shape).toEqual([]);
      expect(await x.gather(-1, idx).item()).toBe(2);
      expect(x.indexSelect(-1, idx).shape).toEqual([]);
      expect(await x.indexSelect(0, idx).item()).toBe(2);
    });
  });
}
