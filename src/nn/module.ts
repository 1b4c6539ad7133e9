// Module: the base of every layer and model — parameter discovery with dotted names, train/eval, state dicts, devices.

import { noGrad } from '../autograd/engine.js';
import { cast } from '../autograd/ops/elementwise.js';
import { clone, toDevice } from '../autograd/ops/movement.js';
import { listDevices } from '../tensor/backend.js';
import { isFloat, parseDType, type DTypeLike, type FloatDType } from '../tensor/dtype.js';
import { keep } from '../tensor/scope.js';
import { fmtShape, shapeEq } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';

/** A tensor that a Module trains: requiresGrad on, kept out of tidy scopes. Shares the source's buffer. */
export class Parameter extends Tensor {
  constructor(data: Tensor, requiresGrad = true) {
    super(data.storage.retain(), data.shape);
    keep(this);
    this.requiresGrad = requiresGrad;
  }
}

export interface LoadResult {
  missingKeys: string[];
  unexpectedKeys: string[];
}

/**
 * Base class of layers and models. Parameters, buffers and submodules are found by walking the
 * instance's own properties in the order they were assigned (arrays of modules count as lists), so
 * `this.c_attn = new Linear(...)` in block 0 of `this.h` is named `h.0.c_attn.weight`, as in PyTorch.
 */
export class Module {
  training = true;
  readonly #buffers = new Map<string, boolean>(); // property name -> persistent

  /** Registers a tensor property as a buffer (saved in the state dict unless persistent is false). */
  registerBuffer<T extends Tensor | null>(name: string, t: T, persistent = true): T {
    this.#buffers.set(name, persistent);
    if (t) keep(t);
    return t;
  }

  /** Direct submodules with their names. */
  namedChildren(): [string, Module][] {
    const out: [string, Module][] = [];
    for (const [key, v] of Object.entries(this)) {
      if (v instanceof Module) out.push([key, v]);
      else if (Array.isArray(v)) v.forEach((m, i) => { if (m instanceof Module) out.push([`${key}.${i}`, m]); });
    }
    return out;
  }

  /** Direct submodules, each once (torch's children()). */
  children(): Module[] {
    return [...new Set(this.namedChildren().map(([, m]) => m))];
  }

  /** This module and every descendant, each once, parents before children (torch's modules()). */
  modules(): Module[] {
    return [...new Set(this.namedModules().map(([, m]) => m))];
  }

  /** This module and every descendant, with dotted names ('' for this one); a shared module appears under each name. */
  namedModules(prefix = ''): [string, Module][] {
    const out: [string, Module][] = [[prefix, this]];
    for (const [name, child] of this.namedChildren()) out.push(...child.namedModules(prefix ? `${prefix}.${name}` : name));
    return out;
  }

  /** Own parameters and (persistent or all) buffers, before recursion. */
  private ownTensors(kind: 'param' | 'buffer', persistentOnly: boolean): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [key, v] of Object.entries(this)) {
      if (!(v instanceof Tensor)) continue;
      const isParam = v instanceof Parameter && !this.#buffers.has(key);
      const buffer = this.#buffers.get(key);
      if (kind === 'param' ? isParam : buffer !== undefined && (buffer || !persistentOnly)) out.push([key, v]);
    }
    return out;
  }

  /**
   * Parameters with dotted names. Each tensor appears once, under its first name, as in PyTorch
   * (a tied weight is listed where it is first found).
   */
  namedParameters(): [string, Parameter][] {
    const seen = new Set<Tensor>();
    const out: [string, Parameter][] = [];
    for (const [prefix, m] of this.namedModules()) {
      for (const [name, p] of m.ownTensors('param', false)) {
        if (seen.has(p)) continue;
        seen.add(p);
        out.push([prefix ? `${prefix}.${name}` : name, p as Parameter]);
      }
    }
    return out;
  }

  parameters(): Parameter[] {
    return this.namedParameters().map(([, p]) => p);
  }

  namedBuffers(): [string, Tensor][] {
    return this.namedModules().flatMap(([prefix, m]) => m.ownTensors('buffer', false).map(([n, t]): [string, Tensor] => [prefix ? `${prefix}.${n}` : n, t]));
  }

  /** Number of parameter elements (tied weights counted once). */
  numParameters(): number {
    return this.parameters().reduce((acc, p) => acc + p.numel(), 0);
  }

  train(mode = true): this {
    for (const [, m] of this.namedModules()) m.training = mode;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** Drops every parameter's gradient. */
  zeroGrad(): void {
    for (const p of this.parameters()) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  /** Every parameter and persistent buffer by name; tied weights appear under each of their names, as in PyTorch. */
  stateDict(): Record<string, Tensor> {
    const out: Record<string, Tensor> = {};
    for (const [prefix, m] of this.namedModules()) {
      for (const [n, t] of [...m.ownTensors('param', false), ...m.ownTensors('buffer', true)]) out[prefix ? `${prefix}.${n}` : n] = t;
    }
    return out;
  }

  /**
   * Copies tensors into the parameters and buffers with the same names. Shapes must match (the
   * error names the key); with strict (the default) missing and unexpected keys are errors too.
   * Nothing is changed unless every check passes.
   */
  loadStateDict(state: Record<string, Tensor>, opts: { strict?: boolean } = {}): LoadResult {
    const strict = opts.strict ?? true;
    const own = this.stateDict();
    const missingKeys = Object.keys(own).filter((k) => !(k in state));
    const unexpectedKeys = Object.keys(state).filter((k) => !(k in own));
    for (const [k, t] of Object.entries(state)) {
      const target = own[k];
      if (target && !shapeEq(target.shape, t.shape)) {
        throw new Error(`loadStateDict: size mismatch for ${k}: the checkpoint has ${fmtShape(t.shape)}, the model ${fmtShape(target.shape)}`);
      }
    }
    if (strict && (missingKeys.length || unexpectedKeys.length)) {
      const parts = [];
      if (missingKeys.length) parts.push(`missing keys: ${missingKeys.join(', ')}`);
      if (unexpectedKeys.length) parts.push(`unexpected keys: ${unexpectedKeys.join(', ')}`);
      throw new Error(`loadStateDict: ${parts.join('; ')}`);
    }
    noGrad(() => {
      for (const [k, t] of Object.entries(state)) {
        const target = own[k];
        if (!target) continue;
        const v = toDevice(cast(t, target.dtype), target.device);
        target.replaceStorage(v === t ? clone(t) : v); // replaceStorage consumes its argument: never the caller's tensor
      }
    });
    return { missingKeys, unexpectedKeys };
  }

  /**
   * Moves every parameter and buffer to a device, or converts the floating ones to a floating dtype, in place
   * (tensor objects stay the same, so an optimizer built later sees the same parameters), as torch's
   * `module.to(device)`, `module.to(torch.float16)` and `module.to(device, dtype)`. A dtype conversion leaves
   * integer and bool buffers alone and converts gradients present too, as torch does.
   */
  to(deviceOrDType: string, dtype?: DTypeLike): this {
    const single = dtype === undefined ? parseDType(deviceOrDType) : null;
    const device = single === null ? deviceOrDType : undefined;
    const target = single ?? (dtype === undefined ? undefined : parseDType(dtype));
    const allowed = 'float32, float64, float16, bfloat16';
    if (target === null || (target !== undefined && !isFloat(target))) {
      throw new Error(`Module.to: only floating dtypes are accepted (${allowed}), got ${JSON.stringify(dtype ?? deviceOrDType)}`);
    }
    // Checked before anything moves, so that a bad argument leaves the module as it was.
    if (device !== undefined && !listDevices().includes(device)) {
      throw new Error(`Module.to: unknown device or dtype ${JSON.stringify(device)} (devices: ${listDevices().join(', ')}; dtypes: ${allowed})`);
    }
    noGrad(() => {
      const seen = new Set<Tensor>();
      for (const [, m] of this.namedModules()) {
        for (const [, t] of [...m.ownTensors('param', false), ...m.ownTensors('buffer', false)]) {
          if (seen.has(t)) continue;
          seen.add(t);
          for (const x of t.grad ? [t, t.grad] : [t]) convertInPlace(x, device, target);
        }
      }
    });
    return this;
  }

  /** Converts floating parameters and buffers to float16 (torch's `half()`). */
  half(): this {
    return this.to('float16');
  }

  bfloat16(): this {
    return this.to('bfloat16');
  }

  float(): this {
    return this.to('float32');
  }

  double(): this {
    return this.to('float64');
  }

  /**
   * Calls fn on every descendant and then on this module (children first, as torch's apply: e.g. for custom
   * initialisation, `model.apply((m) => { if (m instanceof Linear && m.bias) init.zeros_(m.bias) })`); returns this.
   */
  apply(fn: (m: Module) => void): this {
    for (const child of this.children()) child.apply(fn);
    fn(this);
    return this;
  }
}

/** Replaces x's storage with a copy on `device` and/or in the floating `dtype` (integer and bool tensors keep theirs). */
function convertInPlace(x: Tensor, device: string | undefined, dtype: FloatDType | undefined): void {
  const d = dtype !== undefined && isFloat(x.dtype) ? dtype : x.dtype;
  if ((device === undefined || x.device === device) && d === x.dtype) return;
  const moved = device === undefined ? x : toDevice(x, device);
  const converted = cast(moved, d);
  if (moved !== x && converted !== moved) moved.dispose();
  x.replaceStorage(converted, { allowDevice: true, allowDtype: true }); // a new tensor: something changed
}
