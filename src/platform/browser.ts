// The browser's side of '#platform' (package.json "imports", default condition): the same exports as
// src/platform/node.ts without a single Node import, so that bundlers never see `node:` modules.

import type * as NodePlatform from './node.js';

type FsModule = typeof import('node:fs/promises');
type SharpModule = typeof import('sharp');

export type FileHandle = NodePlatform.FileHandle;

export const isNode: boolean = false;

/** No file system here: the error says what to use instead. */
export function fs(what = 'this operation'): Promise<FsModule> {
  return Promise.reject(new Error(`${what} reads or writes files, which needs Node; in a browser pass a URL (http(s)), a Map or record of File / Blob / bytes, or bytes`));
}

export async function cpuCount(): Promise<number> {
  return (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator?.hardwareConcurrency ?? 1;
}

/** Flags cannot be set in a browser: the caller falls back. */
export async function setV8Flags(flags: string): Promise<boolean> {
  void flags;
  return false;
}

export async function exposeGc(): Promise<(() => void) | null> {
  return null;
}

export function evalWorker(source: string): Promise<import('node:worker_threads').Worker> {
  void source;
  return Promise.reject(new Error('worker_threads exist only in Node (browsers use a Blob URL worker)'));
}

export function sharp(): Promise<SharpModule> {
  return Promise.reject(new Error('sharp is a Node library; in a browser decode images with createImageBitmap or a canvas and pass the pixels'));
}

/** The browser's WebGPU entry point (navigator.gpu), or null where the browser has none. */
export async function gpu(): Promise<GPU | null> {
  return (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu ?? null;
}

// Both variants must export the same API (a compile-time check).
void ({ isNode, fs, cpuCount, setV8Flags, exposeGc, evalWorker, sharp, gpu } satisfies typeof NodePlatform);
