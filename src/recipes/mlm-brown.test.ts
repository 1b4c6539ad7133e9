// The mlm-brown recipe: packing, BERT's 80/10/10 masking, deterministic batches, a smoke run that fill-mask and `spam --init` load, and bad options.

import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { fillMaskCommand } from '../cli/hf.js';
import { trainCommand } from '../cli/train.js';
import { Generator } from '../tensor/random.js';
import { maskSequence, mlmBatches, mlmBrownRecipe, packSentences, type MlmBatch, type MlmOptions } from './mlm-brown.js';
import { parseRecipeArgs } from './recipe.js';
import { spamRecipe, type SpamOptions } from './spam.js';

describe('data', () => {
  test('packing: consecutive sentences while they fit, long sentences cut, never across documents', () => {
    const CLS = 2, SEP = 3;
    // maxLength 6 leaves room for 4 tokens between [CLS] and [SEP].
    const docs = [[[10, 11], [12], [13, 14]], [[20, 21, 22, 23, 24, 25, 26, 27, 28, 29]], [[30]]];
    expect(packSentences(docs, 6, CLS, SEP)).toEqual([
      [CLS, 10, 11, 12, SEP], [CLS, 13, 14, SEP],
      [CLS, 20, 21, 22, 23, SEP], [CLS, 24, 25, 26, 27, SEP], [CLS, 28, 29, SEP],
      [CLS, 30, SEP],
    ]);
    expect(packSentences([[]], 6, CLS, SEP)).toEqual([]);
  });

  test('masking: 15% of regular tokens chosen, 80% [MASK], 10% random, 10% kept; specials never; at least one per sequence', () => {
    const o = { maskProb: 0.15, maskId: 4, vocabSize: 1000, firstRegularId: 5 };
    const gen = new Generator(1);
    let tokens = 0, chosen = 0, masked = 0, kept = 0, random = 0;
    for (let s = 0; s < 400; s++) {
      const ids = [2, ...Array.from({ length: 126 }, (_, i) => 5 + ((s * 131 + i * 7) % 995)), 3];
      const m = maskSequence(ids, gen, o);
      tokens += 126;
      chosen += m.positions.length;
      expect(m.positions.every((t) => t > 0 && t < 127)).toBe(true);
      expect(m.input[0]).toBe(2);
      expect(m.input[127]).toBe(3);
      m.positions.forEach((t, i) => {
        expect(m.targets[i]).toBe(ids[t]);
        if (m.input[t] === 4) masked++;
        else if (m.input[t] === ids[t]) kept++;
        else { random++; expect(m.input[t]).toBeGreaterThanOrEqual(5); }
      });
      expect(m.input.filter((id, t) => id !== ids[t] && !m.positions.includes(t))).toEqual([]);
    }
    expect(chosen / tokens).toBeGreaterThan(0.14);
    expect(chosen / tokens).toBeLessThan(0.16);
    expect(masked / chosen).toBeCloseTo(0.8, 1);
    expect(random / chosen).toBeCloseTo(0.1, 1);
    expect(kept / chosen).toBeCloseTo(0.1, 1);
    // A sequence too short for 15% to choose anything still gets one target.
    for (let i = 0; i < 20; i++) expect(maskSequence([2, 50, 3], gen, o).positions).toEqual([1]);
  });

  test('batches: every sequence once per epoch, the same for the same (epoch, seed), masked afresh each epoch', () => {
    const seqs = Array.from({ length: 10 }, (_, s) => [2, ...Array.from({ length: 20 }, (_, i) => 5 + s * 20 + i), 3]);
    const factory = mlmBatches(seqs, 4, { maskProb: 0.15, maskId: 4, vocabSize: 300, firstRegularId: 5 });
    const epoch = (e: number) => [...(factory(e, 7) as Iterable<MlmBatch>)];
    const e0 = epoch(0);
    expect(e0.map((b) => b.B)).toEqual([4, 4, 2]);
    expect(epoch(0)).toEqual(e0);
    // Putting the targets back gives the original sequences, each once.
    const rows = e0.flatMap((b) => {
      const restored = Array.from(b.input);
      b.positions.forEach((p, i) => { restored[p] = b.targets[i]!; });
      return Array.from({ length: b.B }, (_, r) => restored.slice(r * b.T, (r + 1) * b.T).filter((id) => id !== 0));
    });
    expect(rows.sort((a, b) => a[1]! - b[1]!)).toEqual(seqs);
    expect(epoch(1)).not.toEqual(e0);
  });
});

describe('the recipe', () => {
  let base: string;
  let dir: string;
  beforeAll(async () => {
    base = await mkdtemp(join(tmpdir(), 'attend-mlm-'));
    dir = join(base, 'mlm');
    await trainCommand.run(['mlm-brown', '--smoke', '--out', dir], () => undefined);
  });

  test('--smoke pretrains and saves results.json and a folder that attend fill-mask reads', async () => {
    const results = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as Record<string, unknown>;
    expect(Object.keys(results)).toEqual(expect.arrayContaining(['data', 'tokenizer', 'model', 'steps', 'epochs', 'validation', 'fillMask', 'seconds', 'wallSeconds']));
    const v = results['validation'] as Record<string, number>;
    expect(v['loss']).toBeGreaterThan(0);
    expect(v['perplexity']).toBeCloseTo(Math.exp(v['loss']!));
    expect(v['accuracy']).toBeGreaterThanOrEqual(0);
    expect(results['steps']).toBe(6);
    expect(results['data']).toMatchObject({ documents: 6, trainDocuments: 4, validationDocuments: 2 });
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'metrics.jsonl', 'loss.svg']) expect(existsSync(join(dir, f))).toBe(true);
    let printed = '';
    await fillMaskCommand.run(['--model', dir, '--top-k', '3', 'The [MASK] of the jury said.'], (s) => { printed += s; });
    expect(printed).toMatch(/^\[MASK\] at token 2:\n( {2}\d\.\d{4} {2}\S+\n){3}$/);
  });

  test('spam --init loads the smoke checkpoint\'s encoder and tokenizer and trains end to end', async () => {
    const out = join(base, 'spam');
    await trainCommand.run(['spam', '--smoke', '--init', dir, '--out', out], () => undefined);
    const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as Record<string, unknown>;
    expect(results['model']).toMatchObject({ init: dir, initialisedTensors: 21 });
    expect(results['tokenizer']).toMatchObject({ source: `--init ${dir}` });
    expect((results['test'] as Record<string, number>)['examples']).toBe(190);
    expect(readFileSync(join(out, 'tokenizer.json'), 'utf8')).toBe(readFileSync(join(dir, 'tokenizer.json'), 'utf8'));
  });

  test('spam --init of another shape is an error naming the field and the option', async () => {
    const never = join(base, 'never');
    const ctx = { outDir: never, resume: false, log: () => undefined };
    const smoke = (o: Partial<SpamOptions>): SpamOptions => ({ ...spamRecipe.defaults, ...spamRecipe.smoke, init: dir, ...o });
    await expect(spamRecipe.run(smoke({ hidden: 32 }), ctx)).rejects.toThrow(/has hidden_size 16, this run builds 32 \(from --hidden\)/);
    await expect(spamRecipe.run(smoke({ maxLength: 64 }), ctx)).rejects.toThrow(/has max_position_embeddings 32, this run builds 64 \(from --max-length\)/);
    await expect(spamRecipe.run(smoke({ layers: 2 }), ctx)).rejects.toThrow(/has num_hidden_layers 1, this run builds 2/);
    expect(existsSync(never)).toBe(false);
  });

  test('bad options are errors, before anything is written', async () => {
    expect(() => parseRecipeArgs(mlmBrownRecipe, ['--mask', '0.2'], true)).toThrow(/unknown option --mask; options: --seed/);
    const never = join(base, 'never');
    const ctx = { outDir: never, resume: false, log: () => undefined };
    const smoke = (o: Partial<MlmOptions>): MlmOptions => ({ ...mlmBrownRecipe.defaults, ...mlmBrownRecipe.smoke, ...o });
    const cases: [Partial<MlmOptions>, RegExp][] = [
      [{ maskProb: 0 }, /--mask-prob must be in \(0, 1\)/],
      [{ tokenizerText: 'wiki' }, /--tokenizer-text must be 'brown' or 'brown\+spam', got wiki/],
      [{ steps: 0 }, /--steps must be a positive integer/],
      [{ heads: 3 }, /--heads \(3\) must divide --hidden \(16\)/],
      [{ maxDocs: 1 }, /1 documents leave no (training|validation) document/],
    ];
    for (const [o, message] of cases) await expect(mlmBrownRecipe.run(smoke(o), ctx)).rejects.toThrow(message);
    expect(existsSync(never)).toBe(false);
  });
});
