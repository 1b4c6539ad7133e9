// Memory without a manual: live-byte accounting per device, and reclamation of tensors the program no longer references.
//
// Every tensor is registered here, with a WeakRef once no tidy() scope owns it (a scope holds its tensors strongly and
// disposes most of them). A tensor that becomes unreachable without dispose() keeps its
// buffer until its JS object is collected; backend buffers (wasm memory, GPU memory) put no pressure on the JS
// heap, so V8 may never collect such objects in a tight training loop. So, once enough bytes have been allocated
// since the last reclamation, the next await point (`await t.data()`, `item()`, `tolist()`) ends the current job
// with a macrotask turn (WeakRef targets stay alive until the job ends), runs a full GC where the runtime allows
// it (Node: through v8/vm), and releases the buffers of every collected tensor. A FinalizationRegistry stays as
// the lazy path for runtimes without a callable GC. Reclamation never runs inside a kernel call: only at awaits.

import { exposeGc, isNode } from '#platform';

/** What the registry needs of a tensor's storage (structural, so that this file does not import tensor.ts). */
export interface Releasable {
  release(): void;
}

/**
 * One live tensor: its weak handle (null while a tidy() scope owns the tensor: the scope holds it strongly, so it
 * cannot be collected, and most such tensors are disposed by the scope) and the storage reference it holds (null once
 * released).
 */
export class LiveEntry {
  constructor(public ref: WeakRef<object> | null, public storage: Releasable | null) {}
}

const live = new Set<LiveEntry>();
const finalizer = new FinalizationRegistry<LiveEntry>((e) => releaseEntry(e));

function releaseEntry(e: LiveEntry): void {
  live.delete(e);
  const s = e.storage;
  e.storage = null;
  s?.release();
}

/**
 * Registers a new tensor holding a reference to `storage`. A tensor a scope owns (`scoped`) gets its weak handle only
 * when it leaves the last scope (watchTensor): a WeakRef and a finalizer registration cost about 1 us, more than a
 * small op's own work, and most tensors made in a tidy() are disposed there.
 */
export function registerTensor(t: object, storage: Releasable, scoped: boolean): LiveEntry {
  const e = new LiveEntry(null, storage);
  live.add(e);
  if (!scoped) watchTensor(t, e);
  return e;
}

/** The tensor is no longer owned by any scope: from now on it is reclaimed when the program drops it. */
export function watchTensor(t: object, e: LiveEntry): void {
  if (e.ref !== null || e.storage === null) return;
  e.ref = new WeakRef(t);
  finalizer.register(t, e, e);
}

/** The tensor was disposed: release its storage reference now. */
export function unregisterTensor(e: LiveEntry): void {
  if (e.ref !== null) finalizer.unregister(e);
  releaseEntry(e);
}

// ---- per-device accounting ----

export interface DeviceMemory {
  /** Bytes held by live buffers (element bytes; backends may round blocks up). */
  bytes: number;
  /** Live buffers (tensors that share a buffer, like reshape views, count it once). */
  buffers: number;
}

export interface MemoryStats {
  /** Tensor objects not yet disposed or reclaimed. */
  tensors: number;
  /** Bytes held by live buffers on every device. */
  bytes: number;
  devices: Record<string, DeviceMemory>;
  /** Times unreferenced tensors were reclaimed, and how many tensors that released in all. */
  reclaims: number;
  reclaimedTensors: number;
  /** Milliseconds spent reclaiming (the GC and the sweep; not the one-task yield before them). */
  reclaimMs: number;
}

const devices = new Map<string, DeviceMemory>();
let allocatedSinceReclaim = 0;
let liveAfterReclaim = 0;
let reclaims = 0;
let reclaimedTensors = 0;
let reclaimMs = 0;

/** Called when a buffer is wrapped in a Storage. */
export function accountAlloc(device: string, bytes: number): void {
  let d = devices.get(device);
  if (!d) devices.set(device, (d = { bytes: 0, buffers: 0 }));
  d.bytes += bytes;
  d.buffers++;
  allocatedSinceReclaim += bytes;
}

/** Called when a Storage frees its buffer. */
export function accountFree(device: string, bytes: number): void {
  const d = devices.get(device)!;
  d.bytes -= bytes;
  d.buffers--;
}

function totalBytes(): number {
  let n = 0;
  for (const d of devices.values()) n += d.bytes;
  return n;
}

/** Live tensors and bytes per device, like torch.cuda.memory_allocated (for every device). */
export function memory(): MemoryStats {
  const out: Record<string, DeviceMemory> = {};
  for (const [k, d] of devices) out[k] = { ...d };
  return { tensors: live.size, bytes: totalBytes(), devices: out, reclaims, reclaimedTensors, reclaimMs };
}

/** One line for error messages: "1.2 GB live in 3,456 tensors (wasm 1.2 GB, cpu 4 kB)". */
export function describeMemory(): string {
  const parts = [...devices].filter(([, d]) => d.buffers > 0).map(([k, d]) => `${k} ${fmtBytes(d.bytes)}`);
  return `${fmtBytes(totalBytes())} live in ${live.size.toLocaleString('en-US')} tensors${parts.length ? ` (${parts.join(', ')})` : ''}`;
}

export function fmtBytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB'];
  let u = 0;
  while (n >= 1000 && u < units.length - 1) { n /= 1000; u++; }
  return `${u === 0 ? n : n.toFixed(1)} ${units[u]}`;
}

// ---- reclamation ----

/** Below this many bytes allocated since the last reclamation, awaits do not reclaim. */
const MIN_PRESSURE = 64 * 2 ** 20;

/** True when enough has been allocated since the last reclamation that garbage may hold much of it. */
function underPressure(): boolean {
  return allocatedSinceReclaim > Math.max(MIN_PRESSURE, liveAfterReclaim / 2);
}

let gcFn: (() => void) | null | undefined;

/** A callable full GC where the runtime lends one (Node), else null (then only the FinalizationRegistry path). */
async function getGc(): Promise<(() => void) | null> {
  if (gcFn !== undefined) return gcFn;
  gcFn = null;
  const g = globalThis as { gc?: () => void; process?: { versions?: { node?: string } } };
  if (typeof g.gc === 'function') return (gcFn = g.gc);
  if (isNode) {
    try {
      gcFn = await exposeGc();
    } catch {
      // No callable GC: the FinalizationRegistry still reclaims, later.
    }
  }
  return gcFn ?? null;
}

/** Ends the current job (a macrotask turn), so that WeakRef targets created in it may be collected. */
function nextTask(): Promise<void> {
  const g = globalThis as { setImmediate?: (cb: () => void) => void };
  return new Promise((resolve) => (g.setImmediate ? g.setImmediate(resolve) : setTimeout(resolve, 0)));
}

/**
 * Frees the buffers of every tensor the program no longer references (those never disposed). Runs by itself
 * at await points under allocation pressure; call it to reclaim now. Resolves to the number of tensors freed.
 */
export async function reclaimMemory(): Promise<number> {
  const gc = await getGc();
  await nextTask();
  const start = performance.now();
  gc?.();
  let freed = 0;
  for (const e of live) {
    if (e.ref !== null && e.ref.deref() === undefined) {
      finalizer.unregister(e);
      releaseEntry(e);
      freed++;
    }
  }
  reclaims++;
  reclaimedTensors += freed;
  allocatedSinceReclaim = 0;
  liveAfterReclaim = totalBytes();
  reclaimMs += performance.now() - start;
  return freed;
}

/** The await-point hook: reclaims when under allocation pressure, otherwise returns at once. */
export async function maybeReclaim(): Promise<void> {
  if (underPressure()) await reclaimMemory();
}
