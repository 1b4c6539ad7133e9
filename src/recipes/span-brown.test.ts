// The span-brown recipe: letters and vocabulary, chunks, span-corruption batches, a smoke run to results.json, --resume, and bad options.

import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { trainCommand } from '../cli/train.js';
import { computeInputAndTargetLengths, sentinelId } from '../data/span-corruption.js';
import { EOS, PHONEMES, START } from './g2p.js';
import { RECIPES } from './index.js';
import { parseRecipeArgs } from './recipe.js';
import { brownLetters, chunkDocuments, spanBatches, spanBrownRecipe, spanBrownVocab, type SpanBatch, type SpanBrownOptions } from './span-brown.js';

describe('data', () => {
  test('Brown as letters: upper case, words of A-Z and apostrophes, one space between', () => {
    const doc = { id: 'x', category: 'news', sentences: ['The jury said it didn\'t find 12 "irregularities".', 'Fulton -- Atlanta.'] };
    expect(brownLetters(doc)).toBe('THE JURY SAID IT DIDN\'T FIND IRREGULARITIES FULTON ATLANTA');
  });

  test('vocabulary: g2p\'s specials, a space, the characters, the phonemes, sentinels at the top', () => {
    const v = spanBrownVocab(['CAT', "DOG'S"], 3);
    expect(v.tokens).toEqual(['<pad>', '</s>', '<s>', '<unk>', ' ', "'", 'A', 'C', 'D', 'G', 'O', 'S', 'T', ...PHONEMES, '<extra_id_2>', '<extra_id_1>', '<extra_id_0>']);
    const V = v.tokens.length;
    expect([0, 1, 2].map((k) => v.tokens[sentinelId(V, k)])).toEqual(['<extra_id_0>', '<extra_id_1>', '<extra_id_2>']);
    expect(v.charIds.get(' ')).toBe(4);
    expect(v.tokens[v.phonemeIds.get('AA')!]).toBe('AA');
  });

  test('chunks: documents joined with </s>, cut into equal chunks, the remainder dropped', () => {
    expect(chunkDocuments([[10, 11, 12], [20, 21], [30]], 3)).toEqual([[10, 11, 12], [EOS, 20, 21], [EOS, 30, EOS]]);
    expect(chunkDocuments([[10, 11, 12, 13]], 3)).toEqual([[10, 11, 12]]);
  });

  test('batches: HF\'s lengths, labels shifted right after <s>, every chunk once, the same for the same (epoch, seed)', () => {
    const { tokensLength, targetsLength } = computeInputAndTargetLengths(16); // 17 letters -> 16 inputs, 5 targets
    const V = 60;
    const chunks = Array.from({ length: 10 }, (_, c) => Array.from({ length: tokensLength }, (_, i) => 5 + ((c * 7 + i) % 40)));
    const factory = spanBatches(chunks, 4, { noiseDensity: 0.15, meanNoiseSpanLength: 3, vocabSize: V });
    const epoch = (e: number) => [...(factory(e, 3) as Iterable<SpanBatch>)];
    const e0 = epoch(0);
    expect(e0).toHaveLength(2); // 10 chunks: two full batches of 4, the rest dropped
    for (const b of e0) {
      expect([b.B, b.S, b.T]).toEqual([4, 16, targetsLength]);
      for (let r = 0; r < b.B; r++) {
        const labels = Array.from(b.labels.subarray(r * b.T, (r + 1) * b.T));
        const inputs = Array.from(b.inputIds.subarray(r * b.S, (r + 1) * b.S));
        expect(Array.from(b.decoderInputIds.subarray(r * b.T, (r + 1) * b.T))).toEqual([START, ...labels.slice(0, -1)]);
        expect(labels[0]).toBe(V - 1); // the first non-noise span's sentinel
        expect(inputs.at(-1)).toBe(EOS);
        expect(labels.at(-1)).toBe(EOS);
        // Filling each input sentinel with its label span gives back one of the chunks.
        const fill = new Map<number, number[]>();
        let cur: number[] = [];
        for (const id of labels.slice(0, -1)) if (id >= 50) fill.set(id, (cur = [])); else cur.push(id);
        const restored = inputs.slice(0, -1).flatMap((id) => (id >= 50 ? fill.get(id)! : [id]));
        expect(chunks.some((c) => c.join() === restored.join())).toBe(true);
      }
    }
    expect(epoch(0)).toEqual(e0);
    expect(epoch(1)).not.toEqual(e0);
  });
});

describe('the recipe', () => {
  test('is registered', () => {
    expect(RECIPES['span-brown']).toBe(spanBrownRecipe);
  });

  test('--smoke pretrains, fine-tunes both models, decodes the test words and saves results.json; --resume picks up the finished run', async () => {
    const dir = join(await mkdtemp(join(tmpdir(), 'attend-span-brown-')), 'run');
    let printed = '';
    await trainCommand.run(['span-brown', '--smoke', '--out', dir], (t) => { printed += t; });
    expect(printed).toContain('saved');
    const results = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as Record<string, unknown>;
    type Row = { beam: { wer: number; per: number }; greedy: { wer: number; per: number }; finalValidation: number };
    const pre = results['pretrained'] as Row, sc = results['scratch'] as Row;
    for (const r of [pre, sc]) {
      for (const m of [r.beam, r.greedy]) {
        expect(m.wer).toBeGreaterThanOrEqual(0);
        expect(m.wer).toBeLessThanOrEqual(1);
        expect(m.per).toBeGreaterThanOrEqual(0);
      }
      expect(Number.isFinite(r.finalValidation)).toBe(true);
    }
    const gain = results['gain'] as Record<string, number>;
    expect(gain['beamWer']).toBeCloseTo(sc.beam.wer - pre.beam.wer, 12);
    expect(gain['steps']).toBe(4);
    const data = results['data'] as { g2p: { testWords: number }; brown: { inputLength: number; chunkLetters: number; targetLength: number } };
    expect(data.g2p.testWords).toBe(15); // the g2p smoke run's test split: 5% of 300 words
    expect(data.brown).toMatchObject({ inputLength: 24, chunkLetters: 26, targetLength: 6 }); // compute_input_and_target_lengths(24)
    expect(results['table']).toMatch(/\| from scratch \|/);
    expect((results['pretraining'] as { steps: number }).steps).toBe(4);
    for (const f of ['loss.svg', 'pretrain/metrics.jsonl', 'pretrain/loss.svg', 'finetune/metrics.jsonl', 'scratch/metrics.jsonl']) expect(existsSync(join(dir, f))).toBe(true);
    expect(readFileSync(join(dir, 'loss.svg'), 'utf8')).toContain('from scratch');
    const evals = readFileSync(join(dir, 'finetune/metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number | string>).filter((r) => r['kind'] === 'eval');
    expect(evals.map((r) => r['step'])).toEqual([2, 4]);
    expect(Object.keys(evals[0]!).sort()).toEqual(['greedyPer', 'greedyWer', 'kind', 'loss', 'step']);

    await expect(trainCommand.run(['span-brown', '--smoke', '--out', dir], () => undefined)).rejects.toThrow(/already holds a checkpoint/);
    await trainCommand.run(['span-brown', '--smoke', '--out', dir, '--resume'], () => undefined);
    const resumed = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as Record<string, unknown>;
    expect(resumed['pretrained']).toMatchObject({ beam: pre.beam, greedy: pre.greedy });
    expect(resumed['scratch']).toMatchObject({ beam: sc.beam, greedy: sc.greedy });
  });

  test('bad options are errors that name the option, before anything is written', async () => {
    expect(() => parseRecipeArgs(spanBrownRecipe, ['--pretrain-steps', 'x'], false)).toThrow(/--pretrain-steps must be a number/);
    const dir = join(await mkdtemp(join(tmpdir(), 'attend-span-brown-')), 'never');
    const ctx = { outDir: dir, resume: false, log: () => undefined };
    const smoke = (o: Partial<SpanBrownOptions>): SpanBrownOptions => ({ ...spanBrownRecipe.defaults, ...spanBrownRecipe.smoke, ...o });
    const cases: [Partial<SpanBrownOptions>, RegExp][] = [
      [{ heads: 3 }, /--heads \(3\) must divide --d-model \(16\)/],
      [{ noiseDensity: 1 }, /--noise-density must be in \(0, 1\)/],
      [{ meanNoiseSpanLength: 0.5 }, /--mean-noise-span-length must be a number >= 1/],
      [{ inputLength: 3 }, /--input-length must be an integer >= 4/],
      [{ pretrainSteps: 0 }, /--pretrain-steps must be a positive integer/],
      [{ warmupSteps: 10 }, /--warmup-steps \(10\) is more than --steps \(4\)/],
      [{ maxWords: 10 }, /10 words leave a g2p split empty/],
      [{ maxDocs: 1, brownValFraction: 0.5 }, /1 Brown documents give \d+ training and 0 validation chunks/],
    ];
    for (const [o, message] of cases) await expect(spanBrownRecipe.run(smoke(o), ctx)).rejects.toThrow(message);
    expect(existsSync(dir)).toBe(false);
  });
});
