// The webgpu im2col / col2im kernels against the cpu backend: strides, padding (with a pad value), dilation,
// overlapping and skipped taps, 1 x 1 and whole-image windows, integer dtypes; col2im must equal im2col's adjoint.

import { beforeAll, describe, expect, test } from 'vitest';
import { rng, testGpu } from '../../test-util/webgpu.js';
import { CpuBackend } from '../cpu/index.js';
import type { WindowParams } from '../../tensor/backend.js';
import type { DType, TypedArray } from '../../tensor/dtype.js';
import type { WebGPUBackend } from './backend.js';

const cpu = new CpuBackend();
let gpu: WebGPUBackend;
beforeAll(async () => {
  gpu = await testGpu();
});

function randomData(dtype: DType, n: number, seed: number): TypedArray {
  const r = rng(seed);
  switch (dtype) {
    case 'float32': return Float32Array.from({ length: n }, () => r() * 4 - 2);
    case 'int32': return Int32Array.from({ length: n }, () => Math.floor(r() * 2e9) - 1e9);
    default: return Uint8Array.from({ length: n }, () => Math.floor(r() * 256));
  }
}

/** Window geometry with the output size PyTorch's unfold gives. */
function geometry(batch: number, channels: number, height: number, width: number, k: [number, number], stride: [number, number], pad: [number, number], dil: [number, number]): WindowParams {
  const outH = Math.floor((height + 2 * pad[0] - dil[0] * (k[0] - 1) - 1) / stride[0]) + 1;
  const outW = Math.floor((width + 2 * pad[1] - dil[1] * (k[1] - 1) - 1) / stride[1]) + 1;
  return { batch, channels, height, width, kernelH: k[0], kernelW: k[1], strideH: stride[0], strideW: stride[1], padH: pad[0], padW: pad[1], dilationH: dil[0], dilationW: dil[1], outH, outW };
}

const GEOMETRIES: WindowParams[] = [
  geometry(2, 3, 5, 7, [3, 3], [1, 1], [1, 1], [1, 1]), // overlapping taps, padding
  geometry(1, 2, 8, 6, [2, 3], [2, 1], [0, 2], [1, 1]), // stride on one side, padding wider than half the kernel
  geometry(1, 1, 9, 9, [3, 2], [2, 3], [1, 0], [2, 2]), // dilation and stride: some pixels are never read
  geometry(3, 4, 4, 4, [1, 1], [1, 1], [0, 0], [1, 1]), // 1 x 1: a copy
  geometry(1, 2, 3, 5, [3, 5], [1, 1], [0, 0], [1, 1]), // one window over the whole image
  geometry(2, 1, 6, 5, [2, 2], [3, 3], [1, 1], [1, 1]), // stride larger than the kernel
];

describe('webgpu sliding windows', () => {
  test('im2col equals the cpu for float32 (pad values 0 and -inf), int32 and uint8', async () => {
    let seed = 1;
    for (const p of GEOMETRIES) {
      for (const [dtype, pad] of [['float32', 0], ['float32', -Infinity], ['int32', -7], ['uint8', 3]] as const) {
        const x = randomData(dtype, p.batch * p.channels * p.height * p.width, seed++);
        const want = await cpu.read(cpu.im2col(cpu.upload(x, dtype), p, pad));
        const got = await gpu.read(gpu.im2col(gpu.upload(x, dtype), p, pad));
        expect(Array.from(got), `${dtype} pad ${pad} ${JSON.stringify(p)}`).toEqual(Array.from(want));
      }
    }
  });

  test('col2im equals the cpu (float32 bit for bit: the same summation order), int32 (wrapping) and uint8', async () => {
    let seed = 100;
    for (const p of GEOMETRIES) {
      for (const dtype of ['float32', 'int32', 'uint8'] as const) {
        const cols = randomData(dtype, p.batch * p.channels * p.kernelH * p.kernelW * p.outH * p.outW, seed++);
        const want = await cpu.read(cpu.col2im(cpu.upload(cols, dtype), p));
        const got = await gpu.read(gpu.col2im(gpu.upload(cols, dtype), p));
        expect(Array.from(got), `${dtype} ${JSON.stringify(p)}`).toEqual(Array.from(want));
      }
    }
  });

  test('col2im is the adjoint of im2col: <im2col(x), c> = <x, col2im(c)>', async () => {
    const p = geometry(2, 3, 7, 6, [3, 2], [2, 1], [1, 1], [1, 2]);
    const nx = p.batch * p.channels * p.height * p.width, nc = p.batch * p.channels * p.kernelH * p.kernelW * p.outH * p.outW;
    const x = randomData('float32', nx, 7), c = randomData('float32', nc, 8);
    const ix = await gpu.read(gpu.im2col(gpu.upload(x, 'float32'), p, 0));
    const tc = await gpu.read(gpu.col2im(gpu.upload(c, 'float32'), p));
    let lhs = 0, rhs = 0;
    for (let i = 0; i < nc; i++) lhs += ix[i]! * c[i]!;
    for (let i = 0; i < nx; i++) rhs += x[i]! * tc[i]!;
    expect(Math.abs(lhs - rhs)).toBeLessThan(1e-4 * Math.sqrt(nc));
  });

  test('empty windows give empty outputs; float64 is refused when stored', async () => {
    const p = geometry(0, 3, 4, 4, [2, 2], [1, 1], [0, 0], [1, 1]);
    expect((await gpu.read(gpu.im2col(gpu.upload(new Float32Array(0), 'float32'), p, 0))).length).toBe(0);
    expect((await gpu.read(gpu.col2im(gpu.upload(new Float32Array(0), 'float32'), p))).length).toBe(0);
    expect(() => gpu.upload(new Float64Array(4), 'float64')).toThrow(/float64/);
  });
});
