// Vitest setup: starts the wasm and webgpu backends (ATTEND_WEBGPU=0: wasm only) before any test file collects
// its tests, so that describeOps runs every op on each of them as well as on 'cpu'. cpu stays the default device
// unless ATTEND_DEFAULT_DEVICE names another (then every test that does not name a device runs there too).

import { initWasm } from '../index.js';
import { initWebGPU } from '../backend/webgpu/index.js';
import { lavapipeIcd } from './webgpu.js';

await initWasm({ setDefault: process.env.ATTEND_DEFAULT_DEVICE === 'wasm' });
if (process.env.ATTEND_WEBGPU === '1') { // TODO(lead): flip to !== '0' once the kernels land
  // Software Vulkan (lavapipe) fetched by scripts/setup-lavapipe.sh, unless the environment names a driver. A missing
  // adapter fails every test file here: webgpu is never skipped silently (ATTEND_WEBGPU=0 leaves it out on purpose).
  process.env.VK_ICD_FILENAMES ??= lavapipeIcd();
  await initWebGPU({ setDefault: process.env.ATTEND_DEFAULT_DEVICE === 'webgpu' });
}
