// einsum, dot and outer against torch (test/data/einsum.json from scripts/gen_einsum_fixtures.py) on every device,
// finite differences on cpu float64, and the errors.

import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import '../../index.js';
import { listDevices } from '../../tensor/backend.js';
import { arange, randn, tensor } from '../../tensor/create.js';
import type { Tensor } from '../../tensor/tensor.js';
import { expectClose, fromFixture, type FixtureTensor } from '../../test-util/fixtures.js';
import { gradcheck } from '../gradcheck.js';
import { dot, einsum, outer } from './einsum.js';
import { mul } from './elementwise.js';
import { matmul } from './matmul.js';
import { sum } from './reduce.js';

interface EinsumCase {
  inputs: FixtureTensor[];
  output: FixtureTensor;
  probe: number[];
  grads: number[][];
}

const cases = (JSON.parse(readFileSync(new URL('../../../test/data/einsum.json', import.meta.url), 'utf8')) as { cases: Record<string, EinsumCase> }).cases;
const fnOf = (name: string) => (...xs: Tensor[]): Tensor => (name === 'dot' ? dot(xs[0]!, xs[1]!) : name === 'outer' ? outer(xs[0]!, xs[1]!) : einsum(name, ...xs));

for (const device of listDevices()) {
  describe(`einsum on ${device} matches torch`, () => {
    for (const [name, c] of Object.entries(cases)) {
      test(name, async () => {
        const fn = fnOf(name);
        const inputs = c.inputs.map((f) => fromFixture(f, device, 'float32', true));
        const out = fn(...inputs);
        expect(out.shape).toEqual(c.output.shape);
        expectClose(await out.data(), c.output.data, 1e-5, 1e-4, `${name} value`);
        sum(mul(out, tensor(c.probe, { shape: c.output.shape, device }))).backward();
        for (let i = 0; i < inputs.length; i++) expectClose(await inputs[i]!.grad!.data(), c.grads[i]!, 1e-4, 1e-3, `${name} grad of input ${i}`);
        if (device === 'cpu') gradcheck(fn, c.inputs.map((f) => fromFixture(f, device, 'float64')));
      });
    }
    test('integer operands compute exactly', async () => {
      const a = arange(6, undefined, 1, { device }).reshape([2, 3]);
      expect(await einsum('ij,kj->ik', a, a).tolist()).toEqual([[5, 14], [14, 50]]);
      expect(await dot(arange(4, undefined, 1, { device }), arange(4, undefined, 1, { device })).item()).toBe(14);
    });
  });
}

describe('einsum details', () => {
  test('size-1 dimensions broadcast; the result equals matmul', async () => {
    const a = randn([1, 3, 4]), b = randn([5, 4, 2]);
    expectClose(await einsum('bij,bjk->bik', a, b).data(), Array.from(await matmul(a, b).data()), 1e-6);
    const x = randn([1, 4]), y = randn([4, 3]);
    expectClose(await einsum('ij,jk->ik', x.expand([2, 4]), y).data(), Array.from(await matmul(x.expand([2, 4]), y).data()), 1e-6);
    expect(einsum('ij,jk->ik', randn([1, 4]), randn([4, 3])).shape).toEqual([1, 3]);
    expect(einsum('i,i->i', randn([1]), randn([5])).shape).toEqual([5]);
  });
  test('Tensor methods dot and outer', async () => {
    const a = tensor([1, 2, 3]), b = tensor([4, 5, 6]);
    expect(await a.dot(b).item()).toBe(32);
    expect(await a.outer(tensor([1, 10])).tolist()).toEqual([[1, 10], [2, 20], [3, 30]]);
  });
  test('errors name einsum and the offending subscript or shape', () => {
    const m = randn([3, 4]);
    expect(() => einsum('ij,jk->ik', m, randn([5, 2]))).toThrow(/einsum: subscript 'j' has size 4 in operand 0 but 5 in operand 1/);
    expect(() => einsum('ijk->i', m)).toThrow(/einsum: operand 0 has subscripts 'ijk' \(3 dimension\(s\)\) but shape \[3, 4\]/);
    expect(() => einsum('ij,jk->ik', m)).toThrow(/einsum: 'ij,jk->ik' has subscripts for 2 operand\(s\), but 1 tensor\(s\) were given/);
    expect(() => einsum('i1->i', m)).toThrow(/einsum: invalid subscript '1' in operand 0 'i1'/);
    expect(() => einsum('ij->iz', m)).toThrow(/einsum: output subscript 'z' does not appear in any operand/);
    expect(() => einsum('ij->ii', m)).toThrow(/einsum: output subscript 'i' appears more than once/);
    expect(() => einsum('ii->i', m)).toThrow(/einsum: subscript 'i' is repeated in operand 0 with sizes 3 and 4/);
    expect(() => einsum('...i,...i', randn([2, 3]), randn([4, 3]))).toThrow(/einsum: '...' dimension has size 2 in operand 0 but 4 in operand 1/);
    expect(() => einsum('ij,jk', m, randn([4, 2], { dtype: 'float64' }))).toThrow(/einsum: operands must share one numeric dtype, got float32, float64/);
    expect(() => einsum('i->i')).toThrow(/einsum: no operands given/);
    expect(() => einsum('i->i->i', randn([2]))).toThrow(/einsum: more than one '->'/);
    expect(() => dot(m, m)).toThrow(/dot: expected two 1-d tensors, got \[3, 4\] and \[3, 4\]/);
    expect(() => dot(randn([3]), randn([4]))).toThrow(/dot: the tensors have different lengths \(3 and 4\)/);
    expect(() => outer(m, randn([2]))).toThrow(/outer: expected two 1-d tensors/);
  });
});
