// ready(): the call an application makes before its first tensor: starts the wasm backend, or picks another device.

import { setDefaultDevice } from '../tensor/backend.js';
import { initWasm, type WasmInitOptions } from './wasm/index.js';

export interface ReadyOptions extends Omit<WasmInitOptions, 'setDefault'> {
  /** The default device afterwards: 'wasm' (the default; started here) or any registered device, such as 'cpu'. */
  device?: string;
}

/**
 * Starts the fast CPU backend ('wasm': WebAssembly SIMD kernels on a worker pool) and makes it the default device;
 * `{ device: 'cpu' }` keeps plain JavaScript (nothing to load), `{ wasmBase }` says where attend-*.wasm are served,
 * `{ threads }` caps the threads. A failed start (say, the .wasm could not be fetched) can be retried.
 */
export async function ready(opts: ReadyOptions = {}): Promise<void> {
  const { device = 'wasm', ...wasm } = opts;
  if (device === 'wasm') await initWasm({ ...wasm, setDefault: true });
  else setDefaultDevice(device);
}
