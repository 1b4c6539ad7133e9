// `npm run bench`: GEMM GFLOP/s of the wasm backend (all threads and one) against tfjs-backend-wasm and
// PyTorch CPU, and GPT-2-style training and forward tokens/s against PyTorch. Writes bench/out/results.json and
// prints a table. Options: --quick (fewer cases and steps), --no-torch, --no-gpt. `--device webgpu`: the webgpu
// backend instead (GEMM, GPT training and forward, batch-1 generation), written to bench/out/results-webgpu.json.

import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import os from 'node:os';
import { createWasmBackend, generate, initWasm, initWebGPU, manualSeed, noGrad, randint, tidy, type Tensor, type WebGPUBackend } from '../src/index.js';
import { GPT2LMHeadModel } from '../src/models/gpt2.js';
import { AdamW } from '../src/optim/adamw.js';
import type { MatmulParams } from '../src/tensor/backend.js';

const here = dirname(fileURLToPath(import.meta.url));
const args = new Set(process.argv.slice(2));
const quick = args.has('--quick');
/** `--device NAME` or `--device=NAME`: 'webgpu' runs benchWebGPU; anything else the CPU bench. */
const device = process.argv.find((a) => a.startsWith('--device='))?.slice('--device='.length)
  ?? process.argv[process.argv.indexOf('--device') + 1];

interface GemmCase extends MatmulParams {
  name: string;
}
function square(n: number): GemmCase {
  return { name: `${n}`, batch: 1, m: n, n, k: n, transA: false, transB: false, strideA: 0, strideB: 0 };
}
// Transformer shapes: [B*T, C] x [C, 4C] (the MLP), its backward products, and attention scores / values.
const GEMM: GemmCase[] = [
  square(256), square(512), square(1024), square(2048),
  { name: 'mlp d128 [2048,128]x[128,512]', batch: 1, m: 2048, n: 512, k: 128, transA: false, transB: false, strideA: 0, strideB: 0 },
  { name: 'mlp d384 [2048,384]x[384,1536]', batch: 1, m: 2048, n: 1536, k: 384, transA: false, transB: false, strideA: 0, strideB: 0 },
  { name: 'mlp d384 dW [384,2048]x[2048,1536]', batch: 1, m: 384, n: 1536, k: 2048, transA: true, transB: false, strideA: 0, strideB: 0 },
  { name: 'attn d128 QK^T 64x[128,32]x[32,128]', batch: 64, m: 128, n: 128, k: 32, transA: false, transB: true, strideA: 128 * 32, strideB: 128 * 32 },
  { name: 'attn d384 QK^T 48x[256,64]x[64,256]', batch: 48, m: 256, n: 256, k: 64, transA: false, transB: true, strideA: 256 * 64, strideB: 256 * 64 },
  { name: 'attn d384 PV 48x[256,256]x[256,64]', batch: 48, m: 256, n: 64, k: 256, transA: false, transB: false, strideA: 256 * 256, strideB: 256 * 64 },
].filter((c) => !quick || ['256', '1024', 'mlp d128 [2048,128]x[128,512]'].includes(c.name));

interface GptConfig { name: string; d: number; layers: number; heads: number; t: number; batch: number; vocab: number; warmup: number; steps: number }
const GPT: GptConfig[] = [
  { name: 'd128 L4 H4 T128 B16', d: 128, layers: 4, heads: 4, t: 128, batch: 16, vocab: 256, warmup: 2, steps: quick ? 3 : 8 },
  { name: 'd384 L6 H6 T256 B8', d: 384, layers: 6, heads: 6, t: 256, batch: 8, vocab: 256, warmup: 1, steps: quick ? 2 : 4 },
].filter((c) => !quick || c.d === 128);

/** Best time (ms) of fn after one warm-up call: at least 3 runs and 0.3 s. */
function timeBest(fn: () => void): number {
  fn();
  let best = Infinity, total = 0, reps = 0;
  while (reps < 3 || total < 300) {
    const t = performance.now();
    fn();
    const dt = performance.now() - t;
    best = Math.min(best, dt);
    total += dt;
    reps++;
  }
  return best;
}
const gflops = (c: GemmCase, ms: number) => (2 * c.batch * c.m * c.n * c.k) / ms / 1e6;
function randomArray(n: number): Float32Array {
  return Float32Array.from({ length: n }, () => Math.random() - 0.5);
}

async function benchWasm(threads: number): Promise<{ variant: string; threads: number; gemm: Record<string, number> }> {
  const b = await createWasmBackend({ threads });
  const gemm: Record<string, number> = {};
  for (const c of GEMM) {
    const a = b.upload(randomArray((c.strideA ? c.batch : 1) * c.m * c.k), 'float32');
    const bb = b.upload(randomArray((c.strideB ? c.batch : 1) * c.k * c.n), 'float32');
    gemm[c.name] = gflops(c, timeBest(() => b.free(b.matmul(a, bb, c))));
    b.free(a);
    b.free(bb);
  }
  const info = b.info;
  b.terminate();
  return { ...info, gemm };
}

async function benchTfjs(): Promise<{ version: string; threads: number; gemm: Record<string, number> } | { skipped: string }> {
  try {
    const tf = await import('@tensorflow/tfjs-core');
    const wasm = await import('@tensorflow/tfjs-backend-wasm');
    const require = createRequire(import.meta.url);
    wasm.setWasmPaths(join(dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist') + '/');
    await tf.setBackend('wasm');
    await tf.ready();
    const gemm: Record<string, number> = {};
    for (const c of GEMM) {
      const shapeA = c.transA ? [c.k, c.m] : [c.m, c.k], shapeB = c.transB ? [c.n, c.k] : [c.k, c.n];
      const a = tf.tensor3d(randomArray(c.batch * c.m * c.k), [c.batch, shapeA[0]!, shapeA[1]!]);
      const b = tf.tensor3d(randomArray(c.batch * c.k * c.n), [c.batch, shapeB[0]!, shapeB[1]!]);
      gemm[c.name] = gflops(c, timeBest(() => {
        const out = tf.matMul(a, b, c.transA, c.transB);
        out.dataSync();
        out.dispose();
      }));
      a.dispose();
      b.dispose();
    }
    return { version: tf.version_core, threads: wasm.getThreadsCount(), gemm };
  } catch (e) {
    return { skipped: `tfjs-backend-wasm unavailable: ${(e as Error).message}` };
  }
}

interface TorchRun { threads: number; gemm: Record<string, number>; gpt: Record<string, number>; gptForward: Record<string, number> }
type TorchResult = { version: string; runs: TorchRun[] } | { skipped: string };

/** PyTorch at 2 threads (as asked) and at 1 (its OpenMP pool can lose on a small shared machine). */
function benchTorch(): TorchResult {
  const python = '/usr/bin/python3';
  const probe = spawnSync(python, ['-c', 'import torch'], { encoding: 'utf8' });
  if (probe.status !== 0) return { skipped: `PyTorch not importable by ${python}` };
  const threads = [...new Set([Math.min(2, os.availableParallelism()), 1])];
  const spec = { threads, gemm: GEMM, gpt: args.has('--no-gpt') ? [] : GPT };
  const r = spawnSync(python, [join(here, 'torch_bench.py')], { input: JSON.stringify(spec), encoding: 'utf8', maxBuffer: 1 << 24 });
  if (r.status !== 0) return { skipped: `torch_bench.py failed: ${r.stderr.slice(-500)}` };
  return JSON.parse(r.stdout) as TorchResult;
}

/** Training and forward (no-grad) tokens/s of the GPT-2 model of src/models on the default (wasm) device, AdamW, no dropout. */
function benchGpt(cfg: GptConfig): { train: number; forward: number } {
  manualSeed(0);
  const model = new GPT2LMHeadModel({
    vocab_size: cfg.vocab, n_positions: cfg.t, n_embd: cfg.d, n_layer: cfg.layers, n_head: cfg.heads,
    embd_pdrop: 0, attn_pdrop: 0, resid_pdrop: 0,
  });
  const opt = new AdamW(model.parameters(), { lr: 1e-3 });
  const ids = randint(0, cfg.vocab, [cfg.batch, cfg.t], { dtype: 'int32' });
  const step = () => tidy(() => {
    const { loss } = model.forward({ inputIds: ids, labels: ids });
    loss!.backward();
    opt.step();
    opt.zeroGrad();
    return loss!.dataSync()[0]!;
  });
  const forward = () => noGrad(() => tidy(() => model.forward({ inputIds: ids, labels: ids }).loss!.dataSync()[0]!));
  const rate = (fn: () => number): number => {
    for (let i = 0; i < cfg.warmup; i++) fn();
    const t = performance.now();
    for (let i = 0; i < cfg.steps; i++) fn();
    return (cfg.batch * cfg.t * cfg.steps) / ((performance.now() - t) / 1000);
  };
  return { train: rate(step), forward: rate(forward) };
}

async function main(): Promise<void> {
  if (device === 'webgpu') return benchWebGPU();
  const cores = os.availableParallelism();
  console.log(`bench: ${os.cpus()[0]?.model ?? 'cpu'}, ${cores} cores, Node ${process.versions.node}${quick ? ' (quick)' : ''}`);
  const wasmAll = await benchWasm(cores);
  const wasmOne = cores > 1 ? await benchWasm(1) : wasmAll;
  const tfjs = await benchTfjs();
  const torch = args.has('--no-torch') ? { skipped: '--no-torch' } : benchTorch();
  const backend = await initWasm();
  const gpt: Record<string, number> = {}, gptForward: Record<string, number> = {};
  if (!args.has('--no-gpt')) for (const cfg of GPT) ({ train: gpt[cfg.name]!, forward: gptForward[cfg.name]! } = benchGpt(cfg));

  const torchRuns = 'skipped' in torch ? [] : torch.runs;
  /** The faster PyTorch run for a case: the comparison is against PyTorch at its best here. */
  const torchBest = (pick: (r: TorchRun) => number | undefined) => Math.max(...torchRuns.map((r) => pick(r) ?? 0)) || undefined;
  const results = {
    date: new Date().toISOString(),
    machine: { cpu: os.cpus()[0]?.model, cores, node: process.versions.node, loadAverage: os.loadavg() },
    gemmGflops: { wasm: wasmAll, wasm1: wasmOne, tfjsWasm: tfjs, torch },
    gptTokensPerSecond: { wasm: { variant: backend.info.variant, threads: backend.info.threads, ...gpt }, torch: 'skipped' in torch ? torch : torchRuns.map((r) => ({ threads: r.threads, ...r.gpt })) },
    gptForwardTokensPerSecond: { wasm: { variant: backend.info.variant, threads: backend.info.threads, ...gptForward }, torch: 'skipped' in torch ? torch : torchRuns.map((r) => ({ threads: r.threads, ...r.gptForward })) },
  };
  mkdirSync(join(here, 'out'), { recursive: true });
  writeFileSync(join(here, 'out', 'results.json'), JSON.stringify(results, null, 2) + '\n');

  const fmt = (v: number | undefined) => (v === undefined ? '-' : v.toFixed(1));
  const ratio = (a: number | undefined, b: number | undefined) => (a && b ? (a / b).toFixed(2) + 'x' : '-');
  const tf = 'skipped' in tfjs ? null : tfjs;
  const torchCols = torchRuns.map((r) => `torch ${r.threads}T`);
  printTable(['GEMM (GFLOP/s)', `wasm ${wasmAll.threads}T`, 'wasm 1T', `tfjs-wasm ${tf ? tf.threads + 'T' : ''}`, ...torchCols, 'vs tfjs', 'vs best torch'],
    GEMM.map((c) => {
      const w = wasmAll.gemm[c.name]!;
      return [c.name, fmt(w), fmt(wasmOne.gemm[c.name]), fmt(tf?.gemm[c.name]), ...torchRuns.map((r) => fmt(r.gemm[c.name])),
        ratio(w, tf?.gemm[c.name]), ratio(w, torchBest((r) => r.gemm[c.name]))];
    }));
  if (Object.keys(gpt).length) {
    printTable(['GPT training (tokens/s)', `wasm ${backend.info.threads}T`, ...torchCols, 'vs best torch'],
      GPT.map((c) => [c.name, fmt(gpt[c.name]), ...torchRuns.map((r) => fmt(r.gpt[c.name])), ratio(gpt[c.name], torchBest((r) => r.gpt[c.name]))]));
    printTable(['GPT forward, no grad (tokens/s)', `wasm ${backend.info.threads}T`, ...torchCols, 'vs best torch'],
      GPT.map((c) => [c.name, fmt(gptForward[c.name]), ...torchRuns.map((r) => fmt(r.gptForward[c.name])), ratio(gptForward[c.name], torchBest((r) => r.gptForward[c.name]))]));
  }
  for (const s of [tfjs, torch]) if ('skipped' in s) console.log(`note: ${s.skipped}`);
  console.log(`load average during the run: ${os.loadavg().map((v) => v.toFixed(2)).join(', ')} (other processes skew every column)`);
  console.log(`wrote ${join(here, 'out', 'results.json')}`);
  backend.terminate();
}

// ---- --device webgpu ----

/** Best time (ms) of fn with the device drained before the clock stops (WebGPU queues work and returns at once). */
async function timeBestGpu(fn: () => void, gpu: WebGPUBackend): Promise<number> {
  fn();
  await gpu.sync();
  let best = Infinity, total = 0, reps = 0;
  while (reps < 3 || total < 300) {
    const t = performance.now();
    fn();
    await gpu.sync();
    const dt = performance.now() - t;
    best = Math.min(best, dt);
    total += dt;
    reps++;
  }
  return best;
}

interface GpuGptConfig extends GptConfig { genPrompt: number; genTokens: number }

/** Training, forward (no grad) and batch-1 greedy generation tokens/s on the default device (webgpu), timed to a drained queue. */
async function benchGptGpu(cfg: GpuGptConfig, gpu: WebGPUBackend): Promise<{ train: number; forward: number; generate: number }> {
  manualSeed(0);
  const model = new GPT2LMHeadModel({
    vocab_size: cfg.vocab, n_positions: cfg.t, n_embd: cfg.d, n_layer: cfg.layers, n_head: cfg.heads,
    embd_pdrop: 0, attn_pdrop: 0, resid_pdrop: 0,
  });
  const opt = new AdamW(model.parameters(), { lr: 1e-3 });
  const ids = randint(0, cfg.vocab, [cfg.batch, cfg.t], { dtype: 'int32' });
  const step = (): void => tidy(() => {
    const { loss } = model.forward({ inputIds: ids, labels: ids });
    loss!.backward();
    opt.step();
    opt.zeroGrad();
  });
  const forward = (): void => noGrad(() => tidy(() => void model.forward({ inputIds: ids, labels: ids })));
  const rate = async (fn: () => void): Promise<number> => {
    for (let i = 0; i < cfg.warmup; i++) fn();
    await gpu.sync();
    const t = performance.now();
    for (let i = 0; i < cfg.steps; i++) fn();
    await gpu.sync();
    return (cfg.batch * cfg.t * cfg.steps) / ((performance.now() - t) / 1000);
  };
  const train = await rate(step), fwd = await rate(forward);
  // Generation reads each step's logits back (the next token is chosen on the host): that round trip is part of the rate.
  const prompt: Tensor = randint(0, cfg.vocab, [1, cfg.genPrompt], { dtype: 'int32' });
  const gen = (n: number) => generate(model, prompt, { maxNewTokens: n, minNewTokens: n });
  (await gen(2)).dispose();
  const t = performance.now();
  (await gen(cfg.genTokens)).dispose();
  await gpu.sync();
  const generateRate = cfg.genTokens / ((performance.now() - t) / 1000);
  prompt.dispose();
  ids.dispose();
  return { train, forward: fwd, generate: generateRate };
}

/**
 * `npm run bench -- --device webgpu`: GEMM GFLOP/s, GPT training / forward tokens/s and batch-1 generation tokens/s on
 * the webgpu backend. On a software adapter (lavapipe, SwiftShader) the sizes shrink and the numbers only show that it
 * runs: they say nothing about GPU speed.
 */
async function benchWebGPU(): Promise<void> {
  const gpu = await initWebGPU();
  const software = gpu.ctx.isFallback;
  console.log(`bench: webgpu on ${gpu.ctx.adapterInfo}${software ? ' (a software adapter)' : ''}, Node ${process.versions.node}${quick ? ' (quick)' : ''}`);
  const gemmCases: GemmCase[] = software
    ? [square(128), square(256), ...(quick ? [] : [square(512),
      { name: 'attn QK^T 4x[128,32]x[32,128]', batch: 4, m: 128, n: 128, k: 32, transA: false, transB: true, strideA: 128 * 32, strideB: 128 * 32 }])]
    : [square(1024), square(2048), square(4096), ...GEMM.filter((c) => !c.name.match(/^\d+$/)),
      { name: 'gemv decode [1,768]x[768,3072]^T', batch: 1, m: 1, n: 3072, k: 768, transA: false, transB: true, strideA: 0, strideB: 0 }];
  const gemm: Record<string, number> = {};
  for (const c of gemmCases) {
    const a = gpu.upload(randomArray((c.strideA ? c.batch : 1) * c.m * c.k), 'float32');
    const bb = gpu.upload(randomArray((c.strideB ? c.batch : 1) * c.k * c.n), 'float32');
    gemm[c.name] = gflops(c, await timeBestGpu(() => gpu.free(gpu.matmul(a, bb, c)), gpu));
    gpu.free(a);
    gpu.free(bb);
  }
  const gptCases: GpuGptConfig[] = args.has('--no-gpt') ? [] : software
    ? [{ name: 'd64 L2 H2 T32 B4', d: 64, layers: 2, heads: 2, t: 32, batch: 4, vocab: 256, warmup: 1, steps: 2, genPrompt: 8, genTokens: quick ? 4 : 8 }]
    : [...GPT.map((c) => ({ ...c, genPrompt: 16, genTokens: 64 })),
      { name: 'GPT-2 124M T1024 B4', d: 768, layers: 12, heads: 12, t: 1024, batch: 4, vocab: 50257, warmup: 1, steps: quick ? 2 : 5, genPrompt: 16, genTokens: 64 }];
  const gpt: Record<string, { train: number; forward: number; generate: number }> = {};
  for (const cfg of gptCases) gpt[cfg.name] = await benchGptGpu(cfg, gpu);

  const results = {
    date: new Date().toISOString(),
    device: { adapter: gpu.ctx.adapterInfo, software, features: gpu.ctx.features },
    machine: { cpu: os.cpus()[0]?.model, cores: os.availableParallelism(), node: process.versions.node, loadAverage: os.loadavg() },
    gemmGflops: gemm,
    gptTokensPerSecond: gpt,
  };
  mkdirSync(join(here, 'out'), { recursive: true });
  writeFileSync(join(here, 'out', 'results-webgpu.json'), JSON.stringify(results, null, 2) + '\n');
  // Software adapters give rates below 1: keep two significant digits there.
  const fmt = (v: number | undefined) => (v === undefined ? '-' : v < 10 ? v.toPrecision(2) : v.toFixed(1));
  printTable(['GEMM (GFLOP/s)', 'webgpu'], gemmCases.map((c) => [c.name, fmt(gemm[c.name])]));
  if (gptCases.length) {
    printTable(['GPT (tokens/s)', 'training', 'forward, no grad', 'generation, batch 1'],
      gptCases.map((c) => [c.name, fmt(gpt[c.name]!.train), fmt(gpt[c.name]!.forward), fmt(gpt[c.name]!.generate)]));
  }
  if (software) console.log('note: a software adapter runs WebGPU on the CPU: these numbers show that the backend runs, not how fast a GPU is');
  console.log(`wrote ${join(here, 'out', 'results-webgpu.json')}`);
}

function printTable(head: string[], rows: string[][]): void {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((v, i) => (i === 0 ? v.padEnd(widths[i]!) : v.padStart(widths[i]!))).join('  ');
  console.log('\n' + line(head));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(line(r));
}

await main();
