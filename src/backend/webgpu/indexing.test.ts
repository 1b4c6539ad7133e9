// Kernel tests of the webgpu indexing (indexSelect, indexAdd, gather, scatterAdd) against the cpu backend.

import { beforeAll, describe, expect, test } from 'vitest';
import { rng, testGpu } from '../../test-util/webgpu.js';
import type { BackendBuffer } from '../../tensor/backend.js';
import type { DType, TypedArray } from '../../tensor/dtype.js';
import { CpuBackend } from '../cpu/index.js';
import type { WebGPUBackend } from './backend.js';

const cpu = new CpuBackend();
let gpu: WebGPUBackend;
beforeAll(async () => {
  gpu = await testGpu();
}, 60_000);

function randomData(dtype: DType, n: number, seed: number): TypedArray {
  const r = rng(seed);
  switch (dtype) {
    case 'float32': return Float32Array.from({ length: n }, () => r() * 4 - 2);
    case 'int32': return Int32Array.from({ length: n }, () => Math.floor(r() * 200) - 100);
    default: return Uint8Array.from({ length: n }, () => Math.floor(r() * (dtype === 'bool' ? 2 : 256)));
  }
}
function randomIndices(n: number, size: number, seed: number): Int32Array {
  const r = rng(seed);
  return Int32Array.from({ length: n }, () => Math.floor(r() * size));
}

type Kernel = (b: CpuBackend | WebGPUBackend, x: BackendBuffer, idx: BackendBuffer) => BackendBuffer;

/** Runs fn on the cpu and the webgpu backend with the same inputs; returns both outputs read back. */
async function both(x: TypedArray, dtype: DType, idx: Int32Array, fn: Kernel): Promise<[TypedArray, TypedArray]> {
  const want = await cpu.read(fn(cpu, cpu.upload(x, dtype), cpu.upload(idx, 'int32')));
  const gx = gpu.upload(x, dtype), gi = gpu.upload(idx, 'int32');
  const out = fn(gpu, gx, gi);
  const got = await gpu.read(out);
  for (const b of [gx, gi, out]) gpu.free(b);
  return [want, got];
}

/** Exact equality, element by element (the sums add in the cpu backend's order, so floats agree bit for bit). */
function expectSame(got: TypedArray, want: TypedArray, label: string): void {
  expect(got.constructor, label).toBe(want.constructor);
  expect(got.length, label).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    if (!Object.is(got[i], want[i])) expect.fail(`${label}: element ${i} is ${got[i]}, expected ${want[i]}`);
  }
}

/** Shapes [outer, size, inner, m]: sizes off the workgroup of 256, inner 1, one row, and a column count past it. */
const SHAPES: [number, number, number, number][] = [[1, 7, 1, 5], [3, 5, 4, 9], [2, 11, 300, 13], [4, 6, 5, 3], [1, 50, 17, 257], [700, 3, 1, 4], [5, 1, 3, 6]];
const DTYPES: DType[] = ['float32', 'int32', 'uint8', 'bool'];

describe('webgpu indexing kernels vs the cpu backend', () => {
  test('indexSelect and indexAdd (with duplicate indices), every dtype', async () => {
    let seed = 1;
    for (const dtype of DTYPES) {
      for (const [outer, size, inner, m] of SHAPES) {
        const label = `${dtype} [${outer}, ${size}, ${inner}] m=${m}`;
        const idx = randomIndices(m, size, seed++);
        let [want, got] = await both(randomData(dtype, outer * size * inner, seed++), dtype, idx, (b, x, i) => b.indexSelect(x, i, outer, size, inner, 'indexSelect'));
        expectSame(got, want, `indexSelect ${label}`);
        [want, got] = await both(randomData(dtype, outer * m * inner, seed++), dtype, idx, (b, s, i) => b.indexAdd(s, i, outer, size, inner, 'embedding'));
        expectSame(got, want, `indexAdd ${label}`);
      }
    }
  }, 60_000);

  test('gather and scatterAdd (with duplicate indices), every dtype', async () => {
    let seed = 100;
    for (const dtype of DTYPES) {
      for (const [outer, size, inner, m] of SHAPES) {
        const label = `${dtype} [${outer}, ${size}, ${inner}] m=${m}`;
        const idx = randomIndices(outer * m * inner, size, seed++);
        let [want, got] = await both(randomData(dtype, outer * size * inner, seed++), dtype, idx, (b, x, i) => b.gather(x, i, outer, size, inner, m, 'gather'));
        expectSame(got, want, `gather ${label}`);
        [want, got] = await both(randomData(dtype, outer * m * inner, seed++), dtype, idx, (b, s, i) => b.scatterAdd(s, i, outer, size, inner, m, 'scatterAdd'));
        expectSame(got, want, `scatterAdd ${label}`);
      }
    }
  }, 60_000);

  test('both shapes of the sums: per column (many columns) and per output element (few columns, long index)', async () => {
    // [1, 40, 20000] m = 3 and [2, 5, 9000] m = 30 run one invocation per column; [1, 3, 2] m = 2000 and
    // [2, 4, 3] m = 1500 one per output element. Few rows: every output sums many sources, in the cpu backend's order.
    const cases = [[1, 40, 20000, 3, 'float32'], [2, 5, 9000, 30, 'float32'], [2, 5, 9000, 30, 'uint8'], [1, 3, 2, 2000, 'float32'], [2, 4, 3, 1500, 'int32']] as const;
    for (const [outer, size, inner, m, dtype] of cases) {
      const label = `${dtype} [${outer}, ${size}, ${inner}] m=${m}`;
      let [want, got] = await both(randomData(dtype, outer * m * inner, 7), dtype, randomIndices(m, size, 8), (b, s, i) => b.indexAdd(s, i, outer, size, inner, 'embedding'));
      expectSame(got, want, `indexAdd ${label}`);
      [want, got] = await both(randomData(dtype, outer * m * inner, 9), dtype, randomIndices(outer * m * inner, size, 10), (b, s, i) => b.scatterAdd(s, i, outer, size, inner, m, 'scatterAdd'));
      expectSame(got, want, `scatterAdd ${label}`);
    }
  }, 60_000);

  test('empty index, empty outer and inner: empty outputs, zero sums', async () => {
    const none = new Int32Array(0);
    let [want, got] = await both(randomData('float32', 12, 1), 'float32', none, (b, x, i) => b.indexSelect(x, i, 3, 4, 1, 'indexSelect'));
    expectSame(got, want, 'indexSelect, no index');
    [want, got] = await both(new Float32Array(0), 'float32', none, (b, s, i) => b.indexAdd(s, i, 3, 4, 2, 'embedding'));
    expectSame(got, want, 'indexAdd, no index');
    expect(Array.from(got)).toEqual(new Array(24).fill(0));
    [want, got] = await both(new Float32Array(0), 'float32', none, (b, s, i) => b.scatterAdd(s, i, 2, 5, 3, 0, 'scatterAdd'));
    expectSame(got, want, 'scatterAdd, m = 0');
    [want, got] = await both(new Float32Array(0), 'float32', none, (b, x, i) => b.gather(x, i, 0, 5, 3, 2, 'gather'));
    expectSame(got, want, 'gather, outer = 0');
  });

  test('negative zero sums like the cpu backend (0 + -0 = +0)', async () => {
    const [want, got] = await both(Float32Array.of(-0, -0, 1), 'float32', Int32Array.of(0, 0, 1), (b, s, i) => b.indexAdd(s, i, 1, 2, 1, 'embedding'));
    expectSame(got, want, 'indexAdd of -0');
  });

  test('out-of-range and negative indices: the cpu message for the first bad index, thrown at the next read', async () => {
    const cases: [string, Int32Array, number, Kernel][] = [
      ['indexSelect', Int32Array.of(1, 4, -1, 7), 4, (b, x, i) => b.indexSelect(x, i, 2, 4, 3, 'indexSelect')],
      ['embedding', Int32Array.of(0, -2, 9), 4, (b, s, i) => b.indexAdd(s, i, 2, 4, 3, 'embedding')],
      ['gather', Int32Array.of(0, 1, 2, 3, 3, 2, 5, 0, -3, 1, 2, 3), 4, (b, x, i) => b.gather(x, i, 2, 4, 3, 2, 'gather')],
      ['scatterAdd', Int32Array.of(0, 1, 2, 3, 3, 2, 1, 0, 1, 1, 2, 4), 4, (b, s, i) => b.scatterAdd(s, i, 2, 4, 3, 2, 'scatterAdd')],
      ['indexSelect', Int32Array.of(0), 0, (b, x, i) => b.indexSelect(x, i, 2, 0, 3, 'indexSelect')],
    ];
    for (const [op, idx, size, fn] of cases) {
      const x = randomData('float32', 24, 3);
      let message = '';
      try {
        fn(cpu, cpu.upload(x, 'float32'), cpu.upload(idx, 'int32'));
      } catch (e) {
        message = (e as Error).message;
      }
      expect(message).toMatch(new RegExp(`^${op}: index -?\\d+ is out of range for a dimension of size ${size}$`));
      const gx = gpu.upload(x, 'float32'), gi = gpu.upload(idx, 'int32');
      const out = fn(gpu, gx, gi); // queued: the check runs on the device
      await expect(gpu.read(out)).rejects.toThrow(message);
      // The error is reported once: the device keeps working, and a later read succeeds.
      const zero = gpu.upload(Int32Array.of(0), 'int32');
      const ok = gpu.indexSelect(gx, zero, 1, 1, 1, 'indexSelect');
      expect(Array.from(await gpu.read(ok))).toEqual([x[0]]);
      for (const b of [gx, gi, out, zero, ok]) gpu.free(b);
    }
  }, 30_000);
});
