// Shape and movement primitives with their gradients: reshape, permute, expand, slice, pad, cat, flip, device moves.
// Tensors are always contiguous: reshape shares the buffer, every other op copies through a strided kernel.

import { getBackend } from '../../tensor/backend.js';
import { checkShape, fmtShape, normAxis, shapeEq, sizeOf, sliceBounds, stridesOf, type Shape } from '../../tensor/shape.js';
import { promoteTypes } from '../../tensor/dtype.js';
import { Tensor } from '../../tensor/tensor.js';
import { record } from '../engine.js';
import { checkSameDevice, normDim, sumTo, wrap } from './base.js';
import { cast } from './elementwise.js';

// ---- views ----

/** Same elements, new shape (one dimension may be -1). Shares the buffer. */
export function reshape(x: Tensor, shape: Shape): Tensor {
  const n = x.numel();
  const unknown = shape.indexOf(-1);
  let target = [...shape];
  if (unknown >= 0) {
    const known = sizeOf(shape.filter((_, i) => i !== unknown));
    if (shape.lastIndexOf(-1) !== unknown || known === 0 || n % known !== 0) {
      throw new Error(`reshape: cannot reshape ${fmtShape(x.shape)} into ${fmtShape(shape)}`);
    }
    target[unknown] = n / known;
  }
  checkShape(target, 'reshape');
  if (sizeOf(target) !== n) throw new Error(`reshape: cannot reshape ${fmtShape(x.shape)} (${n} elements) into ${fmtShape(shape)}`);
  if (shapeEq(target, x.shape)) return x;
  const out = new Tensor(x.storage.retain(), target);
  const from = x.shape;
  return record('reshape', out, [x], [], (g) => [reshape(g, from)]);
}

export function flatten(x: Tensor, startDim = 0, endDim = -1): Tensor {
  if (x.ndim === 0) {
    normDim(startDim, 0, 'flatten');
    normDim(endDim, 0, 'flatten');
    return reshape(x, [1]);
  }
  const s = normAxis(startDim, x.ndim, 'flatten'), e = normAxis(endDim, x.ndim, 'flatten');
  if (s > e) throw new Error(`flatten: startDim ${startDim} comes after endDim ${endDim}`);
  return reshape(x, [...x.shape.slice(0, s), sizeOf(x.shape.slice(s, e + 1)), ...x.shape.slice(e + 1)]);
}

export function unflatten(x: Tensor, dim: number, sizes: Shape): Tensor {
  noZeroD(x, 'unflatten');
  const d = normAxis(dim, x.ndim, 'unflatten');
  // A -1 is inferred from the unflattened dimension alone (as PyTorch does), which also works next to empty dimensions.
  const n = x.shape[d]!, known = sizeOf(sizes.filter((v) => v !== -1));
  const resolved = sizes.map((v) => (v === -1 && known > 0 && n % known === 0 ? n / known : v));
  if (sizeOf(resolved) !== n || resolved.some((v) => v < 0)) throw new Error(`unflatten: sizes [${sizes.join(', ')}] do not fit dimension ${dim} of size ${n} (shape ${fmtShape(x.shape)})`);
  return reshape(x, [...x.shape.slice(0, d), ...resolved, ...x.shape.slice(d + 1)]);
}

/** Removes size-1 dimensions (all, or the given one if it has size 1). */
export function squeeze(x: Tensor, dim?: number): Tensor {
  if (dim === undefined) return reshape(x, x.shape.filter((d) => d !== 1));
  const d = normDim(dim, x.ndim, 'squeeze');
  return x.shape[d] === 1 ? reshape(x, x.shape.filter((_, i) => i !== d)) : x;
}

export function unsqueeze(x: Tensor, dim: number): Tensor {
  const d = normAxis(dim, x.ndim + 1, 'unsqueeze');
  return reshape(x, [...x.shape.slice(0, d), 1, ...x.shape.slice(d)]);
}

// ---- strided copies ----

function stridedCopy(x: Tensor, shape: Shape, strides: readonly number[], offset: number): Tensor {
  return wrap(x, x.backend.stridedCopy(x.buffer, shape, strides, offset), shape);
}

/** Reorders dimensions: out.shape[i] = x.shape[dims[i]]. */
export function permute(x: Tensor, dims: readonly number[]): Tensor {
  if (dims.length !== x.ndim) throw new Error(`permute: got ${dims.length} dimensions [${dims.join(', ')}] for a tensor of shape ${fmtShape(x.shape)}`);
  const p = dims.map((d) => normAxis(d, x.ndim, 'permute'));
  if (new Set(p).size !== p.length) throw new Error(`permute: repeated dimension in [${dims.join(', ')}]`);
  if (p.every((d, i) => d === i)) return x;
  // Moving only size-1 dimensions keeps every value in place (a decode step's [B, nh, 1, hs] -> [B, 1, nh, hs]): a
  // reshape, no copy.
  const kept = p.filter((d) => x.shape[d] !== 1);
  if (kept.every((d, i) => i === 0 || d > kept[i - 1]!)) return reshape(x, p.map((d) => x.shape[d]!));
  const st = stridesOf(x.shape);
  const out = stridedCopy(x, p.map((d) => x.shape[d]!), p.map((d) => st[d]!), 0);
  const inverse = new Array<number>(p.length);
  p.forEach((d, i) => { inverse[d] = i; });
  return record('permute', out, [x], [], (g) => [permute(g, inverse)]);
}

export function transpose(x: Tensor, dim0: number, dim1: number): Tensor {
  const a = normDim(dim0, x.ndim, 'transpose'), b = normDim(dim1, x.ndim, 'transpose');
  if (x.ndim === 0) return x;
  const p = [...x.shape.keys()];
  [p[a], p[b]] = [b, a];
  return permute(x, p);
}

/** Moves dimension `source` to position `destination`, keeping the others in order. */
export function movedim(x: Tensor, source: number, destination: number): Tensor {
  const s = normDim(source, x.ndim, 'movedim'), d = normDim(destination, x.ndim, 'movedim');
  if (x.ndim === 0) return x;
  const rest = [...x.shape.keys()].filter((i) => i !== s);
  rest.splice(d, 0, s);
  return permute(x, rest);
}

/** Broadcasts size-1 (or missing leading) dimensions to `shape`; -1 keeps a size. */
export function expand(x: Tensor, shape: Shape): Tensor {
  const off = shape.length - x.ndim;
  if (off < 0) throw new Error(`expand: target ${fmtShape(shape)} has fewer dimensions than ${fmtShape(x.shape)}`);
  const target = shape.map((d, i) => (d === -1 && i >= off ? x.shape[i - off]! : d));
  checkShape(target, 'expand');
  const st = stridesOf(x.shape);
  const strides = target.map((d, i) => {
    if (i < off) return 0;
    const s = x.shape[i - off]!;
    if (s === d) return st[i - off]!;
    if (s === 1) return 0;
    throw new Error(`expand: cannot expand ${fmtShape(x.shape)} to ${fmtShape(shape)} (dimension ${i}: ${s} to ${d})`);
  });
  if (shapeEq(target, x.shape)) return x;
  const out = stridedCopy(x, target, strides, 0);
  const from = x.shape;
  return record('expand', out, [x], [], (g) => [sumTo(g, from)]);
}

/** PyTorch cannot slice, narrow or select a 0-d tensor (there is no dimension to cut). */
function noZeroD(x: Tensor, op: string): void {
  if (x.ndim === 0) throw new Error(`${op}: cannot be applied to a 0-d tensor`);
}

/** x[..., start:end:step, ...] along `dim` (step > 0). */
export function slice(x: Tensor, dim: number, start = 0, end = Infinity, step = 1): Tensor {
  noZeroD(x, 'slice');
  const d = normAxis(dim, x.ndim, 'slice');
  if (!Number.isInteger(step) || step <= 0) throw new Error(`slice: step must be a positive integer, got ${step}`);
  const [s, n] = sliceBounds(x.shape[d]!, start, end, step);
  if (s === 0 && n === x.shape[d] && step === 1) return x;
  const st = stridesOf(x.shape);
  const shape = x.shape.map((v, i) => (i === d ? n : v));
  const strides = st.map((v, i) => (i === d ? v * step : v));
  const offset = s * st[d]!;
  const out = stridedCopy(x, shape, strides, offset);
  const from = x.shape;
  return record('slice', out, [x], [], (g) => {
    const z = g.backend.fill(g.dtype, sizeOf(from), 0);
    g.backend.stridedWrite(z, g.buffer, shape, strides, offset);
    return [wrap(g, z, from)];
  });
}

export function narrow(x: Tensor, dim: number, start: number, length: number): Tensor {
  noZeroD(x, 'narrow');
  const d = normAxis(dim, x.ndim, 'narrow');
  const size = x.shape[d]!;
  const s = start < 0 ? start + size : start;
  if (s < 0 || length < 0 || s + length > size) throw new Error(`narrow: [${start}, ${start}+${length}) is out of range for dimension ${dim} of size ${size}`);
  return slice(x, d, s, s + length);
}

/** x[..., index, ...]: removes dimension `dim`. */
export function select(x: Tensor, dim: number, index: number): Tensor {
  noZeroD(x, 'select');
  const d = normAxis(dim, x.ndim, 'select');
  const size = x.shape[d]!;
  const i = index < 0 ? index + size : index;
  if (!Number.isInteger(i) || i < 0 || i >= size) throw new Error(`select: index ${index} is out of range for dimension ${dim} of size ${size}`);
  return squeeze(slice(x, d, i, i + 1), d);
}

/** Reverses the order of elements along the given dimensions. */
export function flip(x: Tensor, dims: readonly number[]): Tensor {
  const ds = dims.map((d) => normDim(d, x.ndim, 'flip'));
  const st = stridesOf(x.shape);
  let offset = 0;
  const strides = st.map((v, i) => {
    if (!ds.includes(i)) return v;
    offset += (x.shape[i]! - 1) * v;
    return -v;
  });
  const out = stridedCopy(x, x.shape, strides, offset);
  return record('flip', out, [x], [], (g) => [flip(g, ds)]);
}

/** A copy with its own buffer. */
export function clone(x: Tensor): Tensor {
  const out = stridedCopy(x, x.shape, stridesOf(x.shape), 0);
  return record('clone', out, [x], [], (g) => [g]);
}

// ---- pad and concatenation: fill an output, then write the inputs into it ----

/**
 * Constant padding with PyTorch's F.pad layout: pads = [lastBefore, lastAfter, secondLastBefore, ...].
 */
export function pad(x: Tensor, pads: readonly number[], value = 0): Tensor {
  if (pads.length % 2 !== 0 || pads.length / 2 > x.ndim) throw new Error(`pad: ${pads.length} pad values for a tensor of shape ${fmtShape(x.shape)} (need pairs, at most ${2 * x.ndim})`);
  if (pads.some((p) => !Number.isInteger(p) || p < 0)) throw new Error(`pad: pads must be non-negative integers, got [${pads.join(', ')}]`);
  const before = x.shape.map(() => 0), shape = [...x.shape];
  for (let i = 0; i < pads.length / 2; i++) {
    const d = x.ndim - 1 - i;
    before[d] = pads[2 * i]!;
    shape[d] = x.shape[d]! + pads[2 * i]! + pads[2 * i + 1]!;
  }
  const st = stridesOf(shape);
  const offset = before.reduce((acc, b, i) => acc + b * st[i]!, 0);
  const buf = x.backend.fill(x.dtype, sizeOf(shape), value);
  x.backend.stridedWrite(buf, x.buffer, x.shape, st, offset);
  const out = wrap(x, buf, shape);
  const from = x.shape;
  return record('pad', out, [x], [], (g) => [stridedCopy(g, from, st, offset)]);
}

/** Concatenates along an existing dimension. */
export function cat(tensors: readonly Tensor[], dim = 0): Tensor {
  if (tensors.length === 0) throw new Error('cat: expected at least one tensor');
  checkSameDevice('cat', ...tensors);
  const zeroD = tensors.findIndex((t) => t.ndim === 0);
  if (zeroD >= 0) throw new Error(`cat: a 0-d tensor (at position ${zeroD}) cannot be concatenated; use stack`);
  // Mixed dtypes promote, as in PyTorch.
  const dtype = tensors.reduce((acc, t) => promoteTypes(acc, t.dtype), tensors[0]!.dtype);
  tensors = tensors.map((t) => cast(t, dtype));
  const first = tensors[0]!;
  const d = normAxis(dim, first.ndim, 'cat');
  for (const t of tensors) {
    if (t.ndim !== first.ndim || t.shape.some((v, i) => i !== d && v !== first.shape[i])) {
      throw new Error(`cat: tensors must match except in dimension ${dim}: got ${tensors.map((x) => fmtShape(x.shape)).join(', ')}`);
    }
  }
  if (tensors.length === 1) return first;
  const shape = first.shape.map((v, i) => (i === d ? tensors.reduce((acc, t) => acc + t.shape[d]!, 0) : v));
  const st = stridesOf(shape);
  // The parts cover the result: no zeros needed first.
  const backend = first.backend;
  const buf = backend.empty ? backend.empty(first.dtype, sizeOf(shape)) : backend.fill(first.dtype, sizeOf(shape), 0);
  const offsets: number[] = [];
  let at = 0;
  for (const t of tensors) {
    offsets.push(at * st[d]!);
    first.backend.stridedWrite(buf, t.buffer, t.shape, st, at * st[d]!);
    at += t.shape[d]!;
  }
  const out = wrap(first, buf, shape);
  const shapes = tensors.map((t) => t.shape);
  return record('cat', out, tensors, [], (g, _s, needs) => shapes.map((s, i) => (needs[i] ? stridedCopy(g, s, st, offsets[i]!) : null)));
}

/** Joins tensors of equal shape along a new dimension. */
export function stack(tensors: readonly Tensor[], dim = 0): Tensor {
  if (tensors.length === 0) throw new Error('stack: expected at least one tensor');
  const d = normAxis(dim, tensors[0]!.ndim + 1, 'stack');
  for (const t of tensors) {
    if (!shapeEq(t.shape, tensors[0]!.shape)) throw new Error(`stack: all tensors must have the same shape, got ${tensors.map((x) => fmtShape(x.shape)).join(', ')}`);
  }
  return cat(tensors.map((t) => unsqueeze(t, d)), d);
}

/** Splits into pieces of `size` (the last may be smaller) or of the listed sizes. */
export function split(x: Tensor, sizes: number | readonly number[], dim = 0): Tensor[] {
  if (x.ndim === 0) throw new Error('split: expected a tensor with at least 1 dimension, got a 0-d tensor');
  const d = normAxis(dim, x.ndim, 'split');
  const n = x.shape[d]!;
  let list: number[];
  if (typeof sizes === 'number') {
    if (!Number.isInteger(sizes) || sizes <= 0) throw new Error(`split: size must be a positive integer, got ${sizes}`);
    list = Array.from({ length: Math.max(1, Math.ceil(n / sizes)) }, (_, i) => Math.min(sizes, n - i * sizes));
  } else {
    list = [...sizes];
    if (list.reduce((a, b) => a + b, 0) !== n) throw new Error(`split: sizes [${list.join(', ')}] do not add up to ${n} (dimension ${dim} of ${fmtShape(x.shape)})`);
  }
  let at = 0;
  return list.map((s) => {
    const piece = slice(x, d, at, at + s);
    at += s;
    return piece;
  });
}

/** Splits into `chunks` pieces of size ceil(n / chunks), like torch.chunk. */
export function chunk(x: Tensor, chunks: number, dim = 0): Tensor[] {
  if (x.ndim === 0) throw new Error('chunk: expected a tensor with at least 1 dimension, got a 0-d tensor');
  if (!Number.isInteger(chunks) || chunks <= 0) throw new Error(`chunk: chunks must be a positive integer, got ${chunks}`);
  const d = normAxis(dim, x.ndim, 'chunk');
  // An empty dimension gives `chunks` empty pieces (PyTorch's answer), not one.
  if (x.shape[d] === 0) return split(x, new Array<number>(chunks).fill(0), d);
  return split(x, Math.ceil(x.shape[d]! / chunks), d);
}

/** Tiles the tensor: repeat([2, 3]) on [a, b] gives [2a, 3b]. */
export function repeat(x: Tensor, reps: readonly number[]): Tensor {
  if (reps.length < x.ndim) throw new Error(`repeat: ${reps.length} repeats for a tensor of shape ${fmtShape(x.shape)}`);
  const shape = [...Array(reps.length - x.ndim).fill(1), ...x.shape];
  const inter = shape.flatMap((s) => [1, s]);
  const big = shape.flatMap((s, i) => [reps[i]!, s]);
  return reshape(expand(reshape(x, inter), big), shape.map((s, i) => s * reps[i]!));
}

// ---- devices ----

/** Copies to another device (a no-op if already there). The gradient flows back to the source device. */
export function toDevice(x: Tensor, device: string): Tensor {
  if (x.device === device) return x;
  const target = getBackend(device);
  const src = x.backend;
  if (!src.readSync) throw new Error(`to: cannot move synchronously from '${src.name}'; read it with await tensor.data() and create a new tensor`);
  const out = Tensor.fromBuffer(target, target.upload(src.readSync(x.buffer), x.dtype), x.shape);
  const from = x.device;
  return record('to', out, [x], [], (g) => [toDevice(g, from)]);
}

/** The same values, cut from the graph: no gradient flows through the result. Shares the buffer. */
export function detach(x: Tensor): Tensor {
  return new Tensor(x.storage.retain(), x.shape);
}
