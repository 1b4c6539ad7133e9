// SFT data: TRL's JSONL formats, completion-only labels, truncation and packing, against token sequences worked out by hand.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import '../autograd/methods.js';
import type { ChatMessage } from '../tokenizers/chat-template.js';
import { Tokenizer } from '../tokenizers/tokenizer.js';
import { collatePreference, collateSft, IGNORE_INDEX, loadPreferenceJsonl, loadSftJsonl, packSft, parsePreferenceJsonl, parseSftJsonl, tokenizePreference, tokenizeSft, tokenizeSftRecord, type SftExample } from './sft.js';

const chatDir = new URL('../../test/data/chat/', import.meta.url).pathname;
const tokDir = new URL('../../test/data/tokenizers/', import.meta.url).pathname;
const CHATML = (JSON.parse(await readFile(join(chatDir, 'templates.json'), 'utf8')) as Record<string, { template: string }>).chatml!.template;
const _ = IGNORE_INDEX;

const WORDS = ['<|im_start|>', '<|im_end|>', '</s>', '<s>', '[UNK]', 'system', 'user', 'assistant', 'Hi', 'Hello', '!', '2', '+', '?', '4', 'Be', 'brief', '.', 'The', 'sky', 'is', 'blue', 'What', 'color', 'the', 'You', 'are', 'a', 'helpful'];
const ID = Object.fromEntries(WORDS.map((w, i) => [w, i])) as Record<string, number>;
const special = (content: string): object => ({ id: ID[content], content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });

/**
 * A word-level tokenizer whose ids can be read off by hand: one token per word or punctuation run (whitespace
 * dropped), ChatML's markers as added tokens, and <s> put before plain text by its post-processor (as LLaMA's).
 */
const wordTok = Tokenizer.fromJSON(
  {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: ['<|im_start|>', '<|im_end|>', '</s>', '<s>'].map(special),
    normalizer: null,
    pre_tokenizer: { type: 'Whitespace' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '<s>': { id: '<s>', ids: [ID['<s>']], tokens: ['<s>'] } },
    },
    decoder: null,
    model: { type: 'WordLevel', vocab: ID, unk_token: '[UNK]' },
  },
  { chat_template: CHATML, eos_token: '</s>', bos_token: '<s>' },
);

const ids = (...words: string[]): number[] => words.map((w) => {
  if (!(w in ID)) throw new Error(`no word ${w}`);
  return ID[w]!;
});
const S = '<|im_start|>', E = '<|im_end|>';

const CONVO: ChatMessage[] = [
  { role: 'system', content: 'Be brief.' },
  { role: 'user', content: 'Hi' },
  { role: 'assistant', content: 'Hello!' },
  { role: 'user', content: '2+2?' },
  { role: 'assistant', content: '4' },
];
// "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n..." word by word:
const CONVO_IDS = ids(S, 'system', 'Be', 'brief', '.', E, S, 'user', 'Hi', E, S, 'assistant', 'Hello', '!', E, S, 'user', '2', '+', '2', '?', E, S, 'assistant', '4', E);
// Only the assistant turns' contents and their <|im_end|> take loss; the "assistant\n" header does not.
const CONVO_LABELS = [_, _, _, _, _, _, _, _, _, _, _, _, ID.Hello!, ID['!']!, ID[E]!, _, _, _, _, _, _, _, _, _, ID['4']!, ID[E]!];

describe('tokenizing SFT examples', () => {
  test('messages: labels only on assistant turns (found by rendering prefixes)', () => {
    expect(tokenizeSftRecord(wordTok, { kind: 'messages', messages: CONVO })).toEqual({ inputIds: CONVO_IDS, labels: CONVO_LABELS, promptMismatch: false });
  });
  test('prompt + completion strings: bos from the tokenizer, eos appended, prompt masked', () => {
    const out = tokenizeSftRecord(wordTok, { kind: 'promptCompletion', prompt: 'What color is the sky?', completion: ' The sky is blue.' });
    expect(out.inputIds).toEqual(ids('<s>', 'What', 'color', 'is', 'the', 'sky', '?', 'The', 'sky', 'is', 'blue', '.', '</s>'));
    expect(out.labels).toEqual([_, _, _, _, _, _, _, ID.The, ID.sky, ID.is, ID.blue, ID['.'], ID['</s>']]);
    // A completion that already ends with eos gets no second one; addEos: false adds none.
    expect(tokenizeSftRecord(wordTok, { kind: 'promptCompletion', prompt: 'Hi', completion: ' Hello</s>' }).inputIds).toEqual(ids('<s>', 'Hi', 'Hello', '</s>'));
    expect(tokenizeSftRecord(wordTok, { kind: 'promptCompletion', prompt: 'Hi', completion: ' Hello' }, { addEos: false }).inputIds).toEqual(ids('<s>', 'Hi', 'Hello'));
  });
  test('conversational prompt + completion: the completion messages after the assistant header', () => {
    const out = tokenizeSftRecord(wordTok, { kind: 'conversationalPromptCompletion', prompt: CONVO.slice(0, 2), completion: [CONVO[2]!] });
    expect(out.inputIds).toEqual(CONVO_IDS.slice(0, 15));
    expect(out.labels).toEqual(CONVO_LABELS.slice(0, 15));
  });
  test('completionOnlyLoss: false trains on every token', () => {
    expect(tokenizeSftRecord(wordTok, { kind: 'messages', messages: CONVO }, { completionOnlyLoss: false }).labels).toEqual(CONVO_IDS);
    const pc = tokenizeSftRecord(wordTok, { kind: 'promptCompletion', prompt: 'Hi', completion: ' Hello' }, { completionOnlyLoss: false });
    expect(pc.labels).toEqual(pc.inputIds);
  });
  test('truncation: the end by default (as TRL), the start with truncationSide left; examples left without loss are dropped', () => {
    const rec = { kind: 'messages' as const, messages: CONVO };
    const right = tokenizeSft(wordTok, [rec], { maxLength: 14 });
    expect(right.examples).toEqual([{ inputIds: CONVO_IDS.slice(0, 14), labels: [_, _, _, _, _, _, _, _, _, _, _, _, ID.Hello, ID['!']] }]);
    expect(right.stats).toEqual({ truncated: 1, dropped: 0, promptMismatch: 0 });
    const left = tokenizeSft(wordTok, [rec], { maxLength: 14, truncationSide: 'left' });
    expect(left.examples[0]).toEqual({ inputIds: CONVO_IDS.slice(12), labels: CONVO_LABELS.slice(12) });
    const cut = tokenizeSft(wordTok, [rec, { kind: 'messages', messages: CONVO.slice(0, 2) }], { maxLength: 10 });
    expect(cut.examples).toEqual([]);
    expect(cut.stats).toEqual({ truncated: 1, dropped: 2, promptMismatch: 0 });
  });
  test('a real BPE tokenizer: the trained tokens decode to exactly the assistant turns', async () => {
    const json = JSON.parse(await readFile(join(tokDir, 'bytelevel-bpe.json'), 'utf8')) as { added_tokens: object[]; model: { vocab: object } };
    const base = Object.keys(json.model.vocab).length;
    json.added_tokens.push(...[S, E].map((content, i) => ({ id: base + i, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })));
    const tok = Tokenizer.fromJSON(json, { chat_template: CHATML, eos_token: '<|endoftext|>' });
    const { inputIds, labels } = tokenizeSftRecord(tok, { kind: 'messages', messages: [...CONVO.slice(0, 3), { role: 'user', content: 'And 2+2?' }, { role: 'assistant', content: 'It is 4.' }] });
    expect(tok.decode(inputIds)).toBe(tok.applyChatTemplate([...CONVO.slice(0, 3), { role: 'user', content: 'And 2+2?' }, { role: 'assistant', content: 'It is 4.' }], { tokenize: false }));
    expect(tok.decode(labels.filter((l) => l !== _))).toBe(`Hello!${E}\nIt is 4.${E}\n`);
    // The trained tokens are two contiguous runs.
    const runs = labels.map((l) => (l === _ ? 0 : 1)).join('').match(/1+/g);
    expect(runs).toHaveLength(2);
  });
  test('bad input: no eos to append, bad options; errors name the example', () => {
    const noEos = Tokenizer.fromJSON(wordTok.toJSON(), { chat_template: CHATML, eos_token: null });
    expect(() => tokenizeSft(noEos, [{ kind: 'promptCompletion', prompt: 'Hi', completion: ' Hello' }])).toThrow('tokenizeSft: example 0: the tokenizer has no eos token');
    expect(() => tokenizeSft(wordTok, [], { maxLength: 0 })).toThrow('maxLength must be a positive integer, got 0');
    expect(() => tokenizeSft(wordTok, [], { truncationSide: 'middle' as never })).toThrow("truncationSide must be 'left' or 'right'");
    const bad = Tokenizer.fromJSON(wordTok.toJSON(), { chat_template: "{% for m in messages %}{% if m.role == 'assistant' and loop.index0 == 3 %}{{ raise_exception('no') }}{% endif %}{{ m.content }} {% endfor %}" });
    const msgs: ChatMessage[] = [{ role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hi' }, { role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hi' }];
    expect(() => tokenizeSft(bad, [{ kind: 'messages', messages: msgs.slice(0, 2) }, { kind: 'messages', messages: msgs }])).toThrow(/^tokenizeSft: example 1: .*failed: no \(at messages\[3\], role "assistant"\)/);
  });
});

describe('reading JSONL', () => {
  test('the three formats; blank lines skipped', async () => {
    const { records, skipped } = await loadSftJsonl(join(chatDir, 'sft.jsonl'));
    expect(skipped).toEqual([]);
    expect(records.map((r) => r.kind)).toEqual(['messages', 'promptCompletion', 'conversationalPromptCompletion']);
    expect(records[1]).toEqual({ kind: 'promptCompletion', prompt: 'What color is the sky?', completion: ' The sky is blue.' });
    const { examples } = tokenizeSft(wordTok, records);
    expect(examples[0]!.labels.filter((l) => l !== _)).toEqual(ids('Hello', '!', E));
  });
  test('bad lines: the error names the file and line; skipBadLines counts them', async () => {
    const file = join(chatDir, 'sft-bad.jsonl');
    await expect(loadSftJsonl(file)).rejects.toThrow(`${file}:2: not valid JSON`);
    const { records, skipped } = await loadSftJsonl(file, { skipBadLines: true });
    expect(records).toHaveLength(2);
    expect(skipped.map((s) => s.line)).toEqual([2, 3, 4, 5]);
    expect(skipped[1]!.reason).toBe('expected "messages", or "prompt" and "completion" (TRL\'s SFT formats); the line has keys "text"');
    expect(skipped[2]!.reason).toBe('messages[1] has no role (such as "user" or "assistant")');
    expect(skipped[3]!.reason).toMatch(/^"prompt" and "completion" must both be strings or both lists of messages/);
    expect(() => parseSftJsonl('{"messages": []}\n', 'x.jsonl')).toThrow('x.jsonl:1: "messages" must be a non-empty list');
    expect(() => parseSftJsonl('\n\n', 'empty.jsonl')).toThrow('empty.jsonl: no SFT examples');
    expect(() => parseSftJsonl('nope\n', 'bad.jsonl', { skipBadLines: true })).toThrow('bad.jsonl: no SFT examples (all 1 lines were bad; the first: line 1: not valid JSON');
    await expect(loadSftJsonl(join(chatDir, 'missing.jsonl'))).rejects.toThrow('no such file');
  });
});

describe('packing and batching', () => {
  const ex = (start: number, n: number): SftExample => ({ inputIds: Array.from({ length: n }, (_, i) => start + i), labels: Array.from({ length: n }, (_, i) => 100 + start + i) });
  const A = ex(10, 5), B = ex(20, 3), C = ex(30, 4), D = ex(40, 2);
  test('best-fit decreasing into sequences of at most maxLength; positions restart per example', () => {
    // Longest first: A(5) opens bin 0; C(4) does not fit there (9 > 8) and opens bin 1; B(3) fits both, goes to the
    // fuller bin 0 (5 + 3 = 8); D(2) fits only bin 1 (4 + 2 = 6).
    const packed = packSft([A, B, C, D], 8);
    expect(packed).toEqual([
      { inputIds: [10, 11, 12, 13, 14, 20, 21, 22], labels: [_, 111, 112, 113, 114, _, 121, 122], positionIds: [0, 1, 2, 3, 4, 0, 1, 2], sequenceStarts: [0, 5] },
      { inputIds: [30, 31, 32, 33, 40, 41], labels: [_, 131, 132, 133, _, 141], positionIds: [0, 1, 2, 3, 0, 1], sequenceStarts: [0, 4] },
    ]);
  });
  test('an example longer than maxLength is truncated (from the end by default)', () => {
    expect(packSft([ex(0, 5)], 3)).toEqual([{ inputIds: [0, 1, 2], labels: [_, 101, 102], positionIds: [0, 1, 2], sequenceStarts: [0] }]);
    expect(packSft([ex(0, 5)], 3, { truncationSide: 'left' })[0]!.inputIds).toEqual([2, 3, 4]);
    expect(() => packSft([{ inputIds: [1, 2], labels: [1] }], 4)).toThrow('packSft: example 0 has 2 input ids but 1 labels');
  });
  test('collateSft pads on the right: pad id, label -100, mask 0 (block diagonal when packed), positions 0', async () => {
    const packed = packSft([A, B, C, D], 8);
    const batch = collateSft(packed, 0);
    expect(batch.inputIds.shape).toEqual([2, 8]);
    expect(await batch.inputIds.tolist()).toEqual([[10, 11, 12, 13, 14, 20, 21, 22], [30, 31, 32, 33, 40, 41, 0, 0]]);
    expect(await batch.labels.tolist()).toEqual([[_, 111, 112, 113, 114, _, 121, 122], [_, 131, 132, 133, _, 141, _, _]]);
    // Packed: a block-diagonal [B, 1, T, T] mask (row = query, column = key); padding sees and is seen by nothing.
    const block = (sizes: number[], T: number): boolean[][] => {
      const seg = sizes.flatMap((n, k) => Array<number>(n).fill(k));
      return Array.from({ length: T }, (_, i) => Array.from({ length: T }, (_, j) => seg[i] !== undefined && seg[i] === seg[j]));
    };
    expect(batch.attentionMask.shape).toEqual([2, 1, 8, 8]);
    expect(await batch.attentionMask.tolist()).toEqual([[block([5, 3], 8)], [block([4, 2], 8)]]);
    expect(await collateSft([B, D], 7).attentionMask.tolist()).toEqual([[1, 1, 1], [1, 1, 0]]);
    expect(await batch.positionIds.tolist()).toEqual([[0, 1, 2, 3, 4, 0, 1, 2], [0, 1, 2, 3, 0, 1, 0, 0]]);
    expect(await collateSft([B, D], 7).positionIds.tolist()).toEqual([[0, 1, 2], [0, 1, 0]]);
    expect(() => collateSft([], 0)).toThrow('non-empty');
  });
});

describe('preference pairs (DPO data)', () => {
  test('both formats: each side is prompt + completion with labels on the completion only', async () => {
    const { records, skipped } = await loadPreferenceJsonl(join(chatDir, 'preference.jsonl'));
    expect(skipped).toEqual([]);
    expect(records.map((r) => r.kind)).toEqual(['preference', 'conversationalPreference']);
    const { pairs, stats } = tokenizePreference(wordTok, records);
    expect(stats).toEqual({ truncated: 0, dropped: 0, promptMismatch: 0 });
    const prompt = ids('<s>', 'What', 'color', 'is', 'the', 'sky', '?');
    expect(pairs[0]).toEqual({
      chosen: { inputIds: [...prompt, ...ids('The', 'sky', 'is', 'blue', '.', '</s>')], labels: [_, _, _, _, _, _, _, ...ids('The', 'sky', 'is', 'blue', '.', '</s>')] },
      rejected: { inputIds: [...prompt, ...ids('The', 'sky', 'is', '4', '.', '</s>')], labels: [_, _, _, _, _, _, _, ...ids('The', 'sky', 'is', '4', '.', '</s>')] },
    });
    // ChatML with its default system message; only the reply and its <|im_end|> are labelled.
    const head = ids(S, 'system', 'You', 'are', 'a', 'helpful', 'assistant', '.', E, S, 'user', 'Hi', E, S, 'assistant');
    const masked = head.map(() => _);
    expect(pairs[1]).toEqual({
      chosen: { inputIds: [...head, ...ids('Hello', '!', E)], labels: [...masked, ...ids('Hello', '!', E)] },
      rejected: { inputIds: [...head, ...ids('4', E)], labels: [...masked, ...ids('4', E)] },
    });
    // Batched as TRL's concatenated forward: the chosen rows, then the rejected rows.
    const batch = collatePreference(pairs, ID['[UNK]']!);
    expect(batch.inputIds.shape).toEqual([4, 18]);
    const rows = (await batch.inputIds.tolist()) as number[][];
    expect(rows[0]!.slice(0, 13)).toEqual(pairs[0]!.chosen.inputIds);
    expect(rows[1]!.slice(0, 18)).toEqual(pairs[1]!.chosen.inputIds);
    expect(rows[2]!.slice(0, 13)).toEqual(pairs[0]!.rejected.inputIds);
    expect(rows[3]!.slice(0, 17)).toEqual(pairs[1]!.rejected.inputIds);
  });
  test('a pair whose completion is cut away is dropped; bad lines name the file and line', () => {
    const rec = parsePreferenceJsonl('{"prompt": "What color is the sky?", "chosen": " The sky is blue.", "rejected": " 4"}\n', 'p.jsonl').records;
    const { pairs, stats } = tokenizePreference(wordTok, rec, { maxLength: 7 });
    expect(pairs).toEqual([]);
    expect(stats).toEqual({ truncated: 2, dropped: 1, promptMismatch: 0 });
    expect(() => parsePreferenceJsonl('{"prompt": "a", "chosen": "b"}\n', 'p.jsonl')).toThrow('p.jsonl:1: expected "prompt", "chosen" and "rejected" (TRL\'s preference format); missing "rejected"');
    expect(() => parsePreferenceJsonl('{"prompt": "a", "chosen": "b", "rejected": [{"role": "assistant", "content": "c"}]}\n', 'p.jsonl')).toThrow('p.jsonl:1: "prompt", "chosen" and "rejected" must all be strings or all lists of messages');
    expect(() => parsePreferenceJsonl('{"prompt": [{"role": "user"}], "chosen": [], "rejected": []}\n', 'p.jsonl')).toThrow('p.jsonl:1: prompt: messages[0] (role "user") has no content');
    const { records, skipped } = parsePreferenceJsonl('oops\n{"prompt": "a", "chosen": " b", "rejected": " c"}\n', 'p.jsonl', { skipBadLines: true });
    expect(records).toHaveLength(1);
    expect(skipped).toEqual([{ line: 1, reason: expect.stringMatching(/^not valid JSON/) as unknown as string }]);
  });
});
