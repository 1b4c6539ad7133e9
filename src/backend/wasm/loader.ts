// Finding and compiling the kernel module: feature detection (relaxed SIMD, threads), the choice among
// the four builds, and reading the .wasm in Node (file) or a browser (fetch).

import { cpuCount, fs, isNode, setV8Flags } from '#platform';

/** The four builds of assembly/ made by scripts/build-wasm.mjs. */
export type Variant = 'relaxed-mt' | 'simd-mt' | 'relaxed-st' | 'simd-st';

/**
 * Where each build is, relative to this file (build/ at the package root, two levels above src/backend/wasm and
 * dist/backend/wasm). Each is a literal `new URL('...', import.meta.url)`, the pattern bundlers (Vite, webpack,
 * Parcel) recognise: they emit the four files as assets and rewrite the URLs.
 */
const VARIANT_URLS: Record<Variant, () => URL> = {
  'relaxed-mt': () => new URL('../../../build/attend-relaxed-mt.wasm', import.meta.url),
  'simd-mt': () => new URL('../../../build/attend-simd-mt.wasm', import.meta.url),
  'relaxed-st': () => new URL('../../../build/attend-relaxed-st.wasm', import.meta.url),
  'simd-st': () => new URL('../../../build/attend-simd-st.wasm', import.meta.url),
};

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
  if (!(await setV8Flags('--experimental-wasm-relaxed-simd'))) return false;
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
  return cpuCount();
}

/**
 * The URL of a build: `attend-<variant>.wasm` in `base` when given (a folder URL, relative ones against the page),
 * else where the package (or the bundler that emitted it) put it.
 */
export function variantUrl(variant: Variant, base?: URL | string): URL {
  if (base === undefined) return VARIANT_URLS[variant]();
  const href = String(base);
  const folder = href.endsWith('/') ? href : `${href}/`;
  // Relative folders: against the page in a browser, the working directory in Node.
  const page = (globalThis as { location?: { href?: string } }).location?.href;
  const cwd = isNode ? `file://${encodeURI(process.cwd()).replace(/[?#]/g, encodeURIComponent)}/` : import.meta.url;
  return new URL(`attend-${variant}.wasm`, new URL(folder, page ?? cwd));
}

const SERVE_HINT = "serve the package's build/attend-*.wasm files and pass their folder as ready({ wasmBase })";

export async function compileVariant(variant: Variant, base?: URL | string): Promise<WebAssembly.Module> {
  const url = variantUrl(variant, base);
  let bytes: ArrayBuffer | Uint8Array<ArrayBuffer>;
  if (isNode && url.protocol === 'file:') {
    // A file read is never a shared buffer.
    try {
      bytes = (await (await fs()).readFile(url)) as Uint8Array<ArrayBuffer>;
    } catch (e) {
      throw new Error(`wasm backend: cannot read ${url.pathname} (${(e as Error).message}); build the kernels with 'npm run build:wasm'`);
    }
  } else {
    let res: Response;
    try {
      res = await fetch(url);
    } catch (e) {
      throw new Error(`wasm backend: cannot fetch ${url.href} (${(e as Error).message}); ${SERVE_HINT}`);
    }
    if (!res.ok) throw new Error(`wasm backend: cannot fetch ${url.href} (HTTP ${res.status}); ${SERVE_HINT}`);
    // Dev servers and single-page-app hosts answer a missing file with their index.html.
    if (/^text\/html\b/i.test(res.headers.get('content-type') ?? '')) throw new Error(`wasm backend: cannot fetch ${url.href} (the server sent an HTML page: no such file); ${SERVE_HINT}`);
    bytes = await res.arrayBuffer();
  }
  try {
    return await WebAssembly.compile(bytes);
  } catch (e) {
    // A truncated or foreign file.
    throw new Error(`wasm backend: ${url.href} is not a WebAssembly module (${(e as Error).message}); ${isNode ? "rebuild with 'npm run build:wasm'" : SERVE_HINT}`);
  }
}
