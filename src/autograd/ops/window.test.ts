// unfold (im2col) against PyTorch on every backend, plus finite differences in float64.

import { describe, expect, test } from 'vitest';
import { zeros } from '../../tensor/create.js';
import { describeOps } from '../../test-util/op-check.js';
import { unfold } from './window.js';

describeOps('window', {
  unfold: (x) => unfold(x, { kernel: [2, 3], dilation: [1, 2], padding: [1, 1], stride: [2, 1] }),
});

describe('window errors', () => {
  test('a kernel larger than the input is a clear error', () => {
    expect(() => unfold(zeros([1, 1, 2, 2]), { kernel: [3, 3] })).toThrow(/unfold: kernel 3x3 does not fit input \[1, 1, 2, 2\]/);
  });
});
