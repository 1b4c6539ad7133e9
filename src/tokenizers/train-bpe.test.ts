// Byte-level BPE training: merges worked out by hand and by Hugging Face's own unit test, round trips, determinism, Brown timing.

import { describe, expect, test } from 'vitest';
import { loadBrown } from '../data/brown.js';
import { GPT2_SPLIT_PATTERN, toByteLevel } from './byte-level.js';
import { hf } from './hf-lib.js';
import { Tokenizer } from './tokenizer.js';
import { learnBpe, trainByteLevelBpe } from './train-bpe.js';

describe('learnBpe', () => {
  test('the classic "aaabdaaabac": aa, then ab, then aaab', () => {
    // By hand: (a,a) occurs 4 times; then (a,b) and (aa,a) tie at 2 and the pair of smaller ids, (a,b), goes first;
    // then (aa,ab) twice; every other pair occurs once, below minFrequency 2.
    const { vocab, merges } = learnBpe(new Map([['aaabdaaabac', 1]]), { vocabSize: 100 });
    expect(merges).toEqual([['a', 'a'], ['a', 'b'], ['aa', 'ab']]);
    expect(vocab).toEqual(['a', 'b', 'c', 'd', 'aa', 'ab', 'aaab']);
  });

  test("Hugging Face's BpeTrainer unit test (tokenizers/src/models/bpe/trainer.rs, test_train)", () => {
    const words = new Map([['roses', 1], ['are', 2], ['red', 1], ['voilets', 1], ['blue', 1], ['BERT', 1], ['is', 2], ['big', 1], ['and', 1], ['so', 1], ['GPT-2', 1]]);
    const { vocab, merges } = learnBpe(words, { vocabSize: 30000, minFrequency: 2 });
    expect(vocab).toEqual(['-', '2', 'B', 'E', 'G', 'P', 'R', 'T', 'a', 'b', 'd', 'e', 'g', 'i', 'l', 'n', 'o', 'r', 's', 't', 'u', 'v', 're', 'are', 'is']);
    expect(merges).toEqual([['r', 'e'], ['a', 're'], ['i', 's']]);
  });

  test('stops at the vocabulary size, special tokens first', () => {
    const { vocab, merges } = learnBpe(new Map([['abcabcabc', 3]]), { vocabSize: 6, specialTokens: ['<s>'] });
    expect(vocab).toEqual(['<s>', 'a', 'b', 'c', 'ab', 'abc']);
    expect(merges).toEqual([['a', 'b'], ['ab', 'c']]);
  });

  test('bad options', () => {
    expect(() => learnBpe(new Map(), { vocabSize: 0 })).toThrow(/vocabSize must be an integer/);
    expect(() => learnBpe(new Map(), { vocabSize: 10, minFrequency: -1 })).toThrow(/minFrequency must be a non-negative integer/);
  });
});

const SAMPLES = [
  'The quick brown fox jumps over the lazy dog.',
  "Hello, world! It's 2026... don't   panic.",
  'Café naïve résumé — déjà vu.',
  '日本語のテキストと中文字符',
  'emoji 👍🏽 🎉 🇳🇬 and ZWJ 👩‍👩‍👧',
  'def f(x):\n\treturn x**2  # square\n\n',
  '  leading and trailing spaces  ',
  'a\r\nb\u00a0c\u2028d',
  '<|endoftext|> special',
];

function corpus(): string[] {
  const texts: string[] = [];
  for (let i = 0; i < 40; i++) for (const s of SAMPLES) texts.push(`${s} ${i} the cat sat on the mat`);
  return texts;
}

describe('trainByteLevelBpe', () => {
  test('one string instead of an array of texts is an error, not a corpus of its characters', () => {
    expect(() => trainByteLevelBpe('one text' as unknown as string[], { vocabSize: 300 })).toThrow('trainByteLevelBpe: texts must be an array (or iterable) of strings, got one string; pass [text]');
  });
  const json = trainByteLevelBpe(corpus(), { vocabSize: 400 });
  const tok = Tokenizer.fromJSON(json);

  test('reaches the vocabulary size asked for and loads', () => {
    expect(tok.vocabSize).toBe(400);
    expect(tok.tokenToId('<|endoftext|>')).toBe(0);
    expect(tok.eosTokenId).toBe(0);
    // The 256 byte symbols follow the special token, in code point order (as Hugging Face sorts its alphabet).
    expect(tok.idToToken(1)).toBe('!');
    expect(tok.tokenToId('Ġ')).toBeDefined();
  });

  test('round trips any text exactly, unseen characters included', () => {
    for (const text of [...SAMPLES, 'ümlaut ẞ ǅ \u{1F9EC} \u0000 tab\there', 'x'.repeat(300), '']) {
      expect(tok.decode(tok.encode(text).ids)).toBe(text);
    }
  });

  test('frequent words become single tokens', () => {
    expect(tok.tokenize(' the cat sat on the mat')).toEqual(['Ġthe', 'Ġcat', 'Ġsat', 'Ġon', 'Ġthe', 'Ġmat']);
  });

  test('deterministic: same output twice, and whatever the order of the texts', () => {
    const again = trainByteLevelBpe(corpus().reverse(), { vocabSize: 400 });
    expect(JSON.stringify(again)).toBe(JSON.stringify(json));
  });

  test("pre-tokenizes exactly as the library's ByteLevel pre-tokenizer encodes", () => {
    const lib = new hf.ByteLevelPreTokenizer({ type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true });
    for (const text of SAMPLES) expect((text.match(GPT2_SPLIT_PATTERN) ?? []).map(toByteLevel)).toEqual(lib.pre_tokenize_text(text));
  });

  test('addPrefixSpace makes a first word look like the others', () => {
    const withSpace = Tokenizer.fromJSON(trainByteLevelBpe(corpus(), { vocabSize: 400, addPrefixSpace: true }));
    expect(withSpace.tokenize('the cat')).toEqual(['Ġthe', 'Ġcat']);
    expect(withSpace.decode(withSpace.encode('the cat').ids)).toBe(' the cat');
  });

  test('bad options and input', () => {
    expect(() => trainByteLevelBpe(['a'], { vocabSize: 200 })).toThrow(/vocabSize 200 is below the 1 special tokens \+ 256 byte symbols/);
    expect(() => trainByteLevelBpe(['a', 7 as unknown as string], { vocabSize: 300 })).toThrow(/training text 1 is not a string/);
  });
});

describe('Brown corpus', () => {
  test('byte-level BPE with an 8000-token vocabulary trains well under a minute', async () => {
    const texts = (await loadBrown()).flatMap((d) => d.sentences);
    const t0 = performance.now();
    const tok = Tokenizer.fromJSON(trainByteLevelBpe(texts, { vocabSize: 8000 }));
    const seconds = (performance.now() - t0) / 1000;
    expect(seconds).toBeLessThan(30);
    expect(tok.vocabSize).toBe(8000);
    for (const s of texts.slice(0, 200)) expect(tok.decode(tok.encode(s).ids)).toBe(s);
    expect(tok.tokenize('The jury said the election was conducted.')).toEqual(['The', 'Ġjury', 'Ġsaid', 'Ġthe', 'Ġelection', 'Ġwas', 'Ġconducted', '.']);
  });
});
