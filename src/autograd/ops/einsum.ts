// einsum, dot and outer, composed from bmm, permute, reshape, slice, expand and sum (so their gradients come for free).

import { fmtShape } from '../../tensor/shape.js';
import type { Tensor } from '../../tensor/tensor.js';
import { checkSameDevice } from './base.js';
import { mul } from './elementwise.js';
import { bmm } from './matmul.js';
import { expand, permute, reshape, slice, unsqueeze } from './movement.js';
import { sum } from './reduce.js';

/** A tensor whose dimensions carry subscript labels (letters, or '.0', '.1', ... for the ellipsis' dimensions). */
interface Labeled {
  t: Tensor;
  labels: string[];
}

const ELLIPSIS = '...';

/** 'b...ij' -> ['b', '...', 'i', 'j'], rejecting anything but letters and one ellipsis. */
function tokenize(sub: string, where: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < sub.length; i++) {
    const c = sub[i]!;
    if (/[a-zA-Z]/.test(c)) out.push(c);
    else if (sub.startsWith(ELLIPSIS, i)) {
      if (out.includes(ELLIPSIS)) throw new Error(`einsum: more than one '...' in ${where} '${sub}'`);
      out.push(ELLIPSIS);
      i += 2;
    } else throw new Error(`einsum: invalid subscript '${c}' in ${where} '${sub}' (use letters a-z, A-Z and '...')`);
  }
  return out;
}

const prod = (xs: readonly number[]): number => xs.reduce((a, b) => a * b, 1);
const sizesOf = (x: Labeled, labels: readonly string[]): number[] => labels.map((l) => x.t.shape[x.labels.indexOf(l)]!);

/** Reorders x's dimensions to `order` (a permutation of its labels). */
function arrange(x: Labeled, order: readonly string[]): Labeled {
  return { t: permute(x.t, order.map((l) => x.labels.indexOf(l))), labels: [...order] };
}

/** Sums away the labels not in `keep`. */
function sumOut(x: Labeled, keep: ReadonlySet<string>): Labeled {
  const dims = x.labels.flatMap((l, i) => (keep.has(l) ? [] : [i]));
  if (dims.length === 0) return x;
  return { t: sum(x.t, dims), labels: x.labels.filter((l) => keep.has(l)) };
}

/** Takes the diagonal of every repeated label ('ii->i'): both dims moved last, flattened, every (n + 1)-th element. */
function diagonals(x: Labeled, index: number): Labeled {
  let cur = x;
  for (;;) {
    const l = cur.labels.find((v, i) => cur.labels.indexOf(v) !== i);
    if (l === undefined) return cur;
    const a = cur.labels.indexOf(l), b = cur.labels.indexOf(l, a + 1);
    const n = cur.t.shape[a]!;
    if (cur.t.shape[b] !== n) throw new Error(`einsum: subscript '${l}' is repeated in operand ${index} with sizes ${n} and ${cur.t.shape[b]}`);
    const rest = cur.labels.flatMap((_, i) => (i === a || i === b ? [] : [i]));
    const moved = permute(cur.t, [...rest, a, b]);
    const flat = reshape(moved, [...moved.shape.slice(0, -2), n * n]);
    cur = { t: slice(flat, -1, 0, n * n, n + 1), labels: [...rest.map((i) => cur.labels[i]!), l] };
  }
}

/** Expands size-1 dimensions to the label's size (einsum broadcasts them, as PyTorch does). */
function broadcastTo(x: Labeled, size: ReadonlyMap<string, number>): Labeled {
  const target = x.labels.map((l) => size.get(l)!);
  return target.every((s, i) => s === x.t.shape[i]) ? x : { t: expand(x.t, target), labels: x.labels };
}

/** Puts x in [batch, free, contracted] order, or [batch, contracted, free] (trans) when that needs no copy. */
function matrixOrder(x: Labeled, batch: string[], free: string[], contracted: string[]): { t: Labeled; trans: boolean } {
  const plain = [...batch, ...free, ...contracted];
  const swapped = [...batch, ...contracted, ...free];
  if (swapped.every((l, i) => x.labels[i] === l) && !plain.every((l, i) => x.labels[i] === l)) return { t: x, trans: true };
  return { t: arrange(x, plain), trans: false };
}

/** Contracts two operands with one bmm, keeping the labels in `keep` (needed by the output or later operands). */
function contract(a: Labeled, b: Labeled, keep: ReadonlySet<string>): Labeled {
  const inB = new Set(b.labels), inA = new Set(a.labels);
  const both = a.labels.filter((l) => inB.has(l));
  const batch = both.filter((l) => keep.has(l));
  const contracted = both.filter((l) => !keep.has(l));
  const aFree = a.labels.filter((l) => !inB.has(l));
  const bFree = b.labels.filter((l) => !inA.has(l));
  const A = matrixOrder(a, batch, aFree, contracted);
  // B as [batch, contracted, free], or [batch, free, contracted] transposed.
  const B = matrixOrder(b, batch, bFree, contracted);
  const nb = prod(sizesOf(a, batch)), m = prod(sizesOf(a, aFree)), k = prod(sizesOf(a, contracted)), n = prod(sizesOf(b, bFree));
  const a3 = reshape(A.t.t, A.trans ? [nb, k, m] : [nb, m, k]);
  const b3 = reshape(B.t.t, B.trans ? [nb, k, n] : [nb, n, k]);
  // B's "plain" order is [batch, free, contracted], which is bmm's transposed operand.
  const out = bmm(a3, b3, A.trans, !B.trans);
  return { t: reshape(out, [...sizesOf(a, batch), ...sizesOf(a, aFree), ...sizesOf(b, bFree)]), labels: [...batch, ...aFree, ...bFree] };
}

/**
 * torch.einsum: einsum('bhqd,bhkd->bhqk', q, k). Letters name dimensions; a letter repeated in one operand takes
 * the diagonal; letters missing from the output are summed; without '->' the output is the letters used once, in
 * alphabetical order. '...' stands for the remaining dimensions (broadcast across operands); size-1 dimensions
 * broadcast. Pairs of operands are contracted left to right with one batched matmul each.
 */
export function einsum(equation: string, ...operands: Tensor[]): Tensor {
  if (operands.length === 0) throw new Error(`einsum: no operands given for '${equation}'`);
  checkSameDevice('einsum', ...operands);
  const dtype = operands[0]!.dtype;
  if (operands.some((t) => t.dtype !== dtype) || dtype === 'bool') {
    throw new Error(`einsum: operands must share one numeric dtype, got ${operands.map((t) => t.dtype).join(', ')}`);
  }
  const eq = equation.replace(/\s+/g, '');
  const parts = eq.split('->');
  if (parts.length > 2) throw new Error(`einsum: more than one '->' in '${equation}'`);
  const subs = parts[0]!.split(',');
  if (subs.length !== operands.length) {
    throw new Error(`einsum: '${equation}' has subscripts for ${subs.length} operand(s), but ${operands.length} tensor(s) were given`);
  }
  const tokens = subs.map((s, i) => tokenize(s, `operand ${i}`));

  // Label every dimension; the ellipsis' dimensions are right-aligned across operands, as in broadcasting.
  const ellDims = tokens.map((tok, i) => {
    const letters = tok.filter((l) => l !== ELLIPSIS).length;
    const nd = operands[i]!.ndim;
    const has = tok.includes(ELLIPSIS);
    if (has ? nd < letters : nd !== letters) {
      throw new Error(`einsum: operand ${i} has subscripts '${subs[i]}' (${letters} dimension(s)${has ? ' and ...' : ''}) but shape ${fmtShape(operands[i]!.shape)}`);
    }
    return nd - letters;
  });
  const maxEll = Math.max(0, ...ellDims);
  const ellLabels = (count: number): string[] => Array.from({ length: count }, (_, j) => `.${maxEll - count + j}`);
  let ops: Labeled[] = tokens.map((tok, i) => ({ t: operands[i]!, labels: tok.flatMap((l) => (l === ELLIPSIS ? ellLabels(ellDims[i]!) : [l])) }));

  // The size of every label: equal wherever it appears, or 1 (broadcast).
  const size = new Map<string, number>();
  const seenIn = new Map<string, number>();
  ops.forEach((x, i) => x.labels.forEach((l, d) => {
    const s = x.t.shape[d]!;
    const prev = size.get(l);
    if (prev !== undefined && prev !== s && prev !== 1 && s !== 1) {
      const name = l.startsWith('.') ? `'...' dimension` : `subscript '${l}'`;
      if (seenIn.get(l) === i) throw new Error(`einsum: ${name} is repeated in operand ${i} with sizes ${prev} and ${s}`);
      throw new Error(`einsum: ${name} has size ${prev} in operand ${seenIn.get(l)} but ${s} in operand ${i} ('${equation}')`);
    }
    if (prev === undefined || prev === 1) { size.set(l, s); seenIn.set(l, i); }
  }));

  // Output labels.
  let output: string[];
  if (parts.length === 2) {
    const outTok = tokenize(parts[1]!, 'the output');
    output = outTok.flatMap((l) => (l === ELLIPSIS ? ellLabels(maxEll) : [l]));
    for (const l of outTok) {
      if (l !== ELLIPSIS && !size.has(l)) throw new Error(`einsum: output subscript '${l}' does not appear in any operand of '${equation}'`);
    }
    const dup = output.find((l, i) => output.indexOf(l) !== i);
    if (dup !== undefined) throw new Error(`einsum: output subscript '${dup}' appears more than once in '${equation}'`);
  } else {
    const counts = new Map<string, number>();
    for (const tok of tokens) for (const l of tok) if (l !== ELLIPSIS) counts.set(l, (counts.get(l) ?? 0) + 1);
    output = [...ellLabels(maxEll), ...[...counts].filter(([, c]) => c === 1).map(([l]) => l).sort()];
  }

  // Diagonals, then sum each label that no other operand and not the output needs, then contract pairwise.
  ops = ops.map((x, i) => diagonals(x, i));
  const needed = (from: number): Set<string> => new Set([...output, ...ops.slice(from).flatMap((x) => x.labels)]);
  ops = ops.map((x, i) => sumOut(x, new Set([...output, ...ops.filter((_, j) => j !== i).flatMap((y) => y.labels)])));
  let acc = broadcastTo(ops[0]!, size);
  for (let i = 1; i < ops.length; i++) acc = contract(acc, broadcastTo(ops[i]!, size), needed(i + 1));
  acc = sumOut(acc, new Set(output));
  return arrange(acc, output).t;
}

/** torch.dot: the inner product of two 1-d tensors of one length. */
export function dot(a: Tensor, b: Tensor): Tensor {
  if (a.ndim !== 1 || b.ndim !== 1) throw new Error(`dot: expected two 1-d tensors, got ${fmtShape(a.shape)} and ${fmtShape(b.shape)}`);
  if (a.shape[0] !== b.shape[0]) throw new Error(`dot: the tensors have different lengths (${a.shape[0]} and ${b.shape[0]})`);
  if (a.dtype !== b.dtype) throw new Error(`dot: expected both tensors to have one dtype, got ${a.dtype} and ${b.dtype}`);
  checkSameDevice('dot', a, b);
  return sum(mul(a, b));
}

/** torch.outer: out[i, j] = a[i] * b[j] for 1-d a and b. */
export function outer(a: Tensor, b: Tensor): Tensor {
  if (a.ndim !== 1 || b.ndim !== 1) throw new Error(`outer: expected two 1-d tensors, got ${fmtShape(a.shape)} and ${fmtShape(b.shape)}`);
  checkSameDevice('outer', a, b);
  return mul(unsqueeze(a, 1), unsqueeze(b, 0));
}
