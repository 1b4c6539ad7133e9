// SGD, Adam and AdamW against PyTorch: four steps on fixed gradients (a parameter without a gradient in step 2 is
// skipped), in float64 (tight) and float32. Reference: test/data/optim.json from scripts/gen_optim_fixtures.py.

import { readFileSync } from 'node:fs';
import { describe, test } from 'vitest';
import '../index.js';
import { tensor } from '../tensor/create.js';
import type { FloatDType } from '../tensor/dtype.js';
import type { Tensor } from '../tensor/tensor.js';
import { expectClose } from '../test-util/fixtures.js';
import { Adam, type AdamOptions } from './adam.js';
import { AdamW } from './adamw.js';
import type { Optimizer, ParamGroupInput, ParamState } from './optimizer.js';
import { SGD, type SGDOptions } from './sgd.js';

type Values = Record<string, number[]>;
interface OptimFixture {
  init: Values;
  shapes: Record<string, number[]>;
  grads: Record<string, number[] | null>[];
  optimizers: Record<string, { optimizer: 'SGD' | 'Adam' | 'AdamW'; options: Record<string, unknown>; params: Values[] }>;
  adamw_groups: { groups: { params: string[]; lr: number; weightDecay?: number }[]; params: Values[] };
}
const fx = JSON.parse(readFileSync(new URL('../../test/data/optim.json', import.meta.url), 'utf8')) as OptimFixture;
const NAMES = Object.keys(fx.shapes);

type AnyOptimizer = Optimizer<{ lr: number }, ParamState>;
type Make = (params: Record<string, Tensor>) => AnyOptimizer;

/** Replays the fixture's gradients and compares every parameter after every step. */
async function replay(make: Make, expected: Values[], dtype: FloatDType, atol: number, label: string): Promise<void> {
  const params = Object.fromEntries(NAMES.map((k) => [k, tensor(fx.init[k]!, { shape: fx.shapes[k]!, dtype, requiresGrad: true })]));
  const opt = make(params);
  for (const [step, grads] of fx.grads.entries()) {
    for (const k of NAMES) {
      const g = grads[k];
      params[k]!.grad = g === null || g === undefined ? null : tensor(g, { shape: fx.shapes[k]!, dtype });
    }
    opt.step();
    for (const k of NAMES) expectClose(await params[k]!.data(), expected[step]![k]!, atol, atol, `${label} ${dtype} step ${step + 1} '${k}'`);
  }
}

const CLASSES = {
  SGD: (ps: Tensor[], o: Record<string, unknown>) => new SGD(ps, o as Partial<SGDOptions>),
  Adam: (ps: Tensor[], o: Record<string, unknown>) => new Adam(ps, o as Partial<AdamOptions>),
  AdamW: (ps: Tensor[], o: Record<string, unknown>) => new AdamW(ps, o as Partial<AdamOptions>),
};

describe('optimizers match PyTorch over four steps', () => {
  for (const [name, c] of Object.entries(fx.optimizers)) {
    const make: Make = (params) => CLASSES[c.optimizer](NAMES.map((k) => params[k]!), c.options) as unknown as AnyOptimizer;
    test(`${name}: ${c.optimizer} ${JSON.stringify(c.options)}`, async () => {
      await replay(make, c.params, 'float64', 1e-12, name);
      await replay(make, c.params, 'float32', 2e-6, name);
    });
  }

  test('AdamW with parameter groups (own lr and weightDecay, defaults for the rest)', async () => {
    const make: Make = (params) => {
      const groups = fx.adamw_groups.groups.map((g): ParamGroupInput<AdamOptions> => ({ ...g, params: g.params.map((k) => params[k]!) }));
      return new AdamW(groups, { lr: 1e-3 }) as unknown as AnyOptimizer;
    };
    await replay(make, fx.adamw_groups.params, 'float64', 1e-12, 'groups');
    await replay(make, fx.adamw_groups.params, 'float32', 2e-6, 'groups');
  });
});
