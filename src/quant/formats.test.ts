// Q8_0 / Q4_0 against bytes packed by hand from ggml's formulas, NF4 against bitsandbytes' tables, and error bounds.

import { describe, expect, test } from 'vitest';
import { float16ToFloat32 } from '../tensor/dtype.js';
import { Generator } from '../tensor/random.js';
import {
  DYNAMIC_MAP, NF4_CODE, dequantizeValues, quantizeValues, quantizeQ4_0, quantizeQ8_0, quantizedBytes, type QuantType,
} from './formats.js';

const normal = (n: number, seed: number): Float32Array => new Float32Array(new Generator(seed).normal(n));
const hex = (b: Uint8Array): string => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(' ');

describe('Q8_0 (ggml block_q8_0: f16 d, 32 x int8)', () => {
  test('a block with absmax 127 (d = 1) and one of zeros, packed by hand', () => {
    const x = new Float32Array(64);
    // roundf rounds halves away from zero: 2.5 -> 3, -2.5 -> -3, 0.5 -> 1.
    x.set([127, -127, 0, 1, -1, 2.5, -2.5, 3.49, 0.5, -0.5, 100.7]);
    const want = [0x00, 0x3c, 0x7f, 0x81, 0x00, 0x01, 0xff, 0x03, 0xfd, 0x03, 0x01, 0xff, 0x65, ...new Array(21).fill(0), ...new Array(34).fill(0)];
    expect(hex(quantizeQ8_0(x))).toBe(hex(Uint8Array.from(want)));
    const back = dequantizeValues({ type: 'q8_0', shape: [2, 32], data: quantizeQ8_0(x) });
    expect(Array.from(back.subarray(0, 11))).toEqual([127, -127, 0, 1, -1, 3, -3, 3, 1, -1, 101]);
  });
  test('d is absmax / 127 rounded to float16; values are q * d', () => {
    const x = Float32Array.from({ length: 32 }, (_, j) => (j - 13) / 7);
    const b = quantizeQ8_0(x);
    const d = float16ToFloat32(b[0]! | (b[1]! << 8));
    expect(Math.abs(d - 18 / 7 / 127)).toBeLessThan((18 / 7 / 127) * 2 ** -10);
    const back = dequantizeValues({ type: 'q8_0', shape: [32], data: b });
    back.forEach((v, j) => expect(v).toBe(Math.fround(((b[2 + j]! << 24) >> 24) * d)));
  });
});

describe('Q4_0 (ggml block_q4_0: f16 d, 16 bytes of nibbles)', () => {
  test('d = max / -8 with the sign of the largest value; weight j low nibble, weight j + 16 high nibble', () => {
    // Block 0: max = -8 -> d = 1, q = min(15, trunc(x + 8.5)). Block 1: max = +16 -> d = -2, q = trunc(-x / 2 + 8.5).
    const x = new Float32Array(64);
    x.set([-8, 7, 7.4, -0.5, -0.6, 0.49], 0);
    x.set([3], 16);
    x.set([16, -14, 0, 2], 32);
    x.set([-16], 48);
    const block0 = [0x00, 0x3c, 0x00 | (11 << 4), 0x0f | (8 << 4), 0x0f | (8 << 4), 0x08 | (8 << 4), 0x07 | (8 << 4), 0x08 | (8 << 4), ...new Array(10).fill(0x88)];
    // x = -16 gives -16 / -2 = 8 -> 16.5 -> clamped to 15, the one value Q4_0 cannot reach exactly.
    const block1 = [0x00, 0xc0, 0x00 | (15 << 4), 0x0f | (8 << 4), 0x08 | (8 << 4), 0x07 | (8 << 4), ...new Array(12).fill(0x88)];
    expect(hex(quantizeQ4_0(x))).toBe(hex(Uint8Array.from([...block0, ...block1])));
    const back = dequantizeValues({ type: 'q4_0', shape: [64], data: quantizeQ4_0(x) });
    expect(Array.from(back.subarray(0, 6))).toEqual([-8, 7, 7, 0, -1, 0]);
    expect(back[16]).toBe(3);
    expect(Array.from(back.subarray(32, 36), (v) => v + 0)).toEqual([16, -14, 0, 2]); // (8 - 8) * -2 is -0, as in C
    expect(back[48]).toBe(-14);
  });
});

describe('NF4 (bitsandbytes quantize_4bit, blocksize 64, double-quantized absmax)', () => {
  test("the code book is bitsandbytes' nf4 table", () => {
    // bitsandbytes/functional.py get_4bit_type('nf4') (= csrc/kernels.cu nf4_dequantization_lut).
    const table = [
      -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635, -0.18477343022823334,
      -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
      0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
    ];
    expect(Array.from(NF4_CODE)).toEqual(table.map(Math.fround));
  });
  test('the dynamic map: 256 sorted values from -0.99297 to 1 with 0 (create_dynamic_map(signed=True))', () => {
    expect(DYNAMIC_MAP.length).toBe(256);
    for (let i = 1; i < 256; i++) expect(DYNAMIC_MAP[i]!).toBeGreaterThan(DYNAMIC_MAP[i - 1]!);
    expect(DYNAMIC_MAP[255]).toBe(1);
    expect(DYNAMIC_MAP[0]).toBeCloseTo(-(0.9859375 + 1) / 2, 7);
    expect(DYNAMIC_MAP.includes(0)).toBe(true);
    // The smallest exponent: 10^-6 * (0.1 + 1) / 2.
    expect(DYNAMIC_MAP[128]! / 0.55e-6).toBeCloseTo(1, 6);
  });
  test('code values map to themselves; the first value of a pair goes to the high nibble', () => {
    const x = new Float32Array(64);
    x.set([-1, 1, 0, NF4_CODE[8]!, NF4_CODE[3]!, NF4_CODE[12]!]);
    const q = quantizeValues(x, [64], 'nf4');
    expect(hex(q.data)).toBe(hex(Uint8Array.from([0x0f, 0x78, 0x3c, ...new Array(29).fill(0x77)])));
    // One block: the mean is the absmax itself, so the centred value 0 is exact and the absmax comes back as 1.
    expect(Array.from(dequantizeValues(q).subarray(0, 6))).toEqual(Array.from(x.subarray(0, 6)));
  });
  test('a value between two codes goes to the nearer one', () => {
    const x = new Float32Array(64);
    x.set([1, 0.64, 0.65, -0.04, -0.05]); // midpoints: 0.64248 (0.5626 | 0.7230), -0.04553 (-0.0911 | 0)
    const back = dequantizeValues(quantizeValues(x, [64], 'nf4'));
    expect(Array.from(back.subarray(1, 5))).toEqual([NF4_CODE[13], NF4_CODE[14], 0, NF4_CODE[6]]);
  });
});

describe('round trips: error bounds from the formats', () => {
  const x = normal(64 * 512, 3);
  const blockMax = (b: number, size: number): number => Math.max(...Array.from(x.subarray(b * size, (b + 1) * size), Math.abs));
  test('Q8_0: |x - deq| <= absmax / 254 + absmax * 2^-11 per block; Q4_0: <= |d| (the clamp) per block', () => {
    for (const type of ['q8_0', 'q4_0'] as const) {
      const q = quantizeValues(x, [64, 512], type);
      const back = dequantizeValues(q);
      for (let b = 0; b < x.length / 32; b++) {
        const m = blockMax(b, 32);
        const bound = type === 'q8_0' ? m / 254 + m * 2 ** -11 : (m / 8) * (1 + 2 ** -10);
        for (let j = b * 32; j < (b + 1) * 32; j++) expect(Math.abs(x[j]! - back[j]!)).toBeLessThanOrEqual(bound);
      }
    }
  });
  test('NF4: |x - deq| <= absmax * (largest half gap of the code book, 0.1519) plus the absmax error', () => {
    const q = quantizeValues(x, [64, 512], 'nf4');
    const back = dequantizeValues(q);
    for (let b = 0; b < x.length / 64; b++) {
      const m = blockMax(b, 64);
      for (let j = b * 64; j < (b + 1) * 64; j++) expect(Math.abs(x[j]! - back[j]!)).toBeLessThanOrEqual(m * ((1 - 0.6961928009986877) / 2) + m * 0.01);
    }
  });
  test('relative RMS errors of N(0, 1) weights and bytes per weight (stated in the README)', () => {
    const stats: Record<string, [number, number]> = {};
    for (const type of ['q8_0', 'q4_0', 'nf4'] as QuantType[]) {
      const q = quantizeValues(x, [64, 512], type);
      const back = dequantizeValues(q);
      let se = 0, ss = 0;
      x.forEach((v, i) => { se += (v - back[i]!) ** 2; ss += v * v; });
      stats[type] = [Math.sqrt(se / ss), quantizedBytes(q) / x.length];
    }
    expect(stats['q8_0']![0]).toBeLessThan(0.01);
    expect(stats['q4_0']![0]).toBeLessThan(0.15);
    expect(stats['nf4']![0]).toBeLessThan(0.12);
    expect(stats['q8_0']![1]).toBe(34 / 32);
    expect(stats['q4_0']![1]).toBe(18 / 32);
    console.log('relative RMS error, bytes/weight:', JSON.stringify(stats));
  });
  test('slices dequantize like the whole (a row panel of a matrix)', () => {
    for (const type of ['q8_0', 'q4_0', 'nf4'] as QuantType[]) {
      const q = quantizeValues(x, [64, 512], type);
      expect(Array.from(dequantizeValues(q, 3 * 512, 5 * 512))).toEqual(Array.from(dequantizeValues(q).subarray(3 * 512, 8 * 512)));
    }
  });
});

describe('bad input', () => {
  test('rows that are not whole blocks, empty tensors, unknown types', () => {
    expect(() => quantizeValues(new Float32Array(40), [2, 20], 'q8_0', 'fc.weight')).toThrow('fc.weight has shape [2, 20]: q8_0 needs the last dimension to be a multiple of 32');
    expect(() => quantizeValues(new Float32Array(0), [0, 32], 'q4_0')).toThrow('nothing to quantize');
    expect(() => quantizeValues(new Float32Array(32), [32], 'q5_k' as QuantType)).toThrow('unknown type "q5_k" (known: q8_0, q4_0, nf4)');
    expect(() => dequantizeValues(quantizeValues(new Float32Array(64), [64], 'q8_0'), 16, 32)).toThrow('whole blocks of 32');
  });
});
