// float16 / bfloat16 weights multiplied as stored (Backend.matmulHalf, HalfLinear, halfWeights): values against float32
// products of the same rounded weights, gradients to the input and bias, the half-model path, special values, bad input.

import { expect, test, vi } from 'vitest';
import '../index.js';
import { linear } from '../autograd/ops/matmul.js';
import { getBackend, listDevices, type MatmulParams } from '../tensor/backend.js';
import { randn, tensor } from '../tensor/create.js';
import { decodeHalf, encodeHalf, type HalfDType } from '../tensor/dtype.js';
import { Generator } from '../tensor/random.js';
import { Embedding } from '../nn/embedding.js';
import { Linear } from '../nn/linear.js';
import { Module } from '../nn/module.js';
import { HalfLinear, halfWeights } from './half-linear.js';

const maxRel = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let scale = 0, diff = 0;
  for (let i = 0; i < b.length; i++) {
    scale = Math.max(scale, Math.abs(b[i]!));
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
  }
  return diff / scale;
};

/** Values rounded to `dtype` (the bits) and their exact float32 values. */
function rounded(n: number, dtype: HalfDType, seed: number): { bits: Uint16Array; values: Float32Array } {
  const bits = encodeHalf(new Float32Array(new Generator(seed).normal(n)), dtype);
  return { bits, values: decodeHalf(bits, dtype) };
}

const DTYPES = ['float16', 'bfloat16'] as const;
// [m, n, k]: one row of x (weight rows widened in registers one at a time, 16 values a step, then 8, then single
// values: k % 16 < 8 and >= 8), several rows (four weight rows staged), n % 4 and k % 8 tails, and a k too long for the
// thread's scratch (every row in registers), and one big enough for the worker threads (uneven runs of rows).
const SHAPES: [number, number, number][] = [[1, 67, 70], [1, 9, 90], [6, 80, 64], [9, 35, 203], [2, 6, 13000], [3, 301, 1000]];

// matmulHalf is optional (webgpu has none: HalfLinear refuses it, tested below); the tests need it.
for (const device of listDevices().filter((d) => getBackend(d).matmulHalf)) {
  const be = getBackend(device);
  test.each(DTYPES)(`${device} %s: matmulHalf equals the float32 product of the rounded weights, both layouts`, async (dtype) => {
    for (const [m, n, k] of SHAPES) {
      const w = rounded(n * k, dtype, n + k), x = new Float32Array(new Generator(m).normal(m * k)), bias = new Float32Array(new Generator(9).normal(n));
      const xb = be.upload(x, 'float32'), wb = be.upload(w.bits, dtype), w32 = be.upload(w.values, 'float32'), bb = be.upload(bias, 'float32');
      const p: MatmulParams = { batch: 1, m, n, k, transA: false, transB: true, strideA: 0, strideB: 0 };
      const got = await be.read(be.matmulHalf!(xb, wb, p, bb)), want = await be.read(be.matmul(xb, w32, p, bb));
      expect(maxRel(got, want), `${m}x${n}x${k}`).toBeLessThan(2e-6);
      // y = g W with W [n, k] not transposed: g [m, n].
      const g = be.upload(new Float32Array(new Generator(5).normal(m * n)), 'float32');
      const pn: MatmulParams = { batch: 1, m, n: k, k: n, transA: false, transB: false, strideA: 0, strideB: 0 };
      expect(maxRel(await be.read(be.matmulHalf!(g, wb, pn)), await be.read(be.matmul(g, w32, pn))), `g W ${m}x${n}x${k}`).toBeLessThan(2e-6);
    }
  });

  test.each(DTYPES)(`${device} %s: HalfLinear forward, gradients to x and the bias`, async (dtype) => {
    const [inF, outF] = [96, 37];
    const w = rounded(outF * inF, dtype, 1);
    const bias = randn([outF], { device, requiresGrad: true });
    const layer = new HalfLinear(tensor(w.bits, { shape: [outF, inF], dtype, device }), bias);
    expect(layer.weight.requiresGrad).toBe(false);
    const x = randn([2, 3, inF], { device, requiresGrad: true });
    const y = layer.forward(x);
    expect([y.shape, y.dtype]).toEqual([[2, 3, outF], 'float32']);
    const g = randn([2, 3, outF], { device });
    y.mul(g).sum().backward();
    const x2 = x.detach().requiresGrad_(), b2 = bias.detach().requiresGrad_();
    const ref = linear(x2, tensor(w.values, { shape: [outF, inF], device }), b2);
    ref.mul(g).sum().backward();
    expect(maxRel(await y.data(), await ref.data())).toBeLessThan(2e-6);
    expect(maxRel(await x.grad!.data(), await x2.grad!.data())).toBeLessThan(2e-6);
    expect(maxRel(await layer.bias!.grad!.data(), await b2.grad!.data())).toBeLessThan(1e-6);
  });

  test(`${device}: a model in float16 multiplies by its weights as stored, forward and backward`, async () => {
    // linear() on two float16 tensors: the product reads W as stored (matmulHalf), rounded to float16 once, as before.
    const [inF, outF] = [64, 24];
    const w = rounded(outF * inF, 'float16', 4);
    const x32 = new Float32Array(new Generator(2).normal(5 * inF));
    const x = tensor(encodeHalf(x32, 'float16'), { shape: [5, inF], dtype: 'float16', device, requiresGrad: true });
    const W = tensor(w.bits, { shape: [outF, inF], dtype: 'float16', device, requiresGrad: true });
    const spy = vi.spyOn(be, 'matmulHalf');
    const y = linear(x, W);
    expect(y.dtype).toBe('float16');
    const ref = linear(tensor(decodeHalf(encodeHalf(x32, 'float16'), 'float16'), { shape: [5, inF], device }), tensor(w.values, { shape: [outF, inF], device }));
    const refHalf = decodeHalf(encodeHalf(new Float32Array(await ref.data()), 'float16'), 'float16');
    expect(maxRel(await y.data(), refHalf)).toBeLessThan(1e-3); // float16 rounding of the result (and one ulp either side)
    y.sum().backward();
    // d sum(x W^T) / dx = column sums of W, rounded to float16; / dW = column sums of x.
    const colW = Array.from({ length: inF }, (_, c) => Array.from({ length: outF }, (_, r) => w.values[r * inF + c]!).reduce((s, v) => s + v, 0));
    expect(maxRel((await x.grad!.data()).slice(0, inF), colW)).toBeLessThan(2e-3);
    expect(W.grad!.dtype).toBe('float16');
    // x W^T and g W read W as stored; the weight gradient g^T x (A transposed) takes the widening path.
    expect(spy.mock.calls.map(([, , p]) => p.transB)).toEqual([true, false]);
    spy.mockRestore();
  });

  test(`${device}: float16 infinities, NaN and subnormals widen exactly`, async () => {
    const k = 16, vals = [65504, -65504, 2 ** -24, -(2 ** -20), 1.5, 0, -0, 3, 2 ** -14, 1, 1, 1, 1, 1, 1, 1];
    // Five rows: with two rows of x, a group of four staged and one alone; with one, each alone (a special found in the
    // 16-value steps sends its row to the checked path).
    const specials = [[...vals], [...vals.slice(0, 15), Infinity], [...vals.slice(0, 15), NaN], vals.map((v, i) => (i === 3 ? -Infinity : v)), [...vals.slice(0, 15), NaN]];
    const bits = encodeHalf(Float32Array.from(specials.flat()), 'float16');
    const x = be.upload(Float32Array.from({ length: k }, (_, i) => (i < 4 ? 2 ** -(i + 1) : 1)), 'float32');
    for (const m of [1, 2]) { // widened in registers, then staged through the scratch
      const xm = m === 1 ? x : be.upload(Float32Array.from({ length: 2 * k }, (_, i) => (i % k < 4 ? 2 ** -((i % k) + 1) : 1)), 'float32');
      const y = await be.read(be.matmulHalf!(xm, be.upload(bits, 'float16'), { batch: 1, m, n: 5, k, transA: false, transB: true, strideA: 0, strideB: 0 }));
      const exact = vals.reduce((s, v, i) => s + v * (i < 4 ? 2 ** -(i + 1) : 1), 0);
      expect(Array.from(y.slice(1, 5))).toEqual([Infinity, NaN, -Infinity, NaN]);
      expect(Math.abs(y[0]! - exact)).toBeLessThan(1e-2); // float32 accumulation of 65504 - 65504 + small terms
    }
  });

  test(`${device}: halfWeights converts Linear layers, keeps a tied one, halves the bytes`, async () => {
    class Tiny extends Module {
      emb = new Embedding(50, 32, { device });
      layers = [new Linear(32, 64, { device }), new Linear(64, 32, { device })];
      head = new Linear(32, 50, { bias: false, device });
      forward(ids: ReturnType<typeof tensor>) {
        let h = this.emb.forward(ids);
        for (const l of this.layers) h = l.forward(h).relu();
        return this.head.forward(h);
      }
    }
    const model = new Tiny();
    model.head.weight = model.emb.weight; // tied
    const ids = tensor([[1, 7, 49]], { dtype: 'int32', device });
    const before = await model.forward(ids).data();
    const report = halfWeights(model, 'bfloat16');
    expect(report.converted).toEqual(['layers.0', 'layers.1']);
    expect(report.skipped.map((s) => s.name)).toEqual(['head']);
    expect(model.layers[0]).toBeInstanceOf(HalfLinear);
    const linearBytes = (32 * 64 + 64 * 32) * 4;
    expect(report.bytesBefore - report.bytesAfter).toBe(linearBytes / 2);
    const after = await model.forward(ids).data();
    expect(maxRel(after, before)).toBeLessThan(2e-2); // bfloat16 rounding of the weights: 8 bits of mantissa
  });
}

for (const device of listDevices().filter((d) => !getBackend(d).matmulHalf)) {
  test(`${device}: HalfLinear names the missing matmulHalf`, () => {
    const layer = new HalfLinear(tensor(new Uint16Array(8), { shape: [2, 4], dtype: 'float16', device }));
    expect(() => layer.forward(randn([3, 4], { device }))).toThrow(`HalfLinear: the ${device} backend has no matmulHalf (a product with float16 weights)`);
  });
}

test('bad input: a float32 weight, an integer or mismatched input, matmulHalf on float32 operands', () => {
  expect(() => new HalfLinear(randn([4, 8]))).toThrow('HalfLinear: the weight must be float16 or bfloat16, got float32');
  const layer = new HalfLinear(randn([4, 8]).to('float16'));
  expect(() => layer.forward(randn([2, 7]))).toThrow('HalfLinear: input [2, 7] does not fit weight [4, 8] (expected last dimension 8)');
  expect(() => layer.forward(tensor([[1, 2, 3, 4, 5, 6, 7, 8]], { dtype: 'int32' }))).toThrow('HalfLinear: the input must be float32 or float16, got int32');
  expect(() => halfWeights(new Linear(2, 2), 'float32' as HalfDType)).toThrow('halfWeights: dtype must be float16 or bfloat16, got "float32"');
  for (const device of listDevices().filter((d) => getBackend(d).matmulHalf)) {
    const be = getBackend(device), a = be.upload(new Float32Array(8), 'float32');
    const p: MatmulParams = { batch: 1, m: 1, n: 1, k: 8, transA: false, transB: true, strideA: 0, strideB: 0 };
    expect(() => be.matmulHalf!(a, a, p)).toThrow('matmulHalf: expects float32 and float16 / bfloat16 operands, got float32 and float32');
    expect(() => be.matmulHalf!(a, be.upload(new Uint16Array(4), 'float16'), p)).toThrow('matmulHalf: buffers of 8 and 4 elements are too small');
  }
});
