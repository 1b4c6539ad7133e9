// loss.backward({ retainGraph: true }): PyTorch's keyword call, with the options first.

import { describe, expect, test } from 'vitest';
import '../index.js';
import { tensor } from '../tensor/create.js';
import type { Tensor } from '../tensor/tensor.js';

describe('backward options', () => {
  test('backward({ retainGraph: true }) keeps the graph for a second pass, as backward(undefined, opts) does', async () => {
    const x = tensor([1, 2, 3], { requiresGrad: true });
    const y = x.mul(x).sum();
    y.backward({ retainGraph: true });
    y.backward();
    expect(await x.grad!.tolist()).toEqual([4, 8, 12]); // 2x, twice
  });
  test('other first arguments are named errors', () => {
    const x = tensor([1, 2], { requiresGrad: true });
    const y = x.sum();
    expect(() => y.backward({ retain_graph: true } as never)).toThrow("backward: unknown option 'retain_graph' (options: retainGraph)");
    expect(() => y.backward([1] as unknown as Tensor)).toThrow('backward: the first argument must be a gradient Tensor or an options object { retainGraph }, got an array');
    expect(() => y.backward(2 as unknown as Tensor)).toThrow('got number');
  });
});
