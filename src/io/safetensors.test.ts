// safetensors: files from the reference library and an independent Python writer, round trips, and every malformed case.
// Expected values: test/data/safetensors/expected.json, written by scripts/gen_safetensors_fixtures.py (plain Python + numpy/torch).

import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import '../index.js';
import { tensor } from '../tensor/create.js';
import { memory } from '../tensor/memory.js';
import type { TypedArray } from '../tensor/dtype.js';
import type { Tensor } from '../tensor/tensor.js';
import { loadSafetensors, parseSafetensors, readSafetensorsHeader, saveSafetensors, serializeSafetensors } from './safetensors.js';

const dataPath = (rel: string): string => fileURLToPath(new URL(`../../test/data/${rel}`, import.meta.url));
const MODEL = dataPath('hf/gpt2/model.safetensors');
const REF = dataPath('hf/gpt2/ref.safetensors');

interface Expected {
  dtype: string;
  shape: number[];
  f32bits?: number[];
  f64bits?: number[];
  ints?: number[];
}
interface Fixture {
  gpt2_model: { metadata: Record<string, string>; tensors: Record<string, { dtype: string; shape: number[]; head_f32bits: number[]; tail_f32bits: number[]; sum: number }> };
  gpt2_ref: Record<string, Expected> & { grad_probe_head: number[] };
  dtypes: { metadata: Record<string, string>; tensors: Record<string, Expected> };
  unaligned: Record<string, Expected>;
  f32_to_f16: { f32bits: number[]; bits: number[] };
  f32_to_bf16: { f32bits: number[]; bits: number[] };
}
let fx: Fixture;
let dir: string;

beforeAll(async () => {
  fx = JSON.parse(await readFile(dataPath('safetensors/expected.json'), 'utf8')) as Fixture;
  dir = await mkdtemp(join(tmpdir(), 'attend-safetensors-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const fromF32Bits = (bits: number[]): number[] => [...new Float32Array(new Uint32Array(bits).buffer)];
const fromF64Bits = (bits: number[]): number[] => [...new Float64Array(new Uint32Array(bits).buffer)];

/** Exact equality that treats any NaN as equal to any NaN and tells -0 from 0. */
function expectSameValues(actual: TypedArray | number[], expected: number[], label: string): void {
  expect(actual.length, `${label} length`).toBe(expected.length);
  expected.forEach((e, i) => {
    const a = actual[i]!;
    if (Number.isNaN(e)) expect(Number.isNaN(a), `${label}[${i}] is NaN`).toBe(true);
    else expect(Object.is(a, e), `${label}[${i}]: got ${a}, expected ${e}`).toBe(true);
  });
}

const LOADED_AS: Record<string, string> = { F32: 'float32', F16: 'float16', BF16: 'bfloat16', F64: 'float64', I64: 'int32', I32: 'int32', U8: 'uint8', BOOL: 'bool' };

async function expectTensor(t: Tensor | undefined, e: Expected, label: string): Promise<void> {
  expect(t, label).toBeDefined();
  expect(t!.shape, `${label} shape`).toEqual(e.shape);
  expect(t!.dtype, `${label} dtype`).toBe(LOADED_AS[e.dtype]);
  const want = e.f32bits ? fromF32Bits(e.f32bits) : e.f64bits ? fromF64Bits(e.f64bits) : e.ints!;
  expectSameValues(await t!.data(), want, label);
}

describe('reading files written by the reference library (GPT-2 fixture)', () => {
  test('every tensor has the shape the config implies and the values plain Python reads', async () => {
    const config = JSON.parse(await readFile(dataPath('hf/gpt2/config.json'), 'utf8')) as Record<string, number>;
    const { n_embd: d, vocab_size: vocab, n_positions: positions, n_layer: layers } = config;
    const w = await loadSafetensors(MODEL);
    expect(Object.keys(w).sort()).toEqual(Object.keys(fx.gpt2_model.tensors).sort());
    expect(w['transformer.wte.weight']!.shape).toEqual([vocab, d]);
    expect(w['transformer.wpe.weight']!.shape).toEqual([positions, d]);
    for (let l = 0; l < layers!; l++) {
      expect(w[`transformer.h.${l}.attn.c_attn.weight`]!.shape).toEqual([d, 3 * d!]);
      expect(w[`transformer.h.${l}.mlp.c_fc.weight`]!.shape).toEqual([d, 4 * d!]);
      expect(w[`transformer.h.${l}.ln_1.weight`]!.shape).toEqual([d]);
    }
    for (const [key, e] of Object.entries(fx.gpt2_model.tensors)) {
      const t = w[key]!;
      expect(t.shape, key).toEqual(e.shape);
      expect(t.dtype, key).toBe('float32');
      const data = await t.data();
      expectSameValues(data.slice(0, 5), fromF32Bits(e.head_f32bits), `${key} head`);
      expectSameValues(data.slice(-3), fromF32Bits(e.tail_f32bits), `${key} tail`);
      expect([...data].reduce((a, b) => a + b, 0), `${key} sum`).toBeCloseTo(e.sum, 9);
    }
  });

  test('readSafetensorsHeader gives names, dtypes, shapes and metadata without the data', async () => {
    const h = await readSafetensorsHeader(MODEL);
    expect(h.metadata).toEqual(fx.gpt2_model.metadata);
    for (const [key, e] of Object.entries(fx.gpt2_model.tensors)) {
      expect(h.tensors[key]?.dtype, key).toBe(e.dtype);
      expect(h.tensors[key]?.shape, key).toEqual(e.shape);
    }
    const end = Math.max(...Object.values(h.tensors).map((t) => t.dataOffsets[1]));
    expect(h.dataStart + end).toBe((await stat(MODEL)).size);
  });

  test('I64 inputs load as int32, and F32 at offsets that are not 8-aligned read correctly', async () => {
    const r = await loadSafetensors(REF);
    for (const key of ['input_ids', 'attention_mask', 'gen.input_ids', 'loss', 'grad_loss']) await expectTensor(r[key], fx.gpt2_ref[key]!, key);
    expectSameValues((await r['grad_probe']!.data()).slice(0, 8), fromF32Bits(fx.gpt2_ref.grad_probe_head), 'grad_probe');
  });

  test('writing the loaded checkpoint back gives the original file byte for byte', async () => {
    const original = new Uint8Array(await readFile(MODEL));
    const bytes = await serializeSafetensors(await loadSafetensors(MODEL), fx.gpt2_model.metadata);
    expect(bytes.length).toBe(original.length);
    expect(Buffer.from(bytes).equals(original)).toBe(true);
  });
});

describe('every dtype, from an independent writer', () => {
  test('F32, F64, F16, BF16 (with subnormals, inf, nan), I64, I32, U8, BOOL, empty and 0-d tensors', async () => {
    const t = await loadSafetensors(dataPath('safetensors/dtypes.safetensors'));
    for (const [key, e] of Object.entries(fx.dtypes.tensors)) await expectTensor(t[key], e, key);
    expect((await readSafetensorsHeader(dataPath('safetensors/dtypes.safetensors'))).metadata).toEqual(fx.dtypes.metadata);
  });

  test('tensors at unaligned offsets (F64 after a 5-byte BOOL) are copied before being viewed', async () => {
    const t = await loadSafetensors(dataPath('safetensors/unaligned.safetensors'));
    for (const [key, e] of Object.entries(fx.unaligned)) await expectTensor(t[key], e, key);
  });

  test('parseSafetensors on bytes in memory gives the same tensors, on the device asked for', async () => {
    const bytes = new Uint8Array(await readFile(dataPath('safetensors/unaligned.safetensors')));
    // An odd byteOffset into a larger buffer, as a slice of a fetched archive would be.
    const shifted = new Uint8Array(bytes.length + 3);
    shifted.set(bytes, 3);
    const t = parseSafetensors(shifted.subarray(3), 'unaligned', { device: 'cpu' });
    for (const [key, e] of Object.entries(fx.unaligned)) {
      await expectTensor(t[key], e, key);
      expect(t[key]!.device).toBe('cpu');
    }
  });
});

describe('writing', () => {
  test('round trip of every dtype through a file, with metadata, and no temp file left behind', async () => {
    const src: Record<string, Tensor> = {
      f32: tensor([[1.5, -0, Infinity], [NaN, 1e-45, -3.25]]),
      f64: tensor([0.1, -1e300, 5e-324], { dtype: 'float64' }),
      i32: tensor([-(2 ** 31), 0, 2 ** 31 - 1], { dtype: 'int32' }),
      u8: tensor([0, 7, 255], { dtype: 'uint8' }),
      mask: tensor([true, false, true]),
      empty: tensor([], { shape: [0, 4] }),
      scalar: tensor([2.5], { shape: [] }),
    };
    const path = join(dir, 'roundtrip.safetensors');
    await saveSafetensors(path, src, { format: 'pt', step: '12' });
    const back = await loadSafetensors(path);
    expect(Object.keys(back).sort()).toEqual(Object.keys(src).sort());
    for (const [key, t] of Object.entries(src)) {
      expect(back[key]!.dtype, key).toBe(t.dtype);
      expect(back[key]!.shape, key).toEqual(t.shape);
      expectSameValues(await back[key]!.data(), [...(await t.data())], key);
    }
    const h = await readSafetensorsHeader(path);
    expect(h.metadata).toEqual({ format: 'pt', step: '12' });
    // The reference layout: widest dtype first, then by name; header padded to 8 bytes.
    expect(Object.keys(h.tensors)).toEqual(['f64', 'empty', 'f32', 'scalar', 'i32', 'u8', 'mask']);
    expect(h.dataStart % 8).toBe(0);
    expect((await readdir(dir)).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });

  test('float32 -> F16 rounds like numpy (ties to even, overflow to inf, subnormals)', async () => {
    await expectHalfBits('float16', fx.f32_to_f16, 'F16');
  });

  test('float32 -> BF16 rounds like torch', async () => {
    await expectHalfBits('bfloat16', fx.f32_to_bf16, 'BF16');
  });

  async function expectHalfBits(dtype: 'float16' | 'bfloat16', table: { f32bits: number[]; bits: number[] }, name: string): Promise<void> {
    const x = tensor(new Float32Array(new Uint32Array(table.f32bits).buffer));
    const ids = tensor([1, 2], { dtype: 'int32' }); // not a float: stays I32
    const bytes = await serializeSafetensors({ x, ids }, undefined, { dtype });
    const h = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + Number(new DataView(bytes.buffer).getBigUint64(0, true))))) as Record<string, { dtype: string; data_offsets: number[] }>;
    expect(h['x']!.dtype).toBe(name);
    expect(h['ids']!.dtype).toBe('I32');
    const start = 8 + Number(new DataView(bytes.buffer).getBigUint64(0, true)) + h['x']!.data_offsets[0]!;
    const got = new Uint16Array(bytes.slice(start, start + 2 * table.bits.length).buffer);
    const isNaN16 = (b: number): boolean => (dtype === 'float16' ? (b & 0x7c00) === 0x7c00 && (b & 0x3ff) !== 0 : (b & 0x7f80) === 0x7f80 && (b & 0x7f) !== 0);
    table.bits.forEach((want, i) => {
      if (isNaN16(want)) expect(isNaN16(got[i]!), `element ${i} is NaN`).toBe(true);
      else expect(got[i], `element ${i} (float32 bits ${table.f32bits[i]})`).toBe(want);
    });
    // And back: loading keeps the stored half dtype.
    const back = parseSafetensors(bytes);
    expect(back['x']!.dtype).toBe(dtype);
    expect(await back['ids']!.tolist()).toEqual([1, 2]);
  }

  test('F16 applies to float64 tensors too', async () => {
    const back = parseSafetensors(await serializeSafetensors({ x: tensor([0.5, -2], { dtype: 'float64' }) }, undefined, { dtype: 'float16' }));
    expect(back['x']!.dtype).toBe('float16');
    expect(await back['x']!.tolist()).toEqual([0.5, -2]);
  });

  test('a failed save leaves the previous file untouched and no temp file', async () => {
    const path = join(dir, 'atomic.safetensors');
    await saveSafetensors(path, { a: tensor([1, 2]) });
    const before = await readFile(path);
    const broken = tensor([3, 4]);
    broken.data = () => Promise.reject(new Error('device lost'));
    await expect(saveSafetensors(path, { a: tensor([5, 6]), b: broken })).rejects.toThrow('device lost');
    expect((await readFile(path)).equals(before)).toBe(true);
    expect((await readdir(dir)).filter((f) => f.startsWith('atomic.safetensors.tmp-'))).toEqual([]);
  });

  test('bad arguments are errors that name the key or option', async () => {
    await expect(serializeSafetensors({ __metadata__: tensor([1]) })).rejects.toThrow(/'__metadata__' is reserved/);
    await expect(serializeSafetensors({ a: [1, 2] as unknown as Tensor })).rejects.toThrow(/'a' is not a Tensor/);
    const gone = tensor([1]);
    gone.dispose();
    await expect(serializeSafetensors({ gone })).rejects.toThrow(/tensor 'gone' was disposed/);
    await expect(serializeSafetensors({ a: tensor([1]) }, { n: 3 as unknown as string })).rejects.toThrow(/metadata 'n' must be a string/);
    await expect(serializeSafetensors({ a: tensor([1]) }, undefined, { dtype: 'int8' as 'float16' })).rejects.toThrow(/dtype must be 'float16' or 'bfloat16', got "int8"/);
  });
});

// ---- malformed files ----

/** A file with the given header text (or an explicit header length) and data bytes. */
function build(header: string | object, data: Uint8Array | number = 0, lengthOverride?: number): Uint8Array {
  const json = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const body = typeof data === 'number' ? new Uint8Array(data) : data;
  const out = new Uint8Array(8 + json.length + body.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(lengthOverride ?? json.length), true);
  out.set(json, 8);
  out.set(body, 8 + json.length);
  return out;
}

const f32 = (shape: number[], begin: number, end: number) => ({ dtype: 'F32', shape, data_offsets: [begin, end] });

/** Each bad file is rejected by loadSafetensors, readSafetensorsHeader and parseSafetensors with a message naming it. */
async function expectRejected(name: string, bytes: Uint8Array, problem: RegExp, headerOk = false): Promise<void> {
  const path = join(dir, `${name}.safetensors`);
  await writeFile(path, bytes);
  const named = (e: unknown): string => (e as Error).message;
  const fromFile = await loadSafetensors(path).then(() => null, named);
  expect(fromFile, `${name}: loadSafetensors should fail`).not.toBeNull();
  expect(fromFile).toContain(path);
  expect(fromFile).toMatch(problem);
  expect(() => parseSafetensors(bytes, `${name}.bin`)).toThrow(`${name}.bin`);
  expect(() => parseSafetensors(bytes, `${name}.bin`)).toThrow(problem);
  if (headerOk) await expect(readSafetensorsHeader(path)).resolves.toBeDefined();
  else await expect(readSafetensorsHeader(path)).rejects.toThrow(problem);
}

describe('malformed files are errors naming the file and the problem', () => {
  test('file shorter than 8 bytes', async () => {
    await expectRejected('short', new Uint8Array([1, 0, 0, 0, 0]), /file is 5 bytes, too short for the 8-byte header length/);
    await expectRejected('empty', new Uint8Array(0), /file is 0 bytes/);
  });
  test('header length past the end of the file', async () => {
    await expectRejected('long-header', build('{}', 0, 1000), /header length 1000 runs past the end of the file \(10 bytes\)/);
    await expectRejected('huge-header', build('{}', 0, 2 ** 60), /header length 1152921504606846976 runs past the end/);
  });
  test('header that is not UTF-8, not JSON, or not an object', async () => {
    const notUtf8 = build('{}');
    notUtf8[9] = 0xff;
    await expectRejected('not-utf8', notUtf8, /header is not valid UTF-8/);
    await expectRejected('not-json', build('{"a": {'), /header is not valid JSON/);
    await expectRejected('array', build('[1, 2]'), /header must be a JSON object, got an array/);
    await expectRejected('string', build('"hello"'), /header must be a JSON object, got "hello"/);
    await expectRejected('null', build('null'), /header must be a JSON object, got null/);
  });
  test('entries that are not objects or miss dtype, shape or data_offsets', async () => {
    await expectRejected('entry-number', build({ w: 5 }), /tensor 'w': entry must be an object/);
    await expectRejected('no-dtype', build({ w: { shape: [1], data_offsets: [0, 4] } }, 4), /tensor 'w': entry is missing dtype/);
    await expectRejected('no-shape', build({ w: { dtype: 'F32', data_offsets: [0, 4] } }, 4), /tensor 'w': entry is missing shape/);
    await expectRejected('no-offsets', build({ w: { dtype: 'F32', shape: [1] } }, 4), /tensor 'w': entry is missing data_offsets/);
  });
  test('fields of the wrong type', async () => {
    await expectRejected('dtype-type', build({ w: { dtype: 32, shape: [1], data_offsets: [0, 4] } }, 4), /tensor 'w': dtype must be a string, got 32/);
    await expectRejected('shape-type', build({ w: { dtype: 'F32', shape: '4', data_offsets: [0, 4] } }, 4), /tensor 'w': shape must be an array of non-negative integers, got "4"/);
    await expectRejected('offsets-one', build({ w: { dtype: 'F32', shape: [1], data_offsets: [4] } }, 4), /tensor 'w': data_offsets must be two non-negative integers \[begin, end\], got \[4\]/);
    await expectRejected('offsets-str', build({ w: { dtype: 'F32', shape: [1], data_offsets: ['0', '4'] } }, 4), /data_offsets must be two non-negative integers/);
    await expectRejected('offsets-neg', build({ w: { dtype: 'F32', shape: [1], data_offsets: [-4, 0] } }, 4), /data_offsets must be two non-negative integers/);
    await expectRejected('metadata', build({ __metadata__: { epoch: 3 } }), /__metadata__ must be an object of string values/);
  });
  test('negative or non-integer shape', async () => {
    await expectRejected('shape-neg', build({ w: f32([2, -1], 0, 0) }), /tensor 'w': shape must be an array of non-negative integers, got \[2,-1\]/);
    await expectRejected('shape-frac', build({ w: f32([1.5], 0, 6) }, 6), /tensor 'w': shape must be an array of non-negative integers, got \[1.5\]/);
  });
  test('data_offsets outside the data region or reversed', async () => {
    await expectRejected('past-end', build({ w: f32([2], 0, 8) }, 4), /tensor 'w': data_offsets \[0, 8\] run past the end of the data region \(4 bytes\)/);
    await expectRejected('reversed', build({ w: f32([1], 4, 0) }, 4), /tensor 'w': data_offsets \[4, 0\] end before they begin/);
  });
  test('data_offsets whose length does not match numel * element size', async () => {
    await expectRejected('size', build({ w: f32([2, 3], 0, 20) }, 20), /tensor 'w': data_offsets \[0, 20\] hold 20 bytes, but shape \[2, 3\] of F32 needs 24/);
    await expectRejected('sub-byte', build({ w: { dtype: 'F4', shape: [3], data_offsets: [0, 2] } }, 2), /tensor 'w': shape \[3\] of F4 is not a whole number of bytes/);
    await expectRejected('too-large', build({ w: f32([2 ** 30, 2 ** 30, 2 ** 30], 0, 4) }, 4), /tensor 'w': shape \[1073741824, 1073741824, 1073741824\] is too large/);
  });
  test('overlapping tensors', async () => {
    await expectRejected('overlap', build({ a: f32([2], 0, 8), b: f32([2], 4, 12) }, 12), /tensors 'a' and 'b' overlap/);
  });
  test('bytes of the data region not covered by any tensor (a gap, or trailing bytes)', async () => {
    await expectRejected('gap', build({ a: f32([1], 0, 4), b: f32([1], 8, 12) }, 12), /bytes 4\.\.8 of the data region are not covered by any tensor/);
    await expectRejected('trailing', build({ a: f32([1], 0, 4) }, 8), /bytes 4\.\.8 at the end of the data region are not covered by any tensor/);
  });
  test('unknown dtypes, and format dtypes this library cannot load', async () => {
    await expectRejected('unknown', build({ w: { dtype: 'F12', shape: [1], data_offsets: [0, 2] } }, 2), /tensor 'w': unknown dtype 'F12'/);
    // I16 and F8_E4M3 are valid safetensors: the header reads, loading names the dtype.
    await expectRejected('i16', build({ w: { dtype: 'I16', shape: [2], data_offsets: [0, 4] } }, 4), /tensor 'w': dtype I16 is not supported \(supported: F32, F64, F16, BF16, I64, I32, U8, BOOL\)/, true);
    await expectRejected('f8', build({ w: { dtype: 'F8_E4M3', shape: [3], data_offsets: [0, 3] } }, 3), /tensor 'w': dtype F8_E4M3 is not supported/, true);
    expect((await readSafetensorsHeader(join(dir, 'i16.safetensors'))).tensors['w']).toEqual({ dtype: 'I16', shape: [2], dataOffsets: [0, 4] });
  });
  test('I64 values outside int32', async () => {
    const data = new Uint8Array(new BigInt64Array([5n, 2n ** 31n, -1n]).buffer);
    await expectRejected('i64-big', build({ ids: { dtype: 'I64', shape: [3], data_offsets: [0, 24] } }, data), /tensor 'ids': I64 value 2147483648 at element 1 does not fit in int32/, true);
    const low = new Uint8Array(new BigInt64Array([-(2n ** 31n) - 1n]).buffer);
    await expectRejected('i64-small', build({ ids: { dtype: 'I64', shape: [1], data_offsets: [0, 8] } }, low), /I64 value -2147483649 at element 0 does not fit in int32/, true);
  });
  test('a tensor that fails to load frees the ones loaded before it', async () => {
    // F32 'a' at bytes 0..4 loads first; I64 'ids' at 4..12 holds 2^40, which int32 cannot.
    const data = new Uint8Array(12);
    new DataView(data.buffer).setBigInt64(4, 2n ** 40n, true);
    const bytes = build({ a: f32([1], 0, 4), ids: { dtype: 'I64', shape: [1], data_offsets: [4, 12] } }, data);
    const path = join(dir, 'partial.safetensors');
    await writeFile(path, bytes);
    const before = memory().tensors;
    await expect(loadSafetensors(path)).rejects.toThrow(/tensor 'ids': I64 value 1099511627776 at element 0 does not fit in int32/);
    expect(() => parseSafetensors(bytes, 'partial')).toThrow(/tensor 'ids': I64 value/);
    expect(memory().tensors).toBe(before);
  });
  test('BOOL bytes other than 0 and 1 read as true', async () => {
    const t = parseSafetensors(build({ m: { dtype: 'BOOL', shape: [3], data_offsets: [0, 3] } }, new Uint8Array([0, 2, 255])));
    expect(await t['m']!.tolist()).toEqual([false, true, true]);
    expect([...(await t['m']!.data())]).toEqual([0, 1, 1]);
  });
  test('a missing file names the path', async () => {
    await expect(loadSafetensors(join(dir, 'nope.safetensors'))).rejects.toThrow(/nope\.safetensors/);
  });
});
