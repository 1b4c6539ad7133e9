// `npm run bench:memory [-- --device wasm --steps 2000 --tidy]`: a 3M-parameter GPT trained PyTorch-style (forward,
// backward, step, zeroGrad, await loss.item(); no tidy, no dispose) — prints live bytes, live tensors and process
// RSS every 100 steps, and whether both stayed flat over the second half of the run. --tidy wraps each step in
// tidy() instead, to measure what reclamation costs against explicit disposal.

import { AdamW, GPT2LMHeadModel, manualSeed, memory, randint, ready, tidy } from '../src/index.js';

function option(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : dflt;
}

await ready();
const device = option('device', 'wasm');
const steps = Number(option('steps', '2000'));
const useTidy = process.argv.includes('--tidy');
manualSeed(0);
// 3.09M parameters: 6 layers of width 192 (2.67M) plus a 2,048-token embedding (tied with the head) and 128 positions.
const model = new GPT2LMHeadModel({ vocab_size: 2048, n_positions: 128, n_embd: 192, n_layer: 6, n_head: 6 }).to(device);
const nParams = model.parameters().reduce((n, p) => n + p.numel(), 0);
const opt = new AdamW(model.parameters(), { lr: 3e-4 });
const ids = randint(0, 2048, [8, 128], { device });
const mb = (n: number) => (n / 2 ** 20).toFixed(1);
console.log(`GPT ${(nParams / 1e6).toFixed(2)}M parameters on ${device}, batch [8, 128], ${steps} steps, ${useTidy ? 'each step in tidy()' : 'no tidy'}`);
const rows: { step: number; live: number; rss: number }[] = [];
const t0 = performance.now();
for (let step = 1; step <= steps; step++) {
  const value = useTidy
    ? await tidy(async () => {
      const { loss } = model.forward({ inputIds: ids, labels: ids });
      loss!.backward();
      opt.step();
      opt.zeroGrad();
      return loss!.item();
    })
    : await (async () => {
      const { loss } = model.forward({ inputIds: ids, labels: ids });
      loss!.backward();
      opt.step();
      opt.zeroGrad();
      return loss!.item();
    })();
  const m = memory();
  rows.push({ step, live: m.devices[device]!.bytes, rss: process.memoryUsage().rss });
  if (step % 100 === 0 || step === 1) {
    const s = (performance.now() - t0) / 1000;
    console.log(`step ${step}: loss ${value.toFixed(4)}, live ${mb(m.devices[device]!.bytes)} MiB in ${m.tensors} tensors, rss ${mb(process.memoryUsage().rss)} MiB, reclaims ${m.reclaims}, ${s.toFixed(0)} s`);
  }
}
const half = rows.slice(Math.floor(rows.length / 2));
const firstQ = half.slice(0, Math.floor(half.length / 2)), lastQ = half.slice(Math.floor(half.length / 2));
const peak = (r: typeof rows, k: 'live' | 'rss') => Math.max(...r.map((x) => x[k]));
for (const k of ['live', 'rss'] as const) {
  const a = peak(firstQ, k), b = peak(lastQ, k);
  console.log(`${k}: peak ${mb(a)} MiB over steps ${firstQ[0]!.step}-${firstQ[firstQ.length - 1]!.step}, ${mb(b)} MiB over ${lastQ[0]!.step}-${lastQ[lastQ.length - 1]!.step} (${((b / a - 1) * 100).toFixed(1)}%)`);
}
const m = memory();
console.log(`${((performance.now() - t0) / steps).toFixed(1)} ms per step; ${m.reclaims} reclamations took ${(m.reclaimMs / steps).toFixed(1)} ms per step`);
