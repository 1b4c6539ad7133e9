// Rotary position embedding: PyTorch's values and gradients (transformers' formula), the fused kernel against the
// composed ops on every backend that has it, finite differences, and the errors.

import { afterEach, describe, expect, test, vi } from 'vitest';
import '../../index.js';
import { getBackend, listDevices } from '../../tensor/backend.js';
import { randn } from '../../tensor/create.js';
import type { DType } from '../../tensor/dtype.js';
import { manualSeed } from '../../tensor/random.js';
import type { Tensor } from '../../tensor/tensor.js';
import { supportsDtype } from '../../test-util/devices.js';
import { expectClose, fromFixture, opCase } from '../../test-util/fixtures.js';
import { gradcheck } from '../gradcheck.js';
import { add, cos as cosOp, mul, sin as sinOp } from './elementwise.js';
import { cat, reshape, transpose, unsqueeze } from './movement.js';
import { applyRotary, rotaryHeads, rotateHalf } from './rotary.js';

afterEach(() => vi.restoreAllMocks());

/** The definition, op by op (what the fused kernel must equal). */
const composed = (x: Tensor, c: Tensor, s: Tensor): Tensor => add(mul(x, c), mul(rotateHalf(x), s));

/** cos / sin as LLaMA builds them: angles position * frequency, the two halves equal; [B|1, 1, T, hs]. */
function llamaCosSin(B: number, T: number, hs: number, device: string, dtype: DType = 'float32'): [Tensor, Tensor] {
  const freqs = randn([B, T, hs / 2], { device, dtype });
  const emb = unsqueeze(cat([freqs, freqs], -1), 1);
  return [cosOp(emb), sinOp(emb)];
}

for (const device of listDevices()) {
  describe(`rotary position embedding on ${device}`, () => {
    for (const [name, fn] of [
      ['rotary', (x: Tensor, c: Tensor, s: Tensor) => applyRotary(x, c, s)],
      ['rotary_heads', (x: Tensor, c: Tensor, s: Tensor) => rotaryHeads(x, 3, c, s)],
    ] as const) {
      test(`${name}: value and gradient equal PyTorch's`, async () => {
        const c = opCase(name);
        const x = fromFixture(c.inputs[0]!, device, 'float32', true);
        const [cs, sn] = c.inputs.slice(1).map((f) => fromFixture(f, device));
        const y = fn(x, cs!, sn!);
        expect(y.shape).toEqual(c.output.shape);
        expectClose(await y.data(), c.output.data, 2e-5, 1e-4, `${name} value`);
        y.mul(fromFixture({ shape: c.output.shape, dtype: 'float32', data: c.probe! }, device)).sum().backward();
        expectClose(await x.grad!.data(), c.grads![0]!, 2e-4, 1e-3, `${name} gradient`);
      });
    }

    // hs 6: scalar rows only; hs 20: two SIMD groups of four and a tail of two in each half.
    for (const [B, H, T, hs, batchedCos] of [[2, 3, 5, 6, false], [2, 2, 7, 20, true], [1, 4, 1, 64, false]] as const) {
      for (const dtype of ['float32', 'float64', 'float16'] as const) {
        test.skipIf(!supportsDtype(device, dtype))(`[${B}, ${H}, ${T}, ${hs}] ${dtype}${batchedCos ? ', cos per batch row' : ''}: the fused op equals the composed one`, async () => {
          manualSeed(11);
          const [c, s] = llamaCosSin(batchedCos ? B : 1, T, hs, device, dtype);
          const proj = randn([B, T, H * hs], { device, dtype, requiresGrad: true });
          const probe = randn([B, H, T, hs], { device, dtype });
          const run = async (f: (p: Tensor) => Tensor) => {
            proj.grad = null;
            const y = f(proj);
            y.mul(probe).sum().backward();
            return [Array.from(await y.data()), Array.from(await proj.grad!.data())];
          };
          const fused = await run((p) => rotaryHeads(p, H, c, s));
          // [B, T, H * hs] -> [B, T, H, hs] -> [B, H, T, hs]
          const ref = await run((p) => composed(transpose(reshape(p, [B, T, H, hs]), 1, 2), c, s));
          // float32 / float64: the same roundings in the same order (a GPU compiler may contract a product and a sum into
          // one fma). float16: the fused op rounds once, the composition after every op.
          const tol = dtype === 'float16' ? 2e-3 : device === 'webgpu' ? 1e-6 : 0;
          fused.forEach((a, i) => expectClose(a, ref[i]!, tol, tol, `${dtype} tensor ${i}`));
          const viaHeads = await run((p) => applyRotary(transpose(reshape(p, [B, T, H, hs]), 1, 2), c, s));
          viaHeads.forEach((a, i) => expectClose(a, ref[i]!, tol, tol, `applyRotary ${dtype} tensor ${i}`));
        });
      }
    }

    test('a model-shaped call runs the kernel: one rope forward, one backward', () => {
      const spy = vi.spyOn(getBackend(device), 'rope');
      const [c, s] = llamaCosSin(1, 3, 8, device);
      rotaryHeads(randn([2, 3, 16], { device, requiresGrad: true }), 2, c, s).sum().backward();
      expect(spy.mock.calls.map((a) => a[3].inverse)).toEqual([false, true]);
    });

    test('cos and sin that need a gradient get one (the composed path)', async () => {
      manualSeed(2);
      const x = randn([1, 2, 3, 4], { device });
      const c = randn([1, 1, 3, 4], { device, requiresGrad: true }), s = randn([1, 1, 3, 4], { device, requiresGrad: true });
      applyRotary(x, c, s).sum().backward();
      // d/dc sum(x c + rot(x) s) = sum over heads of x; d/ds = sum over heads of rot(x)
      expectClose(await c.grad!.data(), Array.from(await x.sum(1, true).data()), 1e-5, 1e-5, 'dcos');
      expectClose(await s.grad!.data(), Array.from(await rotateHalf(x).sum(1, true).data()), 1e-5, 1e-5, 'dsin');
    });

    test('bad input: odd head size, heads that do not divide, cos and sin of two shapes, wrong rank', () => {
      const [c, s] = llamaCosSin(1, 2, 4, device);
      expect(() => applyRotary(randn([1, 1, 2, 5], { device }), c, s)).toThrow('applyRotary: the head size (last dimension of [1, 1, 2, 5]) must be even');
      expect(() => rotaryHeads(randn([1, 2, 12], { device }), 5, c, s)).toThrow('rotaryHeads: [1, 2, 12] does not split into 5 heads of an even size');
      expect(() => rotaryHeads(randn([1, 2, 6], { device }), 2, c, s)).toThrow('rotaryHeads: [1, 2, 6] does not split into 2 heads of an even size');
      expect(() => applyRotary(randn([1, 1, 2, 4], { device }), c, s.reshape([2, 4]))).toThrow('applyRotary: cos [1, 1, 2, 4] and sin [2, 4] must have one shape');
      expect(() => applyRotary(randn([2, 4], { device }), c, s)).toThrow('applyRotary: expected x with 4 dimensions ([B, H, T, hs]), got [2, 4]');
      expect(() => applyRotary(randn([1, 1, 3, 4], { device }), c, s)).toThrow(/shapes \[1, 1, 2, 4\] and \[1, 1, 3, 4\] cannot be broadcast/);
    });
  });
}

test('finite differences (float64, cpu): the gradient of x, and of cos and sin', () => {
  manualSeed(4);
  const [c, s] = [randn([2, 1, 3, 6], { dtype: 'float64' }), randn([2, 1, 3, 6], { dtype: 'float64' })];
  gradcheck((x) => rotaryHeads(x, 2, c, s), [randn([2, 3, 12], { dtype: 'float64' })]);
  gradcheck((x, cc, ss) => applyRotary(x!, cc!, ss!), [randn([2, 2, 3, 6], { dtype: 'float64' }), c, s]);
});
