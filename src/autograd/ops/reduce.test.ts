// Reductions against PyTorch (value and gradient) on every backend, plus finite differences in float64.

import { describe, expect, test } from 'vitest';
import { listDevices } from '../../tensor/backend.js';
import { tensor, zeros } from '../../tensor/create.js';
import { hasFloat64 } from '../../test-util/devices.js';
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

// Issue 15: values printed by torch 1.13 (snippets in the comments).
for (const device of listDevices()) {
  const f32 = (v: number | number[] | number[][], requiresGrad = false) => tensor(v, { dtype: 'float32', device, requiresGrad });

  describe(`reduce PyTorch parity on ${device}`, () => {
    test('std has gradient 0 where std is 0 (a constant row)', async () => {
      // x = torch.tensor([[1.,1,1],[1,2,3]], requires_grad=True); x.std(1).sum().backward() -> [[0,0,0],[-0.5,0,0.5]]
      const x = f32([[1, 1, 1], [1, 2, 3]], true);
      x.std(1).sum().backward();
      expect(await x.grad!.tolist()).toEqual([[0, 0, 0], [-0.5, 0, 0.5]]);
      // torch.tensor([5.,5,5], requires_grad=True).std().backward() -> [0, 0, 0]
      const c = f32([5, 5, 5], true);
      c.std().backward();
      expect(await c.grad!.tolist()).toEqual([0, 0, 0]);
      // x.std().backward() on [[1,1,1],[1,2,3]] -> [[-0.11952286]*4, 0.11952286, 0.35856858]
      const y = f32([[1, 1, 1], [1, 2, 3]], true);
      y.std().backward();
      const g = (await y.grad!.tolist() as number[][]).flat();
      [-0.11952286, -0.11952286, -0.11952286, -0.11952286, 0.11952286, 0.35856858].forEach((v, i) => expect(g[i]).toBeCloseTo(v, 6));
    });

    test('a 0-d tensor reduces over dim 0 or -1 to a 0-d tensor, keepdim or not, and backward works', async () => {
      // torch.tensor(2.).sum(0, keepdim=True).shape -> torch.Size([]); same for mean/amax/amin/logsumexp, dim -1
      const ops: [string, (t: ReturnType<typeof f32>, d: number, k: boolean) => ReturnType<typeof f32>][] = [
        ['sum', (t, d, k) => t.sum(d, k)], ['mean', (t, d, k) => t.mean(d, k)], ['max', (t, d, k) => t.max(d, k)],
        ['min', (t, d, k) => t.min(d, k)], ['logsumexp', (t, d, k) => t.logsumexp(d, k)],
      ];
      for (const [name, f] of ops) {
        for (const d of [0, -1]) {
          for (const k of [true, false]) {
            const x = f32(2, true);
            const y = f(x, d, k);
            expect(y.shape, `${name}(${d}, ${k})`).toEqual([]);
            expect(await y.item()).toBeCloseTo(2, 6);
            y.backward(); // torch: x.grad = 1
            expect(await x.grad!.item(), `${name} grad`).toBeCloseTo(1, 6);
          }
        }
      }
      // torch.tensor(2.).argmax(0, keepdim=True) -> tensor(0); .cumsum(-1) -> tensor(2.); .sum([0, -1]) raises
      const a = f32(2).argmax(0, true);
      expect(a.shape).toEqual([]);
      expect(await a.item()).toBe(0);
      expect(f32(2).argmin(-1).shape).toEqual([]);
      expect(await f32(2).cumsum(-1).item()).toBe(2);
      expect(f32(2).cumsum(-1).shape).toEqual([]);
      expect(() => f32(2).sum([0, -1])).toThrow(/sum: dimension listed twice/);
      expect(() => f32(2).sum(1)).toThrow(/sum: dimension 1 is out of range/);
      expect(Number.isNaN(await f32(2).var(0).item())).toBe(true); // torch.tensor(2.).var(0) -> nan
    });

    // Without float64 (webgpu) var/std accumulate in float32, as PyTorch on MPS: 1e30 squared overflows there.
    test.skipIf(!hasFloat64(device))('var and std of large float32 values accumulate in double, as PyTorch does', async () => {
      // x = torch.tensor([1e30, -1e30, 3e29]); x.std() -> 1.01488914544184e+30; x.var() -> inf (past FLT_MAX)
      const x = f32([1e30, -1e30, 3e29]);
      expect((await x.std().item()) / 1.01488914544184e+30).toBeCloseTo(1, 6);
      expect(await x.var().item()).toBe(Infinity);
      expect(x.std().dtype).toBe('float32');
    });

    test('logsumexp with an infinite maximum is that infinity, not NaN', async () => {
      // torch.logsumexp(torch.tensor([1., inf]), 0) -> inf; the gradient is [0, nan]
      const x = f32([1, Infinity], true);
      const y = x.logsumexp(0);
      expect(await y.item()).toBe(Infinity);
      y.backward();
      expect(await x.grad!.tolist()).toEqual([0, NaN]);
      expect(await f32([Infinity, -Infinity]).logsumexp(0).item()).toBe(Infinity); // torch: inf
      expect(await f32([-Infinity, -Infinity]).logsumexp(0).item()).toBe(-Infinity); // torch: -inf
      expect(Number.isNaN(await f32([NaN, Infinity]).logsumexp(0).item())).toBe(true); // torch: nan
    });

    test('logsumexp gradient is exp(x - lse): 0 for every finite x when lse is inf', async () => {
      // x = torch.tensor([[inf, 0.79, 1e30]], requires_grad=True); x.logsumexp(1).sum().backward() -> [[nan, 0, 0]]
      const x = f32([[Infinity, 0.79, 1e30]], true);
      x.logsumexp(1).sum().backward();
      expect(await x.grad!.tolist()).toEqual([[NaN, 0, 0]]);
      // torch.tensor([[1e30, 1e30, 0.]]).logsumexp(1) backward -> [[1, 1, 0]] (lse rounds to 1e30 in float32)
      const t = f32([[1e30, 1e30, 0]], true);
      t.logsumexp(1).sum().backward();
      expect(await t.grad!.tolist()).toEqual([[1, 1, 0]]);
      // x = torch.tensor([[1.,2,3],[-1,0,inf]], requires_grad=True); y = x.logsumexp(1) -> [3.4076058864593506, inf];
      // (y * torch.tensor([1.,2])).sum().backward() -> [[0.09003058075904846, 0.24472849071025848, 0.665241003036499], [0, 0, nan]]
      const z = f32([[1, 2, 3], [-1, 0, Infinity]], true);
      const y = z.logsumexp(1);
      expect(await y.tolist()).toEqual([3.4076058864593506, Infinity]);
      y.mul(f32([1, 2])).sum().backward();
      const g = await z.grad!.tolist() as number[][];
      [0.09003058075904846, 0.24472849071025848, 0.665241003036499].forEach((v, i) => expect(g[0]![i]).toBeCloseTo(v, 6));
      expect(g[1]).toEqual([0, 0, NaN]);
    });

    test('argmax/argmin of bool raise, as in PyTorch', () => {
      // torch.tensor([True]).argmax() -> "argmax_cpu" not implemented for 'Bool'
      expect(() => tensor([true, false], { dtype: 'bool', device }).argmax()).toThrow(/argmax: not implemented for bool tensors/);
      expect(() => tensor([true, false], { dtype: 'bool', device }).argmin(0)).toThrow(/argmin: not implemented for bool tensors/);
    });

    test('logsumexp of an integer or bool tensor computes in float32', async () => {
      // torch.logsumexp(torch.tensor([1,2,3], dtype=torch.int32), 0) -> 3.4076058864593506 (float32)
      const y = tensor([1, 2, 3], { dtype: 'int32', device }).logsumexp(0);
      expect(y.dtype).toBe('float32');
      expect(await y.item()).toBeCloseTo(3.4076058864593506, 6);
      // torch.logsumexp(torch.tensor([True, False]), 0) -> 1.3132616877555847
      expect(await tensor([true, false], { dtype: 'bool', device }).logsumexp(0).item()).toBeCloseTo(1.3132616875, 6);
    });

    test('max/min/argmax/argmin over a non-empty dim of a tensor with an empty dim give an empty result', async () => {
      // torch.zeros(0, 3).amax(1) -> tensor([]) of shape [0]; .argmax(1) likewise; over dim 0 it raises
      const x = zeros([0, 3], { device });
      for (const y of [x.max(1), x.min(1), x.argmax(1), x.argmin(1)]) {
        expect(y.shape).toEqual([0]);
        expect(await y.tolist()).toEqual([]);
      }
      expect(x.max(1, true).shape).toEqual([0, 1]);
      expect(zeros([2, 0, 3], { device }).max(2).shape).toEqual([2, 0]);
      expect(() => x.max(0)).toThrow(/max: cannot reduce over dimension 0 of size 0/);
      expect(() => x.argmax(0)).toThrow(/argmax: cannot reduce over dimension 0 of size 0/);
      expect(() => x.max()).toThrow(/max: cannot reduce an empty tensor/);
      expect(() => x.argmin()).toThrow(/argmin: cannot reduce an empty tensor/);
    });
  });
}
