// Learning-rate schedules as pure functions of the step (linear warm-up, then cosine, linear or constant), and setLr.

import { checkNumber } from './optimizer.js';

/** The learning rate at a step (0-based: the rate for the update that follows `step` earlier updates). */
export type Schedule = (step: number) => number;

export interface WarmupOptions {
  maxLr: number;
  /** Steps of linear warm-up from 0 to maxLr (0: start at maxLr). */
  warmupSteps: number;
}

export interface DecayOptions extends WarmupOptions {
  /** The step at which the decay reaches minLr; the rate stays there after it. */
  totalSteps: number;
  /** Default 0. */
  minLr?: number;
}

function checkWarmup(opts: WarmupOptions, name: string): void {
  if (typeof opts !== 'object' || opts === null) throw new Error(`${name}: expected an options object`);
  checkNumber(opts.maxLr, `${name}: maxLr`, 0);
  if (!Number.isInteger(opts.warmupSteps) || opts.warmupSteps < 0) throw new Error(`${name}: warmupSteps must be an integer >= 0, got ${String(opts.warmupSteps)}`);
}

function checkStep(step: number, name: string): void {
  if (typeof step !== 'number' || !(step >= 0) || step === Infinity) throw new Error(`${name}: step must be a finite number >= 0, got ${String(step)}`);
}

/** Linear warm-up, then minLr + (maxLr - minLr) * shape(progress), progress going 0 -> 1 up to totalSteps; minLr after. */
function decaying(name: string, opts: DecayOptions, shape: (progress: number) => number): Schedule {
  checkWarmup(opts, name);
  const { maxLr, warmupSteps, totalSteps } = opts;
  if (!Number.isInteger(totalSteps) || totalSteps < warmupSteps) throw new Error(`${name}: totalSteps must be an integer >= warmupSteps (${warmupSteps}), got ${String(totalSteps)}`);
  const minLr = opts.minLr ?? 0;
  checkNumber(minLr, `${name}: minLr`, 0);
  if (minLr > maxLr) throw new Error(`${name}: minLr (${minLr}) must not exceed maxLr (${maxLr})`);
  return (step: number): number => {
    checkStep(step, name);
    if (step < warmupSteps) return (maxLr * step) / warmupSteps;
    if (step >= totalSteps) return minLr;
    return minLr + (maxLr - minLr) * shape((step - warmupSteps) / (totalSteps - warmupSteps));
  };
}

/** Warm-up, then half a cosine from maxLr down to minLr at totalSteps (Hugging Face's get_cosine_schedule_with_warmup). */
export function cosineSchedule(opts: DecayOptions): Schedule {
  return decaying('cosineSchedule', opts, (p) => 0.5 * (1 + Math.cos(Math.PI * p)));
}

/** Warm-up, then a straight line from maxLr down to minLr at totalSteps (get_linear_schedule_with_warmup). */
export function linearSchedule(opts: DecayOptions): Schedule {
  return decaying('linearSchedule', opts, (p) => 1 - p);
}

/** Warm-up, then maxLr for good (get_constant_schedule_with_warmup). */
export function constantSchedule(opts: WarmupOptions): Schedule {
  checkWarmup(opts, 'constantSchedule');
  const { maxLr, warmupSteps } = opts;
  return (step: number): number => {
    checkStep(step, 'constantSchedule');
    return step < warmupSteps ? (maxLr * step) / warmupSteps : maxLr;
  };
}

/** Sets the learning rate of every parameter group. */
export function setLr(optimizer: { readonly paramGroups: readonly { lr: number }[] }, lr: number): void {
  checkNumber(lr, 'setLr: lr', 0);
  for (const g of optimizer.paramGroups) g.lr = lr;
}
