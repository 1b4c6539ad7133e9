// WER / CER against hand-counted alignments and jiwer's documented examples.

import { describe, expect, test } from 'vitest';
import { align, charErrorRate, chars, wordErrorRate, words } from './wer.js';

describe('align', () => {
  test('counts substitutions, deletions and insertions', () => {
    const w = (s: string) => s.split(' ');
    expect(align(w('one two three'), w('one two three'))).toEqual({ substitutions: 0, deletions: 0, insertions: 0, errors: 0 });
    expect(align(w('one two three'), w('one three'))).toEqual({ substitutions: 0, deletions: 1, insertions: 0, errors: 1 });
    expect(align(w('one two'), w('one two two'))).toEqual({ substitutions: 0, deletions: 0, insertions: 1, errors: 1 });
    expect(align(w('one two'), w('one five'))).toEqual({ substitutions: 1, deletions: 0, insertions: 0, errors: 1 });
    expect(align([], w('four four'))).toEqual({ substitutions: 0, deletions: 0, insertions: 2, errors: 2 });
    expect(align(w('four four'), [])).toEqual({ substitutions: 0, deletions: 2, insertions: 0, errors: 2 });
    expect(align(w('six'), w('five nine'))).toEqual({ substitutions: 1, deletions: 0, insertions: 1, errors: 2 });
    // A tie: two substitutions or a deletion + an insertion both cost 2; substitutions are reported.
    expect(align(w('one two'), w('two one'))).toEqual({ substitutions: 2, deletions: 0, insertions: 0, errors: 2 });
  });
});

describe('corpus rates', () => {
  test("jiwer's README example: 'hello world' vs 'hello duck' is 50% WER", () => {
    expect(wordErrorRate(['hello world'], ['hello duck']).rate).toBe(0.5);
  });

  test('sums edits and reference lengths over utterances (not a mean of per-utterance rates)', () => {
    const r = wordErrorRate(['one two three four', 'five'], ['one two three four', 'six seven']);
    // utterance 2: 1 substitution + 1 insertion over 1 word; corpus: 2 errors / 5 words (mean of rates would be 100%).
    expect(r).toMatchObject({ errors: 2, substitutions: 1, insertions: 1, deletions: 0, referenceLength: 5, utterances: 2, correctUtterances: 1 });
    expect(r.rate).toBeCloseTo(0.4, 12);
  });

  test('the rate can exceed 1 with insertions; case and extra spaces do not count', () => {
    expect(wordErrorRate(['one'], ['two three four']).rate).toBe(3);
    expect(wordErrorRate([' Nine  ONE '], ['nine one']).rate).toBe(0);
    expect(words('  ')).toEqual([]);
  });

  test('CER counts characters, spaces included', () => {
    expect(chars(' one  two ')).toEqual(Array.from('one two'));
    // "one two" -> "one too": 1 substitution (w -> o) over 7 characters.
    expect(charErrorRate(['one two'], ['one too']).rate).toBeCloseTo(1 / 7, 12);
    // "five" -> "": 4 deletions over 4.
    expect(charErrorRate(['five'], ['']).rate).toBe(1);
  });

  test('bad input: mismatched counts, nothing to score, empty references', () => {
    expect(() => wordErrorRate(['a'], [])).toThrow(/0 hypotheses for 1 references/);
    expect(() => wordErrorRate([], [])).toThrow(/nothing to score/);
    expect(() => charErrorRate([''], ['x'])).toThrow(/references are all empty/);
  });
});
