// Tokenizer against Hugging Face's own results (test/data/tokenizers/expected.json): ids, tokens, offsets, decoding, pairs; batches and bad input.

import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import '../autograd/methods.js';
import { CpuBackend } from '../backend/cpu/index.js';
import { registerBackend } from '../tensor/backend.js';
import { AutoTokenizer, Tokenizer } from './tokenizer.js';

registerBackend(new CpuBackend());

const dataDir = new URL('../../test/data/tokenizers/', import.meta.url).pathname;
const NAMES = ['bytelevel-bpe', 'wordpiece', 'unigram', 'bpe-bytefallback'] as const;
type Name = (typeof NAMES)[number];

interface SingleCase {
  text: string;
  ids: number[];
  tokens: string[];
  offsets: [number, number][];
  decoded: string;
}
interface PairCase {
  text: [string, string];
  ids: number[];
  tokens: string[];
  type_ids: number[];
  offsets: [number, number][];
}
type Case = SingleCase | PairCase;

const expected = JSON.parse(await readFile(join(dataDir, 'expected.json'), 'utf8')) as Record<Name, Case[]>;
const jsonOf = async (name: Name): Promise<unknown> => JSON.parse(await readFile(join(dataDir, `${name}.json`), 'utf8'));
const rawJson = Object.fromEntries(await Promise.all(NAMES.map(async (n) => [n, await jsonOf(n)] as const))) as Record<Name, unknown>;
const tokenizers = Object.fromEntries(NAMES.map((n) => [n, Tokenizer.fromJSON(rawJson[n])] as const)) as Record<Name, Tokenizer>;
/** Special tokens each tokenizer.json's post-processor puts before and after a single text. */
const TEMPLATE_SPECIALS: Record<Name, [number, number]> = { 'bytelevel-bpe': [0, 0], wordpiece: [1, 1], unigram: [0, 1], 'bpe-bytefallback': [1, 0] };

const isPair = (c: Case): c is PairCase => Array.isArray(c.text);

describe.each(NAMES)('%s matches Hugging Face', (name) => {
  const tok = tokenizers[name];
  const singles = expected[name].filter((c): c is SingleCase => !isPair(c));
  const pairs = expected[name].filter(isPair);

  test('has 16 single cases and a pair', () => {
    expect(singles).toHaveLength(16);
    expect(pairs).toHaveLength(1);
  });

  test.each(singles.map((c) => [JSON.stringify(c.text), c] as const))('encode %s: ids, tokens, offsets', (_, c) => {
    const e = tok.encode(c.text);
    expect(e.ids).toEqual(c.ids);
    expect(e.tokens).toEqual(c.tokens);
    expect(e.offsets).toEqual(c.offsets);
    expect(e.attentionMask).toEqual(c.ids.map(() => 1));
    expect(e.typeIds).toEqual(c.ids.map(() => 0));
  });

  test.each(singles.map((c) => [JSON.stringify(c.text), c] as const))('decode %s', (_, c) => {
    expect(tok.decode(c.ids, { skipSpecialTokens: true })).toBe(c.decoded);
  });

  test('the pair: ids, tokens, type ids, offsets (second text counted from its own start)', () => {
    const c = pairs[0]!;
    const e = tok.encode(c.text[0], { textPair: c.text[1] });
    expect(e.ids).toEqual(c.ids);
    expect(e.tokens).toEqual(c.tokens);
    expect(e.typeIds).toEqual(c.type_ids);
    expect(e.offsets).toEqual(c.offsets);
  });

  test('tokenize gives the tokens of the text alone, without special tokens', () => {
    const [before, after] = TEMPLATE_SPECIALS[name];
    for (const c of singles) {
      expect(tok.tokenize(c.text)).toEqual(c.tokens.slice(before, c.tokens.length - after));
      const mask = tok.encode(c.text).specialTokensMask;
      expect(mask).toEqual(c.tokens.map((_, i) => (i < before || i >= c.tokens.length - after ? 1 : 0)));
    }
  });

  test('vocabulary lookups agree with the file', async () => {
    const json = (await jsonOf(name)) as { model: { vocab: Record<string, number> | [string, number][] } };
    const vocab = json.model.vocab;
    const entries: [string, number][] = Array.isArray(vocab) ? vocab.map(([t], i) => [t, i]) : Object.entries(vocab);
    expect(tok.vocabSize).toBe(entries.length);
    for (const [token, id] of entries.slice(0, 50)) {
      expect(tok.tokenToId(token)).toBe(id);
      expect(tok.idToToken(id)).toBe(token);
    }
    expect(tok.tokenToId('surely-not-a-token-\u{1F600}')).toBeUndefined();
    expect(tok.idToToken(10 ** 6)).toBeUndefined();
  });
});

describe('offsets', () => {
  test('are code points: slicing the code points of the text gives byte-level tokens whole', () => {
    const c = expected['bytelevel-bpe'].find((x): x is SingleCase => !isPair(x) && x.text.startsWith('emoji'))!;
    const e = tokenizers['bytelevel-bpe'].encode(c.text);
    const chars = Array.from(c.text);
    expect(chars.slice(...e.offsets[4]!).join('')).toBe(' \u{1F44D}'); // 'ĠðŁ': the space and the first bytes of 👍
  });

  test('an unknown word gets the span of the word ([UNK] covers it whole)', () => {
    const tok = tokenizers.wordpiece;
    // 'ß' is not in this small vocabulary, so "straße" is one [UNK]; hand-worked spans.
    const e = tok.encode('go straße now');
    expect(e.tokens).toContain('[UNK]');
    const unk = e.tokens.indexOf('[UNK]');
    expect(e.offsets[unk]).toEqual([3, 9]);
    expect(e.offsets[unk + 1]![0]).toBe(10);
    expect(e.offsets[unk - 1]![1]).toBe(2);
  });
});

describe('post-processors beyond the fixtures', () => {
  test("RoBERTa's: <s> A </s></s> B </s>, every type id 0, offsets trimmed of the byte-level space", () => {
    const json = { ...(rawJson['bytelevel-bpe'] as object), post_processor: { type: 'RobertaProcessing', sep: ['<|endoftext|>', 0], cls: ['<|endoftext|>', 0], trim_offsets: true, add_prefix_space: false } };
    const tok = Tokenizer.fromJSON(json);
    const c = expected['bytelevel-bpe'][0] as SingleCase;
    // Hugging Face's process_offsets: a leading 'Ġ' leaves the token's span.
    const trimmed = c.offsets.map(([s, e], i) => (c.tokens[i]!.startsWith('Ġ') ? [s + 1, e] : [s, e]));
    const e = tok.encode(c.text, { textPair: c.text });
    expect(e.ids).toEqual([0, ...c.ids, 0, 0, ...c.ids, 0]);
    expect(e.typeIds).toEqual(e.ids.map(() => 0));
    expect(e.offsets).toEqual([[0, 0], ...trimmed, [0, 0], [0, 0], ...trimmed, [0, 0]]);
    expect(e.specialTokensMask).toEqual([1, ...c.ids.map(() => 0), 1, 1, ...c.ids.map(() => 0), 1]);
  });

  test('an added token with lstrip takes the space before it; normalized added tokens match after lowercasing', () => {
    const base = rawJson.wordpiece as { added_tokens: object[] };
    const json = { ...base, added_tokens: [...base.added_tokens, { id: 799, content: '[FOO]', single_word: false, lstrip: true, rstrip: false, normalized: true, special: false }] };
    const e = Tokenizer.fromJSON(json).encode('Hello [FOO] World [foo]x');
    const at = (token: string, from = 0): number => e.tokens.indexOf(token, from);
    expect(e.offsets[at('[foo]')]).toEqual([5, 11]);
    expect(e.offsets[at('[foo]', at('[foo]') + 1)]).toEqual([17, 23]);
    expect(e.offsets[at('x')]).toEqual([23, 24]);
  });
});

describe('special tokens', () => {
  test('from the added tokens of a tokenizer.json without tokenizer_config', () => {
    const wp = tokenizers.wordpiece;
    expect([wp.padToken, wp.unkToken, wp.clsToken, wp.sepToken, wp.maskToken]).toEqual(['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']);
    expect([wp.padTokenId, wp.unkTokenId, wp.clsTokenId, wp.sepTokenId, wp.maskTokenId]).toEqual([0, 1, 2, 3, 4]);
    expect(wp.bosTokenId).toBeNull();
    const t5 = tokenizers.unigram;
    expect([t5.padTokenId, t5.eosTokenId, t5.unkTokenId]).toEqual([0, 1, 2]);
    const llama = tokenizers['bpe-bytefallback'];
    expect([llama.unkTokenId, llama.bosTokenId, llama.eosTokenId, llama.padTokenId]).toEqual([0, 1, 2, null]);
    const gpt2 = tokenizers['bytelevel-bpe'];
    expect([gpt2.eosToken, gpt2.eosTokenId, gpt2.padToken, gpt2.padTokenId]).toEqual(['<|endoftext|>', 0, null, null]);
  });

  test('tokenizer_config.json wins, AddedToken objects included; the pad token can be set', async () => {
    const tok = Tokenizer.fromJSON(await jsonOf('bytelevel-bpe'), {
      bos_token: { __type: 'AddedToken', content: '<|endoftext|>', lstrip: false },
      eos_token: '<|endoftext|>',
      pad_token: null,
      model_max_length: 1024,
    });
    expect([tok.bosTokenId, tok.eosTokenId, tok.padTokenId, tok.modelMaxLength]).toEqual([0, 0, null, 1024]);
    tok.padToken = tok.eosToken;
    expect(tok.padTokenId).toBe(0);
    expect(() => {
      tok.padToken = '<nope>';
    }).toThrow(/padToken: "<nope>" is not in the vocabulary/);
  });

  test('decode keeps special tokens unless asked to skip them (transformers default)', () => {
    const c = expected.wordpiece[0] as SingleCase;
    expect(tokenizers.wordpiece.decode(c.ids)).toBe(`[CLS] ${c.decoded} [SEP]`);
    expect(tokenizers.wordpiece.decode([])).toBe('');
    expect(tokenizers.wordpiece.decode(Int32Array.from(c.ids), { skipSpecialTokens: true })).toBe(c.decoded);
  });
});

describe('encodeBatch', () => {
  // Reference ids from expected.json: "London is a beautiful city" and "" through the WordPiece tokenizer.
  const london = (expected.wordpiece[0] as SingleCase).ids; // [CLS] ... [SEP], 15 ids
  const empty = (expected.wordpiece.find((c) => c.text === '') as SingleCase).ids; // [CLS] [SEP]
  const wp = tokenizers.wordpiece;
  const PAD = 0;

  test('padding: true pads to the longest, on the right by default, with attention mask 0', () => {
    const b = wp.encodeBatch(['London is a beautiful city', ''], { padding: true, returnTensors: false });
    expect(b.inputIds).toEqual([london, [...empty, ...new Array<number>(13).fill(PAD)]]);
    expect(b.attentionMask).toEqual([london.map(() => 1), [1, 1, ...new Array<number>(13).fill(0)]]);
    expect(b.tokenTypeIds).toEqual([london.map(() => 0), new Array<number>(15).fill(0)]);
  });

  test('left padding', () => {
    const b = wp.encodeBatch(['', 'London is a beautiful city'], { padding: 'longest', paddingSide: 'left', returnTensors: false });
    expect(b.inputIds[0]).toEqual([...new Array<number>(13).fill(PAD), ...empty]);
    expect(b.attentionMask[0]).toEqual([...new Array<number>(13).fill(0), 1, 1]);
    expect(b.inputIds[1]).toEqual(london);
  });

  test("padding 'max_length' with truncation to maxLength, special tokens kept", () => {
    const b = wp.encodeBatch(['London is a beautiful city', ''], { padding: 'max_length', truncation: true, maxLength: 6, returnTensors: false });
    expect(b.inputIds).toEqual([[...london.slice(0, 5), london[14]!], [...empty, PAD, PAD, PAD, PAD]]);
    expect(b.attentionMask).toEqual([[1, 1, 1, 1, 1, 1], [1, 1, 0, 0, 0, 0]]);
    const left = wp.encode('London is a beautiful city', { truncation: true, maxLength: 6, truncationSide: 'left' });
    expect(left.ids).toEqual([london[0]!, ...london.slice(10, 15)]);
  });

  test('int32 tensors [batch, length] by default', () => {
    const b = wp.encodeBatch(['London is a beautiful city', ''], { padding: true });
    expect(b.inputIds.shape).toEqual([2, 15]);
    expect(b.inputIds.dtype).toBe('int32');
    expect(Array.from(b.inputIds.dataSync())).toEqual([...london, ...empty, ...new Array<number>(13).fill(PAD)]);
    expect(Array.from(b.attentionMask.dataSync()).reduce((s, x) => s + x, 0)).toBe(17);
    expect(b.tokenTypeIds.shape).toEqual([2, 15]);
    expect(wp.batchDecode(b.inputIds, { skipSpecialTokens: true })).toEqual([(expected.wordpiece[0] as SingleCase).decoded, '']);
  });

  test('pairs: type ids, and longest_first truncation splitting the budget as Hugging Face does', () => {
    const c = expected.wordpiece.find(isPair)!;
    // Reference: [CLS] A(8) [SEP] B(6) [SEP]; the text ids of A and B.
    const a = c.ids.slice(1, 9);
    const bIds = c.ids.slice(10, 16);
    const full = wp.encodeBatch([c.text], { returnTensors: false });
    expect(full.inputIds[0]).toEqual(c.ids);
    expect(full.tokenTypeIds[0]).toEqual(c.type_ids);
    // Budget 15 - 3 = 12: the shorter B keeps its 6, A keeps 12 - 6 = 6.
    const cut12 = wp.encode(c.text[0], { textPair: c.text[1], truncation: true, maxLength: 15 });
    expect(cut12.ids).toEqual([2, ...a.slice(0, 6), 3, ...bIds, 3]);
    // Budget 11 - 3 = 8: both must shrink, 4 each.
    const cut8 = wp.encode(c.text[0], { textPair: c.text[1], truncation: 'longest_first', maxLength: 11 });
    expect(cut8.ids).toEqual([2, ...a.slice(0, 4), 3, ...bIds.slice(0, 4), 3]);
    expect(cut8.typeIds).toEqual([0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1]);
    // Budget 10 - 3 = 7: 3 + 4, the odd token going to the longer text (A).
    const cut7 = wp.encode(c.text[0], { textPair: c.text[1], truncation: true, maxLength: 10 });
    expect(cut7.ids).toEqual([2, ...a.slice(0, 4), 3, ...bIds.slice(0, 3), 3]);
    const onlyFirst = wp.encode(c.text[0], { textPair: c.text[1], truncation: 'only_first', maxLength: 13 });
    expect(onlyFirst.ids).toEqual([2, ...a.slice(0, 4), 3, ...bIds, 3]);
    const padded = wp.encodeBatch([c.text, ['', '']], { padding: true, returnTensors: false });
    expect(padded.tokenTypeIds[1]).toEqual([0, 0, 1, ...new Array<number>(14).fill(0)]);
    expect(padded.inputIds[1]).toEqual([2, 3, 3, ...new Array<number>(14).fill(PAD)]);
  });

  test('a tokenizer without a pad token refuses to pad, and says how to set one', () => {
    const gpt2 = Tokenizer.fromJSON(rawJson['bytelevel-bpe']);
    expect(() => gpt2.encodeBatch(['a', 'bb cc'], { padding: true })).toThrow(/no pad token.*tokenizer\.padToken = tokenizer\.eosToken/);
    gpt2.padToken = gpt2.eosToken;
    const b = gpt2.encodeBatch(['a', 'bb cc'], { padding: true, paddingSide: 'left', returnTensors: false });
    expect(b.inputIds[0]![0]).toBe(0);
    expect(b.attentionMask[0]![0]).toBe(0);
  });

  test('bad batches', () => {
    expect(() => wp.encodeBatch(['a', 'b c d'])).toThrow(/different lengths.*padding: true/);
    expect(() => wp.encodeBatch([])).toThrow(/empty/);
    expect(() => wp.encodeBatch(['a', 3 as unknown as string])).toThrow(/item 1 must be a string or a \[string, string\] pair/);
    expect(() => wp.encodeBatch(['a'], { truncation: true })).toThrow(/needs maxLength/);
    expect(() => wp.encodeBatch(['a'], { padding: 'max_length' })).toThrow(/needs maxLength/);
    expect(() => wp.encode('a b', { truncation: true, maxLength: 1 })).toThrow(/no room for the 2 special tokens/);
    expect(() => wp.encode('a', { textPair: 'b', truncation: 'only_first', maxLength: 4 })).toThrow(/only_first.*too few/);
  });
});

describe('loading', () => {
  test('fromFile reads tokenizer_config.json and special_tokens_map.json beside the tokenizer.json', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tok-'));
    await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(rawJson['bytelevel-bpe']));
    await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify({ model_max_length: 8, padding_side: 'left', eos_token: '<|endoftext|>' }));
    await writeFile(join(dir, 'special_tokens_map.json'), JSON.stringify({ pad_token: { content: '<|endoftext|>', single_word: false } }));
    for (const tok of [await Tokenizer.fromFile(join(dir, 'tokenizer.json')), await AutoTokenizer.fromPretrained(dir)]) {
      expect(tok.padTokenId).toBe(0);
      expect(tok.modelMaxLength).toBe(8);
      expect(tok.paddingSide).toBe('left');
      const b = tok.encodeBatch(['London is a beautiful city', '   '], { padding: true, truncation: true, returnTensors: false });
      const london = (expected['bytelevel-bpe'][0] as SingleCase).ids;
      const spaces = (expected['bytelevel-bpe'].find((c) => c.text === '   ') as SingleCase).ids; // one token
      expect(b.inputIds).toEqual([london.slice(0, 8), [0, 0, 0, 0, 0, 0, 0, ...spaces]]);
      expect(b.attentionMask[1]).toEqual([0, 0, 0, 0, 0, 0, 0, 1]);
    }
  });

  test('the fixture files load with fromFile and save round-trips', async () => {
    const tok = await Tokenizer.fromFile(join(dataDir, 'wordpiece.json'));
    expect(tok.encode('London is a beautiful city').ids).toEqual((expected.wordpiece[0] as SingleCase).ids);
    const dir = await mkdtemp(join(tmpdir(), 'tok-'));
    await tok.save(join(dir, 'tokenizer.json'));
    const again = await AutoTokenizer.fromPretrained(dir);
    expect(again.toJSON()).toEqual(rawJson.wordpiece);
  });

  test('bad files name the file and the problem', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tok-'));
    await expect(Tokenizer.fromFile(join(dir, 'missing.json'))).rejects.toThrow(`${join(dir, 'missing.json')}: file not found`);
    await writeFile(join(dir, 'broken.json'), '{"model": ');
    await expect(Tokenizer.fromFile(join(dir, 'broken.json'))).rejects.toThrow(`${join(dir, 'broken.json')}: not valid JSON`);
    await writeFile(join(dir, 'config.json'), JSON.stringify({ model_type: 'gpt2', n_layer: 2 }));
    await expect(Tokenizer.fromFile(join(dir, 'config.json'))).rejects.toThrow(`${join(dir, 'config.json')}: not a tokenizer.json (no "model" object)`);
    await writeFile(join(dir, 'list.json'), '[1, 2]');
    await expect(Tokenizer.fromFile(join(dir, 'list.json'))).rejects.toThrow(/list\.json: expected a JSON object, got an array/);
    await expect(AutoTokenizer.fromPretrained(dir)).rejects.toThrow(`${join(dir, 'tokenizer.json')}: not found; AutoTokenizer needs the fast-tokenizer file tokenizer.json`);
    await expect(AutoTokenizer.fromPretrained(join(dir, 'nope'))).rejects.toThrow(/nope: no such folder/);
    const sub = await mkdtemp(join(tmpdir(), 'tok-'));
    await writeFile(join(sub, 'tokenizer.json'), JSON.stringify(rawJson.wordpiece));
    await writeFile(join(sub, 'tokenizer_config.json'), '{oops');
    await expect(AutoTokenizer.fromPretrained(sub)).rejects.toThrow(`${join(sub, 'tokenizer_config.json')}: not valid JSON`);
    expect(() => Tokenizer.fromJSON({ model: { type: 'BPE' } }, {}, 'my.json')).toThrow('my.json: not a tokenizer.json (its model has no "vocab")');
    expect(() => Tokenizer.fromJSON('x')).toThrow(/tokenizer\.json: expected a tokenizer\.json object, got "x"/);
    const badTemplate = { ...(rawJson.wordpiece as object), post_processor: { type: 'TemplateProcessing', single: [{ SpecialToken: { id: '[X]', type_id: 0 } }], pair: [], special_tokens: {} } };
    expect(() => Tokenizer.fromJSON(badTemplate, {}, 'bert.json')).toThrow(/bert\.json: post_processor TemplateProcessing uses special token "\[X\]"/);
  });

  test('bad arguments', () => {
    const wp = tokenizers.wordpiece;
    expect(() => wp.encode(42 as unknown as string)).toThrow('encode: text must be a string, got number 42');
    expect(() => wp.encode('a', { textPair: null as unknown as string })).toThrow('encode: textPair must be a string, got null');
    expect(() => wp.decode([2, 99999])).toThrow('decode: number 99999 at position 1 is not a token id of this vocabulary (size 800)');
    expect(() => wp.decode([1.5])).toThrow(/1\.5 at position 0/);
    expect(() => wp.decode('abc' as unknown as number[])).toThrow(/expected an array of token ids/);
    expect(() => wp.encode('a', { truncation: 'sideways' as unknown as true, maxLength: 3 })).toThrow(/truncation must be/);
    expect(() => wp.encodeBatch(['a'], { padding: true, paddingSide: 'top' as unknown as 'left' })).toThrow(/paddingSide must be 'left' or 'right'/);
  });
});

describe('long input without spaces', () => {
  test('Unigram: 200,000 characters encode (the library overflowed the stack at ~130,000), same ids as in pieces', () => {
    const t5 = tokenizers.unigram;
    const text = 'abcdefghij'.repeat(20_000);
    const e = t5.encode(text);
    // One Metaspace piece, '▁abcdefghij...', then '</s>'. Short inputs (which the library handled) show the pattern:
    // the first unit's ids, then the same ids for every further unit; the long input must continue it exactly.
    const ids = (units: number): number[] => t5.encode('abcdefghij'.repeat(units), { addSpecialTokens: false }).ids;
    const first = ids(1);
    const next = ids(2).slice(first.length);
    expect(ids(5)).toEqual([...first, ...next, ...next, ...next, ...next]);
    const expected = [...first, ...Array.from({ length: 19_999 }, () => next).flat(), 1]; // 1: </s>
    expect(e.ids.length).toBe(expected.length);
    expect(e.ids.every((id, i) => id === expected[i])).toBe(true);
    expect(t5.decode(e.ids, { skipSpecialTokens: true })).toBe(text);
  });

  test('the byte-level BPE and WordPiece tokenizers take 200,000 characters too', () => {
    const text = 'ab'.repeat(100_000);
    const gpt2 = tokenizers['bytelevel-bpe'].encode(text);
    expect(tokenizers['bytelevel-bpe'].decode(gpt2.ids)).toBe(text);
    expect(tokenizers.wordpiece.encode(text).tokens).toEqual(['[CLS]', '[UNK]', '[SEP]']); // longer than max_input_chars_per_word
  });
});

describe('malformed tokenizer.json files: an error naming the file and the key', () => {
  const base = (name: Name): Record<string, unknown> & { model: Record<string, unknown> } => structuredClone(rawJson[name]) as Record<string, unknown> & { model: Record<string, unknown> };
  const load = (json: unknown): Tokenizer => Tokenizer.fromJSON(json, {}, 'bad.json');

  test('added_tokens that are not an array of {id, content}', () => {
    expect(() => load({ ...base('wordpiece'), added_tokens: 'oops' })).toThrow('bad.json: added_tokens must be an array of {"id", "content", ...} objects, got "oops"');
    expect(() => load({ ...base('wordpiece'), added_tokens: [5] })).toThrow('bad.json: added_tokens[0] must be an object with "id" and "content", got 5');
    expect(() => load({ ...base('wordpiece'), added_tokens: [{ id: 'x', content: '[PAD]' }] })).toThrow('bad.json: added_tokens[0].id must be a non-negative integer, got "x"');
    expect(() => load({ ...base('wordpiece'), added_tokens: [{ id: 0, content: '' }] })).toThrow('bad.json: added_tokens[0].content must be a non-empty string');
    expect(() => load({ ...base('wordpiece'), added_tokens: [{ id: 0, content: 'a', special: 'yes' }] })).toThrow('bad.json: added_tokens[0].special must be true or false, got "yes"');
  });

  test('an empty vocabulary is refused at load (it used to encode everything to [])', () => {
    for (const name of ['bytelevel-bpe', 'wordpiece'] as const) {
      const json = base(name);
      json.model.vocab = {};
      json.model.merges = [];
      json.added_tokens = [];
      expect(() => load(json)).toThrow('bad.json: model.vocab is empty: a tokenizer needs at least one token');
    }
    const t5 = base('unigram');
    t5.model.vocab = [];
    t5.model.unk_id = null;
    expect(() => load(t5)).toThrow('bad.json: model.vocab is empty');
  });

  test('model.type, vocab ids, Unigram entries, unk', () => {
    const json = base('wordpiece');
    json.model.type = 'Magic';
    expect(() => load(json)).toThrow('bad.json: model.type "Magic" is not a known tokenizer model (BPE, WordPiece, Unigram, WordLevel)');
    json.model.type = 7;
    expect(() => load(json)).toThrow('bad.json: model.type 7 is not a known tokenizer model');
    const ids = base('wordpiece');
    (ids.model.vocab as Record<string, unknown>).hello = 1.5;
    expect(() => load(ids)).toThrow('bad.json: model.vocab["hello"] must be a non-negative integer id, got 1.5');
    (ids.model.vocab as Record<string, unknown>).hello = 1e9; // made the library walk a billion-slot array (a hang)
    expect(() => load(ids)).toThrow(/bad\.json: model\.vocab\["hello"\] is id 1000000000, beyond the 806 tokens/);
    const arr = base('wordpiece');
    arr.model.vocab = [['a', 0]];
    expect(() => load(arr)).toThrow('bad.json: model.vocab of a WordPiece model must be an object {token: id}, got [["a",0]]');
    const t5 = base('unigram');
    (t5.model.vocab as unknown[])[3] = ['x', 'high'];
    expect(() => load(t5)).toThrow('bad.json: model.vocab[3] must be a [token, score] pair (a string and a finite number), got ["x","high"]');
    const unk = base('unigram');
    unk.model.unk_id = 600;
    expect(() => load(unk)).toThrow('bad.json: model.unk_id must be null or an index into model.vocab (0 to 599), got 600');
    const wp = base('wordpiece');
    wp.model.unk_token = '<nope>';
    expect(() => load(wp)).toThrow('bad.json: model.unk_token "<nope>" is not in model.vocab or added_tokens');
    delete wp.model.unk_token;
    expect(() => load(wp)).toThrow('bad.json: model.unk_token must be a string (the token for unknown words), got nothing');
  });

  test('BPE merges: not an array, bad entries, tokens outside the vocabulary', () => {
    const json = base('bytelevel-bpe');
    json.model.merges = 'a b';
    expect(() => load(json)).toThrow('bad.json: model.merges must be an array of merges ("a b" strings or ["a", "b"] pairs), got "a b"');
    json.model.merges = [['Ġ', 'Ġ'], 3];
    expect(() => load(json)).toThrow('bad.json: model.merges[1] must be an "a b" string or an ["a", "b"] pair, got 3');
    json.model.merges = [['Ġ', 'Ġ'], 'Ġ Ġ'];
    expect(() => load(json)).toThrow("bad.json: model.merges[1] is a string but model.merges[0] is a pair; use one format");
    json.model.merges = [['Ġ', 'nope']];
    expect(() => load(json)).toThrow('bad.json: model.merges[0] (["Ġ","nope"]): "nope" is not in model.vocab');
    const bpe = base('bytelevel-bpe');
    bpe.model.dropout = 2;
    expect(() => load(bpe)).toThrow('bad.json: model.dropout must be null or a number in [0, 1], got 2');
  });

  test('components must be objects with a type; unknown types and broken settings name the file', () => {
    expect(() => load({ ...base('wordpiece'), normalizer: 'lowercase' })).toThrow('bad.json: normalizer must be null or an object with a "type", got "lowercase"');
    expect(() => load({ ...base('wordpiece'), decoder: { type: 'Nope' } })).toThrow(/^bad\.json: cannot build the tokenizer: /);
    // The library dropped the text silently on this one ("Hello world" -> [CLS] [SEP]).
    expect(() => load({ ...base('wordpiece'), pre_tokenizer: { type: 'Split', pattern: 5, behavior: 'Isolated' } })).toThrow('bad.json: pre_tokenizer.pattern must be {"String": text} or {"Regex": pattern}, got 5');
    expect(() => load({ ...base('wordpiece'), pre_tokenizer: { type: 'Split', pattern: { Regex: '(' }, behavior: 'Isolated' } })).toThrow(/^bad\.json: cannot build the tokenizer: Invalid regular expression/);
    expect(() => load({ ...base('unigram'), normalizer: { type: 'Sequence', normalizers: 'x' } })).toThrow('bad.json: normalizer.normalizers must be an array, got "x"');
    expect(() => load({ ...base('unigram'), normalizer: { type: 'Sequence', normalizers: [{ type: 'NFKC' }, null] } })).toThrow('bad.json: normalizer.normalizers[1] must be null or an object with a "type", got null');
  });

  test('a bad tokenizer_config.json / special_tokens_map.json value names that file and key', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tok-'));
    await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(rawJson.wordpiece));
    await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify({ padding_side: 'middle' }));
    await expect(AutoTokenizer.fromPretrained(dir)).rejects.toThrow(`${join(dir, 'tokenizer_config.json')}: padding_side must be 'left' or 'right', got "middle"`);
    await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify({ model_max_length: 512 }));
    await writeFile(join(dir, 'special_tokens_map.json'), JSON.stringify({ pad_token: 5, additional_special_tokens: '[X]' }));
    await expect(AutoTokenizer.fromPretrained(dir)).rejects.toThrow(`${join(dir, 'special_tokens_map.json')}: pad_token must be a token string, an AddedToken object {"content": ...} or null, got 5`);
    expect(() => Tokenizer.fromJSON(rawJson.wordpiece, { additional_special_tokens: '[X]' }, 'bert.json')).toThrow('bert.json (tokenizer config): additional_special_tokens must be an array of tokens, got "[X]"');
  });

  test('a file that loads but has no id for a token never encodes to undefined ids', () => {
    // WordLevel goes through the library's legacy model, which has no unk handling: an unknown word has no id.
    const json = { version: '1.0', added_tokens: [], normalizer: null, pre_tokenizer: { type: 'Whitespace' }, post_processor: null, decoder: null, model: { type: 'WordLevel', vocab: { hello: 0, world: 1 }, unk_token: null } };
    const tok = load(json);
    expect(tok.encode('hello world').ids).toEqual([0, 1]);
    expect(() => tok.encode('hello there')).toThrow('bad.json: cannot encode: token "there" has no id (it is not in the vocabulary, and the model has no unk_token)');
  });
});
