// The wasm backend's public face: initWasm() starts it; the class and stats types for callers that inspect it.

export { createWasmBackend, initWasm, type WasmInitOptions } from './init.js';
export { WasmBackend, WasmBuffer, type WasmMemoryStats } from './backend.js';
