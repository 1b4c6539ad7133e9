// Tensors: creation, dtypes, reading back, seeded random numbers (Philox known answers), memory scopes.

import { describe, expect, test } from 'vitest';
import '../index.js';
import { listDevices } from './backend.js';
import { arange, eye, full, linspace, rand, randint, randn, randperm, tensor, zeros } from './create.js';
import { bfloat16ToFloat32, float16ToFloat32, float32ToBfloat16, float32ToFloat16 } from './dtype.js';
import { Generator, manualSeed } from './random.js';
import { keep, tidy } from './scope.js';
import type { Tensor } from './tensor.js';

describe('creation', () => {
  test('nested arrays, typed arrays and shapes', async () => {
    const t = tensor([[1, 2, 3], [4, 5, 6]]);
    expect(t.shape).toEqual([2, 3]);
    expect(t.dtype).toBe('int32'); // integer literals, as torch.tensor (more in dtype.test.ts)
    expect(tensor([[1.5, 2]]).dtype).toBe('float32');
    expect(await t.tolist()).toEqual([[1, 2, 3], [4, 5, 6]]);
    expect(tensor(new Int32Array([1, 2, 3, 4]), { shape: [2, 2] }).dtype).toBe('int32');
    expect(await tensor([true, false]).tolist()).toEqual([true, false]);
    expect(tensor(3).shape).toEqual([]);
  });
  test('ragged arrays and wrong sizes are errors', () => {
    expect(() => tensor([[1, 2], [3]])).toThrow(/tensor: ragged nested array/);
    expect(() => tensor(new Float32Array(5), { shape: [2, 2] })).toThrow(/shape \[2, 2\] needs 4 values, got 5/);
    expect(() => zeros([2, -1])).toThrow(/invalid shape \[2, -1\]/);
  });
  test('ranges and constants', async () => {
    expect(await arange(5).tolist()).toEqual([0, 1, 2, 3, 4]);
    expect(arange(5).dtype).toBe('int32');
    expect(await arange(1, 2, 0.25).tolist()).toEqual([1, 1.25, 1.5, 1.75]);
    expect(await linspace(0, 1, 5).tolist()).toEqual([0, 0.25, 0.5, 0.75, 1]);
    expect(await eye(2, 3).tolist()).toEqual([[1, 0, 0], [0, 1, 0]]);
    expect(await full([2], 7, { dtype: 'int32' }).tolist()).toEqual([7, 7]);
    // torch.full((2,), -0.0) keeps the sign (1 / x is -inf), on every device.
    for (const device of listDevices()) expect(Array.from(await full([2], -0, { dtype: 'float32', device }).data()).map((v) => 1 / v)).toEqual([-Infinity, -Infinity]);
  });
  test('item, dataSync and size', async () => {
    const t = tensor([[1, 2, 3]]);
    expect(await t.sum().item()).toBe(6);
    await expect(t.item()).rejects.toThrow(/item: tensor \[1, 3\] int32 on cpu has 3 elements, expected 1/);
    expect(Array.from(t.dataSync())).toEqual([1, 2, 3]);
    expect(t.size(-1)).toBe(3);
  });
});

describe('dtype conversion', () => {
  test('float16 and bfloat16 round trips and special values', () => {
    for (const v of [0, 1, -2.5, 65504, 6.103515625e-5, 5.960464477539063e-8]) expect(float16ToFloat32(float32ToFloat16(v))).toBe(v);
    expect(float32ToFloat16(1 / 3)).toBe(0x3555);
    expect(float16ToFloat32(0x7c00)).toBe(Infinity);
    expect(Number.isNaN(float16ToFloat32(0x7e00))).toBe(true);
    expect(float32ToFloat16(1e6)).toBe(0x7c00);
    expect(float32ToBfloat16(1)).toBe(0x3f80);
    expect(bfloat16ToFloat32(0x4049)).toBe(3.140625);
    expect(float32ToBfloat16(3.14159)).toBe(0x4049);
  });
  test('casts truncate toward zero like PyTorch', async () => {
    expect(await tensor([-1.7, 2.9]).int().tolist()).toEqual([-1, 2]);
    expect(await tensor([0, 0.5]).bool().tolist()).toEqual([false, true]);
  });
});

describe('seeded random numbers', () => {
  test('Philox4x32-10 matches the Random123 known answers', () => {
    // Random123 kat_vectors: philox4x32 10 rounds, counter 0 and key 0.
    expect(Array.from(new Generator(0).uint32(4)).map((v) => v.toString(16))).toEqual(['6627e8d5', 'e169c58d', 'bc57ac4c', '9b00dbd8']);
  });
  test('the same seed gives the same numbers; the state can be saved and restored', async () => {
    manualSeed(42);
    const a = await randn([5]).tolist();
    manualSeed(42);
    expect(await randn([5]).tolist()).toEqual(a);
    const g = new Generator(7);
    g.uniform(3);
    const state = g.getState();
    const next = g.uniform(4);
    g.setState(state);
    expect(g.uniform(4)).toEqual(next);
  });
  test('distributions have the right moments and ranges', async () => {
    manualSeed(1);
    const n = (await randn([20000]).data()) as Float32Array;
    const mean = n.reduce((s, v) => s + v, 0) / n.length;
    const variance = n.reduce((s, v) => s + (v - mean) ** 2, 0) / n.length;
    expect(Math.abs(mean)).toBeLessThan(0.03);
    expect(Math.abs(variance - 1)).toBeLessThan(0.05);
    const u = (await rand([1000]).data()) as Float32Array;
    expect(Math.min(...u)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...u)).toBeLessThan(1);
    const r = (await randint(3, 6, [1000]).data()) as Int32Array;
    expect(new Set(r)).toEqual(new Set([3, 4, 5]));
    expect([...((await randperm(6).data()) as Int32Array)].sort()).toEqual([0, 1, 2, 3, 4, 5]);
  });
});

describe('memory', () => {
  test('tidy disposes what it made, keeps what it returns and what was kept', () => {
    let inner = zeros([1]), kept = zeros([1]);
    const out = tidy(() => {
      inner = zeros([2]).add(1);
      kept = keep(zeros([3]));
      return inner.mul(2);
    });
    expect(inner.isDisposed).toBe(true);
    expect(kept.isDisposed).toBe(false);
    expect(out.isDisposed).toBe(false);
  });
  test('tidy with an async function resolves to its result and frees the rest when it settles', async () => {
    let inner: Tensor | null = null;
    const out = await tidy(async () => {
      inner = zeros([2]).add(1);
      await inner.data();
      return inner.mul(2);
    });
    expect(inner!.isDisposed).toBe(true);
    expect(await out.tolist()).toEqual([2, 2]);
  });
  test('using a disposed tensor is a clear error', () => {
    const t = zeros([2]);
    t.dispose();
    expect(() => t.add(1)).toThrow(/tensor \[2\] \(disposed\) was used after dispose\(\)/);
  });
  test('reshape views survive disposing the original', async () => {
    const t = tensor([1, 2, 3, 4]);
    const v = t.reshape([2, 2]);
    t.dispose();
    expect(await v.tolist()).toEqual([[1, 2], [3, 4]]);
  });
});
