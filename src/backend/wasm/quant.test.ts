// The quantized product (Q8_0 / Q4_0 weights, int8 activations): the wasm kernel on every build against the reference
// backend (bit-equal), the reference against dequantize-then-multiply within the activation quantization's bound,
// and the bad shapes. ATTEND_WASM_OUT (as for scripts/build-wasm.mjs) tests a trial build instead of build/.

import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, test } from 'vitest';
import { dequantizeValues, quantizeValues } from '../../quant/formats.js';
import type { QuantMatmulParams } from '../../tensor/backend.js';
import { CpuBackend } from '../cpu/index.js';
import { quantizeActivations } from '../cpu/quant.js';
import type { WasmBackend } from './backend.js';
import { createWasmBackend } from './init.js';
import { interleaveQuantRows } from './quant-layout.js';
import { detectRelaxedSimd } from './loader.js';

const wasmBase = process.env.ATTEND_WASM_OUT ? pathToFileURL(`${process.env.ATTEND_WASM_OUT}/`) : undefined;
const cpu = new CpuBackend();
const relaxed = await detectRelaxedSimd();
const builds: [string, WasmBackend][] = [
  ['relaxed SIMD, 2 threads', await createWasmBackend({ threads: 2, wasmBase })],
  ['plain SIMD, 2 threads', await createWasmBackend({ threads: 2, relaxedSimd: false, wasmBase })],
  ['relaxed SIMD, 1 thread', await createWasmBackend({ threads: 1, wasmBase })],
  ['plain SIMD, 1 thread', await createWasmBackend({ threads: 1, relaxedSimd: false, wasmBase })],
];
afterAll(() => builds.forEach(([, b]) => b.terminate()));

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}
/** Values of mixed magnitudes (a few large ones per row, like real activations). */
function randomValues(n: number, seed: number): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => (r() * 2 - 1) * (r() < 0.05 ? 20 : 1));
}

type QType = QuantMatmulParams['type'];
// N = 77, 257, 130, 41, 35, 40: groups of four rows (interleaved by uploadQuant), then 1, 2, 3 or no rows one by one.
// N = 257 splits into runs of 20 rows over two threads, the last one short; M = 20 at K = 1024 quantizes x in two tiles.
const SHAPES: [number, number, number][] = [[1, 77, 64], [1, 257, 2048], [5, 130, 96], [3, 41, 1024], [2, 35, 160], [20, 40, 1024]];

function run(b: CpuBackend | WasmBackend, x: Float32Array, w: Uint8Array, p: QuantMatmulParams, bias: Float32Array | null): Float32Array {
  const xb = b.upload(x, 'float32'), wb = b.uploadQuant(w, p), bb = bias && b.upload(bias, 'float32');
  const out = b.quantMatmul(xb, wb, p, bb);
  const y = b.readSync(out) as Float32Array;
  for (const t of [xb, wb, bb, out]) if (t) b.free(t);
  return y;
}

describe.each(['q8_0', 'q4_0'] as const)('quantMatmul %s', (type: QType) => {
  test.each(SHAPES)('wasm equals the reference bit for bit on every build (M=%i, N=%i, K=%i)', (m, n, k) => {
    const wv = randomValues(n * k, n + 7);
    for (let t = k; t < 2 * k; t++) wv[t]! *= 1e-5; // row 1: float16 scales that are subnormal
    const x = randomValues(m * k, m * n + k), w = quantizeValues(wv, [n, k], type).data;
    const bias = m === 5 ? randomValues(n, 3) : null;
    const p = { type, m, n, k };
    const want = run(cpu, x, w, p, bias);
    for (const [name, b] of builds) expect(Array.from(run(b, x, w, p, bias)), `${name}`).toEqual(Array.from(want));
  });

  test.each(SHAPES)('the reference is within the activation quantization bound of dequantize-then-multiply (M=%i, N=%i, K=%i)', (m, n, k) => {
    const x = randomValues(m * k, m + n * k), q = quantizeValues(randomValues(n * k, 11 * n), [n, k], type);
    const wd = dequantizeValues(q), got = run(cpu, x, q.data, { type, m, n, k }, null);
    // |x - d q| <= d / 2 = amax_block / 254 per value, so |y - y_deq| <= sum_blocks amax_b(x) / 254 * sum_b |w~|;
    // plus float32 rounding of the K / 32 block terms (each under 2^-23 of the running sum).
    let worst = 0;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let exact = 0, bound = 0, mass = 0;
        for (let b = 0; b < k / 32; b++) {
          let amax = 0, wsum = 0;
          for (let t = b * 32; t < b * 32 + 32; t++) {
            exact += x[i * k + t]! * wd[j * k + t]!;
            amax = Math.max(amax, Math.abs(x[i * k + t]!));
            wsum += Math.abs(wd[j * k + t]!);
            mass += Math.abs(x[i * k + t]! * wd[j * k + t]!);
          }
          bound += (amax / 254) * wsum;
        }
        const err = Math.abs(got[i * n + j]! - exact);
        const limit = bound * (1 + 1e-6) + (k / 32 + 2) * 2 ** -23 * (mass + bound);
        if (!(err <= limit)) expect.fail(`y[${i}, ${j}] = ${got[i * n + j]}, dequantized product ${exact}: error ${err} over the bound ${limit}`);
        worst = Math.max(worst, err / limit);
      }
    }
    // x really went through int8 (a float32 product of x and the dequantized weights would be off by ~1e-7 of the bound).
    expect(worst).toBeGreaterThan(1e-3);
  });

  test('long rows (1030 blocks; a group of four and one row alone) equal the reference on every build', () => {
    const m = 2, n = 5, k = 32 * 1030;
    const x = randomValues(m * k, 5), w = quantizeValues(randomValues(n * k, 6), [n, k], type).data;
    const p = { type, m, n, k };
    const want = run(cpu, x, w, p, null);
    for (const [name, b] of builds) expect(Array.from(run(b, x, w, p, null)), name).toEqual(Array.from(want));
  });

  test('infinite and NaN float16 weight scales give the reference results (inf, NaN) on every build', () => {
    const k = 160, n = 6, bytes = type === 'q8_0' ? 34 : 18;
    const w = quantizeValues(randomValues(n * k, 9), [n, k], type).data;
    // Row 0: +inf in block 1; row 1: NaN in block 4; row 2: -inf in block 2 with every weight of that block zero
    // (0 * inf = NaN); rows 3-5 untouched. (uploadQuant leaves such a matrix in ggml's layout: the row-by-row path.)
    const setScale = (row: number, block: number, bits: number): void => {
      const o = (row * (k / 32) + block) * bytes;
      w[o] = bits & 0xff;
      w[o + 1] = bits >> 8;
    };
    setScale(0, 1, 0x7c00);
    setScale(1, 4, 0x7e00);
    setScale(2, 2, 0xfc00);
    const zero = type === 'q8_0' ? 0 : 0x88; // Q4_0: nibbles of 8 are 0
    w.fill(zero, (2 * (k / 32) + 2) * bytes + 2, (2 * (k / 32) + 3) * bytes);
    const x = randomValues(2 * k, 10), p = { type, m: 2, n, k };
    const want = run(cpu, x, w, p, null);
    expect(Math.abs(want[0]!)).toBe(Infinity); // an infinite scale makes its output infinite
    expect(want[1]).toBeNaN();
    expect(want[2]).toBeNaN();
    expect(want.slice(3, n).every(Number.isFinite)).toBe(true);
    for (const [name, b] of builds) expect(Array.from(run(b, x, w, p, null)), name).toEqual(Array.from(want));
  });

  test('NaN in x makes its rows NaN; extreme blocks (every nibble 0 or 15, x at +-amax) do not overflow', () => {
    const k = 64, n = 3;
    const x = new Float32Array(2 * k).fill(-1.5);
    x[5] = NaN; // row 0
    const wv = new Float32Array(n * k);
    for (let i = 0; i < n * k; i++) wv[i] = i % 3 === 0 ? -2 : i % 3 === 1 ? 2 : -1;
    const w = quantizeValues(wv, [n, k], type).data;
    const p = { type, m: 2, n, k };
    const want = run(cpu, x, w, p, null);
    for (let j = 0; j < n; j++) expect(want[j]).toBeNaN();
    const wd = dequantizeValues(quantizeValues(wv, [n, k], type));
    for (let j = 0; j < n; j++) {
      let exact = 0;
      for (let t = 0; t < k; t++) exact += -1.5 * wd[j * k + t]!;
      expect(want[n + j]).toBeCloseTo(exact, 3); // x = -1.5 quantizes exactly (q = -127, d = 1.5 / 127)
    }
    for (const [name, b] of builds) expect(Array.from(run(b, x, w, p, null)), name).toEqual(Array.from(want));
  });
});

test.each(['q8_0', 'q4_0'] as const)('quantMatmuls (%s): five weights sharing x (jobs of four, then one), each equal to its own quantMatmul on every build', (type) => {
  const m = 3, k = 96, ns = [40, 0, 33, 130, 7];
  const x = randomValues(m * k, 21);
  const ws = ns.map((n, i) => (n === 0 ? new Uint8Array(0) : quantizeValues(randomValues(n * k, 30 + i), [n, k], type).data));
  const biases = ns.map((n, i) => (i === 2 ? randomValues(n, 40) : null));
  const want = ns.map((n, i) => run(cpu, x, ws[i]!, { type, m, n, k }, biases[i]!));
  for (const [name, b] of [['cpu', cpu] as const, ...builds]) {
    const xb = b.upload(x, 'float32');
    const ops = ns.map((n, i) => ({ w: b.uploadQuant(ws[i]!, { type, n, k }), n, bias: biases[i] ? b.upload(biases[i]!, 'float32') : null }));
    const outs = b.quantMatmuls(xb, ops, { type, m, k });
    outs.forEach((o, i) => expect(Array.from(b.readSync(o) as Float32Array), `${name}, weight ${i}`).toEqual(Array.from(want[i]!)));
    for (const t of [xb, ...outs, ...ops.flatMap((o) => [o.w, o.bias])]) if (t) b.free(t);
  }
});

test('activation quantization: d = amax / 127, round half to even, block sums', () => {
  // amax 127 gives d = 1 and id = 1: 2.5 -> 2, 3.5 -> 4, -2.5 -> -2, 0.5 -> 0.
  const x = new Float32Array(32);
  x.set([127, 2.5, 3.5, -2.5, 0.5, -127]);
  const { q, d, sums } = quantizeActivations(x, 1, 32);
  expect(d[0]).toBe(1);
  expect(Array.from(q.slice(0, 6))).toEqual([127, 2, 4, -2, 0, -127]);
  expect(sums[0]).toBe(4);
});

test('the relaxed build runs where the engine has relaxed SIMD (Q4_0 uses its i8 x i7 dot there)', () => {
  expect(builds[0]![1].info.variant).toBe(relaxed ? 'relaxed-mt' : 'simd-mt');
  expect(builds[1]![1].info.variant).toBe('simd-mt');
  expect(builds[3]![1].info).toEqual({ variant: 'simd-st', threads: 1 });
});

test.each([['cpu', cpu], ['wasm', builds[0]![1]]] as const)('bad shapes are errors that name them (%s)', (_, b) => {
  const x = b.upload(new Float32Array(48), 'float32');
  const w = b.upload(new Uint8Array(2 * 34), 'uint8');
  expect(() => b.quantMatmul(x, w, { type: 'q8_0', m: 1, n: 1, k: 48 })).toThrow(/x \[1, 48\] @ q8_0 weight \[1, 48\]\^T: q8_0 needs in_features to be a multiple of 32, got 48/);
  expect(() => b.quantMatmul(x, w, { type: 'q8_0', m: 1, n: 2, k: 32 })).toThrow(/x holds 48 values, expected \[1, 32\]/);
  const x64 = b.upload(new Float32Array(64), 'float32');
  expect(() => b.quantMatmul(x64, w, { type: 'q4_0', m: 1, n: 2, k: 64 })).toThrow(/the weight must be 72 uint8 block bytes, got 68 uint8/);
  const bias = b.upload(new Float32Array(3), 'float32');
  expect(() => b.quantMatmul(x64, w, { type: 'q8_0', m: 1, n: 1, k: 64 }, bias)).toThrow(/bias must be \[1\] float32/);
  for (const t of [x, w, x64, bias]) b.free(t);
});

test.each([['cpu', cpu], ['wasm', builds[0]![1]]] as const)('uploadQuant checks the bytes against the shape (%s)', (_, b) => {
  expect(() => b.uploadQuant(new Uint8Array(70), { type: 'q4_0', n: 2, k: 64 })).toThrow(/uploadQuant: q4_0 weight \[2, 64\]: the weight must be 72 uint8 block bytes, got 70 uint8/);
  expect(() => b.uploadQuant(new Uint8Array(34), { type: 'q8_0', n: 1, k: 40 })).toThrow(/uploadQuant: q8_0 weight \[1, 40\]: q8_0 needs in_features to be a multiple of 32, got 40/);
});

test('wasm: a weight not from uploadQuant, or uploaded as another shape, is an error that says so', () => {
  const b = builds[0]![1];
  const x = b.upload(new Float32Array(64), 'float32'), p = { type: 'q8_0', m: 1, n: 4, k: 64 } as const;
  const raw = b.upload(quantizeValues(randomValues(256, 1), [4, 64], 'q8_0').data, 'uint8');
  expect(() => b.quantMatmul(x, raw, p)).toThrow(/q8_0 weight \[4, 64\]\^T: the weight must come from uploadQuant with this type and shape \(it is not from uploadQuant\)/);
  const other = b.uploadQuant(quantizeValues(randomValues(256, 1), [8, 32], 'q8_0').data, { type: 'q8_0', n: 8, k: 32 });
  expect(() => b.quantMatmul(x, other, p)).toThrow(/it is uploadQuant's q8_0 \[8, 32\]/);
  for (const t of [x, raw, other]) b.free(t);
});

test('the interleaved layout: per block, the four rows\' scales, then their quants; the last n % 4 rows as ggml stores them', () => {
  const n = 5, k = 64, w = quantizeValues(randomValues(n * k, 4), [n, k], 'q4_0').data, dst = new Uint8Array(w.length);
  interleaveQuantRows(w, dst, { type: 'q4_0', n, k });
  const block = (r: number, b: number) => w.subarray((r * 2 + b) * 18, (r * 2 + b + 1) * 18); // row r, block b in ggml's layout
  for (let b = 0; b < 2; b++) {
    for (let r = 0; r < 4; r++) {
      expect(Array.from(dst.subarray(b * 72 + 2 * r, b * 72 + 2 * r + 2))).toEqual(Array.from(block(r, b).subarray(0, 2)));
      expect(Array.from(dst.subarray(b * 72 + 8 + 16 * r, b * 72 + 24 + 16 * r))).toEqual(Array.from(block(r, b).subarray(2)));
    }
  }
  expect(Array.from(dst.subarray(144))).toEqual(Array.from(w.subarray(144))); // row 4
});
