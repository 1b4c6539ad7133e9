// Vitest setup: starts the wasm backend before any test file collects its tests, so that describeOps
// runs every op on 'wasm' as well as 'cpu'. cpu stays the default device unless ATTEND_DEFAULT_DEVICE=wasm
// (then every test that does not name a device runs on wasm too).

import { initWasm } from '../index.js';

await initWasm({ setDefault: process.env.ATTEND_DEFAULT_DEVICE === 'wasm' });
