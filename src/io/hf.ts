// Hugging Face checkpoint folders: config.json and weights (model.safetensors or a sharded index), with clear errors.
// A folder is a path on disk (Node), a URL, or files in memory (see ./source.ts).

import type { Tensor } from '../tensor/tensor.js';
import { loadSafetensors, readSafetensorsHeader, type SafetensorsEntry } from './safetensors.js';
import { exists, readText, withSource, type ModelSource } from './source.js';

/** Reads and parses a JSON file (a path, a URL, or a file of an in-memory folder), naming the file in every error. */
export async function readJsonFile(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readText(path);
  } catch (e) {
    // Fetch and in-memory errors already name the file; Node's carry a code.
    if ((e as Error).message.startsWith(`${path}: `)) throw e;
    throw new Error(`${path}: cannot read (${(e as { code?: string }).code ?? (e as Error).message})`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new Error(`${path}: not valid JSON (${(e as Error).message})`);
  }
}

export async function fileExists(path: string): Promise<boolean> {
  return exists(path);
}

/** A config.json as a plain object, with its path for error messages. */
export interface HFConfig {
  path: string;
  json: Record<string, unknown>;
}

export async function readConfig(src: ModelSource): Promise<HFConfig> {
  return withSource(src, async (dir) => {
    const path = `${dir}/config.json`;
    const json = await readJsonFile(path);
    if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new Error(`${path}: expected a JSON object`);
    return { path, json: json as Record<string, unknown> };
  });
}

/** Where a checkpoint's tensors are: one file, or shards listed by an index (with the tensors each shard must hold). */
interface CheckpointFiles {
  source: string;
  shards: { path: string; keys: Set<string> | null }[];
}

async function checkpointFiles(dir: string, file: string | undefined): Promise<CheckpointFiles> {
  const base = dir.replace(/\/$/, '');
  const single = `${base}/${file ?? 'model.safetensors'}`;
  if (await fileExists(single)) return { source: single, shards: [{ path: single, keys: null }] };
  const indexPath = `${base}/${(file ?? 'model.safetensors').replace(/\.safetensors$/, '')}.safetensors.index.json`;
  if (await fileExists(indexPath)) {
    const index = await readJsonFile(indexPath) as { weight_map?: unknown };
    const map = index !== null && typeof index === 'object' && !Array.isArray(index) ? index.weight_map : undefined;
    if (map === null || typeof map !== 'object' || Array.isArray(map)) throw new Error(`${indexPath}: missing "weight_map" (an object of tensor name -> shard file)`);
    const byShard = new Map<string, Set<string>>();
    for (const [k, shard] of Object.entries(map as Record<string, unknown>)) {
      if (typeof shard !== 'string' || shard === '' || shard.includes('..')) throw new Error(`${indexPath}: "weight_map" entry '${k}' must name a shard file in the folder, got ${JSON.stringify(shard)}`);
      if (!byShard.has(shard)) byShard.set(shard, new Set());
      byShard.get(shard)!.add(k);
    }
    return { source: indexPath, shards: [...byShard].map(([shard, keys]) => ({ path: `${base}/${shard}`, keys })) };
  }
  const hasBin = await fileExists(`${base}/pytorch_model.bin`);
  throw new Error(`${base}: no ${file ?? 'model.safetensors'} or ${file ? file.replace(/\.safetensors$/, '') : 'model'}.safetensors.index.json${hasBin ? ' (pytorch_model.bin is not supported: convert it to safetensors)' : ''}`);
}

/** Checks that a shard holds exactly the tensors its index lists for it. */
function checkShard(keys: Set<string> | null, found: string[], path: string, source: string): void {
  if (!keys) return;
  const extra = found.find((k) => !keys.has(k));
  if (extra !== undefined) throw new Error(`${path}: tensor '${extra}' is not listed for this shard in ${source}`);
  const have = new Set(found);
  const missing = [...keys].filter((k) => !have.has(k));
  if (missing.length) throw new Error(`${source}: tensors listed but not found in their shards: ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', ...' : ''}`);
}

/**
 * The names and shapes of every tensor of the checkpoint in `dir`, from the safetensors headers only (no tensor
 * data is read), to check a checkpoint against a config before anything is allocated.
 */
export async function readCheckpointHeader(src: ModelSource, opts: { file?: string } = {}): Promise<{ entries: Record<string, SafetensorsEntry>; source: string }> {
  return withSource(src, (dir) => readHeaders(dir, opts.file));
}

async function readHeaders(dir: string, file: string | undefined): Promise<{ entries: Record<string, SafetensorsEntry>; source: string }> {
  const { source, shards } = await checkpointFiles(dir, file);
  const entries: Record<string, SafetensorsEntry> = {};
  for (const { path, keys } of shards) {
    const { tensors } = await readSafetensorsHeader(path);
    checkShard(keys, Object.keys(tensors), path, source);
    Object.assign(entries, tensors);
  }
  return { entries, source };
}

/**
 * Every tensor of the checkpoint in `dir`: model.safetensors, or the shards listed in
 * model.safetensors.index.json. Returns the tensors and the file they came from (for errors).
 */
export async function loadCheckpoint(src: ModelSource, opts: { device?: string; file?: string } = {}): Promise<{ tensors: Record<string, Tensor>; source: string }> {
  return withSource(src, (dir) => loadTensors(dir, opts));
}

async function loadTensors(dir: string, opts: { device?: string; file?: string }): Promise<{ tensors: Record<string, Tensor>; source: string }> {
  const { source, shards } = await checkpointFiles(dir, opts.file);
  const tensors: Record<string, Tensor> = {};
  try {
    for (const { path, keys } of shards) {
      const part = await loadSafetensors(path, { device: opts.device });
      Object.assign(tensors, part);
      checkShard(keys, Object.keys(part), path, source);
    }
  } catch (e) {
    for (const t of Object.values(tensors)) t.dispose();
    throw e;
  }
  return { tensors, source };
}
