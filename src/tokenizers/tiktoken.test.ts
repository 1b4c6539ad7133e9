// GPT-2's tiktoken encoding: known ids, special tokens, bad ids, and ids equal to js-tiktoken's (the reference) on
// ordinary text, long unspaced text and random rank tables; 1 MB inputs checked chunk by chunk.

import { Tiktoken, type TiktokenBPE } from 'js-tiktoken/lite';
import gpt2Ranks from 'js-tiktoken/ranks/gpt2';
import { describe, expect, test } from 'vitest';
import { loadBrown } from '../data/brown.js';
import { gpt2Encoding, TiktokenTokenizer } from './tiktoken.js';

/** A seeded generator (LCG), so failures reproduce. */
function rng(seed: number): () => number {
  let x = seed;
  return () => {
    x = (x * 1103515245 + 12345) % 2147483648;
    return x / 2147483648;
  };
}

function randomLetters(n: number, rand: () => number): string {
  let s = '';
  for (let i = 0; i < n; i++) s += String.fromCharCode(97 + Math.floor(rand() * 26));
  return s;
}

/**
 * The merge rule written as plainly as possible (an independent check of byte-pair.ts, faster than js-tiktoken's
 * on long pieces): parts as [start, end) byte ranges; each step merges the lowest-ranked adjacent pair, the leftmost
 * on ties. Quadratic, but only the two pairs beside a merge are looked up again.
 */
function referenceMerge(bytes: Uint8Array, rankOf: (b: Uint8Array) => number | undefined): number[] {
  const starts = Array.from(bytes, (_, i) => i);
  const ends = Array.from(bytes, (_, i) => i + 1);
  const pair = (i: number): number => rankOf(bytes.subarray(starts[i]!, ends[i + 1]!)) ?? Infinity;
  const ranks = starts.slice(0, -1).map((_, i) => pair(i));
  for (;;) {
    let best = -1;
    for (let i = 0; i < ranks.length; i++) if (ranks[i]! < Infinity && (best < 0 || ranks[i]! < ranks[best]!)) best = i;
    if (best < 0) break;
    ends[best] = ends[best + 1]!;
    starts.splice(best + 1, 1);
    ends.splice(best + 1, 1);
    ranks.splice(best, 1);
    if (best < ranks.length) ranks[best] = pair(best);
    if (best > 0) ranks[best - 1] = pair(best - 1);
  }
  return starts.flatMap((s, i) => {
    const r = rankOf(bytes.subarray(s, ends[i]!));
    return r === undefined ? [] : [r];
  });
}

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

describe('linear-time merge: ids equal to js-tiktoken (the reference)', async () => {
  const enc = await gpt2Encoding();
  const reference = new Tiktoken(gpt2Ranks);
  const gpt2RankOf = (() => {
    const byBytes = new Map<string, number>();
    for (const line of gpt2Ranks.bpe_ranks.split('\n').filter(Boolean)) {
      const [, first, ...tokens] = line.split(' ');
      tokens.forEach((t, i) => byBytes.set(atob(t), Number(first) + i));
    }
    return (b: Uint8Array): number | undefined => byBytes.get(String.fromCharCode(...b));
  })();

  test('long words without spaces, up to 1,500 letters', () => {
    const rand = rng(1);
    for (const n of [2, 3, 7, 64, 257, 1500]) {
      for (const text of ['a'.repeat(n), 'ab'.repeat(n >> 1), randomLetters(n, rand), '7'.repeat(n), '!?'.repeat(n >> 1), '日本'.repeat(n >> 2), ' '.repeat(n)]) {
        expect(enc.encode(text), `${JSON.stringify(text.slice(0, 12))}... (${text.length} chars)`).toEqual(reference.encode(text));
      }
    }
  });

  test('random unicode text: letters, digits, punctuation, CJK, emoji, lone surrogates', () => {
    const rand = rng(2);
    for (let k = 0; k < 300; k++) {
      let text = '';
      const length = Math.floor(rand() * 200);
      for (let i = 0; i < length; i++) {
        const r = rand();
        if (r < 0.5) text += String.fromCharCode(32 + Math.floor(rand() * 95));
        else if (r < 0.6) text += ' \n\t'[Math.floor(rand() * 3)];
        else if (r < 0.85) text += String.fromCodePoint(0xa0 + Math.floor(rand() * 0x3000));
        else if (r < 0.95) text += String.fromCodePoint(0x1f300 + Math.floor(rand() * 500));
        else text += String.fromCharCode(0xd800 + Math.floor(rand() * 2048));
      }
      expect(enc.encode(text), JSON.stringify(text)).toEqual(reference.encode(text));
    }
  });

  test('16,000 letters without spaces match the plainly written merge rule', () => {
    const rand = rng(3);
    for (const text of ['a'.repeat(16_000), randomLetters(16_000, rand)]) {
      expect(enc.encode(text)).toEqual(referenceMerge(new TextEncoder().encode(text), gpt2RankOf));
    }
  });

  test('1 MB without spaces: every sampled chunk between token boundaries matches js-tiktoken; decodes back', () => {
    // Where the result has a token boundary, no merge crossed it, so the text on each side encodes alone to the same
    // ids (the merges on one side never depend on the other). Chunks cut at boundaries are checked against js-tiktoken.
    const rand = rng(4);
    for (const text of ['a'.repeat(1_000_000), randomLetters(1_000_000, rand)]) {
      const ids = enc.encode(text);
      expect(enc.decode(ids)).toBe(text);
      const lengths = new Map<number, number>();
      const ends: number[] = [];
      let offset = 0;
      for (const id of ids) {
        if (!lengths.has(id)) lengths.set(id, enc.decode([id]).length);
        ends.push((offset += lengths.get(id)!));
      }
      for (let sample = 0; sample < 12; sample++) {
        const from = Math.floor(rand() * (ids.length - 400));
        const to = from + 50 + Math.floor(rand() * 200);
        const chunk = text.slice(ends[from - 1] ?? 0, ends[to - 1]);
        expect(ids.slice(from, to), `tokens ${from}..${to}`).toEqual(reference.encode(chunk));
      }
    }
    // 'a' * 2000 is 500 tokens of 'aaaa' (js-tiktoken), so by the same argument a million is 250,000 of them.
    const aaaa = enc.encode('aaaa');
    expect(aaaa).toHaveLength(1);
    expect(reference.encode('a'.repeat(2000))).toEqual(new Array<number>(500).fill(aaaa[0]!));
    const million = enc.encode('a'.repeat(1_000_000));
    expect(million).toHaveLength(250_000);
    expect(million.every((id) => id === aaaa[0])).toBe(true);
  });

  test('1 MB of ordinary English (the Brown corpus) gives the ids of js-tiktoken, twice (through the piece cache)', async () => {
    const docs = await loadBrown();
    const text = docs.map((d) => d.sentences.join(' ')).join('\n\n').slice(0, 1_000_000);
    const expected = reference.encode(text);
    expect(enc.encode(text)).toEqual(expected);
    expect(enc.encode(text)).toEqual(expected);
  });

  test('special tokens inside long text split it as tiktoken does', () => {
    const text = `${'x'.repeat(1500)}<|endoftext|>Hello<|endoftext|><|endoftext|> world ${'yz'.repeat(100)}`;
    expect(enc.encode(text, { allowedSpecial: 'all' })).toEqual(reference.encode(text, 'all'));
    expect(enc.encode('a<|endoftext|>b', { allowedSpecial: 'all' })).toEqual([64, 50256, 65]);
  });

  test('random rank tables: lowest rank first, leftmost on ties, merges that lower the rank, bytes that are no token', () => {
    const rand = rng(5);
    for (let table = 0; table < 40; table++) {
      // Tokens over a three-letter alphabet with shuffled ranks; one letter may be no token on its own.
      const tokens = new Set<string>(rand() < 0.5 ? ['a', 'b', 'c'] : ['a', 'b']);
      while (tokens.size < 14) {
        let t = '';
        const length = 2 + Math.floor(rand() * 4);
        for (let i = 0; i < length; i++) t += 'abc'[Math.floor(rand() * 3)];
        tokens.add(t);
      }
      const order = [...tokens].map((t) => [t, rand()] as const).sort((x, y) => x[1] - y[1]).map(([t]) => t);
      const data: TiktokenBPE = { pat_str: '\\S+|\\s+', special_tokens: {}, bpe_ranks: order.map((t, rank) => `t ${rank} ${btoa(t)}`).join('\n') };
      const ours = TiktokenTokenizer.fromRanks(data, 'abc');
      const theirs = new Tiktoken(data);
      for (let k = 0; k < 30; k++) {
        let text = '';
        const length = 2 + Math.floor(rand() * 40);
        for (let i = 0; i < length; i++) text += 'abc'[Math.floor(rand() * 3)];
        expect(ours.encode(text), `table ${order.join(',')}, text ${text}`).toEqual(theirs.encode(text));
      }
    }
  });

  test('cl100k_base and o200k_base: ordinary text, long words and unicode as js-tiktoken', async () => {
    const docs = await loadBrown({ categories: ['humor'] });
    const rand = rng(6);
    const text = `${docs.map((d) => d.sentences.join(' ')).join('\n\n').slice(0, 60_000)} ${randomLetters(1200, rand)} 12345678 日本語のテキスト 👍🏽 ${'A'.repeat(500)}`;
    for (const name of ['cl100k_base', 'o200k_base'] as const) {
      const ours = await TiktokenTokenizer.fromEncoding(name);
      const data = (await import(`js-tiktoken/ranks/${name}`)) as { default: TiktokenBPE };
      expect(ours.encode(text), name).toEqual(new Tiktoken(data.default).encode(text));
    }
  });

  test('bad rank data names the problem', () => {
    const ok = (bpe_ranks: string): TiktokenBPE => ({ pat_str: '\\S+', special_tokens: {}, bpe_ranks });
    expect(() => TiktokenTokenizer.fromRanks(ok('x y YQ=='), 'mine')).toThrow(/mine: bad rank line "x y YQ=="/);
    expect(() => TiktokenTokenizer.fromRanks(ok('x 0 YQ== YQ=='), 'mine')).toThrow(/mine: token "YQ==" or rank 1 appears twice/);
    expect(() => TiktokenTokenizer.fromRanks(ok('x 0 @@@'), 'mine')).toThrow(/mine: token "@@@" of rank 0 is not base64/);
    expect(() => TiktokenTokenizer.fromRanks({ ...ok('x 0 YQ=='), pat_str: '(' }, 'mine')).toThrow(/mine: pat_str is not a valid regular expression/);
  });
});
