// What a test device can do (float64, synchronous reads, eager kernel errors), read from its backend, so tests that
// run on every device skip or adapt exactly the cases a device legitimately lacks and stay strict everywhere else.

import { expect } from 'vitest';
import { getBackend } from '../tensor/backend.js';
import type { DType } from '../tensor/dtype.js';
import type { Tensor } from '../tensor/tensor.js';

/** Whether the device stores float64 tensors: the backend's `float64` capability (GPUs have none: webgpu refuses them). */
export function hasFloat64(device: string): boolean {
  return getBackend(device).float64 !== false;
}

/**
 * Whether the device stores tensors of `dtype` (every device but webgpu stores all of them; webgpu lacks float64). Use
 * it to skip, visibly, the cases of a dtype a device lacks: `test.skipIf(!supportsDtype(device, dtype))(name, ...)`.
 */
export function supportsDtype(device: string, dtype: DType): boolean {
  return dtype !== 'float64' || hasFloat64(device);
}

/**
 * Whether the device reads synchronously (`dataSync`, `backend.readSync`): the CPU-side backends, whose kernels run
 * when called. A queued (GPU) backend reads only with `await t.data()`.
 */
export function canReadSync(device: string): boolean {
  return getBackend(device).readSync !== undefined;
}

/**
 * Expects `run` to fail with `message`. Where kernels run when called (devices that read synchronously), the call
 * itself must throw, as before. On a queued device a check that needs the data (an index out of range) is recorded by
 * the kernel and thrown by the next read, so there the call may either throw or return tensors whose first
 * `await data()` rejects with the message.
 */
export async function expectOpError(device: string, run: () => Tensor | readonly Tensor[] | void, message: RegExp | string): Promise<void> {
  if (canReadSync(device)) {
    expect(run).toThrow(message);
    return;
  }
  let result: Tensor | readonly Tensor[] | void;
  try {
    result = run();
  } catch (e) {
    expect(() => { throw e; }).toThrow(message);
    return;
  }
  const outs = result === undefined ? [] : Array.isArray(result) ? (result as readonly Tensor[]) : [result as Tensor];
  expect(outs.length, `expected the call to throw ${String(message)} or to return a tensor whose read throws it`).toBeGreaterThan(0);
  await expect(Promise.all(outs.map((t) => t.data()))).rejects.toThrow(message);
}
