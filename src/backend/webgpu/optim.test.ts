// Kernel tests of the webgpu fused optimizer steps (adamStep, sgdStep) against the cpu backend, to the last bit.

import { beforeAll, describe, expect, test } from 'vitest';
import { rng, testGpu } from '../../test-util/webgpu.js';
import type { AdamStepParams, BackendBuffer, SgdStepParams } from '../../tensor/backend.js';
import type { TypedArray } from '../../tensor/dtype.js';
import { CpuBackend } from '../cpu/index.js';
import type { WebGPUBackend } from './backend.js';

const cpu = new CpuBackend();
let gpu: WebGPUBackend;
beforeAll(async () => {
  gpu = await testGpu();
}, 60_000);

/** Values over several decades (gradients and moments are small and spread), with zeros and signed zeros. */
function randomFloats(n: number, seed: number, positive = false): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, (_, i) => {
    if (i % 97 === 3) return positive ? 0 : -0;
    if (i % 89 === 5) return 0;
    const v = 10 ** (r() * 6 - 5);
    return positive || r() < 0.5 ? v : -v;
  });
}

/** Distance in units in the last place between two float32 values: 0 only when identical (or both NaN); +0 and -0 are 1 apart. */
function ulps(a: number, b: number): number {
  if (Object.is(a, b) || (Number.isNaN(a) && Number.isNaN(b))) return 0;
  const [x, y] = new Int32Array(new Float32Array([a, b]).buffer);
  // Map the sign-magnitude bit patterns onto a monotonic integer line (-0 one below +0).
  const ordered = (v: number) => (v < 0 ? -0x80000000 - v - 1 : v);
  return Math.abs(ordered(x!) - ordered(y!));
}

function show(v: number): string {
  return Object.is(v, -0) ? '-0' : String(v);
}

/** Each output within `maxUlps` of the cpu backend's; returns how many were bit for bit equal. */
function expectUlps(got: TypedArray, want: TypedArray, maxUlps: number, label: string): number {
  expect(got.length, label).toBe(want.length);
  let exact = 0;
  for (let i = 0; i < want.length; i++) {
    const d = ulps(got[i]!, want[i]!);
    if (d === 0) exact++;
    else if (d > maxUlps) expect.fail(`${label}: element ${i} is ${show(got[i]!)}, expected ${show(want[i]!)} (${d} ulps apart)`);
  }
  return exact;
}

async function readAll(b: CpuBackend | WebGPUBackend, bufs: (BackendBuffer | null)[]): Promise<(TypedArray | null)[]> {
  return Promise.all(bufs.map((x) => (x ? b.read(x) : null)));
}

/**
 * The tolerance: the multiplies and adds are exact float32 operations; sqrt and the division are correctly rounded
 * on lavapipe (checked: everything is bit for bit there) but WGSL allows 1 ulp more on other devices, which can
 * reach the new parameter; the moments are sums and products only.
 */
const PARAM_ULPS = 1;

describe('webgpu optimizer kernels vs the cpu backend', () => {
  const n = 1000;
  const param = randomFloats(n, 1), grad = randomFloats(n, 2), m0 = randomFloats(n, 3), v0 = randomFloats(n, 4, true);

  async function adam(hp: AdamStepParams, moments: boolean, label: string): Promise<number> {
    const run = async (b: CpuBackend | WebGPUBackend) => {
      const ins = [b.upload(param, 'float32'), b.upload(grad, 'float32'), moments ? b.upload(m0, 'float32') : null, moments ? b.upload(v0, 'float32') : null];
      const out = b.adamStep(ins[0]!, ins[1]!, ins[2]!, ins[3]!, hp);
      return readAll(b, [out.param, out.expAvg, out.expAvgSq]);
    };
    const [want, got] = [await run(cpu), await run(gpu)];
    let exact = expectUlps(got[0]!, want[0]!, PARAM_ULPS, `${label}: param`);
    exact += expectUlps(got[1]!, want[1]!, 0, `${label}: expAvg`);
    exact += expectUlps(got[2]!, want[2]!, 0, `${label}: expAvgSq`);
    return exact;
  }

  test('Adam and AdamW: first step with null moments, later steps, L2 and decoupled weight decay', async () => {
    const base = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, decoupled: true, step: 1 };
    const cases: [AdamStepParams, boolean, string][] = [
      [base, false, 'adam, first step'],
      [{ ...base, step: 7 }, true, 'adam, step 7'],
      [{ ...base, weightDecay: 0.01, step: 1 }, false, 'adamw, first step'],
      [{ ...base, weightDecay: 0.1, step: 3000, lr: 3e-4 }, true, 'adamw, step 3000'],
      [{ ...base, weightDecay: 0.05, decoupled: false, step: 2 }, true, 'adam L2'],
      [{ ...base, weightDecay: 0.05, decoupled: false, step: 1, eps: 1e-6, beta1: 0.8, beta2: 0.95 }, false, 'adam L2, first step, other betas'],
    ];
    let exact = 0;
    for (const [hp, moments, label] of cases) exact += await adam(hp, moments, label);
    // On lavapipe every output is bit for bit the cpu backend's.
    if (gpu.ctx.adapterInfo.includes('llvmpipe')) expect(exact).toBe(cases.length * 3 * n);
  });

  async function sgd(hp: SgdStepParams, buffer: boolean, label: string): Promise<number> {
    const run = async (b: CpuBackend | WebGPUBackend) => {
      const out = b.sgdStep(b.upload(param, 'float32'), b.upload(grad, 'float32'), buffer ? b.upload(m0, 'float32') : null, hp);
      return readAll(b, [out.param, out.momentumBuffer]);
    };
    const [want, got] = [await run(cpu), await run(gpu)];
    expect(got[1] === null, `${label}: momentum buffer`).toBe(want[1] === null);
    let exact = expectUlps(got[0]!, want[0]!, 0, `${label}: param`);
    if (want[1]) exact += expectUlps(got[1]!, want[1], 0, `${label}: momentum buffer`);
    return exact;
  }

  test('SGD: plain, weight decay, momentum (first step without a buffer, then with), dampening, nesterov', async () => {
    const base = { lr: 0.1, momentum: 0, dampening: 0, weightDecay: 0, nesterov: false };
    const cases: [SgdStepParams, boolean, string][] = [
      [base, false, 'plain'],
      [{ ...base, weightDecay: 1e-4 }, false, 'weight decay'],
      [{ ...base, momentum: 0.9 }, false, 'momentum, first step'],
      [{ ...base, momentum: 0.9, dampening: 0.1, weightDecay: 5e-4 }, true, 'momentum, dampening, weight decay'],
      [{ ...base, momentum: 0.9, nesterov: true }, false, 'nesterov, first step'],
      [{ ...base, momentum: 0.95, nesterov: true, weightDecay: 1e-2, lr: 3e-3 }, true, 'nesterov, weight decay'],
    ];
    for (const [hp, buffer, label] of cases) await sgd(hp, buffer, label);
  });

  test('NaN and infinite gradients propagate as on the cpu backend; empty and one-element parameters', async () => {
    const hp: AdamStepParams = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, decoupled: true, step: 2 };
    const p = Float32Array.of(1, -2, 3, 0.5), g = Float32Array.of(NaN, Infinity, -Infinity, 0.25);
    const run = async (b: CpuBackend | WebGPUBackend, pp: Float32Array, gg: Float32Array) => {
      const out = b.adamStep(b.upload(pp, 'float32'), b.upload(gg, 'float32'), b.upload(pp, 'float32'), b.upload(gg.map(Math.abs), 'float32'), hp);
      const s = b.sgdStep(b.upload(pp, 'float32'), b.upload(gg, 'float32'), b.upload(pp, 'float32'), { lr: 0.1, momentum: 0.9, dampening: 0, weightDecay: 0, nesterov: true });
      return readAll(b, [out.param, out.expAvg, out.expAvgSq, s.param, s.momentumBuffer]);
    };
    for (const [pp, gg] of [[p, g], [new Float32Array(0), new Float32Array(0)], [Float32Array.of(2), Float32Array.of(-0.5)]] as const) {
      const [want, got] = [await run(cpu, pp, gg), await run(gpu, pp, gg)];
      want.forEach((w, k) => expectUlps(got[k]!, w!, 0, `output ${k} of ${pp.length} elements`));
    }
  });

  test('non-float32 buffers are refused with a clear error', () => {
    const i = gpu.upload(Int32Array.of(1, 2), 'int32');
    expect(() => gpu.sgdStep(i, i, null, { lr: 0.1, momentum: 0, dampening: 0, weightDecay: 0, nesterov: false })).toThrow(/sgdStep: expected float32 buffers, got int32/);
    gpu.free(i);
  });
});
