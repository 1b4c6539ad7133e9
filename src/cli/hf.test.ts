// The Hugging Face CLI commands, run in-process on fixture checkpoints paired with tokenizers trained here.

import { copyFile, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import '../index.js';
import { generate } from '../generation/generate.js';
import { AutoModelForCausalLM } from '../models/auto.js';
import { hfDir } from '../test-util/hf-fixtures.js';
import { AutoTokenizer } from '../tokenizers/tokenizer.js';
import { trainByteLevelBpe } from '../tokenizers/train-bpe.js';
import { noGrad } from '../autograd/engine.js';
import { softmax } from '../autograd/ops/nn.js';
import { AutoModelForMaskedLM, AutoModelForSequenceClassification } from '../models/auto.js';
import { trainWordPiece } from '../tokenizers/train-wordpiece.js';
import { classifyCommand, fillMaskCommand, generateCommand, tokenizeCommand } from './hf.js';

const TEXT = ['the cat sat on the mat', 'the dog sat on the log', 'a cat and a dog', 'on the mat sat the cat'];

/** The gpt2 fixture (vocab 512) with a byte-level BPE tokenizer of 300 tokens trained on TEXT. */
async function gpt2Folder(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'attend-cli-'));
  for (const f of ['config.json', 'model.safetensors']) await copyFile(join(hfDir('gpt2'), f), join(dir, f));
  await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(trainByteLevelBpe(TEXT, { vocabSize: 300, minFrequency: 1 })));
  return dir;
}

/** A BERT fixture (vocab 512, [PAD] = 0) with a WordPiece tokenizer of at most 120 tokens trained on TEXT. */
async function bertFolder(name: 'bert-mlm' | 'bert-cls'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'attend-cli-'));
  for (const f of ['config.json', 'model.safetensors']) await copyFile(join(hfDir(name), f), join(dir, f));
  await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(trainWordPiece(TEXT, { vocabSize: 120, minFrequency: 1 })));
  return dir;
}

async function capture(run: (out: (t: string) => void) => Promise<void>): Promise<string> {
  let s = '';
  await run((t) => { s += t; });
  return s;
}

describe('attend generate', () => {
  test('streams the prompt and then exactly what model.generate produces', async () => {
    const dir = await gpt2Folder();
    const printed = await capture((out) => generateCommand.run(['--model', dir, '--max-new-tokens', '8', 'the cat'], out));
    const tok = await AutoTokenizer.fromPretrained(dir);
    const model = await AutoModelForCausalLM.fromPretrained(dir);
    const ids = tok.encode('the cat').ids;
    const seq = (await (await generate(model, (await import('../tensor/create.js')).tensor([ids], { dtype: 'int32' }), { maxNewTokens: 8 })).tolist()) as number[][];
    expect(printed).toBe(`the cat${tok.decode(seq[0]!.slice(ids.length), { skipSpecialTokens: true })}\n`);
  });
  test('beam search prints one final text', async () => {
    const dir = await gpt2Folder();
    const printed = await capture((out) => generateCommand.run(['--model', dir, '--max-new-tokens', '4', '--num-beams', '2', 'the dog'], out));
    expect(printed.startsWith('the dog')).toBe(true);
    expect(printed.endsWith('\n')).toBe(true);
  });
  test('errors: no model, no prompt, a bad number', async () => {
    await expect(generateCommand.run(['hello'])).rejects.toThrow(/--model DIR is required/);
    await expect(generateCommand.run(['--model', hfDir('gpt2')])).rejects.toThrow(/expected one quoted text argument/);
    await expect(generateCommand.run(['--model', hfDir('gpt2'), '--max-new-tokens', 'many', 'x'])).rejects.toThrow(/--max-new-tokens must be a positive integer, got 'many'/);
    await expect(generateCommand.run(['--model', hfDir('gpt2'), 'x'])).rejects.toThrow(/tokenizer\.json/);
  });
});

describe('attend tokenize', () => {
  test('the book\'s first example with the GPT-2 encoding', async () => {
    const printed = await capture((out) => tokenizeCommand.run(['--gpt2', 'London is a beautiful city'], out));
    expect(printed).toContain('[23421,318,257,4950,1748]');
  });
  test('a tokenizer.json file shows tokens and offsets', async () => {
    const file = new URL('../../test/data/tokenizers/wordpiece.json', import.meta.url).pathname;
    const printed = await capture((out) => tokenizeCommand.run(['--tokenizer', file, 'Hello, world'], out));
    expect(printed).toContain('"[CLS]","h","##el","##lo"');
    expect(printed).toContain('[0,1],[1,3],[3,5]');
  });
});

describe('attend fill-mask and classify', () => {
  test('fill-mask prints the model\'s most probable tokens at the mask, best first', async () => {
    const dir = await bertFolder('bert-mlm');
    const printed = await capture((out) => fillMaskCommand.run(['--model', dir, '--top-k', '3', 'the cat [MASK] on the mat'], out));
    const tok = await AutoTokenizer.fromPretrained(dir);
    const model = await AutoModelForMaskedLM.fromPretrained(dir);
    const b = tok.encodeBatch(['the cat [MASK] on the mat']) as { inputIds: import('../tensor/tensor.js').Tensor };
    const pos = tok.encode('the cat [MASK] on the mat').ids.indexOf(tok.maskTokenId!);
    const probs = Array.from(noGrad(() => softmax(model.forward({ inputIds: b.inputIds }).logits, -1).select(1, pos).reshape([-1])).dataSync());
    // Only ids the tokenizer knows are candidates (the fixture model's vocabulary is larger than this tokenizer's).
    const best = [...probs.keys()].filter((i) => i < tok.vocabSize).sort((x, y) => probs[y]! - probs[x]!)[0]!;
    const lines = printed.trim().split('\n');
    expect(lines[0]).toBe(`[MASK] at token ${pos}:`);
    expect(lines[1]).toContain(probs[best]!.toFixed(4));
    expect(lines.length).toBe(4);
  });
  test('classify prints every label with its probability, best first, summing to 1', async () => {
    const dir = await bertFolder('bert-cls');
    const printed = await capture((out) => classifyCommand.run(['--model', dir, 'a cat and a dog'], out));
    const rows = printed.trim().split('\n').map((l) => l.trim().split(/\s+/));
    expect(rows.map((r) => r[1]).sort()).toEqual(['LABEL_0', 'LABEL_1', 'LABEL_2']);
    const p = rows.map((r) => Number(r[0]));
    expect(p[0]).toBeGreaterThanOrEqual(p[1]!);
    expect(p.reduce((a, v) => a + v, 0)).toBeCloseTo(1, 3);
    const model = await AutoModelForSequenceClassification.fromPretrained(dir);
    expect(model).toBeDefined();
  });
  test('fill-mask needs a mask token in the text', async () => {
    const dir = await bertFolder('bert-mlm');
    await expect(fillMaskCommand.run(['--model', dir, 'no mask here'])).rejects.toThrow(/the text has no \[MASK\] token/);
  });
});
