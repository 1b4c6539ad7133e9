// The buffer allocator over the wasm linear memory: size classes with free lists, a bump pointer, and
// on exhaustion a coalescing pass before the memory grows. Runs on the main thread only.

import { describeMemory, fmtBytes } from '../../tensor/memory.js';

/** Block granularity: a cache line, which also lets whole-buffer SIMD loops finish with a full vector. */
export const ALIGN = 64;
const PAGE = 65536;

/** Rounds a request up to its size class: multiples of 64 B up to 1 KiB, then 4 classes per power of two. */
export function sizeClass(bytes: number): number {
  if (bytes <= 1024) return Math.max(ALIGN, Math.ceil(bytes / ALIGN) * ALIGN);
  const step = 2 ** Math.floor(Math.log2(bytes - 1)) / 4;
  return Math.ceil(bytes / step) * step;
}

export interface AllocatorStats {
  /** Blocks handed out and not yet freed. */
  liveBlocks: number;
  /** Bytes in those blocks (size-class rounded). */
  bytesInUse: number;
  /** Bytes in freed blocks kept for reuse. */
  bytesFree: number;
  /** End of the highest block ever handed out (the allocator's footprint). */
  top: number;
  /** Size of the linear memory. */
  memoryBytes: number;
}

interface Span {
  ptr: number;
  bytes: number;
}

export class Allocator {
  /** Free blocks by size class (stacks: the most recently freed block is reused first, while cache-warm). */
  private readonly lists = new Map<number, number[]>();
  /** Address-ordered free runs made by coalescing, split on demand. */
  private spans: Span[] = [];
  private top: number;
  private live = 0;
  private inUse = 0;
  private free_ = 0;

  constructor(private readonly memory: WebAssembly.Memory, base: number, private readonly onGrow: () => void) {
    this.top = Math.ceil(base / ALIGN) * ALIGN;
  }

  /** A block of at least `bytes` bytes (at least one cache line), 64-byte aligned. */
  alloc(bytes: number): { ptr: number; bytes: number } {
    const size = sizeClass(bytes);
    const ptr = this.fromLists(size) ?? this.fromSpans(size) ?? this.bump(size);
    this.live++;
    this.inUse += size;
    return { ptr, bytes: size };
  }

  free(ptr: number, bytes: number): void {
    let list = this.lists.get(bytes);
    if (!list) this.lists.set(bytes, (list = []));
    list.push(ptr);
    this.live--;
    this.inUse -= bytes;
    this.free_ += bytes;
  }

  stats(): AllocatorStats {
    return { liveBlocks: this.live, bytesInUse: this.inUse, bytesFree: this.free_, top: this.top, memoryBytes: this.memory.buffer.byteLength };
  }

  private fromLists(size: number): number | undefined {
    const ptr = this.lists.get(size)?.pop();
    if (ptr !== undefined) this.free_ -= size;
    return ptr;
  }

  private fromSpans(size: number): number | undefined {
    for (let i = 0; i < this.spans.length; i++) {
      const s = this.spans[i]!;
      if (s.bytes < size) continue;
      const ptr = s.ptr;
      s.ptr += size;
      s.bytes -= size;
      if (s.bytes === 0) this.spans.splice(i, 1);
      this.free_ -= size;
      return ptr;
    }
    return undefined;
  }

  private bump(size: number): number {
    if (this.top + size > this.memory.buffer.byteLength) {
      this.coalesce();
      const again = this.fromSpans(size);
      if (again !== undefined) return again;
      if (this.top + size > this.memory.buffer.byteLength) this.grow(this.top + size);
    }
    const ptr = this.top;
    this.top += size;
    return ptr;
  }

  /** Merges every free block with its free neighbours; a free run at the top lowers the top. */
  private coalesce(): void {
    const blocks: Span[] = [...this.spans];
    for (const [bytes, list] of this.lists) for (const ptr of list) blocks.push({ ptr, bytes });
    this.lists.clear();
    blocks.sort((a, b) => a.ptr - b.ptr);
    const merged: Span[] = [];
    for (const b of blocks) {
      const last = merged[merged.length - 1];
      if (last && last.ptr + last.bytes === b.ptr) last.bytes += b.bytes;
      else merged.push({ ...b });
    }
    const tail = merged[merged.length - 1];
    if (tail && tail.ptr + tail.bytes === this.top) {
      this.top = tail.ptr;
      this.free_ -= tail.bytes;
      merged.pop();
    }
    this.spans = merged;
  }

  private grow(needed: number): void {
    const have = this.memory.buffer.byteLength;
    // Grow by at least half again, so that a growing workload does not grow page by page.
    const want = Math.max(needed, Math.ceil(have * 1.5));
    const pages = Math.ceil((want - have) / PAGE);
    try {
      this.memory.grow(pages);
    } catch {
      try {
        this.memory.grow(Math.ceil((needed - have) / PAGE));
      } catch {
        throw new Error(`wasm backend: out of memory: ${fmtBytes(needed)} of linear memory needed, the runtime grants ${fmtBytes(have)}; `
          + `${describeMemory()}. Free tensors you no longer need with dispose() or tidy(), or await between steps (e.g. await loss.item()) `
          + 'so that tensors no longer referenced are reclaimed; memory() shows what is live');
      }
    }
    this.onGrow();
  }
}
