// The optimizer base: state dict round trips (through safetensors), bad input, zeroGrad, memory, and use with Modules.
// Reference values: test/data/optim.json from scripts/gen_optim_fixtures.py (PyTorch).

import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import '../index.js';
import { CpuBackend, CpuBuffer } from '../backend/cpu/index.js';
import { loadSafetensors, saveSafetensors } from '../io/safetensors.js';
import { Linear } from '../nn/linear.js';
import { registerBackend, type Backend, type BackendBuffer } from '../tensor/backend.js';
import { tensor, zeros } from '../tensor/create.js';
import type { Tensor } from '../tensor/tensor.js';
import { expectClose } from '../test-util/fixtures.js';
import { Adam, type AdamOptions, type AdamState } from './adam.js';
import { AdamW } from './adamw.js';
import { clipGradNorm } from './clip.js';
import type { OptimizerStateDict, ParamGroupInput } from './optimizer.js';
import { SGD } from './sgd.js';

type Values = Record<string, number[]>;
interface OptimFixture {
  init: Values;
  shapes: Record<string, number[]>;
  grads: Record<string, number[] | null>[];
  optimizers: Record<string, { params: Values[] }>;
}
const fx = JSON.parse(readFileSync(new URL('../../test/data/optim.json', import.meta.url), 'utf8')) as OptimFixture;
const NAMES = Object.keys(fx.shapes);

function makeParams(device?: string): Tensor[] {
  return NAMES.map((k) => tensor(fx.init[k]!, { shape: fx.shapes[k]!, dtype: 'float64', requiresGrad: true, device }));
}
function setGrads(params: Tensor[], step: number, device?: string): void {
  params.forEach((p, i) => {
    const g = fx.grads[step]![NAMES[i]!];
    p.grad?.dispose();
    p.grad = g === null || g === undefined ? null : tensor(g, { shape: p.shape, dtype: 'float64', device });
  });
}
async function expectStep(params: Tensor[], expected: Values, label: string): Promise<void> {
  for (const [i, p] of params.entries()) expectClose(await p.data(), expected[NAMES[i]!]!, 1e-12, 1e-12, `${label} '${NAMES[i]}'`);
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'attend-optim-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('state dicts', () => {
  test('AdamW: save the state with safetensors after two steps, load into a fresh optimizer, the next steps match PyTorch', async () => {
    const params = makeParams();
    const opt = new AdamW(params, { lr: 1e-2 });
    for (const step of [0, 1]) {
      setGrads(params, step);
      opt.step();
    }
    const sd = opt.stateDict();
    expect(Object.keys(sd.state)).toEqual(['0', '1', '2']);
    expect(sd.state[2]!.step).toBe(1); // 'c' had no gradient in step 2: torch does not count it
    expect(sd.state[0]!.step).toBe(2);
    expect(sd.paramGroups).toEqual([{ lr: 1e-2, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.01, params: [0, 1, 2] }]);

    // Tensors to a safetensors file, the rest (steps, hyper-parameters) to its metadata as JSON.
    const tensors: Record<string, Tensor> = {};
    const steps: Record<string, number> = {};
    for (const [i, s] of Object.entries(sd.state)) {
      tensors[`state.${i}.expAvg`] = s.expAvg;
      tensors[`state.${i}.expAvgSq`] = s.expAvgSq;
      steps[i] = s.step;
    }
    const path = join(dir, 'adamw-state.safetensors');
    await saveSafetensors(path, { ...tensors, ...Object.fromEntries(params.map((p, i) => [`param.${i}`, p])) }, { steps: JSON.stringify(steps), paramGroups: JSON.stringify(sd.paramGroups) });

    const file = await loadSafetensors(path);
    const { readSafetensorsHeader } = await import('../io/safetensors.js');
    const meta = (await readSafetensorsHeader(path)).metadata;
    const loadedSteps = JSON.parse(meta['steps']!) as Record<string, number>;
    const restored: OptimizerStateDict<AdamOptions, AdamState> = {
      state: Object.fromEntries(Object.entries(loadedSteps).map(([i, step]) => [i, { step, expAvg: file[`state.${i}.expAvg`]!, expAvgSq: file[`state.${i}.expAvgSq`]! }])),
      paramGroups: JSON.parse(meta['paramGroups']!) as OptimizerStateDict<AdamOptions, AdamState>['paramGroups'],
    };
    const fresh = NAMES.map((_, i) => file[`param.${i}`]!.requiresGrad_());
    const opt2 = new AdamW(fresh, { lr: 0.5, weightDecay: 0 }); // hyper-parameters come from the state dict
    opt2.loadStateDict(restored);
    expect(opt2.paramGroups[0]!.lr).toBe(1e-2);
    expect(opt2.paramGroups[0]!.weightDecay).toBe(0.01);
    for (const step of [2, 3]) {
      setGrads(params, step);
      setGrads(fresh, step);
      opt.step();
      opt2.step();
      for (const [i, p] of params.entries()) expect([...(await fresh[i]!.data())], `step ${step + 1} '${NAMES[i]}'`).toEqual([...(await p.data())]);
      await expectStep(fresh, fx.optimizers['adamw']!.params[step]!, `restored step ${step + 1}`);
    }
  });

  test('stateDict tensors are live references: a later step updates them in place', async () => {
    const params = makeParams();
    const opt = new Adam(params);
    setGrads(params, 0);
    opt.step();
    const m = opt.stateDict().state[0]!.expAvg;
    const before = [...(await m.data())];
    setGrads(params, 1);
    opt.step();
    expect(m.isDisposed).toBe(false);
    expect([...(await m.data())]).not.toEqual(before);
    expect(opt.stateDict().state[0]!.expAvg).toBe(m);
  });

  test('SGD with momentum: the momentum buffer round trips, and a loaded state is a copy', async () => {
    const params = makeParams();
    const opt = new SGD(params, { lr: 0.1, momentum: 0.9, dampening: 0.1, weightDecay: 0.01 });
    setGrads(params, 0);
    opt.step();
    const sd = opt.stateDict();
    const fresh = params.map((p) => tensor([...p.dataSync()], { shape: p.shape, dtype: 'float64', requiresGrad: true }));
    const opt2 = new SGD(fresh, { lr: 0.1, momentum: 0.9, dampening: 0.1, weightDecay: 0.01 });
    opt2.loadStateDict(sd);
    expect(opt2.stateDict().state[0]!.momentumBuffer).not.toBe(sd.state[0]!.momentumBuffer);
    for (const step of [1, 2, 3]) {
      setGrads(fresh, step);
      opt2.step();
      await expectStep(fresh, fx.optimizers['sgd_momentum']!.params[step]!, `SGD step ${step + 1}`);
    }
  });

  test('a state dict that does not fit is an error naming the group, index or key, and changes nothing', async () => {
    const params = makeParams();
    const opt = new Adam(params, { lr: 1e-2 });
    setGrads(params, 0);
    opt.step();
    const good = opt.stateDict();
    const s0 = good.state[0]!;
    const bad = (change: (sd: OptimizerStateDict<AdamOptions, AdamState>) => void): OptimizerStateDict<AdamOptions, AdamState> => {
      const sd = { state: { ...good.state }, paramGroups: good.paramGroups.map((g) => ({ ...g, params: [...g.params] })) };
      change(sd);
      return sd;
    };
    expect(() => opt.loadStateDict(bad((sd) => { sd.state[1] = { ...s0 }; }))).toThrow(/Adam\.loadStateDict: parameter 1: state 'expAvg' has shape \[3, 4\], but the parameter has shape \[4\]/);
    expect(() => opt.loadStateDict(bad((sd) => { sd.state[7] = s0; }))).toThrow(/state for parameter index 7, but the optimizer has 3 parameters/);
    expect(() => opt.loadStateDict(bad((sd) => { Object.assign(sd.state, { first: s0 }); }))).toThrow(/state for parameter index first, but/);
    expect(() => opt.loadStateDict({} as OptimizerStateDict<AdamOptions, AdamState>)).toThrow(/Adam\.loadStateDict: expected \{ state, paramGroups \}/);
    expect(() => opt.loadStateDict(bad((sd) => { sd.state[0] = 5 as unknown as AdamState; }))).toThrow(/parameter 0: state must be an object/);
    expect(() => opt.loadStateDict(bad((sd) => { sd.state[0] = { ...s0, expAvg: [1, 2] as unknown as Tensor }; }))).toThrow(/parameter 0: state 'expAvg' must be a Tensor/);
    const disposed = s0.expAvg.clone();
    disposed.dispose();
    expect(() => opt.loadStateDict(bad((sd) => { sd.state[0] = { ...s0, expAvg: disposed }; }))).toThrow(/parameter 0: state 'expAvg' was disposed/);
    expect(() => opt.loadStateDict(bad((sd) => { sd.paramGroups[0]!.params.pop(); }))).toThrow(/parameter group 0 has 2 parameters in the state dict, 3 in the optimizer/);
    expect(() => opt.loadStateDict(bad((sd) => { sd.paramGroups.push({ ...sd.paramGroups[0]! }); }))).toThrow(/the state dict has 2 parameter groups, the optimizer has 1/);
    expect(() => opt.loadStateDict(bad((sd) => { sd.state[0] = { step: 1, expAvg: s0.expAvg } as AdamState; }))).toThrow(/parameter 0: state 'expAvgSq' is missing/);
    expect(() => opt.loadStateDict(bad((sd) => { sd.state[0] = { ...s0, step: Number.NaN }; }))).toThrow(/parameter 0: state 'step' must be a finite number, got NaN/);
    expect(() => opt.loadStateDict(bad((sd) => { sd.state[0] = { ...s0, momentumBuffer: s0.expAvg } as AdamState; }))).toThrow(/parameter 0: unexpected state 'momentumBuffer' for Adam/);
    expect(() => opt.loadStateDict(bad((sd) => { sd.paramGroups[0]!.eps = -1; }))).toThrow(/Adam: parameter group 0 of the state dict: eps must be a finite number >= 0, got -1/);
    expect(() => opt.loadStateDict(bad((sd) => { Object.assign(sd.paramGroups[0]!, { momentum: 0.9 }); }))).toThrow(/parameter group 0 of the state dict has unknown option 'momentum'/);
    // Nothing changed: the run continues exactly like PyTorch's.
    for (const step of [1, 2]) {
      setGrads(params, step);
      opt.step();
    }
    await expectStep(params, fx.optimizers['adam']!.params[2]!, 'after rejected loads');
  });
});

describe('bad input', () => {
  const p = (): Tensor => zeros([2], { requiresGrad: true });
  test('parameter lists', () => {
    expect(() => new SGD([])).toThrow(/SGD: got an empty parameter list/);
    expect(() => new Adam([zeros([2], { dtype: 'int32' })])).toThrow(/Adam: parameter 0 \(group 0\) is int32; only floating point tensors can be optimized/);
    const leaf = p();
    expect(() => new AdamW([p(), leaf.mul(2)])).toThrow(/AdamW: parameter 1 \(group 0\) is not a leaf \(it was computed by 'mul'\)/);
    expect(() => new AdamW([leaf, leaf])).toThrow(/AdamW: parameter 1 \(group 0\) appears more than once/);
    const gone = p();
    gone.dispose();
    expect(() => new AdamW([leaf, gone])).toThrow(/AdamW: parameter 1 \(group 0\) was disposed/);
    expect(() => new AdamW([{ params: [leaf] }, { params: [p(), leaf] }])).toThrow(/AdamW: parameter 2 \(group 1\) appears more than once/);
    expect(() => new AdamW([{ params: [leaf] }, { lr: 1 } as unknown as ParamGroupInput<AdamOptions>])).toThrow(/AdamW: parameter group 1 must be an object with a params array/);
    expect(() => new SGD([[1, 2] as unknown as Tensor])).toThrow(/SGD: parameter group 0 must be an object with a params array/);
    expect(() => new SGD([{ params: [3 as unknown as Tensor] }])).toThrow(/SGD: parameter 0 \(group 0\) is not a Tensor/);
  });
  test('hyper-parameters', () => {
    expect(() => new AdamW([p()], { weight_decay: 0.1 } as unknown as AdamOptions)).toThrow(/AdamW: options has unknown option 'weight_decay' \(options: lr, betas, eps, weightDecay\)/);
    expect(() => new AdamW([{ params: [p()], wd: 1 } as unknown as ParamGroupInput<AdamOptions>])).toThrow(/AdamW: parameter group 0 has unknown option 'wd'/);
    expect(() => new AdamW([p()], { lr: -1 })).toThrow(/AdamW: parameter group 0: lr must be a finite number >= 0, got -1/);
    expect(() => new Adam([p()], { betas: [0.9, 1] })).toThrow(/Adam: parameter group 0: betas\[1\] must be a finite number in \[0, 1\), got 1/);
    expect(() => new Adam([p()], { betas: [0.9] as unknown as [number, number] })).toThrow(/betas must be a pair \[beta1, beta2\], got \[0.9\]/);
    expect(() => new Adam([p()], { eps: Number.NaN })).toThrow(/eps must be a finite number >= 0, got NaN/);
    expect(() => new Adam([{ params: [p()] }, { params: [p()], weightDecay: -0.1 }])).toThrow(/Adam: parameter group 1: weightDecay must be a finite number >= 0, got -0.1/);
    expect(() => new SGD([p()], { momentum: -0.5 })).toThrow(/SGD: parameter group 0: momentum must be a finite number >= 0/);
    expect(() => new SGD([p()], { nesterov: true })).toThrow(/SGD: parameter group 0: Nesterov momentum needs momentum > 0 and dampening 0/);
    expect(() => new SGD([p()], { nesterov: true, momentum: 0.9, dampening: 0.1 })).toThrow(/Nesterov momentum needs momentum > 0 and dampening 0/);
  });
  test('a gradient that does not match its parameter', () => {
    const a = p(), b = p();
    const opt = new SGD([a, b], { lr: 0.1 });
    b.grad = zeros([3]);
    expect(() => opt.step()).toThrow(/SGD\.step: parameter 1 is \[2\] float32 on cpu but its gradient is \[3\] float32 on cpu/);
    b.grad = zeros([2], { dtype: 'float64' });
    expect(() => opt.step()).toThrow(/parameter 1 is \[2\] float32 on cpu but its gradient is \[2\] float64 on cpu/);
  });
});

describe('steps, gradients and memory', () => {
  test('zeroGrad frees the gradients and sets them to null; parameters without a gradient are left alone', async () => {
    const [a, b] = [tensor([1, 2], { requiresGrad: true }), tensor([3, 4], { requiresGrad: true })];
    const opt = new SGD([a!, b!], { lr: 0.5 });
    a!.grad = tensor([1, -1], { dtype: 'float32' });
    const g = a!.grad;
    opt.step();
    expect(await a!.tolist()).toEqual([0.5, 2.5]);
    expect(await b!.tolist()).toEqual([3, 4]);
    opt.zeroGrad();
    expect(a!.grad).toBeNull();
    expect(g.isDisposed).toBe(true);
    opt.step();
    expect(await a!.tolist()).toEqual([0.5, 2.5]);
  });

  test('a Module keeps its Parameter objects, which take the new values (known answer for plain SGD)', async () => {
    const layer = new Linear(3, 2);
    const weight = layer.weight;
    const w0 = [...layer.weight.dataSync()], b0 = [...layer.bias!.dataSync()];
    const opt = new SGD(layer.parameters(), { lr: 0.1 });
    const x = tensor([[1, 2, 3], [4, 5, 6]], { dtype: 'float32' });
    layer.forward(x).sum().backward();
    opt.step();
    expect(layer.weight).toBe(weight);
    // d sum(x W^T + b) / dW[j][i] = sum over the batch of x[., i]; d / db[j] = batch size.
    expectClose(layer.weight.dataSync(), w0.map((w, k) => w - 0.1 * [5, 7, 9][k % 3]!), 1e-6, 0, 'weight');
    expectClose(layer.bias!.dataSync(), b0.map((b) => b - 0.1 * 2), 1e-6, 0, 'bias');
  });

  test.each([['fused updates', true], ['composed updates', false]] as const)('a training loop does not grow memory on a backend with manual memory (%s)', (_, fused) => {
    // The CPU backend, seen through a proxy that counts live buffers.
    const live = new Set<BackendBuffer>();
    const cpu = new CpuBackend();
    const counted = new Proxy(cpu, {
      get(target, prop, receiver) {
        if (prop === 'name') return fused ? 'counted' : 'counted-composed';
        // Without the fused kernels the optimizers fall back to elementwise ops.
        if (!fused && (prop === 'adamStep' || prop === 'sgdStep')) return undefined;
        const v: unknown = Reflect.get(target, prop, receiver);
        if (typeof v !== 'function') return v;
        return (...args: unknown[]): unknown => {
          const out: unknown = (v as (...a: unknown[]) => unknown).apply(target, args);
          if (prop === 'free') live.delete(args[0] as BackendBuffer);
          else if (out instanceof CpuBuffer) live.add(out);
          // Kernels with several outputs (the fused optimizer steps) return them in an object.
          else if (typeof out === 'object' && out !== null) for (const b of Object.values(out)) if (b instanceof CpuBuffer) live.add(b);
          return out;
        };
      },
    }) as Backend;
    registerBackend(counted);
    const params = makeParams(counted.name);
    const optimizers = [new AdamW(params, { lr: 1e-3 }), new SGD(params, { lr: 0.1, momentum: 0.9, nesterov: true })];
    const sizes: number[] = [];
    for (let step = 0; step < 6; step++) {
      setGrads(params, step % 4 === 1 ? 0 : step % 4, counted.name);
      // No enclosing tidy: whatever step() or clipGradNorm() fail to free stays counted.
      clipGradNorm(params, 1).dispose();
      for (const opt of optimizers) opt.step();
      sizes.push(live.size);
    }
    // 3 parameters + 3 gradients + AdamW's 2 x 3 moments + SGD's 3 momentum buffers, from the first step on.
    expect(sizes).toEqual(Array(6).fill(15));
    for (const opt of optimizers) opt.zeroGrad();
    expect(live.size).toBe(12);
  });
});
