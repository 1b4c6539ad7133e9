// Direct Preference Optimization (Rafailov et al. 2023, arXiv:2305.18290): TRL's sigmoid DPO loss, sequence
// log-probabilities, and DPO training on the Trainer (trl/trainer/dpo_trainer.py, dpo_config.py).

import { abs, add, cast, exp, gt, log, mul, neg, sub } from '../autograd/ops/elementwise.js';
import { noGrad } from '../autograd/engine.js';
import { detach, narrow, reshape, slice } from '../autograd/ops/movement.js';
import { mean, sum } from '../autograd/ops/reduce.js';
import { crossEntropy } from '../nn/functional.js';
import { isFloat } from '../tensor/dtype.js';
import { fmtShape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { tensor } from '../tensor/create.js';
import { tidy } from '../tensor/scope.js';
import { DataLoader } from '../data/loader.js';
import { collatePreference, tokenizePreference, type PreferencePair, type PreferenceRecord, type SftBatch, type TokenizeSftOptions } from '../data/sft.js';
import type { PreTrainedModel } from '../models/base.js';
import { withLoraDisabled, type QloraReport } from '../models/lora.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { addTrainableAdapter, collectStepRecords, type StepRecord } from './policy.js';
import type { ProgressStream } from './progress.js';
import { saveSftModel, type SftLoraOptions } from './sft.js';
import { definedFields, Trainer, type LossOutput, type ScheduleKind, type StepInfo, type TrainResult } from './trainer.js';

/** Summed log-probabilities of each chosen / rejected completion [B], under the policy and the frozen reference. */
export interface DpoLogps {
  policyChosenLogps: Tensor;
  policyRejectedLogps: Tensor;
  referenceChosenLogps: Tensor;
  referenceRejectedLogps: Tensor;
}

export interface DpoOptions {
  /** β: the strength of the implicit KL penalty to the reference (TRL's default 0.1). Larger stays closer. */
  beta?: number;
  /** Conservative DPO (cDPO): the assumed probability, in [0, 0.5], that a preference label is flipped. Default 0. */
  labelSmoothing?: number;
}

export interface DpoLossOutput {
  /** The mean loss over the batch (a scalar with gradient to the policy log-probabilities). */
  loss: Tensor;
  /** β (policy − reference) log-probability of each chosen completion [B]: TRL's rewards/chosen (no gradient). */
  chosenRewards: Tensor;
  /** The same for the rejected completions [B]: rewards/rejected. */
  rejectedRewards: Tensor;
  /** chosenRewards − rejectedRewards [B]: rewards/margins. */
  margins: Tensor;
  /** Fraction of pairs whose chosen reward is above the rejected one (scalar): rewards/accuracies. */
  accuracy: Tensor;
}

/** log σ(x), stable for any x: (x − |x|)/2 − log(1 + e^−|x|). Written with (x − |x|)/2 rather than min(x, 0) so the gradient at 0 is σ(0) = 1/2. */
export function logSigmoid(x: Tensor): Tensor {
  const a = abs(x);
  return sub(mul(sub(x, a), 0.5), log(add(exp(neg(a)), 1)));
}

function checkDpoOptions(opts: DpoOptions, where: string): { beta: number; eps: number } {
  const beta = opts.beta ?? 0.1;
  const eps = opts.labelSmoothing ?? 0;
  if (typeof beta !== 'number' || !(beta > 0) || !Number.isFinite(beta)) throw new Error(`${where}: beta must be a positive number, got ${String(beta)}`);
  if (typeof eps !== 'number' || !(eps >= 0 && eps <= 0.5)) throw new Error(`${where}: labelSmoothing must be in [0, 0.5], got ${String(eps)}`);
  return { beta, eps };
}

/**
 * TRL's DPO loss (loss_type 'sigmoid'): with z = β((πc − rc) − (πr − rr)) on summed log-probabilities,
 * loss = −(1 − ε) log σ(z) − ε log σ(−z), averaged over the batch. The reference log-probabilities are constants
 * (detached). Returns the loss with TRL's logged statistics.
 */
export function dpoLoss(logps: DpoLogps, opts: DpoOptions = {}): DpoLossOutput {
  const { beta, eps } = checkDpoOptions(opts, 'dpoLoss');
  const names = ['policyChosenLogps', 'policyRejectedLogps', 'referenceChosenLogps', 'referenceRejectedLogps'] as const;
  for (const name of names) {
    const t = logps[name];
    if (t === undefined || t === null) throw new Error(`dpoLoss: ${name} is missing`);
    if (t.ndim !== 1 || t.shape[0] === 0) throw new Error(`dpoLoss: ${name} must be a non-empty 1-D tensor [batch], got shape ${fmtShape(t.shape)}`);
    if (!isFloat(t.dtype)) throw new Error(`dpoLoss: ${name} must hold floating-point log-probabilities, got ${t.dtype}`);
    if (t.shape[0] !== logps.policyChosenLogps.shape[0]) throw new Error(`dpoLoss: ${name} has shape ${fmtShape(t.shape)} but policyChosenLogps has ${fmtShape(logps.policyChosenLogps.shape)}`);
  }
  const chosenRatio = sub(logps.policyChosenLogps, detach(logps.referenceChosenLogps)); // [B]
  const rejectedRatio = sub(logps.policyRejectedLogps, detach(logps.referenceRejectedLogps)); // [B]
  const z = mul(sub(chosenRatio, rejectedRatio), beta); // [B]
  let perPair = neg(logSigmoid(z));
  if (eps > 0) perPair = add(mul(perPair, 1 - eps), mul(neg(logSigmoid(neg(z))), eps));
  const chosenRewards = detach(mul(chosenRatio, beta));
  const rejectedRewards = detach(mul(rejectedRatio, beta));
  return {
    loss: mean(perPair),
    chosenRewards,
    rejectedRewards,
    margins: sub(chosenRewards, rejectedRewards),
    accuracy: mean(cast(gt(chosenRewards, rejectedRewards), chosenRewards.dtype)),
  };
}

/**
 * Summed log-probability of each sequence's label tokens under a causal LM: logits at position t predict the label at
 * t + 1 (labels are aligned with the input ids, as Hugging Face's), and labels equal to -100 (prompt, padding) count
 * for nothing. logits [B, T, V], labels [B, T] -> [B], with gradient to the logits.
 */
export function sequenceLogps(logits: Tensor, labels: Tensor, opts: { ignoreIndex?: number } = {}): Tensor {
  const ignoreIndex = opts.ignoreIndex ?? -100;
  if (logits.ndim !== 3) throw new Error(`sequenceLogps: logits must be [batch, length, vocab], got shape ${fmtShape(logits.shape)}`);
  if (labels.ndim !== 2 || labels.shape[0] !== logits.shape[0] || labels.shape[1] !== logits.shape[1]) {
    throw new Error(`sequenceLogps: labels ${fmtShape(labels.shape)} must be [batch, length] matching logits ${fmtShape(logits.shape)}`);
  }
  if (!isFloat(logits.dtype)) throw new Error(`sequenceLogps: logits must be floating point, got ${logits.dtype}`);
  if (isFloat(labels.dtype)) throw new Error(`sequenceLogps: labels must hold token ids (an integer tensor), got ${labels.dtype}`);
  const [B, T, V] = logits.shape as [number, number, number];
  if (T < 2) throw new Error(`sequenceLogps: sequences need at least 2 positions (one to predict from, one to predict), got length ${T}`);
  const pred = reshape(slice(logits, 1, 0, T - 1), [B * (T - 1), V]); // [B*(T-1), V]: positions 0..T-2 predict...
  const target = reshape(slice(labels, 1, 1, T), [B * (T - 1)]); // ...labels 1..T-1
  const nll = crossEntropy(pred, target, { ignoreIndex, reduction: 'none' }); // [B*(T-1)], 0 where ignored
  return neg(sum(reshape(nll, [B, T - 1]), 1)); // [B]
}

// ---- training ----

/** Summed completion log-probabilities of each pair's chosen and rejected side. */
export interface PairLogps {
  chosen: number[];
  rejected: number[];
}

/**
 * The summed completion log-probabilities of every pair under `model` (no gradient, eval mode), batchSize pairs at a
 * time; with `reference`, under the reference: the same model with its LoRA adapters disabled.
 */
export async function preferenceLogps(model: PreTrainedModel, pairs: readonly PreferencePair[], opts: { batchSize?: number; padId?: number; disableAdapters?: boolean } = {}): Promise<PairLogps> {
  const bs = opts.batchSize ?? 8, padId = opts.padId ?? 0;
  const device = model.parameters()[0]?.device;
  const wasTraining = model.training;
  model.eval();
  const out: PairLogps = { chosen: [], rejected: [] };
  try {
    for (let i = 0; i < pairs.length; i += bs) {
      const chunk = pairs.slice(i, i + bs);
      const b = collatePreference(chunk, padId);
      const run = (): Tensor => noGrad(() => tidy(() => {
        const on = (t: Tensor): Tensor => (device === undefined ? t : t.to(device));
        const logits = model.forward({ inputIds: on(b.inputIds), attentionMask: on(b.attentionMask) }).logits;
        return sequenceLogps(logits, on(b.labels));
      }));
      const lp = opts.disableAdapters ? withLoraDisabled(model, run) : run();
      const d = await lp.data();
      lp.dispose();
      for (const t of Object.values(b)) t.dispose();
      out.chosen.push(...Array.from(d.subarray(0, chunk.length)));
      out.rejected.push(...Array.from(d.subarray(chunk.length)));
    }
  } finally {
    model.train(wasTraining);
  }
  return out;
}

export interface DpoTrainOptions extends DpoOptions, Omit<TokenizeSftOptions, 'completionOnlyLoss'> {
  /** A LoRA adapter instead of full fine-tuning (options, or true for the defaults). */
  lora?: SftLoraOptions | boolean;
  /** QLoRA: the base's Linear layers (not the output head) frozen in NF4 under the adapter, as sft's (implies lora). */
  qlora?: boolean;
  /** Pairs per batch (default 8). */
  batchSize?: number;
  /** Passes over the pairs (default 3, as TRL; with maxSteps, whichever ends first). */
  epochs?: number;
  maxSteps?: number;
  /** Peak learning rate (default 1e-6, TRL's DPOConfig; 5e-6 with LoRA). */
  lr?: number;
  weightDecay?: number;
  warmupSteps?: number;
  schedule?: ScheduleKind;
  clipGradNorm?: number;
  gradAccumSteps?: number;
  seed?: number;
  outDir?: string;
  resume?: boolean | string;
  logEvery?: number;
  checkpointEvery?: number;
  progress?: ProgressStream | false;
  onStep?: (info: StepInfo, stats: Record<string, number>) => void | Promise<void>;
  baseDir?: string;
  log?: (line: string) => void;
}

export interface DpoTrainResult {
  train: TrainResult;
  /** Pairs trained on (after dropping those left without completion tokens). */
  pairs: number;
  /** The reference log-probabilities of every pair (computed once, before the first update). */
  reference: PairLogps;
  /**
   * One record per step this call ran: rewards/chosen, rewards/rejected, rewards/margins, rewards/accuracies,
   * logps/chosen, logps/rejected (also in metrics.jsonl, averaged over each logging interval).
   */
  stats: StepRecord[];
  saved: string[];
  /** With qlora: the NF4 layers and their bytes against float32. */
  qlora?: QloraReport | null;
}

interface DpoBatch extends SftBatch {
  refChosen: number[];
  refRejected: number[];
}

const isPair = (x: unknown): x is PreferencePair => typeof x === 'object' && x !== null && 'chosen' in x && typeof (x as PreferencePair).chosen === 'object' && Array.isArray((x as PreferencePair).chosen?.inputIds);

/**
 * DPO on the Trainer (TRL's DPOTrainer with the sigmoid loss): pairs of (prompt, chosen, rejected) records, or pairs
 * already tokenized. The reference log-probabilities are computed once before training (TRL's
 * precompute_ref_log_probs), from the same model with its adapters disabled under LoRA, or from the model before its
 * first update under full fine-tuning (a frozen copy, without holding a second copy of the weights). Per-step
 * statistics go to metrics.jsonl (loss metrics) and rewards.svg; the model (or adapter) is saved to outDir at the end.
 */
export async function dpoTrain(model: PreTrainedModel, tokenizer: Tokenizer, data: readonly PreferenceRecord[] | readonly PreferencePair[], opts: DpoTrainOptions = {}): Promise<DpoTrainResult> {
  const log = opts.log ?? ((l: string) => { process.stderr.write(`${l}\n`); });
  if (!Array.isArray(data) || data.length === 0) throw new Error('dpo: data must be a non-empty array of preference records or tokenized pairs');
  const lossOpts: DpoOptions = { beta: opts.beta ?? 0.1, labelSmoothing: opts.labelSmoothing ?? 0 };
  checkDpoOptions(lossOpts, 'dpo');
  const limit = model.positionLimit();
  const maxLength = opts.maxLength ?? Math.min(1024, limit?.value ?? 1024);
  let pairs: PreferencePair[];
  if ((data as readonly unknown[]).every(isPair)) {
    pairs = [...(data as readonly PreferencePair[])];
  } else {
    const out = tokenizePreference(tokenizer, data as readonly PreferenceRecord[], { ...opts, maxLength });
    pairs = out.pairs;
    if (out.stats.truncated) log(`dpo: ${out.stats.truncated} side(s) cut to maxLength ${maxLength}`);
    if (out.stats.dropped) log(`dpo: ${out.stats.dropped} pair(s) left out: a side has no completion token (after truncation)`);
  }
  if (pairs.length === 0) throw new Error('dpo: no pair has completion tokens on both sides');
  const padId = tokenizer.padTokenId ?? tokenizer.eosTokenId ?? 0;
  const batchSize = opts.batchSize ?? 8;

  const { lora, qlora } = await addTrainableAdapter(model, opts, 'dpo', log);
  log(`dpo: computing the reference log-probabilities of ${pairs.length} pairs (${lora ? 'the model with its adapters disabled' : 'the model before training'})`);
  const reference = await preferenceLogps(model, pairs, { batchSize, padId, disableAdapters: lora !== null });
  const seed = opts.seed ?? 0;
  const loader = new DataLoader<number, DpoBatch>(pairs.map((_, i) => i), {
    batchSize, shuffle: true, seed,
    collate: (idx) => ({ ...collatePreference(idx.map((i) => pairs[i]!), padId), refChosen: idx.map((i) => reference.chosen[i]!), refRejected: idx.map((i) => reference.rejected[i]!) }),
  });
  const stats: StepRecord[] = [];
  const device = model.parameters()[0]?.device;
  const loss = (m: PreTrainedModel, b: DpoBatch): LossOutput => {
    const on = (t: Tensor): Tensor => (device === undefined ? t : t.to(device));
    const B = b.refChosen.length;
    const logits = m.forward({ inputIds: on(b.inputIds), attentionMask: on(b.attentionMask) }).logits; // [2B, T, V]: chosen rows, then rejected
    const lp = sequenceLogps(logits, on(b.labels)); // [2B]
    const ref = (v: number[]): Tensor => tensor(v, { dtype: 'float32', device });
    const out = dpoLoss({ policyChosenLogps: narrow(lp, 0, 0, B), policyRejectedLogps: narrow(lp, 0, B, B), referenceChosenLogps: ref(b.refChosen), referenceRejectedLogps: ref(b.refRejected) }, lossOpts);
    return {
      loss: out.loss, tokens: b.refChosen.length,
      metrics: {
        'rewards/chosen': mean(out.chosenRewards), 'rewards/rejected': mean(out.rejectedRewards), 'rewards/margins': mean(out.margins),
        'rewards/accuracies': out.accuracy, 'logps/chosen': mean(narrow(lp, 0, 0, B)), 'logps/rejected': mean(narrow(lp, 0, B, B)),
      },
    };
  };
  const trainer = new Trainer<PreTrainedModel, DpoBatch>({
    model, data: loader, loss,
    optimizer: { lr: opts.lr ?? (lora ? 5e-6 : 1e-6), weightDecay: opts.weightDecay ?? 0 },
    schedule: { kind: opts.schedule ?? 'linear', warmupSteps: opts.warmupSteps ?? 0 },
    clipGradNorm: opts.clipGradNorm ?? 1,
    ...(opts.maxSteps !== undefined ? { maxSteps: opts.maxSteps } : {}),
    ...(opts.epochs !== undefined || opts.maxSteps === undefined ? { epochs: opts.epochs ?? 3 } : {}),
    ...definedFields(opts, ['gradAccumSteps', 'outDir', 'resume', 'logEvery', 'checkpointEvery', 'progress']),
    progressMetrics: ['rewards/margins', 'rewards/accuracies'],
    plots: [{ file: 'rewards.svg', metrics: ['rewards/chosen', 'rewards/rejected', 'rewards/margins'], title: 'DPO: implicit rewards', yLabel: 'reward' }],
    onStep: collectStepRecords(stats, opts.onStep),
    seed,
  });
  const train = await trainer.train();
  model.eval();
  const saved = opts.outDir !== undefined ? await saveSftModel(model, tokenizer, opts.outDir, { baseDir: opts.baseDir, lora: lora !== null }) : [];
  return { train, pairs: pairs.length, reference, stats, saved, qlora };
}
