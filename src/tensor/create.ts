// Creating tensors: from arrays, constants, ranges and seeded random numbers.

import { getBackend } from './backend.js';
import { checkInt64Range, dtypeOfArray, INT32_MAX, INT32_MIN, isFloat, isHalf, resolveDType, toStorage, type DType, type DTypeLike, type TypedArray } from './dtype.js';
import { defaultGenerator, type Generator } from './random.js';
import { checkShape, fmtShape, sizeOf, type Shape } from './shape.js';
import { Tensor, type NestedArray } from './tensor.js';

export interface TensorOptions {
  /** 'int64' is accepted and means int32 (values beyond +-2^31 are an error). */
  dtype?: DTypeLike;
  /** Backend name ('cpu', 'wasm', ...); the default device if omitted. */
  device?: string;
  requiresGrad?: boolean;
}

export interface RandomOptions extends TensorOptions {
  generator?: Generator;
}

function finish(t: Tensor, opts: TensorOptions): Tensor {
  if (opts.requiresGrad) t.requiresGrad = true;
  return t;
}

/** Values as elements of `dtype` (a Uint16Array for a half dtype is taken as bits). */
function make(values: ArrayLike<number>, shape: Shape, dtype: DType, opts: TensorOptions): Tensor {
  const backend = getBackend(opts.device);
  return finish(Tensor.fromBuffer(backend, backend.upload(toStorage(values, dtype), dtype), shape), opts);
}

/**
 * The dtype asked for in `opts` (int64 means int32), else `inferred`; float32 when gradients are asked for
 * without a dtype (JavaScript cannot write 1. for a float).
 */
function pickDType(opts: TensorOptions, inferred: DType, op: string): DType {
  const dtype = resolveDType(opts.dtype, op);
  if (dtype !== undefined) return dtype;
  return opts.requiresGrad && !isFloat(inferred) ? 'float32' : inferred;
}

/** Integer dtypes must hold every value (a wrapped integer would be a silent lie). */
function checkIntRange(values: ArrayLike<number>, dtype: DType, opts: TensorOptions, op: string): void {
  if (dtype !== 'int32') return;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (v < INT32_MIN || v > INT32_MAX) {
      if (opts.dtype === 'int64') checkInt64Range(v, op);
      throw new Error(`${op}: value ${v} does not fit in int32 (${INT32_MIN} to ${INT32_MAX})`);
    }
  }
}

function isInt32Literal(v: number): boolean {
  return Number.isInteger(v) && v >= INT32_MIN && v <= INT32_MAX;
}

function inferShape(data: NestedArray): number[] {
  const shape: number[] = [];
  let x: NestedArray = data;
  while (Array.isArray(x)) {
    shape.push(x.length);
    if (x.length === 0) break;
    x = x[0]!;
  }
  return shape;
}

/** What the scalars of a nested array hold, for dtype inference. */
interface Kinds {
  bool: boolean;
  number: boolean;
  /** A number that is not an int32 integer (1.5, NaN, Infinity, 1e30). */
  float: boolean;
}

function flatten(data: NestedArray, shape: Shape, dim: number, out: number[], kinds: Kinds, path: number[], op: string): void {
  if (dim === shape.length) {
    if (Array.isArray(data)) throw new Error(`${op}: ragged nested array (expected shape ${fmtShape(shape)})`);
    if (typeof data === 'boolean') {
      kinds.bool = true;
      out.push(Number(data));
    } else if (typeof data === 'number') {
      kinds.number = true;
      if (!isInt32Literal(data)) kinds.float = true;
      out.push(data);
    } else {
      const at = path.length ? ` at [${path.join('][')}]` : '';
      throw new Error(`${op}: element${at} is ${describeValue(data)}; expected a number or a boolean`);
    }
    return;
  }
  if (!Array.isArray(data) || data.length !== shape[dim]) throw new Error(`${op}: ragged nested array (expected shape ${fmtShape(shape)})`);
  data.forEach((d, i) => flatten(d, shape, dim + 1, out, kinds, [...path, i], op));
}

function describeValue(v: unknown): string {
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v)}`;
  if (v === null || v === undefined) return String(v);
  if (typeof v === 'bigint') return `the bigint ${v}n (pass a number)`;
  if (typeof v === 'object') return `an object (${Object.prototype.toString.call(v).slice(8, -1)})`;
  return `a ${typeof v}`;
}

/**
 * A tensor from nested arrays, a typed array or a number, like torch.tensor: integers give int32 (attend's
 * int64), any other number float32, booleans bool, typed arrays their own dtype; `requiresGrad` without a
 * dtype gives float32. Integers beyond +-2^31 count as floats (JavaScript writes large floats as 1e9).
 * A Uint16Array needs dtype float16 or bfloat16 and is taken as their bits.
 */
export function tensor(data: NestedArray | TypedArray, opts: TensorOptions & { shape?: Shape } = {}): Tensor {
  if (ArrayBuffer.isView(data)) {
    const shape = opts.shape ?? [data.length];
    checkShape(shape, 'tensor');
    if (sizeOf(shape) !== data.length) throw new Error(`tensor: shape ${fmtShape(shape)} needs ${sizeOf(shape)} values, got ${data.length}`);
    const own = dtypeOfArray(data);
    const dtype = resolveDType(opts.dtype, 'tensor') ?? own;
    if (dtype === null || (own === null && !isHalf(dtype))) {
      throw new Error(`tensor: a Uint16Array holds float16 or bfloat16 bits; pass { dtype: 'float16' } or { dtype: 'bfloat16' }`);
    }
    checkIntRange(data, dtype, opts, 'tensor');
    return make(data, shape, dtype, opts);
  }
  const shape = inferShape(data);
  const flat: number[] = [];
  const kinds: Kinds = { bool: false, number: false, float: false };
  flatten(data, shape, 0, flat, kinds, [], 'tensor');
  const inferred: DType = kinds.float ? 'float32' : kinds.number ? 'int32' : kinds.bool ? 'bool' : 'float32';
  const dtype = pickDType(opts, inferred, 'tensor');
  checkIntRange(flat, dtype, opts, 'tensor');
  const target = opts.shape ?? shape;
  if (sizeOf(target) !== flat.length) throw new Error(`tensor: shape ${fmtShape(target)} needs ${sizeOf(target)} values, got ${flat.length}`);
  return make(flat, target, dtype, opts);
}

/** A tensor filled with `value`: int32 for an integer value, bool for a boolean, else float32 (as torch.full). */
export function full(shape: Shape, value: number | boolean, opts: TensorOptions = {}): Tensor {
  checkShape(shape, 'full');
  if (typeof value !== 'number' && typeof value !== 'boolean') throw new Error(`full: fill value is ${describeValue(value)}; expected a number or a boolean`);
  const v = Number(value);
  const dtype = pickDType(opts, typeof value === 'boolean' ? 'bool' : isInt32Literal(v) ? 'int32' : 'float32', 'full');
  checkIntRange([v], dtype, opts, 'full');
  const backend = getBackend(opts.device);
  return finish(Tensor.fromBuffer(backend, backend.fill(dtype, sizeOf(shape), v), shape), opts);
}

/** Zeros, float32 unless dtype says otherwise. */
export function zeros(shape: Shape, opts: TensorOptions = {}): Tensor {
  return full(shape, 0, { dtype: 'float32', ...definedOpts(opts) });
}

/** Ones, float32 unless dtype says otherwise. */
export function ones(shape: Shape, opts: TensorOptions = {}): Tensor {
  return full(shape, 1, { dtype: 'float32', ...definedOpts(opts) });
}

/** opts without keys set to undefined (so that spreading it keeps the defaults before it). */
function definedOpts(opts: TensorOptions): TensorOptions {
  return Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) as TensorOptions;
}

function likeOpts(t: Tensor, opts: TensorOptions): TensorOptions {
  return { dtype: t.dtype, device: t.device, ...definedOpts(opts) };
}
export function zerosLike(t: Tensor, opts: TensorOptions = {}): Tensor {
  return full(t.shape, 0, likeOpts(t, opts));
}
export function onesLike(t: Tensor, opts: TensorOptions = {}): Tensor {
  return full(t.shape, 1, likeOpts(t, opts));
}
export function fullLike(t: Tensor, value: number, opts: TensorOptions = {}): Tensor {
  return full(t.shape, value, likeOpts(t, opts));
}

/** Values start, start + step, ... below end. int32 when all arguments are integers, else float32. */
export function arange(start: number, end?: number, step = 1, opts: TensorOptions = {}): Tensor {
  if (end === undefined) [start, end] = [0, start];
  if (step === 0) throw new Error('arange: step must be non-zero');
  const n = Math.max(0, Math.ceil((end - start) / step));
  const values = Array.from({ length: n }, (_, i) => start + i * step);
  const dtype = pickDType(opts, [start, end, step].every(isInt32Literal) ? 'int32' : 'float32', 'arange');
  checkIntRange(n > 0 ? [values[0]!, values[n - 1]!] : [], dtype, opts, 'arange');
  return make(values, [n], dtype, opts);
}

export function linspace(start: number, end: number, steps: number, opts: TensorOptions = {}): Tensor {
  const values = Array.from({ length: steps }, (_, i) => (steps === 1 ? start : start + ((end - start) * i) / (steps - 1)));
  return make(values, [steps], resolveDType(opts.dtype, 'linspace') ?? 'float32', opts);
}

export function eye(n: number, m = n, opts: TensorOptions = {}): Tensor {
  const values = new Float64Array(n * m);
  for (let i = 0; i < Math.min(n, m); i++) values[i * m + i] = 1;
  return make(values, [n, m], resolveDType(opts.dtype, 'eye') ?? 'float32', opts);
}

function floatDType(opts: TensorOptions, op: string): DType {
  const dtype = resolveDType(opts.dtype, op) ?? 'float32';
  if (!isFloat(dtype)) throw new Error(`${op}: dtype must be floating point, got ${dtype}`);
  return dtype;
}

/** Standard normal samples from the seeded generator. */
export function randn(shape: Shape, opts: RandomOptions = {}): Tensor {
  checkShape(shape, 'randn');
  return make((opts.generator ?? defaultGenerator).normal(sizeOf(shape)), shape, floatDType(opts, 'randn'), opts);
}

/** Uniform samples in [0, 1) from the seeded generator. */
export function rand(shape: Shape, opts: RandomOptions = {}): Tensor {
  checkShape(shape, 'rand');
  return make((opts.generator ?? defaultGenerator).uniform(sizeOf(shape)), shape, floatDType(opts, 'rand'), opts);
}

/** Integers uniform in [low, high), int32 unless dtype says otherwise. */
export function randint(low: number, high: number, shape: Shape, opts: RandomOptions = {}): Tensor {
  checkShape(shape, 'randint');
  const dtype = resolveDType(opts.dtype, 'randint') ?? 'int32';
  checkIntRange([low, high - 1], dtype, opts, 'randint');
  return make((opts.generator ?? defaultGenerator).integers(low, high, sizeOf(shape)), shape, dtype, opts);
}

/** A random permutation of 0..n-1 (int32). */
export function randperm(n: number, opts: RandomOptions = {}): Tensor {
  return make((opts.generator ?? defaultGenerator).permutation(n), [n], resolveDType(opts.dtype, 'randperm') ?? 'int32', opts);
}

/**
 * Throws unless every value of a floating point tensor truncates into int32 (what int64 means here). Checked
 * where the backend reads synchronously (cpu, wasm); integer and bool tensors always fit.
 */
export function checkFitsInt64(t: Tensor, op: string): void {
  if (!isFloat(t.dtype) || !t.backend.readSync) return;
  const data = t.dataSync();
  for (let i = 0; i < data.length; i++) {
    const v = Math.trunc(data[i]!);
    if (!(v >= INT32_MIN && v <= INT32_MAX)) checkInt64Range(v, `${op}('int64'): element ${i}`);
  }
}
