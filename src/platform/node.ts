// Node's side of '#platform' (package.json "imports", condition "node"): the only place the library's browser-capable
// modules reach Node built-ins. src/platform/browser.ts has the same exports for bundlers targeting the browser.

import type { FileHandle } from 'node:fs/promises';

type FsModule = typeof import('node:fs/promises');
type SharpModule = typeof import('sharp');

export type { FileHandle };

/** True here; false in the browser variant. */
export const isNode: boolean = true;

/** node:fs/promises; `what` names the operation in the browser variant's error. */
export function fs(what?: string): Promise<FsModule> {
  void what;
  return import('node:fs/promises');
}

/** Logical cores of this machine. */
export async function cpuCount(): Promise<number> {
  const os = await import('node:os');
  return os.availableParallelism?.() ?? os.cpus().length;
}

/** Sets V8 flags at run time (before a module that needs them is compiled). */
export async function setV8Flags(flags: string): Promise<boolean> {
  (await import('node:v8')).setFlagsFromString(flags);
  return true;
}

/** A callable full garbage collection (V8's `gc`, exposed at run time), or null. */
export async function exposeGc(): Promise<(() => void) | null> {
  const v8 = await import('node:v8');
  const vm = await import('node:vm');
  v8.setFlagsFromString('--expose-gc');
  const fn: unknown = vm.runInNewContext('gc');
  return typeof fn === 'function' ? (fn as () => void) : null;
}

/** A worker thread running `source` (plain JavaScript, CommonJS `require` available). */
export async function evalWorker(source: string): Promise<import('node:worker_threads').Worker> {
  const { Worker } = await import('node:worker_threads');
  return new Worker(source, { eval: true });
}

/** The optional dependency sharp (image decoding and encoding). */
export async function sharp(): Promise<SharpModule> {
  const m = await import('sharp');
  return ((m as { default?: SharpModule }).default ?? m) as SharpModule;
}

/** One Dawn instance for the process: collected by V8, it would tear down the devices made from it. */
let dawn: GPU | null = null;

/** WebGPU in Node: Dawn from the optional `webgpu` package (`npm install webgpu`), or null when it is not installed. */
export async function gpu(): Promise<GPU | null> {
  if (dawn) return dawn;
  let m: { create(flags: string[]): GPU };
  try {
    m = (await import('webgpu')) as { create(flags: string[]): GPU };
  } catch {
    return null;
  }
  dawn = m.create([]);
  return dawn;
}
