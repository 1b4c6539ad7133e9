// PPO for RLHF as InstructGPT (Ouyang et al. 2022) and TRL's PPOTrainer: rollouts from the policy, a value head,
// per-token rewards = −kl_coef · (logp − ref logp) plus the reward model's score at the last token, GAE(γ, λ),
// clipped policy and value losses (Schulman et al. 2017).
//
// Reference: trl/trainer/ppo_trainer.py and ppo_config.py (defaults: γ 1, λ 0.95, cliprange 0.2, cliprange_value 0.2,
// vf_coef 0.1, kl_coef 0.05, num_ppo_epochs 4, whitened advantages).

import { add, cast, clamp, div, exp, gt, maximum, mul, neg, square, sub } from '../autograd/ops/elementwise.js';
import { detach, reshape, slice } from '../autograd/ops/movement.js';
import { sum } from '../autograd/ops/reduce.js';
import { noGrad } from '../autograd/engine.js';
import type { BatchSource } from '../data/loader.js';
import { DataLoader } from '../data/loader.js';
import type { ModelInputs, PreTrainedModel } from '../models/base.js';
import type { QloraReport } from '../models/lora.js';
import { Linear } from '../nn/linear.js';
import { Module } from '../nn/module.js';
import { zeros_ } from '../nn/init.js';
import { tensor } from '../tensor/create.js';
import { Generator } from '../tensor/random.js';
import { tidy } from '../tensor/scope.js';
import { fmtShape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { promptIds, type PromptRecord } from './grpo.js';
import { addTrainableAdapter, atTemperature, checkTemperature, meanStd, modelDevice, referenceForward, rolloutTokens, rolloutTrainerSettings, sampleCompletions, tokenEntropy, tokenLogps, type RolloutRunOptions, type StepRecord } from './policy.js';
import { hiddenSize, scoreSequences, type RewardModel } from './reward.js';
import { saveSftModel } from './sft.js';
import { Trainer, type LossOutput, type TrainResult } from './trainer.js';

// ---- the math ----

/**
 * Generalized advantage estimation (Schulman et al. 2016) over one response: δ_t = r_t + γ V_{t+1} − V_t (V after the
 * last token is 0), A_t = δ_t + γλ A_{t+1}; returns A and the value targets A + V.
 */
export function gae(rewards: readonly number[], values: readonly number[], gamma: number, lambda: number): { advantages: number[]; returns: number[] } {
  if (rewards.length !== values.length) throw new Error(`gae: ${rewards.length} rewards but ${values.length} values`);
  if (!(gamma >= 0 && gamma <= 1) || !(lambda >= 0 && lambda <= 1)) throw new Error(`gae: gamma and lambda must be in [0, 1], got ${gamma} and ${lambda}`);
  const n = rewards.length;
  const advantages = new Array<number>(n).fill(0);
  let last = 0;
  for (let t = n - 1; t >= 0; t--) {
    const next = t < n - 1 ? values[t + 1]! : 0;
    const delta = rewards[t]! + gamma * next - values[t]!;
    last = delta + gamma * lambda * last;
    advantages[t] = last;
  }
  return { advantages, returns: advantages.map((a, t) => a + values[t]!) };
}

/**
 * Per-token rewards of one response (TRL): −klCoef · (logp − refLogp) at every token (the k1 KL estimate), plus the
 * reward model's score at the last token.
 */
export function tokenRewards(score: number, logps: readonly number[], refLogps: readonly number[], klCoef: number): number[] {
  if (logps.length === 0 || logps.length !== refLogps.length) throw new Error(`tokenRewards: ${logps.length} log-probabilities and ${refLogps.length} reference ones (need the same, at least 1)`);
  const r = logps.map((lp, t) => -klCoef * (lp - refLogps[t]!));
  r[r.length - 1]! += score;
  return r;
}

/** (x − mean) / sqrt(var + 1e-8) over all the values (TRL's masked_whiten with the unbiased variance). */
export function whiten(values: readonly number[]): number[] {
  const n = values.length;
  if (n < 2) return values.map(() => 0);
  const m = values.reduce((a, b) => a + b, 0) / n;
  const v = values.reduce((a, b) => a + (b - m) ** 2, 0) / (n - 1);
  return values.map((x) => (x - m) / Math.sqrt(v + 1e-8));
}

const maskedMean = (x: Tensor, mask: Tensor): Tensor => div(sum(mul(x, mask)), clamp(sum(mask), 1));

/**
 * The clipped policy loss: with ratio = exp(logp − old), masked mean of max(−A ratio, −A clip(ratio, 1 − c, 1 + c)).
 * Tensors [N, L]; returns the loss and the fraction of tokens where the clipped term won (TRL's pg_clipfrac).
 */
export function ppoPolicyLoss(input: { logps: Tensor; oldLogps: Tensor; advantages: Tensor; mask: Tensor }, cliprange = 0.2): { loss: Tensor; clipFraction: Tensor; approxKl: Tensor } {
  const { logps, oldLogps, advantages, mask } = input;
  for (const [name, t] of [['oldLogps', oldLogps], ['advantages', advantages], ['mask', mask]] as const) {
    if (t.ndim !== logps.ndim || t.shape.some((d, i) => d !== logps.shape[i])) throw new Error(`ppoPolicyLoss: ${name} has shape ${fmtShape(t.shape)}, logps ${fmtShape(logps.shape)}`);
  }
  if (!(cliprange > 0 && cliprange < 1)) throw new Error(`ppoPolicyLoss: cliprange must be in (0, 1), got ${cliprange}`);
  const m = cast(mask, logps.dtype);
  const logRatio = sub(logps, detach(oldLogps));
  const ratio = exp(logRatio);
  const A = detach(advantages);
  const pg1 = neg(mul(A, ratio)), pg2 = neg(mul(A, clamp(ratio, 1 - cliprange, 1 + cliprange)));
  const loss = maskedMean(maximum(pg1, pg2), m);
  const stats = noGrad(() => ({ clipFraction: maskedMean(cast(gt(pg2, pg1), m.dtype), m), approxKl: maskedMean(mul(square(detach(logRatio)), 0.5), m) }));
  return { loss, ...stats };
}

/**
 * The clipped value loss: 0.5 · masked mean of max((V − R)², (V_old + clip(V − V_old, −c, c) − R)²); returns it with
 * the fraction of tokens where the clipped term won (TRL's vf_clipfrac).
 */
export function ppoValueLoss(input: { values: Tensor; oldValues: Tensor; returns: Tensor; mask: Tensor }, cliprangeValue = 0.2): { loss: Tensor; clipFraction: Tensor } {
  const { values, oldValues, returns, mask } = input;
  for (const [name, t] of [['oldValues', oldValues], ['returns', returns], ['mask', mask]] as const) {
    if (t.ndim !== values.ndim || t.shape.some((d, i) => d !== values.shape[i])) throw new Error(`ppoValueLoss: ${name} has shape ${fmtShape(t.shape)}, values ${fmtShape(values.shape)}`);
  }
  if (!(cliprangeValue > 0)) throw new Error(`ppoValueLoss: cliprangeValue must be positive, got ${cliprangeValue}`);
  const m = cast(mask, values.dtype);
  const old = detach(oldValues), R = detach(returns);
  const clipped = add(old, clamp(sub(values, old), -cliprangeValue, cliprangeValue));
  const vf1 = square(sub(values, R)), vf2 = square(sub(clipped, R));
  return { loss: mul(maskedMean(maximum(vf1, vf2), m), 0.5), clipFraction: noGrad(() => maskedMean(cast(gt(vf2, vf1), m.dtype), m)) };
}

// ---- the policy with its value head ----

/**
 * A causal LM with a value head on its hidden states (TRL's AutoModelForCausalLMWithValueHead): one forward gives the
 * logits and a value per position. The head starts at zero, so the first values are 0.
 */
export class PolicyWithValueHead extends Module {
  policy: PreTrainedModel;
  v_head: Linear;

  constructor(policy: PreTrainedModel) {
    super();
    this.policy = policy;
    const device = modelDevice(policy);
    this.v_head = new Linear(hiddenSize(policy), 1, device !== undefined ? { device } : {});
    zeros_(this.v_head.weight);
    if (this.v_head.bias) zeros_(this.v_head.bias);
  }

  /** logits [B, T, V] and values [B, T]. */
  forward(inputs: ModelInputs): { logits: Tensor; values: Tensor } {
    const out = this.policy.forward(inputs);
    if (!out.lastHiddenState) throw new Error(`PolicyWithValueHead: ${this.policy.constructor.name} returns no lastHiddenState`);
    const [B, T] = out.logits.shape as [number, number];
    return { logits: out.logits, values: reshape(this.v_head.forward(out.lastHiddenState), [B, T]) }; // [B, T, 1] -> [B, T]
  }
}

// ---- training ----

/** PPO's settings; `lr` defaults to 3e-6 (TRL's; 1e-5 with LoRA). */
export interface PpoOptions extends RolloutRunOptions {
  /** Prompts per rollout (one completion each; default 8). */
  promptsPerStep?: number;
  maxNewTokens?: number;
  maxPromptLength?: number;
  temperature?: number;
  topP?: number;
  topK?: number;
  /** Updates on each rollout (num_ppo_epochs, default 4). */
  ppoEpochs?: number;
  gamma?: number;
  lambda?: number;
  cliprange?: number;
  cliprangeValue?: number;
  /** Weight of the value loss (default 0.1). */
  vfCoef?: number;
  /** Weight of the per-token KL penalty in the reward (default 0.05). */
  klCoef?: number;
  /** Whiten the advantages over the rollout (default true). */
  whitenAdvantages?: boolean;
}

export interface PpoResult {
  train: TrainResult;
  /** The policy and its value head (trained). */
  model: PolicyWithValueHead;
  /**
   * One record per step this call ran: score, score_std, kl, non_score_reward, pg_clipfrac, vf_clipfrac, entropy,
   * response_length, ... (also in metrics.jsonl).
   */
  stats: StepRecord[];
  saved: string[];
  /** With qlora: the NF4 layers and their bytes against float32. */
  qlora?: QloraReport | null;
}

/** A scored rollout in plain numbers, handed out ppoEpochs times. */
interface PpoBatch {
  ids: number[][];
  attention: number[][];
  mask: number[][];
  oldLogps: number[][];
  oldValues: number[][];
  advantages: number[][];
  returns: number[][];
  scores: number[];
  kl: number;
  nonScore: number;
  length: number;
}

const rows = async (t: Tensor): Promise<number[][]> => {
  const [N, L] = t.shape as [number, number];
  const d = await t.data();
  return Array.from({ length: N }, (_, i) => Array.from(d.subarray(i * L, (i + 1) * L)));
};

/**
 * PPO on the Trainer: each rollout samples one completion per prompt with the current policy, scores it with the
 * reward model (at its last token), adds the per-token KL penalty to the reference (adapters disabled, or a frozen
 * copy), computes GAE advantages and returns, then makes ppoEpochs updates of policy loss + vfCoef · value loss.
 * Statistics go to metrics.jsonl, reward.svg and kl.svg; the policy (or adapter) is saved to outDir at the end.
 */
export async function ppoTrain(policy: PreTrainedModel, rewardModel: RewardModel, tokenizer: Tokenizer, records: readonly PromptRecord[], opts: PpoOptions = {}): Promise<PpoResult> {
  const log = opts.log ?? ((l: string) => { process.stderr.write(`${l}\n`); });
  if (!Array.isArray(records) || records.length === 0) throw new Error('ppo: expected a non-empty array of prompt records');
  const perStep = opts.promptsPerStep ?? 8, maxNew = opts.maxNewTokens ?? 64, epochsPer = opts.ppoEpochs ?? 4;
  for (const [name, v] of [['promptsPerStep', perStep], ['maxNewTokens', maxNew], ['ppoEpochs', epochsPer]] as const) {
    if (!Number.isSafeInteger(v) || v < 1) throw new Error(`ppo: ${name} must be a positive integer, got ${String(v)}`);
  }
  const gamma = opts.gamma ?? 1, lambda = opts.lambda ?? 0.95, klCoef = opts.klCoef ?? 0.05, vfCoef = opts.vfCoef ?? 0.1;
  const cliprange = opts.cliprange ?? 0.2, cliprangeValue = opts.cliprangeValue ?? 0.2;
  gae([0], [0], gamma, lambda); // range checks before any work
  const temperature = checkTemperature(opts.temperature, 'ppo');
  if (!(klCoef >= 0) || !(vfCoef >= 0)) throw new Error(`ppo: klCoef and vfCoef must be >= 0, got ${klCoef} and ${vfCoef}`);
  const limit = policy.positionLimit();
  const prompts = records.map((r, i) => {
    let ids = promptIds(tokenizer, r.prompt);
    if (opts.maxPromptLength !== undefined && ids.length > opts.maxPromptLength) ids = ids.slice(ids.length - opts.maxPromptLength);
    if (limit && ids.length + maxNew > limit.value) throw new Error(`ppo: prompt ${i} has ${ids.length} tokens; with maxNewTokens ${maxNew} that is more than the model's ${limit.key} = ${limit.value}`);
    return ids;
  });
  const eos = [...new Set([tokenizer.eosTokenId ?? [], policy.generationConfig.eosTokenId ?? []].flat())];
  const padId = tokenizer.padTokenId ?? eos[0] ?? 0;

  const { lora, qlora } = await addTrainableAdapter(policy, opts, 'ppo', log);
  const reference = referenceForward(policy);
  for (const p of rewardModel.parameters()) p.requiresGrad = false;
  rewardModel.eval();
  const model = new PolicyWithValueHead(policy);
  const device = modelDevice(policy);
  const ints = (a: number[][]): Tensor => tensor(a, { dtype: 'int32', device });
  const floats = (a: number[][]): Tensor => tensor(a, { dtype: 'float32', device });
  const seed = opts.seed ?? 0;
  const sampler = new Generator(seed + 1);
  const order = new DataLoader(prompts.map((_, i) => i), { batchSize: perStep, shuffle: true, seed });

  async function rollout(indices: number[]): Promise<PpoBatch> {
    const ps: number[][] = [], cs: number[][] = [];
    for (const i of indices) {
      const [c] = await sampleCompletions(policy, prompts[i]!, 1, { maxNewTokens: maxNew, generator: sampler, eosTokenId: eos, padTokenId: padId, temperature, ...(opts.topP !== undefined ? { topP: opts.topP } : {}), ...(opts.topK !== undefined ? { topK: opts.topK } : {}) });
      ps.push(prompts[i]!);
      cs.push(c!);
    }
    const tok = rolloutTokens(ps, cs, padId);
    const scores = await scoreSequences(rewardModel, ps.map((p, i) => [...p, ...cs[i]!]), { padId });
    const wasTraining = model.training;
    model.eval();
    let logps: number[][], values: number[][], ref: number[][];
    try {
      const ids = ints(tok.ids), attn = ints(tok.attention);
      const [lp, v] = noGrad(() => tidy(() => {
        const out = model.forward({ inputIds: ids, attentionMask: attn });
        const T = tok.ids[0]!.length;
        return [tokenLogps(atTemperature(out.logits, temperature), ids), slice(out.values, 1, 0, T - 1)]; // values at the positions that predict each token
      }));
      const r = tidy(() => tokenLogps(atTemperature(reference({ inputIds: ids, attentionMask: attn }), temperature), ids));
      [logps, values, ref] = [await rows(lp!), await rows(v!), await rows(r)];
      for (const t of [lp!, v!, r, ids, attn]) t.dispose();
    } finally {
      model.train(wasTraining);
    }
    // Per response: rewards and GAE over its tokens' positions; advantages whitened over the rollout.
    const N = cs.length, L = tok.completionMask[0]!.length;
    const adv = Array.from({ length: N }, () => new Array<number>(L).fill(0));
    const ret = Array.from({ length: N }, () => new Array<number>(L).fill(0));
    let kl = 0, nonScore = 0;
    const flat: number[] = [];
    for (let i = 0; i < N; i++) {
      const pos = tok.completionMask[i]!.flatMap((m, t) => (m ? [t] : []));
      if (!pos.length) continue;
      const lp = pos.map((t) => logps[i]![t]!), rl = pos.map((t) => ref[i]![t]!);
      const rewards = tokenRewards(scores[i]!, lp, rl, klCoef);
      const g = gae(rewards, pos.map((t) => values[i]![t]!), gamma, lambda);
      pos.forEach((t, j) => { adv[i]![t] = g.advantages[j]!; ret[i]![t] = g.returns[j]!; });
      flat.push(...g.advantages);
      kl += lp.reduce((a, x, j) => a + x - rl[j]!, 0) / N;
      nonScore += rewards.reduce((a, x) => a + x, 0) / N - scores[i]! / N;
    }
    if (opts.whitenAdvantages ?? true) {
      const w = whiten(flat);
      let k = 0;
      for (let i = 0; i < N; i++) tok.completionMask[i]!.forEach((m, t) => { if (m) adv[i]![t] = w[k++]!; });
    }
    return { ids: tok.ids, attention: tok.attention, mask: tok.completionMask, oldLogps: logps, oldValues: values, advantages: adv, returns: ret, scores, kl, nonScore, length: cs.reduce((a, c) => a + c.length, 0) / N };
  }

  const source: BatchSource<PpoBatch> = {
    length: order.length * epochsPer,
    async *batches(epoch: number, start: number) {
      let it = start % epochsPer;
      for (const indices of order.batches(epoch, Math.floor(start / epochsPer))) {
        const b = await rollout(indices);
        for (; it < epochsPer; it++) yield b;
        it = 0;
      }
    },
  };

  const stats: StepRecord[] = [];
  const loss = (m: PolicyWithValueHead, b: PpoBatch): LossOutput => {
    const ids = ints(b.ids);
    const out = m.forward({ inputIds: ids, attentionMask: ints(b.attention) });
    const logits = atTemperature(out.logits, temperature); // scored at the sampling temperature, as TRL
    const T = b.ids[0]!.length;
    const mask = floats(b.mask);
    const pg = ppoPolicyLoss({ logps: tokenLogps(logits, ids), oldLogps: floats(b.oldLogps), advantages: floats(b.advantages), mask }, cliprange);
    const vf = ppoValueLoss({ values: slice(out.values, 1, 0, T - 1), oldValues: floats(b.oldValues), returns: floats(b.returns), mask }, cliprangeValue);
    return {
      loss: add(pg.loss, mul(vf.loss, vfCoef)), tokens: b.mask.reduce((a, r) => a + r.reduce((x, y) => x + y, 0), 0),
      metrics: {
        ...meanStd('score', b.scores), kl: b.kl, non_score_reward: b.nonScore, policy_loss: pg.loss, value_loss: vf.loss, pg_clipfrac: pg.clipFraction,
        vf_clipfrac: vf.clipFraction, approxkl: pg.approxKl, entropy: maskedMean(tokenEntropy(logits), mask), response_length: b.length,
      },
    };
  };

  const trainer = new Trainer<PolicyWithValueHead, PpoBatch>({
    model, data: source, loss,
    ...rolloutTrainerSettings(opts, lora ? 1e-5 : 3e-6, sampler, stats, seed),
    progressMetrics: ['score', 'kl'],
    plots: [
      { file: 'reward.svg', metrics: ['score'], title: 'PPO: reward model score', yLabel: 'score' },
      { file: 'kl.svg', metrics: ['kl'], title: 'PPO: KL to the reference (per response)', yLabel: 'KL' },
    ],
  });
  if (lora) log(`ppo: LoRA r ${lora.r}; the reference is the policy with its adapters disabled`);
  const train = await trainer.train();
  model.eval();
  const saved = opts.outDir !== undefined ? await saveSftModel(policy, tokenizer, opts.outDir, { baseDir: opts.baseDir, lora: lora !== null }) : [];
  return { train, model, stats, saved, qlora };
}
