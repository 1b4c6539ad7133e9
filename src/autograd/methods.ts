// Installs the ops as Tensor methods (x.add(y), x.softmax(-1), loss.backward(), ...), PyTorch style.

import { checkFitsInt64, onesLike, zerosLike } from '../tensor/create.js';
import { parseDType, type DType } from '../tensor/dtype.js';
import type { Shape } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { isGradEnabled, noGrad, runBackward, type BackwardOptions } from './engine.js';
import type { TensorLike } from './ops/base.js';
import * as E from './ops/elementwise.js';
import * as I from './ops/indexing.js';
import * as MM from './ops/matmul.js';
import * as ES from './ops/einsum.js';
import * as M from './ops/movement.js';
import * as N from './ops/nn.js';
import * as R from './ops/reduce.js';
import * as S from './ops/subscript.js';

declare module '../tensor/tensor.js' {
  interface Tensor {
    add(other: TensorLike): Tensor;
    sub(other: TensorLike): Tensor;
    mul(other: TensorLike): Tensor;
    div(other: TensorLike): Tensor;
    pow(exponent: TensorLike): Tensor;
    maximum(other: TensorLike): Tensor;
    minimum(other: TensorLike): Tensor;
    neg(): Tensor;
    abs(): Tensor;
    sign(): Tensor;
    exp(): Tensor;
    log(): Tensor;
    sqrt(): Tensor;
    rsqrt(): Tensor;
    sin(): Tensor;
    cos(): Tensor;
    tanh(): Tensor;
    sigmoid(): Tensor;
    relu(): Tensor;
    erf(): Tensor;
    gelu(approximate?: 'none' | 'tanh'): Tensor;
    silu(): Tensor;
    floor(): Tensor;
    ceil(): Tensor;
    round(): Tensor;
    square(): Tensor;
    reciprocal(): Tensor;
    clamp(min?: number, max?: number): Tensor;
    eq(other: TensorLike): Tensor;
    ne(other: TensorLike): Tensor;
    lt(other: TensorLike): Tensor;
    le(other: TensorLike): Tensor;
    gt(other: TensorLike): Tensor;
    ge(other: TensorLike): Tensor;
    logicalAnd(other: TensorLike): Tensor;
    logicalOr(other: TensorLike): Tensor;
    logicalNot(): Tensor;
    maskedFill(mask: Tensor, value: number): Tensor;
    where(cond: Tensor, other: TensorLike): Tensor;

    sum(dim?: R.Dims, keepdim?: boolean): Tensor;
    mean(dim?: R.Dims, keepdim?: boolean): Tensor;
    max(dim?: R.Dims, keepdim?: boolean): Tensor;
    min(dim?: R.Dims, keepdim?: boolean): Tensor;
    argmax(dim?: number, keepdim?: boolean): Tensor;
    argmin(dim?: number, keepdim?: boolean): Tensor;
    var(dim?: R.Dims, opts?: R.VarOptions): Tensor;
    std(dim?: R.Dims, opts?: R.VarOptions): Tensor;
    logsumexp(dim: R.Dims, keepdim?: boolean): Tensor;
    cumsum(dim: number): Tensor;

    matmul(other: Tensor): Tensor;
    /** Inner product of two 1-d tensors (torch.dot). */
    dot(other: Tensor): Tensor;
    /** Outer product of two 1-d tensors (torch.outer). */
    outer(other: Tensor): Tensor;
    softmax(dim?: number): Tensor;
    logSoftmax(dim?: number): Tensor;

    reshape(shape: Shape): Tensor;
    view(shape: Shape): Tensor;
    flatten(startDim?: number, endDim?: number): Tensor;
    unflatten(dim: number, sizes: Shape): Tensor;
    squeeze(dim?: number): Tensor;
    unsqueeze(dim: number): Tensor;
    permute(dims: readonly number[]): Tensor;
    transpose(dim0: number, dim1: number): Tensor;
    /** Transpose of a 2-d tensor. */
    t(): Tensor;
    expand(shape: Shape): Tensor;
    expandAs(other: Tensor): Tensor;
    slice(dim: number, start?: number, end?: number, step?: number): Tensor;
    narrow(dim: number, start: number, length: number): Tensor;
    select(dim: number, index: number): Tensor;
    split(sizes: number | readonly number[], dim?: number): Tensor[];
    chunk(chunks: number, dim?: number): Tensor[];
    flip(dims: readonly number[]): Tensor;
    repeat(reps: readonly number[]): Tensor;
    indexSelect(dim: number, index: Tensor): Tensor;
    gather(dim: number, index: Tensor): Tensor;
    scatterAdd(dim: number, index: Tensor, src: Tensor): Tensor;
    tril(diagonal?: number): Tensor;
    triu(diagonal?: number): Tensor;
    clone(): Tensor;
    /** Always contiguous here: returns the tensor itself. */
    contiguous(): Tensor;
    detach(): Tensor;
    /** Converts to a dtype ('float32', 'int32', 'float16', ...; 'int64' means int32) or moves to a device ('cpu', 'wasm', ...). */
    to(dtypeOrDevice: DType | string): Tensor;
    float(): Tensor;
    double(): Tensor;
    int(): Tensor;
    bool(): Tensor;
    /** int64 is int32 here: values beyond +-2^31 are an error (checked on CPU-side devices). */
    long(): Tensor;
    half(): Tensor;
    bfloat16(): Tensor;

    /**
     * Accumulates d this / d leaf into every leaf's .grad (this must have one element unless gradient is given).
     * backward(), backward(gradient, opts) or backward(opts) (PyTorch's keyword form: `{ retainGraph: true }`).
     */
    backward(gradient?: Tensor | BackwardOptions | null, opts?: BackwardOptions): void;
    /** In-place (the buffer is replaced): this = src, under noGrad for leaves that require grad. */
    copy_(src: Tensor): this;
    zero_(): this;

    /** x[spec] in Python: x.at(-1), x.at(':, 0::2'), x.at('..., None, :'), x.at([':', idx]), x.at([mask]). Differentiable. */
    at(spec: S.IndexSpec): Tensor;
    /** at() where boolean masks must be read asynchronously (devices without synchronous reads). */
    atAsync(spec: S.IndexSpec): Promise<Tensor>;
    /** y = x.clone(); y[spec] = value, differentiable in this and value (torch index_put). */
    indexPut(spec: S.IndexSpec, value: TensorLike): Tensor;
    /** In place: x[spec] = value (the buffer is replaced), with copy_'s rules; returns this. */
    set(spec: S.IndexSpec, value: TensorLike): this;
  }
}

const P = Tensor.prototype;

P.add = function (o) { return E.add(this, o); };
P.sub = function (o) { return E.sub(this, o); };
P.mul = function (o) { return E.mul(this, o); };
P.div = function (o) { return E.div(this, o); };
P.pow = function (o) { return E.pow(this, o); };
P.maximum = function (o) { return E.maximum(this, o); };
P.minimum = function (o) { return E.minimum(this, o); };
P.neg = function () { return E.neg(this); };
P.abs = function () { return E.abs(this); };
P.sign = function () { return E.sign(this); };
P.exp = function () { return E.exp(this); };
P.log = function () { return E.log(this); };
P.sqrt = function () { return E.sqrt(this); };
P.rsqrt = function () { return E.rsqrt(this); };
P.sin = function () { return E.sin(this); };
P.cos = function () { return E.cos(this); };
P.tanh = function () { return E.tanh(this); };
P.sigmoid = function () { return E.sigmoid(this); };
P.relu = function () { return E.relu(this); };
P.erf = function () { return E.erf(this); };
P.gelu = function (approximate) { return E.gelu(this, approximate); };
P.silu = function () { return E.silu(this); };
P.floor = function () { return E.floor(this); };
P.ceil = function () { return E.ceil(this); };
P.round = function () { return E.round(this); };
P.square = function () { return E.square(this); };
P.reciprocal = function () { return E.reciprocal(this); };
P.clamp = function (min, max) { return E.clamp(this, min, max); };
P.eq = function (o) { return E.eq(this, o); };
P.ne = function (o) { return E.ne(this, o); };
P.lt = function (o) { return E.lt(this, o); };
P.le = function (o) { return E.le(this, o); };
P.gt = function (o) { return E.gt(this, o); };
P.ge = function (o) { return E.ge(this, o); };
P.logicalAnd = function (o) { return E.logicalAnd(this, o); };
P.logicalOr = function (o) { return E.logicalOr(this, o); };
P.logicalNot = function () { return E.logicalNot(this); };
P.maskedFill = function (mask, value) { return E.maskedFill(this, mask, value); };
P.where = function (cond, other) { return E.where(cond, this, other); };

P.sum = function (dim, keepdim) { return R.sum(this, dim, keepdim); };
P.mean = function (dim, keepdim) { return R.mean(this, dim, keepdim); };
P.max = function (dim, keepdim) { return R.max(this, dim, keepdim); };
P.min = function (dim, keepdim) { return R.min(this, dim, keepdim); };
P.argmax = function (dim, keepdim) { return R.argmax(this, dim, keepdim); };
P.argmin = function (dim, keepdim) { return R.argmin(this, dim, keepdim); };
P.var = function (dim, opts) { return R.variance(this, dim, opts); };
P.std = function (dim, opts) { return R.std(this, dim, opts); };
P.logsumexp = function (dim, keepdim) { return R.logsumexp(this, dim, keepdim); };
P.cumsum = function (dim) { return R.cumsum(this, dim); };

P.matmul = function (o) { return MM.matmul(this, o); };
P.dot = function (o) { return ES.dot(this, o); };
P.outer = function (o) { return ES.outer(this, o); };
P.softmax = function (dim) { return N.softmax(this, dim); };
P.logSoftmax = function (dim) { return N.logSoftmax(this, dim); };

P.reshape = function (shape) { return M.reshape(this, shape); };
P.view = function (shape) { return M.reshape(this, shape); };
P.flatten = function (s, e) { return M.flatten(this, s, e); };
P.unflatten = function (dim, sizes) { return M.unflatten(this, dim, sizes); };
P.squeeze = function (dim) { return M.squeeze(this, dim); };
P.unsqueeze = function (dim) { return M.unsqueeze(this, dim); };
P.permute = function (dims) { return M.permute(this, dims); };
P.transpose = function (a, b) { return M.transpose(this, a, b); };
P.t = function () {
  if (this.ndim !== 2) throw new Error(`t: expected a 2-d tensor, got ${this.ndim} dimensions (use transpose)`);
  return M.transpose(this, 0, 1);
};
P.expand = function (shape) { return M.expand(this, shape); };
P.expandAs = function (o) { return M.expand(this, o.shape); };
P.slice = function (dim, start, end, step) { return M.slice(this, dim, start, end, step); };
P.narrow = function (dim, start, length) { return M.narrow(this, dim, start, length); };
P.select = function (dim, index) { return M.select(this, dim, index); };
P.split = function (sizes, dim) { return M.split(this, sizes, dim); };
P.chunk = function (chunks, dim) { return M.chunk(this, chunks, dim); };
P.flip = function (dims) { return M.flip(this, dims); };
P.repeat = function (reps) { return M.repeat(this, reps); };
P.indexSelect = function (dim, index) { return I.indexSelect(this, dim, index); };
P.gather = function (dim, index) { return I.gather(this, dim, index); };
P.scatterAdd = function (dim, index, src) { return I.scatterAdd(this, dim, index, src); };
P.tril = function (d) { return I.tril(this, d); };
P.triu = function (d) { return I.triu(this, d); };
P.clone = function () { return M.clone(this); };
P.contiguous = function () { return this; };
P.detach = function () { return M.detach(this); };
P.to = function (target) {
  const dtype = parseDType(target);
  if (dtype === null) return M.toDevice(this, target);
  if (target === 'int64') checkFitsInt64(this, 'to');
  return E.cast(this, dtype);
};
P.long = function () { return this.to('int64'); };
P.half = function () { return E.cast(this, 'float16'); };
P.bfloat16 = function () { return E.cast(this, 'bfloat16'); };
P.float = function () { return E.cast(this, 'float32'); };
P.double = function () { return E.cast(this, 'float64'); };
P.int = function () { return E.cast(this, 'int32'); };
P.bool = function () { return E.cast(this, 'bool'); };

P.backward = function (gradient, opts) {
  // Options may come first, as PyTorch's keyword call y.backward(retain_graph=True) reads.
  if (gradient !== undefined && gradient !== null && !(gradient instanceof Tensor)) {
    if (typeof gradient !== 'object' || Array.isArray(gradient) || opts !== undefined) {
      throw new Error(`backward: the first argument must be a gradient Tensor or an options object { retainGraph }, got ${Array.isArray(gradient) ? 'an array' : typeof gradient}`);
    }
    const unknown = Object.keys(gradient).filter((k) => k !== 'retainGraph');
    if (unknown.length) throw new Error(`backward: unknown option ${unknown.map((k) => `'${k}'`).join(', ')} (options: retainGraph)`);
    return runBackward(this, null, E.add, (t) => onesLike(t), gradient);
  }
  runBackward(this, gradient ?? null, E.add, (t) => onesLike(t), opts);
};

function checkInPlace(t: Tensor, op: string): void {
  if (t.requiresGrad && t.isLeaf && isGradEnabled()) {
    throw new Error(`${op}: in-place update of a leaf that requires grad; wrap it in noGrad(() => ...)`);
  }
  if (!t.isLeaf) throw new Error(`${op}: in-place update of a tensor computed by '${t.gradFn!.name}' would break its gradient`);
}
P.copy_ = function (src) {
  checkInPlace(this, 'copy_');
  // clone: replaceStorage takes (and disposes) its argument, which must not be src itself.
  this.replaceStorage(M.clone(M.toDevice(E.cast(M.expand(src, this.shape), this.dtype), this.device)));
  return this;
};
P.zero_ = function () {
  checkInPlace(this, 'zero_');
  this.replaceStorage(zerosLike(this));
  return this;
};

P.at = function (spec) { return S.at(this, spec); };
P.atAsync = function (spec) { return S.atAsync(this, spec); };
P.indexPut = function (spec, value) { return S.indexPut(this, spec, value); };
P.set = function (spec, value) {
  checkInPlace(this, 'set');
  if (typeof value !== 'number' && value.requiresGrad && isGradEnabled()) {
    throw new Error('set: the value requires grad and an in-place write would drop its gradient; use x = x.indexPut(spec, value), which is differentiable');
  }
  // detach: this is a leaf without grad here, so the new buffer needs no graph.
  this.replaceStorage(noGrad(() => S.indexPut(this.detach(), spec, value, 'set')));
  return this;
};
