// Reverse-mode autograd: grad mode, recording an op on the tape, and backward() over the graph.

import { isFloat } from '../tensor/dtype.js';
import { keep, tidy } from '../tensor/scope.js';
import { fmtShape, shapeEq } from '../tensor/shape.js';
import { Tensor, type GradNode } from '../tensor/tensor.js';

let gradEnabled = true;

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Turns recording on or off (for async code, where noGrad(fn) cannot span an await). */
export function setGradEnabled(flag: boolean): void {
  gradEnabled = flag;
}

/** Runs fn without recording operations for autograd, like torch.no_grad(). */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

/** A second handle on t's buffer that no tidy scope owns: what a node saves for its backward. */
function alias(t: Tensor): Tensor {
  return keep(new Tensor(t.storage.retain(), t.shape));
}

/** Gradients for each input from the output's gradient; `needs[k]` says whether input k wants one. */
export type BackwardFn = (grad: Tensor, saved: Tensor[], needs: readonly boolean[]) => readonly (Tensor | null)[];

class Node implements GradNode {
  private saved: Tensor[] | null;
  #inputs: readonly Tensor[];
  constructor(readonly name: string, inputs: readonly Tensor[], saved: readonly Tensor[], private fn: BackwardFn) {
    this.#inputs = inputs;
    this.saved = saved.map(alias);
  }
  get inputs(): readonly Tensor[] {
    return this.#inputs;
  }
  backward(grad: Tensor): readonly (Tensor | null)[] {
    if (this.saved === null) throw new Error(`backward through '${this.name}' a second time: the graph was freed by the first backward (pass { retainGraph: true } to it)`);
    return this.fn(grad, this.saved, this.#inputs.map((t) => t.requiresGrad));
  }
  /**
   * Frees the saved tensors and lets go of the inputs, as PyTorch's backward without retain_graph: the
   * intermediate activations of a consumed graph are then held only by the program's own variables.
   */
  release(): void {
    for (const t of this.saved ?? []) t.dispose();
    this.saved = null;
    this.#inputs = [];
  }
}

/**
 * Records `out` as the result of op `name` on `inputs`. `saved` are tensors the backward needs; they
 * stay alive until backward even if the caller disposes them. Returns out.
 */
export function record(name: string, out: Tensor, inputs: readonly Tensor[], saved: readonly Tensor[], backward: BackwardFn): Tensor {
  if (gradEnabled && isFloat(out.dtype) && inputs.some((t) => t.requiresGrad)) out.setGradFn(new Node(name, inputs, saved, backward));
  return out;
}

/** Tensors reachable from root through recorded ops, each after everything it depends on. */
function topoOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const visited = new Set<Tensor>([root]);
  const stack: [Tensor, number][] = [[root, 0]];
  while (stack.length) {
    const top = stack[stack.length - 1]!;
    const [t, i] = top;
    const inputs = t.gradFn?.inputs ?? [];
    if (i < inputs.length) {
      top[1]++;
      const next = inputs[i]!;
      if (next.requiresGrad && !visited.has(next)) {
        visited.add(next);
        stack.push([next, 0]);
      }
    } else {
      stack.pop();
      order.push(t);
    }
  }
  return order;
}

function accumulateInto(t: Tensor, g: Tensor, add: (a: Tensor, b: Tensor) => Tensor): void {
  if (t.grad === null) {
    t.grad = keep(g);
  } else {
    const sum = keep(add(t.grad, g));
    t.grad.dispose();
    g.dispose();
    t.grad = sum;
  }
}

export interface BackwardOptions {
  /** Keep the saved tensors so that backward can run through the graph again. */
  retainGraph?: boolean;
}

/**
 * Computes d root / d leaf for every leaf that requires grad, accumulating into leaf.grad.
 * `gradient` is d loss / d root (ones for a one-element root when omitted). `add` sums gradients.
 */
export function runBackward(root: Tensor, gradient: Tensor | null, add: (a: Tensor, b: Tensor) => Tensor, ones: (like: Tensor) => Tensor, opts: BackwardOptions = {}): void {
  if (!root.requiresGrad) throw new Error('backward: the tensor does not require grad (no input of the computation had requiresGrad set)');
  if (gradient === null && root.numel() !== 1) throw new Error(`backward: gradient can only be implied for a one-element tensor, this one is ${fmtShape(root.shape)}`);
  if (gradient !== null && !shapeEq(gradient.shape, root.shape)) throw new Error(`backward: gradient shape ${fmtShape(gradient.shape)} does not match tensor shape ${fmtShape(root.shape)}`);
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    const grads = new Map<Tensor, Tensor>([[root, gradient === null ? ones(root) : alias(gradient)]]);
    const order = topoOrder(root);
    for (let n = order.length - 1; n >= 0; n--) {
      const t = order[n]!;
      const g = grads.get(t);
      if (g === undefined) continue;
      grads.delete(t);
      const node = t.gradFn;
      if (node === null) {
        accumulateInto(t, g, add);
        continue;
      }
      if (t.retainsGrad) accumulateInto(t, alias(g), add);
      const inputGrads = tidy(() => node.backward(g));
      const used = new Set<Tensor>([g]);
      node.inputs.forEach((input, k) => {
        let gi = inputGrads[k];
        if (!gi || !input.requiresGrad) return;
        if (!shapeEq(gi.shape, input.shape)) throw new Error(`backward of '${node.name}': gradient ${fmtShape(gi.shape)} for an input of shape ${fmtShape(input.shape)}`);
        if (used.has(gi)) gi = alias(gi); // one tensor object per slot, so each can be disposed alone
        used.add(gi);
        const prevG = grads.get(input);
        if (prevG === undefined) {
          grads.set(input, gi);
        } else {
          grads.set(input, add(prevG, gi));
          prevG.dispose();
          gi.dispose();
        }
      });
      g.dispose();
      if (!opts.retainGraph) node.release();
    }
  } finally {
    gradEnabled = prev;
  }
}
