// Trainer checkpoints: model and optimizer tensors as safetensors, then a JSON state that names them, each written atomically.
//
// A checkpoint is complete when trainer_state.json names it: the weights are written first (temp file + rename), the
// state last, and older checkpoint files are deleted only after that. A run killed at any moment therefore leaves the
// last complete checkpoint loadable, plus at worst some orphan files, which cleanCheckpointDir removes.
// The state records the SHA-256 of every file it names and of itself; the previous checkpoint stays
// (trainer_state.prev.json and its files), so that a corrupted checkpoint is reported and the one before it used.

import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../io/atomic.js';
import { loadSafetensors, saveSafetensors } from '../io/safetensors.js';
import type { LoaderPosition } from '../data/loader.js';
import type { Module } from '../nn/module.js';
import type { AdamOptions, AdamState } from '../optim/adam.js';
import type { Optimizer, OptimizerStateDict } from '../optim/optimizer.js';
import type { GeneratorState } from '../tensor/random.js';
import { Tensor } from '../tensor/tensor.js';

export const STATE_FILE = 'trainer_state.json';
/** The checkpoint before the latest, kept as a fallback. */
export const PREV_STATE_FILE = 'trainer_state.prev.json';
const FORMAT = 'attend-trainer-checkpoint';
const CHECKPOINT_FILE = /^(model|optimizer)-\d+\.safetensors$/;

/** One line of metrics.jsonl: a training log ('train') or an evaluation ('eval') at a step. */
export type MetricRecord = { kind: 'train' | 'eval'; step: number } & Record<string, number | string>;

/** Everything but the tensors: what trainer_state.json holds. */
export interface TrainerState {
  format: typeof FORMAT;
  /** 2 records checksums; 1 (older runs) only sizes. */
  version: 1 | 2;
  /** Optimizer steps done. */
  step: number;
  /** The data position after the last batch used. */
  position: LoaderPosition;
  seed: number;
  /** Tokens seen so far (when the loss function reports them). */
  tokens: number;
  model: { file: string; bytes: number; sha256?: string };
  optimizer: {
    file: string;
    bytes: number;
    sha256?: string;
    paramGroups: OptimizerStateDict<AdamOptions, AdamState>['paramGroups'];
    /** The numbers of each parameter's state (Adam's step), by parameter index; the tensors are in the file. */
    numbers: Record<string, Record<string, number>>;
  };
  /** Every generator the run draws from, by name ('default' is the global one). */
  generators: Record<string, GeneratorState>;
  metrics: MetricRecord[];
  /** Steps skipped for a non-finite loss or gradient (Trainer option skipNonfinite). */
  skipped?: number;
}

export type AdamLike = Optimizer<AdamOptions, AdamState>;

/** What the trainer passes in beyond the model and optimizer. */
export type StateFields = Pick<TrainerState, 'step' | 'position' | 'seed' | 'tokens' | 'generators' | 'metrics' | 'skipped'>;

/** The SHA-256 of a file, hex, read in a stream (checkpoints can be large). */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

const sha256Text = (text: string): string => createHash('sha256').update(text).digest('hex');

/** trainer_state.json's text: the state, then the SHA-256 of the state's own JSON (so that a flipped bit in it shows). */
function stateText(state: TrainerState): string {
  return `${JSON.stringify({ ...state, sha256: sha256Text(JSON.stringify(state, null, 1)) }, null, 1)}\n`;
}

/**
 * Writes a checkpoint of the current step into dir. The latest checkpoint before it becomes the previous one
 * (trainer_state.prev.json); files that neither names are deleted after the new state is in place.
 */
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
  const describe = async (f: string): Promise<{ file: string; bytes: number; sha256: string }> =>
    ({ file: f, bytes: (await stat(join(dir, f))).size, sha256: await sha256File(join(dir, f)) });
  const state: TrainerState = {
    format: FORMAT,
    version: 2,
    ...fields,
    model: await describe(modelFile),
    optimizer: { ...(await describe(optimFile)), paramGroups: sd.paramGroups, numbers },
  };
  // Copied, not renamed: trainer_state.json must exist at every moment.
  const latest = await readFile(join(dir, STATE_FILE), 'utf8').catch(() => null);
  const latestState = latest === null ? null : parseState(latest, STATE_FILE);
  if (latestState !== null && latestState.step !== state.step) await writeFileAtomic(join(dir, PREV_STATE_FILE), latest!);
  await writeFileAtomic(join(dir, STATE_FILE), stateText(state));
  await cleanCheckpointDir(dir);
}

/** A state file's content checked (JSON, fields), or null when it is not a valid state. */
function parseState(text: string, file: string): TrainerState | null {
  try {
    return checkState(JSON.parse(text), file);
  } catch {
    return null;
  }
}

/**
 * Removes what an interrupted save can leave behind: temporary files, and checkpoint files that neither
 * trainer_state.json nor trainer_state.prev.json names.
 */
export async function cleanCheckpointDir(dir: string): Promise<void> {
  const keep = new Set<string>();
  for (const f of [STATE_FILE, PREV_STATE_FILE]) {
    const s = parseState(await readFile(join(dir, f), 'utf8').catch(() => ''), f);
    if (s) for (const x of [s.model.file, s.optimizer.file]) keep.add(x);
  }
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
  if (s['version'] !== 1 && s['version'] !== 2) bad(`unsupported version ${JSON.stringify(s['version'])}`);
  if (!isCount(s['step'])) bad("'step' must be a non-negative integer");
  const p = s['position'];
  if (!isRecord(p) || !isCount(p['epoch']) || !isCount(p['batch'])) bad("'position' must be { epoch, batch }");
  if (!isCount(s['seed'])) bad("'seed' must be a non-negative integer");
  if (typeof s['tokens'] !== 'number') bad("'tokens' must be a number");
  for (const key of ['model', 'optimizer']) {
    const f = s[key];
    if (!isRecord(f) || typeof f['file'] !== 'string' || !CHECKPOINT_FILE.test(f['file']) || !isCount(f['bytes'])) bad(`'${key}' must be { file, bytes } naming a checkpoint file`);
    const sha = (f as Record<string, unknown>)['sha256'];
    if (s['version'] === 2 && (typeof sha !== 'string' || !/^[0-9a-f]{64}$/.test(sha))) bad(`'${key}.sha256' must be a SHA-256 in hex`);
  }
  const o = s['optimizer'] as Record<string, unknown>;
  if (!Array.isArray(o['paramGroups']) || !isRecord(o['numbers'])) bad("'optimizer' must have paramGroups and numbers");
  const g = s['generators'];
  if (!isRecord(g) || !Object.values(g).every((x) => isRecord(x) && isCount(x['seed']) && isCount(x['offset']))) bad("'generators' must map names to { seed, offset }");
  if (!Array.isArray(s['metrics']) || !s['metrics'].every((r) => isRecord(r) && typeof r['kind'] === 'string' && isCount(r['step']))) bad("'metrics' must be a list of { kind, step, ... }");
  if (s['skipped'] !== undefined && !isCount(s['skipped'])) bad("'skipped' must be a non-negative integer");
  return v as TrainerState;
}

/** Reads and verifies one state file and the files it names (sizes, checksums); throws naming what is wrong. */
async function verifiedState(dir: string, name: string): Promise<TrainerState> {
  const file = join(dir, name);
  const text = await readFile(file, 'utf8');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new Error(`Trainer: ${file} is not valid JSON (${(e as Error).message})`);
  }
  const state = checkState(parsed, file);
  if (state.version === 2) {
    const { sha256, ...rest } = parsed as Record<string, unknown>;
    if (sha256 !== sha256Text(JSON.stringify(rest, null, 1))) throw new Error(`Trainer: ${file} is corrupted: its content does not match the checksum it records`);
  }
  for (const f of [state.model, state.optimizer]) {
    const path = join(dir, f.file);
    let size: number;
    try {
      size = (await stat(path)).size;
    } catch {
      throw new Error(`Trainer: the checkpoint in ${dir} names ${f.file}, which is missing`);
    }
    if (size !== f.bytes) throw new Error(`Trainer: ${path} has ${size} bytes, but ${name} says ${f.bytes} (the file was changed or truncated)`);
    if (f.sha256 !== undefined && (await sha256File(path)) !== f.sha256) {
      throw new Error(`Trainer: ${path} is corrupted: its SHA-256 differs from the one ${name} records`);
    }
  }
  return state;
}

/** The checkpoint to resume from: the latest, or the previous one when the latest is damaged (`fallback` says why). */
export interface CheckpointChoice {
  state: TrainerState;
  /** The file the state was read from (trainer_state.json or trainer_state.prev.json). */
  file: string;
  /** Why the latest checkpoint was not used, when the previous one was. */
  fallback: string | null;
}

/**
 * The last complete, intact checkpoint in dir: every file's size and SHA-256 are checked against the state. When the
 * latest checkpoint is damaged, the previous one is used; clear errors when there is none or both are damaged.
 */
export async function readCheckpoint(dir: string): Promise<CheckpointChoice> {
  let info;
  try {
    info = await stat(dir);
  } catch {
    throw new Error(`Trainer: cannot resume from ${dir}: no such directory`);
  }
  if (!info.isDirectory()) throw new Error(`Trainer: cannot resume from ${dir}: not a directory`);
  const has = async (f: string): Promise<boolean> => stat(join(dir, f)).then(() => true, () => false);
  const latestExists = await has(STATE_FILE), prevExists = await has(PREV_STATE_FILE);
  if (!latestExists && !prevExists) throw new Error(`Trainer: cannot resume from ${dir}: it has no ${STATE_FILE} (no complete checkpoint was written there)`);
  let latestError: Error | null = null;
  if (latestExists) {
    try {
      return { state: await verifiedState(dir, STATE_FILE), file: STATE_FILE, fallback: null };
    } catch (e) {
      latestError = e as Error;
    }
  }
  if (!prevExists) throw latestError!;
  try {
    const state = await verifiedState(dir, PREV_STATE_FILE);
    return { state, file: PREV_STATE_FILE, fallback: latestError ? latestError.message : `${STATE_FILE} is missing` };
  } catch (e) {
    throw new Error(`${latestError ? latestError.message : `Trainer: ${join(dir, STATE_FILE)} is missing`}; the previous checkpoint is damaged too: ${(e as Error).message}`);
  }
}

/**
 * Makes a checkpoint chosen by readCheckpoint the latest in dir: after a fallback, the previous state becomes
 * trainer_state.json again and the damaged checkpoint's files are removed, so that later saves rotate from it.
 */
export async function adoptCheckpoint(dir: string, choice: CheckpointChoice): Promise<void> {
  if (choice.file === PREV_STATE_FILE) {
    await writeFileAtomic(join(dir, STATE_FILE), await readFile(join(dir, PREV_STATE_FILE), 'utf8'));
    await rm(join(dir, PREV_STATE_FILE), { force: true });
  }
  await cleanCheckpointDir(dir);
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
