// Runs each op against its PyTorch fixture on every registered backend: value, gradient, and (float64 CPU) finite differences.

import { describe, expect, test } from 'vitest';
import '../index.js';
import { gradcheck } from '../autograd/gradcheck.js';
import { mul } from '../autograd/ops/elementwise.js';
import { sum } from '../autograd/ops/reduce.js';
import { listDevices } from '../tensor/backend.js';
import { tensor } from '../tensor/create.js';
import type { Tensor } from '../tensor/tensor.js';
import { expectClose, fromFixture, opCase } from './fixtures.js';

export type OpFn = (...inputs: Tensor[]) => Tensor;

export interface OpCheckOptions {
  atol?: number;
  /** Skip the finite-difference check (ops that are not smooth at the fixture's inputs). */
  noGradcheck?: boolean;
}

/** Devices with float64 kernels, where finite differences are accurate enough to check gradients. */
const FLOAT64_DEVICES = new Set(['cpu']);

export async function checkOp(name: string, fn: OpFn, device: string, opts: OpCheckOptions = {}): Promise<void> {
  const c = opCase(name);
  const atol = opts.atol ?? 2e-5;
  const wantsGrad = c.grads !== undefined;
  const inputs = c.inputs.map((f) => fromFixture(f, device, 'float32', wantsGrad));
  const out = fn(...inputs);
  expect(out.shape, `${name} shape`).toEqual(c.output.shape);
  expect(out.dtype, `${name} dtype`).toBe(c.output.dtype);
  expectClose(await out.data(), c.output.data, atol, 1e-4, `${name} value on ${device}`);
  if (!wantsGrad) return;

  const probe = tensor(c.probe!, { shape: c.output.shape, device });
  sum(mul(out, probe)).backward();
  for (let i = 0; i < inputs.length; i++) {
    const expected = c.grads![i];
    if (!expected) continue;
    const g = inputs[i]!.grad;
    expect(g, `${name} grad ${i} on ${device}`).not.toBeNull();
    expectClose(await g!.data(), expected, atol * 10, 1e-3, `${name} grad of input ${i} on ${device}`);
  }
  if (FLOAT64_DEVICES.has(device) && !opts.noGradcheck) {
    const all = c.inputs.map((f) => fromFixture(f, device, 'float64'));
    const floatIdx = all.flatMap((t, i) => (t.dtype === 'float64' ? [i] : []));
    const call = (...xs: Tensor[]) => {
      const args = [...all];
      floatIdx.forEach((i, k) => { args[i] = xs[k]!; });
      return fn(...args);
    };
    gradcheck(call, floatIdx.map((i) => all[i]!));
  }
}

/** One test per op and device: describeOps('elementwise', { neg: (x) => x.neg(), ... }). */
export function describeOps(group: string, ops: Record<string, OpFn | [OpFn, OpCheckOptions]>): void {
  for (const device of listDevices()) {
    describe(`${group} on ${device}`, () => {
      for (const [name, spec] of Object.entries(ops)) {
        const [fn, opts] = Array.isArray(spec) ? spec : [spec, {}];
        test(name, () => checkOp(name, fn, device, opts));
      }
    });
  }
}
