// The fused optimizer kernels (Backend.adamStep / sgdStep) against the composed elementwise path, on every backend:
// the same rounding in the same order, so float32 results must agree bit for bit over several steps.

import { describe, expect, test } from 'vitest';
import '../index.js';
import { getBackend, listDevices, type Backend } from '../tensor/backend.js';
import { randn } from '../tensor/create.js';
import type { FloatDType } from '../tensor/dtype.js';
import { manualSeed } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';
import { supportsDtype } from '../test-util/devices.js';
import { Adam } from './adam.js';
import { AdamW } from './adamw.js';
import type { Optimizer, ParamState } from './optimizer.js';
import { SGD } from './sgd.js';

type AnyOptimizer = Optimizer<{ lr: number }, ParamState>;
const MAKERS: Record<string, (ps: Tensor[]) => AnyOptimizer> = {
  'AdamW wd 0.1': (ps) => new AdamW(ps, { lr: 0.01, weightDecay: 0.1 }) as unknown as AnyOptimizer,
  'Adam L2 0.05, betas (0.8, 0.99)': (ps) => new Adam(ps, { lr: 0.02, betas: [0.8, 0.99], weightDecay: 0.05 }) as unknown as AnyOptimizer,
  'Adam no decay': (ps) => new Adam(ps, { lr: 0.003 }) as unknown as AnyOptimizer,
  'SGD plain': (ps) => new SGD(ps, { lr: 0.1 }) as unknown as AnyOptimizer,
  'SGD momentum, dampening, wd': (ps) => new SGD(ps, { lr: 0.1, momentum: 0.9, dampening: 0.2, weightDecay: 0.01 }) as unknown as AnyOptimizer,
  'SGD nesterov': (ps) => new SGD(ps, { lr: 0.05, momentum: 0.8, nesterov: true }) as unknown as AnyOptimizer,
};

/** Three steps from a fixed start; returns every parameter and state tensor (read them with `readAll`). */
function run(device: string, dtype: FloatDType, make: (ps: Tensor[]) => AnyOptimizer): Tensor[] {
  manualSeed(11);
  // 1 element, a size that is not a multiple of the vector width, and one past a wasm tile (16384).
  const params = [[1], [37], [16390]].map((s) => randn(s, { device, dtype, requiresGrad: true }));
  const opt = make(params);
  for (let step = 0; step < 3; step++) {
    for (const p of params) p.grad = randn(p.shape, { device, dtype });
    opt.step();
  }
  const state = opt.stateDict().state;
  return [...params, ...Object.values(state).flatMap((s) => Object.values(s).filter((v): v is Tensor => typeof v !== 'number'))];
}

const readAll = (ts: Tensor[]): Promise<number[][]> => Promise.all(ts.map(async (t) => Array.from(await t.data())));

/** Runs fn with the backend's fused optimizer kernels hidden (the optimizers then compose elementwise ops). */
function composed<T>(b: Backend, fn: () => T): T {
  const own = b as { adamStep?: unknown; sgdStep?: unknown };
  own.adamStep = undefined;
  own.sgdStep = undefined;
  try {
    return fn();
  } finally {
    delete own.adamStep;
    delete own.sgdStep;
  }
}

for (const device of listDevices()) {
  describe(`fused optimizer steps on ${device}`, () => {
    const b = getBackend(device);
    test('the backend has the fused kernels', () => {
      expect(typeof b.adamStep).toBe('function');
      expect(typeof b.sgdStep).toBe('function');
    });
    for (const [name, make] of Object.entries(MAKERS)) {
      for (const dtype of ['float32', 'float64'] as const) {
        test.skipIf(!supportsDtype(device, dtype))(`${name}, ${dtype}: identical to the composed ops`, async () => {
          const fused = await readAll(run(device, dtype, make));
          const ref = await readAll(composed(b, () => run(device, dtype, make)));
          expect(fused.length).toBe(ref.length);
          fused.forEach((a, i) => expect(a, `tensor ${i}`).toEqual(ref[i]));
        });
      }
    }
  });
}
