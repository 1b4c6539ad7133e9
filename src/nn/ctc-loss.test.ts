// nn.CTCLoss: the module form of F.ctcLoss, with its options checked at construction.

import { describe, expect, it } from 'vitest';
import { randn, tensor } from '../tensor/create.js';
import { ctcLoss } from './functional.js';
import { CTCLoss } from './loss.js';

describe('CTCLoss', () => {
  it('equals F.ctcLoss with the same options', async () => {
    const lp = randn([8, 2, 5]).logSoftmax(-1);
    const targets = tensor([[1, 4, 4], [2, 3, 0]]);
    for (const opts of [{}, { reduction: 'sum' as const }, { reduction: 'none' as const, blank: 0, zeroInfinity: true }]) {
      const m = new CTCLoss(opts);
      expect(await m.forward(lp, targets, [8, 6], [3, 2]).tolist()).toEqual(await ctcLoss(lp, targets, [8, 6], [3, 2], opts).tolist());
    }
  });

  it('checks its options', () => {
    expect(() => new CTCLoss({ reduction: 'avg' as 'mean' })).toThrow("CTCLoss: reduction must be 'mean', 'sum' or 'none', got 'avg'");
    expect(() => new CTCLoss({ blank: -1 })).toThrow('CTCLoss: blank must be a non-negative integer, got -1');
  });
});
