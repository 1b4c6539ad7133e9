// `attend dpo` (preference pairs, TRL's sigmoid DPO), `attend grpo` (group-relative RL with a built-in programmatic reward),
// `attend reward` (a reward model on preference pairs) and `attend ppo` (RLHF against a reward model), on the Trainer.

import { loadText } from '../data/files.js';
import { parsePreferenceJsonl, tokenizePreference, type PreferencePair, type SftTokenizeStats } from '../data/sft.js';
import { AutoModelForCausalLM } from '../models/auto.js';
import { saveResults } from '../recipes/recipe.js';
import { AutoTokenizer, type Tokenizer } from '../tokenizers/tokenizer.js';
import { dpoTrain } from '../train/dpo.js';
import { BUILTIN_REWARDS, grpoTrain, loadPromptJsonl, rewardFunction } from '../train/grpo.js';
import { lockDir } from '../train/lock.js';
import { ppoTrain } from '../train/ppo.js';
import { loadRewardModel, RewardModel, saveRewardModel, trainRewardModel } from '../train/reward.js';
import { manualSeed } from '../tensor/random.js';
import { isScheduleKind } from '../train/trainer.js';
import type { QloraReport } from '../models/lora.js';
import type { SftLoraOptions } from '../train/sft.js';
import { intOption, numberOption, parseOptions, stringOption, type ParsedArgs } from './args.js';
import { parseTargetModules } from './finetune.js';
import type { CliCommand, Out } from './hf.js';

const stdout: Out = (t) => { process.stdout.write(t); };
const stderr: Out = (t) => { process.stderr.write(t); };

const positiveNumber = { want: 'a positive number', integer: false, ok: (v: number) => v > 0 && Number.isFinite(v) };
const nonNegative = { want: 'a number >= 0', integer: false, ok: (v: number) => v >= 0 && Number.isFinite(v) };
const probability = { want: 'in [0, 1)', integer: false, ok: (v: number) => v >= 0 && v < 1 };
const unitOpen = { want: 'in (0, 1)', integer: false, ok: (v: number) => v > 0 && v < 1 };
const upToHalf = { want: 'in [0, 0.5]', integer: false, ok: (v: number) => v >= 0 && v <= 0.5 };
const topP = { want: 'in (0, 1]', integer: false, ok: (v: number) => v > 0 && v <= 1 };

function required(values: ParsedArgs['values'], name: string, usage: string, command: string): string {
  const v = stringOption(values, name);
  if (v === undefined || v === '') throw new Error(`${command}: --${name} is required\n\n${usage}`);
  return v;
}

const LORA_USAGE = `  --lora                 train a LoRA adapter instead of every weight (the reference is then the model with
                         its adapters disabled; without --lora, the model before training)
  --qlora                QLoRA: quantize the base's Linear layers (not the output head) to NF4, frozen (block 64,
                         double quantization, as bitsandbytes' load_in_4bit), and train a LoRA adapter on them
                         (implies --lora; the --lora-* options apply). Logs the NF4 bytes against float32
  --lora-r N             adapter rank (default 8)
  --lora-alpha X         the update is scaled by alpha / r (default 16)
  --lora-dropout P       dropout on the adapter's input (default 0.05)
  --target-modules M     all-linear (default: every Linear but the output head), names (q_proj,v_proj),
                         or a regular expression over the whole module name
  --rslora               rank-stabilized LoRA: scale by alpha / sqrt(r)`;

const COMMON_USAGE = `  --warmup-steps N       linear warm-up from 0 (default 0)
  --schedule S           learning rate after warm-up: linear (decay to 0, default), cosine or constant
  --weight-decay X       AdamW weight decay (default 0)
  --seed N               shuffle, adapter init and sampling (default 0)
  --log-every N          steps between log lines (default 10)
  --checkpoint-every N   steps between checkpoints (default: at the end)
  --device D             backend (default: the fastest registered)
  --resume               continue the checkpoint in --out
  --skip-bad-lines       skip (and count) lines that are not JSON or lack the fields, instead of stopping at the first
                         (an error names the file and line)`;

const LORA_OPTIONS = { lora: 'boolean', qlora: 'boolean', 'lora-r': 'string', 'lora-alpha': 'string', 'lora-dropout': 'string', 'target-modules': 'string', rslora: 'boolean' } as const;
const COMMON_OPTIONS = {
  model: 'string', data: 'string', out: 'string', 'max-steps': 'string', epochs: 'string', lr: 'string', 'warmup-steps': 'string', schedule: 'string', 'weight-decay': 'string',
  seed: 'string', 'log-every': 'string', 'checkpoint-every': 'string', device: 'string', resume: 'boolean', 'skip-bad-lines': 'boolean', smoke: 'boolean', help: 'boolean',
} as const;

/** The LoRA switches (each needs --lora or --qlora), checked before anything loads. */
function loraOption(values: ParsedArgs['values'], command: string): SftLoraOptions | false {
  const useLora = values['lora'] === true || values['qlora'] === true;
  for (const k of ['lora-r', 'lora-alpha', 'lora-dropout', 'target-modules', 'rslora'] as const) {
    if (values[k] !== undefined && !useLora) throw new Error(`${command}: --${k} needs --lora or --qlora`);
  }
  if (!useLora) return false;
  return {
    r: intOption(values, 'lora-r', 1) ?? 8, alpha: numberOption(values, 'lora-alpha', positiveNumber) ?? 16,
    dropout: numberOption(values, 'lora-dropout', probability) ?? 0.05,
    targetModules: parseTargetModules(stringOption(values, 'target-modules') ?? 'all-linear'), useRslora: values['rslora'] === true,
  };
}

/** The training options both commands share, checked before anything loads. */
function commonOptions(values: ParsedArgs['values']) {
  const schedule = stringOption(values, 'schedule');
  if (schedule !== undefined && !isScheduleKind(schedule)) throw new Error(`--schedule must be linear, cosine or constant, got '${schedule}'`);
  return {
    schedule,
    maxSteps: intOption(values, 'max-steps', 1), epochs: intOption(values, 'epochs', 1), lr: numberOption(values, 'lr', positiveNumber),
    warmupSteps: intOption(values, 'warmup-steps', 0), weightDecay: numberOption(values, 'weight-decay', nonNegative),
    seed: intOption(values, 'seed', 0) ?? 0, logEvery: intOption(values, 'log-every', 1), checkpointEvery: intOption(values, 'checkpoint-every', 1),
    device: stringOption(values, 'device'), resume: values['resume'] === true, skipBadLines: values['skip-bad-lines'] === true, smoke: values['smoke'] === true,
  };
}

/** results.json's record of a QLoRA run's NF4 layers and bytes (nothing without --qlora). */
function nf4Summary(q: QloraReport | null | undefined): { nf4?: { layers: number; nf4Bytes: number; float32Bytes: number; modelBytesBefore: number; modelBytesAfter: number } } {
  return q ? { nf4: { layers: q.layers.length, nf4Bytes: q.nf4Bytes, float32Bytes: q.float32Bytes, modelBytesBefore: q.modelBytesBefore, modelBytesAfter: q.modelBytesAfter } } : {};
}

/** A note on stderr of the lines --skip-bad-lines skipped (the first three, with their reasons). */
function logSkipped(log: (l: string) => void, command: string, skipped: readonly { line: number; reason: string }[]): void {
  if (skipped.length) log(`${command}: skipped ${skipped.length} bad line(s): ${skipped.slice(0, 3).map((s) => `line ${s.line}: ${s.reason}`).join('; ')}${skipped.length > 3 ? '; ...' : ''}`);
}

/** The tokenizer, causal LM and preference pairs that dpo and reward both start from; errors and logs name the command. */
async function loadPreferenceRun(command: string, modelDir: string, dataFile: string, maxLength: number | undefined, c: ReturnType<typeof commonOptions>, log: (l: string) => void) {
  const tokenizer = await AutoTokenizer.fromPretrained(modelDir);
  const model = await AutoModelForCausalLM.fromPretrained(modelDir, c.device !== undefined ? { device: c.device } : {});
  const limit = model.positionLimit();
  if (maxLength !== undefined && limit !== null && maxLength > limit.value) throw new Error(`${command}: --max-length ${maxLength} is more than the model's ${limit.key} = ${limit.value}`);
  let length = maxLength ?? Math.min(1024, limit?.value ?? 1024);
  if (c.smoke) length = Math.min(length, 128);
  const data = await loadPreferencePairs(dataFile, tokenizer, { skipBadLines: c.skipBadLines, maxLength: length, ...(c.smoke ? { limit: 16 } : {}) });
  logSkipped(log, command, data.skipped);
  if (data.stats.truncated) log(`${command}: ${data.stats.truncated} side(s) cut to ${length} tokens`);
  if (data.stats.dropped) log(`${command}: ${data.stats.dropped} pair(s) left out: a side has no completion token`);
  return { tokenizer, model, length, data };
}

/** Only the options that were given (exactOptionalPropertyTypes: no undefined values). */
function given<T extends Record<string, unknown>>(o: T): { [K in keyof T]?: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as { [K in keyof T]?: Exclude<T[K], undefined> };
}

/**
 * Preference pairs from a JSONL file, tokenized line by line so that every error names the file and line (with
 * skipBadLines such lines are counted instead).
 */
export async function loadPreferencePairs(file: string, tokenizer: Tokenizer, opts: { skipBadLines: boolean; maxLength: number; limit?: number }): Promise<{ pairs: PreferencePair[]; stats: SftTokenizeStats; skipped: { line: number; reason: string }[] }> {
  const text = await loadText(file);
  const { records, skipped } = parsePreferenceJsonl(text, file, { skipBadLines: opts.skipBadLines });
  const bad = new Set(skipped.map((s) => s.line));
  const lines = text.split('\n').flatMap((l, i) => (l.trim() === '' || bad.has(i + 1) ? [] : [i + 1]));
  const stats: SftTokenizeStats = { truncated: 0, dropped: 0, promptMismatch: 0 };
  const pairs: PreferencePair[] = [];
  const take = opts.limit === undefined ? records : records.slice(0, opts.limit);
  take.forEach((record, i) => {
    let out: ReturnType<typeof tokenizePreference>;
    try {
      out = tokenizePreference(tokenizer, [record], { maxLength: opts.maxLength });
    } catch (e) {
      const reason = (e instanceof Error ? e.message : String(e)).replace(/^tokenizePreference: pair 0 /, '');
      if (!opts.skipBadLines) throw new Error(`${file}:${lines[i]}: ${reason}`);
      skipped.push({ line: lines[i]!, reason });
      return;
    }
    stats.truncated += out.stats.truncated;
    stats.dropped += out.stats.dropped;
    pairs.push(...out.pairs);
  });
  if (pairs.length === 0) throw new Error(`${file}: no pair to train on${skipped.length ? ` (${skipped.length} bad lines; the first: line ${skipped[0]!.line}: ${skipped[0]!.reason})` : ''}${stats.dropped ? ` (${stats.dropped} without completion tokens)` : ''}`);
  return { pairs, stats, skipped: skipped.sort((a, b) => a.line - b.line) };
}

const DPO_USAGE = `attend dpo --model DIR --data FILE.jsonl --out DIR [options]

Direct Preference Optimization (TRL's DPOTrainer, sigmoid loss) of a causal LM on preference pairs, one a line:
  {"prompt": "...", "chosen": "...", "rejected": "..."}          (strings, or lists of messages)
The reference log-probabilities are computed once before training. Writes checkpoints, metrics.jsonl (loss, lr,
rewards/chosen, rewards/rejected, rewards/margins, rewards/accuracies, logps/chosen, logps/rejected: averages over
each --log-every interval), rewards.svg, loss.svg and results.json to --out, and at the end the model (or, with
--lora / --qlora, a PEFT adapter) with the tokenizer.

  --model DIR            Hugging Face folder: config.json, model.safetensors, tokenizer.json   (required)
  --data FILE            the JSONL preference pairs   (required)
  --out DIR              output folder   (required)
  --beta X               strength of the implicit KL penalty to the reference (default 0.1)
  --label-smoothing X    conservative DPO: assumed probability of a flipped label, in [0, 0.5] (default 0)
${LORA_USAGE}
  --max-length N         tokens per sequence; longer ones are cut (default 1024, at most the model's context)
  --epochs N             passes over the pairs (default 3)
  --max-steps N          stop after N updates (default: the epochs' worth)
  --lr X                 peak learning rate (default 1e-6; 5e-6 with --lora)
  --batch-size N         pairs per batch (default 8)
  --grad-accum N         batches per update (default 1)
${COMMON_USAGE}
  --smoke                a tiny run in seconds: the first 16 pairs, 2 steps, batch <= 4, max length <= 128`;

/** Every option of `attend dpo` (the usage lists each). */
export const DPO_OPTIONS: Record<string, 'string' | 'boolean'> = { ...COMMON_OPTIONS, ...LORA_OPTIONS, beta: 'string', 'label-smoothing': 'string', 'max-length': 'string', 'batch-size': 'string', 'grad-accum': 'string' };

export const dpoCommand: CliCommand = {
  summary: 'align a causal LM to preference pairs (prompt, chosen, rejected) with DPO (full or LoRA)',
  usage: DPO_USAGE,
  async run(args, out: Out = stdout) {
    const { values } = parseOptions(args, DPO_OPTIONS, 'dpo', false);
    if (values['help']) return out(`${this.usage}\n`);
    const c = commonOptions(values);
    const lora = loraOption(values, 'dpo');
    const qlora = values['qlora'] === true;
    const beta = numberOption(values, 'beta', positiveNumber) ?? 0.1, labelSmoothing = numberOption(values, 'label-smoothing', upToHalf) ?? 0;
    const maxLength = intOption(values, 'max-length', 1);
    let batchSize = intOption(values, 'batch-size', 1) ?? 8;
    const gradAccum = intOption(values, 'grad-accum', 1);
    const modelDir = required(values, 'model', this.usage, 'dpo'), dataFile = required(values, 'data', this.usage, 'dpo'), outDir = required(values, 'out', this.usage, 'dpo');
    if (c.smoke) batchSize = Math.min(batchSize, 4);
    const log = (l: string): void => stderr(`${l}\n`);
    const started = Date.now();
    const lock = await lockDir(outDir, { log });
    try {
      const { tokenizer, model, length, data } = await loadPreferenceRun('dpo', modelDir, dataFile, maxLength, c, log);
      const result = await dpoTrain(model, tokenizer, data.pairs, {
        beta, labelSmoothing, lora, qlora, maxLength: length, batchSize, seed: c.seed, outDir, baseDir: modelDir, log, resume: c.resume,
        ...(c.smoke ? { maxSteps: Math.min(c.maxSteps ?? 2, 2) } : given({ maxSteps: c.maxSteps })),
        ...given({ epochs: c.epochs, lr: c.lr, schedule: c.schedule, warmupSteps: c.warmupSteps, weightDecay: c.weightDecay, logEvery: c.logEvery, checkpointEvery: c.checkpointEvery, gradAccumSteps: gradAccum }),
      });
      const last = result.stats.at(-1) ?? {};
      const results = {
        command: 'dpo', model: modelDir, data: dataFile, smoke: c.smoke,
        options: { beta, labelSmoothing, lora, qlora, maxLength: length, batchSize, epochs: c.epochs ?? null, maxSteps: c.maxSteps ?? null, lr: c.lr ?? null, seed: c.seed },
        pairs: result.pairs, skippedLines: data.skipped.length, steps: result.train.step, ...nf4Summary(result.qlora),
        firstLoss: result.train.losses[0]?.loss ?? null, finalLoss: result.train.losses.at(-1)?.loss ?? null, final: last, saved: result.saved,
        wallSeconds: Math.round((Date.now() - started) / 1000),
      };
      const path = await saveResults(outDir, results);
      out(`${JSON.stringify(results, null, 2)}\nsaved ${path}\n`);
    } finally {
      await lock.release();
    }
  },
};

const GRPO_USAGE = `attend grpo --model DIR --data prompts.jsonl --reward NAME --out DIR [options]

Group Relative Policy Optimization (TRL's GRPOTrainer, DeepSeekMath): for each prompt, k completions are sampled,
scored by a built-in reward, and trained on with advantages relative to their group ((r - mean) / (std + 1e-4)), a
clipped surrogate and a per-token KL penalty (k3) to the reference. One prompt record a line:
  {"prompt": "...", "answer": "..."}          (prompt: a string, or a list of messages for the chat template)
Writes checkpoints, metrics.jsonl (loss, lr, reward, reward_std, kl, clip_ratio, entropy, completion_length,
reward_group_std, frac_reward_zero_std, prompts_sampled: averages over each --log-every interval), reward.svg, kl.svg, loss.svg and
results.json to --out, and at the end the model (or, with --lora / --qlora, a PEFT adapter) with the tokenizer.

Rewards (--reward):
${Object.entries(BUILTIN_REWARDS).map(([k, r]) => `  ${k.padEnd(22)} ${r.description}`).join('\n')}

  --model DIR            Hugging Face folder: config.json, model.safetensors, tokenizer.json   (required)
  --data FILE            the JSONL prompts   (required)
  --reward NAME          a built-in reward (above)   (required)
  --out DIR              output folder   (required)
  --num-generations K    completions per prompt, at least 2 (default 8)
  --prompts-per-step N   prompts per update (default 4)
  --max-new-tokens N     longest completion (default 64)
  --max-prompt-length N  prompts keep their last N tokens (default: no limit)
  --temperature X        sampling temperature (default 1)
  --top-p X              nucleus sampling (default 1: off)
  --top-k N              top-k sampling (default 0: off)
  --beta X               weight of the KL penalty to the reference (default 0.04)
  --epsilon X            clip the ratio to [1 - epsilon, 1 + epsilon-high] (default 0.2)
  --epsilon-high X       upper clip (default: --epsilon)
  --num-iterations N     updates per batch of completions (default 1)
  --loss-type T          grpo (per-completion token mean, default) or dapo (mean over all tokens)
  --no-scale-rewards     advantages r - mean, not divided by the group's std
  --dynamic-sampling     replace groups whose completions all score the same (zero advantages) by other prompts'
                         groups, up to 4 x --prompts-per-step prompts a step (DAPO; default off)
${LORA_USAGE}
  --epochs N             passes over the prompts (default 1)
  --max-steps N          stop after N updates (default: the epochs' worth)
  --lr X                 peak learning rate (default 1e-6; 1e-5 with --lora)
${COMMON_USAGE}
  --smoke                a tiny run in seconds: the first 16 prompts, k = 2, 2 prompts a step, 8 new tokens, 2 steps`;

/** Every option of `attend grpo` (the usage lists each). */
export const GRPO_OPTIONS: Record<string, 'string' | 'boolean'> = {
  ...COMMON_OPTIONS, ...LORA_OPTIONS, reward: 'string', 'num-generations': 'string', 'prompts-per-step': 'string', 'max-new-tokens': 'string',
  'max-prompt-length': 'string', temperature: 'string', 'top-p': 'string', 'top-k': 'string', beta: 'string', epsilon: 'string', 'epsilon-high': 'string',
  'num-iterations': 'string', 'loss-type': 'string', 'no-scale-rewards': 'boolean', 'dynamic-sampling': 'boolean',
};

export const grpoCommand: CliCommand = {
  summary: 'reinforce a causal LM with GRPO against a built-in programmatic reward (full or LoRA)',
  usage: GRPO_USAGE,
  async run(args, out: Out = stdout) {
    const { values } = parseOptions(args, GRPO_OPTIONS, 'grpo', false);
    if (values['help']) return out(`${this.usage}\n`);
    const c = commonOptions(values);
    const lora = loraOption(values, 'grpo');
    const qlora = values['qlora'] === true;
    const rewardName = required(values, 'reward', this.usage, 'grpo');
    const reward = rewardFunction(rewardName);
    let k = intOption(values, 'num-generations', 0) ?? 8;
    if (k < 2) throw new Error(`grpo: --num-generations must be at least 2 (advantages divide by the group's standard deviation, which needs two samples), got ${k}`);
    let perStep = intOption(values, 'prompts-per-step', 1) ?? 4, maxNew = intOption(values, 'max-new-tokens', 1) ?? 64;
    const maxPrompt = intOption(values, 'max-prompt-length', 1), temperature = numberOption(values, 'temperature', positiveNumber);
    const p = numberOption(values, 'top-p', topP), topK = intOption(values, 'top-k', 0);
    const beta = numberOption(values, 'beta', nonNegative) ?? 0.04, epsilon = numberOption(values, 'epsilon', unitOpen) ?? 0.2;
    const epsilonHigh = numberOption(values, 'epsilon-high', positiveNumber), iterations = intOption(values, 'num-iterations', 1) ?? 1;
    const lossType = stringOption(values, 'loss-type') ?? 'grpo';
    if (lossType !== 'grpo' && lossType !== 'dapo') throw new Error(`--loss-type must be grpo or dapo, got '${lossType}'`);
    const modelDir = required(values, 'model', this.usage, 'grpo'), dataFile = required(values, 'data', this.usage, 'grpo'), outDir = required(values, 'out', this.usage, 'grpo');
    if (c.smoke) {
      k = 2;
      perStep = Math.min(perStep, 2);
      maxNew = Math.min(maxNew, 8);
    }
    const log = (l: string): void => stderr(`${l}\n`);
    const started = Date.now();
    const lock = await lockDir(outDir, { log });
    try {
      const data = await loadPromptJsonl(dataFile, { skipBadLines: c.skipBadLines, required: ['answer'] });
      logSkipped(log, 'grpo', data.skipped);
      const records = c.smoke ? data.records.slice(0, 16) : data.records;
      const tokenizer = await AutoTokenizer.fromPretrained(modelDir);
      const model = await AutoModelForCausalLM.fromPretrained(modelDir, c.device !== undefined ? { device: c.device } : {});
      const result = await grpoTrain(model, tokenizer, records, reward, {
        numGenerations: k, promptsPerStep: perStep, maxNewTokens: maxNew, beta, epsilon, numIterations: iterations, lossType,
        scaleRewards: values['no-scale-rewards'] !== true, dynamicSampling: values['dynamic-sampling'] === true, lora, qlora, seed: c.seed, outDir, baseDir: modelDir, log, resume: c.resume,
        ...(c.smoke ? { maxSteps: Math.min(c.maxSteps ?? 2, 2) } : given({ maxSteps: c.maxSteps })),
        ...given({ maxPromptLength: maxPrompt, temperature, topP: p, topK, epsilonHigh, epochs: c.epochs, lr: c.lr, schedule: c.schedule, warmupSteps: c.warmupSteps, weightDecay: c.weightDecay, logEvery: c.logEvery, checkpointEvery: c.checkpointEvery }),
      });
      const rewards = result.stats.map((s) => s['reward'] ?? NaN);
      const results = {
        command: 'grpo', model: modelDir, data: dataFile, reward: rewardName, smoke: c.smoke,
        options: { numGenerations: k, promptsPerStep: perStep, maxNewTokens: maxNew, beta, epsilon, numIterations: iterations, lossType, dynamicSampling: values['dynamic-sampling'] === true, lora, qlora, epochs: c.epochs ?? null, maxSteps: c.maxSteps ?? null, lr: c.lr ?? null, seed: c.seed },
        prompts: records.length, skippedLines: data.skipped.length, steps: result.train.step, ...nf4Summary(result.qlora),
        firstReward: rewards[0] ?? null, finalReward: rewards.at(-1) ?? null, final: result.stats.at(-1) ?? {}, saved: result.saved,
        wallSeconds: Math.round((Date.now() - started) / 1000),
      };
      const path = await saveResults(outDir, results);
      out(`${JSON.stringify(results, null, 2)}\nsaved ${path}\n`);
    } finally {
      await lock.release();
    }
  },
};

const REWARD_USAGE = `attend reward --model DIR --data FILE.jsonl --out DIR [options]

Trains a reward model (TRL's RewardTrainer, InstructGPT's): a causal LM's trunk with a scalar head read at the last
non-padding token, on preference pairs with the Bradley-Terry loss -log sigmoid(r_chosen - r_rejected); every weight
trains. One pair a line:
  {"prompt": "...", "chosen": "...", "rejected": "..."}          (strings, or lists of messages)
Writes checkpoints, metrics.jsonl (loss, lr, accuracy, margin, rewards/chosen, rewards/rejected: averages over each
--log-every interval), loss.svg, reward-accuracy.svg and results.json to --out, and at the end the reward model as a
Hugging Face folder: XxxForSequenceClassification with num_labels 1 (model.* or transformer.* and score.weight, as
transformers names them) with the tokenizer, for attend ppo --reward-model.

  --model DIR            Hugging Face folder of a causal LM (LLaMA or GPT-2 family)   (required)
  --data FILE            the JSONL preference pairs   (required)
  --out DIR              output folder   (required)
  --max-length N         tokens per sequence; longer ones are cut (default 1024, at most the model's context)
  --epochs N             passes over the pairs (default 1)
  --max-steps N          stop after N updates (default: the epochs' worth)
  --lr X                 peak learning rate (default 1e-5)
  --batch-size N         pairs per batch (default 8)
${COMMON_USAGE}
  --smoke                a tiny run in seconds: the first 16 pairs, 2 steps, batch <= 4, max length <= 128`;

/** Every option of `attend reward` (the usage lists each). */
export const REWARD_OPTIONS: Record<string, 'string' | 'boolean'> = { ...COMMON_OPTIONS, 'max-length': 'string', 'batch-size': 'string' };

export const rewardCommand: CliCommand = {
  summary: 'train a reward model (scalar head, Bradley-Terry loss) on preference pairs, saved as a Hugging Face folder',
  usage: REWARD_USAGE,
  async run(args, out: Out = stdout) {
    const { values } = parseOptions(args, REWARD_OPTIONS, 'reward', false);
    if (values['help']) return out(`${this.usage}\n`);
    const c = commonOptions(values);
    const maxLength = intOption(values, 'max-length', 1);
    let batchSize = intOption(values, 'batch-size', 1) ?? 8;
    const modelDir = required(values, 'model', this.usage, 'reward'), dataFile = required(values, 'data', this.usage, 'reward'), outDir = required(values, 'out', this.usage, 'reward');
    if (c.smoke) batchSize = Math.min(batchSize, 4);
    const log = (l: string): void => stderr(`${l}\n`);
    const started = Date.now();
    const lock = await lockDir(outDir, { log });
    try {
      const { tokenizer, model: base, length, data } = await loadPreferenceRun('reward', modelDir, dataFile, maxLength, c, log);
      manualSeed(c.seed); // the head's initialization (a resumed run restores the trained head over it)
      const rm = new RewardModel(base);
      const result = await trainRewardModel(rm, tokenizer, data.pairs, {
        maxLength: length, batchSize, seed: c.seed, outDir, log, resume: c.resume,
        ...(c.smoke ? { maxSteps: Math.min(c.maxSteps ?? 2, 2) } : given({ maxSteps: c.maxSteps })),
        ...given({ epochs: c.epochs, lr: c.lr, schedule: c.schedule, warmupSteps: c.warmupSteps, weightDecay: c.weightDecay, logEvery: c.logEvery, checkpointEvery: c.checkpointEvery }),
      });
      const saved = await saveRewardModel(rm, tokenizer, outDir, { baseDir: modelDir });
      const results = {
        command: 'reward', model: modelDir, data: dataFile, smoke: c.smoke,
        options: { maxLength: length, batchSize, epochs: c.epochs ?? null, maxSteps: c.maxSteps ?? null, lr: c.lr ?? null, seed: c.seed },
        pairs: result.pairs, skippedLines: data.skipped.length, steps: result.train.step,
        firstLoss: result.train.losses[0]?.loss ?? null, finalLoss: result.train.losses.at(-1)?.loss ?? null, final: result.stats.at(-1) ?? {}, saved,
        wallSeconds: Math.round((Date.now() - started) / 1000),
      };
      const path = await saveResults(outDir, results);
      out(`${JSON.stringify(results, null, 2)}\nsaved ${path}\n`);
    } finally {
      await lock.release();
    }
  },
};

const PPO_USAGE = `attend ppo --model DIR --reward-model DIR --data prompts.jsonl --out DIR [options]

RLHF with PPO as InstructGPT and TRL's PPOTrainer: each rollout samples one completion per prompt, scores it with the
reward model at its last token, adds a per-token KL penalty to the reference (the model before training, or with
--lora / --qlora the model with its adapters disabled), computes GAE advantages (whitened) and returns with a value
head, and makes --ppo-epochs updates of the clipped policy loss + vf-coef x the clipped value loss. One prompt a line:
  {"prompt": "..."}          (a string, or a list of messages for the chat template; other fields are ignored)
The reward model (attend reward --out) must share the policy's tokenizer: it scores the policy's token ids.
Writes checkpoints, metrics.jsonl (loss, lr, score, score_std, kl, non_score_reward, policy_loss, value_loss,
pg_clipfrac, vf_clipfrac, approxkl, entropy, response_length: averages over each --log-every interval), reward.svg,
kl.svg, loss.svg and results.json to --out, and at the end the policy (or, with --lora / --qlora, a PEFT adapter)
with the tokenizer.

  --model DIR            Hugging Face folder of the policy, a causal LM   (required)
  --reward-model DIR     the reward model's folder (XxxForSequenceClassification, num_labels 1)   (required)
  --data FILE            the JSONL prompts   (required)
  --out DIR              output folder   (required)
  --prompts-per-step N   prompts per rollout, one completion each (default 8)
  --max-new-tokens N     longest completion (default 64)
  --max-prompt-length N  prompts keep their last N tokens (default: no limit)
  --temperature X        sampling temperature (default 1)
  --top-p X              nucleus sampling (default 1: off)
  --top-k N              top-k sampling (default 0: off)
  --ppo-epochs N         updates on each rollout (default 4)
  --gamma X              discount (default 1)
  --lambda X             GAE lambda (default 0.95)
  --cliprange X          clip the policy ratio to [1 - X, 1 + X] (default 0.2)
  --cliprange-value X    clip the value change to [-X, X] (default 0.2)
  --vf-coef X            weight of the value loss (default 0.1)
  --kl-coef X            weight of the per-token KL penalty in the reward (default 0.05)
  --no-whiten-advantages use the raw GAE advantages (default: whitened over the rollout)
${LORA_USAGE}
  --epochs N             passes over the prompts (default 1)
  --max-steps N          stop after N updates (default: the epochs' worth)
  --lr X                 peak learning rate (default 3e-6; 1e-5 with --lora)
${COMMON_USAGE}
  --smoke                a tiny run in seconds: the first 16 prompts, 2 prompts a step, 8 new tokens, 2 steps`;

/** Every option of `attend ppo` (the usage lists each). */
export const PPO_OPTIONS: Record<string, 'string' | 'boolean'> = {
  ...COMMON_OPTIONS, ...LORA_OPTIONS, 'reward-model': 'string', 'prompts-per-step': 'string', 'max-new-tokens': 'string', 'max-prompt-length': 'string',
  temperature: 'string', 'top-p': 'string', 'top-k': 'string', 'ppo-epochs': 'string', gamma: 'string', lambda: 'string', cliprange: 'string',
  'cliprange-value': 'string', 'vf-coef': 'string', 'kl-coef': 'string', 'no-whiten-advantages': 'boolean',
};

const unitClosed = { want: 'in [0, 1]', integer: false, ok: (v: number) => v >= 0 && v <= 1 };

export const ppoCommand: CliCommand = {
  summary: 'RLHF: reinforce a causal LM with PPO against a reward model from attend reward (full or LoRA)',
  usage: PPO_USAGE,
  async run(args, out: Out = stdout) {
    const { values } = parseOptions(args, PPO_OPTIONS, 'ppo', false);
    if (values['help']) return out(`${this.usage}\n`);
    const c = commonOptions(values);
    const lora = loraOption(values, 'ppo');
    const qlora = values['qlora'] === true;
    let perStep = intOption(values, 'prompts-per-step', 1) ?? 8, maxNew = intOption(values, 'max-new-tokens', 1) ?? 64;
    const maxPrompt = intOption(values, 'max-prompt-length', 1), temperature = numberOption(values, 'temperature', positiveNumber);
    const p = numberOption(values, 'top-p', topP), topK = intOption(values, 'top-k', 0);
    const ppoEpochs = intOption(values, 'ppo-epochs', 1) ?? 4;
    const gamma = numberOption(values, 'gamma', unitClosed) ?? 1, lambda = numberOption(values, 'lambda', unitClosed) ?? 0.95;
    const cliprange = numberOption(values, 'cliprange', unitOpen) ?? 0.2, cliprangeValue = numberOption(values, 'cliprange-value', positiveNumber) ?? 0.2;
    const vfCoef = numberOption(values, 'vf-coef', nonNegative) ?? 0.1, klCoef = numberOption(values, 'kl-coef', nonNegative) ?? 0.05;
    const modelDir = required(values, 'model', this.usage, 'ppo'), rewardDir = required(values, 'reward-model', this.usage, 'ppo');
    const dataFile = required(values, 'data', this.usage, 'ppo'), outDir = required(values, 'out', this.usage, 'ppo');
    if (c.smoke) {
      perStep = Math.min(perStep, 2);
      maxNew = Math.min(maxNew, 8);
    }
    const log = (l: string): void => stderr(`${l}\n`);
    const started = Date.now();
    const lock = await lockDir(outDir, { log });
    try {
      const data = await loadPromptJsonl(dataFile, { skipBadLines: c.skipBadLines });
      logSkipped(log, 'ppo', data.skipped);
      const records = c.smoke ? data.records.slice(0, 16) : data.records;
      const device = c.device !== undefined ? { device: c.device } : {};
      const tokenizer = await AutoTokenizer.fromPretrained(modelDir);
      const policy = await AutoModelForCausalLM.fromPretrained(modelDir, device);
      const rm = await loadRewardModel(rewardDir, device);
      const vocab = (m: { config: object }): unknown => (m.config as Record<string, unknown>)['vocab_size'];
      if (vocab(rm.base) !== vocab(policy)) {
        throw new Error(`ppo: the reward model (${rewardDir}) has vocab_size ${String(vocab(rm.base))}, the policy (${modelDir}) ${String(vocab(policy))}: the reward model scores the policy's token ids, so both need the same tokenizer`);
      }
      const result = await ppoTrain(policy, rm, tokenizer, records, {
        promptsPerStep: perStep, maxNewTokens: maxNew, ppoEpochs, gamma, lambda, cliprange, cliprangeValue, vfCoef, klCoef,
        whitenAdvantages: values['no-whiten-advantages'] !== true, lora, qlora, seed: c.seed, outDir, baseDir: modelDir, log, resume: c.resume,
        ...(c.smoke ? { maxSteps: Math.min(c.maxSteps ?? 2, 2) } : given({ maxSteps: c.maxSteps })),
        ...given({ maxPromptLength: maxPrompt, temperature, topP: p, topK, epochs: c.epochs, lr: c.lr, schedule: c.schedule, warmupSteps: c.warmupSteps, weightDecay: c.weightDecay, logEvery: c.logEvery, checkpointEvery: c.checkpointEvery }),
      });
      const scores = result.stats.map((s) => s['score'] ?? NaN);
      const results = {
        command: 'ppo', model: modelDir, rewardModel: rewardDir, data: dataFile, smoke: c.smoke,
        options: { promptsPerStep: perStep, maxNewTokens: maxNew, ppoEpochs, gamma, lambda, cliprange, cliprangeValue, vfCoef, klCoef, lora, qlora, epochs: c.epochs ?? null, maxSteps: c.maxSteps ?? null, lr: c.lr ?? null, seed: c.seed },
        prompts: records.length, skippedLines: data.skipped.length, steps: result.train.step, ...nf4Summary(result.qlora),
        firstScore: scores[0] ?? null, finalScore: scores.at(-1) ?? null, final: result.stats.at(-1) ?? {}, saved: result.saved,
        wallSeconds: Math.round((Date.now() - started) / 1000),
      };
      const path = await saveResults(outDir, results);
      out(`${JSON.stringify(results, null, 2)}\nsaved ${path}\n`);
    } finally {
      await lock.release();
    }
  },
};
