// The Brown corpus loader: tags removed, punctuation re-attached, categories and document count as published.

import { describe, expect, test } from 'vitest';
import { loadBrown, untagSentence } from './brown.js';

describe('Brown corpus', () => {
  test('untagging rebuilds the plain sentence', () => {
    expect(untagSentence("The/at jury/nn said/vbd ,/, ``/`` it/pps is/bez n't/* over/rp ''/'' ./.")).toBe('The jury said, "it isn\'t over".');
  });
  test('the corpus has its 500 documents in 15 categories, first sentence as published', async () => {
    const docs = await loadBrown();
    expect(docs.length).toBe(500);
    expect(new Set(docs.map((d) => d.category)).size).toBe(15);
    expect(docs[0]!.sentences[0]).toBe('The Fulton County Grand Jury said Friday an investigation of Atlanta\'s recent primary election produced "no evidence" that any irregularities took place.');
  });
  test('unknown categories are an error', async () => {
    await expect(loadBrown({ categories: ['nope'] })).rejects.toThrow(/no documents in categories nope/);
  });
});
