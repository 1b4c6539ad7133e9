// The paradigms recipe: each model's scores ignore padding, a smoke run gives the table in results.json, --resume reuses finished models, and bad options.

import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { trainCommand } from '../cli/train.js';
import { manualSeed } from '../tensor/random.js';
import { BagOfEmbeddings, CnnClassifier, LstmClassifier, paradigmsRecipe, TransformerClassifier, type ParadigmsOptions, type TextClassifier } from './paradigms.js';
import { parseRecipeArgs } from './recipe.js';
import { bertConfigJson, collate } from './spam-data.js';

describe('models', () => {
  test('every model scores an e-mail the same alone and in a batch padded to a longer one', async () => {
    manualSeed(0);
    const V = 50;
    const shape = { hidden: 8, layers: 1, heads: 2, intermediate: 16, maxLength: 16, dropout: 0 };
    const models: [string, TextClassifier][] = [
      ['mlp', new BagOfEmbeddings(V, 8, 8, 0)],
      ['lstm', new LstmClassifier(V, 8, 8, 0)],
      ['cnn', new CnnClassifier(V, 8, 8, 0)],
      ['transformer', new TransformerClassifier(bertConfigJson(V, shape, 'BertForSequenceClassification'))],
    ];
    const short = { ids: [2, 11, 12, 13, 3], label: 1 };
    const long = { ids: [2, 20, 21, 22, 23, 24, 25, 26, 27, 3], label: 0 };
    for (const [name, m] of models) {
      m.eval();
      const alone = await m.logits(collate([short], 'cpu')).tolist() as number[][];
      const batch = await m.logits(collate([long, short], 'cpu')).tolist() as number[][];
      expect(batch).toHaveLength(2);
      expect(batch[0]).toHaveLength(2);
      batch[1]!.forEach((v, i) => expect(v, name).toBeCloseTo(alone[0]![i]!, 5));
    }
  });
});

describe('the recipe', () => {
  test('--smoke trains the four models and saves the table in results.json; --resume reuses finished models', async () => {
    const dir = join(await mkdtemp(join(tmpdir(), 'attend-paradigms-')), 'run');
    await trainCommand.run(['paradigms', '--smoke', '--out', dir], () => undefined);
    const results = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as Record<string, unknown>;
    const rows = results['models'] as Record<string, unknown>[];
    expect(rows.map((r) => r['model'])).toEqual(['mlp', 'lstm', 'cnn', 'transformer']);
    for (const r of rows) {
      expect(Object.keys(r)).toEqual(['model', 'name', 'parameters', 'steps', 'trainSeconds', 'resumed', 'validation', 'test']);
      expect(r['steps']).toBe(3); // 152 labelled e-mails in batches of 64, one epoch
      expect(r['parameters']).toBeGreaterThan(0);
      expect(Object.keys(r['test'] as object)).toEqual(['examples', 'accuracy', 'precision', 'recall', 'f1', 'confusion']);
    }
    const table = results['table'] as string;
    expect(table.split('\n')).toHaveLength(6);
    expect(table).toMatch(/^\| model \| parameters \| train time \| test accuracy \| test F1 \(spam\) \|/);
    for (const f of ['paradigms.svg', 'mlp/loss.svg', 'lstm/metrics.jsonl', 'cnn/result.json', 'transformer/trainer_state.json']) expect(existsSync(join(dir, f))).toBe(true);

    await expect(trainCommand.run(['paradigms', '--smoke', '--out', dir], () => undefined)).rejects.toThrow(/already holds a checkpoint; pass --resume/);
    await trainCommand.run(['paradigms', '--smoke', '--out', dir, '--resume'], () => undefined);
    const again = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as Record<string, unknown>;
    expect(again['models']).toEqual(results['models']);
  });

  test('bad options are errors, before anything is written', async () => {
    expect(() => parseRecipeArgs(paradigmsRecipe, ['--model', 'mlp'], true)).toThrow(/unknown option --model; options: --seed/);
    const never = join(await mkdtemp(join(tmpdir(), 'attend-paradigms-')), 'never');
    const ctx = { outDir: never, resume: false, log: () => undefined };
    const smoke = (o: Partial<ParadigmsOptions>): ParadigmsOptions => ({ ...paradigmsRecipe.defaults, ...paradigmsRecipe.smoke, ...o });
    const cases: [Partial<ParadigmsOptions>, RegExp][] = [
      [{ models: 'mlp,rnn' }, /unknown model 'rnn' \(models: mlp, lstm, cnn, transformer\)/],
      [{ models: 'mlp,mlp' }, /must list distinct models/],
      [{ models: '' }, /must list distinct models/],
      [{ epochs: 0 }, /--epochs must be a positive integer/],
      [{ trainFraction: 2 }, /--train-fraction must be in \(0, 1\]/],
      [{ heads: 5 }, /--heads \(5\) must divide --hidden \(16\)/],
    ];
    for (const [o, message] of cases) await expect(paradigmsRecipe.run(smoke(o), ctx)).rejects.toThrow(message);
    expect(existsSync(never)).toBe(false);
  });
});
