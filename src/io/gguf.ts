// GGUF files (llama.cpp's format) in and out: header, typed metadata, tensor infos, aligned tensor data; versions 2 and 3.
//
// Reference: ggml/docs/gguf.md and gguf-py (constants.py, gguf_reader.py, gguf_writer.py). Layout, little-endian:
// "GGUF", u32 version, u64 tensor count, u64 metadata count; metadata (string key, u32 type, value); tensor infos
// (string name, u32 n_dims, u64 ne[n_dims] innermost first, u32 ggml type, u64 offset into the data region); padding to
// `general.alignment` (default 32); the data region, every tensor at an aligned offset. Strings are u64 length + UTF-8.
// Every count and length is checked against the bytes left before anything is allocated for it.

import { fs } from '#platform';
import { float16ToFloat32, float32ToFloat16, bfloat16ToFloat32, float32ToBfloat16 } from '../tensor/dtype.js';
import { fmtShape, sizeOf } from '../tensor/shape.js';
import { dequantizeQ4_0, dequantizeQ8_0, quantizeQ4_0, quantizeQ8_0 } from '../quant/formats.js';

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
export const GGUF_DEFAULT_ALIGNMENT = 32;

/** Metadata value types (gguf.md GGUFValueType), by their ids. */
export const GGUF_VALUE_TYPES = ['uint8', 'int8', 'uint16', 'int16', 'uint32', 'int32', 'float32', 'bool', 'string', 'array', 'uint64', 'int64', 'float64'] as const;
export type GgufValueType = (typeof GGUF_VALUE_TYPES)[number];
export type GgufScalar = number | bigint | boolean | string;
export type GgufValue = GgufScalar | GgufScalar[] | GgufValue[];

/** One metadata entry with its stored type (arrays: the element type too), so that writing it back keeps the types. */
export interface GgufKV {
  type: GgufValueType;
  value: GgufValue;
  /** Arrays: the element type. */
  itemType?: GgufValueType;
}

/** ggml tensor types: id -> [name, values per block, bytes per block] (ggml.c type_traits). */
const GGML_TYPES: Record<number, readonly [string, number, number]> = {
  0: ['F32', 1, 4], 1: ['F16', 1, 2], 2: ['Q4_0', 32, 18], 3: ['Q4_1', 32, 20], 6: ['Q5_0', 32, 22], 7: ['Q5_1', 32, 24],
  8: ['Q8_0', 32, 34], 9: ['Q8_1', 32, 36], 10: ['Q2_K', 256, 84], 11: ['Q3_K', 256, 110], 12: ['Q4_K', 256, 144],
  13: ['Q5_K', 256, 176], 14: ['Q6_K', 256, 210], 15: ['Q8_K', 256, 292], 16: ['IQ2_XXS', 256, 66], 17: ['IQ2_XS', 256, 74],
  18: ['IQ3_XXS', 256, 98], 19: ['IQ1_S', 256, 50], 20: ['IQ4_NL', 32, 18], 21: ['IQ3_S', 256, 110], 22: ['IQ2_S', 256, 82],
  23: ['IQ4_XS', 256, 136], 24: ['I8', 1, 1], 25: ['I16', 1, 2], 26: ['I32', 1, 4], 27: ['I64', 1, 8], 28: ['F64', 1, 8],
  29: ['IQ1_M', 256, 56], 30: ['BF16', 1, 2], 34: ['TQ1_0', 256, 54], 35: ['TQ2_0', 256, 66], 39: ['MXFP4', 32, 17],
};

/** The tensor types whose data attend reads and writes. */
export const GGUF_TENSOR_TYPES = ['F32', 'F16', 'BF16', 'Q8_0', 'Q4_0'] as const;
export type GgufTensorType = (typeof GGUF_TENSOR_TYPES)[number];
const TYPE_ID: Record<GgufTensorType, number> = { F32: 0, F16: 1, BF16: 30, Q8_0: 8, Q4_0: 2 };

export interface GgufTensorInfo {
  name: string;
  /** PyTorch order (outermost first): GGUF's ne reversed, e.g. a Linear weight [out, in]. */
  shape: number[];
  /** The ggml type's name ('F32', 'Q8_0', ...). */
  type: string;
  typeId: number;
  /** Absolute byte offset of the data in the file. */
  offset: number;
  nbytes: number;
}

export interface GgufHeader {
  version: number;
  metadata: Record<string, GgufKV>;
  tensors: GgufTensorInfo[];
  alignment: number;
  /** Absolute offset of the data region. */
  dataStart: number;
}

/** Thrown when the bytes end inside the header: the reader asks for more, or the file is truncated. */
class OutOfBytes extends Error {}

/** A little-endian cursor over the header bytes; every read checks the bytes left. */
class Cursor {
  pos = 0;
  private readonly view: DataView;
  constructor(private readonly bytes: Uint8Array, private readonly source: string, private readonly fileSize: number) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  need(n: number, what: string): void {
    if (this.pos + n <= this.bytes.byteLength) return;
    if (this.pos + n <= this.fileSize) throw new OutOfBytes();
    throw new Error(`${this.source}: truncated GGUF file: ${what} needs ${n} bytes at offset ${this.pos}, the file has ${this.fileSize}`);
  }
  u8(): number { this.need(1, 'a u8'); return this.view.getUint8(this.pos++); }
  i8(): number { this.need(1, 'an i8'); return this.view.getInt8(this.pos++); }
  u16(): number { this.need(2, 'a u16'); const v = this.view.getUint16(this.pos, true); this.pos += 2; return v; }
  i16(): number { this.need(2, 'an i16'); const v = this.view.getInt16(this.pos, true); this.pos += 2; return v; }
  u32(): number { this.need(4, 'a u32'); const v = this.view.getUint32(this.pos, true); this.pos += 4; return v; }
  i32(): number { this.need(4, 'an i32'); const v = this.view.getInt32(this.pos, true); this.pos += 4; return v; }
  f32(): number { this.need(4, 'a float32'); const v = this.view.getFloat32(this.pos, true); this.pos += 4; return v; }
  f64(): number { this.need(8, 'a float64'); const v = this.view.getFloat64(this.pos, true); this.pos += 8; return v; }
  u64(): bigint { this.need(8, 'a u64'); const v = this.view.getBigUint64(this.pos, true); this.pos += 8; return v; }
  i64(): bigint { this.need(8, 'an i64'); const v = this.view.getBigInt64(this.pos, true); this.pos += 8; return v; }
  /** A u64 count or size that must be a safe integer and, at `minBytes` each, fit in the rest of the file. */
  count(what: string, minBytes: number): number {
    const v = this.u64();
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || Number(v) * minBytes > this.fileSize - this.pos) {
      throw new Error(`${this.source}: ${what} is ${v}, more than the ${this.fileSize - this.pos} bytes left in the file can hold (corrupt or truncated file)`);
    }
    return Number(v);
  }
  str(what: string): string {
    const n = this.count(`the length of ${what}`, 1);
    this.need(n, what);
    const s = new TextDecoder('utf-8', { fatal: false }).decode(this.bytes.subarray(this.pos, this.pos + n));
    this.pos += n;
    return s;
  }
}

/** The smallest number of bytes a value of each type takes (arrays: type + count). */
const MIN_BYTES: Record<GgufValueType, number> = { uint8: 1, int8: 1, uint16: 2, int16: 2, uint32: 4, int32: 4, float32: 4, bool: 1, string: 8, array: 12, uint64: 8, int64: 8, float64: 8 };

/** u64 / i64 as a number when exact, else a bigint. */
const big = (v: bigint): number | bigint => (v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v);

function valueType(id: number, source: string, key: string): GgufValueType {
  const t = GGUF_VALUE_TYPES[id];
  if (t === undefined) throw new Error(`${source}: metadata key "${key}" has unknown value type ${id} (known: 0..12)`);
  return t;
}

function readValue(c: Cursor, type: GgufValueType, source: string, key: string): GgufKV {
  switch (type) {
    case 'uint8': return { type, value: c.u8() };
    case 'int8': return { type, value: c.i8() };
    case 'uint16': return { type, value: c.u16() };
    case 'int16': return { type, value: c.i16() };
    case 'uint32': return { type, value: c.u32() };
    case 'int32': return { type, value: c.i32() };
    case 'float32': return { type, value: c.f32() };
    case 'float64': return { type, value: c.f64() };
    case 'uint64': return { type, value: big(c.u64()) };
    case 'int64': return { type, value: big(c.i64()) };
    case 'bool': {
      const b = c.u8();
      if (b > 1) throw new Error(`${source}: metadata key "${key}": a bool must be 0 or 1, got ${b}`);
      return { type, value: b === 1 };
    }
    case 'string': return { type, value: c.str(`the value of "${key}"`) };
    case 'array': {
      const itemType = valueType(c.u32(), source, `${key}[]`);
      const n = c.count(`the length of array "${key}"`, MIN_BYTES[itemType]);
      const value: GgufValue[] = [];
      for (let i = 0; i < n; i++) value.push(readValue(c, itemType, source, `${key}[${i}]`).value);
      return { type, itemType, value: value as GgufValue };
    }
  }
}

function parseHeaderFrom(bytes: Uint8Array, source: string, fileSize: number): GgufHeader {
  const c = new Cursor(bytes, source, fileSize);
  c.need(4, 'the magic');
  const magic = c.u32();
  if (magic !== GGUF_MAGIC) throw new Error(`${source}: not a GGUF file (the first 4 bytes are not "GGUF")`);
  const version = c.u32();
  if (version !== 2 && version !== 3) throw new Error(`${source}: GGUF version ${version} is not supported (2 and 3 are)`);
  const nTensors = c.count('the tensor count', 24);
  const nKv = c.count('the metadata count', 12);
  const metadata: Record<string, GgufKV> = {};
  for (let i = 0; i < nKv; i++) {
    const key = c.str(`metadata key ${i}`);
    metadata[key] = readValue(c, valueType(c.u32(), source, key), source, key);
  }
  const align = metadata['general.alignment'];
  let alignment = GGUF_DEFAULT_ALIGNMENT;
  if (align !== undefined) {
    if (align.type !== 'uint32' || typeof align.value !== 'number' || align.value === 0 || (align.value & (align.value - 1)) !== 0) {
      throw new Error(`${source}: metadata "general.alignment" must be a uint32 power of two, got ${align.type} ${String(align.value)}`);
    }
    alignment = align.value;
  }
  const infos: { name: string; ne: number[]; typeId: number; rel: bigint }[] = [];
  for (let i = 0; i < nTensors; i++) {
    const name = c.str(`the name of tensor ${i}`);
    const nDims = c.u32();
    if (nDims > 4) throw new Error(`${source}: tensor ${name} has ${nDims} dimensions (GGML_MAX_DIMS is 4)`);
    const ne: number[] = [];
    for (let d = 0; d < nDims; d++) ne.push(c.count(`dimension ${d} of tensor ${name}`, 0));
    infos.push({ name, ne, typeId: c.u32(), rel: c.u64() });
  }
  const dataStart = Math.ceil(c.pos / alignment) * alignment;
  const tensors = infos.map(({ name, ne, typeId, rel }) => {
    const t = GGML_TYPES[typeId];
    if (!t) throw new Error(`${source}: tensor ${name} has unknown ggml type ${typeId}`);
    const [type, block, blockBytes] = t;
    const shape = [...ne].reverse();
    const n = sizeOf(shape);
    if (block > 1 && (ne[0] ?? 1) % block !== 0) throw new Error(`${source}: tensor ${name} (${type}) has rows of ${ne[0]} values, not a multiple of the block size ${block}`);
    if (rel % BigInt(alignment) !== 0n) throw new Error(`${source}: tensor ${name} starts at data offset ${rel}, not a multiple of the alignment ${alignment}`);
    const nbytes = (n / block) * blockBytes;
    const offset = dataStart + Number(rel);
    if (rel > BigInt(fileSize) || offset + nbytes > fileSize) {
      throw new Error(`${source}: truncated GGUF file: tensor ${name} (${type} ${fmtShape(shape)}) needs bytes ${offset} .. ${offset + nbytes}, the file has ${fileSize}`);
    }
    return { name, shape, type, typeId, offset, nbytes };
  });
  const names = new Set<string>();
  for (const t of tensors) {
    if (names.has(t.name)) throw new Error(`${source}: tensor ${t.name} appears twice`);
    names.add(t.name);
  }
  return { version, metadata, tensors, alignment, dataStart };
}

/** Parses a GGUF header held in memory (`bytes` may be the whole file or its start; `fileSize` the file's length). */
export function parseGgufHeader(bytes: Uint8Array, source = '<buffer>', fileSize = bytes.byteLength): GgufHeader {
  try {
    return parseHeaderFrom(bytes, source, fileSize);
  } catch (e) {
    if (e instanceof OutOfBytes) throw new Error(`${source}: the GGUF header runs past the ${bytes.byteLength} bytes given`);
    throw e;
  }
}

/** Reads a GGUF file's header (Node): the start of the file, read again with more bytes until the header fits. */
export async function readGgufHeader(path: string): Promise<GgufHeader> {
  const { open } = await fs(`reading ${path}`);
  const fh = await open(path, 'r');
  try {
    const size = (await fh.stat()).size;
    for (let n = Math.min(size, 1 << 20); ; n = Math.min(size, n * 4)) {
      const buf = new Uint8Array(n);
      await fh.read(buf, 0, n, 0);
      try {
        return parseHeaderFrom(buf, path, size);
      } catch (e) {
        if (!(e instanceof OutOfBytes) || n === size) throw e;
      }
    }
  } finally {
    await fh.close();
  }
}

/** The raw bytes of one tensor (Node). */
export async function readGgufTensorBytes(path: string, info: GgufTensorInfo): Promise<Uint8Array> {
  const { open } = await fs(`reading ${path}`);
  const fh = await open(path, 'r');
  try {
    const buf = new Uint8Array(info.nbytes);
    const { bytesRead } = await fh.read(buf, 0, info.nbytes, info.offset);
    if (bytesRead !== info.nbytes) throw new Error(`${path}: truncated GGUF file: tensor ${info.name} has ${bytesRead} of its ${info.nbytes} bytes`);
    return buf;
  } finally {
    await fh.close();
  }
}

/** Fails unless attend can read this tensor's data type, naming the tensor and its type. */
export function checkReadableType(info: GgufTensorInfo, source: string): GgufTensorType {
  if (!(GGUF_TENSOR_TYPES as readonly string[]).includes(info.type)) {
    throw new Error(`${source}: tensor ${info.name} has ggml type ${info.type}, which attend cannot read (supported: ${GGUF_TENSOR_TYPES.join(', ')})`);
  }
  return info.type as GgufTensorType;
}

/** A tensor's values as float32 (F16, BF16 widened; Q8_0, Q4_0 dequantized). */
export function decodeGgufTensor(info: GgufTensorInfo, bytes: Uint8Array, source = '<buffer>'): Float32Array {
  const type = checkReadableType(info, source);
  const n = sizeOf(info.shape);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(n);
  switch (type) {
    case 'F32': for (let i = 0; i < n; i++) out[i] = view.getFloat32(4 * i, true); break;
    case 'F16': for (let i = 0; i < n; i++) out[i] = float16ToFloat32(view.getUint16(2 * i, true)); break;
    case 'BF16': for (let i = 0; i < n; i++) out[i] = bfloat16ToFloat32(view.getUint16(2 * i, true)); break;
    case 'Q8_0': dequantizeQ8_0(bytes, 0, n, out); break;
    case 'Q4_0': dequantizeQ4_0(bytes, 0, n, out); break;
  }
  return out;
}

/** float32 values stored as a GGUF tensor type (Q8_0 / Q4_0 with ggml's reference quantizers). */
export function encodeGgufTensor(values: Float32Array, type: GgufTensorType): Uint8Array {
  const n = values.length;
  switch (type) {
    case 'F32': {
      const out = new Uint8Array(4 * n), view = new DataView(out.buffer);
      for (let i = 0; i < n; i++) view.setFloat32(4 * i, values[i]!, true);
      return out;
    }
    case 'F16':
    case 'BF16': {
      const out = new Uint8Array(2 * n), view = new DataView(out.buffer), enc = type === 'F16' ? float32ToFloat16 : float32ToBfloat16;
      for (let i = 0; i < n; i++) view.setUint16(2 * i, enc(values[i]!), true);
      return out;
    }
    case 'Q8_0': return quantizeQ8_0(values);
    case 'Q4_0': return quantizeQ4_0(values);
  }
}

/** A tensor to write: its shape in PyTorch order and its bytes already in `type`'s layout. */
export interface GgufTensorData {
  name: string;
  shape: readonly number[];
  type: GgufTensorType;
  data: Uint8Array;
}

/** Metadata helpers with the types llama.cpp's writer uses. */
export const gguf = {
  u32: (value: number): GgufKV => ({ type: 'uint32', value }),
  i32: (value: number): GgufKV => ({ type: 'int32', value }),
  f32: (value: number): GgufKV => ({ type: 'float32', value }),
  bool: (value: boolean): GgufKV => ({ type: 'bool', value }),
  str: (value: string): GgufKV => ({ type: 'string', value }),
  strs: (value: string[]): GgufKV => ({ type: 'array', itemType: 'string', value }),
  f32s: (value: number[]): GgufKV => ({ type: 'array', itemType: 'float32', value }),
  i32s: (value: number[]): GgufKV => ({ type: 'array', itemType: 'int32', value }),
};

/** A growable little-endian byte buffer. */
class Writer {
  private buf = new Uint8Array(1 << 16);
  private view = new DataView(this.buf.buffer);
  pos = 0;
  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.pos + n));
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
  num(type: GgufValueType, v: number | bigint | boolean): void {
    const size = MIN_BYTES[type];
    this.room(size);
    const p = this.pos, w = this.view;
    switch (type) {
      case 'uint8': w.setUint8(p, Number(v)); break;
      case 'int8': w.setInt8(p, Number(v)); break;
      case 'bool': w.setUint8(p, v ? 1 : 0); break;
      case 'uint16': w.setUint16(p, Number(v), true); break;
      case 'int16': w.setInt16(p, Number(v), true); break;
      case 'uint32': w.setUint32(p, Number(v), true); break;
      case 'int32': w.setInt32(p, Number(v), true); break;
      case 'float32': w.setFloat32(p, Number(v), true); break;
      case 'float64': w.setFloat64(p, Number(v), true); break;
      case 'uint64': w.setBigUint64(p, BigInt(v), true); break;
      case 'int64': w.setBigInt64(p, BigInt(v), true); break;
      default: throw new Error(`gguf: ${type} is not a number type`);
    }
    this.pos += size;
  }
  bytes(b: Uint8Array): void {
    this.room(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }
  str(s: string): void {
    const b = new TextEncoder().encode(s);
    this.num('uint64', BigInt(b.length));
    this.bytes(b);
  }
  pad(alignment: number): void {
    const n = Math.ceil(this.pos / alignment) * alignment - this.pos;
    this.bytes(new Uint8Array(n));
  }
  result(): Uint8Array {
    return this.buf.subarray(0, this.pos);
  }
}

function writeValue(w: Writer, kv: GgufKV, key: string): void {
  if (kv.type === 'string') {
    if (typeof kv.value !== 'string') throw new Error(`gguf: metadata "${key}" is declared string, got ${typeof kv.value}`);
    w.str(kv.value);
  } else if (kv.type === 'array') {
    const itemType = kv.itemType;
    if (!itemType || !Array.isArray(kv.value)) throw new Error(`gguf: metadata "${key}" is an array: it needs an itemType and an array value`);
    w.num('uint32', GGUF_VALUE_TYPES.indexOf(itemType));
    w.num('uint64', BigInt(kv.value.length));
    kv.value.forEach((v, i) => writeValue(w, { type: itemType, value: v }, `${key}[${i}]`));
  } else {
    if (typeof kv.value === 'string' || Array.isArray(kv.value)) throw new Error(`gguf: metadata "${key}" is declared ${kv.type}, got ${JSON.stringify(kv.value).slice(0, 40)}`);
    w.num(kv.type, kv.value);
  }
}

/** A GGUF v3 file: metadata in the given order, then the tensors, each at a multiple of the alignment. */
export function serializeGguf(metadata: Record<string, GgufKV>, tensors: readonly GgufTensorData[]): Uint8Array {
  const alignKv = metadata['general.alignment'];
  const alignment = alignKv && typeof alignKv.value === 'number' ? alignKv.value : GGUF_DEFAULT_ALIGNMENT;
  const w = new Writer();
  w.num('uint32', GGUF_MAGIC);
  w.num('uint32', 3);
  w.num('uint64', BigInt(tensors.length));
  w.num('uint64', BigInt(Object.keys(metadata).length));
  for (const [key, kv] of Object.entries(metadata)) {
    w.str(key);
    w.num('uint32', GGUF_VALUE_TYPES.indexOf(kv.type));
    writeValue(w, kv, key);
  }
  let offset = 0;
  for (const t of tensors) {
    const [, block, blockBytes] = GGML_TYPES[TYPE_ID[t.type]]!;
    const n = sizeOf(t.shape);
    if (block > 1 && (t.shape[t.shape.length - 1] ?? 0) % block !== 0) throw new Error(`gguf: tensor ${t.name} ${fmtShape(t.shape)}: ${t.type} needs rows that are a multiple of ${block}`);
    if (t.data.byteLength !== (n / block) * blockBytes) throw new Error(`gguf: tensor ${t.name} ${fmtShape(t.shape)} ${t.type} needs ${(n / block) * blockBytes} bytes, got ${t.data.byteLength}`);
    w.str(t.name);
    w.num('uint32', t.shape.length);
    for (const d of [...t.shape].reverse()) w.num('uint64', BigInt(d));
    w.num('uint32', TYPE_ID[t.type]);
    w.num('uint64', BigInt(offset));
    offset += Math.ceil(t.data.byteLength / alignment) * alignment;
  }
  w.pad(alignment);
  for (const t of tensors) {
    w.bytes(t.data);
    w.pad(alignment);
  }
  return w.result();
}

/** Writes a GGUF v3 file (Node), through a temporary file renamed into place. */
export async function saveGguf(path: string, metadata: Record<string, GgufKV>, tensors: readonly GgufTensorData[]): Promise<void> {
  const { writeFile, rename } = await fs(`writing ${path} (in a browser use serializeGguf)`);
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, serializeGguf(metadata, tensors));
  await rename(tmp, path);
}
