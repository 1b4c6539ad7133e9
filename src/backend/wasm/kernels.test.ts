// Direct kernel tests of the wasm backend against the reference backend, for what the op tests do not
// reach: GEMM shapes around the tile sizes, transposes and broadcast batches, threaded sizes, integer
// dtypes, broadcast patterns, strided walks, index errors, and the single-threaded build.

import { afterAll, describe, expect, test } from 'vitest';
import { CpuBackend } from '../cpu/index.js';
import type { AttentionParams, BackendBuffer, BinaryOp, MatmulParams, UnaryOp } from '../../tensor/backend.js';
import type { DType, TypedArray } from '../../tensor/dtype.js';
import { sizeOf, type Shape } from '../../tensor/shape.js';
import { createWasmBackend } from './init.js';
import { GEMM_KC, GEMM_MC } from './kernels.js';
import type { WasmBackend, WasmBuffer } from './backend.js';

const cpu = new CpuBackend();
const threaded = await createWasmBackend({ threads: 2 });
const single = await createWasmBackend({ threads: 1, relaxedSimd: false });
afterAll(() => {
  threaded.terminate();
  single.terminate();
});

/** Deterministic pseudo-random numbers (an LCG), so failures reproduce. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}
function randomData(dtype: DType, n: number, seed: number): TypedArray {
  const r = rng(seed);
  switch (dtype) {
    case 'float32': return Float32Array.from({ length: n }, () => r() * 4 - 2);
    case 'int32': return Int32Array.from({ length: n }, () => Math.floor(r() * 200) - 100);
    default: return Uint8Array.from({ length: n }, () => Math.floor(r() * 7));
  }
}

/** Runs fn on the reference and on a wasm backend with the same inputs; returns both outputs read back. */
function both(w: WasmBackend, inputs: [TypedArray, DType][], fn: (b: CpuBackend | WasmBackend, xs: BackendBuffer[]) => BackendBuffer): [TypedArray, TypedArray] {
  const ref = fn(cpu, inputs.map(([d, t]) => cpu.upload(d, t)));
  const xs = inputs.map(([d, t]) => w.upload(d, t));
  const out = fn(w, xs);
  const got = w.readSync(out);
  for (const x of new Set([...xs, out])) w.free(x as WasmBuffer);
  return [cpu.readSync(ref), got];
}

function expectNear(got: TypedArray, want: TypedArray, atol: number, rtol: number, label: string): void {
  expect(got.length, label).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    const g = got[i]!, e = want[i]!;
    if (g === e || (Number.isNaN(e) && Number.isNaN(g))) continue;
    if (!(Math.abs(g - e) <= atol + rtol * Math.abs(e))) expect.fail(`${label}: element ${i} is ${g}, expected ${e}`);
  }
}

describe.each([['threaded', threaded], ['single-threaded', single]] as const)('wasm kernels (%s)', (_, w) => {
  test('GEMM at sizes around the 4x8 tile, the row block and the K block, all transposes', () => {
    const sizes = [1, 3, 4, 5, 8, 9, 17, GEMM_MC + 1, 2 * GEMM_MC + 3];
    let seed = 1;
    for (const m of sizes) {
      for (const n of [1, 7, 8, 9, 33]) {
        for (const k of [1, 5, GEMM_KC, GEMM_KC + 1]) {
          for (const transA of [false, true]) {
            for (const transB of [false, true]) {
              const p: MatmulParams = { batch: 1, m, n, k, transA, transB, strideA: 0, strideB: 0 };
              const [want, got] = both(w, [[randomData('float32', m * k, seed++), 'float32'], [randomData('float32', k * n, seed++), 'float32']],
                (b, [a, bb]) => b.matmul(a!, bb!, p));
              expectNear(got, want, 1e-4 * Math.sqrt(k), 1e-5, `matmul m=${m} n=${n} k=${k} transA=${transA} transB=${transB}`);
            }
          }
        }
      }
    }
  });

  test('batched GEMM with per-batch and broadcast (stride 0) operands, large enough for threads', () => {
    const batch = 3, n = 130, k = 300;
    // m = 2 takes the unpacked few-rows path, m = 70 the packed one.
    for (const [m, sa, sb] of [70, 2].flatMap((m) => [[m, m * k, k * n], [m, 0, k * n], [m, m * k, 0]] as const)) {
      for (const transB of [false, true]) {
        const p: MatmulParams = { batch, m, n, k, transA: false, transB, strideA: sa, strideB: sb };
        const [want, got] = both(w, [[randomData('float32', sa ? batch * m * k : m * k, 5), 'float32'], [randomData('float32', sb ? batch * k * n : k * n, 6), 'float32']],
          (b, [a, bb]) => b.matmul(a!, bb!, p));
        expectNear(got, want, 2e-3, 1e-5, `bmm strides ${sa}/${sb} transB=${transB}`);
      }
    }
  });

  test('GEMM with a bias: edge tiles, K blocks, the few-rows path, batches, k = 0, integers', () => {
    let seed = 300;
    for (const [batch, m, n, k, transA, transB, sa] of [
      [1, 9, 13, 5, false, false, 0], [1, GEMM_MC + 5, 37, GEMM_KC + 3, true, false, 0], [1, 2, 70, 19, false, true, 0],
      [3, 17, 24, 33, false, true, 17 * 33], [2, 1, 5, 4, true, true, 4], [1, 130, 520, 130, false, false, 0],
    ] as const) {
      const p: MatmulParams = { batch, m, n, k, transA, transB, strideA: sa, strideB: 0 };
      const [want, got] = both(w, [[randomData('float32', (sa ? batch : 1) * m * k, seed++), 'float32'], [randomData('float32', k * n, seed++), 'float32'],
        [randomData('float32', n, seed++), 'float32']], (b, [a, bb, bias]) => b.matmul(a!, bb!, p, bias!));
      expectNear(got, want, 1e-4 * Math.sqrt(k + 1), 1e-5, `matmul + bias batch=${batch} m=${m} n=${n} k=${k} transA=${transA} transB=${transB}`);
    }
    const z = w.matmul(w.fill('float32', 6, 1), w.fill('float32', 0, 0), { batch: 1, m: 2, n: 3, k: 0, transA: false, transB: false, strideA: 0, strideB: 0 },
      w.upload(Float32Array.from([1, 2, 3]), 'float32'));
    expect(Array.from(w.readSync(z))).toEqual([1, 2, 3, 1, 2, 3]);
    const p: MatmulParams = { batch: 2, m: 3, n: 4, k: 5, transA: false, transB: false, strideA: 15, strideB: 0 };
    const [want, got] = both(w, [[randomData('int32', 30, 1), 'int32'], [randomData('int32', 20, 2), 'int32'], [randomData('int32', 4, 3), 'int32']],
      (b, [a, bb, bias]) => b.matmul(a!, bb!, p, bias!));
    expect(Array.from(got)).toEqual(Array.from(want));
  });

  test('GEMM with the column sums of B (weight and bias gradients in one pass): panels, transposes, the few-rows path', () => {
    let seed = 400;
    for (const [m, n, k, transA, transB] of [[130, 517, 2050, true, false], [9, 13, 5, false, true], [2, 21, 40, true, false], [64, 24, 300, false, false]] as const) {
      const p: MatmulParams = { batch: 1, m, n, k, transA, transB, strideA: 0, strideB: 0 };
      const inputs: [TypedArray, DType][] = [[randomData('float32', m * k, seed++), 'float32'], [randomData('float32', k * n, seed++), 'float32']];
      for (const key of ['out', 'sums'] as const) {
        const [want, got] = both(w, inputs, (b, [a, bb]) => b.matmulColSums!(a!, bb!, p)[key]);
        expectNear(got, want, 1e-4 * Math.sqrt(k), 1e-5, `matmulColSums ${key} m=${m} n=${n} k=${k} transB=${transB}`);
      }
    }
  });

  test('GEMM with k = 0 gives zeros; integer GEMM is exact', () => {
    const z = w.matmul(w.fill('float32', 6, 1), w.fill('float32', 0, 0), { batch: 1, m: 2, n: 3, k: 0, transA: false, transB: false, strideA: 0, strideB: 0 });
    expect(Array.from(w.readSync(z))).toEqual([0, 0, 0, 0, 0, 0]);
    for (const dtype of ['int32', 'uint8'] as const) {
      const p: MatmulParams = { batch: 2, m: 5, n: 6, k: 7, transA: true, transB: true, strideA: 35, strideB: 0 };
      const [want, got] = both(w, [[randomData(dtype, 70, 1), dtype], [randomData(dtype, 42, 2), dtype]], (b, [a, bb]) => b.matmul(a!, bb!, p));
      expect(Array.from(got), dtype).toEqual(Array.from(want));
    }
  });

  test('binary ops: every op and dtype, same shape, scalar, row, column and general broadcasts', () => {
    const ops: BinaryOp[] = ['add', 'sub', 'mul', 'div', 'pow', 'maximum', 'minimum', 'eq', 'ne', 'lt', 'le', 'gt', 'ge', 'and', 'or'];
    const patterns: [Shape, Shape, Shape][] = [
      [[37, 41], [37, 41], [37, 41]],
      [[37, 41], [], [37, 41]],
      [[], [37, 41], [37, 41]],
      [[37, 41], [41], [37, 41]],
      [[37, 41], [37, 1], [37, 41]],
      [[5, 1, 6, 7], [3, 1, 7], [5, 3, 6, 7]],
      [[2, 3, 1, 5, 1, 2, 3, 1, 2], [3, 4, 1, 2, 2, 3, 2, 2], [2, 3, 3, 5, 2, 2, 3, 2, 2]],
    ];
    let seed = 100;
    for (const dtype of ['float32', 'int32', 'uint8'] as const) {
      for (const op of ops) {
        for (const [as, bs, os] of patterns) {
          const [want, got] = both(w, [[randomData(dtype, sizeOf(as), seed++), dtype], [randomData(dtype, sizeOf(bs), seed++), dtype]],
            (b, [a, bb]) => b.binary(op, a!, as, bb!, bs, os));
          if (dtype === 'float32' && op === 'pow') expectNear(got, want, 1e-6, 1e-6, `${op} ${dtype}`);
          else if (op === 'pow') continue; // integer pow: below, on values whose powers are exact doubles
          else expect(Array.from(got), `${op} ${dtype} ${JSON.stringify([as, bs])}`).toEqual(Array.from(want));
        }
      }
    }
  });

  test('integer pow wraps like PyTorch and matches the reference where its double result is exact', () => {
    const base = Int32Array.from({ length: 200 }, (_, i) => i - 100), exp = Int32Array.from({ length: 200 }, (_, i) => (i % 7) - 2);
    const [want, got] = both(w, [[base, 'int32'], [exp, 'int32']], (b, [x, y]) => b.binary('pow', x!, [200], y!, [200], [200]));
    expect(Array.from(got)).toEqual(Array.from(want));
    const big = w.binary('pow', w.upload(Int32Array.from([3]), 'int32'), [1], w.upload(Int32Array.from([40]), 'int32'), [1], [1]);
    expect(w.readSync(big)[0]).toBe(Number(3n ** 40n % 2n ** 32n) | 0);
  });

  test('unary math within float32 accuracy; integer unary exact; NaN and infinities', () => {
    const ops = Object.keys({ neg: 0, abs: 0, sign: 0, exp: 0, log: 0, sqrt: 0, rsqrt: 0, sin: 0, cos: 0, tanh: 0, sigmoid: 0, relu: 0, erf: 0, gelu: 0, geluTanh: 0, silu: 0, floor: 0, ceil: 0, round: 0, not: 0 }) as UnaryOp[];
    const special = [0, -0, 0.5, -0.5, 1.5, 2.5, -2.5, 1e-6, -1e-6, 20, -20, 88, -88, 100, -100, Infinity, -Infinity, NaN];
    const data = Float32Array.from([...special, ...randomData('float32', 1000, 9)].map((v, i) => (i >= special.length ? v * 3 : v)));
    for (const op of ops) {
      const [want, got] = both(w, [[data, 'float32']], (b, [x]) => b.unary(op, x!));
      expectNear(got, want, 2e-6, 2e-6, `unary ${op}`);
    }
    for (const dtype of ['int32', 'uint8'] as const) {
      for (const op of ['neg', 'abs', 'sign', 'relu', 'floor', 'ceil', 'round', 'not'] as UnaryOp[]) {
        const [want, got] = both(w, [[randomData(dtype, 99, 3), dtype]], (b, [x]) => b.unary(op, x!));
        expect(Array.from(got), `${op} ${dtype}`).toEqual(Array.from(want));
      }
    }
    for (const op of ['relu', 'gelu', 'geluTanh', 'silu'] as const) {
      const [want, got] = both(w, [[data, 'float32'], [randomData('float32', data.length, 4), 'float32']], (b, [x, dy]) => b.activationGrad(op, x!, dy!));
      expectNear(got, want, 2e-6, 2e-6, `activationGrad ${op}`);
    }
  });

  test('casts between every pair of dtypes, with out-of-range and NaN values', () => {
    const src = Float32Array.from([0, 1.7, -1.7, 255.9, 256, -1, 3e9, -3e9, NaN, Infinity, 0.2, -0]);
    for (const from of ['float32', 'int32', 'uint8', 'bool'] as const) {
      for (const to of ['float32', 'int32', 'uint8', 'bool', 'float64'] as const) {
        const [want, got] = both(w, [[src, from]], (b, [x]) => b.cast(x!, to));
        expect(Array.from(got), `${from} -> ${to}`).toEqual(Array.from(want));
      }
    }
  });

  test('reductions, arg reductions and cumsum over every axis position, long rows', () => {
    // [1, 2048, 131] and [2, 300, 300]: column sums in 16-wide strips plus tails, split across the threads.
    for (const [outer, size, inner] of [[1, 100000, 1], [7, 33, 1], [3, 50, 37], [1, 5000, 8], [4, 1, 9], [2, 0, 3], [1, 2048, 131], [2, 300, 300]] as const) {
      for (const dtype of ['float32', 'int32', 'uint8'] as const) {
        const data = randomData(dtype, outer * size * inner, outer + size);
        for (const op of ['sum', 'max', 'min'] as const) {
          const [want, got] = both(w, [[data, dtype]], (b, [x]) => b.reduce(op, x!, outer, size, inner));
          expectNear(got, want, 1e-5 * Math.sqrt(size), 1e-6, `${op} ${dtype} ${outer}x${size}x${inner}`);
        }
        for (const op of ['argmax', 'argmin'] as const) {
          const [want, got] = both(w, [[data, dtype]], (b, [x]) => b.argReduce(op, x!, outer, size, inner));
          expect(Array.from(got), `${op} ${dtype}`).toEqual(Array.from(want));
        }
        for (const reverse of [false, true]) {
          const [want, got] = both(w, [[data, dtype]], (b, [x]) => b.cumsum(x!, outer, size, inner, reverse));
          expectNear(got, want, 1e-4, 1e-6, `cumsum ${dtype} reverse=${reverse}`);
        }
      }
    }
    const nan = Float32Array.from([1, 5, NaN, 7, 2]);
    const [want, got] = both(w, [[nan, 'float32']], (b, [x]) => b.argReduce('argmax', x!, 1, 5, 1));
    expect(Array.from(got)).toEqual(Array.from(want));
  });

  test('strided copy and write: permutes, broadcasts, flips (negative strides), 9-d walks', () => {
    const x = randomData('float32', 2 * 3 * 4 * 5, 11);
    const cases: [Shape, number[], number][] = [
      [[5, 4, 3, 2], [1, 5, 20, 60], 0], // full permute
      [[2, 3, 4, 5], [60, 20, 5, 1], 0], // identity
      [[2, 3, 7, 5], [60, 20, 0, 1], 0], // broadcast
      [[2, 3, 4, 5], [60, 20, -5, -1], 19], // flip the last two dims
      [[1, 2, 1, 3, 1, 2, 1, 2, 5], [0, 60, 0, 20, 0, 10, 0, 5, 1], 0], // nine dims, size-1 ones among them
    ];
    for (const [shape, strides, offset] of cases) {
      for (const dtype of ['float32', 'uint8'] as const) {
        const [want, got] = both(w, [[x, dtype]], (b, [s]) => b.stridedCopy(s!, shape, strides, offset));
        expect(Array.from(got), `stridedCopy ${JSON.stringify([shape, strides])}`).toEqual(Array.from(want));
      }
    }
    const src = randomData('int32', 60, 12);
    const [want, got] = both(w, [[src, 'int32'], [new Int32Array(200), 'int32']], (b, [s, d]) => {
      b.stridedWrite(d!, s!, [3, 4, 5], [1, 3, 40], 2);
      return d!;
    });
    expect(Array.from(got)).toEqual(Array.from(want));
    const buf = w.fill('float32', 10, 0);
    expect(() => w.stridedCopy(buf, [4], [3], 1)).toThrow(/stridedCopy: strides \[3\] at offset 1 over shape \[4\] reach outside a buffer of 10 elements/);
    w.free(buf);
  });

  test('index kernels: select, add, gather, scatter-add; a bad index throws naming the op and changes nothing', () => {
    const x = randomData('float32', 4 * 6 * 5, 21);
    const idx = Int32Array.from([5, 0, 0, 3, 2, 5, 1]);
    for (const dtype of ['float32', 'int32', 'uint8'] as const) {
      let [want, got] = both(w, [[x, dtype], [idx, 'int32']], (b, [s, i]) => b.indexSelect(s!, i!, 4, 6, 5, 'indexSelect'));
      expect(Array.from(got)).toEqual(Array.from(want));
      const src = randomData(dtype, 4 * 7 * 5, 22);
      [want, got] = both(w, [[src, dtype], [idx, 'int32']], (b, [s, i]) => b.indexAdd(s!, i!, 4, 6, 5, 'embedding'));
      expectNear(got, want, 1e-6, 1e-6, `indexAdd ${dtype}`);
      const gi = Int32Array.from({ length: 4 * 3 * 5 }, (_, j) => (j * 7) % 6);
      [want, got] = both(w, [[x, dtype], [gi, 'int32']], (b, [s, i]) => b.gather(s!, i!, 4, 6, 5, 3, 'gather'));
      expect(Array.from(got)).toEqual(Array.from(want));
      [want, got] = both(w, [[randomData(dtype, 60, 23), dtype], [gi, 'int32']], (b, [s, i]) => b.scatterAdd(s!, i!, 4, 6, 5, 3, 'scatterAdd'));
      expectNear(got, want, 1e-6, 1e-6, `scatterAdd ${dtype}`);
    }
    const before = w.memoryStats();
    const xs = w.upload(x, 'float32');
    for (const bad of [-1, 6, 1 << 30]) {
      const i = w.upload(Int32Array.from([0, bad]), 'int32');
      expect(() => w.indexSelect(xs, i, 4, 6, 5, 'embedding')).toThrow(`embedding: index ${bad} is out of range for a dimension of size 6`);
      expect(() => w.indexAdd(xs, i, 1, 6, 5, 'indexSelect')).toThrow(/indexSelect: index .* out of range/);
      expect(() => w.gather(xs, i, 1, 6, 1, 2, 'gather')).toThrow(/gather: index .* out of range/);
      expect(() => w.scatterAdd(xs, i, 1, 6, 1, 2, 'scatterAdd')).toThrow(/scatterAdd: index .* out of range/);
      w.free(i);
    }
    w.free(xs);
    expect(w.memoryStats().liveBuffers).toBe(before.liveBuffers);
  });

  test('softmax, norms and their gradients on rows of awkward lengths', () => {
    for (const [rows, cols] of [[3, 1], [5, 7], [64, 129], [300, 384]] as const) {
      const x = randomData('float32', rows * cols, rows + cols), dy = randomData('float32', rows * cols, cols), wgt = randomData('float32', cols, 3), bias = randomData('float32', cols, 4);
      for (const log of [false, true]) {
        let [want, got] = both(w, [[x, 'float32']], (b, [v]) => b.softmax(v!, rows, cols, log));
        expectNear(got, want, 1e-6, 1e-5, `softmax log=${log}`);
        [want, got] = both(w, [[want, 'float32'], [dy, 'float32']], (b, [y, g]) => b.softmaxGrad(y!, g!, rows, cols, log));
        expectNear(got, want, 1e-5, 1e-4, `softmaxGrad log=${log}`);
      }
      const pick = (k: 'y' | 'mean' | 'rstd') => both(w, [[x, 'float32'], [wgt, 'float32'], [bias, 'float32']], (b, [v, ww, bb]) => b.layerNorm(v!, ww!, bb!, rows, cols, 1e-5)[k]);
      for (const k of ['y', 'mean', 'rstd'] as const) {
        const [want, got] = pick(k);
        expectNear(got, want, 1e-5, 1e-4, `layerNorm ${k}`);
      }
      const ln = cpu.layerNorm(cpu.upload(x, 'float32'), null, null, rows, cols, 1e-5);
      const mean = cpu.readSync(ln.mean), rstd = cpu.readSync(ln.rstd);
      for (const k of ['dx', 'dweight', 'dbias'] as const) {
        const [want, got] = both(w, [[x, 'float32'], [wgt, 'float32'], [mean, 'float32'], [rstd, 'float32'], [dy, 'float32']],
          (b, [v, ww, mm, rr, g]) => b.layerNormGrad(v!, ww!, mm!, rr!, g!, rows, cols)[k]);
        expectNear(got, want, 1e-4, 1e-4, `layerNormGrad ${k}`);
      }
      const rms = cpu.readSync(cpu.rmsNorm(cpu.upload(x, 'float32'), null, rows, cols, 1e-6).rstd);
      for (const k of ['dx', 'dweight'] as const) {
        const [want, got] = both(w, [[x, 'float32'], [wgt, 'float32'], [rms, 'float32'], [dy, 'float32']],
          (b, [v, ww, rr, g]) => b.rmsNormGrad(v!, ww!, rr!, g!, rows, cols)[k]);
        expectNear(got, want, 1e-4, 1e-4, `rmsNormGrad ${k}`);
      }
    }
  });

  test('fused attention and its gradient: causal with T < S and T > S (rows with no key), bias, odd head sizes, many blocks', () => {
    const cases: [AttentionParams, boolean][] = [
      [{ batch: 2, heads: 3, t: 5, s: 5, hs: 4, hv: 4, scale: 0.5, causal: true, biasStrides: null }, false],
      [{ batch: 1, heads: 2, t: 70, s: 130, hs: 9, hv: 13, scale: 0.3, causal: true, biasStrides: null }, false],
      [{ batch: 1, heads: 2, t: 9, s: 4, hs: 8, hv: 3, scale: 1, causal: true, biasStrides: null }, false],
      // Keys past one K block of the GEMM, and a head size past one.
      [{ batch: 2, heads: 2, t: 66, s: GEMM_KC + 16, hs: 17, hv: 8, scale: 0.25, causal: false, biasStrides: [GEMM_KC + 16, 0, 0, 1] }, true],
      [{ batch: 1, heads: 1, t: 3, s: 6, hs: GEMM_KC + 4, hv: 5, scale: 0.05, causal: false, biasStrides: [0, 0, 6, 1] }, true],
      [{ batch: 1, heads: 2, t: GEMM_MC + 10, s: GEMM_MC + 10, hs: 16, hv: 16, scale: 0.25, causal: true, biasStrides: null }, false],
    ];
    let seed = 50;
    for (const [p, withBias] of cases) {
      const bh = p.batch * p.heads;
      const q = randomData('float32', bh * p.t * p.hs, seed++), k = randomData('float32', bh * p.s * p.hs, seed++), v = randomData('float32', bh * p.s * p.hv, seed++);
      const biasData = randomData('float32', Math.max(1, 2 * p.t * p.s), seed++);
      // Mask a few bias entries, as masked_fill would.
      for (let i = 0; i < biasData.length; i += 7) biasData[i] = -Infinity;
      const dOut = randomData('float32', bh * p.t * p.hv, seed++);
      const inputs: [TypedArray, DType][] = [[q, 'float32'], [k, 'float32'], [v, 'float32'], [biasData, 'float32'], [dOut, 'float32']];
      const label = JSON.stringify(p);
      for (const key of ['out', 'lse'] as const) {
        const [want, got] = both(w, inputs, (b, [qq, kk, vv, bb]) => b.attention!(qq!, kk!, vv!, withBias ? bb! : null, p)[key]);
        expectNear(got, want, 1e-5, 1e-4, `attention ${key} ${label}`);
      }
      for (const key of ['dq', 'dk', 'dv'] as const) {
        // Recomputing the probabilities, and reading them kept by the forward (saveProbs).
        for (const saveProbs of [false, true]) {
          const ps = { ...p, saveProbs };
          const [want, got] = both(w, inputs, (b, [qq, kk, vv, bb, g]) => {
            const f: { out: BackendBuffer; lse: BackendBuffer; probs?: BackendBuffer } = b.attention!(qq!, kk!, vv!, withBias ? bb! : null, ps);
            if (b === w) expect(f.probs !== undefined, 'probs kept').toBe(saveProbs);
            return b.attentionGrad!(qq!, kk!, vv!, withBias ? bb! : null, f.out, f.lse, g!, ps, f.probs)[key];
          });
          expectNear(got, want, 1e-4, 1e-3, `attentionGrad ${key} ${label} saveProbs=${saveProbs}`);
        }
      }
      // Kept probabilities change nothing in the forward's outputs either.
      for (const key of ['out', 'lse'] as const) {
        const [want, got] = both(w, inputs, (b, [qq, kk, vv, bb]) => b.attention!(qq!, kk!, vv!, withBias ? bb! : null, { ...p, saveProbs: true })[key]);
        expectNear(got, want, 1e-5, 1e-4, `attention ${key} ${label} saveProbs`);
      }
    }
  });

  test('fused attention over strided layouts: one packed qkv buffer, and a padded buffer the regions do not cover', () => {
    // Packed: qkv [B, T, 3, H, hs] in one buffer, out [B, T, H, hs]; big enough for the threads.
    const [B, H, T, hs] = [2, 4, 100, 16], C = H * hs;
    const op = (offset: number, row: number, batch: number) => ({ offset, batch, head: hs, row });
    const packed: AttentionParams = {
      batch: B, heads: H, t: T, s: T, hs, hv: hs, scale: 0.25, causal: true, biasStrides: null,
      layout: { q: op(0, 3 * C, T * 3 * C), k: op(C, 3 * C, T * 3 * C), v: op(2 * C, 3 * C, T * 3 * C), out: op(0, C, T * C) },
    };
    // Padded: q alone (contiguous, 5 spare floats up front), k and v sharing a buffer with gaps between rows.
    const S = 7, hv = 3;
    const padded: AttentionParams = {
      batch: 1, heads: 2, t: 4, s: S, hs: 5, hv, scale: 0.5, causal: false, biasStrides: null,
      layout: {
        q: { offset: 5, batch: 40, head: 20, row: 5 }, k: { offset: 1, batch: 0, head: 7 * 20, row: 20 },
        v: { offset: 12, batch: 0, head: 7 * 20, row: 20 }, out: { offset: 0, batch: 24, head: hv, row: 2 * hv },
      },
    };
    for (const [p, sizes] of [[packed, [B * T * 3 * C, B * T * C]], [padded, [45, 2 * 7 * 20, 24]]] as const) {
      const shared = sizes.length === 2;
      const x = randomData('float32', sizes[0], 70), kv = shared ? x : randomData('float32', sizes[1]!, 71);
      const dOut = randomData('float32', sizes[sizes.length - 1]!, 72);
      const inputs: [TypedArray, DType][] = [[x, 'float32'], [kv, 'float32'], [dOut, 'float32']];
      const [wantOut, gotOut] = both(w, inputs, (b, [xx, kk]) => b.attention!(xx!, shared ? xx! : kk!, shared ? xx! : kk!, null, p).out);
      expectNear(gotOut, wantOut, 1e-5, 1e-4, `strided attention out (${shared ? 'packed' : 'padded'})`);
      for (const key of ['dq', 'dk'] as const) {
        const [want, got] = both(w, inputs, (b, [xx, kk, g]) => {
          const [q, k] = [xx!, shared ? xx! : kk!];
          const f = b.attention!(q, k, k, null, p);
          const r = b.attentionGrad!(q, k, k, null, f.out, f.lse, g!, p);
          // Inputs that share a buffer share their gradient.
          expect(r.dv).toBe(r.dk);
          if (shared) expect(r.dq).toBe(r.dk);
          return r[key];
        });
        expectNear(got, want, 1e-4, 1e-3, `strided attentionGrad ${key} (${shared ? 'packed' : 'padded'})`);
      }
    }
  });

  test('fused cross-entropy and its gradient, with ignored rows, and its index check', () => {
    const rows = 300, cols = 257, ignore = -100;
    const target = Int32Array.from({ length: rows }, (_, r) => (r % 7 === 3 ? ignore : (r * 37) % cols));
    const inputs: [TypedArray, DType][] = [[randomData('float32', rows * cols, 80), 'float32'], [target, 'int32'], [randomData('float32', rows, 81), 'float32']];
    for (const key of ['loss', 'lse'] as const) {
      const [want, got] = both(w, inputs, (b, [x, t]) => b.crossEntropy!(x!, t!, rows, cols, ignore, 'ce')[key]);
      expectNear(got, want, 1e-5, 1e-5, `crossEntropy ${key}`);
    }
    const [want, got] = both(w, inputs, (b, [x, t, g]) => {
      const f = b.crossEntropy!(x!, t!, rows, cols, ignore, 'ce');
      return b.crossEntropyGrad!(x!, t!, f.lse, g!, rows, cols, ignore);
    });
    expectNear(got, want, 1e-6, 1e-4, 'crossEntropyGrad');
    const x = w.upload(Float32Array.from([1, 2, 3, 4]), 'float32');
    expect(() => w.crossEntropy(x, w.upload(Int32Array.from([1, 2]), 'int32'), 2, 2, ignore, 'ce')).toThrow(/ce: index 2 is out of range for a dimension of size 2/);
  });

  test('im2col / col2im with padding, stride and dilation', () => {
    const p = { batch: 2, channels: 3, height: 7, width: 6, kernelH: 3, kernelW: 2, strideH: 2, strideW: 1, padH: 1, padW: 2, dilationH: 2, dilationW: 1, outH: 3, outW: 9 };
    for (const dtype of ['float32', 'int32', 'uint8'] as const) {
      let [want, got] = both(w, [[randomData(dtype, 2 * 3 * 7 * 6, 31), dtype]], (b, [x]) => b.im2col(x!, p, dtype === 'float32' ? -Infinity : 0));
      expect(Array.from(got)).toEqual(Array.from(want));
      [want, got] = both(w, [[randomData(dtype, 2 * 3 * 6 * 27, 32), dtype]], (b, [c]) => b.col2im(c!, p));
      expectNear(got, want, 1e-5, 1e-6, `col2im ${dtype}`);
    }
  });

  test('float64 runs through the reference kernels', () => {
    const a = randomData('float32', 12, 41), b = randomData('float32', 12, 42);
    const [want, got] = both(w, [[Float64Array.from(a), 'float64'], [Float64Array.from(b), 'float64']],
      (be, [x, y]) => be.matmul(x!, y!, { batch: 1, m: 3, n: 3, k: 4, transA: false, transB: true, strideA: 0, strideB: 0 }));
    expect(got).toBeInstanceOf(Float64Array);
    expect(Array.from(got)).toEqual(Array.from(want));
  });
});

describe('wasm backend runtime', () => {
  test('the threaded backend has a worker; the other runs the single-threaded plain-SIMD build', () => {
    expect(threaded.info.threads).toBe(2);
    expect(threaded.info.variant).toMatch(/-mt$/);
    expect(single.info).toEqual({ variant: 'simd-st', threads: 1 });
  });

  test('freed blocks are reused; double free and use after free are errors', () => {
    const a = single.fill('float32', 1000, 1);
    const stats = single.memoryStats();
    single.free(a);
    const b = single.fill('float32', 999, 2);
    expect(single.memoryStats().top).toBe(stats.top);
    expect(() => single.free(a)).toThrow('wasm backend: buffer freed twice');
    expect(() => single.unary('neg', a)).toThrow(/freed buffer/);
    single.free(b);
  });

  test('memory grows on demand and freed space is coalesced before growing again', async () => {
    // A fresh backend: the layout of free blocks must not depend on what earlier tests left.
    const w = await createWasmBackend({ threads: 1 });
    const start = w.memoryStats();
    // Many mid-sized buffers, freed, then one that needs their combined space.
    const small = Array.from({ length: 64 }, () => w.fill('uint8', 1 << 16, 1));
    const grown = w.memoryStats();
    expect(grown.memoryBytes).toBeGreaterThanOrEqual(grown.top);
    for (const s of small) w.free(s);
    const big = w.fill('uint8', 60 << 16, 3);
    expect(w.memoryStats().memoryBytes).toBe(grown.memoryBytes);
    expect(w.readSync(big)[(60 << 16) - 1]).toBe(3);
    w.free(big);
    expect(w.memoryStats().liveBuffers).toBe(start.liveBuffers);
    w.terminate();
  });
});
