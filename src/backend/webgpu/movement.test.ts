// Kernel tests of the webgpu strided copies against the cpu backend: permutes, expands (stride 0), slices with offsets
// and steps, every dtype's raw words, size 0, sizes off the workgroup, ranks beyond the parameter block, last-write-wins.

import { beforeAll, describe, expect, test } from 'vitest';
import { testGpu } from '../../test-util/webgpu.js';
import type { BackendBuffer } from '../../tensor/backend.js';
import type { DType, TypedArray } from '../../tensor/dtype.js';
import { sizeOf, stridesOf, type Shape } from '../../tensor/shape.js';
import { CpuBackend } from '../cpu/index.js';
import type { WebGPUBackend } from './backend.js';

const cpu = new CpuBackend();
let gpu: WebGPUBackend;

beforeAll(async () => {
  gpu = await testGpu();
});

/** Distinct values per element (so that a wrong index shows), of each dtype; float16 as bits with NaN / Inf / subnormals. */
function data(dtype: DType, n: number): TypedArray {
  switch (dtype) {
    case 'float32': return Float32Array.from({ length: n }, (_, i) => (i % 97 === 5 ? NaN : i * 0.25 - 100));
    case 'int32': return Int32Array.from({ length: n }, (_, i) => i * 7919 - 2 ** 30);
    case 'float16':
    case 'bfloat16': return Uint16Array.from({ length: n }, (_, i) => (i * 40503) & 0xffff);
    default: return Uint8Array.from({ length: n }, (_, i) => (dtype === 'bool' ? i % 3 === 0 ? 1 : 0 : (i * 31) & 0xff));
  }
}

async function bits(b: CpuBackend | WebGPUBackend, x: BackendBuffer): Promise<number[]> {
  const a = await b.read(x);
  return Array.from(a instanceof Float32Array ? new Uint32Array(a.buffer, a.byteOffset, a.length) : a);
}

/** stridedCopy on both backends from the same source; the words must be equal. */
async function expectCopy(dtype: DType, srcSize: number, shape: Shape, strides: number[], offset: number): Promise<void> {
  const src = data(dtype, srcSize);
  const want = cpu.stridedCopy(cpu.upload(src, dtype), shape, strides, offset);
  const x = gpu.upload(src, dtype);
  const got = gpu.stridedCopy(x, shape, strides, offset);
  expect(got.dtype).toBe(dtype);
  expect(got.size).toBe(sizeOf(shape));
  expect(await bits(gpu, got), `${dtype} [${shape}] strides [${strides}] offset ${offset}`).toEqual(await bits(cpu, want));
  gpu.free(x);
  gpu.free(got);
}

/** stridedWrite of a fresh source into a destination filled with `fill`, on both backends. */
async function expectWrite(dtype: DType, dstSize: number, shape: Shape, strides: number[], offset: number): Promise<void> {
  const src = data(dtype, sizeOf(shape));
  const results: number[][] = [];
  for (const b of [cpu, gpu] as const) {
    const dst = b.fill(dtype, dstSize, 3);
    const s = b.upload(src, dtype);
    b.stridedWrite(dst, s, shape, strides, offset);
    results.push(await bits(b, dst));
  }
  expect(results[1], `${dtype} write [${shape}] strides [${strides}] offset ${offset}`).toEqual(results[0]);
}

describe('webgpu stridedCopy', () => {
  test('permutes, expands, slices with offsets and steps, for every dtype (raw words)', async () => {
    for (const dtype of ['float32', 'int32', 'float16', 'bfloat16', 'uint8', 'bool'] as const) {
      await expectCopy(dtype, 2 * 3 * 4, [4, 2, 3], [1, 12, 4], 0); // permute (2, 0, 1) of [2, 3, 4]
      await expectCopy(dtype, 7, [3, 5, 7], [0, 0, 1], 0); // expand
      await expectCopy(dtype, 100, [3, 4], [20, 3], 7); // slice with steps and an offset
    }
  });

  test('sizes around the workgroup, size 0, scalars, contiguous copies', async () => {
    for (const n of [0, 1, 255, 256, 257, 1000, 4099]) await expectCopy('float32', n, [n], [1], 0);
    await expectCopy('int32', 10, [], [], 9);
    await expectCopy('int32', 10, [0, 5], [5, 1], 0);
    await expectCopy('float32', 600 * 37, [37, 600], [1, 37], 0); // a large transpose
    await expectCopy('float32', 3000, [2, 1, 1, 3, 1], [1000, 5, 0, 7, 1], 11); // size-1 dims with odd strides
  });

  test('ranks beyond the parameter block (21 dimensions that cannot merge)', async () => {
    const shape = Array.from({ length: 21 }, () => 2);
    // Reversed axes: no two neighbours merge, so the layout travels in a storage buffer.
    const strides = stridesOf(shape).reverse();
    await expectCopy('int32', 2 ** 21, shape, strides, 0);
  });
});

describe('webgpu stridedWrite', () => {
  test('writes into strided views (pad, concat halves, steps), other elements untouched', async () => {
    for (const dtype of ['float32', 'int32', 'float16', 'uint8', 'bool'] as const) {
      await expectWrite(dtype, 6 * 7, [4, 5], [7, 1], 8); // pad [4, 5] into [6, 7]
      await expectWrite(dtype, 2 * 10, [2, 4], [10, 2], 1); // odd positions of each row
    }
    await expectWrite('float32', 0, [0, 3], [3, 1], 0);
    await expectWrite('float32', 5000, [5000], [1], 0);
  });

  test('stride-0 dimensions: the last source element wins, as the sequential reference', async () => {
    await expectWrite('float32', 4, [3, 4], [0, 1], 0);
    await expectWrite('int32', 10, [2, 5, 3], [5, 1, 0], 0);
    await expectWrite('int32', 1, [7], [0], 0);
  });
});
