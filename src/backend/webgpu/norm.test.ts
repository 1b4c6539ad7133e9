// Kernel tests of the webgpu row kernels against the cpu backend: (log-)softmax and its gradient, layer / RMS norm
// with and without affine parameters and their gradients (weight sums over several row chunks), cross-entropy
// (ignored rows, NaN rows, the out-of-range target error) and its gradient; rows off the workgroup size, empty rows.

import { beforeAll, describe, expect, test } from 'vitest';
import { expectNear, testGpu } from '../../test-util/webgpu.js';
import type { BackendBuffer } from '../../tensor/backend.js';
import type { TypedArray } from '../../tensor/dtype.js';
import { CpuBackend } from '../cpu/index.js';
import type { WebGPUBackend } from './backend.js';

const cpu = new CpuBackend();
let gpu: WebGPUBackend;

beforeAll(async () => {
  gpu = await testGpu();
});

/** Deterministic pseudo-random float32 in [-scale, scale) (an LCG), so failures reproduce. */
function rand(n: number, seed: number, scale = 2): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s / 2 ** 32 * 2 - 1) * scale;
  });
}

type Input = Float32Array | Int32Array;
type Be = CpuBackend | WebGPUBackend;

/** Runs fn on the cpu and on webgpu with the same inputs (null stays null); returns every output of both, read back. */
async function both(inputs: (Input | null)[], fn: (b: Be, xs: (BackendBuffer | null)[]) => BackendBuffer[]): Promise<[TypedArray[], TypedArray[]]> {
  const up = (b: Be) => inputs.map((d) => (d ? b.upload(d, d instanceof Int32Array ? 'int32' : 'float32') : null));
  const want = fn(cpu, up(cpu)).map((o) => cpu.readSync(o));
  const xs = up(gpu);
  const outs = fn(gpu, xs);
  const got: TypedArray[] = [];
  for (const o of outs) got.push(await gpu.read(o));
  for (const b of [...xs, ...outs]) if (b) gpu.free(b);
  return [want, got];
}

function expectAll(got: TypedArray[], want: TypedArray[], atol: number, label: string): void {
  want.forEach((w, k) => expectNear(got[k]!, w, atol, 1e-4, `${label} output ${k}`));
}

/** [rows, cols]: one column, rows shorter / longer than the workgroup, several passes per thread, empty. */
const SHAPES: [number, number][] = [[1, 1], [3, 7], [2, 256], [4, 257], [2, 1000], [0, 5], [3, 0]];

describe('webgpu row kernels', () => {
  test('softmax and log-softmax, their gradients', async () => {
    for (const log of [false, true]) {
      for (const [r, c] of SHAPES) {
        const label = `${log ? 'log-' : ''}softmax [${r}, ${c}]`;
        const x = rand(r * c, r * 100 + c, 8);
        const [want, got] = await both([x], (b, [t]) => [b.softmax(t!, r, c, log)]);
        expectAll(got, want, 1e-6, label);
        const [wantG, gotG] = await both([want[0] as Float32Array, rand(r * c, c + 1)], (b, [y, dy]) => [b.softmaxGrad(y!, dy!, r, c, log)]);
        expectAll(gotG, wantG, 1e-5 * Math.sqrt(c), `${label} grad`);
      }
    }
  });

  test('softmax: a fully masked row (NaN, log -Inf-based as the cpu), a NaN row, +Inf, huge logits', async () => {
    const c = 300;
    const x = rand(4 * c, 3, 8);
    x.fill(-Infinity, 0, c); // row 0 masked
    x[c + 17] = NaN; // row 1
    x[2 * c + 5] = Infinity; // row 2
    for (let j = 0; j < c; j++) x[3 * c + j] = 1e30 * (j % 3); // row 3: would overflow without the max shift
    for (const log of [false, true]) {
      const [want, got] = await both([x], (b, [t]) => [b.softmax(t!, 4, c, log)]);
      expect(Number.isNaN(got[0]![c + 1]!)).toBe(true);
      expectAll(got, want, 1e-6, `softmax log=${log} special rows`);
    }
  });

  test('layer norm with / without weight and bias, and its gradient (weight sums over several row chunks)', async () => {
    for (const [r, c] of [...SHAPES, [600, 40], [300, 3]] as [number, number][]) {
      for (const [hasW, hasB] of [[true, true], [false, false], [true, false], [false, true]]) {
        const label = `layerNorm [${r}, ${c}] w=${hasW} b=${hasB}`;
        const x = rand(r * c, r + c * 7, 3), w = hasW ? rand(c, 5) : null, bias = hasB ? rand(c, 6) : null;
        for (let k = 0; k < x.length; k++) x[k]! += 10; // an offset: the two-pass variance must not cancel
        const [want, got] = await both([x, w, bias], (b, [t, ww, bb]) => {
          const o = b.layerNorm(t!, ww, bb, r, c, 1e-5);
          return [o.y, o.mean, o.rstd];
        });
        expectAll(got, want, 1e-5, label);
        const dy = rand(r * c, 77);
        const [wantG, gotG] = await both([x, w, want[1] as Float32Array, want[2] as Float32Array, dy], (b, [t, ww, mu, rs, d]) => {
          const o = b.layerNormGrad(t!, ww, mu!, rs!, d!, r, c);
          return [o.dx, o.dweight, o.dbias];
        });
        expectAll(gotG, wantG, 1e-5 * Math.sqrt(Math.max(r, c)), `${label} grad`);
      }
    }
  });

  test('RMS norm with / without weight, and its gradient', async () => {
    for (const [r, c] of [...SHAPES, [600, 40]] as [number, number][]) {
      for (const hasW of [true, false]) {
        const label = `rmsNorm [${r}, ${c}] w=${hasW}`;
        const x = rand(r * c, r * 3 + c, 3), w = hasW ? rand(c, 9) : null;
        const [want, got] = await both([x, w], (b, [t, ww]) => {
          const o = b.rmsNorm(t!, ww, r, c, 1e-6);
          return [o.y, o.rstd];
        });
        expectAll(got, want, 1e-5, label);
        const [wantG, gotG] = await both([x, w, want[1] as Float32Array, rand(r * c, 41)], (b, [t, ww, rs, d]) => {
          const o = b.rmsNormGrad(t!, ww, rs!, d!, r, c);
          return [o.dx, o.dweight];
        });
        expectAll(gotG, wantG, 1e-5 * Math.sqrt(Math.max(r, c)), `${label} grad`);
      }
    }
  });

  test('cross-entropy: loss and lse, ignored rows (also with NaN logits), and its gradient', async () => {
    for (const [r, c] of [[1, 1], [5, 7], [3, 300], [4, 1000], [0, 4]] as [number, number][]) {
      const x = rand(r * c, r + c, 6);
      const target = Int32Array.from({ length: r }, (_, k) => (k === 1 ? -100 : (k * 37) % c));
      if (r > 1) x[c + 2] = NaN; // the ignored row: loss 0, gradient NaN where the logit is NaN (0 * softmax)
      const [want, got] = await both([x, target], (b, [t, y]) => {
        const o = b.crossEntropy!(t!, y!, r, c, -100, 'cross_entropy');
        return [o.loss, o.lse];
      });
      expectAll(got, want, 1e-5, `crossEntropy [${r}, ${c}]`);
      if (r > 1) expect(got[0]![1]).toBe(0);
      const [wantG, gotG] = await both([x, target, want[1] as Float32Array, rand(r, 8)], (b, [t, y, l, d]) => [b.crossEntropyGrad!(t!, y!, l!, d!, r, c, -100)]);
      expectAll(gotG, wantG, 1e-6, `crossEntropyGrad [${r}, ${c}]`);
      if (r > 1) expect(Number.isNaN(gotG[0]![c + 2]!)).toBe(true);
    }
  });

  test('cross-entropy: a target out of range is the cpu error, at the next read; the backend works on after it', async () => {
    for (const bad of [5, -1, 1 << 20]) {
      const target = new Int32Array([0, bad, 2]);
      const message = `nll_loss: index ${bad} is out of range for a dimension of size 5`;
      expect(() => cpu.crossEntropy(cpu.upload(rand(15, 1), 'float32'), cpu.upload(target, 'int32'), 3, 5, -100, 'nll_loss')).toThrow(message);
      const { loss, lse } = gpu.crossEntropy(gpu.upload(rand(15, 1), 'float32'), gpu.upload(target, 'int32'), 3, 5, -100, 'nll_loss');
      await expect(gpu.read(loss)).rejects.toThrow(message);
      gpu.free(loss);
      gpu.free(lse);
    }
    const { loss } = gpu.crossEntropy(gpu.upload(new Float32Array([0, 0]), 'float32'), gpu.upload(new Int32Array([1]), 'int32'), 1, 2, -100, 'nll_loss');
    expectNear(await gpu.read(loss), new Float32Array([Math.log(2)]), 1e-6, 1e-6, 'after an error');
  });
});
