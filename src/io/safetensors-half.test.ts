// safetensors F16 / BF16: loaded as 2-byte tensors (no upcast), saved back bit-exact, cast on load when asked.

import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { CpuBuffer } from '../backend/cpu/index.js';
import { WasmBuffer } from '../backend/wasm/backend.js';
import '../index.js';
import { listDevices } from '../tensor/backend.js';
import { tensor } from '../tensor/create.js';
import { hasFloat64 } from '../test-util/devices.js';
import { encodeHalf, type HalfDType } from '../tensor/dtype.js';
import type { Tensor } from '../tensor/tensor.js';
import { parseSafetensors, serializeSafetensors } from './safetensors.js';

const DTYPES_FILE = fileURLToPath(new URL('../../test/data/safetensors/dtypes.safetensors', import.meta.url));

/** Bytes of the buffer behind a tensor: what the backend holds, not what a read returns (null: webgpu, which stores every dtype in 32-bit words). */
function storedBytes(t: Tensor): number | null {
  const b = t.buffer;
  if (b instanceof CpuBuffer) return b.data.byteLength;
  return b instanceof WasmBuffer ? b.bytes : null;
}

function dataRegion(bytes: Uint8Array, key: string): Uint8Array {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))) as Record<string, { data_offsets: [number, number] }>;
  const [begin, end] = header[key]!.data_offsets;
  return bytes.subarray(8 + n + begin, 8 + n + end);
}

// Every class of half value: zeros, subnormals, normals, the largest, infinities, quiet and signalling NaNs with payloads.
const SPECIAL: Record<HalfDType, number[]> = {
  float16: [0x0000, 0x8000, 0x0001, 0x83ff, 0x2e66, 0x3c00, 0x7bff, 0xfbff, 0x7c00, 0xfc00, 0x7e00, 0xfe01, 0x7c01, 0x7d55],
  bfloat16: [0x0000, 0x8000, 0x0001, 0x807f, 0x3dcd, 0x3f80, 0x7f7f, 0xff7f, 0x7f80, 0xff80, 0x7fc0, 0xffc1, 0x7f81, 0x7faa],
};

describe.each(listDevices())('F16 / BF16 on %s', (device) => {
  // The file also holds an F64 tensor: a device without float64 (webgpu) gets the whole file only with a dtype option.
  const plainDevice = hasFloat64(device) ? device : 'cpu';

  test('a file from the reference writer loads as 2-byte tensors and saves back bit-exact', async () => {
    const file = new Uint8Array(await readFile(DTYPES_FILE));
    const w = Object.fromEntries(Object.entries(parseSafetensors(file, DTYPES_FILE, { device: plainDevice })).map(([k, t]) => [k, k === 'f64' ? t : t.to(device)]));
    expect(w['f16']!.dtype).toBe('float16');
    expect(w['bf16']!.dtype).toBe('bfloat16');
    const saved = await serializeSafetensors({ f16: w['f16']!, bf16: w['bf16']! });
    for (const key of ['f16', 'bf16']) expect(Array.from(dataRegion(saved, key)), key).toEqual(Array.from(dataRegion(file, key)));
  });

  test('load -> save gives the same bytes, NaN payloads and subnormals included; storage is 2 bytes per element', async () => {
    const n = 4096;
    const tensors: Record<string, Tensor> = {};
    for (const dtype of ['float16', 'bfloat16'] as const) {
      const bits = new Uint16Array(n).map((_, i) => SPECIAL[dtype][i % SPECIAL[dtype].length]! ^ (i < SPECIAL[dtype].length ? 0 : i & 0x0f0));
      tensors[dtype] = tensor(bits, { dtype, shape: [64, 64], device });
    }
    const bytes = await serializeSafetensors(tensors, { format: 'pt' });
    const loaded = parseSafetensors(bytes, 'half', { device });
    for (const dtype of ['float16', 'bfloat16'] as const) {
      const t = loaded[dtype]!;
      expect(t.dtype).toBe(dtype);
      expect(t.shape).toEqual([64, 64]);
      // 2 bytes per element (the wasm allocator may round a block up, never to 4 bytes per element).
      const stored = storedBytes(t);
      if (stored !== null) {
        expect(stored).toBeGreaterThanOrEqual(2 * n);
        expect(stored).toBeLessThan(3 * n);
      }
      expect(Array.from(encodeHalf((await t.data()) as Float32Array, dtype))).toEqual(Array.from(encodeHalf((await tensors[dtype]!.data()) as Float32Array, dtype)));
    }
    expect(Array.from(await serializeSafetensors(loaded, { format: 'pt' }))).toEqual(Array.from(bytes));
  });

  test('the dtype option casts floating point tensors on load (as torch_dtype); integers are left alone', async () => {
    const file = new Uint8Array(await readFile(DTYPES_FILE));
    const plain = parseSafetensors(file, DTYPES_FILE, { device: plainDevice });
    const f32 = parseSafetensors(file, DTYPES_FILE, { device, dtype: 'float32' });
    expect(f32['f16']!.dtype).toBe('float32');
    expect(f32['bf16']!.dtype).toBe('float32');
    expect(f32['f64']!.dtype).toBe('float32');
    expect(f32['i32']!.dtype).toBe('int32');
    expect(f32['bool']!.dtype).toBe('bool');
    expect(Array.from(await f32['f16']!.data())).toEqual(Array.from(await plain['f16']!.data()));
    const bf = parseSafetensors(file, DTYPES_FILE, { device, dtype: 'bfloat16' });
    expect(bf['f32']!.dtype).toBe('bfloat16');
    expect(Array.from(await bf['f32']!.data())).toEqual(Array.from(await plain['f32']!.to('bfloat16').data()));
    expect(() => parseSafetensors(file, DTYPES_FILE, { dtype: 'int32' as never })).toThrow(/dtypes\.safetensors: option dtype must be one of float32, float64, float16, bfloat16, got "int32"/);
  });

  test('saving with dtype converts float tensors of any width, half ones included', async () => {
    const x = tensor([0.1, -2.5, 65520], { dtype: 'bfloat16', device });
    const back = parseSafetensors(await serializeSafetensors({ x }, undefined, { dtype: 'float16' }), 'x', { device });
    expect(back['x']!.dtype).toBe('float16');
    expect(Array.from(await back['x']!.data())).toEqual(Array.from(await x.to('float16').data()));
  });
});
