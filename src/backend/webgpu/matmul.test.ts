// The webgpu matmul kernels against the cpu backend: every transpose combination on sizes around the 64 and 128
// tiles and the vec4 alignment, batch strides (0 = broadcast), bias, k = 0, GEMV rows and n = 1, integer dtypes.

import { beforeAll, describe, expect, test } from 'vitest';
import { rng, testGpu } from '../../test-util/webgpu.js';
import { CpuBackend } from '../cpu/index.js';
import type { BackendBuffer, MatmulParams } from '../../tensor/backend.js';
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
    case 'int32': return Int32Array.from({ length: n }, () => Math.floor(r() * 2e6) - 1e6);
    default: return Uint8Array.from({ length: n }, () => Math.floor(r() * 256));
  }
}

/** The product on the cpu oracle and on webgpu from the same inputs; both read back. */
async function both(p: MatmulParams, dtype: DType, seed: number, withBias = false): Promise<[TypedArray, TypedArray]> {
  const sizeA = (p.strideA ? p.batch : 1) * p.m * p.k, sizeB = (p.strideB ? p.batch : 1) * p.k * p.n;
  const data = [randomData(dtype, sizeA, seed), randomData(dtype, sizeB, seed + 1), ...(withBias ? [randomData(dtype, p.n, seed + 2)] : [])];
  const run = (be: CpuBackend | WebGPUBackend): BackendBuffer => {
    const [a, b, bias] = data.map((d) => be.upload(d, dtype));
    return be.matmul(a!, b!, p, bias ?? null);
  };
  const want = await cpu.read(run(cpu));
  const got = await gpu.read(run(gpu));
  return [want, got];
}

function expectNear(got: TypedArray, want: TypedArray, atol: number, label: string): void {
  expect(got.length, label).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    const g = got[i]!, e = want[i]!;
    if (g === e || (Number.isNaN(e) && Number.isNaN(g))) continue;
    if (!(Math.abs(g - e) <= atol + 1e-5 * Math.abs(e))) expect.fail(`${label}: element ${i} is ${g}, expected ${e}`);
  }
}

const TRANSPOSES = [[false, false], [false, true], [true, false], [true, true]] as const;

describe('webgpu matmul', () => {
  test('every transpose combination on sizes around the tiles, the vec4 alignment and the GEMV rows', async () => {
    let seed = 1;
    for (const [m, n, k] of [[1, 1, 1], [2, 7, 5], [5, 3, 1], [9, 13, 7], [16, 16, 16], [65, 67, 130]] as const) {
      for (const [transA, transB] of TRANSPOSES) {
        const p: MatmulParams = { batch: 1, m, n, k, transA, transB, strideA: 0, strideB: 0 };
        const [want, got] = await both(p, 'float32', seed += 3);
        expectNear(got, want, 1e-5 * Math.sqrt(k) * 4, `m=${m} n=${n} k=${k} transA=${transA} transB=${transB}`);
      }
    }
  });

  test('the 128 x 128 tile (enough blocks to choose it): every transpose, aligned and odd sizes', async () => {
    let seed = 100;
    // batch 16 of 257 x 260 products gives 3 x 3 x 16 >= 64 blocks of 128; k = 36 and 37 test vec4 and scalar loads.
    for (const [m, n, k] of [[257, 260, 36], [260, 257, 37]] as const) {
      for (const [transA, transB] of k === 36 ? TRANSPOSES : [[false, false], [true, true]] as const) {
        const p: MatmulParams = { batch: 8, m, n, k, transA, transB, strideA: m * k, strideB: 0 };
        const [want, got] = await both(p, 'float32', seed += 3);
        expectNear(got, want, 1e-5 * Math.sqrt(k) * 4, `big tile m=${m} n=${n} k=${k} transA=${transA} transB=${transB}`);
      }
    }
  });

  test('batch strides: per-entry and broadcast (stride 0) operands on both sides, odd strides', async () => {
    let seed = 200;
    for (const m of [3, 20]) {
      const n = 11, k = 6, batch = 3;
      for (const [sa, sb] of [[m * k, k * n], [0, k * n], [m * k, 0], [0, 0]]) {
        for (const [transA, transB] of [[false, true], [true, false]] as const) {
          const p: MatmulParams = { batch, m, n, k, transA, transB, strideA: sa!, strideB: sb! };
          const [want, got] = await both(p, 'float32', seed += 3);
          expectNear(got, want, 1e-4, `batch strides ${sa}/${sb} m=${m} transA=${transA} transB=${transB}`);
        }
      }
    }
  });

  test('bias on every row: tiles, GEMV, n = 1, batches', async () => {
    let seed = 300;
    for (const [batch, m, n, k, transA, transB] of [
      [1, 9, 13, 5, false, false], [1, 70, 37, 19, true, false], [2, 1, 70, 19, false, true], [3, 17, 24, 33, false, true],
      [2, 3, 5, 4, true, true], [2, 40, 1, 9, true, false], [8, 130, 260, 20, false, true],
    ] as const) {
      const p: MatmulParams = { batch, m, n, k, transA, transB, strideA: m * k, strideB: 0 };
      const [want, got] = await both(p, 'float32', seed += 3, true);
      expectNear(got, want, 1e-4 * Math.sqrt(k + 1), `bias batch=${batch} m=${m} n=${n} k=${k} transA=${transA} transB=${transB}`);
    }
  });

  test('a 1 x k x n GEMV (decode) with long k, both layouts of B; n = 1 products', async () => {
    let seed = 400;
    for (const [m, n, k] of [[1, 300, 1000], [1, 5, 4099], [3, 40, 513], [700, 1, 50], [2, 1, 50]] as const) {
      for (const [transA, transB] of TRANSPOSES) {
        const p: MatmulParams = { batch: 1, m, n, k, transA, transB, strideA: 0, strideB: 0 };
        const [want, got] = await both(p, 'float32', seed += 3);
        expectNear(got, want, 1e-5 * Math.sqrt(k) * 4, `gemv m=${m} n=${n} k=${k} transA=${transA} transB=${transB}`);
      }
    }
  });

  test('k = 0 gives zeros, or the bias; empty outputs', async () => {
    const p: MatmulParams = { batch: 2, m: 5, n: 3, k: 0, transA: false, transB: false, strideA: 0, strideB: 0 };
    const none = new Float32Array(0);
    const z = gpu.matmul(gpu.upload(none, 'float32'), gpu.upload(none, 'float32'), p);
    expect(Array.from(await gpu.read(z))).toEqual(new Array(30).fill(0));
    const zb = gpu.matmul(gpu.upload(none, 'float32'), gpu.upload(none, 'float32'), { ...p, m: 70, n: 2 }, gpu.upload(Float32Array.from([1.5, -2]), 'float32'));
    expect(Array.from(await gpu.read(zb))).toEqual(Array.from({ length: 280 }, (_, i) => (i % 2 ? -2 : 1.5)));
    const empty = gpu.matmul(gpu.upload(none, 'float32'), gpu.upload(new Float32Array(12), 'float32'), { ...p, m: 0, k: 4 });
    expect((await gpu.read(empty)).length).toBe(0);
  });

  test('NaN and Inf propagate as on the cpu (0 * NaN is NaN)', async () => {
    const a = Float32Array.from([0, 1, 2, 3, 4, 5]), b = Float32Array.from([NaN, 1, 2, Infinity, 0, 1]);
    const p: MatmulParams = { batch: 1, m: 2, n: 2, k: 3, transA: false, transB: false, strideA: 0, strideB: 0 };
    const want = await cpu.read(cpu.matmul(cpu.upload(a, 'float32'), cpu.upload(b, 'float32'), p));
    const got = await gpu.read(gpu.matmul(gpu.upload(a, 'float32'), gpu.upload(b, 'float32'), p));
    expect(Array.from(got)).toEqual(Array.from(want));
  });

  test('int32 (wrapping) and uint8 (low 8 bits) products are exact, with and without bias', async () => {
    let seed = 500;
    for (const dtype of ['int32', 'uint8'] as const) {
      for (const [batch, m, n, k, sa] of [[2, 5, 6, 7, 35], [1, 1, 9, 30, 0], [1, 70, 66, 40, 0], [2, 9, 1, 4, 36]] as const) {
        for (const [transA, transB] of TRANSPOSES) {
          const bias = transA === transB;
          const p: MatmulParams = { batch, m, n, k, transA, transB, strideA: sa, strideB: 0 };
          const [want, got] = await both(p, dtype, seed += 3, bias);
          expect(Array.from(got), `${dtype} m=${m} n=${n} k=${k} transA=${transA} transB=${transB} bias=${bias}`).toEqual(Array.from(want));
        }
      }
    }
  });

  test('bad input: bool and mixed dtypes are refused with a clear error', () => {
    const p: MatmulParams = { batch: 1, m: 1, n: 1, k: 1, transA: false, transB: false, strideA: 0, strideB: 0 };
    const x = gpu.upload(Uint8Array.from([1]), 'bool');
    expect(() => gpu.matmul(x, x, p)).toThrow(/matmul of bool tensors is not supported/);
    expect(() => gpu.matmul(gpu.upload(Float32Array.from([1]), 'float32'), gpu.upload(Int32Array.from([1]), 'int32'), p)).toThrow(/share one dtype/);
  });
});
