// Creating tensors: from arrays, constants, ranges and seeded random numbers.

import { getBackend } from './backend.js';
import { allocArray, dtypeOfArray, isFloat, type DType, type TypedArray } from './dtype.js';
import { defaultGenerator, type Generator } from './random.js';
import { checkShape, fmtShape, sizeOf, type Shape } from './shape.js';
import { Tensor, type NestedArray } from './tensor.js';

export interface TensorOptions {
  dtype?: DType;
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

function make(values: ArrayLike<number>, shape: Shape, dtype: DType, opts: TensorOptions): Tensor {
  const data = allocArray(dtype, values.length);
  if (dtype === 'bool') for (let i = 0; i < values.length; i++) data[i] = values[i] ? 1 : 0;
  else data.set(values);
  const backend = getBackend(opts.device);
  return finish(Tensor.fromBuffer(backend, backend.upload(data, dtype), shape), opts);
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

function flatten(data: NestedArray, shape: Shape, dim: number, out: number[], op: string): void {
  if (dim === shape.length) {
    if (Array.isArray(data)) throw new Error(`${op}: ragged nested array (expected shape ${fmtShape(shape)})`);
    out.push(typeof data === 'boolean' ? Number(data) : data);
    return;
  }
  if (!Array.isArray(data) || data.length !== shape[dim]) throw new Error(`${op}: ragged nested array (expected shape ${fmtShape(shape)})`);
  for (const d of data) flatten(d, shape, dim + 1, out, op);
}

function firstScalar(data: NestedArray): number | boolean | undefined {
  let x: NestedArray | undefined = data;
  while (Array.isArray(x)) x = x[0];
  return x;
}

/**
 * A tensor from nested arrays, a typed array or a number. Numbers default to float32 (JavaScript
 * cannot tell 1 from 1.0), booleans to bool, typed arrays to their own dtype; pass `dtype` to choose.
 */
export function tensor(data: NestedArray | TypedArray, opts: TensorOptions & { shape?: Shape } = {}): Tensor {
  if (ArrayBuffer.isView(data)) {
    const shape = opts.shape ?? [data.length];
    checkShape(shape, 'tensor');
    if (sizeOf(shape) !== data.length) throw new Error(`tensor: shape ${fmtShape(shape)} needs ${sizeOf(shape)} values, got ${data.length}`);
    return make(data, shape, opts.dtype ?? dtypeOfArray(data), opts);
  }
  const shape = inferShape(data);
  const flat: number[] = [];
  flatten(data, shape, 0, flat, 'tensor');
  const dtype = opts.dtype ?? (typeof firstScalar(data) === 'boolean' ? 'bool' : 'float32');
  const target = opts.shape ?? shape;
  if (sizeOf(target) !== flat.length) throw new Error(`tensor: shape ${fmtShape(target)} needs ${sizeOf(target)} values, got ${flat.length}`);
  return make(flat, target, dtype, opts);
}

export function full(shape: Shape, value: number, opts: TensorOptions = {}): Tensor {
  checkShape(shape, 'full');
  const backend = getBackend(opts.device);
  return finish(Tensor.fromBuffer(backend, backend.fill(opts.dtype ?? 'float32', sizeOf(shape), value), shape), opts);
}

export function zeros(shape: Shape, opts: TensorOptions = {}): Tensor {
  return full(shape, 0, opts);
}

export function ones(shape: Shape, opts: TensorOptions = {}): Tensor {
  return full(shape, 1, opts);
}

function likeOpts(t: Tensor, opts: TensorOptions): TensorOptions {
  return { dtype: t.dtype, device: t.device, ...opts };
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
  const dtype = opts.dtype ?? ([start, end, step].every(Number.isInteger) ? 'int32' : 'float32');
  return make(values, [n], dtype, opts);
}

export function linspace(start: number, end: number, steps: number, opts: TensorOptions = {}): Tensor {
  const values = Array.from({ length: steps }, (_, i) => (steps === 1 ? start : start + ((end - start) * i) / (steps - 1)));
  return make(values, [steps], opts.dtype ?? 'float32', opts);
}

export function eye(n: number, m = n, opts: TensorOptions = {}): Tensor {
  const values = new Float64Array(n * m);
  for (let i = 0; i < Math.min(n, m); i++) values[i * m + i] = 1;
  return make(values, [n, m], opts.dtype ?? 'float32', opts);
}

function floatDType(opts: TensorOptions, op: string): DType {
  const dtype = opts.dtype ?? 'float32';
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
  return make((opts.generator ?? defaultGenerator).integers(low, high, sizeOf(shape)), shape, opts.dtype ?? 'int32', opts);
}

/** A random permutation of 0..n-1 (int32). */
export function randperm(n: number, opts: RandomOptions = {}): Tensor {
  return make((opts.generator ?? defaultGenerator).permutation(n), [n], opts.dtype ?? 'int32', opts);
}
