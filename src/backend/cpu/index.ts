// The TypeScript reference backend ('cpu'): plain loops over typed arrays, the oracle for every other backend.
// float16 / bfloat16 buffers hold bits (Uint16Array); their kernels compute in float32 (../half.ts).

import type { ActivationOp, AdamStepParams, ArgReduceOp, AttentionParams, Backend, BackendBuffer, BinaryOp, MatmulParams, QuantMatmulParams, QuantOperand, QuantWeightParams, ReduceOp, RopeParams, SgdStepParams, UnaryOp, WindowParams } from '../../tensor/backend.js';
import { allocArray, castStorage, decodeHalf, isHalf, toStorage, type DType, type HalfDType, type TypedArray } from '../../tensor/dtype.js';
import type { Shape } from '../../tensor/shape.js';
import { installHalfKernels } from '../half.js';
import * as att from './attention.js';
import * as ew from './elementwise.js';
import * as idx from './indexing.js';
import { colSums, matmul } from './matmul.js';
import { checkMatmulHalf, matmulHalf } from './matmul-half.js';
import { checkQuantMatmul, checkQuantWeight, quantMatmul } from './quant.js';
import { stridedCopy, stridedWrite } from './movement.js';
import * as norm from './norm.js';
import * as optim from './optim.js';
import * as red from './reduce.js';
import { rope } from './rotary.js';
import { col2im, im2col } from './window.js';

export class CpuBuffer implements BackendBuffer {
  constructor(readonly dtype: DType, readonly data: TypedArray) {}
  get size(): number {
    return this.data.length;
  }
}

function arr(b: BackendBuffer): TypedArray {
  return (b as CpuBuffer).data;
}
function buf(dtype: DType, data: TypedArray): CpuBuffer {
  return new CpuBuffer(dtype, data);
}
const COMPARE_OR_LOGIC = new Set<BinaryOp>(['eq', 'ne', 'lt', 'le', 'gt', 'ge', 'and', 'or']);

export class CpuBackend implements Backend {
  readonly name: string = 'cpu';

  constructor() {
    installHalfKernels(this);
  }

  /** Half dtypes: a Uint16Array is taken as bits, other arrays as values (rounded to nearest even). */
  upload(data: TypedArray, dtype: DType): BackendBuffer {
    return buf(dtype, toStorage(data, dtype));
  }
  fill(dtype: DType, size: number, value: number): BackendBuffer {
    const data = allocArray(dtype, size);
    const v = toStorage([value], dtype)[0]!;
    if (!Object.is(v, 0)) data.fill(v); // -0 too: a fresh array holds +0
    return buf(dtype, data);
  }
  async read(b: BackendBuffer): Promise<TypedArray> {
    return this.readSync(b);
  }
  /** Half dtypes decode to Float32Array. */
  readSync(b: BackendBuffer): TypedArray {
    return isHalf(b.dtype) ? decodeHalf(arr(b) as Uint16Array, b.dtype) : arr(b).slice();
  }
  free(): void {
    // Typed arrays are garbage collected.
  }

  cast(x: BackendBuffer, dtype: DType): BackendBuffer {
    return buf(dtype, castStorage(arr(x), x.dtype, dtype));
  }
  unary(op: UnaryOp, x: BackendBuffer): BackendBuffer {
    return buf(x.dtype, ew.unary(op, arr(x), x.dtype));
  }
  activationGrad(op: ActivationOp, x: BackendBuffer, dy: BackendBuffer): BackendBuffer {
    return buf(x.dtype, ew.activationGrad(op, arr(x), arr(dy), x.dtype));
  }
  binary(op: BinaryOp, a: BackendBuffer, aShape: Shape, b: BackendBuffer, bShape: Shape, outShape: Shape): BackendBuffer {
    const dtype = COMPARE_OR_LOGIC.has(op) ? 'bool' : a.dtype;
    return buf(dtype, ew.binary(op, arr(a), aShape, arr(b), bShape, outShape, dtype));
  }
  where(c: BackendBuffer, cShape: Shape, a: BackendBuffer, aShape: Shape, b: BackendBuffer, bShape: Shape, outShape: Shape): BackendBuffer {
    return buf(a.dtype, ew.where(arr(c), cShape, arr(a), aShape, arr(b), bShape, outShape, a.dtype));
  }

  reduce(op: ReduceOp, x: BackendBuffer, outer: number, size: number, inner: number): BackendBuffer {
    return buf(x.dtype, red.reduce(op, arr(x), outer, size, inner, x.dtype));
  }
  argReduce(op: ArgReduceOp, x: BackendBuffer, outer: number, size: number, inner: number): BackendBuffer {
    return buf('int32', red.argReduce(op, arr(x), outer, size, inner));
  }
  cumsum(x: BackendBuffer, outer: number, size: number, inner: number, reverse: boolean): BackendBuffer {
    return buf(x.dtype, red.cumsum(arr(x), outer, size, inner, reverse, x.dtype));
  }

  matmul(a: BackendBuffer, b: BackendBuffer, p: MatmulParams, bias?: BackendBuffer | null): BackendBuffer {
    return buf(a.dtype, matmul(arr(a), arr(b), p, a.dtype, bias ? arr(bias) : null));
  }

  matmulColSums(a: BackendBuffer, b: BackendBuffer, p: MatmulParams) {
    return { out: this.matmul(a, b, p), sums: buf(a.dtype, colSums(arr(b), p, a.dtype)) };
  }

  matmulHalf(a: BackendBuffer, b: BackendBuffer, p: MatmulParams, bias?: BackendBuffer | null): BackendBuffer {
    checkMatmulHalf(a, b, p, bias);
    return buf('float32', matmulHalf(arr(a), arr(b) as Uint16Array, b.dtype as HalfDType, p, bias ? arr(bias) : null));
  }

  quantMatmul(x: BackendBuffer, w: BackendBuffer, p: QuantMatmulParams, bias?: BackendBuffer | null): BackendBuffer {
    checkQuantMatmul(x, w, p, bias);
    return buf('float32', quantMatmul(arr(x), arr(w) as Uint8Array, p, bias ? arr(bias) : null));
  }
  quantMatmuls(x: BackendBuffer, ws: readonly QuantOperand[], p: Omit<QuantMatmulParams, 'n'>): BackendBuffer[] {
    return ws.map((o) => this.quantMatmul(x, o.w, { ...p, n: o.n }, o.bias));
  }
  /** ggml's layout as it is. */
  uploadQuant(blocks: Uint8Array, p: QuantWeightParams): BackendBuffer {
    checkQuantWeight(`uploadQuant: ${p.type} weight [${p.n}, ${p.k}]`, blocks.length, 'uint8', p);
    return buf('uint8', blocks.slice());
  }

  stridedCopy(x: BackendBuffer, shape: Shape, strides: readonly number[], offset: number): BackendBuffer {
    return buf(x.dtype, stridedCopy(arr(x), shape, strides, offset, x.dtype));
  }
  stridedWrite(dst: BackendBuffer, src: BackendBuffer, shape: Shape, strides: readonly number[], offset: number): void {
    stridedWrite(arr(dst), arr(src), shape, strides, offset);
  }

  indexSelect(x: BackendBuffer, i: BackendBuffer, outer: number, size: number, inner: number, op: string): BackendBuffer {
    return buf(x.dtype, idx.indexSelect(arr(x), arr(i), outer, size, inner, op, x.dtype));
  }
  indexAdd(src: BackendBuffer, i: BackendBuffer, outer: number, size: number, inner: number, op: string): BackendBuffer {
    return buf(src.dtype, idx.indexAdd(arr(src), arr(i), outer, size, inner, op, src.dtype));
  }
  gather(x: BackendBuffer, i: BackendBuffer, outer: number, size: number, inner: number, m: number, op: string): BackendBuffer {
    return buf(x.dtype, idx.gather(arr(x), arr(i), outer, size, inner, m, op, x.dtype));
  }
  scatterAdd(src: BackendBuffer, i: BackendBuffer, outer: number, size: number, inner: number, m: number, op: string): BackendBuffer {
    return buf(src.dtype, idx.scatterAdd(arr(src), arr(i), outer, size, inner, m, op, src.dtype));
  }

  softmax(x: BackendBuffer, rows: number, cols: number, log: boolean): BackendBuffer {
    return buf(x.dtype, norm.softmax(arr(x), rows, cols, log, x.dtype));
  }
  softmaxGrad(y: BackendBuffer, dy: BackendBuffer, rows: number, cols: number, log: boolean): BackendBuffer {
    return buf(y.dtype, norm.softmaxGrad(arr(y), arr(dy), rows, cols, log, y.dtype));
  }
  layerNorm(x: BackendBuffer, w: BackendBuffer | null, b: BackendBuffer | null, rows: number, cols: number, eps: number) {
    const r = norm.layerNorm(arr(x), w && arr(w), b && arr(b), rows, cols, eps, x.dtype);
    return { y: buf(x.dtype, r.y), mean: buf(x.dtype, r.mean), rstd: buf(x.dtype, r.rstd) };
  }
  layerNormGrad(x: BackendBuffer, w: BackendBuffer | null, mean: BackendBuffer, rstd: BackendBuffer, dy: BackendBuffer, rows: number, cols: number) {
    const r = norm.layerNormGrad(arr(x), w && arr(w), arr(mean), arr(rstd), arr(dy), rows, cols, x.dtype);
    return { dx: buf(x.dtype, r.dx), dweight: buf(x.dtype, r.dweight), dbias: buf(x.dtype, r.dbias) };
  }
  rmsNorm(x: BackendBuffer, w: BackendBuffer | null, rows: number, cols: number, eps: number) {
    const r = norm.rmsNorm(arr(x), w && arr(w), rows, cols, eps, x.dtype);
    return { y: buf(x.dtype, r.y), rstd: buf(x.dtype, r.rstd) };
  }
  rmsNormGrad(x: BackendBuffer, w: BackendBuffer | null, rstd: BackendBuffer, dy: BackendBuffer, rows: number, cols: number) {
    const r = norm.rmsNormGrad(arr(x), w && arr(w), arr(rstd), arr(dy), rows, cols, x.dtype);
    return { dx: buf(x.dtype, r.dx), dweight: buf(x.dtype, r.dweight) };
  }

  crossEntropy(logits: BackendBuffer, target: BackendBuffer, rows: number, cols: number, ignoreIndex: number, op: string) {
    const r = norm.crossEntropy(arr(logits), arr(target), rows, cols, ignoreIndex, op, logits.dtype);
    return { loss: buf(logits.dtype, r.loss), lse: buf(logits.dtype, r.lse) };
  }
  crossEntropyGrad(logits: BackendBuffer, target: BackendBuffer, lse: BackendBuffer, dloss: BackendBuffer, rows: number, cols: number, ignoreIndex: number): BackendBuffer {
    return buf(logits.dtype, norm.crossEntropyGrad(arr(logits), arr(target), arr(lse), arr(dloss), rows, cols, ignoreIndex, logits.dtype));
  }

  rope(x: BackendBuffer, cos: BackendBuffer, sin: BackendBuffer, p: RopeParams) {
    return buf(x.dtype, rope(arr(x), arr(cos), arr(sin), p, x.dtype));
  }
  attention(q: BackendBuffer, k: BackendBuffer, v: BackendBuffer, bias: BackendBuffer | null, p: AttentionParams) {
    const r = att.attention(arr(q), arr(k), arr(v), bias && arr(bias), p, q.dtype);
    return { out: buf(q.dtype, r.out), lse: buf(q.dtype, r.lse) };
  }
  attentionGrad(q: BackendBuffer, k: BackendBuffer, v: BackendBuffer, bias: BackendBuffer | null, out: BackendBuffer, lse: BackendBuffer, dOut: BackendBuffer, p: AttentionParams) {
    const r = att.attentionGrad(arr(q), arr(k), arr(v), bias && arr(bias), arr(out), arr(lse), arr(dOut), p, q.dtype);
    // Inputs that share a buffer (strided layouts) share their gradient buffer too.
    const dq = buf(q.dtype, r.dq), dk = r.dk === r.dq ? dq : buf(q.dtype, r.dk);
    return { dq, dk, dv: r.dv === r.dq ? dq : r.dv === r.dk ? dk : buf(q.dtype, r.dv) };
  }

  adamStep(param: BackendBuffer, grad: BackendBuffer, expAvg: BackendBuffer | null, expAvgSq: BackendBuffer | null, p: AdamStepParams) {
    const r = optim.adamStep(arr(param), arr(grad), expAvg && arr(expAvg), expAvgSq && arr(expAvgSq), p, param.dtype);
    return { param: buf(param.dtype, r.param), expAvg: buf(param.dtype, r.expAvg), expAvgSq: buf(param.dtype, r.expAvgSq) };
  }
  sgdStep(param: BackendBuffer, grad: BackendBuffer, momentumBuffer: BackendBuffer | null, p: SgdStepParams) {
    const r = optim.sgdStep(arr(param), arr(grad), momentumBuffer && arr(momentumBuffer), p, param.dtype);
    return { param: buf(param.dtype, r.param), momentumBuffer: r.momentumBuffer && buf(param.dtype, r.momentumBuffer) };
  }

  im2col(x: BackendBuffer, p: WindowParams, padValue: number): BackendBuffer {
    return buf(x.dtype, im2col(arr(x), p, padValue, x.dtype));
  }
  col2im(cols: BackendBuffer, p: WindowParams): BackendBuffer {
    return buf(cols.dtype, col2im(arr(cols), p, cols.dtype));
  }
}
