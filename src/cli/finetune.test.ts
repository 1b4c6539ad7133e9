// `attend sft` and `attend chat` on a tiny LLaMA folder written here: --smoke runs (full, LoRA, packing), --resume, a trained model answering in the REPL, and bad input.

import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, test } from 'vitest';
import '../index.js';
import { chatTokenizer, COLORS, TOKENIZER_CONFIG, writeTinyModelFolder } from '../test-util/tiny-chat.js';
import { runCli } from './cli.js';
import { parseTargetModules, runChat, sftCommand } from './finetune.js';

const tmp = (): Promise<string> => mkdtemp(join(tmpdir(), 'attend-finetune-'));
const MISTRAL = (JSON.parse(await readFile(new URL('../../test/data/chat/templates.json', import.meta.url), 'utf8')) as Record<string, { template: string }>).mistral!.template;

const colorLines = (): string => `${COLORS.map(([thing, color]) => JSON.stringify({ messages: [{ role: 'user', content: `color of ${thing} ?` }, { role: 'assistant', content: color }] })).join('\n')}\n`;

async function dataFile(text = colorLines()): Promise<string> {
  const path = join(await tmp(), 'train.jsonl');
  await writeFile(path, text);
  return path;
}

/** The toy set on disk once, for the tests that only read it. */
const colorsFile = await dataFile();

/** Runs `attend ...` and returns what it printed on stdout (progress and notes go to stderr: see quietStderr). */
async function cli(...argv: string[]): Promise<string> {
  let text = '';
  await runCli(argv, (t) => { text += t; });
  return text;
}

/** A chat session over scripted lines: the chunks written to out (one per streamed piece) and the err text. */
async function chat(args: string[], lines: string[]): Promise<{ chunks: string[]; out: string; err: string }> {
  const chunks: string[] = [];
  let err = '';
  await runChat(args, { input: Readable.from(lines.map((l) => `${l}\n`)), out: (t) => { chunks.push(t); }, err: (t) => { err += t; } });
  return { chunks, out: chunks.join(''), err };
}

const quietStderr = async <T>(fn: () => Promise<T>): Promise<{ value: T; stderr: string }> => {
  const write = process.stderr.write.bind(process.stderr);
  let stderr = '';
  process.stderr.write = ((t: string | Uint8Array) => { stderr += String(t); return true; }) as typeof process.stderr.write;
  try {
    return { value: await fn(), stderr };
  } finally {
    process.stderr.write = write;
  }
};

describe('attend sft', () => {
  test('--help lists every option with its default', async () => {
    const help = await cli('sft', '--help');
    for (const option of ['model', 'data', 'out', 'lora', 'qlora', 'lora-r', 'lora-alpha', 'lora-dropout', 'target-modules', 'rslora', 'packing', 'max-length', 'all-tokens', 'epochs', 'max-steps', 'lr', 'warmup-steps', 'batch-size', 'grad-accum', 'weight-decay', 'seed', 'log-every', 'checkpoint-every', 'device', 'resume', 'skip-bad-lines', 'smoke']) {
      expect(help, option).toMatch(new RegExp(`^  --${option}\\b`, 'm'));
    }
    for (const dflt of ['default 8)', 'default 16)', 'default 0.05)', 'default 1024', 'default 3)', 'default 2e-5; 2e-4 with --lora)']) expect(help).toContain(dflt);
    expect(await cli('--help')).toMatch(/sft +supervised fine-tuning/);
    expect(await cli('--help')).toMatch(/chat +chat with a causal LM/);
  });

  test('--smoke: full fine-tuning writes a Hugging Face folder that chat loads; a second run needs --resume', async () => {
    const base = await writeTinyModelFolder(await tmp(), 1);
    const data = await dataFile();
    const out = join(await tmp(), 'run');
    const { value: text, stderr } = await quietStderr(() => cli('sft', '--model', base, '--data', data, '--out', out, '--smoke'));
    const results = JSON.parse(text.slice(0, text.lastIndexOf('}') + 1)) as Record<string, unknown>;
    expect(results).toMatchObject({ command: 'sft', smoke: true, examples: 6, steps: 2 });
    expect(stderr).toMatch(/full fine-tuning: trainable params/);
    const files = await readdir(out);
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'metrics.jsonl', 'loss.svg', 'results.json', 'trainer_state.json']) expect(files).toContain(f);
    const metrics = (await readFile(join(out, 'metrics.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(metrics.at(-1)).toMatchObject({ kind: 'train', step: 2 });
    // The run's folder holds a checkpoint: another run is refused, --resume continues it.
    await expect(quietStderr(() => cli('sft', '--model', base, '--data', data, '--out', out, '--max-steps', '3'))).rejects.toThrow(/already holds a checkpoint; pass resume: true/);
    const resumed = await quietStderr(() => cli('sft', '--model', base, '--data', data, '--out', out, '--max-steps', '3', '--resume'));
    expect(JSON.parse(resumed.value.slice(0, resumed.value.lastIndexOf('}') + 1))).toMatchObject({ steps: 3 });
    const session = await chat(['--model', out, '--max-new-tokens', '3'], ['color of sky ?', '/exit', 'never read']);
    expect(session.out.split('\n')).toHaveLength(2); // one reply, then /exit
  });

  test('--smoke --lora --packing --rslora: a PEFT adapter that chat applies with --adapter', async () => {
    const base = await writeTinyModelFolder(await tmp(), 2);
    const out = join(await tmp(), 'lora');
    const data = await dataFile();
    const { value: text, stderr } = await quietStderr(() => cli('sft', '--model', base, '--data', data, '--out', out, '--smoke', '--lora', '--lora-r', '4', '--target-modules', 'q_proj,v_proj', '--rslora', '--packing', '--max-length', '64'));
    expect(JSON.parse(text.slice(0, text.lastIndexOf('}') + 1))).toMatchObject({ sequences: 2, trainableParameters: 2 * (4 * (32 + 32) + 4 * (32 + 16)) });
    expect(stderr).toMatch(/packed \d+ examples into 2 sequences/);
    const config = JSON.parse(await readFile(join(out, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    expect(config).toMatchObject({ r: 4, lora_alpha: 16, use_rslora: true, target_modules: ['q_proj', 'v_proj'], base_model_name_or_path: base });
    // The adapter's checkpoint resumes (the adapter is added again before the Trainer restores it).
    const resumed = await quietStderr(() => cli('sft', '--model', base, '--data', data, '--out', out, '--lora', '--lora-r', '4', '--target-modules', 'q_proj,v_proj', '--rslora', '--packing', '--max-length', '64', '--batch-size', '4', '--max-steps', '3', '--resume'));
    expect(JSON.parse(resumed.value.slice(0, resumed.value.lastIndexOf('}') + 1))).toMatchObject({ steps: 3 });
    // --model may be left out: the adapter names its base.
    const session = await chat(['--adapter', out, '--max-new-tokens', '2'], ['color of snow ?']);
    expect(session.out.endsWith('\n')).toBe(true);
    expect(session.err).toBe('');
  });

  test('--smoke --qlora: LoRA over an NF4 base, its bytes logged against float32; the adapter is a PEFT folder', async () => {
    const base = await writeTinyModelFolder(await tmp(), 8);
    const out = join(await tmp(), 'qlora');
    const { value: text, stderr } = await quietStderr(() => cli('sft', '--model', base, '--data', colorsFile, '--out', out, '--smoke', '--qlora', '--lora-r', '4'));
    // 14 layers in NF4 (see src/quant/qlora.test.ts for the bytes); an all-linear adapter of rank 4 on them.
    expect(JSON.parse(text.slice(0, text.lastIndexOf('}') + 1))).toMatchObject({
      steps: 2, options: { qlora: true, lora: { r: 4 } }, nf4: { layers: 14, nf4Bytes: 9616, float32Bytes: 73728, modelBytesBefore: 82064, modelBytesAfter: 17952 },
      trainableParameters: 2 * 4 * (2 * (32 + 32) + 2 * (32 + 16) + 3 * (32 + 64)),
    });
    expect(stderr).toContain('sft: QLoRA: 14 layers in NF4: 9,616 bytes against 73,728 in float32 (0.130x)');
    const config = JSON.parse(await readFile(join(out, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    expect(config).toMatchObject({ peft_type: 'LORA', r: 4, target_modules: 'all-linear', base_model_name_or_path: base });
    expect(await readdir(out)).toContain('adapter_model.safetensors');
    // The checkpoint resumes: the base is quantized and the adapter added again before the Trainer restores it.
    const resumed = await quietStderr(() => cli('sft', '--model', base, '--data', colorsFile, '--out', out, '--qlora', '--lora-r', '4', '--batch-size', '4', '--max-steps', '3', '--resume'));
    expect(JSON.parse(resumed.value.slice(0, resumed.value.lastIndexOf('}') + 1))).toMatchObject({ steps: 3, nf4: { layers: 14 } });
    // Over the float base (merged) and, as trained, over the base quantized again at load (unmerged).
    for (const extra of [[], ['--qlora']]) {
      const session = await chat(['--adapter', out, '--max-new-tokens', '2', ...extra], ['color of snow ?']);
      expect(session.out.split('\n')).toHaveLength(2);
      expect(session.err).toBe('');
    }
  });

  test('bad input: a line that is not JSON names the file and line; --skip-bad-lines counts it', async () => {
    const base = await writeTinyModelFolder(await tmp(), 3);
    const data = await dataFile(`${colorLines()}{"messages": [\n{"text": "no SFT fields"}\n`);
    await expect(cli('sft', '--model', base, '--data', data, '--out', join(await tmp(), 'x'), '--smoke')).rejects.toThrow(new RegExp(`${data}:7: not valid JSON`));
    const outY = join(await tmp(), 'y');
    const { value } = await quietStderr(() => cli('sft', '--model', base, '--data', data, '--out', outY, '--smoke', '--skip-bad-lines'));
    expect(JSON.parse(value.slice(0, value.lastIndexOf('}') + 1))).toMatchObject({ examples: 6, skippedLines: 2 });
  });

  test('bad input: a LoRA target that matches nothing lists the module names; a failing template names the line and message', async () => {
    const base = await writeTinyModelFolder(await tmp(), 4);
    await expect(quietStderr(() => cli('sft', '--model', base, '--data', 'unused.jsonl', '--out', '/nonexistent/z', '--lora-r', '4'))).rejects.toThrow(/--lora-r needs --lora/);
    const data = await dataFile();
    await expect(quietStderr(async () => cli('sft', '--model', base, '--data', data, '--out', join(await tmp(), 'z'), '--smoke', '--lora', '--target-modules', 'c_attn')))
      .rejects.toThrow(/target_modules \["c_attn"\] match no layer of the model \(its linear layers: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj, lm_head\)/);
    // Mistral's template refuses a system message: the error names the line and the message.
    await writeFile(join(base, 'tokenizer_config.json'), JSON.stringify({ ...TOKENIZER_CONFIG, chat_template: MISTRAL, bos_token: '<unk>' }));
    const withSystem = await dataFile(`${colorLines()}${JSON.stringify({ messages: [{ role: 'system', content: 'Be brief .' }, { role: 'user', content: 'hi' }, { role: 'assistant', content: 'hello' }] })}\n`);
    await expect(cli('sft', '--model', base, '--data', withSystem, '--out', join(await tmp(), 'w'), '--smoke')).rejects.toThrow(new RegExp(`${withSystem}:7: .*chat template "default" failed: .*Conversation roles must alternate.*\\(at messages\\[0\\], role "system"\\)`));
    await expect(cli('sft', '--model', base, '--data', withSystem, '--out', join(await tmp(), 'w'), '--max-length', '65')).rejects.toThrow(/--max-length 65 is more than the model's max_position_embeddings = 64/);
  });

  test('--target-modules: all-linear, names, or a regular expression', () => {
    expect(parseTargetModules('all-linear')).toBe('all-linear');
    expect(parseTargetModules('q_proj, v_proj')).toEqual(['q_proj', 'v_proj']);
    expect(parseTargetModules('.*\\.(q|v)_proj')).toBe('.*\\.(q|v)_proj');
    expect(() => parseTargetModules('q_proj,,v_proj')).toThrow(/names separated by commas/);
    expect(() => parseTargetModules('(q_proj')).toThrow(/is not a regular expression/);
    expect(sftCommand.summary).toMatch(/LoRA/);
  });
});

describe('attend chat', () => {
  test('a model fine-tuned with attend sft answers in the REPL; /reset clears the history', async () => {
    const base = await writeTinyModelFolder(await tmp(), 5);
    const out = join(await tmp(), 'trained');
    const { value: text } = await quietStderr(() => cli('sft', '--model', base, '--data', colorsFile, '--out', out, '--max-steps', '60', '--lr', '1e-2', '--batch-size', '6'));
    expect((JSON.parse(text.slice(0, text.lastIndexOf('}') + 1)) as { finalLoss: number }).finalLoss).toBeLessThan(0.1);
    const session = await chat(['--model', out, '--max-new-tokens', '4'], ['color of sky ?', 'color of grass ?', '/reset', '', 'color of coal ?', '/exit']);
    expect(session.out).toBe('blue\ngreen\nblack\n');
    expect(session.err).toBe('(history cleared)\n');
  });

  test('a conversation longer than the context drops the oldest turns with a warning; replies stream token by token', async () => {
    const base = await writeTinyModelFolder(await tmp(), 6);
    // 19 tokens a message: with the system turn and 8 new tokens, a second one no longer fits 64 positions.
    const long = 'color of sky ? color of grass ? color of snow ? color of coal ? hi hi hi';
    const huge = Array(60).fill('hi').join(' ');
    const session = await chat(['--model', base, '--max-new-tokens', '8', '--system', 'Be brief .'], [long, long, long, huge, 'hi']);
    expect(session.out.split('\n').slice(0, -1)).toHaveLength(4); // every message answered but the one too long alone
    expect(session.err).toBe([
      "chat: the conversation no longer fits the model's context of 64 positions with 8 new tokens; dropped the oldest 2 message(s)\n",
      "chat: the conversation no longer fits the model's context of 64 positions with 8 new tokens; dropped the oldest 2 message(s)\n",
      'chat: the message is 71 tokens with the template, the model\'s context is 64 positions; it was not sent\n',
    ].join(''));
    const hi = await chat(['--model', base, '--max-new-tokens', '8', '--system', 'Be brief .'], ['hi']);
    expect(hi.chunks.length).toBeGreaterThan(2); // the reply came in pieces, then its line end
  });

  test('a failing template names the message and the chat goes on; bad options are refused before loading', async () => {
    const base = await writeTinyModelFolder(await tmp(), 7);
    await writeFile(join(base, 'tokenizer_config.json'), JSON.stringify({ ...TOKENIZER_CONFIG, chat_template: MISTRAL, bos_token: '<unk>' }));
    const session = await chat(['--model', base, '--system', 'Be brief .', '--max-new-tokens', '2'], ['hi']);
    expect(session.err).toMatch(/chat: .*Conversation roles must alternate.*\(at messages\[0\], role "system"\); the message was not sent/);
    const plain = await chat(['--model', base, '--max-new-tokens', '2'], ['hi', 'hi']);
    expect(plain.err).toBe('');
    expect(plain.out.split('\n')).toHaveLength(3);
    await expect(chat(['--model', base, '--top-p', '0.9'], [])).rejects.toThrow(/--top-p needs --temperature/);
    await expect(chat(['--model', base, '--temperature', '0'], [])).rejects.toThrow(/--temperature must be/);
    await writeFile(join(base, 'tokenizer_config.json'), JSON.stringify({ eos_token: '<|im_end|>' }));
    await expect(chat(['--model', base], [])).rejects.toThrow(/has no chat_template/);
    expect(chatTokenizer().chatTemplateNames).toEqual(['default']);
  });
});
