// Losses, convolution, pooling and attention against PyTorch on every backend, plus finite differences in float64.

import { describe, expect, test } from 'vitest';
import { manualSeed } from '../tensor/random.js';
import { ones, tensor, zeros } from '../tensor/create.js';
import { describeOps } from '../test-util/op-check.js';
import * as F from './functional.js';

describeOps('functional', {
  cross_entropy: (x, t) => F.crossEntropy(x!, t!),
  cross_entropy_ignore_smooth: (x, t) => F.crossEntropy(x!, t!, { ignoreIndex: -100, labelSmoothing: 0.1 }),
  cross_entropy_sum: (x, t) => F.crossEntropy(x!, t!, { reduction: 'sum' }),
  cross_entropy_ignore: (x, t) => F.crossEntropy(x!, t!, { ignoreIndex: -100 }),
  cross_entropy_none_3d: (x, t) => F.crossEntropy(x!, t!, { reduction: 'none' }),
  nll_loss: (x, t) => F.nllLoss(x!, t!),
  mse_loss: (a, b) => F.mseLoss(a!, b!),
  bce_with_logits: (x, y) => F.binaryCrossEntropyWithLogits(x!, y!),
  conv1d: (x, w, b) => F.conv1d(x!, w!, b!, { stride: 2, padding: 1 }),
  conv1d_groups_dilation: (x, w) => F.conv1d(x!, w!, null, { padding: 2, dilation: 2, groups: 2 }),
  conv2d: (x, w, b) => F.conv2d(x!, w!, b!, { stride: [1, 2], padding: 1 }),
  conv2d_groups: (x, w) => F.conv2d(x!, w!, null, { groups: 3 }),
  max_pool2d: (x) => F.maxPool2d(x, 2),
  max_pool2d_pad_stride: (x) => F.maxPool2d(x, 3, { stride: 2, padding: 1 }),
  avg_pool2d: (x) => F.avgPool2d(x, [2, 3], { stride: 1, padding: [1, 1] }),
  max_pool1d: (x) => F.maxPool1d(x, 3, 2),
  avg_pool1d: (x) => F.avgPool1d(x, 2),
  attention: (q, k, v) => F.scaledDotProductAttention(q!, k!, v!),
  attention_causal: (q, k, v) => F.scaledDotProductAttention(q!, k!, v!, { isCausal: true }),
  attention_causal_cached: (q, k, v) => F.scaledDotProductAttention(q!, k!, v!, { isCausal: true }),
  attention_padding_empty_row: (q, k, v, m) => F.scaledDotProductAttention(q!, k!, v!, { attnMask: m }),
  // A bias that requires grad (T5's relative positions) takes the composed path.
  attention_bias_grad: (q, k, v, b) => F.scaledDotProductAttention(q!, k!, v!, { attnMask: b }),
});

describe('functional details', () => {
  test('dropout keeps about 1 - p of the elements, scaled by 1 / (1 - p), and is identity in eval', async () => {
    manualSeed(1);
    const y = (await F.dropout(ones([10000]), 0.3).data()) as Float32Array;
    const kept = y.filter((v) => v !== 0);
    expect(kept.length / y.length).toBeGreaterThan(0.68);
    expect(kept.length / y.length).toBeLessThan(0.72);
    expect(kept[0]).toBeCloseTo(1 / 0.7, 6);
    const x = ones([3]);
    expect(F.dropout(x, 0.5, false)).toBe(x);
  });
  test('cross-entropy with an out-of-range target names the op', () => {
    expect(() => F.crossEntropy(zeros([2, 3]), tensor([0, 3], { dtype: 'int32' }))).toThrow(/crossEntropy: index 3 is out of range/);
    expect(() => F.crossEntropy(zeros([2, 3]), tensor([0, 1, 2], { dtype: 'int32' }))).toThrow(/nllLoss: target \[3\] does not match input \[2, 3\]/);
  });
  test('cross-entropy with probability targets equals the index form for one-hot targets', async () => {
    const logits = tensor([[1, 2, 0.5], [0, -1, 3]]);
    const a = await F.crossEntropy(logits, tensor([1, 2], { dtype: 'int32' })).item();
    const b = await F.crossEntropy(logits, F.oneHot(tensor([1, 2], { dtype: 'int32' }), 3).float()).item();
    expect(b).toBeCloseTo(a, 6);
  });
  test('causal attention with fewer queries than keys lets the last query see every key', async () => {
    const q = ones([1, 1, 4]), k = tensor([[[0], [0], [0]]]).expand([1, 3, 4]), v = tensor([[[1], [2], [3]]]);
    expect(await F.scaledDotProductAttention(q, k, v, { isCausal: true }).tolist()).toEqual([[[2]]]);
  });
});
