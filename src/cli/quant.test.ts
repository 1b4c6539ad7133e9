// `attend quantize` on the LLaMA fixture folder (with a tokenizer trained here) and `attend generate --model FILE.gguf`:
// the f32 file generates exactly the text the folder does, the q8_0 / q4_0 files are smaller, and bad input is refused.

import { copyFile, mkdir, mkdtemp, readFile, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test, vi } from 'vitest';
import '../index.js';
import { loadBrown } from '../data/brown.js';
import { saveGgufLlama } from '../models/gguf-llama.js';
import { AutoModelForCausalLM } from '../models/auto.js';
import { LlamaForCausalLM } from '../models/llama.js';
import { QuantLinear } from '../quant/quant-linear.js';
import { getBackend } from '../tensor/backend.js';
import { hfDir } from '../test-util/hf-fixtures.js';
import { trainByteLevelBpe } from '../tokenizers/train-bpe.js';
import { COMMANDS } from './cli.js';
import { generateCommand } from './hf.js';
import { loadGgufForGenerate, quantizeCommand } from './quant.js';

const work = await mkdtemp(join(tmpdir(), 'attend-quant-cli-'));

async function capture(run: (out: (t: string) => void) => Promise<void>): Promise<string> {
  let s = '';
  await run((t) => { s += t; });
  return s;
}

/** The llama fixture (vocab 512) with a byte-level BPE of 512 tokens trained on three Brown documents. */
async function llamaFolder(): Promise<string> {
  const dir = join(work, 'llama');
  await mkdir(dir, { recursive: true });
  for (const f of ['config.json', 'generation_config.json', 'model.safetensors']) await copyFile(join(hfDir('llama'), f), join(dir, f));
  const docs = (await loadBrown()).slice(0, 3).map((d) => d.sentences.join(' '));
  await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(trainByteLevelBpe(docs, { vocabSize: 512, minFrequency: 1 })));
  return dir;
}
const folder = await llamaFolder();
const PROMPT = 'The jury said that the city';

describe('attend quantize', () => {
  test('is registered with the other commands', () => {
    expect(COMMANDS['quantize']).toBe(quantizeCommand);
  });
  test('f32: the GGUF file generates the same text as the folder it came from', async () => {
    const file = join(work, 'f32.gguf');
    const said = await capture((out) => quantizeCommand.run(['--model', folder, '--type', 'f32', '--out', file], out));
    const size = (await stat(file)).size;
    expect(said).toContain(`${file}: llama f32, ${size.toLocaleString('en-US')} bytes`);
    const args = ['--max-new-tokens', '16', PROMPT];
    const fromFolder = await capture((out) => generateCommand.run(['--model', folder, ...args], out));
    const fromFile = await capture((out) => generateCommand.run(['--model', file, ...args], out));
    expect(fromFolder.startsWith(PROMPT)).toBe(true);
    expect(fromFolder.length).toBeGreaterThan(PROMPT.length + 1);
    expect(fromFile).toBe(fromFolder);
  });
  test.each([['q8_0', 0.3], ['q4_0', 0.2]] as const)('%s: the file is under %s of the float32 weights, loads quantized and generates', async (type, ratio) => {
    const file = join(work, `${type}.gguf`);
    const said = await capture((out) => quantizeCommand.run(['--model', folder, '--type', type, '--out', file], out));
    const m = /weights before: ([\d,]+) bytes float32/.exec(said);
    expect(m).not.toBeNull();
    const before = Number(m![1]!.replace(/,/g, '')), after = (await stat(file)).size;
    // The file also holds the tokenizer (some 10 KB here) and f32 norms; the matrices are 34 / 32 or 18 / 32 bytes per weight.
    expect(after / before).toBeLessThan(ratio + 10_000 / before);
    const { model, tokenizer } = await loadGgufForGenerate(file);
    expect(model.modules().filter((x) => x instanceof QuantLinear).length).toBe(2 * 7 + 1); // 7 projections per layer, lm_head
    expect(tokenizer.encode(PROMPT).ids.length).toBeGreaterThan(0);
    // The products run as llama.cpp's: the integer kernel (int8 activations), switched on for the command only.
    const be = getBackend(), spy = vi.spyOn(be, 'quantMatmul'), spyShared = vi.spyOn(be, 'quantMatmuls');
    try {
      const text = await capture((out) => generateCommand.run(['--model', file, '--max-new-tokens', '8', PROMPT], out));
      expect(text.startsWith(PROMPT)).toBe(true);
      expect(spy.mock.calls.length + spyShared.mock.calls.length).toBeGreaterThan(0);
    } finally {
      spy.mockRestore();
      spyShared.mockRestore();
    }
    expect(QuantLinear.int8Activations).toBe(false);
  });
});

describe('bad input: a clear error naming the file, key or option', () => {
  test('a folder that is not a LLaMA-family model', async () => {
    await expect(quantizeCommand.run(['--model', hfDir('gpt2'), '--type', 'q8_0', '--out', join(work, 'x.gguf')])).rejects.toThrow(
      /gpt2\/config\.json: model_type "gpt2" is not a LLaMA-family model; attend quantize writes llama, mistral, qwen2/,
    );
  });
  test('an unknown --type, a missing option', async () => {
    await expect(quantizeCommand.run(['--model', folder, '--type', 'q5_k', '--out', join(work, 'x.gguf')])).rejects.toThrow("--type must be one of f32, f16, bf16, q8_0, q4_0, got 'q5_k'");
    await expect(quantizeCommand.run(['--model', folder, '--out', join(work, 'x.gguf')])).rejects.toThrow('--type is required');
    await expect(quantizeCommand.run(['--type', 'q8_0', '--out', join(work, 'x.gguf')])).rejects.toThrow('--model DIR is required');
  });
  test('an --out that cannot be written: no such folder, a folder, not .gguf', async () => {
    await expect(quantizeCommand.run(['--model', folder, '--type', 'q8_0', '--out', join(work, 'missing', 'x.gguf')])).rejects.toThrow(`--out ${join(work, 'missing', 'x.gguf')}: the folder ${join(work, 'missing')} does not exist`);
    await mkdir(join(work, 'dir.gguf'), { recursive: true });
    await expect(quantizeCommand.run(['--model', folder, '--type', 'q8_0', '--out', join(work, 'dir.gguf')])).rejects.toThrow(`--out ${join(work, 'dir.gguf')}: is a folder`);
    await expect(quantizeCommand.run(['--model', folder, '--type', 'q8_0', '--out', join(work, 'x.bin')])).rejects.toThrow('the file name must end in .gguf');
  });
  test('generate on a truncated .gguf, a .gguf without a tokenizer, a missing .gguf', async () => {
    const full = join(work, 'whole.gguf');
    await quantizeCommand.run(['--model', folder, '--type', 'q8_0', '--out', full], () => {});
    const bytes = await readFile(full);
    const cut = join(work, 'cut.gguf');
    await writeFile(cut, bytes.subarray(0, bytes.length - 1000));
    await expect(generateCommand.run(['--model', cut, PROMPT], () => {})).rejects.toThrow(/cut\.gguf: truncated GGUF file: tensor output\.weight/);
    const header = join(work, 'header.gguf');
    await writeFile(header, bytes.subarray(0, 100));
    await expect(generateCommand.run(['--model', header, PROMPT], () => {})).rejects.toThrow(/header\.gguf: /);
    const bare = join(work, 'bare.gguf');
    await saveGgufLlama(bare, (await AutoModelForCausalLM.fromPretrained(folder)) as LlamaForCausalLM, { type: 'f32' });
    await expect(generateCommand.run(['--model', bare, PROMPT], () => {})).rejects.toThrow(`${bare}: the file holds no tokenizer (no metadata key "tokenizer.ggml.model")`);
    await expect(generateCommand.run(['--model', join(work, 'none.gguf'), PROMPT], () => {})).rejects.toThrow(`${join(work, 'none.gguf')}: no such file`);
  });
});
