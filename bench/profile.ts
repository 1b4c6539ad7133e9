// `node --import tsx bench/profile.ts [d128|d384] [steps]`: where a GPT training step's time goes on the wasm
// backend. Every backend method is wrapped with a timer (kernels are synchronous, so the wall time of a call
// is its cost), grouped by kernel and arguments; the phases (forward, backward, optimizer) are timed too, and
// what a phase spends outside kernels is the JS overhead of the ops, the autograd engine and the allocator.

import { initWasm, manualSeed, randint, tidy } from '../src/index.js';
import { GPT2LMHeadModel } from '../src/models/gpt2.js';
import { AdamW } from '../src/optim/adamw.js';
import type { Backend, MatmulParams } from '../src/tensor/backend.js';

interface Cfg { d: number; layers: number; heads: number; t: number; batch: number; vocab: number }
const CFGS: Record<string, Cfg> = {
  d128: { d: 128, layers: 4, heads: 4, t: 128, batch: 16, vocab: 256 },
  d384: { d: 384, layers: 6, heads: 6, t: 256, batch: 8, vocab: 256 },
};
const which = process.argv[2] ?? 'd128';
const steps = Number(process.argv[3] ?? 4);
const cfg = CFGS[which]!;

type Phase = 'forward' | 'backward' | 'optimizer';
let phase: Phase = 'forward';
const byKey = new Map<string, { ms: number; calls: number }>();
const kernelMs: Record<Phase, number> = { forward: 0, backward: 0, optimizer: 0 };
const phaseMs: Record<Phase, number> = { forward: 0, backward: 0, optimizer: 0 };
let counting = false;
let depth = 0;

/** A label for a call: the method and the arguments that tell its uses apart. */
function label(method: string, args: unknown[]): string {
  if (method === 'matmul') {
    const p = args[2] as MatmulParams;
    return `matmul ${p.batch}x[${p.m},${p.k}]x[${p.k},${p.n}]${p.transA ? ' tA' : ''}${p.transB ? ' tB' : ''}`;
  }
  if (method === 'binary' || method === 'unary' || method === 'activationGrad' || method === 'reduce') {
    const sizeArg = method === 'binary' ? (args[5] as number[]).reduce((a, b) => a * b, 1)
      : method === 'reduce' ? `${args[2]}x${args[3]}x${args[4]}` : (args[1] as { size: number }).size;
    return `${method} ${String(args[0])} ${sizeArg}`;
  }
  if (method === 'stridedCopy' || method === 'stridedWrite') return `${method} [${(args[method === 'stridedCopy' ? 1 : 2] as number[]).join(',')}]`;
  return method;
}

function instrument(b: Backend): void {
  const target = b as unknown as Record<string, unknown>;
  const proto = Object.getPrototypeOf(b) as Record<string, unknown>;
  for (const name of Object.getOwnPropertyNames(proto)) {
    const desc = Object.getOwnPropertyDescriptor(proto, name);
    const fn = desc?.value;
    if (name === 'constructor' || typeof fn !== 'function' || name.startsWith('refresh')) continue;
    const orig = fn as (...a: unknown[]) => unknown;
    target[name] = function (this: unknown, ...args: unknown[]): unknown {
      // Only the outermost call counts (the backend's methods call each other and their helpers).
      if (!counting || depth > 0) return orig.apply(b, args);
      depth++;
      const t = performance.now();
      let r: unknown;
      try {
        r = orig.apply(b, args);
      } finally {
        depth--;
      }
      const dt = performance.now() - t;
      const key = `${phase.padEnd(9)} ${label(name, args)}`;
      const e = byKey.get(key) ?? { ms: 0, calls: 0 };
      e.ms += dt;
      e.calls++;
      byKey.set(key, e);
      kernelMs[phase] += dt;
      return r;
    };
  }
}

const backend = await initWasm();
manualSeed(0);
const model = new GPT2LMHeadModel({
  vocab_size: cfg.vocab, n_positions: cfg.t, n_embd: cfg.d, n_layer: cfg.layers, n_head: cfg.heads,
  embd_pdrop: 0, attn_pdrop: 0, resid_pdrop: 0,
});
const opt = new AdamW(model.parameters(), { lr: 1e-3 });
const ids = randint(0, cfg.vocab, [cfg.batch, cfg.t], { dtype: 'int32' });
instrument(backend);

function timed<T>(p: Phase, fn: () => T): T {
  phase = p;
  const t = performance.now();
  const r = fn();
  phaseMs[p] += performance.now() - t;
  return r;
}
const step = () => tidy(() => {
  const { loss } = timed('forward', () => model.forward({ inputIds: ids, labels: ids }));
  timed('backward', () => loss!.backward());
  timed('optimizer', () => { opt.step(); opt.zeroGrad(); });
  return loss!.dataSync()[0]!;
});
for (let i = 0; i < 2; i++) step();
counting = true;
for (const p of Object.keys(phaseMs) as Phase[]) phaseMs[p] = 0;
const t0 = performance.now();
for (let i = 0; i < steps; i++) step();
const total = (performance.now() - t0) / steps;
counting = false;

console.log(`${which}: ${total.toFixed(1)} ms/step, ${((cfg.batch * cfg.t) / total * 1000).toFixed(0)} tokens/s (instrumented)`);
for (const p of Object.keys(phaseMs) as Phase[]) {
  const ph = phaseMs[p] / steps, k = kernelMs[p] / steps;
  console.log(`  ${p.padEnd(9)} ${ph.toFixed(1).padStart(7)} ms  kernels ${k.toFixed(1).padStart(7)} ms  outside kernels ${(ph - k).toFixed(1).padStart(6)} ms`);
}
const rows = [...byKey.entries()].sort((a, b) => b[1].ms - a[1].ms);
console.log('\n  ms/step  calls/step  kernel');
for (const [key, e] of rows) {
  if (e.ms / steps < 0.05) continue;
  console.log(`  ${(e.ms / steps).toFixed(2).padStart(7)}  ${(e.calls / steps).toFixed(0).padStart(10)}  ${key}`);
}
// Totals per method (all phases).
const byMethod = new Map<string, number>();
for (const [key, e] of byKey) {
  const m = key.slice(10).split(' ')[0]!;
  byMethod.set(`${key.slice(0, 9).trim()} ${m}`, (byMethod.get(`${key.slice(0, 9).trim()} ${m}`) ?? 0) + e.ms / steps);
}
console.log('\n  per phase and method (ms/step):');
for (const [k, v] of [...byMethod.entries()].sort((a, b) => b[1] - a[1])) if (v >= 0.05) console.log(`  ${v.toFixed(2).padStart(7)}  ${k}`);
backend.terminate();
