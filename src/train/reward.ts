// A reward model for RLHF (Ouyang et al. 2022, InstructGPT): a scalar head on a causal LM's last non-padding token,
// trained on preference pairs with the Bradley–Terry loss −log σ(r_chosen − r_rejected), as TRL's RewardTrainer;
// saved and loaded as a Hugging Face *ForSequenceClassification folder (num_labels 1, the head named `score`).

import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';

import { add, cast, gt, mul, neg, sub } from '../autograd/ops/elementwise.js';
import { indexSelect } from '../autograd/ops/indexing.js';
import { narrow, reshape } from '../autograd/ops/movement.js';
import { argmax, mean } from '../autograd/ops/reduce.js';
import { noGrad } from '../autograd/engine.js';
import { DataLoader } from '../data/loader.js';
import { collatePreference, tokenizePreference, type PreferencePair, type PreferenceRecord, type SftBatch } from '../data/sft.js';
import { fileExists, loadCheckpoint, readConfig } from '../io/hf.js';
import { saveSafetensors } from '../io/safetensors.js';
import { causalLMFromConfig } from '../models/auto.js';
import { loadPretrainedWeights, type PreTrainedModel } from '../models/base.js';
import { hasLora } from '../models/lora.js';
import { normal_ } from '../nn/init.js';
import { Linear } from '../nn/linear.js';
import { Module } from '../nn/module.js';
import { arange, full, tensor } from '../tensor/create.js';
import { fmtShape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { logSigmoid } from './dpo.js';
import { writeFileAtomic } from '../io/atomic.js';
import { collectStepRecords, type StepRecord } from './policy.js';
import { saveTokenizerFiles } from './sft.js';
import type { ProgressStream } from './progress.js';
import { definedFields, Trainer, type LossOutput, type ScheduleKind, type StepInfo, type TrainResult } from './trainer.js';

/** The width of a causal LM's hidden states, from its config (hidden_size, GPT-2's n_embd, T5's d_model). */
export function hiddenSize(model: PreTrainedModel): number {
  const c = model.config as Record<string, unknown>;
  const h = c['hidden_size'] ?? c['n_embd'] ?? c['d_model'];
  if (typeof h !== 'number' || !Number.isSafeInteger(h) || h < 1) throw new Error(`${model.constructor.name}: the config gives no hidden size (hidden_size / n_embd)`);
  return h;
}

/**
 * The hidden state of each row's last real token: hidden [B, T, C] and attentionMask [B, T] (1 at tokens, padding on
 * either side) -> [B, C], as Hugging Face's *ForSequenceClassification pool the last non-pad token.
 */
export function lastTokenStates(hidden: Tensor, attentionMask: Tensor | null): Tensor {
  const [B, T, C] = hidden.shape as [number, number, number];
  if (attentionMask && (attentionMask.ndim !== 2 || attentionMask.shape[0] !== B || attentionMask.shape[1] !== T)) {
    throw new Error(`lastTokenStates: attentionMask ${fmtShape(attentionMask.shape)} must be [${B}, ${T}]`);
  }
  const device = hidden.device;
  const last = attentionMask
    ? argmax(mul(cast(attentionMask, 'int32'), reshape(arange(0, T, 1, { dtype: 'int32', device }), [1, T])), 1) // [B]: the last t with mask 1
    : full([B], T - 1, { dtype: 'int32', device });
  const flat = add(mul(arange(0, B, 1, { dtype: 'int32', device }), T), cast(last, 'int32')); // [B]: b * T + last_b
  return indexSelect(reshape(hidden, [B * T, C]), 0, flat); // [B, C]
}

/**
 * A reward model: a causal LM's trunk with a scalar head `score` (Linear(hidden, 1), no bias, as transformers'
 * LlamaForSequenceClassification with num_labels = 1) read at the last non-padding token.
 */
export class RewardModel extends Module {
  base: PreTrainedModel;
  score: Linear;

  constructor(base: PreTrainedModel) {
    super();
    this.base = base;
    const device = base.parameters()[0]?.device;
    this.score = new Linear(hiddenSize(base), 1, { bias: false, ...(device !== undefined ? { device } : {}) });
    const std = (base.config as { initializer_range?: number }).initializer_range ?? 0.02;
    normal_(this.score.weight, 0, std);
  }

  /** inputIds [B, T], attentionMask [B, T] -> rewards [B]. */
  forward(inputIds: Tensor, attentionMask: Tensor | null = null): Tensor {
    const out = this.base.forward({ inputIds, attentionMask });
    if (!out.lastHiddenState) throw new Error(`RewardModel: ${this.base.constructor.name} returns no lastHiddenState`);
    const pooled = lastTokenStates(out.lastHiddenState, attentionMask); // [B, C]
    return reshape(this.score.forward(pooled), [inputIds.shape[0]!]); // [B]
  }
}

/** The Bradley–Terry loss mean(−log σ(r_chosen − r_rejected)) with the accuracy (chosen scored higher) and mean margin. */
export function bradleyTerryLoss(chosen: Tensor, rejected: Tensor): { loss: Tensor; accuracy: Tensor; margin: Tensor } {
  if (chosen.ndim !== 1 || rejected.ndim !== 1 || chosen.shape[0] !== rejected.shape[0] || chosen.shape[0] === 0) {
    throw new Error(`bradleyTerryLoss: chosen ${fmtShape(chosen.shape)} and rejected ${fmtShape(rejected.shape)} must be non-empty [batch] tensors of one size`);
  }
  const d = sub(chosen, rejected);
  return { loss: mean(neg(logSigmoid(d))), accuracy: noGrad(() => mean(cast(gt(d, 0), d.dtype))), margin: noGrad(() => mean(d)) };
}

/** Rewards of tokenized sequences (no gradient, eval mode), batchSize at a time. */
export async function scoreSequences(rm: RewardModel, sequences: readonly (readonly number[])[], opts: { batchSize?: number; padId?: number } = {}): Promise<number[]> {
  const bs = opts.batchSize ?? 16, padId = opts.padId ?? 0;
  const device = rm.score.weight.device;
  const wasTraining = rm.training;
  rm.eval();
  const out: number[] = [];
  try {
    for (let i = 0; i < sequences.length; i += bs) {
      const chunk = sequences.slice(i, i + bs);
      const T = Math.max(...chunk.map((s) => s.length));
      const ids = tensor(chunk.map((s) => [...s, ...new Array<number>(T - s.length).fill(padId)]), { dtype: 'int32', device });
      const mask = tensor(chunk.map((s) => Array.from({ length: T }, (_, t) => (t < s.length ? 1 : 0))), { dtype: 'int32', device });
      const r = noGrad(() => rm.forward(ids, mask));
      out.push(...Array.from(await r.data()));
      r.dispose();
      ids.dispose();
      mask.dispose();
    }
  } finally {
    rm.train(wasTraining);
  }
  return out;
}

export interface RewardTrainOptions {
  /** Pairs per batch (default 8). */
  batchSize?: number;
  /** Passes over the pairs (default 1; with maxSteps, whichever ends first). */
  epochs?: number;
  maxSteps?: number;
  /** Peak learning rate (default 1e-5). */
  lr?: number;
  weightDecay?: number;
  warmupSteps?: number;
  schedule?: ScheduleKind;
  clipGradNorm?: number;
  /** Longest sequence; longer ones are cut (default 1024 or the model's context). */
  maxLength?: number;
  seed?: number;
  outDir?: string;
  resume?: boolean | string;
  logEvery?: number;
  checkpointEvery?: number;
  progress?: ProgressStream | false;
  onStep?: (info: StepInfo, stats: Record<string, number>) => void | Promise<void>;
  log?: (line: string) => void;
}

export interface RewardTrainResult {
  train: TrainResult;
  pairs: number;
  /** One record per step this call ran: accuracy, margin, rewards/chosen, rewards/rejected (also in metrics.jsonl). */
  stats: StepRecord[];
}

const isPair = (x: unknown): x is PreferencePair => typeof x === 'object' && x !== null && Array.isArray((x as PreferencePair).chosen?.inputIds);

/**
 * Trains a reward model on preference pairs (records with prompt / chosen / rejected, or tokenized pairs) with the
 * Bradley–Terry loss on the Trainer; every parameter trains (trunk and head). Per-step statistics go to metrics.jsonl
 * and reward-accuracy.svg.
 */
export async function trainRewardModel(rm: RewardModel, tokenizer: Tokenizer, data: readonly PreferenceRecord[] | readonly PreferencePair[], opts: RewardTrainOptions = {}): Promise<RewardTrainResult> {
  const log = opts.log ?? ((l: string) => { process.stderr.write(`${l}\n`); });
  if (!Array.isArray(data) || data.length === 0) throw new Error('reward: data must be a non-empty array of preference records or tokenized pairs');
  const limit = rm.base.positionLimit();
  const maxLength = opts.maxLength ?? Math.min(1024, limit?.value ?? 1024);
  let pairs: PreferencePair[];
  if ((data as readonly unknown[]).every(isPair)) pairs = [...(data as readonly PreferencePair[])];
  else {
    const out = tokenizePreference(tokenizer, data as readonly PreferenceRecord[], { maxLength });
    pairs = out.pairs;
    if (out.stats.dropped) log(`reward: ${out.stats.dropped} pair(s) left out: a side has no completion token`);
  }
  if (pairs.length === 0) throw new Error('reward: no pair to train on');
  const padId = tokenizer.padTokenId ?? tokenizer.eosTokenId ?? 0;
  const seed = opts.seed ?? 0;
  const loader = new DataLoader<PreferencePair, SftBatch>(pairs, { batchSize: opts.batchSize ?? 8, shuffle: true, seed, collate: (items) => collatePreference(items, padId) });
  const stats: StepRecord[] = [];
  const device = rm.score.weight.device;
  const loss = (m: RewardModel, b: SftBatch): LossOutput => {
    const B = b.inputIds.shape[0]! / 2;
    const r = m.forward(b.inputIds.to(device), b.attentionMask.to(device)); // [2B]: chosen rows, then rejected
    const out = bradleyTerryLoss(narrow(r, 0, 0, B), narrow(r, 0, B, B));
    return { loss: out.loss, tokens: B, metrics: { accuracy: out.accuracy, margin: out.margin, 'rewards/chosen': mean(narrow(r, 0, 0, B)), 'rewards/rejected': mean(narrow(r, 0, B, B)) } };
  };
  const trainer = new Trainer<RewardModel, SftBatch>({
    model: rm, data: loader, loss,
    optimizer: { lr: opts.lr ?? 1e-5, weightDecay: opts.weightDecay ?? 0 },
    schedule: { kind: opts.schedule ?? 'linear', warmupSteps: opts.warmupSteps ?? 0 },
    clipGradNorm: opts.clipGradNorm ?? 1,
    ...(opts.maxSteps !== undefined ? { maxSteps: opts.maxSteps } : {}),
    ...(opts.epochs !== undefined || opts.maxSteps === undefined ? { epochs: opts.epochs ?? 1 } : {}),
    ...definedFields(opts, ['outDir', 'resume', 'logEvery', 'checkpointEvery', 'progress']),
    progressMetrics: ['accuracy', 'margin'],
    plots: [{ file: 'reward-accuracy.svg', metrics: ['accuracy'], title: 'Reward model: training accuracy', yLabel: 'accuracy' }],
    onStep: collectStepRecords(stats, opts.onStep),
    seed,
  });
  const train = await trainer.train();
  rm.eval();
  return { train, pairs: pairs.length, stats };
}

// ---- saving and loading as a Hugging Face folder ----

/** The base model's LM head: Hugging Face's *ForSequenceClassification has the trunk and `score` only. */
const LM_HEAD = /^lm_head\./;

/** model_type of the causal LMs whose config.json can be written from the model alone (without a base folder). */
const MODEL_TYPES: Record<string, string> = { LlamaForCausalLM: 'llama', GPT2LMHeadModel: 'gpt2', MistralForCausalLM: 'mistral', Qwen2ForCausalLM: 'qwen2', GemmaForCausalLM: 'gemma' };

/** transformers' sequence-classification class of a causal LM class: LlamaForCausalLM -> LlamaForSequenceClassification, GPT2LMHeadModel -> GPT2ForSequenceClassification. */
export function sequenceClassificationName(causalLM: string): string {
  const m = /^(\w+?)(?:ForCausalLM|LMHeadModel)$/.exec(causalLM);
  if (!m) throw new Error(`reward model: ${causalLM} is not a causal LM class name (…ForCausalLM or …LMHeadModel)`);
  return `${m[1]}ForSequenceClassification`;
}

/**
 * Saves a reward model into `dir` as transformers' XxxForSequenceClassification with num_labels 1 (TRL's reward
 * models): model.safetensors holds the trunk under the causal LM's names (model.* for LLaMA, transformer.* for GPT-2),
 * without the LM head, and the head as `score.weight` [1, hidden]; config.json is the base's (baseDir's when given)
 * with architectures, num_labels, id2label / label2id and pad_token_id (the last non-pad token is the one scored). The
 * tokenizer files go alongside. Returns the names of the files written.
 */
export async function saveRewardModel(rm: RewardModel, tokenizer: Tokenizer, dir: string, opts: { baseDir?: string | undefined } = {}): Promise<string[]> {
  if (hasLora(rm.base)) throw new Error('saveRewardModel: the model has LoRA adapters; merge them first (mergeLora)');
  const causal = rm.base.constructor.name;
  let config: Record<string, unknown>;
  if (opts.baseDir !== undefined && (await fileExists(join(opts.baseDir, 'config.json')))) {
    config = (await readConfig(opts.baseDir)).json;
  } else {
    const type = MODEL_TYPES[causal];
    if (type === undefined) throw new Error(`saveRewardModel: cannot write config.json for a ${causal} without baseDir (the folder whose config.json to copy)`);
    config = { model_type: type, ...(rm.base.config as Record<string, unknown>) };
  }
  const padId = config['pad_token_id'] ?? tokenizer.padTokenId ?? tokenizer.eosTokenId;
  config = {
    ...config, architectures: [sequenceClassificationName(causal)], num_labels: 1, id2label: { 0: 'LABEL_0' }, label2id: { LABEL_0: 0 },
    ...(padId !== null && padId !== undefined ? { pad_token_id: padId } : {}),
  };
  const seen = new Set<Tensor>();
  const tensors: Record<string, Tensor> = {};
  for (const [k, t] of Object.entries(rm.base.stateDict())) {
    if (LM_HEAD.test(k) || seen.has(t)) continue;
    seen.add(t);
    tensors[k] = t;
  }
  tensors['score.weight'] = rm.score.weight;
  await mkdir(dir, { recursive: true });
  await saveSafetensors(join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  await writeFileAtomic(join(dir, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
  return ['model.safetensors', 'config.json', ...await saveTokenizerFiles(tokenizer, dir, opts.baseDir)];
}

/**
 * Loads a reward model from a Hugging Face XxxForSequenceClassification folder with one label (saveRewardModel's,
 * or TRL's for a LLaMA- or GPT-2-family model): the trunk into the causal LM of its model_type (whose LM head, not
 * in the folder and not used for scoring, keeps its fresh weights) and `score.weight` into the head. Every name and
 * shape is checked; errors name the file.
 */
export async function loadRewardModel(dir: string, opts: { device?: string } = {}): Promise<RewardModel> {
  const { path, json } = await readConfig(dir);
  const archs = json['architectures'];
  const arch = Array.isArray(archs) && typeof archs[0] === 'string' ? archs[0] : null;
  if (arch === null || !arch.endsWith('ForSequenceClassification')) {
    throw new Error(`${path}: architectures is ${JSON.stringify(archs ?? null)}; a reward model is an XxxForSequenceClassification with num_labels 1 (attend reward writes one)`);
  }
  const labels = json['id2label'] !== undefined && json['id2label'] !== null && typeof json['id2label'] === 'object' ? Object.keys(json['id2label']).length : json['num_labels'] ?? 2;
  if (labels !== 1) throw new Error(`${path}: a reward model has one label (num_labels 1), this config has ${String(labels)}`);
  const { model, ignore } = causalLMFromConfig(json, path);
  const rm = new RewardModel(model);
  const { tensors, source } = await loadCheckpoint(dir);
  try {
    const score = tensors['score.weight'];
    if (score === undefined) throw new Error(`${source}: no score.weight (the reward head of a ${arch})`);
    const trunk = Object.fromEntries(Object.entries(tensors).filter(([k]) => k !== 'score.weight'));
    const own = model.stateDict();
    // The LM head is not saved: it keeps the fresh weights it has (reward models read the hidden states).
    for (const k of Object.keys(own)) if (LM_HEAD.test(k) && !(k in trunk)) trunk[k] = own[k]!;
    loadPretrainedWeights(model, trunk, source, ignore);
    loadPretrainedWeights(rm.score, { weight: score }, `${source} (score.weight)`);
  } finally {
    for (const t of Object.values(tensors)) t.dispose();
  }
  if (opts.device) rm.to(opts.device);
  return rm.eval();
}

