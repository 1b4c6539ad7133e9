// Kernel tests of the webgpu reductions (sum / max / min, argmax / argmin, cumsum) against the cpu backend: axis
// positions and lengths around the workgroup and serial thresholds, NaN / Inf, ties, int32 / uint8 / bool, size 0.

import { beforeAll, describe, expect, test } from 'vitest';
import { expectNear, rng, testGpu } from '../../test-util/webgpu.js';
import type { ArgReduceOp, BackendBuffer, ReduceOp } from '../../tensor/backend.js';
import type { DType, TypedArray } from '../../tensor/dtype.js';
import { CpuBackend } from '../cpu/index.js';
import type { WebGPUBackend } from './backend.js';

const cpu = new CpuBackend();
let gpu: WebGPUBackend;

beforeAll(async () => {
  gpu = await testGpu();
});

/** Random data of a dtype; integers from a small range, so that ties are common. */
function randomData(dtype: DType, n: number, seed: number): TypedArray {
  const r = rng(seed);
  switch (dtype) {
    case 'float32': return Float32Array.from({ length: n }, () => r() * 4 - 2);
    case 'int32': return Int32Array.from({ length: n }, () => Math.floor(r() * 200) - 100);
    case 'bool': return Uint8Array.from({ length: n }, () => (r() < 0.5 ? 1 : 0));
    default: return Uint8Array.from({ length: n }, () => Math.floor(r() * 7));
  }
}

/** Runs fn on the cpu and on webgpu with the same input; returns both outputs read back. */
async function both(data: TypedArray, dtype: DType, fn: (b: CpuBackend | WebGPUBackend, x: BackendBuffer) => BackendBuffer): Promise<[TypedArray, TypedArray]> {
  const want = cpu.readSync(fn(cpu, cpu.upload(data, dtype)));
  const x = gpu.upload(data, dtype);
  const out = fn(gpu, x);
  const got = await gpu.read(out);
  gpu.free(x);
  gpu.free(out);
  return [want, got];
}

/** [outer, size, inner] shapes: inner 1 (rows), narrow and wide inner, sizes around SERIAL (16) and the lanes (256 / C). */
const SHAPES: [number, number, number][] = [
  [1, 1, 1], [3, 5, 1], [2, 16, 3], [2, 17, 1], [4, 300, 1], [1, 1000, 1], [3, 33, 7], [2, 70, 32], [2, 20, 45], [1, 9, 1000], [5, 257, 2],
  [1, 5000, 1], [2, 2100, 40], // split into chunks of the axis, then reduced again
];

describe('webgpu reductions', () => {
  test.each(['sum', 'max', 'min'] as const)('reduce %s, float32 / int32 / uint8, every shape', async (op: ReduceOp) => {
    for (const dtype of ['float32', 'int32', 'uint8'] as const) {
      for (const [o, s, i] of SHAPES) {
        const [want, got] = await both(randomData(dtype, o * s * i, o * 31 + s * 7 + i), dtype, (b, x) => b.reduce(op, x, o, s, i));
        if (dtype === 'float32') expectNear(got, want, 1e-5 * Math.sqrt(s), 1e-5, `${op} ${dtype} [${o}, ${s}, ${i}]`);
        else expect(Array.from(got), `${op} ${dtype} [${o}, ${s}, ${i}]`).toEqual(Array.from(want));
      }
    }
  });

  test('max / min propagate NaN; infinities; a NaN-free column keeps its value', async () => {
    for (const s of [5, 200, 3000]) {
      const x = randomData('float32', 3 * s * 2, s) as Float32Array;
      x[(0 * s + s - 1) * 2] = NaN; // outer 0, column 0: NaN at the end
      x[(1 * s + 3) * 2 + 1] = Infinity; // outer 1, column 1
      x[(2 * s + 1) * 2] = -Infinity;
      x[(2 * s + 2) * 2 + 1] = NaN;
      for (const op of ['sum', 'max', 'min'] as const) {
        const [want, got] = await both(x, 'float32', (b, t) => b.reduce(op, t, 3, s, 2));
        expect(Number.isNaN(got[0]!), `${op} size ${s}`).toBe(true);
        expectNear(got, want, 1e-4, 1e-5, `${op} NaN/Inf size ${s}`);
      }
    }
  });

  test('int32 sums wrap as the cpu kernel stores them; bool / uint8 max; empty axis and empty output', async () => {
    const big = Int32Array.from({ length: 40 }, (_, k) => (k % 2 ? 2 ** 31 - 1 : 2 ** 30));
    const [want, got] = await both(big, 'int32', (b, x) => b.reduce('sum', x, 1, 40, 1));
    expect(Array.from(got)).toEqual(Array.from(want));
    for (const op of ['max', 'min'] as const) {
      const [w2, g2] = await both(randomData('bool', 3 * 40, 5), 'bool', (b, x) => b.reduce(op, x, 3, 40, 1));
      expect(Array.from(g2)).toEqual(Array.from(w2));
    }
    for (const dtype of ['float32', 'int32'] as const) {
      for (const op of ['sum', 'max', 'min'] as const) {
        for (const s of [0, 20]) {
          const [w3, g3] = await both(new (dtype === 'int32' ? Int32Array : Float32Array)(0), dtype, (b, x) => b.reduce(op, x, 2, 0, s));
          expect(Array.from(g3)).toEqual(Array.from(w3));
          const [w4, g4] = await both(new (dtype === 'int32' ? Int32Array : Float32Array)(0), dtype, (b, x) => b.reduce(op, x, 3, s, 0));
          expect(Array.from(g4)).toEqual(Array.from(w4));
        }
        // An empty reduced axis: sum 0, float max / min -Inf / Inf, integers 0 (as the cpu kernel stores them).
        const [w5, g5] = await both(new (dtype === 'int32' ? Int32Array : Float32Array)(0), dtype, (b, x) => b.reduce(op, x, 2, 0, 3));
        expect(Array.from(g5), `${op} ${dtype} empty axis`).toEqual(Array.from(w5));
      }
    }
  });

  test.each(['argmax', 'argmin'] as const)('%s: first of ties, first NaN, every shape and dtype', async (op: ArgReduceOp) => {
    for (const dtype of ['float32', 'int32', 'uint8'] as const) {
      for (const [o, s, i] of SHAPES) {
        const data = randomData(dtype, o * s * i, o + s * 3 + i * 11);
        if (dtype === 'float32') for (let k = 0; k < data.length; k++) data[k] = Math.round(data[k]! * 2) / 2; // ties
        const [want, got] = await both(data, dtype, (b, x) => b.argReduce(op, x, o, s, i));
        expect(got).toBeInstanceOf(Int32Array);
        expect(Array.from(got), `${op} ${dtype} [${o}, ${s}, ${i}]`).toEqual(Array.from(want));
      }
    }
    for (const s of [6, 300]) {
      const x = Float32Array.from({ length: 4 * s }, (_, k) => k % 3);
      x[s + 4] = NaN;
      x[s + s - 1] = NaN; // row 1: the first NaN (4) wins
      x[2 * s + 2] = -Infinity;
      x[3 * s + 1] = Infinity;
      x[3 * s + s - 2] = Infinity;
      const [want, got] = await both(x, 'float32', (b, t) => b.argReduce(op, t, 4, s, 1));
      expect(got[1]).toBe(4);
      expect(Array.from(got), `${op} NaN / Inf size ${s}`).toEqual(Array.from(want));
    }
    const allInf = new Float32Array(50).fill(op === 'argmax' ? -Infinity : Infinity);
    const [w2, g2] = await both(allInf, 'float32', (b, t) => b.argReduce(op, t, 1, 50, 1));
    expect(Array.from(g2)).toEqual(Array.from(w2));
  });

  test('cumsum forward and reverse, float32 / int32 / uint8, every shape, NaN / Inf', async () => {
    for (const reverse of [false, true]) {
      for (const dtype of ['float32', 'int32', 'uint8'] as const) {
        for (const [o, s, i] of [...SHAPES, [2, 0, 3], [1, 600, 3]] as [number, number, number][]) {
          const [want, got] = await both(randomData(dtype, o * s * i, s + i), dtype, (b, x) => b.cumsum(x, o, s, i, reverse));
          const label = `cumsum ${dtype} [${o}, ${s}, ${i}] reverse ${reverse}`;
          if (dtype === 'float32') expectNear(got, want, 1e-5 * Math.sqrt(s), 1e-5, label);
          else expect(Array.from(got), label).toEqual(Array.from(want));
        }
      }
      const x = randomData('float32', 2 * 100, 9) as Float32Array;
      x[30] = NaN;
      x[150] = Infinity;
      const [want, got] = await both(x, 'float32', (b, t) => b.cumsum(t, 2, 100, 1, reverse));
      expectNear(got, want, 1e-4, 1e-5, `cumsum NaN / Inf reverse ${reverse}`);
    }
  });
});
