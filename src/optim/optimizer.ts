// The optimizer base class: parameter groups, per-parameter state, step / zeroGrad and state dicts, with PyTorch semantics.

import { noGrad } from '../autograd/engine.js';
import { cast } from '../autograd/ops/elementwise.js';
import { clone, toDevice } from '../autograd/ops/movement.js';
import { isFloat } from '../tensor/dtype.js';
import { keep, tidy } from '../tensor/scope.js';
import { fmtShape, shapeEq } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';

/** The hyper-parameters every optimizer has; `lr` is mutable per group so that schedules can set it. */
export interface BaseHyperparameters {
  lr: number;
}

/** A group of parameters with its own hyper-parameters (the optimizer's defaults fill in what it leaves out). */
export type ParamGroupInput<H> = Partial<H> & { params: Tensor[] };
export type ParamGroup<H> = H & { params: Tensor[] };

/** One parameter's state: moment tensors shaped like the parameter and counters such as Adam's step. */
export type ParamState = Record<string, Tensor | number>;

/**
 * A snapshot of an optimizer: state per parameter index (counting through the groups in order) and each group's
 * hyper-parameters with the indices of its parameters. The tensors are the optimizer's own (like PyTorch's
 * state_dict they are references: later steps update them in place), so save them before stepping again.
 */
export interface OptimizerStateDict<H = BaseHyperparameters, S extends ParamState = ParamState> {
  state: Record<number, S>;
  paramGroups: (H & { params: number[] })[];
}

/** The result of one parameter's update: its new value and its new state (undefined: the optimizer keeps none). */
export interface ParamUpdate<S> {
  param: Tensor;
  state: S | undefined;
}

export abstract class Optimizer<H extends BaseHyperparameters, S extends ParamState> {
  readonly paramGroups: ParamGroup<H>[];
  readonly defaults: H;
  protected readonly state = new Map<Tensor, S>();
  /** The keys of a parameter's state: tensors shaped like the parameter, and numbers (checked by loadStateDict). */
  protected abstract readonly stateKeys: { readonly tensors: readonly string[]; readonly numbers: readonly string[] };

  /**
   * `name` labels errors; `defaults` are the optimizer's own defaults and `overrides` the caller's options
   * (both checked: an unknown option such as `weight_decay` is an error, not silently ignored).
   */
  protected constructor(readonly name: string, params: readonly Tensor[] | readonly ParamGroupInput<H>[], defaults: H, overrides: Partial<H> = {}) {
    this.checkKeys(overrides, defaults, 'options');
    this.defaults = { ...defaults, ...overrides };
    if (!Array.isArray(params) || params.length === 0) throw new Error(`${name}: got an empty parameter list`);
    const inputs: readonly ParamGroupInput<H>[] = params[0] instanceof Tensor ? [{ params: params as Tensor[] } as ParamGroupInput<H>] : (params as ParamGroupInput<H>[]);
    const seen = new Set<Tensor>();
    let index = 0;
    this.paramGroups = inputs.map((input, gi) => {
      if (typeof input !== 'object' || input === null || !Array.isArray(input.params)) {
        throw new Error(`${name}: parameter group ${gi} must be an object with a params array (or pass a flat array of tensors)`);
      }
      const { params: ps, ...rest } = input;
      this.checkKeys(rest, defaults, `parameter group ${gi}`);
      for (const p of ps) this.checkParam(p, index++, gi, seen);
      const group = { ...this.defaults, ...rest, params: [...ps] } as ParamGroup<H>;
      this.checkGroup(group, `parameter group ${gi}`);
      return group;
    });
  }

  private checkKeys(options: object, defaults: H, where: string): void {
    for (const key of Object.keys(options)) {
      if (!Object.hasOwn(defaults, key)) throw new Error(`${this.name}: ${where} has unknown option '${key}' (options: ${Object.keys(defaults).join(', ')})`);
    }
  }

  private checkParam(p: unknown, index: number, group: number, seen: Set<Tensor>): void {
    const where = `${this.name}: parameter ${index} (group ${group})`;
    if (!(p instanceof Tensor)) throw new Error(`${where} is not a Tensor`);
    if (p.isDisposed) throw new Error(`${where} was disposed`);
    if (!isFloat(p.dtype)) throw new Error(`${where} is ${p.dtype}; only floating point tensors can be optimized`);
    if (!p.isLeaf) throw new Error(`${where} is not a leaf (it was computed by '${p.gradFn!.name}'); optimize leaf tensors such as Parameters`);
    if (seen.has(p)) throw new Error(`${where} appears more than once in the parameter list`);
    seen.add(p);
  }

  /** Checks one group's hyper-parameters; `where` names the group in the error. */
  protected checkGroup(group: H, where: string): void {
    checkNumber(group.lr, `${this.name}: ${where}: lr`, 0);
  }

  /**
   * The new value of `param` and its new state, from its gradient. Runs inside noGrad and a tidy scope (so every
   * temporary is freed); it must return new tensors, never `param`, `grad` or the old state's tensors.
   */
  protected abstract update(param: Tensor, grad: Tensor, group: ParamGroup<H>, state: S | undefined): ParamUpdate<S>;

  /** Every parameter, through the groups in order (the indices of the state dict). */
  get params(): Tensor[] {
    return this.paramGroups.flatMap((g) => g.params);
  }

  /** One update of every parameter that has a gradient (parameters whose .grad is null are skipped). */
  step(): void {
    noGrad(() => {
      let index = 0;
      for (const group of this.paramGroups) {
        for (const p of group.params) {
          const i = index++;
          const grad = p.grad;
          if (grad === null) continue;
          if (!shapeEq(grad.shape, p.shape) || grad.dtype !== p.dtype || grad.device !== p.device) {
            throw new Error(`${this.name}.step: parameter ${i} is ${p.describe()} but its gradient is ${grad.describe()}`);
          }
          const old = this.state.get(p);
          const next = tidy(() => this.update(p, grad, group, old));
          p.replaceStorage(next.param);
          this.commit(p, old, next.state);
        }
      }
    });
  }

  /**
   * Stores a parameter's new state. Tensors already in the state take the new values in place (replaceStorage),
   * so that references handed out by stateDict() stay valid; new ones are kept out of any tidy scope.
   */
  private commit(p: Tensor, old: S | undefined, next: S | undefined): void {
    if (next === undefined) return;
    const merged: ParamState = {};
    for (const [key, value] of Object.entries(next)) {
      const prev = old?.[key];
      if (value instanceof Tensor && prev instanceof Tensor) {
        prev.replaceStorage(value);
        merged[key] = prev;
      } else {
        merged[key] = value instanceof Tensor ? keep(value) : value;
      }
    }
    this.state.set(p, merged as S);
  }

  /** Frees every gradient and sets it to null (PyTorch's zero_grad(set_to_none=True)). */
  zeroGrad(): void {
    for (const p of this.params) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  /** The state per parameter index and the groups' hyper-parameters (see OptimizerStateDict). */
  stateDict(): OptimizerStateDict<H, S> {
    const params = this.params;
    const state: Record<number, S> = {};
    params.forEach((p, i) => {
      const s = this.state.get(p);
      if (s !== undefined) state[i] = { ...s };
    });
    let index = 0;
    const paramGroups = this.paramGroups.map(({ params: ps, ...hyper }) => ({ ...(hyper as unknown as H), params: ps.map(() => index++) }));
    return { state, paramGroups };
  }

  /**
   * Restores a state dict from an optimizer of the same kind over parameters of the same shapes. Everything is
   * checked before anything changes; the tensors are copied (onto each parameter's device and dtype).
   */
  loadStateDict(sd: OptimizerStateDict<H, S>): void {
    const where = `${this.name}.loadStateDict`;
    const params = this.params;
    if (typeof sd !== 'object' || sd === null || !Array.isArray(sd.paramGroups) || typeof sd.state !== 'object' || sd.state === null) {
      throw new Error(`${where}: expected { state, paramGroups }`);
    }
    if (sd.paramGroups.length !== this.paramGroups.length) {
      throw new Error(`${where}: the state dict has ${sd.paramGroups.length} parameter groups, the optimizer has ${this.paramGroups.length}`);
    }
    const groups = sd.paramGroups.map((saved, gi) => {
      const own = this.paramGroups[gi]!;
      if (!Array.isArray(saved.params) || saved.params.length !== own.params.length) {
        throw new Error(`${where}: parameter group ${gi} has ${Array.isArray(saved.params) ? saved.params.length : 'no'} parameters in the state dict, ${own.params.length} in the optimizer`);
      }
      const { params: _indices, ...hyper } = saved;
      this.checkKeys(hyper, this.defaults, `parameter group ${gi} of the state dict`);
      const group = { ...own, ...hyper, params: own.params } as ParamGroup<H>;
      this.checkGroup(group, `parameter group ${gi} of the state dict`);
      return group;
    });
    const entries = Object.entries(sd.state).map(([key, entry]): [Tensor, S] => {
      const i = Number(key);
      if (!Number.isInteger(i) || i < 0 || i >= params.length) {
        throw new Error(`${where}: the state dict has state for parameter index ${key}, but the optimizer has ${params.length} parameters`);
      }
      this.checkState(entry, params[i]!, `${where}: parameter ${i}`);
      return [params[i]!, entry];
    });
    const copies = noGrad(() => entries.map(([p, entry]): [Tensor, S] => {
      const copy: ParamState = {};
      for (const [key, v] of Object.entries(entry)) copy[key] = v instanceof Tensor ? keep(tidy(() => clone(cast(toDevice(v, p.device), p.dtype)))) : v;
      return [p, copy as S];
    }));
    for (const s of this.state.values()) for (const v of Object.values(s)) if (v instanceof Tensor) v.dispose();
    this.state.clear();
    for (const [p, s] of copies) this.state.set(p, s);
    groups.forEach((g, gi) => Object.assign(this.paramGroups[gi]!, g));
  }

  private checkState(entry: unknown, p: Tensor, where: string): void {
    if (typeof entry !== 'object' || entry === null) throw new Error(`${where}: state must be an object`);
    const { tensors, numbers } = this.stateKeys;
    for (const [key, v] of Object.entries(entry)) {
      if (tensors.includes(key)) {
        if (!(v instanceof Tensor)) throw new Error(`${where}: state '${key}' must be a Tensor`);
        if (v.isDisposed) throw new Error(`${where}: state '${key}' was disposed`);
        if (!shapeEq(v.shape, p.shape)) throw new Error(`${where}: state '${key}' has shape ${fmtShape(v.shape)}, but the parameter has shape ${fmtShape(p.shape)}`);
      } else if (numbers.includes(key)) {
        if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`${where}: state '${key}' must be a finite number, got ${String(v)}`);
      } else {
        throw new Error(`${where}: unexpected state '${key}' for ${this.name} (expected ${[...tensors, ...numbers].join(', ')})`);
      }
    }
    for (const key of [...tensors, ...numbers]) {
      if (!Object.hasOwn(entry, key)) throw new Error(`${where}: state '${key}' is missing`);
    }
  }
}

/** Throws unless v is a finite number, >= min and < below where given; `what` names the option. */
export function checkNumber(v: unknown, what: string, min?: number, below?: number): void {
  if (typeof v !== 'number' || !Number.isFinite(v) || (min !== undefined && v < min) || (below !== undefined && v >= below)) {
    const range = min !== undefined && below !== undefined ? ` in [${min}, ${below})` : min !== undefined ? ` >= ${min}` : '';
    throw new Error(`${what} must be a finite number${range}, got ${String(v)}`);
  }
}
