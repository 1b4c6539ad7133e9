// The Trainer: the book's training loop (AdamW, warm-up and decay, clipping, accumulation, evaluation) with atomic,
// checksummed checkpoints that resume bitwise-exactly, a locked output folder, a stop (or skip) on non-finite losses
// and gradients, metrics.jsonl (with the loss function's own statistics), a progress line and loss and metric pictures.

import { appendFile, mkdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { noGrad } from '../autograd/engine.js';
import { add, cast, div, mul } from '../autograd/ops/elementwise.js';
import { cat, detach, reshape } from '../autograd/ops/movement.js';
import { sum } from '../autograd/ops/reduce.js';
import type { BatchSource, LoaderPosition } from '../data/loader.js';
import type { Module, Parameter } from '../nn/module.js';
import { LayerNorm, RMSNorm } from '../nn/normalization.js';
import { AdamW } from '../optim/adamw.js';
import { clipGradNorm } from '../optim/clip.js';
import { constantSchedule, cosineSchedule, linearSchedule, setLr, type Schedule } from '../optim/schedule.js';
import { defaultGenerator, type Generator } from '../tensor/random.js';
import { tidy } from '../tensor/scope.js';
import { Tensor } from '../tensor/tensor.js';
import { adoptCheckpoint, loadCheckpointTensors, PREV_STATE_FILE, readCheckpoint, saveCheckpoint, STATE_FILE, type CheckpointChoice, type MetricRecord, type TrainerState } from './checkpoint.js';
import { writeFileAtomic } from '../io/atomic.js';
import { lockDir, type DirLock } from './lock.js';
import { lineChart } from './plot.js';
import { Progress, progressLine, type ProgressStream } from './progress.js';

/** What a loss function returns when it also counts the tokens of its batch (for tokens per second) or reports statistics. */
export interface LossOutput {
  loss: Tensor;
  tokens?: number;
  /**
   * Statistics of the batch (DPO's rewards, RL's reward, KL, clip fraction...): numbers, or single-value tensors read
   * after the step in the same read as the loss. Each is averaged over the step's batches (StepInfo.metrics), then over
   * the steps of the logging interval whose loss is logged, into metrics.jsonl's train records. A name may be reported
   * by some batches only: it is averaged over those that report it.
   */
  metrics?: Record<string, number | Tensor>;
}

/** Fields of metrics.jsonl's train records, which a loss function's metrics must not take. */
const RECORD_FIELDS = new Set(['kind', 'step', 'epoch', 'loss', 'lr', 'gradNorm', 'tokens', 'tokensPerSecond', 'skipped']);

/** A picture of logged metrics against the step, drawn with loss.svg (see TrainerConfig.plots). */
export interface MetricPlot {
  /** The file name in outDir, such as 'reward.svg'. */
  file: string;
  /** The metrics drawn, one curve each (from the train records of metrics.jsonl). */
  metrics: readonly string[];
  title?: string;
  yLabel?: string;
}

/** The fields of `o` named in `keys` that are set (optional config fields must be absent, not undefined). */
export function definedFields<T extends object, K extends keyof T>(o: T, keys: readonly K[]): { [P in K]?: Exclude<T[P], undefined> } {
  const out: { [P in K]?: Exclude<T[P], undefined> } = {};
  for (const k of keys) if (o[k] !== undefined) out[k] = o[k] as Exclude<T[K], undefined>;
  return out;
}

/** The loss of one batch: a scalar tensor that backward() can start from. Runs inside a tidy scope. */
export type LossFn<M extends Module, B> = (model: M, batch: B) => Tensor | LossOutput;

export type Metrics = Record<string, number>;

/** Evaluation: runs with the model in eval mode; a metric named 'loss' is drawn as the eval curve in loss.svg. */
export type EvalFn<M extends Module> = (model: M, ctx: { step: number }) => Metrics | Promise<Metrics>;

/**
 * Batches of an epoch as a function of (epoch, seed). It must give the same batches for the same arguments: a
 * resumed run calls it again and skips the batches already used. Random choices belong to a Generator created
 * inside from the seed and epoch, never to one shared across calls.
 */
export type BatchFactory<B> = (epoch: number, seed: number) => Iterable<B> | AsyncIterable<B>;

export interface OptimizerConfig {
  /** Peak learning rate (default 1e-3). */
  lr?: number;
  /** Decoupled weight decay (default 0.01). */
  weightDecay?: number;
  betas?: [number, number];
  eps?: number;
  /**
   * Which parameters weight decay spares. Default (true): biases and normalization weights, as Hugging Face's
   * Trainer (see noDecayParameterNames); false: none (decay every parameter); or a function of the dotted name.
   */
  noDecay?: boolean | ((name: string, param: Parameter) => boolean);
}

/** How the learning rate decays after warm-up. */
export type ScheduleKind = 'cosine' | 'linear' | 'constant';

/** Whether `s` names a ScheduleKind (for options read as strings). */
export const isScheduleKind = (s: unknown): s is ScheduleKind => s === 'cosine' || s === 'linear' || s === 'constant';

export interface ScheduleConfig {
  /** Decay after warm-up (default 'cosine'); 'constant' keeps the peak. */
  kind?: ScheduleKind;
  /** Steps of linear warm-up from 0 (default 0). */
  warmupSteps?: number;
  /** Where the decay ends at the last step (default 0). */
  minLr?: number;
}

export interface StepInfo {
  step: number;
  totalSteps: number;
  /** The mean loss of the step's batches. */
  loss: number;
  lr: number;
  epoch: number;
  /** The gradient norm before clipping (only with clipGradNorm). */
  gradNorm?: number;
  /** True when the step made no update: its loss or a gradient was not finite (with skipNonfinite). */
  skipped?: boolean;
  /** The loss function's metrics, averaged over the step's batches (absent when it reports none). */
  metrics?: Metrics;
}

export interface TrainerConfig<M extends Module, B> {
  model: M;
  loss: LossFn<M, B>;
  /** A DataLoader (or any BatchSource), or a factory of each epoch's batches. Tensors in a batch are disposed after use. */
  data: BatchSource<B> | BatchFactory<B>;
  evaluate?: EvalFn<M>;
  optimizer?: OptimizerConfig;
  /** A schedule config, or any function of the step (the number of updates done) giving the learning rate. */
  schedule?: ScheduleConfig | Schedule;
  /** Clip the gradients' total 2-norm to this value before each update. */
  clipGradNorm?: number;
  /** Batches whose gradients are averaged into one update (default 1). */
  gradAccumSteps?: number;
  /** Updates to make. With epochs too, training stops at whichever comes first. */
  maxSteps?: number;
  /** Passes over the data (needs a source with a known length, such as a DataLoader). */
  epochs?: number;
  /** Steps between log records and progress lines (default 10; the last step is always logged). */
  logEvery?: number;
  /** Steps between evaluations (default: only after the last step). */
  evalEvery?: number;
  /** Steps between checkpoints (default: only at the end); needs outDir. The latest two are kept, checksummed. */
  checkpointEvery?: number;
  /**
   * Checkpoints, metrics.jsonl and loss.svg go here. The folder is locked while training (.attend.lock): another
   * process's run on it fails at once, naming the holder's PID; a lock left by a killed run is taken over.
   */
  outDir?: string;
  /** Seeds the default generator and is passed to batch factories (default 0). */
  seed?: number;
  /**
   * true: continue from the checkpoint in outDir; a path: continue from the checkpoint there (new ones go to outDir).
   * A checkpoint whose files fail their SHA-256 is reported and the previous one is used.
   */
  resume?: boolean | string;
  /** Moves the model to this device ('cpu', 'wasm', ...) first. */
  device?: string;
  /** Other generators the loss function draws from, saved and restored with checkpoints ('default' is taken). */
  generators?: Record<string, Generator>;
  /** Where the progress line goes: a stream (default process.stderr), or false for none. */
  progress?: ProgressStream | false;
  /**
   * The loss function's metrics shown on the progress line (interval averages). Default: all of them when there are
   * at most 3, else none (every metric goes to metrics.jsonl either way).
   */
  progressMetrics?: readonly string[];
  /** Pictures of the loss function's metrics, written to outDir at the end next to loss.svg (a picture without points is left out). */
  plots?: readonly MetricPlot[];
  /** Called after every step (after its log, evaluation and checkpoint). */
  onStep?: (info: StepInfo) => void | Promise<void>;
  /**
   * A non-finite loss or gradient stops training with an error (default). true: the step's batches are skipped
   * instead (no update; the step still counts, as with PyTorch's GradScaler), counted as `skipped` in metrics.jsonl.
   */
  skipNonfinite?: boolean;
}

export interface TrainResult {
  /** Updates done in all, those before a resume included. */
  step: number;
  /** The loss of every step this call ran. */
  losses: { step: number; loss: number }[];
  /** Every log and evaluation record of the run, those restored from the checkpoint included. */
  metrics: MetricRecord[];
  /** True when stop() ended training early. */
  stopped: boolean;
  /** Steps skipped for a non-finite loss or gradient (skipNonfinite), those before a resume included. */
  skipped: number;
}

export const METRICS_FILE = 'metrics.jsonl';
export const LOSS_PLOT_FILE = 'loss.svg';

function positiveInt(v: unknown, name: string): number {
  if (!Number.isSafeInteger(v) || (v as number) < 1) throw new Error(`Trainer: ${name} must be a positive integer, got ${String(v)}`);
  return v as number;
}

/** Disposes the tensors in a batch: a tensor, or arrays, plain objects and Maps holding tensors. */
function disposeTensors(value: unknown, seen = new Set<unknown>()): void {
  if (value === null || typeof value !== 'object' || seen.has(value)) return;
  seen.add(value);
  if (value instanceof Tensor) value.dispose();
  else if (Array.isArray(value)) for (const v of value) disposeTensors(v, seen);
  else if (value instanceof Map) for (const v of value.values()) disposeTensors(v, seen);
  else if (Object.getPrototypeOf(value) === Object.prototype) for (const v of Object.values(value)) disposeTensors(v, seen);
}

/** A factory as a BatchSource: a later start re-runs the epoch and skips (and frees) the batches before it. */
function fromFactory<B>(factory: BatchFactory<B>, seed: number): BatchSource<B> {
  return {
    async *batches(epoch: number, start: number): AsyncGenerator<B> {
      let i = 0;
      for await (const b of factory(epoch, seed)) {
        if (i++ < start) disposeTensors(b);
        else yield b;
      }
    },
  };
}

function makeSchedule(cfg: ScheduleConfig | Schedule | undefined, maxLr: number, totalSteps: number): Schedule {
  if (typeof cfg === 'function') return cfg;
  const c = cfg ?? {};
  const warmupSteps = c.warmupSteps ?? 0;
  if (warmupSteps > totalSteps) throw new Error(`Trainer: schedule.warmupSteps (${warmupSteps}) is more than the ${totalSteps} training steps`);
  switch (c.kind ?? 'cosine') {
    case 'cosine': return cosineSchedule({ maxLr, minLr: c.minLr ?? 0, warmupSteps, totalSteps });
    case 'linear': return linearSchedule({ maxLr, minLr: c.minLr ?? 0, warmupSteps, totalSteps });
    case 'constant': return constantSchedule({ maxLr, warmupSteps });
    default: throw new Error(`Trainer: schedule.kind must be 'cosine', 'linear' or 'constant', got ${JSON.stringify(c.kind)}`);
  }
}

// Hugging Face's patterns for normalization parameters by name (transformers' get_decay_parameter_names).
const NORM_NAME = /layernorm|rmsnorm|(?:^|\.)norm(?:$|\.)|_norm(?:$|\.)/i;

/**
 * The parameters Hugging Face's Trainer exempts from weight decay: those of LayerNorm / RMSNorm modules (or modules
 * whose class name ends in Norm), and every parameter whose name contains 'bias' or a normalization name.
 */
export function noDecayParameterNames(model: Module): Set<string> {
  const out = new Set<string>();
  for (const [prefix, m] of model.namedModules()) {
    if (!(m instanceof LayerNorm || m instanceof RMSNorm || /Norm$/.test(m.constructor.name))) continue;
    for (const [name] of m.namedParameters()) out.add(prefix ? `${prefix}.${name}` : name);
  }
  for (const [name] of model.namedParameters()) if (name.toLowerCase().includes('bias') || NORM_NAME.test(name)) out.add(name);
  return out;
}

/** AdamW's parameter groups: decayed parameters first, then those without decay (as HF); empty groups left out. */
function decayGroups(model: Module, weightDecay: number, noDecay: OptimizerConfig['noDecay']): { params: Tensor[]; weightDecay: number }[] {
  const named = model.namedParameters();
  let spared: (name: string, param: Parameter) => boolean;
  if (noDecay === false) spared = () => false;
  else if (typeof noDecay === 'function') spared = noDecay;
  else {
    const exempt = noDecayParameterNames(model);
    spared = (name) => exempt.has(name);
  }
  const groups = [
    { params: named.filter(([n, p]) => !spared(n, p)).map(([, p]) => p as Tensor), weightDecay },
    { params: named.filter(([n, p]) => spared(n, p)).map(([, p]) => p as Tensor), weightDecay: 0 },
  ];
  return groups.filter((g) => g.params.length > 0);
}

function accumulate(sums: Map<string, { sum: number; n: number }>, name: string, value: number): void {
  const s = sums.get(name);
  if (s) { s.sum += value; s.n++; } else sums.set(name, { sum: value, n: 1 });
}

function averages(sums: ReadonlyMap<string, { sum: number; n: number }>): Metrics {
  return Object.fromEntries([...sums].map(([k, { sum, n }]) => [k, sum / n]));
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(() => true, () => false);
}

/**
 * Trains a model: each step averages the loss over gradAccumSteps batches (each in its own tidy scope), checks that
 * the loss and the gradients are finite (one read: the squared gradient norm), clips the gradients, sets the scheduled
 * learning rate and makes one AdamW update (weight decay spares biases and normalization weights, as Hugging Face's
 * Trainer). Logs go to metrics.jsonl and a progress line on stderr; checkpoints hold everything needed for the next
 * step to be exactly the one an uninterrupted run makes: weights, optimizer state, the data position, every
 * generator's state and the metrics.
 */
export class Trainer<M extends Module, B> {
  readonly model: M;
  readonly optimizer: AdamW;
  /** The number of updates the run makes in all. */
  readonly totalSteps: number;
  private readonly config: TrainerConfig<M, B>;
  private readonly source: BatchSource<B>;
  private readonly schedule: Schedule;
  private readonly accum: number;
  /** The batches training ends after, when it is bounded by epochs. */
  private readonly batchLimit: number;
  private readonly seed: number;
  private readonly generators: Record<string, Generator>;
  private currentStep = 0;
  private started = false;
  private stopRequested = false;

  constructor(config: TrainerConfig<M, B>) {
    if (typeof config !== 'object' || config === null) throw new Error('Trainer: expected a config object');
    const { model, loss, data } = config;
    if (typeof model !== 'object' || model === null || typeof model.parameters !== 'function') throw new Error('Trainer: config.model must be a Module');
    if (typeof loss !== 'function') throw new Error('Trainer: config.loss must be a function (model, batch) => loss tensor');
    this.config = config;
    this.model = model;
    this.seed = config.seed ?? 0;
    if (!Number.isSafeInteger(this.seed) || this.seed < 0) throw new Error(`Trainer: seed must be a non-negative integer, got ${String(this.seed)}`);
    if (typeof data === 'function') this.source = fromFactory(data, this.seed);
    else if (typeof data === 'object' && data !== null && typeof data.batches === 'function') this.source = data;
    else throw new Error('Trainer: config.data must be a DataLoader (or other BatchSource) or a function (epoch, seed) => batches');
    this.accum = config.gradAccumSteps === undefined ? 1 : positiveInt(config.gradAccumSteps, 'gradAccumSteps');
    for (const key of ['logEvery', 'evalEvery', 'checkpointEvery'] as const) if (config[key] !== undefined) positiveInt(config[key], key);
    for (const plot of config.plots ?? []) {
      if (typeof plot.file !== 'string' || !/^[\w.-]+\.svg$/.test(plot.file) || plot.file === LOSS_PLOT_FILE) throw new Error(`Trainer: plots: file must be a file name ending in .svg other than ${LOSS_PLOT_FILE}, got ${JSON.stringify(plot.file)}`);
      if (!Array.isArray(plot.metrics) || plot.metrics.length === 0) throw new Error(`Trainer: plots: ${plot.file} needs a non-empty list of metrics`);
    }
    if (config.clipGradNorm !== undefined && !(config.clipGradNorm > 0)) throw new Error(`Trainer: clipGradNorm must be a positive number, got ${String(config.clipGradNorm)}`);
    if ((config.checkpointEvery !== undefined || config.resume === true) && !config.outDir) throw new Error('Trainer: checkpointEvery and resume: true need an outDir');
    if (config.resume !== undefined && typeof config.resume !== 'boolean' && (typeof config.resume !== 'string' || config.resume === '')) {
      throw new Error(`Trainer: resume must be true, false or a checkpoint directory, got ${JSON.stringify(config.resume)}`);
    }

    const length = this.source.length;
    this.batchLimit = Infinity;
    if (config.epochs !== undefined) {
      positiveInt(config.epochs, 'epochs');
      if (length === undefined) throw new Error('Trainer: epochs needs a data source of known length (a DataLoader); with a batch factory give maxSteps');
      if (!Number.isSafeInteger(length) || length < 1) throw new Error(`Trainer: the training data has ${String(length)} batches per epoch (is the dataset empty?)`);
      this.batchLimit = config.epochs * length;
    }
    const byEpochs = Math.ceil(this.batchLimit / this.accum);
    if (config.maxSteps !== undefined) this.totalSteps = Math.min(positiveInt(config.maxSteps, 'maxSteps'), byEpochs);
    else if (config.epochs !== undefined) this.totalSteps = byEpochs;
    else throw new Error('Trainer: give maxSteps or epochs');

    const gens = config.generators ?? {};
    if (Object.hasOwn(gens, 'default')) throw new Error("Trainer: the generator name 'default' is taken by the global generator");
    this.generators = { default: defaultGenerator, ...gens };

    if (config.device !== undefined) model.to(config.device);
    const o = config.optimizer ?? {};
    const lr = o.lr ?? 1e-3;
    if (o.noDecay !== undefined && typeof o.noDecay !== 'boolean' && typeof o.noDecay !== 'function') throw new Error(`Trainer: optimizer.noDecay must be true, false or a function (name, param) => boolean, got ${String(o.noDecay)}`);
    this.optimizer = new AdamW(decayGroups(model, o.weightDecay ?? 0.01, o.noDecay), { lr, betas: o.betas ?? [0.9, 0.999], eps: o.eps ?? 1e-8 });
    this.schedule = makeSchedule(config.schedule, lr, this.totalSteps);
  }

  /** Updates done so far. */
  get step(): number {
    return this.currentStep;
  }

  /** Ends training after the current step, with a checkpoint there (when there is an outDir). */
  stop(): void {
    this.stopRequested = true;
  }

  /** Whether the run resumes from the checkpoint in its own outDir (however the path is spelled). */
  private resumesInPlace(): boolean {
    const { outDir, resume } = this.config;
    return outDir !== undefined && (resume === true || (typeof resume === 'string' && resolve(resume) === resolve(outDir)));
  }

  /** Restores a checkpoint (when resuming) and prepares outDir; nothing is written before every check has passed. */
  private async prepare(progress: Progress): Promise<{ position: LoaderPosition; tokens: number; metrics: MetricRecord[]; skipped: number }> {
    const { outDir, resume } = this.config;
    const resumeDir = resume === true ? outDir! : typeof resume === 'string' ? resume : null;
    let state: TrainerState | null = null;
    let choice: CheckpointChoice | null = null;
    // A checkpoint already in outDir is continued (resume: true) or left alone: a run from scratch, or one resumed from
    // another folder, would rotate it into trainer_state.prev.json and mix two runs' checkpoints.
    if (outDir && !this.resumesInPlace() && ((await exists(join(outDir, STATE_FILE))) || (await exists(join(outDir, PREV_STATE_FILE))))) {
      throw new Error(`Trainer: ${outDir} already holds a checkpoint; pass resume: true to continue it, or choose another outDir`);
    }
    if (resumeDir !== null) {
      choice = await readCheckpoint(resumeDir);
      state = choice.state;
      if (choice.fallback !== null) progress.message(`${choice.fallback}; resuming from the previous checkpoint instead (step ${state.step})`);
      if (state.seed !== this.seed) throw new Error(`Trainer: the checkpoint in ${resumeDir} was trained with seed ${state.seed}, this run has seed ${this.seed}`);
      const saved = Object.keys(state.generators).sort().join(', ');
      const own = Object.keys(this.generators).sort().join(', ');
      if (saved !== own) throw new Error(`Trainer: the checkpoint in ${resumeDir} has generators [${saved}], this run has [${own}]`);
      if (state.step > this.totalSteps) throw new Error(`Trainer: the checkpoint in ${resumeDir} is at step ${state.step}, past this run's ${this.totalSteps} steps`);
      await loadCheckpointTensors(resumeDir, state, this.model, this.optimizer);
      for (const [name, g] of Object.entries(this.generators)) g.setState(state.generators[name]!);
      this.currentStep = state.step;
    } else {
      defaultGenerator.manualSeed(this.seed);
    }
    const metrics = state ? [...state.metrics] : [];
    if (outDir) {
      await mkdir(outDir, { recursive: true });
      if (state && this.resumesInPlace()) await adoptCheckpoint(outDir, choice!);
      // Records after the checkpoint belong to steps that will run again.
      await writeFileAtomic(join(outDir, METRICS_FILE), metrics.map((r) => `${JSON.stringify(r)}\n`).join(''));
    }
    return { position: state ? state.position : { epoch: 0, batch: 0 }, tokens: state ? state.tokens : 0, metrics, skipped: state?.skipped ?? 0 };
  }

  /** Every batch from a position on, across epochs, with the position after it. */
  private async *stream(from: LoaderPosition): AsyncGenerator<{ batch: B; position: LoaderPosition }> {
    let { epoch, batch } = from;
    for (;;) {
      for await (const b of this.source.batches(epoch, batch)) {
        batch++;
        yield { batch: b, position: { epoch, batch } };
      }
      if (batch === 0) throw new Error(`Trainer: epoch ${epoch} of the training data has no batches (is the dataset empty?)`);
      epoch++;
      batch = 0;
    }
  }

  /** One batch's forward and backward in a tidy scope; returns its loss, token count and metrics (one read for all). */
  private async microStep(batch: B, scale: number): Promise<{ loss: number; tokens: number | undefined; metrics: [string, number][] }> {
    let tokens: number | undefined;
    // Each metric in the loss function's order: a number, or the index of its tensor in the read below.
    const entries: [string, number | { at: number }][] = [];
    const read = tidy(() => {
      const out = this.config.loss(this.model, batch);
      const t = out instanceof Tensor ? out : out?.loss;
      if (!(t instanceof Tensor)) throw new Error('Trainer: the loss function must return a Tensor or { loss: Tensor, tokens?: number, metrics?: {...} }');
      if (t.numel() !== 1) throw new Error(`Trainer: the loss must be a single value, got ${t.describe()}`);
      const parts: Tensor[] = [];
      if (!(out instanceof Tensor)) {
        tokens = out.tokens;
        const m: unknown = out.metrics;
        if (m !== undefined && (typeof m !== 'object' || m === null || Array.isArray(m))) throw new Error('Trainer: the loss function\'s metrics must be an object of numbers or single-value tensors');
        for (const [k, v] of Object.entries((m ?? {}) as Record<string, unknown>)) {
          if (RECORD_FIELDS.has(k)) throw new Error(`Trainer: the loss function's metric '${k}' has the name of a field of metrics.jsonl (${[...RECORD_FIELDS].join(', ')}); rename it`);
          if (typeof v === 'number') entries.push([k, v]);
          else if (v instanceof Tensor && v.numel() === 1) {
            parts.push(v);
            entries.push([k, { at: parts.length }]);
          } else {
            throw new Error(`Trainer: the loss function's metric '${k}' must be a number or a single-value tensor, got ${v instanceof Tensor ? v.describe() : typeof v}`);
          }
        }
      }
      (scale === 1 ? t : div(t, scale)).backward();
      // The loss and every tensor metric as one float32 vector: a single read however many metrics there are.
      return parts.length === 0 ? detach(t) : cat([t, ...parts].map((x) => reshape(cast(detach(x.device === t.device ? x : x.to(t.device)), 'float32'), [1])), 0);
    });
    try {
      const values = await read.data();
      return { loss: values[0]!, tokens, metrics: entries.map(([k, v]) => [k, typeof v === 'number' ? v : values[v.at]!]) };
    } finally {
      read.dispose();
    }
  }

  private async evaluate(step: number): Promise<Metrics | null> {
    const fn = this.config.evaluate;
    if (!fn) return null;
    this.model.eval();
    try {
      const m = await fn(this.model, { step });
      if (typeof m !== 'object' || m === null) throw new Error('Trainer: evaluate must return an object of metrics');
      for (const [k, v] of Object.entries(m)) {
        if (typeof v !== 'number') throw new Error(`Trainer: metric '${k}' from evaluate is not a number`);
        if (k === 'kind' || k === 'step') throw new Error(`Trainer: evaluate must not return a metric named '${k}' (metrics.jsonl uses it)`);
      }
      return m;
    } finally {
      this.model.train();
    }
  }

  private async record(metrics: MetricRecord[], r: MetricRecord): Promise<void> {
    metrics.push(r);
    if (this.config.outDir) await appendFile(join(this.config.outDir, METRICS_FILE), `${JSON.stringify(r)}\n`);
  }

  private async checkpoint(position: LoaderPosition, tokens: number, metrics: MetricRecord[], skipped: number): Promise<void> {
    // Nothing non-finite is saved: weights that overflowed stop the run with the last checkpoint intact.
    const bad = await this.firstNonfinite('weights');
    if (bad !== null) throw new Error(`Trainer: step ${this.currentStep}: parameter '${bad.name}' holds ${bad.value}; no checkpoint was written (the last one in ${this.config.outDir} is intact)`);
    const generators = Object.fromEntries(Object.entries(this.generators).map(([k, g]) => [k, g.getState()]));
    const fields = { step: this.currentStep, position, seed: this.seed, tokens, generators, metrics, ...(this.config.skipNonfinite ? { skipped } : {}) };
    await saveCheckpoint(this.config.outDir!, this.model, this.optimizer, fields);
  }

  /**
   * The first parameter (in namedParameters order) whose weights, or gradient, hold a NaN or an infinity. One fused
   * read decides (x * 0 sums to NaN exactly when some x is not finite); the names are looked up only then.
   */
  private async firstNonfinite(what: 'weights' | 'grad'): Promise<{ name: string; value: string } | null> {
    const named = this.model.namedParameters().map(([n, p]): [string, Tensor | null] => [n, what === 'grad' ? p.grad : p]).filter(([, t]) => t !== null && t.numel() > 0) as [string, Tensor][];
    if (named.length === 0) return null;
    const probe = noGrad(() => tidy(() => named.map(([, t]) => sum(mul(t, 0))).reduce((a, b) => add(a, b))));
    const ok = Number.isFinite(await probe.item());
    probe.dispose();
    if (ok) return null;
    for (const [name, t] of named) {
      const v = (await t.data()).find((x) => !Number.isFinite(x));
      if (v !== undefined) return { name, value: String(v) };
    }
    return null;
  }

  /** The gradients' squared total 2-norm as a 0-d tensor (one read decides finiteness, clipping and the logged norm). */
  private gradSquaredNorm(params: readonly Tensor[]): Tensor | null {
    const grads = params.flatMap((p) => (p.grad !== null && p.grad.numel() > 0 ? [p.grad] : []));
    if (grads.length === 0) return null;
    // In float32 whatever the gradients' dtype: half-precision squares would overflow long before the norm does.
    return noGrad(() => tidy(() => grads.map((g) => { const x = g.dtype === 'float32' ? g : cast(g, 'float32'); return sum(mul(x, x)); }).reduce((a, b) => add(a, b))));
  }

  /** Runs training to the last step (or to stop()); see the class comment. Can be called once per Trainer. */
  async train(): Promise<TrainResult> {
    if (this.started) throw new Error('Trainer: train() was already called; make a new Trainer (with resume) to continue');
    this.started = true;
    const cfg = this.config;
    const progress = new Progress(cfg.progress === false ? null : cfg.progress ?? process.stderr);
    if (cfg.resume === true && !(await exists(cfg.outDir!))) throw new Error(`Trainer: cannot resume from ${cfg.outDir}: no such directory`);
    // The folder is locked before anything is read or written there: a second run on it fails at once.
    const lock: DirLock | null = cfg.outDir ? await lockDir(cfg.outDir, { log: (l) => progress.message(l) }) : null;
    try {
      return await this.run(progress);
    } finally {
      progress.finish();
      await lock?.release();
    }
  }

  private async run(progress: Progress): Promise<TrainResult> {
    const cfg = this.config;
    let { position, tokens, metrics, skipped } = await this.prepare(progress);
    const logEvery = cfg.logEvery ?? 10;
    const params = this.model.parameters();
    const losses: { step: number; loss: number }[] = [];
    const runStart = performance.now();
    const firstStep = this.currentStep;
    let logLoss = 0, logSteps = 0, logTokens = 0, logStart = runStart, counted = false;
    // Sums and counts of the loss function's metrics: over the step's batches, and over the interval's steps.
    const logMetrics = new Map<string, { sum: number; n: number }>();
    let savedAt = this.currentStep;
    // The step of the newest checkpoint in outDir, if any (resuming elsewhere from another folder leaves none yet).
    let lastSaved: number | null = this.resumesInPlace() ? this.currentStep : null;
    this.model.train();
    const batches = this.stream(position);
    try {
      while (this.currentStep < this.totalSteps && !this.stopRequested) {
        const lr = this.schedule(this.currentStep);
        setLr(this.optimizer, lr);
        const micro = Math.min(this.accum, this.batchLimit - this.currentStep * this.accum);
        let stepLoss = 0;
        const stepSums = new Map<string, { sum: number; n: number }>();
        for (let k = 0; k < micro; k++) {
          const next = await batches.next();
          if (next.done) throw new Error('Trainer: the training data ended early');
          try {
            const r = await this.microStep(next.value.batch, micro);
            stepLoss += r.loss;
            for (const [name, v] of r.metrics) accumulate(stepSums, name, v);
            if (r.tokens !== undefined) { tokens += r.tokens; logTokens += r.tokens; counted = true; }
          } finally {
            disposeTensors(next.value.batch);
          }
          position = next.value.position;
        }
        const step = this.currentStep + 1;
        const loss = stepLoss / micro;
        const squared = this.gradSquaredNorm(params);
        const sq = squared === null ? 0 : await squared.item();
        squared?.dispose();
        const finite = Number.isFinite(loss) && Number.isFinite(sq);
        const gradNorm = cfg.clipGradNorm !== undefined && finite ? Math.sqrt(sq) : undefined;
        if (!finite) {
          const bad = await this.firstNonfinite('grad');
          this.optimizer.zeroGrad();
          const gradPart = bad ? `the first parameter with a non-finite gradient is '${bad.name}' (${bad.value})` : Number.isFinite(sq) ? 'every gradient is finite' : 'the gradient norm overflows float32';
          const what = `${Number.isFinite(loss) ? 'the loss is finite' : `the loss is ${loss}`}; ${gradPart}`;
          if (!cfg.skipNonfinite) {
            const kept = !cfg.outDir ? '' : lastSaved === null ? ' no checkpoint was written;' : ` the last checkpoint (step ${lastSaved}) in ${cfg.outDir} is intact;`;
            throw new Error(`Trainer: step ${step}: ${what}. Training stopped before the update;${kept} lower the learning rate, or pass skipNonfinite (--skip-nonfinite) to skip such batches`);
          }
          skipped++;
          progress.message(`step ${step}: skipped (${what})`);
        } else {
          tidy(() => {
            // Clipping scales by min(1, max / (norm + 1e-6)): below the threshold the factor is exactly 1.
            if (cfg.clipGradNorm !== undefined && gradNorm! + 1e-6 > cfg.clipGradNorm * (1 - 1e-4)) clipGradNorm(params, cfg.clipGradNorm);
            this.optimizer.step();
            this.optimizer.zeroGrad();
          });
        }
        this.currentStep = step;
        const stepMetrics = stepSums.size ? averages(stepSums) : undefined;
        if (finite) {
          losses.push({ step, loss });
          logLoss += loss;
          logSteps++;
          for (const [name, v] of Object.entries(stepMetrics ?? {})) accumulate(logMetrics, name, v);
        }

        const now = performance.now();
        const last = step === this.totalSteps;
        const logNow = step % logEvery === 0 || last;
        const tokensPerSecond = counted ? logTokens / Math.max((now - logStart) / 1000, 1e-9) : undefined;
        const eta = ((now - runStart) / 1000 / (step - firstStep)) * (this.totalSteps - step);
        const shown = logSteps > 0 ? logLoss / logSteps : NaN;
        const intervalMetrics = averages(logMetrics);
        const names = cfg.progressMetrics ?? (logMetrics.size <= 3 ? [...logMetrics.keys()] : []);
        const shownMetrics = Object.fromEntries(names.filter((k) => intervalMetrics[k] !== undefined).map((k) => [k, intervalMetrics[k]!]));
        progress.update(progressLine({ step, total: this.totalSteps, loss: shown, lr, tokensPerSecond, etaSeconds: eta, metrics: shownMetrics }), logNow);
        if (logNow) {
          const r: MetricRecord = { kind: 'train', step, epoch: position.epoch };
          if (logSteps > 0) r['loss'] = shown; // a window of skipped steps only has no loss
          r['lr'] = lr;
          if (gradNorm !== undefined) r['gradNorm'] = gradNorm;
          if (counted) { r['tokens'] = tokens; r['tokensPerSecond'] = tokensPerSecond!; }
          if (cfg.skipNonfinite) r['skipped'] = skipped;
          Object.assign(r, intervalMetrics);
          await this.record(metrics, r);
          logLoss = 0; logSteps = 0; logTokens = 0; logStart = now;
          logMetrics.clear();
        }
        if (last || (cfg.evalEvery !== undefined && step % cfg.evalEvery === 0)) {
          const m = await this.evaluate(step);
          if (m) {
            await this.record(metrics, { kind: 'eval', step, ...m });
            progress.message(`eval at step ${step}: ${Object.entries(m).map(([k, v]) => `${k} ${v.toFixed(4)}`).join(', ')}`);
          }
        }
        if (cfg.outDir && (last || (cfg.checkpointEvery !== undefined && step % cfg.checkpointEvery === 0))) {
          await this.checkpoint(position, tokens, metrics, skipped);
          savedAt = lastSaved = step;
        }
        await cfg.onStep?.({ step, totalSteps: this.totalSteps, loss, lr, epoch: position.epoch, ...(gradNorm === undefined ? {} : { gradNorm }), ...(finite ? {} : { skipped: true }), ...(stepMetrics ? { metrics: stepMetrics } : {}) });
      }
      if (cfg.outDir && savedAt !== this.currentStep) await this.checkpoint(position, tokens, metrics, skipped);
    } finally {
      await batches.return(undefined);
    }
    if (cfg.outDir) {
      await this.plotLoss(metrics);
      await this.plotMetrics(metrics);
    }
    return { step: this.currentStep, losses, metrics, stopped: this.stopRequested && this.currentStep < this.totalSteps, skipped };
  }

  /** Writes outDir/loss.svg: the train loss of each log record and the eval loss of each evaluation, against the step. */
  private async plotLoss(metrics: readonly MetricRecord[]): Promise<void> {
    const curve = (kind: 'train' | 'eval'): [number, number][] =>
      metrics.filter((r) => r.kind === kind && typeof r['loss'] === 'number').map((r) => [r.step, r['loss'] as number]);
    const series = [{ name: 'train loss', points: curve('train') }, { name: 'eval loss', points: curve('eval') }].filter((s) => s.points.some(([, y]) => Number.isFinite(y)));
    if (series.length === 0) return;
    const svg = lineChart(series, { title: 'Loss', xLabel: 'step', yLabel: 'loss' });
    await writeFileAtomic(join(this.config.outDir!, LOSS_PLOT_FILE), svg);
  }

  /** Writes each of config.plots: its metrics from the train records against the step. */
  private async plotMetrics(metrics: readonly MetricRecord[]): Promise<void> {
    for (const plot of this.config.plots ?? []) {
      const series = plot.metrics.map((name) => ({
        name,
        points: metrics.filter((r) => r.kind === 'train' && typeof r[name] === 'number').map((r): [number, number] => [r.step, r[name] as number]),
      })).filter((s) => s.points.some(([, y]) => Number.isFinite(y)));
      if (series.length === 0) continue;
      const svg = lineChart(series, { title: plot.title ?? plot.metrics.join(', '), xLabel: 'step', ...(plot.yLabel !== undefined ? { yLabel: plot.yLabel } : {}) });
      await writeFileAtomic(join(this.config.outDir!, plot.file), svg);
    }
  }
}
