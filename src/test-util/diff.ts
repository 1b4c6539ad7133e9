// The differential suite's replay: regenerates each recorded call's inputs, runs it through attend, compares with PyTorch.
//
// test/data/diff/calls.json comes from scripts/gen_diff_fixtures.py. Adding an op: an OPS entry there (name, family,
// tolerance kind, generator, torch call) and an entry with the same name in OPS below (the attend call), then rerun
// the script. The replay fails on a fixture op that has no entry here.

import { readFileSync } from 'node:fs';
import type { TensorLike } from '../autograd/ops/base.js';
import * as E from '../autograd/ops/elementwise.js';
import * as I from '../autograd/ops/indexing.js';
import * as MM from '../autograd/ops/matmul.js';
import * as M from '../autograd/ops/movement.js';
import * as N from '../autograd/ops/nn.js';
import * as R from '../autograd/ops/reduce.js';
import * as Fn from '../nn/functional.js';
import { arange, eye, full, linspace, tensor } from '../tensor/create.js';
import type { DType, TypedArray } from '../tensor/dtype.js';
import { tidy } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';

// ---- fixture format ----

type Json = number | string | boolean | null | Json[] | { [k: string]: Json };
export type Params = { [k: string]: Json };
/** A stored number: finite values as numbers, non-finite ones as 'nan' / 'inf' / '-inf'. */
type Num = number | string;

export interface InputSpec {
  s: number[];
  d: DType;
  k: 'n' | 'p' | 'q' | 'i' | 'b' | 'x' | 'I' | 'v';
  seed: number;
  lo?: number;
  hi?: number;
  view?: Json[][];
  /** The values of kind 'v' (the regression calls). */
  vals?: Num[];
  /** A float input that does not require grad (class weights). */
  ng?: boolean;
}
/** A recorded tensor: every element (v), or for big ones a summary and the elements at indices i. */
export interface StoredTensor {
  s: number[];
  d: DType;
  v: Num[];
  sc?: Num[];
  i?: number[];
  nan?: number;
  inf?: number;
  sum?: number;
  asum?: number;
  /** torch's own float32 error: max |float32 result - float64 result| over elements finite in both. */
  e?: number;
}
export interface Call {
  id: number;
  op: string;
  in: InputSpec[];
  p: Params;
  raise?: string;
  bwraise?: string;
  /** The largest finite gradient reaching an input or the viewed input the op saw. */
  gs?: number;
  out?: StoredTensor[];
  g?: (StoredTensor | null)[];
}
export type Tolerance = 'exact' | 'tr' | 'sum' | 'nl' | 'norm';
export interface DiffFixtures {
  /** Known answers of the shared input generator: specs with their values. */
  prng: (InputSpec & { v: Num[] })[];
  ops: Record<string, { family: string; tol: Tolerance }>;
  calls: Call[];
}

/** The committed calls, or DIFF_FIXTURES=file (a larger exploratory run of the recorder). */
export function loadDiffFixtures(): DiffFixtures {
  const file = process.env.DIFF_FIXTURES ?? new URL('../../test/data/diff/calls.json', import.meta.url);
  return JSON.parse(readFileSync(file, 'utf8')) as DiffFixtures;
}

// ---- the shared generator (mirrors gen_diff_fixtures.py) ----

function h32(x: number): number {
  x >>>= 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d) >>> 0;
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b) >>> 0;
  x ^= x >>> 16;
  return x >>> 0;
}

const SPECIAL = [NaN, Infinity, -Infinity, 1e30, -1e30, 0, -0, 88.5];
const EXTREME = [2147483647, -2147483648, 65536, 46341, -1, 0];

/** The values of an input spec, identical to the Python side's. */
export function specValues(spec: { s: number[]; k: InputSpec['k']; seed: number; lo?: number; hi?: number; vals?: Num[] }): Float64Array {
  if (spec.k === 'v') return decode(spec.vals!);
  const n = spec.s.reduce((a, b) => a * b, 1);
  const k1 = h32(spec.seed), k2 = h32((spec.seed ^ 0x5bd1e995) >>> 0);
  const out = new Float64Array(n);
  const lo = spec.lo ?? 0, span = (spec.hi ?? 1) - lo;
  for (let i = 0; i < n; i++) {
    const u = h32((h32(i ^ k1) + k2) >>> 0);
    const normal = ((u >>> 8) - 8388608) / 4194304;
    let v: number;
    switch (spec.k) {
      case 'n': v = normal; break;
      case 'p': v = ((u >>> 9) + 2097152) / 4194304; break;
      case 'q': case 'i': v = lo + (u % span); break;
      case 'b': v = u >>> 31; break;
      case 'x': v = (u & 3) === 0 ? SPECIAL[(u >>> 2) % SPECIAL.length]! : normal; break;
      case 'I': v = (u & 1) === 1 ? EXTREME[(u >>> 1) % EXTREME.length]! : (u % 7) - 3; break;
    }
    out[i] = v;
  }
  return out;
}

function typed(values: Float64Array, dtype: DType): TypedArray {
  switch (dtype) {
    case 'float32': case 'float16': case 'bfloat16': return Float32Array.from(values); // tensor() rounds to the half dtype
    case 'float64': return values;
    case 'int32': return Int32Array.from(values);
    default: return Uint8Array.from(values);
  }
}

const isFloatD = (d: DType): boolean => d === 'float32' || d === 'float64' || d === 'float16' || d === 'bfloat16';

/** The leaf (requires grad when float) and the input the op sees (after the spec's transpose / slice / expand). */
function makeInput(spec: InputSpec, device: string): [Tensor, Tensor] {
  const leaf = tensor(typed(specValues(spec), spec.d), { shape: spec.s, dtype: spec.d, device, requiresGrad: isFloatD(spec.d) && !spec.ng });
  let x = leaf;
  for (const v of spec.view ?? []) {
    if (v[0] === 't') x = M.transpose(x, v[1] as number, v[2] as number);
    else if (v[0] === 'sl') x = M.slice(x, v[1] as number, v[2] as number, v[3] as number, v[4] as number);
    else if (v[0] === 'ex') x = M.expand(x, v[1] as number[]);
  }
  return [leaf, x];
}

// ---- the attend side of the op table ----

const num = (v: Num): number => (typeof v === 'number' ? v : v === 'nan' ? NaN : v === 'inf' ? Infinity : -Infinity);
const n = (v: Json | undefined): number => num(v as Num);
const optN = (v: Json | undefined): number | undefined => (v === null || v === undefined ? undefined : n(v));
const ns = (v: Json | undefined): number[] => (v as Num[]).map(num);
const dims = (v: Json | undefined): R.Dims | undefined => (v === null || v === undefined ? undefined : Array.isArray(v) ? ns(v) : n(v));
const bool = (v: Json | undefined): boolean => v === true;
const pair = (v: Json | undefined): [number, number] => [n((v as Num[])[0]), n((v as Num[])[1])];

type OpCall = (xs: Tensor[], p: Params, device: string) => Tensor | Tensor[];

/** A binary op called as op(x, y), op(x, scalar) or op(scalar, x). */
const bin = (f: (a: TensorLike, b: TensorLike) => Tensor): OpCall => (xs, p) =>
  p.s === undefined ? f(xs[0]!, xs[1]!) : p.side === 'r' ? f(xs[0]!, n(p.s)) : f(n(p.s), xs[0]!);
const un = (f: (x: Tensor) => Tensor): OpCall => (xs) => f(xs[0]!);
const opt = (xs: Tensor[], i: number): Tensor | undefined => xs[i];

function nllOpts(xs: Tensor[], p: Params): Fn.NllOptions {
  return {
    reduction: p.reduction as Fn.Reduction,
    ...(p.ignore !== undefined ? { ignoreIndex: n(p.ignore) } : {}),
    ...(p.weight ? { weight: xs[2]! } : {}),
    ...(p.ls !== undefined ? { labelSmoothing: n(p.ls) } : {}),
  };
}

const convOpts = (p: Params): { stride: number; padding: number; dilation: number; groups: number } =>
  ({ stride: n(p.stride), padding: n(p.padding), dilation: n(p.dilation), groups: n(p.groups) });

const BASE_OPS: Record<string, OpCall> = {
  neg: un(E.neg), abs: un(E.abs), sign: un(E.sign), exp: un(E.exp), log: un(E.log), sqrt: un(E.sqrt), rsqrt: un(E.rsqrt),
  sin: un(E.sin), cos: un(E.cos), tanh: un(E.tanh), sigmoid: un(E.sigmoid), relu: un(E.relu), erf: un(E.erf),
  gelu: un((x) => E.gelu(x)), geluTanh: un((x) => E.gelu(x, 'tanh')), silu: un(E.silu), floor: un(E.floor),
  ceil: un(E.ceil), round: un(E.round), square: un(E.square), reciprocal: un(E.reciprocal), logicalNot: un(E.logicalNot),
  add: bin(E.add), sub: bin(E.sub), mul: bin(E.mul), div: bin(E.div), pow: bin(E.pow), maximum: bin(E.maximum), minimum: bin(E.minimum),
  eq: bin(E.eq), ne: bin(E.ne), lt: bin(E.lt), le: bin(E.le), gt: bin(E.gt), ge: bin(E.ge),
  logicalAnd: bin(E.logicalAnd), logicalOr: bin(E.logicalOr),
  where: (xs, p) => {
    let i = 1;
    const a = p.sa !== undefined ? n(p.sa) : xs[i++]!;
    const b = p.sb !== undefined ? n(p.sb) : xs[i++]!;
    return E.where(xs[0]!, a, b);
  },
  maskedFill: (xs, p) => E.maskedFill(xs[0]!, xs[1]!, n(p.value)),
  clamp: (xs, p) => E.clamp(xs[0]!, optN(p.min), optN(p.max)),
  sum: (xs, p) => R.sum(xs[0]!, dims(p.dim), bool(p.keepdim)),
  mean: (xs, p) => R.mean(xs[0]!, dims(p.dim), bool(p.keepdim)),
  max: (xs, p) => R.max(xs[0]!, dims(p.dim), bool(p.keepdim)),
  min: (xs, p) => R.min(xs[0]!, dims(p.dim), bool(p.keepdim)),
  argmax: (xs, p) => R.argmax(xs[0]!, optN(p.dim), bool(p.keepdim)),
  argmin: (xs, p) => R.argmin(xs[0]!, optN(p.dim), bool(p.keepdim)),
  var: (xs, p) => R.variance(xs[0]!, dims(p.dim), { correction: n(p.correction), keepdim: bool(p.keepdim) }),
  std: (xs, p) => R.std(xs[0]!, dims(p.dim), { correction: n(p.correction), keepdim: bool(p.keepdim) }),
  logsumexp: (xs, p) => {
    const d = dims(p.dim);
    // torch.logsumexp needs dim too; attend's signature makes it required.
    if (d === undefined) throw new Error('logsumexp: dim is required');
    return R.logsumexp(xs[0]!, d, bool(p.keepdim));
  },
  cumsum: (xs, p) => R.cumsum(xs[0]!, n(p.dim)),
  matmul: (xs) => MM.matmul(xs[0]!, xs[1]!),
  bmm: (xs, p) => MM.bmm(xs[0]!, xs[1]!, bool(p.ta), bool(p.tb)),
  linear: (xs) => MM.linear(xs[0]!, xs[1]!, opt(xs, 2)),
  softmax: (xs, p) => N.softmax(xs[0]!, n(p.dim)),
  logSoftmax: (xs, p) => N.logSoftmax(xs[0]!, n(p.dim)),
  layerNorm: (xs, p) => N.layerNorm(xs[0]!, ns(p.ns), opt(xs, 1), opt(xs, 2), n(p.eps)),
  rmsNorm: (xs, p) => N.rmsNorm(xs[0]!, ns(p.ns), opt(xs, 1), n(p.eps)),
  reshape: (xs, p) => M.reshape(xs[0]!, ns(p.shape)),
  permute: (xs, p) => M.permute(xs[0]!, ns(p.dims)),
  transpose: (xs, p) => M.transpose(xs[0]!, n(p.d0), n(p.d1)),
  expand: (xs, p) => M.expand(xs[0]!, ns(p.shape)),
  squeeze: (xs, p) => M.squeeze(xs[0]!, optN(p.dim)),
  unsqueeze: (xs, p) => M.unsqueeze(xs[0]!, n(p.dim)),
  flatten: (xs, p) => M.flatten(xs[0]!, n(p.start), n(p.end)),
  slice: (xs, p) => M.slice(xs[0]!, n(p.dim), n(p.start), n(p.end), n(p.step)),
  narrow: (xs, p) => M.narrow(xs[0]!, n(p.dim), n(p.start), n(p.length)),
  select: (xs, p) => M.select(xs[0]!, n(p.dim), n(p.index)),
  split: (xs, p) => M.split(xs[0]!, Array.isArray(p.sizes) ? ns(p.sizes) : n(p.sizes), n(p.dim)),
  chunk: (xs, p) => M.chunk(xs[0]!, n(p.chunks), n(p.dim)),
  flip: (xs, p) => M.flip(xs[0]!, ns(p.dims)),
  repeat: (xs, p) => M.repeat(xs[0]!, ns(p.reps)),
  pad: (xs, p) => M.pad(xs[0]!, ns(p.pads), n(p.value)),
  tril: (xs, p) => I.tril(xs[0]!, n(p.diagonal)),
  triu: (xs, p) => I.triu(xs[0]!, n(p.diagonal)),
  clone: (xs) => M.clone(xs[0]!),
  unflatten: (xs, p) => M.unflatten(xs[0]!, n(p.dim), ns(p.sizes)),
  movedim: (xs, p) => M.movedim(xs[0]!, n(p.src), n(p.dst)),
  cast: (xs, p) => E.cast(xs[0]!, p.dtype as DType),
  cat: (xs, p) => M.cat(xs, n(p.dim)),
  stack: (xs, p) => M.stack(xs, n(p.dim)),
  indexSelect: (xs, p) => I.indexSelect(xs[0]!, n(p.dim), xs[1]!),
  gather: (xs, p) => I.gather(xs[0]!, n(p.dim), xs[1]!),
  scatterAdd: (xs, p) => I.scatterAdd(xs[0]!, n(p.dim), xs[1]!, xs[2]!),
  embedding: (xs, p) => I.embedding(xs[0]!, xs[1]!, optN(p.pad)),
  oneHot: (xs, p) => Fn.oneHot(xs[0]!, n(p.n)),
  crossEntropy: (xs, p) => Fn.crossEntropy(xs[0]!, xs[1]!, nllOpts(xs, p)),
  nllLoss: (xs, p) => Fn.nllLoss(N.logSoftmax(xs[0]!, xs[0]!.ndim === 1 ? 0 : 1), xs[1]!, nllOpts(xs, p)),
  mseLoss: (xs, p) => Fn.mseLoss(xs[0]!, xs[1]!, p.reduction as Fn.Reduction),
  l1Loss: (xs, p) => Fn.l1Loss(xs[0]!, xs[1]!, p.reduction as Fn.Reduction),
  binaryCrossEntropyWithLogits: (xs, p) => Fn.binaryCrossEntropyWithLogits(xs[0]!, xs[1]!, p.reduction as Fn.Reduction),
  conv1d: (xs, p) => Fn.conv1d(xs[0]!, xs[1]!, opt(xs, 2), convOpts(p)),
  conv2d: (xs, p) => Fn.conv2d(xs[0]!, xs[1]!, opt(xs, 2), convOpts(p)),
  maxPool1d: (xs, p) => Fn.maxPool1d(xs[0]!, n(p.k), optN(p.stride), n(p.padding)),
  avgPool1d: (xs, p) => Fn.avgPool1d(xs[0]!, n(p.k), optN(p.stride), n(p.padding)),
  maxPool2d: (xs, p) => Fn.maxPool2d(xs[0]!, n(p.k), { ...(p.stride !== null ? { stride: n(p.stride) } : {}), padding: n(p.padding) }),
  avgPool2d: (xs, p) => Fn.avgPool2d(xs[0]!, n(p.k), { ...(p.stride !== null ? { stride: n(p.stride) } : {}), padding: n(p.padding) }),
  unfold: (xs, p) => Fn.unfold(xs[0]!, { kernel: pair(p.k), stride: pair(p.stride), padding: pair(p.padding), dilation: pair(p.dilation) }),
  arange: (_, p, device) => arange(n(p.start), n(p.end), n(p.step), { device }),
  linspace: (_, p, device) => linspace(n(p.start), n(p.end), n(p.steps), { device }),
  eye: (_, p, device) => eye(n(p.n), optN(p.m), { device }),
  full: (_, p, device) => full(ns(p.shape), typeof p.value === 'boolean' ? p.value : n(p.value), { device }),
  scaledDotProductAttention: (xs, p) => Fn.scaledDotProductAttention(xs[0]!, xs[1]!, xs[2]!, {
    isCausal: bool(p.causal), ...(p.mask ? { attnMask: xs[3]! } : {}), ...(p.scale !== undefined ? { scale: n(p.scale) } : {}),
  }),
};

/** Every op, and 'half.<op>': the same call on float16 / bfloat16 inputs. */
export const OPS: Record<string, OpCall> = {
  ...BASE_OPS,
  ...Object.fromEntries(Object.entries(BASE_OPS).map(([name, call]) => [`half.${name}`, call])),
};

// ---- comparison ----

/** pass; raise: exactly one side raised (a clear error, not silent); silent: a wrong value, dtype or shape without an error. */
export type Verdict = 'pass' | 'raise' | 'silent';
export interface Outcome {
  call: Call;
  verdict: Verdict;
  /** What differed (empty on pass). */
  detail: string;
}

const EPS: Partial<Record<DType, number>> = { float32: 2 ** -23, float64: 2 ** -52, float16: 2 ** -10, bfloat16: 2 ** -7 };
/** The smallest normal number: below it a backend may flush to zero (rsqrt(1e30)'s gradient is 5e-46 in torch, 0 here). */
const TINY: Partial<Record<DType, number>> = { float32: 2 ** -126, float64: 2 ** -1022, float16: 2 ** -14, bfloat16: 2 ** -126 };

/**
 * Per-element tolerance of a float tensor: a kind-specific bound, plus 4x torch's own float32 error on this call
 * (e: what float32 loses against float64 here, large where the op is ill-conditioned, e.g. layerNorm of a near-constant
 * row). Gradients are judged against the call's largest gradient (scale), since an exact zero (softmax of one key) is
 * reached through cancellation.
 */
function tolerance(kind: Tolerance, st: StoredTensor, ref: Float64Array, sc: Float64Array | null, scale: number | null): (i: number) => number {
  const eps = EPS[st.d] ?? 0;
  if (eps === 0) return () => 0;
  const e4 = 4 * (st.e ?? 0) + TINY[st.d]!;
  let maxAbs = 0;
  for (const v of ref) if (Number.isFinite(v)) maxAbs = Math.max(maxAbs, Math.abs(v));
  if (scale !== null) return (i) => 64 * eps * (Math.max(maxAbs, scale) + Math.abs(ref[i]!)) + e4;
  switch (kind) {
    case 'exact': return (i) => 2 * eps * Math.abs(ref[i]!) + e4;
    // Transcendentals: relative (a few ulp of the value, and of 1 near zero crossings).
    case 'tr': return (i) => 16 * eps * Math.abs(ref[i]!) + 4 * eps + e4;
    // Sums of products: eps times the sum of |terms| of that element.
    case 'sum': return sc ? (i) => 16 * eps * sc[i]! + 2 * eps * Math.abs(ref[i]!) + e4 : (i) => 64 * eps * (maxAbs + Math.abs(ref[i]!)) + e4;
    case 'nl': return (i) => 64 * eps * (maxAbs + Math.abs(ref[i]!)) + e4;
    // Normalisation: eps times what the rounding errors are relative to ((|x| + |mean|) * rstd * |w| + |b|, stored).
    case 'norm': return (i) => 16 * eps * (sc ? sc[i]! : maxAbs) + 64 * eps * (maxAbs + Math.abs(ref[i]!)) + e4;
  }
}

export const decode = (vs: Num[]): Float64Array => Float64Array.from(vs, num);

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** '' when t matches the stored tensor, else what differs. */
async function compareTensor(t: Tensor, st: StoredTensor, kind: Tolerance, gradScale: number | null): Promise<string> {
  if (!sameShape(t.shape, st.s)) return `shape [${t.shape.join(', ')}] vs torch [${st.s.join(', ')}]`;
  if (t.dtype !== st.d) return `dtype ${t.dtype} vs torch ${st.d}`;
  const data = await t.data();
  const ref = decode(st.v);
  // float32 (and half) references are stored as shortest float32 decimals: round them back to float32.
  if (st.d === 'float32' || st.d === 'float16' || st.d === 'bfloat16') for (let i = 0; i < ref.length; i++) ref[i] = Math.fround(ref[i]!);
  const at = st.i ?? null;
  if (at) {
    let nan = 0, inf = 0, sum = 0;
    for (const v of data) {
      if (Number.isNaN(v)) nan++;
      else if (!Number.isFinite(v)) inf++;
      else sum += v;
    }
    // Gradients: only where they are finite matters (see below); values: NaN and inf counts both.
    if (gradScale !== null ? nan + inf !== st.nan! + st.inf! : nan !== st.nan || inf !== st.inf) return `${nan} NaN and ${inf} inf vs torch ${st.nan} and ${st.inf} (of ${data.length})`;
    // The sum of a gradient that cancels to ~0 is judged at the call's gradient scale, like its elements.
    const slack = gradScale !== null ? 64 * (EPS[st.d] ?? 0) * gradScale * Math.sqrt(data.length) : 0;
    if (Math.abs(sum - st.sum!) > Math.max(1e-4, 16 * (EPS[st.d] ?? 0)) * st.asum! + slack + 1e-30) return `sum ${sum} vs torch ${st.sum} (sum of |x| ${st.asum})`;
  }
  const tol = tolerance(kind, st, ref, st.sc ? decode(st.sc) : null, gradScale);
  for (let j = 0; j < ref.length; j++) {
    const e = ref[j]!, idx = at ? at[j]! : j, a = Number(data[idx]);
    if (Number.isNaN(e) ? Number.isNaN(a) : e === a || Math.abs(a - e) <= tol(j)) continue;
    // A gradient that is not finite in both (0/0 of var with n <= correction, inf - inf) has no meaningful value.
    if (gradScale !== null && !Number.isFinite(e) && !Number.isFinite(a)) continue;
    return `element ${idx}: ${a} vs torch ${e}`;
  }
  return '';
}

function errorText(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split('\n')[0]!.slice(0, 120);
}

/**
 * The error of reading the tensors back, if any: a queued device (webgpu) raises a kernel's check (an index out of
 * range) at the next read, not in the call.
 */
async function readError(ts: readonly Tensor[]): Promise<unknown> {
  try {
    for (const t of ts) await t.data();
    return null;
  } catch (e) {
    return e;
  }
}

/** Runs one recorded call on a device and judges it. */
export async function replay(call: Call, kind: Tolerance, device: string): Promise<Outcome> {
  const op = OPS[call.op];
  if (!op) throw new Error(`diff: no attend call for op '${call.op}' in src/test-util/diff.ts OPS`);
  return tidy(async (): Promise<Outcome> => {
    const made = call.in.map((s) => makeInput(s, device));
    const leaves = made.map((m) => m[0]), xs = made.map((m) => m[1]);
    let outs: Tensor[];
    try {
      const y = op(xs, call.p, device);
      outs = Array.isArray(y) ? y : [y];
    } catch (e) {
      return call.raise !== undefined ? ok(call) : { call, verdict: 'raise', detail: `attend raises: ${errorText(e)}` };
    }
    const late = await readError(outs);
    if (late) return call.raise !== undefined ? ok(call) : { call, verdict: 'raise', detail: `attend raises at the read: ${errorText(late)}` };
    if (call.raise !== undefined) return { call, verdict: 'raise', detail: `torch raises (${call.raise}); attend returns ${outs.map((o) => `[${o.shape.join(', ')}] ${o.dtype}`).join(', ')}` };
    const stored = call.out!;
    if (outs.length !== stored.length) return { call, verdict: 'silent', detail: `${outs.length} outputs vs torch ${stored.length}` };
    for (let i = 0; i < outs.length; i++) {
      const d = await compareTensor(outs[i]!, stored[i]!, kind, null);
      if (d) return { call, verdict: 'silent', detail: `output ${i}: ${d}` };
    }
    if (call.g === undefined && call.bwraise === undefined) return ok(call);
    try {
      let loss: Tensor | null = null;
      for (let i = 0; i < outs.length; i++) {
        const o = outs[i]!;
        if (!isFloatD(o.dtype) || !o.requiresGrad) continue;
        // R: the same seeded probe as the recorder's.
        const r = tensor(typed(specValues({ s: [...o.shape], k: 'n', seed: call.id * 1000 + i }), o.dtype), { shape: o.shape, dtype: o.dtype, device });
        const term = R.sum(E.mul(o, r));
        loss = loss ? E.add(loss, term) : term;
      }
      if (!loss) return { call, verdict: 'silent', detail: 'no output to differentiate (torch has gradients)' };
      loss.backward();
      const late = await readError(leaves.flatMap((l) => (l.grad ? [l.grad] : [])));
      if (late) throw late;
    } catch (e) {
      return call.bwraise !== undefined ? ok(call) : { call, verdict: 'raise', detail: `attend backward raises: ${errorText(e)}` };
    }
    if (call.bwraise !== undefined) return { call, verdict: 'raise', detail: `torch backward raises (${call.bwraise}); attend does not` };
    let scale = call.gs ?? 0;
    // Normalisation: the gradient cancels terms as large as the output times R (|R| < 2).
    if (kind === 'norm') for (const st of stored) for (const v of decode(st.v)) if (Number.isFinite(v)) scale = Math.max(scale, 2 * Math.abs(v));
    for (const st of call.g!) for (const v of st ? decode(st.v) : []) if (Number.isFinite(v)) scale = Math.max(scale, Math.abs(v));
    for (let i = 0; i < leaves.length; i++) {
      const st = call.g![i];
      if (!st) continue;
      const leaf = leaves[i]!;
      const g = leaf.grad ?? E.mul(leaf.detach(), 0);
      const d = await compareTensor(g, st, kind, scale);
      if (d) return { call, verdict: 'silent', detail: `gradient of input ${i}: ${d}` };
    }
    return ok(call);
  });
}

const ok = (call: Call): Outcome => ({ call, verdict: 'pass', detail: '' });

// ---- reporting ----

/** A readable repro of a call: the op, the input specs (shape, dtype, kind, view) and the parameters. */
export function describeCall(c: Call): string {
  const ins = c.in.map((s) => `${s.d}[${s.s.join(',')}]${s.k}${s.lo !== undefined ? `(${s.lo}..${s.hi})` : ''}${s.view ? ` ${JSON.stringify(s.view)}` : ''}`);
  return `#${c.id} ${c.op}(${ins.join(', ')}) ${JSON.stringify(c.p)}`;
}

/** The values of a call's inputs, for small inputs (for the mismatch report). */
export function inputValues(c: Call): string {
  return c.in.map((s) => {
    const v = specValues(s);
    return v.length <= 32 ? `[${Array.from(v).join(', ')}]` : `(${v.length} values)`;
  }).join(' ; ');
}

export interface FamilyRow { family: string; calls: number; pass: number; raise: number; silent: number }

export function familyTable(outcomes: Outcome[], ops: DiffFixtures['ops']): FamilyRow[] {
  const rows = new Map<string, FamilyRow>();
  for (const o of outcomes) {
    const family = ops[o.call.op]!.family;
    const r = rows.get(family) ?? { family, calls: 0, pass: 0, raise: 0, silent: 0 };
    r.calls++;
    r[o.verdict]++;
    rows.set(family, r);
  }
  const all = [...rows.values()];
  all.push(all.reduce((t, r) => ({ ...t, calls: t.calls + r.calls, pass: t.pass + r.pass, raise: t.raise + r.raise, silent: t.silent + r.silent }), { family: 'all', calls: 0, pass: 0, raise: 0, silent: 0 }));
  return all;
}

export function formatTable(device: string, rows: FamilyRow[]): string {
  const pct = (a: number, b: number) => `${((100 * a) / Math.max(b, 1)).toFixed(1)}%`;
  const lines = [`differential suite on ${device}: pass rate per op family (PyTorch 1.13 fixtures)`,
    `${'family'.padEnd(11)}${'calls'.padStart(7)}${'pass'.padStart(9)}${'raise'.padStart(8)}${'silent'.padStart(8)}`];
  for (const r of rows) lines.push(`${r.family.padEnd(11)}${String(r.calls).padStart(7)}${pct(r.pass, r.calls).padStart(9)}${String(r.raise).padStart(8)}${String(r.silent).padStart(8)}`);
  return lines.join('\n');
}
