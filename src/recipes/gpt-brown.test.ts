// The gpt-brown recipe: the window plans, a smoke run to results.json and a Hugging Face folder, the export's layout, resuming, the PyTorch reference (when torch is installed) and bad options.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { generateCommand } from '../cli/hf.js';
import { trainCommand } from '../cli/train.js';
import { readSafetensorsHeader } from '../io/safetensors.js';
import { loadBrown } from '../data/brown.js';
import { AutoModelForCausalLM } from '../models/auto.js';
import { AutoTokenizer } from '../tokenizers/tokenizer.js';
import {
  batchesPerEpoch, compareWithTorch, CURVES_FILE, documentText, EOT_ID, epochWindows, EXPORT, gptBrownRecipe, planSource, TORCH_METRICS_FILE, TRAIN_GAP_LIMIT, trainPlan,
  VALIDATION_CURVES_FILE, validationWindows, type ExportManifest, type GptBrownOptions,
} from './gpt-brown.js';

const PYTHON = '/usr/bin/python3';
const SCRIPT = fileURLToPath(new URL('../../reference/gpt_brown.py', import.meta.url));
const hasTorch = existsSync(PYTHON) && spawnSync(PYTHON, ['-c', 'import torch, numpy'], { stdio: 'ignore' }).status === 0;

const tempDir = async (name: string) => join(await mkdtemp(join(tmpdir(), 'attend-gpt-brown-')), name);
const json = (path: string) => JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
const records = (path: string) => readFileSync(path, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number | string>);
/** A raw little-endian array file as numbers. */
function readArray(path: string, dtype: 'uint16' | 'int32'): number[] {
  const b = readFileSync(path);
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const size = dtype === 'uint16' ? 2 : 4;
  return Array.from({ length: b.byteLength / size }, (_, i) => (dtype === 'uint16' ? view.getUint16(2 * i, true) : view.getInt32(4 * i, true)));
}

describe('windows', () => {
  test('an epoch: windows of T + 1 inside the stream, on one phase, each once, in an order fixed by (seed, epoch)', () => {
    const n = 1000, T = 16, B = 4;
    const w = Array.from(epochWindows(n, T, B, 3, 0));
    const K = Math.floor((n - T) / T); // 61 windows fit whatever the phase
    expect(w).toHaveLength(Math.floor(K / B) * B);
    expect(batchesPerEpoch(n, T, B)).toBe(15);
    const phase = w[0]! % T;
    for (const s of w) {
      expect(s % T).toBe(phase);
      expect(s).toBeGreaterThanOrEqual(0);
      expect(s + T + 1).toBeLessThanOrEqual(n);
    }
    expect(new Set(w).size).toBe(w.length);
    expect(Array.from(epochWindows(n, T, B, 3, 0))).toEqual(w);
    expect(Array.from(epochWindows(n, T, B, 3, 1))).not.toEqual(w);
    expect(Array.from(epochWindows(n, T, B, 4, 0))).not.toEqual(w);
    expect(() => epochWindows(60, 16, 4, 0, 0)).toThrow(/fewer than one batch of 4 windows of 17 tokens/);
  });

  test('the plan runs epoch after epoch; the source yields its rows from any position', async () => {
    const n = 300, T = 8, B = 3, steps = 25, seed = 1;
    const perEpoch = batchesPerEpoch(n, T, B); // floor(36 / 3) = 12
    expect(perEpoch).toBe(12);
    const plan = trainPlan(n, T, B, steps, seed);
    expect(Array.from(plan.subarray(0, perEpoch * B))).toEqual(Array.from(epochWindows(n, T, B, seed, 0)));
    expect(Array.from(plan.subarray(perEpoch * B, 2 * perEpoch * B))).toEqual(Array.from(epochWindows(n, T, B, seed, 1)));
    expect(Array.from(plan.subarray(2 * perEpoch * B))).toEqual(Array.from(epochWindows(n, T, B, seed, 2).subarray(0, B)));

    const stream = Uint16Array.from({ length: n }, (_, i) => i);
    const source = planSource(stream, plan, T, B, 'cpu');
    expect(source.length).toBe(perEpoch);
    const rows: number[][][] = [];
    for await (const b of source.batches(1, 10)) {
      const x = (await b.inputIds.tolist()) as number[][], y = (await b.targets.tolist()) as number[][];
      y.forEach((r, i) => expect(r).toEqual(x[i]!.map((v) => v + 1)));
      rows.push(x);
      b.inputIds.dispose();
      b.targets.dispose();
    }
    expect(rows.map((x) => x.map((r) => r[0]))).toEqual([22, 23].map((g) => Array.from(plan.subarray(g * B, (g + 1) * B))));
    const last: number[] = [];
    for await (const b of source.batches(2, 0)) { last.push(b.inputIds.shape[0]!); b.inputIds.dispose(); b.targets.dispose(); }
    expect(last).toEqual([B]); // the plan ends at step 25
  });

  test('validation windows: non-overlapping, spread evenly, all of them with 0', () => {
    expect(Array.from(validationWindows(100, 10, 0))).toEqual([0, 10, 20, 30, 40, 50, 60, 70, 80]);
    expect(Array.from(validationWindows(100, 10, 3))).toEqual([0, 30, 60]);
    expect(Array.from(validationWindows(100, 10, 50))).toHaveLength(9);
    expect(() => validationWindows(10, 10, 0)).toThrow(/not one window of 11/);
  });
});

describe('the recipe', () => {
  test('--smoke trains, samples, writes results.json, a Hugging Face folder and the export; --stop-after then --resume ends where one run does', async () => {
    const dir = await tempDir('run');
    const started = Date.now();
    let printed = '';
    await trainCommand.run(['gpt-brown', '--smoke', '--out', dir], (t) => { printed += t; });
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(printed).toContain('saved');
    const results = json(join(dir, 'results.json'));
    const v = results['validation'] as { step: number; loss: number; perplexity: number };
    expect(v.step).toBe(4);
    expect(v.loss).toBeGreaterThan(0);
    expect(v.perplexity).toBeCloseTo(Math.exp(v.loss), 6);
    expect(results['steps']).toBe(4);
    expect(results['samples']).toHaveLength(3);
    const evals = records(join(dir, 'metrics.jsonl')).filter((r) => r['kind'] === 'eval');
    expect(evals.map((r) => r['step'])).toEqual([2, 4]);
    expect(Object.keys(evals[0]!).sort()).toEqual(['kind', 'loss', 'perplexity', 'step']);

    // The export: every array as its manifest describes it.
    const m = json(join(dir, EXPORT.manifest)) as unknown as ExportManifest;
    const o = { ...gptBrownRecipe.defaults, ...gptBrownRecipe.smoke };
    expect(m.format).toBe('attend-gpt-brown-export');
    expect(m.training).toMatchObject({ steps: 4, batchSize: o.batchSize, seqLen: o.seqLen, lr: o.lr, schedule: 'cosine', betas: [0.9, 0.95] });
    // Hugging Face's weight-decay grouping, for the reference to use: biases and layer norms (1 layer) without decay.
    expect(m.training.noDecay).toEqual(['transformer.h.0.ln_1.weight', 'transformer.h.0.ln_1.bias', 'transformer.h.0.ln_2.weight', 'transformer.h.0.ln_2.bias',
      'transformer.ln_f.weight', 'transformer.ln_f.bias', 'transformer.h.0.attn.c_attn.bias', 'transformer.h.0.attn.c_proj.bias',
      'transformer.h.0.mlp.c_fc.bias', 'transformer.h.0.mlp.c_proj.bias']);
    expect(m.model).toMatchObject({ vocab_size: 300, n_positions: o.seqLen, n_embd: o.nEmbd, n_layer: o.nLayer, n_head: o.nHead, activation_function: 'gelu_new' });
    const data = results['data'] as { tokens: { train: number; validation: number }; validationWindows: number };
    expect(m.arrays.train).toEqual({ file: 'train.bin', dtype: 'uint16', shape: [data.tokens.train] });
    expect(m.arrays.val).toEqual({ file: 'val.bin', dtype: 'uint16', shape: [data.tokens.validation] });
    expect(m.arrays.batches).toEqual({ file: 'batches.bin', dtype: 'int32', shape: [4, o.batchSize] });
    expect(m.arrays.valWindows).toEqual({ file: 'val_windows.bin', dtype: 'int32', shape: [data.validationWindows] });
    for (const spec of Object.values(m.arrays)) {
      expect(statSync(join(dir, spec.file)).size).toBe(spec.shape.reduce((a, b) => a * b, 1) * (spec.dtype === 'uint16' ? 2 : 4));
    }
    const train = readArray(join(dir, 'train.bin'), 'uint16');
    expect(train.at(-1)).toBe(EOT_ID);
    expect(train.reduce((a, b) => Math.max(a, b), 0)).toBeLessThan(300);
    expect(readArray(join(dir, 'batches.bin'), 'int32')).toEqual(Array.from(trainPlan(train.length, o.seqLen, o.batchSize, 4, o.seed)));
    const valLength = data.tokens.validation;
    for (const s of readArray(join(dir, 'val_windows.bin'), 'int32')) expect(s + o.seqLen + 1).toBeLessThanOrEqual(valLength);
    const init = await readSafetensorsHeader(join(dir, 'init.safetensors'));
    expect(Object.keys(init.tensors)).toContain('transformer.h.0.attn.c_attn.weight');
    expect(init.tensors['transformer.h.0.attn.c_attn.weight']).toMatchObject({ dtype: 'F32', shape: [o.nEmbd, 3 * o.nEmbd] });
    expect(Object.keys(init.tensors)).not.toContain('lm_head.weight'); // tied, left out as Hugging Face does

    // The Hugging Face folder: the tokenizer decodes the stream back to text, and `attend generate` runs on it.
    const tok = await AutoTokenizer.fromPretrained(dir);
    expect(tok.eosTokenId).toBe(EOT_ID);
    const firstDoc = tok.decode(train.slice(0, train.indexOf(EOT_ID)));
    expect((await loadBrown()).map(documentText)).toContain(firstDoc);
    const model = await AutoModelForCausalLM.fromPretrained(dir);
    expect(model.numParameters()).toBe((results['model'] as { parameters: number }).parameters);
    let generated = '';
    await generateCommand.run(['--model', dir, '--max-new-tokens', '3', 'The'], (t) => { generated += t; });
    expect(generated.startsWith('The')).toBe(true);

    // An interrupted run: --stop-after 2 leaves a checkpoint, --resume finishes it with the same numbers.
    const split = await tempDir('split');
    await trainCommand.run(['gpt-brown', '--smoke', '--out', split, '--stop-after', '2'], () => undefined);
    const half = json(join(split, 'results.json'));
    expect(half).toMatchObject({ steps: 2, stopped: true });
    await expect(trainCommand.run(['gpt-brown', '--smoke', '--out', split], () => undefined)).rejects.toThrow(/already holds a checkpoint/);
    const manifestBefore = readFileSync(join(split, EXPORT.manifest), 'utf8');
    await expect(trainCommand.run(['gpt-brown', '--smoke', '--out', split, '--resume', '--lr', '0.01'], () => undefined)).rejects.toThrow(/made with other data or training options/);
    expect(readFileSync(join(split, EXPORT.manifest), 'utf8')).toBe(manifestBefore);
    await trainCommand.run(['gpt-brown', '--smoke', '--out', split, '--resume'], () => undefined);
    const resumed = json(join(split, 'results.json'));
    expect(resumed).toMatchObject({ steps: 4, stopped: false });
    expect(resumed['validation']).toEqual(results['validation']);
    const strip = (rs: Record<string, number | string>[]) => rs.map(({ tokensPerSecond: _, ...r }) => r);
    expect(strip(records(join(split, 'metrics.jsonl')))).toEqual(strip(records(join(dir, 'metrics.jsonl'))));

    if (!hasTorch) return;
    // The PyTorch reference on the smoke export: from the same weights and batches, the same losses.
    const py = spawnSync(PYTHON, [SCRIPT, dir], { encoding: 'utf8' });
    expect(py.status, py.stderr).toBe(0);
    const torchRecords = records(join(dir, TORCH_METRICS_FILE));
    const ours = records(join(dir, 'metrics.jsonl'));
    expect(torchRecords.map((r) => [r['kind'], r['step'], r['lr']])).toEqual(ours.map((r) => [r['kind'], r['step'], r['lr']]));
    torchRecords.forEach((r, i) => expect(Math.abs((r['loss'] as number) - (ours[i]!['loss'] as number))).toBeLessThan(1e-4));
    const out = await tempDir('pictures');
    const c = await compareWithTorch(dir, [out]);
    expect(Math.abs(c.relativeDifference)).toBeLessThan(1e-4);
    expect(c.trainLoss.steps).toEqual([1, 2, 3, 4]);
    expect(c.trainLoss.maxRelativeGap).toBeLessThan(TRAIN_GAP_LIMIT);
    expect(c.attend.step).toBe(4);
    for (const f of [CURVES_FILE, VALIDATION_CURVES_FILE]) expect(readFileSync(join(out, f), 'utf8')).toContain('PyTorch validation');
  }, 120_000);

  test.skipIf(!hasTorch)('the PyTorch reference compiles', () => {
    const r = spawnSync(PYTHON, ['-m', 'py_compile', SCRIPT], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
  });

  test('the comparison names what is missing or inconsistent', async () => {
    const dir = await tempDir('compare');
    await expect(compareWithTorch(dir, [])).rejects.toThrow(/metrics.jsonl: cannot read it/);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'metrics.jsonl'), `${JSON.stringify({ kind: 'train', step: 10, loss: 5 })}\n${JSON.stringify({ kind: 'eval', step: 10, loss: 4 })}\n`);
    writeFileSync(join(dir, TORCH_METRICS_FILE), `${JSON.stringify({ kind: 'eval', step: 5, loss: 4.1 })}\n`);
    await expect(compareWithTorch(dir, [])).rejects.toThrow(/ended at different steps \(attend 10, PyTorch 5\)/);
    writeFileSync(join(dir, TORCH_METRICS_FILE), `${JSON.stringify({ kind: 'eval', step: 10, loss: 4.1 })}\nnot json\n`);
    await expect(compareWithTorch(dir, [])).rejects.toThrow(/torch-metrics.jsonl: line 2 is not JSON/);
    writeFileSync(join(dir, TORCH_METRICS_FILE), `${JSON.stringify({ kind: 'train', step: 10, loss: 5.2 })}\n${JSON.stringify({ kind: 'eval', step: 10, loss: 4.1 })}\n`);
    const c = await compareWithTorch(dir, [dir]);
    expect(c.relativeDifference).toBeCloseTo(0.025, 10);
    expect(c.maxRelativeDifference).toBeCloseTo(0.025, 10);
    expect(c.trainLoss.steps).toEqual([10]);
    expect(c.trainLoss.maxRelativeGap).toBeCloseTo(0.04, 10);
    expect(c.trainLoss.worstStep).toBe(10);
    expect(existsSync(join(dir, CURVES_FILE))).toBe(true);
  });

  test('bad options are errors that name the option, before anything is written', async () => {
    const dir = await tempDir('never');
    const ctx = { outDir: dir, resume: false, log: () => undefined };
    const smoke = (o: Partial<GptBrownOptions>): GptBrownOptions => ({ ...gptBrownRecipe.defaults, ...gptBrownRecipe.smoke, ...o });
    const cases: [Partial<GptBrownOptions>, RegExp][] = [
      [{ nHead: 3 }, /--n-head \(3\) must divide --n-embd \(16\)/],
      [{ steps: 2.5 }, /--steps must be a positive integer, got 2.5/],
      [{ vocabSize: 100 }, /--vocab-size must be an integer from 257/],
      [{ vocabSize: 70000 }, /--vocab-size must be an integer from 257/],
      [{ valFraction: 1 }, /--val-fraction must be a fraction between 0 and 1/],
      [{ dropout: 1 }, /--dropout must be in \[0, 1\)/],
      [{ lr: 0 }, /--lr must be a positive number/],
      [{ minLr: 1 }, /--min-lr must be in \[0, --lr\]/],
      [{ warmupSteps: 10 }, /--warmup-steps \(10\) is more than --steps \(4\)/],
      [{ stopAfter: 5 }, /--stop-after \(5\) is past --steps \(4\)/],
      [{ prompts: ' | ' }, /--prompts must hold at least one prompt/],
      [{ maxDocs: 3 }, /3 documents leave a split empty/],
      [{ seqLen: 100_000 }, /the training stream has \d+ tokens: fewer than one batch/],
    ];
    for (const [o, message] of cases) await expect(gptBrownRecipe.run(smoke(o), ctx)).rejects.toThrow(message);
    expect(existsSync(dir)).toBe(false);
    await expect(gptBrownRecipe.run(smoke({}), { ...ctx, resume: true })).rejects.toThrow(/--resume: .* holds no checkpoint/);
    expect(existsSync(dir)).toBe(false);
  });
});
