// Finding and compiling the kernel module: feature detection (relaxed SIMD, threads), the choice among
// the four builds, and reading the .wasm in Node (file) or a browser (fetch).

/** The four builds of assembly/ made by scripts/build-wasm.mjs. */
export type Variant = 'relaxed-mt' | 'simd-mt' | 'relaxed-st' | 'simd-st';

export const isNode = typeof process === 'object' && typeof process.versions?.node === 'string';
const nodeImport = (name: string): Promise<unknown> => import(/* @vite-ignore */ name);

// (module (func (result v128) v128.const 0 v128.const 0 v128.const 0 f32x4.relaxed_madd))
const RELAXED_PROBE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
  0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7b, // type: () -> v128
  0x03, 0x02, 0x01, 0x00, // one function of type 0
  0x0a, 0x3d, 0x01, 0x3b, 0x00, // code: one body of 59 bytes, no locals
  0xfd, 0x0c, ...new Array<number>(16).fill(0),
  0xfd, 0x0c, ...new Array<number>(16).fill(0),
  0xfd, 0x0c, ...new Array<number>(16).fill(0),
  0xfd, 0x85, 0x02, // f32x4.relaxed_madd (0xfd 0x105)
  0x0b,
]);

/** Whether f32x4.relaxed_madd validates; in Node 20 it is behind a V8 flag that can be set at run time. */
export async function detectRelaxedSimd(): Promise<boolean> {
  if (WebAssembly.validate(RELAXED_PROBE)) return true;
  if (!isNode) return false;
  const v8 = (await nodeImport('node:v8')) as typeof import('node:v8');
  v8.setFlagsFromString('--experimental-wasm-relaxed-simd');
  return WebAssembly.validate(RELAXED_PROBE);
}

/** Whether a shared memory and workers are available (browsers need cross-origin isolation). */
export function threadsAvailable(): boolean {
  if (typeof SharedArrayBuffer === 'undefined' || typeof Atomics === 'undefined') return false;
  if (isNode) return true;
  return typeof Worker !== 'undefined' && (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === true;
}

/** Logical cores of this machine (1 if unknown). */
export async function coreCount(): Promise<number> {
  if (isNode) {
    const os = (await nodeImport('node:os')) as typeof import('node:os');
    return os.availableParallelism?.() ?? os.cpus().length;
  }
  return (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator?.hardwareConcurrency ?? 1;
}

/** Where the builds are: build/ at the package root, two levels above src/backend/wasm and dist/backend/wasm. */
export function defaultWasmBase(): URL {
  return new URL('../../../build/', import.meta.url);
}

export async function compileVariant(variant: Variant, base: URL | string): Promise<WebAssembly.Module> {
  const url = new URL(`attend-${variant}.wasm`, base);
  if (isNode && url.protocol === 'file:') {
    const fs = (await nodeImport('node:fs/promises')) as typeof import('node:fs/promises');
    // A file read is never a shared buffer.
    let bytes: Uint8Array<ArrayBuffer>;
    try {
      bytes = (await fs.readFile(url)) as Uint8Array<ArrayBuffer>;
    } catch (e) {
      throw new Error(`wasm backend: cannot read ${url.pathname} (${(e as Error).message}); build the kernels with 'npm run build:wasm'`);
    }
    return WebAssembly.compile(bytes);
  }
  const res = await fetch(url);
  if (!res.ok) throw new Error(`wasm backend: cannot fetch ${url.href} (HTTP ${res.status})`);
  return WebAssembly.compile(await res.arrayBuffer());
}
