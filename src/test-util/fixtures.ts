// Test helpers: the PyTorch op fixtures (test/data/ops.json) and closeness assertions.

import { readFileSync } from 'node:fs';
import { expect } from 'vitest';
import { tensor } from '../tensor/create.js';
import type { DType, TypedArray } from '../tensor/dtype.js';
import type { Tensor } from '../tensor/tensor.js';

export interface FixtureTensor {
  shape: number[];
  dtype: DType;
  data: (number | boolean)[];
}
export interface OpCase {
  inputs: FixtureTensor[];
  output: FixtureTensor;
  probe?: number[];
  grads?: (number[] | null)[];
}

const opsFile = new URL('../../test/data/ops.json', import.meta.url);
let cache: Record<string, OpCase> | null = null;

export function opCase(name: string): OpCase {
  cache ??= (JSON.parse(readFileSync(opsFile, 'utf8')) as { cases: Record<string, OpCase> }).cases;
  const c = cache[name];
  if (!c) throw new Error(`no fixture case '${name}' in test/data/ops.json (regenerate with scripts/gen_op_fixtures.py)`);
  return c;
}

/** A fixture tensor on a device; float data becomes `floatType`. */
export function fromFixture(f: FixtureTensor, device: string, floatType: DType = 'float32', requiresGrad = false): Tensor {
  const dtype = f.dtype === 'float32' ? floatType : f.dtype;
  return tensor(f.data.map(Number), { shape: f.shape, dtype, device, requiresGrad: requiresGrad && f.dtype === 'float32' });
}

/** Asserts |actual - expected| <= atol + rtol * |expected| elementwise, naming the first bad element. */
export function expectClose(actual: TypedArray | readonly number[], expected: readonly (number | boolean)[], atol = 1e-5, rtol = 1e-4, label = ''): void {
  expect(actual.length, `${label} length`).toBe(expected.length);
  let worst = -1, worstErr = 0;
  for (let i = 0; i < expected.length; i++) {
    const e = Number(expected[i]), a = Number(actual[i]);
    const err = Math.abs(a - e);
    const bad = Number.isNaN(e) ? !Number.isNaN(a) : e === a ? false : !(err <= atol + rtol * Math.abs(e));
    if (bad && (worst < 0 || err > worstErr)) { worst = i; worstErr = err; }
  }
  if (worst >= 0) {
    expect.fail(`${label} element ${worst}: got ${actual[worst]}, expected ${expected[worst]} (atol ${atol}, rtol ${rtol})`);
  }
}
