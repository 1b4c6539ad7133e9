// The spam recipe and its data helpers: the stratified split, label subsets, scoring, encoding, a smoke run that `attend classify` reads, and bad options.

import { existsSync, readFileSync } from 'node:fs';
import { cp, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { classifyCommand } from '../cli/hf.js';
import { trainCommand } from '../cli/train.js';
import type { SpamEmail } from '../data/spam.js';
import { parseRecipeArgs } from './recipe.js';
import { bertIds, binaryScores, headWords, labelSubset, splitSpam, trainTokenizer, type LabeledText } from './spam-data.js';
import { spamRecipe, type SpamOptions } from './spam.js';

const mail = (i: number, label: 'spam' | 'ham'): SpamEmail => ({ id: String(i), group: label === 'spam' ? 'spam-1' : 'easy-ham-1', label, subject: `s${i}`, body: `b${i}`, text: `s${i}\nb${i}` });

describe('data', () => {
  test('the split is stratified, seeded and covers every e-mail once', () => {
    const mails = [...Array.from({ length: 70 }, (_, i) => mail(i, 'ham')), ...Array.from({ length: 30 }, (_, i) => mail(100 + i, 'spam'))];
    const s = splitSpam(mails, { seed: 3, valFraction: 0.1, testFraction: 0.2 });
    const spam = (xs: LabeledText[]) => xs.filter((x) => x.label === 1).length;
    expect([s.train.length, s.val.length, s.test.length]).toEqual([70, 10, 20]);
    expect([spam(s.train), spam(s.val), spam(s.test)]).toEqual([21, 3, 6]);
    expect(new Set([...s.train, ...s.val, ...s.test].map((x) => x.text)).size).toBe(100);
    for (const x of [...s.train, ...s.val, ...s.test]) expect(x.label).toBe(Number(x.text.split('\n')[0]!.slice(1)) >= 100 ? 1 : 0);
    expect(splitSpam(mails, { seed: 3, valFraction: 0.1, testFraction: 0.2 })).toEqual(s);
    expect(splitSpam(mails, { seed: 4, valFraction: 0.1, testFraction: 0.2 }).test).not.toEqual(s.test);
  });

  test('label subsets keep about the fraction of each class, at least one of each, nested across fractions', () => {
    const items: LabeledText[] = Array.from({ length: 200 }, (_, i) => ({ text: `t${i}`, label: i < 150 ? 0 : 1 }));
    const tenth = labelSubset(items, 0.1, 0);
    expect(tenth.filter((x) => x.label === 0)).toHaveLength(15);
    expect(tenth.filter((x) => x.label === 1)).toHaveLength(5);
    const fifth = new Set(labelSubset(items, 0.2, 0).map((x) => x.text));
    expect(tenth.every((x) => fifth.has(x.text))).toBe(true);
    expect(labelSubset(items, 0.1, 0)).toEqual(tenth);
    expect(labelSubset(items, 0.1, 1)).not.toEqual(tenth);
    expect(labelSubset(items, 0.001, 0).map((x) => x.label).sort()).toEqual([0, 1]);
    expect(labelSubset(items, 1, 0)).toEqual(items);
    // The original order is kept.
    const idx = tenth.map((x) => Number(x.text.slice(1)));
    expect(idx).toEqual([...idx].sort((a, b) => a - b));
  });

  test('scores: accuracy, and precision, recall and F1 of spam, worked by hand', () => {
    // gold: 3 spam, 3 ham; predicted: 2 of the spam, and 1 ham called spam.
    const s = binaryScores([1, 1, 0, 1, 0, 0], [1, 1, 1, 0, 0, 0]);
    expect(s.confusion).toEqual({ truePositives: 2, falsePositives: 1, trueNegatives: 2, falseNegatives: 1 });
    expect(s.accuracy).toBeCloseTo(4 / 6);
    expect(s.precision).toBeCloseTo(2 / 3);
    expect(s.recall).toBeCloseTo(2 / 3);
    expect(s.f1).toBeCloseTo(2 / 3);
    expect(binaryScores([0, 0], [1, 0])).toMatchObject({ precision: 0, recall: 0, f1: 0, accuracy: 0.5 });
    expect(() => binaryScores([], [])).toThrow(/nothing to score/);
    expect(() => binaryScores([1], [1, 0])).toThrow(/1 predictions for 2 labels/);
  });

  test('encoding: the head of a text and the fast path give what Tokenizer.encode with truncation gives', () => {
    const texts = ['Buy cheap meds now!!! Visit http://x.example/deal?id=42 today.', 'Re: the meeting\nSee you at 10, ok? -- Bob', 'short', '', 'word '.repeat(300)];
    const tok = trainTokenizer(texts, 120, 16);
    const fast = bertIds(tok, 16);
    for (const t of texts) {
      const want = tok.encode(t, { truncation: true, maxLength: 16 }).ids;
      expect(fast(headWords(t, 16))).toEqual(want);
      expect(want.length).toBeLessThanOrEqual(16);
    }
    expect(headWords('a b  c\nd', 1)).toBe('a b');
    expect(headWords('a b', 5)).toBe('a b');
  });
});

describe('the recipe', () => {
  let dir: string;
  let results: Record<string, unknown>;
  beforeAll(async () => {
    dir = join(await mkdtemp(join(tmpdir(), 'attend-spam-')), 'run');
    await trainCommand.run(['spam', '--smoke', '--out', dir], () => undefined);
    results = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as Record<string, unknown>;
  });

  test('--smoke trains and saves results.json with test scores, and a folder that attend classify reads', async () => {
    expect(Object.keys(results)).toEqual(expect.arrayContaining(['recipe', 'options', 'data', 'tokenizer', 'model', 'steps', 'validation', 'test', 'target', 'seconds', 'wallSeconds']));
    const t = results['test'] as Record<string, number>;
    expect(Object.keys(t)).toEqual(['examples', 'accuracy', 'precision', 'recall', 'f1', 'confusion']);
    expect(t['examples']).toBe(190); // 10% of each class of easy-ham-2 (1400) and spam-1 (500)
    for (const k of ['accuracy', 'precision', 'recall', 'f1']) {
      expect(t[k]).toBeGreaterThanOrEqual(0);
      expect(t[k]).toBeLessThanOrEqual(1);
    }
    expect(results['data']).toMatchObject({ emails: 1900, train: 1520, labelled: 152 });
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'metrics.jsonl', 'loss.svg', 'validation.svg']) expect(existsSync(join(dir, f))).toBe(true);
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    expect(config['id2label']).toEqual({ 0: 'ham', 1: 'spam' });
    expect(config['architectures']).toEqual(['BertForSequenceClassification']);
    let printed = '';
    await classifyCommand.run(['--model', dir, 'Make money fast, click here'], (s) => { printed += s; });
    const lines = printed.trim().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines.map((l) => l.split(/\s+/)[1]).sort()).toEqual(['ham', 'spam']);
  });

  test('--resume of a finished run trains no more and scores the same', async () => {
    await trainCommand.run(['spam', '--smoke', '--out', dir, '--resume'], () => undefined);
    const again = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as Record<string, unknown>;
    expect(again['test']).toEqual(results['test']);
    expect(again['steps']).toBe(results['steps']);
  });

  test('bad options and bad --init folders are errors that say what is wrong, before anything is written', async () => {
    expect(() => parseRecipeArgs(spamRecipe, ['--bogus', '1'], true)).toThrow(/unknown option --bogus; options: --seed/);
    expect(() => parseRecipeArgs(spamRecipe, ['--to-string', '1'], true)).toThrow(/unknown option --to-string; options: --seed/);
    expect(() => parseRecipeArgs(spamRecipe, ['--train-fraction', 'half'], true)).toThrow(/--train-fraction must be a number/);
    const base = await mkdtemp(join(tmpdir(), 'attend-spam-bad-'));
    const never = join(base, 'never');
    const ctx = { outDir: never, resume: false, log: () => undefined };
    const smoke = (o: Partial<SpamOptions>): SpamOptions => ({ ...spamRecipe.defaults, ...spamRecipe.smoke, ...o });

    // A classifier folder is not a masked LM; a folder without config.json is not a model; a GPT-2 config is not BERT.
    const empty = join(base, 'empty');
    await cp(join(dir, 'tokenizer.json'), join(empty, 'tokenizer.json'), { recursive: true });
    const gpt = join(base, 'gpt');
    await cp(empty, gpt, { recursive: true });
    await writeFile(join(gpt, 'config.json'), JSON.stringify({ model_type: 'gpt2' }));
    const cases: [Partial<SpamOptions>, RegExp][] = [
      [{ trainFraction: 0 }, /--train-fraction must be in \(0, 1\], got 0/],
      [{ trainFraction: 1.5 }, /--train-fraction must be in \(0, 1\], got 1.5/],
      [{ heads: 3 }, /--heads \(3\) must divide --hidden \(16\)/],
      [{ testFraction: 0.6, valFraction: 0.4 }, /must leave e-mails for training/],
      [{ groups: 'spam-1,nope' }, /unknown group 'nope'/],
      [{ groups: 'spam-1' }, /needs both classes/],
      [{ init: join(base, 'missing') }, /--init .*missing: no such folder/],
      [{ init: empty }, /--init .*empty is not a Hugging Face model folder/],
      [{ init: gpt }, /model_type is "gpt2", not a BERT checkpoint/],
      [{ init: dir }, /is a BertForSequenceClassification checkpoint; --init takes a masked-LM/],
      [{ init: dir, tokenizer: join(dir, 'tokenizer.json') }, /give --init or --tokenizer, not both/],
      [{ tokenizer: join(base, 'nothing.json') }, /--tokenizer .*nothing.json: no such file or folder/],
    ];
    for (const [o, message] of cases) await expect(spamRecipe.run(smoke(o), ctx)).rejects.toThrow(message);
    expect(existsSync(never)).toBe(false);
  });
});
