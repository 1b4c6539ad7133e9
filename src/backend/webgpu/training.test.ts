// The demo's training run (attend demo: GPT-2, 2 layers, width 64, on Brown bytes) on webgpu: its loss curve matches the wasm run's.

import { beforeAll, expect, test } from 'vitest';
import { demoData, demoModel, trainDemo } from '../../cli/demo.js';
import { initWasm } from '../wasm/index.js';
import { lavapipeIcd } from '../../test-util/webgpu.js';
import { initWebGPU } from './index.js';

const STEPS = 20;

beforeAll(async () => {
  process.env.VK_ICD_FILENAMES ??= lavapipeIcd();
  await initWasm({ setDefault: false });
  await initWebGPU({ setDefault: false });
});

async function curve(device: string, train: Uint8Array): Promise<number[]> {
  const losses: number[] = [];
  const model = demoModel(device, 0);
  await trainDemo(model, train, { steps: STEPS, seed: 0, device }, async (_, loss) => { losses.push(await loss.item()); });
  return losses;
}

test(`${STEPS} steps of the demo on webgpu follow the wasm run's losses`, async () => {
  const { train } = await demoData();
  const wasm = await curve('wasm', train);
  const gpu = await curve('webgpu', train);
  expect(wasm[STEPS - 1]!).toBeLessThan(wasm[0]! - 0.5); // it learns (uniform bytes: ln 256 = 5.55)
  // float32 sums in another order drift a little through Adam; the curves stay within 0.2%.
  for (let i = 0; i < STEPS; i++) expect(Math.abs(gpu[i]! - wasm[i]!) / wasm[i]!, `step ${i + 1}: webgpu ${gpu[i]} vs wasm ${wasm[i]}`).toBeLessThan(2e-3);
}, 300_000);
