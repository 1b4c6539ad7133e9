// LoRA adapters in PEFT's format: low-rank updates on a model's linear layers, loaded, created, trained, saved and merged.
//
// Paper: Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models" (2021); Kalajdzievski, "A Rank
// Stabilization Scaling Factor for Fine-Tuning with LoRA" (2023) for use_rslora.
// Reference: peft/tuners/lora/layer.py (Linear), peft/tuners/tuners_utils.py (target matching),
// peft/utils/save_and_load.py (adapter file keys).

import { fs } from '#platform';
import { noGrad } from '../autograd/engine.js';
import { add, mul } from '../autograd/ops/elementwise.js';
import { matmul } from '../autograd/ops/matmul.js';
import { transpose } from '../autograd/ops/movement.js';
import { fmtShape, shapeEq } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { Dropout } from '../nn/activation.js';
import { zeros_ } from '../nn/init.js';
import { Linear } from '../nn/linear.js';
import { Module, Parameter } from '../nn/module.js';
import { loadCheckpoint, readJsonFile } from '../io/hf.js';
import { saveSafetensors, serializeSafetensors } from '../io/safetensors.js';
import { withSource, type ModelSource } from '../io/source.js';
import { quantizedBytes, type QuantizedTensor } from '../quant/formats.js';
import { QuantLinear, quantize } from '../quant/quant-linear.js';
import { ConfigReader } from './base.js';
import { Conv1D } from './gpt2.js';

/** What an adapter is: PEFT's LoraConfig fields, camel-cased. */
export interface LoraOptions {
  r: number;
  /** lora_alpha: the update is scaled by alpha / r (alpha / sqrt(r) with useRslora). */
  alpha: number;
  /** Module names (a module matches when its dotted name ends with one), a regular expression matched against the
   * whole name, or 'all-linear' (every Linear / Conv1D / QuantLinear but lm_head), as PEFT's target_modules. */
  targetModules: readonly string[] | string;
  dropout?: number;
  useRslora?: boolean;
  /** Modules trained and saved whole next to the adapter (e.g. a classification head), matched as targetModules. */
  modulesToSave?: readonly string[];
}

/** The adapter's key prefix in PEFT files: PeftModel.base_model (LoraModel) .model (the wrapped model). */
const PREFIX = 'base_model.model.';

/** The options of each model's adapter, for saving it and for markOnlyLoraTrainable. */
const adapters = new WeakMap<Module, Required<LoraOptions>>();

/** The layers LoRA adapts: float Linear / Conv1D, and QuantLinear (QLoRA: a frozen NF4 base, as PEFT over bitsandbytes' Linear4bit). */
type BaseLayer = Linear | Conv1D | QuantLinear;

const isBaseLayer = (m: Module): m is BaseLayer => m instanceof Linear || m instanceof Conv1D || m instanceof QuantLinear;

/**
 * A linear layer plus its low-rank update: y = base(x) + lora_B(lora_A(dropout(x))) * scaling. `weight` and `bias`
 * are the base layer's own parameters, so the state dict keeps the base names and adds `lora_A.weight` [r, in]
 * and `lora_B.weight` [out, r], PEFT's names and layout for both nn.Linear and GPT-2's Conv1D. Over a QuantLinear
 * (QLoRA) `weight` is its quantized weight, not a parameter: the state dict holds the adapter and the bias only.
 */
export class LoraLinear extends Module {
  weight: Parameter | QuantizedTensor;
  bias: Parameter | null;
  lora_dropout: Dropout;
  lora_A: Linear;
  lora_B: Linear;
  readonly scaling: number;
  /** Whether forward adds the update (withLoraDisabled turns it off, as PEFT's disable_adapter). */
  adapterEnabled = true;
  /** Private so that parameter discovery does not list the base weights twice. */
  readonly #base: BaseLayer;

  /** `device` places the adapter of a QuantLinear base, which has no float weight to follow (default: its bias's, else cpu). */
  constructor(base: BaseLayer, readonly r: number, readonly alpha: number, dropout: number, useRslora: boolean, device?: string) {
    super();
    this.#base = base;
    this.weight = base.weight;
    this.bias = base.bias;
    const [inF, outF] = layerSizes(base);
    device = base instanceof QuantLinear ? (device ?? base.bias?.device ?? 'cpu') : base.weight.device;
    this.lora_dropout = new Dropout(dropout);
    // PEFT's init: A kaiming-uniform (a = sqrt(5), Linear's default), B zeros, so a new adapter changes nothing.
    this.lora_A = new Linear(inF, r, { bias: false, device });
    this.lora_B = new Linear(r, outF, { bias: false, device });
    zeros_(this.lora_B.weight);
    this.scaling = useRslora ? alpha / Math.sqrt(r) : alpha / r;
    this.train(base.training); // an adapter added to a model in eval mode must not start dropping out
  }

  get base(): BaseLayer {
    return this.#base;
  }

  forward(x: Tensor): Tensor {
    if (!this.adapterEnabled) return this.#base.forward(x);
    return add(this.#base.forward(x), mul(this.lora_B.forward(this.lora_A.forward(this.lora_dropout.forward(x))), this.scaling));
  }

  /** scaling * B A in the base weight's layout: [out, in] for Linear, [in, out] for Conv1D (fan_in_fan_out). */
  delta(): Tensor {
    const a = this.lora_A.weight, b = this.lora_B.weight;
    return mul(this.#base instanceof Conv1D ? matmul(transpose(a, 0, 1), transpose(b, 0, 1)) : matmul(b, a), this.scaling);
  }
}

/** [in, out] features of a layer LoRA can adapt. */
function layerSizes(m: BaseLayer): [number, number] {
  if (m instanceof QuantLinear) return [m.inFeatures, m.outFeatures];
  const [d0, d1] = m.weight.shape as [number, number];
  return m instanceof Conv1D ? [d0, d1] : [d1, d0];
}

/**
 * The output heads 'all-linear' leaves out, as PEFT leaves out the model's get_output_embeddings(): lm_head (causal and
 * seq2seq LMs; also Wav2Vec2ForCTC's, which PEFT would adapt), BertForMaskedLM's decoder, Whisper's proj_out.
 */
export const OUTPUT_HEADS = ['lm_head', 'cls.predictions.decoder', 'proj_out'];

/** What qloraQuantize did: the quantized layers' bytes against their float32 size, and the whole model's weight bytes. */
export interface QloraReport {
  /** Dotted names of the layers now in NF4. */
  layers: string[];
  /** Bytes of their NF4 weights (4-bit codes, double-quantized absmax) and of the same weights in float32. */
  nf4Bytes: number;
  float32Bytes: number;
  /** The model's weight bytes (parameters, buffers, quantized weights) before and after. */
  modelBytesBefore: number;
  modelBytesAfter: number;
}

/**
 * QLoRA's base model: every Linear layer but the output head quantized to NF4 in place (block 64, double-quantized
 * absmax), as transformers' load_in_4bit with bitsandbytes does (bnb_4bit_quant_type 'nf4', use_double_quant). The
 * frozen NF4 base then takes adapters with addLora or loadLoraAdapter. Quantizing is deterministic, so the same float
 * weights always give the same NF4 base: an adapter trained on it applies to a base quantized again at load.
 */
export async function qloraQuantize(model: Module): Promise<QloraReport> {
  if (hasLora(model)) throw new Error('qloraQuantize: the model already has a LoRA adapter; quantize the base first, then add the adapter');
  const report = await quantize(model, 'nf4', { skip: OUTPUT_HEADS });
  if (!report.quantized.length) throw new Error('qloraQuantize: the model has no Linear layer to quantize');
  const seen = new Set<QuantizedTensor>();
  let nf4Bytes = 0, float32Bytes = 0;
  for (const [, m] of model.namedModules()) {
    if (!(m instanceof QuantLinear) || seen.has(m.weight)) continue;
    seen.add(m.weight);
    nf4Bytes += quantizedBytes(m.weight);
    float32Bytes += 4 * m.inFeatures * m.outFeatures;
  }
  return { layers: report.quantized, nf4Bytes, float32Bytes, modelBytesBefore: report.bytesBefore, modelBytesAfter: report.bytesAfter };
}

/** PEFT's check_target_module_exists: a regex over the whole name, or a name the dotted path ends with. */
function matches(name: string, targets: readonly string[] | string): boolean {
  if (typeof targets === 'string') {
    if (targets === 'all-linear') return !OUTPUT_HEADS.some((h) => name === h || name.endsWith(`.${h}`));
    return new RegExp(`^(?:${targets})$`).test(name);
  }
  return targets.some((t) => name === t || name.endsWith(`.${t}`));
}

/** The layers an adapter with these options wraps, in model order; errors when one cannot be adapted or none match. */
function findTargets(model: Module, opts: Required<LoraOptions>, source: string): [string, BaseLayer][] {
  const out: [string, BaseLayer][] = [];
  for (const [name, m] of model.namedModules()) {
    if (!name || !matches(name, opts.targetModules)) continue;
    if (m instanceof LoraLinear) throw new Error(`${source}: ${name} already has a LoRA adapter (merge it first: one adapter at a time)`);
    if (isBaseLayer(m)) out.push([name, m]);
    else if (opts.targetModules !== 'all-linear') {
      throw new Error(`${source}: target module ${name} is a ${m.constructor.name}; LoRA adapts Linear and Conv1D layers only (and QuantLinear, their quantized form)`);
    }
  }
  if (!out.length) {
    throw new Error(`${source}: target_modules ${JSON.stringify(opts.targetModules)} match no layer of the model (its linear layers: ${linearNames(model).join(', ')})`);
  }
  return out;
}

/** The distinct last names of the model's Linear / Conv1D / QuantLinear layers (what target_modules lists), in model order. */
function linearNames(model: Module): string[] {
  return [...new Set(model.namedModules().filter(([, m]) => isBaseLayer(m)).map(([n]) => n.split('.').at(-1)!))];
}

/** Puts `m` where the dotted `path` points (array entries included), replacing what was there. */
function setSubmodule(root: Module, path: string, m: Module): void {
  const parts = path.split('.');
  let parent: unknown = root;
  for (const p of parts.slice(0, -1)) parent = (parent as Record<string, unknown>)[p];
  (parent as Record<string, unknown>)[parts.at(-1)!] = m;
}

/** The device of the model's first parameter: where the adapters of quantized layers go. */
function modelDevice(model: Module): string | undefined {
  return model.parameters()[0]?.device;
}

function loraLayers(model: Module): [string, LoraLinear][] {
  return model.namedModules().filter((e): e is [string, LoraLinear] => e[1] instanceof LoraLinear);
}

function checkOptions(opts: LoraOptions, source: string): Required<LoraOptions> {
  const { r, alpha, dropout = 0, useRslora = false, modulesToSave = [], targetModules } = opts;
  if (!Number.isInteger(r) || r <= 0) throw new Error(`${source}: r must be a positive integer, got ${r}`);
  if (!Number.isFinite(alpha)) throw new Error(`${source}: lora_alpha must be a number, got ${alpha}`);
  if (!(dropout >= 0 && dropout < 1)) throw new Error(`${source}: lora_dropout must be in [0, 1), got ${dropout}`);
  if (typeof targetModules !== 'string' && (!Array.isArray(targetModules) || !targetModules.every((t) => typeof t === 'string'))) {
    throw new Error(`${source}: target_modules must be a list of module names or a regular expression, got ${JSON.stringify(targetModules)}`);
  }
  return { r, alpha, dropout, useRslora, modulesToSave, targetModules };
}

/** Wraps the target layers of `model` with fresh adapters (B = 0, so outputs are unchanged until trained); returns their names. */
export function addLora(model: Module, opts: LoraOptions): string[] {
  const o = checkOptions(opts, 'addLora');
  const targets = findTargets(model, o, 'addLora');
  // A new adapter is stricter than PEFT: every listed name must match a layer, so that a typo is not a silent no-op.
  if (typeof o.targetModules !== 'string') {
    const unmatched = o.targetModules.filter((t) => !targets.some(([n]) => matches(n, [t])));
    if (unmatched.length) throw new Error(`addLora: target_modules ${unmatched.map((t) => JSON.stringify(t)).join(', ')} match no layer of the model (its linear layers: ${linearNames(model).join(', ')})`);
  }
  const device = modelDevice(model);
  for (const [name, base] of targets) setSubmodule(model, name, new LoraLinear(base, o.r, o.alpha, o.dropout, o.useRslora, device));
  adapters.set(model, o);
  return targets.map(([n]) => n);
}

/** The fields of a PEFT adapter_config.json that change the computation but are not supported here: [key, default]. */
const UNSUPPORTED: [string, unknown][] = [
  ['use_dora', false], ['lora_bias', false], ['rank_pattern', {}], ['alpha_pattern', {}], ['layers_to_transform', null],
  ['layers_pattern', null], ['exclude_modules', null], ['target_parameters', null], ['trainable_token_indices', null],
];

function readAdapterConfig(json: Record<string, unknown>, path: string): Required<LoraOptions> {
  const c = new ConfigReader(json, path);
  const peftType = json['peft_type'] ?? 'LORA';
  if (peftType !== 'LORA') throw new Error(`${path}: peft_type '${String(peftType)}' is not a LoRA adapter`);
  c.str('bias', ['none'], 'none');
  for (const [key, dflt] of UNSUPPORTED) {
    const v = json[key];
    const isDefault = v === undefined || v === null || JSON.stringify(v) === JSON.stringify(dflt);
    if (!isDefault) throw new Error(`${path}: "${key}" = ${JSON.stringify(v)} is not supported`);
  }
  // The weight layout follows the layer type (Conv1D stores [in, out]), as PEFT corrects a wrong flag with a warning.
  c.bool('fan_in_fan_out', false);
  const modulesToSave = json['modules_to_save'] ?? [];
  if (!Array.isArray(modulesToSave) || !modulesToSave.every((m) => typeof m === 'string')) {
    throw new Error(`${path}: "modules_to_save" must be a list of module names, got ${JSON.stringify(modulesToSave)}`);
  }
  return checkOptions({
    r: c.int('r'), alpha: c.num('lora_alpha'), targetModules: json['target_modules'] as string[] | string, dropout: c.num('lora_dropout', 0),
    useRslora: c.bool('use_rslora', false), modulesToSave: modulesToSave as string[],
  }, path);
}

/** The base-model parameters of the modules to save: name -> parameter. */
function savedModuleParams(model: Module, modulesToSave: readonly string[]): Map<string, Parameter> {
  const out = new Map<string, Parameter>();
  if (!modulesToSave.length) return out;
  const saved = model.namedModules().filter(([n]) => n && matches(n, modulesToSave)).map(([n]) => n);
  for (const [name, p] of model.namedParameters()) if (saved.some((m) => name.startsWith(`${m}.`))) out.set(name, p);
  return out;
}

/**
 * Loads a PEFT LoRA adapter (adapter_config.json + adapter_model.safetensors in `dir`) onto `model`, wrapping each
 * target layer, and returns the names of the adapted layers. Every key and shape is checked before the model changes.
 * Modules to save are copied over the base model's weights (the adapter's trained copies replace them).
 */
export function loadLoraAdapter(model: Module, src: ModelSource): Promise<string[]> {
  return withSource(src, (dir) => loadAdapter(model, dir));
}

async function loadAdapter(model: Module, dir: string): Promise<string[]> {
  const path = `${dir}/adapter_config.json`;
  const json = await readJsonFile(path);
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new Error(`${path}: expected a JSON object`);
  const opts = readAdapterConfig(json as Record<string, unknown>, path);
  const targets = findTargets(model, opts, path);
  const { tensors, source } = await loadCheckpoint(dir, { file: 'adapter_model.safetensors' });
  try {
    // Every key the adapter must hold, with its shape.
    const want = new Map<string, readonly number[]>();
    for (const [name, base] of targets) {
      const [inF, outF] = layerSizes(base);
      want.set(`${name}.lora_A.weight`, [opts.r, inF]);
      want.set(`${name}.lora_B.weight`, [outF, opts.r]);
    }
    for (const [name, p] of savedModuleParams(model, opts.modulesToSave)) want.set(name, p.shape);
    const state: Record<string, Tensor> = {};
    for (const [key, t] of Object.entries(tensors)) {
      const name = key.startsWith(PREFIX) ? key.slice(PREFIX.length) : null;
      const shape = name === null ? undefined : want.get(name);
      if (name === null || !shape) throw new Error(`${source}: unexpected adapter weight ${key} (no such LoRA layer or module to save in the model for ${path})`);
      if (!shapeEq(shape, t.shape)) throw new Error(`${source}: adapter weight ${key} has shape ${fmtShape(t.shape)}, the model and r = ${opts.r} need ${fmtShape(shape)}`);
      state[name] = t;
    }
    const missing = [...want.keys()].filter((k) => !(k in state));
    if (missing.length) throw new Error(`${source}: missing adapter weights ${missing.slice(0, 4).map((k) => PREFIX + k).join(', ')}${missing.length > 4 ? `, ... (${missing.length} in all)` : ''}`);
    const device = modelDevice(model);
    for (const [name, base] of targets) setSubmodule(model, name, new LoraLinear(base, opts.r, opts.alpha, opts.dropout, opts.useRslora, device));
    model.loadStateDict(state, { strict: false });
  } finally {
    for (const t of Object.values(tensors)) t.dispose();
  }
  adapters.set(model, opts);
  return targets.map(([n]) => n);
}

/** Freezes every parameter but the LoRA matrices (and the modules to save); returns the trainable ones, for an optimizer. */
export function markOnlyLoraTrainable(model: Module): Parameter[] {
  const opts = adapters.get(model);
  if (!opts) throw new Error('markOnlyLoraTrainable: the model has no LoRA adapter (addLora or loadLoraAdapter first)');
  const saved = new Set(savedModuleParams(model, opts.modulesToSave).values());
  const trainable: Parameter[] = [];
  for (const [name, p] of model.namedParameters()) {
    p.requiresGrad = /\.lora_[AB]\.weight$/.test(name) || saved.has(p);
    if (p.requiresGrad) trainable.push(p);
  }
  return trainable;
}

/**
 * Writes the adapter as PEFT does: adapter_config.json and adapter_model.safetensors (keys
 * base_model.model.<layer>.lora_A.weight / lora_B.weight, and the modules to save), loadable by PeftModel.from_pretrained.
 * Without `dir` (in a browser) the two files are returned as bytes by name instead, for a download or storage;
 * `loadLoraAdapter` takes that Map back.
 */
export async function saveLoraAdapter(model: Module): Promise<Map<string, Uint8Array>>;
export async function saveLoraAdapter(model: Module, dir: string): Promise<void>;
export async function saveLoraAdapter(model: Module, dir?: string): Promise<Map<string, Uint8Array> | void> {
  const opts = adapters.get(model);
  const layers = loraLayers(model);
  if (!opts || !layers.length) throw new Error('saveLoraAdapter: the model has no LoRA adapter (addLora or loadLoraAdapter first)');
  const tensors: Record<string, Tensor> = {};
  for (const [name, m] of layers) {
    tensors[`${PREFIX}${name}.lora_A.weight`] = m.lora_A.weight;
    tensors[`${PREFIX}${name}.lora_B.weight`] = m.lora_B.weight;
  }
  for (const [name, p] of savedModuleParams(model, opts.modulesToSave)) tensors[PREFIX + name] = p;
  const config = {
    peft_type: 'LORA', task_type: null, base_model_name_or_path: null, revision: null, inference_mode: true,
    r: opts.r, lora_alpha: opts.alpha, lora_dropout: opts.dropout, target_modules: opts.targetModules, use_rslora: opts.useRslora,
    fan_in_fan_out: layers.some(([, m]) => m.base instanceof Conv1D), bias: 'none', use_dora: false, init_lora_weights: true,
    modules_to_save: opts.modulesToSave.length ? opts.modulesToSave : null, rank_pattern: {}, alpha_pattern: {},
    layers_to_transform: null, layers_pattern: null,
  };
  if (dir === undefined) {
    return new Map([
      ['adapter_config.json', new TextEncoder().encode(`${JSON.stringify(config, null, 2)}\n`)],
      ['adapter_model.safetensors', await serializeSafetensors(tensors, { format: 'pt' })],
    ]);
  }
  const { mkdir, writeFile } = await fs('saveLoraAdapter to a folder (in a browser call it without one: it returns the files)');
  const base = dir.replace(/\/$/, '');
  await mkdir(base, { recursive: true });
  await writeFile(`${base}/adapter_config.json`, `${JSON.stringify(config, null, 2)}\n`);
  await saveSafetensors(`${base}/adapter_model.safetensors`, tensors, { format: 'pt' });
}

/**
 * Folds every adapter into its base weight (W += scaling * B A) and puts the base layers back: the model has its base
 * parameter names again. Which parameters require grad is left as it was.
 */
export function mergeLora(model: Module): void {
  const layers = loraLayers(model);
  if (!layers.length) throw new Error('mergeLora: the model has no LoRA adapter');
  // Folding into NF4 would requantize (and lose most of) the update; PEFT merges QLoRA into the float model instead.
  const quantized = layers.find(([, m]) => m.base instanceof QuantLinear);
  if (quantized) throw new Error(`mergeLora: ${quantized[0]} has a quantized base (QLoRA); load the float model, loadLoraAdapter onto it, then merge`);
  // A weight tied to another (lm_head to the embedding) is untied first: only this layer's function changes.
  const uses = new Map<Tensor, number>();
  for (const t of Object.values(model.stateDict())) uses.set(t, (uses.get(t) ?? 0) + 1);
  noGrad(() => {
    for (const [name, m] of layers) {
      const base = m.base as Linear | Conv1D, weight = base.weight; // float bases only (checked above)
      const merged = add(weight, m.delta());
      if ((uses.get(weight) ?? 0) > 1) {
        base.weight = new Parameter(merged, weight.requiresGrad);
        merged.dispose();
      } else {
        weight.replaceStorage(merged);
      }
      base.train(m.training);
      setSubmodule(model, name, base);
      m.lora_A.weight.dispose();
      m.lora_B.weight.dispose();
    }
  });
  adapters.delete(model);
}

/** Whether the model has LoRA adapters (unmerged). */
export function hasLora(model: Module): boolean {
  return loraLayers(model).length > 0;
}

/**
 * Runs `fn` with every adapter of `model` switched off, so that the model computes its base function (PEFT's
 * `with model.disable_adapter():`): the reference model of DPO / GRPO / PPO without a second copy of the weights.
 * The adapters are switched back on when `fn` returns, throws, or (for a promise) settles.
 */
export function withLoraDisabled<T>(model: Module, fn: () => T): T {
  const layers = loraLayers(model).map(([, m]) => m);
  if (!layers.length) throw new Error('withLoraDisabled: the model has no LoRA adapter');
  const before = layers.map((m) => m.adapterEnabled);
  for (const m of layers) m.adapterEnabled = false;
  const restore = (): void => layers.forEach((m, i) => { m.adapterEnabled = before[i]!; });
  let out: T;
  try {
    out = fn();
  } catch (e) {
    restore();
    throw e;
  }
  if (out instanceof Promise) return out.finally(restore) as T;
  restore();
  return out;
}
