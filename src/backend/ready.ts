// ready(): the call an application makes before its first tensor: picks the device (a GPU through WebGPU, or the wasm CPU kernels) and starts it.

import { setDefaultDevice } from '../tensor/backend.js';
import { initWasm, type WasmInitOptions } from './wasm/index.js';
import { initWebGPU, requestAdapter } from './webgpu/index.js';

export interface ReadyOptions extends Omit<WasmInitOptions, 'setDefault'> {
  /**
   * The default device afterwards: 'auto' (the default: 'webgpu' on a hardware GPU adapter, else 'wasm'), 'webgpu',
   * 'wasm', or any registered device such as 'cpu'.
   */
  device?: string;
}

let notified = false;

/**
 * Starts a device and makes it the default: `ready()` takes the GPU when WebGPU offers a hardware adapter and
 * otherwise the fast CPU backend ('wasm': WebAssembly SIMD kernels on a worker pool), saying so in one line;
 * `{ device: 'webgpu' }` insists on the GPU (a clear error where there is none); `{ device: 'cpu' }` keeps plain
 * JavaScript (nothing to load); `{ wasmBase }` says where attend-*.wasm are served, `{ threads }` caps the threads.
 * A failed start (say, the .wasm could not be fetched) can be retried. Returns the default device's name.
 */
export async function ready(opts: ReadyOptions = {}): Promise<string> {
  const { device = 'auto', ...wasm } = opts;
  if (device === 'auto') {
    const why = await hardwareGpu();
    if (why === null) {
      await initWebGPU({ setDefault: true });
      return 'webgpu';
    }
    if (!notified) console.info(`attend: ${why}; running on the CPU (wasm)`);
    notified = true;
    await initWasm({ ...wasm, setDefault: true });
    return 'wasm';
  }
  if (device === 'wasm') await initWasm({ ...wasm, setDefault: true });
  else if (device === 'webgpu') await initWebGPU({ setDefault: true });
  else setDefaultDevice(device);
  return device;
}

/** null when WebGPU offers a hardware adapter, else why not (software adapters are slower than the wasm kernels). */
async function hardwareGpu(): Promise<string | null> {
  try {
    const { name, isFallback } = await requestAdapter();
    return isFallback ? `WebGPU offers only a software adapter (${name})` : null;
  } catch (e) {
    return (e as Error).message.replace(/^webgpu: /, '');
  }
}
