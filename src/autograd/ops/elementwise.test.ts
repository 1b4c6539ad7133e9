// Elementwise ops against PyTorch (value and gradient) on every backend, plus finite differences in float64.

import { describe, expect, test } from 'vitest';
import { listDevices } from '../../tensor/backend.js';
import { tensor } from '../../tensor/create.js';
import { hasFloat64 } from '../../test-util/devices.js';
import { describeOps } from '../../test-util/op-check.js';
import { where } from './elementwise.js';

describeOps('elementwise', {
  neg: (x) => x.neg(),
  abs: (x) => x.abs(),
  sign: (x) => x.sign(),
  exp: (x) => x.exp(),
  log: (x) => x.log(),
  sqrt: (x) => x.sqrt(),
  rsqrt: (x) => x.rsqrt(),
  sin: (x) => x.sin(),
  cos: (x) => x.cos(),
  tanh: (x) => x.tanh(),
  sigmoid: (x) => x.sigmoid(),
  relu: (x) => x.relu(),
  erf: (x) => x.erf(),
  gelu: (x) => x.gelu(),
  gelu_tanh: (x) => x.gelu('tanh'),
  gelu_tanh_wide: (x) => x.gelu('tanh'),
  silu: (x) => x.silu(),
  floor: (x) => x.floor(),
  ceil: (x) => x.ceil(),
  round: [(x) => x.round(), { noGradcheck: true }], // inputs sit on the jumps at .5
  square: (x) => x.square(),
  reciprocal: (x) => x.reciprocal(),
  clamp: (x) => x.clamp(-0.5, 0.7),
  add: (a, b) => a!.add(b!),
  sub: (a, b) => a!.sub(b!),
  mul: (a, b) => a!.mul(b!),
  div: (a, b) => a!.div(b!),
  pow: (a, b) => a!.pow(b!),
  pow_scalar: (a) => a.pow(3),
  maximum: (a, b) => a!.maximum(b!),
  minimum: (a, b) => a!.minimum(b!),
  add_scalar: (a) => a.add(2.5),
  rsub_scalar: (a) => a.neg().add(1),
  eq: (a, b) => a!.eq(b!),
  lt: (a, b) => a!.lt(b!),
  ge: (a, b) => a!.ge(b!),
  logical_and: (a, b) => a!.logicalAnd(b!),
  where: (c, a, b) => where(c!, a!, b!),
  masked_fill: (x, m) => x!.maskedFill(m!, -1.5),
});

describe('elementwise dtype rules', () => {
  test('numbers default to float32; int tensors keep int32 with integer scalars and promote with fractions', async () => {
    const i = tensor([1, 2, 3], { dtype: 'int32' });
    expect(tensor([1.5, 2]).dtype).toBe('float32');
    expect(tensor([1, 2]).dtype).toBe('int32');
    expect(i.add(2).dtype).toBe('int32');
    expect(i.mul(0.5).dtype).toBe('float32');
    expect(await i.mul(0.5).tolist()).toEqual([0.5, 1, 1.5]);
    expect(i.div(2).dtype).toBe('float32');
    expect(tensor([true, false]).add(tensor([true, true])).dtype).toBe('bool'); // torch: bool + bool is bool
  });
  test('broadcasting errors name the op and shapes', () => {
    expect(() => tensor([[1, 2, 3]]).add(tensor([1, 2]))).toThrow(/add: shapes \[1, 3\] and \[2\] cannot be broadcast/);
  });
  test('exp of an int tensor computes in float32, like PyTorch', async () => {
    const y = tensor([0, 1], { dtype: 'int32' }).exp();
    expect(y.dtype).toBe('float32');
    expect((await y.tolist() as number[])[1]).toBeCloseTo(Math.E, 5);
  });
});

// Issue 15: silent mismatches with PyTorch 1.13 found by a differential test. Every expected value below was
// printed by torch 1.13 (the snippet is in the comment next to it).
for (const device of listDevices()) {
  const i32 = (v: number[]) => tensor(v, { dtype: 'int32', device });
  const f32 = (v: number[], requiresGrad = false) => tensor(v, { dtype: 'float32', device, requiresGrad });
  const bools = (v: boolean[]) => tensor(v, { dtype: 'bool', device });

  describe(`elementwise PyTorch parity on ${device}`, () => {
    test('maskedFill keeps the tensor dtype: the value is cast to it', async () => {
      // torch.tensor([1,2,3],dtype=torch.int32).masked_fill(torch.tensor([True,False,False]), 2.5) -> int32 [2, 2, 3]
      const m = bools([true, false, false]);
      const y = i32([1, 2, 3]).maskedFill(m, 2.5);
      expect(y.dtype).toBe('int32');
      expect(await y.tolist()).toEqual([2, 2, 3]);
      expect(await i32([1, 2, 3]).maskedFill(m, -2.7).tolist()).toEqual([-2, 2, 3]); // torch: [-2, 2, 3]
      const b = bools([true, false]).maskedFill(bools([false, true]), 2.5); // torch: bool [True, True]
      expect(b.dtype).toBe('bool');
      expect(await b.tolist()).toEqual([true, true]);
      // An int mask fills like a bool one (torch: [2, 2, 3]); a float mask is an error here.
      expect(await i32([1, 2, 3]).maskedFill(i32([1, 0, 0]), 2).tolist()).toEqual([2, 2, 3]);
      expect(() => i32([1, 2, 3]).maskedFill(f32([1, 0, 0]), 2)).toThrow(/maskedFill: mask must be a bool tensor, got float32/);
    });

    test('bool arithmetic stays bool (or / and), sub and pow of two bools raise, bool with a number promotes', async () => {
      const a = bools([true, false, true, false]), b = bools([true, true, false, false]);
      // torch: a + b, torch.maximum(a, b) -> [T, T, T, F]; a * b, torch.minimum(a, b) -> [T, F, F, F] (all bool)
      for (const [y, want] of [[a.add(b), [true, true, true, false]], [a.maximum(b), [true, true, true, false]], [a.mul(b), [true, false, false, false]], [a.minimum(b), [true, false, false, false]]] as const) {
        expect(y.dtype).toBe('bool');
        expect(await y.tolist()).toEqual(want);
      }
      expect(() => a.sub(b)).toThrow(/sub: subtraction with a bool tensor is not supported/); // torch raises
      expect(() => a.pow(b)).toThrow(/pow: not implemented for two bool tensors/); // torch: "pow" not implemented for 'Bool'
      const d = a.div(b); // torch: float32 [1, 0, inf, nan]
      expect(d.dtype).toBe('float32');
      expect(await d.tolist()).toEqual([1, 0, Infinity, NaN]);
      expect(a.mul(2).dtype).toBe('int32'); // torch: int64 [2, 0, 2, 0]
      expect(await a.mul(2).tolist()).toEqual([2, 0, 2, 0]);
      expect(a.mul(2.5).dtype).toBe('float32'); // torch: float32
      expect(i32([1, 2, 3]).add(2.5).dtype).toBe('float32'); // torch: float32 [3.5, 4.5, 5.5]
      expect(i32([1, 2, 3]).div(i32([1, 2, 3])).dtype).toBe('float32'); // torch: float32
    });

    test('int32 products wrap like int32', async () => {
      // (torch.tensor([2147483647, 65536, 46341, -7],dtype=torch.int32) * torch.tensor([2147483647, 65536, 46341, 3],dtype=torch.int32))
      expect(await i32([2147483647, 65536, 46341, -7]).mul(i32([2147483647, 65536, 46341, 3])).tolist()).toEqual([1, 0, -2147479015, -21]);
      // torch.tensor([3, 7, -2, 0],dtype=torch.int32).pow(torch.tensor([20, 12, 31, 0],dtype=torch.int32))
      expect(await i32([3, 7, -2, 0]).pow(i32([20, 12, 31, 0])).tolist()).toEqual([-808182895, 956385313, -2147483648, 1]);
    });

    test('relu lets NaN through, with its gradient, as PyTorch does', async () => {
      // x = torch.tensor([nan, -1., 2., 0.], requires_grad=True); torch.relu(x) -> [nan, 0, 2, 0]; grad [1, 0, 1, 0]
      const x = f32([NaN, -1, 2, 0], true);
      const y = x.relu();
      expect(await y.tolist()).toEqual([NaN, 0, 2, 0]);
      y.sum().backward();
      expect(await x.grad!.tolist()).toEqual([1, 0, 1, 0]);
      expect(Object.is((await f32([-0]).relu().tolist() as number[])[0], -0)).toBe(true); // torch.relu(-0.) is -0.
    });

    test('pow gradients at base 0 follow PyTorch', async () => {
      // x = torch.tensor([0.,1,2], requires_grad=True); x.pow(0).sum().backward() -> x.grad [0, 0, 0]
      const x = f32([0, 1, 2], true);
      x.pow(0).sum().backward();
      expect(await x.grad!.tolist()).toEqual([0, 0, 0]);
      // x = torch.zeros(4, requires_grad=True); e = torch.tensor([0.,2,0.5,-1], requires_grad=True); (x**e).sum().backward()
      // -> x.grad [0, 0, inf, -inf], e.grad [0, 0, 0, -inf]
      const z = f32([0, 0, 0, 0], true), e = f32([0, 2, 0.5, -1], true);
      z.pow(e).sum().backward();
      expect(await z.grad!.tolist()).toEqual([0, 0, Infinity, -Infinity]);
      expect(await e.grad!.tolist()).toEqual([0, 0, 0, -Infinity]);
      // x = torch.tensor([0.,1,2]); e = torch.tensor([0.,2,0.5]) -> x.grad [0, 2, 0.35355339], e.grad [0, 0, 0.98025814]
      const x2 = f32([0, 1, 2], true), e2 = f32([0, 2, 0.5], true);
      x2.pow(e2).sum().backward();
      const [gx, ge] = [await x2.grad!.tolist() as number[], await e2.grad!.tolist() as number[]];
      expect(gx.slice(0, 2)).toEqual([0, 2]);
      expect(gx[2]).toBeCloseTo(0.35355339, 6);
      expect(ge.slice(0, 2)).toEqual([0, 0]);
      expect(ge[2]).toBeCloseTo(0.98025814, 6);
      // (torch.tensor(0.) ** x).sum().backward() at x = [0, 0] -> x.grad [0, 0]
      const x3 = f32([0, 0], true);
      f32([0]).reshape([]).pow(x3).sum().backward();
      expect(await x3.grad!.tolist()).toEqual([0, 0]);
    });

    test('ops PyTorch rejects raise here too', () => {
      const b = bools([true, false]);
      expect(() => b.neg()).toThrow(/neg: negation of a bool tensor is not supported/); // torch raises
      expect(() => b.abs()).toThrow(/abs: not implemented for bool/); // torch: "abs_cpu" not implemented for 'Bool'
      expect(() => b.relu()).toThrow(/relu: not implemented for bool/); // torch: Boolean inputs not supported for relu
      expect(() => b.floor()).toThrow(/floor: not implemented for bool/);
      expect(() => i32([1, 2]).gelu()).toThrow(/gelu: expected a floating point tensor, got int32/); // torch: not implemented for 'Int'
      expect(() => i32([1, 2]).gelu('tanh')).toThrow(/gelu: expected a floating point tensor/);
      expect(() => i32([1, 2]).silu()).toThrow(/silu: expected a floating point tensor, got int32/);
      // torch.where(torch.tensor([1.,0]), x, x) -> where expected condition to be a boolean tensor
      expect(() => where(f32([1, 0]), f32([1, 2]), f32([3, 4]))).toThrow(/where: expected a bool condition, got float32/);
      expect(() => where(i32([1, 0]), f32([1, 2]), f32([3, 4]))).toThrow(/where: expected a bool condition, got int32/);
      // torch.tensor([1,2,3],dtype=torch.int32).pow(-1) -> Integers to negative integer powers are not allowed.
      expect(() => i32([1, 2, 3]).pow(-1)).toThrow(/pow: integers to negative integer powers are not allowed/);
      expect(() => b.pow(-1)).toThrow(/pow: integers to negative integer powers are not allowed/);
    });

    test('subtraction with any bool tensor raises; a whole number past int32 next to an int tensor is a float', async () => {
      // torch.tensor([True]) - torch.tensor([1.]) / - 2.5 / torch.tensor([1.]) - torch.tensor([True]): all raise
      expect(() => bools([true]).sub(f32([1]))).toThrow(/sub: subtraction with a bool tensor is not supported/);
      expect(() => bools([true]).sub(2.5)).toThrow(/sub: subtraction with a bool tensor/);
      expect(() => f32([1]).sub(bools([true]))).toThrow(/sub: subtraction with a bool tensor/);
      // torch.tensor([1,2],dtype=torch.int32) + 1e30 -> float32 [1e30, 1e30]; * 3e9 -> float32 [3e9, 6e9]; bool + 1e30 -> float32
      const y = i32([1, 2]).add(1e30);
      expect(y.dtype).toBe('float32');
      expect(await y.tolist()).toEqual([Math.fround(1e30), Math.fround(1e30)]);
      expect(await i32([1, 2]).mul(3e9).tolist()).toEqual([3e9, 6e9]);
      expect(bools([true]).add(1e30).dtype).toBe('float32');
      expect(i32([1, 2]).add(2147483647).dtype).toBe('int32');
    });

    test('computes what PyTorch computes on ints and bools', async () => {
      expect(await i32([1, 2, 3]).relu().tolist()).toEqual([1, 2, 3]); // torch: int32
      expect(i32([-1, 2]).relu().dtype).toBe('int32');
      expect(await i32([1, 2, 3]).pow(0).tolist()).toEqual([1, 1, 1]);
      expect(await bools([true, false]).sign().tolist()).toEqual([true, false]); // torch: bool
      // torch.where(torch.tensor([True, False]), 1, 0) -> int64 [1, 0]; (1.5, 0) -> float32
      expect(where(bools([true, false]), 1, 0).dtype).toBe('int32');
      expect(where(bools([true, false]), 1.5, 0).dtype).toBe('float32');
    });

    test('sign(NaN) is 0, so abs passes no gradient at NaN; square of bool is int32', async () => {
      // torch.sign(torch.tensor([nan, -0., 0., 2., -3.])) -> [0, 0, 0, 1, -1]
      expect(await f32([NaN, -0, 0, 2, -3]).sign().tolist()).toEqual([0, 0, 0, 1, -1]);
      // x = torch.tensor([nan, 0., -0., 1.], requires_grad=True); x.abs().sum().backward() -> [0, 0, 0, 1]
      const x = f32([NaN, 0, -0, 1], true);
      x.abs().sum().backward();
      expect(await x.grad!.tolist()).toEqual([0, 0, 0, 1]);
      // torch.tensor([True]).square() -> int64 (int32 here), [1]
      const sq = bools([true, false]).square();
      expect(sq.dtype).toBe('int32');
      expect(await sq.tolist()).toEqual([1, 0]);
    });

    test('maximum/minimum gradients: ties split, NaN sends the gradient to both sides', async () => {
      // a = [nan, 1, 2, 3], b = [1, nan, 2, 1]; torch.maximum(a, b).sum().backward() -> a.grad [1, 1, .5, 1], b.grad [1, 1, .5, 0]
      // torch.minimum -> a.grad [1, 1, .5, 0], b.grad [1, 1, .5, 1]
      for (const [op, wa, wb] of [['maximum', [1, 1, 0.5, 1], [1, 1, 0.5, 0]], ['minimum', [1, 1, 0.5, 0], [1, 1, 0.5, 1]]] as const) {
        const a = f32([NaN, 1, 2, 3], true), b = f32([1, NaN, 2, 1], true);
        (op === 'maximum' ? a.maximum(b) : a.minimum(b)).sum().backward();
        expect(await a.grad!.tolist(), op).toEqual(wa);
        expect(await b.grad!.tolist(), op).toEqual(wb);
      }
    });

    test('clamp: max wins over min, the gradient passes exactly where min <= x <= max', async () => {
      // x = torch.tensor([-2., -1, 0, 0.5, 0.7, 1, 2, nan]); x.clamp(-1., 0.7) -> [-1,-1,0,.5,.7,.7,.7,nan]; grad [0,1,1,1,1,0,0,0]
      const x = f32([-2, -1, 0, 0.5, 0.7, 1, 2, NaN], true);
      const y = x.clamp(-1, 0.7);
      expect(await y.tolist()).toEqual([-1, -1, 0, 0.5, Math.fround(0.7), Math.fround(0.7), Math.fround(0.7), NaN]);
      y.sum().backward();
      expect(await x.grad!.tolist()).toEqual([0, 1, 1, 1, 1, 0, 0, 0]);
      // x.clamp(1., 0.5) -> all 0.5, grad all 0; clamp(-1., -1.) on [-2, -1, 0] -> grad [0, 1, 0]; clamp(min=-1.) -> [0, 1, 1]
      const x2 = f32([-2, -1, 0, 0.5, 0.7, 1, 2], true);
      const y2 = x2.clamp(1, 0.5);
      expect(await y2.tolist()).toEqual([0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]);
      y2.sum().backward();
      expect(await x2.grad!.tolist()).toEqual([0, 0, 0, 0, 0, 0, 0]);
      const x3 = f32([-2, -1, 0], true);
      x3.clamp(-1, -1).sum().backward();
      expect(await x3.grad!.tolist()).toEqual([0, 1, 0]);
      const x4 = f32([-2, -1, 0], true);
      x4.clamp(-1).sum().backward();
      expect(await x4.grad!.tolist()).toEqual([0, 1, 1]);
      // torch.clamp(x) raises "At least one of 'min' or 'max' must not be None".
      expect(() => x4.clamp()).toThrow("clamp: at least one of 'min' and 'max' must be given");
    });

    test('exp is finite up to ln(FLT_MAX) and accurate near the top', async () => {
      // torch.exp(torch.tensor([80., 85., 88., 88.3, 88.376, 88.4, 88.5, 88.6, 88.7, 88.72, 88.7228, 88.72283172607421875]))
      const xs = [80, 85, 88, 88.3, 88.376, 88.4, 88.5, 88.6, 88.7, 88.72, 88.7228, 88.72283172607421875];
      const want = [5.540622484676759e+34, 8.223012393018281e+36, 1.6516362661361307e+38, 2.229482622804407e+38, 2.4055195376532847e+38,
        2.4639553907864616e+38, 2.723087918012828e+38, 3.0094729049031413e+38, 3.325976864406685e+38, 3.3931806003874245e+38,
        3.4026946730843054e+38, 3.402798519021476e+38];
      const got = await f32(xs).exp().tolist() as number[];
      got.forEach((g, i) => expect(Math.abs(g - want[i]!) / want[i]!, `exp(${xs[i]})`).toBeLessThan(3e-7));
      // The next float32 above overflows (torch: inf), as do larger values and inf.
      expect(await f32([88.72283935546875, 89, Infinity]).exp().tolist()).toEqual([Infinity, Infinity, Infinity]);
      // A sweep of the top range against exp in double: within about 2 ulp of float32.
      const sweep = Array.from({ length: 400 }, (_, i) => Math.fround(80 + (8.7228 * i) / 399));
      const ys = await f32(sweep).exp().tolist() as number[];
      ys.forEach((y, i) => {
        const exact = Math.exp(sweep[i]!);
        expect(Math.abs(y - exact) / exact, `exp(${sweep[i]})`).toBeLessThan(2.5e-7);
      });
    });
  });
}

// Issue 15 classes L and M: values printed by torch 1.13 (snippets in the comments).
for (const device of listDevices()) {
  describe(`promotion and pow special cases on ${device}`, () => {
    const t = (v: number | number[], dtype: 'float32' | 'float64' | 'float16' | 'int32' | 'uint8' | 'bool', requiresGrad = false) =>
      tensor(v, { dtype, device, requiresGrad });

    test.skipIf(!hasFloat64(device))('a 0-d tensor promotes a dimensioned tensor only by category, as torch.result_type', async () => {
      // (torch.tensor(2., dtype=torch.float64) * torch.ones(3)).dtype -> torch.float32; same for div/maximum/minimum/add/sub/eq
      const s = t(2, 'float64'), v = t([1, 2, 3], 'float32');
      for (const y of [s.mul(v), v.mul(s), v.div(s), s.div(v), s.maximum(v), v.minimum(s), s.add(v), v.sub(s), v.pow(s)]) expect(y.dtype).toBe('float32');
      // torch.tensor([1.,2,3]) / torch.tensor(3., dtype=torch.float64) -> [0.3333333432674408, 0.6666666865348816, 1.0] (float32)
      expect(await v.div(t(3, 'float64')).tolist()).toEqual([0.3333333432674408, 0.6666666865348816, 1]);
      // torch.where(torch.tensor([True,False]), torch.tensor(0.1, dtype=torch.float64), torch.tensor([1.,2])) -> float32 [0.10000000149011612, 2.0]
      const w = where(tensor([true, false], { device }), t(0.1, 'float64'), t([1, 2], 'float32'));
      expect(w.dtype).toBe('float32');
      expect(await w.tolist()).toEqual([0.10000000149011612, 2]);
      // A higher category does promote: (torch.tensor(2.5, dtype=torch.float64) * torch.ones(3, dtype=torch.int32)).dtype -> float64
      // (without float64: the next test)
      expect(t(2.5, 'float64').mul(t([1, 1, 1], 'int32')).dtype).toBe('float64');
      expect(await t(2.5, 'float64').mul(t([1, 1, 1], 'int32')).tolist()).toEqual([2.5, 2.5, 2.5]);
      // Two 0-d tensors (or two dimensioned ones) promote as usual: torch.where(c, tensor(2., f64), tensor(1.)) -> float64
      expect(where(tensor([true, false], { device }), t(2, 'float64'), t(1, 'float32')).dtype).toBe('float64');
      expect(t([2], 'float64').mul(t([1, 2, 3], 'float32')).dtype).toBe('float64');
      // Gradients keep each operand's dtype: x = torch.tensor([1.,2,3], requires_grad=True);
      // s = torch.tensor(2., dtype=torch.float64, requires_grad=True); (x*s).sum().backward() -> x.grad float32, s.grad float64 6.0
      const x = t([1, 2, 3], 'float32', true), sg = t(2, 'float64', true);
      x.mul(sg).sum().backward();
      expect(x.grad!.dtype).toBe('float32');
      expect(sg.grad!.dtype).toBe('float64');
      expect(await sg.grad!.item()).toBe(6);
    });

    test('a 0-d tensor of a higher category promotes: ints and halves (every device)', () => {
      // int32 0-d * float16 [3] -> float16, int32 0-d * bool [3] -> int32, int32 0-d * uint8 [3] -> uint8, float16 0-d * int32 [3] -> float16
      expect(t(2, 'int32').mul(t([1, 1, 1], 'float16')).dtype).toBe('float16');
      expect(t(2, 'int32').mul(t([1, 1, 1], 'bool')).dtype).toBe('int32');
      expect(t(2, 'int32').mul(t([1, 1, 1], 'uint8')).dtype).toBe('uint8');
      expect(t(2, 'float16').mul(t([1, 1, 1], 'int32')).dtype).toBe('float16');
    });

    test('pow with a scalar exponent matches torch at ±inf, NaN, 0 and negative bases (±0.5 are sqrt / rsqrt)', async () => {
      // x = torch.tensor([-inf, 4, 0, nan, -4, inf]); torch.pow(x, e).tolist()
      const xs = [-Infinity, 4, 0, NaN, -4, Infinity];
      const want: [number, number[]][] = [
        [0.5, [NaN, 2, 0, NaN, NaN, Infinity]],
        [-0.5, [NaN, 0.5, Infinity, NaN, NaN, 0]],
        [2, [Infinity, 16, 0, NaN, 16, Infinity]],
        [-1, [-0, 0.25, Infinity, NaN, -0.25, 0]],
        [-2, [0, 0.0625, Infinity, NaN, 0.0625, 0]],
        [3, [-Infinity, 64, 0, NaN, -64, Infinity]],
        [1.5, [Infinity, 8, 0, NaN, NaN, Infinity]],
      ];
      for (const [e, w] of want) expect(await t(xs, 'float32').pow(e).tolist(), `pow(x, ${e})`).toEqual(w);
      // The gradient stays 0.5 * x^-0.5 / -0.5 * x^-1.5: x = torch.tensor([-inf, 4, 0, -4, inf], requires_grad=True);
      // x.pow(0.5).sum().backward() -> [nan, 0.25, inf, nan, 0]; x.pow(-0.5) -> [-0.0, -0.0625, -inf, nan, -0.0]
      const a = t([-Infinity, 4, 0, -4, Infinity], 'float32', true);
      a.pow(0.5).sum().backward();
      expect(await a.grad!.tolist()).toEqual([NaN, 0.25, Infinity, NaN, 0]);
      const b = t([-Infinity, 4, 0, -4, Infinity], 'float32', true);
      b.pow(-0.5).sum().backward();
      expect(await b.grad!.tolist()).toEqual([-0, -0.0625, -Infinity, NaN, -0]);
    });
  });
}
