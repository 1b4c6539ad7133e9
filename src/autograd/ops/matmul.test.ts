// Matrix products against PyTorch (value and gradient) on every backend, plus finite differences in float64.

import { describe, expect, test } from 'vitest';
import { listDevices } from '../../tensor/backend.js';
import { tensor, zeros } from '../../tensor/create.js';
import { describeOps } from '../../test-util/op-check.js';
import { bmm, linear, matmulAdd } from './matmul.js';

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

// Issue 15: answers printed by torch 1.13 (snippets in the comments).
for (const device of listDevices()) {
  const i32 = (v: number[][]) => tensor(v, { dtype: 'int32', device });
  const f32 = (v: number[][]) => tensor(v, { dtype: 'float32', device });

  describe(`matmul PyTorch parity on ${device}`, () => {
    test('0 * NaN in a product is NaN (the reference does not skip zeros)', async () => {
      // torch.tensor([[0.,1]]) @ torch.tensor([[nan],[1.]]) -> [[nan]]
      expect(await f32([[0, 1]]).matmul(f32([[NaN], [1]])).tolist()).toEqual([[NaN]]);
      expect(await f32([[0, 0], [1, 0]]).matmul(f32([[Infinity, 1], [2, 3]])).tolist()).toEqual([[NaN, 0], [Infinity, 1]]);
    });

    test('int32 products compute in int32 and wrap', async () => {
      // torch.tensor([[1,2]],dtype=torch.int32) @ torch.tensor([[3],[4]],dtype=torch.int32) -> int32 [[11]]
      const y = i32([[1, 2]]).matmul(i32([[3], [4]]));
      expect(y.dtype).toBe('int32');
      expect(await y.tolist()).toEqual([[11]]);
      // torch.tensor([[2147483647, 3],[1,-1]],dtype=torch.int32) @ torch.tensor([[2147483647, 1],[5,2]],dtype=torch.int32)
      expect(await i32([[2147483647, 3], [1, -1]]).matmul(i32([[2147483647, 1], [5, 2]])).tolist()).toEqual([[16, -2147483643], [2147483642, -1]]);
      // A product big enough for the blocked kernels: against an exact count.
      const a = tensor(Array.from({ length: 40 }, (_, r) => Array.from({ length: 30 }, (_, c) => ((r * 7 + c * 3) % 11) - 5)), { dtype: 'int32', device });
      const b = tensor(Array.from({ length: 30 }, (_, r) => Array.from({ length: 20 }, (_, c) => ((r * 5 + c) % 9) - 4)), { dtype: 'int32', device });
      const want = Array.from({ length: 40 }, (_, r) => Array.from({ length: 20 }, (_, c) => {
        let s = 0;
        for (let q = 0; q < 30; q++) s += (((r * 7 + q * 3) % 11) - 5) * (((q * 5 + c) % 9) - 4);
        return s;
      }));
      expect(await a.matmul(b).tolist()).toEqual(want);
    });

    test('errors name the op the user called', () => {
      // torch: int32 @ float32 -> expected scalar type Int but found Float; bool @ bool -> not implemented for 'Bool'
      expect(() => i32([[1, 2]]).matmul(f32([[3], [4]]))).toThrow(/^matmul: expected two floating point or two integer tensors of one dtype, got int32 and float32/);
      expect(() => tensor([[true]], { dtype: 'bool', device }).matmul(tensor([[true]], { dtype: 'bool', device }))).toThrow(/^matmul: .*got bool and bool/);
      expect(() => linear(i32([[1, 2]]), f32([[3, 4]]))).toThrow(/^linear: /);
      expect(() => bmm(zeros([1, 2, 3], { device }), zeros([1, 4, 5], { device }))).toThrow(/^bmm: shapes do not match/);
    });

    test('linear with in_features = 0 gives the bias (zeros without one)', async () => {
      // F.linear(torch.zeros(2,0), torch.zeros(3,0), torch.tensor([1.,2,3])) -> [[1,2,3],[1,2,3]]
      const x = zeros([2, 0], { device }), w = zeros([3, 0], { device });
      expect(await linear(x, w, tensor([1, 2, 3], { dtype: 'float32', device })).tolist()).toEqual([[1, 2, 3], [1, 2, 3]]);
      expect(await linear(x, w).tolist()).toEqual([[0, 0, 0], [0, 0, 0]]);
      expect(linear(zeros([4, 2, 0], { device }), w).shape).toEqual([4, 2, 3]);
    });
  });
}
