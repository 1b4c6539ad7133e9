// Indexing ops against PyTorch (value and gradient) on every backend, plus finite differences in float64.

import { describe, expect, test } from 'vitest';
import { listDevices } from '../../tensor/backend.js';
import { tensor, zeros } from '../../tensor/create.js';
import { expectOpError } from '../../test-util/devices.js';
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
    expect(() => w.gather(1, tensor([[0, 2]], { dtype: 'int32' }))).toThrow(/gather: index 2 is out of range for a dimension of size 2/);
  });
  test('float indices are rejected', () => {
    expect(() => zeros([3]).indexSelect(0, tensor([0.5]))).toThrow(/indexSelect: index must be an integer tensor, got float32/);
  });
});

// Issue 15: answers printed by torch 1.13 (snippets in the comments).
for (const device of listDevices()) {
  describe(`indexing PyTorch parity on ${device}`, () => {
    test('an out-of-range index names the op and the size (a queued device: at the next read); the device works on', async () => {
      const w = tensor([[1, 2], [3, 4], [5, 6], [7, 8]], { dtype: 'float32', device });
      const i32 = (v: number[] | number[][]) => tensor(v, { dtype: 'int32', device });
      await expectOpError(device, () => embedding(i32([1, 4]), w), /embedding: index 4 is out of range for a dimension of size 4/);
      await expectOpError(device, () => w.indexSelect(0, i32([-1])), /indexSelect: index -1 is out of range for a dimension of size 4/);
      await expectOpError(device, () => w.gather(1, i32([[0, 2]])), /gather: index 2 is out of range for a dimension of size 2/);
      await expectOpError(device, () => zeros([3], { device }).scatterAdd(0, i32([3]), tensor([1], { dtype: 'float32', device })), /scatterAdd: index 3 is out of range for a dimension of size 3/);
      expect(await embedding(i32([3, 0]), w).tolist()).toEqual([[7, 8], [1, 2]]);
    });

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

    test('gather and scatterAdd take an index smaller than the input outside dim, as PyTorch does', async () => {
      // x = torch.arange(12.).reshape(3,4); x.gather(0, torch.tensor([[2,0],[1,1]])) -> [[8, 1], [4, 5]]
      // .sum().backward() -> x.grad [[0,1,0,0],[1,1,0,0],[1,0,0,0]]
      const x = tensor(Array.from({ length: 3 }, (_, r) => Array.from({ length: 4 }, (_, c) => r * 4 + c)), { dtype: 'float32', device, requiresGrad: true });
      const y = x.gather(0, tensor([[2, 0], [1, 1]], { dtype: 'int32', device }));
      expect(await y.tolist()).toEqual([[8, 1], [4, 5]]);
      y.sum().backward();
      expect(await x.grad!.tolist()).toEqual([[0, 1, 0, 0], [1, 1, 0, 0], [1, 0, 0, 0]]);
      // torch.zeros(3,4).scatter_add(1, torch.tensor([[0,2],[1,0]]), torch.arange(1.,10.).reshape(3,3))
      // -> [[1,0,2,0],[5,4,0,0],[0,0,0,0]]
      const src = tensor([[1, 2, 3], [4, 5, 6], [7, 8, 9]], { dtype: 'float32', device, requiresGrad: true });
      const z = zeros([3, 4], { device }).scatterAdd(1, tensor([[0, 2], [1, 0]], { dtype: 'int32', device }), src);
      expect(await z.tolist()).toEqual([[1, 0, 2, 0], [5, 4, 0, 0], [0, 0, 0, 0]]);
      // (PyTorch's own backward fails here; ours gives src the gradient of the part it read.)
      z.sum().backward();
      expect(await src.grad!.tolist()).toEqual([[1, 1, 0], [1, 1, 0], [0, 0, 0]]);
      expect(() => x.gather(0, tensor([[0, 0, 0, 0, 0]], { dtype: 'int32', device }))).toThrow(/gather: index \[1, 5\] must have the rank of input \[3, 4\] and be no larger/);
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
