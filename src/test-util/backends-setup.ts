// Vitest setup: starts the wasm and webgpu backends (ATTEND_WEBGPU=0: wasm only) before any test file collects
// its tests, so that describeOps runs every op on each of them as well as on 'cpu'. cpu stays the default device
// unless ATTEND_DEFAULT_DEVICE names another (then every test that does not name a device runs there too).

import { existsSync } from 'node:fs';
import { initWasm } from '../index.js';
import { initWebGPU } from '../backend/webgpu/index.js';
import { LAVAPIPE_ICD } from './webgpu.js';

await initWasm({ setDefault: process.env.ATTEND_DEFAULT_DEVICE === 'wasm' });
if (process.env.ATTEND_WEBGPU !== '0') {
  // Software Vulkan (lavapipe) fetched by scripts/setup-lavapipe.sh, unless the environment names a driver (or there is
  // none: the system's GPU). A missing adapter fails every test file here: webgpu is never skipped silently
  // (ATTEND_WEBGPU=0 leaves it out on purpose).
  if (!process.env.VK_ICD_FILENAMES && existsSync(LAVAPIPE_ICD)) process.env.VK_ICD_FILENAMES = LAVAPIPE_ICD;
  await initWebGPU({ setDefault: process.env.ATTEND_DEFAULT_DEVICE === 'webgpu' }).catch((e: Error) => {
    throw new Error(`${e.message}. For software WebGPU run \`sh scripts/setup-lavapipe.sh .lavapipe\` (as root); ATTEND_WEBGPU=0 runs the tests without webgpu`);
  });
}
