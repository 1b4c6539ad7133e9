// attend reward -> attend ppo on a tiny LLaMA (--smoke): the reward model's Hugging Face folder, PPO's statistics in
// metrics.jsonl with reward and KL pictures; --qlora for dpo, grpo and ppo; bad lines named by file and line in
// every command, --skip-bad-lines counting them.

import { mkdtemp, readFile, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { COLORS, writeTinyModelFolder } from '../test-util/tiny-chat.js';
import { loadRewardModel, scoreSequences } from '../train/reward.js';
import { runCli } from './cli.js';

async function cli(args: string[]): Promise<Record<string, unknown>> {
  let s = '';
  await runCli(args, (t) => { s += t; });
  return JSON.parse(s.slice(0, s.lastIndexOf('}') + 1)) as Record<string, unknown>;
}

/** Runs a command with stderr captured (progress lines and notes). */
async function quiet<T>(fn: () => Promise<T>): Promise<{ value: T; stderr: string }> {
  const write = process.stderr.write.bind(process.stderr);
  let stderr = '';
  process.stderr.write = ((t: string | Uint8Array) => { stderr += String(t); return true; }) as typeof process.stderr.write;
  try {
    return { value: await fn(), stderr };
  } finally {
    process.stderr.write = write;
  }
}

const jsonl = (rows: unknown[]): string => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';
const trainRecords = async (dir: string): Promise<Record<string, number>[]> =>
  (await readFile(join(dir, 'metrics.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>).filter((r) => r['kind'] === ('train' as unknown));

const pairs = COLORS.map(([thing, color], i) => ({ prompt: `color of ${thing} ?`, chosen: color, rejected: COLORS[(i + 1) % COLORS.length]![1] }));
const prompts = COLORS.map(([thing, color]) => ({ prompt: `color of ${thing} ?`, answer: color }));

let root: string, modelDir: string, pairsFile: string, promptsFile: string, rewardDir: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'attend-rlhf-'));
  modelDir = await writeTinyModelFolder(join(root, 'model'), 0);
  pairsFile = join(root, 'pairs.jsonl');
  await writeFile(pairsFile, jsonl(pairs));
  promptsFile = join(root, 'prompts.jsonl');
  await writeFile(promptsFile, jsonl(prompts));
  rewardDir = join(root, 'rm');
});

describe('attend reward, then attend ppo', () => {
  test('reward --smoke: a Hugging Face XxxForSequenceClassification folder that loads and scores', async () => {
    const results = await quiet(() => cli(['reward', '--model', modelDir, '--data', pairsFile, '--out', rewardDir, '--smoke', '--lr', '1e-3', '--log-every', '1']));
    expect(results.value).toMatchObject({ command: 'reward', pairs: 6, steps: 2, smoke: true });
    expect(results.stderr).toMatch(/accuracy [\d.]+ \| margin -?[\d.e-]+ \| lr/); // the progress line shows the two statistics
    const files = await readdir(rewardDir);
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'metrics.jsonl', 'loss.svg', 'reward-accuracy.svg', 'results.json']) expect(files).toContain(f);
    const config = JSON.parse(await readFile(join(rewardDir, 'config.json'), 'utf8')) as Record<string, unknown>;
    expect(config).toMatchObject({ architectures: ['LlamaForSequenceClassification'], num_labels: 1 });
    const stats = await trainRecords(rewardDir);
    expect(stats.map((r) => r['step'])).toEqual([1, 2]);
    for (const k of ['accuracy', 'margin', 'rewards/chosen', 'rewards/rejected']) expect(Number.isFinite(stats[1]![k]), k).toBe(true);
    const rm = await loadRewardModel(rewardDir);
    const [a, b] = await scoreSequences(rm, [[3, 4, 5], [6, 7]]);
    expect(Number.isFinite(a) && Number.isFinite(b)).toBe(true);
  });

  test('ppo --smoke --qlora against that reward model: score, KL and the rest in metrics.jsonl, reward.svg and kl.svg, a PEFT adapter', async () => {
    const out = join(root, 'ppo');
    const { value, stderr } = await quiet(() => cli(['ppo', '--model', modelDir, '--reward-model', rewardDir, '--data', promptsFile, '--out', out, '--smoke', '--qlora', '--lora-r', '4', '--lr', '1e-3', '--log-every', '1']));
    expect(value).toMatchObject({ command: 'ppo', steps: 2, prompts: 6, options: { qlora: true, lora: { r: 4 } }, nf4: { layers: 14 } });
    expect(stderr).toContain('ppo: QLoRA: 14 layers in NF4');
    const stats = await trainRecords(out);
    expect(stats.map((r) => r['step'])).toEqual([1, 2]);
    for (const k of ['score', 'score_std', 'kl', 'non_score_reward', 'pg_clipfrac', 'vf_clipfrac', 'entropy', 'response_length', 'policy_loss', 'value_loss']) expect(Number.isFinite(stats[0]![k]), k).toBe(true);
    // Both steps train on the same rollout (--ppo-epochs 4): the same scores and lengths.
    expect(stats[1]!['score']).toBe(stats[0]!['score']);
    expect(value['firstScore']).toBe(stats[0]!['score']);
    const files = await readdir(out);
    for (const f of ['reward.svg', 'kl.svg', 'loss.svg', 'adapter_config.json', 'adapter_model.safetensors', 'results.json']) expect(files).toContain(f);
    expect(files).not.toContain('ppo.jsonl');
    // A causal LM is not a reward model; checked before any rollout.
    await expect(cli(['ppo', '--model', modelDir, '--reward-model', modelDir, '--data', promptsFile, '--out', join(root, 'ppo-bad')])).rejects.toThrow(/architectures is \["LlamaForCausalLM"\]; a reward model is an XxxForSequenceClassification/);
    await expect(cli(['ppo', '--model', modelDir, '--data', promptsFile, '--out', join(root, 'ppo-bad')])).rejects.toThrow('ppo: --reward-model is required');
  });
});

describe('--qlora for dpo and grpo', () => {
  test('each trains a LoRA adapter over an NF4 base and records the bytes', async () => {
    const dpo = await quiet(() => cli(['dpo', '--model', modelDir, '--data', pairsFile, '--out', join(root, 'dpo-q'), '--smoke', '--qlora', '--lora-r', '4']));
    expect(dpo.value).toMatchObject({ steps: 2, options: { qlora: true }, nf4: { layers: 14, nf4Bytes: 9616, float32Bytes: 73728 } });
    expect(dpo.stderr).toContain('dpo: QLoRA: 14 layers in NF4: 9,616 bytes against 73,728 in float32 (0.130x)');
    expect(await readdir(join(root, 'dpo-q'))).toContain('adapter_model.safetensors');
    const grpo = await quiet(() => cli(['grpo', '--model', modelDir, '--data', promptsFile, '--reward', 'exact-answer', '--out', join(root, 'grpo-q'), '--smoke', '--qlora']));
    expect(grpo.value).toMatchObject({ steps: 2, options: { qlora: true, lora: { r: 8 } }, nf4: { layers: 14 } });
    expect(await readdir(join(root, 'grpo-q'))).toContain('adapter_config.json');
  });
});

describe('bad lines', () => {
  test('a line that is not JSON, or lacks the fields, names the file and line in every command; --skip-bad-lines counts it', async () => {
    const badPairs = join(root, 'bad-pairs.jsonl');
    await writeFile(badPairs, `${jsonl(pairs.slice(0, 3))}{"prompt": "color of sky ?", "chosen": "blue"\n${jsonl([{ prompt: 'x', chosen: 'blue' }, ...pairs.slice(3)])}`);
    const badPrompts = join(root, 'bad-prompts.jsonl');
    await writeFile(badPrompts, `${jsonl(prompts.slice(0, 2))}not json at all\n${jsonl([{ question: 'color of sky ?' }, ...prompts.slice(2)])}`);
    const cases: [string, string[], string][] = [
      ['dpo', ['dpo', '--model', modelDir, '--data', badPairs], badPairs],
      ['reward', ['reward', '--model', modelDir, '--data', badPairs], badPairs],
      ['grpo', ['grpo', '--model', modelDir, '--data', badPrompts, '--reward', 'exact-answer'], badPrompts],
      ['ppo', ['ppo', '--model', modelDir, '--reward-model', rewardDir, '--data', badPrompts], badPrompts],
    ];
    for (const [name, args, file] of cases) {
      const line = file === badPairs ? 4 : 3;
      await expect(cli([...args, '--out', join(root, `${name}-bad`), '--smoke']), name).rejects.toThrow(`${file}:${line}: not valid JSON`);
    }
    // A line without the fields: the reward model's pairs and PPO's prompts.
    const missing = join(root, 'missing.jsonl');
    await writeFile(missing, jsonl([pairs[0], { prompt: 'x', chosen: 'blue' }]));
    await expect(cli(['reward', '--model', modelDir, '--data', missing, '--out', join(root, 'reward-bad2')])).rejects.toThrow(`${missing}:2: expected "prompt", "chosen" and "rejected" (TRL's preference format); missing "rejected"`);
    await writeFile(missing, jsonl([prompts[0], { question: 'x' }]));
    await expect(cli(['ppo', '--model', modelDir, '--reward-model', rewardDir, '--data', missing, '--out', join(root, 'ppo-bad2')])).rejects.toThrow(`${missing}:2: missing "prompt" (the line has keys "question")`);
    for (const [name, args, file] of cases) {
      const { value, stderr } = await quiet(() => cli([...args, '--out', join(root, `${name}-skip`), '--smoke', '--skip-bad-lines', '--max-steps', '1']));
      expect(value, name).toMatchObject({ skippedLines: 2, steps: 1 });
      expect(stderr, name).toMatch(new RegExp(`${name}: skipped 2 bad line\\(s\\): line ${file === badPairs ? 4 : 3}: not valid JSON`));
    }
  }, 120_000);
});
