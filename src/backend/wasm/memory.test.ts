// A training loop on the wasm device must not grow memory: after warm-up the live buffer count and the
// allocator's footprint stay flat, step after step (manual SGD via replaceStorage, and Adam).

import { describe, expect, test } from 'vitest';
import { initWasm } from '../../index.js';
import { Allocator } from './allocator.js';
import { mul, relu, sub } from '../../autograd/ops/elementwise.js';
import { matmul } from '../../autograd/ops/matmul.js';
import { noGrad } from '../../autograd/engine.js';
import { crossEntropy } from '../../nn/functional.js';
import { Linear } from '../../nn/linear.js';
import { Sequential } from '../../nn/container.js';
import { ReLU } from '../../nn/activation.js';
import { Adam } from '../../optim/adam.js';
import { randint, randn } from '../../tensor/create.js';
import { manualSeed } from '../../tensor/random.js';
import { tidy } from '../../tensor/scope.js';
import type { Tensor } from '../../tensor/tensor.js';

const wasm = await initWasm({ setDefault: false });
const device = 'wasm';

/** Runs `steps` steps; returns the losses and the memory stats after each step. */
function run(steps: number, step: () => number) {
  const losses: number[] = [], live: number[] = [], top: number[] = [];
  for (let s = 0; s < steps; s++) {
    losses.push(step());
    const m = wasm.memoryStats();
    live.push(m.liveBuffers);
    top.push(m.top);
  }
  return { losses, live, top };
}

describe('wasm memory over a training loop', () => {
  test('2-layer MLP, manual SGD through replaceStorage: flat after warm-up', () => {
    manualSeed(1);
    const x = randn([64, 16], { device }), y = randint(0, 4, [64], { device });
    const params = [randn([16, 32], { device }), randn([32], { device }), randn([32, 4], { device }), randn([4], { device })].map((p) => mul(p, 0.3).requiresGrad_());
    const [w1, b1, w2, b2] = params as [Tensor, Tensor, Tensor, Tensor];
    const r = run(120, () => tidy(() => {
      const loss = crossEntropy(matmul(relu(matmul(x, w1).add(b1)), w2).add(b2), y);
      loss.backward();
      noGrad(() => {
        for (const p of params) {
          p.replaceStorage(sub(p, mul(p.grad!, 0.1)));
          p.grad!.dispose();
          p.grad = null;
        }
      });
      return loss.dataSync()[0]!;
    }));
    expect(r.losses[119]!).toBeLessThan(r.losses[0]! * 0.5);
    expect(new Set(r.live.slice(10))).toEqual(new Set([r.live[10]]));
    expect(new Set(r.top.slice(10))).toEqual(new Set([r.top[10]]));
  });

  test('the same with nn.Linear layers and Adam (optimizer state on the device): flat after warm-up', () => {
    manualSeed(2);
    const model = new Sequential(new Linear(16, 64, { device }), new ReLU(), new Linear(64, 4, { device }));
    const opt = new Adam(model.parameters(), { lr: 1e-2 });
    const x = randn([128, 16], { device }), y = randint(0, 4, [128], { device });
    const r = run(100, () => tidy(() => {
      const loss = crossEntropy(model.forward(x), y);
      loss.backward();
      opt.step();
      opt.zeroGrad();
      return loss.dataSync()[0]!;
    }));
    expect(r.losses[99]!).toBeLessThan(r.losses[0]!);
    expect(new Set(r.live.slice(10))).toEqual(new Set([r.live[10]]));
    expect(new Set(r.top.slice(10))).toEqual(new Set([r.top[10]]));
  });
});

describe('out of memory', () => {
  test('the error says how much is live, in how many tensors, and what to do', () => {
    const a = new Allocator(new WebAssembly.Memory({ initial: 1, maximum: 2 }), 0, () => {});
    a.alloc(1000);
    expect(() => a.alloc(1 << 20)).toThrow(/wasm backend: out of memory: 1\.0 MB of linear memory needed, the runtime grants 65\.5 kB; .* live in [\d,]+ tensors.*dispose\(\) or tidy\(\), or await between steps .*memory\(\) shows what is live/);
  });
});
