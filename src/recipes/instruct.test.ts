// The instruct recipe: the chat template and tokenizer, the pretraining stream, batched greedy answers against one at a
// time, the accuracy table, a smoke run end to end (results.json, pictures, a model folder `attend chat` talks with),
// and bad options.

import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, test } from 'vitest';
import '../index.js';
import { runChat } from '../cli/finetune.js';
import { trainCommand } from '../cli/train.js';
import { InstructTasks } from '../data/instruct-tasks.js';
import { AutoModelForCausalLM } from '../models/auto.js';
import { ConfigReader } from '../models/base.js';
import { AutoTokenizer } from '../tokenizers/tokenizer.js';
import { LlamaForCausalLM, llamaConfig } from '../models/llama.js';
import { manualSeed } from '../tensor/random.js';
import { accuracyTable, answerTasks, END_ID, EOT_ID, instructRecipe, instructTokenizer, plainText, pretrainStream, rejectedAnswers, type StageAccuracy } from './instruct.js';
import { parseRecipeArgs } from './recipe.js';

const tempDir = async (name: string): Promise<string> => join(await mkdtemp(join(tmpdir(), 'attend-instruct-')), name);
const tok = instructTokenizer([], 261);

describe('tokenizer and chat template', () => {
  test('one token per character, the chat markers as single tokens, <|end|> as eos', () => {
    expect(tok.vocabSize).toBe(261);
    expect(tok.eosTokenId).toBe(END_ID);
    expect(tok.encode('12 + 30', { addSpecialTokens: false }).ids).toHaveLength(7);
    const ids = tok.applyChatTemplate([{ role: 'user', content: 'Add 2 and 3.' }, { role: 'assistant', content: '5' }]);
    // <|user|> + 12 characters + <|end|> + <|assistant|> + '5' + <|end|>.
    expect(ids).toHaveLength(1 + 12 + 1 + 1 + 1 + 1);
    expect(tok.decode(ids)).toBe('<|user|>Add 2 and 3.<|end|><|assistant|>5<|end|>');
    expect(tok.applyChatTemplate([{ role: 'user', content: 'hi' }], { addGenerationPrompt: true, tokenize: false })).toBe('<|user|>hi<|end|><|assistant|>');
  });

  test('the pretraining stream holds every document once, each followed by <|endoftext|>', () => {
    const tasks = new InstructTasks().training(5, 1);
    const ids = Array.from(pretrainStream(tok, ['The jury said.', 'It rained.'], tasks, 3));
    const docs = tok.decode(ids).split('<|endoftext|>');
    expect(docs.at(-1)).toBe('');
    expect(docs.slice(0, -1).sort()).toEqual(['The jury said.', 'It rained.', ...tasks.map(plainText)].sort());
    expect(ids.filter((i) => i === EOT_ID)).toHaveLength(7);
  });
});

describe('evaluation', () => {
  test('batched greedy answers (left padding) equal answers one prompt at a time, in both formats', async () => {
    manualSeed(3);
    const model = new LlamaForCausalLM(llamaConfig(new ConfigReader({
      vocab_size: 261, hidden_size: 16, intermediate_size: 32, num_hidden_layers: 1, num_attention_heads: 2, max_position_embeddings: 128,
      initializer_range: 0.5, tie_word_embeddings: true,
    }, 'config.json')));
    const tasks = new InstructTasks().heldOut(6, 4); // one of six families: prompts of many lengths
    for (const mode of ['chat', 'plain'] as const) {
      const batched = await answerTasks(model, tok, tasks, { mode, batchSize: 6, maxNewTokens: 4 });
      const alone = [];
      for (const t of tasks) alone.push(...(await answerTasks(model, tok, [t], { mode, batchSize: 1, maxNewTokens: 4 })));
      expect(batched).toEqual(alone);
      expect(batched.some((a) => a.length > 0)).toBe(true);
    }
  }, 120_000);

  test('DPO with --dpo-rejected own rejects the model\'s wrong answers, and a generated mistake where it is right or silent', () => {
    const [a, b, c, d] = new InstructTasks().training(4, 2);
    const r = rejectedAnswers([a!, b!, c!, d!], [` ${a!.answer} `, 'x', '   ', `${d!.answer}!`], ['p0', 'p1', 'p2', 'p3']);
    expect(r).toEqual({ rejected: ['p0', 'x', 'p2', `${d!.answer}!`], own: 2 });
  });

  test('the accuracy table', () => {
    const s = (stage: string, accuracy: number): StageAccuracy => ({ stage, accuracy, seenPhrasing: accuracy, heldOutPhrasing: accuracy / 2, byFamily: { add: accuracy, sort: 1 - accuracy }, examples: [] });
    expect(accuracyTable([s('SFT', 0.25), s('GRPO', 0.5)])).toBe([
      '| stage | held-out accuracy | seen phrasings | held-out phrasing | add | sort |',
      '| --- | --- | --- | --- | --- | --- |',
      '| SFT | **25.0%** | 25.0% | 12.5% | 25.0% | 75.0% |',
      '| GRPO | **50.0%** | 50.0% | 25.0% | 50.0% | 50.0% |',
    ].join('\n'));
  });
});

describe('the recipe', () => {
  test('--smoke runs every stage: results.json, the table, reward and KL pictures, a model folder attend chat answers from', async () => {
    const dir = await tempDir('run');
    let printed = '';
    await trainCommand.run(['instruct', '--smoke', '--out', dir], (t) => { printed += t; });
    expect(printed).toContain('saved');
    const results = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as Record<string, unknown> & { stages: { stage: string; accuracy: number }[]; model: { folder: string } };
    expect(results.stages.map((s) => s.stage)).toEqual(['initial (random weights)', 'pretrained (base, plain prompt)', 'SFT', 'DPO', 'GRPO']);
    for (const s of results.stages) expect(s.accuracy).toBeGreaterThanOrEqual(0);
    const dpo = results['dpoPairs'] as { pairs: number; ownRejected: number };
    expect(dpo.pairs).toBe(8);
    expect(Number.isInteger(dpo.ownRejected)).toBe(true);
    expect(results['table']).toContain('| GRPO |');
    for (const f of ['accuracy.md', 'reward.svg', 'kl.svg', 'pretrain/metrics.jsonl', 'sft/metrics.jsonl', 'dpo/metrics.jsonl', 'grpo/metrics.jsonl', 'sft/stage.json', 'model/config.json', 'model/model.safetensors', 'model/tokenizer.json', 'model/tokenizer_config.json']) {
      expect(existsSync(join(dir, f)), f).toBe(true);
    }
    expect(readFileSync(join(dir, 'reward.svg'), 'utf8')).toContain('<svg');
    // The RL learning rate decays linearly from --rl-lr (1e-4) to 0 over --rl-steps (2 in the smoke run).
    const rlLrs = readFileSync(join(dir, 'grpo/metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { kind: string; lr?: number }).filter((r) => r.kind === 'train').map((r) => r.lr);
    expect(rlLrs).toEqual([1e-4, 5e-5]);

    // --resume finds every stage finished: the stages are loaded, not trained again, and the final model is the same.
    const weights = readFileSync(join(dir, 'model/model.safetensors'));
    await trainCommand.run(['instruct', '--smoke', '--out', dir, '--resume'], () => undefined);
    const again = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as typeof results;
    expect(again.stages).toEqual(results.stages);
    expect(readFileSync(join(dir, 'model/model.safetensors')).equals(weights)).toBe(true);

    // attend chat --model DIR: the saved model answers through its chat template, greedily, stopping at <|end|>: the
    // same answer the recipe's evaluation gets from the model loaded from that folder.
    const prompt = 'Add 2 and 3.';
    const loaded = await AutoModelForCausalLM.fromPretrained(join(dir, 'model'));
    const task = { family: 'add', skill: 'arithmetic', key: '2+3', template: 1, heldOutTemplate: false, prompt, answer: '5', wrong: ['6'] };
    const [expected] = await answerTasks(loaded as LlamaForCausalLM, await AutoTokenizer.fromPretrained(join(dir, 'model')), [task], { mode: 'chat', batchSize: 1, maxNewTokens: 8 });
    let said = '';
    const errs: string[] = [];
    await runChat(['--model', join(dir, 'model'), '--max-new-tokens', '8'], { input: Readable.from([`${prompt}\n`, '/exit\n']), out: (t) => { said += t; }, err: (t) => { errs.push(t); } });
    expect(errs.join('')).toBe('');
    expect(said.trim()).toBe(expected!.trim());
  }, 300_000);

  test('--rl ppo: a reward model learned from the preference pairs, then PPO', async () => {
    const dir = await tempDir('ppo');
    await trainCommand.run(['instruct', '--smoke', '--rl', 'ppo', '--out', dir], () => undefined);
    const results = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as { stages: { stage: string }[]; rewardModelAccuracy: number | null; pictures: string[] };
    expect(results.stages.at(-1)!.stage).toBe('PPO');
    expect(results.rewardModelAccuracy).toBeGreaterThanOrEqual(0);
    expect(results.pictures).toEqual(['reward.svg', 'kl.svg']);
    for (const f of ['reward-model/metrics.jsonl', 'ppo/metrics.jsonl', 'ppo/stage.json', 'model/model.safetensors']) expect(existsSync(join(dir, f)), f).toBe(true);
  }, 300_000);

  test('bad options name the option and what it must be', async () => {
    const run = (args: string[]) => trainCommand.run(['instruct', '--smoke', '--out', join(tmpdir(), 'attend-instruct-never'), ...args], () => undefined);
    await expect(run(['--rl', 'sac'])).rejects.toThrow("instruct: --rl must be 'grpo' or 'ppo', got sac");
    await expect(run(['--heads', '3'])).rejects.toThrow('instruct: --heads must be a divisor of --hidden-size 16 giving an even head size, got 3');
    await expect(run(['--num-generations', '1'])).rejects.toThrow('--num-generations must be at least 2');
    await expect(run(['--rl-reward', 'close'])).rejects.toThrow("instruct: --rl-reward must be 'exact' or 'partial', got close");
    await expect(run(['--rl-schedule', 'step'])).rejects.toThrow("instruct: --rl-schedule must be 'constant', 'linear' or 'cosine', got step");
    await expect(run(['--dpo-rejected', 'random'])).rejects.toThrow("instruct: --dpo-rejected must be 'own' or 'plausible', got random");
    await expect(run(['--held-out-fraction', '1'])).rejects.toThrow('--held-out-fraction must be in (0, 1), got 1');
    await expect(run(['--sft-slip-rate', '1'])).rejects.toThrow('instruct: --sft-slip-rate must be in [0, 1), got 1');
    expect(() => parseRecipeArgs(instructRecipe, ['--sft-lr', 'fast'], false)).toThrow("--sft-lr must be a number, got 'fast'");
  }, 120_000);
});
