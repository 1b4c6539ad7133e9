// Matrix products against PyTorch (value and gradient) on every backend, plus finite differences in float64.

import { describe, expect, test } from 'vitest';
import { zeros } from '../../tensor/create.js';
import { describeOps } from '../../test-util/op-check.js';
import { linear, matmulAdd } from './matmul.js';

describeOps('matmul', {
  matmul_2d: (a, b) => a!.matmul(b!),
  matmul_batched_broadcast: (a, b) => a!.matmul(b!),
  matmul_3d_2d: (a, b) => a!.matmul(b!),
  matmul_vec: (a, b) => a!.matmul(b!),
  matmul_dot: (a, b) => a!.matmul(b!),
  linear: (x, w, b) => linear(x!, w!, b!),
  matmul_add: (x, w, b) => matmulAdd(x!, w!, b!),
});

describe('matmul errors', () => {
  test('mismatched inner sizes name both shapes', () => {
    expect(() => zeros([2, 3]).matmul(zeros([4, 5]))).toThrow(/matmul: shapes \[2, 3\] and \[4, 5\] do not match \(inner sizes 3 and 4\)/);
    expect(() => linear(zeros([2, 3]), zeros([4, 5]))).toThrow(/linear: input \[2, 3\] does not fit weight \[4, 5\]/);
  });
});
