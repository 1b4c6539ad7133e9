// GPT-2's tiktoken encoding: the book's first example and other known GPT-2 ids, special tokens and bad ids.

import { describe, expect, test } from 'vitest';
import { gpt2Encoding, TiktokenTokenizer } from './tiktoken.js';

describe('gpt2 encoding (js-tiktoken ranks, nothing fetched)', async () => {
  const enc = await gpt2Encoding();

  test('"London is a beautiful city" -> [23421, 318, 257, 4950, 1748] and back', () => {
    expect(enc.encode('London is a beautiful city')).toEqual([23421, 318, 257, 4950, 1748]);
    expect(enc.decode([23421, 318, 257, 4950, 1748])).toBe('London is a beautiful city');
  });

  test('other well-known GPT-2 ids', () => {
    expect(enc.encode('Hello world')).toEqual([15496, 995]);
    expect(enc.encode(' the')).toEqual([262]);
    expect(enc.vocabSize).toBe(50257);
    expect(enc.eotTokenId).toBe(50256);
  });

  test('round trips arbitrary text, unicode and emoji included', () => {
    for (const text of ['Café naïve résumé', '日本語のテキスト', 'emoji 👍🏽 🎉 🇳🇬', 'def f(x):\n\treturn x**2  # square', '  ']) {
      expect(enc.decode(enc.encode(text))).toBe(text);
    }
  });

  test('special tokens are refused unless allowed, as in tiktoken', () => {
    expect(() => enc.encode('a<|endoftext|>b')).toThrow(/special token that is not allowed: <\|endoftext\|>/);
    expect(enc.encode('<|endoftext|>', { allowedSpecial: 'all' })).toEqual([50256]);
    expect(enc.encode('<|endoftext|>', { allowedSpecial: ['<|endoftext|>'] })).toEqual([50256]);
    expect(enc.decode([50256])).toBe('<|endoftext|>');
  });

  test('bad input', async () => {
    expect(() => enc.decode([50257])).toThrow('gpt2.decode: 50257 at position 0 is not a token id of this encoding (size 50257)');
    expect(() => enc.decode([1, -1])).toThrow(/-1 at position 1/);
    expect(() => enc.encode(5 as unknown as string)).toThrow('gpt2.encode: text must be a string, got number');
    await expect(TiktokenTokenizer.fromEncoding('gpt5' as 'gpt2')).rejects.toThrow(/unknown encoding "gpt5"/);
  });
});
