// Printing against torch's own repr (test/data/print.json from scripts/gen_print_fixtures.py), on every device.

import { readFileSync } from 'node:fs';
import { inspect } from 'node:util';
import { afterEach, describe, expect, test, vi } from 'vitest';
import '../index.js';
import { mul } from '../autograd/ops/elementwise.js';
import { Parameter } from '../nn/module.js';
import { listDevices, type Backend, type BackendBuffer } from './backend.js';
import { arange, tensor } from './create.js';
import type { DType } from './dtype.js';
import { formatExp, formatFixed, setPrintOptions } from './print.js';
import { Tensor } from './tensor.js';
import { canReadSync, supportsDtype } from '../test-util/devices.js';

interface PrintCase {
  shape: number[];
  dtype: DType;
  data: (number | boolean | string)[];
  requiresGrad: boolean;
  parameter: boolean;
  gradFn: string | null;
  expected: string;
  expectedWasm: string;
}

const cases = (JSON.parse(readFileSync(new URL('../../test/data/print.json', import.meta.url), 'utf8')) as { cases: Record<string, PrintCase> }).cases;
const num = (v: number | boolean | string): number => (v === 'nan' ? NaN : v === 'inf' ? Infinity : v === '-inf' ? -Infinity : Number(v));

function build(c: PrintCase, device: string): Tensor {
  const t = tensor(c.data.map(num), { shape: c.shape, dtype: c.dtype, device, requiresGrad: c.requiresGrad || c.gradFn !== null });
  if (c.parameter) return new Parameter(t);
  return c.gradFn !== null ? mul(t, 1) : t;
}

for (const device of listDevices()) {
  describe(`printing on ${device} matches torch`, () => {
    for (const [name, c] of Object.entries(cases)) {
      test.skipIf(!supportsDtype(device, c.dtype))(name, async () => {
        const t = build(c, device);
        // torch omits the device for cpu only (expectedWasm: torch's layout with device='wasm' added).
        const expected = device === 'cpu' ? c.expected : c.expectedWasm.replace("device='wasm'", `device='${device}'`);
        // Without synchronous reads (webgpu) String() gives a placeholder pointing at the async form.
        const sync = canReadSync(device) ? expected : `tensor(<[${t.shape.join(', ')}] ${t.dtype} on ${device}: await t.print()>)`;
        expect(String(t)).toBe(sync);
        expect(inspect(t)).toBe(sync);
        expect(await t.format()).toBe(expected);
      });
    }
  });
}

describe('printing details', () => {
  afterEach(() => setPrintOptions());

  test("numbers round as Python's format does (exact value, ties to even)", () => {
    expect(formatFixed(0.125, 2)).toBe('0.12');
    expect(formatFixed(0.375, 2)).toBe('0.38');
    expect(formatFixed(-0.00001, 4)).toBe('-0.0000');
    expect(formatFixed(9.99996, 4)).toBe('10.0000');
    expect(formatFixed(2.5, 0)).toBe('2');
    expect(formatFixed(3.5, 0)).toBe('4');
    expect(formatExp(9.99996e-7, 4)).toBe('1.0000e-06');
    expect(formatExp(1.03125, 4)).toBe('1.0312e+00');
    expect(formatExp(1e100, 4)).toBe('1.0000e+100');
    expect(formatExp(0, 4)).toBe('0.0000e+00');
  });

  test('a result names the op that made it; a disposed tensor says so without throwing', async () => {
    const x = tensor([1, 2], { dtype: 'float32', requiresGrad: true, device: 'cpu' });
    expect(String(x.exp())).toBe('tensor([2.7183, 7.3891], gradFn=<exp>)');
    x.dispose();
    expect(String(x)).toBe('tensor(<[2], disposed>)');
    expect(inspect(x)).toBe('tensor(<[2], disposed>)');
    await expect(x.format()).resolves.toBe('tensor(<[2], disposed>)');
  });

  test('console.log shows the values', () => {
    const log = vi.spyOn(console, 'log').mockImplementation(() => {});
    console.log(arange(3, undefined, 1, { device: 'cpu' }));
    expect(inspect(log.mock.calls[0]![0])).toBe('tensor([0, 1, 2])');
    log.mockRestore();
  });

  test('print() logs the full string', async () => {
    const log = vi.spyOn(console, 'log').mockImplementation(() => {});
    await tensor([[1.5, 2]], { device: 'cpu' }).print();
    expect(log).toHaveBeenCalledWith('tensor([[1.5000, 2.0000]])');
    log.mockRestore();
  });

  test('a device without synchronous reads prints a placeholder; format() still gives the values', async () => {
    const base = tensor([0], { device: 'cpu' }).backend;
    // A stand-in GPU backend: the cpu one without readSync, under another name.
    const gpu: Backend = Object.create(base as object, {
      name: { value: 'webgpu' },
      readSync: { value: undefined },
      read: { value: (b: BackendBuffer) => Promise.resolve(base.readSync!(b)) },
    }) as Backend;
    const g = Tensor.fromBuffer(gpu, base.upload(new Float32Array([1.5, -2]), 'float32'), [2]);
    expect(String(g)).toBe('tensor(<[2] float32 on webgpu: await t.print()>)');
    expect(await g.format()).toBe("tensor([ 1.5000, -2.0000], device='webgpu')");
  });

  test('a summarised tensor is read corner by corner, never whole, on sync and async devices', async () => {
    const base = tensor([0], { device: 'cpu' }).backend;
    let elementsRead = 0;
    const count = (b: BackendBuffer) => { elementsRead += b.size; return base.readSync!(b); };
    const spy: Backend = Object.create(base as object, { readSync: { value: count } }) as Backend;
    const gpu: Backend = Object.create(base as object, {
      name: { value: 'webgpu' }, readSync: { value: undefined }, read: { value: (b: BackendBuffer) => Promise.resolve(count(b)) },
    }) as Backend;
    const values = Float32Array.from({ length: 400 * 500 }, (_, i) => i % 1000);
    const onCpu = Tensor.fromBuffer(base, base.upload(values, 'float32'), [400, 500]);
    const expected = String(onCpu);
    expect(expected.split('\n')[0]).toBe('tensor([[  0.,   1.,   2.,  ..., 497., 498., 499.],');
    expect(String(Tensor.fromBuffer(spy, base.upload(values, 'float32'), [400, 500]))).toBe(expected);
    expect(elementsRead).toBe(36);
    elementsRead = 0;
    expect(await Tensor.fromBuffer(gpu, base.upload(values, 'float32'), [400, 500]).format()).toBe(`${expected.slice(0, -1)}, device='webgpu')`);
    expect(elementsRead).toBe(36);
  });

  test('setPrintOptions changes precision, threshold and edgeitems; no argument restores the defaults', () => {
    setPrintOptions({ precision: 2 });
    expect(String(tensor([1.23456, 2], { device: 'cpu' }))).toBe('tensor([1.23, 2.00])');
    setPrintOptions({ threshold: 5, edgeitems: 1 });
    expect(String(arange(10, undefined, 1, { device: 'cpu' }))).toBe('tensor([0,  ..., 9])');
    setPrintOptions();
    expect(String(tensor([1.23456], { device: 'cpu' }))).toBe('tensor([1.2346])');
    expect(() => setPrintOptions({ precision: -1 })).toThrow(/setPrintOptions: precision must be a non-negative integer/);
    expect(() => setPrintOptions({ edgeitems: 0 })).toThrow(/setPrintOptions: edgeitems must be at least 1/);
  });
});
