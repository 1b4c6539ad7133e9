// Asynchronous start of the webgpu backend: find an adapter (fallback adapters accepted), ask for its largest
// limits and the features we use, register the 'webgpu' device.

import { gpu } from '#platform';
import { startOnce } from '../start.js';
import { WebGPUBackend } from './backend.js';
import { GpuContext } from './context.js';

export interface WebGPUInitOptions {
  /** Make 'webgpu' the default device (default true). */
  setDefault?: boolean;
  /** 'high-performance' (default) or 'low-power'. */
  powerPreference?: GPUPowerPreference;
}

const WANTED: readonly GPUFeatureName[] = ['shader-f16', 'subgroups', 'timestamp-query'];
const LIMITS = ['maxStorageBufferBindingSize', 'maxBufferSize', 'maxComputeWorkgroupStorageSize', 'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX', 'maxComputeWorkgroupSizeY', 'maxStorageBuffersPerShaderStage', 'maxComputeWorkgroupsPerDimension'] as const;

const start = startOnce(createWebGPUBackend);

/**
 * Starts the webgpu backend once and registers it as device 'webgpu' (by default also the default device). Throws a
 * clear error where there is no WebGPU (no navigator.gpu, the `webgpu` package missing in Node, or no adapter); a
 * failed start is forgotten, so a later call tries again.
 */
export function initWebGPU(opts: WebGPUInitOptions = {}): Promise<WebGPUBackend> {
  return start(opts, opts.setDefault ?? true);
}

/** The adapter WebGPU offers here, with a readable name; throws naming what is missing (WebGPU itself, or an adapter). */
export async function requestAdapter(powerPreference: GPUPowerPreference = 'high-performance'): Promise<{ adapter: GPUAdapter; name: string; isFallback: boolean }> {
  const entry = await gpu();
  if (!entry) {
    throw new Error(typeof window === 'undefined'
      ? "webgpu: no WebGPU in this Node: install Dawn's bindings with `npm install webgpu` (and a Vulkan, Metal or D3D12 driver)"
      : 'webgpu: this browser has no WebGPU (navigator.gpu is missing): use a current Chrome, Edge or Safari, or Firefox with WebGPU enabled');
  }
  const adapter = await entry.requestAdapter({ powerPreference });
  if (!adapter) {
    throw new Error('webgpu: no adapter: the GPU driver offers no WebGPU device (in Node set VK_ICD_FILENAMES to a Vulkan driver, e.g. lavapipe from scripts/setup-lavapipe.sh)');
  }
  const info = adapter.info;
  const name = [info.vendor, info.architecture, info.device, info.description].filter((s) => s).join(' ') || 'unknown adapter';
  return { adapter, name, isFallback: info.isFallbackAdapter };
}

/** A new webgpu backend on its own device, not registered: for tests and benchmarks. Most code wants initWebGPU(). */
export async function createWebGPUBackend(opts: WebGPUInitOptions = {}): Promise<WebGPUBackend> {
  const { adapter, name, isFallback } = await requestAdapter(opts.powerPreference);
  const requiredFeatures = WANTED.filter((f) => adapter.features.has(f));
  const requiredLimits: Record<string, number> = {};
  for (const k of LIMITS) requiredLimits[k] = adapter.limits[k];
  const device = await adapter.requestDevice({ requiredFeatures, requiredLimits });
  const ctx = new GpuContext(device, name, isFallback, {
    shaderF16: device.features.has('shader-f16'),
    subgroups: device.features.has('subgroups'),
    timestampQuery: device.features.has('timestamp-query'),
  });
  return new WebGPUBackend(ctx);
}
