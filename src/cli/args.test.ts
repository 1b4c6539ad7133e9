// Strict CLI parsing: both --k v and --k=v, negative values reaching the range checks, Hugging Face's ranges, clear errors.

import { spawnSync } from 'node:child_process';
import { copyFile, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import '../index.js';
import { hfDir } from '../test-util/hf-fixtures.js';
import { trainByteLevelBpe } from '../tokenizers/train-bpe.js';
import { generationOption, intOption, parseOptions, splitEquals } from './args.js';
import { runCli } from './cli.js';
import { generateCommand } from './hf.js';

const OPTS = { model: 'string', 'top-p': 'string', 'max-new-tokens': 'string', sample: 'boolean' } as const;

describe('parseOptions', () => {
  test('--k v and --k=v give the same values; flags; -- ends the options', () => {
    const spaced = parseOptions(['--model', 'm', '--top-p', '0.5', '--sample', 'text'], OPTS, 'generate');
    const joined = parseOptions(['--model=m', '--top-p=0.5', '--sample', 'text'], OPTS, 'generate');
    expect(joined).toEqual(spaced);
    expect(spaced).toEqual({ values: { model: 'm', 'top-p': '0.5', sample: true }, positionals: ['text'] });
    expect(parseOptions(['--sample=false', '--', '--model'], OPTS, 'generate')).toEqual({ values: { sample: false }, positionals: ['--model'] });
    expect(parseOptions(['--model', 'a=b'], OPTS, 'generate').values['model']).toBe('a=b');
  });
  test('a negative number is a value, not an option', () => {
    const { values } = parseOptions(['--max-new-tokens', '-5', 'x'], OPTS, 'generate');
    expect(values['max-new-tokens']).toBe('-5');
    expect(() => generationOption(values, 'max-new-tokens', 'maxNewTokens')).toThrow("--max-new-tokens must be a positive integer, got '-5'");
  });
  test.each([
    [['--nope', '1'], /generate: unknown option --nope \(options: --model, --top-p, --max-new-tokens, --sample\)/],
    [['--nope=1'], /generate: unknown option --nope \(/],
    [['-m', 'x'], /generate: unknown option -m \(/],
    [['--model'], /generate: --model needs a value/],
    [['--model', '--sample'], /generate: --model needs a value/],
    [['--sample=yes'], /generate: --sample is a flag and takes no value \(or =true \/ =false\), got 'yes'/],
    [['--constructor', 'x'], /generate: unknown option --constructor/],
  ])('%j is refused', (args, re) => {
    expect(() => parseOptions(args, OPTS, 'generate')).toThrow(re);
  });
});

describe('numbers are strict and in Hugging Face ranges', () => {
  const value = (name: string, raw: string) => ({ [name]: raw });
  test.each([
    ['top-p', 'topP', '2', "--top-p must be in (0, 1], got '2'"],
    ['top-p', 'topP', '0', "--top-p must be in (0, 1], got '0'"],
    ['min-p', 'minP', '5', "--min-p must be in [0, 1], got '5'"],
    ['min-p', 'minP', '-0.1', "--min-p must be in [0, 1], got '-0.1'"],
    ['top-k', 'topK', '-1', "--top-k must be a non-negative integer, got '-1'"],
    ['top-k', 'topK', '2.5', "--top-k must be a non-negative integer, got '2.5'"],
    ['temperature', 'temperature', '0', "--temperature must be > 0, got '0'"],
    ['temperature', 'temperature', 'Infinity', "--temperature must be > 0, got 'Infinity'"],
    ['repetition-penalty', 'repetitionPenalty', '0', "--repetition-penalty must be > 0, got '0'"],
    ['num-beams', 'numBeams', '0', "--num-beams must be a positive integer, got '0'"],
    ['max-new-tokens', 'maxNewTokens', '0x10', "--max-new-tokens must be a positive integer, got '0x10'"],
    ['max-new-tokens', 'maxNewTokens', '', "--max-new-tokens must be a positive integer, got ''"],
    ['max-new-tokens', 'maxNewTokens', ' 5', "--max-new-tokens must be a positive integer, got ' 5'"],
    ['seed', 'seed', '1e400', "--seed must be a non-negative integer, got '1e400'"],
  ] as const)('--%s %s', (name, option, raw, message) => {
    expect(() => generationOption(value(name, raw), name, option)).toThrow(message);
  });
  test('values inside the ranges pass, with their edges', () => {
    expect(generationOption(value('top-p', '1'), 'top-p', 'topP')).toBe(1);
    expect(generationOption(value('min-p', '0'), 'min-p', 'minP')).toBe(0);
    expect(generationOption(value('top-k', '0'), 'top-k', 'topK')).toBe(0);
    expect(generationOption(value('temperature', '.7'), 'temperature', 'temperature')).toBe(0.7);
    expect(generationOption(value('max-new-tokens', '1e2'), 'max-new-tokens', 'maxNewTokens')).toBe(100);
    expect(intOption({ steps: '5' }, 'steps', 1)).toBe(5);
    expect(() => intOption({ steps: '0' }, 'steps', 1)).toThrow("--steps must be a positive integer, got '0'");
  });
  test('splitEquals turns --k=v into --k v (the recipes\' options), up to --', () => {
    expect(splitEquals(['gpt-brown', '--steps=5', '--smoke', '--out=a=b', '--', '--x=1'])).toEqual(['gpt-brown', '--steps', '5', '--smoke', '--out', 'a=b', '--', '--x=1']);
  });
});

describe('the attend binary', () => {
  test('main.ts prints our message and exits 1 (not Node\'s "argument is ambiguous")', () => {
    const main = new URL('./main.ts', import.meta.url).pathname;
    const r = spawnSync(process.execPath, ['--import', 'tsx', main, 'generate', '--model', 'nowhere', '--max-new-tokens', '-5', 'hi'], { encoding: 'utf8', timeout: 60_000 });
    expect(r.stderr.trim()).toBe("attend: --max-new-tokens must be a positive integer, got '-5'");
    expect(r.status).toBe(1);
    const unknown = spawnSync(process.execPath, ['--import', 'tsx', main, 'frobnicate'], { encoding: 'utf8', timeout: 60_000 });
    expect(unknown.stderr).toMatch(/^attend: unknown command 'frobnicate'/);
    expect(unknown.status).toBe(2);
  });
});

describe('the commands check before working', () => {
  async function gpt2Folder(): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), 'attend-args-'));
    for (const f of ['config.json', 'model.safetensors']) await copyFile(join(hfDir('gpt2'), f), join(dir, f));
    await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(trainByteLevelBpe(['the cat sat on the mat', 'the dog sat on the log', 'a cat and a dog', 'on the mat sat the cat'], { vocabSize: 300, minFrequency: 1 })));
    return dir;
  }
  test('generate: bad numbers fail before the model loads (the folder does not even exist)', async () => {
    for (const [args, re] of [
      [['--top-p', '2'], /--top-p must be in \(0, 1\], got '2'/],
      [['--min-p=5'], /--min-p must be in \[0, 1\], got '5'/],
      [['--repetition-penalty', '0'], /--repetition-penalty must be > 0/],
      [['--max-new-tokens', '-5'], /--max-new-tokens must be a positive integer, got '-5'/],
      [['--num-beams', '2', '--sample'], /--num-beams and --sample cannot be combined/],
    ] as const) {
      await expect(generateCommand.run(['--model', '/nonexistent/model', ...args, 'hi'], () => {})).rejects.toThrow(re);
    }
  });
  test('generate: an empty prompt, and a prompt + max-new-tokens past n_positions, fail before any token is printed', async () => {
    const dir = await gpt2Folder();
    let printed = '';
    const out = (t: string): void => { printed += t; };
    await expect(generateCommand.run(['--model', dir, ''], out)).rejects.toThrow(/the prompt is empty/);
    await expect(generateCommand.run(['--model', dir, '--max-new-tokens=200', 'the cat'], out))
      .rejects.toThrow(/generate: a prompt of \d+ tokens plus maxNewTokens = 200 needs \d+ positions, more than the model's n_positions = 128 \(use maxNewTokens <= \d+\)/);
    expect(printed).toBe('');
    await generateCommand.run(['--model', dir, '--max-new-tokens=3', '--repetition-penalty=1', 'the cat'], out);
    expect(printed.startsWith('the cat')).toBe(true);
  });
  test('runCli dispatches, with --k=v for demo and train options', async () => {
    let printed = '';
    expect(await runCli(['--help'], (t) => { printed += t; })).toBe(0);
    expect(printed).toMatch(/Commands:/);
    expect(await runCli(['frobnicate'], () => {}, () => {})).toBe(2);
    await expect(runCli(['demo', '--steps=0'])).rejects.toThrow("--steps must be a positive integer, got '0'");
    await expect(runCli(['demo', '--steps', '-3'])).rejects.toThrow("--steps must be a positive integer, got '-3'");
    await expect(runCli(['demo', 'extra'])).rejects.toThrow("demo: unexpected argument 'extra'");
    await expect(runCli(['demo', '--', 'extra'])).rejects.toThrow("demo: unexpected argument 'extra'");
    await expect(runCli(['train', 'gpt-brown', '--steps=2.5', '--smoke'])).rejects.toThrow(/--steps must be a positive integer, got 2.5/);
    await expect(runCli(['train', 'gpt-brown', '--steps=0x10'])).rejects.toThrow("gpt-brown: --steps must be a number, got '0x10'");
    await expect(runCli(['train', 'gpt-brown', '--lr', ' 1'])).rejects.toThrow("gpt-brown: --lr must be a number, got ' 1'");
    await expect(runCli(['train', 'gpt-brown', '--steps', '-5'])).rejects.toThrow(/--steps must be a positive integer, got -5/);
    // Flags take =true / =false as elsewhere: the next error is about --bogus, not an unexpected 'true'.
    await expect(runCli(['train', 'gpt-brown', '--smoke=true', '--resume=false', '--bogus', '1'])).rejects.toThrow(/gpt-brown: unknown option --bogus/);
    await expect(runCli(['train', 'gpt-brown', '--out', '--resume'])).rejects.toThrow('--out needs a value');
  });
});
