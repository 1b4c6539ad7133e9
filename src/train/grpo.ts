// Group Relative Policy Optimization (Shao et al. 2024, DeepSeekMath, arXiv:2402.03300) as TRL's GRPOTrainer: k
// sampled completions per prompt, advantages relative to the group, a clipped surrogate with a per-token KL penalty to
// the reference, and a programmatic reward. No value model.
//
// Reference: trl/trainer/grpo_trainer.py (_compute_loss, _generate_and_score_completions) and grpo_config.py.

import { add, cast, clamp, div, exp, gt, logicalAnd, logicalOr, lt, minimum, mul, neg, sub } from '../autograd/ops/elementwise.js';
import { detach, reshape } from '../autograd/ops/movement.js';
import { mean, sum } from '../autograd/ops/reduce.js';
import { noGrad } from '../autograd/engine.js';
import type { BatchSource } from '../data/loader.js';
import { DataLoader } from '../data/loader.js';
import { loadText } from '../data/files.js';
import type { PreTrainedModel } from '../models/base.js';
import type { QloraReport } from '../models/lora.js';
import { tensor } from '../tensor/create.js';
import { Generator } from '../tensor/random.js';
import { tidy } from '../tensor/scope.js';
import { fmtShape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { checkMessages, type ChatMessage } from '../tokenizers/chat-template.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { addTrainableAdapter, atTemperature, checkTemperature, klK3, meanStd, modelDevice, referenceForward, rolloutTokens, rolloutTrainerSettings, sampleCompletions, tokenEntropy, tokenLogps, type RolloutRunOptions, type StepRecord } from './policy.js';
import { saveSftModel } from './sft.js';
import { Trainer, type LossOutput, type TrainResult } from './trainer.js';

// ---- data and rewards ----

/** A prompt to sample completions for (a string, or chat messages rendered with the chat template), with any other fields the reward reads. */
export interface PromptRecord {
  prompt: string | ChatMessage[];
  [field: string]: unknown;
}

/** A reward of one completion (its text, special tokens left out) of a prompt record; must be a finite number. */
export type RewardFunction = (completion: string, record: PromptRecord) => number | Promise<number>;

const normalize = (s: string): string => s.trim().replace(/\s+/g, ' ').toLowerCase();

function answerOf(record: PromptRecord, reward: string): string {
  const a = record['answer'];
  if (typeof a !== 'string' && typeof a !== 'number') throw new Error(`reward '${reward}' needs an "answer" field (a string or number) in every prompt record, got ${JSON.stringify(a)}`);
  return String(a);
}

/** The programmatic rewards `attend grpo --reward NAME` offers. Each compares the completion with the record's "answer". */
export const BUILTIN_REWARDS: Record<string, { description: string; fn: RewardFunction }> = {
  'exact-answer': {
    description: '1 when the completion, trimmed (case and runs of spaces ignored), equals "answer"; else 0',
    fn: (c, r) => (normalize(c) === normalize(answerOf(r, 'exact-answer')) ? 1 : 0),
  },
  'contains-answer': {
    description: '1 when "answer" appears in the completion as a whole word; else 0',
    fn: (c, r) => {
      const a = normalize(answerOf(r, 'contains-answer'));
      return ` ${normalize(c).replace(/[^\p{L}\p{N}.-]+/gu, ' ')} `.includes(` ${a} `) ? 1 : 0;
    },
  },
  'numeric-answer': {
    description: '1 when the first number in the completion equals "answer" (within 1e-6); else 0',
    fn: (c, r) => {
      const want = Number(answerOf(r, 'numeric-answer'));
      const m = /-?\d+(?:\.\d+)?/.exec(c);
      return m !== null && Math.abs(Number(m[0]) - want) <= 1e-6 ? 1 : 0;
    },
  },
};

/** A built-in reward by name; an unknown name is an error that lists the names. */
export function rewardFunction(name: string): RewardFunction {
  const r = Object.hasOwn(BUILTIN_REWARDS, name) ? BUILTIN_REWARDS[name] : undefined;
  if (!r) throw new Error(`unknown reward '${name}' (built-in rewards: ${Object.keys(BUILTIN_REWARDS).join(', ')})`);
  return r.fn;
}

/** One JSONL line as a prompt record: an object with "prompt" (a string or a list of messages). */
export function parsePromptRecord(value: unknown, where: string): PromptRecord {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error(`${where}: expected a JSON object with "prompt"`);
  const v = value as Record<string, unknown>;
  if (!('prompt' in v)) throw new Error(`${where}: missing "prompt" (the line has keys ${Object.keys(v).map((k) => JSON.stringify(k)).join(', ') || 'none'})`);
  const p = v['prompt'];
  if (typeof p === 'string') {
    if (p === '') throw new Error(`${where}: "prompt" is empty`);
  } else if (Array.isArray(p) && p.length > 0) {
    checkMessages(p as ChatMessage[], `${where}: prompt`);
  } else {
    throw new Error(`${where}: "prompt" must be a string or a non-empty list of messages, got ${JSON.stringify(p)?.slice(0, 60)}`);
  }
  return v as PromptRecord;
}

/**
 * Reads a JSONL file of prompt records; errors name the file and line. `required` fields (e.g. "answer" for the
 * answer rewards) must be on every line.
 */
export async function loadPromptJsonl(path: string, opts: { required?: readonly string[]; skipBadLines?: boolean } = {}): Promise<{ records: PromptRecord[]; skipped: { line: number; reason: string }[] }> {
  const text = await loadText(path);
  const records: PromptRecord[] = [];
  const skipped: { line: number; reason: string }[] = [];
  text.split('\n').forEach((raw, i) => {
    if (raw.trim() === '') return;
    const where = `${path}:${i + 1}`;
    try {
      let value: unknown;
      try {
        value = JSON.parse(raw);
      } catch (e) {
        throw new Error(`${where}: not valid JSON (${e instanceof Error ? e.message : String(e)})`);
      }
      const r = parsePromptRecord(value, where);
      for (const f of opts.required ?? []) if (!(f in r)) throw new Error(`${where}: missing "${f}" (the reward needs it)`);
      records.push(r);
    } catch (e) {
      if (!opts.skipBadLines) throw e;
      skipped.push({ line: i + 1, reason: e instanceof Error ? e.message.slice(where.length + 2) : String(e) });
    }
  });
  if (records.length === 0) throw new Error(`${path}: no prompts${skipped.length ? ` (all ${skipped.length} lines were bad; the first: line ${skipped[0]!.line}: ${skipped[0]!.reason})` : ''}`);
  return { records, skipped };
}

/** A prompt's token ids: a string as the tokenizer encodes text (with its special tokens), messages through the chat template with the generation prompt. */
export function promptIds(tokenizer: Tokenizer, prompt: string | ChatMessage[]): number[] {
  return typeof prompt === 'string' ? tokenizer.encode(prompt).ids : tokenizer.applyChatTemplate(prompt, { addGenerationPrompt: true });
}

// ---- the math ----

/**
 * Group-relative advantages (TRL, DeepSeekMath): rewards come in consecutive groups of k (one group per prompt); each
 * advantage is (r − mean of its group), divided by (std of its group + eps) when scaleRewards. The std is the unbiased
 * one (torch.std), so k must be at least 2. A group of equal rewards gets zero advantages (no NaN).
 */
export function groupAdvantages(rewards: readonly number[], k: number, opts: { scaleRewards?: boolean; eps?: number } = {}): number[] {
  if (!Number.isSafeInteger(k) || k < 2) throw new Error(`groupAdvantages: the group size (numGenerations) must be an integer >= 2 (a group's standard deviation needs two samples), got ${String(k)}`);
  if (rewards.length === 0 || rewards.length % k !== 0) throw new Error(`groupAdvantages: ${rewards.length} rewards do not make whole groups of ${k}`);
  const bad = rewards.findIndex((r) => !Number.isFinite(r));
  if (bad >= 0) throw new Error(`groupAdvantages: reward ${bad} is ${rewards[bad]}`);
  const eps = opts.eps ?? 1e-4;
  const out: number[] = [];
  for (let g = 0; g < rewards.length; g += k) {
    const group = rewards.slice(g, g + k);
    const m = group.reduce((a, b) => a + b, 0) / k;
    const std = Math.sqrt(group.reduce((a, b) => a + (b - m) ** 2, 0) / (k - 1));
    for (const r of group) out.push((opts.scaleRewards ?? true) ? (r - m) / (std + eps) : r - m);
  }
  return out;
}

export interface GrpoLossInput {
  /** [N, L] per-token log-probabilities of the completions under the policy (with gradient). */
  logps: Tensor;
  /** [N, L] the same under the policy that sampled them (constants). */
  oldLogps: Tensor;
  /** [N, L] the same under the reference, or null when beta is 0. */
  refLogps: Tensor | null;
  /** [N] one advantage per completion. */
  advantages: Tensor;
  /** [N, L] float: 1 at completion tokens, 0 at prompt and padding. */
  mask: Tensor;
}

export interface GrpoLossOptions {
  /** ε: the ratio is clipped to [1 − ε, 1 + εhigh] (default 0.2, as TRL). */
  epsilon?: number;
  /** The upper clip (DAPO's clip-higher; default ε). */
  epsilonHigh?: number;
  /** β: the weight of the per-token KL to the reference (default 0.04, DeepSeekMath's). */
  beta?: number;
  /**
   * 'grpo' (default, DeepSeekMath): each completion's loss is its tokens' mean, then the mean over completions;
   * 'dapo': the mean over every completion token of the batch (long completions weigh more).
   */
  lossType?: 'grpo' | 'dapo';
}

export interface GrpoLossOutput {
  loss: Tensor;
  /** Mean k3 KL per completion token (0 without a reference). */
  kl: Tensor;
  /** Fraction of completion tokens whose ratio was clipped (TRL's clip_ratio/region_mean). */
  clipFraction: Tensor;
}

function checkGrpoLossOptions(opts: GrpoLossOptions, where: string): { epsLow: number; epsHigh: number; beta: number } {
  const epsLow = opts.epsilon ?? 0.2, epsHigh = opts.epsilonHigh ?? epsLow, beta = opts.beta ?? 0.04;
  if (!(epsLow > 0 && epsLow < 1)) throw new Error(`${where}: epsilon must be in (0, 1), got ${String(epsLow)}`);
  if (!(epsHigh > 0) || !Number.isFinite(epsHigh)) throw new Error(`${where}: epsilonHigh must be a positive number, got ${String(epsHigh)}`);
  if (!(beta >= 0) || !Number.isFinite(beta)) throw new Error(`${where}: beta must be a number >= 0, got ${String(beta)}`);
  if (opts.lossType !== undefined && opts.lossType !== 'grpo' && opts.lossType !== 'dapo') throw new Error(`${where}: lossType must be 'grpo' or 'dapo', got ${JSON.stringify(opts.lossType)}`);
  return { epsLow, epsHigh, beta };
}

/**
 * TRL's GRPO loss: with ratio = exp(logp − old), per token −min(ratio A, clip(ratio, 1 − ε, 1 + εhigh) A) + β k3-KL,
 * reduced by lossType. Returns the loss with the mean KL and the clip fraction (no gradient).
 */
export function grpoLoss(input: GrpoLossInput, opts: GrpoLossOptions = {}): GrpoLossOutput {
  const { epsLow, epsHigh, beta } = checkGrpoLossOptions(opts, 'grpoLoss');
  const { logps, oldLogps, refLogps, advantages, mask } = input;
  const shape = logps.shape;
  for (const [name, t] of [['oldLogps', oldLogps], ['mask', mask], ...(refLogps ? [['refLogps', refLogps]] : [])] as [string, Tensor][]) {
    if (t.ndim !== 2 || t.shape[0] !== shape[0] || t.shape[1] !== shape[1]) throw new Error(`grpoLoss: ${name} has shape ${fmtShape(t.shape)}, logps ${fmtShape(shape)}`);
  }
  if (logps.ndim !== 2 || advantages.ndim !== 1 || advantages.shape[0] !== shape[0]) throw new Error(`grpoLoss: logps must be [N, L] and advantages [N], got ${fmtShape(shape)} and ${fmtShape(advantages.shape)}`);
  if (beta > 0 && !refLogps) throw new Error('grpoLoss: beta > 0 needs refLogps');
  const A = reshape(advantages, [shape[0]!, 1]); // [N, 1]
  const ratio = exp(sub(logps, detach(oldLogps))); // [N, L]
  const clipped = clamp(ratio, 1 - epsLow, 1 + epsHigh);
  let perToken = neg(minimum(mul(ratio, A), mul(clipped, A))); // [N, L]
  let kl: Tensor | null = null;
  if (refLogps) {
    kl = klK3(logps, detach(refLogps));
    if (beta > 0) perToken = add(perToken, mul(kl, beta));
  }
  const m = cast(mask, logps.dtype);
  const masked = mul(perToken, m);
  const loss = (opts.lossType ?? 'grpo') === 'grpo'
    ? mean(div(sum(masked, 1), clamp(sum(m, 1), 1))) // per completion, then over completions
    : div(sum(masked), clamp(sum(m), 1));
  const tokens = clamp(sum(m), 1);
  const stats = noGrad(() => {
    const low = logicalAnd(lt(ratio, 1 - epsLow), lt(A, 0)), high = logicalAnd(gt(ratio, 1 + epsHigh), gt(A, 0));
    return {
      clipFraction: div(sum(mul(cast(logicalOr(low, high), m.dtype), m)), tokens),
      kl: kl ? div(sum(mul(detach(kl), m)), tokens) : mul(sum(m), 0),
    };
  });
  return { loss, ...stats };
}

// ---- training ----

/** GRPO's settings; `lr` defaults to 1e-6 (TRL's; 1e-5 with LoRA). */
export interface GrpoOptions extends RolloutRunOptions {
  /** k: completions sampled per prompt (default 8, as TRL); at least 2. */
  numGenerations?: number;
  /** Prompts per update (default 4): each step trains on promptsPerStep × k completions. */
  promptsPerStep?: number;
  /** Longest completion in tokens (default 64). */
  maxNewTokens?: number;
  /** Prompts longer than this keep their last tokens (default: no limit besides the model's positions). */
  maxPromptLength?: number;
  temperature?: number;
  topP?: number;
  topK?: number;
  /** Updates on each batch of completions (TRL's num_iterations μ, default 1); the ratio departs from 1 only with μ > 1. */
  numIterations?: number;
  /** Divide advantages by the group's std (default true). */
  scaleRewards?: boolean;
  beta?: number;
  epsilon?: number;
  epsilonHigh?: number;
  lossType?: 'grpo' | 'dapo';
  /**
   * DAPO's dynamic sampling (Yu et al. 2025, arXiv:2503.14476): a group whose rewards are all equal has zero
   * advantages and teaches nothing, so it is dropped and replaced by the group of another prompt drawn at random, until
   * the step has promptsPerStep groups with a spread or has tried 4 x promptsPerStep prompts (default false).
   */
  dynamicSampling?: boolean;
}

export interface GrpoResult {
  train: TrainResult;
  /** One record per step this call ran: reward, reward_std, kl, clip_ratio, entropy, completion_length, ... (also in metrics.jsonl). */
  stats: StepRecord[];
  saved: string[];
  /** With qlora: the NF4 layers and their bytes against float32. */
  qlora?: QloraReport | null;
}

/** A batch of scored completions; plain numbers, so that the Trainer may hand it out again (numIterations). */
interface GrpoBatch {
  ids: number[][];
  attention: number[][];
  completionMask: number[][];
  advantages: number[];
  oldLogps: number[][] | null;
  refLogps: number[][] | null;
  /** The rewards of every completion sampled for the step (with dynamic sampling, dropped groups too). */
  rewards: number[];
  /** Mean of the groups' reward std, fraction of sampled groups with zero std, mean completion length, prompts sampled. */
  groupStd: number;
  zeroStd: number;
  length: number;
  sampled: number;
}

const rows = async (t: Tensor): Promise<number[][]> => {
  const [N, L] = t.shape as [number, number];
  const d = await t.data();
  return Array.from({ length: N }, (_, i) => Array.from(d.subarray(i * L, (i + 1) * L)));
};

/**
 * Trains a causal LM with GRPO on the Trainer: each step samples k completions for each of promptsPerStep prompts with
 * the current policy (a checkpointed generator, so --resume is exact), scores them with `reward`, and makes
 * numIterations updates on the clipped surrogate with the KL penalty. Per-step statistics go to metrics.jsonl and
 * reward.svg / kl.svg; the model (or adapter) is saved to outDir at the end.
 */
export async function grpoTrain(model: PreTrainedModel, tokenizer: Tokenizer, records: readonly PromptRecord[], reward: RewardFunction, opts: GrpoOptions = {}): Promise<GrpoResult> {
  const log = opts.log ?? ((l: string) => { process.stderr.write(`${l}\n`); });
  const k = opts.numGenerations ?? 8;
  if (!Number.isSafeInteger(k) || k < 2) throw new Error(`grpo: numGenerations must be an integer >= 2 (advantages are relative to the group's std, which needs two samples), got ${String(k)}`);
  if (!Array.isArray(records) || records.length === 0) throw new Error('grpo: expected a non-empty array of prompt records');
  if (typeof reward !== 'function') throw new Error('grpo: reward must be a function (completion, record) => number');
  const mu = opts.numIterations ?? 1, perStep = opts.promptsPerStep ?? 4, maxNew = opts.maxNewTokens ?? 64;
  for (const [name, v] of [['numIterations', mu], ['promptsPerStep', perStep], ['maxNewTokens', maxNew]] as const) {
    if (!Number.isSafeInteger(v) || v < 1) throw new Error(`grpo: ${name} must be a positive integer, got ${String(v)}`);
  }
  const temperature = checkTemperature(opts.temperature, 'grpo');
  const beta = opts.beta ?? 0.04;
  const lossOpts: GrpoLossOptions = { beta, epsilon: opts.epsilon ?? 0.2, ...(opts.epsilonHigh !== undefined ? { epsilonHigh: opts.epsilonHigh } : {}), lossType: opts.lossType ?? 'grpo' };
  checkGrpoLossOptions(lossOpts, 'grpo');
  const limit = model.positionLimit();
  const prompts = records.map((r, i) => {
    let ids: number[];
    try {
      ids = promptIds(tokenizer, r.prompt);
    } catch (e) {
      throw new Error(`grpo: prompt ${i}: ${e instanceof Error ? e.message : String(e)}`);
    }
    if (opts.maxPromptLength !== undefined && ids.length > opts.maxPromptLength) ids = ids.slice(ids.length - opts.maxPromptLength);
    if (ids.length === 0) throw new Error(`grpo: prompt ${i} has no tokens`);
    if (limit && ids.length + maxNew > limit.value) throw new Error(`grpo: prompt ${i} has ${ids.length} tokens; with maxNewTokens ${maxNew} that is more than the model's ${limit.key} = ${limit.value} (use maxPromptLength)`);
    return ids;
  });
  const eos = [...new Set([tokenizer.eosTokenId ?? [], model.generationConfig.eosTokenId ?? []].flat())];
  const padId = tokenizer.padTokenId ?? eos[0] ?? 0;

  const { lora, qlora } = await addTrainableAdapter(model, opts, 'grpo', log);
  const reference = beta > 0 ? referenceForward(model) : null;
  const device = modelDevice(model);
  const ints = (a: number[][]): Tensor => tensor(a, { dtype: 'int32', device });
  const floats = (a: number[][] | number[]): Tensor => tensor(a, { dtype: 'float32', device });
  const seed = opts.seed ?? 0;
  const sampler = new Generator(seed + 1);
  const order = new DataLoader(prompts.map((_, i) => i), { batchSize: perStep, shuffle: true, seed });

  /** k completions of prompt i with their rewards. */
  async function group(i: number): Promise<{ completions: number[][]; rewards: number[] }> {
    const completions = await sampleCompletions(model, prompts[i]!, k, { maxNewTokens: maxNew, generator: sampler, eosTokenId: eos, padTokenId: padId, temperature, ...(opts.topP !== undefined ? { topP: opts.topP } : {}), ...(opts.topK !== undefined ? { topK: opts.topK } : {}) });
    const rewards: number[] = [];
    for (const c of completions) {
      let r: number;
      try {
        r = await reward(tokenizer.decode(c, { skipSpecialTokens: true }), records[i]!);
      } catch (e) {
        throw new Error(`grpo: the reward failed on a completion of prompt ${i}: ${e instanceof Error ? e.message : String(e)}`);
      }
      if (typeof r !== 'number' || !Number.isFinite(r)) throw new Error(`grpo: the reward of a completion of prompt ${i} is ${String(r)}; rewards must be finite numbers`);
      rewards.push(r);
    }
    return { completions, rewards };
  }
  const spread = (rs: readonly number[]): boolean => rs.some((r) => r !== rs[0]);

  async function rollout(indices: number[]): Promise<GrpoBatch> {
    const drawn: [number, { completions: number[][]; rewards: number[] }][] = [];
    for (const i of indices) drawn.push([i, await group(i)]);
    const useful = () => drawn.filter(([, g]) => spread(g.rewards));
    let kept = drawn;
    if (opts.dynamicSampling) {
      while (useful().length < indices.length && drawn.length < 4 * indices.length) {
        const i = sampler.integers(0, prompts.length, 1)[0]!;
        drawn.push([i, await group(i)]);
      }
      // Not one group with a spread: the step keeps the flat groups (zero advantages; only the KL term acts).
      if (useful().length > 0) kept = useful();
    }
    const ps = kept.flatMap(([i, g]) => g.completions.map(() => prompts[i]!)), cs = kept.flatMap(([, g]) => g.completions);
    const rewards = kept.flatMap(([, g]) => g.rewards);
    const adv = groupAdvantages(rewards, k, { scaleRewards: opts.scaleRewards ?? true });
    const tok = rolloutTokens(ps, cs, padId);
    let oldLogps: number[][] | null = null, refLogps: number[][] | null = null;
    const wasTraining = model.training;
    model.eval();
    try {
      const ids = ints(tok.ids), attn = ints(tok.attention);
      if (mu > 1) {
        const t = noGrad(() => tidy(() => tokenLogps(atTemperature(model.forward({ inputIds: ids, attentionMask: attn }).logits, temperature), ids)));
        oldLogps = await rows(t);
        t.dispose();
      }
      if (reference) {
        const t = tidy(() => tokenLogps(atTemperature(reference({ inputIds: ids, attentionMask: attn }), temperature), ids));
        refLogps = await rows(t);
        t.dispose();
      }
      ids.dispose();
      attn.dispose();
    } finally {
      model.train(wasTraining);
    }
    const groupStd = kept.reduce((a, [, g]) => a + meanStd('r', g.rewards)['r_std']!, 0) / kept.length;
    return {
      ...tok, advantages: adv, oldLogps, refLogps, rewards: drawn.flatMap(([, g]) => g.rewards), groupStd, zeroStd: 1 - useful().length / drawn.length,
      length: cs.reduce((a, c) => a + c.length, 0) / cs.length, sampled: drawn.length,
    };
  }

  const source: BatchSource<GrpoBatch> = {
    length: order.length * mu,
    async *batches(epoch: number, start: number) {
      let it = start % mu;
      for (const indices of order.batches(epoch, Math.floor(start / mu))) {
        const b = await rollout(indices);
        for (; it < mu; it++) yield b;
        it = 0;
      }
    },
  };

  const stats: StepRecord[] = [];
  const loss = (m: PreTrainedModel, b: GrpoBatch): LossOutput => {
    const ids = ints(b.ids);
    const logits = atTemperature(m.forward({ inputIds: ids, attentionMask: ints(b.attention) }).logits, temperature);
    const logps = tokenLogps(logits, ids);
    const mask = floats(b.completionMask);
    const out = grpoLoss({ logps, oldLogps: b.oldLogps ? floats(b.oldLogps) : detach(logps), refLogps: b.refLogps ? floats(b.refLogps) : null, advantages: floats(b.advantages), mask }, lossOpts);
    return {
      loss: out.loss, tokens: b.completionMask.reduce((a, r) => a + r.reduce((x, y) => x + y, 0), 0),
      metrics: {
        ...meanStd('reward', b.rewards), kl: out.kl, clip_ratio: out.clipFraction, entropy: div(sum(mul(tokenEntropy(logits), mask)), clamp(sum(mask), 1)),
        reward_group_std: b.groupStd, frac_reward_zero_std: b.zeroStd, completion_length: b.length, prompts_sampled: b.sampled,
      },
    };
  };

  const trainer = new Trainer<PreTrainedModel, GrpoBatch>({
    model, data: source, loss,
    ...rolloutTrainerSettings(opts, lora ? 1e-5 : 1e-6, sampler, stats, seed),
    progressMetrics: ['reward', 'kl'],
    plots: [
      { file: 'reward.svg', metrics: ['reward'], title: 'GRPO: mean reward', yLabel: 'reward' },
      { file: 'kl.svg', metrics: ['kl'], title: 'GRPO: KL to the reference (per token)', yLabel: 'KL' },
    ],
  });
  if (lora) log(`grpo: LoRA r ${lora.r}; the reference is the model with its adapters disabled`);
  const train = await trainer.train();
  model.eval();
  const saved = opts.outDir !== undefined ? await saveSftModel(model, tokenizer, opts.outDir, { baseDir: opts.baseDir, lora: lora !== null }) : [];
  return { train, stats, saved, qlora };
}
