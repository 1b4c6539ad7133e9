// token-classification (ner): HF's entity rules worked by hand on a small example, and the fixture BERT's per-token
// softmax (computed here from its logits) through every aggregation strategy, with HF's keys in HF's order.

import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import '../index.js';
import { noGrad } from '../autograd/engine.js';
import { linear } from '../autograd/ops/matmul.js';
import { loadSafetensors, saveSafetensors } from '../io/safetensors.js';
import { AutoModelForSequenceClassification, AutoModelForTokenClassification } from '../models/auto.js';
import type { DistilBertForTokenClassification } from '../models/distilbert.js';
import { listDevices } from '../tensor/backend.js';
import { tensor } from '../tensor/create.js';
import { expectTensorClose, hfDir, loadRef } from '../test-util/hf-fixtures.js';
import { Tokenizer } from '../tokenizers/tokenizer.js';
import { trainWordPiece } from '../tokenizers/train-wordpiece.js';
import { pipeline } from './pipeline.js';
import { entitiesFromScores, type EntityGroup, type EntityRules, type TokenEntity, type TokenScores } from './token-classification.js';

const LABELS = ['O', 'B-PER', 'I-PER', 'B-LOC', 'I-LOC'];

/** "enzo lives in new york" as WordPiece tokens, with scores chosen so that every strategy gives a different answer. */
const EXAMPLE: TokenScores = {
  text: 'enzo lives in new york',
  ids: [101, 10, 11, 12, 13, 14, 15, 102],
  tokens: ['[CLS]', 'en', '##zo', 'lives', 'in', 'new', 'york', '[SEP]'],
  offsets: [[0, 0], [0, 2], [2, 4], [5, 10], [11, 13], [14, 17], [18, 22], [0, 0]],
  specialTokensMask: [1, 0, 0, 0, 0, 0, 0, 1],
  scores: [
    [1, 0, 0, 0, 0],
    [0.1, 0.7, 0.1, 0.05, 0.05], // en: B-PER 0.7
    [0.05, 0.05, 0.05, 0.8, 0.05], // ##zo: B-LOC 0.8
    [0.9, 0.025, 0.025, 0.025, 0.025], // lives: O
    [0.8, 0.05, 0.05, 0.05, 0.05], // in: O
    [0.1, 0, 0, 0.6, 0.3], // new: B-LOC 0.6
    [0.1, 0, 0, 0.2, 0.7], // york: I-LOC 0.7
    [1, 0, 0, 0, 0],
  ],
};
/** WordPiece's decoder (transformers' convert_tokens_to_string): '##' pieces join the previous token. */
const wordPieceRules: EntityRules = {
  label: (i) => LABELS[i]!, subwordPrefix: '##', unkTokenId: 100,
  tokensToString: (t) => t.map((s, i) => (i > 0 && s.startsWith('##') ? s.slice(2) : i > 0 ? ` ${s}` : s)).join(''),
};

const close = (got: (TokenEntity | EntityGroup)[], want: (TokenEntity | EntityGroup)[]): void => {
  expect(got.map((e) => Object.keys(e))).toEqual(want.map((e) => Object.keys(e)));
  got.forEach((e, i) => {
    expect({ ...e, score: 0 }).toEqual({ ...want[i]!, score: 0 });
    expect(e.score).toBeCloseTo(want[i]!.score, 12);
  });
};

describe('entity rules (transformers\' TokenClassificationPipeline.postprocess), by hand', () => {
  test("'none': every non-special token with its best label, 'O' left out; keys entity, score, index, word, start, end", () => {
    close(entitiesFromScores(EXAMPLE, wordPieceRules), [
      { entity: 'B-PER', score: 0.7, index: 1, word: 'en', start: 0, end: 2 },
      { entity: 'B-LOC', score: 0.8, index: 2, word: '##zo', start: 2, end: 4 },
      { entity: 'B-LOC', score: 0.6, index: 5, word: 'new', start: 14, end: 17 },
      { entity: 'I-LOC', score: 0.7, index: 6, word: 'york', start: 18, end: 22 },
    ]);
    expect(entitiesFromScores(EXAMPLE, wordPieceRules, { ignoreLabels: [] })).toHaveLength(6);
    expect(entitiesFromScores(EXAMPLE, wordPieceRules, { ignoreLabels: ['O', 'I-LOC'] })).toHaveLength(3);
  });

  test("'simple': tokens grouped (B-X starts a group, I-X continues one of type X), the mean score, the decoded words", () => {
    close(entitiesFromScores(EXAMPLE, wordPieceRules, { aggregationStrategy: 'simple' }), [
      { entity_group: 'PER', score: 0.7, word: 'en', start: 0, end: 2 },
      { entity_group: 'LOC', score: 0.8, word: '##zo', start: 2, end: 4 },
      { entity_group: 'LOC', score: (0.6 + 0.7) / 2, word: 'new york', start: 14, end: 22 },
    ]);
    // With nothing ignored, the two O tokens form a group of their own.
    const all = entitiesFromScores(EXAMPLE, wordPieceRules, { aggregationStrategy: 'simple', ignoreLabels: [] }) as EntityGroup[];
    expect(all[2]).toEqual({ entity_group: 'O', score: (0.9 + 0.8) / 2, word: 'lives in', start: 5, end: 13 });
  });

  test("'first' / 'max' / 'average': one label per word ('en ##zo' is one word), then words grouped", () => {
    const newYork = { entity_group: 'LOC', score: 0.65, word: 'new york', start: 14, end: 22 };
    close(entitiesFromScores(EXAMPLE, wordPieceRules, { aggregationStrategy: 'first' }), [{ entity_group: 'PER', score: 0.7, word: 'enzo', start: 0, end: 4 }, newYork]);
    close(entitiesFromScores(EXAMPLE, wordPieceRules, { aggregationStrategy: 'max' }), [{ entity_group: 'LOC', score: 0.8, word: 'enzo', start: 0, end: 4 }, newYork]);
    // average: [0.075, 0.375, 0.075, 0.425, 0.05] -> B-LOC 0.425
    close(entitiesFromScores(EXAMPLE, wordPieceRules, { aggregationStrategy: 'average' }), [{ entity_group: 'LOC', score: 0.425, word: 'enzo', start: 0, end: 4 }, newYork]);
  });

  test('without a subword prefix (byte-level BPE) a token continues a word when no space precedes it; an unknown token is its own word', () => {
    const s: TokenScores = {
      text: 'newyork city!', ids: [5, 6, 7, 0], tokens: ['new', 'york', 'Ġcity', '<unk>'], offsets: [[0, 3], [3, 7], [8, 12], [12, 13]], specialTokensMask: [0, 0, 0, 0],
      scores: [[0, 0.9, 0.1, 0, 0], [0, 0.1, 0.2, 0.7, 0], [0.2, 0, 0.8, 0, 0], [0, 0, 0.6, 0.4, 0]],
    };
    const rules: EntityRules = { label: (i) => LABELS[i]!, subwordPrefix: null, unkTokenId: 0, tokensToString: (t) => t.join('').replace(/Ġ/g, ' ') };
    // first: 'newyork' (B-PER 0.9), ' city' (I-PER 0.8), '!' (the text itself, I-PER 0.6): one PER group.
    close(entitiesFromScores(s, rules, { aggregationStrategy: 'first' }), [{ entity_group: 'PER', score: (0.9 + 0.8 + 0.6) / 3, word: 'newyork city!', start: 0, end: 13 }]);
    close(entitiesFromScores(s, rules, { aggregationStrategy: 'none' }).slice(3), [{ entity: 'I-PER', score: 0.6, index: 3, word: '!', start: 12, end: 13 }]);
  });
});

describe('pipeline(\'token-classification\') on the fixture BERT', () => {
  const corpus = ['the cat sat on the mat', 'a dog ran in the park', 'Enzo lives in New York'];
  const SYL = ['ka', 'to', 'ri', 'mu', 'se', 'la', 'no', 'pi', 'de', 'vo', 'zu', 'ghe'];
  for (const a of SYL) for (const b of SYL) for (const c of SYL) corpus.push(`${a}${b}${c} ${c}${a} ${b}`);
  const TEXT = 'Katorimu lives in the parkzu!';
  const NER = ['O', 'B-X', 'I-X'];
  let dir = '';
  let tok: Tokenizer;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'attend-pipeline-ner-'));
    const wordPiece = trainWordPiece(corpus, { vocabSize: 512, minFrequency: 1 });
    tok = Tokenizer.fromJSON(wordPiece);
    await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(wordPiece));
    const config = JSON.parse(await readFile(join(hfDir('bert-cls'), 'config.json'), 'utf8')) as Record<string, unknown>;
    config['id2label'] = Object.fromEntries(NER.map((l, i) => [String(i), l]));
    config['label2id'] = Object.fromEntries(NER.map((l, i) => [l, i]));
    await writeFile(join(dir, 'config.json'), JSON.stringify(config));
    await copyFile(join(hfDir('bert-cls'), 'model.safetensors'), join(dir, 'model.safetensors'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  /** The softmax of the model's logits for each token of TEXT, computed here. */
  async function direct(): Promise<number[][]> {
    const model = await AutoModelForTokenClassification.fromPretrained(dir);
    const ids = tok.encode(TEXT).ids;
    const logits = Array.from(await noGrad(() => model.forward({ inputIds: tensor(Int32Array.from(ids), { shape: [1, ids.length] }) })).logits.data());
    return ids.map((_, t) => {
      const row = logits.slice(3 * t, 3 * t + 3), m = Math.max(...row), e = row.map((v) => Math.exp(v - m)), z = e.reduce((a, b) => a + b, 0);
      return e.map((v) => v / z);
    });
  }

  test("'none': the argmax of each token's softmax, tokens and offsets from the tokenizer; 'O' ignored by default; 'ner' is the same task", async () => {
    const probs = await direct();
    const enc = tok.encode(TEXT);
    expect(enc.tokens).toEqual(['[CLS]', 'kato', '##ri', '##mu', 'li', '##ves', 'in', 'the', 'pa', '##rk', '##zu', '[UNK]', '[SEP]']);
    const ner = await pipeline('token-classification', dir);
    const all = (await ner(TEXT, { ignoreLabels: [] })) as TokenEntity[];
    expect(all.map((e) => e.index)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    for (const e of all) {
      expect(Object.keys(e)).toEqual(['entity', 'score', 'index', 'word', 'start', 'end']);
      const p = probs[e.index]!, best = p.indexOf(Math.max(...p));
      expect(e.entity).toBe(NER[best]);
      expect(e.score).toBeCloseTo(p[best]!, 6);
      expect([e.start, e.end]).toEqual(enc.offsets[e.index]);
      // convert_ids_to_tokens, except the unknown token, which is its text.
      expect(e.word).toBe(e.index === 11 ? '!' : enc.tokens[e.index]);
    }
    expect(new Set(all.map((e) => e.entity)).size).toBeGreaterThan(1); // the example exercises grouping
    const filtered = await ner(TEXT);
    expect(filtered).toEqual(all.filter((e) => e.entity !== 'O'));
    const noI = (await ner(TEXT, { ignoreLabels: ['I-X'] })) as TokenEntity[];
    expect(noI).toEqual(all.filter((e) => e.entity !== 'I-X'));
    expect(noI.length).toBeLessThan(all.length);
    expect(await (await pipeline('ner', dir))(TEXT)).toEqual(filtered);
    expect(await ner([TEXT, 'the cat'])).toEqual([filtered, await ner('the cat')]);
  });

  test("'simple' and 'first': groups obey HF's B-/I- rule, each scored by the mean of its members and named by the decoded words", async () => {
    const probs = await direct();
    const ner = await pipeline('token-classification', dir);
    const tokens = (await ner(TEXT, { ignoreLabels: [] })) as TokenEntity[];
    // The words of TEXT by hand: token indices (WordPiece's ## continues a word; '!' is [UNK], a word of its own).
    const words = [{ idx: [1, 2, 3], text: 'katorimu' }, { idx: [4, 5], text: 'lives' }, { idx: [6], text: 'in' }, { idx: [7], text: 'the' }, { idx: [8, 9, 10], text: 'parkzu' }, { idx: [11], text: '!' }];
    const firstLabel = words.map((w) => {
      const p = probs[w.idx[0]!]!, best = p.indexOf(Math.max(...p));
      return { entity: NER[best]!, score: p[best]!, start: tokens[w.idx[0]! - 1]!.start, end: tokens[w.idx[w.idx.length - 1]! - 1]!.end, word: w.text };
    });
    const units = { simple: tokens.map((t) => ({ ...t, word: t.word })), first: firstLabel };
    const tagOf = (l: string): [string, string] => (l.startsWith('B-') ? ['B', l.slice(2)] : l.startsWith('I-') ? ['I', l.slice(2)] : ['I', l]);
    for (const strategy of ['simple', 'first'] as const) {
      const groups = (await ner(TEXT, { aggregationStrategy: strategy, ignoreLabels: [] })) as EntityGroup[];
      const members = groups.map((g) => units[strategy].filter((u) => u.start >= g.start && u.end <= g.end));
      expect(members.flat()).toEqual(units[strategy]); // the groups cover every unit once, in order
      groups.forEach((g, i) => {
        const m = members[i]!;
        expect(Object.keys(g)).toEqual(['entity_group', 'score', 'word', 'start', 'end']);
        expect(g.entity_group).toBe(tagOf(m[0]!.entity)[1]);
        m.slice(1).forEach((u) => expect(tagOf(u.entity)).toEqual(['I', g.entity_group]));
        expect(g.score).toBeCloseTo(m.reduce((a, u) => a + u.score, 0) / m.length, 6);
        // WordPiece's decoder: '##' joins, other tokens get a space, and its clean-up removes the space before '!'.
        expect(g.word).toBe(m.map((u, j) => (j > 0 && u.word.startsWith('##') ? u.word.slice(2) : j > 0 ? ` ${u.word}` : u.word)).join('').replace(' !', '!'));
        const next = groups[i + 1] ? members[i + 1]![0]! : null;
        if (next) expect(tagOf(next.entity)[1] !== g.entity_group || tagOf(next.entity)[0] === 'B').toBe(true);
      });
    }
    // With the default ignore_labels, the same groups without those of type O.
    const simple = (await ner(TEXT, { aggregationStrategy: 'simple', ignoreLabels: [] })) as EntityGroup[];
    expect(await ner(TEXT, { aggregationStrategy: 'simple' })).toEqual(simple.filter((g) => g.entity_group !== 'O'));
  });

  test('every backend gives the CPU\'s entities', async () => {
    const cpu = (await (await pipeline('token-classification', dir))(TEXT, { aggregationStrategy: 'average', ignoreLabels: [] })) as EntityGroup[];
    for (const device of listDevices().filter((d) => d !== 'cpu')) {
      const got = (await (await pipeline('token-classification', dir, { device }))(TEXT, { aggregationStrategy: 'average', ignoreLabels: [] })) as EntityGroup[];
      expect(got.map((g) => ({ ...g, score: 0 }))).toEqual(cpu.map((g) => ({ ...g, score: 0 })));
      got.forEach((g, i) => expect(g.score).toBeCloseTo(cpu[i]!.score, 5));
    }
  });

  test('bad input: an unknown strategy or ignore list, a non-string input, a model without the token-classification head', async () => {
    const ner = await pipeline('token-classification', dir);
    await expect(ner(TEXT, { aggregationStrategy: 'longest' as 'max' })).rejects.toThrow(/aggregationStrategy must be one of none, simple, first, average, max, got "longest"/);
    await expect(ner(TEXT, { ignoreLabels: 'O' as unknown as string[] })).rejects.toThrow(/ignoreLabels must be an array of label names/);
    await expect(ner([TEXT, 3 as unknown as string])).rejects.toThrow(/input 1 must be a string, got number/);
    await expect(pipeline('token-classification', hfDir('gpt2'))).rejects.toThrow(/pipeline\('token-classification'\) needs the tokenClassification head: .*model_type 'gpt2' has no tokenClassification head/);
  });
});

describe('RoBERTa and DistilBERT token-classification heads', () => {
  const temps: string[] = [];
  afterAll(() => Promise.all(temps.map((d) => rm(d, { recursive: true, force: true }))));
  /** A fixture's encoder with a token classifier: its other head's weights dropped, `extra` added. */
  async function checkpoint(name: string, drop: RegExp, extra: Record<string, ReturnType<typeof tensor>>, config: Record<string, unknown>): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), `attend-ner-${name}-`));
    temps.push(dir);
    const weights = Object.fromEntries(Object.entries(await loadSafetensors(join(hfDir(name), 'model.safetensors'))).filter(([k]) => !drop.test(k)));
    await saveSafetensors(join(dir, 'model.safetensors'), { ...weights, ...extra });
    const base = JSON.parse(await readFile(join(hfDir(name), 'config.json'), 'utf8')) as Record<string, unknown>;
    await writeFile(join(dir, 'config.json'), JSON.stringify({ ...base, ...config }));
    return dir;
  }

  test('the classifier on every hidden state: RoBERTa against transformers\' encoder states, DistilBERT against its own; the pipeline runs on both', async () => {
    const W = tensor(Float32Array.from({ length: 3 * 64 }, (_, i) => Math.sin(i * 0.37) * 0.2), { shape: [3, 64] });
    const b = tensor([0.1, -0.05, 0.02]);
    const roberta = await checkpoint('roberta-mlm', /^lm_head\./, { 'classifier.weight': W, 'classifier.bias': b }, { id2label: { 0: 'O', 1: 'B-X', 2: 'I-X' }, label2id: { O: 0, 'B-X': 1, 'I-X': 2 } });
    const ref = await loadRef('roberta-mlm');
    const model = await AutoModelForTokenClassification.fromPretrained(roberta);
    expect(model.constructor.name).toBe('RobertaForTokenClassification');
    const out = noGrad(() => model.forward({ inputIds: ref['input_ids']!, attentionMask: ref['attention_mask']! }));
    await expectTensorClose(out.logits, linear(ref['last_hidden_state']!, W, b), 1e-4, 'RoBERTa token logits');

    const distil = await checkpoint('distilbert-cls', /^pre_classifier\./, {}, {});
    const seq = await AutoModelForSequenceClassification.fromPretrained(hfDir('distilbert-cls'));
    const tokenModel = (await AutoModelForTokenClassification.fromPretrained(distil)) as DistilBertForTokenClassification;
    expect(tokenModel.constructor.name).toBe('DistilBertForTokenClassification');
    const ids = tensor(Int32Array.from([5, 17, 42, 99, 7]), { shape: [1, 5] });
    const hidden = noGrad(() => seq.forward({ inputIds: ids })).lastHiddenState!;
    const { weight, bias } = tokenModel.classifier;
    await expectTensorClose(noGrad(() => tokenModel.forward({ inputIds: ids })).logits, linear(hidden, weight, bias), 1e-5, 'DistilBERT token logits');

    const wordPiece = trainWordPiece(['the cat sat on the mat', 'a dog ran in the park'], { vocabSize: 100, minFrequency: 1 });
    for (const dir of [roberta, distil]) {
      await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(wordPiece));
      const entities = (await (await pipeline('ner', dir))('the cat sat', { ignoreLabels: [] })) as TokenEntity[];
      expect(entities.map((e) => e.word)).toEqual(['the', 'cat', 'sat']);
    }
  });
});
