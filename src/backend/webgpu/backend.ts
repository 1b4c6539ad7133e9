// The 'webgpu' backend: WGSL kernels on a GPUDevice (Dawn in Node, navigator.gpu in a browser), queued without a
// submit per op and read back only when asked. float16 / bfloat16 buffers hold bits; their kernels compute in
// float32 (../half.ts), as on the CPU backends. float64 is refused (context.ts).

import type {
  ActivationOp, AdamStepParams, ArgReduceOp, AttentionParams, Backend, BackendBuffer, BinaryOp, MatmulParams, ReduceOp, RopeParams, SgdStepParams, UnaryOp, WindowParams,
} from '../../tensor/backend.js';
import { decodeHalf, isHalf, toStorage, type DType, type TypedArray } from '../../tensor/dtype.js';
import type { Shape } from '../../tensor/shape.js';
import { installHalfKernels } from '../half.js';
import * as att from './attention.js';
import { GpuBuffer, type GpuContext } from './context.js';
import * as ew from './elementwise.js';
import * as idx from './indexing.js';
import { matmul } from './matmul.js';
import { stridedCopy, stridedWrite } from './movement.js';
import * as norm from './norm.js';
import * as optim from './optim.js';
import * as red from './reduce.js';
import { rope } from './rotary.js';
import { col2im, im2col } from './window.js';

export interface WebGPUMemoryStats {
  /** Buffers handed out and not yet freed. */
  liveBuffers: number;
  /** Bytes of freed buffers kept for reuse. */
  pooledBytes: number;
}

function g(b: BackendBuffer): GpuBuffer {
  return b as GpuBuffer;
}

/** 32-bit words of `data` stored as `dtype` (one element per word). */
function toWords(data: TypedArray, dtype: DType): Float32Array | Int32Array | Uint32Array {
  if (dtype === 'float32') return data instanceof Float32Array ? data : Float32Array.from(data);
  if (dtype === 'int32') return data instanceof Int32Array ? data : Int32Array.from(toStorage(data, dtype));
  return Uint32Array.from(toStorage(data, dtype));
}

export class WebGPUBackend implements Backend {
  readonly name: string = 'webgpu';
  readonly float64 = false;

  constructor(readonly ctx: GpuContext) {
    installHalfKernels(this);
  }

  memoryStats(): WebGPUMemoryStats {
    return { liveBuffers: this.ctx.liveBuffers, pooledBytes: this.ctx.pooledBytes };
  }

  /** Resolves once the device has run every queued kernel (for timings). */
  sync(): Promise<void> {
    return this.ctx.sync();
  }

  // ---- memory ----

  /** Half dtypes: a Uint16Array is taken as bits, other arrays as values (rounded to nearest even). */
  upload(data: TypedArray, dtype: DType): BackendBuffer {
    const b = this.ctx.alloc(dtype, data.length);
    this.ctx.write(b, toWords(data, dtype));
    return b;
  }
  fill(dtype: DType, size: number, value: number): BackendBuffer {
    return ew.fill(this.ctx, dtype, size, value);
  }
  /** Half dtypes decode to Float32Array; bool and uint8 read as Uint8Array. */
  async read(b: BackendBuffer): Promise<TypedArray> {
    const words = await this.ctx.read(g(b));
    switch (b.dtype) {
      case 'float32': return new Float32Array(words.buffer, words.byteOffset, words.length);
      case 'int32': return new Int32Array(words.buffer, words.byteOffset, words.length);
      case 'float16':
      case 'bfloat16': return decodeHalf(Uint16Array.from(words), b.dtype);
      default: return Uint8Array.from(words);
    }
  }
  free(b: BackendBuffer): void {
    this.ctx.free(g(b));
  }

  // ---- elementwise ----

  cast(x: BackendBuffer, dtype: DType): BackendBuffer {
    if (isHalf(x.dtype) && x.dtype === dtype) return stridedCopy(this.ctx, g(x), [x.size], [1], 0);
    return ew.cast(this.ctx, g(x), dtype);
  }
  unary(op: UnaryOp, x: BackendBuffer): BackendBuffer {
    return ew.unary(this.ctx, op, g(x));
  }
  activationGrad(op: ActivationOp, x: BackendBuffer, dy: BackendBuffer): BackendBuffer {
    return ew.activationGrad(this.ctx, op, g(x), g(dy));
  }
  binary(op: BinaryOp, a: BackendBuffer, aShape: Shape, b: BackendBuffer, bShape: Shape, outShape: Shape): BackendBuffer {
    return ew.binary(this.ctx, op, g(a), aShape, g(b), bShape, outShape);
  }
  where(c: BackendBuffer, cShape: Shape, a: BackendBuffer, aShape: Shape, b: BackendBuffer, bShape: Shape, outShape: Shape): BackendBuffer {
    return ew.where(this.ctx, g(c), cShape, g(a), aShape, g(b), bShape, outShape);
  }

  // ---- reductions ----

  reduce(op: ReduceOp, x: BackendBuffer, outer: number, size: number, inner: number): BackendBuffer {
    return red.reduce(this.ctx, op, g(x), outer, size, inner);
  }
  argReduce(op: ArgReduceOp, x: BackendBuffer, outer: number, size: number, inner: number): BackendBuffer {
    return red.argReduce(this.ctx, op, g(x), outer, size, inner);
  }
  cumsum(x: BackendBuffer, outer: number, size: number, inner: number, reverse: boolean): BackendBuffer {
    return red.cumsum(this.ctx, g(x), outer, size, inner, reverse);
  }

  // ---- linear algebra ----

  matmul(a: BackendBuffer, b: BackendBuffer, p: MatmulParams, bias?: BackendBuffer | null): BackendBuffer {
    return matmul(this.ctx, g(a), g(b), p, bias ? g(bias) : null);
  }

  // ---- movement ----

  stridedCopy(x: BackendBuffer, shape: Shape, strides: readonly number[], offset: number): BackendBuffer {
    return stridedCopy(this.ctx, g(x), shape, strides, offset);
  }
  stridedWrite(dst: BackendBuffer, src: BackendBuffer, shape: Shape, strides: readonly number[], offset: number): void {
    stridedWrite(this.ctx, g(dst), g(src), shape, strides, offset);
  }

  // ---- indexing ----

  indexSelect(x: BackendBuffer, i: BackendBuffer, outer: number, size: number, inner: number, op: string): BackendBuffer {
    return idx.indexSelect(this.ctx, g(x), g(i), outer, size, inner, op);
  }
  indexAdd(src: BackendBuffer, i: BackendBuffer, outer: number, size: number, inner: number, op: string): BackendBuffer {
    return idx.indexAdd(this.ctx, g(src), g(i), outer, size, inner, op);
  }
  gather(x: BackendBuffer, i: BackendBuffer, outer: number, size: number, inner: number, m: number, op: string): BackendBuffer {
    return idx.gather(this.ctx, g(x), g(i), outer, size, inner, m, op);
  }
  scatterAdd(src: BackendBuffer, i: BackendBuffer, outer: number, size: number, inner: number, m: number, op: string): BackendBuffer {
    return idx.scatterAdd(this.ctx, g(src), g(i), outer, size, inner, m, op);
  }

  // ---- fused neural-network kernels ----

  softmax(x: BackendBuffer, rows: number, cols: number, log: boolean): BackendBuffer {
    return norm.softmax(this.ctx, g(x), rows, cols, log);
  }
  softmaxGrad(y: BackendBuffer, dy: BackendBuffer, rows: number, cols: number, log: boolean): BackendBuffer {
    return norm.softmaxGrad(this.ctx, g(y), g(dy), rows, cols, log);
  }
  layerNorm(x: BackendBuffer, w: BackendBuffer | null, b: BackendBuffer | null, rows: number, cols: number, eps: number) {
    return norm.layerNorm(this.ctx, g(x), w && g(w), b && g(b), rows, cols, eps);
  }
  layerNormGrad(x: BackendBuffer, w: BackendBuffer | null, mean: BackendBuffer, rstd: BackendBuffer, dy: BackendBuffer, rows: number, cols: number) {
    return norm.layerNormGrad(this.ctx, g(x), w && g(w), g(mean), g(rstd), g(dy), rows, cols);
  }
  rope(x: BackendBuffer, cos: BackendBuffer, sin: BackendBuffer, p: RopeParams) {
    return rope(this.ctx, g(x), g(cos), g(sin), p);
  }
  rmsNorm(x: BackendBuffer, w: BackendBuffer | null, rows: number, cols: number, eps: number) {
    return norm.rmsNorm(this.ctx, g(x), w && g(w), rows, cols, eps);
  }
  rmsNormGrad(x: BackendBuffer, w: BackendBuffer | null, rstd: BackendBuffer, dy: BackendBuffer, rows: number, cols: number) {
    return norm.rmsNormGrad(this.ctx, g(x), w && g(w), g(rstd), g(dy), rows, cols);
  }
  crossEntropy(logits: BackendBuffer, target: BackendBuffer, rows: number, cols: number, ignoreIndex: number, op: string) {
    return norm.crossEntropy(this.ctx, g(logits), g(target), rows, cols, ignoreIndex, op);
  }
  crossEntropyGrad(logits: BackendBuffer, target: BackendBuffer, lse: BackendBuffer, dloss: BackendBuffer, rows: number, cols: number, ignoreIndex: number): BackendBuffer {
    return norm.crossEntropyGrad(this.ctx, g(logits), g(target), g(lse), g(dloss), rows, cols, ignoreIndex);
  }

  attention(q: BackendBuffer, k: BackendBuffer, v: BackendBuffer, bias: BackendBuffer | null, p: AttentionParams) {
    return att.attention(this.ctx, g(q), g(k), g(v), bias && g(bias), p);
  }
  attentionGrad(q: BackendBuffer, k: BackendBuffer, v: BackendBuffer, bias: BackendBuffer | null, out: BackendBuffer, lse: BackendBuffer, dOut: BackendBuffer, p: AttentionParams) {
    return att.attentionGrad(this.ctx, g(q), g(k), g(v), bias && g(bias), g(out), g(lse), g(dOut), p);
  }

  adamStep(param: BackendBuffer, grad: BackendBuffer, expAvg: BackendBuffer | null, expAvgSq: BackendBuffer | null, p: AdamStepParams) {
    return optim.adamStep(this.ctx, g(param), g(grad), expAvg && g(expAvg), expAvgSq && g(expAvgSq), p);
  }
  sgdStep(param: BackendBuffer, grad: BackendBuffer, momentumBuffer: BackendBuffer | null, p: SgdStepParams) {
    return optim.sgdStep(this.ctx, g(param), g(grad), momentumBuffer && g(momentumBuffer), p);
  }

  // ---- sliding windows ----

  im2col(x: BackendBuffer, p: WindowParams, padValue: number): BackendBuffer {
    return im2col(this.ctx, g(x), p, padValue);
  }
  col2im(cols: BackendBuffer, p: WindowParams): BackendBuffer {
    return col2im(this.ctx, g(cols), p);
  }
}
