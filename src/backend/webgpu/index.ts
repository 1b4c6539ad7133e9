// The webgpu backend's public face: initWebGPU() starts it; the class for callers that inspect it.

export { createWebGPUBackend, initWebGPU, requestAdapter, type WebGPUInitOptions } from './init.js';
export { WebGPUBackend, type WebGPUMemoryStats } from './backend.js';
