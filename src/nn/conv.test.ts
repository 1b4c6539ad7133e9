// Conv1d/Conv2d, pooling and Flatten layers against torch.nn (same state dict -> same outputs and gradients).

import { describe, expect, test } from 'vitest';
import '../index.js';
import { listDevices } from '../tensor/backend.js';
import { randn } from '../tensor/create.js';
import { checkLayer } from '../test-util/nn-fixtures.js';
import { Conv1d, Conv2d } from './conv.js';
import { Flatten, Unflatten } from './flatten.js';
import { AdaptiveAvgPool1d, AdaptiveAvgPool2d, AvgPool1d, AvgPool2d, MaxPool1d, MaxPool2d } from './pooling.js';

const F = 'rnn_conv.json';

for (const device of listDevices()) {
  describe(`convolution and pooling layers on ${device} match torch.nn`, () => {
    test('Conv1d, stride 2, padding 1', async () => {
      const m = new Conv1d(4, 6, 3, { stride: 2, padding: 1 });
      await checkLayer(F, 'conv1d_stride_padding', m, (x) => m.forward(x!), device);
    });
    test("Conv1d, padding 'same' with an even kernel (one extra column on the right)", async () => {
      const m = new Conv1d(2, 3, 4, { padding: 'same' });
      await checkLayer(F, 'conv1d_same', m, (x) => m.forward(x!), device);
    });
    test('Conv2d, groups 2, dilation, rectangular kernel, stride and padding', async () => {
      const m = new Conv2d(4, 6, [3, 2], { stride: [1, 2], padding: [2, 1], dilation: [2, 1], groups: 2 });
      await checkLayer(F, 'conv2d_groups_dilation', m, (x) => m.forward(x!), device);
    });
    test("Conv2d, padding 'same', dilation, no bias", async () => {
      const m = new Conv2d(2, 2, [2, 3], { padding: 'same', dilation: [1, 2], bias: false });
      await checkLayer(F, 'conv2d_same_nobias', m, (x) => m.forward(x!), device);
    });
    test('MaxPool2d, kernel 3, stride 2, padding 1', async () => {
      const m = new MaxPool2d(3, { stride: 2, padding: 1 });
      await checkLayer(F, 'maxpool2d', m, (x) => m.forward(x!), device);
    });
    test('AvgPool1d, kernel 3, stride 2, padding 1 (padding counted)', async () => {
      const m = new AvgPool1d(3, { stride: 2, padding: 1 });
      await checkLayer(F, 'avgpool1d', m, (x) => m.forward(x!), device);
    });
    test('MaxPool1d, kernel 2 (stride defaults to the kernel)', async () => {
      const m = new MaxPool1d(2);
      await checkLayer(F, 'maxpool1d', m, (x) => m.forward(x!), device);
    });
    test('AvgPool2d, rectangular kernel and stride', async () => {
      const m = new AvgPool2d([2, 3], { stride: [2, 1] });
      await checkLayer(F, 'avgpool2d', m, (x) => m.forward(x!), device);
    });
    test('AdaptiveAvgPool1d, 7 -> 3 (overlapping windows)', async () => {
      const m = new AdaptiveAvgPool1d(3);
      await checkLayer(F, 'adaptive_avgpool1d', m, (x) => m.forward(x!), device);
    });
    test('AdaptiveAvgPool2d, (3, null) keeps the width', async () => {
      const m = new AdaptiveAvgPool2d([3, null]);
      await checkLayer(F, 'adaptive_avgpool2d', m, (x) => m.forward(x!), device);
    });
  });
}

describe('convolution layer details', () => {
  test('weight and bias shapes, and init bounds as torch', async () => {
    const m = new Conv2d(4, 6, 3, { groups: 2 });
    expect(m.namedParameters().map(([n, p]) => `${n} ${p.shape.join('x')}`)).toEqual(['weight 6x2x3x3', 'bias 6']);
    // fan_in = 2 * 3 * 3 = 18: kaiming_uniform(a = sqrt(5)) and the bias both give U(+-1/sqrt(18)).
    for (const p of m.parameters()) expect(Math.max(...(await p.data()).map(Math.abs))).toBeLessThanOrEqual(1 / Math.sqrt(18));
    expect(new Conv1d(3, 5, 2, { bias: false }).bias).toBeNull();
  });
  test('unbatched input and output shapes', () => {
    expect(new Conv1d(3, 5, 3, { padding: 'valid' }).forward(randn([3, 10])).shape).toEqual([5, 8]);
    expect(new Conv2d(3, 5, 3, { padding: 'same' }).forward(randn([3, 6, 7])).shape).toEqual([5, 6, 7]);
    expect(new MaxPool2d(2).forward(randn([3, 6, 7])).shape).toEqual([3, 3, 3]);
    expect(new AdaptiveAvgPool2d(1).forward(randn([2, 3, 5, 4])).shape).toEqual([2, 3, 1, 1]);
    expect(new AdaptiveAvgPool1d(2).forward(randn([3, 5])).shape).toEqual([3, 2]);
  });
  test('Flatten and Unflatten', () => {
    expect(new Flatten().forward(randn([2, 3, 4, 5])).shape).toEqual([2, 60]);
    expect(new Flatten(0, 2).forward(randn([2, 3, 4, 5])).shape).toEqual([24, 5]);
    expect(new Unflatten(1, [3, 4]).forward(randn([2, 12, 5])).shape).toEqual([2, 3, 4, 5]);
    expect(() => new Flatten(2).forward(randn([2, 3]))).toThrow(/Flatten: dimensions 2..-1 do not fit input \[2, 3\]/);
    expect(() => new Unflatten(1, [3, 5]).forward(randn([2, 12]))).toThrow(/Unflatten: dimension 1 of input \[2, 12\] cannot be split into \[3, 5\]/);
  });
  test('bad input and options name the layer and the shapes', () => {
    expect(() => new Conv2d(4, 6, 3).forward(randn([2, 3, 8, 8]))).toThrow(/Conv2d: expected input \[B, C, H, W\] or \[C, H, W\] with C = inChannels 4, got \[2, 3, 8, 8\]/);
    expect(() => new Conv1d(4, 6, 3).forward(randn([2, 4, 8, 8]))).toThrow(/Conv1d: expected input \[B, C, L\] or \[C, L\] with C = inChannels 4, got \[2, 4, 8, 8\]/);
    expect(() => new Conv2d(4, 6, 3, { groups: 4 })).toThrow(/Conv2d: inChannels 4 and outChannels 6 must both be divisible by groups 4/);
    expect(() => new Conv1d(4, 6, 3, { padding: 'same', stride: 2 })).toThrow(/Conv1d: padding 'same' needs stride 1/);
    expect(() => new Conv1d(4, 6, 0)).toThrow(/Conv1d: kernelSize must be positive integers/);
    expect(() => new MaxPool2d(2).forward(randn([2, 3]))).toThrow(/MaxPool2d: expected input \[B, C, H, W\] or \[C, H, W\], got \[2, 3\]/);
    expect(() => new AvgPool1d(2).forward(randn([2, 3, 4, 5]))).toThrow(/AvgPool1d: expected input \[B, C, L\] or \[C, L\], got \[2, 3, 4, 5\]/);
    expect(() => new AdaptiveAvgPool1d(0)).toThrow(/AdaptiveAvgPool1d: outputSize must be positive integers/);
  });
});
