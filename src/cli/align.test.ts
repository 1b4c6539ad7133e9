// attend dpo / grpo / reward / ppo: --help lists every option with its default, --smoke runs (LoRA, QLoRA), statistics in
// metrics.jsonl, --resume continues, and bad input names the file, line or option.

import { mkdtemp, readFile, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { COLORS, writeTinyModelFolder } from '../test-util/tiny-chat.js';
import { BUILTIN_REWARDS } from '../train/grpo.js';
import { DPO_OPTIONS, GRPO_OPTIONS, PPO_OPTIONS, REWARD_OPTIONS } from './align.js';
import { runCli } from './cli.js';

async function cli(args: string[]): Promise<string> {
  let s = '';
  await runCli(args, (t) => { s += t; });
  return s;
}

const jsonl = (rows: unknown[]): string => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';
const lines = async (path: string): Promise<Record<string, number>[]> => (await readFile(path, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);
/** metrics.jsonl's train records, without the timing (which differs from run to run). */
const trainRecords = async (dir: string): Promise<Record<string, number>[]> =>
  (await lines(join(dir, 'metrics.jsonl'))).filter((r) => r['kind'] === ('train' as unknown)).map(({ tokensPerSecond: _, ...r }) => r);

let root: string, modelDir: string, pairsFile: string, promptsFile: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'attend-align-'));
  modelDir = await writeTinyModelFolder(join(root, 'model'), 0);
  pairsFile = join(root, 'pairs.jsonl');
  await writeFile(pairsFile, jsonl(COLORS.map(([thing, color], i) => ({ prompt: `color of ${thing} ?`, chosen: color, rejected: COLORS[(i + 1) % COLORS.length]![1] }))));
  promptsFile = join(root, 'prompts.jsonl');
  await writeFile(promptsFile, jsonl(COLORS.map(([thing, color]) => ({ prompt: `color of ${thing} ?`, answer: color }))));
});

describe('--help', () => {
  test('lists every option, with the defaults', async () => {
    for (const [command, options] of [['dpo', DPO_OPTIONS], ['grpo', GRPO_OPTIONS], ['reward', REWARD_OPTIONS], ['ppo', PPO_OPTIONS]] as const) {
      const help = await cli([command, '--help']);
      for (const name of Object.keys(options)) if (name !== 'help') expect(help, `${command} --${name}`).toContain(`--${name}`);
      expect(help).toContain('(default');
    }
    const dpo = await cli(['dpo', '--help']);
    expect(dpo).toContain('--beta X               strength of the implicit KL penalty to the reference (default 0.1)');
    const grpo = await cli(['grpo', '--help']);
    expect(grpo).toContain('--num-generations K    completions per prompt, at least 2 (default 8)');
    for (const name of Object.keys(BUILTIN_REWARDS)) expect(grpo).toContain(name);
    expect(await cli(['--help'])).toMatch(/dpo +align a causal LM/);
    expect(await cli(['--help'])).toMatch(/reward +train a reward model/);
    expect(await cli(['--help'])).toMatch(/ppo +RLHF: reinforce a causal LM with PPO/);
    const ppo = await cli(['ppo', '--help']);
    for (const d of ['--kl-coef X            weight of the per-token KL penalty in the reward (default 0.05)', '--ppo-epochs N         updates on each rollout (default 4)', '(default 3e-6; 1e-5 with --lora)']) expect(ppo).toContain(d);
    expect(await cli(['reward', '--help'])).toContain('--lr X                 peak learning rate (default 1e-5)');
  });
});

describe('attend dpo', () => {
  test('--smoke trains and writes results, metrics with the DPO statistics, and the model', async () => {
    const out = join(root, 'dpo-smoke');
    const printed = await cli(['dpo', '--model', modelDir, '--data', pairsFile, '--out', out, '--smoke', '--lr', '1e-3', '--log-every', '1']);
    const results = JSON.parse(await readFile(join(out, 'results.json'), 'utf8')) as Record<string, unknown>;
    expect(printed).toContain('"command": "dpo"');
    expect(results['steps']).toBe(2);
    expect(results['pairs']).toBe(6);
    const files = await readdir(out);
    for (const f of ['metrics.jsonl', 'loss.svg', 'rewards.svg', 'trainer_state.json', 'model.safetensors', 'config.json', 'tokenizer.json']) expect(files).toContain(f);
    expect(files).not.toContain('dpo.jsonl');
    const stats = await trainRecords(out);
    expect(stats.map((r) => r['step'])).toEqual([1, 2]);
    expect(Object.keys(stats[0]!)).toEqual(expect.arrayContaining(['loss', 'rewards/chosen', 'rewards/rejected', 'rewards/margins', 'rewards/accuracies']));
    expect(stats[0]!['rewards/margins']).toBeCloseTo(stats[0]!['rewards/chosen']! - stats[0]!['rewards/rejected']!, 6);
    expect(results['final']).toEqual(expect.objectContaining({ step: 2, 'rewards/margins': stats[1]!['rewards/margins'] }));
  }, 30_000);

  test('--resume continues a run (LoRA): metrics.jsonl goes on from the checkpoint', async () => {
    const out = join(root, 'dpo-resume');
    const common = ['dpo', '--model', modelDir, '--data', pairsFile, '--out', out, '--lora', '--lora-r', '4', '--batch-size', '2', '--lr', '1e-3', '--beta', '0.2', '--log-every', '1'];
    await cli([...common, '--max-steps', '2']);
    await expect(cli([...common, '--max-steps', '4'])).rejects.toThrow('already holds a checkpoint');
    await cli([...common, '--max-steps', '4', '--resume']);
    const stats = await trainRecords(out);
    expect(stats.map((r) => r['step'])).toEqual([1, 2, 3, 4]);
    expect(stats.every((r) => Number.isFinite(r['rewards/accuracies']))).toBe(true);
    const files = await readdir(out);
    expect(files).toContain('adapter_model.safetensors');
    expect(files).toContain('adapter_config.json');
  }, 30_000);

  test('bad input names the file and line, or the option', async () => {
    const bad = join(root, 'bad-pairs.jsonl');
    await writeFile(bad, jsonl([{ prompt: 'color of sky ?', chosen: 'blue', rejected: 'red' }, { prompt: 'color of snow ?', chosen: 'white' }]));
    await expect(cli(['dpo', '--model', modelDir, '--data', bad, '--out', join(root, 'dpo-bad')])).rejects.toThrow(`${bad}:2: expected "prompt", "chosen" and "rejected" (TRL's preference format); missing "rejected"`);
    await expect(cli(['dpo', '--model', modelDir, '--data', pairsFile, '--out', join(root, 'x'), '--beta', '0'])).rejects.toThrow("--beta must be a positive number, got '0'");
    await expect(cli(['dpo', '--model', modelDir, '--data', pairsFile, '--out', join(root, 'x'), '--lora-r', '4'])).rejects.toThrow('dpo: --lora-r needs --lora or --qlora');
    await expect(cli(['dpo', '--data', pairsFile, '--out', join(root, 'x')])).rejects.toThrow('dpo: --model is required');
  });
});

describe('attend grpo', () => {
  test('--smoke samples, scores and trains; statistics per step in metrics.jsonl', async () => {
    const out = join(root, 'grpo-smoke');
    await cli(['grpo', '--model', modelDir, '--data', promptsFile, '--reward', 'exact-answer', '--out', out, '--smoke', '--lr', '1e-3', '--log-every', '1']);
    const results = JSON.parse(await readFile(join(out, 'results.json'), 'utf8')) as Record<string, unknown>;
    expect(results['steps']).toBe(2);
    expect(results['reward']).toBe('exact-answer');
    const stats = await trainRecords(out);
    expect(stats).toHaveLength(2);
    for (const key of ['reward', 'reward_std', 'kl', 'clip_ratio', 'entropy', 'completion_length']) expect(Number.isFinite(stats[1]![key]), key).toBe(true);
    expect(await readdir(out)).toEqual(expect.arrayContaining(['reward.svg', 'kl.svg', 'metrics.jsonl', 'model.safetensors']));
  }, 30_000);

  test('--resume gives the same statistics as an uninterrupted run (the rollout generator is checkpointed), dynamic sampling included', async () => {
    const args = (out: string) => ['grpo', '--model', modelDir, '--data', promptsFile, '--reward', 'contains-answer', '--out', out, '--num-generations', '3', '--prompts-per-step', '2', '--max-new-tokens', '3', '--lr', '1e-2', '--schedule', 'constant', '--log-every', '1', '--dynamic-sampling'];
    const whole = join(root, 'grpo-whole'), split = join(root, 'grpo-split');
    await cli([...args(whole), '--max-steps', '3']);
    await cli([...args(split), '--max-steps', '2']);
    await cli([...args(split), '--max-steps', '3', '--resume']);
    const a = await trainRecords(whole), b = await trainRecords(split);
    expect(b.map((r) => r['step'])).toEqual([1, 2, 3]);
    expect(b).toEqual(a);
    expect(b[2]!['reward']).toBeTypeOf('number');
    expect(b.every((r) => (r['prompts_sampled'] as number) >= 2)).toBe(true);
  }, 30_000);

  test('bad input: unknown reward, k < 2, a line without "answer"', async () => {
    const base = ['grpo', '--model', modelDir, '--data', promptsFile, '--out', join(root, 'grpo-bad')];
    await expect(cli([...base, '--reward', 'accuracy'])).rejects.toThrow(`unknown reward 'accuracy' (built-in rewards: ${Object.keys(BUILTIN_REWARDS).join(', ')})`);
    await expect(cli([...base, '--reward', 'exact-answer', '--num-generations', '1'])).rejects.toThrow('grpo: --num-generations must be at least 2');
    await expect(cli([...base, '--reward', 'exact-answer', '--loss-type', 'ppo'])).rejects.toThrow("--loss-type must be grpo or dapo, got 'ppo'");
    const bad = join(root, 'bad-prompts.jsonl');
    await writeFile(bad, jsonl([{ prompt: 'color of sky ?', answer: 'blue' }, { prompt: 'color of snow ?' }]));
    await expect(cli(['grpo', '--model', modelDir, '--data', bad, '--reward', 'exact-answer', '--out', join(root, 'grpo-bad2')])).rejects.toThrow(`${bad}:2: missing "answer" (the reward needs it)`);
  });
});
