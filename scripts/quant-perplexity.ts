// Perplexity of a gpt-brown run on its held-out Brown text in float32, Q8_0 and Q4_0 (GPT-2's Conv1D projections quantized; then the tied embedding too): npx tsx scripts/quant-perplexity.ts [RUN_DIR] [MAX_TOKENS]

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { initWasm } from '../src/index.js';
import { noGrad } from '../src/autograd/engine.js';
import { AutoModelForCausalLM } from '../src/models/auto.js';
import { Conv1D, GPT2LMHeadModel } from '../src/models/gpt2.js';
import { modelBytes } from '../src/quant/quant-linear.js';
import { quantizeGpt2 } from '../src/quant/quantize-gpt2.js';
import { tensor } from '../src/tensor/create.js';

const runDir = process.argv[2] ?? 'runs/gpt-brown';
const maxTokens = Number(process.argv[3] ?? Infinity);
await initWasm({ setDefault: true });

// val.bin: the recipe's held-out documents as one uint16 stream (little-endian), the same text its validation loss reads.
const raw = await readFile(join(runDir, 'val.bin'));
const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
const val = Int32Array.from({ length: Math.min(raw.byteLength / 2, maxTokens) }, (_, i) => view.getUint16(2 * i, true));

async function load(): Promise<GPT2LMHeadModel> {
  const m = await AutoModelForCausalLM.fromPretrained(runDir);
  if (!(m instanceof GPT2LMHeadModel)) throw new Error(`${runDir}: expected a GPT-2 model`);
  return m;
}

/** exp(mean next-token loss) over consecutive windows of the context length (context - 1 predictions each). */
async function perplexity(model: GPT2LMHeadModel): Promise<{ perplexity: number; predictions: number }> {
  const T = model.config.n_positions, windows = Math.floor(val.length / T), B = 16;
  let total = 0;
  for (let w = 0; w < windows; w += B) {
    const n = Math.min(B, windows - w);
    const batch = tensor(val.subarray(w * T, (w + n) * T), { shape: [n, T], dtype: 'int32' });
    total += n * (await noGrad(() => model.forward({ inputIds: batch, labels: batch }).loss!).item());
    batch.dispose();
  }
  return { perplexity: Math.exp(total / windows), predictions: windows * (T - 1) };
}

const TARGETS = { q8_0: 0.005, q4_0: 0.05 } as const;

const base = await load();
const f32 = await perplexity(base);
console.log(`${runDir}: GPT-2, ${base.numParameters().toLocaleString('en-US')} parameters; ${f32.predictions.toLocaleString('en-US')} held-out tokens predicted`);
console.log(`float32          perplexity ${f32.perplexity.toFixed(3)}  weights ${modelBytes(base).toLocaleString('en-US')} bytes`);
for (const embeddings of [false, true]) {
  for (const type of ['q8_0', 'q4_0'] as const) {
    const m = await load();
    const report = await quantizeGpt2(m, type, { conv1d: Conv1D, embeddings });
    const p = await perplexity(m);
    const gap = p.perplexity / f32.perplexity - 1;
    const what = `${type}${embeddings ? ' + wte/lm_head' : ''}`.padEnd(20);
    // Issue 12's targets: Q8_0 within 0.5% of float32, Q4_0 within 5%.
    const target = TARGETS[type], verdict = Math.abs(gap) <= target ? 'met' : 'NOT met';
    console.log(`${what}perplexity ${p.perplexity.toFixed(3)}  ${gap >= 0 ? '+' : ''}${(100 * gap).toFixed(3)}% (target within ${100 * target}%: ${verdict})  weights ${report.bytesAfter.toLocaleString('en-US')} bytes (${report.quantized.length} layers quantized)`);
  }
}
