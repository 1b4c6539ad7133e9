// Python subscripts with gradients: x[...] reads (at), x[...] = v as a new tensor (indexPut); the in-place set is in methods.ts.
//
// PyTorch                          attend
//   x[-1]                          x.at(-1)              or x.at('-1')
//   x[:, 0::2]                     x.at(':, 0::2')       or x.at([':', sl(0, null, 2)])
//   x[..., None, :]                x.at('..., None, :')  or x.at(['...', null, ':'])
//   x[idx], x[:, i, j]             x.at([idx]), x.at([':', i, j])   (integer tensors: advanced indexing)
//   x[[0, 2]], x[[True, False]]    x.at([[0, 2]]), x.at([[true, false]])   (the outer array is Python's tuple)
//   x[mask], x[:, m]               x.at([mask]), x.at([':', m])   (bool or uint8 tensors: the dims they cover)
//   y = x.clone(); y[s] = v        y = x.indexPut(s, v)  (differentiable in x and v)
//   x[s] = v                       x.set(s, v)           (in place, copy_'s rules)
//
// Basic items (integers, slices, None, ...) become one strided copy; integer and boolean tensors then pick
// along their dims with indexSelect, as in NumPy / PyTorch advanced indexing (several index tensors broadcast
// together; their dims go first unless they are adjacent). Writes with index tensors or masks go through the
// flat positions of the selected elements: out = where(hit, scatter(v), x); x[mask] = scalar is where(mask, v, x).

import { full, ones, tensor, zeros } from '../../tensor/create.js';
import { isFloat } from '../../tensor/dtype.js';
import { broadcastShapes, fmtShape, shapeEq, sizeOf, sliceBounds, stridesOf, type Shape } from '../../tensor/shape.js';
import { Tensor, type NestedArray } from '../../tensor/tensor.js';
import { record } from '../engine.js';
import { checkSameDevice, wrap, type TensorLike } from './base.js';
import { add, cast, eq, gt, lt, mul, where } from './elementwise.js';
import { indexSelect, scatterAdd } from './indexing.js';
import { sum } from './reduce.js';
import { expand, permute, reshape, squeeze, toDevice } from './movement.js';

/** Python's slice(start, stop, step); null takes the default (whole dimension, step 1). */
export class Slice {
  constructor(readonly start: number | null = null, readonly stop: number | null = null, readonly step: number | null = null) {}
  toString(): string {
    const f = (v: number | null) => (v === null ? '' : String(v));
    return `${f(this.start)}:${f(this.stop)}${this.step === null ? '' : `:${this.step}`}`;
  }
}

/** sl(0, null, 2) is Python's 0::2 (slice(0, None, 2)); the name `slice` is taken by x.slice(dim, ...). */
export function sl(start: number | null = null, stop: number | null = null, step: number | null = null): Slice {
  return new Slice(start, stop, step);
}

/** Python's Ellipsis (`...`). */
export const Ellipsis = '...';

/**
 * One subscript item: an integer, a Slice, null (None / newaxis), '...', the text of one basic item
 * (':', '1:5:2', '-1', 'None'), an integer or boolean tensor, or a JS list standing for one (x[[0, 2]] is
 * x.at([[0, 2]])).
 */
export type IndexItem = number | Slice | null | string | Tensor | NestedArray[];
/** A whole subscript: Python text ('0, :, 1::2'), one item, or a list of items (the tuple inside x[...]). */
export type IndexSpec = string | number | Slice | null | Tensor | readonly IndexItem[];

type Basic = number | Slice | null | typeof Ellipsis;

// ---- parsing ----

const INT = /^[+-]?\d+$/;
const SLICE = /^([+-]?\d+)?:([+-]?\d+)?(?::([+-]?\d+)?)?$/;
const parsed = new Map<string, readonly Basic[]>();

function parseItem(text: string, spec: string, op: string): Basic {
  const t = text.replace(/\s+/g, '');
  if (t === '...') return Ellipsis;
  if (t === 'None' || t === 'null' || t === 'newaxis') return null;
  if (INT.test(t)) return Number(t);
  const m = SLICE.exec(t);
  if (m) {
    const n = (v: string | undefined) => (v === undefined ? null : Number(v));
    return new Slice(n(m[1]), n(m[2]), n(m[3]));
  }
  throw new Error(`${op}: cannot read '${text.trim()}' in subscript '${spec}': expected an integer, a slice like 1:5:2, None or ... (pass index tensors in a list: x.${op}([':', idx]))`);
}

/** Parses Python subscript text once ('0, :, 1::2' -> [0, Slice, Slice]) and caches it. */
export function parseSubscript(spec: string, op = 'at'): readonly Basic[] {
  const hit = parsed.get(spec);
  if (hit) return hit;
  if (spec.trim() === '') throw new Error(`${op}: empty subscript ''`);
  const parts = spec.split(',');
  // x[0,] is x[0] in Python: one trailing comma is allowed.
  if (parts.length > 1 && parts[parts.length - 1]!.trim() === '') parts.pop();
  const items = parts.map((p) => parseItem(p, spec, op));
  if (parsed.size > 512) parsed.clear();
  parsed.set(spec, items);
  return items;
}

/** A uint8 index tensor is a mask, as PyTorch still reads it (deprecated there in favour of bool). */
const asMask = (it: IndexItem): IndexItem => (it instanceof Tensor && it.dtype === 'uint8' ? cast(it, 'bool') : it);

function toItems(spec: IndexSpec, op: string): readonly IndexItem[] {
  if (typeof spec === 'string') return parseSubscript(spec, op);
  if (!Array.isArray(spec)) return [asMask(spec as IndexItem)];
  return (spec as readonly IndexItem[]).flatMap<IndexItem>((it) => {
    if (typeof it === 'string') return parseSubscript(it, op);
    if (!Array.isArray(it)) return [asMask(it)];
    // A Python list index: an integer tensor, or a mask when it holds booleans.
    const bool = typeof (it as unknown[]).flat(Infinity)[0] === 'boolean';
    return [tensor(it, { dtype: bool ? 'bool' : 'int32' })];
  });
}

// ---- resolving a subscript against a shape: one strided view, then advanced picks ----

/** A boolean mask whose shape was checked; its values are read only when the positions of its true entries are needed. */
class MaskIndex {
  #positions: Tensor | null = null;
  constructor(readonly mask: Tensor, private readonly read: (m: Tensor) => ArrayLike<number>) {}
  get shape(): Shape {
    return this.mask.shape;
  }
  /** Row-major positions of the true entries within the mask's dimensions (int32, on the mask's device). */
  get positions(): Tensor {
    if (this.#positions) return this.#positions;
    const values = this.read(this.mask);
    let count = 0;
    for (let i = 0; i < values.length; i++) if (values[i]) count++;
    const positions = new Int32Array(count);
    for (let i = 0, j = 0; i < values.length; i++) if (values[i]) positions[j++] = i;
    this.#positions = tensor(positions, { shape: [count], dtype: 'int32', device: this.mask.device });
    return this.#positions;
  }
}

type Resolved = number | Slice | null | typeof Ellipsis | Tensor | MaskIndex;

interface Advanced {
  /** Position of the first picked dimension in the strided view. */
  pos: number;
  /** How many adjacent dimensions it picks from (a mask's ndim; 1 for an index tensor), and their total size. */
  span: number;
  size: number;
  /** Row-major positions within those dimensions (wrapped to be non-negative); a mask is read on the first call. */
  index: () => Tensor;
  mask?: MaskIndex;
}

interface Plan {
  /** The op named in errors. */
  op: string;
  shape: number[];
  strides: number[];
  offset: number;
  /** 0-d integer tensors: pick one entry and drop the dimension, like an integer (PyTorch reads them as ints). */
  scalars: Advanced[];
  advanced: Advanced[];
  /** Whether an integer tensor is among the picks (only those can select an element twice). */
  repeats: boolean;
}

/** Python-style slice bounds along one dimension: [first, count, step] (negative counts from the end, out of range clamps). */
function resolveSlice(s: Slice, size: number, op: string, dim: number): [number, number, number] {
  const step = s.step ?? 1;
  if (!Number.isInteger(step)) throw new Error(`${op}: slice step must be an integer, got ${step}`);
  if (step === 0) throw new Error(`${op}: slice step cannot be zero (dimension ${dim})`);
  if (step < 0) throw new Error(`${op}: negative slice steps are not supported, as in PyTorch (dimension ${dim}, step ${step}); use x.flip([${dim}])`);
  for (const v of [s.start, s.stop]) {
    if (v !== null && !Number.isInteger(v)) throw new Error(`${op}: slice bounds must be integers, got ${s.toString()}`);
  }
  return [...sliceBounds(size, s.start ?? 0, s.stop ?? size, step), step];
}

/** How many dimensions of x an item uses up. */
function consumes(it: IndexItem | Resolved): number {
  if (it === null || it === Ellipsis) return 0;
  if (it instanceof MaskIndex) return it.shape.length;
  if (it instanceof Tensor) return it.dtype === 'bool' ? it.ndim : 1;
  return 1;
}

/**
 * Checks each boolean mask's shape against the dimensions it covers and wraps it for reading. `read` supplies
 * the values (synchronously for at and indexPut; atAsync awaits them first).
 */
function wrapMasks(items: readonly IndexItem[], shape: Shape, op: string, read: (m: Tensor) => ArrayLike<number>): Resolved[] {
  const ell = items.indexOf(Ellipsis);
  const used = items.reduce<number>((n, it) => n + consumes(it), 0);
  let dim = 0;
  return items.map((it, k) => {
    if (k === ell) dim += Math.max(0, shape.length - used);
    // toItems has turned text and lists into items already.
    const item = it as Exclude<IndexItem, string | NestedArray[]> | typeof Ellipsis;
    dim += consumes(item);
    if (!(item instanceof Tensor) || item.dtype !== 'bool') return item;
    if (item.ndim === 0) throw new Error(`${op}: a 0-d boolean index is not supported; use a 1-d mask`);
    const from = dim - item.ndim;
    if (!shapeEq(shape.slice(from, dim), item.shape)) {
      throw new Error(`${op}: the mask's shape ${fmtShape(item.shape)} does not match dimensions ${from}..${dim - 1} of the indexed tensor ${fmtShape(shape)}`);
    }
    return new MaskIndex(item, read);
  });
}

function readMaskSync(op: string): (m: Tensor) => ArrayLike<number> {
  return (m) => {
    if (!m.backend.readSync) {
      const instead = op === 'at' ? 'use await x.atAsync(spec)' : 'pass the mask as a cpu tensor, or write with where(mask, value, x)';
      throw new Error(`${op}: a boolean mask sizes the result by its values, and device '${m.device}' cannot be read synchronously; ${instead}`);
    }
    return m.backend.readSync(m.buffer);
  };
}

function plan(x: Tensor, items: readonly Resolved[], op: string): Plan {
  const ells = items.filter((it) => it === Ellipsis).length;
  if (ells > 1) throw new Error(`${op}: a subscript can have only one ellipsis (...)`);
  for (const it of items) {
    if (typeof it === 'number' && !Number.isInteger(it)) throw new Error(`${op}: index ${it} is not an integer`);
    if (it instanceof Tensor && isFloat(it.dtype)) throw new Error(`${op}: tensors used as indices must be integer or bool, got ${it.dtype}`);
    if (it !== null && typeof it === 'object' && !(it instanceof Slice) && !(it instanceof Tensor) && !(it instanceof MaskIndex)) {
      throw new Error(`${op}: unexpected subscript item ${String(it)} (expected an integer, sl(...), null, '...', a list or a tensor)`);
    }
  }
  const used = items.reduce<number>((n, it) => n + consumes(it), 0);
  if (used > x.ndim) throw new Error(`${op}: too many indices for a tensor of dimension ${x.ndim} (${used} given, shape ${fmtShape(x.shape)})`);
  const full: readonly Resolved[] = ells ? items : [...items, Ellipsis];
  const st = stridesOf(x.shape);
  const p: Plan = { op, shape: [], strides: [], offset: 0, scalars: [], advanced: [], repeats: false };
  // Dimensions picked by index tensors and masks stay whole in the strided view.
  const keep = (n: number) => {
    for (let k = 0; k < n; k++) { p.shape.push(x.shape[d + k]!); p.strides.push(st[d + k]!); }
    d += n;
  };
  let d = 0;
  for (const it of full) {
    if (it === Ellipsis) {
      keep(x.ndim - used);
    } else if (it === null) {
      p.shape.push(1);
      p.strides.push(0);
    } else if (typeof it === 'number') {
      const size = x.shape[d]!;
      const i = it < 0 ? it + size : it;
      if (i < 0 || i >= size) throw new Error(`${op}: index ${it} is out of range for dimension ${d} of size ${size}`);
      p.offset += i * st[d]!;
      d++;
    } else if (it instanceof Slice) {
      const [first, n, step] = resolveSlice(it, x.shape[d]!, op, d);
      if (n > 0) p.offset += first * st[d]!;
      p.shape.push(n);
      p.strides.push(st[d]! * step);
      d++;
    } else if (it instanceof MaskIndex) {
      p.advanced.push({ pos: p.shape.length, span: it.shape.length, size: sizeOf(it.shape), mask: it, index: () => toDevice(it.positions, x.device) });
      keep(it.shape.length);
    } else {
      const index = checkIndex(it, x, d, op);
      const pick: Advanced = { pos: p.shape.length, span: 1, size: x.shape[d]!, index: () => index };
      (it.ndim === 0 ? p.scalars : p.advanced).push(pick);
      p.repeats ||= it.ndim > 0;
      keep(1);
    }
  }
  return p;
}

/**
 * An index tensor as int32 on x's device with negatives wrapped. Its range is checked here where it can be read
 * synchronously; elsewhere the kernel checks the combined index (a bad one in one dimension may not be caught).
 */
function checkIndex(index: Tensor, x: Tensor, dim: number, op: string): Tensor {
  const size = x.shape[dim]!;
  const t = cast(toDevice(index, x.device), 'int32');
  if (!t.backend.readSync) return where(lt(t, 0), add(t, size), t);
  let negative = false;
  for (const v of t.backend.readSync(t.buffer)) {
    if (v < -size || v >= size) throw new Error(`${op}: index ${v} is out of range for dimension ${dim} of size ${size}`);
    negative ||= v < 0;
  }
  return negative ? where(lt(t, 0), add(t, size), t) : t;
}

/** Whether a plan's strided view is all of x (no basic item but ':' and '...'). */
function isWhole(x: Tensor, p: Plan): boolean {
  return p.offset === 0 && shapeEq(p.shape, x.shape) && shapeEq(p.strides, stridesOf(x.shape));
}

/** The strided view of x (one copy): x[basic items], index tensors' dimensions kept whole. */
function stridedView(x: Tensor, p: Plan): Tensor {
  if (isWhole(x, p)) return x;
  const { shape, strides, offset } = p;
  const out = wrap(x, x.backend.stridedCopy(x.buffer, shape, strides, offset), shape);
  const from = x.shape;
  return record('at', out, [x], [], (g) => {
    const z = g.backend.fill(g.dtype, sizeOf(from), 0);
    g.backend.stridedWrite(z, g.buffer, shape, strides, offset);
    return [wrap(g, z, from)];
  });
}

/** Applies a plan: the strided view, then 0-d picks, then advanced indexing with broadcast index tensors. */
function applyPlan(x: Tensor, p: Plan): Tensor {
  let v = stridedView(x, p);
  let adv = p.advanced;
  // Right to left, so that the positions still to come stay valid.
  for (const s of [...p.scalars].reverse()) {
    v = squeeze(indexSelect(v, s.pos, reshape(s.index(), [1])), s.pos);
    adv = adv.map((a) => (a.pos > s.pos ? { ...a, pos: a.pos - 1 } : a));
  }
  if (adv.length === 0) return v;
  const indices = adv.map((a) => a.index());
  const b = indices.reduce<number[]>((acc, t) => broadcastShapes(acc, t.shape, `${p.op} (index tensors)`), []);
  // Row-major linear index into the picked dimensions taken together.
  let linear: Tensor | null = null;
  let scale = 1;
  for (let k = adv.length - 1; k >= 0; k--) {
    const term = scale === 1 ? indices[k]! : mul(indices[k]!, scale);
    linear = linear === null ? term : add(term, linear);
    scale *= adv[k]!.size;
  }
  const flat = reshape(expand(linear!, b), [sizeOf(b)]);
  const picked = adv.flatMap((a) => Array.from({ length: a.span }, (_, k) => a.pos + k));
  // Adjacent picks keep their place (x[:, i, j]); separated ones put their dimensions first (x[i, :, j]).
  let first = picked[0]!;
  if (!picked.every((pos, k) => pos === first + k)) {
    v = permute(v, [...picked, ...[...v.shape.keys()].filter((i) => !picked.includes(i))]);
    first = 0;
  }
  // The picked dimensions are now adjacent: merge them into one and pick along it.
  const before = v.shape.slice(0, first), after = v.shape.slice(first + picked.length);
  const merged = reshape(v, [...before, scale, ...after]);
  return reshape(indexSelect(merged, first, flat), [...before, ...b, ...after]);
}

/** x[spec] as in Python (see the table at the top of this file). Differentiable; masks are read synchronously. */
export function at(x: Tensor, spec: IndexSpec): Tensor {
  const items = wrapMasks(toItems(spec, 'at'), x.shape, 'at', readMaskSync('at'));
  return applyPlan(x, plan(x, items, 'at'));
}

/** at() for devices that cannot read synchronously: boolean masks are read with await. */
export async function atAsync(x: Tensor, spec: IndexSpec): Promise<Tensor> {
  const items = toItems(spec, 'atAsync');
  const values = new Map<Tensor, ArrayLike<number>>();
  for (const it of items) if (it instanceof Tensor && it.dtype === 'bool') values.set(it, await it.data());
  return applyPlan(x, plan(x, wrapMasks(items, x.shape, 'atAsync', (m) => values.get(m)!), 'atAsync'));
}

// ---- writing ----

/** The value as a tensor of x's dtype and device, broadcast to the selected region's shape. */
function valueFor(x: Tensor, value: TensorLike, shape: Shape, op: string): Tensor {
  let v = typeof value === 'number' ? full([], value, { dtype: x.dtype, device: x.device }) : value;
  checkSameDevice(op, x, v);
  // Leading size-1 dimensions beyond the region's may be dropped (PyTorch: x[0] = ones(1, n)).
  while (v.ndim > shape.length && v.shape[0] === 1) v = reshape(v, v.shape.slice(1));
  const fits = v.ndim <= shape.length && v.shape.every((s, i) => s === 1 || s === shape[shape.length - v.ndim + i]);
  if (!fits) throw new Error(`${op}: value of shape ${fmtShape(v.shape)} cannot be broadcast to the indexed shape ${fmtShape(shape)}`);
  return expand(cast(v, x.dtype), shape);
}

/** A copy of x with the strided region replaced by v (v has the region's shape). grad x: g with the region zeroed; grad v: g's region. */
function stridedPut(x: Tensor, v: Tensor, p: Plan): Tensor {
  const be = x.backend;
  const { shape, strides, offset } = p;
  const buf = be.stridedCopy(x.buffer, x.shape, stridesOf(x.shape), 0);
  be.stridedWrite(buf, v.buffer, shape, strides, offset);
  const out = wrap(x, buf, x.shape);
  return record('indexPut', out, [x, v], [], (g, _s, needs) => {
    let gx: Tensor | null = null;
    if (needs[0]) {
      const z = g.backend.stridedCopy(g.buffer, g.shape, stridesOf(g.shape), 0);
      const hole = g.backend.fill(g.dtype, sizeOf(shape), 0);
      g.backend.stridedWrite(z, hole, shape, strides, offset);
      g.backend.free(hole);
      gx = wrap(g, z, g.shape);
    }
    const gv = needs[1] ? wrap(g, g.backend.stridedCopy(g.buffer, shape, strides, offset), shape) : null;
    return [gx, gv];
  });
}

/** Entries compared pairwise on a device that cannot be read synchronously (a k x k mask). */
const MAX_DEVICE_REPEATS = 4096;

/**
 * Where duplicate positions are written, the last write wins (as PyTorch on the CPU); returns the entries to keep, or
 * null for all. On a device without synchronous reads: a 0/1 int32 weight per entry instead (1: no later entry writes
 * its position), found by comparing every pair on the device.
 */
function lastWrites(pos: Tensor, n: number, op: string): Tensor | { weights: Tensor } | null {
  if (!pos.backend.readSync) {
    const k = pos.numel();
    if (k > MAX_DEVICE_REPEATS) {
      throw new Error(`${op}: ${k} index positions that may repeat on device '${pos.device}', which cannot be read synchronously (at most ${MAX_DEVICE_REPEATS}); index a cpu tensor, or write the positions in smaller parts`);
    }
    const j = tensor(Int32Array.from({ length: k }, (_, i) => i), { dtype: 'int32', device: pos.device });
    // overwritten[j] = sum over j' > j of (pos[j'] == pos[j])
    const overwritten = sum(mul(cast(eq(reshape(pos, [k, 1]), reshape(pos, [1, k])), 'int32'), cast(gt(reshape(j, [1, k]), reshape(j, [k, 1])), 'int32')), 1);
    return { weights: cast(eq(overwritten, 0), 'int32') };
  }
  const p = pos.backend.readSync(pos.buffer);
  const last = new Int32Array(n).fill(-1);
  p.forEach((v, j) => { last[v] = j; });
  const keep = new Int32Array(p.length);
  let count = 0;
  p.forEach((v, j) => { if (last[v] === j) keep[count++] = j; });
  if (count === p.length) return null;
  return tensor(keep.subarray(0, count), { shape: [count], dtype: 'int32', device: pos.device });
}

/**
 * y = x.clone(); y[spec] = value, as one differentiable op: the gradient reaches x outside the region and
 * value (summed over its broadcast) inside it. With repeated integer indices the last write wins.
 */
export function indexPut(x: Tensor, spec: IndexSpec, value: TensorLike, /** @internal the op named in errors */ op = 'indexPut'): Tensor {
  const items = wrapMasks(toItems(spec, op), x.shape, op, readMaskSync(op));
  const p = plan(x, items, op);
  if (p.scalars.length === 0 && p.advanced.length === 0) return stridedPut(x, valueFor(x, value, p.shape, op), p);
  // x[mask] = scalar over whole dimensions is a masked fill: no positions to scatter.
  const only = p.advanced[0];
  if (p.advanced.length === 1 && p.scalars.length === 0 && only!.mask && isWhole(x, p) && (typeof value === 'number' || value.numel() === 1)) {
    const m = only!.mask.mask;
    const cond = reshape(toDevice(m, x.device), [...x.shape.slice(0, only!.pos).map(() => 1), ...m.shape, ...x.shape.slice(only!.pos + m.ndim).map(() => 1)]);
    return where(cond, valueFor(x, value, [], op), x);
  }
  if (x.dtype === 'bool') return cast(indexPut(cast(x, 'int32'), spec, typeof value === 'number' ? value : cast(value, 'int32'), op), 'bool');
  // Index tensors and masks: the flat positions of the selected elements, picked the same way as the values.
  const n = x.numel();
  const positions = new Int32Array(n);
  for (let i = 0; i < n; i++) positions[i] = i;
  let pos = applyPlan(tensor(positions, { shape: x.shape, dtype: 'int32', device: x.device }), p);
  let v = valueFor(x, value, pos.shape, op);
  pos = reshape(pos, [pos.numel()]);
  v = reshape(v, [v.numel()]);
  const keep = p.repeats ? lastWrites(pos, n, op) : null;
  let weights = ones([pos.numel()], { dtype: 'int32', device: x.device });
  if (keep instanceof Tensor) {
    pos = indexSelect(pos, 0, keep);
    v = indexSelect(v, 0, keep);
    weights = ones([pos.numel()], { dtype: 'int32', device: x.device });
  } else if (keep) {
    weights = keep.weights;
    v = where(gt(weights, 0), v, 0); // overwritten entries place nothing
  }
  const hit = gt(scatterAdd(zeros([n], { dtype: 'int32', device: x.device }), 0, pos, weights), 0);
  const placed = scatterAdd(zeros([n], { dtype: x.dtype, device: x.device }), 0, pos, v);
  return reshape(where(hit, placed, reshape(x, [n])), x.shape);
}
