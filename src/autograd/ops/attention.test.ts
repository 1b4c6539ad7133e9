// The fused attention kernel against the composed path (bmm + softmax) on every backend that has it.

import { describe, expect, test } from 'vitest';
import '../../index.js';
import { getBackend, listDevices } from '../../tensor/backend.js';
import { randn, tensor } from '../../tensor/create.js';
import { manualSeed } from '../../tensor/random.js';
import { noGrad } from '../engine.js';
import type { Tensor } from '../../tensor/tensor.js';
import { supportsDtype } from '../../test-util/devices.js';
import { expectClose } from '../../test-util/fixtures.js';
import { describeOps } from '../../test-util/op-check.js';
import { attention, attentionPacked, attentionProbs, type AttentionOpOptions } from './attention.js';
import { bmm } from './matmul.js';
import { reshape, split, transpose } from './movement.js';

function composed(q: Tensor, k: Tensor, v: Tensor, o: AttentionOpOptions = {}): Tensor {
  const [B, H, T] = q.shape as [number, number, number];
  const S = k.shape[2]!, hv = v.shape[3]!;
  return reshape(bmm(reshape(attentionProbs(q, k, o), [B * H, T, S]), reshape(v, [B * H, S, hv])), [B, H, T, hv]);
}

const cases: [string, number, number, AttentionOpOptions | ((d: string) => AttentionOpOptions)][] = [
  ['plain', 4, 4, {}],
  ['causal, queries are the last 3 of 6 positions', 3, 6, { causal: true }],
  ['padding bias with an empty row, custom scale', 3, 4, (d) => ({ scale: 0.3, bias: tensor([[[[0, 0, -Infinity, 0]], [[-Infinity, -Infinity, -Infinity, -Infinity]]]], { device: d }).reshape([2, 1, 1, 4]) })],
];

for (const device of listDevices().filter((d) => getBackend(d).attention)) {
  describe(`fused attention on ${device}`, () => {
    for (const [name, T, S, o] of cases) {
      test(name, async () => {
        manualSeed(5);
        const opts = typeof o === 'function' ? o(device) : o;
        const mk = (l: number, d: number) => randn([2, 2, l, d], { device, requiresGrad: true });
        const [q, k, v] = [mk(T, 4), mk(S, 4), mk(S, 3)];
        const probe = randn([2, 2, T, 3], { device });
        const run = async (f: typeof attention) => {
          [q, k, v].forEach((t) => { t.grad = null; });
          const out = f(q, k, v, opts);
          out.mul(probe).sum().backward();
          return Promise.all([out, q.grad!, k.grad!, v.grad!].map(async (t) => Array.from(await t.data())));
        };
        const fused = await run(attention), ref = await run(composed);
        fused.forEach((a, i) => expectClose(a, ref[i]!, 1e-5, 1e-4, `${name} tensor ${i}`));
        expect(fused[0]!.every(Number.isFinite)).toBe(true);
      });
    }
  });
}

for (const device of listDevices().filter((d) => getBackend(d).attention)) {
  describe(`fused attention of one or two query rows without a backward (generation) on ${device}`, () => {
    // [T, S, hs, hv, options]: head sizes off the SIMD width, a causal row that sees one key, an empty row.
    const few: [number, number, number, number, AttentionOpOptions | ((d: string) => AttentionOpOptions)][] = [
      [1, 9, 5, 3, { causal: true }],
      [2, 7, 8, 6, { causal: true, scale: 0.3 }],
      [2, 2, 4, 4, { causal: true }],
      [1, 4, 4, 4, (d) => ({ bias: tensor([[[[0, -Infinity, 0, 0]]], [[[-Infinity, -Infinity, -Infinity, -Infinity]]]], { device: d }) })],
    ];
    for (const [T, S, hs, hv, o] of few) {
      test(`T ${T}, S ${S}, head sizes ${hs} / ${hv}`, async () => {
        manualSeed(9);
        const opts = typeof o === 'function' ? o(device) : o;
        const [q, k, v] = [randn([2, 2, T, hs], { device }), randn([2, 2, S, hs], { device }), randn([2, 2, S, hv], { device })];
        const [fused, ref] = noGrad(() => [attention(q, k, v, opts), composed(q, k, v, opts)]);
        expectClose(await fused!.data(), Array.from(await ref!.data()), 1e-5, 1e-4, 'output');
      });
    }
  });
}

describe.each(listDevices())('attention over the first kvLength keys (a cache with room to grow) on %s', (device) => {
  test('equal to attention on a copy of them, with a padding bias; with a gradient, the unused keys get 0', async () => {
    manualSeed(12);
    const q = randn([2, 2, 2, 4], { device, requiresGrad: true });
    const k = randn([2, 2, 9, 4], { device, requiresGrad: true }), v = randn([2, 2, 9, 3], { device, requiresGrad: true });
    const bias = tensor([0, -Infinity, 0, 0, 0], { device }).reshape([1, 1, 1, 5]);
    const opts = { causal: true, bias };
    const inPlace = noGrad(() => attention(q, k, v, { ...opts, kvLength: 5 }));
    const copied = composed(q, k.narrow(2, 0, 5), v.narrow(2, 0, 5), opts);
    expectClose(await inPlace.data(), Array.from(await copied.data()), 1e-5, 1e-4, 'forward');
    attention(q, k, v, { ...opts, kvLength: 5 }).sum().backward();
    const gk = await k.grad!.reshape([4, 9, 4]).tolist() as number[][][];
    expect(gk.every((head) => head.slice(5).every((row) => row.every((x) => x === 0)))).toBe(true);
    expect(gk.some((head) => head.slice(0, 5).some((row) => row.some((x) => x !== 0)))).toBe(true);
  });
});

/** attentionPacked by hand: split the projection, heads forward, composed attention, heads back. */
function packedComposed(qkv: Tensor, heads: number, o: AttentionOpOptions): Tensor {
  const [B, T, C3] = qkv.shape as [number, number, number];
  const C = C3 / 3;
  const [q, k, v] = split(qkv, C, 2).map((t) => transpose(reshape(t, [B, T, heads, C / heads]), 1, 2)) as [Tensor, Tensor, Tensor];
  return reshape(transpose(composed(q, k, v, o), 1, 2), [B, T, C]);
}

const packedCases: [string, number, number, number, AttentionOpOptions | ((d: string) => AttentionOpOptions)][] = [
  // name, T, heads, head size, options
  ['causal, head size 4 (partial vector tiles)', 5, 2, 4, { causal: true }],
  ['causal, 70 positions (two query blocks), head size 8', 70, 3, 8, { causal: true }],
  ['not causal, custom scale', 6, 2, 5, { scale: 0.4 }],
  ['causal with a padding bias and an empty row', 4, 2, 4, (d) => ({ causal: true, bias: tensor([[0, -Infinity, 0, 0], [-Infinity, -Infinity, -Infinity, -Infinity]], { device: d }).reshape([2, 1, 1, 4]) })],
];

for (const device of listDevices()) {
  describe(`attention from a packed qkv projection on ${device}`, () => {
    for (const [name, T, H, hs, o] of packedCases) {
      for (const dtype of ['float32', 'float64'] as const) test.skipIf(!supportsDtype(device, dtype))(`${name} (${dtype})`, async () => {
        manualSeed(7);
        const opts = typeof o === 'function' ? o(device) : o;
        const qkv = randn([2, T, 3 * H * hs], { device, dtype, requiresGrad: true });
        const probe = randn([2, T, H * hs], { device, dtype });
        const run = async (f: (x: Tensor) => Tensor) => {
          qkv.grad = null;
          const out = f(qkv);
          out.mul(probe).sum().backward();
          return Promise.all([out, qkv.grad!].map(async (t) => Array.from(await t.data())));
        };
        const fused = await run((x) => attentionPacked(x, H, opts)), ref = await run((x) => packedComposed(x, H, opts));
        fused.forEach((a, i) => expectClose(a, ref[i]!, 1e-5, 1e-4, `${name} tensor ${i}`));
        expect(fused[0]!.every(Number.isFinite)).toBe(true);
      });
    }
    test('rejects a projection that does not split into heads', () => {
      expect(() => attentionPacked(randn([1, 2, 10], { device }), 2)).toThrow(/attentionPacked: expected qkv \[B, T, 3 \* heads \* headSize\] with 2 heads, got \[1, 2, 10\]/);
    });
  });
}

describeOps('packed attention against PyTorch', {
  attention_packed_causal: (qkv) => attentionPacked(qkv, 2, { causal: true }),
});

describe.each(listDevices())('self-attention with one tensor as q, k and v on %s', (device) => {
  test('value and gradient equal the composed path (the operands share one buffer)', async () => {
    manualSeed(3);
    const x = randn([2, 2, 5, 4], { device, requiresGrad: true });
    const r = randn([2, 2, 5, 4], { device });
    const fused = attention(x, x, x, { causal: true });
    fused.mul(r).sum().backward();
    const x2 = x.detach().clone().requiresGrad_();
    const ref2 = composed(x2, x2, x2, { causal: true });
    ref2.mul(r).sum().backward();
    expectClose(await fused.data(), Array.from(await ref2.data()), 1e-5, 1e-5, 'self-attention value');
    expectClose(await x.grad!.data(), Array.from(await x2.grad!.data()), 1e-5, 1e-4, 'self-attention gradient');
  });
});
