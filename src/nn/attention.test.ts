// MultiheadAttention's attention weights (needWeights / averageAttnWeights) against torch.nn.MultiheadAttention; KVCache:
// buffers with room to grow written in place, read as tensors (update, key, value) or in place by attention (append +
// kvLength); crop, reorder, the gradient path, bad input. On every device.

import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import '../index.js';
import { attention } from '../autograd/ops/attention.js';
import { noGrad } from '../autograd/engine.js';
import { add, cast, mul } from '../autograd/ops/elementwise.js';
import { cat, narrow } from '../autograd/ops/movement.js';
import { sum } from '../autograd/ops/reduce.js';
import { listDevices } from '../tensor/backend.js';
import { randn, tensor } from '../tensor/create.js';
import { manualSeed } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';
import { expectClose, type FixtureTensor } from '../test-util/fixtures.js';
import { KVCache, MultiheadAttention } from './attention.js';

interface WeightsCase {
  average: boolean;
  state: Record<string, FixtureTensor>;
  inputs: FixtureTensor[];
  output: FixtureTensor;
  weights: FixtureTensor;
  probe_output: FixtureTensor;
  probe_weights: FixtureTensor;
  input_grads: (FixtureTensor | null)[];
  param_grads: Record<string, FixtureTensor>;
}

const cases = (JSON.parse(readFileSync(new URL('../../test/data/mha_weights.json', import.meta.url), 'utf8')) as { cases: Record<string, WeightsCase> }).cases;
const D = 8, H = 2;

const toTensor = (f: FixtureTensor, device: string, requiresGrad = false): Tensor =>
  tensor(f.data.map(Number), { shape: f.shape, dtype: f.dtype, device, requiresGrad });

type Call = (m: MultiheadAttention, inputs: Tensor[], average: boolean) => [Tensor, Tensor | null];
const calls: Record<string, Call> = {
  self_causal_averaged: (m, [x, c], a) => m.forward(x!, x!, x!, { attnMask: c, averageAttnWeights: a }),
  cross_padding_per_head: (m, [q, kv, p], a) => m.forward(q!, kv!, kv!, { keyPaddingMask: p, averageAttnWeights: a }),
  cross_additive_averaged: (m, [q, kv, am], a) => m.forward(q!, kv!, kv!, { attnMask: am, averageAttnWeights: a }),
};

for (const device of listDevices()) {
  describe(`MultiheadAttention weights on ${device} match torch.nn`, () => {
    for (const [name, call] of Object.entries(calls)) {
      test(name, async () => {
        const c = cases[name]!;
        const m = new MultiheadAttention(D, H);
        m.loadStateDict(Object.fromEntries(Object.entries(c.state).map(([k, v]) => [k, toTensor(v, 'cpu')]))); // the module is on cpu until to(device)
        m.eval().to(device);
        const inputs = c.inputs.map((f) => toTensor(f, device, f.dtype === 'float32' && f.shape.length === 3));
        const [y, w] = call(m, inputs, c.average);
        expect(w).not.toBeNull();
        expect(w!.shape).toEqual(c.weights.shape);
        expectClose(await y.data(), c.output.data, 2e-5, 1e-4, `${name} output`);
        expectClose(await w!.data(), c.weights.data, 2e-5, 1e-4, `${name} weights`);
        add(sum(mul(y, toTensor(c.probe_output, device))), sum(mul(w!, toTensor(c.probe_weights, device)))).backward();
        for (const [i, g] of c.input_grads.entries()) {
          if (g) expectClose(await inputs[i]!.grad!.data(), g.data, 2e-4, 1e-3, `${name} grad of input ${i}`);
        }
        const params = Object.fromEntries(m.namedParameters());
        for (const [k, g] of Object.entries(c.param_grads)) expectClose(await params[k]!.grad!.data(), g.data, 2e-4, 1e-3, `${name} grad of ${k}`);
      });
    }

    test('needWeights false returns null and the same output (the fused path)', async () => {
      manualSeed(1);
      const m = new MultiheadAttention(D, H).to(device);
      const x = randn([2, 5, D], { device });
      const [a, wa] = m.forward(x, x, x, { isCausal: true });
      const [b, wb] = m.forward(x, x, x, { isCausal: true, needWeights: false });
      expect(wa!.shape).toEqual([2, 5, 5]);
      expect(wb).toBeNull();
      expectClose(await a.data(), Array.from(await b.data()), 1e-5, 1e-4, 'weights path vs fused path');
      // every row of the weights is a distribution over the keys it may see
      expectClose(await sum(wa!, -1).data(), new Array<number>(10).fill(1), 1e-5, 0, 'row sums');
      const [, perHead] = m.forward(x, x, x, { averageAttnWeights: false });
      expect(perHead!.shape).toEqual([2, H, 5, 5]);
    });
    test('a float16 module stays float16 with a bool mask: weights path, fused path, and dropout in training', async () => {
      manualSeed(2);
      const m = new MultiheadAttention(D, H).to(device);
      const x = randn([2, 5, D], { device });
      const causal = tensor(Array.from({ length: 5 }, (_, i) => Array.from({ length: 5 }, (_, j) => j > i)), { device });
      const [ref] = m.forward(x, x, x, { attnMask: causal, needWeights: false });
      const want = Array.from(await ref.data());
      m.half();
      const xh = cast(x, 'float16');
      const [a, w] = m.forward(xh, xh, xh, { attnMask: causal });
      const [b] = m.forward(xh, xh, xh, { attnMask: causal, needWeights: false });
      expect([a.dtype, w!.dtype, b.dtype]).toEqual(['float16', 'float16', 'float16']);
      expectClose(await a.data(), want, 1e-2, 1e-2, 'float16 weights path vs float32');
      expectClose(await b.data(), want, 1e-2, 1e-2, 'float16 fused path vs float32');
      const drop = new MultiheadAttention(D, H, { dropout: 0.5 }).to(device).half().train();
      expect(drop.forward(xh, xh, xh, { attnMask: causal, needWeights: false })[0].dtype).toBe('float16');
    });
    test('masks of the wrong shape are errors naming MultiheadAttention', () => {
      const m = new MultiheadAttention(D, H).to(device);
      const x = randn([2, 5, D], { device });
      expect(() => m.forward(x, x, x, { attnMask: randn([5, 4], { device }) })).toThrow(/MultiheadAttention: attnMask must be \[5, 5\] or \[4, 5, 5\] \(batch \* heads\), got \[5, 4\]/);
      expect(() => m.forward(x, x, x, { keyPaddingMask: randn([2, 4], { device }) })).toThrow(/MultiheadAttention: keyPaddingMask must be \[2, 5\], got \[2, 4\]/);
    });
  });
}

for (const device of listDevices()) {
  describe(`KVCache on ${device}`, () => {
    test('appends of 3, then 1 at a time: the keys are every step\'s, the buffer doubles when full', async () => {
      manualSeed(1);
      const c = new KVCache();
      const steps = [randn([2, 3, 3, 4], { device }), ...Array.from({ length: 6 }, () => randn([2, 3, 1, 4], { device }))];
      const capacities: number[] = [];
      noGrad(() => {
        for (const s of steps) capacities.push(c.append(s, s.mul(2)).key.shape[2]!);
      });
      expect(capacities).toEqual([3, 6, 6, 6, 12, 12, 12]);
      expect(c.length).toBe(9);
      const all = cat(steps, 2);
      expect(await c.key!.tolist()).toEqual(await all.tolist());
      expect(await c.value!.tolist()).toEqual(await all.mul(2).tolist());
      // update returns the same as key / value
      const [k] = noGrad(() => c.update(steps[1]!, steps[1]!));
      expect(k.shape).toEqual([2, 3, 10, 4]);
      c.dispose();
      expect(c.length).toBe(0);
    });

    test('crop, then append: the new positions replace the dropped ones', async () => {
      const c = new KVCache();
      const a = tensor(Array.from({ length: 8 }, (_, i) => i), { shape: [1, 1, 4, 2], device });
      const b = tensor([[[[100, 101]]]], { device });
      noGrad(() => {
        c.append(a, a);
        c.crop(2);
        c.append(b, b);
      });
      expect(await c.key!.tolist()).toEqual([[[[0, 1], [2, 3], [100, 101]]]]);
    });

    test('reorder keeps batch rows in the given order', async () => {
      const c = new KVCache();
      const a = tensor([[[[1, 1]]], [[[2, 2]]]], { device });
      noGrad(() => {
        c.append(a, a);
        c.append(a, a); // capacity 2 -> room for more after this
        c.reorder(tensor([1, 1, 0], { dtype: 'int32', device }));
      });
      expect(await c.key!.tolist()).toEqual([[[[2, 2], [2, 2]]], [[[2, 2], [2, 2]]], [[[1, 1], [1, 1]]]]);
    });

    test('with gradients the cache is rebuilt by cat, and the gradient reaches every appended step', async () => {
      const c = new KVCache();
      const a = randn([1, 2, 2, 4], { device, requiresGrad: true }), b = randn([1, 2, 1, 4], { device, requiresGrad: true });
      c.append(a, a);
      const { key, length } = c.append(b, b);
      expect(length).toBe(3);
      key.sum().backward();
      expectClose(await a.grad!.data(), new Array(16).fill(1), 0, 0, 'grad a');
      expectClose(await b.grad!.data(), new Array(8).fill(1), 0, 0, 'grad b');
    });

    test('attention reads the first length positions in place: equal to attention on a copy of them', async () => {
      manualSeed(2);
      const c = new KVCache();
      const q = randn([1, 2, 1, 4], { device });
      for (const T of [3, 1, 1, 1]) noGrad(() => c.append(randn([1, 2, T, 4], { device }), randn([1, 2, T, 4], { device })));
      const r = noGrad(() => c.append(randn([1, 2, 1, 4], { device }), randn([1, 2, 1, 4], { device })));
      expect([r.key.shape[2], r.length]).toEqual([12, 7]); // room left: the in-place read is what is tested
      const inPlace = noGrad(() => attention(q, r.key, r.value, { causal: true, kvLength: r.length }));
      const copied = noGrad(() => attention(q, narrow(r.key, 2, 0, r.length), narrow(r.value, 2, 0, r.length), { causal: true }));
      expectClose(await inPlace.data(), Array.from(await copied.data()), 1e-6, 1e-6, 'attention');
    });

    test('bad input: keys of another shape, a kvLength past the keys', () => {
      const c = new KVCache();
      noGrad(() => c.append(randn([1, 2, 1, 4], { device }), randn([1, 2, 1, 4], { device })));
      expect(() => noGrad(() => c.append(randn([1, 3, 1, 4], { device }), randn([1, 3, 1, 4], { device })))).toThrow(/KVCache: keys \[1, 3, 1, 4\] float32 on \w+ do not fit the cache's \[1, 2, 1, 4\] float32/);
      const q = randn([1, 2, 1, 4], { device }), k = randn([1, 2, 3, 4], { device });
      expect(() => attention(q, k, k, { kvLength: 4 })).toThrow('attention: kvLength must be an integer from 0 to 3 (the keys\' length), got 4');
    });
  });
}
