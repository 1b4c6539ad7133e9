// Fused softmax / log-softmax / layer norm / RMS norm against PyTorch on every backend, plus finite differences.

import { describe, expect, test } from 'vitest';
import { tensor, zeros } from '../../tensor/create.js';
import { describeOps } from '../../test-util/op-check.js';
import { layerNorm, rmsNorm } from './nn.js';

describeOps('nn primitives', {
  softmax: (x) => x.softmax(-1),
  softmax_dim0: (x) => x.softmax(0),
  log_softmax: (x) => x.logSoftmax(-1),
  layer_norm: (x, w, b) => layerNorm(x!, [5], w!, b!, 1e-5),
  layer_norm_noaffine: (x) => layerNorm(x, [2, 3]),
  rms_norm: (x, w) => rmsNorm(x!, [5], w!, 1e-6),
});

describe('nn primitive edge cases', () => {
  test('softmax is stable for large logits', async () => {
    const p = (await tensor([1000, 1001], { dtype: 'float32' }).softmax().data()) as Float32Array;
    expect(p[1]).toBeCloseTo(1 / (1 + Math.exp(-1)), 6);
  });
  test('layerNorm checks the normalized shape', () => {
    expect(() => layerNorm(zeros([2, 4]), [5])).toThrow(/layerNorm: input \[2, 4\] does not end with normalized shape \[5\]/);
  });
});
