// Linear layers with float16 / bfloat16 weights and float32 activations (weight-only half precision, as llama.cpp runs an
// F16 GGUF), and halfWeights(model) that swaps them in. The product reads the 2-byte weights as stored
// (Backend.matmulHalf): no float32 copy of the matrix exists, forward or backward.

import { add, cast } from '../autograd/ops/elementwise.js';
import { isGradEnabled, record } from '../autograd/engine.js';
import { linear } from '../autograd/ops/matmul.js';
import type { MatmulParams } from '../tensor/backend.js';
import { isHalf, type HalfDType } from '../tensor/dtype.js';
import { fmtShape } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { Embedding } from '../nn/embedding.js';
import { Linear } from '../nn/linear.js';
import { Module, Parameter } from '../nn/module.js';
import { modelBytes } from './quant-linear.js';

/**
 * y = x W^T + b with W [out, in] float16 or bfloat16 (frozen) and x float32: y is float32, accumulated in float32 from
 * W's values as stored. Gradients reach x (g W, W again read as stored) and a bias that requires one. An input of W's
 * own dtype (a model converted whole with .half()) takes linear(), whose half product also reads W as stored.
 */
export class HalfLinear extends Module {
  readonly inFeatures: number;
  readonly outFeatures: number;
  weight: Parameter;
  bias: Parameter | null;

  constructor(weight: Tensor, bias: Tensor | null = null) {
    super();
    if (weight.ndim !== 2) throw new Error(`HalfLinear: the weight must be [out_features, in_features], got ${fmtShape(weight.shape)}`);
    if (!isHalf(weight.dtype)) throw new Error(`HalfLinear: the weight must be float16 or bfloat16, got ${weight.dtype}`);
    [this.outFeatures, this.inFeatures] = weight.shape as [number, number];
    if (bias && (bias.ndim !== 1 || bias.shape[0] !== this.outFeatures)) throw new Error(`HalfLinear: bias must be [${this.outFeatures}], got ${fmtShape(bias.shape)}`);
    this.weight = new Parameter(weight, false);
    this.bias = bias ? (bias instanceof Parameter ? bias : new Parameter(bias, bias.requiresGrad)) : null;
  }

  forward(x: Tensor): Tensor {
    const K = this.inFeatures, N = this.outFeatures, w = this.weight;
    if (x.shape[x.ndim - 1] !== K) throw new Error(`HalfLinear: input ${fmtShape(x.shape)} does not fit weight ${fmtShape(w.shape)} (expected last dimension ${K})`);
    if (x.dtype === w.dtype) return linear(x, w, this.bias);
    if (x.dtype !== 'float32') throw new Error(`HalfLinear: the input must be float32 or ${w.dtype}, got ${x.dtype}`);
    if (x.device !== w.device) throw new Error(`HalfLinear: input on ${x.device}, weight on ${w.device}`);
    const be = x.backend;
    if (!be.matmulHalf) throw new Error(`HalfLinear: the ${x.device} backend has no matmulHalf (a product with ${w.dtype} weights)`);
    const M = x.numel() / K;
    const b = this.bias === null ? null : this.bias.dtype === 'float32' ? this.bias : cast(this.bias, 'float32');
    const fuse = b !== null && b.device === x.device && !(b.requiresGrad && isGradEnabled());
    const p = (m: number, n: number, k: number, transB: boolean): MatmulParams => ({ batch: 1, m, n, k, transA: false, transB, strideA: 0, strideB: 0 });
    const buf = be.matmulHalf(x.buffer, w.buffer, p(M, N, K, true), fuse ? b.buffer : null);
    // [..., N]; the gradient to x: g [M, N] @ W [N, K].
    const y = record('halfLinear', Tensor.fromBuffer(be, buf, [...x.shape.slice(0, -1), N]), [x], [], (g) => [
      Tensor.fromBuffer(g.backend, g.backend.matmulHalf!(g.buffer, w.buffer, p(M, K, N, false)), x.shape),
    ]);
    return b && !fuse ? add(y, b) : y;
  }

  /** Bytes of the weight and the bias. */
  get nbytes(): number {
    return modelBytes(this);
  }
}

export interface HalfWeightsReport {
  dtype: HalfDType;
  /** Weight bytes before and after (modelBytes). */
  bytesBefore: number;
  bytesAfter: number;
  /** Dotted names of the layers swapped. */
  converted: string[];
  /** Layers left as they were, with the reason. */
  skipped: { name: string; reason: string }[];
}

/**
 * Swaps every Linear layer of `model` for a HalfLinear with its weight rounded to `dtype` (biases, norms and embeddings
 * stay float32), in place. A Linear whose weight is tied to an embedding is kept (the table stays float32).
 */
export function halfWeights(model: Module, dtype: HalfDType = 'float16'): HalfWeightsReport {
  if (!isHalf(dtype)) throw new Error(`halfWeights: dtype must be float16 or bfloat16, got ${JSON.stringify(dtype)}`);
  const bytesBefore = modelBytes(model);
  const embeddingWeights = new Set<Tensor>();
  for (const m of model.modules()) if (m instanceof Embedding) embeddingWeights.add(m.weight);
  const halves = new Map<Tensor, Tensor>(); // a weight shared by several Linear layers is converted once
  const converted: string[] = [], skipped: { name: string; reason: string }[] = [];
  for (const [prefix, m] of model.namedModules()) {
    for (const [key, v] of Object.entries(m)) {
      const children: [string, unknown, (r: Module) => void][] = v instanceof Module
        ? [[key, v, (r) => { (m as unknown as Record<string, unknown>)[key] = r; }]]
        : Array.isArray(v) ? v.map((c: unknown, i) => [`${key}.${i}`, c, (r: Module) => { v[i] = r; }] as [string, unknown, (r: Module) => void]) : [];
      for (const [k, child, put] of children) {
        if (!(child instanceof Linear)) continue;
        const name = prefix ? `${prefix}.${k}` : k;
        if (embeddingWeights.has(child.weight)) {
          skipped.push({ name, reason: 'its weight is tied to an embedding that stays float32' });
          continue;
        }
        let w = halves.get(child.weight);
        if (!w) {
          const d = child.weight.detach();
          halves.set(child.weight, (w = cast(d, dtype))); // d itself when the weight has `dtype` already
          if (w !== d) d.dispose();
        }
        const replacement = new HalfLinear(w, child.bias);
        replacement.training = child.training;
        put(replacement);
        converted.push(name);
      }
    }
  }
  // The replaced weights are no longer the model's: freed now rather than at the next reclamation (before timing, say).
  for (const [old, half] of halves) {
    old.dispose();
    half.dispose(); // the HalfLinear's Parameter holds the buffer
  }
  return { dtype, bytesBefore, bytesAfter: modelBytes(model), converted, skipped };
}
