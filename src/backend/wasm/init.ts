// Asynchronous start of the wasm backend: compile the best build this runtime validates, make the
// memory (shared when threads are possible), start the worker pool, register the 'wasm' device.

import { startOnce } from '../start.js';
import { Allocator } from './allocator.js';
import { WasmBackend, type WasmRuntime } from './backend.js';
import { PARAM_SLOTS, SCRATCH_BYTES } from './kernels.js';
import { compileVariant, coreCount, detectRelaxedSimd, threadsAvailable, type Variant } from './loader.js';
import { WorkerPool } from './pool.js';

export interface WasmInitOptions {
  /** Threads that work on a job, the calling thread included (default: the core count; 1 = no workers). */
  threads?: number;
  /** Use f32x4.relaxed_madd when the runtime validates it (default true). */
  relaxedSimd?: boolean;
  /** Make 'wasm' the default device (default true). */
  setDefault?: boolean;
  /**
   * Folder (URL; relative to the page in a browser) holding attend-*.wasm. By default the files are found where the
   * package keeps them, or where a bundler that understands `new URL('...', import.meta.url)` (Vite, webpack) put them.
   */
  wasmBase?: URL | string;
}

/** Linear memory limit in pages (4 GiB); a shared memory reserves it up front, so fall back to less. */
const MAX_PAGES = [65536, 16384];

const start = startOnce(createWasmBackend);

/**
 * Starts the wasm backend once and registers it as device 'wasm' (by default also the default device).
 * Later calls return the same backend; their options other than setDefault are ignored. A start that failed
 * (a file that could not be fetched, say) is forgotten, so a later call tries again.
 */
export function initWasm(opts: WasmInitOptions = {}): Promise<WasmBackend> {
  return start(opts, opts.setDefault ?? true);
}

/** Makes a memory of `initial` pages, shared if asked, with the largest maximum the runtime grants. */
function makeMemory(initial: number, shared: boolean): WebAssembly.Memory {
  let last: unknown;
  for (const maximum of MAX_PAGES) {
    try {
      return new WebAssembly.Memory({ initial, maximum, shared });
    } catch (e) {
      last = e;
    }
  }
  throw new Error(`wasm backend: cannot create the linear memory (${String(last)})`);
}

/**
 * A new, independent wasm backend (its own memory and workers), not registered as a device: for tests
 * and benchmarks that compare configurations. Most code wants initWasm().
 */
export async function createWasmBackend(opts: WasmInitOptions = {}): Promise<WasmBackend> {
  const cores = await coreCount();
  const threads = Math.max(1, Math.floor(opts.threads ?? cores));
  const mt = threads > 1 && threadsAvailable();
  const relaxed = (opts.relaxedSimd ?? true) && (await detectRelaxedSimd());
  const variant: Variant = `${relaxed ? 'relaxed' : 'simd'}-${mt ? 'mt' : 'st'}`;
  const module = await compileVariant(variant, opts.wasmBase);

  const memory = makeMemory(32, mt);
  const instance = await WebAssembly.instantiate(module, {
    env: { memory, abort: () => { throw new Error('wasm backend: kernel abort'); } },
  });
  const exports = instance.exports as unknown as WasmRuntime['exports'] & { heapBase(): number; initKernels(): void };
  exports.initKernels();

  let backend: WasmBackend | null = null;
  const allocator = new Allocator(memory, exports.heapBase(), () => backend?.refreshViews());
  // Fixed blocks, never freed: the job parameters, the pool's control words, per-thread scratch.
  const param = allocator.alloc(PARAM_SLOTS * 4).ptr;
  const ctrl = allocator.alloc(64).ptr;
  const scratch = allocator.alloc(SCRATCH_BYTES * threads).ptr;
  const pool = mt ? await WorkerPool.start(module, memory, ctrl, threads - 1) : null;

  const rt: WasmRuntime = { memory, exports, allocator, param, scratch, scratchPerThread: SCRATCH_BYTES, pool, variant };
  backend = new WasmBackend(rt);
  return backend;
}
