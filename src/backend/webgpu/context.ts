// The WebGPU device for the 'webgpu' backend: buffers pooled by size class, dispatches batched into one command
// encoder (submitted when read back or every BATCH dispatches), pipelines cached by source, errors kept for the next call.
//
// Every dtype is stored as 32-bit words, one element per word: float32 as f32, int32 as i32, bool and uint8 as u32,
// float16 / bfloat16 as their 16 bits in the low half of a u32 (computed in float32, as the CPU backends do). float64
// does not exist on GPUs. Kernels are WGSL strings: binding 0 is a 256-byte uniform block of parameters (u32 slots,
// read with `pu(i)` / `pf(i)` / `pi(i)` from PRELUDE), bindings 1.. are the storage buffers in the order given.

import type { BackendBuffer } from '../../tensor/backend.js';
import type { DType } from '../../tensor/dtype.js';

// GPUBufferUsage / GPUMapMode values (WebGPU spec), so that no global has to exist in Node.
const MAP_READ = 1, COPY_SRC = 4, COPY_DST = 8, UNIFORM = 64, STORAGE = 128;
const MODE_READ = 1;

/** Dispatches recorded before the encoder is submitted without a read (bounds the memory waiting on a submit). */
const BATCH = 64;
/** 64 parameter slots of 4 bytes. */
export const PARAM_SLOTS = 64;
/** Threads per workgroup of the 1-d kernels (WG_1D in WGSL). */
export const WG = 256;

/** Error slots: [0] = 1 + id of the first failing check (0: none), [1] = the offending value. */
const ERROR_WORDS = 4;

/**
 * WGSL shared by every kernel: the parameter block, its readers, the error slots of index checks (binding 1 when
 * a kernel declares `uses errors`), and `gid1()`, the flat invocation index of a 1-d launch spread over x and y.
 */
export const PRELUDE = /* wgsl */ `
struct Params { v: array<vec4<u32>, 16> }
@group(0) @binding(0) var<uniform> params: Params;
fn pu(i: u32) -> u32 { return params.v[i >> 2u][i & 3u]; }
fn pi(i: u32) -> i32 { return bitcast<i32>(pu(i)); }
fn pf(i: u32) -> f32 { return bitcast<f32>(pu(i)); }
const WG_1D: u32 = ${WG}u;
fn flat(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 { return (wid.y * nwg.x + wid.x) * WG_1D + lid.x; }
`;

/** A kernel's uniform parameters: u32 / i32 slots, or f32 where marked. */
export type Param = number | { f32: number };

export class GpuBuffer implements BackendBuffer {
  freed = false;
  constructor(readonly dtype: DType, readonly size: number, readonly buffer: GPUBuffer) {}
}

export interface GpuFeatures {
  shaderF16: boolean;
  subgroups: boolean;
  timestampQuery: boolean;
}

/** Size class of a buffer of `bytes`: powers of two up to 1 MiB, then quarter steps of a power of two (waste <= 25%). */
function sizeClass(bytes: number): number {
  const b = Math.max(256, bytes);
  const p = 2 ** Math.ceil(Math.log2(b));
  if (p <= 1 << 20) return p;
  const q = p / 8;
  return Math.ceil(b / q) * q;
}

export class GpuContext {
  readonly features: GpuFeatures;
  readonly maxBufferBytes: number;
  /** Set once the device is lost: every later call throws it. */
  private failure: Error | null = null;
  /** A validation or out-of-memory error the device reported since the last call: thrown once, by the next call. */
  private reported: Error | null = null;
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private pending = 0;
  private readonly pool = new Map<number, GPUBuffer[]>();
  /** Buffers freed since the last submit: a queued write must not reach them before the recorded work ran. */
  private freedSinceSubmit: GPUBuffer[] = [];
  private uniformsFree: GPUBuffer[] = [];
  private uniformsUsed: GPUBuffer[] = [];
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  private readonly errors: GPUBuffer;
  private readonly errorChecks: ((value: number) => string)[] = [];
  private readonly paramBytes = new ArrayBuffer(PARAM_SLOTS * 4);
  private readonly paramU32 = new Uint32Array(this.paramBytes);
  private readonly paramF32 = new Float32Array(this.paramBytes);
  liveBuffers = 0;
  pooledBytes = 0;

  constructor(readonly device: GPUDevice, readonly adapterInfo: string, readonly isFallback: boolean, features: GpuFeatures) {
    this.features = features;
    this.maxBufferBytes = Math.min(device.limits.maxStorageBufferBindingSize, device.limits.maxBufferSize);
    void device.lost.then((info) => {
      this.failure ??= new Error(`webgpu: the device was lost (${info.reason}: ${info.message || 'no message'}); start a new one with initWebGPU()`);
    });
    device.addEventListener('uncapturederror', (ev) => {
      this.reported ??= new Error(`webgpu: ${(ev as GPUUncapturedErrorEvent).error.message}`);
    });
    this.errors = device.createBuffer({ size: 256, usage: STORAGE | COPY_SRC | COPY_DST });
  }

  /** Throws the error the device reported since the last call, if any. */
  check(): void {
    if (this.failure) throw this.failure;
    const e = this.reported;
    this.reported = null;
    if (e) throw e;
  }

  // ---- buffers ----

  /** A buffer for `size` elements of `dtype` (4 bytes each), from the pool when one of its size class is free. */
  alloc(dtype: DType, size: number): GpuBuffer {
    this.check();
    if (dtype === 'float64') throw new Error('webgpu: float64 is not supported (GPUs have no 64-bit floats); cast to float32 first');
    const bytes = size * 4;
    if (bytes > this.maxBufferBytes) {
      throw new Error(`webgpu: a ${dtype} tensor of ${size} elements needs ${bytes} bytes, more than this adapter's buffer limit of ${this.maxBufferBytes} bytes (maxStorageBufferBindingSize)`);
    }
    const cls = sizeClass(bytes);
    const free = this.pool.get(cls);
    let buffer = free?.pop();
    if (buffer) this.pooledBytes -= cls;
    else buffer = this.device.createBuffer({ size: cls, usage: STORAGE | COPY_SRC | COPY_DST });
    this.liveBuffers++;
    return new GpuBuffer(dtype, size, buffer);
  }

  free(b: GpuBuffer): void {
    if (b.freed) throw new Error('webgpu backend: buffer freed twice');
    b.freed = true;
    this.liveBuffers--;
    if (this.encoder) this.freedSinceSubmit.push(b.buffer);
    else this.recycle(b.buffer);
  }

  private recycle(buffer: GPUBuffer): void {
    let list = this.pool.get(buffer.size);
    if (!list) this.pool.set(buffer.size, (list = []));
    list.push(buffer);
    this.pooledBytes += buffer.size;
  }

  /** Writes 32-bit words into a buffer (in queue order: after every submitted dispatch, before the recorded ones). */
  write(b: GpuBuffer, words: Uint32Array | Int32Array | Float32Array): void {
    this.check();
    if (words.length > 0) this.device.queue.writeBuffer(b.buffer, 0, words.buffer, words.byteOffset, words.byteLength);
  }

  // ---- kernels ----

  /** The compute pipeline of a WGSL source (PRELUDE prepended), compiled once. */
  pipeline(source: string): GPUComputePipeline {
    let p = this.pipelines.get(source);
    if (!p) {
      const module = this.device.createShaderModule({ code: PRELUDE + source });
      p = this.device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
      this.pipelines.set(source, p);
    }
    return p;
  }

  /**
   * Records one dispatch of `source` over `groups` workgroups, with `params` in the uniform block and `buffers` at
   * bindings 1... With `check`, binding 1 is the error slots: the kernel stores 1 + its check id there on a failed
   * check (and the offending value), and the next read throws `check(value)`.
   */
  run(source: string, params: readonly Param[], buffers: readonly GpuBuffer[], groups: readonly [number, number?, number?], check?: (value: number) => string): void {
    this.check();
    const [x, y = 1, z = 1] = groups;
    if (x === 0 || y === 0 || z === 0) return;
    const limit = this.device.limits.maxComputeWorkgroupsPerDimension;
    if (x > limit || y > limit || z > limit) throw new Error(`webgpu: a dispatch of ${x} x ${y} x ${z} workgroups exceeds the limit of ${limit} per dimension`);
    const u = this.uniform(params, check ? this.errorChecks.push(check) : 0);
    const pipeline = this.pipeline(source);
    const entries: GPUBindGroupEntry[] = [{ binding: 0, resource: { buffer: u } }];
    let binding = 1;
    if (check) entries.push({ binding: binding++, resource: { buffer: this.errors, size: ERROR_WORDS * 4 } });
    for (const b of buffers) {
      if (b.freed) throw new Error('webgpu backend: a kernel was given a freed buffer');
      entries.push({ binding: binding++, resource: { buffer: b.buffer, size: Math.max(4, b.size * 4) } });
    }
    const group = this.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries });
    if (!this.pass) {
      this.encoder ??= this.device.createCommandEncoder();
      this.pass = this.encoder.beginComputePass();
    }
    this.pass.setPipeline(pipeline);
    this.pass.setBindGroup(0, group);
    this.pass.dispatchWorkgroups(x, y, z);
    if (++this.pending >= BATCH) this.submit();
  }

  /** Workgroups for a 1-d launch of n invocations (WG per group), spread over x and y to stay within the limits. */
  groups1d(n: number): [number, number] {
    const g = Math.ceil(n / WG);
    const limit = this.device.limits.maxComputeWorkgroupsPerDimension;
    if (g <= limit) return [g, 1];
    const y = Math.ceil(g / limit);
    return [Math.ceil(g / y), y];
  }

  /** A uniform buffer holding the parameters; slot 63 carries the check id (1-based; 0 = none). */
  private uniform(params: readonly Param[], checkId: number): GPUBuffer {
    if (params.length > PARAM_SLOTS - 1) throw new Error(`webgpu backend: ${params.length} kernel parameters (at most ${PARAM_SLOTS - 1})`);
    this.paramU32.fill(0);
    params.forEach((p, i) => {
      if (typeof p === 'number') this.paramU32[i] = p >>> 0;
      else this.paramF32[i] = p.f32;
    });
    this.paramU32[PARAM_SLOTS - 1] = checkId;
    const u = this.uniformsFree.pop() ?? this.device.createBuffer({ size: PARAM_SLOTS * 4, usage: UNIFORM | COPY_DST });
    this.device.queue.writeBuffer(u, 0, this.paramBytes);
    this.uniformsUsed.push(u);
    return u;
  }

  private endPass(): void {
    this.pass?.end();
    this.pass = null;
  }

  /** Submits the recorded work; buffers and parameter blocks freed meanwhile become reusable. */
  submit(): void {
    this.endPass();
    if (this.encoder) this.device.queue.submit([this.encoder.finish()]);
    this.encoder = null;
    this.pending = 0;
    for (const b of this.freedSinceSubmit) this.recycle(b);
    this.freedSinceSubmit = [];
    this.uniformsFree.push(...this.uniformsUsed);
    this.uniformsUsed = [];
  }

  /** The words of a buffer, after every recorded dispatch; throws a failed index check or a device error. */
  async read(b: GpuBuffer): Promise<Uint32Array> {
    this.check();
    const bytes = b.size * 4;
    const staging = this.device.createBuffer({ size: bytes + ERROR_WORDS * 4, usage: MAP_READ | COPY_DST });
    this.endPass();
    this.encoder ??= this.device.createCommandEncoder();
    if (bytes > 0) this.encoder.copyBufferToBuffer(b.buffer, 0, staging, 0, bytes);
    this.encoder.copyBufferToBuffer(this.errors, 0, staging, bytes, ERROR_WORDS * 4);
    this.encoder.clearBuffer(this.errors, 0, ERROR_WORDS * 4);
    this.submit();
    try {
      await staging.mapAsync(MODE_READ);
    } catch (e) {
      this.check();
      throw new Error(`webgpu: reading a buffer back failed (${(e as Error).message})`);
    }
    const all = new Uint32Array(staging.getMappedRange().slice(0));
    staging.unmap();
    staging.destroy();
    const id = all[b.size]!;
    if (id !== 0) {
      const message = this.errorChecks[id - 1]?.(new Int32Array(all.buffer, bytes + 4, 1)[0]!) ?? 'webgpu: a kernel check failed';
      this.errorChecks.length = 0;
      throw new Error(message);
    }
    if (this.errorChecks.length > 1 << 16) this.errorChecks.length = 0;
    return all.subarray(0, b.size);
  }

  /** Waits until the device has run everything submitted (for timings). */
  async sync(): Promise<void> {
    this.submit();
    await this.device.queue.onSubmittedWorkDone();
    this.check();
  }
}

/** The WGSL of the error slots (binding 1) and `fail(value)`, for kernels that check indices. */
export const ERRORS_WGSL = /* wgsl */ `
@group(0) @binding(1) var<storage, read_write> errors: array<atomic<i32>, ${ERROR_WORDS}>;
fn fail(value: i32) {
  // The first failing check wins (dispatches run in order), with its own value; a weak exchange may fail spuriously.
  loop {
    let r = atomicCompareExchangeWeak(&errors[0], 0, i32(pu(63u)));
    if (r.exchanged) { atomicStore(&errors[1], value); return; }
    if (r.old_value != 0) { return; }
  }
}
`;
