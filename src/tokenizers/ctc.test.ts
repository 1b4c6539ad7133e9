// Wav2Vec2CTCTokenizer: vocab.json + tokenizer_config.json as transformers reads them; CTC decoding rules; errors.

import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { Wav2Vec2CTCTokenizer } from './ctc.js';

// facebook/wav2vec2-base-960h's vocabulary: blank 0, '|' between words, upper-case letters.
const LETTERS = "ETAONIHSRDLUMWCFGYPBVK'XJQZ";
const VOCAB: Record<string, number> = { '<pad>': 0, '<s>': 1, '</s>': 2, '<unk>': 3, '|': 4, ...Object.fromEntries([...LETTERS].map((c, i) => [c, 5 + i])) };

async function folder(files: Record<string, unknown>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'attend-ctc-tok-'));
  for (const [name, json] of Object.entries(files)) await writeFile(join(dir, name), JSON.stringify(json));
  return dir;
}

const CONFIG = { do_lower_case: false, word_delimiter_token: '|', pad_token: '<pad>', unk_token: '<unk>', bos_token: '<s>', eos_token: '</s>', tokenizer_class: 'Wav2Vec2CTCTokenizer' };

describe('Wav2Vec2CTCTokenizer', () => {
  test('decode collapses repeats, drops the blank, writes the delimiter as a space, strips the ends', async () => {
    const tok = await Wav2Vec2CTCTokenizer.fromPretrained(await folder({ 'vocab.json': VOCAB, 'tokenizer_config.json': CONFIG }));
    const id = (c: string) => VOCAB[c]!;
    // Frames "HH E L <pad> L OO | | W O R L D D <pad>": the blank keeps the double L; repeated '|' is one space.
    const frames = ['H', 'H', 'E', 'L', '<pad>', 'L', 'O', 'O', '|', '|', 'W', 'O', 'R', 'L', 'D', 'D', '<pad>'].map(id);
    expect(tok.decode(frames)).toBe('HELLO WORLD');
    expect(tok.decode(Int32Array.from(frames))).toBe('HELLO WORLD');
    // Without grouping (labels, not frames), only the blank goes.
    expect(tok.decode(frames, { groupTokens: false })).toBe('HHELLOO  WORLDD');
    expect(tok.decode([id('|'), id('A'), id('|')])).toBe('A');
    expect(tok.decode([])).toBe('');
    // Special tokens stay unless skipped; the blank still separates repeats when they are skipped.
    expect(tok.decode([id('<s>'), id('A'), id('<pad>'), id('A'), id('</s>')])).toBe('<s>AA</s>');
    expect(tok.decode([id('<s>'), id('A'), id('<pad>'), id('A'), id('</s>')], { skipSpecialTokens: true })).toBe('AA');
    expect(tok.batchDecode([[id('A'), id('A')], [id('B')]])).toEqual(['A', 'B']);
  });
  test('encode: one id per character, spaces as the delimiter, unknown characters as unk, special tokens whole', async () => {
    const tok = await Wav2Vec2CTCTokenizer.fromPretrained(await folder({ 'vocab.json': VOCAB, 'tokenizer_config.json': CONFIG }));
    expect(tok.tokenize('HI THERE')).toEqual(['H', 'I', '|', 'T', 'H', 'E', 'R', 'E']);
    expect(tok.encode("IT'S")).toEqual([VOCAB['I'], VOCAB['T'], VOCAB["'"], VOCAB['S']]);
    expect(tok.encode('A1<unk>b')).toEqual([VOCAB['A'], 3, 3, 3]);
    expect(tok.decode(tok.encode('THE CAT SAT'), { groupTokens: false })).toBe('THE CAT SAT');
    expect([tok.padTokenId, tok.unkTokenId, tok.wordDelimiterTokenId, tok.vocabSize]).toEqual([0, 3, 4, 32]);
  });
  test('do_lower_case upper-cases text before encoding (the vocabulary is upper case)', async () => {
    const tok = await Wav2Vec2CTCTokenizer.fromPretrained(await folder({ 'vocab.json': VOCAB, 'tokenizer_config.json': { ...CONFIG, do_lower_case: true } }));
    expect(tok.encode('hi there')).toEqual(tok.encode('HI THERE'));
  });
  test('special tokens from special_tokens_map.json (AddedToken objects), a custom delimiter, added_tokens_decoder, multilingual vocab', async () => {
    const vocab = { '[PAD]': 0, '[UNK]': 1, ' ': 2, a: 3, b: 4 };
    const dir = await folder({
      'vocab.json': vocab,
      'tokenizer_config.json': { word_delimiter_token: ' ', added_tokens_decoder: { 5: { content: '<s>', special: true } } },
      'special_tokens_map.json': { pad_token: { content: '[PAD]', lstrip: false }, unk_token: '[UNK]' },
    });
    const tok = await Wav2Vec2CTCTokenizer.fromPretrained(dir);
    expect(tok.decode([3, 3, 0, 3, 2, 2, 4, 5])).toBe('aa b<s>');
    expect(tok.encode('ab c<s>')).toEqual([3, 4, 2, 1, 5]);
    const multi = await folder({ 'vocab.json': { eng: VOCAB, fra: vocab }, 'tokenizer_config.json': { ...CONFIG, target_lang: 'eng' } });
    expect((await Wav2Vec2CTCTokenizer.fromPretrained(multi)).encode('A')).toEqual([VOCAB['A']]);
    await expect(Wav2Vec2CTCTokenizer.fromPretrained(multi, { targetLang: 'deu' })).rejects.toThrow(/vocab.json: no vocabulary for target language "deu"/);
  });
  test('bad files and ids name the file, the key or the id', async () => {
    await expect(Wav2Vec2CTCTokenizer.fromPretrained(await folder({}))).rejects.toThrow(/vocab.json: not found/);
    await expect(Wav2Vec2CTCTokenizer.fromPretrained(await folder({ 'vocab.json': [1, 2] }))).rejects.toThrow(/vocab.json: expected an object of token -> id/);
    await expect(Wav2Vec2CTCTokenizer.fromPretrained(await folder({ 'vocab.json': { a: 0, b: 0, '<pad>': 1 } }))).rejects.toThrow(/vocab.json: id 0 is given to both "a" and "b"/);
    await expect(Wav2Vec2CTCTokenizer.fromPretrained(await folder({ 'vocab.json': { a: -1 } }))).rejects.toThrow(/vocab.json: the id of "a" must be a non-negative integer/);
    await expect(Wav2Vec2CTCTokenizer.fromPretrained(await folder({ 'vocab.json': { a: 0 } }))).rejects.toThrow(/vocab.json: the pad token "<pad>" \(CTC's blank\) is not in the vocabulary/);
    await expect(Wav2Vec2CTCTokenizer.fromPretrained(await folder({ 'vocab.json': VOCAB, 'tokenizer_config.json': { do_lower_case: 'no' } }))).rejects.toThrow(/tokenizer_config.json: "do_lower_case" must be true or false/);
    await expect(Wav2Vec2CTCTokenizer.fromPretrained(await folder({ 'vocab.json': { eng: VOCAB } }))).rejects.toThrow(/vocab.json: holds one vocabulary per language \(eng\); pass targetLang/);
    const tok = new Wav2Vec2CTCTokenizer({ '<pad>': 0, a: 1 });
    expect(() => tok.decode([0, 1, 7])).toThrow(/Wav2Vec2CTCTokenizer: id 7 is not in the vocabulary \(2 tokens\)/);
    expect(() => tok.encode('ab')).toThrow(/"b" is not in the vocabulary and there is no unk token "<unk>"/);
  });
});
