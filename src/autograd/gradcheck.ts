// Gradient checking by central finite differences, like torch.autograd.gradcheck (float64 inputs, CPU-side backends).

import { tensor } from '../tensor/create.js';
import { Generator } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';
import { noGrad } from './engine.js';
import { mul } from './ops/elementwise.js';
import { sum } from './ops/reduce.js';

export interface GradcheckOptions {
  eps?: number;
  atol?: number;
  rtol?: number;
}

/**
 * Compares autograd's gradient of sum(fn(...inputs) * R) (R a fixed random weighting) with central
 * differences, for every element of every input. Throws with the first mismatch; returns the largest
 * absolute error otherwise.
 */
export function gradcheck(fn: (...inputs: Tensor[]) => Tensor, inputs: readonly Tensor[], opts: GradcheckOptions = {}): number {
  const { eps = 1e-6, atol = 1e-5, rtol = 1e-3 } = opts;
  for (const x of inputs) {
    if (x.dtype !== 'float64') throw new Error(`gradcheck: inputs should be float64 for accurate differences, got ${x.dtype}`);
  }
  const leaves = inputs.map((x) => tensor(x.dataSync(), { shape: x.shape, dtype: 'float64', device: x.device, requiresGrad: true }));
  const probeShape = noGrad(() => fn(...leaves)).shape;
  const r = tensor(new Generator(1234).normal(probeShape.reduce((a, b) => a * b, 1)), { shape: probeShape, dtype: 'float64', device: inputs[0]!.device });
  const objective = (xs: Tensor[]) => sum(mul(fn(...xs), r));

  objective(leaves).backward();
  let worst = 0;
  for (let k = 0; k < leaves.length; k++) {
    const base = leaves[k]!.dataSync();
    const analytic = leaves[k]!.grad?.dataSync() ?? new Float64Array(base.length);
    for (let i = 0; i < base.length; i++) {
      const at = (delta: number) => {
        const v = base.slice();
        v[i] += delta;
        const xs = leaves.map((l, j) => (j === k ? tensor(v, { shape: l.shape, dtype: 'float64', device: l.device }) : l.detach()));
        return noGrad(() => objective(xs)).dataSync()[0]!;
      };
      const numeric = (at(eps) - at(-eps)) / (2 * eps);
      const err = Math.abs(numeric - analytic[i]!);
      worst = Math.max(worst, err);
      if (err > atol + rtol * Math.abs(numeric)) {
        throw new Error(`gradcheck: input ${k} element ${i}: autograd ${analytic[i]} vs finite differences ${numeric}`);
      }
    }
  }
  return worst;
}
