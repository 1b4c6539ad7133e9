// The quick-start job: a byte-level GPT-2 trained on the Brown corpus for a few hundred steps, then sampled.

import { noGrad } from '../autograd/engine.js';
import { softmax } from '../autograd/ops/nn.js';
import { loadBrown } from '../data/brown.js';
import { GPT2LMHeadModel } from '../models/gpt2.js';
import { clipGradNorm } from '../optim/clip.js';
import { AdamW } from '../optim/adamw.js';
import { cosineSchedule } from '../optim/schedule.js';
import { getDefaultDevice } from '../tensor/backend.js';
import { tensor } from '../tensor/create.js';
import { Generator, manualSeed } from '../tensor/random.js';
import { tidy } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';

export interface DemoOptions {
  steps: number;
  device?: string;
  seed: number;
}

const B = 16, T = 64;

/** Random windows of T + 1 bytes: inputs are the first T, targets come from the shifted labels. */
function batch(data: Uint8Array, gen: Generator, device: string) {
  const starts = gen.integers(0, data.length - T - 1, B);
  const ids = new Int32Array(B * T);
  starts.forEach((s, b) => { for (let t = 0; t < T; t++) ids[b * T + t] = data[s + t]!; });
  return tensor(ids, { shape: [B, T], device });
}

async function sample(model: GPT2LMHeadModel, prompt: string, n: number, gen: Generator, device: string): Promise<string> {
  const bytes = [...new TextEncoder().encode(prompt)];
  const cache = model.newCache();
  let input = bytes;
  for (let i = 0; i < n; i++) {
    const probs = noGrad(() => tidy(() => {
      const logits = model.forward({ inputIds: tensor(new Int32Array(input), { shape: [1, input.length], device }), pastKeyValues: cache }).logits;
      return softmax(logits.select(1, -1).div(0.8), -1); // temperature 0.8
    }));
    const p = await probs.data();
    probs.dispose();
    let u = gen.uniform(1)[0]!, next = 0;
    while (next < p.length - 1 && (u -= p[next]!) > 0) next++;
    bytes.push(next);
    input = [next];
  }
  cache.forEach((c) => c.dispose());
  return new TextDecoder().decode(new Uint8Array(bytes));
}

/** Brown as bytes: every 20th document held out for validation (a deterministic 95 / 5 split). */
export async function demoData(): Promise<{ train: Uint8Array; val: Uint8Array }> {
  const docs = await loadBrown();
  const enc = new TextEncoder();
  const text = (keep: (i: number) => boolean) => enc.encode(docs.filter((_, i) => keep(i)).flatMap((d) => d.sentences).join('\n'));
  return { train: text((i) => i % 20 !== 0), val: text((i) => i % 20 === 0) };
}

/** The demo's model, seeded: GPT-2, 2 layers, width 64, bytes as tokens. */
export function demoModel(device: string, seed: number): GPT2LMHeadModel {
  manualSeed(seed);
  const model = new GPT2LMHeadModel({ vocab_size: 256, n_positions: 256, n_embd: 64, n_layer: 2, n_head: 4, embd_pdrop: 0, attn_pdrop: 0, resid_pdrop: 0 });
  return model.to(device);
}

/**
 * Trains `model` `steps` AdamW steps (the demo's schedule) on random windows of `train` drawn from a generator seeded
 * by `seed`; `onStep` sees each step's loss (a tensor, disposed after the call). Returns the generator, to go on sampling.
 */
export async function trainDemo(model: GPT2LMHeadModel, train: Uint8Array, opts: DemoOptions, onStep?: (step: number, loss: Tensor) => Promise<void>): Promise<Generator> {
  const device = opts.device ?? getDefaultDevice();
  model.train();
  const opt = new AdamW(model.parameters(), { lr: 3e-3, weightDecay: 0.01 });
  const lr = cosineSchedule({ maxLr: 3e-3, minLr: 3e-4, warmupSteps: Math.min(30, opts.steps), totalSteps: opts.steps });
  const gen = new Generator(opts.seed);
  for (let step = 1; step <= opts.steps; step++) {
    for (const g of opt.paramGroups) g.lr = lr(step);
    const loss = tidy(() => {
      const ids = batch(train, gen, device);
      const out = model.forward({ inputIds: ids, labels: ids });
      out.loss!.backward();
      clipGradNorm(model.parameters(), 1);
      opt.step();
      opt.zeroGrad();
      return out.loss!;
    });
    await onStep?.(step, loss);
    loss.dispose();
  }
  return gen;
}

export async function runDemo(opts: DemoOptions): Promise<void> {
  const device = opts.device ?? getDefaultDevice();
  const { train, val } = await demoData();
  console.log(`Brown corpus: ${(train.length / 1e6).toFixed(2)} MB train, ${(val.length / 1e6).toFixed(2)} MB validation (bytes as tokens)`);
  const model = demoModel(device, opts.seed);
  console.log(`model: GPT-2, 2 layers, width 64, ${model.numParameters().toLocaleString()} parameters, on ${device}`);
  const started = Date.now();
  const gen = await trainDemo(model, train, { ...opts, device }, async (step, loss) => {
    if (step % 25 === 0 || step === 1) {
      const secs = (Date.now() - started) / 1000;
      console.log(`step ${String(step).padStart(4)}  loss ${(await loss.item()).toFixed(3)}  ${((step * B * T) / secs).toFixed(0)} tokens/s`);
    }
  });
  model.eval();
  const valGen = new Generator(12345);
  let total = 0;
  const evalBatches = 10;
  for (let i = 0; i < evalBatches; i++) {
    total += await noGrad(() => tidy(() => {
      const ids = batch(val, valGen, device);
      return model.forward({ inputIds: ids, labels: ids }).loss!;
    })).item();
  }
  const valLoss = total / evalBatches;
  console.log(`validation loss ${valLoss.toFixed(3)} nats/byte (${(valLoss / Math.LN2).toFixed(2)} bits per byte; uniform would be 8)`);
  for (const prompt of ['The ', 'He said ', 'In the ']) console.log(`> ${(await sample(model, prompt, 80, gen, device)).replace(/\n/g, ' / ')}`);
}
