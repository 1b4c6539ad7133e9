// Test helpers for torch.nn layer fixtures (test/data/nn.json): load a state dict, run, compare outputs and gradients.

import { readFileSync } from 'node:fs';
import { expect } from 'vitest';
import { mul } from '../autograd/ops/elementwise.js';
import { sum } from '../autograd/ops/reduce.js';
import { tensor } from '../tensor/create.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Module } from '../nn/module.js';
import { expectClose, type FixtureTensor } from './fixtures.js';

interface LayerCase {
  state: Record<string, FixtureTensor>;
  inputs: FixtureTensor[];
  output: FixtureTensor;
  probe: FixtureTensor;
  input_grads: (FixtureTensor | null)[];
  param_grads: Record<string, FixtureTensor>;
}

let cache: Record<string, LayerCase> | null = null;

export function layerCase(file: string, name: string): LayerCase {
  cache ??= {};
  const key = `${file}:${name}`;
  if (!cache[key]) {
    const all = (JSON.parse(readFileSync(new URL(`../../test/data/${file}`, import.meta.url), 'utf8')) as { cases: Record<string, LayerCase> }).cases;
    for (const [n, c] of Object.entries(all)) cache[`${file}:${n}`] = c;
  }
  const c = cache[key];
  if (!c) throw new Error(`no case '${name}' in test/data/${file}`);
  return c;
}

const toTensor = (f: FixtureTensor, device: string, requiresGrad = false) =>
  tensor(f.data.map(Number), { shape: f.shape, dtype: f.dtype, device, requiresGrad: requiresGrad && f.dtype === 'float32' });

/**
 * Loads the case's state dict into `module`, runs `call` on the case's inputs and checks the output,
 * the input gradients and the parameter gradients against PyTorch's.
 */
export async function checkLayer(file: string, name: string, module: Module, call: (...inputs: Tensor[]) => Tensor, device: string, atol = 2e-5): Promise<void> {
  const c = layerCase(file, name);
  // State from the host (cpu, readable synchronously), copied onto the module's device; then the module moves to `device`.
  module.loadStateDict(Object.fromEntries(Object.entries(c.state).map(([k, v]) => [k, toTensor(v, 'cpu')])));
  module.eval().to(device);
  const inputs = c.inputs.map((f) => toTensor(f, device, true));
  const y = call(...inputs);
  expect(y.shape).toEqual(c.output.shape);
  expectClose(await y.data(), c.output.data, atol, 1e-4, `${name} output`);
  sum(mul(y, toTensor(c.probe, device))).backward();
  for (let i = 0; i < inputs.length; i++) {
    const g = c.input_grads[i];
    if (g) expectClose(await inputs[i]!.grad!.data(), g.data, atol * 10, 1e-3, `${name} grad of input ${i}`);
  }
  const params = Object.fromEntries(module.namedParameters());
  for (const [k, g] of Object.entries(c.param_grads)) {
    expect(params[k], `parameter ${k}`).toBeDefined();
    expectClose(await params[k]!.grad!.data(), g.data, atol * 10, 1e-3, `${name} grad of ${k}`);
  }
}
