// Shape and movement ops against PyTorch (value and gradient) on every backend, plus finite differences in float64.

import { describe, expect, test } from 'vitest';
import { tensor, zeros } from '../../tensor/create.js';
import { describeOps } from '../../test-util/op-check.js';
import { cat, pad, stack } from './movement.js';

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
