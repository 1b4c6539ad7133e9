// Hugging Face checkpoint folders: config.json and weights (model.safetensors or a sharded index), with clear errors.

import type { Tensor } from '../tensor/tensor.js';
import { loadSafetensors } from './safetensors.js';

async function fs() {
  return import('node:fs/promises');
}

/** Reads and parses a JSON file, naming the file in every error. */
export async function readJsonFile(path: string): Promise<unknown> {
  const { readFile } = await fs();
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new Error(`${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new Error(`${path}: not valid JSON (${(e as Error).message})`);
  }
}

export async function fileExists(path: string): Promise<boolean> {
  const { stat } = await fs();
  return stat(path).then((s) => s.isFile(), () => false);
}

/** A config.json as a plain object, with its path for error messages. */
export interface HFConfig {
  path: string;
  json: Record<string, unknown>;
}

export async function readConfig(dir: string): Promise<HFConfig> {
  const path = `${dir.replace(/\/$/, '')}/config.json`;
  const json = await readJsonFile(path);
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new Error(`${path}: expected a JSON object`);
  return { path, json: json as Record<string, unknown> };
}

/**
 * Every tensor of the checkpoint in `dir`: model.safetensors, or the shards listed in
 * model.safetensors.index.json. Returns the tensors and the file they came from (for errors).
 */
export async function loadCheckpoint(dir: string, opts: { device?: string; file?: string } = {}): Promise<{ tensors: Record<string, Tensor>; source: string }> {
  const base = dir.replace(/\/$/, '');
  const single = `${base}/${opts.file ?? 'model.safetensors'}`;
  if (await fileExists(single)) return { tensors: await loadSafetensors(single, { device: opts.device }), source: single };
  const indexPath = `${base}/${(opts.file ?? 'model.safetensors').replace(/\.safetensors$/, '')}.safetensors.index.json`;
  if (await fileExists(indexPath)) {
    const index = await readJsonFile(indexPath) as { weight_map?: Record<string, string> };
    if (!index || typeof index.weight_map !== 'object') throw new Error(`${indexPath}: missing "weight_map"`);
    const shards = [...new Set(Object.values(index.weight_map))];
    const tensors: Record<string, Tensor> = {};
    for (const shard of shards) {
      const path = `${base}/${shard}`;
      const part = await loadSafetensors(path, { device: opts.device });
      for (const [k, t] of Object.entries(part)) {
        if (index.weight_map[k] !== shard) throw new Error(`${path}: tensor '${k}' is not listed for this shard in ${indexPath}`);
        tensors[k] = t;
      }
    }
    const missing = Object.keys(index.weight_map).filter((k) => !(k in tensors));
    if (missing.length) throw new Error(`${indexPath}: tensors listed but not found in their shards: ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', ...' : ''}`);
    return { tensors, source: indexPath };
  }
  const hasBin = await fileExists(`${base}/pytorch_model.bin`);
  throw new Error(`${base}: no model.safetensors or model.safetensors.index.json${hasBin ? ' (pytorch_model.bin is not supported: convert it to safetensors)' : ''}`);
}
