// savePretrained: a model written back as a Hugging Face folder (config.json, model.safetensors, generation_config.json) that transformers' from_pretrained loads.

import { fs } from '#platform';
import { writeFileAtomic } from '../io/atomic.js';
import { saveSafetensors } from '../io/safetensors.js';
import type { Tensor } from '../tensor/tensor.js';
import type { PreTrainedModel } from './base.js';

export interface SavePretrainedOptions {
  /**
   * config.json's fields (Hugging Face's names, with "model_type") for a model that fromPretrained did not build;
   * a model it built keeps the config.json it was read from.
   */
  config?: Record<string, unknown>;
}

/**
 * The tensors as transformers saves them: the state dict with each shared tensor once, under its first name (GPT-2's
 * transformer.wte.weight, not lm_head.weight; T5's shared.weight, not the embed_tokens or lm_head that it ties).
 */
export function pretrainedTensors(model: PreTrainedModel): Record<string, Tensor> {
  const seen = new Set<Tensor>();
  const out: Record<string, Tensor> = {};
  for (const [k, t] of Object.entries(model.stateDict())) {
    if (seen.has(t)) continue;
    seen.add(t);
    out[k] = t;
  }
  return out;
}

/**
 * config.json as transformers writes it on save: the original fields, "architectures" set to the model's class and
 * the dtype field ("dtype", or "torch_dtype" in transformers 4's configs) to the parameters' dtype.
 */
export function pretrainedConfig(model: PreTrainedModel, given?: Record<string, unknown>): Record<string, unknown> {
  const name = model.constructor.name;
  const base = given ?? model.configJson;
  if (!base) throw new Error(`${name}.savePretrained: no config.json fields (the model was not built by fromPretrained); pass { config } with Hugging Face's fields and "model_type"`);
  if (typeof base['model_type'] !== 'string') throw new Error(`${name}.savePretrained: the config has no "model_type" (transformers needs it to pick the architecture)`);
  const json = structuredClone(base);
  json['architectures'] = [name];
  json[Object.hasOwn(json, 'torch_dtype') && !Object.hasOwn(json, 'dtype') ? 'torch_dtype' : 'dtype'] = model.dtype;
  return json;
}

/** Writes `model` into `dir` (created if needed): model.safetensors, config.json, and generation_config.json when it has one. */
export async function savePretrainedFolder(model: PreTrainedModel, dir: string, opts: SavePretrainedOptions = {}): Promise<void> {
  // Checked before anything is written, so that a model without a config leaves no half folder behind.
  const config = pretrainedConfig(model, opts.config);
  const { mkdir } = await fs(`savePretrained(${JSON.stringify(dir)})`);
  await mkdir(dir, { recursive: true });
  const at = (file: string): string => `${dir.replace(/\/+$/, '')}/${file}`;
  await saveSafetensors(at('model.safetensors'), pretrainedTensors(model), { format: 'pt' });
  await writeFileAtomic(at('config.json'), `${JSON.stringify(config, null, 2)}\n`, `savePretrained(${JSON.stringify(dir)})`);
  if (model.generationConfigJson) await writeFileAtomic(at('generation_config.json'), `${JSON.stringify(model.generationConfigJson, null, 2)}\n`, `savePretrained(${JSON.stringify(dir)})`);
}
