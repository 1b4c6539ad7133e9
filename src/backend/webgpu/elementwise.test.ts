// Kernel tests of the webgpu elementwise kernels against the cpu backend: fill and every cast (bit-exact, all float16
// bit patterns, random float32 bits), unary math and activation gradients (float32 within a few ulp, integers exact;
// sin / cos up to 3.4e38), broadcasting binary ops on every dtype (int32 wrapping, division by 0, pow edges), where,
// size 0 and high ranks.

import { beforeAll, describe, expect, test } from 'vitest';
import { expectNear, rng, testGpu } from '../../test-util/webgpu.js';
import type { ActivationOp, BackendBuffer, BinaryOp, UnaryOp } from '../../tensor/backend.js';
import type { DType, TypedArray } from '../../tensor/dtype.js';
import { broadcastShapes, type Shape } from '../../tensor/shape.js';
import { CpuBackend } from '../cpu/index.js';
import type { WebGPUBackend } from './backend.js';

const cpu = new CpuBackend();
let gpu: WebGPUBackend;

beforeAll(async () => {
  gpu = await testGpu();
});

function randomData(dtype: DType, n: number, seed: number, scale = 4): TypedArray {
  const r = rng(seed);
  switch (dtype) {
    case 'float32': return Float32Array.from({ length: n }, () => (r() - 0.5) * scale);
    case 'int32': return Int32Array.from({ length: n }, () => Math.floor(r() * 200) - 100);
    case 'bool': return Uint8Array.from({ length: n }, () => (r() < 0.5 ? 1 : 0));
    default: return Uint8Array.from({ length: n }, () => Math.floor(r() * 256));
  }
}

const SPECIAL = [0, -0, 0.5, -0.5, 1, -1, 1.5, 2.5, -2.5, 3, 1e-6, -1e-6, 1e-30, 20, -20, 88, -88, 100, -100, Infinity, -Infinity, NaN];

type Kernel = (b: CpuBackend | WebGPUBackend, xs: BackendBuffer[]) => BackendBuffer;
interface Result { want: TypedArray; got: TypedArray; out: BackendBuffer }

/**
 * Runs each kernel on the cpu and on webgpu with the same inputs; the webgpu outputs are read back together (one
 * round trip for all of them: software Vulkan answers a read in milliseconds to a second, depending on load).
 */
async function runAll(jobs: readonly { inputs: [TypedArray, DType][]; fn: Kernel }[]): Promise<Result[]> {
  const runs = jobs.map(({ inputs, fn }) => {
    const want = fn(cpu, inputs.map(([d, t]) => cpu.upload(d, t)));
    const xs = inputs.map(([d, t]) => gpu.upload(d, t));
    return { want, xs, out: fn(gpu, xs) };
  });
  const got = await Promise.all(runs.map((r) => gpu.read(r.out)));
  const results: Result[] = [];
  for (const [i, r] of runs.entries()) {
    for (const x of r.xs) gpu.free(x);
    gpu.free(r.out);
    results.push({ want: await cpu.read(r.want), got: got[i]!, out: r.out });
  }
  return results;
}

async function both(inputs: [TypedArray, DType][], fn: Kernel): Promise<[TypedArray, TypedArray, BackendBuffer]> {
  const [r] = await runAll([{ inputs, fn }]);
  return [r!.want, r!.got, r!.out];
}

/** Bit patterns: float results must match to the bit (NaN payloads and -0 included). */
function words(a: TypedArray): number[] {
  return Array.from(a instanceof Float32Array ? new Uint32Array(a.buffer, a.byteOffset, a.length) : a);
}

const DTYPES = ['float32', 'float16', 'bfloat16', 'int32', 'uint8', 'bool'] as const;
const count = (s: Shape): number => s.reduce((p, x) => p * x, 1);

describe('webgpu fill and cast', () => {
  test('fill stores the value as each dtype does (rounding, truncation, wrap, NaN, -0), any size', async () => {
    const cases = DTYPES.flatMap((dtype) => [0, -0, 1.5, -2.7, 300, 65520, 1 / 3, NaN, -Infinity].map((value) => ({ dtype, value })));
    const results = await runAll(cases.map(({ dtype, value }) => ({ inputs: [], fn: (b) => b.fill(dtype, 257, value) })));
    results.forEach(({ want, got }, i) => expect(words(got), `fill ${cases[i]!.dtype} ${cases[i]!.value}`).toEqual(words(want)));
    for (const n of [0, 1, 256, 1000]) expect((await gpu.read(gpu.fill('int32', n, 7))).length).toBe(n);
    expect(() => gpu.fill('float64', 3, 1)).toThrow(/float64 is not supported/);
  });

  test('casts between every pair of dtypes are bit-exact, with rounding ties, overflow, subnormals and NaN', async () => {
    const edges = [
      ...SPECIAL, 1.7, -1.7, 255.9, 256, 257, 3e9, -3e9, 2 ** 31, -(2 ** 31), 2 ** 24 + 1, 0.2, 65504, 65519.99, 65520, 1e5,
      6e-8, 2 ** -25, 3 * 2 ** -26, 2 ** -24, 1e-5, 6.1e-5, 1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 3.4e38, -1e-40,
    ];
    // Random bit patterns: every exponent, NaN payloads, subnormals.
    const r = rng(5);
    const randomBits = new Float32Array(Uint32Array.from({ length: 4096 }, () => Math.floor(r() * 2 ** 32)).buffer);
    const floats = Float32Array.from([...edges, ...randomBits]);
    const ints = Int32Array.from([0, 1, -1, 255, 256, -256, 2 ** 24 + 1, 2 ** 24 + 3, 2 ** 25 + 6, 2 ** 31 - 1, -(2 ** 31), 16777217, -16777219, 2049, 65519, 65520, 123456789]);
    const f16 = Uint16Array.from({ length: 65536 }, (_, i) => i); // every float16 / bfloat16 bit pattern
    const sources: [TypedArray, DType][] = [
      [floats, 'float32'], [ints, 'int32'], [Uint8Array.from({ length: 256 }, (_, i) => i), 'uint8'], [Uint8Array.from([0, 1, 1, 0]), 'bool'],
      [f16, 'float16'], [f16, 'bfloat16'],
    ];
    // The backend copies a half dtype cast to itself; every other pair runs the cast kernel.
    const pairs = sources.flatMap(([data, from]) => DTYPES.filter((to) => !(to === from && (to === 'float16' || to === 'bfloat16'))).map((to) => ({ data, from, to })));
    const results = await runAll(pairs.map(({ data, from, to }) => ({ inputs: [[data, from]], fn: (b, [x]) => b.cast(x!, to) })));
    results.forEach(({ want, got, out }, i) => {
      const { data, from, to } = pairs[i]!;
      expect(out.dtype).toBe(to);
      const w = words(want), g = words(got);
      const bad = w.findIndex((v, k) => v !== g[k]);
      expect(bad, `${from} -> ${to}: element ${bad} (input ${data[bad]}) gives ${got[bad]}, expected ${want[bad]}`).toBe(-1);
    });
    expect(() => gpu.cast(gpu.fill('float32', 2, 1), 'float64')).toThrow(/float64 is not supported/);
  });
});

const UNARY_OPS: UnaryOp[] = ['neg', 'abs', 'sign', 'exp', 'log', 'sqrt', 'rsqrt', 'sin', 'cos', 'tanh', 'sigmoid', 'relu', 'erf', 'gelu', 'geluTanh', 'silu', 'floor', 'ceil', 'round'];
/** Ops computed exactly (compared to the bit); the others are float32 math within a few ulp. */
const EXACT = new Set<UnaryOp>(['neg', 'abs', 'sign', 'relu', 'floor', 'ceil', 'round', 'not']);

describe('webgpu unary and activation gradients', () => {
  test('float32 unary ops: exact ones to the bit, math within a few ulp, NaN / Inf / -0 as the reference', async () => {
    const data = Float32Array.from([...SPECIAL, ...randomData('float32', 3000, 9, 12), ...randomData('float32', 500, 10, 0.1)]);
    const results = await runAll(UNARY_OPS.map((op) => ({ inputs: [[data, 'float32']], fn: (b, [x]) => b.unary(op, x!) })));
    results.forEach(({ want, got }, i) => {
      const op = UNARY_OPS[i]!;
      if (EXACT.has(op)) expect(words(got), op).toEqual(words(want));
      else expectNear(got, want, 1e-7, 1e-6, `unary ${op}`);
    });
  });

  test('sin / cos of any float32: within 2 float32 steps of the reference, up to 3.4e38 and next to multiples of pi/2', async () => {
    // Near multiples of pi/2 the result is tiny and all of its bits come from the argument reduction.
    const nearPiHalves = [1, 2, 3, 7, 100, 5215, 1e6, 1e7, 3e9, 1e20].flatMap((k) => {
      const bits = new Uint32Array(new Float32Array([Math.PI / 2 * k]).buffer)[0]!;
      return [-2, -1, 0, 1, 2].map((d) => new Float32Array(new Uint32Array([bits + d]).buffer)[0]!);
    });
    const r = rng(11);
    const magnitudes = Array.from({ length: 3000 }, () => (r() - 0.5) * 2 * 10 ** (r() * 39)); // 1e-39 .. 3.4e38, both signs
    const x = Float32Array.from([
      1e4, 12345.678, 3e9, -3e9, 1e20, -1e20, 3.4e38, -3.4e38, 8191.99, 8192, 0.7853982, 0.78539815, -0, 0, Infinity, -Infinity, NaN,
      ...nearPiHalves, ...magnitudes,
    ]);
    const results = await runAll((['sin', 'cos'] as const).map((op) => ({ inputs: [[x, 'float32']], fn: (b, [v]) => b.unary(op, v!) })));
    results.forEach(({ want, got }, i) => {
      const op = i ? 'cos' : 'sin';
      const w = words(want), g = words(got);
      for (let k = 0; k < x.length; k++) {
        if (w[k] === g[k] || (Number.isNaN(want[k]) && Number.isNaN(got[k]))) continue;
        // Same sign and at most 2 float32 steps apart (measured: 1 step at most, on 25k arguments).
        const steps = (w[k]! ^ g[k]!) >>> 31 ? Infinity : Math.abs(w[k]! - g[k]!);
        if (!(steps <= 2)) expect.fail(`${op}(${x[k]}) is ${got[k]}, expected ${want[k]}`);
      }
    });
    expect(Object.is(results[0]!.got[12], -0), 'sin(-0) is -0').toBe(true);
  });

  test('integer unary ops are exact (wrapping at the int32 minimum); not on bool', async () => {
    const ints = Int32Array.from([...randomData('int32', 300, 3), 0, 2 ** 31 - 1, -(2 ** 31), -1]);
    const cases = [
      ...(['neg', 'abs', 'sign', 'relu', 'floor', 'ceil', 'round'] as UnaryOp[]).flatMap((op) => [
        { op, input: [ints, 'int32'] as [TypedArray, DType] }, { op, input: [randomData('uint8', 300, 4), 'uint8'] as [TypedArray, DType] },
      ]),
      ...(['not', 'sign'] as UnaryOp[]).map((op) => ({ op, input: [randomData('bool', 300, 5), 'bool'] as [TypedArray, DType] })),
    ];
    const results = await runAll(cases.map(({ op, input }) => ({ inputs: [input], fn: (b, [x]) => b.unary(op, x!) })));
    results.forEach(({ want, got, out }, i) => {
      expect(out.dtype).toBe(cases[i]!.input[1]);
      expect(Array.from(got), `${cases[i]!.op} ${cases[i]!.input[1]}`).toEqual(Array.from(want));
    });
  });

  test('activation gradients f\'(x) * dy', async () => {
    const x = Float32Array.from([...SPECIAL, ...randomData('float32', 2000, 6, 12)]);
    const dy = randomData('float32', x.length, 7);
    const ops: ActivationOp[] = ['relu', 'gelu', 'geluTanh', 'silu'];
    const results = await runAll(ops.map((op) => ({ inputs: [[x, 'float32'], [dy, 'float32']], fn: (b, [a, d]) => b.activationGrad(op, a!, d!) })));
    results.forEach(({ want, got }, i) => {
      if (ops[i] === 'relu') expect(words(got)).toEqual(words(want));
      else expectNear(got, want, 1e-7, 1e-6, `activationGrad ${ops[i]}`);
    });
  });
});

const ARITH: BinaryOp[] = ['add', 'sub', 'mul', 'div', 'pow', 'maximum', 'minimum'];
const LOGIC: BinaryOp[] = ['eq', 'ne', 'lt', 'le', 'gt', 'ge', 'and', 'or'];
const SHAPES: [Shape, Shape][] = [[[1000], [1000]], [[3, 1, 5], [4, 1]], [[2, 3, 4], []], [[], [2, 3, 4]], [[], []], [[1, 300], [7, 1]], [[0, 3], [3]], [[2, 1, 3, 1, 2], [1, 2, 1, 2, 1]]];
/**
 * pow computes 2^(b log2 a) in float32 pieces: an absolute error e in b log2 a is a relative error e ln 2 of the
 * result, and the remainder goes through the builtin log2 / exp2 (~1e-7 each): so the relative tolerance grows with
 * |log2 result| (2e-6 up to 2^+-10, 1.5e-5 at 1e-23), well inside the op tests' 1e-4.
 */
function expectPow(got: TypedArray, want: TypedArray, label: string): void {
  expect(got.length, label).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    const g = got[i]!, e = want[i]!;
    if (Object.is(g, e) || (Number.isNaN(e) && Number.isNaN(g))) continue;
    const rtol = 2e-7 * Math.max(10, Math.abs(Math.log2(Math.abs(e))));
    if (!(Math.abs(g - e) <= SUBNORMAL + rtol * Math.abs(e))) expect.fail(`${label}: element ${i} is ${g}, expected ${e}`);
  }
}
/** Results below the smallest normal float32 may flush to zero on a GPU (WGSL allows it). */
const SUBNORMAL = 1.2e-38;

describe('webgpu binary and where', () => {
  test('float32: every op with broadcasting, NaN / Inf / signed zeros; comparisons give bool', async () => {
    const cases = SHAPES.flatMap(([aShape, bShape]) => {
      const na = count(aShape), nb = count(bShape);
      const a = randomData('float32', na, na + 1), b = randomData('float32', nb, nb + 2);
      for (let i = 0; i < Math.min(na, SPECIAL.length); i++) a[i] = SPECIAL[i]!;
      for (let i = 0; i < Math.min(nb, SPECIAL.length); i++) b[(i * 7) % nb] = SPECIAL[i]!;
      return [...ARITH, ...LOGIC].map((op) => ({ op, a, b, aShape, bShape }));
    });
    const results = await runAll(cases.map(({ op, a, b, aShape, bShape }) => ({
      inputs: [[a, 'float32'], [b, 'float32']], fn: (be, [x, y]) => be.binary(op, x!, aShape, y!, bShape, broadcastShapes(aShape, bShape, 'test')),
    })));
    results.forEach(({ want, got, out }, i) => {
      const { op, aShape, bShape } = cases[i]!;
      expect(out.dtype).toBe(LOGIC.includes(op) ? 'bool' : 'float32');
      if (op === 'pow') expectPow(got, want, `pow [${aShape}] [${bShape}]`);
      else expect(words(got), `${op} [${aShape}] [${bShape}]`).toEqual(words(want));
    });
  });

  test('pow follows Math.pow at every edge (zeros, infinities, NaN, negative bases, integer exponents)', async () => {
    const v = [0, -0, 1, -1, 2, -2, 0.5, -0.5, 3, -3, 1.5, 10, -10, Infinity, -Infinity, NaN, 1e-20, 7];
    const a = Float32Array.from(v.flatMap((x) => v.map(() => x)));
    const b = Float32Array.from(v.flatMap(() => v));
    const [want, got] = await both([[a, 'float32'], [b, 'float32']], (be, [x, y]) => be.binary('pow', x!, [a.length], y!, [a.length], [a.length]));
    expectPow(got, want, 'pow edges');
  });

  test('int32 and uint8 arithmetic wraps like the reference; division by 0 gives 0; integer pow', async () => {
    const special = [0, 1, -1, 2, -2, 3, 7, -7, 31, 2 ** 31 - 1, -(2 ** 31), 65536, 46341];
    const a = Int32Array.from([...special.flatMap((x) => special.map(() => x)), ...randomData('int32', 200, 8)]);
    const b = Int32Array.from([...special.flatMap(() => special), ...randomData('int32', 200, 9)]);
    const u = randomData('uint8', 500, 12), w = Uint8Array.from(randomData('uint8', 500, 13), (x) => x % 9);
    const sa = randomData('int32', 12, 1), sb = randomData('int32', 4, 2);
    const bools = [randomData('bool', 64, 14), randomData('bool', 8, 15)] as const;
    const cases = [
      ...[...ARITH, ...LOGIC].flatMap((op) => [
        { label: `int32 ${op}`, out: LOGIC.includes(op) ? 'bool' : 'int32', inputs: [[a, 'int32'], [b, 'int32']] as [TypedArray, DType][], fn: ((be, [x, y]) => be.binary(op, x!, [a.length], y!, [b.length], [a.length])) as Kernel },
        { label: `int32 ${op} broadcast`, out: LOGIC.includes(op) ? 'bool' : 'int32', inputs: [[sa, 'int32'], [sb, 'int32']] as [TypedArray, DType][], fn: ((be, [x, y]) => be.binary(op, x!, [3, 1, 4], y!, [4], [3, 1, 4])) as Kernel },
        { label: `uint8 ${op}`, out: LOGIC.includes(op) ? 'bool' : 'uint8', inputs: [[u, 'uint8'], [w, 'uint8']] as [TypedArray, DType][], fn: ((be, [x, y]) => be.binary(op, x!, [500], y!, [500], [500])) as Kernel },
      ]),
      ...LOGIC.map((op) => ({ label: `bool ${op}`, out: 'bool', inputs: [[bools[0], 'bool'], [bools[1], 'bool']] as [TypedArray, DType][], fn: ((be, [x, y]) => be.binary(op, x!, [8, 8], y!, [8], [8, 8])) as Kernel })),
    ];
    const results = await runAll(cases);
    results.forEach(({ want, got, out }, i) => {
      expect(out.dtype, cases[i]!.label).toBe(cases[i]!.out);
      expect(Array.from(got), cases[i]!.label).toEqual(Array.from(want));
    });
  });

  test('where broadcasts condition and branches, for any dtype of the branches (words)', async () => {
    const shapes: [Shape, Shape, Shape][] = [[[4, 5], [4, 5], [4, 5]], [[4, 1], [5], []], [[], [3, 2], [2]], [[2, 1, 3], [1, 4, 1], [4, 3]], [[0, 2], [2], [2]]];
    const branch = (dtype: DType, n: number, seed: number): TypedArray =>
      dtype === 'float16' ? Uint16Array.from(randomData('uint8', n, seed), (x) => x * 250) : randomData(dtype, n, seed);
    const cases = (['float32', 'int32', 'float16', 'uint8', 'bool'] as const).flatMap((dtype) => (['bool', 'uint8'] as const).flatMap((condType) => shapes.map(([cs, as, bs]) => ({
      dtype, condType, cs, as, bs,
      c: condType === 'bool' ? randomData('bool', count(cs), 1) : Uint8Array.from(randomData('uint8', count(cs), 1), (x) => x % 3),
      a: branch(dtype, count(as), 2), b: branch(dtype, count(bs), 3),
    }))));
    const results = await runAll(cases.map(({ dtype, condType, cs, as, bs, c, a, b }) => ({
      inputs: [[c, condType], [a, dtype], [b, dtype]], fn: (be, [x, y, z]) => be.where(x!, cs, y!, as, z!, bs, broadcastShapes(broadcastShapes(cs, as, 't'), bs, 't')),
    })));
    results.forEach(({ want, got, out }, i) => {
      const { dtype, condType, cs, as, bs } = cases[i]!;
      expect(out.dtype).toBe(dtype);
      expect(words(got), `where ${dtype} cond ${condType} [${cs}] [${as}] [${bs}]`).toEqual(words(want));
    });
  });

  test('a rank beyond the parameter block: the layout in a storage buffer', async () => {
    // 16 dimensions in a 3-cycle of broadcasts: nothing merges, and where's 4 x 16 layout words exceed the block.
    const rank = 16;
    const cs = Array.from({ length: rank }, (_, d) => (d % 3 === 0 ? 1 : 2));
    const as = Array.from({ length: rank }, (_, d) => (d % 3 === 1 ? 1 : 2));
    const bs = Array.from({ length: rank }, (_, d) => (d % 3 === 2 ? 1 : 2));
    const out = Array.from({ length: rank }, () => 2);
    const [want, got] = await both([[randomData('bool', count(cs), 1), 'bool'], [randomData('int32', count(as), 2), 'int32'], [randomData('int32', count(bs), 3), 'int32']],
      (be, [x, y, z]) => be.where(x!, cs, y!, as, z!, bs, out));
    expect(Array.from(got)).toEqual(Array.from(want));
  });
});
