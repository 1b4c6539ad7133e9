// The webgpu backend's start, limits and failures: adapter found on software Vulkan, clear errors without one, device loss.

import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, test } from 'vitest';
import { lavapipeIcd } from '../../test-util/webgpu.js';
import { createWebGPUBackend } from './index.js';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** Runs a module snippet in a fresh Node (its own Vulkan loader state) with the given VK_ICD_FILENAMES. */
async function node(source: string, icd: string): Promise<{ stdout: string; stderr: string }> {
  return run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', source], { cwd: ROOT, env: { ...process.env, VK_ICD_FILENAMES: icd }, timeout: 60_000 });
}

beforeAll(() => {
  process.env.VK_ICD_FILENAMES ??= lavapipeIcd();
});

describe('webgpu start', () => {
  test('lavapipe gives a (fallback) adapter with the features we use; upload and read back round-trip every dtype', async () => {
    const gpu = await createWebGPUBackend();
    expect(gpu.ctx.isFallback).toBe(true);
    expect(gpu.ctx.adapterInfo).toMatch(/llvmpipe/);
    expect(gpu.ctx.features.subgroups).toBe(true);
    expect(Array.from(await gpu.read(gpu.upload(new Float32Array([1.5, -2, Infinity]), 'float32')))).toEqual([1.5, -2, Infinity]);
    expect(Array.from(await gpu.read(gpu.upload(new Int32Array([-7, 2 ** 31 - 1]), 'int32')))).toEqual([-7, 2 ** 31 - 1]);
    expect(Array.from(await gpu.read(gpu.upload(new Uint8Array([1, 0, 1]), 'bool')))).toEqual([1, 0, 1]);
    expect(Array.from(await gpu.read(gpu.upload(new Uint8Array([255, 0, 7]), 'uint8')))).toEqual([255, 0, 7]);
    expect(Array.from(await gpu.read(gpu.upload(new Float32Array([1 / 3, 65520]), 'float16')))).toEqual([0.333251953125, Infinity]);
    expect(Array.from(await gpu.read(gpu.upload(new Float32Array([1 / 3]), 'bfloat16')))).toEqual([0.333984375]);
  });

  test('float64 and tensors beyond the adapter limit are refused with the limit named', async () => {
    const gpu = await createWebGPUBackend();
    expect(() => gpu.upload(new Float64Array(2), 'float64')).toThrow(/webgpu: float64 is not supported/);
    const max = gpu.ctx.maxBufferBytes;
    expect(() => gpu.fill('float32', max / 4 + 1, 0)).toThrow(new RegExp(`more than this adapter's buffer limit of ${max} bytes`));
  });

  test('a lost device makes the next call throw, not hang', async () => {
    const gpu = await createWebGPUBackend();
    const x = gpu.upload(new Float32Array([1, 2]), 'float32');
    gpu.ctx.device.destroy();
    await gpu.ctx.device.lost;
    expect(() => gpu.upload(new Float32Array([1]), 'float32')).toThrow(/webgpu: the device was lost/);
    await expect(gpu.read(x)).rejects.toThrow(/webgpu: the device was lost/);
  });

  test("without an adapter: ready({ device: 'webgpu' }) names what is missing; ready() falls back to wasm in one line", async () => {
    const bad = await node(`import { ready } from './src/index.ts'; await ready({ device: 'webgpu' }).catch((e) => console.log('ERR', e.message));`, '/nonexistent/icd.json');
    expect(bad.stdout).toMatch(/^ERR webgpu: no adapter/m);
    const auto = await node(`import { ready, getDefaultDevice } from './src/index.ts'; const d = await ready({ threads: 1 }); console.log('DEVICE', d, getDefaultDevice());`, '/nonexistent/icd.json');
    const lines = auto.stdout.trim().split('\n');
    expect(lines).toEqual([expect.stringMatching(/^attend: no adapter: .*; running on the CPU \(wasm\)$/), 'DEVICE wasm wasm']);
  });

  test('ready() passes over a software adapter (slower than the wasm kernels) and says so', async () => {
    const auto = await node(`import { ready } from './src/index.ts'; console.log('DEVICE', await ready({ threads: 1 }));`, lavapipeIcd());
    expect(auto.stdout).toMatch(/^attend: WebGPU offers only a software adapter \(.*llvmpipe.*\); running on the CPU \(wasm\)\nDEVICE wasm\n$/);
  });
});
