// The Tensor: a shape and dtype over a backend-owned, reference-counted buffer, plus autograd fields.
// Math lives in src/autograd (installed as methods by autograd/methods.ts).

import { getBackend, type Backend, type BackendBuffer } from './backend.js';
import { bytesPerElement, isFloat, type DType, type TypedArray } from './dtype.js';
import { accountAlloc, accountFree, maybeReclaim, registerTensor, unregisterTensor, watchTensor, type LiveEntry } from './memory.js';
import { fmtShape, sizeOf, type Shape } from './shape.js';
import { track } from './scope.js';

/** A backend buffer shared by the tensors that view it (reshape shares; everything else copies). */
export class Storage {
  private refs = 1;
  constructor(readonly backend: Backend, readonly buffer: BackendBuffer) {
    accountAlloc(backend.name, this.bytes);
  }
  get bytes(): number {
    return this.buffer.size * bytesPerElement(this.buffer.dtype);
  }
  retain(): this {
    this.refs++;
    return this;
  }
  release(): void {
    if (--this.refs !== 0) return;
    accountFree(this.backend.name, this.bytes);
    this.backend.free(this.buffer);
  }
}

/** A recorded operation: how to send a gradient from its output back to its inputs. */
export interface GradNode {
  readonly name: string;
  readonly inputs: readonly Tensor[];
  /** Gradients for each input (null where an input needs none). */
  backward(grad: Tensor): readonly (Tensor | null)[];
  /** Frees the tensors saved for backward. */
  release(): void;
}

let nextId = 0;

export type NestedArray = number | boolean | NestedArray[];

export class Tensor {
  readonly id = nextId++;
  readonly shape: Shape;
  #storage: Storage | null;
  /** This tensor's entry in the live registry (memory.ts): how a collected tensor's buffer gets freed. */
  #entry: LiveEntry;
  #requiresGrad = false;
  /** Accumulated gradient of a leaf (or of a tensor that called retainGrad()). */
  grad: Tensor | null = null;
  /** The operation that produced this tensor, when it was recorded for autograd. */
  gradFn: GradNode | null = null;
  /** Set by retainGrad(): keep .grad on a non-leaf tensor. */
  retainsGrad = false;

  constructor(storage: Storage, shape: Shape) {
    if (sizeOf(shape) !== storage.buffer.size) {
      throw new Error(`Tensor: shape ${fmtShape(shape)} needs ${sizeOf(shape)} elements, buffer has ${storage.buffer.size}`);
    }
    this.#storage = storage;
    this.shape = frozenShape(shape);
    this.#entry = registerTensor(this, storage, track(this));
  }

  /** Wraps a fresh buffer (refcount 1) from `backend` as a tensor. */
  static fromBuffer(backend: Backend, buffer: BackendBuffer, shape: Shape): Tensor {
    return new Tensor(new Storage(backend, buffer), shape);
  }

  get storage(): Storage {
    if (this.#storage === null) throw new Error(`tensor ${this.describe()} was used after dispose()`);
    return this.#storage;
  }
  get buffer(): BackendBuffer {
    return this.storage.buffer;
  }
  get backend(): Backend {
    return this.storage.backend;
  }
  get dtype(): DType {
    return this.storage.buffer.dtype;
  }
  get device(): string {
    return this.storage.backend.name;
  }
  get ndim(): number {
    return this.shape.length;
  }
  get isDisposed(): boolean {
    return this.#storage === null;
  }
  get isLeaf(): boolean {
    return this.gradFn === null;
  }

  numel(): number {
    return this.storage.buffer.size;
  }
  /** Size of one dimension (negative counts from the end), or the whole shape. */
  size(): Shape;
  size(dim: number): number;
  size(dim?: number): Shape | number {
    if (dim === undefined) return this.shape;
    const d = dim < 0 ? dim + this.ndim : dim;
    const s = d >= 0 ? this.shape[d] : undefined;
    if (s === undefined) throw new Error(`size: dimension ${dim} is out of range for shape ${fmtShape(this.shape)}`);
    return s;
  }

  get requiresGrad(): boolean {
    return this.#requiresGrad;
  }
  set requiresGrad(flag: boolean) {
    if (flag && !isFloat(this.dtype)) throw new Error(`requiresGrad: only floating point tensors can require gradients (got ${this.dtype})`);
    if (!flag && this.gradFn !== null) throw new Error('requiresGrad: cannot turn off gradients of a non-leaf tensor; use detach()');
    this.#requiresGrad = flag;
  }
  /** Sets requiresGrad and returns this, for chaining. */
  requiresGrad_(flag = true): this {
    this.requiresGrad = flag;
    return this;
  }
  /** @internal Marks an op's output as part of the graph (autograd only). */
  setGradFn(node: GradNode): void {
    this.gradFn = node;
    this.#requiresGrad = true;
  }
  /** Keeps .grad on this non-leaf tensor during backward. */
  retainGrad(): this {
    this.retainsGrad = true;
    return this;
  }

  // ---- reading ----

  /** A copy of the elements in row-major order. */
  async data(): Promise<TypedArray> {
    // An await point: where tensors the program dropped without dispose() are reclaimed (memory.ts).
    await maybeReclaim();
    return this.backend.read(this.buffer);
  }
  /** Synchronous read: only on backends that hold data on the CPU (cpu, wasm). */
  dataSync(): TypedArray {
    const b = this.backend;
    if (!b.readSync) throw new Error(`dataSync: device '${b.name}' cannot be read synchronously; use await tensor.data()`);
    return b.readSync(this.buffer);
  }
  /** The single value of a one-element tensor. */
  async item(): Promise<number> {
    if (this.numel() !== 1) throw new Error(`item: tensor ${this.describe()} has ${this.numel()} elements, expected 1`);
    return (await this.data())[0]!;
  }
  /** Nested arrays, like PyTorch's tolist() (bool tensors give booleans). */
  async tolist(): Promise<NestedArray> {
    const data = await this.data();
    const asBool = this.dtype === 'bool';
    const build = (dim: number, offset: number): NestedArray => {
      if (dim === this.ndim) return asBool ? data[offset] !== 0 : data[offset]!;
      const stride = sizeOf(this.shape.slice(dim + 1));
      return Array.from({ length: this.shape[dim]! }, (_, i) => build(dim + 1, offset + i * stride));
    };
    return build(0, 0);
  }

  // ---- memory ----

  /** Releases the buffer now (and the gradient). Safe to call twice. */
  dispose(): void {
    if (this.#storage === null) return;
    unregisterTensor(this.#entry);
    this.#storage = null;
    this.grad?.dispose();
    this.grad = null;
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
  /** @internal No scope owns this tensor any more: the memory registry watches it from now on. */
  unscoped(): void {
    watchTensor(this, this.#entry);
  }
  /**
   * @internal In-place update: this tensor takes `src`'s buffer (same size and dtype; another device
   * only with allowDevice, another dtype only with allowDtype, as Module.to does) and src is disposed. Earlier reshape views keep the old buffer.
   */
  replaceStorage(src: Tensor, opts: { allowDevice?: boolean; allowDtype?: boolean } = {}): void {
    if (src.numel() !== this.numel() || (src.dtype !== this.dtype && !opts.allowDtype) || (src.device !== this.device && !opts.allowDevice)) {
      throw new Error(`in-place update: ${src.describe()} cannot replace ${this.describe()}`);
    }
    const s = src.storage.retain();
    src.dispose();
    this.storage.release();
    this.#storage = s;
    this.#entry.storage = s;
  }

  /** e.g. "[2, 3] float32 on cpu". */
  describe(): string {
    return `${fmtShape(this.shape)} ${this.#storage ? `${this.dtype} on ${this.device}` : '(disposed)'}`;
  }
}

/** Frozen shapes by their sizes: tensors of one shape share one (building it costs ~1 us; a program has few shapes). */
const shapes = new Map<string, Shape>();
const MAX_SHAPES = 4096;

/**
 * A frozen copy of a shape that also answers negative indices as Python does (shape[-1] is the last size):
 * PyTorch code ported line by line reads x.shape[-1], which on a plain array is silently undefined.
 */
function frozenShape(shape: Shape): Shape {
  const key = shape.join(',');
  let s = shapes.get(key);
  if (s !== undefined) return s;
  const copy = [...shape];
  for (let i = 1; i <= copy.length; i++) Object.defineProperty(copy, -i, { value: copy[copy.length - i], enumerable: false });
  s = Object.freeze(copy);
  // A run whose shapes keep changing (a growing sequence) starts over rather than grow without bound.
  if (shapes.size >= MAX_SHAPES) shapes.clear();
  shapes.set(key, s);
  return s;
}

export function isTensor(x: unknown): x is Tensor {
  return x instanceof Tensor;
}

/** Uploads a typed array as a tensor on a device (default device if omitted). */
export function fromArray(data: TypedArray, shape: Shape, dtype: DType, device?: string): Tensor {
  const backend = getBackend(device);
  return Tensor.fromBuffer(backend, backend.upload(data, dtype), shape);
}
