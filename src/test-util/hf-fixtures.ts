// Test helpers for the Hugging Face model fixtures in test/data/hf/<name>: reference tensors and gradient checks.

import { expect } from 'vitest';
import { loadSafetensors } from '../io/safetensors.js';
import { mul } from '../autograd/ops/elementwise.js';
import { sum } from '../autograd/ops/reduce.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Module } from '../nn/module.js';
import { expectClose } from './fixtures.js';

export const hfDir = (name: string): string => new URL(`../../test/data/hf/${name}`, import.meta.url).pathname;

/** The tensors of test/data/hf/<name>/ref.safetensors on a device. */
export function loadRef(name: string, device?: string): Promise<Record<string, Tensor>> {
  return loadSafetensors(`${hfDir(name)}/ref.safetensors`, { device });
}

export async function expectTensorClose(actual: Tensor, expected: Tensor, atol: number, label: string): Promise<void> {
  expect(actual.shape, `${label} shape`).toEqual(expected.shape);
  expectClose(await actual.data(), Array.from(await expected.data()), atol, 0, label);
}

/**
 * Backpropagates sum(logits * grad_probe) and checks every parameter's gradient against grad.<name>,
 * within atol relative to the largest reference value of that tensor (the fixtures' bound).
 */
export async function expectGradsMatch(model: Module, logits: Tensor, ref: Record<string, Tensor>, atol = 1e-4): Promise<void> {
  sum(mul(logits, ref['grad_probe']!)).backward();
  const params = model.namedParameters();
  const names = Object.keys(ref).filter((k) => k.startsWith('grad.')).map((k) => k.slice(5));
  expect(names.length).toBeGreaterThan(0);
  const own = new Map(params);
  for (const name of names) {
    const p = own.get(name);
    expect(p, `parameter ${name}`).toBeDefined();
    const want = Array.from(await ref[`grad.${name}`]!.data());
    const scale = Math.max(1e-12, ...want.map(Math.abs));
    expect(p!.grad, `gradient of ${name}`).not.toBeNull();
    expectClose(await p!.grad!.data(), want, atol * scale, 0, `gradient of ${name}`);
  }
}
