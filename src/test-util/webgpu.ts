// Where the tests find software Vulkan for WebGPU: the lavapipe that scripts/setup-lavapipe.sh fetched into .lavapipe/.

import { existsSync } from 'node:fs';
import { expect } from 'vitest';
import type { TypedArray } from '../tensor/dtype.js';
import { fileURLToPath } from 'node:url';
import { createWebGPUBackend, type WebGPUBackend } from '../backend/webgpu/index.js';

/** Where scripts/setup-lavapipe.sh puts the driver's ICD file. */
export const LAVAPIPE_ICD = fileURLToPath(new URL('../../.lavapipe/lvp_icd.json', import.meta.url));

/** The ICD file of the repository's lavapipe; throws (never skips) when it was not fetched. */
export function lavapipeIcd(): string {
  const icd = LAVAPIPE_ICD;
  if (!existsSync(icd)) throw new Error(`no software Vulkan driver at ${icd}: run \`sh scripts/setup-lavapipe.sh .lavapipe\` (as root: it apt-installs mesa-vulkan-drivers)`);
  return icd;
}

/** A webgpu backend of the test file's own, on lavapipe unless the environment names a driver: for kernel tests against the cpu oracle. */
export async function testGpu(): Promise<WebGPUBackend> {
  process.env.VK_ICD_FILENAMES ??= lavapipeIcd();
  return createWebGPUBackend();
}

/** Deterministic pseudo-random numbers in [0, 1) (an LCG), so that failures reproduce. */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** Elementwise closeness of a kernel's result to the oracle's: |got - want| <= atol + rtol |want|; NaN matches NaN, infinities must be equal. */
export function expectNear(got: TypedArray, want: TypedArray, atol: number, rtol: number, label: string): void {
  expect(got.length, label).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    const g = got[i]!, e = want[i]!;
    if (Object.is(g, e) || g === e || (Number.isNaN(e) && Number.isNaN(g))) continue;
    if (!(Math.abs(g - e) <= atol + rtol * Math.abs(e))) expect.fail(`${label}: element ${i} is ${g}, expected ${e}`);
  }
}
