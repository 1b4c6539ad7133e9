// Loss modules against torch.nn (test/data/losses.json from scripts/gen_loss_fixtures.py) on every device, and their errors.

import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import '../index.js';
import { mul } from '../autograd/ops/elementwise.js';
import { sum } from '../autograd/ops/reduce.js';
import { listDevices } from '../tensor/backend.js';
import { tensor, zeros } from '../tensor/create.js';
import type { Tensor } from '../tensor/tensor.js';
import { expectClose, type FixtureTensor } from '../test-util/fixtures.js';
import { BCEWithLogitsLoss, CrossEntropyLoss, L1Loss, MSELoss, NLLLoss } from './loss.js';
import type { Module } from './module.js';

interface LossCase {
  module: string;
  options: Record<string, FixtureTensor | number | string>;
  input: FixtureTensor;
  target: FixtureTensor;
  output: FixtureTensor;
  probe: FixtureTensor;
  grad: FixtureTensor;
}

type LossModule = Module & { forward(input: Tensor, target: Tensor): Tensor };
const classes: Record<string, new (opts: Record<string, unknown>) => LossModule> = {
  CrossEntropyLoss, NLLLoss, MSELoss, L1Loss, BCEWithLogitsLoss,
};
const cases = (JSON.parse(readFileSync(new URL('../../test/data/losses.json', import.meta.url), 'utf8')) as { cases: Record<string, LossCase> }).cases;
const toTensor = (f: FixtureTensor, device: string, requiresGrad = false): Tensor =>
  tensor(f.data.map(Number), { shape: f.shape, dtype: f.dtype, device, requiresGrad });

for (const device of listDevices()) {
  describe(`loss modules on ${device} match torch.nn`, () => {
    for (const [name, c] of Object.entries(cases)) {
      test(`${name} (${c.module})`, async () => {
        const opts = Object.fromEntries(Object.entries(c.options).map(([k, v]) => [k, typeof v === 'object' ? toTensor(v, device) : v]));
        const loss = new classes[c.module]!(opts);
        const x = toTensor(c.input, device, true);
        const y = loss.forward(x, toTensor(c.target, device));
        expect(y.shape).toEqual(c.output.shape);
        expectClose(await y.data(), c.output.data, 1e-5, 1e-4, `${name} loss`);
        sum(mul(y, toTensor(c.probe, device))).backward();
        expectClose(await x.grad!.data(), c.grad.data, 1e-5, 1e-3, `${name} grad`);
      });
    }
  });
}

describe('loss module errors name the module', () => {
  const logits = zeros([4, 3]);
  test('shapes and dtypes are checked before any work', () => {
    expect(() => new CrossEntropyLoss().forward(logits, tensor([0, 1, 2], { dtype: 'int32' }))).toThrow(/CrossEntropyLoss: class-index target \[3\] does not fit input \[4, 3\] \(expected \[4\]\)/);
    expect(() => new CrossEntropyLoss().forward(logits, zeros([4, 2]))).toThrow(/CrossEntropyLoss: target \[4, 2\] must have the input's shape \[4, 3\]/);
    expect(() => new CrossEntropyLoss({ weight: zeros([4]) }).forward(logits, tensor([0, 1, 2, 0], { dtype: 'int32' }))).toThrow(/CrossEntropyLoss: weight must be \[3\]/);
    expect(() => new NLLLoss().forward(logits, zeros([4]))).toThrow(/NLLLoss: target must hold class indices/);
    expect(() => new NLLLoss().forward(zeros([]), tensor([0], { dtype: 'int32' }))).toThrow(/NLLLoss: input needs a class dimension/);
    expect(() => new MSELoss().forward(zeros([2, 3]), zeros([3]))).toThrow(/MSELoss: target \[3\] must have the input's shape \[2, 3\]/);
    expect(() => new L1Loss().forward(tensor([1, 2], { dtype: 'int32' }), tensor([1, 2], { dtype: 'int32' }))).toThrow(/L1Loss: input must be a floating point tensor, got int32/);
    expect(() => new BCEWithLogitsLoss().forward(zeros([2]), tensor([1, 0], { dtype: 'int32' }))).toThrow(/BCEWithLogitsLoss: target must be a floating point tensor/);
    expect(() => new BCEWithLogitsLoss({ posWeight: zeros([3]) }).forward(zeros([2, 4]), zeros([2, 4]))).toThrow(/BCEWithLogitsLoss: posWeight \[3\] does not broadcast/);
  });
  test('options are checked in the constructor', () => {
    expect(() => new MSELoss({ reduction: 'avg' as 'mean' })).toThrow(/MSELoss: reduction must be 'mean', 'sum' or 'none', got 'avg'/);
    expect(() => new CrossEntropyLoss({ labelSmoothing: 1.5 })).toThrow(/CrossEntropyLoss: labelSmoothing must be in \[0, 1\], got 1.5/);
  });
  test('weights are buffers: in the state dict under torch names, moved by to()', () => {
    const l = new BCEWithLogitsLoss({ weight: zeros([3]), posWeight: zeros([3]) });
    expect(Object.keys(l.stateDict())).toEqual(['weight', 'pos_weight']);
    expect(l.parameters()).toEqual([]);
  });
});
