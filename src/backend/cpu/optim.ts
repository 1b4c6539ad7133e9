// Reference fused optimizer updates (Adam / AdamW and SGD): one pass per parameter, rounding every constant and
// every intermediate to the dtype exactly where the composed elementwise ops would, so both paths agree bit for bit.

import type { AdamStepParams, SgdStepParams } from '../../tensor/backend.js';
import { allocArray, type DType, type TypedArray } from '../../tensor/dtype.js';

/** Rounding to the storage dtype: what writing into a Float32Array does; float64 keeps the value. */
function rounder(dtype: DType): (x: number) => number {
  return dtype === 'float32' ? Math.fround : (x: number) => x;
}

/** The constants of an Adam step as the composed ops see them: scalars of the parameter's dtype. */
export function adamConstants(p: AdamStepParams, dtype: DType) {
  const R = rounder(dtype);
  return {
    /** 1 - lr * wd (decoupled) or wd (L2); unused without weight decay. */
    decay: R(p.decoupled ? 1 - p.lr * p.weightDecay : p.weightDecay),
    b1: R(p.beta1), nb1: R(1 - p.beta1), b2: R(p.beta2), nb2: R(1 - p.beta2),
    bc2: R((1 - p.beta2 ** p.step) ** 0.5), eps: R(p.eps),
    stepSize: R(-(p.lr / (1 - p.beta1 ** p.step))),
  };
}

export function adamStep(param: TypedArray, grad: TypedArray, expAvg: TypedArray | null, expAvgSq: TypedArray | null, hp: AdamStepParams, dtype: DType):
  { param: TypedArray; expAvg: TypedArray; expAvgSq: TypedArray } {
  const R = rounder(dtype);
  const c = adamConstants(hp, dtype);
  const n = param.length;
  const po = allocArray(dtype, n), mo = allocArray(dtype, n), vo = allocArray(dtype, n);
  const decoupled = hp.weightDecay !== 0 && hp.decoupled, l2 = hp.weightDecay !== 0 && !hp.decoupled;
  for (let i = 0; i < n; i++) {
    let p = param[i]!, g = grad[i]!;
    if (decoupled) p = R(p * c.decay);
    else if (l2) g = R(g + R(p * c.decay));
    const m = R(R((expAvg ? expAvg[i]! : 0) * c.b1) + R(g * c.nb1));
    const v = R(R((expAvgSq ? expAvgSq[i]! : 0) * c.b2) + R(R(g * c.nb2) * g));
    const denom = R(R(R(Math.sqrt(v)) / c.bc2) + c.eps);
    po[i] = p + R(R(m * c.stepSize) / denom);
    mo[i] = m;
    vo[i] = v;
  }
  return { param: po, expAvg: mo, expAvgSq: vo };
}

export function sgdStep(param: TypedArray, grad: TypedArray, buf: TypedArray | null, hp: SgdStepParams, dtype: DType):
  { param: TypedArray; momentumBuffer: TypedArray | null } {
  const R = rounder(dtype);
  const wd = R(hp.weightDecay), mom = R(hp.momentum), damp = R(1 - hp.dampening), lr = R(-hp.lr);
  const n = param.length;
  const po = allocArray(dtype, n), bo = hp.momentum !== 0 ? allocArray(dtype, n) : null;
  for (let i = 0; i < n; i++) {
    const p = param[i]!;
    let d = grad[i]!;
    if (hp.weightDecay !== 0) d = R(d + R(p * wd));
    if (bo) {
      const b = buf ? R(R(buf[i]! * mom) + R(d * damp)) : d;
      bo[i] = b;
      d = hp.nesterov ? R(d + R(b * mom)) : b;
    }
    po[i] = p + R(d * lr);
  }
  return { param: po, momentumBuffer: bo };
}
