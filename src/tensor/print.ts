// Prints tensors as PyTorch does (torch/_tensor_str.py): String(t), console.log(t), util.inspect(t), t.format(), t.print().

import type { BackendBuffer } from './backend.js';
import type { TypedArray } from './dtype.js';
import { fmtShape, stridesOf, type Shape } from './shape.js';
import { Tensor } from './tensor.js';

/** torch.set_printoptions' knobs, with its defaults. sciMode null = choose from the values, as torch does. */
export interface PrintOptions {
  precision: number;
  threshold: number;
  edgeitems: number;
  linewidth: number;
  sciMode: boolean | null;
}

const DEFAULTS: PrintOptions = { precision: 4, threshold: 1000, edgeitems: 3, linewidth: 80, sciMode: null };
let opts: PrintOptions = { ...DEFAULTS };

/** Like torch.set_printoptions: changes the given options; setPrintOptions() with nothing restores the defaults. */
export function setPrintOptions(o?: Partial<PrintOptions>): void {
  if (o === undefined) {
    opts = { ...DEFAULTS };
    return;
  }
  for (const k of ['precision', 'threshold', 'edgeitems', 'linewidth'] as const) {
    const v = o[k];
    if (v !== undefined && (!Number.isInteger(v) || v < 0)) throw new Error(`setPrintOptions: ${k} must be a non-negative integer, got ${v}`);
  }
  // torch accepts 0 but then prints wrongly or fails (its summariser stacks an empty list).
  if (o.edgeitems === 0) throw new Error('setPrintOptions: edgeitems must be at least 1');
  opts = { ...opts, ...o };
}

export function getPrintOptions(): PrintOptions {
  return { ...opts };
}

// ---- numbers, as Python's '{:.Nf}' and '{:.Ne}' write them (exact decimal value, ties to even) ----

/** The first `k` significant digits of `digits` rounded half-to-even; carry = the rounding added a digit (999 -> 1000). */
function roundDigits(digits: string, k: number): { d: string; carry: boolean } {
  if (k < 0) return { d: '', carry: false };
  const head = digits.slice(0, k);
  const next = digits.charCodeAt(k) - 48;
  const rest = digits.slice(k + 1);
  const lastOdd = k > 0 && (digits.charCodeAt(k - 1) - 48) % 2 === 1;
  const up = next > 5 || (next === 5 && (/[1-9]/.test(rest) || lastOdd));
  if (!up) return { d: head, carry: false };
  const out = head.split('').map(Number);
  let i = out.length - 1;
  while (i >= 0 && out[i] === 9) out[i--] = 0;
  if (i >= 0) {
    out[i]!++;
    return { d: out.join(''), carry: false };
  }
  return { d: `1${out.join('')}`, carry: true };
}

/** |x| as 101 exact significant digits and the decimal exponent of the first one. */
function decimal(x: number): { digits: string; exp: number } {
  const s = Math.abs(x).toExponential(100);
  const e = s.indexOf('e');
  return { digits: s[0]! + s.slice(2, e), exp: Number(s.slice(e + 1)) };
}

function nonFinite(x: number): string | null {
  if (Number.isNaN(x)) return 'nan';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  return null;
}

const sign = (x: number): string => (x < 0 || Object.is(x, -0) ? '-' : '');

/** Python's '{:.pf}'.format(x). */
export function formatFixed(x: number, p: number): string {
  const nf = nonFinite(x);
  if (nf !== null) return nf;
  let int = '0';
  if (x !== 0) {
    const { digits, exp } = decimal(x);
    const { d } = roundDigits(digits, exp + 1 + p);
    int = d.replace(/^0+(?=.)/, '') || '0';
  }
  const padded = int.padStart(p + 1, '0');
  const body = p > 0 ? `${padded.slice(0, -p)}.${padded.slice(-p)}` : padded;
  return sign(x) + body;
}

/** Python's '{:.pe}'.format(x): at least two exponent digits. */
export function formatExp(x: number, p: number): string {
  const nf = nonFinite(x);
  if (nf !== null) return nf;
  let d = '0'.repeat(p + 1), exp = 0;
  if (x !== 0) {
    const dec = decimal(x);
    const r = roundDigits(dec.digits, p + 1);
    d = r.carry ? r.d.slice(0, p + 1) : r.d;
    exp = dec.exp + (r.carry ? 1 : 0);
  }
  const mant = p > 0 ? `${d[0]}.${d.slice(1)}` : d;
  return `${sign(x)}${mant}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
}

// ---- torch's _Formatter: one width and one style for every element shown ----

interface Formatter {
  readonly width: number;
  format(v: number): string;
}

type Kind = 'float' | 'int' | 'bool';

function kindOf(dtype: string): Kind {
  if (dtype === 'bool') return 'bool';
  return dtype.includes('float') ? 'float' : 'int'; // float16 / bfloat16 print as floats too
}

function makeFormatter(values: readonly number[], kind: Kind): Formatter {
  const p = opts.precision;
  const pad = (s: string, w: number): string => s.padStart(w);
  if (kind !== 'float') {
    const str = kind === 'bool' ? (v: number) => (v !== 0 ? 'true' : 'false') : (v: number) => String(v);
    const width = values.reduce((w, v) => Math.max(w, str(v).length), 1);
    return { width, format: (v) => pad(str(v), width) };
  }
  const finite = values.filter((v) => Number.isFinite(v) && v !== 0);
  let intMode = true, sciMode = false, width = 1;
  if (finite.length > 0) {
    let lo = Infinity, hi = 0;
    for (const v of finite) { lo = Math.min(lo, Math.abs(v)); hi = Math.max(hi, Math.abs(v)); }
    intMode = finite.every((v) => v === Math.ceil(v));
    sciMode = hi / lo > 1000 || hi > 1e8 || (!intMode && lo < 1e-4);
    const len = sciMode ? (v: number) => formatExp(v, p).length : intMode ? (v: number) => formatFixed(v, 0).length + 1 : (v: number) => formatFixed(v, p).length;
    width = finite.reduce((w, v) => Math.max(w, len(v)), 1);
  }
  if (opts.sciMode !== null) sciMode = opts.sciMode;
  const fmt = (v: number): string => {
    if (sciMode) return formatExp(v, p);
    if (intMode) return formatFixed(v, 0) + (Number.isFinite(v) ? '.' : '');
    return formatFixed(v, p);
  };
  return { width, format: (v) => pad(fmt(v), width) };
}

// ---- the elements shown: all of them, or the first and last edgeitems of every long dimension ----

/** Whether dimension `size` is cut to its edges. */
const isCut = (size: number, summarize: boolean): boolean => summarize && size > 2 * opts.edgeitems;

/** Contiguous runs [start, length] of the indices shown along a dimension. */
function runs(size: number, summarize: boolean): [number, number][] {
  const e = opts.edgeitems;
  return isCut(size, summarize) ? [[0, e], [size - e, e]] : [[0, size]];
}

/** A region of the buffer to read: one run per dimension, and where it goes in the shown array. */
interface Block {
  shape: number[];
  offset: number;
  dest: number[];
}

/**
 * The blocks (corners) of a summarised tensor and the sizes of the array they make together: it is read block by
 * block with strided copies, so printing a large tensor never copies all of it off the device.
 */
function plan(shape: Shape): { shown: number[]; blocks: Block[] } {
  const shown = shape.map((n) => runs(n, true).reduce((acc, [, len]) => acc + len, 0));
  const strides = stridesOf(shape);
  let blocks: Block[] = [{ shape: [], offset: 0, dest: [] }];
  shape.forEach((n, d) => {
    let at = 0;
    const rs = runs(n, true).map(([start, len]) => { const r = { start, len, at }; at += len; return r; });
    blocks = blocks.flatMap((b) => rs.map((r) => ({ shape: [...b.shape, r.len], offset: b.offset + r.start * strides[d]!, dest: [...b.dest, r.at] })));
  });
  return { shown, blocks };
}

/** The shown elements, dense row-major over `shown`, from the blocks' contents. */
function assemble(shown: number[], blocks: readonly Block[], parts: readonly TypedArray[]): Float64Array {
  const out = new Float64Array(shown.reduce((a, b) => a * b, 1));
  const st = stridesOf(shown);
  blocks.forEach((b, i) => {
    const src = parts[i]!;
    const bst = stridesOf(b.shape);
    for (let j = 0; j < src.length; j++) {
      let o = 0;
      for (let d = 0; d < b.shape.length; d++) o += (Math.floor(j / bst[d]!) % b.shape[d]! + b.dest[d]!) * st[d]!;
      out[o] = src[j]!;
    }
  });
  return out;
}

// ---- layout: torch's _tensor_str_with_formatter ----

interface Shown {
  /** The shown elements, dense over `sizes`. */
  data: ArrayLike<number>;
  sizes: number[];
}

function layout(v: Shown, shape: Shape, strides: readonly number[], d: number, off: number, indent: number, summarize: boolean, f: Formatter): string {
  const nd = shape.length;
  if (nd === 0) return f.format(v.data[0]!);
  const cut = isCut(shape[d]!, summarize);
  const n = v.sizes[d]!;
  const e = opts.edgeitems;
  if (d === nd - 1) {
    const items = Array.from({ length: n }, (_, i) => f.format(v.data[off + i * strides[d]!]!));
    if (cut) items.splice(e, 0, ' ...');
    const perLine = Math.max(1, Math.floor((opts.linewidth - indent) / (f.width + 2)));
    const lines: string[] = [];
    for (let i = 0; i < items.length; i += perLine) lines.push(items.slice(i, i + perLine).join(', '));
    return `[${lines.join(`,\n${' '.repeat(indent + 1)}`)}]`;
  }
  const slices = Array.from({ length: n }, (_, i) => layout(v, shape, strides, d + 1, off + i * strides[d]!, indent + 1, summarize, f));
  if (cut) slices.splice(e, 0, '...');
  return `[${slices.join(`,${'\n'.repeat(nd - d - 1)}${' '.repeat(indent + 1)}`)}]`;
}

/** torch's _add_suffixes: ", suffix" on the last line, or on a new line past linewidth. */
function addSuffixes(body: string, suffixes: readonly string[], indent: number): string {
  let out = body;
  let last = body.length - body.lastIndexOf('\n') + 1;
  for (const s of suffixes) {
    if (last + s.length + 2 > opts.linewidth) {
      out += `,\n${' '.repeat(indent)}${s}`;
      last = indent + s.length;
    } else {
      out += `, ${s}`;
      last += s.length + 2;
    }
  }
  return `${out})`;
}

/** The printed form of a tensor, given its shown elements (null when it has none). */
function render(t: Tensor, v: Shown | null, summarize: boolean): string {
  const prefix = 'tensor(';
  const indent = prefix.length;
  const { shape, dtype } = t;
  const suffixes: string[] = [];
  if (t.device !== 'cpu') suffixes.push(`device='${t.device}'`);
  let body: string;
  if (v === null) {
    if (shape.length !== 1) suffixes.push(`size=${fmtShape(shape)}`);
    if (dtype !== 'float32') suffixes.push(`dtype=${dtype}`);
    body = '[]';
  } else {
    // int32 stands for torch's int64, so it is a default like float32 and bool.
    if (dtype !== 'float32' && dtype !== 'int32' && dtype !== 'bool') suffixes.push(`dtype=${dtype}`);
    const f = makeFormatter(Array.from(v.data), kindOf(dtype));
    body = layout(v, shape, stridesOf(v.sizes), 0, 0, indent, summarize, f);
  }
  if (t.gradFn !== null) suffixes.push(`gradFn=<${t.gradFn.name}>`);
  else if (t.requiresGrad) suffixes.push('requiresGrad=true');
  const s = addSuffixes(prefix + body, suffixes, indent);
  return t.constructor.name === 'Parameter' ? `Parameter containing:\n${s}` : s;
}

const disposed = (t: Tensor): string => `tensor(<${fmtShape(t.shape)}, disposed>)`;

/** Copies one block of the tensor into a fresh buffer (freed by the caller once read). */
function copyBlock(t: Tensor, b: Block): BackendBuffer {
  return t.backend.stridedCopy(t.buffer, b.shape, stridesOf(t.shape), b.offset);
}

/** Synchronous form: the values where the backend reads synchronously, else a placeholder pointing at print(). */
function formatTensor(t: Tensor): string {
  if (t.isDisposed) return disposed(t);
  const backend = t.backend;
  const read = backend.readSync?.bind(backend);
  if (!read) return `tensor(<${fmtShape(t.shape)} ${t.dtype} on ${t.device}: await t.print()>)`;
  if (t.numel() === 0) return render(t, null, false);
  if (t.numel() <= opts.threshold) return render(t, { data: read(t.buffer), sizes: [...t.shape] }, false);
  const p = plan(t.shape);
  const parts = p.blocks.map((b) => {
    const c = copyBlock(t, b);
    try { return read(c); } finally { backend.free(c); }
  });
  return render(t, { data: assemble(p.shown, p.blocks, parts), sizes: p.shown }, true);
}

/** The full printed form on any backend (GPU included). */
async function formatTensorAsync(t: Tensor): Promise<string> {
  if (t.isDisposed) return disposed(t);
  const backend = t.backend;
  if (t.numel() === 0) return render(t, null, false);
  if (t.numel() <= opts.threshold) return render(t, { data: await backend.read(t.buffer), sizes: [...t.shape] }, false);
  const p = plan(t.shape);
  const parts: TypedArray[] = [];
  for (const b of p.blocks) {
    const c = copyBlock(t, b);
    try { parts.push(await backend.read(c)); } finally { backend.free(c); }
  }
  return render(t, { data: assemble(p.shown, p.blocks, parts), sizes: p.shown }, true);
}

declare module './tensor.js' {
  interface Tensor {
    /** The printed form (as torch prints it), read from any device. */
    format(): Promise<string>;
    /** console.log of format(): prints the values on every device, GPU included. */
    print(): Promise<void>;
  }
}

const P = Tensor.prototype;
P.toString = function () { return formatTensor(this); };
P.format = function () { return formatTensorAsync(this); };
P.print = async function () { console.log(await formatTensorAsync(this)); };
Object.defineProperty(P, Symbol.for('nodejs.util.inspect.custom'), {
  value(this: Tensor) { return formatTensor(this); },
  writable: true,
  configurable: true,
});
