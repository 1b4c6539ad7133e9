// Supervised fine-tuning (TRL's SFTTrainer) on the Trainer: completion-only loss, padded or packed batches, full fine-tuning or LoRA, saved as a Hugging Face folder or a PEFT adapter.
//
// Reference: trl/trainer/sft_trainer.py and sft_config.py (defaults: lr 2e-5, 3 epochs, batch 8, max_length 1024,
// linear decay, max_grad_norm 1, no weight decay); peft's LoraConfig for the adapter options.

import { copyFile, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileExists } from '../io/hf.js';
import { saveSafetensors } from '../io/safetensors.js';
import { DataLoader } from '../data/loader.js';
import { collateSft, IGNORE_INDEX, packSft, tokenizeSft, type PackedSequence, type SftBatch, type SftExample, type SftRecord, type SftTokenizeStats, type TokenizeSftOptions } from '../data/sft.js';
import type { PreTrainedModel } from '../models/base.js';
import { addLora, LoraLinear, markOnlyLoraTrainable, qloraQuantize, saveLoraAdapter, type QloraReport } from '../models/lora.js';
import { QuantLinear } from '../quant/quant-linear.js';
import { manualSeed } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { writeFileAtomic } from '../io/atomic.js';
import type { ProgressStream } from './progress.js';
import { definedFields, Trainer, type LossOutput, type ScheduleKind, type StepInfo, type TrainResult } from './trainer.js';

/** A LoRA adapter to train instead of the whole model: PEFT's LoraConfig fields, with TRL-example defaults. */
export interface SftLoraOptions {
  /** Rank (default 8). */
  r?: number;
  /** lora_alpha (default 16): the update is scaled by alpha / r, or alpha / sqrt(r) with useRslora. */
  alpha?: number;
  /** Dropout on the adapter's input (default 0.05). */
  dropout?: number;
  /** Layer names, a regular expression, or 'all-linear' (default: every Linear but the output head). */
  targetModules?: readonly string[] | string;
  /** rsLoRA: scale by alpha / sqrt(r) (default false). */
  useRslora?: boolean;
}

export interface SftOptions extends TokenizeSftOptions {
  /** Train a LoRA adapter (options, or true for the defaults) instead of every weight. Default: full fine-tuning. */
  lora?: SftLoraOptions | boolean;
  /**
   * QLoRA: quantize every Linear layer but the output head to NF4 (frozen; block 64, double quantization, as
   * bitsandbytes' load_in_4bit) before adding the adapter. Implies `lora: true` when lora is not given. Default false.
   */
  qlora?: boolean;
  /**
   * Pack several examples into each sequence of maxLength tokens (best-fit decreasing). Positions and attention
   * restart at each example (a block-diagonal [B, 1, T, T] mask, as transformers' packing with position ids), and no
   * example's first token is a target: each example trains as it would alone. Default false.
   */
  packing?: boolean;
  /** Examples (or packed sequences) per batch (default 8). */
  batchSize?: number;
  /** Passes over the data (default 3; with maxSteps, whichever ends first). */
  epochs?: number;
  maxSteps?: number;
  /** Peak learning rate (default 2e-5, or 2e-4 with LoRA). */
  lr?: number;
  /** AdamW weight decay (default 0, as TRL). */
  weightDecay?: number;
  /** Linear warm-up steps (default 0). */
  warmupSteps?: number;
  /** Decay after warm-up (default 'linear', as Hugging Face's Trainer). */
  schedule?: ScheduleKind;
  /** Gradient clipping to this total norm (default 1). */
  clipGradNorm?: number;
  gradAccumSteps?: number;
  /** Seeds the shuffle, the adapter's initialization and dropout (default 0). */
  seed?: number;
  /** Checkpoints, metrics.jsonl, loss.svg and, at the end, the model (or adapter) with the tokenizer files. */
  outDir?: string;
  /** Continue the checkpoint in outDir (true) or in another folder. */
  resume?: boolean | string;
  device?: string;
  logEvery?: number;
  checkpointEvery?: number;
  skipNonfinite?: boolean;
  progress?: ProgressStream | false;
  onStep?: (info: StepInfo) => void | Promise<void>;
  /** The folder the model was loaded from: its config.json and tokenizer files are copied next to the result. */
  baseDir?: string;
  /** Warnings and notes (packing, dropped or truncated examples, trainable parameters). Default: stderr. */
  log?: (line: string) => void;
}

export interface SftResult {
  train: TrainResult;
  /** Examples trained on (after dropping those without a completion token). */
  examples: number;
  /** Sequences per epoch: the examples, or the packed sequences. */
  sequences: number;
  /** Tokenization counts (null when tokenized examples were given). */
  stats: SftTokenizeStats | null;
  trainableParameters: number;
  totalParameters: number;
  /** Layers that got a LoRA adapter ([] for full fine-tuning). */
  adapterLayers: string[];
  /** With qlora: the NF4 layers and their bytes against float32 (null otherwise). */
  qlora: QloraReport | null;
  /** Files written into outDir at the end. */
  saved: string[];
}

/** TRL's default max_length. */
export const SFT_MAX_LENGTH = 1024;

/** A padded batch with its count of real tokens (for tokens per second). */
export type SftTrainBatch = SftBatch & { tokens: number };

const isExample = (x: unknown): x is SftExample => typeof x === 'object' && x !== null && Array.isArray((x as SftExample).inputIds) && Array.isArray((x as SftExample).labels);

function positive(v: number | undefined, name: string, integer: boolean): void {
  if (v === undefined) return;
  if (typeof v !== 'number' || !(v > 0) || !Number.isFinite(v) || (integer && !Number.isSafeInteger(v))) throw new Error(`sft: ${name} must be a positive ${integer ? 'integer' : 'number'}, got ${String(v)}`);
}

/** The LoRA options with their defaults filled in, or null for full fine-tuning. */
export function sftLoraOptions(lora: SftOptions['lora']): Required<SftLoraOptions> | null {
  if (lora === undefined || lora === false) return null;
  const o = lora === true ? {} : lora;
  return { r: o.r ?? 8, alpha: o.alpha ?? 16, dropout: o.dropout ?? 0.05, targetModules: o.targetModules ?? 'all-linear', useRslora: o.useRslora ?? false };
}

/**
 * The SFT loss of a batch: the model's mean cross entropy over the label tokens (-100 on prompts and padding, so
 * only completions count), with the batch's position ids (restarting per packed example) and padding mask.
 */
export function sftLoss(model: PreTrainedModel, batch: SftTrainBatch): LossOutput {
  const device = model.parameters()[0]?.device;
  const on = (t: Tensor): Tensor => (device === undefined || t.device === device ? t : t.to(device));
  const out = model.forward({ inputIds: on(batch.inputIds), attentionMask: on(batch.attentionMask), labels: on(batch.labels), positionIds: on(batch.positionIds) });
  if (!out.loss) throw new Error(`sft: ${model.constructor.name} returned no loss for labels; SFT needs a causal language model`);
  return { loss: out.loss, tokens: batch.tokens };
}

/** Unique parameters (tied weights once; a quantized layer's weights count as frozen parameters): [trainable, all]. */
function countParameters(model: PreTrainedModel): [number, number] {
  const seen = new Set<unknown>();
  let trainable = 0, all = 0;
  for (const m of model.modules()) {
    // An adapter's base is not a child module (its parameters would be listed twice): look through it.
    const q = m instanceof QuantLinear ? m : m instanceof LoraLinear && m.base instanceof QuantLinear ? m.base : null;
    if (!q || seen.has(q.weight)) continue;
    seen.add(q.weight);
    all += q.inFeatures * q.outFeatures;
  }
  for (const p of model.parameters()) {
    if (seen.has(p)) continue;
    seen.add(p);
    all += p.numel();
    if (p.requiresGrad) trainable += p.numel();
  }
  return [trainable, all];
}

/**
 * Fine-tunes a causal LM on SFT data (TRL's SFTTrainer): `data` is records in TRL's formats (tokenized here with
 * completion-only labels by default) or examples already tokenized. Full fine-tuning, LoRA with `lora`, or QLoRA
 * with `qlora` (the base quantized to NF4 in place, so the model stays quantized); batches
 * padded on the right, or packed with `packing`. Runs on the Trainer (progress, metrics.jsonl, loss.svg, atomic
 * checkpoints, resume); with outDir, the result is saved there at the end: a Hugging Face folder (config.json,
 * model.safetensors) or a PEFT adapter (adapter_config.json, adapter_model.safetensors), with the tokenizer's files.
 * The model is left trained, in eval mode, with its adapter unmerged.
 */
export async function sft(model: PreTrainedModel, tokenizer: Tokenizer, data: readonly SftRecord[] | readonly SftExample[], opts: SftOptions = {}): Promise<SftResult> {
  const log = opts.log ?? ((l: string) => { process.stderr.write(`${l}\n`); });
  if (!Array.isArray(data) || data.length === 0) throw new Error('sft: data must be a non-empty array of SFT records or tokenized examples');
  for (const [name, integer] of [['batchSize', true], ['epochs', true], ['maxSteps', true], ['lr', false], ['maxLength', true], ['gradAccumSteps', true], ['clipGradNorm', false]] as const) positive(opts[name], name, integer);
  if (opts.weightDecay !== undefined && !(opts.weightDecay >= 0)) throw new Error(`sft: weightDecay must be >= 0, got ${String(opts.weightDecay)}`);
  const limit = model.positionLimit();
  if (opts.maxLength !== undefined && limit !== null && opts.maxLength > limit.value) {
    throw new Error(`sft: maxLength ${opts.maxLength} is more than the model's ${limit.key} = ${limit.value}`);
  }
  const maxLength = opts.maxLength ?? Math.min(SFT_MAX_LENGTH, limit?.value ?? SFT_MAX_LENGTH);

  // ---- tokens ----
  let examples: SftExample[];
  let stats: SftTokenizeStats | null = null;
  const tokenized = data.filter(isExample).length;
  if (tokenized !== 0 && tokenized !== data.length) throw new Error(`sft: data mixes tokenized examples (${tokenized}) with records (${data.length - tokenized}); give one kind`);
  if (tokenized) {
    examples = (data as readonly SftExample[]).map((ex, i) => {
      if (ex.inputIds.length !== ex.labels.length || ex.inputIds.length === 0) throw new Error(`sft: example ${i} has ${ex.inputIds.length} input ids and ${ex.labels.length} labels`);
      return ex.inputIds.length <= maxLength ? ex : { inputIds: ex.inputIds.slice(0, maxLength), labels: ex.labels.slice(0, maxLength) };
    }).filter((ex) => ex.labels.some((l) => l !== IGNORE_INDEX));
  } else {
    const out = tokenizeSft(tokenizer, data as readonly SftRecord[], { ...opts, maxLength });
    examples = out.examples;
    stats = out.stats;
    if (stats.truncated) log(`sft: ${stats.truncated} example(s) cut to maxLength ${maxLength}`);
    if (stats.dropped) log(`sft: ${stats.dropped} example(s) left out: no completion token to train on (after truncation)`);
    if (stats.promptMismatch) log(`sft: ${stats.promptMismatch} example(s) tokenize their prompt differently alone than followed by the completion; the labels start where the prompt alone ends`);
  }
  if (examples.length === 0) throw new Error('sft: no example has a completion token to train on');
  const vocab = (model.config as { vocab_size?: number }).vocab_size;
  if (vocab !== undefined) {
    examples.forEach((ex, i) => {
      const bad = ex.inputIds.find((id) => !Number.isInteger(id) || id < 0 || id >= vocab);
      if (bad !== undefined) throw new Error(`sft: example ${i} has token id ${bad}, outside the model's vocab_size ${vocab} (is the tokenizer the model's?)`);
    });
  }
  let sequences: (SftExample | PackedSequence)[] = examples;
  if (opts.packing) {
    sequences = packSft(examples, maxLength);
    log(`sft: packed ${examples.length} examples into ${sequences.length} sequences of at most ${maxLength} tokens`);
  }
  const padId = tokenizer.padTokenId ?? tokenizer.eosTokenId ?? 0;
  const batchSize = opts.batchSize ?? 8;
  const seed = opts.seed ?? 0;
  const loader = new DataLoader<SftExample | PackedSequence, SftTrainBatch>(sequences, {
    batchSize, shuffle: true, seed,
    collate: (items) => ({ ...collateSft(items, padId), tokens: items.reduce((n, e) => n + e.inputIds.length, 0) }),
  });

  // ---- what trains ----
  if (opts.qlora && opts.lora === false) throw new Error('sft: qlora trains a LoRA adapter over an NF4 base; it cannot be combined with lora: false');
  const lora = sftLoraOptions(opts.qlora && opts.lora === undefined ? true : opts.lora);
  let qlora: QloraReport | null = null;
  if (opts.qlora) {
    qlora = await qloraQuantize(model);
    const n = (x: number): string => x.toLocaleString('en-US');
    log(`sft: QLoRA: ${qlora.layers.length} layers in NF4: ${n(qlora.nf4Bytes)} bytes against ${n(qlora.float32Bytes)} in float32 (${(qlora.nf4Bytes / qlora.float32Bytes).toFixed(3)}x); model weights ${n(qlora.modelBytesBefore)} -> ${n(qlora.modelBytesAfter)} bytes`);
  }
  let adapterLayers: string[] = [];
  if (lora) {
    manualSeed(seed); // the adapter's initialization (a resumed run restores the trained adapter over it)
    adapterLayers = addLora(model, lora);
    markOnlyLoraTrainable(model);
  }
  const [trainable, total] = countParameters(model);
  log(`sft: ${lora ? `LoRA r ${lora.r} on ${adapterLayers.length} layers` : 'full fine-tuning'}: trainable params ${trainable.toLocaleString('en-US')} of ${total.toLocaleString('en-US')} (${((100 * trainable) / total).toFixed(3)}%)`);

  const trainer = new Trainer<PreTrainedModel, SftTrainBatch>({
    model, data: loader, loss: sftLoss,
    optimizer: { lr: opts.lr ?? (lora ? 2e-4 : 2e-5), weightDecay: opts.weightDecay ?? 0 },
    schedule: { kind: opts.schedule ?? 'linear', warmupSteps: opts.warmupSteps ?? 0 },
    clipGradNorm: opts.clipGradNorm ?? 1,
    ...(opts.maxSteps !== undefined ? { maxSteps: opts.maxSteps } : {}),
    ...(opts.epochs !== undefined || opts.maxSteps === undefined ? { epochs: opts.epochs ?? 3 } : {}),
    ...definedFields(opts, ['gradAccumSteps', 'outDir', 'resume', 'device', 'logEvery', 'checkpointEvery', 'skipNonfinite', 'progress', 'onStep']),
    seed,
  });
  const train = await trainer.train();
  model.eval();
  const saved = opts.outDir !== undefined ? await saveSftModel(model, tokenizer, opts.outDir, { baseDir: opts.baseDir, lora: lora !== null }) : [];
  return { train, examples: examples.length, sequences: sequences.length, stats, trainableParameters: trainable, totalParameters: total, adapterLayers, qlora, saved };
}

/** model_type of the causal LMs a config.json can be written for without a base folder to copy it from. */
const MODEL_TYPES: Record<string, string> = { LlamaForCausalLM: 'llama', GPT2LMHeadModel: 'gpt2' };

/** Tokenizer files copied from the base folder when it has them. */
const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'chat_template.jinja', 'generation_config.json'];

/**
 * Saves a fine-tuned model into `dir`: with a LoRA adapter, PEFT's adapter_config.json (base_model_name_or_path =
 * baseDir) and adapter_model.safetensors; otherwise model.safetensors (tied weights once) and config.json (baseDir's,
 * else written from the model's config). The tokenizer files come from baseDir, else from `tokenizer`. Returns the
 * names of the files written.
 */
export async function saveSftModel(model: PreTrainedModel, tokenizer: Tokenizer, dir: string, opts: { baseDir?: string | undefined; lora: boolean }): Promise<string[]> {
  const saved: string[] = [];
  if (opts.lora) {
    await saveLoraAdapter(model, dir);
    if (opts.baseDir !== undefined) {
      const path = join(dir, 'adapter_config.json');
      const config = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
      await writeFile(path, `${JSON.stringify({ ...config, base_model_name_or_path: opts.baseDir }, null, 2)}\n`);
    }
    saved.push('adapter_config.json', 'adapter_model.safetensors');
  } else {
    const seen = new Set<Tensor>();
    const tensors: Record<string, Tensor> = {};
    for (const [k, t] of Object.entries(model.stateDict())) {
      if (seen.has(t)) continue;
      seen.add(t);
      tensors[k] = t;
    }
    await saveSafetensors(join(dir, 'model.safetensors'), tensors, { format: 'pt' });
    let config: string;
    if (opts.baseDir !== undefined && (await fileExists(join(opts.baseDir, 'config.json')))) {
      config = await readFile(join(opts.baseDir, 'config.json'), 'utf8');
    } else {
      const type = MODEL_TYPES[model.constructor.name];
      if (type === undefined) throw new Error(`sft: cannot write config.json for a ${model.constructor.name} without baseDir (the folder whose config.json to copy)`);
      config = `${JSON.stringify({ architectures: [model.constructor.name], model_type: type, ...model.config }, null, 2)}\n`;
    }
    await writeFileAtomic(join(dir, 'config.json'), config);
    saved.push('model.safetensors', 'config.json');
  }
  saved.push(...await saveTokenizerFiles(tokenizer, dir, opts.baseDir));
  return saved;
}

/**
 * The tokenizer next to a saved model in `dir`: its files copied from baseDir (tokenizer.json, tokenizer_config.json,
 * special_tokens_map.json, chat_template.jinja, generation_config.json) where it has them, else written from
 * `tokenizer`. Returns the names of the files written.
 */
export async function saveTokenizerFiles(tokenizer: Tokenizer, dir: string, baseDir: string | undefined): Promise<string[]> {
  const saved: string[] = [];
  let copied = baseDir !== undefined && resolve(baseDir) === resolve(dir) && (await fileExists(join(dir, 'tokenizer.json')));
  if (baseDir !== undefined && resolve(baseDir) !== resolve(dir)) {
    for (const f of TOKENIZER_FILES) {
      if (!(await fileExists(join(baseDir, f)))) continue;
      await copyFile(join(baseDir, f), join(dir, f));
      saved.push(f);
      if (f === 'tokenizer.json') copied = true;
    }
  }
  if (!copied) {
    await writeFileAtomic(join(dir, 'tokenizer.json'), JSON.stringify(tokenizer.toJSON()));
    const specials = Object.fromEntries(Object.entries({ bos_token: tokenizer.bosToken, eos_token: tokenizer.eosToken, pad_token: tokenizer.padToken, unk_token: tokenizer.unkToken }).filter(([, v]) => v !== null));
    await writeFileAtomic(join(dir, 'tokenizer_config.json'), `${JSON.stringify({ ...specials, chat_template: tokenizer.chatTemplate }, null, 2)}\n`);
    saved.push('tokenizer.json', 'tokenizer_config.json');
  }
  return saved;
}
