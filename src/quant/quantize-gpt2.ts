// quantize() for GPT-2-style models: its "Conv1D" projections (weight stored [in, out]) become QuantLinear layers.
//
// GPT-2 keeps its attention and MLP weights transposed from nn.Linear (Hugging Face's Conv1D). ggml quantizes rows of
// the [out, in] matrix (blocks of 32 along in_features, what a matrix-vector product reads), so each weight is
// transposed once on the host and quantized as llama.cpp's GPT-2 converter stores it. The Linear and Embedding layers
// are then left to quantize(). The Conv1D class is passed in because this layer sits below the models.

import type { Tensor } from '../tensor/tensor.js';
import { Module } from '../nn/module.js';
import { quantizeValues, QUANT_TYPES, type QuantType } from './formats.js';
import { modelBytes, QuantLinear, quantize, type QuantizeOptions, type QuantizeReport } from './quant-linear.js';

export interface QuantizeGpt2Options extends QuantizeOptions {
  /** The layer class whose weight is [in_features, out_features] with a bias [out_features]: models/gpt2's Conv1D. */
  conv1d: abstract new (...args: never[]) => Module;
}

interface Conv1DLike {
  weight: Tensor;
  bias: Tensor | null;
}

/**
 * Swaps every `opts.conv1d` layer of `model` for a QuantLinear over its transposed weight, then runs quantize() on the
 * Linear (and with `embeddings`, Embedding) layers; one report covers both. In place, like quantize().
 */
export async function quantizeGpt2(model: Module, type: QuantType, opts: QuantizeGpt2Options): Promise<QuantizeReport> {
  if (!(QUANT_TYPES as readonly string[]).includes(type)) throw new Error(`quantizeGpt2: unknown type ${JSON.stringify(type)} (known: ${QUANT_TYPES.join(', ')})`);
  const bytesBefore = modelBytes(model);
  const quantized: string[] = [], skipped: { name: string; reason: string }[] = [];
  for (const [prefix, owner] of model.namedModules()) {
    for (const [key, value] of Object.entries(owner)) {
      if (!(value instanceof opts.conv1d)) continue;
      const name = prefix ? `${prefix}.${key}` : key;
      const { weight, bias } = value as unknown as Conv1DLike;
      if (weight.ndim !== 2) throw new Error(`quantizeGpt2: ${name}.weight must be [in_features, out_features], got ${weight.ndim} dimensions`);
      const [nx, nf] = weight.shape as [number, number];
      if (type !== 'nf4' && nx % 32 !== 0) {
        skipped.push({ name, reason: `rows of ${nx} values are not whole blocks of 32` });
        continue;
      }
      const w = await weight.data();
      // [nx, nf] -> [nf, nx]: row o of the quantized matrix holds the weights into output o.
      const t = new Float32Array(nx * nf);
      for (let i = 0; i < nx; i++) for (let o = 0; o < nf; o++) t[o * nx + i] = w[i * nf + o]!;
      const replacement = new QuantLinear(quantizeValues(t, [nf, nx], type, `${name}.weight`), bias);
      replacement.training = value.training;
      (owner as unknown as Record<string, Module>)[key] = replacement;
      quantized.push(name);
    }
  }
  const rest = await quantize(model, type, opts);
  return { type, bytesBefore, bytesAfter: rest.bytesAfter, quantized: [...quantized, ...rest.quantized], skipped: [...skipped, ...rest.skipped] };
}
