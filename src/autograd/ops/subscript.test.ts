// Python subscripts (reads, functional and in-place writes) against PyTorch on every backend: values, gradients, finite differences, errors.

import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import '../../index.js';
import { getBackend, listDevices, registerBackend, type Backend, type BackendBuffer } from '../../tensor/backend.js';
import { arange, ones, tensor, zeros } from '../../tensor/create.js';
import type { Tensor } from '../../tensor/tensor.js';
import { canReadSync } from '../../test-util/devices.js';
import { expectClose, fromFixture, type OpCase } from '../../test-util/fixtures.js';
import { noGrad } from '../engine.js';
import { gradcheck } from '../gradcheck.js';
import { exp, mul, sin, cos } from './elementwise.js';
import { sum } from './reduce.js';
import { Ellipsis, parseSubscript, sl, Slice, type IndexSpec } from './subscript.js';

const cases = (JSON.parse(readFileSync(new URL('../../../test/data/index.json', import.meta.url), 'utf8')) as { cases: Record<string, OpCase> }).cases;

type Fn = (...xs: Tensor[]) => Tensor | Promise<Tensor>;

/** x.at(spec) with a boolean mask: sync where the device reads the mask synchronously, else atAsync (x.at refuses: see the 'nosync' test). */
const atMasked = (x: Tensor, spec: IndexSpec): Tensor | Promise<Tensor> => (canReadSync(x.device) ? x.at(spec) : x.atAsync(spec));

/** indexPut with a mask and a tensor value needs the mask's values on the host and has no async form: devices that read synchronously. */
const SYNC_READ_ONLY = new Set(['put_mask_rows', 'put_mask_values']);

/** Each case of scripts/gen_index_fixtures.py in attend's forms (string and structured where both exist). */
const CASES: Record<string, Fn[]> = {
  int_neg: [(x) => x.at(-1), (x) => x.at('-1')],
  int_pair: [(x) => x.at('1, -2'), (x) => x.at([1, -2])],
  slice_step: [(x) => x.at(':, 0::2'), (x) => x.at([sl(), sl(0, null, 2)])],
  slice_neg: [(x) => x.at('-3:-1, ::3'), (x) => x.at([sl(-3, -1), sl(null, null, 3)])],
  slice_clamp: [(x) => x.at('1:100, -100:2')],
  slice_empty: [(x) => x.at('2:1')],
  newaxis: [(x) => x.at(':, None, 1:, None'), (x) => x.at([':', null, '1:', null])],
  ellipsis_last: [(x) => x.at('..., 1'), (x) => x.at([Ellipsis, 1])],
  ellipsis_newaxis: [(x) => x.at('..., None, :')],
  ellipsis_mid: [(x) => x.at('0, ..., 1:3'), (x) => x.at([0, '...', new Slice(1, 3)])],
  mask_attention: [(x) => x.at(':, None, None, :')],
  index_first: [(x, i) => x.at([i!]), (x, i) => x.at(i!), (x) => x.at([[[0, 2], [2, 1]]])],
  index_mid_negative: [(x, i) => x.at([':', i!])],
  index_adjacent: [(x, i, j) => x.at([':', i!, j!])],
  index_separated: [(x, i, j) => x.at([i!, ':', j!])],
  index_int_then_tensor: [(x, i) => x.at([1, ':', i!])],
  index_with_newaxis: [(x, i) => x.at(['1:', i!, null])],
  index_0d: [(x, i, j) => x.at([i!, ':', j!])],
  mask_full: [(x, m) => atMasked(x, [m!])],
  mask_leading: [(x, m) => atMasked(x, m!), (x) => atMasked(x, [[true, false, true]])],
  mask_mid: [(x, m) => atMasked(x, [':', m!])],
  mask_2d_leading: [(x, m) => atMasked(x, [m!])],
  mask_and_int: [(x, m) => atMasked(x, [m!, 1])],
  put_slice_step: [(x, v) => x.indexPut(':, 0::2', v!)],
  put_broadcast: [(x, v) => x.indexPut('1:, :', v!)],
  put_int_neg: [(x, v) => x.indexPut(-1, v!)],
  put_leading_ones: [(x, v) => x.indexPut(0, v!)],
  put_newaxis: [(x, v) => x.indexPut('None, 0, ...', v!)],
  put_ellipsis: [(x, v) => x.indexPut('..., 1', v!)],
  put_scalar: [(x) => x.indexPut('..., 0', 2.5)],
  put_mask_scalar: [(x, m) => x.indexPut([m!], 0)],
  put_mask_rows: [(x, v, m) => x.indexPut([m!], v!)],
  put_mask_values: [(x, v, m) => x.indexPut([m!], v!)],
  put_index: [(x, v, i) => x.indexPut([i!], v!)],
  put_index_mid: [(x, v, i) => x.indexPut([':', i!], v!)],
  put_index_pair: [(x, v, i, j) => x.indexPut([i!, j!], v!), (x, v) => x.indexPut([[0, 2, 1], [3, 0, -1]], v!)],
  put_index_broadcast_value: [(x, v, i) => x.indexPut([i!, '1:3'], v!)],
};

async function checkCase(name: string, fn: Fn, device: string): Promise<void> {
  const c = cases[name]!;
  const inputs = c.inputs.map((f) => fromFixture(f, device, 'float32', true));
  const out = await fn(...inputs);
  expect(out.shape, `${name} shape`).toEqual(c.output.shape);
  expect(out.dtype).toBe(c.output.dtype);
  expectClose(await out.data(), c.output.data, 1e-6, 1e-6, `${name} value on ${device}`);
  sum(mul(out, tensor(c.probe!, { shape: c.output.shape, device }))).backward();
  for (const [i, expected] of c.grads!.entries()) {
    if (!expected) continue;
    const g = inputs[i]!.grad;
    expect(g, `${name} grad ${i}`).not.toBeNull();
    expectClose(await g!.data(), expected, 1e-5, 1e-4, `${name} grad of input ${i} on ${device}`);
  }
  if (device === 'cpu') {
    const all = c.inputs.map((f) => fromFixture(f, device, 'float64'));
    const floats = all.flatMap((t, i) => (t.dtype === 'float64' ? [i] : []));
    gradcheck((...xs) => fn(...all.map((t, i) => (floats.includes(i) ? xs[floats.indexOf(i)]! : t))) as Tensor, floats.map((i) => all[i]!)); // sync on cpu
  }
}

test('every fixture case has an attend form', () => {
  expect(Object.keys(cases).filter((k) => k !== 'positional_encoding').sort()).toEqual(Object.keys(CASES).sort());
});

for (const device of listDevices()) {
  describe(`subscripts against PyTorch on ${device}`, () => {
    for (const [name, fns] of Object.entries(CASES)) {
      test.skipIf(SYNC_READ_ONLY.has(name) && !canReadSync(device))(name, async () => {
        for (const fn of fns) await checkCase(name, fn, device);
      });
    }

    test("the book's positional encoding built with set equals PyTorch's", async () => {
      const [maxLen, dModel] = [50, 16];
      const pe = zeros([maxLen, dModel], { device });
      const position = arange(0, maxLen, 1, { dtype: 'float32', device }).unsqueeze(1);
      const divTerm = exp(mul(arange(0, dModel, 2, { dtype: 'float32', device }), -Math.log(10000) / dModel));
      pe.set(':, 0::2', sin(mul(position, divTerm)));
      pe.set(':, 1::2', cos(mul(position, divTerm)));
      const c = cases['positional_encoding']!;
      const out = pe.unsqueeze(0);
      expect(out.shape).toEqual(c.output.shape);
      expectClose(await out.data(), c.output.data, 2e-6, 1e-5, `positional encoding on ${device}`);
    });

    test('set writes in place: masks, index tensors, scalars, duplicates (last write wins, as PyTorch on the CPU)', async () => {
      const x = tensor([[1, -2, 3], [-4, 5, -6]], { dtype: 'float32', device });
      const storage = x.storage;
      expect(x.set([x.lt(0)], 0)).toBe(x);
      expect(x.storage).not.toBe(storage);
      expect(await x.tolist()).toEqual([[1, 0, 3], [0, 5, 0]]);
      x.set([tensor([1, 1, 1], { dtype: 'int32', device }), tensor([0, 0, 2], { dtype: 'int32', device })], tensor([7, 8, 9], { device }));
      expect(await x.tolist()).toEqual([[1, 0, 3], [8, 5, 9]]);
      const ids = tensor([[1, 2], [3, 4]], { dtype: 'int32', device });
      ids.set('..., -1', 0);
      expect(ids.dtype).toBe('int32');
      expect(await ids.tolist()).toEqual([[1, 0], [3, 0]]);
      const flags = zeros([3], { dtype: 'bool', device });
      flags.set([tensor([2], { dtype: 'int32', device })], 1);
      expect(await flags.tolist()).toEqual([false, false, true]);
    });

    test('empty masks and index tensors, masks after an ellipsis, bool tensors', async () => {
      const x = arange(0, 6, 1, { dtype: 'float32', device }).reshape([2, 3]);
      const none = zeros([2], { dtype: 'bool', device });
      expect((await atMasked(x, [none])).shape).toEqual([0, 3]);
      expect(x.at([tensor([], { dtype: 'int32', device })]).shape).toEqual([0, 3]);
      expect(await x.indexPut([none], 9).tolist()).toEqual([[0, 1, 2], [3, 4, 5]]);
      expect(await (await atMasked(x, ['...', tensor([true, false, true], { dtype: 'bool', device })])).tolist()).toEqual([[0, 2], [3, 5]]);
      const flags = tensor([[true, false], [false, true]], { dtype: 'bool', device });
      expect(await flags.at([':', tensor([1, 0], { dtype: 'int32', device })]).tolist()).toEqual([[false, true], [true, false]]);
      expect(await flags.at('..., None, 0').tolist()).toEqual([[true], [false]]);
      const scalar = tensor(3, { dtype: 'float32', device });
      expect(scalar.at(null).shape).toEqual([1]);
      expect(await scalar.indexPut('...', 4).item()).toBe(4);
      expect(() => scalar.at(0)).toThrow(/at: too many indices for a tensor of dimension 0/);
    });

    test('a uint8 index tensor is a mask, as PyTorch reads it (x[torch.tensor([1, 0, 1], dtype=torch.uint8)])', async () => {
      const x = arange(0, 12, 1, { dtype: 'int32', device }).reshape([3, 4]);
      const m = tensor([1, 0, 1], { dtype: 'uint8', device });
      expect(await (await atMasked(x, m)).tolist()).toEqual([[0, 1, 2, 3], [8, 9, 10, 11]]);
      expect(await (await atMasked(x, [m, ':'])).tolist()).toEqual([[0, 1, 2, 3], [8, 9, 10, 11]]);
      expect(await x.indexPut([m], -1).tolist()).toEqual([[-1, -1, -1, -1], [4, 5, 6, 7], [-1, -1, -1, -1]]);
    });

    test('reading ints from an int tensor keeps the dtype; a float read is a new buffer', async () => {
      const ids = tensor([[5, 6, 7]], { dtype: 'int32', device });
      expect(ids.at('0, 1:').dtype).toBe('int32');
      expect(await ids.at([0, tensor([2, 0], { dtype: 'int32', device })]).tolist()).toEqual([7, 5]);
      const x = ones([2, 3], { device });
      expect(x.at('...')).toBe(x);
    });
  });
}

describe('subscript rules', () => {
  test('the string form is parsed once into the structured form', () => {
    expect(parseSubscript(' : , 0::2 ')).toEqual([new Slice(), new Slice(0, null, 2)]);
    expect(parseSubscript('..., None, -1,')).toEqual(['...', null, -1]);
    expect(parseSubscript(':, 1')).toBe(parseSubscript(':, 1'));
  });

  test('set on leaves requiring grad needs noGrad (like copy_); on computed tensors it is refused', async () => {
    const w = zeros([2, 3], { requiresGrad: true });
    expect(() => w.set(0, 1)).toThrow(/set: in-place update of a leaf that requires grad; wrap it in noGrad/);
    noGrad(() => w.set(':, 1', 2));
    expect(await w.tolist()).toEqual([[0, 2, 0], [0, 2, 0]]);
    expect(w.requiresGrad).toBe(true);
    expect(() => w.mul(2).set(0, 1)).toThrow(/set: in-place update of a tensor computed by 'mul'/);
    const v = ones([3], { requiresGrad: true });
    expect(() => zeros([2, 3]).set(0, v)).toThrow(/set: the value requires grad .* use x = x.indexPut\(spec, value\)/);
  });

  test('indexPut with a value that requires grad gives both gradients', async () => {
    const x = ones([2, 3], { requiresGrad: true }), v = tensor([10], { dtype: 'float32', requiresGrad: true });
    const y = x.indexPut(':, 1:', v.mul(2));
    sum(mul(y, y)).backward();
    expect(await y.tolist()).toEqual([[1, 20, 20], [1, 20, 20]]);
    expect(await x.grad!.tolist()).toEqual([[2, 0, 0], [2, 0, 0]]);
    // d/dv sum(y^2) = 4 elements * 2y (= 40) * dy/dv (= 2)
    expect(await v.grad!.tolist()).toEqual([4 * 40 * 2]);
  });

  test('a masked write of a one-element value (a masked fill) passes gradients to both sides', async () => {
    const x = tensor([[1, 2, 3], [4, 5, 6]], { dtype: 'float32', requiresGrad: true }), v = tensor([7], { dtype: 'float32', requiresGrad: true });
    const m = tensor([[true, false, true], [false, false, true]], { dtype: 'bool' });
    const y = x.indexPut([m], v);
    sum(mul(y, tensor([[1, 2, 3], [4, 5, 6]], { dtype: 'float32' }))).backward();
    expect(await y.tolist()).toEqual([[7, 2, 7], [4, 5, 7]]);
    expect(await x.grad!.tolist()).toEqual([[0, 2, 0], [4, 5, 0]]);
    expect(await v.grad!.tolist()).toEqual([1 + 3 + 6]);
    const flags = zeros([2, 3], { dtype: 'bool' });
    flags.set([m], 1);
    expect(await flags.tolist()).toEqual([[true, false, true], [false, false, true]]);
  });

  test('bad subscripts give errors that name the op, the dimension and the size', () => {
    const x = zeros([3, 4]);
    expect(() => x.at(3)).toThrow(/at: index 3 is out of range for dimension 0 of size 3/);
    expect(() => x.at('0, -5')).toThrow(/at: index -5 is out of range for dimension 1 of size 4/);
    expect(() => x.at([':', tensor([0, 4], { dtype: 'int32' })])).toThrow(/at: index 4 is out of range for dimension 1 of size 4/);
    expect(() => x.at([tensor([-4], { dtype: 'int32' })])).toThrow(/at: index -4 is out of range for dimension 0 of size 3/);
    expect(() => x.at('0, 0, 0')).toThrow(/at: too many indices for a tensor of dimension 2 \(3 given, shape \[3, 4\]\)/);
    expect(() => x.at('..., 0, ...')).toThrow(/at: a subscript can have only one ellipsis/);
    expect(() => x.at(':, ::0')).toThrow(/at: slice step cannot be zero \(dimension 1\)/);
    expect(() => x.at('::-1')).toThrow(/at: negative slice steps are not supported, as in PyTorch .* use x.flip\(\[0\]\)/);
    expect(() => x.at('0, a')).toThrow(/at: cannot read 'a' in subscript '0, a': expected an integer, a slice like 1:5:2, None or \.\.\./);
    expect(() => x.at('1:2:3:4')).toThrow(/at: cannot read '1:2:3:4'/);
    expect(() => x.at('')).toThrow(/at: empty subscript/);
    expect(() => x.at(1.5)).toThrow(/at: index 1.5 is not an integer/);
    expect(() => x.at([zeros([2])])).toThrow(/at: tensors used as indices must be integer or bool, got float32/);
    expect(() => x.at([tensor([true, false], { dtype: 'bool' })])).toThrow(/at: the mask's shape \[2\] does not match dimensions 0..0 of the indexed tensor \[3, 4\]/);
    expect(() => x.at([':', tensor([0], { dtype: 'int32' }), tensor([0, 1, 2], { dtype: 'int32' })])).toThrow(/too many indices/);
    expect(() => x.at([tensor([0, 1], { dtype: 'int32' }), tensor([0, 1, 2], { dtype: 'int32' })])).toThrow(/cannot be broadcast/);
    expect(() => x.indexPut(':, 0', zeros([4]))).toThrow(/indexPut: value of shape \[4\] cannot be broadcast to the indexed shape \[3\]/);
    expect(() => x.indexPut([tensor([0, 1], { dtype: 'int32' })], zeros([3, 4]))).toThrow(/indexPut: value of shape \[3, 4\] cannot be broadcast to the indexed shape \[2, 4\]/);
    expect(() => zeros([3]).set(0, zeros([2]))).toThrow(/set: value of shape \[2\] cannot be broadcast to the indexed shape \[\]/);
    expect(() => zeros([3]).set([tensor([0, 1], { dtype: 'int32' }), tensor([0], { dtype: 'int32' })], 1)).toThrow(/set: too many indices/);
    expect(() => x.at([{} as Tensor])).toThrow(/at: unexpected subscript item/);
  });

  test('on a device without synchronous reads: masks need atAsync, masked fills and index tensors still work', async () => {
    // The cpu kernels under another name, minus readSync: what a GPU backend looks like to these ops.
    const cpu = getBackend('cpu');
    const noSync = Object.create(cpu, {
      name: { value: 'nosync' },
      readSync: { value: undefined },
      read: { value: (buf: BackendBuffer) => Promise.resolve(cpu.readSync!(buf)) },
    }) as Backend;
    registerBackend(noSync);
    const x = arange(0, 6, 1, { dtype: 'float32', device: 'nosync' }).reshape([2, 3]);
    const m = tensor([true, false, true], { dtype: 'bool', device: 'nosync' });
    expect(() => x.at([':', m])).toThrow(/at: a boolean mask sizes the result by its values, and device 'nosync' cannot be read synchronously; use await x.atAsync\(spec\)/);
    expect(await (await x.atAsync([':', m])).tolist()).toEqual([[0, 2], [3, 5]]);
    expect(await x.indexPut([':', m], -1).tolist()).toEqual([[-1, 1, -1], [-1, 4, -1]]);
    expect(await x.at([':', tensor([-1, 0], { dtype: 'int32', device: 'nosync' })]).tolist()).toEqual([[2, 0], [5, 3]]);
  });

  test('atAsync reads masks with await and agrees with at', async () => {
    const x = arange(0, 12, 1, { dtype: 'float32' }).reshape([3, 4]);
    const m = x.gt(6);
    expect(await (await x.atAsync([m])).tolist()).toEqual(await x.at([m]).tolist());
  });
});
