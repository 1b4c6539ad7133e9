// Dtypes: integer inference, float16/bfloat16 storage and rounding, casts, promotion, int64 at the API edge,
// and half-precision ops on every backend against PyTorch 1.13 (test/data/dtype.json, scripts/gen_dtype_fixtures.py).

import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { AdamW, F, layerNorm, type WasmBackend } from '../index.js';
import { getBackend, listDevices } from './backend.js';
import { arange, full, ones, randn, tensor, zeros, zerosLike } from './create.js';
import {
  bfloat16ToFloat32, bytesPerElement, decodeHalf, DTYPES, encodeHalf, float16ToFloat32, float32ToBfloat16, float32ToFloat16, promoteTypes,
  type DType, type HalfDType,
} from './dtype.js';
import type { Tensor } from './tensor.js';
import { canReadSync, supportsDtype } from '../test-util/devices.js';

interface OpOut { shape: number[]; bits: number[]; float32Rounded: number[] }
interface Fixture {
  rounding: { values: (number | string)[]; float16: number[]; bfloat16: number[] };
  fromOther: Record<'int32' | 'float64', { values: number[]; float16: number[]; bfloat16: number[] }>;
  toOther: Record<HalfDType, { bits: number[] } & Record<string, (number | string)[]>>;
  promotion: [DType, DType, DType][];
  ops: Record<HalfDType, { a: number[]; b: number[]; p: number[]; shape: number[]; out: Record<string, OpOut> }>;
  grad: { x: number[]; grad: number[]; dtype: string };
  fullInt: string;
}
const fx = JSON.parse(readFileSync(new URL('../../test/data/dtype.json', import.meta.url), 'utf8')) as Fixture;
const num = (v: number | string): number => (typeof v === 'number' ? v : Number(v));
const HALVES: HalfDType[] = ['float16', 'bfloat16'];

/** The stored bits of a half tensor (its float32 read-back encodes back exactly: see the 65536-pattern test). */
async function bitsOf(t: Tensor): Promise<number[]> {
  const data = await t.data();
  expect(data).toBeInstanceOf(Float32Array);
  return Array.from(encodeHalf(data as Float32Array, t.dtype as HalfDType));
}
function fromBits(bits: number[], dtype: HalfDType, shape: number[], device: string): Tensor {
  return tensor(new Uint16Array(bits), { dtype, shape, device });
}

describe('integer literals and creation dtypes', () => {
  test('integers give int32, any other number float32, booleans bool (as torch.tensor)', async () => {
    const ids = tensor([[101, 2, 3]]);
    expect(ids.dtype).toBe('int32');
    expect(await ids.tolist()).toEqual([[101, 2, 3]]);
    expect(tensor(3).dtype).toBe('int32');
    expect(tensor([1, 2.5]).dtype).toBe('float32');
    expect(tensor([1, NaN]).dtype).toBe('float32');
    expect(tensor([[1], [Infinity]]).dtype).toBe('float32');
    expect(tensor([true, false]).dtype).toBe('bool');
    expect(tensor([true, 2]).dtype).toBe('int32');
    expect(tensor([]).dtype).toBe('float32');
    // JavaScript writes large floats as integers (-1e9 for a mask): beyond int32 they count as floats.
    expect(tensor([-1e9, 0]).dtype).toBe('int32');
    expect(tensor([3e9, 0]).dtype).toBe('float32');
    expect(tensor([1e30]).dtype).toBe('float32');
  });
  test('requiresGrad without a dtype gives float32; an explicit dtype wins', () => {
    const w = tensor([[1, 2], [3, 4]], { requiresGrad: true });
    expect(w.dtype).toBe('float32');
    expect(w.requiresGrad).toBe(true);
    expect(full([2], 3, { requiresGrad: true }).dtype).toBe('float32');
    expect(tensor([1, 2], { dtype: 'float64', requiresGrad: true }).dtype).toBe('float64');
    expect(() => tensor([1, 2], { dtype: 'int32', requiresGrad: true })).toThrow(/only floating point tensors can require gradients/);
  });
  test('non-numeric elements are a clear error naming tensor() and the element', () => {
    expect(() => tensor(['a'] as never)).toThrow(/^tensor: element at \[0\] is the string "a"; expected a number or a boolean$/);
    expect(() => tensor([{}] as never)).toThrow(/tensor: element at \[0\] is an object \(Object\)/);
    expect(() => tensor([[1, 2], [3, 'x']] as never)).toThrow(/tensor: element at \[1\]\[1\] is the string "x"/);
    expect(() => tensor([null] as never)).toThrow(/tensor: element at \[0\] is null/);
    expect(() => tensor([undefined] as never)).toThrow(/tensor: element at \[0\] is undefined/);
    expect(() => tensor([1n] as never)).toThrow(/tensor: element at \[0\] is the bigint 1n/);
    expect(() => tensor('a' as never)).toThrow(/tensor: element is the string "a"/);
    expect(() => full([2], 'a' as never)).toThrow(/full: fill value is the string "a"/);
  });
  test('full infers like torch.full; zeros and ones stay float32; arange infers', async () => {
    expect(fx.fullInt).toBe('int64'); // torch 1.13: torch.full((2,), 3).dtype
    expect(full([2], 3).dtype).toBe('int32');
    expect(full([2], 3.5).dtype).toBe('float32');
    expect(full([2], true).dtype).toBe('bool');
    expect(await full([2], true).tolist()).toEqual([true, true]);
    expect(full([2], -Infinity).dtype).toBe('float32');
    expect(zeros([2]).dtype).toBe('float32');
    expect(ones([2]).dtype).toBe('float32');
    expect(zeros([2], { dtype: undefined }).dtype).toBe('float32');
    expect(zerosLike(tensor([1, 2])).dtype).toBe('int32');
    expect(zerosLike(tensor([1, 2]), { dtype: 'float16' }).dtype).toBe('float16');
    expect(arange(3).dtype).toBe('int32');
    expect(arange(0, 1, 0.5).dtype).toBe('float32');
  });
  test('int64 is accepted where PyTorch users pass it and stores int32, with a range error beyond 2^31', async () => {
    const t = tensor([1, -2, 2147483647], { dtype: 'int64' });
    expect(t.dtype).toBe('int32');
    expect(await t.tolist()).toEqual([1, -2, 2147483647]);
    expect(zeros([2], { dtype: 'int64' }).dtype).toBe('int32');
    expect(arange(4, undefined, 1, { dtype: 'int64' }).dtype).toBe('int32');
    expect(() => tensor([2 ** 31], { dtype: 'int64' })).toThrow(/tensor: value 2147483648 does not fit in int64 as attend stores it \(int32: -2147483648 to 2147483647\)/);
    expect(() => full([1], -(2 ** 40), { dtype: 'int64' })).toThrow(/full: value -1099511627776 does not fit in int64/);
    expect(() => tensor([2 ** 31], { dtype: 'int32' })).toThrow(/tensor: value 2147483648 does not fit in int32/);
    expect(() => tensor([1], { dtype: 'int16' as never })).toThrow(/tensor: unknown dtype "int16"/);
    for (const device of listDevices()) {
      const x = tensor([1.7, -2.5, 3e9], { device });
      // The range check reads the values: made where the device reads synchronously (cpu, wasm; not webgpu).
      if (canReadSync(device)) {
        expect(() => x.to('int64')).toThrow(/to\('int64'\): element 2: value 3000000000 does not fit in int64/);
        expect(() => x.long()).toThrow(/does not fit in int64/);
      }
      const y = tensor([1.7, -2.5], { device }).to('int64');
      expect(y.dtype).toBe('int32');
      expect(await y.tolist()).toEqual([1, -2]);
    }
  });
});

describe('float16 / bfloat16 storage and rounding', () => {
  test('known answers (torch 1.13 bits)', () => {
    expect(float32ToFloat16(0.1)).toBe(0x2e66);
    expect(float32ToBfloat16(0.1)).toBe(0x3dcd);
    expect(float32ToFloat16(65520)).toBe(0x7c00); // rounds up past 65504: inf
    expect(float32ToFloat16(65519)).toBe(0x7bff);
    expect(float32ToFloat16(2 ** -24)).toBe(0x0001); // smallest subnormal
    expect(float32ToFloat16(2 ** -25)).toBe(0x0000); // a tie: to even (0)
    expect(float32ToFloat16(-0)).toBe(0x8000);
    expect(float16ToFloat32(0x0001)).toBe(2 ** -24);
    expect(float16ToFloat32(0x03ff)).toBe(1023 * 2 ** -24);
    expect(bfloat16ToFloat32(0x3f80)).toBe(1);
    const { values, float16, bfloat16 } = fx.rounding;
    values.forEach((v, i) => {
      expect(float32ToFloat16(num(v)), `float16(${v})`).toBe(float16[i]);
      expect(float32ToBfloat16(num(v)), `bfloat16(${v})`).toBe(bfloat16[i]);
    });
  });
  test('every one of the 65536 bit patterns decodes exactly and encodes back to itself (NaN payloads too)', () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    for (const dtype of HALVES) {
      const decoded = decodeHalf(all, dtype);
      const scalar = dtype === 'float16' ? float16ToFloat32 : bfloat16ToFloat32;
      for (let i = 0; i < 65536; i++) {
        const want = scalar(i);
        if (!(Number.isNaN(want) ? Number.isNaN(decoded[i]) : Object.is(decoded[i], want))) throw new Error(`${dtype} 0x${i.toString(16)}: ${decoded[i]} vs ${want}`);
      }
      expect(Array.from(encodeHalf(decoded, dtype))).toEqual(Array.from(all));
    }
  });
  test.each(listDevices())('creation and reads on %s: 2 bytes per element, values decoded to Float32Array', async (device) => {
    for (const dtype of HALVES) {
      expect(bytesPerElement(dtype)).toBe(2);
      const t = tensor([2.5], { dtype, device });
      expect(t.dtype).toBe(dtype);
      const data = await t.data();
      expect(data).toBeInstanceOf(Float32Array);
      expect(Array.from(data)).toEqual([2.5]);
      expect(await t.item()).toBe(2.5);
      expect(await tensor([[0.1, 1], [3, 65520]], { dtype, device }).tolist()).toEqual(
        dtype === 'float16' ? [[float16ToFloat32(0x2e66), 1], [3, Infinity]] : [[bfloat16ToFloat32(0x3dcd), 1], [3, 65536]]);
      const z = zeros([2], { dtype, device });
      expect(z.dtype).toBe(dtype);
      expect(Array.from(await z.data())).toEqual([0, 0]);
      expect(Array.from(await ones([3], { dtype, device }).data())).toEqual([1, 1, 1]);
      expect(Array.from(await full([2], 0.1, { dtype, device }).data())).toEqual(Array.from(await tensor([0.1, 0.1], { dtype, device }).data()));
      expect(randn([4], { dtype, device }).dtype).toBe(dtype);
      const v = fx.rounding.values.map(num);
      expect(await bitsOf(tensor(v, { dtype, device }))).toEqual(fx.rounding[dtype]);
      expect(await bitsOf(tensor(new Float32Array(v), { dtype, device }))).toEqual(fx.rounding[dtype]);
      expect(await bitsOf(fromBits(fx.rounding[dtype], dtype, [v.length], device))).toEqual(fx.rounding[dtype]);
      expect(tensor([1], { dtype, requiresGrad: true, device }).requiresGrad).toBe(true);
    }
    expect(() => tensor(new Uint16Array(2), { device })).toThrow(/tensor: a Uint16Array holds float16 or bfloat16 bits/);
  });
});

describe('casts', () => {
  test.each(listDevices())('every dtype pair round-trips values both hold (%s)', async (device) => {
    const dtypes = DTYPES.filter((d) => supportsDtype(device, d)); // webgpu: no float64
    for (const from of dtypes) {
      for (const to of dtypes) {
        const values = from === 'bool' || to === 'bool' ? [0, 1, 1, 0] : [0, 1, 2, 100];
        const x = tensor(values, { dtype: from, device });
        const y = x.to(to);
        expect(y.dtype, `${from} -> ${to}`).toBe(to);
        const back = y.to(from);
        expect(Array.from(await back.data()), `${from} -> ${to} -> ${from}`).toEqual(Array.from(await x.data()));
      }
    }
  });
  test.each(listDevices())('into and out of half types as torch (%s)', async (device) => {
    for (const dtype of HALVES) {
      for (const [from, c] of Object.entries(fx.fromOther) as ['int32' | 'float64', Fixture['fromOther']['int32']][]) {
        if (!supportsDtype(device, from)) continue; // webgpu: no float64
        expect(await bitsOf(tensor(c.values, { dtype: from, device }).to(dtype)), `${from} -> ${dtype}`).toEqual(c[dtype]);
      }
      expect(await bitsOf(tensor(fx.rounding.values.map(num), { dtype: 'float32', device }).to(dtype))).toEqual(fx.rounding[dtype]);
      const { bits, ...outs } = fx.toOther[dtype];
      const h = fromBits(bits, dtype, [bits.length], device);
      for (const [to, want] of Object.entries(outs)) {
        if (!supportsDtype(device, to as DType)) continue; // webgpu: no float64
        const got = Array.from(await h.to(to as DType).data());
        expect(got, `${dtype} -> ${to}`).toEqual(want.map(num));
      }
      const other = dtype === 'float16' ? 'bfloat16' : 'float16';
      expect(await bitsOf(h.to(other))).toEqual(await bitsOf(h.to('float32').to(other)));
    }
  });
});

describe('promotion', () => {
  test('promoteTypes equals torch.promote_types on every pair', () => {
    for (const [a, b, want] of fx.promotion) expect(promoteTypes(a, b), `${a} + ${b}`).toBe(want);
  });
  test.each(listDevices())('mixed operands follow it (%s)', (device) => {
    const h = tensor([1.5], { dtype: 'float16', device }), b = tensor([1.5], { dtype: 'bfloat16', device });
    const i = tensor([2], { device }), f = tensor([0.5], { device });
    expect(h.add(b).dtype).toBe('float32');
    expect(i.add(h).dtype).toBe('float16');
    expect(h.add(f).dtype).toBe('float32');
    expect(h.mul(2.5).dtype).toBe('float16');
    expect(b.add(1).dtype).toBe('bfloat16');
    expect(h.gt(b).dtype).toBe('bool');
  });
});

describe('half-precision ops equal torch (computed in float32, rounded once)', () => {
  // Elementwise arithmetic is bit-exact against torch. The rest is checked against torch's float32 result rounded
  // once (torch 1.13's own bfloat16 log_softmax / layer_norm round intermediates: up to 31 units apart), to one
  // unit in the last place (summation order, float32 libm).
  const EXACT = new Set(['add', 'sub', 'mul', 'div', 'mulScalar', 'addScalar', 'maximum', 'neg', 'abs', 'relu', 'transpose', 'gt']);
  const run: Record<string, (a: Tensor, b: Tensor, p: Tensor) => Tensor> = {
    add: (a, b) => a.add(b), sub: (a, b) => a.sub(b), mul: (a, b) => a.mul(b), div: (a, b) => a.div(b),
    mulScalar: (a) => a.mul(2.5), addScalar: (a) => a.add(0.1), maximum: (a, b) => a.maximum(b), neg: (a) => a.neg(), abs: (a) => a.abs(),
    exp: (a) => a.exp(), log: (_a, _b, p) => p.log(), sqrt: (_a, _b, p) => p.sqrt(), tanh: (a) => a.tanh(), sigmoid: (a) => a.sigmoid(),
    relu: (a) => a.relu(), gelu: (a) => a.gelu(), silu: (a) => a.silu(), sum1: (a) => a.sum(1), mean1: (a) => a.mean(1), max1: (a) => a.max(1),
    softmax: (a) => a.softmax(-1), logSoftmax: (a) => a.logSoftmax(-1),
    layerNorm: (a) => layerNorm(a, [6]),
    transpose: (a) => a.transpose(0, 1), gt: (a, b) => a.gt(b).to(a.dtype), matmul: (a, b) => a.matmul(b.transpose(0, 1)),
  };
  for (const device of listDevices()) {
    for (const dtype of HALVES) {
      test(`${dtype} on ${device}`, async () => {
        const c = fx.ops[dtype];
        const [a, b, p] = [c.a, c.b, c.p].map((bits) => fromBits(bits, dtype, c.shape, device)) as [Tensor, Tensor, Tensor];
        for (const [name, want] of Object.entries(c.out)) {
          const y = run[name]!(a, b, p);
          expect(y.dtype, name).toBe(dtype);
          expect(y.shape, name).toEqual(want.shape);
          const got = await bitsOf(y);
          if (EXACT.has(name)) expect(got, name).toEqual(want.bits);
          else {
            // One unit in the last place, or an absolute 1e-6 where torch's float32 math flushes a tiny value to 0.
            const decode = dtype === 'float16' ? float16ToFloat32 : bfloat16ToFloat32;
            got.forEach((g, i) => {
              const w = want.float32Rounded[i]!;
              const ok = Math.abs(g - w) <= 1 || Math.abs(decode(g) - decode(w)) <= 1e-6;
              expect(ok, `${name}[${i}]: 0x${g.toString(16)} vs torch 0x${w.toString(16)}`).toBe(true);
            });
          }
        }
      });
    }
  }
  test.each(listDevices())('gradients of float16 leaves are float16 (%s)', async (device) => {
    const x = fromBits(fx.grad.x, 'float16', [fx.grad.x.length], device).requiresGrad_();
    x.mul(x).mul(3).sum().backward();
    expect(fx.grad.dtype).toBe('float16');
    expect(x.grad!.dtype).toBe('float16');
    expect(await bitsOf(x.grad!)).toEqual(fx.grad.grad);
  });
});

describe('layers in half precision', () => {
  /** A small transformer-ish step: linear, attention, layer norm, cross-entropy, backward, AdamW. */
  function step(dtype: 'float32' | HalfDType, device: string, leaves: Tensor[]) {
    const [x, w, b] = leaves.map((t) => t.to(dtype).detach().requiresGrad_()) as [Tensor, Tensor, Tensor];
    const h = F.linear(x, w, b);
    const q = h.reshape([2, 2, 4, 4]);
    const att = F.scaledDotProductAttention(q, q.mul(0.5), q.add(1), { isCausal: true });
    const logits = layerNorm(att.reshape([8, 8]), [8]);
    const loss = F.crossEntropy(logits, tensor([0, 1, 2, 3, 4, 5, 6, 7], { device }));
    loss.backward();
    new AdamW([w, b], { lr: 0.1 }).step();
    return { loss, x, w, b };
  }
  test.each(listDevices())('forward, backward and an optimizer step keep the dtype and stay close to float32 (%s)', async (device) => {
    const leaves = [randn([2, 4, 8], { device }), randn([8, 8], { device }).mul(0.3), randn([8], { device })];
    const liveBuffers = (): number => (device === 'wasm' ? (getBackend(device) as WasmBackend).memoryStats().liveBuffers : 0);
    const rounded = leaves.map((t) => t.to('bfloat16')); // values every dtype holds exactly
    let live = liveBuffers();
    const ref = step('float32', device, rounded);
    const refLive = liveBuffers() - live;
    for (const dtype of HALVES) {
      live = liveBuffers();
      const r = step(dtype, device, rounded);
      // The float32 copies the kernels worked on were all freed: about as many live buffers as the float32 step
      // left (a leak would add one or more per kernel call, dozens here; a promotion cast may add one).
      expect(liveBuffers() - live).toBeLessThanOrEqual(refLive + 2);
      for (const t of [r.x.grad!, r.w.grad!, r.b.grad!, r.w, r.b]) expect(t.dtype).toBe(dtype);
      const tol = dtype === 'float16' ? 0.01 : 0.06;
      expect(Math.abs((await r.loss.item()) - (await ref.loss.item()))).toBeLessThan(tol * 3);
      for (const k of ['w', 'b'] as const) {
        const got = await r[k].grad!.data(), want = await ref[k].grad!.data();
        want.forEach((v, i) => expect(Math.abs(got[i]! - v), `${dtype} d${k}[${i}]`).toBeLessThan(tol * (1 + Math.abs(v))));
      }
    }
  });
});
