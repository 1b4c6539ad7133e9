// Trainer checkpoints: model and optimizer tensors as safetensors, then a JSON state that names them, each written atomically.
//
// A checkpoint is complete when trainer_state.json names it: the weights are written first (temp file + rename), the
// state last, and older checkpoint files are deleted only after that. A run killed at any moment therefore leaves the
// last complete checkpoint loadable, plus at worst some orphan files, which cleanCheckpointDir removes.

import { mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { loadSafetensors, saveSafetensors } from '../io/safetensors.js';
import type { LoaderPosition } from '../data/loader.js';
import type { Module } from '../nn/module.js';
import type { AdamOptions, AdamState } from '../optim/adam.js';
import type { Optimizer, OptimizerStateDict } from '../optim/optimizer.js';
import type { GeneratorState } from '../tensor/random.js';
import { Tensor } from '../tensor/tensor.js';

export const STATE_FILE = 'trainer_state.json';
const FORMAT = 'attend-trainer-checkpoint';
const CHECKPOINT_FILE = /^(model|optimizer)-\d+\.safetensors$/;

/** One line of metrics.jsonl: a training log ('train') or an evaluation ('eval') at a step. */
export type MetricRecord = { kind: 'train' | 'eval'; step: number } & Record<string, number | string>;

/** Everything but the tensors: what trainer_state.json holds. */
export interface TrainerState {
  format: typeof FORMAT;
  version: 1;
  /** Optimizer steps done. */
  step: number;
  /** The data position after the last batch used. */
  position: LoaderPosition;
  seed: number;
  /** Tokens seen so far (when the loss function reports them). */
  tokens: number;
  model: { file: string; bytes: number };
  optimizer: {
    file: string;
    bytes: number;
    paramGroups: OptimizerStateDict<AdamOptions, AdamState>['paramGroups'];
    /** The numbers of each parameter's state (Adam's step), by parameter index; the tensors are in the file. */
    numbers: Record<string, Record<string, number>>;
  };
  /** Every generator the run draws from, by name ('default' is the global one). */
  generators: Record<string, GeneratorState>;
  metrics: MetricRecord[];
}

export type AdamLike = Optimizer<AdamOptions, AdamState>;

/** What the trainer passes in beyond the model and optimizer. */
export type StateFields = Pick<TrainerState, 'step' | 'position' | 'seed' | 'tokens' | 'generators' | 'metrics'>;

/** Writes text (UTF-8) or bytes to path atomically: a temporary file in the same folder, flushed, then renamed over path. */
export async function writeFileAtomic(path: string, content: string | Uint8Array): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  const handle = await open(tmp, 'w');
  try {
    await handle.writeFile(content);
    await handle.sync();
  } catch (e) {
    await handle.close();
    await rm(tmp, { force: true });
    throw e;
  }
  await handle.close();
  await rename(tmp, path);
}

/** Writes a checkpoint of the current step into dir and then deletes the checkpoint files it replaces. */
export async function saveCheckpoint(dir: string, model: Module, optimizer: AdamLike, fields: StateFields): Promise<void> {
  await mkdir(dir, { recursive: true });
  const tag = String(fields.step).padStart(8, '0');
  const modelFile = `model-${tag}.safetensors`;
  const optimFile = `optimizer-${tag}.safetensors`;
  await saveSafetensors(join(dir, modelFile), model.stateDict(), { format: 'pt' });
  const sd = optimizer.stateDict();
  const tensors: Record<string, Tensor> = {};
  const numbers: Record<string, Record<string, number>> = {};
  for (const [i, entry] of Object.entries(sd.state)) {
    for (const [key, v] of Object.entries(entry)) {
      if (v instanceof Tensor) tensors[`state.${i}.${key}`] = v;
      else (numbers[i] ??= {})[key] = v;
    }
  }
  await saveSafetensors(join(dir, optimFile), tensors);
  const size = async (f: string): Promise<number> => (await stat(join(dir, f))).size;
  const state: TrainerState = {
    format: FORMAT,
    version: 1,
    ...fields,
    model: { file: modelFile, bytes: await size(modelFile) },
    optimizer: { file: optimFile, bytes: await size(optimFile), paramGroups: sd.paramGroups, numbers },
  };
  await writeFileAtomic(join(dir, STATE_FILE), `${JSON.stringify(state, null, 1)}\n`);
  await cleanCheckpointDir(dir, state);
}

/** Removes what an interrupted save can leave behind: temporary files, and checkpoint files the state does not name. */
export async function cleanCheckpointDir(dir: string, state: TrainerState): Promise<void> {
  const keep = new Set([state.model.file, state.optimizer.file]);
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const name = entry.name;
    const stale = (CHECKPOINT_FILE.test(name) && !keep.has(name)) || /\.tmp-\d+$/.test(name);
    if (stale && entry.isFile()) await rm(join(dir, name), { force: true });
  }
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** Checks the shape of a parsed trainer_state.json, with an error that names the file and the field. */
function checkState(v: unknown, file: string): TrainerState {
  const bad = (what: string): never => {
    throw new Error(`Trainer: ${file} is not a valid checkpoint state: ${what}`);
  };
  if (!isRecord(v) || v['format'] !== FORMAT) bad(`'format' must be '${FORMAT}'`);
  const s = v as Record<string, unknown>;
  if (s['version'] !== 1) bad(`unsupported version ${JSON.stringify(s['version'])}`);
  if (!isCount(s['step'])) bad("'step' must be a non-negative integer");
  const p = s['position'];
  if (!isRecord(p) || !isCount(p['epoch']) || !isCount(p['batch'])) bad("'position' must be { epoch, batch }");
  if (!isCount(s['seed'])) bad("'seed' must be a non-negative integer");
  if (typeof s['tokens'] !== 'number') bad("'tokens' must be a number");
  for (const key of ['model', 'optimizer']) {
    const f = s[key];
    if (!isRecord(f) || typeof f['file'] !== 'string' || !CHECKPOINT_FILE.test(f['file']) || !isCount(f['bytes'])) bad(`'${key}' must be { file, bytes } naming a checkpoint file`);
  }
  const o = s['optimizer'] as Record<string, unknown>;
  if (!Array.isArray(o['paramGroups']) || !isRecord(o['numbers'])) bad("'optimizer' must have paramGroups and numbers");
  const g = s['generators'];
  if (!isRecord(g) || !Object.values(g).every((x) => isRecord(x) && isCount(x['seed']) && isCount(x['offset']))) bad("'generators' must map names to { seed, offset }");
  if (!Array.isArray(s['metrics']) || !s['metrics'].every((r) => isRecord(r) && typeof r['kind'] === 'string' && isCount(r['step']))) bad("'metrics' must be a list of { kind, step, ... }");
  return v as TrainerState;
}

/** The state of the last complete checkpoint in dir, with clear errors when there is none. */
export async function readCheckpointState(dir: string): Promise<TrainerState> {
  let info;
  try {
    info = await stat(dir);
  } catch {
    throw new Error(`Trainer: cannot resume from ${dir}: no such directory`);
  }
  if (!info.isDirectory()) throw new Error(`Trainer: cannot resume from ${dir}: not a directory`);
  const file = join(dir, STATE_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    throw new Error(`Trainer: cannot resume from ${dir}: it has no ${STATE_FILE} (no complete checkpoint was written there)`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new Error(`Trainer: ${file} is not valid JSON (${(e as Error).message})`);
  }
  const state = checkState(parsed, file);
  for (const f of [state.model, state.optimizer]) {
    const path = join(dir, f.file);
    let size: number;
    try {
      size = (await stat(path)).size;
    } catch {
      throw new Error(`Trainer: the checkpoint in ${dir} names ${f.file}, which is missing`);
    }
    if (size !== f.bytes) throw new Error(`Trainer: ${path} has ${size} bytes, but ${STATE_FILE} says ${f.bytes} (the file was changed or truncated)`);
  }
  return state;
}

/**
 * Loads a checkpoint's tensors into the model and optimizer. The model comes first: loadStateDict checks every name
 * and shape before changing anything, so another model's checkpoint fails with an error naming the key.
 */
export async function loadCheckpointTensors(dir: string, state: TrainerState, model: Module, optimizer: AdamLike): Promise<void> {
  const weights = await loadSafetensors(join(dir, state.model.file));
  try {
    model.loadStateDict(weights);
  } finally {
    for (const t of Object.values(weights)) t.dispose();
  }
  const tensors = await loadSafetensors(join(dir, state.optimizer.file));
  try {
    const entries: Record<number, Record<string, Tensor | number>> = {};
    for (const [i, nums] of Object.entries(state.optimizer.numbers)) entries[Number(i)] = { ...nums };
    for (const [name, t] of Object.entries(tensors)) {
      const m = /^state\.(\d+)\.(\w+)$/.exec(name);
      if (!m) throw new Error(`Trainer: ${state.optimizer.file} holds an unexpected tensor '${name}'`);
      (entries[Number(m[1])] ??= {})[m[2]!] = t;
    }
    optimizer.loadStateDict({ state: entries, paramGroups: state.optimizer.paramGroups } as unknown as OptimizerStateDict<AdamOptions, AdamState>);
  } finally {
    for (const t of Object.values(tensors)) t.dispose();
  }
}
