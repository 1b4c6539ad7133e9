// Vitest setup: starts the wasm backend (and, with ATTEND_WEBGPU=1, the webgpu backend) before any test file collects
// its tests, so that describeOps runs every op on each of them as well as on 'cpu'. cpu stays the default device
// unless ATTEND_DEFAULT_DEVICE names another (then every test that does not name a device runs there too).

import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { initWasm } from '../index.js';
import { initWebGPU } from '../backend/webgpu/index.js';

await initWasm({ setDefault: process.env.ATTEND_DEFAULT_DEVICE === 'wasm' });
if (process.env.ATTEND_WEBGPU === '1') {
  // Software Vulkan (lavapipe) fetched by scripts/setup-lavapipe.sh, unless the environment names a driver.
  const icd = fileURLToPath(new URL('../../.lavapipe/lvp_icd.json', import.meta.url));
  if (!process.env.VK_ICD_FILENAMES && existsSync(icd)) process.env.VK_ICD_FILENAMES = icd;
  await initWebGPU({ setDefault: process.env.ATTEND_DEFAULT_DEVICE === 'webgpu' });
}
