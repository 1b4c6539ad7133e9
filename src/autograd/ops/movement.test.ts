// Shape and movement ops against PyTorch (value and gradient) on every backend, plus finite differences in float64.

import { describe, expect, test } from 'vitest';
import { listDevices } from '../../tensor/backend.js';
import { tensor, zeros } from '../../tensor/create.js';
import { describeOps } from '../../test-util/op-check.js';
import { cat, movedim, pad, stack, unflatten } from './movement.js';

describeOps('movement', {
  reshape: (x) => x.reshape([3, -1]),
  permute: (x) => x.permute([2, 0, 1]),
  transpose: (x) => x.transpose(0, 2),
  expand: (x) => x.expand([2, 3, 4]),
  squeeze_unsqueeze: (x) => x.squeeze(1).unsqueeze(0),
  slice_step: (x) => x.slice(1, 1, 5, 2),
  slice_negative: (x) => x.slice(0, -2),
  narrow: (x) => x.narrow(1, 1, 2),
  select: (x) => x.select(1, 2),
  flip: (x) => x.flip([0, 2]),
  pad: (x) => pad(x, [1, 2, 0, 1], 0.5),
  cat: (a, b) => cat([a!, b!], 1),
  stack: (a, b) => stack([a!, b!], -1),
  split: (x) => cat(x.split(2, 1).map((p, i) => p.reshape([-1]).mul(i + 1))),
  chunk: (x) => cat(x.chunk(3, 0).map((p, i) => p.reshape([-1]).mul(i + 1))),
  repeat: (x) => x.repeat([2, 1, 3]),
});

describe('movement errors and views', () => {
  test('reshape shares the buffer; other ops copy', () => {
    const x = zeros([2, 3]);
    expect(x.reshape([3, 2]).storage).toBe(x.storage);
    expect(x.transpose(0, 1).storage).not.toBe(x.storage);
  });
  test('a permute that moves only size-1 dimensions is a reshape (same buffer), with values and gradient of a permute', async () => {
    const x = tensor([[[[1, 2], [3, 4], [5, 6]]]], { requiresGrad: true }); // [1, 1, 3, 2]
    const y = x.transpose(1, 2); // [1, 3, 1, 2]: the 1 moves past the 3, the data order stays
    expect(y.shape).toEqual([1, 3, 1, 2]);
    expect(y.storage).toBe(x.storage);
    expect(await y.reshape([-1]).tolist()).toEqual([1, 2, 3, 4, 5, 6]);
    y.mul(tensor([[[[1, 10]], [[100, 1000]], [[1e4, 1e5]]]])).sum().backward();
    expect(await x.grad!.tolist()).toEqual([[[[1, 10], [100, 1000], [1e4, 1e5]]]]);
    expect(x.permute([0, 3, 2, 1]).storage).not.toBe(x.storage); // 3 and 2 swap: a copy
  });
  test('bad shapes give errors that name the op and shapes', () => {
    const x = zeros([2, 3]);
    expect(() => x.reshape([4, 2])).toThrow(/reshape: cannot reshape \[2, 3\] \(6 elements\) into \[4, 2\]/);
    expect(() => x.expand([4, 3, 2])).toThrow(/expand: cannot expand \[2, 3\] to \[4, 3, 2\]/);
    expect(() => cat([x, zeros([3, 3])], 1)).toThrow(/cat: tensors must match except in dimension 1/);
    expect(() => x.permute([0, 0])).toThrow(/permute: repeated dimension/);
    expect(() => x.select(0, 5)).toThrow(/select: index 5 is out of range for dimension 0 of size 2/);
  });
  test('slices past the end clamp like Python', async () => {
    expect(await tensor([1, 2, 3]).slice(0, 1, 100).tolist()).toEqual([2, 3]);
    expect(await tensor([1, 2, 3]).slice(0, 5).tolist()).toEqual([]);
  });
});

// Issue 15: answers printed by torch 1.13 (snippets in the comments).
for (const device of listDevices()) {
  describe(`movement PyTorch parity on ${device}`, () => {
    test('chunk of an empty dimension gives `chunks` empty pieces', () => {
      // [c.shape for c in torch.zeros(0).chunk(3)] -> [0], [0], [0]; torch.zeros(2).chunk(3) -> [1], [1]; zeros(5).chunk(3) -> [2], [2], [1]
      expect(zeros([0], { device }).chunk(3).map((c) => c.shape)).toEqual([[0], [0], [0]]);
      expect(zeros([2, 0], { device }).chunk(2, 1).map((c) => c.shape)).toEqual([[2, 0], [2, 0]]);
      expect(zeros([2], { device }).chunk(3).map((c) => c.shape)).toEqual([[1], [1]]);
      expect(zeros([5], { device }).chunk(3).map((c) => c.shape)).toEqual([[2], [2], [1]]);
      expect(zeros([6], { device }).chunk(4).map((c) => c.shape)).toEqual([[2], [2], [2]]);
      expect(zeros([0], { device }).split(2).map((c) => c.shape)).toEqual([[0]]); // torch: one piece
    });

    test('cat and stack promote mixed dtypes', async () => {
      // torch.cat([torch.tensor([1,2,3],dtype=torch.int32), torch.tensor([1.,2.])]) -> float32 [1,2,3,1,2]
      const i = tensor([1, 2, 3], { dtype: 'int32', device }), f = tensor([1, 2], { dtype: 'float32', device });
      const b = tensor([true, false], { dtype: 'bool', device });
      const c = cat([i, f]);
      expect(c.dtype).toBe('float32');
      expect(await c.tolist()).toEqual([1, 2, 3, 1, 2]);
      // torch.cat([torch.tensor([True,False]), torch.tensor([1,2,3],dtype=torch.int32)]) -> int32 [1,0,1,2,3]
      const bi = cat([b, i]);
      expect(bi.dtype).toBe('int32');
      expect(await bi.tolist()).toEqual([1, 0, 1, 2, 3]);
      // torch.stack([torch.tensor([1,2],dtype=torch.int32), torch.tensor([1.,2.])]) -> float32 [[1,2],[1,2]]
      const s = stack([tensor([1, 2], { dtype: 'int32', device }), f]);
      expect(s.dtype).toBe('float32');
      expect(await s.tolist()).toEqual([[1, 2], [1, 2]]);
      // The gradient reaches the float input through the promotion.
      const fg = tensor([1, 2], { dtype: 'float32', device, requiresGrad: true });
      cat([i, fg]).sum().backward();
      expect(await fg.grad!.tolist()).toEqual([1, 1]);
    });

    test('dim ops take dim 0 and -1 on a 0-d tensor, as PyTorch does; cat/split/chunk of 0-d raise like it', async () => {
      const x = tensor(2, { dtype: 'float32', device });
      // torch.tensor(2.).transpose(0, -1) / .movedim(0, -1) / .flip(-1) / .squeeze(-1) / .softmax(-1): all 0-d
      expect(x.transpose(0, -1).shape).toEqual([]);
      expect(movedim(x, 0, -1).shape).toEqual([]);
      expect(x.flip([-1]).shape).toEqual([]);
      expect(x.squeeze(-1).shape).toEqual([]);
      expect(x.unsqueeze(-1).shape).toEqual([1]);
      expect(await x.softmax(-1).item()).toBe(1); // torch: tensor(1.)
      expect(await x.logSoftmax(0).item()).toBe(0);
      expect(stack([x], -1).shape).toEqual([1]);
      // torch.cat([torch.tensor(2.)]) -> zero-dimensional tensor (at position 0) cannot be concatenated
      expect(() => cat([x])).toThrow(/cat: a 0-d tensor \(at position 0\) cannot be concatenated/);
      expect(() => x.split(1)).toThrow(/split: expected a tensor with at least 1 dimension/);
      expect(() => x.chunk(1)).toThrow(/chunk: expected a tensor with at least 1 dimension/);
      // torch.tensor(1.).flatten(0, 1) -> Dimension out of range; torch.tensor(1.)[0:1] / .narrow / .select -> cannot be applied to a 0-dim tensor
      expect(x.flatten(0, -1).shape).toEqual([1]);
      expect(() => x.flatten(0, 1)).toThrow(/flatten: dimension 1 is out of range/);
      expect(() => x.slice(0, 0, 1)).toThrow(/slice: cannot be applied to a 0-d tensor/);
      expect(() => x.narrow(0, 0, 1)).toThrow(/narrow: cannot be applied to a 0-d tensor/);
      expect(() => x.select(0, 0)).toThrow(/select: cannot be applied to a 0-d tensor/);
      // torch.tensor(1.).unflatten(0, (-1, 1)) -> Dimension specified as 0 but tensor has no dimensions
      expect(() => unflatten(x, 0, [-1, 1])).toThrow(/unflatten: cannot be applied to a 0-d tensor/);
      // torch.zeros(0, 5).unflatten(-1, (-1, 1)).shape -> [0, 5, 1]; torch.zeros(2, 1, 0, 1).unflatten(1, (-1, 1)).shape -> [2, 1, 1, 0, 1]
      expect(unflatten(zeros([0, 5], { device }), -1, [-1, 1]).shape).toEqual([0, 5, 1]);
      expect(unflatten(zeros([2, 1, 0, 1], { device }), 1, [-1, 1]).shape).toEqual([2, 1, 1, 0, 1]);
      expect(() => unflatten(zeros([2, 6], { device }), 1, [4, -1])).toThrow(/unflatten: sizes \[4, -1\] do not fit dimension 1 of size 6/);
    });
  });
}
