// Reading and writing safetensors files (Hugging Face checkpoints): header validation, dtype conversion, atomic saves.
//
// Layout: an 8-byte little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets}, "__metadata__"?},
// then the data region; offsets are relative to its start. Files on disk go through '#platform' (Node's fs, which
// browser bundles never see); URLs and in-memory files through ./source.ts.

import { fs, type FileHandle } from '#platform';
import { getBackend } from '../tensor/backend.js';
import { encodeHalf, isFloat, type DType, type FloatDType, type TypedArray } from '../tensor/dtype.js';
import { fmtShape, sizeOf } from '../tensor/shape.js';
import { fromArray, Tensor } from '../tensor/tensor.js';
import { writeFileAtomic } from './atomic.js';
import { isLocalFile, readBytes, readRange } from './source.js';

/** Bits per element of every dtype the format defines (sub-byte float types included, so any header validates). */
const DTYPE_BITS = {
  BOOL: 8, U8: 8, I8: 8, F8_E5M2: 8, F8_E4M3: 8, F8_E8M0: 8, I16: 16, U16: 16, F16: 16, BF16: 16,
  I32: 32, U32: 32, F32: 32, F64: 64, I64: 64, U64: 64, F4: 4, F6_E2M3: 6, F6_E3M2: 6,
} as const;

export type SafetensorsDType = keyof typeof DTYPE_BITS;

/** The dtype each loadable format dtype becomes (half floats stay 2 bytes; I64 narrows to int32 with a range check). */
const LOAD_AS = { F32: 'float32', F64: 'float64', F16: 'float16', BF16: 'bfloat16', I64: 'int32', I32: 'int32', U8: 'uint8', BOOL: 'bool' } as const;
type LoadableDType = keyof typeof LOAD_AS;

/** Write order of the reference library: descending dtype (its enum order, which keeps every tensor aligned), then name. */
const WRITE_ORDER: readonly SafetensorsDType[] = ['F64', 'F32', 'I32', 'BF16', 'F16', 'U8', 'BOOL'];
const WRITE_AS: Record<DType, SafetensorsDType> = { float32: 'F32', float64: 'F64', float16: 'F16', bfloat16: 'BF16', int32: 'I32', uint8: 'U8', bool: 'BOOL' };

// Typed-array views read the host's byte order and the format is little-endian.
const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

export interface SafetensorsEntry {
  dtype: SafetensorsDType;
  shape: number[];
  /** [begin, end) in bytes, relative to the start of the data region. */
  dataOffsets: [number, number];
}

export interface SafetensorsHeader {
  /** Entries by tensor name. */
  tensors: Record<string, SafetensorsEntry>;
  /** The `__metadata__` strings ({} when absent). */
  metadata: Record<string, string>;
  /** Byte offset of the data region in the file: 8 + header length. */
  dataStart: number;
}

export interface LoadSafetensorsOptions {
  /** Device for the tensors (the default device if omitted). */
  device?: string;
  /** Cast every floating point tensor to this dtype (as torch_dtype); by default each keeps the dtype it is stored in. */
  dtype?: FloatDType;
}

export interface SaveSafetensorsOptions {
  /** Store floating point tensors as F16 or BF16 (round to nearest even); other dtypes are unaffected. */
  dtype?: 'float16' | 'bfloat16';
}

function fail(file: string, msg: string): never {
  throw new Error(`safetensors: ${file}: ${msg}`);
}

function checkHost(): void {
  if (!HOST_LITTLE_ENDIAN) throw new Error('safetensors: this host is big-endian; the format (and this reader) are little-endian only');
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** Reads the header length from the first 8 bytes and checks it against the file size. */
function headerLength(prefix: Uint8Array, fileSize: number, file: string): number {
  if (fileSize < 8) fail(file, `file is ${fileSize} bytes, too short for the 8-byte header length`);
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(fileSize - 8)) fail(file, `header length ${n} runs past the end of the file (${fileSize} bytes)`);
  return Number(n);
}

function parseEntry(key: string, v: unknown, dataLength: number, file: string): SafetensorsEntry {
  const bad = (msg: string): never => fail(file, `tensor '${key}': ${msg}`);
  if (!isRecord(v)) bad('entry must be an object with dtype, shape and data_offsets');
  const { dtype, shape, data_offsets: offsets } = v as Record<string, unknown>;
  if (dtype === undefined || shape === undefined || offsets === undefined) {
    bad(`entry is missing ${['dtype', 'shape', 'data_offsets'].filter((k) => (v as Record<string, unknown>)[k] === undefined).join(', ')}`);
  }
  if (typeof dtype !== 'string') bad(`dtype must be a string, got ${JSON.stringify(dtype)}`);
  if (!Object.hasOwn(DTYPE_BITS, dtype as string)) bad(`unknown dtype '${dtype}'`);
  if (!Array.isArray(shape) || !shape.every(isCount)) bad(`shape must be an array of non-negative integers, got ${JSON.stringify(shape)}`);
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount)) {
    bad(`data_offsets must be two non-negative integers [begin, end], got ${JSON.stringify(offsets)}`);
  }
  const dims = shape as number[];
  const [begin, end] = offsets as [number, number];
  if (begin > end) bad(`data_offsets [${begin}, ${end}] end before they begin`);
  if (end > dataLength) bad(`data_offsets [${begin}, ${end}] run past the end of the data region (${dataLength} bytes)`);
  const numel = sizeOf(dims);
  const bits = numel * DTYPE_BITS[dtype as SafetensorsDType];
  if (!Number.isSafeInteger(bits)) bad(`shape ${fmtShape(dims)} is too large`);
  if (bits % 8 !== 0) bad(`shape ${fmtShape(dims)} of ${dtype} is not a whole number of bytes`);
  if (end - begin !== bits / 8) {
    bad(`data_offsets [${begin}, ${end}] hold ${end - begin} bytes, but shape ${fmtShape(dims)} of ${dtype} needs ${bits / 8}`);
  }
  return { dtype: dtype as SafetensorsDType, shape: [...dims], dataOffsets: [begin, end] };
}

/**
 * The first top-level key that appears twice in a JSON object text (JSON.parse keeps the last silently, which would
 * then be reported as overlapping or uncovered bytes). `text` is known to parse.
 */
function duplicateKey(text: string): string | null {
  const seen = new Set<string>();
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') depth--;
    else if (c === '"') {
      const start = i;
      for (i++; text[i] !== '"'; i++) if (text[i] === '\\') i++;
      if (depth !== 1) continue;
      let j = i + 1;
      while (/\s/.test(text[j] ?? '')) j++;
      if (text[j] !== ':') continue; // a string value, not a key
      const key = JSON.parse(text.slice(start, i + 1)) as string;
      if (seen.has(key)) return key;
      seen.add(key);
    }
  }
  return null;
}

/** Parses and fully validates the JSON header: types, sizes, and that the tensors tile the data region exactly. */
function parseHeader(json: Uint8Array, dataStart: number, dataLength: number, file: string): SafetensorsHeader {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(json);
  } catch {
    fail(file, 'header is not valid UTF-8');
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    fail(file, `header is not valid JSON (${(e as Error).message})`);
  }
  if (!isRecord(parsed)) fail(file, `header must be a JSON object, got ${Array.isArray(parsed) ? 'an array' : JSON.stringify(parsed)}`);
  const dup = duplicateKey(text);
  if (dup !== null) fail(file, `duplicate key '${dup}' in the header`);
  const entries: [string, SafetensorsEntry][] = [];
  let metadata: Record<string, string> = {};
  for (const [key, v] of Object.entries(parsed)) {
    if (key === '__metadata__') {
      if (!isRecord(v) || !Object.values(v).every((s) => typeof s === 'string')) fail(file, '__metadata__ must be an object of string values');
      metadata = v as Record<string, string>;
    } else {
      entries.push([key, parseEntry(key, v, dataLength, file)]);
    }
  }
  // Like the reference: sorted by offsets, each tensor starts where the previous ended and the last ends the region.
  const sorted = [...entries].sort(([, a], [, b]) => a.dataOffsets[0] - b.dataOffsets[0] || a.dataOffsets[1] - b.dataOffsets[1]);
  let at = 0;
  let prev = '';
  for (const [key, { dataOffsets: [begin, end] }] of sorted) {
    if (begin < at) fail(file, `tensors '${prev}' and '${key}' overlap (bytes ${begin}..${at} of the data region)`);
    if (begin > at) fail(file, `bytes ${at}..${begin} of the data region are not covered by any tensor`);
    at = end;
    prev = key;
  }
  if (at !== dataLength) fail(file, `bytes ${at}..${dataLength} at the end of the data region are not covered by any tensor`);
  return { tensors: Object.fromEntries(entries), metadata, dataStart };
}

/** Converts a tensor's bytes (a fresh buffer, so aligned, that this function may keep or overwrite) to typed data. */
function decode(bytes: Uint8Array, dtype: LoadableDType, n: number, key: string, file: string): TypedArray {
  const buf = bytes.buffer;
  switch (dtype) {
    case 'F32': return new Float32Array(buf, 0, n);
    case 'F64': return new Float64Array(buf, 0, n);
    case 'I32': return new Int32Array(buf, 0, n);
    case 'U8': return bytes;
    case 'BOOL': {
      for (let i = 0; i < n; i++) bytes[i] = bytes[i] ? 1 : 0;
      return bytes;
    }
    case 'F16':
    case 'BF16': return new Uint16Array(buf, 0, n); // the bits, stored as they are
    case 'I64': {
      // Each value is a (low, high) pair of int32 words; it fits in int32 exactly when high is low's sign extension.
      const words = new Int32Array(buf, 0, 2 * n);
      const out = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        const lo = words[2 * i]!;
        if (words[2 * i + 1] !== lo >> 31) {
          fail(file, `tensor '${key}': I64 value ${new BigInt64Array(buf, 8 * i, 1)[0]} at element ${i} does not fit in int32`);
        }
        out[i] = lo;
      }
      return out;
    }
  }
}

interface LoadItem {
  key: string;
  entry: SafetensorsEntry;
  dtype: LoadableDType;
}

/** Tensors in data order, after checking that every dtype loads (so nothing is read for a file that will fail). */
function loadPlan(header: SafetensorsHeader, file: string): LoadItem[] {
  const items = Object.entries(header.tensors).map(([key, entry]): LoadItem => {
    const dtype = entry.dtype;
    if (!Object.hasOwn(LOAD_AS, dtype)) {
      fail(file, `tensor '${key}': dtype ${dtype} is not supported (supported: ${Object.keys(LOAD_AS).join(', ')})`);
    }
    return { key, entry, dtype: dtype as LoadableDType };
  });
  return items.sort((a, b) => a.entry.dataOffsets[0] - b.entry.dataOffsets[0]);
}

function toTensor(bytes: Uint8Array, item: LoadItem, file: string, opts: LoadSafetensorsOptions): Tensor {
  const { entry, dtype, key } = item;
  const values = decode(bytes, dtype, sizeOf(entry.shape), key, file);
  if (LOAD_AS[dtype] === 'float64' && getBackend(opts.device).float64 === false) {
    // A device without float64 (webgpu): convert on the host when a float dtype was asked for, else say so.
    if (opts.dtype === undefined || opts.dtype === 'float64') fail(file, `tensor '${key}' is F64 and device '${getBackend(opts.device).name}' has no float64: load it with dtype 'float32'`);
    return fromArray(Float32Array.from(values), entry.shape, 'float32', opts.device).to(opts.dtype);
  }
  const t = fromArray(values, entry.shape, LOAD_AS[dtype], opts.device);
  if (opts.dtype === undefined || !isFloat(t.dtype) || t.dtype === opts.dtype) return t;
  const cast = Tensor.fromBuffer(t.backend, t.backend.cast(t.buffer, opts.dtype), t.shape);
  t.dispose();
  return cast;
}

function checkLoadOptions(opts: LoadSafetensorsOptions, name: string): void {
  const floats: readonly unknown[] = ['float32', 'float64', 'float16', 'bfloat16'] satisfies FloatDType[];
  if (opts.dtype !== undefined && !floats.includes(opts.dtype)) fail(name, `option dtype must be one of ${floats.join(', ')}, got ${JSON.stringify(opts.dtype)}`);
}

// ---- reading ----

/** Tensors from safetensors bytes in memory (for the browser); `name` labels errors. */
export function parseSafetensors(bytes: Uint8Array, name = '<buffer>', opts: LoadSafetensorsOptions = {}): Record<string, Tensor> {
  checkHost();
  checkLoadOptions(opts, name);
  const n = headerLength(bytes, bytes.length, name);
  const header = parseHeader(bytes.subarray(8, 8 + n), 8 + n, bytes.length - 8 - n, name);
  const out: [string, Tensor][] = [];
  try {
    for (const item of loadPlan(header, name)) {
      const [begin, end] = item.entry.dataOffsets;
      // slice copies into a fresh buffer: aligned for typed-array views, and never aliasing the caller's bytes.
      out.push([item.key, toTensor(bytes.slice(header.dataStart + begin, header.dataStart + end), item, name, opts)]);
    }
  } catch (e) {
    disposeAll(out);
    throw e;
  }
  return Object.fromEntries(out);
}

/** Frees the tensors loaded before a later one failed (an I64 out of range, a short read): nothing is left behind. */
function disposeAll(loaded: [string, Tensor][]): void {
  for (const [, t] of loaded) t.dispose();
}

async function readExactly(handle: FileHandle, into: Uint8Array, position: number, file: string): Promise<void> {
  let done = 0;
  while (done < into.length) {
    const { bytesRead } = await handle.read(into, done, into.length - done, position + done);
    if (bytesRead === 0) fail(file, `unexpected end of file at byte ${position + done} (was the file changed while reading?)`);
    done += bytesRead;
  }
}

async function readHeaderFrom(handle: FileHandle, file: string): Promise<SafetensorsHeader> {
  const { size } = await handle.stat();
  const prefix = new Uint8Array(8);
  if (size >= 8) await readExactly(handle, prefix, 0, file);
  const n = headerLength(prefix, size, file);
  const json = new Uint8Array(n);
  await readExactly(handle, json, 8, file);
  return parseHeader(json, 8 + n, size - 8 - n, file);
}

/** Opens a file for reading; a missing file, a folder or a permission error names the path. */
async function openFile(path: string): Promise<FileHandle> {
  let handle: FileHandle;
  try {
    handle = await (await fs(`reading ${path}`)).open(path, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    fail(path, code === 'ENOENT' ? 'no such file' : `cannot open (${code ?? String(e)})`);
  }
  if ((await handle.stat()).isDirectory()) {
    await handle.close();
    fail(path, 'is a directory, not a safetensors file');
  }
  return handle;
}

/** A read of a fetched or in-memory file, with a missing file named as openFile names it. */
async function remote<T>(path: string, read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (e) {
    if ((e as { code?: string }).code === 'ENOENT') fail(path, 'no such file');
    throw e;
  }
}

/** The header of a fetched or in-memory file: the first 64 KiB (one request), more only for a longer header. */
async function readRemoteHeader(path: string): Promise<SafetensorsHeader> {
  const first = await remote(path, () => readRange(path, 0, 65536));
  const n = headerLength(first.bytes, first.size, path);
  const json = 8 + n <= first.bytes.length ? first.bytes.subarray(8, 8 + n) : (await remote(path, () => readRange(path, 8, n))).bytes;
  if (json.length < n) fail(path, `unexpected end of file at byte ${8 + json.length}`);
  return parseHeader(json, 8 + n, first.size - 8 - n, path);
}

/** The validated header of a file (names, dtypes, shapes, offsets, metadata) without reading tensor data. */
export async function readSafetensorsHeader(path: string): Promise<SafetensorsHeader> {
  if (!isLocalFile(path)) return readRemoteHeader(path);
  const handle = await openFile(path);
  try {
    return await readHeaderFrom(handle, path);
  } finally {
    await handle.close();
  }
}

/**
 * Loads every tensor of a safetensors file. The header is validated first; then each tensor's bytes are read
 * straight into their own buffer, so the whole file is never in memory next to the tensors.
 */
export async function loadSafetensors(path: string, opts: LoadSafetensorsOptions = {}): Promise<Record<string, Tensor>> {
  checkHost();
  checkLoadOptions(opts, path);
  // A URL or an in-memory file: one request for the whole file, then the tensors are cut from it.
  if (!isLocalFile(path)) return parseSafetensors(await remote(path, () => readBytes(path)), path, opts);
  const handle = await openFile(path);
  try {
    const header = await readHeaderFrom(handle, path);
    const out: [string, Tensor][] = [];
    try {
      for (const item of loadPlan(header, path)) {
        const [begin, end] = item.entry.dataOffsets;
        const bytes = new Uint8Array(end - begin);
        await readExactly(handle, bytes, header.dataStart + begin, path);
        out.push([item.key, toTensor(bytes, item, path, opts)]);
      }
    } catch (e) {
      disposeAll(out);
      throw e;
    }
    return Object.fromEntries(out);
  } finally {
    await handle.close();
  }
}

// ---- writing ----

interface Layout {
  /** The 8-byte length and the space-padded JSON header. */
  head: Uint8Array;
  entries: { key: string; tensor: Tensor; dtype: SafetensorsDType; begin: number }[];
  dataLength: number;
}

function layout(tensors: Record<string, Tensor>, metadata: Record<string, string> | undefined, opts: SaveSafetensorsOptions): Layout {
  if (opts.dtype !== undefined && opts.dtype !== 'float16' && opts.dtype !== 'bfloat16') {
    throw new Error(`saveSafetensors: dtype must be 'float16' or 'bfloat16', got ${JSON.stringify(opts.dtype)}`);
  }
  const half: SafetensorsDType | null = opts.dtype === 'float16' ? 'F16' : opts.dtype === 'bfloat16' ? 'BF16' : null;
  const items = Object.entries(tensors).map(([key, tensor]) => {
    if (key === '__metadata__') throw new Error("saveSafetensors: '__metadata__' is reserved and cannot name a tensor");
    if (!(tensor instanceof Tensor)) throw new Error(`saveSafetensors: '${key}' is not a Tensor`);
    if (tensor.isDisposed) throw new Error(`saveSafetensors: tensor '${key}' was disposed`);
    const dtype = half !== null && isFloat(tensor.dtype) ? half : WRITE_AS[tensor.dtype];
    return { key, tensor, dtype, begin: 0 };
  });
  items.sort((a, b) => WRITE_ORDER.indexOf(a.dtype) - WRITE_ORDER.indexOf(b.dtype) || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  // Built by hand, not JSON.stringify of an object: object keys that look like integers would be reordered.
  const parts: string[] = [];
  if (metadata !== undefined) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new Error(`saveSafetensors: metadata '${k}' must be a string, got ${typeof v}`);
    }
    parts.push(`"__metadata__":{${Object.entries(metadata).map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(',')}}`);
  }
  let at = 0;
  for (const item of items) {
    item.begin = at;
    at += (item.tensor.numel() * DTYPE_BITS[item.dtype]) / 8;
    parts.push(`${JSON.stringify(item.key)}:{"dtype":"${item.dtype}","shape":${JSON.stringify(item.tensor.shape)},"data_offsets":[${item.begin},${at}]}`);
  }
  const json = new TextEncoder().encode(`{${parts.join(',')}}`);
  const n = Math.ceil(json.length / 8) * 8; // padded with spaces so that the data region starts 8-aligned
  const head = new Uint8Array(8 + n).fill(0x20, 8 + json.length);
  new DataView(head.buffer).setBigUint64(0, BigInt(n), true);
  head.set(json, 8);
  return { head, entries: items, dataLength: at };
}

/** A tensor's bytes as stored: its data read back, narrowed to F16 / BF16 when asked. */
async function encode(t: Tensor, dtype: SafetensorsDType): Promise<Uint8Array> {
  const data = await t.data();
  if (dtype === 'F16' || dtype === 'BF16') {
    // Half tensors read back as float32 decoded exactly from their bits, so they encode back bit-exact. float64 goes
    // through float32 first (as PyTorch's casts), which can double-round a rare tie.
    const values = data instanceof Float32Array ? data : Float32Array.from(data);
    return new Uint8Array(encodeHalf(values, dtype === 'F16' ? 'float16' : 'bfloat16').buffer);
  }
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** The safetensors bytes of a set of tensors (in memory; for files use saveSafetensors, which streams). */
export async function serializeSafetensors(tensors: Record<string, Tensor>, metadata?: Record<string, string>, opts: SaveSafetensorsOptions = {}): Promise<Uint8Array> {
  checkHost();
  const { head, entries, dataLength } = layout(tensors, metadata, opts);
  const out = new Uint8Array(head.length + dataLength);
  out.set(head);
  for (const e of entries) out.set(await encode(e.tensor, e.dtype), head.length + e.begin);
  return out;
}

async function writeAll(handle: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < bytes.length) {
    const { bytesWritten } = await handle.write(bytes, done, bytes.length - done, position + done);
    done += bytesWritten;
  }
}

/**
 * Writes tensors to a safetensors file one tensor at a time. The file appears atomically: it is written to
 * `path.tmp-<pid>`, flushed, then renamed, so a crash never leaves a half-written checkpoint at `path`.
 */
export async function saveSafetensors(path: string, tensors: Record<string, Tensor>, metadata?: Record<string, string>, opts: SaveSafetensorsOptions = {}): Promise<void> {
  checkHost();
  const { head, entries } = layout(tensors, metadata, opts);
  await writeFileAtomic(path, async (handle) => {
    await writeAll(handle, head, 0);
    for (const e of entries) await writeAll(handle, await encode(e.tensor, e.dtype), head.length + e.begin);
  }, `saveSafetensors(${JSON.stringify(path)}) (in a browser use serializeSafetensors)`);
}
