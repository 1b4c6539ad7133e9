// WordPiece training: a vocabulary worked out by hand, BERT-style loading and template, normalised round trips, determinism.

import { describe, expect, test } from 'vitest';
import { Tokenizer } from './tokenizer.js';
import { trainWordPiece } from './train-wordpiece.js';

const SPECIALS = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'];

function repeat(counts: Record<string, number>): string[] {
  return Object.entries(counts).flatMap(([w, n]) => new Array<string>(n).fill(w));
}

describe('trainWordPiece', () => {
  test('learns the merges worked out by hand ("hug pug pun bun hugs" corpus)', () => {
    // Words h ##u ##g (10), p ##u ##g (5), p ##u ##n (12), b ##u ##n (4), h ##u ##g ##s (5). Pair counts by hand:
    // (##u,##g) 20 -> ##ug; (##u,##n) 16 -> ##un; (h,##ug) 15 -> hug; (p,##un) 12 -> pun; (p,##ug) and (hug,##s) tie
    // at 5 and p has the smaller id -> pug, then hugs; (b,##un) 4 -> bun. The '##' symbols are numbered as first met
    // in the sorted words (bun, hug, hugs, ...): ##u, ##n, ##g, ##s.
    const json = trainWordPiece(repeat({ hug: 10, pug: 5, pun: 12, bun: 4, hugs: 5 }), { vocabSize: 1000 });
    const tok = Tokenizer.fromJSON(json);
    const vocab = [...tok.getVocab().entries()].sort((x, y) => x[1] - y[1]).map(([t]) => t);
    expect(vocab).toEqual([...SPECIALS, 'b', 'g', 'h', 'n', 'p', 's', 'u', '##u', '##n', '##g', '##s', '##ug', '##un', 'hug', 'pun', 'pug', 'hugs', 'bun']);
    expect(tok.tokenize('hugs bugs pun')).toEqual(['hugs', 'b', '##ug', '##s', 'pun']);
  });

  const texts = [
    'The quick brown fox jumps over the lazy dog.',
    'Café au lait, s\'il vous plaît! Naïve résumé.',
    'Numbers like 3.14159 and 2026 appear; so do symbols (#, @, %).',
    'THE Quick BROWN dogs jumped over lazy foxes?',
  ];
  const corpus = Array.from({ length: 30 }, (_, i) => `${texts[i % texts.length]} the end of line ${i % 7}`);
  const json = trainWordPiece(corpus, { vocabSize: 150 });
  const tok = Tokenizer.fromJSON(json);

  test('has the size asked for, the BERT special tokens at 0..4, and loads', () => {
    expect(tok.vocabSize).toBe(150);
    expect([tok.padTokenId, tok.unkTokenId, tok.clsTokenId, tok.sepTokenId, tok.maskTokenId]).toEqual([0, 1, 2, 3, 4]);
    expect([...tok.getVocab().keys()].some((t) => t.startsWith('##'))).toBe(true);
  });

  test('[CLS] A [SEP] and [CLS] A [SEP] B [SEP] with type ids', () => {
    const single = tok.encode('the quick fox');
    expect(single.tokens).toEqual(['[CLS]', 'the', 'quick', 'fox', '[SEP]']);
    const pair = tok.encode('the dog', { textPair: 'the fox' });
    expect(pair.tokens).toEqual(['[CLS]', 'the', 'dog', '[SEP]', 'the', 'fox', '[SEP]']);
    expect(pair.typeIds).toEqual([0, 0, 0, 0, 1, 1, 1]);
    expect(pair.offsets).toEqual([[0, 0], [0, 3], [4, 7], [0, 0], [0, 3], [4, 7], [0, 0]]);
  });

  test('round trips to the normalised text (lowercased, accents stripped)', () => {
    const cases: [string, string][] = [
      ['The quick brown fox', 'the quick brown fox'],
      ['CAFÉ NAÏVE résumé', 'cafe naive resume'],
      ['the   lazy\tdog\njumps', 'the lazy dog jumps'],
      ['over the fox.', 'over the fox.'],
    ];
    for (const [text, normalised] of cases) expect(tok.decode(tok.encode(text).ids, { skipSpecialTokens: true })).toBe(normalised);
  });

  test('frequent words are single tokens', () => {
    expect(tok.tokenize('the quick brown fox')).toEqual(['the', 'quick', 'brown', 'fox']);
  });

  test('deterministic', () => {
    expect(JSON.stringify(trainWordPiece([...corpus].reverse(), { vocabSize: 150 }))).toBe(JSON.stringify(json));
  });

  test('cased, and custom special tokens', () => {
    const cased = Tokenizer.fromJSON(trainWordPiece(corpus, { vocabSize: 150, lowercase: false, specialTokens: ['[UNK]', '[CLS]', '[SEP]'] }));
    expect(cased.decode(cased.encode('The quick').ids, { skipSpecialTokens: true })).toBe('The quick');
    expect(cased.clsTokenId).toBe(1);
    expect(cased.padTokenId).toBeNull();
  });

  test('bad options', () => {
    expect(() => trainWordPiece(corpus, { vocabSize: 100, specialTokens: ['[PAD]', '[UNK]'] })).toThrow(/specialTokens must include \[CLS\]/);
    expect(() => trainWordPiece(corpus, { vocabSize: -5 })).toThrow(/vocabSize must be an integer/);
  });
});

test('trainWordPiece: one string instead of an array of texts is an error, not a corpus of its characters', () => {
  expect(() => trainWordPiece('one text' as unknown as string[], { vocabSize: 100 })).toThrow('trainWordPiece: texts must be an array (or iterable) of strings, got one string; pass [text]');
});
