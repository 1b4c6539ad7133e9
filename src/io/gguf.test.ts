// GGUF reading and writing: a file packed by hand from the spec, metadata of every type, alignment, tensor types, bad files.

import { describe, expect, test } from 'vitest';
import { float16ToFloat32 } from '../tensor/dtype.js';
import {
  decodeGgufTensor, encodeGgufTensor, gguf, parseGgufHeader, serializeGguf, type GgufKV, type GgufTensorType,
} from './gguf.js';

/** Little-endian bytes from parts: [kind, value] pairs. */
function pack(parts: ([('u32' | 'u64' | 'f32'), number] | ['str', string] | ['raw', number[]])[]): Uint8Array {
  const out: number[] = [];
  for (const [kind, v] of parts) {
    if (kind === 'str') {
      const b = new TextEncoder().encode(v);
      out.push(...pack([['u64', b.length]]), ...b);
    } else if (kind === 'raw') out.push(...v);
    else {
      const n = kind === 'u64' ? 8 : 4;
      const dv = new DataView(new ArrayBuffer(n));
      if (kind === 'u32') dv.setUint32(0, v, true);
      else if (kind === 'f32') dv.setFloat32(0, v, true);
      else dv.setBigUint64(0, BigInt(v), true);
      out.push(...new Uint8Array(dv.buffer));
    }
  }
  return Uint8Array.from(out);
}

/** A v3 file written by hand from gguf.md: one string KV, one u32 array KV, tensor "w" with ne = [3, 2] (torch [2, 3]) in F32. */
function handMade(version = 3): Uint8Array {
  const head = pack([
    ['raw', [0x47, 0x47, 0x55, 0x46]], ['u32', version], ['u64', 1], ['u64', 2],
    ['str', 'general.architecture'], ['u32', 8], ['str', 'llama'],
    ['str', 'xs'], ['u32', 9], ['u32', 4], ['u64', 3], ['u32', 7], ['u32', 8], ['u32', 9],
    ['str', 'w'], ['u32', 2], ['u64', 3], ['u64', 2], ['u32', 0], ['u64', 0],
  ]);
  const padded = new Uint8Array(Math.ceil(head.length / 32) * 32);
  padded.set(head);
  return Uint8Array.from([...padded, ...pack([1, 2, 3, 4, 5, 6].map((v): ['f32', number] => ['f32', v]))]);
}

describe('reading', () => {
  test('a file packed by hand: metadata, tensor info (ne reversed to torch order), data after 32-byte padding', () => {
    const bytes = handMade();
    const h = parseGgufHeader(bytes);
    expect(h.version).toBe(3);
    expect(h.metadata['general.architecture']).toEqual({ type: 'string', value: 'llama' });
    expect(h.metadata['xs']).toEqual({ type: 'array', itemType: 'uint32', value: [7, 8, 9] });
    expect(h.alignment).toBe(32);
    expect(h.tensors).toEqual([{ name: 'w', shape: [2, 3], type: 'F32', typeId: 0, offset: h.dataStart, nbytes: 24 }]);
    expect(h.dataStart % 32).toBe(0);
    const w = h.tensors[0]!;
    expect(Array.from(decodeGgufTensor(w, bytes.subarray(w.offset, w.offset + w.nbytes)))).toEqual([1, 2, 3, 4, 5, 6]);
  });
  test('version 2 has the same layout', () => {
    expect(parseGgufHeader(handMade(2)).version).toBe(2);
  });
});

describe('writing and reading back', () => {
  test('metadata of every value type, arrays (of strings, of arrays) included, keeps values and types', () => {
    const meta: Record<string, GgufKV> = {
      u8: { type: 'uint8', value: 255 }, i8: { type: 'int8', value: -128 }, u16: { type: 'uint16', value: 65535 }, i16: { type: 'int16', value: -32768 },
      u32: { type: 'uint32', value: 4294967295 }, i32: { type: 'int32', value: -2147483648 }, f32: { type: 'float32', value: 0.5 },
      f64: { type: 'float64', value: 0.1 }, b: { type: 'bool', value: true }, s: { type: 'string', value: 'héllo ▁ 👍' },
      u64: { type: 'uint64', value: 2 ** 53 - 1 }, i64: { type: 'int64', value: -5 }, big: { type: 'uint64', value: 2n ** 64n - 1n },
      strs: gguf.strs(['a', '', 'ü']), f32s: gguf.f32s([1.5, -2]), nested: { type: 'array', itemType: 'array', value: [] },
      empty: gguf.i32s([]),
    };
    const h = parseGgufHeader(serializeGguf(meta, []));
    expect(h.metadata).toEqual(meta);
    expect(Object.keys(h.metadata)).toEqual(Object.keys(meta));
  });
  test('tensors of each type at multiples of general.alignment (64), decoded as written', () => {
    const values = Float32Array.from({ length: 64 }, (_, i) => Math.sin(i) * 3);
    const types: GgufTensorType[] = ['F32', 'F16', 'BF16', 'Q8_0', 'Q4_0'];
    const tensors = types.map((type) => ({ name: `t.${type}`, shape: [2, 32], type, data: encodeGgufTensor(values, type) }));
    const bytes = serializeGguf({ 'general.alignment': gguf.u32(64) }, tensors);
    const h = parseGgufHeader(bytes);
    expect(h.alignment).toBe(64);
    for (const [i, info] of h.tensors.entries()) {
      expect(info.offset % 64).toBe(0);
      expect(info.shape).toEqual([2, 32]);
      expect(info.type).toBe(types[i]);
      const back = decodeGgufTensor(info, bytes.subarray(info.offset, info.offset + info.nbytes));
      const tol = { F32: 0, F16: 2e-3, BF16: 2e-2, Q8_0: 0.02, Q4_0: 0.4 }[types[i]!];
      back.forEach((v, j) => expect(Math.abs(v - values[j]!)).toBeLessThanOrEqual(tol));
    }
    // F16 bytes are IEEE half precision, little-endian.
    const f16 = h.tensors[1]!;
    expect(float16ToFloat32(bytes[f16.offset + 2]! | (bytes[f16.offset + 3]! << 8))).toBeCloseTo(Math.sin(1) * 3, 2);
  });
});

describe('bad files: clear errors naming the key or tensor', () => {
  test('magic, version, truncation, counts, value and tensor types', () => {
    const good = handMade();
    const bad = (patch: (b: Uint8Array) => Uint8Array) => () => parseGgufHeader(patch(Uint8Array.from(good)), 'm.gguf');
    expect(bad((b) => { b[0] = 0x48; return b; })).toThrow('m.gguf: not a GGUF file');
    expect(bad((b) => { b[4] = 1; return b; })).toThrow('m.gguf: GGUF version 1 is not supported (2 and 3 are)');
    expect(bad((b) => b.subarray(0, 30))).toThrow(/^m\.gguf: the tensor count is 1, more than the \d+ bytes left in the file can hold \(corrupt or truncated file\)/);
    expect(bad((b) => b.subarray(0, 60))).toThrow('m.gguf: truncated GGUF file');
    expect(bad((b) => b.subarray(0, good.length - 4))).toThrow('m.gguf: truncated GGUF file: tensor w (F32 [2, 3]) needs bytes');
    expect(bad((b) => { b[16] = 0xff; b[17] = 0xff; b[18] = 0xff; return b; })).toThrow('m.gguf: the metadata count is');
    // The value type of "general.architecture" (u32 after the key) set to 13.
    expect(bad((b) => { b[24 + 8 + 20] = 13; return b; })).toThrow('m.gguf: metadata key "general.architecture" has unknown value type 13');
    // The tensor info ends with its u32 type and u64 offset: the type field sits 12 bytes before the header's end.
    const withType = (id: number): Uint8Array => {
      const b = Uint8Array.from(good);
      new DataView(b.buffer).setUint32(HAND_MADE_HEADER - 12, id, true);
      return b;
    };
    expect(() => parseGgufHeader(withType(99), 'm.gguf')).toThrow('m.gguf: tensor w has unknown ggml type 99');
    expect(() => parseGgufHeader(withType(12), 'm.gguf')).toThrow('m.gguf: tensor w (Q4_K) has rows of 3 values, not a multiple of the block size 256');
  });
  test('a type attend does not decode (Q4_K) is named with its tensor when its data is asked for', () => {
    const head = pack([['raw', [0x47, 0x47, 0x55, 0x46]], ['u32', 3], ['u64', 1], ['u64', 0], ['str', 'blk.0.x'], ['u32', 1], ['u64', 256], ['u32', 12], ['u64', 0]]);
    const bytes = new Uint8Array(Math.ceil(head.length / 32) * 32 + 144);
    bytes.set(head);
    const h = parseGgufHeader(bytes, 'k.gguf');
    expect(h.tensors[0]).toMatchObject({ name: 'blk.0.x', type: 'Q4_K', nbytes: 144 });
    expect(() => decodeGgufTensor(h.tensors[0]!, bytes.subarray(h.tensors[0]!.offset), 'k.gguf')).toThrow('k.gguf: tensor blk.0.x has ggml type Q4_K, which attend cannot read (supported: F32, F16, BF16, Q8_0, Q4_0)');
  });
});

/** Bytes of handMade()'s header before padding: 24 fixed, two KVs, one tensor info. */
const HAND_MADE_HEADER = 24 + (8 + 20 + 4 + 8 + 5) + (8 + 2 + 4 + 4 + 8 + 12) + (8 + 1 + 4 + 16 + 4 + 8);
