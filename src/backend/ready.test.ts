// ready(): options, and a failed start that can be retried (each test gets fresh modules: a start of its own).

import { beforeEach, describe, expect, test, vi } from 'vitest';

beforeEach(() => {
  vi.resetModules();
});

describe('ready', () => {
  test('a start from a folder without the kernels fails naming the file; the next call starts', async () => {
    const { ready } = await import('../index.js');
    const { getDefaultDevice } = await import('../tensor/backend.js');
    await expect(ready({ wasmBase: '/no/such/folder', threads: 1 })).rejects.toThrow(/wasm backend: cannot read \/no\/such\/folder\/attend-(relaxed|simd)-st\.wasm/);
    expect(getDefaultDevice()).toBe('cpu');
    await ready({ threads: 1 });
    expect(getDefaultDevice()).toBe('wasm');
  });

  test("{ device: 'cpu' } loads nothing; an unknown device lists the registered ones", async () => {
    const { ready } = await import('../index.js');
    const { getDefaultDevice, listDevices } = await import('../tensor/backend.js');
    await ready({ device: 'cpu' });
    expect(getDefaultDevice()).toBe('cpu');
    expect(listDevices()).toEqual(['cpu']);
    await expect(ready({ device: 'tpu' })).rejects.toThrow(/unknown device 'tpu': registered devices are cpu/);
  });

  test('a wasmBase that holds the kernels (a folder path or a file: URL) starts', async () => {
    const { ready } = await import('../index.js');
    const { getDefaultDevice } = await import('../tensor/backend.js');
    await ready({ wasmBase: new URL('../../build/', import.meta.url), threads: 1 });
    expect(getDefaultDevice()).toBe('wasm');
    // Relative to the working directory (vitest runs in the package root).
    const { createWasmBackend } = await import('./wasm/init.js');
    expect((await createWasmBackend({ wasmBase: 'build', threads: 1 })).info.threads).toBe(1);
  });
});
