// The g2p recipe: hand-worked WER/PER, the split by word, vocabulary and batches, a smoke run to results.json, and bad options.

import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { trainCommand } from '../cli/train.js';
import { loadCmudict, type CmudictEntry } from '../data/cmudict.js';
import { buildVocab, decodePhones, editDistance, encodePhones, encodeWord, EOS, g2pBatches, g2pRecipe, PAD, PHONEMES, scoreG2p, splitG2p, START, UNK, type G2pOptions } from './g2p.js';
import { parseRecipeArgs } from './recipe.js';

const ph = (s: string): string[] => (s === '' ? [] : s.split(' '));

describe('scoring', () => {
  test('edit distance counts insertions, deletions and substitutions', () => {
    expect(editDistance(ph('K AE T'), ph('K AE T'))).toBe(0);
    expect(editDistance(ph('K AE'), ph('K AE T'))).toBe(1); // one deletion
    expect(editDistance(ph('K AE T S'), ph('K AE T'))).toBe(1); // one insertion
    expect(editDistance(ph('B AE T S'), ph('K AE T'))).toBe(2); // substitution + insertion
    expect(editDistance([], ph('K AE T'))).toBe(3);
    expect(editDistance(ph('T AH M EY T OW'), ph('T AH M AA T OW'))).toBe(1);
  });

  test('a word is right if it matches any reference; PER uses the closest reference', () => {
    const refs = [
      [ph('T AH M EY T OW'), ph('T AH M AA T OW')], // TOMATO
      [ph('K AE T')], // CAT
      [ph('R EH D'), ph('R IY D')], // READ
      [ph('B'), ph('EY K')], // a tie: both references are 1 edit away from 'EY'
    ];
    const preds = [
      ph('T AH M AA T OW'), // = the second reference: right, 0 edits of 6
      ph('K AE T S'), // an insertion: wrong, 1 edit of 3
      ph('R IY'), // a deletion; closest is R IY D: wrong, 1 edit of 3
      ph('EY'), // 1 edit from both: the first listed (length 1) counts
    ];
    const s = scoreG2p(preds, refs);
    expect(s).toEqual({ words: 4, wordErrors: 3, phoneErrors: 3, referencePhones: 6 + 3 + 3 + 1, wer: 3 / 4, per: 3 / 13 });
    expect(scoreG2p([ph('EY K')], [refs[3]!])).toMatchObject({ wer: 0, per: 0, referencePhones: 2 });
  });

  test('scoring rejects mismatched or empty input', () => {
    expect(() => scoreG2p([ph('K')], [])).toThrow(/1 predictions for 0 words/);
    expect(() => scoreG2p([], [])).toThrow(/nothing to score/);
    expect(() => scoreG2p([ph('K')], [[]])).toThrow(/no reference pronunciation/);
  });
});

describe('data', () => {
  let dict: CmudictEntry[];
  beforeAll(async () => {
    dict = await loadCmudict({ stripStress: true });
  });

  test('the split holds out 5% of the words, keeping every pronunciation of a word in one split', () => {
    const { train, val, test: held } = splitG2p(dict, { valFraction: 0.02, testFraction: 0.05, seed: 0 });
    expect(held.length).toBe(Math.floor(125005 * 0.05)); // 6250
    expect(val.length).toBe(2500);
    const trainWords = new Set(train.map((p) => p.word));
    expect(trainWords.size + val.length + held.length).toBe(125005);
    const pairs = train.length + [...val, ...held].reduce((n, e) => n + e.pronunciations.length, 0);
    expect(pairs).toBe(133469);
    const byWord = new Map(dict.map((e) => [e.word, e.pronunciations.length]));
    for (const e of [...val, ...held]) {
      expect(trainWords.has(e.word)).toBe(false);
      expect(e.pronunciations.length).toBe(byWord.get(e.word));
    }
    expect(new Set(held.map((e) => e.word)).size).toBe(held.length);
    const again = splitG2p(dict, { valFraction: 0.02, testFraction: 0.05, seed: 0 });
    expect(again.test.map((e) => e.word)).toEqual(held.map((e) => e.word));
    const other = splitG2p(dict, { valFraction: 0.02, testFraction: 0.05, seed: 1 });
    expect(other.test.map((e) => e.word)).not.toEqual(held.map((e) => e.word));
  });

  test('vocabulary: specials, training characters, the 39 phonemes; unknown characters become <unk>', () => {
    const vocab = buildVocab(['CAT', "DOG'S"]);
    expect(vocab.tokens).toEqual(['<pad>', '</s>', '<s>', '<unk>', "'", 'A', 'C', 'D', 'G', 'O', 'S', 'T', ...PHONEMES]);
    expect([PAD, EOS, START, UNK]).toEqual([0, 1, 2, 3]);
    expect(encodeWord(vocab, 'CAZ')).toEqual([6, 5, UNK]);
    const ids = encodePhones(vocab, ph('K AE T'));
    expect(decodePhones(vocab, [START, ...ids, EOS, PAD, 7])).toEqual(ph('K AE T'));
    expect(() => encodePhones(vocab, ph('K AE1 T'))).toThrow(/'AE1' is not one of the 39/);
    expect(new Set(dict.flatMap((e) => e.pronunciations.flat()))).toEqual(new Set(PHONEMES));
  });

  test('batches: every pair once per epoch, teacher forcing shifted after <s>, the same for the same (epoch, seed)', async () => {
    const pairs = [
      { word: 'CAT', phones: ph('K AE T') }, { word: 'A', phones: ph('AH') }, { word: 'READ', phones: ph('R IY D') },
      { word: 'READ', phones: ph('R EH D') }, { word: 'OX', phones: ph('AA K S') },
    ];
    const vocab = buildVocab(pairs.map((p) => p.word));
    const factory = g2pBatches(vocab, pairs, 2, 'cpu');
    const read = async (epoch: number, seed: number) => {
      const out: { words: string[]; labels: number[][]; dec: number[][]; mask: number[][] }[] = [];
      for await (const b of factory(epoch, seed)) {
        const ids = (await b.inputIds.tolist()) as number[][];
        out.push({
          words: ids.map((r) => r.filter((i) => i !== PAD).map((i) => vocab.tokens[i]!).join('')),
          labels: (await b.labels.tolist()) as number[][], dec: (await b.decoderInputIds.tolist()) as number[][], mask: (await b.attentionMask.tolist()) as number[][],
        });
        for (const t of [b.inputIds, b.attentionMask, b.decoderInputIds, b.labels]) t.dispose();
      }
      return out;
    };
    const e0 = await read(0, 7);
    expect(e0.map((b) => b.words.length)).toEqual(expect.arrayContaining([2, 2, 1]));
    expect(e0.flatMap((b) => b.words).sort()).toEqual(['A', 'CAT', 'OX', 'READ', 'READ']);
    for (const b of e0) {
      b.labels.forEach((row, r) => {
        const target = row.filter((l) => l !== -100);
        expect(target[target.length - 1]).toBe(EOS);
        expect(b.dec[r]!.slice(0, target.length)).toEqual([START, ...target.slice(0, -1)]);
        expect(b.mask[r]!.reduce((a, m) => a + m, 0)).toBe(b.words[r]!.length);
      });
    }
    expect(await read(0, 7)).toEqual(e0);
    const orders = await Promise.all([1, 2, 3].map(async (e) => (await read(e, 7)).flatMap((b) => b.words).join()));
    expect(new Set([e0.flatMap((b) => b.words).join(), ...orders]).size).toBeGreaterThan(1);
  });
});

describe('the recipe', () => {
  test('--smoke trains, decodes the test words and saves results.json in seconds; --resume picks up the finished run', async () => {
    const dir = join(await mkdtemp(join(tmpdir(), 'attend-g2p-')), 'run');
    const started = Date.now();
    let printed = '';
    await trainCommand.run(['g2p', '--smoke', '--out', dir], (t) => { printed += t; });
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(printed).toContain('saved');
    const results = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as Record<string, unknown>;
    const t = results['test'] as { words: number; beam: { wer: number; per: number; numBeams: number }; greedy: { wer: number; per: number } };
    expect(t.words).toBe(15); // 5% of the smoke run's 300 words
    for (const m of [t.beam, t.greedy]) {
      expect(m.wer).toBeGreaterThanOrEqual(0);
      expect(m.wer).toBeLessThanOrEqual(1);
      expect(m.per).toBeGreaterThanOrEqual(0);
    }
    expect(t.beam.numBeams).toBe(2);
    expect(results['examples']).toHaveLength(3);
    expect(results['steps']).toBe(4);
    for (const f of ['metrics.jsonl', 'loss.svg']) expect(existsSync(join(dir, f))).toBe(true);
    const evals = readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number | string>).filter((r) => r['kind'] === 'eval');
    expect(evals.map((r) => r['step'])).toEqual([2, 4]);
    expect(Object.keys(evals[0]!).sort()).toEqual(['greedyPer', 'greedyWer', 'kind', 'loss', 'step']);

    await expect(trainCommand.run(['g2p', '--smoke', '--out', dir], () => undefined)).rejects.toThrow(/already holds a checkpoint/);
    await trainCommand.run(['g2p', '--smoke', '--out', dir, '--resume'], () => undefined);
    const resumed = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as Record<string, unknown>;
    expect(resumed['test']).toEqual(results['test']);
  });

  test('bad options are errors that name the option, before anything is written', async () => {
    expect(() => parseRecipeArgs(g2pRecipe, ['--steps', 'many'], false)).toThrow(/--steps must be a number/);
    expect(() => parseRecipeArgs(g2pRecipe, ['--bogus', '1'], false)).toThrow(/unknown option --bogus; options: --seed/);
    const dir = join(await mkdtemp(join(tmpdir(), 'attend-g2p-')), 'never');
    const ctx = { outDir: dir, resume: false, log: () => undefined };
    const smoke = (o: Partial<G2pOptions>): G2pOptions => ({ ...g2pRecipe.defaults, ...g2pRecipe.smoke, ...o });
    const cases: [Partial<G2pOptions>, RegExp][] = [
      [{ heads: 3 }, /--heads \(3\) must divide --d-model \(16\)/],
      [{ steps: 2.5 }, /--steps must be a positive integer, got 2.5/],
      [{ beams: 0 }, /--beams must be a positive integer/],
      [{ testFraction: 0 }, /--test-fraction must be a fraction between 0 and 1/],
      [{ testFraction: 0.5, valFraction: 0.5 }, /must leave words for training/],
      [{ dropout: 1 }, /--dropout must be in \[0, 1\)/],
      [{ lr: -1 }, /--lr must be a positive number/],
      [{ warmupSteps: 10 }, /--warmup-steps \(10\) is more than --steps \(4\)/],
      [{ maxWords: 10 }, /10 words leave a split empty/],
    ];
    for (const [o, message] of cases) await expect(g2pRecipe.run(smoke(o), ctx)).rejects.toThrow(message);
    expect(existsSync(dir)).toBe(false);
  });
});
