// The contract every backend (cpu reference, wasm, webgpu) implements, and the device registry.
//
// Tensors are always contiguous, row-major. A backend owns its buffers; kernels read input buffers
// and return new output buffers (only `stridedWrite` writes into a buffer it is given, and only into
// one the caller has just allocated). Kernel calls are synchronous from the caller's view (a GPU
// backend may queue them); reading back is asynchronous. Shapes are checked by the ops before a
// kernel runs; kernels check only what needs the data (index ranges).

import type { DType, TypedArray } from './dtype.js';
import type { Shape } from './shape.js';

export interface BackendBuffer {
  readonly dtype: DType;
  /** Number of elements. */
  readonly size: number;
}

export type UnaryOp =
  | 'neg' | 'abs' | 'sign' | 'exp' | 'log' | 'sqrt' | 'rsqrt' | 'sin' | 'cos' | 'tanh' | 'sigmoid'
  | 'relu' | 'erf' | 'gelu' | 'geluTanh' | 'silu' | 'floor' | 'ceil' | 'round' | 'not';

/** Activations whose backward has its own kernel: dx = f'(x) * dy. */
export type ActivationOp = 'relu' | 'gelu' | 'geluTanh' | 'silu';

export type ArithmeticOp = 'add' | 'sub' | 'mul' | 'div' | 'pow' | 'maximum' | 'minimum';
export type CompareOp = 'eq' | 'ne' | 'lt' | 'le' | 'gt' | 'ge';
export type LogicalOp = 'and' | 'or';
export type BinaryOp = ArithmeticOp | CompareOp | LogicalOp;

export type ReduceOp = 'sum' | 'max' | 'min';
export type ArgReduceOp = 'argmax' | 'argmin';

/** C[b] = op(A[b]) @ op(B[b]); A is [m, k] (or [k, m] if transA), B is [k, n] (or [n, k] if transB). */
export interface MatmulParams {
  batch: number;
  m: number;
  n: number;
  k: number;
  transA: boolean;
  transB: boolean;
  /** Elements between consecutive batch matrices; 0 repeats the same matrix. */
  strideA: number;
  strideB: number;
}

/** Geometry of a 2-d sliding window over x [batch, channels, height, width]. */
export interface WindowParams {
  batch: number;
  channels: number;
  height: number;
  width: number;
  kernelH: number;
  kernelW: number;
  strideH: number;
  strideW: number;
  padH: number;
  padW: number;
  dilationH: number;
  dilationW: number;
  outH: number;
  outW: number;
}

/** Fused attention over q [batch * heads, T, hs], k [batch * heads, S, hs], v [batch * heads, S, hv]. */
export interface AttentionParams {
  batch: number;
  heads: number;
  t: number;
  s: number;
  hs: number;
  hv: number;
  scale: number;
  /** Query i may attend keys j <= i + S - T (the queries are the last T positions). */
  causal: boolean;
  /** Element strides of the additive bias over [batch, heads, T, S] (0 = broadcast), or null for no bias. */
  biasStrides: readonly [number, number, number, number] | null;
}

export interface Backend {
  readonly name: string;
  /** True where buffers live outside the JS heap and must be freed (wasm, webgpu). */
  readonly manualMemory: boolean;

  // ---- memory ----
  upload(data: TypedArray, dtype: DType): BackendBuffer;
  fill(dtype: DType, size: number, value: number): BackendBuffer;
  /** A fresh copy of the buffer's contents, typed by its dtype (bool reads as Uint8Array). */
  read(buf: BackendBuffer): Promise<TypedArray>;
  /** Synchronous read where the backend can do it (CPU-side backends); undefined otherwise. */
  readSync?(buf: BackendBuffer): TypedArray;
  free(buf: BackendBuffer): void;

  // ---- elementwise ----
  cast(x: BackendBuffer, dtype: DType): BackendBuffer;
  unary(op: UnaryOp, x: BackendBuffer): BackendBuffer;
  activationGrad(op: ActivationOp, x: BackendBuffer, dy: BackendBuffer): BackendBuffer;
  /** a and b have the same dtype; the result has it too, or bool for comparisons and logic. */
  binary(op: BinaryOp, a: BackendBuffer, aShape: Shape, b: BackendBuffer, bShape: Shape, outShape: Shape): BackendBuffer;
  where(cond: BackendBuffer, condShape: Shape, a: BackendBuffer, aShape: Shape, b: BackendBuffer, bShape: Shape, outShape: Shape): BackendBuffer;

  // ---- reductions over the middle axis of [outer, size, inner] ----
  reduce(op: ReduceOp, x: BackendBuffer, outer: number, size: number, inner: number): BackendBuffer;
  argReduce(op: ArgReduceOp, x: BackendBuffer, outer: number, size: number, inner: number): BackendBuffer;
  cumsum(x: BackendBuffer, outer: number, size: number, inner: number, reverse: boolean): BackendBuffer;

  // ---- linear algebra ----
  matmul(a: BackendBuffer, b: BackendBuffer, p: MatmulParams): BackendBuffer;

  // ---- movement ----
  /** out[i] = x[offset + sum_k i_k * strides[k]] for every index i of `shape` (strides may be 0). */
  stridedCopy(x: BackendBuffer, shape: Shape, strides: readonly number[], offset: number): BackendBuffer;
  /** dst[offset + sum_k i_k * strides[k]] = src[i] for every index i of `shape`; writes into dst. */
  stridedWrite(dst: BackendBuffer, src: BackendBuffer, shape: Shape, strides: readonly number[], offset: number): void;

  // ---- indexing along the middle axis of [outer, size, inner]; `op` names the caller in errors ----
  /** out[o, j, i] = x[o, idx[j], i]; out is [outer, idx.size, inner]. */
  indexSelect(x: BackendBuffer, idx: BackendBuffer, outer: number, size: number, inner: number, op: string): BackendBuffer;
  /** out = zeros [outer, size, inner]; out[o, idx[j], i] += src[o, j, i]. */
  indexAdd(src: BackendBuffer, idx: BackendBuffer, outer: number, size: number, inner: number, op: string): BackendBuffer;
  /** out[o, j, i] = x[o, idx[o, j, i], i]; idx and out are [outer, m, inner]. */
  gather(x: BackendBuffer, idx: BackendBuffer, outer: number, size: number, inner: number, m: number, op: string): BackendBuffer;
  /** out = zeros [outer, size, inner]; out[o, idx[o, j, i], i] += src[o, j, i]. */
  scatterAdd(src: BackendBuffer, idx: BackendBuffer, outer: number, size: number, inner: number, m: number, op: string): BackendBuffer;

  // ---- fused neural-network kernels over rows of length `cols` ----
  softmax(x: BackendBuffer, rows: number, cols: number, log: boolean): BackendBuffer;
  /** Given y = (log)softmax(x) and dy, returns dx. */
  softmaxGrad(y: BackendBuffer, dy: BackendBuffer, rows: number, cols: number, log: boolean): BackendBuffer;
  layerNorm(x: BackendBuffer, weight: BackendBuffer | null, bias: BackendBuffer | null, rows: number, cols: number, eps: number):
    { y: BackendBuffer; mean: BackendBuffer; rstd: BackendBuffer };
  layerNormGrad(x: BackendBuffer, weight: BackendBuffer | null, mean: BackendBuffer, rstd: BackendBuffer, dy: BackendBuffer, rows: number, cols: number):
    { dx: BackendBuffer; dweight: BackendBuffer; dbias: BackendBuffer };
  rmsNorm(x: BackendBuffer, weight: BackendBuffer | null, rows: number, cols: number, eps: number): { y: BackendBuffer; rstd: BackendBuffer };
  rmsNormGrad(x: BackendBuffer, weight: BackendBuffer | null, rstd: BackendBuffer, dy: BackendBuffer, rows: number, cols: number):
    { dx: BackendBuffer; dweight: BackendBuffer };

  // ---- fused attention (optional: without it the op is composed from matmul and softmax) ----
  /**
   * out = softmax(q k^T * scale + bias, masked) v, and the log-sum-exp of each score row. A row with
   * no key left to attend gives out 0 and lse -Infinity (PyTorch's safe-softmax semantics).
   */
  attention?(q: BackendBuffer, k: BackendBuffer, v: BackendBuffer, bias: BackendBuffer | null, p: AttentionParams): { out: BackendBuffer; lse: BackendBuffer };
  attentionGrad?(q: BackendBuffer, k: BackendBuffer, v: BackendBuffer, bias: BackendBuffer | null, out: BackendBuffer, lse: BackendBuffer, dOut: BackendBuffer, p: AttentionParams):
    { dq: BackendBuffer; dk: BackendBuffer; dv: BackendBuffer };

  // ---- sliding windows (convolution and pooling are built on these) ----
  /** x [B, C, H, W] -> cols [B, C * kH * kW, outH * outW]; taps outside the input read padValue. */
  im2col(x: BackendBuffer, p: WindowParams, padValue: number): BackendBuffer;
  /** The adjoint of im2col (with padValue 0): sums cols back into [B, C, H, W]. */
  col2im(cols: BackendBuffer, p: WindowParams): BackendBuffer;
}

// ---- registry ----

const backends = new Map<string, Backend>();
let defaultDevice: string | null = null;

export function registerBackend(backend: Backend): void {
  backends.set(backend.name, backend);
  defaultDevice ??= backend.name;
}

export function getBackend(device?: string): Backend {
  const name = device ?? defaultDevice;
  const b = name === null ? undefined : backends.get(name);
  if (!b) throw new Error(`unknown device '${name}': registered devices are ${[...backends.keys()].join(', ') || 'none'}`);
  return b;
}

export function listDevices(): string[] {
  return [...backends.keys()];
}

export function setDefaultDevice(device: string): void {
  getBackend(device);
  defaultDevice = device;
}

export function getDefaultDevice(): string {
  return getBackend().name;
}
