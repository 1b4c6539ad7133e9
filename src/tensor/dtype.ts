// Data types: names, typed-array storage, promotion rules and float16/bfloat16 conversion.
//
// float16 and bfloat16 are stored at 2 bytes per element (a Uint16Array of their bits); the CPU backends
// compute with them in float32 and round each result once, as PyTorch does on CPU. Reads decode them to
// Float32Array (Node has no Float16Array). int64 is accepted where PyTorch users pass it and means int32.

export type DType = 'float32' | 'float64' | 'float16' | 'bfloat16' | 'int32' | 'uint8' | 'bool';
export type FloatDType = 'float32' | 'float64' | 'float16' | 'bfloat16';
/** The 2-byte float types: stored as bits, computed in float32. */
export type HalfDType = 'float16' | 'bfloat16';
/** What a user may pass as a dtype: every DType, and 'int64', which means int32 here (values must fit in it). */
export type DTypeLike = DType | 'int64';

export type TypedArray = Float32Array | Float64Array | Int32Array | Uint8Array | Uint16Array;

/** The storage of each dtype (float16 / bfloat16 hold bits; reads decode them to Float32Array). */
export interface TypedArrayFor {
  float32: Float32Array;
  float64: Float64Array;
  float16: Uint16Array;
  bfloat16: Uint16Array;
  int32: Int32Array;
  uint8: Uint8Array;
  bool: Uint8Array;
}

export const DTYPES: readonly DType[] = ['float32', 'float64', 'float16', 'bfloat16', 'int32', 'uint8', 'bool'];

export function isDType(s: string): s is DType {
  return (DTYPES as readonly string[]).includes(s);
}

export const INT32_MIN = -(2 ** 31);
export const INT32_MAX = 2 ** 31 - 1;

/**
 * A dtype name as users write it ('int64' included) as a DType, or null when `s` is not one. int64 maps
 * to int32: attend's integer tensors are 32-bit (values beyond +-2^31 are refused where they are known).
 */
export function parseDType(s: string): DType | null {
  if (s === 'int64') return 'int32';
  return isDType(s) ? s : null;
}

/** A dtype option (int64 included) as a DType, undefined when absent, or a clear error naming the op. */
export function resolveDType(dtype: DTypeLike | undefined, op: string): DType | undefined {
  if (dtype === undefined) return undefined;
  const d = typeof dtype === 'string' ? parseDType(dtype) : null;
  if (d === null) throw new Error(`${op}: unknown dtype ${JSON.stringify(dtype)} (expected one of ${DTYPES.join(', ')}, or int64)`);
  return d;
}

/** Throws unless v fits in int32 (what int64 means here). */
export function checkInt64Range(v: number, op: string): void {
  if (!(v >= INT32_MIN && v <= INT32_MAX)) {
    throw new Error(`${op}: value ${v} does not fit in int64 as attend stores it (int32: ${INT32_MIN} to ${INT32_MAX})`);
  }
}

export function isFloat(dtype: DType): dtype is FloatDType {
  return dtype === 'float32' || dtype === 'float64' || dtype === 'float16' || dtype === 'bfloat16';
}

export function isHalf(dtype: DType): dtype is HalfDType {
  return dtype === 'float16' || dtype === 'bfloat16';
}

export function bytesPerElement(dtype: DType): number {
  switch (dtype) {
    case 'float64': return 8;
    case 'float32':
    case 'int32': return 4;
    case 'float16':
    case 'bfloat16': return 2;
    case 'uint8':
    case 'bool': return 1;
  }
}

/** Storage for `size` elements (float16 / bfloat16: their bits). */
export function allocArray(dtype: DType, size: number): TypedArray {
  switch (dtype) {
    case 'float32': return new Float32Array(size);
    case 'float64': return new Float64Array(size);
    case 'float16':
    case 'bfloat16': return new Uint16Array(size);
    case 'int32': return new Int32Array(size);
    case 'uint8':
    case 'bool': return new Uint8Array(size);
  }
}

/** The dtype a typed array stores natively (Uint8Array reads as uint8), or null for Uint16Array (float16 or bfloat16 bits?). */
export function dtypeOfArray(a: TypedArray): DType | null {
  if (a instanceof Float32Array) return 'float32';
  if (a instanceof Float64Array) return 'float64';
  if (a instanceof Int32Array) return 'int32';
  if (a instanceof Uint16Array) return null;
  return 'uint8';
}

// Promotion for binary arithmetic, as PyTorch: categories bool < integer < float; within integers by width;
// within floats by width, except that float16 with bfloat16 (neither holds the other) gives float32.
const RANK: Record<DType, number> = { bool: 0, uint8: 1, int32: 2, float16: 3, bfloat16: 3, float32: 4, float64: 5 };

export function promoteTypes(a: DType, b: DType): DType {
  if (a === b) return a;
  if (RANK[a] === RANK[b]) return 'float32'; // float16 with bfloat16
  return RANK[a] > RANK[b] ? a : b;
}

/**
 * Stores `values` as elements of `dtype`: float16 / bfloat16 round to nearest even (through float32, as
 * PyTorch's casts), bool is value !== 0 (NaN is true), integer types truncate (and wrap, as typed arrays do). A Uint16Array given for a half dtype is
 * taken as the bits themselves.
 */
export function toStorage(values: ArrayLike<number>, dtype: DType): TypedArray {
  const out = allocArray(dtype, values.length);
  if (isHalf(dtype)) {
    if (values instanceof Uint16Array) out.set(values);
    else encodeHalf(values instanceof Float32Array ? values : Float32Array.from(values), dtype, out as Uint16Array);
  } else if (dtype === 'bool') {
    for (let i = 0; i < values.length; i++) out[i] = values[i] !== 0 ? 1 : 0; // NaN is true, as in PyTorch
  } else if (dtype === 'int32' || dtype === 'uint8') {
    for (let i = 0; i < values.length; i++) out[i] = Math.trunc(values[i]!) || 0;
  } else {
    out.set(values as ArrayLike<number>);
  }
  return out;
}

/** Converts storage of dtype `from` to dtype `to` (what a cast kernel does: half dtypes through float32, as PyTorch). */
export function castStorage(x: TypedArray, from: DType, to: DType): TypedArray {
  return toStorage(isHalf(from) ? decodeHalf(x as Uint16Array, from) : x, to);
}

// ---- float16 / bfloat16 <-> float32 ----
//
// Conversions work on the bits (integers only), so NaN payloads survive a float16 -> float32 -> float16
// round trip (checkpoints save back bit-exact); rounding is to nearest even, as PyTorch's.

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float16 bits -> float32 bits (exact). */
function f16ToF32Bits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >>> 10) & 0x1f;
  let frac = h & 0x3ff;
  if (exp === 0x1f) return (sign | 0x7f800000 | (frac << 13)) >>> 0;
  if (exp === 0) {
    if (frac === 0) return sign >>> 0;
    // Subnormal: normalise the fraction.
    let e = 113;
    while ((frac & 0x400) === 0) { frac <<= 1; e--; }
    return (sign | (e << 23) | ((frac & 0x3ff) << 13)) >>> 0;
  }
  return (sign | ((exp + 112) << 23) | (frac << 13)) >>> 0;
}

/** float32 bits -> float16 bits, round to nearest even (overflow to infinity). */
function f32BitsToF16(bits: number): number {
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  let frac = bits & 0x7fffff;
  if (exp === 0xff) return frac ? sign | 0x7c00 | ((frac >>> 13) || 0x200) : sign | 0x7c00;
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    frac |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let m = frac >>> shift;
    const rest = frac & ((1 << shift) - 1);
    if (rest > half || (rest === half && m & 1)) m++;
    return sign | m;
  }
  let m = frac >>> 13;
  const rest = frac & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && m & 1)) {
    m++;
    if (m === 0x400) { m = 0; e++; if (e >= 0x1f) return sign | 0x7c00; }
  }
  return sign | (e << 10) | m;
}

/** float32 bits -> bfloat16 bits, round to nearest even. */
function f32BitsToBf16(bits: number): number {
  if ((bits & 0x7f800000) === 0x7f800000 && bits & 0x7fffff) {
    const hi = bits >>> 16;
    return hi & 0x7f ? hi : hi | 0x40; // a NaN stays a NaN (keeps its payload when the top bits hold it)
  }
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

export function float16ToFloat32(h: number): number {
  u32[0] = f16ToF32Bits(h);
  return f32[0]!;
}

/** Round-to-nearest-even float32 -> float16 bits (a float64 is first rounded to float32, as PyTorch does). */
export function float32ToFloat16(x: number): number {
  f32[0] = x;
  return f32BitsToF16(u32[0]!);
}

export function bfloat16ToFloat32(h: number): number {
  u32[0] = h << 16;
  return f32[0]!;
}

/** Round-to-nearest-even float32 -> bfloat16 bits. */
export function float32ToBfloat16(x: number): number {
  f32[0] = x;
  return f32BitsToBf16(u32[0]!);
}

/** Decodes float16 / bfloat16 bits to float32 values (exact). */
export function decodeHalf(bits: Uint16Array, dtype: HalfDType): Float32Array {
  const out = new Uint32Array(bits.length);
  if (dtype === 'float16') for (let i = 0; i < bits.length; i++) out[i] = f16ToF32Bits(bits[i]!);
  else for (let i = 0; i < bits.length; i++) out[i] = bits[i]! << 16;
  return new Float32Array(out.buffer);
}

/** Encodes float32 values as float16 / bfloat16 bits (round to nearest even) into `out` (or a new array). */
export function encodeHalf(values: Float32Array, dtype: HalfDType, out: Uint16Array = new Uint16Array(values.length)): Uint16Array {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const f = dtype === 'float16' ? f32BitsToF16 : f32BitsToBf16;
  for (let i = 0; i < bits.length; i++) out[i] = f(bits[i]!);
  return out;
}
