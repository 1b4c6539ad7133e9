// The CMU Pronouncing Dictionary: known entries, counts (from the package's dict.txt: 133,784 lines, 125,005 distinct
// words, 133,469 distinct pronunciations without stress), stress stripping, a split by word, and bad input.

import { beforeAll, describe, expect, test } from 'vitest';
import { loadCmudict, parseCmudict, stripStress, type CmudictEntry } from './cmudict.js';
import { splitByKey } from './split.js';

let dict: CmudictEntry[];
beforeAll(async () => {
  dict = await loadCmudict();
});
const lookup = (entries: CmudictEntry[], word: string): string[] => entries.find((e) => e.word === word)!.pronunciations.map((p) => p.join(' '));

describe('CMU Pronouncing Dictionary', () => {
  test('counts: every line is a pronunciation, alternates WORD(n) grouped under their word', () => {
    expect(dict.length).toBe(125005);
    expect(dict.reduce((n, e) => n + e.pronunciations.length, 0)).toBe(133784);
    expect(dict.some((e) => /\(\d+\)$/.test(e.word))).toBe(false);
    expect(dict.slice(0, 3).map((e) => e.word)).toEqual(['A', "A'S", 'A.']);
  });

  test('known entries', () => {
    expect(lookup(dict, 'HELLO')).toEqual(['HH AH0 L OW1', 'HH EH0 L OW1']);
    expect(lookup(dict, 'A')).toEqual(['AH0', 'EY1']);
    expect(lookup(dict, 'TOMATO')).toEqual(['T AH0 M EY1 T OW2', 'T AH0 M AA1 T OW2']);
    expect(lookup(dict, 'READ')).toEqual(['R EH1 D', 'R IY1 D']);
    expect(lookup(dict, 'ABKHAZIAN')).toHaveLength(4);
  });

  test('stripStress removes the vowels\' 0/1/2 and merges pronunciations that become equal', async () => {
    expect(stripStress(['HH', 'AH0', 'L', 'OW1'])).toEqual(['HH', 'AH', 'L', 'OW']);
    const plain = await loadCmudict({ stripStress: true });
    expect(plain.length).toBe(125005);
    expect(plain.reduce((n, e) => n + e.pronunciations.length, 0)).toBe(133469);
    expect(lookup(plain, 'HELLO')).toEqual(['HH AH L OW', 'HH EH L OW']);
    expect(plain.every((e) => e.pronunciations.every((p) => p.every((ph) => !/\d/.test(ph))))).toBe(true);
  });

  test('a split by word keeps all pronunciations of a word together', () => {
    const pairs = dict.flatMap((e) => e.pronunciations.map((p) => ({ word: e.word, phones: p })));
    const [train, val, test] = splitByKey(pairs, (p) => p.word, { fractions: [0.8, 0.1, 0.1], seed: 7 });
    const words = [train!, val!, test!].map((s) => new Set(s.map((p) => p.word)));
    // 125005 words: floor(0.8 n) = 100004 and floor(0.1 n) = 12500 twice, the one left over goes to the first split.
    expect(words.map((w) => w.size)).toEqual([100005, 12500, 12500]);
    expect(train!.length + val!.length + test!.length).toBe(133784);
    for (const w of words[1]!) expect(words[0]!.has(w) || words[2]!.has(w)).toBe(false);
    for (const w of words[2]!) expect(words[0]!.has(w)).toBe(false);
    const hello = [train!, val!, test!].filter((s) => s.some((p) => p.word === 'HELLO'));
    expect(hello).toHaveLength(1);
    expect(hello[0]!.filter((p) => p.word === 'HELLO')).toHaveLength(2);
  });

  test('bad input: a word without phones names the line; an empty dictionary; a missing package folder', async () => {
    expect(parseCmudict(';;; comment\nCAT  K AE1 T\nCAT(1)  K AA1 T\n')).toEqual([{ word: 'CAT', pronunciations: [['K', 'AE1', 'T'], ['K', 'AA1', 'T']] }]);
    expect(() => parseCmudict('CAT  K AE1 T\nDOG\n', { file: 'mini.txt' })).toThrow(/mini\.txt:2: expected a word followed by its phones, got 'DOG'/);
    expect(() => parseCmudict(';;; only comments\n', { file: 'empty.txt' })).toThrow(/empty\.txt: the dictionary has no entries/);
    await expect(loadCmudict({ dir: '/nonexistent/cmudict' })).rejects.toThrow(/cannot read \/nonexistent\/cmudict\/data\/dict\.txt/);
  });
});
