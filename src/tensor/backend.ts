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

/** y [m, n] = x [m, k] @ W^T, W [n, k] stored in ggml blocks of 32 (Q8_0: 34 bytes, Q4_0: 18 bytes per block) in a uint8 buffer. */
export interface QuantMatmulParams {
  type: 'q8_0' | 'q4_0';
  m: number;
  n: number;
  k: number;
}

/** A quantized weight W [n, k] in ggml blocks (k / 32 blocks per row). */
export type QuantWeightParams = Omit<QuantMatmulParams, 'm'>;

/** One of the weights that quantMatmuls multiplies with a shared x: W [n, k] from uploadQuant, bias [n] or none. */
export interface QuantOperand {
  w: BackendBuffer;
  n: number;
  bias?: BackendBuffer | null;
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

/**
 * Where the (batch b, head h) matrix of an attention operand lives in its buffer: element (b, h, i, d) at
 * offset + b * batch + h * head + i * row + d (the last dimension is contiguous).
 */
export interface AttentionLayout {
  offset: number;
  batch: number;
  head: number;
  row: number;
}

/**
 * Fused attention over q [batch * heads, T, hs], k [batch * heads, S, hs], v [batch * heads, S, hv] (contiguous),
 * or over any layouts given in `layout`.
 */
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
  /**
   * Strided operands, e.g. q, k and v read straight from one [B, T, 3, H, hs] projection and out written as
   * [B, T, H, hv] (no head transposes). Without it every operand is contiguous [B, H, rows, cols]. Regions of
   * operands that share a buffer must not overlap. The gradients come back in the layouts of their inputs:
   * one new buffer per distinct input buffer, returned for every input that shares it (dq === dk === dv
   * when q, k and v are one buffer); elements outside every region are 0. lse is always contiguous [B, H, T].
   */
  layout?: { q: AttentionLayout; k: AttentionLayout; v: AttentionLayout; out: AttentionLayout };
  /**
   * The forward may keep what its backward would recompute (the probabilities, in the backend's own layout)
   * and return it as `probs`, to be handed back to attentionGrad. Set when a backward will follow.
   */
  saveProbs?: boolean;
}

/**
 * Rotary position embedding over rows of `hs` values (Backend.rope), one row per (batch, head, position):
 * out = x cos + rotate_half(x) sin with rotate_half([x1, x2]) = [-x2, x1] (halves of the row), or with `inverse`
 * (the backward) out = x cos + rotate_half^T(x sin), rotate_half^T([v1, v2]) = [v2, -v1]. Every product is rounded to
 * the dtype before the sum, as the composed ops round them.
 */
export interface RopeParams {
  batch: number;
  heads: number;
  t: number;
  hs: number;
  /** Where x's rows are (LLaMA's [B, T, H * hs] q / k projections are read in place). */
  x: AttentionLayout;
  /** Where out's rows go, in a fresh buffer of batch * heads * t * hs elements (the rows fill it). */
  out: AttentionLayout;
  /** Element strides of cos and sin (one shape, contiguous rows of hs) over batch, head, position; 0 = broadcast. */
  cosStrides: readonly [number, number, number];
  inverse: boolean;
}

/**
 * One Adam / AdamW step on one parameter (Backend.adamStep), in PyTorch's order with every constant and every
 * intermediate rounded to the parameter's dtype, so that it equals the composed elementwise ops exactly:
 * p' = p * (1 - lr * wd) when decoupled (AdamW), or g' = g + wd * p (Adam's L2); m = m * b1 + g' * (1 - b1);
 * v = v * b2 + (g' * (1 - b2)) * g'; p' += (m * -(lr / (1 - b1^step))) / (sqrt(v) / sqrt(1 - b2^step) + eps).
 */
export interface AdamStepParams {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  decoupled: boolean;
  /** 1 on the first step (when the moments are null, i.e. zeros). */
  step: number;
}

/**
 * One SGD step on one parameter (Backend.sgdStep), PyTorch's order, rounded like the composed ops:
 * g' = g + wd * p; with momentum, buf = g' on the first step (buffer null), else buf * momentum + g' * (1 - dampening),
 * and g' = nesterov ? g' + buf * momentum : buf; p' = p + g' * -lr.
 */
export interface SgdStepParams {
  lr: number;
  momentum: number;
  dampening: number;
  weightDecay: number;
  nesterov: boolean;
}

export interface Backend {
  readonly name: string;
  /** false where the device has no 64-bit floats (GPUs): float64 tensors are refused, and ops that widen to float64 for accuracy stay in float32. Default true. */
  readonly float64?: boolean;

  // ---- memory ----
  upload(data: TypedArray, dtype: DType): BackendBuffer;
  fill(dtype: DType, size: number, value: number): BackendBuffer;
  /** Optional: a buffer whose contents are unspecified, for a caller that writes every element (cat); else fill(0). */
  empty?(dtype: DType, size: number): BackendBuffer;
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
  /** With a bias [n] (of the operands' dtype), it is added to every row of every product (y = x W + b in one pass). */
  matmul(a: BackendBuffer, b: BackendBuffer, p: MatmulParams, bias?: BackendBuffer | null): BackendBuffer;
  /**
   * Optional: a product of batch 1 and, from the same read of B, the sums of op(B)'s columns over its k rows
   * ([n]): a weight gradient x^T g together with the bias gradient (the column sums of g).
   */
  matmulColSums?(a: BackendBuffer, b: BackendBuffer, p: MatmulParams): { out: BackendBuffer; sums: BackendBuffer };
  /**
   * Optional: a product with quantized weights that never dequantizes them (x float32, w from uploadQuant, bias [n]
   * float32): x is quantized per block of 32 to int8, as llama.cpp does, and blocks multiply as integers.
   */
  quantMatmul?(x: BackendBuffer, w: BackendBuffer, p: QuantMatmulParams, bias?: BackendBuffer | null): BackendBuffer;
  /**
   * With quantMatmul: W [n, k]'s block bytes in ggml's layout (row after row), uploaded in the layout this backend's
   * quantMatmul reads (the wasm backend interleaves rows four by four).
   */
  uploadQuant?(blocks: Uint8Array, p: QuantWeightParams): BackendBuffer;
  /**
   * With quantMatmul: one x times several weights of one type (a layer's q, k and v; gate and up), x quantized once
   * and the products run as one job; out[i] equals quantMatmul(x, ws[i].w, { ...p, n: ws[i].n }, ws[i].bias).
   */
  quantMatmuls?(x: BackendBuffer, ws: readonly QuantOperand[], p: Omit<QuantMatmulParams, 'n'>): BackendBuffer[];
  /**
   * Optional: op(a) op(b) with `a` float32 and `b` float16 / bfloat16, read as stored (widened a few values at a time,
   * never a float32 copy of b); float32 result, float32 accumulation; bias [n] float32. `p.transA` must be false.
   */
  matmulHalf?(a: BackendBuffer, b: BackendBuffer, p: MatmulParams, bias?: BackendBuffer | null): BackendBuffer;

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

  // ---- fused cross-entropy over rows (optional: without it the loss is composed from log-softmax and gather) ----
  /**
   * loss[r] = logsumexp(logits[r]) - logits[r, target[r]], and lse[r]; rows whose target is ignoreIndex give loss 0.
   * target is int32; any other target outside [0, cols) is an error named after `op`, raised before any output.
   */
  crossEntropy?(logits: BackendBuffer, target: BackendBuffer, rows: number, cols: number, ignoreIndex: number, op: string): { loss: BackendBuffer; lse: BackendBuffer };
  /** d logits[r, j] = dloss[r] * (exp(logits[r, j] - lse[r]) - (j == target[r])); 0 on ignored rows. */
  crossEntropyGrad?(logits: BackendBuffer, target: BackendBuffer, lse: BackendBuffer, dloss: BackendBuffer, rows: number, cols: number, ignoreIndex: number): BackendBuffer;

  // ---- fused attention (optional: without it the op is composed from matmul and softmax) ----
  /**
   * out = softmax(q k^T * scale + bias, masked) v, and the log-sum-exp of each score row. A row with
   * no key left to attend gives out 0 and lse -Infinity (PyTorch's safe-softmax semantics).
   */
  attention?(q: BackendBuffer, k: BackendBuffer, v: BackendBuffer, bias: BackendBuffer | null, p: AttentionParams):
    { out: BackendBuffer; lse: BackendBuffer; probs?: BackendBuffer };
  /** probs: what the forward returned for p.saveProbs (or null / absent: recompute). */
  attentionGrad?(q: BackendBuffer, k: BackendBuffer, v: BackendBuffer, bias: BackendBuffer | null, out: BackendBuffer, lse: BackendBuffer, dOut: BackendBuffer, p: AttentionParams,
    probs?: BackendBuffer | null): { dq: BackendBuffer; dk: BackendBuffer; dv: BackendBuffer };

  // ---- fused rotary position embedding (optional: without it the op is composed from slices, cat, mul and add) ----
  rope?(x: BackendBuffer, cos: BackendBuffer, sin: BackendBuffer, p: RopeParams): BackendBuffer;

  // ---- fused optimizer updates (optional: without them the optimizers compose elementwise ops) ----
  /** New parameter and moment buffers (the inputs are left as they were); expAvg / expAvgSq null = zeros (first step). */
  adamStep?(param: BackendBuffer, grad: BackendBuffer, expAvg: BackendBuffer | null, expAvgSq: BackendBuffer | null, p: AdamStepParams):
    { param: BackendBuffer; expAvg: BackendBuffer; expAvgSq: BackendBuffer };
  /** New parameter and momentum buffer (null when momentum is 0); momentumBuffer null = the first step. */
  sgdStep?(param: BackendBuffer, grad: BackendBuffer, momentumBuffer: BackendBuffer | null, p: SgdStepParams):
    { param: BackendBuffer; momentumBuffer: BackendBuffer | null };

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
