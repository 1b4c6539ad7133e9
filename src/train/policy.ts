// What the RL fine-tuning methods (GRPO, PPO) share: per-token log-probabilities and entropy, the k3 KL estimator, the
// reference model (adapters disabled, or a frozen copy), sampling completions, the adapter, and per-step statistics.

import { noGrad } from '../autograd/engine.js';
import { div, exp, mul, neg, sub } from '../autograd/ops/elementwise.js';
import { gather } from '../autograd/ops/indexing.js';
import { detach, reshape, slice } from '../autograd/ops/movement.js';
import { logSoftmax, softmax } from '../autograd/ops/nn.js';
import { sum } from '../autograd/ops/reduce.js';
import { generate } from '../generation/generate.js';
import type { ModelInputs, PreTrainedModel } from '../models/base.js';
import { addLora, hasLora, markOnlyLoraTrainable, qloraQuantize, withLoraDisabled, type QloraReport } from '../models/lora.js';
import { tensor } from '../tensor/create.js';
import type { Generator } from '../tensor/random.js';
import { fmtShape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { sftLoraOptions, type SftLoraOptions } from './sft.js';
import type { ProgressStream } from './progress.js';
import { definedFields, type ScheduleKind, type StepInfo } from './trainer.js';

/** The run settings GRPO and PPO share: the adapter, the Trainer's optimisation and output settings. */
export interface RolloutRunOptions {
  /** A LoRA adapter instead of full fine-tuning (the reference is then the model with adapters disabled). */
  lora?: SftLoraOptions | boolean;
  /** QLoRA: the base's Linear layers (not the output head) frozen in NF4 under the adapter, as sft's (implies lora). */
  qlora?: boolean;
  /** Peak learning rate (each trainer's default is TRL's). */
  lr?: number;
  weightDecay?: number;
  warmupSteps?: number;
  schedule?: ScheduleKind;
  clipGradNorm?: number;
  /** Updates to make (default: one pass over the prompts). */
  maxSteps?: number;
  epochs?: number;
  seed?: number;
  outDir?: string;
  resume?: boolean | string;
  logEvery?: number;
  checkpointEvery?: number;
  progress?: ProgressStream | false;
  onStep?: (info: StepInfo, stats: Record<string, number>) => void | Promise<void>;
  /** The folder the model came from (config and tokenizer files are copied next to the result). */
  baseDir?: string;
  log?: (line: string) => void;
}

/**
 * log p(ids[t+1] | ids[..t]) for every position: logits [B, T, V], ids [B, T] -> [B, T-1] (position t of the result
 * scores token t + 1), with gradient to the logits.
 */
export function tokenLogps(logits: Tensor, ids: Tensor): Tensor {
  if (logits.ndim !== 3 || ids.ndim !== 2 || ids.shape[0] !== logits.shape[0] || ids.shape[1] !== logits.shape[1]) {
    throw new Error(`tokenLogps: logits [batch, length, vocab] ${fmtShape(logits.shape)} and ids [batch, length] ${fmtShape(ids.shape)} must agree`);
  }
  const [B, T] = ids.shape as [number, number];
  const lp = logSoftmax(slice(logits, 1, 0, T - 1), -1); // [B, T-1, V]
  const next = reshape(slice(ids, 1, 1, T), [B, T - 1, 1]); // [B, T-1, 1]
  return reshape(gather(lp, 2, next), [B, T - 1]); // [B, T-1]
}

/**
 * The logits of the policy that sampled at `temperature`: logits / T (TRL's GRPO and PPO score completions this way, so
 * the policy trained and the KL measured are those of the sampling distribution).
 */
export function atTemperature(logits: Tensor, temperature: number): Tensor {
  return temperature === 1 ? logits : div(logits, temperature);
}

/** A sampling temperature: a positive finite number (default 1); anything else is an error naming `where`. */
export function checkTemperature(temperature: number | undefined, where: string): number {
  const t = temperature ?? 1;
  if (!(t > 0) || !Number.isFinite(t)) throw new Error(`${where}: temperature must be a positive number, got ${String(t)}`);
  return t;
}

/** The entropy of each next-token distribution, without gradient: logits [B, T, V] -> [B, T-1]. */
export function tokenEntropy(logits: Tensor): Tensor {
  return noGrad(() => {
    const T = logits.shape[1]!;
    const l = detach(slice(logits, 1, 0, T - 1)); // [B, T-1, V]
    return neg(sum(mul(softmax(l, -1), logSoftmax(l, -1)), -1)); // [B, T-1]
  });
}

/**
 * The per-token KL(π || π_ref) estimate Schulman's k3 (TRL's GRPO): exp(ref − logp) − (ref − logp) − 1, unbiased
 * and never negative; 0 where the two agree.
 */
export function klK3(logps: Tensor, refLogps: Tensor): Tensor {
  const d = sub(refLogps, logps);
  return sub(sub(exp(d), d), 1);
}

/**
 * The reference policy's logits (no gradient): the same model with its LoRA adapters switched off when it has them,
 * else a frozen copy made now (full fine-tuning), so the reference is the model as it was before training.
 */
export function referenceForward(policy: PreTrainedModel): (inputs: ModelInputs) => Tensor {
  if (hasLora(policy)) return (inputs) => noGrad(() => withLoraDisabled(policy, () => policy.forward(inputs).logits));
  const ref = frozenCopy(policy);
  return (inputs) => noGrad(() => ref.forward(inputs).logits);
}

/** A copy of a model with every parameter frozen, in eval mode, on the same device. */
export function frozenCopy<M extends PreTrainedModel>(model: M): M {
  const Ctor = model.constructor as new (config: object) => M;
  const copy = new Ctor(model.config);
  const device = model.parameters()[0]?.device;
  if (device !== undefined) copy.to(device);
  if (model.dtype !== 'float32') copy.to(model.dtype);
  copy.loadStateDict(model.stateDict());
  copy.generationConfig = { ...model.generationConfig };
  for (const p of copy.parameters()) p.requiresGrad = false;
  return copy.eval();
}

/** The device of a model's parameters (the default device when it has none). */
export function modelDevice(model: PreTrainedModel): string | undefined {
  return model.parameters()[0]?.device;
}

export interface SampleOptions {
  maxNewTokens: number;
  temperature?: number;
  topP?: number;
  topK?: number;
  eosTokenId?: number[];
  padTokenId?: number;
  generator: Generator;
}

/**
 * `k` sampled completions of one prompt (token ids), each cut after its first eos (kept). The model generates in eval
 * mode (no dropout) and is put back in the mode it was in.
 */
export async function sampleCompletions(model: PreTrainedModel, prompt: readonly number[], k: number, opts: SampleOptions): Promise<number[][]> {
  const wasTraining = model.training;
  model.eval();
  const ids = tensor(Int32Array.from(Array.from({ length: k }, () => prompt).flat()), { dtype: 'int32', shape: [k, prompt.length], device: modelDevice(model) });
  try {
    const out = await generate(model, ids, {
      doSample: true, maxNewTokens: opts.maxNewTokens, generator: opts.generator, temperature: opts.temperature ?? 1,
      ...(opts.topP !== undefined ? { topP: opts.topP } : {}), ...(opts.topK !== undefined ? { topK: opts.topK } : {}),
      ...(opts.eosTokenId?.length ? { eosTokenId: opts.eosTokenId } : {}), ...(opts.padTokenId !== undefined ? { padTokenId: opts.padTokenId } : {}),
    });
    const data = await out.data();
    const L = out.shape[1]!;
    out.dispose();
    const eos = new Set(opts.eosTokenId ?? []);
    return Array.from({ length: k }, (_, r) => {
      const row = Array.from(data.subarray(r * L + prompt.length, (r + 1) * L));
      const end = row.findIndex((t) => eos.has(t));
      return end < 0 ? row : row.slice(0, end + 1);
    });
  } finally {
    ids.dispose();
    model.train(wasTraining);
  }
}

/** Prompt + completion rows padded on the right, with the masks the losses need. */
export interface RolloutTokens {
  /** [N][T] token ids (padding: padId). */
  ids: number[][];
  /** [N][T] 1 at real tokens. */
  attention: number[][];
  /** [N][T-1] 1 where position t predicts a completion token (t + 1 is in the completion). */
  completionMask: number[][];
}

/** Rows `prompt_i + completion_i` padded to one length; completions may be empty (no token to score). */
export function rolloutTokens(prompts: readonly (readonly number[])[], completions: readonly (readonly number[])[], padId: number): RolloutTokens {
  const rows = prompts.map((p, i) => [...p, ...completions[i]!]);
  const T = Math.max(2, ...rows.map((r) => r.length));
  return {
    ids: rows.map((r) => [...r, ...new Array<number>(T - r.length).fill(padId)]),
    attention: rows.map((r) => Array.from({ length: T }, (_, t) => (t < r.length ? 1 : 0))),
    completionMask: rows.map((r, i) => Array.from({ length: T - 1 }, (_, t) => (t + 1 >= prompts[i]!.length && t + 1 < r.length ? 1 : 0))),
  };
}

/**
 * The Trainer settings GRPO and PPO share: TRL's schedule and clipping defaults, one pass over the prompts unless
 * maxSteps, the rollout sampler saved in checkpoints, and each step's metrics kept in `records`.
 */
export function rolloutTrainerSettings(opts: RolloutRunOptions, defaultLr: number, sampler: Generator, records: StepRecord[], seed: number) {
  return {
    optimizer: { lr: opts.lr ?? defaultLr, weightDecay: opts.weightDecay ?? 0 },
    schedule: { kind: opts.schedule ?? 'linear', warmupSteps: opts.warmupSteps ?? 0 },
    clipGradNorm: opts.clipGradNorm ?? 1,
    ...(opts.maxSteps !== undefined ? { maxSteps: opts.maxSteps } : { epochs: opts.epochs ?? 1 }),
    ...(opts.maxSteps !== undefined && opts.epochs !== undefined ? { epochs: opts.epochs } : {}),
    generators: { rollout: sampler },
    ...definedFields(opts, ['outDir', 'resume', 'logEvery', 'checkpointEvery', 'progress']),
    onStep: collectStepRecords(records, opts.onStep),
    seed,
  };
}

/** One step's statistics: the loss function's metrics averaged over the step's batches (StepInfo.metrics). */
export type StepRecord = { step: number } & Record<string, number>;

/** An onStep that keeps each step's metrics in `records` (the train functions' `stats`) and passes them on. */
export function collectStepRecords(records: StepRecord[], onStep?: (info: StepInfo, stats: Record<string, number>) => void | Promise<void>): (info: StepInfo) => Promise<void> {
  return async (info) => {
    const stats = info.metrics ?? {};
    records.push({ step: info.step, ...stats });
    await onStep?.(info, stats);
  };
}

/** `name`: the mean of `values`, and `name_std`: their unbiased standard deviation (TRL's reward / reward_std). */
export function meanStd(name: string, values: readonly number[]): Record<string, number> {
  const n = values.length, mean = values.reduce((a, c) => a + c, 0) / n;
  return { [name]: mean, [`${name}_std`]: Math.sqrt(values.reduce((a, c) => a + (c - mean) ** 2, 0) / Math.max(n - 1, 1)) };
}

/**
 * A LoRA adapter (and with qlora, the NF4 base under it, as sft's) on a model about to be trained by `command`:
 * qlora quantizes every Linear layer but the output head and implies lora unless it is false. Logs the NF4 bytes.
 */
export async function addTrainableAdapter(model: PreTrainedModel, opts: { lora?: SftLoraOptions | boolean | undefined; qlora?: boolean | undefined }, command: string, log: (line: string) => void): Promise<{ lora: Required<SftLoraOptions> | null; qlora: QloraReport | null }> {
  if (opts.qlora && opts.lora === false) throw new Error(`${command}: qlora trains a LoRA adapter over an NF4 base; it cannot be combined with lora: false`);
  const lora = sftLoraOptions(opts.qlora && opts.lora === undefined ? true : opts.lora);
  let qlora: QloraReport | null = null;
  if (opts.qlora) {
    qlora = await qloraQuantize(model);
    const n = (x: number): string => x.toLocaleString('en-US');
    log(`${command}: QLoRA: ${qlora.layers.length} layers in NF4: ${n(qlora.nf4Bytes)} bytes against ${n(qlora.float32Bytes)} in float32 (${(qlora.nf4Bytes / qlora.float32Bytes).toFixed(3)}x); model weights ${n(qlora.modelBytesBefore)} -> ${n(qlora.modelBytesAfter)} bytes`);
  }
  if (lora) {
    addLora(model, lora);
    markOnlyLoraTrainable(model);
  }
  return { lora, qlora };
}
