// The 'wasm' backend: buffers in one WebAssembly linear memory, kernels from assembly/ run on the
// calling thread or split by tiles over a worker pool. float64 (not a SIMD type here) runs through the
// reference kernels of src/backend/cpu, as do the float-only kernels (softmax, norms, attention) when
// handed an integer dtype. float16 / bfloat16 buffers hold bits; their kernels compute in float32 (../half.ts).

import type {
  ActivationOp, AdamStepParams, ArgReduceOp, AttentionParams, Backend, BackendBuffer, BinaryOp, MatmulParams, QuantMatmulParams, QuantOperand, QuantWeightParams, ReduceOp, RopeParams, SgdStepParams, UnaryOp, WindowParams,
} from '../../tensor/backend.js';
import { bytesPerElement, castStorage, decodeHalf, isHalf, toStorage, type DType, type TypedArray } from '../../tensor/dtype.js';
import { broadcastStrides, fmtShape, sizeOf, stridesOf, type Shape } from '../../tensor/shape.js';
import * as attRef from '../cpu/attention.js';
import * as ew from '../cpu/elementwise.js';
import * as idxRef from '../cpu/indexing.js';
import { colSums as colSumsRef, matmul as matmulRef } from '../cpu/matmul.js';
import { checkMatmulHalf } from '../cpu/matmul-half.js';
import { checkQuantMatmul, checkQuantWeight, QBLOCK } from '../cpu/quant.js';
import { stridedCopy as stridedCopyRef, stridedWrite as stridedWriteRef } from '../cpu/movement.js';
import * as normRef from '../cpu/norm.js';
import * as optimRef from '../cpu/optim.js';
import * as redRef from '../cpu/reduce.js';
import { rope as ropeRef } from '../cpu/rotary.js';
import { col2im as col2imRef, im2col as im2colRef } from '../cpu/window.js';
import { installHalfKernels } from '../half.js';
import type { Allocator, AllocatorStats } from './allocator.js';
import {
  ACTIVATION_CODE, ARG, attentionScratchBytes, BINARY_CODE, CHUNK, DT_BOOL_CAST, DT_F32, DT_I32, DT_U8, GEMM_KC, GEMM_MC, GEMM_NR, K, MAXDIM, PARAM_SLOTS, REDUCE_CODE, UNARY_CODE,
} from './kernels.js';
import type { WorkerPool } from './pool.js';
import { hasNonFiniteScale, interleaveQuantRows } from './quant-layout.js';

export class WasmBuffer implements BackendBuffer {
  /** Set by free(): a freed buffer must never reach a kernel again. */
  freed = false;
  constructor(readonly dtype: DType, readonly size: number, readonly ptr: number, readonly bytes: number) {}
}

export interface WasmMemoryStats extends AllocatorStats {
  /** Buffers handed out by the backend and not yet freed. */
  liveBuffers: number;
}

/** What the backend needs from initialisation (see init.ts). */
export interface WasmRuntime {
  memory: WebAssembly.Memory;
  exports: { runJob(p: number, tid: number): void; checkIndices(idx: number, n: number, size: number): number };
  allocator: Allocator;
  /** The job parameter block (PARAM_SLOTS int32 slots). */
  param: number;
  scratch: number;
  scratchPerThread: number;
  pool: WorkerPool | null;
  variant: string;
}

const COMPARE_OR_LOGIC = new Set<BinaryOp>(['eq', 'ne', 'lt', 'le', 'gt', 'ge', 'and', 'or']);
/**
 * Below this much work a job runs on the calling thread alone: waking a worker costs about 10 us, the
 * time of ~100K cheap elementwise operations or ~1M multiply-adds (measured). Work is counted in
 * elements times a cost weight (WEIGHT_*), or in multiply-adds for GEMM.
 */
const PARALLEL_MIN_ELEMENTS = 1 << 17;
const PARALLEL_MIN_FLOPS = 1 << 20;
/**
 * The attention forward's threshold, in its multiply-adds: they undercount a tile's cost when it has few query rows (a
 * decoded token: K and V packed for one row, the exps, keys read from a cache buffer that left the cache). Measured,
 * 12 heads of 64, one query row: threaded from about 40 keys, a LLaMA decode step at 150 keys took 5.8 instead of 6.3 ms.
 */
const ATTENTION_PARALLEL_MIN = PARALLEL_MIN_FLOPS / 16;
/** Weights per quantized-product job (assembly/quant.ts reads their slots). */
const QMATMUL_MAX = 4;
/** Most attention probabilities the forward keeps for the backward (floats: 64 MiB). */
const MAX_KEPT_PROBS = 1 << 24;
/** Cost weights per element: transcendental math vs a load-op-store. */
const WEIGHT_MATH = 8;
const CHEAP_UNARY = new Set<UnaryOp>(['neg', 'abs', 'sign', 'relu', 'floor', 'ceil', 'round', 'not']);

function dtCode(dtype: DType): number {
  return dtype === 'float32' ? DT_F32 : dtype === 'int32' ? DT_I32 : DT_U8;
}
const esize = bytesPerElement;

/**
 * Merges adjacent dims that every stride set walks contiguously (and drops size-1 dims):
 * a same-shape op becomes one dim, a row broadcast two. Returns null past MAXDIM dims.
 */
function coalesce(shape: Shape, strides: readonly (readonly number[])[]): { shape: number[]; strides: number[][] } | null {
  const outShape: number[] = [];
  const outStrides: number[][] = strides.map(() => []);
  for (let d = shape.length - 1; d >= 0; d--) {
    const size = shape[d]!;
    if (size === 1) continue;
    if (outShape.length > 0 && strides.every((s, k) => s[d] === outStrides[k]![0]! * outShape[0]!)) {
      outShape[0]! *= size;
      continue;
    }
    outShape.unshift(size);
    strides.forEach((s, k) => outStrides[k]!.unshift(s[d]!));
  }
  if (outShape.length === 0) {
    outShape.push(1);
    outStrides.forEach((s) => s.push(0));
  }
  return outShape.length > MAXDIM ? null : { shape: outShape, strides: outStrides };
}

export class WasmBackend implements Backend {
  readonly name: string = 'wasm';
  private slotsI32!: Int32Array;
  private slotsF32!: Float32Array;
  private liveBuffers = 0;

  constructor(private readonly rt: WasmRuntime) {
    this.refreshViews();
    installHalfKernels(this);
  }

  /** Called after the memory grows (a non-shared memory detaches its old buffer). */
  refreshViews(): void {
    this.slotsI32 = new Int32Array(this.rt.memory.buffer, this.rt.param, PARAM_SLOTS);
    this.slotsF32 = new Float32Array(this.rt.memory.buffer, this.rt.param, PARAM_SLOTS);
  }

  /** Which build runs ('relaxed-mt', 'simd-st', ...) and how many threads work on a job. */
  get info(): { variant: string; threads: number } {
    return { variant: this.rt.variant, threads: (this.rt.pool?.size ?? 0) + 1 };
  }

  /** Stops the worker threads (the backend then runs single-threaded). */
  terminate(): void {
    this.rt.pool?.terminate();
    this.rt.pool = null;
  }

  /** Live buffers and allocator footprint: flat over a training loop once it has warmed up. */
  memoryStats(): WasmMemoryStats {
    return { liveBuffers: this.liveBuffers, ...this.rt.allocator.stats() };
  }

  // ---- plumbing ----

  private alloc(dtype: DType, size: number): WasmBuffer {
    const { ptr, bytes } = this.rt.allocator.alloc(size * esize(dtype));
    this.liveBuffers++;
    return new WasmBuffer(dtype, size, ptr, bytes);
  }

  /** The pointer of a live buffer. */
  private p(b: BackendBuffer | null): number {
    if (b === null) return 0;
    const w = b as WasmBuffer;
    if (w.freed) throw new Error('wasm backend: a kernel was handed a freed buffer');
    return w.ptr;
  }

  /** A typed view of a buffer's elements (valid until the next allocation). */
  private view(b: BackendBuffer): TypedArray {
    const w = b as WasmBuffer;
    if (w.freed) throw new Error('wasm backend: a freed buffer was read');
    const mem = this.rt.memory.buffer;
    switch (w.dtype) {
      case 'float32': return new Float32Array(mem, w.ptr, w.size);
      case 'float64': return new Float64Array(mem, w.ptr, w.size);
      case 'int32': return new Int32Array(mem, w.ptr, w.size);
      case 'float16':
      case 'bfloat16': return new Uint16Array(mem, w.ptr, w.size);
      default: return new Uint8Array(mem, w.ptr, w.size);
    }
  }

  /** A reference kernel's result as a buffer of this backend. */
  private fromRef(dtype: DType, data: TypedArray): WasmBuffer {
    return this.upload(data, dtype) as WasmBuffer;
  }

  /** Writes parameter slots from ARG on. */
  private args(...values: number[]): void {
    this.slotsI32.set(values, ARG);
  }
  private argF32(slot: number, v: number): void {
    this.slotsF32[ARG + slot] = v;
  }

  /**
   * Runs the job in the parameter block: `tiles` tiles, over the pool when `work` is large enough.
   * Each thread gets scratch bytes at scratch.ptr + tid * scratch.perThread (default: the GEMM scratch).
   */
  private exec(kernel: number, tiles: number, work: number, parallelMin = PARALLEL_MIN_ELEMENTS, scratch?: { ptr: number; perThread: number }): void {
    if (tiles <= 0) return;
    const s = this.slotsI32, rt = this.rt;
    s[0] = kernel;
    s[1] = 0;
    s[2] = tiles;
    s[3] = scratch ? scratch.ptr : rt.scratch;
    s[4] = scratch ? scratch.perThread : rt.scratchPerThread;
    if (rt.pool && tiles > 1 && work >= parallelMin) rt.pool.run(rt.param, () => rt.exports.runJob(rt.param, 0));
    else rt.exports.runJob(rt.param, 0);
  }

  private checkIndices(idx: BackendBuffer, size: number, op: string): void {
    const bad = this.rt.exports.checkIndices(this.p(idx), idx.size, size);
    if (bad >= 0) {
      const v = (this.view(idx) as Int32Array)[bad];
      throw new Error(`${op}: index ${v} is out of range for a dimension of size ${size}`);
    }
  }

  // ---- memory ----

  /** Half dtypes: a Uint16Array is taken as bits, other arrays as values (rounded to nearest even); bool stores 0 / 1. */
  upload(data: TypedArray, dtype: DType): BackendBuffer {
    const b = this.alloc(dtype, data.length);
    this.view(b).set(isHalf(dtype) || dtype === 'bool' ? toStorage(data, dtype) : data);
    return b;
  }
  empty(dtype: DType, size: number): BackendBuffer {
    return this.alloc(dtype, size);
  }
  fill(dtype: DType, size: number, value: number): BackendBuffer {
    const b = this.alloc(dtype, size);
    this.view(b).fill(toStorage([value], dtype)[0]!);
    return b;
  }
  async read(b: BackendBuffer): Promise<TypedArray> {
    return this.readSync(b);
  }
  /** Half dtypes decode to Float32Array. */
  readSync(b: BackendBuffer): TypedArray {
    return isHalf(b.dtype) ? decodeHalf(this.view(b) as Uint16Array, b.dtype) : this.view(b).slice();
  }
  free(b: BackendBuffer): void {
    const w = b as WasmBuffer;
    if (w.freed) throw new Error('wasm backend: buffer freed twice');
    w.freed = true;
    this.liveBuffers--;
    this.rt.allocator.free(w.ptr, w.bytes);
  }

  // ---- elementwise ----

  cast(x: BackendBuffer, dtype: DType): BackendBuffer {
    if (x.dtype === 'float64' || dtype === 'float64' || isHalf(x.dtype) || isHalf(dtype)) return this.fromRef(dtype, castStorage(this.view(x), x.dtype, dtype));
    const out = this.alloc(dtype, x.size);
    this.args(this.p(x), out.ptr, x.size, dtCode(x.dtype), dtype === 'bool' ? DT_BOOL_CAST : dtCode(dtype));
    this.exec(K.cast, Math.ceil(x.size / CHUNK), x.size);
    return out;
  }

  unary(op: UnaryOp, x: BackendBuffer): BackendBuffer {
    if (x.dtype === 'float64') return this.fromRef(x.dtype, ew.unary(op, this.view(x), x.dtype));
    const out = this.alloc(x.dtype, x.size);
    this.args(UNARY_CODE[op], this.p(x), out.ptr, x.size, dtCode(x.dtype));
    this.exec(K.unary, Math.ceil(x.size / CHUNK), CHEAP_UNARY.has(op) ? x.size : x.size * WEIGHT_MATH);
    return out;
  }

  activationGrad(op: ActivationOp, x: BackendBuffer, dy: BackendBuffer): BackendBuffer {
    if (x.dtype === 'float64') return this.fromRef(x.dtype, ew.activationGrad(op, this.view(x), this.view(dy), x.dtype));
    const out = this.alloc(x.dtype, x.size);
    this.args(ACTIVATION_CODE[op], this.p(x), this.p(dy), out.ptr, x.size, dtCode(x.dtype));
    this.exec(K.actGrad, Math.ceil(x.size / CHUNK), op === 'relu' ? x.size : x.size * WEIGHT_MATH);
    return out;
  }

  binary(op: BinaryOp, a: BackendBuffer, aShape: Shape, b: BackendBuffer, bShape: Shape, outShape: Shape): BackendBuffer {
    const dtype: DType = COMPARE_OR_LOGIC.has(op) ? 'bool' : a.dtype;
    const c = a.dtype === 'float64' ? null : coalesce(outShape, [broadcastStrides(aShape, outShape), broadcastStrides(bShape, outShape)]);
    if (c === null) return this.fromRef(dtype, ew.binary(op, this.view(a), aShape, this.view(b), bShape, outShape, dtype));
    const n = sizeOf(outShape);
    const out = this.alloc(dtype, n);
    this.args(BINARY_CODE[op], dtCode(a.dtype), this.p(a), this.p(b), out.ptr, c.shape.length, n);
    this.slotsI32.set(c.shape, ARG + 7);
    this.slotsI32.set(c.strides[0]!, ARG + 7 + MAXDIM);
    this.slotsI32.set(c.strides[1]!, ARG + 7 + 2 * MAXDIM);
    this.exec(K.binary, Math.ceil(n / CHUNK), op === 'pow' ? n * WEIGHT_MATH : n);
    return out;
  }

  where(cond: BackendBuffer, cShape: Shape, a: BackendBuffer, aShape: Shape, b: BackendBuffer, bShape: Shape, outShape: Shape): BackendBuffer {
    const dtype = a.dtype;
    const native = dtype !== 'float64' && esize(cond.dtype) === 1;
    const c = native ? coalesce(outShape, [cShape, aShape, bShape].map((s) => broadcastStrides(s, outShape))) : null;
    if (c === null) return this.fromRef(dtype, ew.where(this.view(cond), cShape, this.view(a), aShape, this.view(b), bShape, outShape, dtype));
    const n = sizeOf(outShape);
    const out = this.alloc(dtype, n);
    this.args(esize(dtype), this.p(cond), this.p(a), this.p(b), out.ptr, c.shape.length, n);
    this.slotsI32.set(c.shape, ARG + 7);
    for (let k = 0; k < 3; k++) this.slotsI32.set(c.strides[k]!, ARG + 7 + (k + 1) * MAXDIM);
    this.exec(K.where, Math.ceil(n / CHUNK), n);
    return out;
  }

  // ---- reductions ----

  /** Tiles of (outer rows) x (inner columns) holding about CHUNK elements each; returns the tile count. */
  private reduceTiling(outer: number, size: number, inner: number, slot: number): number {
    let innerChunk = inner === 1 ? 1 : Math.min(inner, 256);
    // Few outer rows (a bias gradient sums every row into one): narrower column chunks (multiples of 16, the
    // kernels' strip), so that there are tiles for every thread.
    if (inner > 16 && outer * Math.ceil(inner / innerChunk) < 8) innerChunk = Math.max(16, Math.ceil(inner / Math.ceil(8 / outer) / 16) * 16);
    const outerPerTile = Math.max(1, Math.floor(CHUNK / Math.max(1, size * innerChunk)));
    this.slotsI32[ARG + slot] = outerPerTile;
    this.slotsI32[ARG + slot + 1] = innerChunk;
    return Math.ceil(outer / outerPerTile) * Math.ceil(inner / innerChunk);
  }

  reduce(op: ReduceOp, x: BackendBuffer, outer: number, size: number, inner: number): BackendBuffer {
    if (x.dtype === 'float64') return this.fromRef(x.dtype, redRef.reduce(op, this.view(x), outer, size, inner, x.dtype));
    const out = this.alloc(x.dtype, outer * inner);
    this.args(REDUCE_CODE[op], dtCode(x.dtype), this.p(x), out.ptr, outer, size, inner);
    this.exec(K.reduce, this.reduceTiling(outer, size, inner, 7), x.size);
    return out;
  }

  argReduce(op: ArgReduceOp, x: BackendBuffer, outer: number, size: number, inner: number): BackendBuffer {
    if (x.dtype === 'float64') return this.fromRef('int32', redRef.argReduce(op, this.view(x), outer, size, inner));
    const out = this.alloc('int32', outer * inner);
    this.args(op === 'argmax' ? 0 : 1, dtCode(x.dtype), this.p(x), out.ptr, outer, size, inner);
    this.exec(K.argReduce, this.reduceTiling(outer, size, inner, 7), x.size);
    return out;
  }

  cumsum(x: BackendBuffer, outer: number, size: number, inner: number, reverse: boolean): BackendBuffer {
    if (x.dtype === 'float64') return this.fromRef(x.dtype, redRef.cumsum(this.view(x), outer, size, inner, reverse, x.dtype));
    const out = this.alloc(x.dtype, x.size);
    this.args(dtCode(x.dtype), this.p(x), out.ptr, reverse ? 1 : 0, outer, size, inner);
    this.exec(K.cumsum, this.reduceTiling(outer, size, inner, 7), x.size);
    return out;
  }

  // ---- linear algebra ----

  matmulColSums(a: BackendBuffer, b: BackendBuffer, p: MatmulParams) {
    if (a.dtype !== 'float32' || p.m <= 3 || p.k === 0 || p.n === 0) {
      // Paths without a B packing pass: the sums through the reference.
      const out = this.matmul(a, b, p);
      return { out, sums: this.fromRef(a.dtype, colSumsRef(this.view(b), p, a.dtype)) };
    }
    const sums = this.alloc(a.dtype, p.n);
    return { out: this.matmul(a, b, p, null, sums.ptr), sums };
  }

  /** sumsPtr: where packing B also writes the column sums of op(B) (matmulColSums), or 0. */
  matmul(a: BackendBuffer, b: BackendBuffer, p: MatmulParams, bias: BackendBuffer | null = null, sumsPtr = 0): BackendBuffer {
    const { batch, m, n, k } = p;
    // float64, and integer products with a bias (no kernel needs them), run the reference.
    if (a.dtype === 'float64' || (bias && a.dtype !== 'float32')) return this.fromRef(a.dtype, matmulRef(this.view(a), this.view(b), p, a.dtype, bias && this.view(bias)));
    if (batch * m * n === 0) return this.fill(a.dtype, batch * m * n, 0);
    if (k === 0 && !bias) return this.fill(a.dtype, batch * m * n, 0);
    const out = this.alloc(a.dtype, batch * m * n);
    const biasPtr = this.p(bias);
    if (k === 0) {
      // Nothing to multiply: every row is the bias.
      const o = this.view(out), bv = this.view(bias!);
      for (let r = 0; r < batch * m; r++) o.set(bv, r * n);
      return out;
    }
    if (a.dtype !== 'float32') {
      this.args(dtCode(a.dtype), this.p(a), this.p(b), out.ptr, batch, m, n, k, +p.transA, +p.transB, p.strideA, p.strideB);
      this.exec(K.matmulInt, batch * m, batch * m * n * k, PARALLEL_MIN_FLOPS);
      return out;
    }
    const flops = batch * m * n * k;
    if (m <= 3) {
      // A few rows (decoding one token at a time): straight from A and B, no packing.
      this.args(this.p(a), this.p(b), out.ptr, batch, m, n, k, +p.transA, +p.transB, p.strideA, p.strideB, biasPtr);
      this.exec(K.gemv, batch * Math.ceil(n / 64), flops, PARALLEL_MIN_FLOPS);
      return out;
    }
    // 1. Pack B into 8-column panels (once when it is shared by the batch). A weight gradient (few rows, a
    // long k) would pack a B much bigger than A for little reuse: with narrow rows (at most 384 floats: a
    // wider stride costs more in cache and TLB misses than the packing saves, measured) the panels come
    // straight from B's rows instead.
    const npanels = Math.ceil(n / GEMM_NR);
    const packedBatches = p.strideB === 0 ? 1 : batch;
    const unpackedB = batch === 1 && !p.transB && n % GEMM_NR === 0 && n <= 384 && m <= 512;
    const packed = unpackedB ? null : this.rt.allocator.alloc(packedBatches * k * npanels * GEMM_NR * 4);
    try {
      if (packed) {
        this.args(this.p(b), packed.ptr, 0, k, n, +p.transB, p.strideB, npanels, sumsPtr);
        this.exec(K.packB, packedBatches * npanels, packedBatches * k * n, PARALLEL_MIN_ELEMENTS);
      } else if (sumsPtr) {
        // The column sums the packing would have made: one reduction over B's rows.
        this.args(REDUCE_CODE.sum, DT_F32, this.p(b), sumsPtr, 1, k, n);
        this.exec(K.reduce, this.reduceTiling(1, k, n, 7), k * n);
      }
      // 2. Tiles of C: (batch entry, a block of rows, a run of panels). With threads, a job ends when its
      // slowest thread does: with a few big tiles (9 tiles of 5 ms on 2 threads for a d384 weight gradient)
      // one thread idles for a whole tile. So a product is cut into about 16 tiles per thread: first into
      // smaller row blocks (down to 64 rows; each tile packs its own A block), then, for few rows (a weight
      // gradient), into column runs (down to 4 panels) with A packed once for all of them. A batch keeps
      // 4 tiles per thread.
      const threads = (this.rt.pool?.size ?? 0) + 1;
      const want = threads === 1 ? 1 : (batch === 1 ? 16 : 4) * threads;
      let rowsPerTile = GEMM_MC;
      while (batch === 1 && rowsPerTile > 64 && Math.ceil(m / rowsPerTile) < want) rowsPerTile /= 2;
      const mBlocks = Math.ceil(m / rowsPerTile);
      let chunkPanels = npanels;
      if (batch * mBlocks < want) chunkPanels = Math.ceil(npanels / Math.min(npanels, Math.ceil(want / (batch * mBlocks))));
      if (batch === 1 && threads > 1) chunkPanels = Math.min(npanels, Math.max(chunkPanels, 4));
      const nChunks = Math.ceil(npanels / chunkPanels);
      // Several tiles would pack the same A block: pack A once, in parallel, instead.
      let packedA: { ptr: number; bytes: number } | null = null;
      if (nChunks > 1 && batch === 1) {
        const kBlocks = Math.ceil(k / GEMM_KC);
        packedA = this.rt.allocator.alloc(mBlocks * rowsPerTile * k * 4);
        this.args(this.p(a), packedA.ptr, m, k, +p.transA, kBlocks, rowsPerTile);
        this.exec(K.packA, mBlocks * kBlocks, m * k, PARALLEL_MIN_ELEMENTS);
      }
      try {
        this.args(this.p(a), packed ? packed.ptr : this.p(b), out.ptr, batch, m, n, k, +p.transA, p.strideA, packedBatches > 1 ? 1 : 0, mBlocks, nChunks,
          chunkPanels, biasPtr, packedA ? packedA.ptr : 0, rowsPerTile, packed ? 0 : n);
        this.exec(K.gemm, batch * mBlocks * nChunks, flops, PARALLEL_MIN_FLOPS);
      } finally {
        if (packedA) this.rt.allocator.free(packedA.ptr, packedA.bytes);
      }
    } finally {
      if (packed) this.rt.allocator.free(packed.ptr, packed.bytes);
    }
    return out;
  }

  /**
   * W's blocks with rows interleaved four by four (quant-layout.ts), the layout of assembly/quant.ts; a matrix with a
   * non-finite scale stays in ggml's layout and takes the kernel's row-by-row path.
   */
  uploadQuant(blocks: Uint8Array, p: QuantWeightParams): BackendBuffer {
    checkQuantWeight(`uploadQuant: ${p.type} weight [${p.n}, ${p.k}]`, blocks.length, 'uint8', p);
    const b = this.alloc('uint8', blocks.length), plain = hasNonFiniteScale(blocks, p.type);
    if (plain) this.view(b).set(blocks);
    else interleaveQuantRows(blocks, this.view(b) as Uint8Array, p);
    this.quantWeights.set(b, { type: p.type, n: p.n, k: p.k, plain });
    return b;
  }
  /** The weights uploadQuant wrote, with their shape and layout. */
  private readonly quantWeights = new WeakMap<BackendBuffer, QuantWeightParams & { plain: boolean }>();

  /**
   * y = x W^T + b with W in Q8_0 / Q4_0 blocks from uploadQuant (assembly/quant.ts): x quantized per block to int8
   * (int16 and the block sums alongside) by one job, then a job over runs of output rows, each weight row read once for
   * all rows of x.
   */
  quantMatmul(x: BackendBuffer, w: BackendBuffer, p: QuantMatmulParams, bias: BackendBuffer | null = null): BackendBuffer {
    return this.quantMatmuls(x, [{ w, n: p.n, bias }], p)[0]!;
  }

  /** Several weights with one x: x quantized once, then one job over the runs of rows of all of them (up to four). */
  quantMatmuls(x: BackendBuffer, ws: readonly QuantOperand[], p: Omit<QuantMatmulParams, 'n'>): BackendBuffer[] {
    const { m, k, type } = p;
    const lays = ws.map(({ w, n, bias }) => {
      checkQuantMatmul(x, w, { ...p, n }, bias ?? null);
      const lay = this.quantWeights.get(w);
      if (!lay || lay.type !== type || lay.n !== n || lay.k !== k) {
        const was = lay ? `uploadQuant's ${lay.type} [${lay.n}, ${lay.k}]` : 'not from uploadQuant';
        throw new Error(`quantMatmul: x [${m}, ${k}] @ ${type} weight [${n}, ${k}]^T: the weight must come from uploadQuant with this type and shape (it is ${was})`);
      }
      return lay;
    });
    const outs = ws.map(({ n }) => this.alloc('float32', m * n));
    if (m === 0 || ws.length === 0) return outs;
    const blocks = (m * k) / QBLOCK;
    const pad = (bytes: number) => Math.ceil(bytes / 64) * 64;
    const q8Bytes = pad(m * k), q16Bytes = pad(2 * m * k), dBytes = pad(4 * blocks);
    const s = this.rt.allocator.alloc(Math.max(64, q8Bytes + q16Bytes + 2 * dBytes));
    try {
      const q8 = s.ptr, q16 = q8 + q8Bytes, xd = q16 + q16Bytes, xs = xd + dBytes;
      const rowsPerTile = Math.max(1, Math.floor(CHUNK / Math.max(1, k)));
      this.args(this.p(x), q8, q16, xd, xs, m, k, rowsPerTile);
      this.exec(K.quantAct, Math.ceil(m / rowsPerTile), m * k * 2);
      // About 8 runs of output rows per thread (a job waits for its slowest thread), at least 16 rows each and a
      // multiple of 4 (the kernel's group). The product reads its weights once: a matrix-vector product is worth threads
      // from a quarter of GEMM's threshold.
      const threads = (this.rt.pool?.size ?? 0) + 1;
      for (let first = 0; first < ws.length; first += QMATMUL_MAX) {
        const part = ws.slice(first, first + QMATMUL_MAX), total = part.reduce((a, o) => a + o.n, 0);
        const rows = Math.max(16, 4 * Math.ceil(total / (32 * threads)));
        const slots: number[] = [];
        let tiles = 0;
        part.forEach((o, i) => {
          slots.push(this.p(o.w), outs[first + i]!.ptr, this.p(o.bias ?? null), o.n, lays[first + i]!.plain ? 1 : 0, tiles);
          tiles += Math.ceil(o.n / rows);
        });
        this.args(type === 'q8_0' ? 0 : 1, q8, q16, xd, xs, m, k, rows, part.length, ...slots);
        this.exec(K.qmatmul, tiles, m * total * k, PARALLEL_MIN_FLOPS / 4);
      }
    } finally {
      this.rt.allocator.free(s.ptr, s.bytes);
    }
    return outs;
  }

  /**
   * op(a) op(b) with b float16 / bfloat16 read as stored (assembly/half.ts): y = x W^T over runs of weight rows, W's
   * values widened in registers (one row of x) or four rows at a time into the thread's scratch; y = g W over strips of
   * 16 columns. Never a float32 copy of b. Batches run one job each.
   */
  matmulHalf(a: BackendBuffer, b: BackendBuffer, p: MatmulParams, bias: BackendBuffer | null = null): BackendBuffer {
    checkMatmulHalf(a, b, p, bias);
    const { batch, m, n, k } = p, bf16 = b.dtype === 'bfloat16' ? 1 : 0;
    if (batch * m * n === 0 || k === 0) {
      const out = this.fill('float32', batch * m * n, 0);
      if (bias && m * n > 0) for (let r = 0; r < batch * m; r++) this.view(out).set(this.view(bias), r * n);
      return out;
    }
    const out = this.alloc('float32', batch * m * n);
    const threads = (this.rt.pool?.size ?? 0) + 1;
    // Runs of weight rows: about 8 per thread (a job waits for its slowest thread), at least 16 rows, a multiple of 4.
    const rows = Math.ceil(Math.max(16, Math.ceil(n / (8 * threads))) / 4) * 4;
    for (let bi = 0; bi < batch; bi++) {
      const pa = this.p(a) + 4 * bi * p.strideA, pb = this.p(b) + 2 * bi * p.strideB, po = out.ptr + 4 * bi * m * n;
      if (p.transB) {
        this.args(bf16, pa, pb, po, this.p(bias), m, n, k, rows, this.rt.scratchPerThread);
        this.exec(K.hmatmulT, Math.ceil(n / rows), m * n * k, PARALLEL_MIN_FLOPS / 4);
      } else {
        this.args(bf16, pa, pb, po, m, n, k);
        this.exec(K.hmatmulN, Math.ceil(n / 16), m * n * k, PARALLEL_MIN_FLOPS / 4);
        if (bias) {
          const o = this.view(out) as Float32Array, bv = this.view(bias) as Float32Array;
          for (let r = 0; r < m; r++) for (let j = 0; j < n; j++) o[bi * m * n + r * n + j]! += bv[j]!;
        }
      }
    }
    return out;
  }

  // ---- movement ----

  /** Throws unless every element a strided walk touches lies inside the buffer. */
  private checkStrided(op: string, buf: BackendBuffer, shape: Shape, strides: readonly number[], offset: number): void {
    if (sizeOf(shape) === 0) return;
    let lo = offset, hi = offset;
    shape.forEach((s, d) => {
      const span = (s - 1) * strides[d]!;
      if (span < 0) lo += span;
      else hi += span;
    });
    if (lo < 0 || hi >= buf.size) {
      throw new Error(`${op}: strides [${strides.join(', ')}] at offset ${offset} over shape ${fmtShape(shape)} reach outside a buffer of ${buf.size} elements`);
    }
  }

  private strided(src: BackendBuffer, dst: WasmBuffer, shape: Shape, srcStrides: readonly number[], dstStrides: readonly number[], srcOff: number, dstOff: number, parallel: boolean): void {
    const n = sizeOf(shape);
    const c = coalesce(shape, [srcStrides, dstStrides])!;
    this.args(esize(src.dtype), this.p(src), dst.ptr, c.shape.length, n, srcOff, dstOff);
    this.slotsI32.set(c.shape, ARG + 7);
    this.slotsI32.set(c.strides[0]!, ARG + 7 + MAXDIM);
    this.slotsI32.set(c.strides[1]!, ARG + 7 + 2 * MAXDIM);
    this.exec(K.strided, Math.ceil(n / CHUNK), parallel ? n : 0);
  }

  stridedCopy(x: BackendBuffer, shape: Shape, strides: readonly number[], offset: number): BackendBuffer {
    this.checkStrided('stridedCopy', x, shape, strides, offset);
    if (x.dtype === 'float64' || isHalf(x.dtype) || coalesce(shape, [strides, stridesOf(shape)]) === null) {
      return this.fromRef(x.dtype, stridedCopyRef(this.view(x), shape, strides, offset, x.dtype));
    }
    const out = this.alloc(x.dtype, sizeOf(shape));
    this.strided(x, out, shape, strides, stridesOf(shape), offset, 0, true);
    return out;
  }

  stridedWrite(dst: BackendBuffer, src: BackendBuffer, shape: Shape, strides: readonly number[], offset: number): void {
    this.checkStrided('stridedWrite', dst, shape, strides, offset);
    if (dst.dtype === 'float64' || isHalf(dst.dtype) || coalesce(shape, [stridesOf(shape), strides]) === null) {
      stridedWriteRef(this.view(dst), this.view(src), shape, strides, offset);
      return;
    }
    // Threads only when no two elements land on one position (else the last write must win, in order).
    const dims = shape.map((s, d) => ({ s, st: Math.abs(strides[d]!) })).filter((d) => d.s > 1).sort((a, b) => a.st - b.st);
    let extent = 1, injective = true;
    for (const d of dims) {
      if (d.st < extent) injective = false;
      extent = d.st * d.s;
    }
    this.p(dst); // throws if dst was freed
    this.strided(src, dst as WasmBuffer, shape, stridesOf(shape), strides, 0, offset, injective);
  }

  // ---- indexing ----

  indexSelect(x: BackendBuffer, idx: BackendBuffer, outer: number, size: number, inner: number, op: string): BackendBuffer {
    if (x.dtype === 'float64') return this.fromRef(x.dtype, idxRef.indexSelect(this.view(x), this.view(idx), outer, size, inner, op, x.dtype));
    this.checkIndices(idx, size, op);
    const m = idx.size;
    const out = this.alloc(x.dtype, outer * m * inner);
    const rowsPerTile = Math.max(1, Math.floor(CHUNK / Math.max(1, inner)));
    this.args(esize(x.dtype), this.p(x), this.p(idx), out.ptr, outer, size, inner, m, rowsPerTile);
    this.exec(K.indexSelect, Math.ceil((outer * m) / rowsPerTile), outer * m * inner);
    return out;
  }

  /** Column chunk of the scatter-style kernels: tiles own disjoint columns, so they never collide. */
  private static readonly COLUMN_CHUNK = 64;

  indexAdd(src: BackendBuffer, idx: BackendBuffer, outer: number, size: number, inner: number, op: string): BackendBuffer {
    if (src.dtype === 'float64') return this.fromRef(src.dtype, idxRef.indexAdd(this.view(src), this.view(idx), outer, size, inner, op, src.dtype));
    this.checkIndices(idx, size, op);
    const out = this.fill(src.dtype, outer * size * inner, 0);
    const chunk = WasmBackend.COLUMN_CHUNK;
    this.args(dtCode(src.dtype), this.p(src), this.p(idx), this.p(out), outer, size, inner, idx.size, chunk);
    this.exec(K.indexAdd, outer * Math.ceil(inner / chunk), src.size);
    return out;
  }

  gather(x: BackendBuffer, idx: BackendBuffer, outer: number, size: number, inner: number, m: number, op: string): BackendBuffer {
    if (x.dtype === 'float64') return this.fromRef(x.dtype, idxRef.gather(this.view(x), this.view(idx), outer, size, inner, m, op, x.dtype));
    this.checkIndices(idx, size, op);
    const out = this.alloc(x.dtype, outer * m * inner);
    const rowsPerTile = Math.max(1, Math.floor(CHUNK / Math.max(1, inner)));
    this.args(esize(x.dtype), this.p(x), this.p(idx), out.ptr, outer, size, inner, m, rowsPerTile);
    this.exec(K.gather, Math.ceil((outer * m) / rowsPerTile), outer * m * inner);
    return out;
  }

  scatterAdd(src: BackendBuffer, idx: BackendBuffer, outer: number, size: number, inner: number, m: number, op: string): BackendBuffer {
    if (src.dtype === 'float64') return this.fromRef(src.dtype, idxRef.scatterAdd(this.view(src), this.view(idx), outer, size, inner, m, op, src.dtype));
    this.checkIndices(idx, size, op);
    const out = this.fill(src.dtype, outer * size * inner, 0);
    const chunk = WasmBackend.COLUMN_CHUNK;
    this.args(dtCode(src.dtype), this.p(src), this.p(idx), this.p(out), outer, size, inner, m, chunk);
    this.exec(K.scatterAdd, outer * Math.ceil(inner / chunk), src.size);
    return out;
  }

  // ---- fused row kernels (float32 native; other dtypes through the reference) ----

  private static rowsPerTile(cols: number): number {
    return Math.max(1, Math.floor(8192 / Math.max(1, cols)));
  }

  softmax(x: BackendBuffer, rows: number, cols: number, log: boolean): BackendBuffer {
    if (x.dtype !== 'float32') return this.fromRef(x.dtype, normRef.softmax(this.view(x), rows, cols, log, x.dtype));
    const out = this.alloc(x.dtype, rows * cols);
    const rpt = WasmBackend.rowsPerTile(cols);
    this.args(this.p(x), out.ptr, rows, cols, +log, rpt);
    this.exec(K.softmax, Math.ceil(rows / rpt), rows * cols * WEIGHT_MATH);
    return out;
  }

  softmaxGrad(y: BackendBuffer, dy: BackendBuffer, rows: number, cols: number, log: boolean): BackendBuffer {
    if (y.dtype !== 'float32') return this.fromRef(y.dtype, normRef.softmaxGrad(this.view(y), this.view(dy), rows, cols, log, y.dtype));
    const out = this.alloc(y.dtype, rows * cols);
    const rpt = WasmBackend.rowsPerTile(cols);
    this.args(this.p(y), this.p(dy), out.ptr, rows, cols, +log, rpt);
    this.exec(K.softmaxGrad, Math.ceil(rows / rpt), rows * cols * 2);
    return out;
  }

  crossEntropy(logits: BackendBuffer, target: BackendBuffer, rows: number, cols: number, ignoreIndex: number, op: string) {
    const dtype = logits.dtype;
    if (dtype !== 'float32') {
      const r = normRef.crossEntropy(this.view(logits), this.view(target), rows, cols, ignoreIndex, op, dtype);
      return { loss: this.fromRef(dtype, r.loss), lse: this.fromRef(dtype, r.lse) };
    }
    // Every target checked before any output (a few thousand int32 reads: cheaper here than a job).
    const t = this.view(target) as Int32Array;
    for (let r = 0; r < rows; r++) {
      const v = t[r]!;
      if (v !== ignoreIndex && !(v >= 0 && v < cols)) throw new Error(`${op}: index ${v} is out of range for a dimension of size ${cols}`);
    }
    const loss = this.alloc(dtype, rows), lse = this.alloc(dtype, rows);
    const rpt = WasmBackend.rowsPerTile(cols);
    this.args(this.p(logits), this.p(target), loss.ptr, lse.ptr, rows, cols, ignoreIndex, rpt);
    this.exec(K.crossEntropy, Math.ceil(rows / rpt), rows * cols * WEIGHT_MATH);
    return { loss, lse };
  }

  crossEntropyGrad(logits: BackendBuffer, target: BackendBuffer, lse: BackendBuffer, dloss: BackendBuffer, rows: number, cols: number, ignoreIndex: number): BackendBuffer {
    const dtype = logits.dtype;
    if (dtype !== 'float32') return this.fromRef(dtype, normRef.crossEntropyGrad(this.view(logits), this.view(target), this.view(lse), this.view(dloss), rows, cols, ignoreIndex, dtype));
    const dx = this.alloc(dtype, rows * cols);
    const rpt = WasmBackend.rowsPerTile(cols);
    this.args(this.p(logits), this.p(target), this.p(lse), this.p(dloss), dx.ptr, rows, cols, ignoreIndex, rpt);
    this.exec(K.crossEntropyGrad, Math.ceil(rows / rpt), rows * cols * WEIGHT_MATH);
    return dx;
  }

  private normForward(x: BackendBuffer, w: BackendBuffer | null, b: BackendBuffer | null, rows: number, cols: number, eps: number, rms: boolean) {
    const y = this.alloc(x.dtype, rows * cols), mean = rms ? null : this.alloc(x.dtype, rows), rstd = this.alloc(x.dtype, rows);
    const rpt = WasmBackend.rowsPerTile(cols);
    this.args(this.p(x), this.p(w), this.p(b), y.ptr, mean ? mean.ptr : 0, rstd.ptr, rows, cols, 0, rpt);
    this.argF32(8, eps);
    this.exec(K.norm, Math.ceil(rows / rpt), rows * cols * 2);
    return { y, mean, rstd };
  }

  private normBackward(x: BackendBuffer, w: BackendBuffer | null, mean: BackendBuffer | null, rstd: BackendBuffer, dy: BackendBuffer, rows: number, cols: number) {
    const dx = this.alloc(x.dtype, rows * cols), dweight = this.alloc(x.dtype, cols), dbias = mean ? this.alloc(x.dtype, cols) : null;
    // Fixed row chunks (not one per thread), so that the weight gradient sums in the same order always.
    const rowsPerChunk = Math.max(8, Math.ceil(rows / 128));
    const chunks = Math.ceil(rows / rowsPerChunk);
    const partials = this.rt.allocator.alloc(chunks * 2 * cols * 4);
    try {
      this.args(this.p(x), this.p(w), this.p(mean), this.p(rstd), this.p(dy), dx.ptr, partials.ptr, rows, cols, rowsPerChunk);
      this.exec(K.normGrad, chunks, rows * cols * 3);
      const colsPerTile = 256;
      this.args(partials.ptr, chunks, cols, dweight.ptr, dbias ? dbias.ptr : 0, colsPerTile);
      this.exec(K.sumPartials, Math.ceil(cols / colsPerTile), chunks * cols);
    } finally {
      this.rt.allocator.free(partials.ptr, partials.bytes);
    }
    return { dx, dweight, dbias };
  }

  layerNorm(x: BackendBuffer, w: BackendBuffer | null, b: BackendBuffer | null, rows: number, cols: number, eps: number) {
    if (x.dtype !== 'float32') {
      const r = normRef.layerNorm(this.view(x), w && this.view(w), b && this.view(b), rows, cols, eps, x.dtype);
      return { y: this.fromRef(x.dtype, r.y), mean: this.fromRef(x.dtype, r.mean), rstd: this.fromRef(x.dtype, r.rstd) };
    }
    const r = this.normForward(x, w, b, rows, cols, eps, false);
    return { y: r.y, mean: r.mean!, rstd: r.rstd };
  }

  layerNormGrad(x: BackendBuffer, w: BackendBuffer | null, mean: BackendBuffer, rstd: BackendBuffer, dy: BackendBuffer, rows: number, cols: number) {
    if (x.dtype !== 'float32') {
      const r = normRef.layerNormGrad(this.view(x), w && this.view(w), this.view(mean), this.view(rstd), this.view(dy), rows, cols, x.dtype);
      return { dx: this.fromRef(x.dtype, r.dx), dweight: this.fromRef(x.dtype, r.dweight), dbias: this.fromRef(x.dtype, r.dbias) };
    }
    const r = this.normBackward(x, w, mean, rstd, dy, rows, cols);
    return { dx: r.dx, dweight: r.dweight, dbias: r.dbias! };
  }

  rmsNorm(x: BackendBuffer, w: BackendBuffer | null, rows: number, cols: number, eps: number) {
    if (x.dtype !== 'float32') {
      const r = normRef.rmsNorm(this.view(x), w && this.view(w), rows, cols, eps, x.dtype);
      return { y: this.fromRef(x.dtype, r.y), rstd: this.fromRef(x.dtype, r.rstd) };
    }
    const r = this.normForward(x, w, null, rows, cols, eps, true);
    return { y: r.y, rstd: r.rstd };
  }

  rmsNormGrad(x: BackendBuffer, w: BackendBuffer | null, rstd: BackendBuffer, dy: BackendBuffer, rows: number, cols: number) {
    if (x.dtype !== 'float32') {
      const r = normRef.rmsNormGrad(this.view(x), w && this.view(w), this.view(rstd), this.view(dy), rows, cols, x.dtype);
      return { dx: this.fromRef(x.dtype, r.dx), dweight: this.fromRef(x.dtype, r.dweight) };
    }
    const r = this.normBackward(x, w, null, rstd, dy, rows, cols);
    return { dx: r.dx, dweight: r.dweight };
  }

  // ---- rotary position embedding (float32; other dtypes through the reference) ----

  rope(x: BackendBuffer, cos: BackendBuffer, sin: BackendBuffer, p: RopeParams): BackendBuffer {
    if (x.dtype !== 'float32') return this.fromRef(x.dtype, ropeRef(this.view(x), this.view(cos), this.view(sin), p, x.dtype));
    const rows = p.batch * p.heads * p.t;
    const out = this.alloc('float32', rows * p.hs);
    const rpt = WasmBackend.rowsPerTile(p.hs), { x: xl, out: ol, cosStrides: c } = p;
    this.args(this.p(x) + 4 * xl.offset, this.p(cos), this.p(sin), out.ptr + 4 * ol.offset, p.heads, p.t, p.hs, rows, rpt,
      xl.batch, xl.head, xl.row, ol.batch, ol.head, ol.row, c[0], c[1], c[2], p.inverse ? 1 : 0);
    this.exec(K.rope, Math.ceil(rows / rpt), rows * p.hs);
    return out;
  }

  // ---- fused attention (float32; other dtypes through the reference) ----

  /** The operand layouts: p.layout, or contiguous [B, H, rows, cols] operands. */
  private static attentionLayouts(p: AttentionParams): NonNullable<AttentionParams['layout']> {
    if (p.layout) return p.layout;
    const c = (rows: number, cols: number) => ({ offset: 0, batch: p.heads * rows * cols, head: rows * cols, row: cols });
    return { q: c(p.t, p.hs), k: c(p.s, p.hs), v: c(p.s, p.hv), out: c(p.t, p.hv) };
  }

  /**
   * Writes the attention slots (shared by forward and backward) and returns the per-thread scratch. Operand
   * pointers carry their layout's offset; slots from ARG + 21 hold the (batch, head, row) strides of q, k, v, out.
   */
  private attentionArgs(q: BackendBuffer, k: BackendBuffer, v: BackendBuffer, bias: BackendBuffer | null, out: number, lse: number, p: AttentionParams, backward: boolean,
    probs: number) {
    const bs = p.biasStrides ?? [0, 0, 0, 0];
    const L = WasmBackend.attentionLayouts(p);
    this.args(this.p(q) + 4 * L.q.offset, this.p(k) + 4 * L.k.offset, this.p(v) + 4 * L.v.offset, this.p(bias), out + 4 * L.out.offset, lse,
      p.heads, p.t, p.s, p.hs, p.hv, 0, +p.causal, bs[0], bs[1], bs[2], bs[3]);
    this.argF32(11, p.scale);
    this.slotsI32.set([...[L.q, L.k, L.v, L.out].flatMap((l) => [l.batch, l.head, l.row]), probs], ARG + 21);
    const perThread = attentionScratchBytes(p.s, p.hs, p.hv, backward);
    return { perThread, block: this.rt.allocator.alloc(perThread * ((this.rt.pool?.size ?? 0) + 1)) };
  }

  attention(q: BackendBuffer, k: BackendBuffer, v: BackendBuffer, bias: BackendBuffer | null, p: AttentionParams) {
    const bh = p.batch * p.heads;
    if (q.dtype !== 'float32') {
      const r = attRef.attention(this.view(q), this.view(k), this.view(v), bias && this.view(bias), p, q.dtype);
      return { out: this.fromRef(q.dtype, r.out), lse: this.fromRef(q.dtype, r.lse) };
    }
    const out = this.alloc('float32', bh * p.t * p.hv), lse = this.alloc('float32', bh * p.t);
    // Keeping the probabilities ([BH, T, S]; the kernel writes the visible keys of each query block) saves
    // the backward its Q K^T product and exps, about a quarter of its work; up to 64 MiB of them.
    const probs = p.saveProbs && bh * p.t * p.s <= MAX_KEPT_PROBS ? this.alloc('float32', bh * p.t * p.s) : null;
    const { perThread, block } = this.attentionArgs(q, k, v, bias, out.ptr, lse.ptr, p, false, probs ? probs.ptr : 0);
    try {
      this.exec(K.attention, bh, bh * p.t * p.s * (p.hs + p.hv), ATTENTION_PARALLEL_MIN, { ptr: block.ptr, perThread });
    } finally {
      this.rt.allocator.free(block.ptr, block.bytes);
    }
    return probs ? { out, lse, probs } : { out, lse };
  }

  attentionGrad(q: BackendBuffer, k: BackendBuffer, v: BackendBuffer, bias: BackendBuffer | null, out: BackendBuffer, lse: BackendBuffer, dOut: BackendBuffer, p: AttentionParams,
    probs: BackendBuffer | null = null) {
    const bh = p.batch * p.heads;
    // Inputs that share a buffer (strided layouts) share their gradient buffer.
    const share = <T>(make: (b: BackendBuffer) => T): { dq: T; dk: T; dv: T } => {
      const dq = make(q), dk = k === q ? dq : make(k);
      return { dq, dk, dv: v === q ? dq : v === k ? dk : make(v) };
    };
    if (q.dtype !== 'float32') {
      const r = attRef.attentionGrad(this.view(q), this.view(k), this.view(v), bias && this.view(bias), this.view(out), this.view(lse), this.view(dOut), p, q.dtype);
      const data = new Map<BackendBuffer, TypedArray>([[q, r.dq], [k, r.dk], [v, r.dv]]);
      return share((b) => this.fromRef(q.dtype, data.get(b)!));
    }
    const g = share((b) => this.alloc('float32', b.size));
    if (p.layout) {
      // The kernel writes each operand's region; a buffer its regions do not cover is zeroed first.
      const covered = new Map<BackendBuffer, number>();
      for (const [b, n] of [[q, p.t * p.hs], [k, p.s * p.hs], [v, p.s * p.hv]] as const) covered.set(b, (covered.get(b) ?? 0) + bh * n);
      for (const [b, n] of covered) if (n !== b.size) this.view(b === q ? g.dq : b === k ? g.dk : g.dv).fill(0);
    }
    const { perThread, block } = this.attentionArgs(q, k, v, bias, this.p(out), this.p(lse), p, true, this.p(probs));
    const L = WasmBackend.attentionLayouts(p);
    this.slotsI32.set([this.p(dOut) + 4 * L.out.offset, g.dq.ptr + 4 * L.q.offset, g.dk.ptr + 4 * L.k.offset, g.dv.ptr + 4 * L.v.offset], ARG + 17);
    try {
      this.exec(K.attentionGrad, bh, 2 * bh * p.t * p.s * (p.hs + p.hv), PARALLEL_MIN_FLOPS, { ptr: block.ptr, perThread });
    } finally {
      this.rt.allocator.free(block.ptr, block.bytes);
    }
    return g;
  }

  // ---- fused optimizer updates (float32; float64 through the reference) ----

  adamStep(param: BackendBuffer, grad: BackendBuffer, expAvg: BackendBuffer | null, expAvgSq: BackendBuffer | null, hp: AdamStepParams) {
    const dtype = param.dtype;
    if (dtype !== 'float32') {
      const r = optimRef.adamStep(this.view(param), this.view(grad), expAvg && this.view(expAvg), expAvgSq && this.view(expAvgSq), hp, dtype);
      return { param: this.fromRef(dtype, r.param), expAvg: this.fromRef(dtype, r.expAvg), expAvgSq: this.fromRef(dtype, r.expAvgSq) };
    }
    const n = param.size;
    const po = this.alloc(dtype, n), mo = this.alloc(dtype, n), vo = this.alloc(dtype, n);
    const c = optimRef.adamConstants(hp, dtype);
    const mode = hp.weightDecay === 0 ? 0 : hp.decoupled ? 1 : 2;
    this.args(this.p(param), this.p(grad), this.p(expAvg), this.p(expAvgSq), po.ptr, mo.ptr, vo.ptr, n, mode);
    [c.decay, c.b1, c.nb1, c.b2, c.nb2, c.bc2, c.eps, c.stepSize].forEach((v, i) => this.argF32(9 + i, v));
    this.exec(K.adam, Math.ceil(n / CHUNK), n * 4);
    return { param: po, expAvg: mo, expAvgSq: vo };
  }

  sgdStep(param: BackendBuffer, grad: BackendBuffer, momentumBuffer: BackendBuffer | null, hp: SgdStepParams) {
    const dtype = param.dtype;
    if (dtype !== 'float32') {
      const r = optimRef.sgdStep(this.view(param), this.view(grad), momentumBuffer && this.view(momentumBuffer), hp, dtype);
      return { param: this.fromRef(dtype, r.param), momentumBuffer: r.momentumBuffer && this.fromRef(dtype, r.momentumBuffer) };
    }
    const n = param.size;
    const po = this.alloc(dtype, n), bo = hp.momentum !== 0 ? this.alloc(dtype, n) : null;
    this.args(this.p(param), this.p(grad), this.p(momentumBuffer), po.ptr, bo ? bo.ptr : 0, n, (hp.weightDecay !== 0 ? 1 : 0) | (hp.nesterov ? 2 : 0));
    [hp.weightDecay, hp.momentum, 1 - hp.dampening, -hp.lr].forEach((v, i) => this.argF32(7 + i, v));
    this.exec(K.sgd, Math.ceil(n / CHUNK), n * 2);
    return { param: po, momentumBuffer: bo };
  }

  // ---- sliding windows ----

  private windowArgs(code: number, src: number, dst: number, p: WindowParams, pad: number): void {
    this.args(code, src, dst, p.batch, p.channels, p.height, p.width, p.kernelH, p.kernelW, p.strideH, p.strideW,
      p.padH, p.padW, p.dilationH, p.dilationW, p.outH, p.outW, pad);
  }

  im2col(x: BackendBuffer, p: WindowParams, padValue: number): BackendBuffer {
    if (x.dtype === 'float64') return this.fromRef(x.dtype, im2colRef(this.view(x), p, padValue, x.dtype));
    const out = this.alloc(x.dtype, p.batch * p.channels * p.kernelH * p.kernelW * p.outH * p.outW);
    // The pad value as the element's bits: what storing it into the dtype's typed array gives.
    const bits = new Int32Array(1);
    if (x.dtype === 'float32') new Float32Array(bits.buffer)[0] = padValue;
    else if (x.dtype === 'int32') bits[0] = padValue;
    else bits[0] = new Uint8Array([padValue])[0]!;
    this.windowArgs(esize(x.dtype), this.p(x), out.ptr, p, bits[0]!);
    this.exec(K.im2col, p.batch * p.channels, out.size);
    return out;
  }

  col2im(cols: BackendBuffer, p: WindowParams): BackendBuffer {
    if (cols.dtype === 'float64') return this.fromRef(cols.dtype, col2imRef(this.view(cols), p, cols.dtype));
    const out = this.fill(cols.dtype, p.batch * p.channels * p.height * p.width, 0);
    this.windowArgs(dtCode(cols.dtype), this.p(cols), this.p(out), p, 0);
    this.exec(K.col2im, p.batch * p.channels, cols.size);
    return out;
  }
}
