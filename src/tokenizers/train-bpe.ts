// Byte-pair-encoding training (Hugging Face's BpeTrainer algorithm) and a GPT-2 style byte-level BPE trainer writing tokenizer.json.
//
// Merges are learned by pair frequency over the distinct pre-tokenized words, weighted by their counts. Pair counts are
// kept up to date incrementally: a merge only revisits the words that contain the pair and applies the count changes
// around each occurrence; a max-heap with lazy re-insertion of stale entries picks the next pair. Ties go to the pair
// with the smaller ids (first symbol, then second), as in Hugging Face, which makes training deterministic.

import { BYTE_TO_CHAR, GPT2_SPLIT_PATTERN, toByteLevel } from './byte-level.js';
import type { JsonObject, TokenizerJson } from './json.js';

export interface LearnBpeOptions {
  /** Target vocabulary size, special tokens and alphabet included. */
  vocabSize: number;
  /** Pairs seen fewer times than this are never merged (training stops there). Default 2. */
  minFrequency?: number;
  /** Tokens placed first in the vocabulary (ids 0, 1, ...). */
  specialTokens?: readonly string[];
  /** Characters always in the alphabet, seen in the words or not. */
  initialAlphabet?: readonly string[];
  /** Keep at most this many characters (the most frequent; initial ones always stay). */
  limitAlphabet?: number;
  /** Marks symbols that continue a word (WordPiece's '##'); merged tokens keep only the first symbol's. */
  continuingSubwordPrefix?: string;
}

export interface LearnedBpe {
  /** Tokens in id order. */
  vocab: string[];
  /** Merges in the order learned (rank order). */
  merges: [string, string][];
}

// Pair keys pack two ids into one number; 2^21 ids leave the product below 2^53.
const ID_LIMIT = 2 ** 21;
const key = (a: number, b: number): number => a * ID_LIMIT + b;

/** Max-heap of pairs by count, ties to the smaller pair (as Hugging Face's `Merge` ordering). */
class PairHeap {
  private readonly keys: number[] = [];
  private readonly counts: number[] = [];

  get size(): number {
    return this.keys.length;
  }

  private before(i: number, j: number): boolean {
    const ci = this.counts[i]!;
    const cj = this.counts[j]!;
    return ci !== cj ? ci > cj : this.keys[i]! < this.keys[j]!;
  }

  private swap(i: number, j: number): void {
    [this.keys[i], this.keys[j]] = [this.keys[j]!, this.keys[i]!];
    [this.counts[i], this.counts[j]] = [this.counts[j]!, this.counts[i]!];
  }

  push(pair: number, count: number): void {
    this.keys.push(pair);
    this.counts.push(count);
    for (let i = this.keys.length - 1; i > 0; ) {
      const parent = (i - 1) >> 1;
      if (!this.before(i, parent)) break;
      this.swap(i, parent);
      i = parent;
    }
  }

  pop(): { pair: number; count: number } {
    const top = { pair: this.keys[0]!, count: this.counts[0]! };
    const lastKey = this.keys.pop()!;
    const lastCount = this.counts.pop()!;
    if (this.keys.length > 0) {
      this.keys[0] = lastKey;
      this.counts[0] = lastCount;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let best = i;
        if (l < this.keys.length && this.before(l, best)) best = l;
        if (r < this.keys.length && this.before(r, best)) best = r;
        if (best === i) break;
        this.swap(i, best);
        i = best;
      }
    }
    return top;
  }
}

function checkOptions(opts: LearnBpeOptions, what: string): void {
  if (!Number.isInteger(opts.vocabSize) || opts.vocabSize < 1 || opts.vocabSize >= ID_LIMIT) {
    throw new Error(`${what}: vocabSize must be an integer from 1 to ${ID_LIMIT - 1}, got ${opts.vocabSize}`);
  }
  const minFrequency = opts.minFrequency ?? 2;
  if (!Number.isInteger(minFrequency) || minFrequency < 0) throw new Error(`${what}: minFrequency must be a non-negative integer, got ${minFrequency}`);
  if (opts.limitAlphabet !== undefined && (!Number.isInteger(opts.limitAlphabet) || opts.limitAlphabet < 0)) {
    throw new Error(`${what}: limitAlphabet must be a non-negative integer, got ${opts.limitAlphabet}`);
  }
}

/** Learns BPE merges from word counts (words already pre-tokenized), as Hugging Face's BpeTrainer does. */
export function learnBpe(wordCounts: ReadonlyMap<string, number>, opts: LearnBpeOptions): LearnedBpe {
  checkOptions(opts, 'learnBpe');
  const minFrequency = opts.minFrequency ?? 2;
  const prefix = opts.continuingSubwordPrefix ?? '';
  const vocab: string[] = [];
  const ids = new Map<string, number>();
  const add = (token: string): number => {
    let id = ids.get(token);
    if (id === undefined) {
      id = vocab.length;
      vocab.push(token);
      ids.set(token, id);
    }
    return id;
  };
  for (const t of opts.specialTokens ?? []) add(t);

  // The alphabet: every character of the words (the most frequent ones under limitAlphabet), in code point order.
  const charCounts = new Map<string, number>();
  for (const [word, count] of wordCounts) for (const c of word) charCounts.set(c, (charCounts.get(c) ?? 0) + count);
  for (const c of opts.initialAlphabet ?? []) charCounts.set(c, Infinity);
  let alphabet = [...charCounts.entries()];
  if (opts.limitAlphabet !== undefined && alphabet.length > opts.limitAlphabet) {
    alphabet.sort((x, y) => y[1] - x[1] || x[0].codePointAt(0)! - y[0].codePointAt(0)!);
    alphabet = alphabet.slice(0, opts.limitAlphabet);
  }
  alphabet.sort((x, y) => x[0].codePointAt(0)! - y[0].codePointAt(0)!);
  for (const [c] of alphabet) add(c);

  // Words as symbol ids; characters left out of the alphabet are dropped. Sorted so that ids of prefixed symbols are reproducible.
  const entries = [...wordCounts.entries()].sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
  const words: number[][] = [];
  const counts: number[] = [];
  for (const [word, count] of entries) {
    const symbols: number[] = [];
    let first = true;
    for (const c of word) {
      if (ids.has(c)) symbols.push(add(first || !prefix ? c : prefix + c));
      first = false;
    }
    words.push(symbols);
    counts.push(count);
  }
  if (vocab.length >= ID_LIMIT) throw new Error(`learnBpe: the alphabet alone has ${vocab.length} symbols, more than ${ID_LIMIT - 1}`);

  const pairCounts = new Map<number, number>();
  const where = new Map<number, number[]>();
  const note = (pair: number, w: number): void => {
    const list = where.get(pair);
    if (!list) where.set(pair, [w]);
    else if (list[list.length - 1] !== w) list.push(w);
  };
  words.forEach((symbols, w) => {
    for (let i = 0; i + 1 < symbols.length; i++) {
      const p = key(symbols[i]!, symbols[i + 1]!);
      pairCounts.set(p, (pairCounts.get(p) ?? 0) + counts[w]!);
      note(p, w);
    }
  });
  const heap = new PairHeap();
  for (const [p, c] of pairCounts) if (c > 0) heap.push(p, c);

  const merges: [string, string][] = [];
  while (vocab.length < opts.vocabSize && heap.size > 0) {
    const top = heap.pop();
    const current = pairCounts.get(top.pair) ?? 0;
    if (top.count !== current) {
      heap.push(top.pair, current);
      continue;
    }
    if (top.count < 1 || top.count < minFrequency) break;
    const a = Math.floor(top.pair / ID_LIMIT);
    const b = top.pair % ID_LIMIT;
    const right = vocab[b]!;
    const merged = add(vocab[a]! + (prefix && right.startsWith(prefix) ? right.slice(prefix.length) : right));
    merges.push([vocab[a]!, right]);

    // Replace the pair left to right in every word that had it, noting how the neighbouring pairs' counts change.
    const delta = new Map<number, number>();
    const created = new Map<number, number[]>();
    const change = (p: number, by: number, w: number): void => {
      delta.set(p, (delta.get(p) ?? 0) + by * counts[w]!);
      if (by > 0) {
        const list = created.get(p);
        if (!list) created.set(p, [w]);
        else if (list[list.length - 1] !== w) list.push(w);
      }
    };
    for (const w of where.get(top.pair) ?? []) {
      const s = words[w]!;
      for (let i = 0; i + 1 < s.length; i++) {
        if (s[i] !== a || s[i + 1] !== b) continue;
        if (i > 0) {
          change(key(s[i - 1]!, a), -1, w);
          change(key(s[i - 1]!, merged), 1, w);
        }
        s.splice(i, 2, merged);
        if (i + 1 < s.length) {
          change(key(b, s[i + 1]!), -1, w);
          change(key(merged, s[i + 1]!), 1, w);
        }
      }
    }
    where.delete(top.pair);
    for (const [p, d] of delta) pairCounts.set(p, (pairCounts.get(p) ?? 0) + d);
    for (const [p, list] of created) {
      const known = where.get(p);
      where.set(p, known ? [...new Set([...known, ...list])] : list);
      const c = pairCounts.get(p) ?? 0;
      if (c > 0) heap.push(p, c);
    }
  }
  return { vocab, merges };
}

export interface ByteLevelBpeOptions {
  /** Target vocabulary size: special tokens, the 256 byte symbols and the merges. */
  vocabSize: number;
  /** Default 2. */
  minFrequency?: number;
  /** Default ['<|endoftext|>']. */
  specialTokens?: readonly string[];
  /** Put a space before each text so that a first word looks like any other ("Hello" -> "ĠHello"). Default false, as GPT-2. */
  addPrefixSpace?: boolean;
}

/** Counts of the pre-tokenized words of `texts`. */
export function countWords(texts: Iterable<string>, preTokenize: (text: string) => string[]): Map<string, number> {
  const counts = new Map<string, number>();
  let i = 0;
  for (const text of texts) {
    if (typeof text !== 'string') throw new Error(`training text ${i} is not a string (${typeof text})`);
    for (const w of preTokenize(text)) counts.set(w, (counts.get(w) ?? 0) + 1);
    i++;
  }
  return counts;
}

/** added_tokens entries for special tokens with ids 0, 1, ... */
export function addedTokens(specials: readonly string[]): JsonObject[] {
  return specials.map((content, id) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }));
}

/** The tokenizer.json vocab object of tokens in id order. */
export function vocabObject(vocab: readonly string[]): JsonObject {
  const out: JsonObject = {};
  vocab.forEach((t, i) => {
    out[t] = i;
  });
  return out;
}

/**
 * Trains a GPT-2 style byte-level BPE tokenizer (ByteLevel pre-tokenizer with GPT-2's regex, 256 byte symbols, merges by
 * pair frequency) and returns its tokenizer.json; load it with `Tokenizer.fromJSON`. Encoding then decoding gives any text back.
 */
export function trainByteLevelBpe(texts: Iterable<string>, opts: ByteLevelBpeOptions): TokenizerJson {
  checkOptions(opts, 'trainByteLevelBpe');
  // A string is iterable too, as its characters: one text must come as [text].
  if (typeof texts === 'string') throw new Error('trainByteLevelBpe: texts must be an array (or iterable) of strings, got one string; pass [text]');
  const specials = [...new Set(opts.specialTokens ?? ['<|endoftext|>'])];
  const addPrefixSpace = opts.addPrefixSpace ?? false;
  if (opts.vocabSize < specials.length + 256) {
    throw new Error(`trainByteLevelBpe: vocabSize ${opts.vocabSize} is below the ${specials.length} special tokens + 256 byte symbols`);
  }
  // The ByteLevel pre-tokenizer's split, counted on raw pieces so that each distinct piece is byte-mapped once.
  const pieces = countWords(texts, (t) => (addPrefixSpace && !t.startsWith(' ') ? ` ${t}` : t).match(GPT2_SPLIT_PATTERN) ?? []);
  const words = new Map([...pieces].map(([w, n]) => [toByteLevel(w), n]));
  const { vocab, merges } = learnBpe(words, {
    vocabSize: opts.vocabSize,
    minFrequency: opts.minFrequency ?? 2,
    specialTokens: specials,
    initialAlphabet: BYTE_TO_CHAR,
  });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: addedTokens(specials),
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: addPrefixSpace, trim_offsets: true, use_regex: true },
    post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab: vocabObject(vocab),
      merges,
    },
  };
}
