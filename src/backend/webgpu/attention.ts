// WGSL fused attention (flash-style: scores never stored whole), forward and backward, causal, with an additive bias and strided layouts.
//
// Forward: one workgroup per (batch * head, block of query rows), one thread per query row (or a few, splitting the
// keys, when there are few queries as in generation); keys and values stream through workgroup memory in tiles, with
// the online softmax. Backward (FlashAttention-2, deterministic, no atomics): a pass keeps lse and D = dO . O per row;
// dq per query block (keys streamed), then dk and dv per key block (queries streamed), both recomputing the
// probabilities from lse. Head sizes are limited by workgroup memory (a clear error past it: hs + hv up to about 1000 with 32 KiB).

import type { AttentionLayout, AttentionParams } from '../../tensor/backend.js';
import type { GpuBuffer, GpuContext, Param } from './context.js';

type B = GpuBuffer;
type Layouts = NonNullable<AttentionParams['layout']>;

/** Tiles hold a multiple of this many rows. */
const SUB = 8;
/** Most keys (or queries) per tile held in workgroup memory. */
const MAX_TILE = 64;

/** The operand layouts: p.layout, or contiguous [B, H, rows, cols] operands. */
function layoutsOf(p: AttentionParams): Layouts {
  if (p.layout) return p.layout;
  const c = (rows: number, cols: number): AttentionLayout => ({ offset: 0, batch: p.heads * rows * cols, head: rows * cols, row: cols });
  return { q: c(p.t, p.hs), k: c(p.s, p.hs), v: c(p.s, p.hv), out: c(p.t, p.hv) };
}

const layoutParams = (l: AttentionLayout): number[] => [l.offset, l.batch, l.head, l.row];

/** Threads (rows) per workgroup: enough for short sequences without idling most of a 64-thread group. */
function rowsPerGroup(n: number): number {
  return n <= 16 ? 16 : n <= 32 ? 32 : 64;
}

/** Rows per tile of workgroup memory holding `vec4PerRow` vec4 (+ `extraBytes`) per row: a multiple of SUB, at most MAX_TILE. */
function tileRows(ctx: GpuContext, vec4PerRow: number, extraBytes: number, p: AttentionParams): number {
  const limit = ctx.device.limits.maxComputeWorkgroupStorageSize;
  const rows = Math.min(MAX_TILE, Math.floor(limit / (vec4PerRow * 16 + extraBytes) / SUB) * SUB);
  if (rows < SUB) {
    throw new Error(`webgpu attention: head sizes hs=${p.hs}, hv=${p.hv} need ${SUB * (vec4PerRow * 16 + extraBytes)} bytes of workgroup memory per tile; this adapter has ${limit} (maxComputeWorkgroupStorageSize)`);
  }
  return rows;
}

/**
 * The storage bindings of one kernel: each distinct (buffer, element type) bound once, since a buffer may hold
 * several operands (q, k and v of one projection) and WebGPU refuses a written buffer bound twice.
 */
class Bindings {
  readonly buffers: B[] = [];
  private readonly decls: string[] = [];
  private readonly names = new Map<string, string>();
  private readonly ids = new Map<B, number>();

  /** The WGSL variable of `buf` viewed as array<elem>. */
  bind(buf: B, elem: string, write = false): string {
    let id = this.ids.get(buf);
    if (id === undefined) this.ids.set(buf, (id = this.ids.size));
    const key = `${id}:${elem}`;
    let name = this.names.get(key);
    if (name === undefined) {
      name = `buf${this.buffers.length}`;
      this.buffers.push(buf);
      this.names.set(key, name);
      this.decls.push(`@group(0) @binding(${this.buffers.length}) var<storage, ${write ? 'read_write' : 'read'}> ${name}: array<${elem}>;`);
    }
    return name;
  }

  wgsl(): string {
    return this.decls.join('\n');
  }
}

/**
 * Loads and stores of 4 columns of an operand row: straight vec4 words when every operand is 4-aligned (offsets,
 * strides and head sizes multiples of 4), else scalar words with the columns past n read as 0 and not written.
 */
function rowAccess(vec: boolean, name: string, write: boolean): string {
  const load = vec
    ? `fn ld_${name}(base: u32, c: u32, n: u32) -> vec4<f32> { return ${name}[(base >> 2u) + c]; }`
    : `fn ld_${name}(base: u32, c: u32, n: u32) -> vec4<f32> {
  let d = c * 4u;
  var r = vec4<f32>(0.0);
  if (d < n) { r.x = ${name}[base + d]; }
  if (d + 1u < n) { r.y = ${name}[base + d + 1u]; }
  if (d + 2u < n) { r.z = ${name}[base + d + 2u]; }
  if (d + 3u < n) { r.w = ${name}[base + d + 3u]; }
  return r;
}`;
  if (!write) return load;
  const store = vec
    ? `fn st_${name}(base: u32, c: u32, n: u32, x: vec4<f32>) { ${name}[(base >> 2u) + c] = x; }`
    : `fn st_${name}(base: u32, c: u32, n: u32, x: vec4<f32>) {
  let d = c * 4u;
  if (d < n) { ${name}[base + d] = x.x; }
  if (d + 1u < n) { ${name}[base + d + 1u] = x.y; }
  if (d + 2u < n) { ${name}[base + d + 2u] = x.z; }
  if (d + 3u < n) { ${name}[base + d + 3u] = x.w; }
}`;
  return `${load}\n${store}`;
}

/** Whether every operand row starts 4-aligned with a head size of a multiple of 4 (then vec4 words are used). */
function aligned(p: AttentionParams, L: Layouts): boolean {
  if (p.hs % 4 !== 0 || p.hv % 4 !== 0 || p.hs === 0 || p.hv === 0 || p.t === 0 || p.s === 0) return false;
  return [L.q, L.k, L.v, L.out].every((l) => [l.offset, l.batch, l.head, l.row].every((x) => x % 4 === 0));
}

function validate(p: AttentionParams, op: string, q: B): void {
  // Half inputs arrive widened (../half.ts); float64 never reaches a GPU buffer.
  if (q.dtype !== 'float32') throw new Error(`webgpu ${op}: expected float32 operands, got ${q.dtype}`);
  for (const [name, x] of Object.entries({ batch: p.batch, heads: p.heads, t: p.t, s: p.s, hs: p.hs, hv: p.hv })) {
    if (!Number.isInteger(x) || x < 0) throw new Error(`webgpu ${op}: ${name} must be a non-negative integer, got ${x}`);
  }
}

/**
 * Uniform slots shared by the three row kernels: 0 heads, 1 T, 2 S, 3 hs, 4 hv, 5 scale (f32), 6 causal,
 * 7..10 bias strides, 11 -Infinity (f32: WGSL constants cannot be infinite), 12..27 layouts of q, k, v, out.
 */
function commonParams(p: AttentionParams, L: Layouts): Param[] {
  const bs = p.biasStrides ?? [0, 0, 0, 0];
  return [p.heads, p.t, p.s, p.hs, p.hv, { f32: p.scale }, +p.causal, ...bs, { f32: -Infinity },
    ...layoutParams(L.q), ...layoutParams(L.k), ...layoutParams(L.v), ...layoutParams(L.out)];
}

/** WGSL reading the common slots into lets (b, h from the workgroup's y index). */
const COMMON_LETS = /* wgsl */ `
  let heads = pu(0u); let T = pu(1u); let S = pu(2u); let hs = pu(3u); let hv = pu(4u);
  let scale = pf(5u); let causal = pu(6u) != 0u; let ninf = pf(11u);
  let bh = wid.y; let b = bh / heads; let h = bh % heads;
  let shift = i32(S) - i32(T);
  let qBase = pu(12u) + b * pu(13u) + h * pu(14u); let qRow = pu(15u);
  let kBase = pu(16u) + b * pu(17u) + h * pu(18u); let kRow = pu(19u);
  let vBase = pu(20u) + b * pu(21u) + h * pu(22u); let vRow = pu(23u);
  let oBase = pu(24u) + b * pu(25u) + h * pu(26u); let oRow = pu(27u);
  let biasBase = b * pu(7u) + h * pu(8u); let biasRow = pu(9u); let biasCol = pu(10u);
`;

const sum4 = (x: string) => `dot(${x}, vec4<f32>(1.0))`;

/** Loads rows [first, first + ROWS) of an operand into a workgroup array (zeros past `count`), cooperatively. */
function tileLoad(tile: string, ld: string, rows: number, vecs: number, threads: number, first: string, count: string, base: string, rowStride: string, cols: string): string {
  return `for (var x = lid.x; x < ${rows * vecs}u; x += ${threads}u) {
      let r = ${first} + x / ${vecs}u;
      var val = vec4<f32>(0.0);
      if (r < ${count}) { val = ${ld}(${base} + r * ${rowStride}, x % ${vecs}u, ${cols}); }
      ${tile}[x] = val;
    }`;
}

/** Threads of a forward workgroup: query rows x key splits. */
const FWD_THREADS = 64;

const pow2Floor = (x: number): number => 2 ** Math.floor(Math.log2(x));

/**
 * The forward's shape: R query rows per workgroup, each row's keys split over KS threads (KS > 1 when there are
 * few queries, as in generation: the threads of a row take every KS-th key and merge their softmax states at the
 * end), BC keys per tile. With a split, workgroup memory also holds the states to merge, so tiles are smaller.
 */
function forwardShape(ctx: GpuContext, p: AttentionParams, HS4: number, HV4: number): { R: number; KS: number; BC: number } {
  const limit = ctx.device.limits.maxComputeWorkgroupStorageSize;
  const R = 2 ** Math.ceil(Math.log2(Math.max(1, p.t)));
  // The widest split whose merge states leave room for a tile of at least SUB keys.
  for (let KS = FWD_THREADS / R; KS > 1; KS /= 2) {
    const room = Math.floor((limit - R * KS * (HV4 * 16 + 8)) / ((HS4 + HV4) * 16));
    if (room >= SUB) {
      const BC = Math.min(MAX_TILE, pow2Floor(room));
      return { R, KS: Math.min(KS, BC), BC };
    }
  }
  return { R: rowsPerGroup(p.t), KS: 1, BC: tileRows(ctx, HS4 + HV4, 0, p) };
}

/** A loop bound as WGSL: the constant, or on a software adapter the same value hidden behind a zero parameter slot. */
type Bound = (n: string) => string;

/** Parameter slot that is always 0 (kernels here use fewer than 62 slots). */
const ZERO_SLOT = 62;

/**
 * Constant loop bounds on GPUs (rows then live in registers). Software adapters (lavapipe, SwiftShader: LLVM) unroll
 * such loops and spend minutes allocating registers for the unrolled rows; a bound they cannot see keeps them rolled.
 */
function loopBound(ctx: GpuContext): Bound {
  return ctx.isFallback ? (n) => `(${n} + pu(${ZERO_SLOT}u))` : (n) => n;
}

/**
 * WGSL of `fn name(x, at) -> f32`: the dot product of a private row x (n vec4) with row `at` of a workgroup tile,
 * over two accumulators (two independent fma chains). Every kernel uses it, so a score recomputed by the backward
 * rounds as the forward's did.
 */
function dotTile(name: string, tile: string, n: number, L: Bound): string {
  return /* wgsl */ `fn ${name}(x: ptr<function, array<vec4<f32>, ${n}>>, at: u32) -> f32 {
  var a0 = vec4<f32>(0.0);
  var a1 = vec4<f32>(0.0);
  for (var c = 0u; c < ${L(`${n >> 1}u`)}; c++) {
    a0 = fma((*x)[2u * c], ${tile}[at + 2u * c], a0);
    a1 = fma((*x)[2u * c + 1u], ${tile}[at + 2u * c + 1u], a1);
  }
  ${n % 2 === 1 ? `a0 = fma((*x)[${n - 1}u], ${tile}[at + ${n - 1}u], a0);` : ''}
  return dot(a0 + a1, vec4<f32>(1.0));
}`;
}

export function attention(ctx: GpuContext, q: B, k: B, v: B, bias: B | null, p: AttentionParams): { out: B; lse: B } {
  validate(p, 'attention', q);
  const lay = layoutsOf(p);
  const bh = p.batch * p.heads;
  // out holds B * H * T * hv elements in any layout (as on the cpu backend): its regions cover it.
  const out = ctx.alloc('float32', bh * p.t * p.hv), lse = ctx.alloc('float32', bh * p.t);
  if (bh === 0 || p.t === 0) return { out, lse };
  const vec = aligned(p, lay);
  const HS4 = Math.max(1, Math.ceil(p.hs / 4)), HV4 = Math.max(1, Math.ceil(p.hv / 4));
  const { R, KS, BC } = forwardShape(ctx, p, HS4, HV4);
  const L = loopBound(ctx);
  const threads = R * KS, NK = BC / KS;
  const el = vec ? 'vec4<f32>' : 'f32';
  const bd = new Bindings();
  const [nq, nk, nv] = [bd.bind(q, el), bd.bind(k, el), bd.bind(v, el)];
  const nb = bias && p.biasStrides ? bd.bind(bias, 'f32') : null;
  const no = bd.bind(out, el, true), nl = bd.bind(lse, 'f32', true);
  const write = /* wgsl */ `
  if (!live) { return; }
  // A row with no key left: out 0, lse -Infinity.
  let inv = select(1.0 / l, 0.0, l == 0.0);
  for (var c = 0u; c < ${L('HV4')}; c++) { st_${no}(oBase + i * oRow, c, hv, o[c] * inv); }
  ${nl}[bh * T + i] = select(m + log(l), ninf, m == ninf);`;
  // The split threads of a row merge their (max, sum, output) states through workgroup memory.
  const merge = /* wgsl */ `
  workgroupBarrier();
  Ms[lid.x] = m;
  Ls[lid.x] = l;
  for (var c = 0u; c < ${L('HV4')}; c++) { Os[lid.x * HV4 + c] = o[c]; }
  workgroupBarrier();
  if (split != 0u) { return; }
  for (var t = 1u; t < ${L(`${KS}u`)}; t++) { m = max(m, Ms[lid.x + t]); }
  if (m != ninf) {
    l = 0.0;
    for (var c = 0u; c < ${L('HV4')}; c++) { o[c] = vec4<f32>(0.0); }
    for (var t = 0u; t < ${L(`${KS}u`)}; t++) {
      let a = select(exp(Ms[lid.x + t] - m), 0.0, Ms[lid.x + t] == ninf);
      l += a * Ls[lid.x + t];
      for (var c = 0u; c < ${L('HV4')}; c++) { o[c] = fma(vec4<f32>(a), Os[(lid.x + t) * HV4 + c], o[c]); }
    }
  }`;
  const source = /* wgsl */ `
${bd.wgsl()}
${[...new Set([nq, nk, nv])].map((n) => rowAccess(vec, n, false)).join('\n')}
${rowAccess(vec, no, true)}
const HS4: u32 = ${HS4}u;
const HV4: u32 = ${HV4}u;
const BC: u32 = ${BC}u;
var<workgroup> Ks: array<vec4<f32>, ${BC * HS4}>;
var<workgroup> Vs: array<vec4<f32>, ${BC * HV4}>;
${dotTile('dot4', 'Ks', HS4, L)}
${KS > 1 ? `var<workgroup> Ms: array<f32, ${threads}>;
var<workgroup> Ls: array<f32, ${threads}>;
var<workgroup> Os: array<vec4<f32>, ${threads * HV4}>;` : ''}

@compute @workgroup_size(${threads})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
${COMMON_LETS}
  let r0 = wid.x * ${R}u;
  let i = r0 + lid.x / ${KS}u;
  let split = lid.x % ${KS}u; // this thread takes keys split, split + KS, ... of each tile
  let live = i < T;
  let last = i32(i) + shift; // the last key row i may attend when causal
  var qr: array<vec4<f32>, HS4>;
  if (live) { for (var c = 0u; c < ${L('HS4')}; c++) { qr[c] = ld_${nq}(qBase + i * qRow, c, hs); } }
  // Keys past the last one any row of the block attends are never loaded.
  var kEnd = S;
  if (causal) { kEnd = u32(clamp(i32(r0) + ${R - 1} + shift + 1, 0, i32(S))); }
  var m = ninf;
  var l = 0.0;
  var o: array<vec4<f32>, HV4>;
  for (var j0 = 0u; j0 < kEnd; j0 += BC) {
    workgroupBarrier();
    ${tileLoad('Ks', `ld_${nk}`, BC, HS4, threads, 'j0', 'S', 'kBase', 'kRow', 'hs')}
    ${tileLoad('Vs', `ld_${nv}`, BC, HV4, threads, 'j0', 'S', 'vBase', 'vRow', 'hv')}
    workgroupBarrier();
    if (live) { // (not an early continue: barriers need uniform control flow)
      for (var w = 0u; w < ${L(`${NK}u`)}; w++) {
        let u = split + ${KS}u * w;
        let j = j0 + u;
        if (j >= S || (causal && i32(j) > last)) { break; }
        let sv = dot4(&qr, u * HS4) * scale${nb ? ` + ${nb}[biasBase + i * biasRow + j * biasCol]` : ''};
        if (sv == ninf) { continue; } // masked by the bias
        // Online softmax, rescaling only when the running max grows (rarely after the first keys): one exp per key.
        if (sv > m) {
          let a = select(exp(m - sv), 0.0, m == ninf);
          l *= a;
          for (var c = 0u; c < ${L('HV4')}; c++) { o[c] *= a; }
          m = sv;
        }
        let e = exp(sv - m);
        if (e != 0.0) { // a key of probability 0 adds nothing, even where its values are infinite (as on the cpu)
          l += e;
          for (var c = 0u; c < ${L('HV4')}; c++) { o[c] = fma(vec4<f32>(e), Vs[u * HV4 + c], o[c]); }
        }
      }
    }
  }
${KS > 1 ? merge : ''}
${write}
}
`;
  ctx.run(source, commonParams(p, lay), bd.buffers, [Math.ceil(p.t / R), bh]);
  return { out, lse };
}

export function attentionGrad(ctx: GpuContext, q: B, k: B, v: B, bias: B | null, out: B, lse: B, dOut: B, p: AttentionParams): { dq: B; dk: B; dv: B } {
  validate(p, 'attentionGrad', q);
  const lay = layoutsOf(p);
  const bh = p.batch * p.heads;
  // One gradient buffer per distinct input buffer, zeroed where the regions do not cover it.
  const grads = new Map<B, B>();
  const covered = new Map<B, number>();
  for (const [x, n] of [[q, p.t * p.hs], [k, p.s * p.hs], [v, p.s * p.hv]] as const) {
    if (!grads.has(x)) grads.set(x, ctx.alloc('float32', x.size));
    covered.set(x, (covered.get(x) ?? 0) + bh * n);
  }
  // Without queries or keys nothing is attended: every gradient is 0.
  const empty = bh * p.t * p.s === 0;
  for (const [x, g] of grads) if (empty || covered.get(x) !== x.size) zero(ctx, g);
  const dq = grads.get(q)!, dk = grads.get(k)!, dv = grads.get(v)!;
  if (empty) return { dq, dk, dv };
  const vec = aligned(p, lay);
  const HS4 = Math.max(1, Math.ceil(p.hs / 4)), HV4 = Math.max(1, Math.ceil(p.hv / 4));
  const el = vec ? 'vec4<f32>' : 'f32';
  const params = commonParams(p, lay);
  const stats = ctx.alloc('float32', 2 * bh * p.t);
  try {
    rowStats(ctx, out, lse, dOut, stats, p, lay, vec, HV4);
    gradQ(ctx, q, k, v, bias, dOut, stats, dq, p, params, vec, el, HS4, HV4);
    gradKV(ctx, q, k, v, bias, dOut, stats, dk, dv, p, params, vec, el, HS4, HV4);
  } finally {
    ctx.free(stats);
  }
  return { dq, dk, dv };
}

function zero(ctx: GpuContext, g: B): void {
  const source = /* wgsl */ `
@group(0) @binding(1) var<storage, read_write> g: array<f32>;
@compute @workgroup_size(WG_1D)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = flat(wid, nwg, lid);
  if (i >= pu(0u)) { return; }
  g[i] = 0.0;
}
`;
  ctx.run(source, [g.size], [g], ctx.groups1d(g.size));
}

/** stats[2 r] = lse[r], stats[2 r + 1] = D[r] = dO_r . O_r (the row term of dS = P * (dP - D)). */
function rowStats(ctx: GpuContext, out: B, lse: B, dOut: B, stats: B, p: AttentionParams, lay: Layouts, vec: boolean, HV4: number): void {
  const el = vec ? 'vec4<f32>' : 'f32';
  const L = loopBound(ctx);
  const bd = new Bindings();
  const [no, ng, nl] = [bd.bind(out, el), bd.bind(dOut, el), bd.bind(lse, 'f32')];
  const ns = bd.bind(stats, 'vec2<f32>', true);
  const n = p.batch * p.heads * p.t;
  const source = /* wgsl */ `
${bd.wgsl()}
${[...new Set([no, ng])].map((x) => rowAccess(vec, x, false)).join('\n')}
@compute @workgroup_size(WG_1D)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let r = flat(wid, nwg, lid);
  if (r >= pu(0u)) { return; }
  let T = pu(2u); let hv = pu(3u);
  let bh = r / T; let i = r % T; let b = bh / pu(1u); let h = bh % pu(1u);
  let base = pu(4u) + b * pu(5u) + h * pu(6u) + i * pu(7u);
  var acc = vec4<f32>(0.0);
  for (var c = 0u; c < ${L(`${HV4}u`)}; c++) { acc = fma(ld_${no}(base, c, hv), ld_${ng}(base, c, hv), acc); }
  ${ns}[r] = vec2<f32>(${nl}[r], ${sum4('acc')});
}
`;
  ctx.run(source, [n, p.heads, p.t, p.hv, ...layoutParams(lay.out)], bd.buffers, ctx.groups1d(n));
}

/** dq: one thread per query row, keys and values streamed in tiles (the forward's walk). */
function gradQ(ctx: GpuContext, q: B, k: B, v: B, bias: B | null, dOut: B, stats: B, dq: B, p: AttentionParams, params: Param[], vec: boolean, el: string, HS4: number, HV4: number): void {
  const BR = rowsPerGroup(p.t), BC = tileRows(ctx, HS4 + HV4, 0, p);
  const L = loopBound(ctx);
  const bd = new Bindings();
  const [nq, nk, nv, ng] = [bd.bind(q, el), bd.bind(k, el), bd.bind(v, el), bd.bind(dOut, el)];
  const nb = bias && p.biasStrides ? bd.bind(bias, 'f32') : null;
  const ns = bd.bind(stats, 'vec2<f32>');
  const nd = bd.bind(dq, el, true);
  const source = /* wgsl */ `
${bd.wgsl()}
${[...new Set([nq, nk, nv, ng])].map((x) => rowAccess(vec, x, false)).join('\n')}
${rowAccess(vec, nd, true)}
const HS4: u32 = ${HS4}u;
const HV4: u32 = ${HV4}u;
const BC: u32 = ${BC}u;
var<workgroup> Ks: array<vec4<f32>, ${BC * HS4}>;
var<workgroup> Vs: array<vec4<f32>, ${BC * HV4}>;
${dotTile('dotK', 'Ks', HS4, L)}
${dotTile('dotV', 'Vs', HV4, L)}

@compute @workgroup_size(${BR})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
${COMMON_LETS}
  let r0 = wid.x * ${BR}u;
  let i = r0 + lid.x;
  let live = i < T;
  let last = i32(i) + shift;
  var st = vec2<f32>(ninf, 0.0);
  if (live) { st = ${ns}[bh * T + i]; }
  let rowOn = live && st.x != ninf; // a row that attended nothing has no gradient
  var qr: array<vec4<f32>, HS4>;
  var gr: array<vec4<f32>, HV4>;
  var dqr: array<vec4<f32>, HS4>;
  if (rowOn) {
    for (var c = 0u; c < ${L('HS4')}; c++) { qr[c] = ld_${nq}(qBase + i * qRow, c, hs); }
    let gBase = oBase + i * oRow;
    for (var c = 0u; c < ${L('HV4')}; c++) { gr[c] = ld_${ng}(gBase, c, hv); }
  }
  var kEnd = S;
  if (causal) { kEnd = u32(clamp(i32(r0) + ${BR - 1} + shift + 1, 0, i32(S))); }
  for (var j0 = 0u; j0 < kEnd; j0 += BC) {
    workgroupBarrier();
    ${tileLoad('Ks', `ld_${nk}`, BC, HS4, BR, 'j0', 'S', 'kBase', 'kRow', 'hs')}
    ${tileLoad('Vs', `ld_${nv}`, BC, HV4, BR, 'j0', 'S', 'vBase', 'vRow', 'hv')}
    workgroupBarrier();
    if (rowOn) {
      for (var u = 0u; u < ${L('BC')}; u++) {
        let j = j0 + u;
        if (j >= S || (causal && i32(j) > last)) { break; }
        let s = dotK(&qr, u * HS4) * scale${nb ? ` + ${nb}[biasBase + i * biasRow + j * biasCol]` : ''};
        let pr = exp(s - st.x);
        if (pr != 0.0) {
          let ds = vec4<f32>(pr * (dotV(&gr, u * HV4) - st.y) * scale);
          for (var c = 0u; c < ${L('HS4')}; c++) { dqr[c] = fma(ds, Ks[u * HS4 + c], dqr[c]); }
        }
      }
    }
  }
  if (!live) { return; }
  for (var c = 0u; c < ${L('HS4')}; c++) { st_${nd}(qBase + i * qRow, c, hs, dqr[c]); }
}
`;
  ctx.run(source, params, bd.buffers, [Math.ceil(p.t / BR), p.batch * p.heads]);
}

/** dk and dv: one thread per key row, queries, output gradients and row stats streamed in tiles. */
function gradKV(ctx: GpuContext, q: B, k: B, v: B, bias: B | null, dOut: B, stats: B, dk: B, dv: B, p: AttentionParams, params: Param[], vec: boolean, el: string, HS4: number, HV4: number): void {
  const BK = rowsPerGroup(p.s), BQ = tileRows(ctx, HS4 + HV4, 8, p);
  const L = loopBound(ctx);
  const bd = new Bindings();
  const [nq, nk, nv, ng] = [bd.bind(q, el), bd.bind(k, el), bd.bind(v, el), bd.bind(dOut, el)];
  const nb = bias && p.biasStrides ? bd.bind(bias, 'f32') : null;
  const ns = bd.bind(stats, 'vec2<f32>');
  const [ndk, ndv] = [bd.bind(dk, el, true), bd.bind(dv, el, true)];
  const source = /* wgsl */ `
${bd.wgsl()}
${[...new Set([nq, nk, nv, ng])].map((x) => rowAccess(vec, x, false)).join('\n')}
${[...new Set([ndk, ndv])].map((x) => rowAccess(vec, x, true)).join('\n')}
const HS4: u32 = ${HS4}u;
const HV4: u32 = ${HV4}u;
const BQ: u32 = ${BQ}u;
var<workgroup> Qs: array<vec4<f32>, ${BQ * HS4}>;
var<workgroup> Gs: array<vec4<f32>, ${BQ * HV4}>;
var<workgroup> Ss: array<vec2<f32>, ${BQ}>;
${dotTile('dotQ', 'Qs', HS4, L)}
${dotTile('dotG', 'Gs', HV4, L)}

@compute @workgroup_size(${BK})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
${COMMON_LETS}
  let k0 = wid.x * ${BK}u;
  let j = k0 + lid.x;
  let live = j < S;
  var kr: array<vec4<f32>, HS4>;
  var vr: array<vec4<f32>, HV4>;
  var dkr: array<vec4<f32>, HS4>;
  var dvr: array<vec4<f32>, HV4>;
  if (live) {
    for (var c = 0u; c < ${L('HS4')}; c++) { kr[c] = ld_${nk}(kBase + j * kRow, c, hs); }
    for (var c = 0u; c < ${L('HV4')}; c++) { vr[c] = ld_${nv}(vBase + j * vRow, c, hv); }
  }
  // Causal: query i sees key j when i >= j - shift; queries before the block's first key's first viewer are skipped.
  var iStart = 0u;
  if (causal) { iStart = u32(clamp(i32(k0) - shift, 0, i32(T))); }
  for (var i0 = iStart; i0 < T; i0 += BQ) {
    workgroupBarrier();
    ${tileLoad('Qs', `ld_${nq}`, BQ, HS4, BK, 'i0', 'T', 'qBase', 'qRow', 'hs')}
    ${tileLoad('Gs', `ld_${ng}`, BQ, HV4, BK, 'i0', 'T', 'oBase', 'oRow', 'hv')}
    for (var x = lid.x; x < BQ; x += ${BK}u) {
      var sv = vec2<f32>(ninf, 0.0);
      if (i0 + x < T) { sv = ${ns}[bh * T + i0 + x]; }
      Ss[x] = sv;
    }
    workgroupBarrier();
    if (live) {
      for (var u = 0u; u < ${L('BQ')}; u++) {
        let i = i0 + u;
        if (i >= T) { break; }
        let st = Ss[u];
        if (st.x == ninf || (causal && i32(j) > i32(i) + shift)) { continue; }
        let s = dotQ(&kr, u * HS4) * scale${nb ? ` + ${nb}[biasBase + i * biasRow + j * biasCol]` : ''};
        let pr = exp(s - st.x);
        if (pr != 0.0) {
          let ds = vec4<f32>(pr * (dotG(&vr, u * HV4) - st.y) * scale);
          for (var c = 0u; c < ${L('HV4')}; c++) { dvr[c] = fma(vec4<f32>(pr), Gs[u * HV4 + c], dvr[c]); }
          for (var c = 0u; c < ${L('HS4')}; c++) { dkr[c] = fma(ds, Qs[u * HS4 + c], dkr[c]); }
        }
      }
    }
  }
  if (!live) { return; }
  for (var c = 0u; c < ${L('HS4')}; c++) { st_${ndk}(kBase + j * kRow, c, hs, dkr[c]); }
  for (var c = 0u; c < ${L('HV4')}; c++) { st_${ndv}(vBase + j * vRow, c, hv, dvr[c]); }
}
`;
  ctx.run(source, params, bd.buffers, [Math.ceil(p.s / BK), p.batch * p.heads]);
}
