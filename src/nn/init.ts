// Parameter initialisation as in torch.nn.init, drawing from the seeded generator; each fills a tensor in place.

import { noGrad } from '../autograd/engine.js';
import { add, mul } from '../autograd/ops/elementwise.js';
import { full, rand, randn } from '../tensor/create.js';
import { isFloat } from '../tensor/dtype.js';
import type { Generator } from '../tensor/random.js';
import { fmtShape, sizeOf } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';

function fill(t: Tensor, make: () => Tensor): Tensor {
  if (!isFloat(t.dtype)) throw new Error(`init: expected a floating point tensor, got ${t.dtype}`);
  noGrad(() => t.replaceStorage(make()));
  return t;
}

/** fan_in and fan_out as PyTorch computes them: [out, in, ...receptive field]. */
export function fans(t: Tensor): [number, number] {
  if (t.ndim < 2) throw new Error(`init: fan in and fan out need at least 2 dimensions, got ${fmtShape(t.shape)}`);
  const field = sizeOf(t.shape.slice(2));
  return [t.shape[1]! * field, t.shape[0]! * field];
}

export function uniform_(t: Tensor, low = 0, high = 1, generator?: Generator): Tensor {
  return fill(t, () => add(mul(rand(t.shape, { dtype: t.dtype, device: t.device, generator }), high - low), low));
}

export function normal_(t: Tensor, mean = 0, std = 1, generator?: Generator): Tensor {
  return fill(t, () => add(mul(randn(t.shape, { dtype: t.dtype, device: t.device, generator }), std), mean));
}

export function constant_(t: Tensor, value: number): Tensor {
  return fill(t, () => full(t.shape, value, { dtype: t.dtype, device: t.device }));
}
export const zeros_ = (t: Tensor): Tensor => constant_(t, 0);
export const ones_ = (t: Tensor): Tensor => constant_(t, 1);

/** U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out)). */
export function xavierUniform_(t: Tensor, gain = 1, generator?: Generator): Tensor {
  const [fanIn, fanOut] = fans(t);
  const a = gain * Math.sqrt(6 / (fanIn + fanOut));
  return uniform_(t, -a, a, generator);
}

/** U(-b, b) with b = gain * sqrt(3 / fan_in), gain = sqrt(2 / (1 + a^2)) (leaky-relu gain, PyTorch's default mode). */
export function kaimingUniform_(t: Tensor, a = 0, generator?: Generator): Tensor {
  const [fanIn] = fans(t);
  const b = Math.sqrt(2 / (1 + a * a)) * Math.sqrt(3 / fanIn);
  return uniform_(t, -b, b, generator);
}
