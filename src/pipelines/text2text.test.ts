// text2text-generation, summarization, translation on the T5 and BART fixtures: a word-level tokenizer ("t158" is id
// 158) turns the fixtures' input ids into text, so the pipelines' outputs are checked against transformers' own greedy
// and beam sequences (ref.json), and T5's task prefixes and settings come from config.json's task_specific_params.

import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import '../index.js';
import { listDevices } from '../tensor/backend.js';
import { hfDir } from '../test-util/hf-fixtures.js';
import { pipeline } from './pipeline.js';
import { taskParams } from './text2text.js';

interface Ref { greedy: number[][]; beam: number[][] }
const ref = async (name: string): Promise<Ref> => JSON.parse(await readFile(join(hfDir(name), 'ref.json'), 'utf8')) as Ref;
/** The fixtures' input_ids (ref.safetensors), row 0 whole and row 1 without its padding. */
const INPUT = {
  t5: [[158, 15, 305, 116, 211, 103, 237, 33, 210, 447, 297, 372, 369, 7], [61, 130, 498, 401, 62, 33, 80, 245, 138, 27]],
  bart: [[169, 402, 74, 233, 135, 497, 294, 284, 14, 132, 342, 447], [279, 142, 393, 484, 201, 349, 294, 151, 65]],
};
const words = (ids: number[]): string => ids.map((i) => `t${i}`).join(' ');

/** A WordLevel tokenizer.json over 512 ids: the special tokens by name, every other id i as "t<i>"; no post-processor. */
function wordLevel(specials: string[]): object {
  const vocab: Record<string, number> = {};
  for (let i = 0; i < 512; i++) vocab[specials[i] ?? `t${i}`] = i;
  return {
    version: '1.0', truncation: null, padding: null, normalizer: null, post_processor: null, decoder: null,
    added_tokens: specials.map((content, id) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    pre_tokenizer: { type: 'WhitespaceSplit' },
    model: { type: 'WordLevel', vocab, unk_token: specials.includes('<unk>') ? '<unk>' : specials[0] },
  };
}

const temps: string[] = [];
afterAll(() => Promise.all(temps.map((d) => rm(d, { recursive: true, force: true }))));
async function folder(name: 't5' | 'bart', configExtra: Record<string, unknown> = {}): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `attend-pipeline-${name}-`));
  temps.push(dir);
  for (const f of ['model.safetensors', 'generation_config.json']) await copyFile(join(hfDir(name), f), join(dir, f));
  const config = JSON.parse(await readFile(join(hfDir(name), 'config.json'), 'utf8')) as Record<string, unknown>;
  await writeFile(join(dir, 'config.json'), JSON.stringify({ ...config, ...configExtra }));
  await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(wordLevel(name === 't5' ? ['<pad>', '</s>', '<unk>'] : ['<s>', '<pad>', '</s>', '<unk>'])));
  return dir;
}

/** The decoded text of a reference sequence: special tokens (ids below `nSpecial`) skipped, words joined by spaces. */
const text = (seq: number[], nSpecial: number): string => words(seq.filter((t) => t >= nSpecial));

describe('text-to-text pipelines against transformers\' generate() on the fixtures', () => {
  test('T5 text2text-generation: beam search (3 beams) and greedy equal the reference sequences; a list gives one result per text', async () => {
    const r = await ref('t5');
    const gen = await pipeline('text2text-generation', await folder('t5'));
    const beam = await gen(words(INPUT.t5[0]!), { numBeams: 3, maxNewTokens: 10, lengthPenalty: 1, earlyStopping: true });
    expect(beam).toEqual([{ generated_text: text(r.beam[0]!, 3) }]);
    expect(beam[0]).toEqual({ generated_text: Array(10).fill('t78').join(' ') });
    // Greedy: the reference decodes nothing but padding (id 0), so the texts are empty, as transformers'.
    expect(r.greedy.every((s) => s.every((t) => t === 0))).toBe(true);
    expect(await gen([words(INPUT.t5[0]!), words(INPUT.t5[1]!)], { maxNewTokens: 10 })).toEqual([{ generated_text: '' }, { generated_text: '' }]);
  });

  test('BART summarization and text2text-generation: greedy and beam (4 beams, length penalty 2) equal the reference', async () => {
    const r = await ref('bart');
    const dir = await folder('bart');
    const summarize = await pipeline('summarization', dir);
    // The reference forbade eos for all 8 steps (min_new_tokens 8; its scores hold -inf for token 2).
    const greedy = await summarize([words(INPUT.bart[0]!), words(INPUT.bart[1]!)], { maxNewTokens: 8, minNewTokens: 8 });
    expect(greedy).toEqual(r.greedy.map((s) => ({ summary_text: text(s, 4) })));
    expect(greedy[0]).toEqual({ summary_text: Array(8).fill('t272').join(' ') });
    const beam = await (await pipeline('text2text-generation', dir))(words(INPUT.bart[0]!), { numBeams: 4, maxNewTokens: 8, minNewTokens: 8, lengthPenalty: 2, earlyStopping: true });
    expect(beam).toEqual([{ generated_text: text(r.beam[0]!, 4) }]);
  });

  test("T5's task_specific_params: the task's prefix goes before the text, its generation settings apply, options override them", async () => {
    const r = await ref('t5');
    const [head, rest] = [INPUT.t5[0]!.slice(0, 2), INPUT.t5[0]!.slice(2)];
    // max_length counts the decoder start token: 11 -> 10 new tokens.
    const settings = { num_beams: 3, max_length: 11, length_penalty: 1.0, early_stopping: true };
    const dir = await folder('t5', { task_specific_params: {
      summarization: { prefix: `${words(head)} `, ...settings },
      translation_en_to_de: { prefix: `${words(head)} `, ...settings },
      translation_en_to_fr: { prefix: 't5 t6 ', ...settings },
    } });
    const want = text(r.beam[0]!, 3);
    expect(await (await pipeline('summarization', dir))(words(rest))).toEqual([{ summary_text: want }]);
    // 'translation' takes the first translation_XX_to_YY entry, as transformers does; the full name picks its entry.
    expect(await (await pipeline('translation', dir))(words(rest))).toEqual([{ translation_text: want }]);
    expect(await (await pipeline('translation_en_to_de', dir))(words(rest))).toEqual([{ translation_text: want }]);
    expect(await (await pipeline('translation_en_to_fr', dir))(words(rest))).not.toEqual([{ translation_text: want }]);
    // A call's options win over the task's: 2 new tokens.
    expect(await (await pipeline('summarization', dir))(words(rest), { maxNewTokens: 2 })).toEqual([{ summary_text: 't78 t78' }]);
    // text2text-generation has no entry here: no prefix, so the text alone (greedy, 10 tokens: padding only).
    expect(await (await pipeline('text2text-generation', dir))(words(rest), { maxNewTokens: 10 })).toEqual([{ generated_text: '' }]);
  });

  test('taskParams maps t5-small\'s real settings to generate options (lengths count the decoder start token)', () => {
    const config = { task_specific_params: {
      summarization: { early_stopping: true, length_penalty: 2.0, max_length: 200, min_length: 30, no_repeat_ngram_size: 3, num_beams: 4, prefix: 'summarize: ' },
      translation_en_to_de: { early_stopping: true, max_length: 300, num_beams: 4, prefix: 'translate English to German: ' },
    } };
    expect(taskParams('summarization', config, 'c.json')).toEqual({ task: 'summarization', prefix: 'summarize: ', gen: { earlyStopping: true, lengthPenalty: 2, maxNewTokens: 199, minNewTokens: 29, noRepeatNgramSize: 3, numBeams: 4 } });
    expect(taskParams('translation', config, 'c.json')).toEqual({ task: 'translation_en_to_de', prefix: 'translate English to German: ', gen: { earlyStopping: true, maxNewTokens: 299, numBeams: 4 } });
    expect(taskParams('text2text-generation', config, 'c.json')).toEqual({ task: 'text2text-generation', prefix: '', gen: {} });
    // config.json's own prefix (distilbart's " "), unless the task's entry sets one.
    expect(taskParams('text2text-generation', { ...config, prefix: ' ' }, 'c.json').prefix).toBe(' ');
    expect(taskParams('summarization', { ...config, prefix: ' ' }, 'c.json').prefix).toBe('summarize: ');
    expect(taskParams('summarization', { prefix: ' ' }, 'c.json')).toEqual({ task: 'summarization', prefix: ' ', gen: {} });
    expect(() => taskParams('summarization', { task_specific_params: { summarization: { prefix: 3 } } }, 'm/config.json')).toThrow(/m\/config.json: task_specific_params.summarization: "prefix" must be a string, got 3/);
    expect(() => taskParams('summarization', { task_specific_params: { summarization: { num_beams: 'four' } } }, 'm/config.json')).toThrow(/"num_beams" must be a number, got "four"/);
  });

  test('every backend gives the CPU\'s text', async () => {
    const dir = await folder('bart');
    const want = await (await pipeline('text2text-generation', dir))(words(INPUT.bart[0]!), { numBeams: 2, maxNewTokens: 5 });
    for (const device of listDevices().filter((d) => d !== 'cpu')) {
      expect(await (await pipeline('text2text-generation', dir, { device }))(words(INPUT.bart[0]!), { numBeams: 2, maxNewTokens: 5 })).toEqual(want);
    }
  });

  test('bad input: a model without an encoder-decoder head, a non-string input, bad generation options', async () => {
    await expect(pipeline('summarization', hfDir('bert-cls'))).rejects.toThrow(/pipeline\('summarization'\) needs the seq2seqLM \(an encoder-decoder such as T5 or BART\) head: .*model_type 'bert' has no seq2seqLM head/);
    const gen = await pipeline('text2text-generation', await folder('t5'));
    await expect(gen(['t5 t6', 7 as unknown as string])).rejects.toThrow(/input 1 must be a string, got number/);
    await expect(gen('t5 t6', { numBeams: 0 })).rejects.toThrow(/numBeams/);
    await expect(pipeline('translation_en_de' as 'translation', hfDir('t5'))).rejects.toThrow(/unknown task "translation_en_de"/);
  });
});
